//! The agent's loop. Each write goes to the disk, the disk is flushed (`sync_data`:
//! FlushFileBuffers on Windows, fdatasync on Linux), and only then is the write's line
//! appended to the log and the log flushed: a line in the log is a write the disk holds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::data;
use crate::log::{Entry, Header, LOG_VERSION};
use crate::plan::{Plan, PlanError};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{path} exists: the agent never overwrites a log (give a new path)")]
    LogExists { path: PathBuf },
    #[error("{path}: {len} bytes, smaller than --size {size}")]
    DiskTooSmall { path: PathBuf, len: u64, size: u64 },
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> AgentError + 'a {
    move |source| AgentError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub writes: u64,
    pub bytes: u64,
}

/// Runs `plan`, logging to `log` (a new file). With `create`, the disk is a new file of
/// the plan's size; otherwise it must exist (a file or a device) and is written in place.
pub fn run(plan: &Plan, log: &Path, create: bool) -> Result<Summary, AgentError> {
    plan.check()?;
    let mut log_file = match OpenOptions::new().write(true).create_new(true).open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(AgentError::LogExists {
                path: log.to_path_buf(),
            })
        }
        Err(e) => return Err(io(log, "create the log")(e)),
    };
    let disk_path = plan.disk.as_path();
    let disk = if create {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(disk_path)
            .map_err(io(disk_path, "create the disk"))?;
        f.set_len(plan.size)
            .map_err(io(disk_path, "size the disk"))?;
        f
    } else {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(disk_path)
            .map_err(io(disk_path, "open the disk"))?;
        let meta = f.metadata().map_err(io(disk_path, "stat the disk"))?;
        // A device reports no length here; only a file is checked.
        if meta.is_file() && meta.len() < plan.size {
            return Err(AgentError::DiskTooSmall {
                path: plan.disk.clone(),
                len: meta.len(),
                size: plan.size,
            });
        }
        f
    };
    let header = Header {
        hvsim_agent: LOG_VERSION,
        seed: plan.seed,
        disk: plan.disk.display().to_string(),
        size: plan.size,
    };
    append(&mut log_file, log, &header)?;
    let pause = (plan.rate > 0).then(|| Duration::from_micros(1_000_000 / u64::from(plan.rate)));
    let mut summary = Summary {
        writes: 0,
        bytes: 0,
    };
    for w in plan.writes() {
        let bytes = data::bytes(plan.seed, w.seq, w.len);
        write_at(&disk, &bytes, w.offset).map_err(io(disk_path, "write"))?;
        disk.sync_data().map_err(io(disk_path, "flush the disk"))?;
        let entry = Entry::new(w.seq, w.offset, &bytes, now_us());
        append(&mut log_file, log, &entry)?;
        summary.writes += 1;
        summary.bytes += w.len;
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    Ok(summary)
}

/// One JSON line, written whole and flushed to the log's disk.
fn append(file: &mut File, path: &Path, value: &impl serde::Serialize) -> Result<(), AgentError> {
    let mut line = serde_json::to_vec(value).expect("log lines serialise");
    line.push(b'\n');
    file.write_all(&line)
        .map_err(io(path, "append to the log"))?;
    file.sync_data().map_err(io(path, "flush the log"))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(unix)]
fn write_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut data: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !data.is_empty() {
        let n = file.seek_write(data, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log;

    fn plan(dir: &Path) -> Plan {
        Plan {
            disk: dir.join("disk.raw"),
            size: 256 * 1024,
            writes: 40,
            min_len: 4096,
            max_len: 12288,
            rate: 0,
            seed: 11,
        }
    }

    /// Every logged write is on the disk: the last one to touch each byte wins.
    #[test]
    fn the_disk_holds_every_logged_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path());
        let log_path = dir.path().join("agent.log");
        let s = run(&p, &log_path, true).unwrap();
        assert_eq!(s.writes, 40);
        let disk = std::fs::read(&p.disk).unwrap();
        assert_eq!(disk.len() as u64, p.size);
        let log = log::read(&log_path).unwrap();
        assert_eq!(log.entries.len(), 40);
        assert_eq!(s.bytes, log.entries.iter().map(|e| e.len).sum::<u64>());
        let mut expect = vec![0u8; p.size as usize];
        for e in &log.entries {
            let b = data::bytes(11, e.seq, e.len);
            expect[e.offset as usize..e.end() as usize].copy_from_slice(&b);
        }
        assert_eq!(disk, expect);
        assert!(log.entries.windows(2).all(|w| w[0].time_us <= w[1].time_us));
    }

    #[test]
    fn an_existing_log_or_a_short_disk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path());
        let log_path = dir.path().join("agent.log");
        std::fs::write(&log_path, b"keep").unwrap();
        let e = run(&p, &log_path, true).unwrap_err();
        assert!(matches!(e, AgentError::LogExists { .. }), "{e}");
        assert_eq!(std::fs::read(&log_path).unwrap(), b"keep");
        std::fs::write(&p.disk, vec![0u8; 4096]).unwrap();
        let e = run(&p, &dir.path().join("new.log"), false).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(": 4096 bytes, smaller than --size 262144"),
            "{e}"
        );
    }
}
