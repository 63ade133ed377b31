//! What one scenario may ask for. A scenario describes a backup job, not a data centre:
//! the bounds keep one run within seconds and megabytes of this machine (every error
//! that cites one says "at most N").

use super::units::{Bytes, VirtualTime};

/// The largest scenario file read (bytes): far beyond any scenario within these limits.
pub const MAX_FILE_LEN: u64 = 16 << 20;
pub const MAX_HOSTS: usize = 64;
/// SPEC R15 anchors one backup server at 800 VMs; a generated protection group may go
/// twice past it (issue 11).
pub const MAX_VMS: usize = 2_000;
pub const MAX_DISKS_PER_VM: usize = 64;
pub const MAX_GUEST_VOLUMES_PER_DISK: usize = 16;
pub const MAX_WRITERS_PER_GUEST: usize = 64;
pub const MAX_FAULTS: usize = 64;
/// DPM keeps at most 64 recovery points of a protected member (R18).
pub const MAX_RECOVERY_POINTS: u32 = 64;
/// Backups of one job in flight at once (issue 11 §2): a job's VMs at most.
pub const MAX_CONCURRENCY: u32 = MAX_VMS as u32;
/// Operations per virtual second of one workload kind.
pub const MAX_RATE: u32 = 1_000;
/// Data blocks of one application transaction.
pub const MAX_TRANSACTION_BLOCKS: u32 = 256;
/// Blocks of one disk (size / block_size): the BAT is held in memory.
pub const MAX_DISK_BLOCKS: u64 = 1 << 20;
/// The largest VHDX (64 TiB).
pub const MAX_DISK_SIZE: Bytes = Bytes(64 << 40);
/// The VHD format's largest disk (2040 GiB).
pub const MAX_VHD_SIZE: Bytes = Bytes(2040 << 30);
pub const MAX_VOLUME_SIZE: Bytes = Bytes(1 << 50);
/// Timeouts and downtime bounds.
pub const MAX_DURATION: VirtualTime = VirtualTime {
    millis: 24 * 3_600_000,
};
/// Names that are not file names (writers, guest releases, mounts).
pub const MAX_TEXT_CHARS: usize = 255;
/// A NetBIOS computer name: hosts, clusters and file servers (they appear in `\\server`).
pub const MAX_COMPUTER_NAME: usize = 15;
