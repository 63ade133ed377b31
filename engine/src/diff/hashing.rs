//! Checking and digesting blocks on worker threads.
//!
//! A block that reads zeros is never hashed; any other is hashed whole with blake3. The
//! blocks of a batch are split into as many contiguous runs as there are threads, and
//! every summary lands at its block's place, so results never depend on the thread count.

use super::protocol::Summary;
use crate::vhdx::is_zero;
use std::thread::{Scope, ScopedJoinHandle};

/// The summary of one block's included bytes (`None`: not read, it is unallocated).
pub(crate) fn summarise(bytes: Option<&[u8]>) -> Summary {
    match bytes {
        Some(b) if !is_zero(b) => Summary::Digest(*blake3::hash(b).as_bytes()),
        _ => Summary::Zero,
    }
}

/// Work started on a scope's threads; [`Digesting::join`] gives the summaries in order.
pub(crate) struct Digesting<'scope> {
    handles: Vec<ScopedJoinHandle<'scope, Vec<Summary>>>,
}

impl<'scope> Digesting<'scope> {
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        blocks: Vec<Option<&'scope [u8]>>,
        threads: usize,
    ) -> Self {
        let per_thread = blocks.len().div_ceil(threads.max(1)).max(1);
        let mut handles = Vec::new();
        let mut rest = blocks;
        while !rest.is_empty() {
            let tail = rest.split_off(per_thread.min(rest.len()));
            let run = std::mem::replace(&mut rest, tail);
            handles.push(scope.spawn(move || run.into_iter().map(summarise).collect()));
        }
        Digesting { handles }
    }

    pub fn join(self) -> Vec<Summary> {
        let mut out = Vec::new();
        for h in self.handles {
            match h.join() {
                Ok(v) => out.extend(v),
                // A worker only hashes memory: a panic there is a bug, passed on as it is.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    }
}
