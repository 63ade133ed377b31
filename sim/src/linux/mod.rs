//! Linux guests (R5, F3.2, I2 file-consistent): the `hv_snapshot` kernel driver and
//! `hv_vss_daemon`, as sans-IO state machines driven with virtual time in microseconds.
//!
//! - [`msg`]: `enum hv_vss_op` and the packed `struct hv_vss_msg` as bytes.
//! - [`mounts`]: `/proc/mounts` parsing and the daemon's freeze order (`/` last).
//! - [`daemon`]: `hv_vss_daemon` and its failure behaviours.
//! - [`driver`]: the kernel's one-at-a-time VSS transaction, timers and host replies.
//!
//! A Linux backup is file-consistent at best: the image to compare with (I2) is the disk
//! at the moment of the last [`driver::Effect::Froze`] of a FREEZE answered HV_S_OK.

pub mod daemon;
pub mod driver;
pub mod mounts;
pub mod msg;

pub use daemon::{DaemonBehaviour, HvVssDaemon};
pub use driver::{Effect, HvSnapshot, TransactionState};
pub use mounts::{freeze_order, parse_proc_mounts, Mount, MountsError};
pub use msg::{HvVssMsg, HvVssOp, HvVssReply, MsgError};
