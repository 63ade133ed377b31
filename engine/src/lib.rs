//! hvsim-engine: the storage engine of hvsim.
//!
//! It knows virtual disks (VHDX and its differencing AVHDX children, and VHD for 2008 R2) and the storage they
//! live on; it knows nothing of VSS, actors or scenarios. A backup vendor can use it on its
//! own images: open, read, write, trim, check and create VHDX files.

pub mod chain;
pub mod diff;
pub mod disk;
pub mod format;
pub mod guest;
pub mod ids;
pub mod output;
pub mod rct;
pub mod repo;
pub mod storage;
pub mod time;
pub mod vhd;
pub mod vhdx;
pub mod volume;

pub use disk::{VirtualDisk, VirtualDiskMut};
pub use format::{AnyDisk, ImageFormat};
pub use ids::GuidGen;
pub use storage::{FaultPlan, FaultStorage, FileStorage, MemStorage, Storage};
pub use vhd::{Vhd, VhdError};
pub use vhdx::{CreateOptions, DiskType, OpenOptions, ParentResolver, Vhdx, VhdxError};
