//! Express full (SPEC F5.E): the agent reads the VM's disk block by block and sends a digest
//! per block; the server reads its replica block by block, digests it the same way,
//! compares, and asks for the blocks that differ; the agent sends them and the server
//! applies them to the replica. Equal blocks cost reading and hashing on both sides, and a
//! digest message on the network, but are never sent.
//!
//! The calling thread reads (both sides) and applies; worker threads check and digest. While
//! the workers digest one batch of blocks, the calling thread reads the next. The agent
//! keeps a batch's bytes until the server has answered for it, so a requested block is sent
//! from memory, not read twice.

use super::exclusion::Exclusions;
use super::figures::{SideFigures, SyncFigures};
use super::hashing::{summarise, Digesting};
use super::protocol::{BlockMessage, BlockRequest, DigestMessage, Payload, Summary};
use super::{prepare, DiffError, Grid, SyncOptions};
use crate::disk::{VirtualDisk, VirtualDiskMut};
use crate::vhdx::VhdxError;
use serde::{Deserialize, Serialize};

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
    source: &mut dyn VirtualDisk,
    replica: &mut dyn VirtualDiskMut,
    opts: &SyncOptions,
) -> Result<SyncOutcome, DiffError> {
    let out = block_compare(source, Replica::Repair(replica), opts)?;
    Ok(out)
}

/// The server's replica: only read (compare), or read and repaired.
pub(crate) enum Replica<'a> {
    Compare(&'a mut dyn VirtualDisk),
    Repair(&'a mut dyn VirtualDiskMut),
}

impl Replica<'_> {
    fn disk(&mut self) -> &mut dyn VirtualDisk {
        match self {
            Replica::Compare(d) => *d,
            Replica::Repair(d) => *d,
        }
    }
}

/// Bytes of blocks one side reads before the workers digest them.
const BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// One side's blocks of a batch: the included bytes of each, packed in order.
#[derive(Default)]
struct SideBatch {
    bufs: Vec<Vec<u8>>,
    /// Whether each block was read (false: unallocated, it reads zeros).
    read: Vec<bool>,
}

impl SideBatch {
    fn bytes(&self, i: usize) -> Option<&[u8]> {
        self.read[i].then_some(self.bufs[i].as_slice())
    }
    fn blocks(&self) -> impl Iterator<Item = Option<&[u8]>> {
        (0..self.bufs.len()).map(|i| self.bytes(i))
    }
}

/// A batch: the blocks it covers, with their included ranges, and both sides' bytes.
#[derive(Default)]
struct Batch {
    blocks: Vec<(u64, Vec<(u64, u64)>)>,
    agent: SideBatch,
    server: SideBatch,
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
    source: &mut dyn VirtualDisk,
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
    let per_batch = (BATCH_BYTES / grid.block_size).max(opts.threads as u64);
    if opts.threads == 1 {
        // One thread: digest each block right after reading it, while it is in the cache.
        let mut batch = Batch::default();
        let mut next_block = 0u64;
        while next_block < grid.blocks() {
            next_block = plan_batch(&grid, &excl, next_block, per_batch, &mut batch, &mut run);
            let mut sums = Vec::new();
            read_batch(
                source,
                replica.disk(),
                &mut batch,
                &mut run.figures,
                Some(&mut sums),
            )?;
            run.finish_batch(&batch, &sums, &mut replica)?;
        }
        return finish(run, replica);
    }

    let mut next_block = 0u64;
    let mut cur = Batch::default();
    let mut prev: Option<Batch> = None;
    loop {
        let more = next_block < grid.blocks();
        if more {
            next_block = plan_batch(&grid, &excl, next_block, per_batch, &mut cur, &mut run);
        }
        // Workers digest the previous batch while this thread reads the current one.
        let (read, summaries) = std::thread::scope(|scope| {
            let digesting = prev.as_ref().map(|p| {
                let blocks = p.agent.blocks().chain(p.server.blocks()).collect();
                Digesting::start(scope, blocks, opts.threads)
            });
            let read = if more {
                read_batch(source, replica.disk(), &mut cur, &mut run.figures, None)
            } else {
                Ok(())
            };
            (read, digesting.map(Digesting::join))
        });
        if let (Some(p), Some(s)) = (prev.as_ref(), summaries) {
            run.finish_batch(p, &s, &mut replica)?;
        }
        read?;
        if !more {
            break;
        }
        // The finished batch's buffers are reused for the one after next.
        let spare = prev.replace(std::mem::take(&mut cur));
        if let Some(s) = spare {
            cur = s;
        }
    }
    finish(run, replica)
}

fn finish(run: Run, replica: Replica<'_>) -> Result<SyncOutcome, DiffError> {
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

fn read_batch(
    source: &mut dyn VirtualDisk,
    replica: &mut dyn VirtualDisk,
    batch: &mut Batch,
    fig: &mut SyncFigures,
    mut inline: Option<&mut Vec<Summary>>,
) -> Result<(), DiffError> {
    let n = batch.blocks.len();
    let mut server_sums = Vec::new();
    for side in [&mut batch.agent, &mut batch.server] {
        side.bufs.resize_with(n, Vec::new);
        side.read.resize(n, false);
    }
    for (i, (_, segs)) in batch.blocks.iter().enumerate() {
        batch.agent.read[i] = read_block(source, segs, &mut batch.agent.bufs[i], &mut fig.agent)
            .map_err(DiffError::Source)?;
        batch.server.read[i] =
            read_block(replica, segs, &mut batch.server.bufs[i], &mut fig.server)
                .map_err(DiffError::Replica)?;
        if let Some(sums) = inline.as_deref_mut() {
            sums.push(summarise(batch.agent.bytes(i)));
            server_sums.push(summarise(batch.server.bytes(i)));
        }
    }
    if let Some(sums) = inline {
        sums.append(&mut server_sums);
    }
    Ok(())
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
            for (side, sum, buf) in [
                (&mut f.agent, agent_sums[i], &batch.agent.bufs[i]),
                (&mut f.server, server_sums[i], &batch.server.bufs[i]),
            ] {
                match sum {
                    Summary::Digest(_) => side.bytes_hashed += buf.len() as u64,
                    // Unallocated blocks were counted zero when skipped.
                    Summary::Zero if !buf.is_empty() => side.blocks_zero += 1,
                    Summary::Zero => {}
                }
            }
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
                payload: match digest.summary {
                    Summary::Zero => Payload::Zeros,
                    Summary::Digest(_) => Payload::Data(&batch.agent.bufs[i]),
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
