//! `hvsim check-writes IMAGE --log LOG`: the real-bytes oracle of the real-host backend
//! (issue 12 §1). The guest agent logged each write once it was durable; a backup taken
//! after a write completed must hold it (I1), unless a later write covered the same bytes
//! (then the later write is judged instead, or, if it came after the cut, those bytes may
//! hold either and are not judged). The image is read through the engine, as every
//! backup hvsim reads; `--raw` reads a plain disk file.
//!
//! Exit 0 when every judged byte is right, 1 with mismatches (each naming its write),
//! 2 when the log or the image cannot be read.

use anyhow::{bail, Context, Result};
use clap::Args;
use hvsim_agent::data;
use hvsim_agent::log::{self, Entry};
use hvsim_engine::{AnyDisk, OpenOptions, VirtualDisk};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::files::in_file;

/// Exit code of a log or image that cannot be read (1 means mismatches).
pub const HARNESS_FAILURE: u8 = 2;

#[derive(Args)]
pub struct CheckWritesArgs {
    /// The backed-up disk: a VHDX or VHD (with its parents), or a raw file with --raw.
    image: PathBuf,
    /// The guest agent's log.
    #[arg(long)]
    log: PathBuf,
    /// Judge the writes up to and including this seq (the last one completed before
    /// the snapshot).
    #[arg(long, conflicts_with = "before_us")]
    through: Option<u64>,
    /// Judge the writes logged before this time (µs since the Unix epoch: the snapshot's).
    #[arg(long)]
    before_us: Option<u64>,
    /// IMAGE is a plain disk file, byte for byte.
    #[arg(long)]
    raw: bool,
}

/// The image as a byte-addressed disk.
enum Image {
    Disk(Box<AnyDisk>),
    Raw(File, u64),
}

impl Image {
    fn open(path: &Path, raw: bool) -> Result<Image> {
        if raw {
            let f = File::open(path).with_context(|| path.display().to_string())?;
            let len = f
                .metadata()
                .with_context(|| path.display().to_string())?
                .len();
            return Ok(Image::Raw(f, len));
        }
        let d =
            AnyDisk::open_file(path, &OpenOptions::read_only()).map_err(|e| in_file(e, path))?;
        Ok(Image::Disk(Box::new(d)))
    }

    fn size(&self) -> u64 {
        match self {
            Image::Disk(d) => d.virtual_size(),
            Image::Raw(_, len) => *len,
        }
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        match self {
            Image::Disk(d) => d.read(offset, buf).map_err(anyhow::Error::new),
            Image::Raw(f, _) => read_at(f, buf, offset).map_err(anyhow::Error::new),
        }
        .with_context(|| format!("reading {} bytes at {offset}", buf.len()))
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Byte ranges `[start, end)` already claimed by later writes, merged.
#[derive(Default)]
struct Covered(BTreeMap<u64, u64>);

impl Covered {
    /// The parts of `[start, end)` not covered.
    fn uncovered(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = start;
        // The range that may hold `start`, then every one starting inside.
        let first = self.0.range(..=start).next_back().map(|(&s, &e)| (s, e));
        for (s, e) in first
            .into_iter()
            .chain(self.0.range(start + 1..end).map(|(&s, &e)| (s, e)))
        {
            if e <= at {
                continue;
            }
            if s > at {
                out.push((at, s.min(end)));
            }
            at = at.max(e);
            if at >= end {
                break;
            }
        }
        if at < end {
            out.push((at, end));
        }
        out
    }

    fn add(&mut self, start: u64, end: u64) {
        let (mut s, mut e) = (start, end);
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .filter(|&(_, &ce)| ce >= start)
            .map(|(&cs, &ce)| (cs, ce))
            .collect();
        for (cs, ce) in touching {
            self.0.remove(&cs);
            s = s.min(cs);
            e = e.max(ce);
        }
        self.0.insert(s, e);
    }
}

/// One write whose bytes in the image are not the logged ones.
struct Mismatch {
    entry: Entry,
    first_bad: u64,
    bad_bytes: u64,
}

pub fn run(args: CheckWritesArgs) -> Result<ExitCode> {
    let log = log::read(&args.log)?;
    let mut image = Image::open(&args.image, args.raw)?;
    if image.size() < log.header.size {
        bail!(
            "{}: {} bytes, smaller than the region of {} bytes the log's writes went to",
            args.image.display(),
            image.size(),
            log.header.size
        );
    }
    let in_cut = |e: &Entry| match (args.through, args.before_us) {
        (Some(n), _) => e.seq <= n,
        (_, Some(t)) => e.time_us < t,
        _ => true,
    };
    let mut covered = Covered::default();
    let (mut checked, mut compared, mut unjudged, mut after) = (0u64, 0u64, 0u64, 0u64);
    let mut mismatches = Vec::new();
    // From the last write back: each judged on the bytes no later write covers.
    for e in log.entries.iter().rev() {
        let parts = covered.uncovered(e.offset, e.end());
        covered.add(e.offset, e.end());
        if !in_cut(e) {
            after += 1;
            continue;
        }
        checked += 1;
        let surviving: u64 = parts.iter().map(|(s, t)| t - s).sum();
        unjudged += e.len - surviving;
        compared += surviving;
        if surviving == 0 {
            continue;
        }
        let mut got = vec![0u8; e.len as usize];
        image.read(e.offset, &mut got)?;
        if surviving == e.len && log::digest(&got) == e.digest {
            continue;
        }
        let want = data::bytes(log.header.seed, e.seq, e.len);
        let (mut first_bad, mut bad_bytes) = (None, 0u64);
        for (s, t) in parts {
            let (a, b) = ((s - e.offset) as usize, (t - e.offset) as usize);
            for (i, (x, y)) in got[a..b].iter().zip(&want[a..b]).enumerate() {
                if x != y {
                    first_bad.get_or_insert(s + i as u64);
                    bad_bytes += 1;
                }
            }
        }
        if let Some(first_bad) = first_bad {
            mismatches.push(Mismatch {
                entry: e.clone(),
                first_bad,
                bad_bytes,
            });
        }
    }
    mismatches.reverse();
    println!(
        "{checked} writes checked, {compared} bytes compared, {unjudged} bytes covered by later writes, {after} writes after the cut"
    );
    if mismatches.is_empty() {
        println!(
            "I1 holds: every checked write is in {}",
            args.image.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for m in &mismatches {
        let e = &m.entry;
        println!(
            "I1 violated: write {} (offset {}, {} bytes, durable at {} µs): {} bytes differ, the first at offset {}",
            e.seq, e.offset, e.len, e.time_us, m.bad_bytes, m.first_bad
        );
    }
    println!(
        "{} of {checked} writes are not in the image",
        mismatches.len()
    );
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::Covered;

    #[test]
    fn covered_ranges_split_what_is_left() {
        let mut c = Covered::default();
        assert_eq!(c.uncovered(0, 100), [(0, 100)]);
        c.add(10, 20);
        c.add(30, 40);
        assert_eq!(c.uncovered(0, 100), [(0, 10), (20, 30), (40, 100)]);
        assert_eq!(c.uncovered(12, 18), []);
        assert_eq!(c.uncovered(15, 35), [(20, 30)]);
        c.add(20, 30);
        assert_eq!(c.0.len(), 1);
        assert_eq!(c.uncovered(5, 45), [(5, 10), (40, 45)]);
    }
}
