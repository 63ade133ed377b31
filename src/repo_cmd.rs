//! `hvsim repo ...`: a backup repository (content-addressed blocks, recovery points).

use crate::size::parse_size;
use anyhow::{Context, Result};
use clap::Subcommand;
use hvsim_engine::repo::{Manifest, Repository, RestoreTarget};
use hvsim_engine::time::DateTime;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Make a repository in DIR (created when missing, else it must be empty).
    Init {
        dir: PathBuf,
        /// Chunk size: a power of two from 4K to 256M (default 2M).
        #[arg(long, value_parser = parse_size)]
        chunk_size: Option<u64>,
    },
    /// Take a recovery point of a VHDX image: only chunks not stored yet are written.
    Backup {
        dir: PathBuf,
        image: PathBuf,
        /// The disk's name in the repository (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the recovery points of every disk.
    List {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Restore NAME (latest point) or NAME@POINT as a new VHDX image. OUT must not exist,
    /// unless --replace; an existing folder receives the image under its original file name.
    Restore {
        dir: PathBuf,
        point: String,
        out: PathBuf,
        /// Replace OUT (restore to the original place): the old file stays until the new
        /// one is complete; checkpoint disks stacked on it in its folder are deleted.
        #[arg(long)]
        replace: bool,
    },
    /// Check every block against its digest and every point's blocks; exit 1 on a problem.
    /// Blocks no point uses and temporary files of interrupted writes are listed apart.
    /// Refused while another process writes to the repository.
    Verify { dir: PathBuf },
    /// Keep the last N points of every disk, drop the others; reclaim blocks no point
    /// uses and temporary files of interrupted writes (without --keep: only reclaim).
    Prune {
        dir: PathBuf,
        #[arg(long)]
        keep: Option<usize>,
    },
    /// Drop one recovery point NAME@POINT, then reclaim unused blocks.
    Drop { dir: PathBuf, point: String },
}

/// `NAME` or `NAME@POINT`.
fn parse_point(s: &str) -> Result<(String, Option<u64>)> {
    match s.rsplit_once('@') {
        None => Ok((s.to_string(), None)),
        Some((name, p)) => {
            let n = p
                .parse::<u64>()
                .with_context(|| format!("{s:?}: the point after '@' must be a number"))?;
            Ok((name.to_string(), Some(n)))
        }
    }
}

fn open(dir: &Path) -> Result<Repository> {
    Ok(Repository::open(dir)?)
}

/// A UTC time stamp (ISO 8601) for milliseconds since the Unix epoch.
fn utc(ms: u64) -> String {
    DateTime::from_unix_seconds(ms / 1000).iso8601()
}

fn point_json(m: &Manifest) -> serde_json::Value {
    json!({
        "point": m.point,
        "created": utc(m.created_unix_ms),
        "source": m.source,
        "disk": m.disk,
        "stats": m.stats,
    })
}

pub fn run(cmd: RepoCommand) -> Result<ExitCode> {
    match cmd {
        RepoCommand::Init { dir, chunk_size } => {
            let r = match chunk_size {
                Some(cs) => Repository::init_with_chunk_size(&dir, cs)?,
                None => Repository::init(&dir)?,
            };
            println!(
                "initialised repository {} (chunk size {})",
                dir.display(),
                r.chunk_size()
            );
        }
        RepoCommand::Backup {
            dir,
            image,
            name,
            json,
        } => {
            let mut r = open(&dir)?;
            let rep = r.backup_vhdx(&name, &image)?;
            let s = &rep.stats;
            let secs = rep.elapsed.as_secs_f64();
            if json {
                let v = json!({"name": rep.name, "point": rep.point, "stats": s, "seconds": secs});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{}@{}: {} chunks, {} zero ({} skipped unread)",
                    rep.name, rep.point, s.chunks, s.zero_chunks, s.skipped_chunks
                );
                println!(
                    "  read {} bytes, hashed {} bytes",
                    s.bytes_read, s.bytes_hashed
                );
                println!(
                    "  new: {} blocks, {} bytes; dedup hits: {} blocks, {} bytes",
                    s.new_blocks, s.new_bytes, s.dedup_hits, s.dedup_bytes
                );
                if s.healed_blocks > 0 {
                    println!(
                        "  healed: {} damaged blocks rewritten with the disk's bytes, {} bytes",
                        s.healed_blocks, s.healed_bytes
                    );
                }
                println!(
                    "  changed chunks since the previous point: {}; {:.3} s",
                    s.changed_chunks, secs
                );
            }
        }
        RepoCommand::List { dir, json } => {
            let r = open(&dir)?;
            let usage = r.store_usage()?;
            let mut disks = Vec::new();
            for name in r.names()? {
                let mut points = Vec::new();
                for p in r.points(&name)? {
                    points.push(r.manifest(&name, p)?);
                }
                disks.push((name, points));
            }
            if json {
                let v = json!({
                    "chunk_size": r.chunk_size(),
                    "blocks": usage.blocks,
                    "stored_bytes": usage.bytes,
                    "disks": disks.iter().map(|(name, ps)| json!({
                        "name": name,
                        "points": ps.iter().map(point_json).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "chunk size {}; {} blocks, {} bytes stored",
                    r.chunk_size(),
                    usage.blocks,
                    usage.bytes
                );
                println!(
                    "{:<16} {:>5}  {:<20}  {:>12}  {:>12}  {:>12}  {:>6}  SOURCE",
                    "NAME", "POINT", "CREATED", "VIRTUAL", "DATA", "NEW", "DEDUP"
                );
                for (name, ps) in &disks {
                    for m in ps {
                        println!(
                            "{:<16} {:>5}  {:<20}  {:>12}  {:>12}  {:>12}  {:>6}  {}",
                            name,
                            m.point,
                            utc(m.created_unix_ms),
                            m.disk.virtual_size,
                            m.stats.bytes_hashed,
                            m.stats.new_bytes,
                            m.stats.dedup_hits,
                            m.source
                        );
                    }
                }
            }
        }
        RepoCommand::Restore {
            dir,
            point,
            out,
            replace,
        } => {
            let r = open(&dir)?;
            let (name, p) = parse_point(&point)?;
            let target = if replace {
                RestoreTarget::Original(&out)
            } else if out.is_dir() {
                RestoreTarget::IntoFolder(&out)
            } else {
                RestoreTarget::Alternate(&out)
            };
            let rep = r.restore(&name, p, target)?;
            println!(
                "restored {}@{} to {} ({} data bytes)",
                rep.name,
                rep.point,
                rep.path.display(),
                rep.data_bytes
            );
            for c in &rep.removed_checkpoints {
                println!("removed checkpoint {} of the replaced chain", c.display());
            }
        }
        RepoCommand::Verify { dir } => {
            let r = open(&dir)?;
            let rep = r.verify()?;
            for p in &rep.problems {
                eprintln!("{}: {p}", dir.display());
            }
            for l in &rep.leftovers {
                println!("{}: leftover: {l}", dir.display());
            }
            println!(
                "{} blocks ({} bytes) and {} points checked: {} problem(s)",
                rep.blocks_checked,
                rep.bytes_checked,
                rep.points_checked,
                rep.problems.len()
            );
            if !rep.leftovers.is_empty() {
                println!(
                    "{} leftover file(s) of interrupted writes; `hvsim repo prune {}` reclaims them",
                    rep.leftovers.len(),
                    dir.display()
                );
            }
            if !rep.is_clean() {
                return Ok(ExitCode::from(1));
            }
        }
        RepoCommand::Prune { dir, keep } => {
            let mut r = open(&dir)?;
            let gc = match keep {
                Some(keep) => {
                    let rep = r.prune(keep)?;
                    for (name, p) in &rep.dropped {
                        println!("dropped {name}@{p}");
                    }
                    rep.gc
                }
                None => r.gc()?,
            };
            println!(
                "reclaimed {} blocks, {} bytes; {} blocks kept; {} temporary file(s) removed",
                gc.blocks_removed, gc.bytes_reclaimed, gc.blocks_kept, gc.temp_files_removed
            );
        }
        RepoCommand::Drop { dir, point } => {
            let mut r = open(&dir)?;
            let (name, p) = parse_point(&point)?;
            let p = p.with_context(|| format!("{point:?}: give the point as NAME@POINT"))?;
            r.drop_point(&name, p)?;
            let gc = r.gc()?;
            println!(
                "dropped {name}@{p}; reclaimed {} blocks, {} bytes",
                gc.blocks_removed, gc.bytes_reclaimed
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
