//! Opens a sparse 64 TiB dynamic VHDX (32 MiB blocks) and reports the wall time of the
//! open and the process's peak memory; goal: under 100 ms and under 64 MiB.
//!
//! `cargo run --release --example open_64t` creates the image in a temporary directory,
//! then measures the open in a fresh child process (so the creation's memory does not
//! count). `open_64t PATH` measures opening an existing image in this process.
//! Exits 1 when a goal is missed. Linux only (peak memory from /proc/self/status).

use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

const TIB: u64 = 1 << 40;
const MIB: u64 = 1 << 20;
const GOAL_MS: f64 = 100.0;
const GOAL_BYTES: u64 = 64 * MIB;

/// A field of /proc/self/status in bytes (VmHWM: peak resident set size).
fn status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn measure(path: &Path) -> Result<bool, String> {
    let before = status_bytes("VmHWM:").unwrap_or(0);
    let t = Instant::now();
    let v = Vhdx::open_file(path, &OpenOptions::read_only()).map_err(|e| e.to_string())?;
    let opened = t.elapsed();
    let info = v.info();
    let with_info = t.elapsed();
    let peak = status_bytes("VmHWM:").ok_or("cannot read VmHWM from /proc/self/status")?;
    drop(v);
    let ms = with_info.as_secs_f64() * 1e3;
    println!(
        "image: {} bytes virtual, {} byte blocks, {} allocated",
        info.virtual_size, info.block_size, info.allocated_blocks
    );
    println!(
        "open_file: {:.1} ms; open_file + info: {ms:.1} ms",
        opened.as_secs_f64() * 1e3
    );
    println!(
        "peak memory (VmHWM): {:.1} MiB (before the open: {:.1} MiB)",
        peak as f64 / MIB as f64,
        before as f64 / MIB as f64
    );
    let ok = ms < GOAL_MS && peak < GOAL_BYTES;
    println!(
        "goal (< {GOAL_MS} ms and < {} MiB): {}",
        GOAL_BYTES / MIB,
        if ok { "met" } else { "MISSED" }
    );
    Ok(ok)
}

fn run() -> Result<bool, String> {
    if let Some(p) = std::env::args_os().nth(1) {
        return measure(Path::new(&p));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("sparse-64t.vhdx");
    let t = Instant::now();
    Vhdx::create_file(&path, &CreateOptions::new(64 * TIB))
        .and_then(|v| v.close())
        .map_err(|e| e.to_string())?;
    println!(
        "created {} in {:.1} ms",
        path.display(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .arg(&path)
        .status()
        .map_err(|e| e.to_string())?;
    Ok(status.success())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("open_64t: {e}");
            ExitCode::FAILURE
        }
    }
}
