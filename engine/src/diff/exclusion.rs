//! Excluded ranges (R14: the guest page file): never read, sent or compared.

use super::DiffError;

/// Byte ranges of a disk left out of a synchronisation, sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    /// Half-open `[start, end)` ranges, sorted, disjoint and not touching.
    ranges: Vec<(u64, u64)>,
}

impl Exclusions {
    /// Ranges given as `(offset, length)`; each must lie inside a disk of `disk_size` bytes.
    pub fn new(ranges: &[(u64, u64)], disk_size: u64) -> Result<Self, DiffError> {
        let mut rs = Vec::with_capacity(ranges.len());
        for &(offset, length) in ranges {
            match offset.checked_add(length) {
                Some(end) if end <= disk_size => {
                    if length > 0 {
                        rs.push((offset, end));
                    }
                }
                _ => {
                    return Err(DiffError::BadRange {
                        offset,
                        length,
                        size: disk_size,
                    })
                }
            }
        }
        rs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(rs.len());
        for (s, e) in rs {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        Ok(Exclusions { ranges: merged })
    }

    /// Bytes excluded in all.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// The parts of `[start, end)` that are not excluded, as half-open ranges in order.
    pub fn included(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = start;
        // The first range that ends after `start`.
        let first = self.ranges.partition_point(|&(_, e)| e <= start);
        for &(s, e) in &self.ranges[first..] {
            if s >= end {
                break;
            }
            if s > pos {
                out.push((pos, s));
            }
            pos = pos.max(e);
        }
        if pos < end {
            out.push((pos, end));
        }
        out
    }

    /// Excluded bytes inside `[start, end)`.
    pub fn excluded_in(&self, start: u64, end: u64) -> u64 {
        let inc: u64 = self.included(start, end).iter().map(|(s, e)| e - s).sum();
        (end - start) - inc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_splits() {
        let x = Exclusions::new(&[(100, 50), (120, 100), (500, 10), (0, 0)], 1000).unwrap();
        assert_eq!(x.total(), 130);
        assert_eq!(x.included(0, 1000), vec![(0, 100), (220, 500), (510, 1000)]);
        assert_eq!(x.included(150, 230), vec![(220, 230)]);
        assert_eq!(x.included(120, 200), vec![]);
        assert_eq!(x.excluded_in(0, 1000), 130);
        assert_eq!(x.excluded_in(505, 600), 5);
    }

    #[test]
    fn rejects_ranges_outside_the_disk() {
        assert!(Exclusions::new(&[(990, 11)], 1000).is_err());
        assert!(Exclusions::new(&[(u64::MAX, 2)], 1000).is_err());
        assert!(Exclusions::new(&[(990, 10)], 1000).is_ok());
    }
}
