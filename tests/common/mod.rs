//! Helpers shared by the interoperability tests: a sparse model of the expected virtual
//! disk, seeded random operations, and thin wrappers around the independent tools used as
//! oracles (qemu-img, qemu-io, libvhdi through its Python binding).
//!
//! Every wrapper fails the test when its tool is missing: the tools come from ./test.sh,
//! and a test that cannot consult its oracle must not pass.

#![allow(dead_code)] // each test file uses a different subset

use hvsim_engine::storage::positioned::PositionedIo;
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// The interpreter that has the pyvhdi module (Debian's python3-libvhdi).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

// ------------------------------------------------------------------ expected bytes

/// Granule of the sparse model; untouched pages read as zeros.
const PAGE: u64 = 64 * KIB;

/// The bytes a virtual disk should hold, stored sparsely so that disks of many GiB cost
/// only what was written.
#[derive(Clone, Debug)]
pub struct Model {
    pub size: u64,
    pages: HashMap<u64, Vec<u8>>,
}

impl Model {
    pub fn new(size: u64) -> Model {
        Model {
            size,
            pages: HashMap::new(),
        }
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) {
        assert!(
            offset + data.len() as u64 <= self.size,
            "model write past the end"
        );
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (p, inp) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE as usize - inp).min(data.len() - done);
            let page = self
                .pages
                .entry(p)
                .or_insert_with(|| vec![0u8; PAGE as usize]);
            page[inp..inp + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
    }

    pub fn zero(&mut self, offset: u64, len: u64) {
        assert!(offset + len <= self.size, "model trim past the end");
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let (p, inp) = (pos / PAGE, (pos % PAGE) as usize);
            let n = ((PAGE - pos % PAGE).min(end - pos)) as usize;
            if inp == 0 && n == PAGE as usize {
                self.pages.remove(&p);
            } else if let Some(page) = self.pages.get_mut(&p) {
                page[inp..inp + n].fill(0);
            }
            pos += n as u64;
        }
    }

    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        assert!(offset + len <= self.size, "model read past the end");
        let mut out = vec![0u8; len as usize];
        let mut done = 0usize;
        while done < out.len() {
            let pos = offset + done as u64;
            let (p, inp) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE as usize - inp).min(out.len() - done);
            if let Some(page) = self.pages.get(&p) {
                out[done..done + n].copy_from_slice(&page[inp..inp + n]);
            }
            done += n;
        }
        out
    }

    /// The touched pages as sorted, merged (offset, length) ranges, clipped to the disk.
    pub fn touched_ranges(&self) -> Vec<(u64, u64)> {
        let mut ps: Vec<u64> = self.pages.keys().copied().collect();
        ps.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for p in ps {
            let start = p * PAGE;
            let end = (start + PAGE).min(self.size);
            match out.last_mut() {
                Some((o, l)) if *o + *l == start => *l = end - *o,
                _ => out.push((start, end - start)),
            }
        }
        out
    }

    /// Ranges worth comparing on a big sparse disk: every touched range widened by a
    /// margin, plus the first and last MiB and a few seeded samples of untouched space.
    pub fn probe_ranges(&self, seed: u64) -> Vec<(u64, u64)> {
        let margin = 128 * KIB;
        let mut rs: Vec<(u64, u64)> = self
            .touched_ranges()
            .into_iter()
            .map(|(o, l)| {
                let s = o.saturating_sub(margin);
                let e = (o + l + margin).min(self.size);
                (s, e - s)
            })
            .collect();
        rs.push((0, MIB.min(self.size)));
        rs.push((self.size - MIB.min(self.size), MIB.min(self.size)));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        for _ in 0..8 {
            let len = rng.gen_range(1..=256 * KIB).min(self.size);
            let off = rng.gen_range(0..=self.size - len);
            rs.push((off, len));
        }
        merge_ranges(rs)
    }

    /// Writes the expected bytes as a raw image, sparse (only touched pages are written).
    pub fn write_raw(&self, path: &Path) {
        let f = fs::File::create(path).expect("create raw file");
        f.set_len(self.size).expect("size raw file");
        for (o, l) in self.touched_ranges() {
            f.write_all_at(&self.read(o, l), o).expect("write raw file");
        }
        f.sync_all().expect("sync raw file");
    }
}

/// Sorted, overlapping or adjacent ranges merged.
pub fn merge_ranges(mut rs: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    rs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (o, l) in rs {
        match out.last_mut() {
            Some((po, pl)) if *po + *pl >= o => *pl = (*po + *pl).max(o + l) - *po,
            _ => out.push((o, l)),
        }
    }
    out
}

/// Panics with the first differing offset instead of two huge buffers.
pub fn assert_same(what: &str, base: u64, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    if got == want {
        return; // memcmp: fast even in a debug build
    }
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        let j = got[i..]
            .iter()
            .zip(&want[i..])
            .position(|(a, b)| a == b)
            .map_or(got.len(), |k| i + k);
        panic!(
            "{what}: bytes differ at virtual offset {} ({:#x}) for {} bytes: got {:02x?}, want {:02x?}",
            base + i as u64,
            base + i as u64,
            j - i,
            &got[i..(i + 16).min(got.len())],
            &want[i..(i + 16).min(want.len())],
        );
    }
}

// ------------------------------------------------------------------ random operations

#[derive(Clone, Debug)]
pub enum Op {
    Write { offset: u64, data: Vec<u8> },
    Trim { offset: u64, len: u64 },
}

impl Op {
    pub fn apply_model(&self, m: &mut Model) {
        match self {
            Op::Write { offset, data } => m.write(*offset, data),
            Op::Trim { offset, len } => m.zero(*offset, *len),
        }
    }

    pub fn apply_vhdx(&self, v: &mut Vhdx) {
        match self {
            Op::Write { offset, data } => v
                .write(*offset, data)
                .unwrap_or_else(|e| panic!("hvsim write of {} bytes at {offset}: {e}", data.len())),
            Op::Trim { offset, len } => v
                .trim(*offset, *len)
                .unwrap_or_else(|e| panic!("hvsim trim of {len} bytes at {offset}: {e}")),
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct OpMix {
    pub count: usize,
    pub trims: bool,
    /// Trims that cover whole blocks (they become UNMAPPED, or ZERO in a differencing
    /// disk); without them every trim is shorter than a block.
    pub block_trims: bool,
    /// Whole-block writes (only when the block is at most this big, to stay fast).
    pub whole_block_max: u64,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix {
            count: 24,
            trims: true,
            block_trims: true,
            whole_block_max: 8 * MIB,
        }
    }
}

/// Test data: a uniform run (like qemu-io's -P), or a random tile of a prime length
/// repeated (cheap in a debug build; misplacement by any power-of-two distance shows).
pub fn random_data(rng: &mut ChaCha8Rng, len: u64) -> Vec<u8> {
    let len = len as usize;
    if rng.gen_ratio(1, 5) {
        return vec![rng.gen_range(1..=255u8); len];
    }
    const TILE: usize = 4099;
    let mut tile = [0u8; TILE];
    rng.fill_bytes(&mut tile);
    let mut d = Vec::with_capacity(len + TILE);
    while d.len() < len {
        d.extend_from_slice(&tile);
    }
    d.truncate(len);
    d
}

/// Seeded operations on a disk of `size` bytes in blocks of `block_size`: small unaligned
/// writes, writes straddling block boundaries, whole-block writes, writes at the very end
/// of the disk, larger writes, and (optionally) aligned and unaligned trims.
pub fn random_ops(seed: u64, size: u64, block_size: u64, mix: OpMix) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blocks = size.div_ceil(block_size);
    let mut ops = Vec::with_capacity(mix.count + 2);
    // The tail of the disk (inside the short last block) and a straddle into it.
    let tail_len = rng.gen_range(1..=6000).min(size);
    ops.push(Op::Write {
        offset: size - tail_len,
        data: random_data(&mut rng, tail_len),
    });
    if blocks > 1 {
        let b = (blocks - 1) * block_size;
        let len = rng.gen_range(2..=70_000u64).min(size - b + 4096).min(b);
        let off = (b - len / 2).min(size - len);
        ops.push(Op::Write {
            offset: off,
            data: random_data(&mut rng, len),
        });
    }
    while ops.len() < mix.count + 2 {
        let kind = rng.gen_range(0..100);
        let op = if kind < 35 {
            let len = rng.gen_range(1..=5000).min(size);
            let off = rng.gen_range(0..=size - len);
            Op::Write {
                offset: off,
                data: random_data(&mut rng, len),
            }
        } else if kind < 60 && blocks > 1 {
            let boundary = rng.gen_range(1..blocks) * block_size;
            let before = rng.gen_range(1..=64 * KIB).min(boundary);
            let len = rng
                .gen_range(before + 1..=before + 96 * KIB)
                .min(size - (boundary - before));
            Op::Write {
                offset: boundary - before,
                data: random_data(&mut rng, len),
            }
        } else if kind < 70 && block_size <= mix.whole_block_max {
            let b = rng.gen_range(0..blocks);
            let off = b * block_size;
            let len = block_size.min(size - off);
            Op::Write {
                offset: off,
                data: random_data(&mut rng, len),
            }
        } else if kind < 82 {
            let len = rng.gen_range(64 * KIB..=3 * MIB).min(size);
            let off = rng.gen_range(0..=size - len);
            Op::Write {
                offset: off,
                data: random_data(&mut rng, len),
            }
        } else if mix.trims && mix.block_trims && kind < 91 {
            let b = rng.gen_range(0..blocks);
            let off = b * block_size;
            let n = rng.gen_range(1..=2u64);
            let len = (n * block_size).min(size - off);
            Op::Trim { offset: off, len }
        } else if mix.trims {
            // Without block trims, shorter than a block so that no block is covered whole.
            let max = if mix.block_trims {
                2 * MIB
            } else {
                (2 * MIB).min(block_size - 1)
            };
            let len = rng.gen_range(1..=max).min(size);
            let off = rng.gen_range(0..=size - len);
            Op::Trim { offset: off, len }
        } else {
            continue;
        };
        ops.push(op);
    }
    ops
}

// ------------------------------------------------------------------ hvsim side

pub fn create(path: &Path, opts: &CreateOptions) -> Vhdx {
    Vhdx::create_file(path, opts).unwrap_or_else(|e| panic!("hvsim create {}: {e}", path.display()))
}

pub fn open_rw(path: &Path) -> Vhdx {
    open_when_free(path, &OpenOptions::writable())
}

pub fn open_ro(path: &Path) -> Vhdx {
    open_when_free(path, &OpenOptions::read_only())
}

/// Opens an image, waiting out a lock held only by a sibling test's child process: a
/// process another test thread spawns holds a copy of every open file description (and
/// so of an image's lock) from its fork until its exec, even after this thread closed the
/// image. Any other error, or a lock held for seconds, fails the test.
fn open_when_free(path: &Path, opts: &OpenOptions) -> Vhdx {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Vhdx::open_file(path, opts) {
            Ok(v) => return v,
            Err(hvsim_engine::VhdxError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("hvsim open {}: {e}", path.display()),
        }
    }
}

pub fn apply(v: &mut Vhdx, model: &mut Model, ops: &[Op]) {
    for op in ops {
        op.apply_vhdx(v);
        op.apply_model(model);
    }
}

/// Reads `ranges` through hvsim and compares them with the model.
pub fn assert_hvsim_ranges(what: &str, v: &mut Vhdx, model: &Model, ranges: &[(u64, u64)]) {
    const STEP: u64 = 4 * MIB;
    for &(o, l) in ranges {
        let mut pos = o;
        while pos < o + l {
            let n = STEP.min(o + l - pos);
            let mut buf = vec![0u8; n as usize];
            v.read(pos, &mut buf)
                .unwrap_or_else(|e| panic!("{what}: hvsim read at {pos}: {e}"));
            assert_same(what, pos, &buf, &model.read(pos, n));
            pos += n;
        }
    }
}

/// Reads the whole disk through hvsim and compares it with the model.
pub fn assert_hvsim_all(what: &str, v: &mut Vhdx, model: &Model) {
    assert_eq!(v.virtual_size(), model.size, "{what}: virtual size");
    assert_hvsim_ranges(what, v, model, &[(0, model.size)]);
}

pub fn hvsim_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hvsim")
}

// ------------------------------------------------------------------ external tools

fn missing(tool: &str, package: &str) -> ! {
    panic!(
        "{tool} is not available: the interoperability tests need it as an oracle. \
         Run ./test.sh (it installs {package}), then run the tests again."
    )
}

/// Fails the test unless `tool` runs.
pub fn require_tool(tool: &'static str, package: &'static str) {
    static SEEN: OnceLock<std::sync::Mutex<Vec<&'static str>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if seen.lock().unwrap().contains(&tool) {
        return;
    }
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() || !o.stdout.is_empty() => seen.lock().unwrap().push(tool),
        _ => missing(tool, package),
    }
}

/// Fails the test unless the system interpreter imports pyvhdi.
pub fn require_pyvhdi() {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        Command::new(SYSTEM_PYTHON)
            .args(["-c", "import pyvhdi"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !ok {
        missing(
            "the Python module pyvhdi (for /usr/bin/python3)",
            "python3-libvhdi",
        );
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command and returns its output; panics with both streams unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)));
    if !out.status.success() {
        panic!(
            "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn qemu_img<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> Output {
    require_tool("qemu-img", "qemu-utils");
    run_ok(Command::new("qemu-img").args(args))
}

/// `qemu-img check`: must report a clean image.
pub fn qemu_check(path: &Path) {
    let out = qemu_img([
        OsStr::new("check"),
        OsStr::new("-f"),
        OsStr::new("vhdx"),
        path.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("No errors were found"),
        "qemu-img check {}: {text}",
        path.display()
    );
}

/// The virtual size QEMU sees (`qemu-img info`).
pub fn qemu_virtual_size(path: &Path) -> u64 {
    let out = qemu_img([
        OsStr::new("info"),
        OsStr::new("--output=json"),
        path.as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img info json");
    v["virtual-size"]
        .as_u64()
        .expect("virtual-size in qemu-img info")
}

/// `qemu-img compare` against a raw file of the expected bytes, after checking that QEMU
/// sees the same virtual size (compare alone reads a shorter image's tail as zeros; its
/// strict mode would also compare allocation, which legitimately differs).
pub fn qemu_compare(vhdx: &Path, raw: &Path) {
    let raw_len = fs::metadata(raw).expect("raw file").len();
    assert_eq!(
        qemu_virtual_size(vhdx),
        raw_len,
        "virtual size of {} seen by qemu-img",
        vhdx.display()
    );
    let mut cmd = Command::new("qemu-img");
    cmd.args(["compare", "-f", "vhdx", "-F", "raw"])
        .arg(vhdx)
        .arg(raw);
    let out = cmd.output().expect("run qemu-img compare");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Images are identical"),
        "qemu-img compare {} {}: {}\n{}{}",
        vhdx.display(),
        raw.display(),
        out.status,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img convert -O raw`, then a byte comparison with the model.
/// `qemu-img convert -f FORMAT -O raw IMAGE RAW`, replacing a RAW left from before.
pub fn qemu_to_raw(format: &str, image: &Path, raw: &Path) {
    let _ = fs::remove_file(raw);
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-f"),
        OsStr::new(format),
        OsStr::new("-O"),
        OsStr::new("raw"),
        image.as_os_str(),
        raw.as_os_str(),
    ]);
}

pub fn qemu_convert_and_compare(what: &str, vhdx: &Path, model: &Model, scratch: &Path) {
    let raw = scratch.join(format!(
        "{}.converted.raw",
        vhdx.file_name().unwrap().to_string_lossy()
    ));
    qemu_to_raw("vhdx", vhdx, &raw);
    let f = fs::File::open(&raw).expect("open converted raw");
    assert_eq!(
        f.metadata().unwrap().len(),
        model.size,
        "{what}: converted raw size"
    );
    let mut pos = 0u64;
    while pos < model.size {
        let n = (4 * MIB).min(model.size - pos);
        let mut buf = vec![0u8; n as usize];
        f.read_exact_at(&mut buf, pos).expect("read converted raw");
        assert_same(
            &format!("{what} (qemu-img convert)"),
            pos,
            &buf,
            &model.read(pos, n),
        );
        pos += n;
    }
    let _ = fs::remove_file(&raw);
}

/// The three qemu oracles at once: check, compare against the model as raw, and (for
/// disks that are cheap to materialise) convert to raw and compare bytes.
pub fn qemu_verify(what: &str, vhdx: &Path, model: &Model, scratch: &Path, convert: bool) {
    qemu_check(vhdx);
    let raw = scratch.join(format!(
        "{}.expected.raw",
        vhdx.file_name().unwrap().to_string_lossy()
    ));
    let _ = fs::remove_file(&raw);
    model.write_raw(&raw);
    qemu_compare(vhdx, &raw);
    let _ = fs::remove_file(&raw);
    if convert {
        qemu_convert_and_compare(what, vhdx, model, scratch);
    }
}

/// For disks too big to compare whole: `qemu-img convert -O raw` (sparse output), then
/// the model's probe ranges compared byte for byte. (`qemu-img compare` of a multi-GiB
/// raw file reads every zero of it here, which takes seconds.)
pub fn qemu_convert_probe(
    what: &str,
    vhdx: &Path,
    model: &Model,
    ranges: &[(u64, u64)],
    scratch: &Path,
) {
    let raw = scratch.join(format!(
        "{}.converted.raw",
        vhdx.file_name().unwrap().to_string_lossy()
    ));
    let _ = fs::remove_file(&raw);
    qemu_img([
        OsStr::new("convert"),
        OsStr::new("-f"),
        OsStr::new("vhdx"),
        OsStr::new("-O"),
        OsStr::new("raw"),
        vhdx.as_os_str(),
        raw.as_os_str(),
    ]);
    let f = fs::File::open(&raw).expect("open converted raw");
    assert_eq!(
        f.metadata().unwrap().len(),
        model.size,
        "{what}: converted raw size"
    );
    for &(o, l) in ranges {
        let mut buf = vec![0u8; l as usize];
        f.read_exact_at(&mut buf, o).expect("read converted raw");
        assert_same(
            &format!("{what} (qemu-img convert)"),
            o,
            &buf,
            &model.read(o, l),
        );
    }
    let _ = fs::remove_file(&raw);
}

/// `qemu-img create -f vhdx` with the given subformat and block size.
pub fn qemu_create(path: &Path, size: u64, block_size: u64, fixed: bool) {
    let sub = if fixed { "fixed" } else { "dynamic" };
    qemu_img([
        OsStr::new("create"),
        OsStr::new("-q"),
        OsStr::new("-f"),
        OsStr::new("vhdx"),
        OsStr::new("-o"),
        OsStr::new(&format!("subformat={sub},block_size={block_size}")),
        path.as_os_str(),
        OsStr::new(&size.to_string()),
    ]);
}

/// Runs qemu-io commands (each one `-c CMD`) on a VHDX image, in one process.
pub fn qemu_io(path: &Path, cmds: &[String]) {
    require_tool("qemu-io", "qemu-utils");
    for batch in cmds.chunks(64) {
        let mut cmd = Command::new("qemu-io");
        cmd.args(["-f", "vhdx"]);
        for c in batch {
            cmd.arg("-c").arg(c);
        }
        cmd.arg(path);
        let out = run_ok(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        // qemu-io reports a failed command on its output but still exits 0.
        let wrote = text.matches("wrote ").count();
        assert_eq!(
            wrote,
            batch.len(),
            "qemu-io on {}: not every command wrote:\n{text}",
            path.display()
        );
    }
}

/// A qemu-io write command of `len` bytes of `pattern` at `offset`, and its model.
pub fn qemu_io_pattern(offset: u64, len: u64, pattern: u8) -> (String, Op) {
    (
        format!("write -P 0x{pattern:02x} {offset} {len}"),
        Op::Write {
            offset,
            data: vec![pattern; len as usize],
        },
    )
}

// ------------------------------------------------------------------ libvhdi side

const PYVHDI_DUMP: &str = r#"
import sys, pyvhdi
out_path, ranges_arg, chain = sys.argv[1], sys.argv[2], sys.argv[3:]
# chain: the child first, the base last; parents are opened and set before any read
# (libvhdi's own relative_path lookup does not work).
files = []
for path in reversed(chain):
    f = pyvhdi.file()
    f.open(path)
    if files:
        f.set_parent(files[-1])
    files.append(f)
top = files[-1]
print(top.get_media_size())
with open(out_path, "wb") as out:
    for r in ranges_arg.split(","):
        off, length = (int(x) for x in r.split(":"))
        while length > 0:
            n = min(length, 4 << 20)
            data = top.read_buffer_at_offset(n, off)
            if len(data) != n:
                sys.exit("short read at %d: %d of %d bytes" % (off, len(data), n))
            out.write(data)
            off += n
            length -= n
for f in reversed(files):
    f.close()
"#;

/// Reads `ranges` of the disk `chain[0]` (its ancestors following, base last) through
/// libvhdi, and returns (media size, the ranges' bytes concatenated).
pub fn pyvhdi_read(chain: &[PathBuf], ranges: &[(u64, u64)], scratch: &Path) -> (u64, Vec<u8>) {
    require_pyvhdi();
    let out = scratch.join(format!("pyvhdi-{}.bin", std::process::id()));
    let spec: Vec<String> = ranges.iter().map(|(o, l)| format!("{o}:{l}")).collect();
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg("-c").arg(PYVHDI_DUMP).arg(&out).arg(spec.join(","));
    cmd.args(chain);
    let o = run_ok(&mut cmd);
    let size: u64 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .expect("media size from pyvhdi");
    let data = fs::read(&out).expect("read pyvhdi output");
    let _ = fs::remove_file(&out);
    (size, data)
}

/// Compares `ranges` read through libvhdi with the model.
pub fn assert_pyvhdi_ranges(
    what: &str,
    chain: &[PathBuf],
    model: &Model,
    ranges: &[(u64, u64)],
    scratch: &Path,
) {
    let (size, data) = pyvhdi_read(chain, ranges, scratch);
    assert_eq!(size, model.size, "{what}: media size reported by libvhdi");
    let mut at = 0usize;
    for &(o, l) in ranges {
        assert_same(
            &format!("{what} (libvhdi)"),
            o,
            &data[at..at + l as usize],
            &model.read(o, l),
        );
        at += l as usize;
    }
}

pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hvsim-interop-")
        .tempdir()
        .expect("temp dir")
}

pub fn write_file(path: &Path, data: &[u8]) {
    let mut f = fs::File::create(path).expect("create file");
    f.write_all(data).expect("write file");
}

// ------------------------------------------------------------------ the CLI as a process

/// Runs `hvsim` with `args`.
pub fn hvsim(args: &[&str]) -> Output {
    Command::new(hvsim_bin())
        .args(args)
        .output()
        .expect("hvsim runs")
}

pub fn hvsim_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(hvsim_bin())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hvsim runs");
    // A command that refuses its job exits before reading its input: a closed pipe then.
    if let Err(e) = child.stdin.take().unwrap().write_all(input) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing hvsim's stdin"
        );
    }
    child.wait_with_output().unwrap()
}

/// Stdout of a successful run, as bytes.
pub fn ok_bytes(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "hvsim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

/// Stdout of a successful run, as text.
pub fn ok(out: &Output) -> String {
    String::from_utf8_lossy(&ok_bytes(out)).into_owned()
}

/// Exit code and stderr of a failing run.
pub fn fails(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "hvsim should have failed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hvsim repo backup REPO IMG --name NAME`.
pub fn repo_backup(repo: &Path, img: &Path, name: &str) -> Output {
    hvsim(&["repo", "backup", s(repo), s(img), "--name", name])
}

/// `hvsim vhdx read IMG --offset O --length L`: the bytes, or a panic naming the failure.
pub fn vhdx_read(img: &Path, offset: u64, len: u64) -> Vec<u8> {
    ok_bytes(&hvsim(&[
        "vhdx",
        "read",
        s(img),
        "--offset",
        &offset.to_string(),
        "--length",
        &len.to_string(),
    ]))
}

/// Data no run of zeros hides in (never a zero byte), different for each `salt`.
pub fn pattern(len: u64, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7) ^ ((i >> 12) as u8) ^ salt | 1)
        .collect()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
