//! The oracle: every write the guest completed, in order (I1); the images a backup must
//! reproduce are taken from it by the observer, at the instants storage fixed them (I2).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use super::image::{Page, SparseImage, PAGE};

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
    /// The application's open transaction, as the oracle saw it written: per (disk,
    /// page index), the page's bytes before the transaction's first write to it (None:
    /// zeros).
    open: BTreeMap<(usize, u64), Option<Page>>,
}

impl Oracle {
    pub fn new(disks: usize) -> Self {
        Oracle {
            live: vec![SparseImage::default(); disks],
            completed_writes: 0,
            history: [0; 32],
            hash_writes: false,
            open: BTreeMap::new(),
        }
    }

    /// The application's open transaction is about to write `[offset, offset + len)`.
    pub fn transaction_write(&mut self, disk: usize, offset: u64, len: u64) {
        for idx in offset / PAGE..(offset + len).div_ceil(PAGE) {
            // The first write of the transaction to a page keeps what it held.
            if let Entry::Vacant(e) = self.open.entry((disk, idx)) {
                e.insert(self.live[disk].shared_page(idx));
            }
        }
    }

    /// The open transaction committed.
    pub fn commit(&mut self) {
        self.open.clear();
    }

    /// Per disk: the image after every completed write, with the open transaction
    /// undone, as the guest's writers recover it in an auto-recoverable snapshot
    /// (F2.10): the quiesce image after the writers' recovery.
    pub fn recovered(&self) -> Vec<SparseImage> {
        let mut images = self.live.clone();
        for (&(disk, idx), before) in &self.open {
            images[disk].put_page(idx, before.clone());
        }
        images
    }

    /// A completed write: the image keeps `data` itself.
    pub fn completed(&mut self, disk: usize, offset: u64, data: Vec<u8>) {
        self.completed_writes += 1;
        if self.hash_writes {
            let mut h = blake3::Hasher::new();
            h.update(&self.history);
            h.update(&(disk as u64).to_le_bytes());
            h.update(&offset.to_le_bytes());
            h.update(&data);
            self.history = *h.finalize().as_bytes();
        }
        self.live[disk].write_owned(offset, data);
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.completed_writes.to_le_bytes());
        h.update(&self.history);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(b: u8) -> Vec<u8> {
        vec![b; PAGE as usize]
    }

    #[test]
    fn recovered_undoes_the_open_transaction_only() {
        let mut o = Oracle::new(1);
        o.completed(0, 0, page(1));
        // A committed transaction stays.
        o.transaction_write(0, PAGE, PAGE);
        o.completed(0, PAGE, page(2));
        o.commit();
        // The open one overwrites page 0, writes page 1 twice and page 2 fresh.
        o.transaction_write(0, 0, 2 * PAGE);
        o.completed(0, 0, [page(3), page(3)].concat());
        o.transaction_write(0, PAGE, 2 * PAGE);
        o.completed(0, PAGE, [page(4), page(4)].concat());
        let r = o.recovered();
        assert_eq!(r[0].page(0), Some(&page(1)[..]));
        assert_eq!(r[0].page(1), Some(&page(2)[..]), "first before-image wins");
        assert_eq!(r[0].page(2), None, "a fresh page is zeros again");
        assert_eq!(
            o.live[0].page(2),
            Some(&page(4)[..]),
            "live keeps the writes"
        );
        o.commit();
        assert_eq!(o.recovered(), o.live);
    }
}
