//! The auto-recovery checkpoint of one VM (F2.6, F2.10): per disk the independent chain
//! `<base> ← <disk>-AutoRecovery.avhdx`, and the rollback the guest's writers will write
//! into it, taken from the application's undo log as the checkpoint fixed it.

use hvsim_engine::chain::DiskChain;
use hvsim_engine::GuidGen;

use crate::world::UndoPage;

#[derive(Debug, Default)]
pub struct AutoRecovery {
    /// Per disk, its auto-recovery chain (None once discarded, or for a disk without).
    pub chains: Vec<Option<DiskChain>>,
    /// The open transaction at the checkpoint instant: what the writers undo (F2.10).
    pub rollback: Vec<UndoPage>,
}

/// Why the rollback could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct RollbackError {
    pub file: String,
    pub problem: String,
}

impl AutoRecovery {
    /// F2.10: the auto-recovery disk `i`, attached to the running VM, takes the writers'
    /// rollback as ordinary writes; detached after. Returns the pages written. The VM's
    /// own chain is never opened: the rollback lands only in the AutoRecovery.avhdx.
    pub fn roll_back(&self, i: usize, guids: &mut GuidGen) -> Result<u64, RollbackError> {
        let Some(chain) = self.chains.get(i).and_then(Option::as_ref) else {
            return Ok(0);
        };
        let err = |e: &dyn std::fmt::Display| RollbackError {
            file: chain.active().to_string(),
            problem: e.to_string(),
        };
        let mut disk = chain.open(true, false, guids).map_err(|e| err(&e))?;
        let mut pages = 0;
        for u in self.rollback.iter().filter(|u| u.disk == i) {
            disk.write(u.offset, &u.before).map_err(|e| err(&e))?;
            pages += 1;
        }
        disk.close().map_err(|e| err(&e))?;
        Ok(pages)
    }
}
