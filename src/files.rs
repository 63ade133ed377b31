//! The files a command names: an engine error tied to its file (named once), and the
//! outputs every command creates the same way (see [`NewFile`]).

use anyhow::{anyhow, Context, Result};
use hvsim_engine::output::{NewFile, OutputError};
use hvsim_engine::VhdxError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An engine error with the file it concerns, named once: a lock or output error names
/// its file already (which may be a parent in the chain).
pub fn in_file(e: VhdxError, path: &Path) -> anyhow::Error {
    match e {
        VhdxError::Locked { .. } | VhdxError::Output(_) => e.into(),
        e => anyhow::Error::new(e).context(path.display().to_string()),
    }
}

/// Starts an output file (see [`NewFile`]): written under a temporary name, renamed into
/// place when complete, never over `inputs`, over an existing file only with `force`.
pub fn new_output(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<NewFile> {
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    NewFile::create(dest, force, &inputs).map_err(with_force_hint)
}

/// A report file (JUnit, JSON) the user asked for: written whole under a temporary name,
/// then renamed over what an earlier report left there; never over one of `inputs`.
pub fn write_report(path: &Path, bytes: &[u8], inputs: &[PathBuf]) -> Result<()> {
    let mut f = new_output(path, true, inputs)?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    commit_output(f, false)
}

/// Commits an output file, naming `--force` when an existing file is in the way.
pub fn commit_output(out: NewFile, sync: bool) -> Result<()> {
    out.commit(sync).map(drop).map_err(with_force_hint)
}

fn with_force_hint(e: OutputError) -> anyhow::Error {
    match e {
        OutputError::Exists { .. } => anyhow!("{e} (--force replaces it)"),
        e => e.into(),
    }
}
