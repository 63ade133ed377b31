//! Scenario generators: worlds too large to write by hand, written as scenario files that
//! `hvsim run` loads like any other (issue 11 §1).
//!
//! - `options`: what a protection group is made of (the command line's choices);
//! - `protection_group`: SPEC R15's protection group: N VMs on H hosts, one full backup
//!   job over all of them, and what a real host shows for each VM;
//! - `error`: options the generator refuses.

mod error;
mod options;
mod protection_group;

pub use error::GenError;
pub use options::{GroupOptions, GuestMix};
pub use protection_group::{protection_group, protection_group_text};

#[cfg(test)]
mod tests;
