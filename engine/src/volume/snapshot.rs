//! Volume snapshots: copy-on-write into a diff area. The first write after a snapshot to
//! a chunk of a file copies the chunk's old bytes into every snapshot that still reads
//! it from the live volume. A writable (auto-recover) snapshot keeps its own changes in
//! its diff area too, and they never reach the live volume.

use super::{FileSource, SparseFile, State, Volume, VolumeError};
use crate::storage::Storage;
use std::collections::BTreeMap;
use std::io;

/// Copy-on-write granularity (the system provider's 16 KiB).
pub const CHUNK: u64 = 16 * 1024;

pub type SnapshotId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// An auto-recover snapshot: writable until `make_read_only`.
    pub writable: bool,
    /// Diff area size; running out of it loses the snapshot (a typed fault).
    pub diff_area: u64,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            writable: false,
            diff_area: u64::MAX,
        }
    }
}

/// A file as the snapshot sees it.
#[derive(Debug, Default)]
struct SnapFile {
    len: u64,
    /// Old bytes of live chunks changed since the snapshot.
    preserved: BTreeMap<u64, Vec<u8>>,
    /// The snapshot's own changes (auto-recovery), whole chunks.
    changed: BTreeMap<u64, Vec<u8>>,
    /// Older bytes (live or preserved) past this offset read as zeros: the file's length
    /// at the snapshot instant, or less where the snapshot's own file was cut.
    cut: Option<u64>,
    /// The live file was deleted: chunks not preserved read zeros, never a new file
    /// of the same name.
    detached: bool,
}

#[derive(Debug)]
pub(crate) struct SnapState {
    files: BTreeMap<String, SnapFile>,
    opts: SnapshotOptions,
    writable: bool,
    used: u64,
    lost: bool,
}

fn chunks(start: u64, end: u64) -> std::ops::Range<u64> {
    if start >= end {
        return 0..0;
    }
    start / CHUNK..end.div_ceil(CHUNK)
}

impl SnapState {
    pub(crate) fn new(live: &BTreeMap<String, SparseFile>, opts: SnapshotOptions) -> SnapState {
        SnapState {
            files: live
                .iter()
                .map(|(n, d)| {
                    (
                        n.clone(),
                        SnapFile {
                            len: d.len(),
                            cut: Some(d.len()),
                            ..SnapFile::default()
                        },
                    )
                })
                .collect(),
            opts,
            writable: opts.writable,
            used: 0,
            lost: false,
        }
    }

    /// Takes diff area space, or loses the snapshot when there is none left.
    fn take(&mut self, bytes: u64) -> bool {
        if self.used.saturating_add(bytes) > self.opts.diff_area {
            self.lost = true;
            self.files.clear();
            return false;
        }
        self.used += bytes;
        true
    }

    /// The live file is about to be deleted: keep the chunks that hold data (holes read
    /// zeros anyway), then stop reading through to the live volume.
    pub(crate) fn detach(&mut self, name: &str, live: &SparseFile) {
        if self.lost {
            return;
        }
        let Some(f) = self.files.get(name).filter(|f| !f.detached) else {
            return;
        };
        let todo: Vec<u64> = live
            .written_chunks(0..f.len.div_ceil(CHUNK))
            .filter(|c| !f.preserved.contains_key(c) && !f.changed.contains_key(c))
            .collect();
        if !self.keep(name, live, todo) {
            return;
        }
        if let Some(f) = self.files.get_mut(name) {
            f.detached = true;
        }
    }

    /// Copies the live chunks `todo` into the diff area; false when the area ran out
    /// (the snapshot is then lost).
    fn keep(&mut self, name: &str, live: &SparseFile, todo: Vec<u64>) -> bool {
        for c in todo {
            if !self.take(CHUNK) {
                return false;
            }
            let old = live.chunk(c);
            if let Some(f) = self.files.get_mut(name) {
                f.preserved.insert(c, old);
            }
        }
        true
    }

    pub(crate) fn preserve(&mut self, name: &str, live: &SparseFile, start: u64, end: u64) {
        if self.lost {
            return;
        }
        let Some(f) = self.files.get(name) else {
            return;
        };
        if f.detached {
            // A new file of the same name: the snapshot never read through to it.
            return;
        }
        let todo: Vec<u64> = chunks(start, end.min(f.len))
            .filter(|c| !f.preserved.contains_key(c) && !f.changed.contains_key(c))
            .collect();
        self.keep(name, live, todo);
    }

    /// Reads `out.len()` bytes of the snapshot's view of chunk `c`, from `inc` in the
    /// chunk, straight into `out` (a read copies each byte once and allocates nothing).
    fn read_chunk(
        &self,
        f: &SnapFile,
        live: Option<&SparseFile>,
        c: u64,
        inc: usize,
        out: &mut [u8],
    ) {
        let live = live.filter(|_| !f.detached);
        let end = inc + out.len();
        if let Some(d) = f.changed.get(&c) {
            out.copy_from_slice(&d[inc..end]);
            return;
        }
        match (f.preserved.get(&c), live) {
            (Some(d), _) => out.copy_from_slice(&d[inc..end]),
            (None, Some(live)) => live.read_zero_extended(c * CHUNK + inc as u64, out),
            (None, None) => out.fill(0),
        }
        if let Some(cut) = f.cut {
            // Past the file's length at the snapshot instant, the snapshot reads zeros.
            let from = cut.saturating_sub(c * CHUNK).min(CHUNK) as usize;
            if from < end {
                out[from.saturating_sub(inc)..].fill(0);
            }
        }
    }

    /// The snapshot's view of chunk `c` of a file.
    fn chunk(&self, f: &SnapFile, live: Option<&SparseFile>, c: u64) -> Vec<u8> {
        let live = live.filter(|_| !f.detached);
        if let Some(d) = f.changed.get(&c) {
            return d.clone();
        }
        let mut out = match f.preserved.get(&c) {
            Some(d) => d.clone(),
            None => match live {
                Some(live) => live.chunk(c),
                None => vec![0u8; CHUNK as usize],
            },
        };
        if let Some(cut) = f.cut {
            let from = cut.saturating_sub(c * CHUNK).min(CHUNK) as usize;
            out[from..].fill(0);
        }
        out
    }
}

/// A handle on one snapshot of a volume.
#[derive(Debug, Clone)]
pub struct Snapshot {
    volume: Volume,
    id: SnapshotId,
}

impl Snapshot {
    pub(super) fn new(volume: Volume, id: SnapshotId) -> Snapshot {
        Snapshot { volume, id }
    }

    pub fn id(&self) -> SnapshotId {
        self.id
    }

    pub fn volume(&self) -> &Volume {
        &self.volume
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut State, SnapshotId) -> Result<T, VolumeError>,
    ) -> Result<T, VolumeError> {
        let mut st = self.volume.lock();
        let snap = st.snapshots.get(&self.id).ok_or(VolumeError::NoSnapshot {
            volume: st.name.clone(),
            id: self.id,
        })?;
        if snap.lost {
            return Err(VolumeError::DiffAreaExhausted {
                volume: st.name.clone(),
                id: self.id,
                limit: snap.opts.diff_area,
            });
        }
        f(&mut st, self.id)
    }

    /// Whether the snapshot is still usable (a typed fault once its diff area ran out).
    pub fn status(&self) -> Result<(), VolumeError> {
        self.with(|_, _| Ok(()))
    }

    /// Files the snapshot holds.
    pub fn list(&self) -> Result<Vec<String>, VolumeError> {
        self.with(|st, id| Ok(st.snapshots[&id].files.keys().cloned().collect()))
    }

    pub fn open(&self, name: &str) -> Result<SnapshotFile, VolumeError> {
        self.with(|st, id| {
            if !st.snapshots[&id].files.contains_key(name) {
                return Err(st.not_found(name));
            }
            Ok(SnapshotFile {
                snapshot: self.clone(),
                name: name.to_string(),
            })
        })
    }

    /// Ends the auto-recovery window: read-only from now on (PostFinalCommitSnapshots).
    pub fn make_read_only(&self) -> Result<(), VolumeError> {
        self.with(|st, id| {
            st.snapshots.get_mut(&id).expect("checked").writable = false;
            Ok(())
        })
    }

    pub fn is_writable(&self) -> Result<bool, VolumeError> {
        self.with(|st, id| Ok(st.snapshots[&id].writable))
    }

    /// Diff area bytes in use.
    pub fn diff_area_used(&self) -> Result<u64, VolumeError> {
        self.with(|st, id| Ok(st.snapshots[&id].used))
    }

    /// A copy of a file as the snapshot sees it.
    pub fn contents(&self, name: &str) -> Result<Vec<u8>, VolumeError> {
        let mut f = self.open(name)?;
        let len = f
            .len()
            .map_err(|_| self.status().err().unwrap_or_else(|| self.gone(name)))?;
        let mut b = vec![0u8; len as usize];
        f.read_at(&mut b, 0)
            .map_err(|_| self.status().err().unwrap_or_else(|| self.gone(name)))?;
        Ok(b)
    }

    fn gone(&self, name: &str) -> VolumeError {
        VolumeError::NotFound {
            volume: self.volume.name(),
            name: name.into(),
        }
    }
}

impl FileSource for Snapshot {
    fn open_file(&self, name: &str) -> Result<Box<dyn Storage>, VolumeError> {
        Ok(Box::new(self.open(name)?))
    }
}

/// A file of a snapshot; writable while the snapshot is (auto-recovery).
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    snapshot: Snapshot,
    name: String,
}

fn io_err(e: VolumeError) -> io::Error {
    let kind = match e {
        VolumeError::ReadOnlySnapshot { .. } => io::ErrorKind::PermissionDenied,
        VolumeError::NotFound { .. } | VolumeError::NoSnapshot { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

impl SnapshotFile {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut State, SnapshotId) -> Result<T, VolumeError>,
    ) -> io::Result<T> {
        let name = self.name.clone();
        self.snapshot
            .with(|st, id| {
                if !st.snapshots[&id].files.contains_key(&name) {
                    return Err(st.not_found(&name));
                }
                f(st, id)
            })
            .map_err(io_err)
    }
}

impl Storage for SnapshotFile {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let name = self.name.clone();
        self.with(|st, id| {
            let snap = &st.snapshots[&id];
            let f = &snap.files[&name];
            let end = offset + buf.len() as u64;
            if end > f.len {
                return Err(VolumeError::NotFound {
                    volume: st.name.clone(),
                    name: format!(
                        "{name} (read of {} bytes at {offset} past its end {})",
                        buf.len(),
                        f.len
                    ),
                });
            }
            let live = st.files.get(&name);
            for c in chunks(offset, end) {
                let s = (c * CHUNK).max(offset);
                let e = ((c + 1) * CHUNK).min(end);
                let out = &mut buf[(s - offset) as usize..(e - offset) as usize];
                snap.read_chunk(f, live, c, (s - c * CHUNK) as usize, out);
            }
            Ok(())
        })
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let name = self.name.clone();
        self.with(|st, id| {
            // Borrow the live files and the snapshot side by side: never copy a file.
            let State {
                name: vol,
                files,
                snapshots,
                ..
            } = st;
            let live = files.get(&name);
            let snap = snapshots.get_mut(&id).expect("checked");
            if !snap.writable {
                return Err(VolumeError::ReadOnlySnapshot {
                    volume: vol.clone(),
                    id,
                });
            }
            let end = offset + buf.len() as u64;
            for c in chunks(offset, end) {
                let f = &snap.files[&name];
                let mut data = snap.chunk(f, live, c);
                if !f.changed.contains_key(&c) && !snap.take(CHUNK) {
                    return Err(VolumeError::DiffAreaExhausted {
                        volume: vol.clone(),
                        id,
                        limit: snap.opts.diff_area,
                    });
                }
                let s = (c * CHUNK).max(offset);
                let e = ((c + 1) * CHUNK).min(end);
                data[(s - c * CHUNK) as usize..(e - c * CHUNK) as usize]
                    .copy_from_slice(&buf[(s - offset) as usize..(e - offset) as usize]);
                let f = snap.files.get_mut(&name).expect("checked");
                f.changed.insert(c, data);
                f.len = f.len.max(end);
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with(|_, _| Ok(()))
    }

    fn len(&self) -> io::Result<u64> {
        let name = self.name.clone();
        self.with(|st, id| Ok(st.snapshots[&id].files[&name].len))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let cur = self.len()?;
        if len > cur {
            // Extending writes zeros through the copy-on-write path.
            let zeros = vec![0u8; (len - cur).min(CHUNK) as usize];
            let mut at = cur;
            while at < len {
                let n = (len - at).min(zeros.len() as u64) as usize;
                self.write_at(&zeros[..n], at)?;
                at += n as u64;
            }
            return Ok(());
        }
        let name = self.name.clone();
        self.with(|st, id| {
            let vol = st.name.clone();
            let snap = st.snapshots.get_mut(&id).expect("checked");
            if !snap.writable {
                return Err(VolumeError::ReadOnlySnapshot { volume: vol, id });
            }
            let f = snap.files.get_mut(&name).expect("checked");
            f.len = len;
            f.cut = Some(f.cut.map_or(len, |c| c.min(len)));
            f.changed.retain(|&c, _| c * CHUNK < len);
            if let Some(d) = f.changed.get_mut(&(len / CHUNK)) {
                d[(len % CHUNK) as usize..].fill(0);
            }
            Ok(())
        })
    }
}
