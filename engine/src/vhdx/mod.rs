//! The VHDX format ([MS-VHDX]): fixed, dynamic and differencing images, with the log.
//!
//! One structure per file: `header` (file identifier and the two headers), `region`
//! (region tables), `metadata` (metadata table and known items), `locator` (parent
//! locator and its resolution), `bat` (block allocation table geometry and entries),
//! `log` (write-ahead log: writing entries and replaying them), `image` (the open image:
//! reads, writes, trims), `create` (new images), `check` (structural verification).

pub mod bat;
mod check;
pub mod convert;
mod crc;
mod create;
pub(crate) mod error;
mod header;
mod image;
mod layout;
pub(crate) mod locator;
pub mod log;
mod metadata;
mod overlay;
mod region;

pub use bat::{BlockState, Geometry};
pub use check::{CheckReport, Finding, Severity};
pub use crc::crc32c_with_zeroed_field;
pub use create::CreateOptions;
pub use error::VhdxError;
pub use header::Header;
pub use image::{CommitPolicy, DiskType, Info, OpenOptions, Vhdx};
pub use layout::*;
pub use locator::{ParentLocator, ParentResolver};
pub use metadata::MetadataItem;
pub use region::{RegionEntry, RegionTable};

pub type Result<T, E = VhdxError> = std::result::Result<T, E>;
