//! Atomic file writes: the bytes go to a temporary file, are synced, and only then
//! renamed to their final name; the directory is synced after the rename. A reader sees
//! the old state or the new one, never a half-written file.
//!
//! Failures can be injected at a chosen write, so tests can show that nothing already in
//! the repository is lost when a write fails.
//!
//! Files are opened only when they are regular files: a FIFO would make the open wait for
//! a writer forever, a device can be endless, and a symbolic link can lead out of the
//! folder. Such a file is refused with a message naming it, without being opened.

use super::error::{io_at, Result};
use crate::storage::regular::{kind, not_regular};
use std::fs::{self, File, FileType, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where an injected failure strikes within one atomic write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    /// Before the temporary file is created.
    Start,
    /// After half of the bytes reached the temporary file.
    MidWrite,
    /// After the temporary file is complete and synced, before the rename.
    BeforeRename,
}

/// Makes the `nth` atomic write (counting from 0, over the repository handle's life) fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub nth_write: u64,
    pub at: FailAt,
}

/// Writes files atomically through a temporary directory on the same file system.
#[derive(Debug)]
pub(crate) struct AtomicWriter {
    tmp_dir: PathBuf,
    writes: u64,
    pub(crate) fault: Option<Fault>,
}

fn injected(path: &Path) -> super::RepoError {
    io_at(path, "writing (injected failure)")(io::Error::other("injected failure"))
}

impl AtomicWriter {
    pub(crate) fn new(tmp_dir: PathBuf) -> AtomicWriter {
        AtomicWriter {
            tmp_dir,
            writes: 0,
            fault: None,
        }
    }

    fn strikes(&self, at: FailAt) -> bool {
        self.fault
            == Some(Fault {
                nth_write: self.writes,
                at,
            })
    }

    /// Writes `data` as `dest`, replacing any file of that name. The caller syncs the
    /// directory of `dest` (see [`sync_dir`]) before relying on the name.
    pub(crate) fn write(&mut self, dest: &Path, data: &[u8]) -> Result<()> {
        let r = self.write_inner(dest, data);
        self.writes += 1;
        r
    }

    fn write_inner(&mut self, dest: &Path, data: &[u8]) -> Result<()> {
        if self.strikes(FailAt::Start) {
            return Err(injected(dest));
        }
        let tmp = self
            .tmp_dir
            .join(format!("{}-{}.tmp", std::process::id(), self.writes));
        let mut crashed = false;
        let result = (|| {
            let mut f = create_new(&tmp).map_err(io_at(&tmp, "creating a temporary file"))?;
            if self.strikes(FailAt::MidWrite) {
                let _ = f.write_all(&data[..data.len() / 2]);
                crashed = true;
                return Err(injected(&tmp));
            }
            f.write_all(data).map_err(io_at(&tmp, "writing"))?;
            f.sync_all().map_err(io_at(&tmp, "syncing"))?;
            if self.strikes(FailAt::BeforeRename) {
                crashed = true;
                return Err(injected(&tmp));
            }
            fs::rename(&tmp, dest).map_err(io_at(dest, "renaming a temporary file into place"))
        })();
        if result.is_err() && !crashed {
            // A failed write leaves nothing behind. An injected failure models a crash at
            // that instant and leaves its temporary file, as a crash would; `gc` removes
            // such leftovers.
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Syncs a directory, so that the names created or removed in it are durable (see
/// [`crate::storage::folder::sync`]).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    crate::storage::folder::sync(dir).map_err(io_at(dir, "syncing the directory"))
}

/// Creates a directory (and its parents) when missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_at(dir, "creating the directory"))
}

/// Creates a directory the repository made itself (a block fan-out, a disk's points)
/// when missing; one that is there must be a real directory, not a link leading writes
/// out of the repository.
pub(crate) fn ensure_own_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) => Err(io_at(dir, "using the directory")(not_regular_dir(
            &m.file_type(),
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => ensure_dir(dir),
        Err(e) => Err(io_at(dir, "using the directory")(e)),
    }
}

fn not_regular_dir(ft: &FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}, not a directory: refused", kind(ft)),
    )
}

/// True when `path` is a regular file, false when nothing has that name, an error for
/// anything else (the name itself: a link is not followed).
pub(crate) fn regular_or_absent(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(true),
        Ok(m) => Err(not_regular(&m.file_type())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// An error when `path` exists and leads (through links: a user's own path to an image
/// may be one) to anything but a regular file.
pub(crate) fn leads_to_regular(path: &Path) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(not_regular(&m.file_type())),
        _ => Ok(()),
    }
}

/// Opens `path` with `opts` only if it is a regular file (or, when `opts` creates, does
/// not exist yet). The type is checked before the open, and again on the open file:
/// O_NONBLOCK and O_NOFOLLOW keep a name swapped in between from blocking or leading
/// elsewhere.
pub(crate) fn open_regular_with(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    regular_or_absent(path)?;
    crate::storage::regular::open_regular_with(path, opts, false)
}

/// Opens an existing regular file for reading (see [`open_regular_with`]).
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    open_regular_with(path, OpenOptions::new().read(true))
}

/// Reads a whole regular file of at most `max` bytes (a link is not followed).
pub(crate) fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    regular_or_absent(path)?;
    crate::storage::regular::read_regular(path, max, false)
}

/// Creates a new file: never follows a symbolic link and never truncates a file already
/// there. A leftover of that name (an earlier run of the same process id, killed) is
/// removed first; removing a link removes the link, not what it points to.
fn create_new(path: &Path) -> io::Result<File> {
    let open = || {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        // Windows: CREATE_NEW fails on any existing name, a link included.
        #[cfg(unix)]
        opts.custom_flags(libc::O_NOFOLLOW);
        opts.open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open()
        }
        r => r,
    }
}
