//! Resilient change tracking: `Msvm_ImageManagementService.GetVirtualDiskChanges`
//! answers a query for `[ByteOffset, ByteOffset + ByteLength)` with
//! `ProcessedByteLength` (it may stop early: the caller asks again from there) and two
//! parallel arrays `ChangedByteOffsets[]` / `ChangedByteLengths[]`. An incremental backup
//! (R18) reads exactly those ranges, so a range the host did not answer for, or one
//! outside the query, must stop the run instead of being read or skipped.

/// One answer, as the out parameters hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskChanges {
    pub byte_offset: u64,
    pub byte_length: u64,
    pub processed_byte_length: u64,
    pub changed_byte_offsets: Vec<u64>,
    pub changed_byte_lengths: Vec<u64>,
}

/// A byte range of the virtual disk: `[offset, offset + length)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangedRange {
    pub offset: u64,
    pub length: u64,
}

/// An answer that cannot be right.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RctError {
    #[error("GetVirtualDiskChanges: ChangedByteOffsets has {offsets} entries, ChangedByteLengths {lengths}")]
    Unpaired { offsets: usize, lengths: usize },
    #[error("GetVirtualDiskChanges: ProcessedByteLength {processed} exceeds the queried ByteLength {queried}")]
    Overprocessed { processed: u64, queried: u64 },
    #[error("GetVirtualDiskChanges: range {index} ({offset}+{length}) lies outside the processed region {start}..{end}")]
    OutOfRegion {
        index: usize,
        offset: u64,
        length: u64,
        start: u64,
        end: u64,
    },
    #[error("GetVirtualDiskChanges: range {index} starts at {offset}, before the end {previous_end} of the range before it")]
    Unordered {
        index: usize,
        offset: u64,
        previous_end: u64,
    },
}

impl DiskChanges {
    /// The changed ranges, in order, adjacent ones merged; and where the next query
    /// starts (`None` once the whole queried region was processed).
    pub fn ranges(&self) -> Result<(Vec<ChangedRange>, Option<u64>), RctError> {
        if self.changed_byte_offsets.len() != self.changed_byte_lengths.len() {
            return Err(RctError::Unpaired {
                offsets: self.changed_byte_offsets.len(),
                lengths: self.changed_byte_lengths.len(),
            });
        }
        if self.processed_byte_length > self.byte_length {
            return Err(RctError::Overprocessed {
                processed: self.processed_byte_length,
                queried: self.byte_length,
            });
        }
        let start = self.byte_offset;
        let end = start.saturating_add(self.processed_byte_length);
        let mut out: Vec<ChangedRange> = Vec::new();
        let mut previous_end = start;
        let pairs = self
            .changed_byte_offsets
            .iter()
            .zip(&self.changed_byte_lengths);
        for (index, (&offset, &length)) in pairs.enumerate() {
            let range_end = offset.checked_add(length);
            if offset < start || range_end.is_none_or(|e| e > end) {
                return Err(RctError::OutOfRegion {
                    index,
                    offset,
                    length,
                    start,
                    end,
                });
            }
            if offset < previous_end && index > 0 {
                return Err(RctError::Unordered {
                    index,
                    offset,
                    previous_end,
                });
            }
            let range_end = offset + length;
            previous_end = range_end;
            if length == 0 {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.offset + last.length == offset => last.length += length,
                _ => out.push(ChangedRange { offset, length }),
            }
        }
        let next = (self.processed_byte_length < self.byte_length).then_some(end);
        Ok((out, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(processed: u64, offsets: &[u64], lengths: &[u64]) -> DiskChanges {
        DiskChanges {
            byte_offset: 1 << 20,
            byte_length: 8 << 20,
            processed_byte_length: processed,
            changed_byte_offsets: offsets.to_vec(),
            changed_byte_lengths: lengths.to_vec(),
        }
    }

    #[test]
    fn ranges_come_in_order_with_adjacent_ones_merged() {
        let a = answer(
            8 << 20,
            &[1 << 20, 2 << 20, 3 << 20, 5 << 20],
            &[4096, 1 << 20, 65536, 0],
        );
        let (ranges, next) = a.ranges().unwrap();
        assert_eq!(
            ranges,
            [
                ChangedRange {
                    offset: 1 << 20,
                    length: 4096
                },
                ChangedRange {
                    offset: 2 << 20,
                    length: (1 << 20) + 65536
                },
            ]
        );
        assert_eq!(next, None);
    }

    #[test]
    fn a_partial_answer_says_where_to_ask_again() {
        let (ranges, next) = answer(2 << 20, &[1 << 20], &[512]).ranges().unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!(next, Some(3 << 20));
    }

    #[test]
    fn impossible_answers_are_refused() {
        assert_eq!(
            answer(8 << 20, &[1 << 20], &[])
                .ranges()
                .unwrap_err()
                .to_string(),
            "GetVirtualDiskChanges: ChangedByteOffsets has 1 entries, ChangedByteLengths 0"
        );
        assert_eq!(
            answer(9 << 20, &[], &[]).ranges().unwrap_err(),
            RctError::Overprocessed {
                processed: 9 << 20,
                queried: 8 << 20
            }
        );
        // Past the processed part, before the query, and a length that wraps.
        assert!(matches!(
            answer(1 << 20, &[(2 << 20) - 1], &[2]).ranges(),
            Err(RctError::OutOfRegion { index: 0, .. })
        ));
        assert!(matches!(
            answer(8 << 20, &[0], &[1]).ranges(),
            Err(RctError::OutOfRegion { .. })
        ));
        assert!(matches!(
            answer(8 << 20, &[1 << 20], &[u64::MAX]).ranges(),
            Err(RctError::OutOfRegion { .. })
        ));
        assert_eq!(
            answer(8 << 20, &[2 << 20, (2 << 20) + 100], &[4096, 1]).ranges().unwrap_err().to_string(),
            "GetVirtualDiskChanges: range 1 starts at 2097252, before the end 2101248 of the range before it"
        );
    }
}
