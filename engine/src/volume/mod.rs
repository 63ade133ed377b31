//! Volumes: named files (VHDX, AVHDX, configuration, saved state) with a capacity, so
//! that free space is a real limit (R8). In memory; a file is a `Storage`.

use crate::storage::Storage;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VolumeError {
    #[error("{volume}: file {name} already exists")]
    Exists { volume: String, name: String },
    #[error("{volume}: no file {name}")]
    NotFound { volume: String, name: String },
}

#[derive(Debug)]
struct State {
    name: String,
    capacity: u64,
    used: u64,
    files: BTreeMap<String, Vec<u8>>,
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
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    pub fn capacity(&self) -> u64 {
        self.lock().capacity
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
        self.lock().files.get(name).map(|f| f.len() as u64)
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
        st.files.insert(name.to_string(), Vec::new());
        Ok(VolumeFile {
            volume: self.clone(),
            name: name.to_string(),
        })
    }

    pub fn open(&self, name: &str) -> Result<VolumeFile, VolumeError> {
        let st = self.lock();
        if !st.files.contains_key(name) {
            return Err(VolumeError::NotFound {
                volume: st.name.clone(),
                name: name.into(),
            });
        }
        Ok(VolumeFile {
            volume: self.clone(),
            name: name.to_string(),
        })
    }

    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let mut st = self.lock();
        let f = st.files.remove(name).ok_or_else(|| VolumeError::NotFound {
            volume: st.name.clone(),
            name: name.into(),
        })?;
        st.used -= f.len() as u64;
        Ok(())
    }

    /// A copy of a file's bytes (for checks and for copying out).
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).cloned()
    }
}

/// An open file on a volume. Growing it takes free space; when there is none, the write
/// fails with `StorageFull` and nothing changes.
#[derive(Debug, Clone)]
pub struct VolumeFile {
    volume: Volume,
    name: String,
}

impl VolumeFile {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn with<T>(&self, f: impl FnOnce(&mut State, &str) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.volume.lock();
        if !st.files.contains_key(&self.name) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} was removed", self.name),
            ));
        }
        f(&mut st, &self.name)
    }
}

fn grow(st: &mut State, name: &str, new_len: u64) -> io::Result<()> {
    let cur = st.files[name].len() as u64;
    if new_len <= cur {
        return Ok(());
    }
    let more = new_len - cur;
    if st.used + more > st.capacity {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "volume {} is full: {name} needs {more} more bytes, {} free",
                st.name,
                st.capacity - st.used
            ),
        ));
    }
    st.used += more;
    st.files
        .get_mut(name)
        .expect("checked")
        .resize(new_len as usize, 0);
    Ok(())
}

impl Storage for VolumeFile {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|st, name| {
            let f = &st.files[name];
            let end = offset
                .checked_add(buf.len() as u64)
                .filter(|&e| e <= f.len() as u64)
                .ok_or_else(|| crate::storage::eof(offset, buf.len(), f.len() as u64))?;
            buf.copy_from_slice(&f[offset as usize..end as usize]);
            Ok(())
        })
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|st, name| {
            let end = offset
                .checked_add(buf.len() as u64)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
            grow(st, name, end)?;
            st.files.get_mut(name).expect("checked")[offset as usize..end as usize]
                .copy_from_slice(buf);
            Ok(())
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with(|_, _| Ok(()))
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|st, name| Ok(st.files[name].len() as u64))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with(|st, name| {
            let cur = st.files[name].len() as u64;
            if len > cur {
                grow(st, name, len)
            } else {
                st.used -= cur - len;
                st.files
                    .get_mut(name)
                    .expect("checked")
                    .truncate(len as usize);
                Ok(())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_a_real_limit() {
        let v = Volume::new("C:", 100);
        let mut a = v.create("a").unwrap();
        a.write_at(&[1; 60], 0).unwrap();
        let mut b = v.create("b").unwrap();
        let e = b.write_at(&[2; 50], 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(b.len().unwrap(), 0, "a refused write changes nothing");
        b.write_at(&[2; 40], 0).unwrap();
        assert_eq!(v.free(), 0);
        v.remove("a").unwrap();
        assert_eq!(v.free(), 60);
        assert!(
            a.len().is_err(),
            "a removed file is gone for its handles too"
        );
        assert_eq!(
            v.create("b").unwrap_err(),
            VolumeError::Exists {
                volume: "C:".into(),
                name: "b".into()
            }
        );
    }
}
