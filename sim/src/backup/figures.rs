//! What the report counts of a transfer or a check: the simulator's cost model of the DPM
//! protocol (F5.E). The agent reads a disk [`READ_UNIT`] at a time and skips the units that
//! hold no data; a checksum crosses the network per unit compared; an incremental sends
//! the pages with data of its changed ranges and a header per extent.

use hvsim_engine::disk::VirtualDisk;

use crate::world::PAGE;

/// Bytes the agent reads at a time (and skips when unallocated).
pub const READ_UNIT: u64 = 1 << 20;
/// Bytes of the checksum of one unit on the network.
pub const CHECKSUM_LEN: u64 = 32;
/// Bytes of the header of one extent of an incremental (zero pages travel as ranges).
pub const EXTENT_HEADER_LEN: u64 = 16;

/// Bytes read, checksummed and sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bytes {
    pub read: u64,
    pub hashed: u64,
    pub sent: u64,
}

impl Bytes {
    pub fn add(&mut self, o: Bytes) {
        self.read += o.read;
        self.hashed += o.hashed;
        self.sent += o.sent;
    }

    /// A full transfer: `read` bytes of the VM's disk read, checksummed as an express
    /// full against an empty replica would (both sides), and its `pages` with data sent.
    pub fn full(read: u64, pages: u64) -> Bytes {
        Bytes {
            read,
            hashed: 2 * read,
            sent: pages * PAGE + checksums(read),
        }
    }

    /// An express full or a consistency check (F5.E.1-5, R17): both sides read and
    /// checksummed in full; the checksums and the `differing` pages cross the network.
    pub fn compare(read: u64, differing: u64) -> Bytes {
        Bytes {
            read: 2 * read,
            hashed: 2 * read,
            sent: differing * PAGE + checksums(read),
        }
    }

    /// An incremental: the changed ranges (`read` bytes in `extents`) read, nothing
    /// checksummed, their `data` bytes of pages with data sent.
    pub fn incremental(read: u64, data: u64, extents: u64) -> Bytes {
        Bytes {
            read,
            hashed: 0,
            sent: data + extents * EXTENT_HEADER_LEN,
        }
    }
}

fn checksums(read: u64) -> u64 {
    read / READ_UNIT * CHECKSUM_LEN
}

/// The bytes the agent reads of the whole of `disk`: every unit that may hold data.
pub fn allocated(disk: &dyn VirtualDisk) -> u64 {
    allocated_ranges(disk).iter().map(|(_, l)| l).sum()
}

/// The units of `disk` that may hold data, merged into ranges `(offset, length)`.
pub fn allocated_ranges(disk: &dyn VirtualDisk) -> Vec<(u64, u64)> {
    disk.data_ranges(READ_UNIT)
}
