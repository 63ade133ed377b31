//! Shared helpers of the bad-input tests: small valid images built in memory, raw edits
//! of on-disk structures (with their checksums fixed up), and a harness that runs one
//! damaged image in its own thread with a time limit and an allocation budget.

#![allow(dead_code)]

use hvsim_engine::storage::Storage;
use hvsim_engine::vhdx::{self, BlockState};
use hvsim_engine::{
    CreateOptions, FaultPlan, FaultStorage, GuidGen, MemStorage, OpenOptions, Vhdx, VhdxError,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const MIB: u64 = 1024 * 1024;

// ------------------------------------------------------------------ allocation tracking

/// The system allocator, counting the live bytes of the current thread and their peak.
/// Each mutant runs on a fresh thread, so the counters start at zero for it.
pub struct CountingAlloc;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn account(delta: i64) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        account(-(layout.size() as i64));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            account(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Peak live bytes of this thread since it started (or since the last reset).
pub fn peak_bytes() -> i64 {
    PEAK.with(|p| p.get())
}

pub fn reset_peak() {
    let live = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(live));
}

// ------------------------------------------------------------------ bounded storage

/// Memory storage that refuses to grow past a limit (an I/O error, not an abort), and
/// remembers that something tried: a damaged image must not make the engine extend the
/// file without bound.
pub struct BoundedStorage {
    inner: MemStorage,
    limit: u64,
    pub tried_past: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl BoundedStorage {
    pub fn new(bytes: Vec<u8>, limit: u64) -> (Self, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        (
            BoundedStorage {
                inner: MemStorage::from_vec(bytes),
                limit,
                tried_past: flag.clone(),
            },
            flag,
        )
    }

    fn refuse(&self, end: u64) -> io::Error {
        self.tried_past
            .fetch_max(end, std::sync::atomic::Ordering::Relaxed);
        io::Error::new(
            io::ErrorKind::StorageFull,
            format!("test storage limit: {end} bytes"),
        )
    }
}

impl Storage for BoundedStorage {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.limit {
            return Err(self.refuse(end));
        }
        self.inner.write_at(buf, offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        if len > self.limit {
            return Err(self.refuse(len));
        }
        self.inner.set_len(len)
    }
}

// ------------------------------------------------------------------ sample images

/// A valid image with everything a test needs to damage it precisely.
#[derive(Clone)]
pub struct Sample {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// The parent image (for a differencing child).
    pub parent: Option<Vec<u8>>,
    /// Expected virtual disk content.
    pub content: Vec<u8>,
    /// For an image with a pending log: the content without the replay.
    pub old_content: Option<Vec<u8>>,
    pub bat_offset: u64,
    pub bat_length: u64,
    pub meta_offset: u64,
    pub log_offset: u64,
    pub log_length: u64,
    /// (name, offset, length) of each metadata item.
    pub items: Vec<(String, u64, u64)>,
    /// BAT entries in use (payload and sector bitmap entries).
    pub bat_entries: u64,
    /// File offsets of allocated payload blocks and sector bitmap blocks.
    pub payload_blocks: Vec<u64>,
    pub sector_bitmaps: Vec<u64>,
    /// BAT indices worth damaging: the payload entries and the sector bitmap entries.
    pub interesting_entries: Vec<u64>,
    pub block_size: u64,
    /// Log-relative (offset, length) of the pending entry.
    pub pending_entry: Option<(u64, u64)>,
}

pub fn guids(seed: u64) -> Option<GuidGen> {
    Some(GuidGen::seeded(seed))
}

pub fn ro_opts() -> OpenOptions {
    OpenOptions {
        guids: guids(99),
        ..OpenOptions::read_only()
    }
}

pub fn rw_opts() -> OpenOptions {
    OpenOptions {
        guids: guids(98),
        ..OpenOptions::writable()
    }
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 9) as u8))
        .collect()
}

fn describe(name: &'static str, mut v: Vhdx, parent: Option<Vec<u8>>) -> Sample {
    let size = v.virtual_size();
    let mut content = vec![0u8; size as usize];
    v.read(0, &mut content).expect("read the fresh image");
    let g = v.geometry();
    let bat = v.bat_region().clone();
    let meta = v.metadata_region().clone();
    let h = v.header().clone();
    let items = v
        .metadata_items()
        .iter()
        .map(|i| {
            (
                i.item_id.to_string(),
                meta.file_offset + u64::from(i.offset),
                i.data.len() as u64,
            )
        })
        .collect();
    let diff = v.parent().is_some();
    let bat_entries = if diff {
        g.sector_bitmap_blocks * (g.chunk_ratio + 1)
    } else {
        g.payload_blocks + (g.payload_blocks - 1) / g.chunk_ratio
    };
    let payload_blocks = (0..g.payload_blocks)
        .filter_map(|b| {
            let (s, off) = v.block(b);
            s.has_data().then_some(off)
        })
        .collect();
    let sector_bitmaps = (0..g.sector_bitmap_blocks)
        .filter_map(|c| v.sector_bitmap_offset(c))
        .collect();
    let mut interesting_entries: Vec<u64> =
        (0..=g.payload_blocks).map(|b| g.payload_index(b)).collect();
    if diff {
        interesting_entries.extend((0..g.sector_bitmap_blocks).map(|c| g.sb_index(c)));
    }
    let bytes = match v.into_storage() {
        Ok(s) => storage_bytes(s),
        Err(e) => panic!("closing {name}: {e}"),
    };
    Sample {
        name,
        bytes,
        parent,
        content,
        old_content: None,
        bat_offset: bat.file_offset,
        bat_length: u64::from(bat.length),
        meta_offset: meta.file_offset,
        log_offset: h.log_offset,
        log_length: u64::from(h.log_length),
        items,
        bat_entries,
        payload_blocks,
        sector_bitmaps,
        interesting_entries,
        block_size: g.block_size,
        pending_entry: None,
    }
}

pub fn storage_bytes(s: Box<dyn Storage>) -> Vec<u8> {
    let n = s.len().expect("len");
    let mut s = s;
    let mut b = vec![0u8; n as usize];
    s.read_at(&mut b, 0).expect("read back");
    b
}

fn create_mem(opts: &CreateOptions, parent: Option<Vhdx>) -> Vhdx {
    Vhdx::create(Box::new(MemStorage::new()), opts, parent).expect("create")
}

/// A dynamic image: 4 MiB in 1 MiB blocks, two blocks written, one trimmed to zero.
pub fn dynamic(sector: u32) -> Sample {
    let mut o = CreateOptions::new(4 * MIB);
    o.block_size = Some(MIB as u32);
    o.logical_sector_size = sector;
    o.physical_sector_size = 4096;
    o.guids = guids(u64::from(sector));
    let mut v = create_mem(&o, None);
    v.write(0, &pattern(MIB as usize, 1)).unwrap();
    v.write(2 * MIB + 8192, &pattern(64 * 1024, 2)).unwrap();
    v.write(3 * MIB, &pattern(4096, 3)).unwrap();
    v.trim(3 * MIB, MIB).unwrap();
    let v = reopen(v, None);
    describe(
        if sector == 512 {
            "dynamic-512"
        } else {
            "dynamic-4096"
        },
        v,
        None,
    )
}

/// A fixed image of 3 MiB with data.
pub fn fixed() -> Sample {
    let mut o = CreateOptions::new(3 * MIB);
    o.block_size = Some(MIB as u32);
    o.fixed = true;
    o.guids = guids(7);
    let mut v = create_mem(&o, None);
    v.write(MIB + 512, &pattern(100_000, 4)).unwrap();
    let v = reopen(v, None);
    describe("fixed", v, None)
}

/// The parent of [`differencing`]: dynamic, 4 MiB, data everywhere.
pub fn parent_image(sector: u32) -> Vec<u8> {
    let mut o = CreateOptions::new(4 * MIB);
    o.block_size = Some(MIB as u32);
    o.logical_sector_size = sector;
    o.guids = guids(11);
    let mut v = create_mem(&o, None);
    v.write(0, &pattern(4 * MIB as usize, 5)).unwrap();
    storage_bytes(v.into_storage().unwrap())
}

pub fn open_parent(bytes: &[u8]) -> Vhdx {
    Vhdx::open(
        Box::new(MemStorage::from_vec(bytes.to_vec())),
        &ro_opts(),
        None,
    )
    .expect("parent opens")
}

/// A differencing child with PARTIALLY_PRESENT blocks, a sector bitmap, a fully present
/// block and a zeroed block.
pub fn differencing(sector: u32) -> Sample {
    let pbytes = parent_image(sector);
    let parent = open_parent(&pbytes);
    let mut o = CreateOptions::new(0);
    o.block_size = Some(MIB as u32);
    o.parent_paths = vec![("relative_path".into(), ".\\base.vhdx".into())];
    o.guids = guids(12);
    let mut v = create_mem(&o, Some(parent));
    let s = sector as usize;
    v.write(s as u64 * 3, &pattern(s * 2, 6)).unwrap();
    v.write(MIB + 64 * 1024, &pattern(s, 7)).unwrap();
    v.write(2 * MIB, &pattern(MIB as usize, 8)).unwrap();
    v.trim(3 * MIB, MIB).unwrap();
    let (st, parent) = v.into_parts().unwrap();
    let v = Vhdx::open(st, &ro_opts(), parent).unwrap();
    assert_eq!(v.block(0).0, BlockState::PartiallyPresent);
    describe(
        if sector == 512 {
            "differencing-512"
        } else {
            "differencing-4096"
        },
        v,
        Some(pbytes),
    )
}

fn reopen(v: Vhdx, parent: Option<Vhdx>) -> Vhdx {
    let st = v.into_storage().unwrap();
    Vhdx::open(st, &ro_opts(), parent).unwrap()
}

/// A dynamic image whose last write crashed after its log entry was flushed and before
/// the BAT was updated: the log has one active entry that a replay applies.
pub fn pending_log() -> Sample {
    let base = dynamic(512);
    let old = base.content.clone();
    let data = pattern(4096, 9);
    let at = MIB + 4096; // block 1 is not allocated: the write allocates it
    let mut new = old.clone();
    new[at as usize..at as usize + data.len()].copy_from_slice(&data);
    // The operation's writes on a clean run; the crash point is found below them.
    let shared = FaultStorage::new(
        MemStorage::from_vec(base.bytes.clone()),
        FaultPlan::default(),
    );
    let mut v = Vhdx::open(Box::new(shared.clone()), &rw_opts(), None).unwrap();
    v.write(at, &data).unwrap();
    let total = shared.writes();
    drop(v);
    // The largest crash point that leaves the entry in the log and the BAT unchanged.
    // The seed decides which unflushed writes survive: try a few.
    for (n, seed) in (1..=total)
        .rev()
        .flat_map(|n| (0..8).map(move |seed| (n, seed)))
    {
        let plan = FaultPlan {
            crash_after_writes: Some(n),
            seed,
            ..FaultPlan::default()
        };
        let fs = FaultStorage::new(MemStorage::from_vec(base.bytes.clone()), plan);
        let mut v = Vhdx::open(Box::new(fs.clone()), &rw_opts(), None).unwrap();
        let _ = v.write(at, &data);
        drop(v);
        fs.crash().unwrap();
        let bytes = fs.medium().into_vec();
        let Ok(mut v) = Vhdx::open(
            Box::new(MemStorage::from_vec(bytes.clone())),
            &ro_opts(),
            None,
        ) else {
            continue;
        };
        if !v.log_replayed() {
            continue;
        }
        let mut got = vec![0u8; old.len()];
        v.read(0, &mut got).unwrap();
        if got != new {
            continue;
        }
        let log = &bytes[base.log_offset as usize..(base.log_offset + base.log_length) as usize];
        let pos = (0..log.len())
            .step_by(4096)
            .find(|&p| &log[p..p + 4] == b"loge")
            .expect("log entry");
        let len = u64::from(u32::from_le_bytes(
            log[pos + 8..pos + 12].try_into().unwrap(),
        ));
        // Without the replay, the old content: the entry is what makes the difference.
        let mut no_log = bytes.clone();
        no_log[(base.log_offset as usize)..(base.log_offset + base.log_length) as usize].fill(0);
        let mut v = Vhdx::open(Box::new(MemStorage::from_vec(no_log)), &ro_opts(), None).unwrap();
        let mut got = vec![0u8; old.len()];
        v.read(0, &mut got).unwrap();
        assert_eq!(got, old, "the pending entry is not yet applied");
        return Sample {
            name: "pending-log",
            bytes,
            content: new,
            old_content: Some(old),
            pending_entry: Some((pos as u64, len)),
            ..base
        };
    }
    panic!("no crash point leaves a pending log entry ({total} writes)");
}

// ------------------------------------------------------------------ raw edits

pub fn crc32c_zeroed(buf: &[u8], field: usize) -> u32 {
    let mut b = buf.to_vec();
    b[field..field + 4].fill(0);
    crc32c::crc32c(&b)
}

pub fn fix_crc(file: &mut [u8], at: usize, len: usize) {
    let c = crc32c_zeroed(&file[at..at + len], 4);
    file[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
}

pub fn fix_header(file: &mut [u8], at: u64) {
    fix_crc(file, at as usize, 4096);
}

pub fn fix_region_table(file: &mut [u8], at: u64) {
    fix_crc(file, at as usize, 64 * 1024);
}

pub fn get_u32(b: &[u8], at: u64) -> u32 {
    u32::from_le_bytes(b[at as usize..at as usize + 4].try_into().unwrap())
}
pub fn get_u64(b: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
}
pub fn set_u32(b: &mut [u8], at: u64, v: u32) {
    b[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn set_u64(b: &mut [u8], at: u64, v: u64) {
    b[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
}

/// Applies an edit to both region tables and fixes their checksums.
pub fn edit_region_tables(file: &mut [u8], f: impl Fn(&mut [u8])) {
    for at in [vhdx::REGION_TABLE1_OFFSET, vhdx::REGION_TABLE2_OFFSET] {
        f(&mut file[at as usize..at as usize + 64 * 1024]);
        fix_region_table(file, at);
    }
}

/// Applies an edit to both headers and fixes their checksums.
pub fn edit_headers(file: &mut [u8], f: impl Fn(&mut [u8])) {
    for at in [vhdx::HEADER1_OFFSET, vhdx::HEADER2_OFFSET] {
        f(&mut file[at as usize..at as usize + 4096]);
        fix_header(file, at);
    }
}

/// File offset of the metadata item `id` (by GUID string).
pub fn item_offset(s: &Sample, id: uuid::Uuid) -> (u64, u64) {
    let id = id.to_string();
    let (_, o, l) = s
        .items
        .iter()
        .find(|(i, _, _)| *i == id)
        .expect("item present");
    (*o, *l)
}

// ------------------------------------------------------------------ running a mutant

/// What a mutant is allowed to do.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Must open and read back exactly the original content (damage to a redundant copy
    /// or to bytes nobody reads).
    Original,
    /// Must open and read the original or the pre-replay content (damaged log).
    OriginalOrOld,
    /// Must open (payload damage changes content, not structure).
    Opens,
    /// Ok, or an error whose message names one of these (lowercase) words.
    OkOrErrNaming(&'static [&'static str]),
}

#[derive(Debug)]
pub struct Outcome {
    pub ro: Result<Vec<u8>, String>,
    pub rw: Result<Vec<u8>, String>,
    pub peak: i64,
    pub elapsed: Duration,
    pub grew_to: u64,
}

/// Largest virtual range read from a damaged image (its size field may be damaged too).
const READ_CAP: u64 = 32 * MIB;

fn read_all(v: &mut Vhdx) -> Result<Vec<u8>, VhdxError> {
    let size = v.virtual_size();
    let head = size.min(READ_CAP);
    let mut out = vec![0u8; head as usize];
    for (i, chunk) in out.chunks_mut(MIB as usize).enumerate() {
        v.read(i as u64 * MIB, chunk)?;
    }
    if size > head {
        let mut tail = vec![0u8; (size - head).min(MIB) as usize];
        v.read(size - tail.len() as u64, &mut tail)?;
    }
    Ok(out)
}

fn open_and_read(
    bytes: Vec<u8>,
    parent: Option<&[u8]>,
    writable: bool,
    limit: u64,
    grew: &mut u64,
) -> Result<Vec<u8>, VhdxError> {
    let (st, flag) = BoundedStorage::new(bytes, limit);
    let p = parent.map(open_parent);
    let opts = if writable { rw_opts() } else { ro_opts() };
    let r = (|| {
        let mut v = Vhdx::open(Box::new(st), &opts, p)?;
        let data = read_all(&mut v)?;
        if writable {
            // A little writing: into an allocated block, and one that may need allocating.
            // What succeeds must be there after a reopen, over what was read.
            let size = v.virtual_size();
            let mut wrote = Vec::new();
            for (at, len, fill) in [(0u64, 4096u64, 0xA5u8), (MIB + 512, 512, 0x5A)] {
                if at + len <= size.min(READ_CAP) && v.write(at, &vec![fill; len as usize]).is_ok()
                {
                    wrote.push((at, len, fill));
                }
            }
            let storage = v.into_storage()?;
            if !wrote.is_empty() {
                let p = parent.map(open_parent);
                let mut again = Vhdx::open(storage, &ro_opts(), p)?;
                let mut got = vec![0u8; MIB as usize];
                for (i, want) in data.chunks(MIB as usize).enumerate() {
                    let base = i as u64 * MIB;
                    again.read(base, &mut got[..want.len()])?;
                    let same = (0..want.len()).all(|k| {
                        let pos = base + k as u64;
                        let w = wrote
                            .iter()
                            .rev()
                            .find(|(at, len, _)| pos >= *at && pos < at + len)
                            .map_or(want[k], |(_, _, fill)| *fill);
                        got[k] == w
                    });
                    if !same {
                        return Err(VhdxError::InvalidParameter(format!(
                            "ORACLE: after writing and closing, MiB {i} reads other bytes than were written"
                        )));
                    }
                }
            }
        }
        Ok(data)
    })();
    *grew = flag.load(std::sync::atomic::Ordering::Relaxed);
    r
}

/// Opens a mutant read-only and writable in a thread of its own, with a time limit;
/// returns the outcome or a description of a panic or a hang.
pub fn run_mutant(
    bytes: &[u8],
    parent: Option<&[u8]>,
    time_limit: Duration,
) -> Result<Outcome, String> {
    let bytes = bytes.to_vec();
    let parent = parent.map(|p| p.to_vec());
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let file_len = bytes.len() as u64;
    // The same bound as for memory: proportional to the file.
    let limit = 4 * file_len + 64 * MIB;
    let handle = std::thread::Builder::new()
        .name("mutant".into())
        .spawn(move || {
            let mut grew = 0;
            reset_peak();
            let ro = open_and_read(bytes.clone(), parent.as_deref(), false, limit, &mut grew)
                .map_err(|e| e.to_string());
            let mut grew2 = 0;
            let rw = open_and_read(bytes, parent.as_deref(), true, limit, &mut grew2)
                .map_err(|e| e.to_string());
            let peak = peak_bytes();
            let _ = tx.send(Outcome {
                ro,
                rw,
                peak,
                elapsed: Duration::ZERO,
                grew_to: grew.max(grew2),
            });
        })
        .expect("spawn");
    match rx.recv_timeout(time_limit) {
        Ok(mut o) => {
            let _ = handle.join();
            o.elapsed = start.elapsed();
            Ok(o)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let msg = match handle.join() {
                Err(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(non-string panic)".into()),
                Ok(()) => "(thread ended without a result)".into(),
            };
            Err(format!("PANIC: {msg}"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("HANG: still running after {time_limit:?}"))
        }
    }
}

/// Collects failures of many mutants, to report them all at once.
#[derive(Default)]
pub struct Report {
    pub failures: Vec<String>,
    pub count: usize,
    pub errors: usize,
    pub slowest: Duration,
    /// Where mutants are written for qemu-img, when it opens the intact sample.
    pub qemu: Option<tempfile::TempDir>,
    /// Mutants both opened and read alike, and those qemu-img would not open.
    pub qemu_agreed: usize,
    pub qemu_refused: usize,
}

impl Report {
    /// A report that also asks qemu-img (read-only) about every mutant hvsim opens, when
    /// qemu-img opens the intact sample: where both open it, both must read the same bytes.
    pub fn with_qemu(s: &Sample) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("intact.vhdx");
        std::fs::write(&img, &s.bytes).unwrap();
        let opens = s.parent.is_none() && qemu_read_only(&img).is_ok_and(|q| q == s.content);
        Report {
            qemu: opens.then_some(dir),
            ..Report::default()
        }
    }

    /// qemu-img's read of the mutant against hvsim's (`hvsim`).
    fn compare_with_qemu(&mut self, s: &Sample, what: &str, bytes: &[u8], hvsim: &[u8]) {
        let Some(dir) = &self.qemu else { return };
        let img = dir.path().join("mutant.vhdx");
        std::fs::write(&img, bytes).unwrap();
        match qemu_read_only(&img) {
            Err(_) => self.qemu_refused += 1,
            // hvsim reads at most the first READ_CAP bytes of a large disk.
            Ok(q) if q.get(..hvsim.len()) == Some(hvsim) => self.qemu_agreed += 1,
            Ok(q) => {
                let at = q.iter().zip(hvsim).position(|(a, b)| a != b);
                self.failures.push(format!(
                    "[{}] {what}: qemu-img reads other bytes than hvsim ({} and {} bytes, first difference at {at:?})",
                    s.name,
                    q.len(),
                    hvsim.len()
                ));
            }
        }
    }

    pub fn check(&mut self, s: &Sample, what: &str, bytes: &[u8], expect: Expect) {
        self.count += 1;
        let file_len = bytes.len() as u64;
        let out = match run_mutant(bytes, s.parent.as_deref(), Duration::from_secs(20)) {
            Ok(o) => o,
            Err(e) => {
                self.failures.push(format!("[{}] {what}: {e}", s.name));
                return;
            }
        };
        self.slowest = self.slowest.max(out.elapsed);
        let budget = 4 * file_len as i64 + 64 * MIB as i64;
        if out.peak > budget {
            self.failures.push(format!(
                "[{}] {what}: allocated {} bytes at peak for a {file_len}-byte file (budget {budget})",
                s.name, out.peak
            ));
        }
        if out.grew_to > 0 {
            self.failures.push(format!(
                "[{}] {what}: tried to grow the {file_len}-byte file to {} bytes",
                s.name, out.grew_to
            ));
        }
        if out.elapsed > Duration::from_secs(5) {
            self.failures
                .push(format!("[{}] {what}: took {:?}", s.name, out.elapsed));
        }
        // Every mutant whose content changed, and a tenth of the others (qemu-img is a
        // process per mutant).
        if let Ok(d) = &out.ro {
            if *d != s.content || self.count.is_multiple_of(10) {
                self.compare_with_qemu(s, what, bytes, d);
            }
        }
        for (mode, r) in [("read-only", &out.ro), ("writable", &out.rw)] {
            let fail = |m: String| format!("[{}] {what} ({mode}): {m}", s.name);
            if let Err(e) = r {
                if e.contains("ORACLE:") {
                    self.failures.push(fail(e.clone()));
                    continue;
                }
            }
            match (&expect, r) {
                (Expect::Original, Ok(d)) if *d == s.content => {}
                (Expect::Original, Ok(_)) => self
                    .failures
                    .push(fail("opened, but the content differs".into())),
                (Expect::OriginalOrOld, Ok(d))
                    if *d == s.content || Some(d) == s.old_content.as_ref() => {}
                (Expect::OriginalOrOld, Ok(_)) => self.failures.push(fail(
                    "content is neither the replayed nor the old one".into(),
                )),
                (Expect::Original | Expect::OriginalOrOld | Expect::Opens, Err(e)) => {
                    self.failures.push(fail(format!("must open, got: {e}")))
                }
                (Expect::Opens, Ok(_)) => {}
                (Expect::OkOrErrNaming(_), Ok(_)) => {}
                (Expect::OkOrErrNaming(words), Err(e)) => {
                    self.errors += 1;
                    let l = e.to_lowercase();
                    if !words.iter().any(|w| l.contains(w)) {
                        self.failures
                            .push(fail(format!("error does not name any of {words:?}: {e}")));
                    }
                }
            }
        }
    }

    /// The pending log entry is damaged: it must not be replayed, so the image opens to
    /// the content it had before the interrupted write.
    pub fn check_old(&mut self, s: &Sample, what: &str, bytes: &[u8]) {
        let old = Sample {
            content: s.old_content.clone().expect("old content"),
            ..s.clone()
        };
        self.check(&old, what, bytes, Expect::Original);
    }

    pub fn finish(self, name: &str) {
        eprintln!(
            "{name}: {} mutants, {} errors, slowest {:?}, {} failures; qemu-img: {}, read alike {}, would not open {}",
            self.count,
            self.errors,
            self.slowest,
            self.failures.len(),
            if self.qemu.is_some() { "asked" } else { "not asked" },
            self.qemu_agreed,
            self.qemu_refused
        );
        if !self.failures.is_empty() {
            let shown: Vec<&String> = self.failures.iter().take(40).collect();
            panic!(
                "{} of {} mutants misbehaved; first ones:\n{}",
                self.failures.len(),
                self.count,
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

// ------------------------------------------------------------------ qemu-img as an oracle

/// Runs qemu-img; its exit code (None when killed) and its stdout and stderr together.
pub fn qemu_img(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("qemu-img not runnable ({e}): run ./test.sh, which installs qemu-utils")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// What qemu-img reads from an image file opened read-only (`convert -O raw`), or why it
/// cannot open it.
pub fn qemu_read_only(img: &std::path::Path) -> Result<Vec<u8>, String> {
    let raw = img.with_extension("qemu.raw");
    let (code, text) = qemu_img(&[
        "convert".as_ref(),
        "-f".as_ref(),
        "vhdx".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        img.as_os_str(),
        raw.as_os_str(),
    ]);
    let r = if code == Some(0) {
        std::fs::read(&raw).map_err(|e| e.to_string())
    } else {
        Err(text)
    };
    let _ = std::fs::remove_file(&raw);
    r
}

// ------------------------------------------------------------------ sparse storage

/// A large file that holds little: content in 64 KiB pages, zeros elsewhere, like a sparse
/// file whose apparent size is far beyond what it stores. It refuses to grow past
/// `limit` (an I/O error), so a damaged image cannot make the engine fill it.
#[derive(Clone)]
pub struct SparseStorage {
    pages: std::collections::BTreeMap<u64, Vec<u8>>,
    len: u64,
    limit: u64,
}

const PAGE: u64 = 64 * 1024;

impl SparseStorage {
    pub fn new(len: u64, limit: u64) -> Self {
        SparseStorage {
            pages: Default::default(),
            len,
            limit,
        }
    }

    /// Places `bytes` at `offset` (the file grows to hold them).
    pub fn put(&mut self, offset: u64, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            let pos = offset + at as u64;
            let (page, inp) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE as usize - inp).min(bytes.len() - at);
            let p = self
                .pages
                .entry(page)
                .or_insert_with(|| vec![0u8; PAGE as usize]);
            p[inp..inp + n].copy_from_slice(&bytes[at..at + n]);
            at += n;
        }
        self.len = self.len.max(offset + bytes.len() as u64);
    }
}

impl Storage for SparseStorage {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset.saturating_add(buf.len() as u64) > self.len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"));
        }
        let mut at = 0;
        while at < buf.len() {
            let pos = offset + at as u64;
            let (page, inp) = (pos / PAGE, (pos % PAGE) as usize);
            let n = (PAGE as usize - inp).min(buf.len() - at);
            match self.pages.get(&page) {
                Some(p) => buf[at..at + n].copy_from_slice(&p[inp..inp + n]),
                None => buf[at..at + n].fill(0),
            }
            at += n;
        }
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset.saturating_add(buf.len() as u64) > self.limit {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "test limit"));
        }
        self.put(offset, buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        if len > self.limit {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "test limit"));
        }
        self.pages.retain(|p, _| p * PAGE < len);
        self.len = len;
        Ok(())
    }
}
