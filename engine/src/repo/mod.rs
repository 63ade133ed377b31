//! A backup repository: a content-addressed block store with recovery points (R18).
//!
//! Layout of a repository directory:
//!
//! ```text
//! hvsim-repo.json                 format, version, chunk size
//! blocks/<2 hex>/<64 hex>         one block: the raw bytes of a chunk, named by BLAKE3
//! points/<name>/<point>.json      a recovery point's manifest (point: 8 digits, from 1)
//! points/<name>/last-point        the last point number issued for the disk
//! tmp/                            temporary files, renamed into place when complete
//! ```
//!
//! A virtual disk is cut into chunks of the repository's chunk size (2 MiB by default:
//! Hyper-V's block size for differencing disks and a divisor of its 32 MiB default, so
//! chunks do not straddle blocks; a change inside a chunk costs one chunk). The last chunk
//! of a disk whose size is not a multiple is shorter. All-zero chunks are not stored.
//! Identical chunks are stored once, whichever point, disk or VM they come from.
//!
//! Every file is written to `tmp/`, synced, renamed into place, and its directory synced;
//! a backup writes its blocks first and its manifest last, so a failure at any instant
//! leaves the points already there intact and at worst some unreferenced blocks, which
//! [`Repository::gc`] reclaims. One process writes to a repository at a time; verify
//! holds the same lock shared, so it never mistakes a writer's work for leftovers.
//!
//! Nothing is trusted for its name: a backup compares a stored block with the chunk
//! before a point relies on it, a restore checks each block's length and digest, and
//! only regular files are opened (see `fsio`).
//!
//! One concept per file: `digest` (block names), `manifest` (points), `store` (blocks),
//! `backup`, `restore` (R16, I6), `retention` (pruning and reclaiming), `verify`, and
//! `fsio` (atomic writes, injected failures).

mod backup;
mod digest;
mod error;
mod fsio;
mod manifest;
mod restore;
mod retention;
mod store;
mod verify;

pub use backup::BackupReport;
pub use digest::{ChunkRef, Digest};
pub use error::{RepoError, Result};
pub use fsio::{FailAt, Fault};
pub use manifest::{
    chunk_count, chunk_len, BackupStats, DiskGeometry, DiskKind, Manifest, MAX_CHUNKS,
};
pub use restore::{RestoreReport, RestoreTarget};
pub use retention::{GcReport, PruneReport};
pub use store::StoreUsage;
pub use verify::{Leftover, Problem, VerifyReport};

use error::io_at;
use fsio::{
    ensure_dir, ensure_own_dir, open_regular, open_regular_with, read_regular, sync_dir,
    AtomicWriter,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "hvsim-repo.json";
pub const REPO_FORMAT: &str = "hvsim-repository";
pub const REPO_VERSION: u32 = 1;
pub const DEFAULT_CHUNK_SIZE: u64 = 2 << 20;
const LAST_POINT_FILE: &str = "last-point";

#[derive(Serialize, Deserialize)]
struct Config {
    format: String,
    version: u32,
    chunk_size: u64,
}

/// An open repository directory.
#[derive(Debug)]
pub struct Repository {
    root: PathBuf,
    chunk_size: u64,
    writer: AtomicWriter,
    /// Held from the first change until the repository is closed: one writer at a time.
    /// An advisory lock, so a writer that dies releases it.
    lock: Option<std::fs::File>,
}

/// The file the writer's lock is taken on.
const LOCK_FILE: &str = "hvsim-repo.lock";

/// The longest a manifest can be: one line of at most 80 bytes per chunk, for the most
/// chunks a point may list, and some for the rest. A longer file is refused unread.
const MANIFEST_MAX_LEN: u64 = manifest::MAX_CHUNKS * 80 + (64 << 10);

/// Checks a disk name: it becomes a directory name, so 1 to 64 of `A-Z a-z 0-9 . _ -`,
/// not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(RepoError::BadName {
            name: name.into(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("must have 1 to 64 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("must not start with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return bad("may hold only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

impl Repository {
    /// Makes a repository in `dir` (created when missing, else it must be empty), with
    /// the default chunk size.
    pub fn init(dir: &Path) -> Result<Repository> {
        Self::init_with_chunk_size(dir, DEFAULT_CHUNK_SIZE)
    }

    /// Makes a repository whose chunk size is a power of two from 4 KiB to 256 MiB.
    pub fn init_with_chunk_size(dir: &Path, chunk_size: u64) -> Result<Repository> {
        if !chunk_size.is_power_of_two() || !(4096..=256 << 20).contains(&chunk_size) {
            return Err(RepoError::Invalid(format!(
                "chunk size {chunk_size} must be a power of two from 4 KiB to 256 MiB"
            )));
        }
        ensure_dir(dir)?;
        let mut entries = fs::read_dir(dir).map_err(io_at(dir, "listing the directory"))?;
        if entries.next().is_some() {
            return Err(RepoError::NotEmpty { path: dir.into() });
        }
        for sub in ["blocks", "points", "tmp"] {
            ensure_own_dir(&dir.join(sub))?;
        }
        let mut repo = Repository {
            root: dir.to_path_buf(),
            chunk_size,
            writer: AtomicWriter::new(dir.join("tmp")),
            lock: None,
        };
        let config = Config {
            format: REPO_FORMAT.into(),
            version: REPO_VERSION,
            chunk_size,
        };
        let bytes = serde_json::to_vec_pretty(&config)
            .map_err(|e| RepoError::Invalid(format!("serialising the configuration: {e}")))?;
        repo.writer.write(&dir.join(CONFIG_FILE), &bytes)?;
        sync_dir(dir)?;
        Ok(repo)
    }

    /// Opens an existing repository.
    pub fn open(dir: &Path) -> Result<Repository> {
        let path = dir.join(CONFIG_FILE);
        let bytes = match read_regular(&path, 64 << 10) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepoError::NotARepository { path: dir.into() })
            }
            Err(e) => return Err(io_at(&path, "reading")(e)),
        };
        let bad = |reason: String| RepoError::BadFile {
            path: path.clone(),
            reason,
        };
        let c: Config = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not a valid repository configuration: {e}")))?;
        if c.format != REPO_FORMAT || c.version != REPO_VERSION {
            return Err(bad(format!(
                "format {:?} version {} (expected {REPO_FORMAT:?} version {REPO_VERSION})",
                c.format, c.version
            )));
        }
        if !c.chunk_size.is_power_of_two() || !(4096..=256 << 20).contains(&c.chunk_size) {
            return Err(bad(format!("invalid chunk size {}", c.chunk_size)));
        }
        for sub in ["blocks", "points", "tmp"] {
            ensure_own_dir(&dir.join(sub))?;
        }
        Ok(Repository {
            root: dir.to_path_buf(),
            chunk_size: c.chunk_size,
            writer: AtomicWriter::new(dir.join("tmp")),
            lock: None,
        })
    }

    /// The lock file (a regular file: never a FIFO to wait on) and its path.
    fn open_lock_file(&self) -> Result<(PathBuf, std::fs::File)> {
        let path = self.root.join(LOCK_FILE);
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).truncate(false).write(true);
        let f =
            open_regular_with(&path, &mut opts).map_err(io_at(&path, "opening the lock file"))?;
        Ok((path, f))
    }

    /// Takes the writer's lock, or says that another process holds it.
    pub(crate) fn lock_for_writing(&mut self) -> Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let (path, f) = self.open_lock_file()?;
        match f.try_lock() {
            Ok(()) => {
                self.lock = Some(f);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(RepoError::Busy { path }),
            Err(std::fs::TryLockError::Error(e)) => Err(io_at(&path, "locking the repository")(e)),
        }
    }

    /// Takes the lock shared for a reader that needs a repository no writer changes
    /// meanwhile (verify); `None` when this handle holds the writer's lock already. The
    /// lock lasts as long as the returned file.
    pub(crate) fn lock_for_reading(&self) -> Result<Option<std::fs::File>> {
        if self.lock.is_some() {
            return Ok(None);
        }
        let path = self.root.join(LOCK_FILE);
        let f = match self.open_lock_file() {
            Ok((_, f)) => f,
            // A repository this process may not change (read-only media, another
            // owner): a shared lock needs no write access, and without a lock file no
            // writer has run since it was made read-only.
            Err(RepoError::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                match open_regular(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io_at(&path, "opening the lock file")(e)),
                }
            }
            Err(e) => return Err(e),
        };
        match f.try_lock_shared() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Err(RepoError::Busy { path }),
            Err(std::fs::TryLockError::Error(e)) => Err(io_at(&path, "locking the repository")(e)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Makes a later write of this handle fail (tests of failure atomicity).
    pub fn inject_fault(&mut self, fault: Option<Fault>) {
        self.writer.fault = fault;
    }

    fn points_dir(&self) -> PathBuf {
        self.root.join("points")
    }

    fn disk_dir(&self, name: &str) -> PathBuf {
        self.points_dir().join(name)
    }

    fn manifest_path(&self, name: &str, point: u64) -> PathBuf {
        self.disk_dir(name).join(format!("{point:08}.json"))
    }

    /// Names of the disks that have (or had) recovery points, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let dir = self.points_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_at(&dir, "listing the directory"))? {
            let e = e.map_err(io_at(&dir, "listing the directory"))?;
            if let Some(n) = e.file_name().to_str() {
                // A link is not followed out of the repository.
                if check_name(n).is_ok() && e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(n.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Recovery point numbers of a disk, ascending (empty for an unknown disk).
    pub fn points(&self, name: &str) -> Result<Vec<u64>> {
        check_name(name)?;
        let dir = self.disk_dir(name);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&dir, "listing the directory")(e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(io_at(&dir, "listing the directory"))?;
            let file = e.file_name();
            let Some(stem) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            // Only the one spelling a manifest is written under: `1.json` beside
            // `00000001.json` would list point 1 twice (and retention drop it twice).
            if let Ok(n) = stem.parse::<u64>() {
                if stem == format!("{n:08}") {
                    out.push(n);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Reads and checks one manifest.
    pub fn manifest(&self, name: &str, point: u64) -> Result<Manifest> {
        check_name(name)?;
        let path = self.manifest_path(name, point);
        let bytes = match read_regular(&path, MANIFEST_MAX_LEN) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepoError::NoSuchPoint {
                    name: name.into(),
                    point,
                })
            }
            Err(e) => return Err(io_at(&path, "reading")(e)),
        };
        Manifest::parse(&path, &bytes, name, point, self.chunk_size)
    }

    /// The manifest of `point`, or of the disk's latest point.
    pub fn resolve(&self, name: &str, point: Option<u64>) -> Result<Manifest> {
        match point {
            Some(p) => self.manifest(name, p),
            None => match self.points(name)?.last() {
                Some(&p) => self.manifest(name, p),
                None => Err(RepoError::NoSuchDisk { name: name.into() }),
            },
        }
    }

    /// Every manifest of the repository, by disk name then point.
    pub fn all_manifests(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for name in self.names()? {
            for p in self.points(&name)? {
                out.push(self.manifest(&name, p)?);
            }
        }
        Ok(out)
    }

    /// The number the next point of `name` gets: one more than any issued before, even
    /// if that point was dropped since. Numbers never wrap: past the largest, backups of
    /// the disk are refused (a wrap to 0 would sort the newest point first, and retention
    /// would drop it).
    fn next_point(&self, name: &str) -> Result<u64> {
        let last_path = self.disk_dir(name).join(LAST_POINT_FILE);
        let issued = match read_regular(&last_path, 64) {
            Ok(b) => {
                let s = String::from_utf8_lossy(&b);
                s.trim().parse::<u64>().map_err(|_| RepoError::BadFile {
                    path: last_path.clone(),
                    reason: format!("{:?} is not a point number", s.trim()),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_at(&last_path, "reading")(e)),
        };
        let listed = self.points(name)?.last().copied().unwrap_or(0);
        issued
            .max(listed)
            .checked_add(1)
            .ok_or_else(|| RepoError::BadFile {
                path: last_path,
                reason: format!(
                    "point {} was issued: the largest point number, no more can follow",
                    issued.max(listed)
                ),
            })
    }

    /// Reserves the point's number (so it is never issued again), then writes the
    /// manifest atomically: the point exists exactly when this returns `Ok`.
    fn commit_manifest(&mut self, m: &Manifest) -> Result<()> {
        let dir = self.disk_dir(&m.name);
        let new_dir = !dir.exists();
        ensure_own_dir(&dir)?;
        if new_dir {
            sync_dir(&self.points_dir())?;
        }
        self.writer.write(
            &dir.join(LAST_POINT_FILE),
            format!("{}\n", m.point).as_bytes(),
        )?;
        self.writer
            .write(&self.manifest_path(&m.name, m.point), &m.to_bytes()?)?;
        sync_dir(&dir)
    }
}
