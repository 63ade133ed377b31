//! Files a command creates. The bytes go to a temporary name in the destination's own
//! folder (`.NAME.hvsim-tmp-PID`) and the file takes its final name only when complete, so
//! an interrupted command never leaves a plausible file under that name. The final name
//! never replaces an existing file unless the caller asks to, and never one of the
//! command's own inputs, asked or not.

use crate::storage::{lock, FileStorage};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{} already exists and is not replaced", path.display())]
    Exists { path: PathBuf },
    #[error("{} is the same file as the input {}: a command never writes over its own input", path.display(), input.display())]
    IsInput { path: PathBuf, input: PathBuf },
    #[error("{name:?} is not a plain file name (no folder, no \"..\")")]
    NotPlainName { name: String },
    #[error("{}: {doing}: {source}", path.display())]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: io::Error,
    },
    #[error("{} is a folder: name the file to write", path.display())]
    IsFolder { path: PathBuf },
}

fn io_err(path: &Path, doing: &'static str) -> impl FnOnce(io::Error) -> OutputError {
    let path = path.to_path_buf();
    move |source| OutputError::Io {
        path,
        doing,
        source,
    }
}

/// A file being written under a temporary name; [`commit`](NewFile::commit) gives it its
/// final name. Dropped uncommitted (an error on the way), the temporary file is removed.
#[derive(Debug)]
pub struct NewFile {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    replace: bool,
    inputs: Vec<PathBuf>,
    committed: bool,
    /// Dropped after `file`, whose closing ends the lock.
    _lock: lock::Held,
}

/// The identity of a file (device and inode), following symbolic links. Read from the
/// metadata, without opening the file (a FIFO would make the open wait).
#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The identity of a file (volume serial number and file index), following symbolic
/// links. std gives them only from an open handle (and only on nightly), so the file is
/// opened for its attributes alone; an open on Windows never waits.
#[cfg(windows)]
fn file_id(path: &Path) -> Option<same_file::Handle> {
    same_file::Handle::from_path(path).ok()
}

/// Whether two paths name the same file (device and inode, through links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    file_id(a).is_some_and(|id| file_id(b).as_ref() == Some(&id))
}

/// The folder a path names its file in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Refuses a destination that is one of the inputs, or that exists unless `replace`.
fn check_dest(dest: &Path, replace: bool, inputs: &[PathBuf]) -> Result<(), OutputError> {
    if let Some(id) = file_id(dest) {
        if let Some(input) = inputs.iter().find(|i| file_id(i).as_ref() == Some(&id)) {
            return Err(OutputError::IsInput {
                path: dest.to_path_buf(),
                input: input.clone(),
            });
        }
    }
    // Refused now, not at the rename after all the work (even when replacing).
    if fs::metadata(dest).is_ok_and(|m| m.is_dir()) {
        return Err(OutputError::IsFolder {
            path: dest.to_path_buf(),
        });
    }
    if !replace && fs::symlink_metadata(dest).is_ok() {
        return Err(OutputError::Exists {
            path: dest.to_path_buf(),
        });
    }
    Ok(())
}

impl NewFile {
    /// Starts the file `dest`. Refused at once when `dest` exists (unless `replace`) or is
    /// one of `inputs` (the same file by device and inode, through links), so no work is
    /// done for an output that cannot be written.
    pub fn create(dest: &Path, replace: bool, inputs: &[&Path]) -> Result<NewFile, OutputError> {
        let inputs: Vec<PathBuf> = inputs.iter().map(|p| p.to_path_buf()).collect();
        check_dest(dest, replace, &inputs)?;
        let name = dest
            .file_name()
            .ok_or_else(|| OutputError::NotPlainName {
                name: dest.display().to_string(),
            })?
            .to_string_lossy()
            .into_owned();
        let pid = std::process::id();
        for n in 0u32..100 {
            let tmp = folder_of(dest).join(match n {
                0 => format!(".{name}.hvsim-tmp-{pid}"),
                n => format!(".{name}.hvsim-tmp-{pid}-{n}"),
            });
            let created = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp);
            match created {
                Ok(file) => {
                    // Held through the rename: nobody opens the image while it is written.
                    let lock = lock::try_lock(&file, true).map_err(io_err(&tmp, "locking"))?;
                    return Ok(NewFile {
                        file,
                        tmp,
                        dest: dest.to_path_buf(),
                        replace,
                        inputs,
                        committed: false,
                        _lock: lock,
                    });
                }
                // A leftover of a killed run that had this process id: never touched.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(dest, "creating a temporary file beside it")(e)),
            }
        }
        Err(OutputError::Exists {
            path: folder_of(dest).join(format!(".{name}.hvsim-tmp-{pid}-99")),
        })
    }

    /// Starts the file `name` in `dir`, never replacing an existing file. `name` must be a
    /// plain file name: a name that would lead out of `dir` is refused.
    pub fn create_new_in(dir: &Path, name: &str) -> Result<NewFile, OutputError> {
        let mut parts = Path::new(name).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(n)), None) if n == name => {}
            _ => {
                return Err(OutputError::NotPlainName {
                    name: name.to_string(),
                })
            }
        }
        NewFile::create(&dir.join(name), false, &[])
    }

    /// The temporary file, to write through.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the bytes are until the commit (`.NAME.hvsim-tmp-PID`).
    pub fn temporary_path(&self) -> &Path {
        &self.tmp
    }

    /// The temporary file as engine storage (an image being created).
    pub fn storage(&self) -> Result<FileStorage, OutputError> {
        let f = self
            .file
            .try_clone()
            .map_err(io_err(&self.tmp, "duplicating the file handle"))?;
        Ok(FileStorage::from_file(f, true))
    }

    /// Gives the file its final name. With `sync`, the bytes and the name are durable when
    /// this returns. Without `replace`, an existing file of that name (even one created
    /// meanwhile) makes it fail and nothing is replaced.
    pub fn commit(mut self, sync: bool) -> Result<PathBuf, OutputError> {
        if sync {
            self.file.sync_all().map_err(io_err(&self.tmp, "syncing"))?;
        }
        check_dest(&self.dest, self.replace, &self.inputs)?;
        if self.replace {
            fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.dest, "renaming into place"))?;
        } else {
            self.link_no_replace()?;
        }
        self.committed = true;
        if sync {
            let dir = folder_of(&self.dest);
            crate::storage::folder::sync(dir).map_err(io_err(dir, "syncing the folder"))?;
        }
        Ok(self.dest.clone())
    }

    /// A hard link fails when the name exists, so it cannot replace a file that appeared
    /// since the check; a file system without hard links falls back to check-then-rename.
    fn link_no_replace(&self) -> Result<(), OutputError> {
        match fs::hard_link(&self.tmp, &self.dest) {
            Ok(()) => fs::remove_file(&self.tmp).map_err(io_err(&self.tmp, "removing")),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(OutputError::Exists {
                path: self.dest.clone(),
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
                ) =>
            {
                if fs::symlink_metadata(&self.dest).is_ok() {
                    return Err(OutputError::Exists {
                        path: self.dest.clone(),
                    });
                }
                fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.dest, "renaming into place"))
            }
            Err(e) => Err(io_err(&self.dest, "linking into place")(e)),
        }
    }
}

impl Write for NewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn only_plain_names_are_created_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", ".", "..", "a/b", "../x", "/etc/x", "x/"] {
            let r = NewFile::create_new_in(dir.path(), bad);
            assert!(
                matches!(r, Err(OutputError::NotPlainName { .. })),
                "{bad:?}: {r:?}"
            );
        }
        let mut f = NewFile::create_new_in(dir.path(), "web01.vhdx").unwrap();
        f.write_all(b"disk").unwrap();
        assert_eq!(
            names(dir.path()),
            [format!(".web01.vhdx.hvsim-tmp-{}", std::process::id())]
        );
        f.commit(true).unwrap();
        assert_eq!(names(dir.path()), ["web01.vhdx"]);
        assert_eq!(fs::read(dir.path().join("web01.vhdx")).unwrap(), b"disk");
        let r = NewFile::create_new_in(dir.path(), "web01.vhdx");
        assert!(matches!(r, Err(OutputError::Exists { .. })), "{r:?}");
    }

    #[test]
    fn a_file_that_appears_meanwhile_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.raw");
        let mut f = NewFile::create(&dest, false, &[]).unwrap();
        f.write_all(b"new").unwrap();
        fs::write(&dest, b"theirs").unwrap();
        let r = f.commit(false);
        assert!(matches!(r, Err(OutputError::Exists { .. })), "{r:?}");
        assert_eq!(fs::read(&dest).unwrap(), b"theirs");
        assert_eq!(
            names(dir.path()),
            ["out.raw"],
            "the temporary file is removed"
        );
    }

    // A symbolic link to a folder, as Unix makes it, among the destinations.
    #[cfg(unix)]
    #[test]
    fn a_folder_is_never_a_destination_even_when_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out");
        fs::create_dir(&folder).unwrap();
        std::os::unix::fs::symlink("out", dir.path().join("link")).unwrap();
        for dest in [folder.clone(), dir.path().join("link")] {
            for replace in [false, true] {
                let r = NewFile::create(&dest, replace, &[]);
                assert!(matches!(r, Err(OutputError::IsFolder { .. })), "{r:?}");
            }
        }
        assert_eq!(names(dir.path()), ["link", "out"], "no temporary file");
    }

    #[test]
    fn replace_never_reaches_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.vhdx");
        fs::write(&input, b"input").unwrap();
        let hard = dir.path().join("hard");
        fs::hard_link(&input, &hard).unwrap();
        // Windows: a symbolic link needs a privilege a test does not have.
        #[cfg(unix)]
        std::os::unix::fs::symlink("in.vhdx", dir.path().join("link")).unwrap();
        for dest in [
            input.clone(),
            hard,
            #[cfg(unix)]
            dir.path().join("link"),
        ] {
            let r = NewFile::create(&dest, true, &[&input]);
            assert!(matches!(r, Err(OutputError::IsInput { .. })), "{r:?}");
        }
        let other = dir.path().join("other");
        fs::write(&other, b"old").unwrap();
        let mut f = NewFile::create(&other, true, &[&input]).unwrap();
        f.write_all(b"new").unwrap();
        f.commit(false).unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"new");
        assert_eq!(fs::read(&input).unwrap(), b"input");
    }
}
