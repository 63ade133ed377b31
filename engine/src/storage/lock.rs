//! Advisory whole-file locks between processes: a writer holds an exclusive lock, readers
//! a shared one, so two commands never write one image at once and a reader never sees a
//! half-done write. The lock belongs to the open file and ends when it is closed (or the
//! process dies), so a killed command never leaves a stale lock behind.

use std::fs::{File, TryLockError};
use std::io;

/// Takes an exclusive (writer) or shared (reader) lock without waiting; keep the [`Held`]
/// as long as the file. A file held by another process fails with `ErrorKind::WouldBlock`
/// and a message naming the holder where the system tells it (on Linux: pid and command
/// line); one held by this process through another open file, with
/// `ErrorKind::ResourceBusy`.
pub(crate) fn try_lock(file: &File, exclusive: bool) -> io::Result<Held> {
    let r = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match r {
        Ok(()) => Ok(Held::new(file)),
        // Held by this very process (the file opened twice): waiting would never end.
        Err(TryLockError::WouldBlock) if held_by_this_process(file) => Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "locked by this process (the file is opened twice, e.g. twice in one chain)",
        )),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("locked by {}", holder(file)),
        )),
        // A file system without locks (rare) still serves the image.
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            Ok(Held::new(file))
        }
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Whether this process holds the lock on `file` through another open file: Linux lists
/// the holders in /proc/locks.
#[cfg(not(windows))]
fn held_by_this_process(file: &File) -> bool {
    holder_pid(file) == Some(std::process::id())
}

/// A lock taken by [`try_lock`]; on Unix the open file itself is the record.
#[cfg(not(windows))]
#[derive(Debug)]
pub(crate) struct Held;

#[cfg(not(windows))]
impl Held {
    fn new(_file: &File) -> Held {
        Held
    }
}

/// Windows does not tell whose a lock is, and a second open file of one process conflicts
/// like another process's: the files this process holds locked are listed here by their
/// identity (volume serial and file index), each until its [`Held`] is dropped.
#[cfg(windows)]
static HELD: std::sync::Mutex<Vec<(u64, same_file::Handle)>> = std::sync::Mutex::new(Vec::new());

#[cfg(windows)]
fn identity(file: &File) -> Option<same_file::Handle> {
    same_file::Handle::from_file(file.try_clone().ok()?).ok()
}

#[cfg(windows)]
fn held_by_this_process(file: &File) -> bool {
    let Some(id) = identity(file) else {
        return false;
    };
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.iter().any(|(_, h)| *h == id)
}

/// A lock taken by [`try_lock`], listed in [`HELD`] while it lives.
#[cfg(windows)]
#[derive(Debug)]
pub(crate) struct Held(Option<u64>);

#[cfg(windows)]
impl Held {
    fn new(file: &File) -> Held {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let Some(id) = identity(file) else {
            return Held(None);
        };
        let key = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HELD.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key, id));
        Held(Some(key))
    }
}

#[cfg(windows)]
impl Drop for Held {
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            HELD.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(k, _)| *k != key);
        }
    }
}

/// Who holds a lock on `file`: "another process (pid N: command line)" when known.
fn holder(file: &File) -> String {
    match holder_pid(file) {
        Some(pid) => match command_line(pid) {
            Some(cmd) => format!("another process (pid {pid}: {cmd})"),
            None => format!("another process (pid {pid})"),
        },
        None => "another process".into(),
    }
}

#[cfg(target_os = "linux")]
fn holder_pid(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().ok()?;
    let dev = m.dev();
    // The kernel's encoding of a device number (see makedev(3)); /proc/locks prints hex.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", m.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 4242 fe:00:6111417 0 EOF": the pid precedes the file id.
    let pids: Vec<u32> = locks
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let at = f.iter().position(|w| *w == id)?;
            f.get(at.checked_sub(1)?)?.parse().ok()
        })
        .collect();
    let me = std::process::id();
    pids.iter()
        .copied()
        .find(|&p| p != me)
        .or(pids.first().copied())
}

#[cfg(not(target_os = "linux"))]
fn holder_pid(_file: &File) -> Option<u32> {
    None
}

/// A process's command line, its arguments joined by spaces, cut to a readable length.
fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .enumerate()
        // The program by its name, not the folder it was started from.
        .map(|(i, a)| match (i, a.rsplit_once('/')) {
            (0, Some((_, name))) => name.to_string(),
            _ => a,
        })
        .collect();
    let mut cmd = args.join(" ");
    if cmd.is_empty() {
        return None;
    }
    if cmd.chars().count() > 200 {
        cmd = cmd.chars().take(200).collect::<String>() + "...";
    }
    Some(cmd)
}
