//! Verification: every block's content matches its name (digest), every manifest is
//! readable and every block it names exists, whole and sound. Problems are listed
//! precisely (which point, which chunk, which block file); verification itself fails
//! only when the repository cannot be read at all, or a writer is at work in it.
//!
//! What an interrupted writer leaves (blocks no point names, temporary files) is no
//! damage: it is listed apart, as leftovers that a sweep reclaims.

use super::digest::{ChunkRef, Digest};
use super::error::Result;
use super::fsio::read_regular;
use super::manifest::chunk_len;
use super::Repository;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A block file's content does not hash to its name.
    CorruptBlock { path: PathBuf, actual: Digest },
    /// A block file could not be read.
    UnreadableBlock { path: PathBuf, error: String },
    /// A file in `blocks/` whose name is not a block name.
    StrayFile { path: PathBuf },
    /// A manifest that cannot be read or is malformed.
    BadManifest {
        name: String,
        point: u64,
        error: String,
    },
    /// A point names a block that is not stored.
    MissingBlock {
        name: String,
        point: u64,
        chunk: u64,
        path: PathBuf,
    },
    /// A point names a block that is stored but damaged (see its own problem).
    DamagedBlock {
        name: String,
        point: u64,
        chunk: u64,
        path: PathBuf,
    },
    /// A point names a block of another length than its chunk.
    WrongLength {
        name: String,
        point: u64,
        chunk: u64,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CorruptBlock { path, actual } => {
                write!(f, "block {}: corrupt, its content hashes to {actual}", path.display())
            }
            Problem::UnreadableBlock { path, error } => {
                write!(f, "block {}: unreadable: {error}", path.display())
            }
            Problem::StrayFile { path } => {
                write!(f, "{}: not a block (unexpected name or place)", path.display())
            }
            Problem::BadManifest { name, point, error } => {
                write!(f, "disk {name:?} point {point}: bad manifest: {error}")
            }
            Problem::MissingBlock { name, point, chunk, path } => write!(
                f,
                "disk {name:?} point {point} chunk {chunk}: block {} is missing",
                path.display()
            ),
            Problem::DamagedBlock { name, point, chunk, path } => write!(
                f,
                "disk {name:?} point {point} chunk {chunk}: block {} is damaged",
                path.display()
            ),
            Problem::WrongLength { name, point, chunk, path, expected, actual } => write!(
                f,
                "disk {name:?} point {point} chunk {chunk}: block {} has {actual} bytes, the chunk {expected}",
                path.display()
            ),
        }
    }
}

/// A file an interrupted or failed writer left behind: no point depends on it, and a
/// sweep ([`Repository::gc`], `prune`) removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// A block no recovery point names (a backup stopped before its manifest).
    UnreferencedBlock { path: PathBuf, len: u64 },
    /// A file in `tmp/` (a write stopped before its rename).
    TempFile { path: PathBuf, len: u64 },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::UnreferencedBlock { path, len } => {
                write!(
                    f,
                    "block {}: no point uses it ({len} bytes)",
                    path.display()
                )
            }
            Leftover::TempFile { path, len } => write!(
                f,
                "{}: temporary file of an interrupted write ({len} bytes)",
                path.display()
            ),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub blocks_checked: u64,
    pub bytes_checked: u64,
    pub points_checked: u64,
    pub problems: Vec<Problem>,
    /// Reclaimable files; not listed when a manifest is unreadable (what is used is
    /// unknown then).
    pub leftovers: Vec<Leftover>,
}

impl VerifyReport {
    /// No damage (leftovers may remain).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Repository {
    /// Checks the whole repository. No writer may change it meanwhile: verify holds the
    /// lock shared (or this handle's writer's lock), and fails when a writer holds it.
    pub fn verify(&self) -> Result<VerifyReport> {
        let _shared = self.lock_for_reading()?;
        let mut report = VerifyReport::default();
        // Sound blocks and their lengths; damaged ones map to None.
        let mut blocks: HashMap<Digest, Option<u64>> = HashMap::new();
        for f in self.block_files()? {
            let Some(d) = f.digest else {
                report.problems.push(Problem::StrayFile { path: f.path });
                continue;
            };
            report.blocks_checked += 1;
            match read_regular(&f.path, self.chunk_size) {
                Ok(data) => {
                    report.bytes_checked += data.len() as u64;
                    let actual = Digest::of(&data);
                    if actual == d {
                        blocks.insert(d, Some(data.len() as u64));
                    } else {
                        blocks.insert(d, None);
                        report.problems.push(Problem::CorruptBlock {
                            path: f.path,
                            actual,
                        });
                    }
                }
                Err(e) => {
                    blocks.insert(d, None);
                    report.problems.push(Problem::UnreadableBlock {
                        path: f.path,
                        error: e.to_string(),
                    });
                }
            }
        }
        let mut used: HashSet<Digest> = HashSet::new();
        let mut all_read = true;
        for name in self.names()? {
            for point in self.points(&name)? {
                let m = match self.manifest(&name, point) {
                    Ok(m) => m,
                    Err(e) => {
                        all_read = false;
                        report.problems.push(Problem::BadManifest {
                            name: name.clone(),
                            point,
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                report.points_checked += 1;
                for (i, c) in m.chunks.iter().enumerate() {
                    let ChunkRef::Block(d) = c else { continue };
                    used.insert(*d);
                    let chunk = i as u64;
                    let path = self.block_path(d);
                    let expected = chunk_len(m.disk.virtual_size, m.chunk_size, chunk);
                    let (name, point) = (name.clone(), point);
                    match blocks.get(d) {
                        None => report.problems.push(Problem::MissingBlock {
                            name,
                            point,
                            chunk,
                            path,
                        }),
                        Some(None) => report.problems.push(Problem::DamagedBlock {
                            name,
                            point,
                            chunk,
                            path,
                        }),
                        Some(Some(actual)) if *actual != expected => {
                            report.problems.push(Problem::WrongLength {
                                name,
                                point,
                                chunk,
                                path,
                                expected,
                                actual: *actual,
                            })
                        }
                        Some(Some(_)) => {}
                    }
                }
            }
        }
        if all_read {
            for f in self.block_files()? {
                if f.digest.is_some_and(|d| !used.contains(&d)) {
                    report.leftovers.push(Leftover::UnreferencedBlock {
                        path: f.path,
                        len: f.len,
                    });
                }
            }
        }
        for path in self.temp_files()? {
            let len = fs::symlink_metadata(&path).map_or(0, |m| m.len());
            report.leftovers.push(Leftover::TempFile { path, len });
        }
        Ok(report)
    }
}
