//! What one large write promises when it is cut short (the README's promise for `hvsim
//! vhdx write`): the image opens, `check` finds no error, and every logical sector of the
//! written range reads its old or its new content, nothing else; all other sectors read as
//! before. A write spanning many blocks is not atomic as a whole (as on a real disk): the
//! metadata of each allocation goes through the log, payload overwrites go in place.
//!
//! (The CLI tests kill a real `hvsim vhdx write` and run `check` on what it left.)
//!
//! The write covers allocated blocks (overwritten in place), unallocated ones (fresh
//! space), a trimmed block's hole (reused space holding old bytes) and, on a differencing
//! disk, blocks read from the parent and partially present ones. It is cut at every storage
//! write, twice: as a killed process (every write done so far stays) and as a machine crash
//! (writes since the last flush kept or lost by seed, the last one torn). A write that was
//! flushed before the crash must be all there.

use hvsim_engine::vhdx::MIB;
use hvsim_engine::{
    CreateOptions, FaultPlan, FaultStorage, GuidGen, MemStorage, OpenOptions, Storage, Vhdx,
};
use std::io;
use std::sync::{Arc, Mutex};

const SIZE: u64 = 8 * MIB;
const START: u64 = 3 * 512;
const LEN: u64 = 7 * MIB - 5 * 512;

fn pattern(len: u64, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 512) as u8).wrapping_mul(31) ^ (i as u8) ^ salt | 1)
        .collect()
}

fn image_bytes(v: Vhdx) -> MemStorage {
    let mut s = v.into_storage().unwrap();
    let mut b = vec![0u8; s.len().unwrap() as usize];
    s.read_at(&mut b, 0).unwrap();
    MemStorage::from_vec(b)
}

/// The image before the write (and its parent): allocated, unallocated and trimmed blocks.
fn before(lss: u32, differencing: bool) -> (MemStorage, Option<MemStorage>) {
    let opts = |seed| CreateOptions {
        block_size: Some(MIB as u32),
        logical_sector_size: lss,
        guids: Some(GuidGen::seeded(seed)),
        ..CreateOptions::new(SIZE)
    };
    let mut v = Vhdx::create(Box::new(MemStorage::new()), &opts(1), None).unwrap();
    let parent = if differencing {
        v.write(0, &pattern(SIZE, 0x40)).unwrap();
        let p = image_bytes(v);
        let pv = Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap();
        let copts = CreateOptions {
            parent_paths: vec![("relative_path".into(), ".\\p.vhdx".into())],
            virtual_size: 0,
            ..opts(2)
        };
        v = Vhdx::create(Box::new(MemStorage::new()), &copts, Some(pv)).unwrap();
        Some(p)
    } else {
        None
    };
    for b in [0u64, 2, 4, 5] {
        v.write(b * MIB, &pattern(MIB, 0x10 + b as u8)).unwrap();
    }
    // Partially present on a child; on a base disk, a second allocated block.
    v.write(6 * MIB + 8192, &pattern(4096, 0x20)).unwrap();
    // A hole in the file that the write's next allocation reuses.
    v.trim(4 * MIB, MIB).unwrap();
    (image_bytes(v), parent)
}

fn open(image: Box<dyn Storage>, parent: Option<&MemStorage>, writable: bool) -> Vhdx {
    let p =
        parent.map(|p| Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap());
    let opts = OpenOptions {
        writable,
        guids: Some(GuidGen::seeded(3)),
        ..OpenOptions::default()
    };
    Vhdx::open(image, &opts, p).unwrap()
}

fn read_all(v: &mut Vhdx) -> Vec<u8> {
    let mut out = vec![0u8; SIZE as usize];
    v.read(0, &mut out).unwrap();
    out
}

/// A process killed after `left` more storage writes: every completed write stays (the
/// operating system has it), nothing after it happens.
#[derive(Clone)]
struct Killed {
    medium: Arc<Mutex<MemStorage>>,
    left: Arc<Mutex<u64>>,
}

impl Killed {
    fn count(&self) -> io::Result<()> {
        let mut left = self.left.lock().unwrap();
        if *left == 0 {
            return Err(io::Error::other("killed"));
        }
        *left -= 1;
        Ok(())
    }
}

impl Storage for Killed {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.medium.lock().unwrap().read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.count()?;
        self.medium.lock().unwrap().write_at(buf, offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.medium.lock().unwrap().len()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.count()?;
        self.medium.lock().unwrap().set_len(len)
    }
}

/// Checks the promise on what a cut write left; tells whether the write was all there.
fn assert_promise(bytes: Vec<u8>, parent: Option<&MemStorage>, old: &[u8], what: &str) -> bool {
    let lss = 512usize;
    let new = pattern(LEN, 0x77);
    let mut v = open(Box::new(MemStorage::from_vec(bytes.clone())), parent, false);
    let got = read_all(&mut v);
    let (s, e) = (START as usize, (START + LEN) as usize);
    assert!(
        got[..s] == old[..s],
        "{what}: bytes before the write changed"
    );
    assert!(
        got[e..] == old[e..],
        "{what}: bytes after the write changed"
    );
    for (k, sector) in got[s..e].chunks(lss).enumerate() {
        let at = k * lss;
        let n = sector.len();
        assert!(
            sector == &new[at..at + n] || sector == &old[s + at..s + at + n],
            "{what}: sector at virtual offset {} is neither old nor new",
            s + at
        );
    }
    // A writable open replays the log onto the file (the open validates every structure,
    // the read every block it maps) and must read the same.
    let mut w = open(Box::new(MemStorage::from_vec(bytes)), parent, true);
    assert!(
        read_all(&mut w) == got,
        "{what}: replay on the file differs"
    );
    got[s..e] == new[..]
}

fn every_cut(lss: u32, differencing: bool) {
    let (image, parent) = before(lss, differencing);
    let old = read_all(&mut open(Box::new(image.clone()), parent.as_ref(), false));
    let new = pattern(LEN, 0x77);
    // How many storage writes the whole write takes.
    let counter = FaultStorage::new(image.clone(), FaultPlan::default());
    let mut v = open(Box::new(counter.clone()), parent.as_ref(), true);
    v.write(START, &new).unwrap();
    v.close().unwrap();
    let total = counter.writes();
    assert!(total > 10, "the write took only {total} storage writes");
    let mut partial = 0;
    for n in 0..=total {
        let killed = Killed {
            medium: Arc::new(Mutex::new(image.clone())),
            left: Arc::new(Mutex::new(n)),
        };
        let mut v = open(Box::new(killed.clone()), parent.as_ref(), true);
        let done = v.write(START, &new).and_then(|_| v.flush());
        v.abandon();
        let bytes = killed.medium.lock().unwrap().clone().into_vec();
        let what = format!("lss {lss} diff {differencing} killed after {n} writes");
        let whole = assert_promise(bytes, parent.as_ref(), &old, &what);
        assert!(
            done.is_err() || whole,
            "{what}: a write that returned Ok is not all there"
        );
        partial += usize::from(!whole);
        for seed in 0..2 {
            let plan = FaultPlan {
                crash_after_writes: Some(n),
                seed,
                torn_last_write: seed == 1,
                sector_size: u64::from(lss),
                ..FaultPlan::default()
            };
            let fs = FaultStorage::new(image.clone(), plan);
            let mut v = open(Box::new(fs.clone()), parent.as_ref(), true);
            let flushed = v.write(START, &new).and_then(|_| v.flush());
            v.abandon();
            fs.crash().unwrap();
            let what = format!("lss {lss} diff {differencing} crash after {n} writes seed {seed}");
            let whole = assert_promise(fs.medium().into_vec(), parent.as_ref(), &old, &what);
            // Durable once flushed: what `vhdx write` does before it exits 0.
            assert!(flushed.is_err() || whole, "{what}: flushed, then lost");
        }
    }
    assert!(
        partial > 0,
        "no cut left the write partly done: the test saw nothing"
    );
}

#[test]
fn a_cut_write_leaves_old_or_new_sectors_dynamic() {
    every_cut(512, false);
}

#[test]
fn a_cut_write_leaves_old_or_new_sectors_4096() {
    every_cut(4096, false);
}

#[test]
fn a_cut_write_leaves_old_or_new_sectors_differencing() {
    every_cut(512, true);
}
