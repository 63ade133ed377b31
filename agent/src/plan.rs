//! What the agent writes: a disk, the region `[0, size)` of it, how many writes, their
//! lengths and pace, and the seed that fixes every offset and byte.

use std::path::PathBuf;

use crate::data::Draws;

/// Writes are whole 4 KiB sectors at 4 KiB offsets: a disk of 512- or 4096-byte sectors
/// takes them whole, and a backup's blocks hold them whole or not at all per sector.
pub const SECTOR: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub disk: PathBuf,
    /// The region written, from offset 0.
    pub size: u64,
    pub writes: u64,
    pub min_len: u64,
    pub max_len: u64,
    /// Writes per second; 0 writes as fast as the disk takes them.
    pub rate: u32,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--{field} {value}: not a multiple of {SECTOR} (writes are whole 4 KiB sectors)")]
    Unaligned { field: &'static str, value: u64 },
    #[error("--min-len {min} is larger than --max-len {max}")]
    Lengths { min: u64, max: u64 },
    #[error("--min-len must be at least {SECTOR}")]
    Empty,
    #[error("--max-len {max} does not fit in --size {size}")]
    TooLong { max: u64, size: u64 },
}

/// One planned write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedWrite {
    pub seq: u64,
    pub offset: u64,
    pub len: u64,
}

impl Plan {
    pub fn check(&self) -> Result<(), PlanError> {
        for (field, value) in [
            ("size", self.size),
            ("min-len", self.min_len),
            ("max-len", self.max_len),
        ] {
            if value % SECTOR != 0 {
                return Err(PlanError::Unaligned { field, value });
            }
        }
        if self.min_len == 0 {
            return Err(PlanError::Empty);
        }
        if self.min_len > self.max_len {
            return Err(PlanError::Lengths {
                min: self.min_len,
                max: self.max_len,
            });
        }
        if self.max_len > self.size {
            return Err(PlanError::TooLong {
                max: self.max_len,
                size: self.size,
            });
        }
        Ok(())
    }

    /// The writes in order, each's length then offset drawn from the seed. The plan must
    /// have passed [`Plan::check`].
    pub fn writes(&self) -> impl Iterator<Item = PlannedWrite> + '_ {
        let mut draws = Draws::new(self.seed);
        (0..self.writes).map(move |seq| {
            let extra = draws.below((self.max_len - self.min_len) / SECTOR + 1);
            let len = self.min_len + extra * SECTOR;
            let offset = draws.below((self.size - len) / SECTOR + 1) * SECTOR;
            PlannedWrite { seq, offset, len }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            disk: "disk.raw".into(),
            size: 1 << 20,
            writes: 200,
            min_len: 4096,
            max_len: 16384,
            rate: 0,
            seed: 5,
        }
    }

    #[test]
    fn writes_are_aligned_inside_the_region_and_seeded() {
        let p = plan();
        p.check().unwrap();
        let ws: Vec<_> = p.writes().collect();
        assert_eq!(ws.len(), 200);
        for w in &ws {
            assert_eq!(w.offset % SECTOR, 0);
            assert!((4096..=16384).contains(&w.len) && w.len % SECTOR == 0);
            assert!(w.offset + w.len <= p.size);
        }
        assert!(ws.iter().any(|w| w.len == 16384) && ws.iter().any(|w| w.len == 4096));
        assert_eq!(ws, p.writes().collect::<Vec<_>>());
        let other = Plan { seed: 6, ..plan() };
        assert_ne!(ws, other.writes().collect::<Vec<_>>());
    }

    #[test]
    fn bad_plans_name_the_argument() {
        let e = Plan {
            max_len: 5000,
            ..plan()
        }
        .check()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--max-len 5000: not a multiple of 4096 (writes are whole 4 KiB sectors)"
        );
        assert_eq!(
            Plan {
                min_len: 0,
                ..plan()
            }
            .check(),
            Err(PlanError::Empty)
        );
        assert_eq!(
            Plan {
                min_len: 8192,
                max_len: 4096,
                ..plan()
            }
            .check(),
            Err(PlanError::Lengths {
                min: 8192,
                max: 4096
            })
        );
        assert_eq!(
            Plan {
                size: 8192,
                ..plan()
            }
            .check()
            .unwrap_err()
            .to_string(),
            "--max-len 16384 does not fit in --size 8192"
        );
    }
}
