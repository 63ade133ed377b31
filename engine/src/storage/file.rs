use super::positioned::PositionedIo;
use super::Storage;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// A file on disk; `flush` is `fdatasync` unless the storage was made
/// [`unsynced`](FileStorage::unsynced).
///
/// Opened by path, it holds a lock for as long as it lives: exclusive when writable,
/// shared when read-only, so two processes never write one file at once and a reader never
/// sees another's write half done. A file locked against it fails to open at once with
/// `ErrorKind::WouldBlock`, naming the holder.
#[derive(Debug)]
pub struct FileStorage {
    file: File,
    writable: bool,
    sync: bool,
    /// Dropped after `file`, whose closing ends the lock.
    _lock: Option<super::lock::Held>,
}

impl FileStorage {
    /// Opens an existing regular file; a FIFO, device or directory is refused without
    /// waiting (see [`super::regular`]).
    pub fn open(path: &Path, writable: bool) -> io::Result<Self> {
        let file = super::regular::open_regular_with(
            path,
            OpenOptions::new().read(true).write(writable),
            true,
        )?;
        let lock = super::lock::try_lock(&file, writable)?;
        Ok(FileStorage {
            file,
            writable,
            sync: true,
            _lock: Some(lock),
        })
    }

    /// Creates a new file; fails if it exists, so nothing on disk is ever overwritten.
    pub fn create_new(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let lock = super::lock::try_lock(&file, true)?;
        Ok(FileStorage {
            file,
            writable: true,
            sync: true,
            _lock: Some(lock),
        })
    }

    /// An open file as it is: the caller owns any lock.
    pub fn from_file(file: File, writable: bool) -> Self {
        FileStorage {
            file,
            writable,
            sync: true,
            _lock: None,
        }
    }

    /// Flushes become no-ops: the operating system writes the data back when it likes,
    /// as `cp` and `qemu-img convert` leave it. For files that are useless after a crash
    /// anyway, such as the output of an import.
    pub fn unsynced(mut self) -> Self {
        self.sync = false;
        self
    }
}

impl Storage for FileStorage {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self.file.read_exact_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(super::eof(offset, buf.len(), self.len()?))
            }
            r => r,
        }
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.writable && self.sync {
            self.file.sync_data()
        } else {
            Ok(())
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// Past the end, the file is extended (a hole); inside it, a hole is punched where
    /// the file system can, and zeros are written where it cannot.
    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range past 2^64"))?;
        let cur = self.len()?;
        if offset < cur {
            let inside = end.min(cur) - offset;
            if !punch_hole(&self.file, offset, inside) {
                super::write_zero_bytes(self, offset, inside)?;
            }
        }
        if end > cur {
            self.file.set_len(end)?;
        }
        Ok(())
    }

    /// In the kernel where it can. A storage that is flushed (synced) starts writing the
    /// copy back at once, so the flush finds the disk mostly done.
    fn copy_in(&mut self, src: &File, src_off: u64, len: u64, offset: u64) -> io::Result<()> {
        super::copy::copy_range(src, src_off, &self.file, offset, len)?;
        if self.writable && self.sync {
            super::copy::start_writeback(&self.file, offset, len);
        }
        Ok(())
    }

    fn copy_out(&mut self, offset: u64, len: u64, dst: &File, dst_off: u64) -> io::Result<()> {
        match super::copy::copy_range(&self.file, offset, dst, dst_off, len) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(super::eof(offset, len as usize, self.len()?))
            }
            r => r,
        }
    }
}

/// Deallocates a range so that it reads zeros (the size stays); false where the system or
/// the file system cannot, and the caller writes zeros instead.
#[cfg(target_os = "linux")]
fn punch_hole(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return false;
    };
    // SAFETY: fallocate on an open descriptor of ours; it reads no memory of ours.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            n,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn punch_hole(_file: &File, _offset: u64, _len: u64) -> bool {
    false
}
