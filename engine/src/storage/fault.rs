//! Fault injection: crashes that lose or keep unflushed writes, torn writes, a full disk,
//! failing reads. Tests and the simulator wrap a real backend in it.

use super::Storage;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// What goes wrong, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// The machine crashes right after this many writes (`write_at` and `set_len` both
    /// count), before anything else reaches the storage, flushes included: every later
    /// call fails, and the writes since the last flush are kept or lost as `seed` says.
    pub crash_after_writes: Option<u64>,
    /// Chooses, at the crash, which writes since the last flush are kept and which lost.
    pub seed: u64,
    /// At the crash, the last write is torn: a random subset of its sectors lands.
    pub torn_last_write: bool,
    /// Granularity of a torn write.
    pub sector_size: u64,
    /// Writes that would make the storage longer than this fail with `StorageFull`.
    pub space_limit: Option<u64>,
    /// Reads fail after this many successful reads.
    pub fail_reads_after: Option<u64>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            crash_after_writes: None,
            seed: 0,
            torn_last_write: false,
            sector_size: 512,
            space_limit: None,
            fail_reads_after: None,
        }
    }
}

/// One change since the last flush, with what it replaced (to undo it at a crash).
#[derive(Debug)]
struct Pending {
    op: Op,
    old_len: u64,
    old_offset: u64,
    old_bytes: Vec<u8>,
}

#[derive(Debug)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// A storage wrapper that injects the faults of a [`FaultPlan`].
///
/// Clones share one medium: a test or the simulator keeps a clone to crash the storage
/// and to look at what survived, while an image owns another.
#[derive(Debug)]
pub struct FaultStorage<S: Storage> {
    state: Arc<Mutex<State<S>>>,
}

impl<S: Storage> Clone for FaultStorage<S> {
    fn clone(&self) -> Self {
        FaultStorage {
            state: Arc::clone(&self.state),
        }
    }
}

#[derive(Debug)]
struct State<S: Storage> {
    inner: S,
    plan: FaultPlan,
    writes: u64,
    /// `writes` at the last flush: what a crash cannot take back.
    flushed: u64,
    reads: u64,
    pending: Vec<Pending>,
    crashed: bool,
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the storage is gone")
}

impl<S: Storage> FaultStorage<S> {
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        FaultStorage {
            state: Arc::new(Mutex::new(State {
                inner,
                plan,
                writes: 0,
                flushed: 0,
                reads: 0,
                pending: Vec::new(),
                crashed: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters to a test that is already failing.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes performed so far (successful `write_at` and `set_len` calls).
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Writes made durable by the last successful flush (the first this many writes
    /// survive any crash).
    pub fn flushed_writes(&self) -> u64 {
        self.lock().flushed
    }

    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Crashes now (if not crashed yet): every write since the last flush is kept or lost
    /// as the seed chooses, the last one possibly torn. Later calls fail.
    pub fn crash(&self) -> io::Result<()> {
        self.lock().crash()
    }

    /// Plans a crash right after `more` further writes (0: crash now).
    pub fn crash_after(&self, more: u64) -> io::Result<()> {
        let mut st = self.lock();
        if more == 0 {
            return st.crash();
        }
        st.plan.crash_after_writes = Some(st.writes + more);
        Ok(())
    }

    /// Chooses which unflushed writes a crash keeps.
    pub fn set_seed(&self, seed: u64) {
        self.lock().plan.seed = seed;
    }

    /// A copy of what the medium holds now (call [`crash`](Self::crash) first to see
    /// what a crash leaves).
    pub fn medium(&self) -> S
    where
        S: Clone,
    {
        self.lock().inner.clone()
    }
}

impl<S: Storage> State<S> {
    fn crash(&mut self) -> io::Result<()> {
        if self.crashed {
            return Ok(());
        }
        self.crashed = true;
        let pending = std::mem::take(&mut self.pending);
        for p in pending.iter().rev() {
            self.inner.set_len(p.old_len)?;
            self.inner.write_at(&p.old_bytes, p.old_offset)?;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.plan.seed);
        let last = pending.len().saturating_sub(1);
        for (i, p) in pending.iter().enumerate() {
            let keep = rng.next_u32() & 1 == 1;
            match &p.op {
                Op::Write { offset, data } if i == last && self.plan.torn_last_write => {
                    let sector = self.plan.sector_size.max(1) as usize;
                    for (k, chunk) in data.chunks(sector).enumerate() {
                        if rng.next_u32() & 1 == 1 {
                            self.inner.write_at(chunk, offset + (k * sector) as u64)?;
                        }
                    }
                }
                _ if !keep => {}
                Op::Write { offset, data } => self.inner.write_at(data, *offset)?,
                Op::SetLen(len) => self.inner.set_len(*len)?,
            }
        }
        Ok(())
    }

    /// Counts a write; crashes when the plan says so.
    fn before_write(&mut self, new_end: u64) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        if self.plan.crash_after_writes == Some(0) {
            self.crash()?;
            return Err(crashed_error());
        }
        if let Some(limit) = self.plan.space_limit {
            if new_end > limit && new_end > self.inner.len()? {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("no space left: {new_end} bytes asked, {limit} available"),
                ));
            }
        }
        Ok(())
    }

    /// Counts a completed write; the crash comes right after the planned one.
    fn after_write(&mut self) -> io::Result<()> {
        self.writes += 1;
        if Some(self.writes) == self.plan.crash_after_writes {
            self.crash()?;
        }
        Ok(())
    }

    fn save_old(&mut self, offset: u64, len: u64) -> io::Result<(u64, u64, Vec<u8>)> {
        let old_len = self.inner.len()?;
        let start = offset.min(old_len);
        let end = offset.saturating_add(len).min(old_len);
        let mut old = vec![0u8; (end - start) as usize];
        self.inner.read_at(&mut old, start)?;
        Ok((old_len, start, old))
    }
}

impl<S: Storage> Storage for FaultStorage<S> {
    fn stored_extents(&self, offset: u64, len: u64, out: &mut Vec<(u64, u64)>) {
        self.lock().inner.stored_extents(offset, len, out)
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        if st.crashed {
            return Err(crashed_error());
        }
        if let Some(n) = st.plan.fail_reads_after {
            if st.reads >= n {
                return Err(io::Error::other("injected read failure"));
            }
        }
        st.reads += 1;
        st.inner.read_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.before_write(offset.saturating_add(buf.len() as u64))?;
        let (old_len, old_offset, old_bytes) = st.save_old(offset, buf.len() as u64)?;
        st.inner.write_at(buf, offset)?;
        st.pending.push(Pending {
            op: Op::Write {
                offset,
                data: buf.to_vec(),
            },
            old_len,
            old_offset,
            old_bytes,
        });
        st.after_write()
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut st = self.lock();
        if st.crashed {
            return Err(crashed_error());
        }
        st.inner.flush()?;
        st.pending.clear();
        st.flushed = st.writes;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.lock();
        if st.crashed {
            return Err(crashed_error());
        }
        st.inner.len()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.before_write(len)?;
        let cur = st.inner.len()?;
        let (old_len, old_offset, old_bytes) = st.save_old(len, cur.saturating_sub(len))?;
        st.inner.set_len(len)?;
        st.pending.push(Pending {
            op: Op::SetLen(len),
            old_len,
            old_offset,
            old_bytes,
        });
        st.after_write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    #[test]
    fn flushed_writes_survive_every_crash_seed() {
        for seed in 0..32 {
            let plan = FaultPlan {
                crash_after_writes: Some(2),
                seed,
                ..FaultPlan::default()
            };
            let mut s = FaultStorage::new(MemStorage::new(), plan);
            s.write_at(b"aaaa", 0).unwrap();
            s.flush().unwrap();
            s.write_at(b"bb", 1).unwrap();
            assert!(
                s.has_crashed(),
                "the crash comes right after the second write"
            );
            assert!(
                s.flush().is_err(),
                "nothing reaches the storage after the crash"
            );
            assert!(s.write_at(b"cc", 2).is_err());
            assert!(s.has_crashed());
            let img = s.medium().into_vec();
            assert!(img == b"aaaa" || img == b"abba", "seed {seed}: {img:?}");
        }
    }

    #[test]
    fn lost_extension_is_undone() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let mut s = FaultStorage::new(
                MemStorage::from_vec(vec![1; 4]),
                FaultPlan {
                    seed,
                    ..FaultPlan::default()
                },
            );
            s.set_len(8).unwrap();
            s.write_at(&[2; 4], 4).unwrap();
            s.crash().unwrap();
            seen.insert(s.medium().into_vec());
        }
        // Either op may be lost; a kept write re-extends the file by itself.
        let want: std::collections::BTreeSet<Vec<u8>> = [
            vec![1; 4],
            vec![1, 1, 1, 1, 0, 0, 0, 0],
            vec![1, 1, 1, 1, 2, 2, 2, 2],
        ]
        .into_iter()
        .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn torn_write_lands_whole_sectors_only() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let mut s = FaultStorage::new(
                MemStorage::from_vec(vec![0; 2048]),
                FaultPlan {
                    seed,
                    torn_last_write: true,
                    ..FaultPlan::default()
                },
            );
            s.write_at(&[9; 2048], 0).unwrap();
            s.crash().unwrap();
            let img = s.medium().into_vec();
            for sector in img.chunks(512) {
                assert!(sector.iter().all(|&b| b == sector[0]), "sector torn inside");
            }
            kinds.insert(img.chunks(512).map(|c| c[0]).collect::<Vec<_>>());
        }
        assert!(
            kinds.len() > 4,
            "tears should vary with the seed: {kinds:?}"
        );
    }

    #[test]
    fn space_limit_and_read_failures() {
        let mut s = FaultStorage::new(
            MemStorage::new(),
            FaultPlan {
                space_limit: Some(10),
                fail_reads_after: Some(1),
                ..FaultPlan::default()
            },
        );
        s.write_at(&[1; 10], 0).unwrap();
        let e = s.write_at(&[1; 1], 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(s.len().unwrap(), 10, "a refused write changes nothing");
        let mut b = [0u8; 2];
        s.read_at(&mut b, 0).unwrap();
        assert!(s.read_at(&mut b, 0).is_err());
    }
}
