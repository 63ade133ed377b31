//! Opening only regular files. A FIFO makes an open wait for a writer forever, a device
//! can be endless, a directory is no image: each is refused with a message naming what it
//! is, and the open itself never waits (O_NONBLOCK; the type is checked on the open file,
//! so a name swapped in between changes nothing). On Windows an open never waits for a
//! writer, and a link not to be followed is opened as itself (FILE_FLAG_OPEN_REPARSE_POINT)
//! and refused by its type.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
#[cfg(unix)]
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
#[cfg(windows)]
use std::os::windows::fs::OpenOptionsExt;

/// What a file that is not a regular file is, in words.
pub(crate) fn kind(ft: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// The error for a file of type `ft` where a regular file is needed.
pub(crate) fn not_regular(ft: &FileType) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}, not a regular file: refused", kind(ft)),
    )
}

/// Opens `path` with `opts` without ever waiting in the open, and only if it is a regular
/// file; a symbolic link is followed only when `follow_links` (a user's own path to an
/// image may be one; a name inside a repository may not).
pub fn open_regular_with(
    path: &std::path::Path,
    opts: &mut OpenOptions,
    follow_links: bool,
) -> io::Result<File> {
    #[cfg(unix)]
    opts.custom_flags(if follow_links {
        libc::O_NONBLOCK
    } else {
        libc::O_NONBLOCK | libc::O_NOFOLLOW
    });
    #[cfg(windows)]
    if !follow_links {
        opts.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT);
    }
    let f = opts.open(path)?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(not_regular(&ft));
    }
    Ok(f)
}

/// Reads a whole regular file of at most `max` bytes: a longer one is an error, and no
/// more than `max` bytes are ever allocated, even for a file that grows while read.
pub fn read_regular(path: &std::path::Path, max: u64, follow_links: bool) -> io::Result<Vec<u8>> {
    let f = open_regular_with(path, OpenOptions::new().read(true), follow_links)?;
    let len = f.metadata()?.len();
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, more than the {max} such a file may have"),
        ));
    }
    let mut data = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("grew past the {max} bytes such a file may have while read"),
        ));
    }
    Ok(data)
}
