//! What the backup server holds (R18): per VM a replica (the last state of its disks'
//! images, the change-tracking reference points the next incremental starts from, and
//! whether it is flagged inconsistent, R17), the recovery points made of it, and what was
//! restored from them (R16).

use std::collections::BTreeMap;

use hvsim_engine::rct::RefPoint;
use hvsim_engine::volume::Volume;

use super::image::SparseImage;
use super::Power;
use crate::scenario::{ConsistencyCheck, RestoreTarget};

/// How a recovery point's data was brought over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// Every allocated block read and sent (the first point creates the baseline).
    Full,
    /// Only the ranges change tracking reports since the previous point (RCT), minus the
    /// excluded ranges (R14).
    Incremental,
    /// Both sides read in full and checksummed; only differing blocks sent (F5.E).
    ExpressFull,
}

impl Transfer {
    pub fn name(self) -> &'static str {
        match self {
            Transfer::Full => "full",
            Transfer::Incremental => "incremental",
            Transfer::ExpressFull => "express full",
        }
    }
}

/// A byte range of one disk left out of a point (R14: the guest page file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excluded {
    pub vm: usize,
    pub disk: usize,
    pub offset: u64,
    pub len: u64,
    pub why: String,
}

/// The figures of one recovery point, all VMs together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PointFigures {
    pub number: u32,
    /// Transfer per VM.
    pub transfers: BTreeMap<usize, Transfer>,
    pub bytes_read: u64,
    pub bytes_hashed: u64,
    pub bytes_sent: u64,
    pub excluded: Vec<Excluded>,
    /// The point was made (every transfer completed).
    pub made: bool,
}

/// The server's replica of one VM.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    pub images: Vec<SparseImage>,
    /// Per disk: the RCT reference point of the last point's consistency point.
    pub baseline: Vec<Option<RefPoint>>,
    /// Why the replica is flagged inconsistent (R17), if it is.
    pub inconsistent: Option<String>,
}

/// One R17 consistency check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRecord {
    /// The VM's name.
    pub vm: String,
    pub setting: ConsistencyCheck,
    pub point: u32,
    /// Why it ran ("on demand", "scheduled", or the inconsistency flag).
    pub reason: String,
    pub bytes_compared: u64,
    pub bytes_differing: u64,
    pub first_difference: Option<u64>,
    pub repaired: bool,
}

/// One restored item: a VHDX (original or alternate place) or a guest volume copied to a
/// folder (item level).
#[derive(Clone, Debug)]
pub struct Restored {
    pub vm: usize,
    pub disk: usize,
    /// The restored guest volume (item level): its offset and length on the disk.
    pub part: Option<(u64, u64)>,
    pub volume: Volume,
    pub file: String,
}

/// The job's restore (R16).
#[derive(Clone, Debug)]
pub struct RestoreRecord {
    pub vm: usize,
    pub target: RestoreTarget,
    pub point: u32,
    pub items: Vec<Restored>,
    /// The VM's state after an original-place restore.
    pub power: Option<Power>,
    pub bytes_written: u64,
}
