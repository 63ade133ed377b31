//! Making the names in a folder durable: after a rename or a new name, the folder itself
//! is synced, or a crash can lose the name while the bytes it names are safe.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Syncs the folder `dir`. Opened as a directory only: a FIFO swapped in under its name
/// fails, it is not waited on.
#[cfg(unix)]
pub(crate) fn sync(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK)
        .open(dir)?
        .sync_all()
}

/// Checks that `dir` is a folder. Windows has no flush of a folder's names (a folder
/// handle refuses FlushFileBuffers): NTFS makes a rename durable through its own journal.
#[cfg(windows)]
pub(crate) fn sync(dir: &Path) -> io::Result<()> {
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_BACKUP_SEMANTICS;
    let m = OpenOptions::new()
        .read(true)
        // Only with this flag does CreateFile open a folder.
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(dir)?
        .metadata()?;
    if m.is_dir() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{}, not a directory", super::regular::kind(&m.file_type())),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_folder_syncs_and_a_file_is_no_folder() {
        let dir = tempfile::tempdir().unwrap();
        super::sync(dir.path()).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(super::sync(&file).is_err());
    }
}
