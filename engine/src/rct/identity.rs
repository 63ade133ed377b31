//! Which disk, in which state, a tracking file speaks for.

use crate::vhdx::Vhdx;
use uuid::Uuid;

/// The identity a tracking file records at a clean close and checks at the next open.
///
/// For a VHDX the DataWriteGuid is the heart of it: the image changes it at the first
/// write of every writing session, so a disk written by anyone who did not go through the
/// tracker (another host, a tool, a restore) no longer matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskIdentity {
    pub disk_id: Uuid,
    pub data_write_guid: Uuid,
    pub virtual_size: u64,
}

impl DiskIdentity {
    /// The identity of an open VHDX as it is now (take it before the first write when
    /// opening a tracker, and after the last one when closing it).
    pub fn of_vhdx(v: &Vhdx) -> Self {
        DiskIdentity {
            disk_id: v.disk_id(),
            data_write_guid: v.header().data_write_guid,
            virtual_size: v.virtual_size(),
        }
    }
}
