//! Express full (SPEC F5.E): the agent reads the VM's disk block by block and sends a digest
//! per block; the server reads its replica block by block, digests it the same way,
//! compares, and asks for the blocks that differ; the agent sends them and the server
//! applies them to the replica. Equal blocks cost reading and hashing on both sides, and a
//! digest message on the network, but are never sent.
//!
//! Blocks go in batches. Each of `threads` threads takes a run of a batch's blocks and, block
//! by block, reads it on both sides (one thread at a time per disk, behind a lock) and
//! digests it at once, while it is still in the cache; with one thread the calling thread
//! does it all. The calling thread then plays the protocol for the batch and applies the
//! differing blocks. The server's answer to a digest depends only on its own digest of the
//! same block, known at once, so the agent keeps the bytes of the differing blocks only, and
//! sends them from memory when asked: no block is read twice.

use super::exclusion::Exclusions;
use super::figures::{SideFigures, SyncFigures};
use super::hashing::summarise;
use super::protocol::{BlockMessage, BlockRequest, DigestMessage, Payload, Summary};
use super::{prepare, DiffError, Grid, SyncOptions};
use crate::disk::{VirtualDisk, VirtualDiskMut};
use crate::vhdx::VhdxError;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// What a synchronisation did: its figures and the blocks that differed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub figures: SyncFigures,
    /// Blocks found different (express full, consistency check) or named by change
    /// tracking (incremental), in increasing order.
    pub differing_blocks: Vec<u64>,
}

/// Brings `replica` up to date with `source` by an express full, then flushes the replica
/// (the caller makes the recovery point of it).
pub fn express_full(
    source: &mut (dyn VirtualDisk + Send),
    replica: &mut (dyn VirtualDiskMut + Send),
    opts: &SyncOptions,
) -> Result<SyncOutcome, DiffError> {
    let out = block_compare(source, Replica::Repair(replica), opts)?;
    Ok(out)
}

/// The server's replica: only read (compare), or read and repaired.
pub(crate) enum Replica<'a> {
    Compare(&'a mut (dyn VirtualDisk + Send)),
    Repair(&'a mut (dyn VirtualDiskMut + Send)),
}

impl Replica<'_> {
    fn disk(&mut self) -> &mut (dyn VirtualDisk + Send) {
        match self {
            Replica::Compare(d) => *d,
            Replica::Repair(d) => *d,
        }
    }
}

/// Bytes of blocks each thread reads and digests per batch (at least one block).
const BATCH_BYTES_PER_THREAD: u64 = 64 * 1024 * 1024;

/// A batch: the blocks it covers, with their included ranges, and the agent's bytes of
/// those that differ (kept until the server asks for them).
#[derive(Default)]
struct Batch {
    blocks: Vec<(u64, Vec<(u64, u64)>)>,
    kept: Vec<Option<Vec<u8>>>,
}

/// One thread's buffers for a block of each side, reused from block to block (so that a
/// block is digested while it is still in the cache).
#[derive(Default)]
struct Scratch {
    agent: Vec<u8>,
    server: Vec<u8>,
}

/// Reads the included ranges `segs` of one block into `buf`, packed, unless they are all
/// unallocated; tells whether it read.
pub(crate) fn read_block(
    disk: &mut dyn VirtualDisk,
    segs: &[(u64, u64)],
    buf: &mut Vec<u8>,
    fig: &mut SideFigures,
) -> Result<bool, VhdxError> {
    if !segs.iter().any(|&(s, e)| disk.range_has_data(s, e - s)) {
        buf.clear();
        fig.blocks_unallocated += 1;
        fig.blocks_zero += 1;
        return Ok(false);
    }
    let total: u64 = segs.iter().map(|(s, e)| e - s).sum();
    // A buffer of the right length is overwritten whole: no need to clear it first.
    buf.resize(total as usize, 0);
    let mut at = 0usize;
    for &(s, e) in segs {
        let n = (e - s) as usize;
        disk.read(s, &mut buf[at..at + n])?;
        at += n;
    }
    fig.bytes_read += total;
    fig.blocks_read += 1;
    Ok(true)
}

/// Writes a block's content, packed as the agent sent it, into its included ranges.
pub(crate) fn apply_block(
    replica: &mut dyn VirtualDiskMut,
    segs: &[(u64, u64)],
    payload: Payload<'_>,
) -> Result<u64, VhdxError> {
    let mut at = 0usize;
    for &(s, e) in segs {
        let n = (e - s) as usize;
        match payload {
            Payload::Data(d) => replica.write(s, &d[at..at + n])?,
            // Trimmed ranges read zeros, and whole blocks of the image give their space back.
            Payload::Zeros => replica.trim(s, e - s)?,
        }
        at += n;
    }
    Ok(at as u64)
}

/// The block compare at the heart of express full and the consistency check.
pub(crate) fn block_compare(
    source: &mut (dyn VirtualDisk + Send),
    mut replica: Replica<'_>,
    opts: &SyncOptions,
) -> Result<SyncOutcome, DiffError> {
    let (grid, excl) = prepare(opts, source.virtual_size(), replica.disk().virtual_size())?;
    let mut run = Run {
        figures: SyncFigures {
            block_size: grid.block_size,
            blocks_total: grid.blocks(),
            excluded_bytes: excl.total(),
            ..SyncFigures::default()
        },
        differing: Vec::new(),
    };
    let per_batch = (BATCH_BYTES_PER_THREAD / grid.block_size).max(1) * opts.threads as u64;
    let mut batch = Batch::default();
    let mut scratch: Vec<Scratch> = (0..opts.threads).map(|_| Scratch::default()).collect();
    let mut next_block = 0u64;
    while next_block < grid.blocks() {
        next_block = plan_batch(&grid, &excl, next_block, per_batch, &mut batch, &mut run);
        let sums = digest_batch(
            source,
            replica.disk(),
            &mut batch,
            &mut scratch,
            &mut run.figures,
        )?;
        run.finish_batch(&batch, &sums, &mut replica)?;
    }
    if let Replica::Repair(r) = replica {
        r.flush().map_err(DiffError::Replica)?;
    }
    Ok(SyncOutcome {
        figures: run.figures,
        differing_blocks: run.differing,
    })
}

/// Fills `batch.blocks` with up to `n` blocks from `first` on, skipping (and counting) those
/// wholly excluded; returns the block after the batch.
fn plan_batch(
    grid: &Grid,
    excl: &Exclusions,
    first: u64,
    n: u64,
    batch: &mut Batch,
    run: &mut Run,
) -> u64 {
    batch.blocks.clear();
    let mut b = first;
    while b < grid.blocks() && (batch.blocks.len() as u64) < n {
        let (s, e) = grid.range(b);
        let segs = excl.included(s, e);
        if segs.is_empty() {
            run.figures.blocks_excluded += 1;
        } else {
            batch.blocks.push((b, segs));
        }
        b += 1;
    }
    b
}

/// One thread's share of a batch: its blocks, its slots for kept bytes, its buffers.
struct Share<'a> {
    blocks: &'a [(u64, Vec<(u64, u64)>)],
    kept: &'a mut [Option<Vec<u8>>],
    scratch: &'a mut Scratch,
}

/// What one thread found: both sides' summaries of its blocks and the work it did.
#[derive(Default)]
struct Found {
    agent: Vec<Summary>,
    server: Vec<Summary>,
    agent_fig: SideFigures,
    server_fig: SideFigures,
}

type Disk<'a> = Mutex<&'a mut (dyn VirtualDisk + Send)>;

/// Reads and digests a share of a batch, block by block, on both sides. The agent's bytes
/// of a block whose digest differs from the server's are kept for the server's request.
fn read_and_digest(
    share: Share<'_>,
    agent: &Disk<'_>,
    server: &Disk<'_>,
) -> Result<Found, DiffError> {
    let mut f = Found::default();
    let Scratch {
        agent: abuf,
        server: sbuf,
    } = share.scratch;
    for (i, (_, segs)) in share.blocks.iter().enumerate() {
        let a =
            read_and_summarise(agent, segs, abuf, &mut f.agent_fig).map_err(DiffError::Source)?;
        let s = read_and_summarise(server, segs, sbuf, &mut f.server_fig)
            .map_err(DiffError::Replica)?;
        share.kept[i] = (a != s && a != Summary::Zero).then(|| abuf.clone());
        f.agent.push(a);
        f.server.push(s);
    }
    Ok(f)
}

/// Reads a block (with the disk's lock held for the read only) and summarises it.
fn read_and_summarise(
    disk: &Disk<'_>,
    segs: &[(u64, u64)],
    buf: &mut Vec<u8>,
    fig: &mut SideFigures,
) -> Result<Summary, VhdxError> {
    // A poisoned lock means another thread panicked; the disk itself is sound.
    let mut d = disk.lock().unwrap_or_else(|p| p.into_inner());
    let read = read_block(&mut **d, segs, buf, fig)?;
    drop(d);
    let sum = summarise(read.then_some(buf.as_slice()));
    match sum {
        Summary::Digest(_) => fig.bytes_hashed += buf.len() as u64,
        // Unallocated blocks were counted zero by `read_block`.
        Summary::Zero if read => fig.blocks_zero += 1,
        Summary::Zero => {}
    }
    Ok(sum)
}

/// Reads and digests a batch on as many threads as there are scratch buffers; gives the
/// agent's summaries, then the server's, in block order whatever the number of threads.
fn digest_batch(
    source: &mut (dyn VirtualDisk + Send),
    replica: &mut (dyn VirtualDisk + Send),
    batch: &mut Batch,
    scratch: &mut [Scratch],
    fig: &mut SyncFigures,
) -> Result<Vec<Summary>, DiffError> {
    let n = batch.blocks.len();
    batch.kept.clear();
    batch.kept.resize_with(n, || None);
    let (agent, server) = (Mutex::new(source), Mutex::new(replica));
    let threads = scratch.len();
    let per_thread = n.div_ceil(threads).max(1);
    let shares = batch
        .blocks
        .chunks(per_thread)
        .zip(batch.kept.chunks_mut(per_thread))
        .zip(scratch.iter_mut())
        .map(|((blocks, kept), scratch)| Share {
            blocks,
            kept,
            scratch,
        });
    let found: Vec<Result<Found, DiffError>> = if threads == 1 {
        shares
            .map(|s| read_and_digest(s, &agent, &server))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .map(|s| {
                    let (agent, server) = (&agent, &server);
                    scope.spawn(move || read_and_digest(s, agent, server))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r,
                    // A worker panicking is a bug, passed on as it is.
                    Err(e) => std::panic::resume_unwind(e),
                })
                .collect()
        })
    };
    let (mut agent_sums, mut server_sums) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for f in found {
        let f = f?;
        agent_sums.extend(f.agent);
        server_sums.extend(f.server);
        fig.agent += f.agent_fig;
        fig.server += f.server_fig;
    }
    agent_sums.append(&mut server_sums);
    Ok(agent_sums)
}

struct Run {
    figures: SyncFigures,
    differing: Vec<u64>,
}

impl Run {
    /// The protocol for one digested batch: the agent's digest messages, the server's
    /// compare and requests, the agent's answers, the server applying them.
    fn finish_batch(
        &mut self,
        batch: &Batch,
        summaries: &[Summary],
        replica: &mut Replica<'_>,
    ) -> Result<(), DiffError> {
        let n = batch.blocks.len();
        let (agent_sums, server_sums) = summaries.split_at(n);
        let f = &mut self.figures;
        for (i, (block, segs)) in batch.blocks.iter().enumerate() {
            let block = *block;
            // Agent → server.
            let digest = DigestMessage {
                block,
                summary: agent_sums[i],
            };
            f.digest_bytes_exchanged += digest.wire_len();
            f.network_bytes += digest.wire_len();
            f.blocks_compared += 1;
            // The server compares with its own summary.
            if digest.summary == server_sums[i] {
                if digest.summary == Summary::Zero {
                    f.blocks_skipped_zero += 1;
                }
                continue;
            }
            f.blocks_differing += 1;
            self.differing.push(block);
            let Replica::Repair(r) = replica else {
                continue;
            };
            // Server → agent, and the agent's answer from the bytes it kept.
            let request = BlockRequest { block };
            f.request_bytes += request.wire_len();
            f.network_bytes += request.wire_len();
            let answer = BlockMessage {
                block: request.block,
                payload: match &batch.kept[i] {
                    Some(bytes) => Payload::Data(bytes),
                    None => Payload::Zeros,
                },
            };
            f.block_bytes_sent += answer.payload_len();
            f.network_bytes += answer.wire_len();
            f.blocks_sent += 1;
            f.replica_bytes_written +=
                apply_block(&mut **r, segs, answer.payload).map_err(DiffError::Replica)?;
        }
        Ok(())
    }
}
