//! The oracle: every write the guest completed, in order (I1); the images a backup must
//! reproduce are taken from it by the observer, at the instants storage fixed them (I2).

use super::image::SparseImage;

/// The kind of consistency point a change-tracking reference point was made at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Point {
    /// Writers quiesced and writes held: the VSS common point (application-consistent).
    Quiesce,
    /// File systems frozen by `hv_vss_daemon` (file-consistent, R5).
    Freeze,
    /// The instant a checkpoint or volume snapshot was taken without any quiescing
    /// (crash-consistent).
    Instant,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Point::Quiesce => "quiesce point",
            Point::Freeze => "file-system freeze",
            Point::Instant => "snapshot instant",
        }
    }
}

/// What one VM's disks must hold.
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    /// Per disk: the image after every completed write.
    pub live: Vec<SparseImage>,
    pub completed_writes: u64,
    /// A hash chain over every completed write (disk, offset, bytes), in order: the
    /// world digest of a trace step covers what was written, not only how much.
    pub history: [u8; 32],
    /// Keep `history` (only runs that record a trace need it: it costs a hash of every
    /// byte written).
    pub hash_writes: bool,
}

impl Oracle {
    pub fn new(disks: usize) -> Self {
        Oracle {
            live: vec![SparseImage::default(); disks],
            completed_writes: 0,
            history: [0; 32],
            hash_writes: false,
        }
    }

    pub fn completed(&mut self, disk: usize, offset: u64, data: &[u8]) {
        self.live[disk].write(offset, data);
        self.completed_writes += 1;
        if !self.hash_writes {
            return;
        }
        let mut h = blake3::Hasher::new();
        h.update(&self.history);
        h.update(&(disk as u64).to_le_bytes());
        h.update(&offset.to_le_bytes());
        h.update(data);
        self.history = *h.finalize().as_bytes();
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.completed_writes.to_le_bytes());
        h.update(&self.history);
    }
}
