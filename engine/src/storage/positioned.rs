//! Reads and writes at an offset of a file (`pread`/`pwrite`) on Unix and Windows alike.
//! The engine never moves a shared cursor: two threads (an import's reader and writer)
//! may use one file at once.
//!
//! One call of either system (`read_at`/`write_at` on Unix, `seek_read`/`seek_write` on
//! Windows, which also moves the cursor the engine never uses) may move fewer bytes than
//! asked; one loop for both continues until the buffer is done, with std's errors
//! (`UnexpectedEof` when the file ends first, `WriteZero` when the system takes nothing).

use std::fs::File;
use std::io;

/// Positioned I/O that fills or writes the whole buffer.
pub trait PositionedIo {
    /// Fills `buf` from `offset`; `UnexpectedEof` when the file ends before.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the file when past its end.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
}

impl PositionedIo for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        fill(buf, offset, |b, at| read_at(self, b, at))
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        drain(buf, offset, |b, at| write_at(self, b, at))
    }
}

/// One positioned read, which may stop short.
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(f, buf, offset);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(f, buf, offset);
}

/// One positioned write, which may stop short.
fn write_at(f: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::write_at(f, buf, offset);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_write(f, buf, offset);
}

/// Calls `read` (a positioned read that may stop short) until `buf` is full.
fn fill(
    mut buf: &mut [u8],
    mut offset: u64,
    mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "failed to fill whole buffer",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Calls `write` (a positioned write that may stop short) until all of `buf` is written.
fn drain(
    mut buf: &[u8],
    mut offset: u64,
    mut write: impl FnMut(&[u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match write(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A medium that moves at most 3 bytes per call and is interrupted every other call,
    /// as a positioned call on Windows may be.
    struct Stingy {
        bytes: Vec<u8>,
        calls: u32,
    }

    impl Stingy {
        fn interrupted(&mut self) -> bool {
            self.calls += 1;
            self.calls.is_multiple_of(2)
        }
        fn read(&mut self, b: &mut [u8], at: u64) -> io::Result<usize> {
            if self.interrupted() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let at = (at as usize).min(self.bytes.len());
            let n = b.len().min(3).min(self.bytes.len() - at);
            b[..n].copy_from_slice(&self.bytes[at..at + n]);
            Ok(n)
        }
        fn write(&mut self, b: &[u8], at: u64) -> io::Result<usize> {
            if self.interrupted() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let (at, n) = (at as usize, b.len().min(3));
            if self.bytes.len() < at + n {
                self.bytes.resize(at + n, 0);
            }
            self.bytes[at..at + n].copy_from_slice(&b[..n]);
            Ok(n)
        }
    }

    #[test]
    fn short_and_interrupted_calls_are_continued_until_the_buffer_is_done() {
        let mut m = Stingy {
            bytes: vec![0; 4],
            calls: 0,
        };
        drain(b"positioned", 2, |b, at| m.write(b, at)).unwrap();
        assert_eq!(&m.bytes, b"\0\0positioned");
        let mut got = [0u8; 8];
        fill(&mut got, 4, |b, at| m.read(b, at)).unwrap();
        assert_eq!(&got, b"sitioned");
    }

    #[test]
    fn a_read_past_the_end_is_unexpected_eof_and_a_write_taking_nothing_is_write_zero() {
        let mut m = Stingy {
            bytes: b"short".to_vec(),
            calls: 0,
        };
        let mut got = [0u8; 8];
        let e = fill(&mut got, 1, |b, at| m.read(b, at)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = drain(b"x", 0, |_, _| Ok(0)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn a_file_reads_back_what_was_written_at_an_offset() {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(b"tail", 1 << 20).unwrap();
        assert_eq!(f.metadata().unwrap().len(), (1 << 20) + 4);
        let mut got = [0xffu8; 6];
        f.read_exact_at(&mut got, (1 << 20) - 2).unwrap();
        assert_eq!(&got, b"\0\0tail");
        let e = f.read_exact_at(&mut got, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
