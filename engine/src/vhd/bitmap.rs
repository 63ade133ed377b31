//! The sector bitmap in front of every block (specification: "Block Allocation Table and
//! Data Blocks"): one bit per sector of the block, most significant bit first, padded to
//! a whole sector. In a differencing disk a 0 bit means "read the parent"; dynamic disks
//! keep every bit of an allocated block set (as qemu and Hyper-V write them).

use super::{align_up, SECTOR};

/// Bytes of a block's bitmap in the file.
pub fn bitmap_size(block_size: u32) -> u64 {
    align_up((u64::from(block_size) / SECTOR).div_ceil(8), SECTOR)
}

pub fn is_set(bm: &[u8], sector: u64) -> bool {
    bm[(sector / 8) as usize] & (0x80 >> (sector % 8)) != 0
}

pub fn set(bm: &mut [u8], sector: u64) {
    bm[(sector / 8) as usize] |= 0x80 >> (sector % 8);
}

/// Length of the run of sectors from `first` (below `end`) whose bits equal `first`'s.
pub fn run_len(bm: &[u8], first: u64, end: u64) -> u64 {
    let v = is_set(bm, first);
    (first..end).take_while(|&s| is_set(bm, s) == v).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_most_significant_first() {
        let mut bm = vec![0u8; 512];
        set(&mut bm, 0);
        set(&mut bm, 9);
        assert_eq!(&bm[..2], &[0x80, 0x40]);
        assert_eq!(run_len(&bm, 1, 4096), 8);
        assert_eq!(bitmap_size(2 << 20), 512);
        assert_eq!(bitmap_size(512), 512);
        assert_eq!(bitmap_size(256 << 20), 65536);
    }
}
