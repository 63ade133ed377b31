//! Recovery points (R18): the figures of each point attempted, and the ranges it left out.

use std::collections::BTreeMap;

use super::transfer::Transfer;

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
