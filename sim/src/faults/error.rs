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
    /// `out_of_space` at F2.11: the auto-recovery AVHDX does not grow in this model.
    #[error(
        "faults[{index}]: out_of_space at F2.11 is not modelled: the auto-recovery AVHDX does not grow before the volume snapshot (the writers' rollback writes of F2.10 are not modelled); name F2.6 for its creation"
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
