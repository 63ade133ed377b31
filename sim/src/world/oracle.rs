//! The oracle: every write the guest completed, in order, and the images at the points a
//! backup must reproduce (I1, I2).

use std::collections::BTreeMap;

use super::image::SparseImage;

/// A point in the run whose disk image a backup must hold.
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
    /// Images captured at points, per disk; the last capture of a kind wins.
    pub points: Vec<(Point, Vec<SparseImage>)>,
    /// Per recovery point (R18, 1-based): the image its backup must hold, kept when the
    /// point is made (a later capture of the same kind does not replace it).
    pub kept: BTreeMap<u32, (Point, Vec<SparseImage>)>,
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
            points: Vec::new(),
            kept: BTreeMap::new(),
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

    /// Captures the current images as `point`.
    pub fn capture(&mut self, point: Point) {
        self.points.retain(|(p, _)| *p != point);
        self.points.push((point, self.live.clone()));
    }

    pub fn at(&self, point: Point) -> Option<&[SparseImage]> {
        self.points
            .iter()
            .find(|(p, _)| *p == point)
            .map(|(_, imgs)| &imgs[..])
    }

    /// Keeps the last capture of `point` as what recovery point `n` must hold.
    pub fn keep(&mut self, n: u32, point: Point) -> bool {
        match self.at(point) {
            Some(imgs) => {
                let imgs = imgs.to_vec();
                self.kept.insert(n, (point, imgs));
                true
            }
            None => false,
        }
    }

    /// The image recovery point `n` must hold.
    pub fn kept(&self, n: u32) -> Option<(Point, &[SparseImage])> {
        self.kept.get(&n).map(|(p, imgs)| (*p, &imgs[..]))
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.completed_writes.to_le_bytes());
        h.update(&self.history);
        for (p, _) in &self.points {
            h.update(p.name().as_bytes());
        }
    }
}
