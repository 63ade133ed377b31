//! A read-only view of a file with a replayed log applied in memory, so that a read-only
//! open sees the image as a replay would leave it, and the file itself stays untouched.

use crate::storage::Storage;
use std::collections::BTreeMap;
use std::io;

pub struct Overlay {
    inner: Box<dyn Storage>,
    /// 4 KiB-aligned sector images, by file offset.
    sectors: BTreeMap<u64, Vec<u8>>,
    /// Ranges zeroed by zero descriptors; sectors written after a zeroing override it.
    zeros: Vec<(u64, u64)>,
    len: u64,
}

impl Overlay {
    pub fn new(inner: Box<dyn Storage>, len: u64) -> Self {
        Overlay {
            inner,
            sectors: BTreeMap::new(),
            zeros: Vec::new(),
            len,
        }
    }

    /// Applies a 4 KiB sector write, in log order.
    pub fn write_sector(&mut self, offset: u64, data: Vec<u8>) {
        self.len = self.len.max(offset + data.len() as u64);
        self.sectors.insert(offset, data);
    }

    /// Applies a zero descriptor, in log order.
    pub fn zero(&mut self, offset: u64, len: u64) {
        let stale: Vec<u64> = self
            .sectors
            .range(offset..offset + len)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            self.sectors.remove(&k);
        }
        self.zeros.push((offset, len));
        self.len = self.len.max(offset + len);
    }

    pub fn set_min_len(&mut self, len: u64) {
        self.len = self.len.max(len);
    }
}

impl Storage for Overlay {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.len {
            return Err(crate::storage::eof(offset, buf.len(), self.len));
        }
        let inner_len = self.inner.len()?;
        let from_file = inner_len.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.inner.read_at(&mut buf[..from_file], offset)?;
        buf[from_file..].fill(0);
        for &(zs, zl) in &self.zeros {
            let (s, e) = (zs.max(offset), (zs + zl).min(end));
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize].fill(0);
            }
        }
        let first = offset - offset % 4096;
        for (&at, data) in self.sectors.range(first..end) {
            let s = at.max(offset);
            let e = (at + data.len() as u64).min(end);
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize]
                    .copy_from_slice(&data[(s - at) as usize..(e - at) as usize]);
            }
        }
        Ok(())
    }

    fn write_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only replay view",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn set_len(&mut self, _: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "read-only replay view",
        ))
    }
}
