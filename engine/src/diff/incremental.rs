//! Incremental synchronisation from change tracking: the changed byte ranges are known
//! (RCT), so the agent reads and sends only the blocks they touch, and the server writes
//! them. Nothing is hashed and the replica is not read: change tracking is trusted. When it
//! cannot be (a node crash, a storage migration: R11, R17), run an express full or a
//! consistency check instead.

use super::express_full::{apply_block, read_block, SyncOutcome};
use super::figures::SyncFigures;
use super::protocol::{BlockMessage, Payload};
use super::{prepare, DiffError, SyncOptions};
use crate::disk::{VirtualDisk, VirtualDiskMut};
use crate::vhdx::is_zero;

/// Sends the blocks that `changed` (byte ranges `(offset, length)`) touch from `source` to
/// `replica`, then flushes the replica. A touched block that reads zeros travels as a
/// header alone and is trimmed on the replica. Excluded ranges are left alone as in
/// [`super::express_full`].
pub fn incremental(
    source: &mut dyn VirtualDisk,
    replica: &mut dyn VirtualDiskMut,
    changed: &[(u64, u64)],
    opts: &SyncOptions,
) -> Result<SyncOutcome, DiffError> {
    let size = source.virtual_size();
    let (grid, excl) = prepare(opts, size, replica.virtual_size())?;
    let mut blocks = Vec::new();
    for &(offset, length) in changed {
        let end = match offset.checked_add(length) {
            Some(e) if e <= size => e,
            _ => {
                return Err(DiffError::BadRange {
                    offset,
                    length,
                    size,
                })
            }
        };
        if length > 0 {
            blocks.extend(offset / grid.block_size..=(end - 1) / grid.block_size);
        }
    }
    blocks.sort_unstable();
    blocks.dedup();

    let mut f = SyncFigures {
        block_size: grid.block_size,
        blocks_total: grid.blocks(),
        excluded_bytes: excl.total(),
        ..SyncFigures::default()
    };
    let mut sent = Vec::new();
    let mut buf = Vec::new();
    for block in blocks {
        let (s, e) = grid.range(block);
        let segs = excl.included(s, e);
        if segs.is_empty() {
            f.blocks_excluded += 1;
            continue;
        }
        let read = read_block(source, &segs, &mut buf, &mut f.agent).map_err(DiffError::Source)?;
        let payload = if read && !is_zero(&buf) {
            Payload::Data(&buf)
        } else {
            if read {
                f.agent.blocks_zero += 1;
            }
            Payload::Zeros
        };
        let msg = BlockMessage { block, payload };
        f.block_bytes_sent += msg.payload_len();
        f.network_bytes += msg.wire_len();
        f.blocks_sent += 1;
        f.replica_bytes_written +=
            apply_block(replica, &segs, msg.payload).map_err(DiffError::Replica)?;
        sent.push(block);
    }
    replica.flush().map_err(DiffError::Replica)?;
    Ok(SyncOutcome {
        figures: f,
        differing_blocks: sent,
    })
}
