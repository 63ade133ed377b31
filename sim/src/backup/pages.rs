//! Page-level findings inside the blocks the engine found different: the engine compares
//! 1 MiB blocks (a page-sized block over a large disk costs more than the compare), and
//! the report counts the 4 KiB pages that differed and the first byte that did.

use crate::world::{SparseImage, PAGE};

/// The pages of `ranges` (`(offset, length)`, page-aligned) where `a` and `b` differ.
pub fn differing_pages(a: &SparseImage, b: &SparseImage, ranges: &[(u64, u64)]) -> u64 {
    let mut n = 0;
    for &(o, l) in ranges {
        for idx in o / PAGE..(o + l).div_ceil(PAGE) {
            if a.page(idx) != b.page(idx) {
                n += 1;
            }
        }
    }
    n
}

/// The first byte of `ranges` (in increasing order) where `a` and `b` differ.
pub fn first_difference(a: &SparseImage, b: &SparseImage, ranges: &[(u64, u64)]) -> Option<u64> {
    let zero = [0u8; PAGE as usize];
    ranges.iter().find_map(|&(o, l)| {
        (o / PAGE..(o + l).div_ceil(PAGE)).find_map(|idx| {
            let x = a.page(idx).unwrap_or(&zero);
            let y = b.page(idx).unwrap_or(&zero);
            x.iter()
                .zip(y)
                .position(|(p, q)| p != q)
                .map(|k| idx * PAGE + k as u64)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pages_inside_the_ranges_count() {
        let mut a = SparseImage::default();
        let mut b = SparseImage::default();
        a.write(0, &[1u8; PAGE as usize]);
        let mut p = vec![1u8; PAGE as usize];
        p[7] = 2;
        b.write(0, &p);
        b.write(3 * PAGE, &[5u8; PAGE as usize]);
        b.write(9 * PAGE, &[5u8; PAGE as usize]);
        assert_eq!(differing_pages(&a, &b, &[(0, 4 * PAGE)]), 2);
        assert_eq!(differing_pages(&a, &b, &[(PAGE, 2 * PAGE)]), 0);
        assert_eq!(first_difference(&a, &b, &[(0, 4 * PAGE)]), Some(7));
        assert_eq!(
            first_difference(&a, &b, &[(PAGE, PAGE), (8 * PAGE, 2 * PAGE)]),
            Some(9 * PAGE)
        );
        assert_eq!(first_difference(&a, &a, &[(0, 10 * PAGE)]), None);
    }
}
