//! An open file on a live volume.

use super::{State, Volume};
use crate::storage::Storage;
use std::io;

/// Growing the file takes free space; when there is none, the write fails with
/// `StorageFull` and nothing changes. Changes are copied on write into every snapshot.
#[derive(Debug, Clone)]
pub struct VolumeFile {
    volume: Volume,
    name: String,
}

impl VolumeFile {
    pub(super) fn new(volume: Volume, name: &str) -> Self {
        VolumeFile {
            volume,
            name: name.to_string(),
        }
    }

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

impl Storage for VolumeFile {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|st, name| {
            let f = &st.files[name];
            offset
                .checked_add(buf.len() as u64)
                .filter(|&e| e <= f.len())
                .ok_or_else(|| crate::storage::eof(offset, buf.len(), f.len()))?;
            f.read(offset, buf);
            Ok(())
        })
    }

    fn stored_extents(&self, offset: u64, len: u64, out: &mut Vec<(u64, u64)>) {
        let found = self.with(|st, name| {
            st.files[name].stored_extents(offset, len, out);
            Ok(())
        });
        if found.is_err() && len > 0 {
            // A removed file: claim the whole range, the read will say what is wrong.
            out.push((offset, len));
        }
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|st, name| {
            let end = offset
                .checked_add(buf.len() as u64)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past 2^64"))?;
            st.grow(name, end)?;
            if let Some(m) = &st.mirror {
                m.write_at(name, buf, offset)?;
            }
            st.preserve(name, offset, end);
            st.files.get_mut(name).expect("checked").write(offset, buf);
            Ok(())
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.with(|_, _| Ok(()))
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|st, name| Ok(st.files[name].len()))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with(|st, name| {
            let cur = st.files[name].len();
            if len > cur {
                st.grow(name, len)
            } else {
                st.shrink(name, len)
            }
        })
    }
}
