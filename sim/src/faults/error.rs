//! Why a scenario's faults cannot be planned.

use crate::scenario::SpecId;

/// A fault the simulator cannot inject: refused, never silently skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// A fault kind the model has no mechanism for yet.
    #[error("faults[{index}]: {kind} is not modelled yet")]
    Unmodelled { index: usize, kind: &'static str },
    /// `out_of_space` at a step where no checkpoint file is created or grows.
    #[error(
        "faults[{index}]: out_of_space is modelled where a checkpoint's AVHDX is created ({}), not at {at}",
        crate::faults::CheckpointStep::list()
    )]
    OutOfSpaceStep { index: usize, at: SpecId },
    /// `out_of_space` at F2.11: the volume snapshot creates no AVHDX; the auto-recovery
    /// AVHDX grows before it, with the writers' rollback (F2.10).
    #[error(
        "faults[{index}]: out_of_space at F2.11 is not where an AVHDX grows: the auto-recovery AVHDX grows with the writers' rollback before the volume snapshot; name F2.10 (or F2.6 for its creation)"
    )]
    AutoRecoveryGrowth { index: usize },
    /// A name the validated scenario should have resolved.
    #[error("faults[{index}]: no {what} named {name:?}")]
    NoSuch {
        index: usize,
        what: &'static str,
        name: String,
    },
}
