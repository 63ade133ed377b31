//! The guest agent of hvsim's real-host backend (issue 12 §1).
//!
//! Copied into a guest (Copy-VMFile) and started through PowerShell Direct, it writes
//! known, seeded bytes to a disk while the backup runs and logs each write only once it
//! is durable. After the backup `hvsim check-writes` reads the backed-up image with the
//! engine and checks I1 against the log: every write completed before the snapshot is in
//! the backup, byte for byte, as the simulator's oracle checks it.
//!
//! - [`plan`]: what to write (disk, size, count, lengths, rate, seed), checked;
//! - [`data`]: the bytes of each write, the simulator workload's pattern;
//! - [`log`]: the log's lines and their reading back, with typed errors naming the line;
//! - [`writer`]: the loop: write, flush to the disk, then log.

pub mod data;
pub mod log;
pub mod plan;
pub mod writer;
