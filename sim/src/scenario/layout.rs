//! Where a disk's guest volumes lie: the same arithmetic decides at validation whether a
//! disk can hold its volumes and places them when the world is built.

use super::model::Disk;

const MIB: u64 = 1 << 20;

/// The first guest volume starts after the partition table's first MiB.
pub const FIRST_VOLUME_AT: u64 = MIB;

/// The least a guest volume needs: boot sector, files, a diff area and room for the
/// workload.
pub const MIN_GUEST_VOLUME: u64 = 4 * MIB;

/// One guest volume's place on its disk, whole MiBs, in declaration order. A disk that
/// lists no volume has one `C:` filling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestSpan {
    pub start: u64,
    pub len: u64,
}

impl Disk {
    /// Whether the disk is a VHD (`.vhd`, Hyper-V 2008 R2's format), told by its file's
    /// name as Hyper-V tells it; any other name is a VHDX.
    pub fn is_vhd(&self) -> bool {
        self.file.to_ascii_lowercase().ends_with(".vhd")
    }

    /// The place of each guest volume (the disk's own `C:` when it lists none): each
    /// takes its size in whole MiBs, cut at the end of the disk.
    pub fn guest_spans(&self) -> Vec<GuestSpan> {
        let sizes: Vec<u64> = if self.volumes.is_empty() {
            vec![self.size.0.saturating_sub(FIRST_VOLUME_AT)]
        } else {
            self.volumes.iter().map(|g| g.size.0).collect()
        };
        let mut start = FIRST_VOLUME_AT;
        sizes
            .into_iter()
            .map(|size| {
                let room = self.size.0.saturating_sub(start) / MIB * MIB;
                let len = (size / MIB * MIB).min(room);
                let span = GuestSpan { start, len };
                start += len;
                span
            })
            .collect()
    }
}
