//! The backup server side: replicas, transfers (full, incremental, express full),
//! consistency checks, recovery points and restores, built on `engine::diff`: the engine
//! moves and compares the bytes, this module keeps the server's books. It takes the
//! disks it reads as parameters and knows nothing of actors or the scheduler.

mod check;
mod disk;
mod error;
mod figures;
mod job;
mod pages;
mod points;
mod replica;
mod restore;
mod server;
pub mod tracking;
mod transfer;

pub use check::{CheckRecord, DiskCheck};
pub use disk::ImageDisk;
pub use error::BackupError;
pub use figures::{allocated, Bytes, READ_UNIT};
pub use job::{JobRecord, TaskSpan};
pub use points::{Excluded, PointFigures};
pub use replica::Replica;
pub use restore::{
    expected, read_back, state_after_restore, write_image, RestoreJob, RestoreRecord, Restored,
};
pub use server::BackupServer;
pub use transfer::{DiskSync, Transfer};

#[cfg(test)]
mod tests;
