//! Byte storage under the engine: a file, memory, or a fault-injecting wrapper.

mod fault;
mod file;
pub(crate) mod lock;
mod mem;
pub mod regular;

pub use fault::{FaultPlan, FaultStorage};
pub use file::FileStorage;
pub use mem::MemStorage;

use std::io;

/// Random-access byte storage with explicit durability (`flush`).
///
/// `read_at` fills the whole buffer or fails (`UnexpectedEof` past the end); `write_at`
/// extends the storage when it writes past the end, like `pwrite`.
pub trait Storage: Send {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every earlier write and length change durable.
    fn flush(&mut self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros).
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl<S: Storage + ?Sized> Storage for Box<S> {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_at(buf, offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
}

pub(crate) fn eof(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at offset {offset} past the end ({size} bytes)"),
    )
}
