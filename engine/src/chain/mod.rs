//! Checkpoint chains: a VM disk as a base VHDX plus AVHDX children, checkpoints,
//! reverts, and online, resumable merges (SPEC F2.5, F2.6, F2.12, F2.14, F3.3, R4, R8).

mod disk;
mod merge;
mod naming;

pub use disk::{ChainError, DiskChain, MAX_CHECKPOINTS};
pub use merge::{Merge, MergeProgress};
pub use naming::{
    auto_recovery_file, backup_checkpoint_name, checkpoint_file, disk_stem, is_vhd_name,
};
