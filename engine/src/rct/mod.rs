//! Change tracking in the spirit of Hyper-V's Resilient Change Tracking (RCT).
//!
//! A backup application asks a disk "what changed since my last backup?" instead of
//! reading it whole. Per disk there is a [`ChangeTracker`]: a stamp per granule saying in
//! which epoch it last changed, and reference points (`rctX:<guid>:<n>`, see
//! [`RefPoint`]) that close epochs. [`ChangeTracker::changed_since`] answers with merged
//! byte ranges that cover every changed byte, rounded out to whole granules.
//!
//! The tracker persists in a side file next to the disk ([`side_file_path`]), through the
//! [`Storage`](crate::storage::Storage) trait. After an unclean shutdown, a damaged side
//! file, or a disk that changed behind the tracker's back, the tracking is reset and
//! queries fail with [`RctError::ConsistencyCheckRequired`] (rule R17): read the whole
//! disk, create a new baseline reference point, and incrementals work again.
//!
//! [`TrackedDisk`] wraps any [`VirtualDiskMut`](crate::VirtualDiskMut) and records every
//! write and trim before forwarding it.
//!
//! Memory and file size: 4 bytes per granule, so 16 MiB per TiB of virtual size at the
//! default 256 KiB granularity (64 MiB per TiB at 64 KiB, 1 MiB per TiB at 4 MiB).

mod error;
pub mod format;
mod identity;
mod refpoint;
mod sidefile;
mod tracked;
mod tracker;

pub use error::RctError;
pub use identity::DiskIdentity;
pub use refpoint::RefPoint;
pub(crate) use sidefile::SideFile;
pub use sidefile::{open_side_file, side_file_path};
pub use tracked::TrackedDisk;
pub use tracker::{
    ChangeTracker, RctOptions, DEFAULT_GRANULARITY, DEFAULT_MAX_REFERENCE_POINTS, MAX_GRANULARITY,
    MIN_GRANULARITY,
};
