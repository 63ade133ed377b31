//! Scenario files: TOML descriptions of a world, a backup job, faults and the expected
//! result, citing the SPEC items they demonstrate.
//!
//! ```toml
//! name = "f2-online-backup-checkpoint"
//! covers = ["F2", "F2.5", "R7"]
//!
//! [[hosts]]
//! name = "hv1"
//! version = "2012 R2"
//!
//! [[volumes]]
//! name = "hv1-D"
//! host = "hv1"
//! capacity = "2 TiB"
//! free = "800 GiB"
//!
//! [[vms]]
//! name = "app01"
//! host = "hv1"
//! generation = 1
//! config_version = "5.0"
//! disks = [{ file = "app01.vhdx", size = "60 GiB", volume = "hv1-D", volumes = [
//!     { mount = "C:", size = "60 GiB", fs = "NTFS", free = "20 GiB" } ] }]
//! guest = { os = "windows", writers = [{ name = "SqlServerWriter", kind = "SQL" }] }
//!
//! [job]
//! kind = "full"
//! vms = ["app01"]
//!
//! [expect]
//! outcome = "success"
//! vms = [{ vm = "app01", method = "online", consistency = "application" }]
//! ```
//!
//! [`Scenario::load`] reads, parses and validates a file; every problem is a
//! [`ScenarioError`] printing as `file:line:column: field.path: problem`.

mod codes;
mod digest;
mod error;
mod file_name;
mod layout;
pub mod limits;
mod load;
mod locate;
mod model;
mod names;
mod spec_id;
mod units;
mod validate;
mod value_error;

pub use codes::Hresult;
pub use error::{Location, Problem, ScenarioError, ScenarioErrors};
pub use file_name::{file_name_problem, volume_folder};
pub use layout::{GuestSpan, FIRST_VOLUME_AT, MIN_GUEST_VOLUME};
pub use model::*;
pub use spec_id::SpecId;
pub use units::{Bytes, VirtualTime};
pub use validate::{no_world_check, WorldCheck};
pub use value_error::ValueError;
