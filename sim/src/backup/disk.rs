//! The server's copy of a disk as the engine's diff sees it: a sparse image of a given
//! size, read and written like any virtual disk, so that `engine::diff` moves the bytes.

use hvsim_engine::disk::{VirtualDisk, VirtualDiskMut};
use hvsim_engine::vhdx::VhdxError;

use crate::world::{SparseImage, PAGE};

/// A [`SparseImage`] of `size` bytes, as a virtual disk.
pub struct ImageDisk<'a> {
    image: &'a mut SparseImage,
    size: u64,
}

impl<'a> ImageDisk<'a> {
    pub fn new(image: &'a mut SparseImage, size: u64) -> Self {
        ImageDisk { image, size }
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), VhdxError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(VhdxError::OutOfRange {
                offset,
                length: len,
                size: self.size,
            }),
        }
    }

    /// Writes `data` at `offset`: its whole pages at once, a partial page keeping its
    /// other bytes.
    fn put(&mut self, offset: u64, data: &[u8]) {
        let mut at = 0usize;
        while at < data.len() {
            let pos = offset + at as u64;
            let page = pos / PAGE * PAGE;
            let inner = (pos - page) as usize;
            let n = (PAGE as usize - inner).min(data.len() - at);
            if n == PAGE as usize {
                // Every whole page from here in one write (one buffer for them all).
                let whole = (data.len() - at) / PAGE as usize * PAGE as usize;
                self.image.write(page, &data[at..at + whole]);
                at += whole;
                continue;
            } else {
                let mut buf = [0u8; PAGE as usize];
                if let Some(p) = self.image.page(page / PAGE) {
                    buf.copy_from_slice(p);
                }
                buf[inner..inner + n].copy_from_slice(&data[at..at + n]);
                self.image.write(page, &buf);
            }
            at += n;
        }
    }
}

impl VirtualDisk for ImageDisk<'_> {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        self.check(offset, buf.len() as u64)?;
        let mut at = 0usize;
        while at < buf.len() {
            let pos = offset + at as u64;
            let inner = (pos % PAGE) as usize;
            let n = (PAGE as usize - inner).min(buf.len() - at);
            match self.image.page(pos / PAGE) {
                Some(p) => buf[at..at + n].copy_from_slice(&p[inner..inner + n]),
                None => buf[at..at + n].fill(0),
            }
            at += n;
        }
        Ok(())
    }

    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        self.image.has_data_in(offset, len)
    }
}

impl VirtualDiskMut for ImageDisk<'_> {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        self.check(offset, data.len() as u64)?;
        self.put(offset, data);
        Ok(())
    }

    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        self.check(offset, len)?;
        // Whole pages go; the ends of a range that is not page-aligned read zeros.
        let first = offset.div_ceil(PAGE) * PAGE;
        let last = (offset + len) / PAGE * PAGE;
        if first < last {
            self.image.clear_range(first, last - first);
            let head = (first - offset) as usize;
            self.put(offset, &vec![0u8; head]);
            let tail = (offset + len - last) as usize;
            self.put(last, &vec![0u8; tail]);
        } else {
            self.put(offset, &vec![0u8; len as usize]);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), VhdxError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaligned_writes_and_trims_keep_the_rest_of_the_page() {
        let mut img = SparseImage::default();
        let mut d = ImageDisk::new(&mut img, 4 * PAGE);
        d.write(PAGE - 2, &[7, 7, 7, 7]).unwrap();
        let mut buf = [0u8; 6];
        d.read(PAGE - 3, &mut buf).unwrap();
        assert_eq!(buf, [0, 7, 7, 7, 7, 0]);
        d.trim(PAGE - 1, 2).unwrap();
        d.read(PAGE - 3, &mut buf).unwrap();
        assert_eq!(buf, [0, 7, 0, 0, 7, 0]);
        d.trim(0, 3 * PAGE).unwrap();
        assert_eq!(img.len_pages(), 0, "a trimmed disk holds no page");
    }

    #[test]
    fn access_past_the_end_is_an_error() {
        let mut img = SparseImage::default();
        let mut d = ImageDisk::new(&mut img, 2 * PAGE);
        assert!(matches!(
            d.write(2 * PAGE - 1, &[1, 2]),
            Err(VhdxError::OutOfRange { .. })
        ));
        let mut buf = [0u8; 8];
        assert!(d.read(u64::MAX - 2, &mut buf).is_err());
    }
}
