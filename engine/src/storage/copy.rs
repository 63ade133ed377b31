//! Byte ranges from file to file. Linux copies them in the kernel (`copy_file_range`):
//! the bytes never pass through this process, a file system with reflinks (XFS, Btrfs)
//! shares the blocks instead of copying them, and NFS copies on the server. Where the
//! kernel cannot (two different file systems, an old kernel, another system), the range
//! goes through a buffer. Also here: finding data past holes, and starting writeback early.

use std::fs::File;
use std::io;

/// Bytes a buffered copy moves at a time.
const BUFFER: u64 = 2 << 20;

/// Copies `len` bytes at `src_off` in `src` to `dst_off` in `dst`, extending `dst` as a
/// write would. `src` ending early is an `UnexpectedEof` error. The two ranges must not
/// overlap in one file. The target range is allocated first, in one piece: the file
/// system then writes into blocks it has, instead of reserving them page by page (a
/// quarter of a copy's time on ext4).
pub fn copy_range(src: &File, src_off: u64, dst: &File, dst_off: u64, len: u64) -> io::Result<()> {
    preallocate(dst, dst_off, len);
    let done = kernel_copy(src, src_off, dst, dst_off, len)?;
    buffered_copy(src, src_off + done, dst, dst_off + done, len - done)
}

/// Copies through a buffer in this process (the portable way).
pub fn buffered_copy(
    src: &File,
    src_off: u64,
    dst: &File,
    dst_off: u64,
    len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; len.min(BUFFER) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(BUFFER) as usize;
        read_exact_at(src, &mut buf[..n], src_off + done)?;
        write_all_at(dst, &buf[..n], dst_off + done)?;
        done += n as u64;
    }
    Ok(())
}

/// How much of the range the kernel copied; it stops early (and the rest goes through a
/// buffer) only when it cannot copy between these two files at all.
#[cfg(target_os = "linux")]
fn kernel_copy(src: &File, src_off: u64, dst: &File, dst_off: u64, len: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut done = 0;
    while done < len {
        let (Ok(mut from), Ok(mut to)) = (
            libc::loff_t::try_from(src_off + done),
            libc::loff_t::try_from(dst_off + done),
        ) else {
            return Ok(done);
        };
        // At most 1 GiB per call, so that the count fits every kernel's limits.
        let n = (len - done).min(1 << 30) as usize;
        // SAFETY: both descriptors are open files of ours; the kernel reads and writes
        // only the two offsets we pass, no memory of ours besides them.
        let rc = unsafe {
            libc::copy_file_range(src.as_raw_fd(), &mut from, dst.as_raw_fd(), &mut to, n, 0)
        };
        match rc {
            0 => return Err(ends_inside(src_off + done, len - done)),
            n if n > 0 => done += n as u64,
            _ => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    // Not possible between these files (different file systems, a
                    // kernel or file system without it, special files): buffer instead.
                    Some(
                        libc::EXDEV
                        | libc::ENOSYS
                        | libc::EOPNOTSUPP
                        | libc::EINVAL
                        | libc::EBADF
                        | libc::EPERM
                        | libc::ETXTBSY,
                    ) => return Ok(done),
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(done)
}

#[cfg(not(target_os = "linux"))]
fn kernel_copy(_: &File, _: u64, _: &File, _: u64, _: u64) -> io::Result<u64> {
    Ok(0)
}

/// The first offset at or after `from` that may hold data, or `None` when only a hole
/// follows up to the end of the file. Without hole support every offset may hold data.
#[cfg(target_os = "linux")]
pub fn next_data(file: &File, from: u64) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let Ok(off) = libc::off_t::try_from(from) else {
        return Ok(Some(from));
    };
    // SAFETY: lseek on an open descriptor of ours; the transfers here all use explicit
    // offsets, so moving the file position disturbs none of them.
    let rc = unsafe { libc::lseek(file.as_raw_fd(), off, libc::SEEK_DATA) };
    if rc >= 0 {
        return Ok(Some(rc as u64));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        Some(libc::EINVAL | libc::EOPNOTSUPP) => Ok(Some(from)),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn next_data(_file: &File, from: u64) -> io::Result<Option<u64>> {
    Ok(Some(from))
}

/// Starts writing the range back to the disk without waiting for it, so that a flush at
/// the end finds less to do while the copy goes on. Best effort: nothing where the
/// system has no such call.
#[cfg(target_os = "linux")]
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: sync_file_range on an open descriptor of ours; it reads no memory of ours.
    // Its result is ignored: the flush at the end reports any write error.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Allocates disk space for a range about to be written (reads of it stay zeros until
/// then), extending the file as the write would. Best effort: where the system or the
/// file system cannot, or the disk is full, the write itself allocates (or fails).
#[cfg(target_os = "linux")]
pub fn preallocate(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    if n == 0 {
        return;
    }
    // SAFETY: fallocate on an open descriptor of ours; it reads no memory of ours. Its
    // result is ignored: the write that follows reports what matters (a full disk).
    unsafe {
        libc::fallocate(file.as_raw_fd(), 0, off, n);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn preallocate(_file: &File, _offset: u64, _len: u64) {}

#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// The error for a source that ends inside the `len` bytes at `offset` it should hold.
fn ends_inside(offset: u64, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the source file ends inside the {len} bytes at offset {offset}"),
    )
}

/// `pread` until the buffer is full (`UnexpectedEof` when the file ends first).
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        match std::os::unix::fs::FileExt::read_exact_at(file, buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(ends_inside(offset, buf.len() as u64))
            }
            r => r,
        }
    }
    #[cfg(windows)]
    {
        let (mut done, mut buf) = (0u64, buf);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(file, buf, offset + done) {
                Ok(0) => return Err(ends_inside(offset, done + buf.len() as u64)),
                Ok(n) => {
                    buf = &mut buf[n..];
                    done += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// `pwrite` until the whole buffer is written.
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut done, mut buf) = (0u64, buf);
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_write(file, buf, offset + done) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    done += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), bytes).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(t.path())
            .unwrap();
        (t, f)
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn copies_a_range_into_place_and_extends_the_target() {
        let src = pattern(5 << 20, 7);
        let (_s, sf) = file_with(&src);
        let (_d, df) = file_with(&[0xEE; 100]);
        copy_range(&sf, 4096 + 3, &df, 50, (3 << 20) + 11).unwrap();
        let got = std::fs::read(_d.path()).unwrap();
        assert_eq!(got.len(), 50 + (3 << 20) + 11);
        assert_eq!(&got[..50], &[0xEE; 50]);
        assert!(got[50..] == src[4099..4099 + (3 << 20) + 11]);
    }

    #[test]
    fn buffered_copy_gives_the_same_bytes() {
        let src = pattern((2 << 20) + 513, 9);
        let (_s, sf) = file_with(&src);
        let (_d, df) = file_with(&[]);
        buffered_copy(&sf, 1, &df, 7, src.len() as u64 - 1).unwrap();
        let got = std::fs::read(_d.path()).unwrap();
        assert!(got[7..] == src[1..]);
        assert_eq!(&got[..7], &[0; 7]);
    }

    #[test]
    fn a_source_that_ends_early_is_an_error() {
        let (_s, sf) = file_with(&pattern(1000, 1));
        let (_d, df) = file_with(&[]);
        for r in [
            copy_range(&sf, 0, &df, 0, 2000),
            buffered_copy(&sf, 0, &df, 0, 2000),
        ] {
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn next_data_skips_holes() {
        let t = tempfile::NamedTempFile::new().unwrap();
        let f = t.as_file();
        f.set_len(8 << 20).unwrap();
        write_all_at(f, &[1; 4096], 4 << 20).unwrap();
        let d = next_data(f, 0).unwrap().unwrap();
        // A file system without hole support says "data" at once; with it, the data.
        assert!(d == 0 || d == 4 << 20, "{d}");
        if d != 0 {
            assert_eq!(next_data(f, (4 << 20) + 4096).unwrap(), None);
        }
    }
}
