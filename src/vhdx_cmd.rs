//! `hvsim vhdx ...`: the engine's images from the shell. VHDX, and VHD (2008 R2's format):
//! an existing image's format is told by its content, a new one's by `--format` or its
//! name (`.vhd`, `.avhd`).

use crate::files::{commit_output, in_file, new_output};
use crate::size::parse_size;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use hvsim_engine::chain::{Merge, MergeProgress};
use hvsim_engine::format::{detect, AnyDisk, ImageFormat};
use hvsim_engine::output::same_file;
use hvsim_engine::vhd::{self, Vhd, VhdType};
use hvsim_engine::vhdx::{convert, CheckReport, CommitPolicy, Severity, GIB, MIB};
use hvsim_engine::{
    CreateOptions, GuidGen, OpenOptions, ParentResolver, Vhdx, VhdxError, VirtualDisk,
    VirtualDiskMut,
};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Clone, Default)]
pub struct ParentArgs {
    /// A directory a parent disk may lie in (repeatable; default: the child's own directory).
    #[arg(long = "allow-parent-dir", value_name = "DIR", global = true)]
    allow_parent_dir: Vec<PathBuf>,
    /// When another process holds a lock on an image, wait for it instead of failing.
    #[arg(long, global = true)]
    wait: bool,
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

/// The format of a new image.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum NewFormat {
    Vhdx,
    /// VHD, every block in place (2008 R2's fixed disk).
    VhdFixed,
    /// VHD, blocks allocated on first write (2008 R2's dynamically expanding disk).
    VhdDynamic,
}

/// The format of a new image: `--format`, else the parent's, else the name's extension
/// (`.vhd` and `.avhd` are VHD, anything else VHDX).
fn new_format(
    path: &Path,
    format: Option<NewFormat>,
    parent: Option<&Path>,
    fixed: bool,
) -> NewFormat {
    if let Some(f) = format {
        return f;
    }
    let vhd = match parent {
        Some(p) => detect(p) == ImageFormat::Vhd,
        None => path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("vhd") || e.eq_ignore_ascii_case("avhd")),
    };
    match (vhd, fixed) {
        (false, _) => NewFormat::Vhdx,
        (true, true) => NewFormat::VhdFixed,
        (true, false) => NewFormat::VhdDynamic,
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
        /// Make a differencing disk of this parent (of the parent's format).
        #[arg(long)]
        parent: Option<PathBuf>,
        /// Default: the parent's format, else by the name (.vhd/.avhd: VHD), else VHDX.
        #[arg(long, value_enum)]
        format: Option<NewFormat>,
    },
    /// Show an image's type, sizes, parent and allocation.
    Info {
        path: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        parents: ParentArgs,
    },
    /// Verify an image; exit 0 sound, 1 damaged, 2 not checked (missing, locked, not a
    /// regular file), 3 usable with warnings (e.g. a pending log).
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
        /// Replace an existing output file (never the image itself).
        #[arg(long, requires = "output")]
        force: bool,
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
        /// Replace an existing image of that name (never the raw input).
        #[arg(long)]
        force: bool,
        /// Default: by the name (.vhd: VHD dynamic), else VHDX.
        #[arg(long, value_enum)]
        format: Option<NewFormat>,
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
        /// Replace an existing raw file (never an image of the chain).
        #[arg(long)]
        force: bool,
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

fn open(path: &Path, parents: &ParentArgs, writable: bool) -> Result<AnyDisk> {
    let opts = parents.open_options(writable);
    loop {
        match AnyDisk::open_file(path, &opts) {
            Err(VhdxError::Locked { .. }) if parents.wait => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            r => return r.map_err(|e| in_file(e, path)),
        }
    }
}

/// Opens an image; with `wait`, a lock another process holds on it (or on its chain) is
/// waited out, polling, as `flock` without `-n` would.
fn open_waiting(path: &Path, opts: &OpenOptions, wait: bool) -> Result<Vhdx> {
    loop {
        match Vhdx::open_file(path, opts) {
            Err(VhdxError::Locked { .. }) if wait => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            r => return r.map_err(|e| in_file(e, path)),
        }
    }
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
            format,
        } => {
            let format = new_format(&path, format, parent.as_deref(), fixed);
            if format != NewFormat::Vhdx {
                if logical_sector != 512 {
                    bail!("{}: a VHD has 512-byte sectors only", path.display());
                }
                return create_vhd(&path, size, block_size, format, parent.as_deref());
            }
            if parent.is_none() && size.is_none() {
                bail!(
                    "{}: --size is required (except with --parent)",
                    path.display()
                );
            }
            if let (Some(p), Some(sz)) = (&parent, size) {
                // Checked before anything is created: a refused image never appears.
                let popts = OpenOptions {
                    resolver: ParentResolver::default(),
                    ..OpenOptions::read_only()
                };
                let pv = Vhdx::open_file(p, &popts).map_err(|e| in_file(e, p))?;
                if sz != pv.virtual_size() {
                    bail!(
                        "{}: --size {sz} differs from the parent's size {}",
                        path.display(),
                        pv.virtual_size()
                    );
                }
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
            let v = Vhdx::create_file(&path, &opts).map_err(|e| in_file(e, &path))?;
            v.close().with_context(|| path.display().to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::Info {
            path,
            json,
            parents,
        } => {
            let v = match open(&path, &parents, false)? {
                AnyDisk::Vhd(v) => return print_vhd_info(&path, &v, json),
                AnyDisk::Vhdx(v) => v,
            };
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
            let opts = parents.open_options(false);
            let report = match detect(&path) {
                ImageFormat::Vhd => Vhd::check_file(&path, &opts, repair),
                ImageFormat::Vhdx => Vhdx::check_file(&path, &opts, repair),
            };
            print_check(&path, &report, json)?;
            Ok(
                // No verdict: the file is missing, locked or not a regular file.
                if report.unchecked.is_some() {
                    ExitCode::from(2)
                } else if report
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
            force,
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
            match &output {
                Some(o) => {
                    let mut out = new_output(o, force, &v.chain_paths())?;
                    read_to(&mut v, &path, offset, length, &mut out, o)?;
                    commit_output(out, false)?;
                }
                None => {
                    let stdout = &mut std::io::stdout().lock();
                    read_to(&mut v, &path, offset, length, stdout, Path::new("stdout"))?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        VhdxCommand::Write {
            path,
            offset,
            input,
            parents,
        } => {
            // The image first: its lock is held while the input is read, and a refused
            // image fails before stdin is consumed.
            let mut v = open(&path, &parents, true)?;
            let written = match &input {
                Some(i) => {
                    if same_file(i, &path) {
                        bail!(
                            "{} is the image itself: a command never writes over its own input",
                            i.display()
                        );
                    }
                    let mut f = File::open(i).with_context(|| i.display().to_string())?;
                    let len = f.metadata().with_context(|| i.display().to_string())?.len();
                    if offset.checked_add(len).is_none_or(|e| e > v.virtual_size()) {
                        bail!(
                            "{}: range {offset}+{len} lies outside the virtual disk ({} bytes)",
                            path.display(),
                            v.virtual_size()
                        );
                    }
                    write_from(&mut v, &path, offset, &mut f, i)
                }
                None => write_from(
                    &mut v,
                    &path,
                    offset,
                    &mut std::io::stdin().lock(),
                    Path::new("stdin"),
                ),
            };
            written?;
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
            force,
            format,
        } => import(
            &raw,
            &path,
            block_size_arg(block_size)?,
            logical_sector,
            sync,
            force,
            new_format(&path, format, None, false),
        )
        .map(|_| ExitCode::SUCCESS),
        VhdxCommand::Merge { child, parents } => merge(&child, &parents).map(|_| ExitCode::SUCCESS),
        VhdxCommand::Export {
            path,
            raw,
            sync,
            force,
            parents,
        } => {
            let mut v = open(&path, &parents, false)?;
            export(&mut v, &path, &raw, sync, force).map(|_| ExitCode::SUCCESS)
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
    if detect(child) == ImageFormat::Vhd {
        bail!(
            "{}: merging VHD differencing disks is not supported (only VHDX)",
            child.display()
        );
    }
    let mut v = open_waiting(child, &opts, parents.wait)?;
    let parent_path = v
        .parent()
        .and_then(|p| p.path())
        .map(Path::to_path_buf)
        .with_context(|| format!("{}: not a differencing disk", child.display()))?;
    let mut m = Merge::start(&mut v, &mut GuidGen::from_entropy()).with_context(ctx)?;
    crate::test_hook::pause("merge-started");
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
    if let Some(why) = &report.unchecked {
        eprintln!("hvsim: error: not checked: {why}");
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

fn import(
    raw: &Path,
    path: &Path,
    block_size: Option<u32>,
    lss: u32,
    sync: bool,
    force: bool,
    format: NewFormat,
) -> Result<()> {
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
    // Built under a temporary name: killed midway, it leaves no image under `path`.
    let out = new_output(path, force, &[raw.to_path_buf()])?;
    crate::test_hook::pause("import-created");
    let mut storage = out.storage()?;
    if !sync {
        storage = storage.unsynced();
    }
    if format != NewFormat::Vhdx {
        if lss != 512 {
            bail!("{}: a VHD has 512-byte sectors only", path.display());
        }
        let opts = vhd::CreateOptions {
            virtual_size: len,
            disk_type: vhd_type(format),
            block_size,
            ..vhd::CreateOptions::default()
        };
        let vhd_err = |e: vhd::VhdError| in_file(e.into(), path);
        let mut v = Vhd::create(Box::new(storage), &opts, None).map_err(vhd_err)?;
        convert::import_raw(&src, len, &mut v).map_err(|e| in_file(e, path))?;
        v.close().map_err(vhd_err)?;
    } else {
        let opts = CreateOptions {
            virtual_size: len,
            block_size,
            logical_sector_size: lss,
            ..CreateOptions::default()
        };
        let mut v = Vhdx::create(Box::new(storage), &opts, None).map_err(|e| in_file(e, path))?;
        // The file is new: nothing to protect from a crash until it is complete.
        v.set_commit_policy(CommitPolicy::OnFlush);
        convert::import_raw(&src, len, &mut v).map_err(|e| in_file(e, path))?;
        v.close().map_err(|e| in_file(e, path))?;
    }
    crate::test_hook::pause("import-written");
    commit_output(out, sync)
}

fn export(v: &mut AnyDisk, path: &Path, raw: &Path, sync: bool, force: bool) -> Result<()> {
    let out = new_output(raw, force, &v.chain_paths())?;
    convert::export_raw(v, out.file(), sync).map_err(|e| in_file(e, path))?;
    commit_output(out, sync)
}

/// Writes `input` to the image from `offset`, 8 MiB at a time, so memory stays bounded
/// whatever the input's length (`-i /dev/zero` included). Input that runs past the end of
/// the disk is refused; from a pipe, whose length is known only at its end, the pieces
/// before the one that does not fit are written, and the error says how much.
fn write_from(
    v: &mut impl VirtualDiskMut,
    path: &Path,
    offset: u64,
    input: &mut impl Read,
    in_name: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 8 * MIB as usize];
    let mut pos = offset;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match input.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("reading {}", in_name.display()))
                    )
                }
            }
        }
        if n == 0 && pos > offset {
            return Ok(());
        }
        // Even an empty input checks its offset.
        if let Err(e) = v.write(pos, &buf[..n]) {
            let done = pos - offset;
            let e = in_file(e, path);
            return Err(if done > 0 {
                anyhow!(
                    "{e:#} (the first {done} bytes of {} were written)",
                    in_name.display()
                )
            } else {
                e
            });
        }
        pos += n as u64;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Copies `length` virtual bytes from `offset` to `out`, 8 MiB at a time.
fn read_to(
    v: &mut impl VirtualDisk,
    path: &Path,
    offset: u64,
    length: u64,
    out: &mut impl Write,
    out_name: &Path,
) -> Result<()> {
    let written = |e| anyhow::Error::new(e).context(format!("writing {}", out_name.display()));
    let mut buf = vec![0u8; (8 * MIB).min(length) as usize];
    let mut pos = offset;
    while pos < offset + length {
        let n = (offset + length - pos).min(buf.len() as u64) as usize;
        v.read(pos, &mut buf[..n]).map_err(|e| in_file(e, path))?;
        out.write_all(&buf[..n]).map_err(written)?;
        pos += n as u64;
    }
    out.flush().map_err(written)
}

fn vhd_type(format: NewFormat) -> VhdType {
    if format == NewFormat::VhdFixed {
        VhdType::Fixed
    } else {
        VhdType::Dynamic
    }
}

/// `vhdx create` of a VHD: fixed, dynamic, or (with a parent) differencing.
fn create_vhd(
    path: &Path,
    size: Option<u64>,
    block_size: Option<u64>,
    format: NewFormat,
    parent: Option<&Path>,
) -> Result<ExitCode> {
    if let Some(p) = parent {
        if detect(p) != ImageFormat::Vhd {
            bail!(
                "{}: a VHD differencing disk needs a VHD parent, and {} is not one",
                path.display(),
                p.display()
            );
        }
        // Checked before anything is created: a refused image never appears.
        let pv = Vhd::open_file(p, &OpenOptions::read_only()).map_err(|e| in_file(e.into(), p))?;
        if let Some(sz) = size.filter(|&sz| sz != pv.virtual_size()) {
            bail!(
                "{}: --size {sz} differs from the parent's size {}",
                path.display(),
                pv.virtual_size()
            );
        }
    }
    let opts = vhd::CreateOptions {
        virtual_size: match (size, parent) {
            (Some(s), _) => s,
            (None, Some(_)) => 0,
            (None, None) => bail!(
                "{}: --size is required (except with --parent)",
                path.display()
            ),
        },
        disk_type: vhd_type(format),
        block_size: block_size_arg(block_size)?,
        parent: parent.map(Path::to_path_buf),
        ..vhd::CreateOptions::default()
    };
    let v = Vhd::create_file(path, &opts).map_err(|e| in_file(e.into(), path))?;
    v.close().map_err(|e| in_file(e.into(), path))?;
    Ok(ExitCode::SUCCESS)
}

fn print_vhd_info(path: &Path, v: &Vhd, json: bool) -> Result<ExitCode> {
    let info = v.info();
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(ExitCode::SUCCESS);
    }
    let g = info.geometry;
    println!("file:                 {}", path.display());
    println!("format:               vhd");
    println!("disk type:            {}", info.disk_type);
    println!("virtual size:         {} bytes", info.virtual_size);
    println!("block size:           {} bytes", info.block_size);
    println!(
        "parent:               {}",
        info.parent.as_deref().unwrap_or("none")
    );
    println!("allocated blocks:     {}", info.allocated_blocks);
    println!("file size:            {} bytes", info.file_size);
    println!("unique id:            {}", info.unique_id);
    println!(
        "geometry (CHS):       {}/{}/{}",
        g.cylinders, g.heads, g.sectors_per_track
    );
    println!("timestamp:            {}", info.timestamp);
    println!("creator:              {}", info.creator);
    Ok(ExitCode::SUCCESS)
}
