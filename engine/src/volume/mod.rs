//! Volumes: named files (VHDX, AVHDX, configuration, saved state) with a capacity, so
//! that free space is a real limit (R8), and volume snapshots as a system software
//! provider makes them (copy-on-write into a diff area). In memory.

mod file;
mod mirror;
mod snapshot;
mod sparse;

pub use file::VolumeFile;
pub use mirror::HostIoError;
pub use snapshot::{Snapshot, SnapshotFile, SnapshotId, SnapshotOptions};
pub use sparse::SparseFile;

use crate::storage::Storage;
use snapshot::SnapState;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VolumeError {
    #[error("{volume}: file {name} already exists")]
    Exists { volume: String, name: String },
    #[error("{volume}: no file {name}")]
    NotFound { volume: String, name: String },
    #[error("{volume}: no snapshot {id}")]
    NoSnapshot { volume: String, id: SnapshotId },
    #[error("{volume}: snapshot {id} was lost: its diff area ({limit} bytes) is exhausted")]
    DiffAreaExhausted {
        volume: String,
        id: SnapshotId,
        limit: u64,
    },
    #[error("{volume}: snapshot {id} is read-only")]
    ReadOnlySnapshot { volume: String, id: SnapshotId },
    #[error("{volume}: its folder on disk: {detail}")]
    Mirror { volume: String, detail: String },
}

/// Where an image's files come from: a live volume or a snapshot of one.
pub trait FileSource {
    fn open_file(&self, name: &str) -> Result<Box<dyn Storage>, VolumeError>;
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) name: String,
    capacity: u64,
    used: u64,
    pub(crate) files: BTreeMap<String, SparseFile>,
    pub(crate) snapshots: BTreeMap<SnapshotId, SnapState>,
    next_snapshot: SnapshotId,
    exposures: BTreeMap<String, SnapshotId>,
    /// The folder the files are written through to, if any.
    pub(crate) mirror: Option<mirror::Mirror>,
}

/// A volume; clones share it.
#[derive(Debug, Clone)]
pub struct Volume {
    state: Arc<Mutex<State>>,
}

impl Volume {
    pub fn new(name: &str, capacity: u64) -> Volume {
        Volume {
            state: Arc::new(Mutex::new(State {
                name: name.to_string(),
                capacity,
                used: 0,
                files: BTreeMap::new(),
                snapshots: BTreeMap::new(),
                next_snapshot: 1,
                exposures: BTreeMap::new(),
                mirror: None,
            })),
        }
    }

    /// A volume whose files are also written through to `dir` as they change (created
    /// when missing; it must not hold the files the volume will create).
    pub fn new_on_disk(
        name: &str,
        capacity: u64,
        dir: &std::path::Path,
    ) -> std::io::Result<Volume> {
        let v = Volume::new(name, capacity);
        v.lock().mirror = Some(mirror::Mirror::new(dir)?);
        Ok(v)
    }

    /// The first I/O error of this machine in the volume's folder on disk (see
    /// [`HostIoError`]); a run that meets one is an error, whatever the simulation made
    /// of it.
    pub fn host_io_error(&self) -> Option<String> {
        let st = self.lock();
        st.mirror.as_ref()?.failure().map(str::to_string)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    pub fn capacity(&self) -> u64 {
        self.lock().capacity
    }

    /// Changes the capacity (a volume filling up from outside, R8 faults). Files keep
    /// what they hold; new growth fails once nothing is free.
    pub fn set_capacity(&self, capacity: u64) {
        let mut st = self.lock();
        st.capacity = capacity.max(st.used);
    }

    /// Bytes not taken by any file.
    pub fn free(&self) -> u64 {
        let st = self.lock();
        st.capacity - st.used
    }

    pub fn exists(&self, name: &str) -> bool {
        self.lock().files.contains_key(name)
    }

    /// File names in order.
    pub fn list(&self) -> Vec<String> {
        self.lock().files.keys().cloned().collect()
    }

    pub fn file_len(&self, name: &str) -> Option<u64> {
        self.lock().files.get(name).map(SparseFile::len)
    }

    /// A new, empty file.
    pub fn create(&self, name: &str) -> Result<VolumeFile, VolumeError> {
        let mut st = self.lock();
        if st.files.contains_key(name) {
            return Err(VolumeError::Exists {
                volume: st.name.clone(),
                name: name.into(),
            });
        }
        if let Some(m) = st.mirror.as_mut() {
            if let Err(e) = m.create(name) {
                return Err(VolumeError::Mirror {
                    volume: st.name.clone(),
                    detail: e.to_string(),
                });
            }
        }
        st.files.insert(name.to_string(), SparseFile::default());
        Ok(VolumeFile::new(self.clone(), name))
    }

    pub fn open(&self, name: &str) -> Result<VolumeFile, VolumeError> {
        let st = self.lock();
        if !st.files.contains_key(name) {
            return Err(st.not_found(name));
        }
        Ok(VolumeFile::new(self.clone(), name))
    }

    /// Deletes a file; snapshots keep what it held.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let mut st = self.lock();
        if !st.files.contains_key(name) {
            return Err(st.not_found(name));
        }
        let State {
            files, snapshots, ..
        } = &mut *st;
        let live = &files[name];
        for snap in snapshots.values_mut() {
            snap.detach(name, live);
        }
        if let Some(m) = st.mirror.as_mut() {
            if let Err(e) = m.remove(name) {
                return Err(VolumeError::Mirror {
                    volume: st.name.clone(),
                    detail: e.to_string(),
                });
            }
        }
        let f = st.files.remove(name).expect("checked");
        st.used -= f.len();
        Ok(())
    }

    /// A copy of a file's bytes (for checks and for copying out).
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(SparseFile::to_vec)
    }

    /// Takes a snapshot of every file on the volume.
    pub fn create_snapshot(&self, opts: SnapshotOptions) -> Snapshot {
        let mut st = self.lock();
        let id = st.next_snapshot;
        st.next_snapshot += 1;
        let state = SnapState::new(&st.files, opts);
        st.snapshots.insert(id, state);
        Snapshot::new(self.clone(), id)
    }

    pub fn snapshot(&self, id: SnapshotId) -> Result<Snapshot, VolumeError> {
        let st = self.lock();
        if !st.snapshots.contains_key(&id) {
            return Err(VolumeError::NoSnapshot {
                volume: st.name.clone(),
                id,
            });
        }
        Ok(Snapshot::new(self.clone(), id))
    }

    /// The newest snapshot (ids grow): a cheap way to see that one was made.
    pub fn last_snapshot(&self) -> Option<SnapshotId> {
        self.lock().snapshots.keys().next_back().copied()
    }

    pub fn snapshots(&self) -> Vec<SnapshotId> {
        self.lock().snapshots.keys().copied().collect()
    }

    /// Deletes a snapshot, its diff area and its exposures.
    pub fn delete_snapshot(&self, id: SnapshotId) -> Result<(), VolumeError> {
        let mut st = self.lock();
        if st.snapshots.remove(&id).is_none() {
            return Err(VolumeError::NoSnapshot {
                volume: st.name.clone(),
                id,
            });
        }
        st.exposures.retain(|_, s| *s != id);
        Ok(())
    }

    /// Exposes a snapshot at a mount path or as a share name (F3.5, F4.6).
    pub fn expose_snapshot(&self, id: SnapshotId, name: &str) -> Result<(), VolumeError> {
        let mut st = self.lock();
        if !st.snapshots.contains_key(&id) {
            return Err(VolumeError::NoSnapshot {
                volume: st.name.clone(),
                id,
            });
        }
        st.exposures.insert(name.to_string(), id);
        Ok(())
    }

    /// The snapshot exposed under `name`.
    pub fn exposed(&self, name: &str) -> Option<Snapshot> {
        let id = *self.lock().exposures.get(name)?;
        Some(Snapshot::new(self.clone(), id))
    }
}

impl FileSource for Volume {
    fn open_file(&self, name: &str) -> Result<Box<dyn Storage>, VolumeError> {
        Ok(Box::new(self.open(name)?))
    }
}

impl State {
    pub(crate) fn not_found(&self, name: &str) -> VolumeError {
        VolumeError::NotFound {
            volume: self.name.clone(),
            name: name.into(),
        }
    }

    /// Before bytes `[start, end)` of a live file change: every snapshot that still reads
    /// them from the live file copies them into its diff area first.
    pub(crate) fn preserve(&mut self, name: &str, start: u64, end: u64) {
        let Some(live) = self.files.get(name) else {
            return;
        };
        for snap in self.snapshots.values_mut() {
            snap.preserve(name, live, start, end);
        }
    }

    /// Grows a live file, taking free space; refuses when there is none.
    pub(crate) fn grow(&mut self, name: &str, new_len: u64) -> std::io::Result<()> {
        let cur = self.files[name].len();
        if new_len <= cur {
            return Ok(());
        }
        let more = new_len - cur;
        if self.used + more > self.capacity {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "volume {} is full: {name} needs {more} more bytes, {} free",
                    self.name,
                    self.capacity - self.used
                ),
            ));
        }
        if let Some(m) = &self.mirror {
            m.set_len(name, new_len)?;
        }
        self.used += more;
        self.files.get_mut(name).expect("checked").set_len(new_len);
        Ok(())
    }

    pub(crate) fn shrink(&mut self, name: &str, len: u64) -> std::io::Result<()> {
        let cur = self.files[name].len();
        if len < cur {
            if let Some(m) = &self.mirror {
                m.set_len(name, len)?;
            }
            self.preserve(name, len, cur);
            self.used -= cur - len;
            self.files.get_mut(name).expect("checked").set_len(len);
        }
        Ok(())
    }
}
