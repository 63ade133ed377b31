//! A volume's files written through to a real folder as they change, so that other tools
//! (qemu-img, libvhdi, Hyper-V) can open what a simulation holds, during and after it.
//! The volume still serves reads and snapshots from memory; the folder holds the same
//! bytes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct Mirror {
    dir: PathBuf,
    open: BTreeMap<String, File>,
}

impl Mirror {
    /// Mirrors into `dir`, created when missing; it must hold none of the files the volume
    /// will create (a new file never replaces one on disk).
    pub(crate) fn new(dir: &Path) -> io::Result<Mirror> {
        std::fs::create_dir_all(dir)?;
        Ok(Mirror {
            dir: dir.to_path_buf(),
            open: BTreeMap::new(),
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
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(name)?)?;
        self.open.insert(name.to_string(), f);
        Ok(())
    }

    fn file(&self, name: &str) -> io::Result<&File> {
        self.open.get(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{name} is not mirrored"))
        })
    }

    pub(crate) fn write_at(&self, name: &str, data: &[u8], offset: u64) -> io::Result<()> {
        self.file(name)?.write_all_at(data, offset)
    }

    pub(crate) fn set_len(&self, name: &str, len: u64) -> io::Result<()> {
        self.file(name)?.set_len(len)
    }

    pub(crate) fn remove(&mut self, name: &str) -> io::Result<()> {
        self.open.remove(name);
        std::fs::remove_file(self.path(name)?)
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
