//! A volume's files written through to a real folder as they change, so that other tools
//! (qemu-img, libvhdi, Hyper-V) can open what a simulation holds, during and after it.
//! The volume still serves reads and snapshots from memory; the folder holds the same
//! bytes.

use crate::storage::positioned::PositionedIo;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A failure of this machine's file system under the folder. It is never a simulated
/// outcome: its kind is `Other` even for ENOSPC, so the engine does not take it for the
/// volume's own capacity running out, and the volume keeps the first one for the run
/// to report.
#[derive(Debug, thiserror::Error)]
#[error("I/O error of this machine: {0}")]
pub struct HostIoError(pub String);

#[derive(Debug)]
pub(crate) struct Mirror {
    dir: PathBuf,
    open: BTreeMap<String, File>,
    /// The first host I/O error, as "<file>: <cause>".
    failure: OnceLock<String>,
}

impl Mirror {
    /// Mirrors into `dir`, created when missing; it must hold none of the files the volume
    /// will create (a new file never replaces one on disk).
    pub(crate) fn new(dir: &Path) -> io::Result<Mirror> {
        std::fs::create_dir_all(dir)?;
        Ok(Mirror {
            dir: dir.to_path_buf(),
            open: BTreeMap::new(),
            failure: OnceLock::new(),
        })
    }

    /// The first host I/O error of this folder, if any.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Keeps the first failure and returns it as a [`HostIoError`]: "<doing> <file>: <cause>".
    fn host<T>(&self, doing: &str, name: &str, r: io::Result<T>) -> io::Result<T> {
        r.map_err(|e| {
            let what = format!("{doing} {}: {e}", self.dir.join(name).display());
            let _ = self.failure.set(what.clone());
            io::Error::other(HostIoError(what))
        })
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        // Volume file names are plain names; anything that would leave the folder is
        // refused.
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a plain file name"),
            ));
        }
        Ok(self.dir.join(name))
    }

    pub(crate) fn create(&mut self, name: &str) -> io::Result<()> {
        let path = self.path(name)?;
        let r = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path);
        let f = self.host("creating", name, r)?;
        self.open.insert(name.to_string(), f);
        Ok(())
    }

    fn file(&self, name: &str) -> io::Result<&File> {
        self.open.get(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{name} is not mirrored"))
        })
    }

    pub(crate) fn write_at(&self, name: &str, data: &[u8], offset: u64) -> io::Result<()> {
        self.host("writing", name, self.file(name)?.write_all_at(data, offset))
    }

    pub(crate) fn set_len(&self, name: &str, len: u64) -> io::Result<()> {
        self.host("resizing", name, self.file(name)?.set_len(len))
    }

    pub(crate) fn remove(&mut self, name: &str) -> io::Result<()> {
        self.open.remove(name);
        let path = self.path(name)?;
        self.host("removing", name, std::fs::remove_file(path))
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::Storage;
    use crate::volume::{Volume, VolumeError};

    #[test]
    fn files_are_written_through_and_never_outside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volume::new_on_disk("D:", 1 << 30, dir.path()).unwrap();
        let mut f = v.create("a.vhdx").unwrap();
        f.write_at(b"hello", 4096).unwrap();
        f.set_len(8192).unwrap();
        let on_disk = std::fs::read(dir.path().join("a.vhdx")).unwrap();
        assert_eq!(on_disk.len(), 8192);
        assert_eq!(&on_disk[4096..4101], b"hello");
        assert_eq!(on_disk, v.contents("a.vhdx").unwrap());
        for bad in ["../escape", "sub/file", ".."] {
            assert!(
                matches!(v.create(bad), Err(VolumeError::Mirror { .. })),
                "{bad} was accepted"
            );
        }
        assert!(!dir.path().parent().unwrap().join("escape").exists());
        v.remove("a.vhdx").unwrap();
        assert!(!dir.path().join("a.vhdx").exists());
    }
}
