//! The side file next to the disk, and the clean/dirty protocol around it.
//!
//! Hyper-V keeps two files per disk, `<disk>.rct` (the resilient bitmap, written lazily)
//! and `<disk>.mrt` (a write-ahead table of modified regions). This model keeps one,
//! `<disk>.rct` next to the disk (`disk.vhdx` -> `disk.vhdx.rct`, as Hyper-V names it),
//! and replaces the write-ahead table by a clean flag:
//!
//! - open: the file is read and checked, then its header is rewritten as dirty and
//!   flushed, before the tracker (and so any tracked write) is handed out;
//! - clean close: the body is written and flushed, then the header, clean, and flushed;
//! - anything else (a crash, a drop without close, a torn close) leaves the header dirty
//!   or damaged, and the next open resets the tracking: queries answer
//!   [`RctError::ConsistencyCheckRequired`] until a new baseline reference point.
//!
//! The file format is in [`format`](super::format).

use super::format::{self, Header, HEADER_SIZE, MAX_STORED_REFS};
use super::{ChangeTracker, DiskIdentity, RctError, RctOptions};
use crate::ids::GuidGen;
use crate::storage::{FileStorage, Storage};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The storage of a persisted tracker.
pub(crate) struct SideFile {
    storage: Box<dyn Storage>,
}

impl fmt::Debug for SideFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SideFile")
    }
}

/// Where the tracking file of the disk at `disk` lives: `disk.vhdx` -> `disk.vhdx.rct`.
pub fn side_file_path(disk: &Path) -> PathBuf {
    let mut name = disk.as_os_str().to_owned();
    name.push(".rct");
    PathBuf::from(name)
}

/// Opens the tracking file of the disk at `disk`, creating it (empty) when missing.
pub fn open_side_file(disk: &Path) -> Result<FileStorage, RctError> {
    let path = side_file_path(disk);
    match FileStorage::open(&path, true) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => FileStorage::create_new(&path),
        r => r,
    }
    .map_err(RctError::io(format!("opening {}", path.display())))
}

impl ChangeTracker {
    /// Opens (or starts, when `side` is empty) the persisted tracking of the disk that is
    /// `identity` now. The side file is marked dirty and flushed before this returns.
    ///
    /// A file that was not closed cleanly, is damaged, was made with another granularity,
    /// or recorded another identity gives a tracker that is reset and invalid (see
    /// [`invalid_reason`](Self::invalid_reason)). Only I/O errors are errors.
    pub fn open(
        mut side: Box<dyn Storage>,
        identity: &DiskIdentity,
        opts: &RctOptions,
        guids: GuidGen,
    ) -> Result<ChangeTracker, RctError> {
        let mut t = ChangeTracker::new(identity.virtual_size, opts, guids)?;
        let len = side
            .len()
            .map_err(RctError::io("reading the tracking file's length"))?;
        if len != 0 {
            if let Err(reason) = t.load(&mut *side, len, identity)? {
                t.reset(reason);
            }
        }
        let dirty = t.header(identity, false, 0, 0).encode();
        side.write_at(&dirty, 0)
            .and_then(|()| side.flush())
            .map_err(RctError::io("marking the tracking file in use"))?;
        t.side = Some(SideFile { storage: side });
        Ok(t)
    }

    fn header(&self, identity: &DiskIdentity, clean: bool, body_len: u64, body_crc: u32) -> Header {
        Header {
            clean,
            granularity: self.granularity(),
            identity: *identity,
            tracking_id: self.tracking_id,
            epoch: self.epoch,
            ref_count: self.live.len() as u32,
            granule_count: self.stamps.len() as u64,
            body_len,
            body_crc,
        }
    }

    /// Reads a side file of `len` bytes into this fresh tracker. The inner error is the
    /// reason the file cannot be trusted; the outer one an I/O failure.
    fn load(
        &mut self,
        side: &mut dyn Storage,
        len: u64,
        identity: &DiskIdentity,
    ) -> Result<Result<(), String>, RctError> {
        let damaged = |what: String| Ok(Err(format!("the tracking file is damaged: {what}")));
        if len < HEADER_SIZE as u64 {
            return damaged(format!("{len} bytes, shorter than its header"));
        }
        let mut hb = [0u8; HEADER_SIZE];
        side.read_at(&mut hb, 0)
            .map_err(RctError::io("reading the tracking file's header"))?;
        let h = match Header::decode(&hb) {
            Ok(h) => h,
            Err(why) => return damaged(why),
        };
        if !h.clean {
            return Ok(Err(
                "the disk was not closed cleanly (unclean shutdown): the tracking file is still marked in use".into(),
            ));
        }
        if h.granularity != self.granularity() {
            return Ok(Err(format!(
                "the tracking granularity changed from {} to {} bytes",
                h.granularity,
                self.granularity()
            )));
        }
        if let Some(why) = ChangeTracker::identity_mismatch(&h.identity, identity) {
            return Ok(Err(why));
        }
        let granules = self.stamps.len() as u64;
        if h.granule_count != granules
            || h.ref_count > MAX_STORED_REFS
            || h.body_len != 4 * (u64::from(h.ref_count) + granules)
        {
            return damaged("the header's counts do not fit the disk".into());
        }
        let end = HEADER_SIZE as u64 + h.body_len;
        if len < end {
            return damaged(format!("{len} bytes, {end} expected"));
        }
        let mut body = vec![0u8; h.body_len as usize];
        side.read_at(&mut body, HEADER_SIZE as u64)
            .map_err(RctError::io("reading the tracking file's body"))?;
        let crc = crc32c::crc32c(&body);
        if crc != h.body_crc {
            return damaged(format!(
                "body checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                h.body_crc
            ));
        }
        let (refs, stamps) = format::decode_body(&body, h.ref_count as usize);
        let ascending = refs.windows(2).all(|w| w[0] < w[1]);
        let in_range = refs.iter().all(|&r| r >= 1 && r < h.epoch);
        if h.epoch == 0 || !ascending || !in_range || stamps.iter().any(|&s| s > h.epoch) {
            return damaged("reference point numbers or stamps out of order".into());
        }
        self.tracking_id = h.tracking_id;
        self.epoch = h.epoch;
        self.stamps = stamps;
        self.live = refs.into();
        while self.live.len() > self.max_refs {
            self.live.pop_front();
        }
        Ok(Ok(()))
    }

    /// Closes cleanly: writes the state, then marks the file clean, for the disk that is
    /// `identity` now (after its last write). Without a side file this does nothing.
    pub fn close(mut self, identity: &DiskIdentity) -> Result<(), RctError> {
        let Some(mut side) = self.side.take() else {
            return Ok(());
        };
        let body = format::encode_body(&self.live, &self.stamps);
        let crc = crc32c::crc32c(&body);
        let s = &mut side.storage;
        s.write_at(&body, HEADER_SIZE as u64)
            .and_then(|()| s.set_len((HEADER_SIZE + body.len()) as u64))
            .and_then(|()| s.flush())
            .map_err(RctError::io("writing the tracking state"))?;
        let clean = self.header(identity, true, body.len() as u64, crc).encode();
        s.write_at(&clean, 0)
            .and_then(|()| s.flush())
            .map_err(RctError::io("marking the tracking file closed"))
    }
}
