//! `hvsim vhdx ...`: the engine's VHDX images from the shell.

use crate::size::parse_size;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hvsim_engine::chain::{Merge, MergeProgress};
use hvsim_engine::vhdx::{convert, CheckReport, CommitPolicy, Severity, GIB, MIB};
use hvsim_engine::{CreateOptions, FileStorage, GuidGen, OpenOptions, ParentResolver, Vhdx};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Clone, Default)]
pub struct ParentArgs {
    /// A directory a parent disk may lie in (repeatable; default: the child's own directory).
    #[arg(long = "allow-parent-dir", value_name = "DIR", global = true)]
    allow_parent_dir: Vec<PathBuf>,
}

impl ParentArgs {
    fn open_options(&self, writable: bool) -> OpenOptions {
        OpenOptions {
            writable,
            parent_writable: false,
            resolver: ParentResolver {
                allowed_dirs: self.allow_parent_dir.clone(),
                ..ParentResolver::default()
            },
            ..OpenOptions::default()
        }
    }
}

#[derive(Subcommand)]
pub enum VhdxCommand {
    /// Create a fixed, dynamic or differencing image.
    Create {
        path: PathBuf,
        /// Virtual size (bytes or K/M/G/T); a differencing disk takes its parent's.
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
        #[arg(long, value_parser = parse_size)]
        block_size: Option<u64>,
        #[arg(long, default_value_t = 512)]
        logical_sector: u32,
        #[arg(long, default_value_t = 4096)]
        physical_sector: u32,
        #[arg(long)]
        fixed: bool,
        /// Make a differencing disk of this parent.
        #[arg(long)]
        parent: Option<PathBuf>,
    },
    /// Show an image's type, sizes, parent and allocation.
    Info {
        path: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        parents: ParentArgs,
    },
    /// Verify an image; exit 0 sound, 1 damaged, 3 usable with warnings (e.g. a pending log).
    Check {
        path: PathBuf,
        /// Replay a pending log and rewrite damaged redundant copies.
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        parents: ParentArgs,
    },
    /// Read virtual disk bytes (to stdout without -o).
    Read {
        path: PathBuf,
        #[arg(long, value_parser = parse_size)]
        offset: u64,
        #[arg(long, value_parser = parse_size)]
        length: u64,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        #[command(flatten)]
        parents: ParentArgs,
    },
    /// Write virtual disk bytes (from stdin without -i).
    Write {
        path: PathBuf,
        #[arg(long, value_parser = parse_size)]
        offset: u64,
        #[arg(short = 'i', long = "input")]
        input: Option<PathBuf>,
        #[command(flatten)]
        parents: ParentArgs,
    },
    /// Make a dynamic image from a raw disk image; all-zero blocks stay unallocated.
    Import {
        raw: PathBuf,
        path: PathBuf,
        #[arg(long, value_parser = parse_size)]
        block_size: Option<u64>,
        #[arg(long, default_value_t = 512)]
        logical_sector: u32,
        /// Make the image durable (fdatasync) before exiting; by default the operating
        /// system writes it back, as with cp or qemu-img convert.
        #[arg(long)]
        sync: bool,
    },
    /// Merge a differencing disk into its parent, then delete it
    ///
    /// Interrupted, it is resumed by running it again: the chain reads the same at every
    /// step of the merge.
    Merge {
        child: PathBuf,
        #[command(flatten)]
        parents: ParentArgs,
    },
    /// Write the virtual disk, flattened through its parent chain, to a raw file.
    Export {
        path: PathBuf,
        raw: PathBuf,
        /// Make the raw file durable (fdatasync) before exiting.
        #[arg(long)]
        sync: bool,
        #[command(flatten)]
        parents: ParentArgs,
    },
    /// Compare two images block by block (express full); exit 0 even when they differ.
    Diff(crate::diff_cmd::DiffArgs),
}

fn block_size_arg(v: Option<u64>) -> Result<Option<u32>> {
    v.map(|b| u32::try_from(b).context("block size too large"))
        .transpose()
}

fn open(path: &Path, parents: &ParentArgs, writable: bool) -> Result<Vhdx> {
    Vhdx::open_file(path, &parents.open_options(writable))
        .with_context(|| path.display().to_string())
}

pub fn run(cmd: VhdxCommand) -> Result<ExitCode> {
    match cmd {
        VhdxCommand::Create {
            path,
            size,
            block_size,
            logical_sector,
            physical_sector,
            fixed,
            parent,
        } => {
            if parent.is_none() && size.is_none() {
                bail!(
                    "{}: --size is required (except with --parent)",
                    path.display()
                );
            }
            let opts = CreateOptions {
                virtual_size: size.unwrap_or(0),
                block_size: block_size_arg(block_size)?,
                logical_sector_size: logical_sector,
                physical_sector_size: physical_sector,
                fixed,
                parent: parent.clone(),
                ..CreateOptions::default()
            };
            let v = Vhdx::create_file(&path, &opts).with_context(|| path.display().to_string())?;
            if let Some(sz) = size {
                if sz != v.virtual_size() {
                    let _ = std::fs::remove_file(&path);
                    bail!(
                        "{}: --size {sz} differs from the parent's size {}",
                        path.display(),
                        v.virtual_size()
                    );
                }
            }
            v.close().with_context(|| path.display().to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::Info {
            path,
            json,
            parents,
        } => {
            let v = open(&path, &parents, false)?;
            let info = v.info();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("file:                 {}", path.display());
                println!("disk type:            {}", info.disk_type);
                println!("virtual size:         {} bytes", info.virtual_size);
                println!("block size:           {} bytes", info.block_size);
                println!("logical sector size:  {}", info.logical_sector_size);
                println!("physical sector size: {}", info.physical_sector_size);
                println!(
                    "parent:               {}",
                    info.parent.as_deref().unwrap_or("none")
                );
                println!("allocated blocks:     {}", info.allocated_blocks);
                println!("file size:            {} bytes", info.file_size);
                println!(
                    "log pending:          {}",
                    if info.log_pending { "yes" } else { "no" }
                );
                println!("disk id:              {}", info.disk_id);
                println!("data write guid:      {}", info.data_write_guid);
                println!("creator:              {}", info.creator);
            }
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::Check {
            path,
            repair,
            json,
            parents,
        } => {
            let report = Vhdx::check_file(&path, &parents.open_options(false), repair);
            print_check(&path, &report, json)?;
            Ok(
                if report
                    .findings
                    .iter()
                    .any(|f| f.severity == Severity::Error)
                {
                    ExitCode::from(1)
                } else if report.findings.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                },
            )
        }
        VhdxCommand::Read {
            path,
            offset,
            length,
            output,
            parents,
        } => {
            let mut v = open(&path, &parents, false)?;
            let end = offset
                .checked_add(length)
                .filter(|&e| e <= v.virtual_size());
            if end.is_none() {
                bail!(
                    "{}: range {offset}+{length} lies outside the virtual disk ({} bytes)",
                    path.display(),
                    v.virtual_size()
                );
            }
            let mut out: Box<dyn Write> = match &output {
                Some(o) => Box::new(File::create(o).with_context(|| o.display().to_string())?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut buf = vec![0u8; (8 * MIB).min(length) as usize];
            let mut pos = offset;
            while pos < offset + length {
                let n = (offset + length - pos).min(buf.len() as u64) as usize;
                v.read(pos, &mut buf[..n])
                    .with_context(|| path.display().to_string())?;
                out.write_all(&buf[..n]).context("writing the output")?;
                pos += n as u64;
            }
            out.flush().context("writing the output")?;
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::Write {
            path,
            offset,
            input,
            parents,
        } => {
            let data = match &input {
                Some(i) => std::fs::read(i).with_context(|| i.display().to_string())?,
                None => {
                    let mut d = Vec::new();
                    std::io::stdin()
                        .lock()
                        .read_to_end(&mut d)
                        .context("reading stdin")?;
                    d
                }
            };
            let mut v = open(&path, &parents, true)?;
            v.write(offset, &data)
                .with_context(|| path.display().to_string())?;
            v.flush().with_context(|| path.display().to_string())?;
            v.close().with_context(|| path.display().to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::Import {
            raw,
            path,
            block_size,
            logical_sector,
            sync,
        } => import(
            &raw,
            &path,
            block_size_arg(block_size)?,
            logical_sector,
            sync,
        )
        .map(|_| ExitCode::SUCCESS),
        VhdxCommand::Merge { child, parents } => merge(&child, &parents).map(|_| ExitCode::SUCCESS),
        VhdxCommand::Export {
            path,
            raw,
            sync,
            parents,
        } => {
            let mut v = open(&path, &parents, false)?;
            export(&mut v, &path, &raw, sync).map(|_| ExitCode::SUCCESS)
        }
        VhdxCommand::Diff(args) => crate::diff_cmd::run(args),
    }
}

fn merge(child: &Path, parents: &ParentArgs) -> Result<()> {
    let opts = OpenOptions {
        parent_writable: true,
        ..parents.open_options(true)
    };
    let ctx = || child.display().to_string();
    let mut v = Vhdx::open_file(child, &opts).with_context(ctx)?;
    let parent_path = v
        .parent()
        .and_then(|p| p.path())
        .map(Path::to_path_buf)
        .with_context(|| format!("{}: not a differencing disk", child.display()))?;
    let mut m = Merge::start(&mut v, &mut GuidGen::from_entropy()).with_context(ctx)?;
    // No guest writes wait between steps here: big steps, few commits of the parent.
    let per_step = (GIB / v.geometry().block_size).max(1);
    let blocks = loop {
        match m.step(&mut v, per_step).with_context(ctx)? {
            MergeProgress::Running { .. } => {}
            MergeProgress::Complete => break m.cursor(),
        }
    };
    let parent = m.finish(v).with_context(ctx)?;
    parent
        .close()
        .with_context(|| parent_path.display().to_string())?;
    std::fs::remove_file(child).with_context(ctx)?;
    println!(
        "merged {} into {} ({blocks} blocks)",
        child.display(),
        parent_path.display()
    );
    Ok(())
}

fn print_check(path: &Path, report: &CheckReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for r in &report.repaired {
        println!("{}: repaired: {r}", path.display());
    }
    for f in &report.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        println!("{}: {sev}: {}", path.display(), f.message);
    }
    if report.findings.is_empty() {
        println!("{}: no problems found", path.display());
    }
    Ok(())
}

fn import(raw: &Path, path: &Path, block_size: Option<u32>, lss: u32, sync: bool) -> Result<()> {
    let src = File::open(raw).with_context(|| raw.display().to_string())?;
    let len = src
        .metadata()
        .with_context(|| raw.display().to_string())?
        .len();
    if len % u64::from(lss) != 0 {
        bail!(
            "{}: size {len} is not a multiple of the logical sector size {lss}",
            raw.display()
        );
    }
    let opts = CreateOptions {
        virtual_size: len,
        block_size,
        logical_sector_size: lss,
        ..CreateOptions::default()
    };
    let mut storage = FileStorage::create_new(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    if !sync {
        storage = storage.unsynced();
    }
    let result = (|| -> Result<()> {
        let mut v = Vhdx::create(Box::new(storage), &opts, None)?;
        // The file is new: nothing to protect from a crash until it is complete.
        v.set_commit_policy(CommitPolicy::OnFlush);
        convert::import_raw(&src, len, &mut v)?;
        v.close()?;
        Ok(())
    })();
    result
        .inspect_err(|_| {
            // Only the file this command created is removed.
            let _ = std::fs::remove_file(path);
        })
        .with_context(|| path.display().to_string())
}

fn export(v: &mut Vhdx, path: &Path, raw: &Path, sync: bool) -> Result<()> {
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(raw)
        .with_context(|| {
            format!(
                "{}: cannot create (an existing file is never overwritten)",
                raw.display()
            )
        })?;
    let result = (|| -> Result<()> {
        convert::export_raw(v, &out).with_context(|| path.display().to_string())?;
        if sync {
            out.sync_data().with_context(|| raw.display().to_string())?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(raw);
    }
    result
}
