//! A virtual disk as backup code sees it: something with a size that reads and writes
//! bytes and can say which ranges surely read zeros. VHDX and VHD images (with their
//! parent chains) are two; raw images and volume snapshots are others.

use crate::vhd::Vhd;
use crate::vhdx::{Vhdx, VhdxError};

pub trait VirtualDisk {
    fn virtual_size(&self) -> u64;
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError>;
    /// False when the range surely reads zeros without holding data (unallocated);
    /// true when it may hold data. Lets readers skip what needs no reading or hashing.
    fn range_has_data(&self, offset: u64, len: u64) -> bool;
}

pub trait VirtualDiskMut: VirtualDisk {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError>;
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError>;
    fn flush(&mut self) -> Result<(), VhdxError>;
}

impl VirtualDisk for Vhdx {
    fn virtual_size(&self) -> u64 {
        Vhdx::virtual_size(self)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        Vhdx::read(self, offset, buf)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        Vhdx::range_has_data(self, offset, len)
    }
}

impl VirtualDiskMut for Vhdx {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        Vhdx::write(self, offset, data)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        Vhdx::trim(self, offset, len)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        Vhdx::flush(self)
    }
}

impl VirtualDisk for Vhd {
    fn virtual_size(&self) -> u64 {
        Vhd::virtual_size(self)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        Ok(Vhd::read(self, offset, buf)?)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        Vhd::range_has_data(self, offset, len)
    }
}

impl VirtualDiskMut for Vhd {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        Ok(Vhd::write(self, offset, data)?)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        Ok(Vhd::trim(self, offset, len)?)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        Ok(Vhd::flush(self)?)
    }
}
