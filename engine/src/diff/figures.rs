//! What a synchronisation cost and changed, exactly (SPEC F5.E: both sides read and
//! checksum in full; the network carries checksums and changed blocks; the replica grows by
//! the changed blocks only).

use serde::{Deserialize, Serialize};

/// The work one side (agent or server) did.
///
/// A block whose included ranges are all unallocated (the image's metadata says they read
/// zeros) is not read: it costs no I/O and counts in `blocks_unallocated`, not in
/// `bytes_read`. A block read and found all zeros is not hashed (`blocks_zero`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideFigures {
    /// Bytes read from the disk (excluded ranges never are).
    pub bytes_read: u64,
    /// Bytes fed to blake3.
    pub bytes_hashed: u64,
    /// Blocks read (some or all of their bytes).
    pub blocks_read: u64,
    /// Blocks not read because they are unallocated.
    pub blocks_unallocated: u64,
    /// Blocks that read zeros (unallocated, or read and found zero): never hashed.
    pub blocks_zero: u64,
}

impl std::ops::AddAssign for SideFigures {
    fn add_assign(&mut self, o: SideFigures) {
        self.bytes_read += o.bytes_read;
        self.bytes_hashed += o.bytes_hashed;
        self.blocks_read += o.blocks_read;
        self.blocks_unallocated += o.blocks_unallocated;
        self.blocks_zero += o.blocks_zero;
    }
}

/// The figures of one synchronisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFigures {
    pub block_size: u64,
    /// Blocks of the disk (the last one may be shorter).
    pub blocks_total: u64,
    /// The agent, reading the VM's disk.
    pub agent: SideFigures,
    /// The server, reading its replica.
    pub server: SideFigures,
    /// Agent → server digest messages, headers included.
    pub digest_bytes_exchanged: u64,
    /// Server → agent block requests, headers included.
    pub request_bytes: u64,
    /// Block content the agent sent (headers excluded).
    pub block_bytes_sent: u64,
    /// Every byte on the network: digests, requests, block messages with their headers.
    pub network_bytes: u64,
    /// Bytes written (or trimmed to zeros) on the replica.
    pub replica_bytes_written: u64,
    /// Blocks compared by digest (every block not wholly excluded, in an express full).
    pub blocks_compared: u64,
    /// Compared blocks whose content differed.
    pub blocks_differing: u64,
    /// Compared blocks that read zeros on both sides: equal without hashing a byte.
    pub blocks_skipped_zero: u64,
    /// Blocks the agent sent (the differing ones, or those change tracking named).
    pub blocks_sent: u64,
    /// Blocks wholly inside excluded ranges: not read, compared nor sent.
    pub blocks_excluded: u64,
    /// Bytes of the disk excluded (R14).
    pub excluded_bytes: u64,
}

impl std::fmt::Display for SyncFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |f: &mut std::fmt::Formatter<'_>, name: &str, s: &SideFigures| {
            writeln!(
                f,
                "{name:<7} read {} bytes in {} blocks, hashed {} bytes; {} blocks unallocated, {} zero",
                s.bytes_read, s.blocks_read, s.bytes_hashed, s.blocks_unallocated, s.blocks_zero
            )
        };
        writeln!(
            f,
            "blocks:  {} of {} bytes; compared {}, differing {}, zero on both sides {}, sent {}, excluded {}",
            self.blocks_total,
            self.block_size,
            self.blocks_compared,
            self.blocks_differing,
            self.blocks_skipped_zero,
            self.blocks_sent,
            self.blocks_excluded
        )?;
        side(f, "agent:", &self.agent)?;
        side(f, "server:", &self.server)?;
        writeln!(
            f,
            "network: {} bytes: digests {}, requests {}, block bytes {}",
            self.network_bytes,
            self.digest_bytes_exchanged,
            self.request_bytes,
            self.block_bytes_sent
        )?;
        write!(
            f,
            "replica: {} bytes written; {} bytes excluded",
            self.replica_bytes_written, self.excluded_bytes
        )
    }
}
