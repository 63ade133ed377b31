//! Checkers fed by the scheduler, independent of the protocol code they judge: every
//! delivery is shown to them before its handler runs, and storage after it
//! ([`crate::sched::World::delivered`], [`crate::sched::World::after_step`]). No actor
//! writes here; the run's invariants read what they saw.
//!
//! - [`order`]: SPEC I5's protocol order, per writer, per provider and per set;
//! - [`windows`]: I5's freeze→thaw and flush-and-hold windows against their timeouts;
//! - [`writers`]: I3's writers back to stable, by their own answers;
//! - [`complete`]: I5's guest BackupComplete only after the host's snapshot (F2 note);
//! - [`sessions`]: I3's writer sessions closed with BackupComplete or Abort (field
//!   failure 10).
//!
//! The checkers only watch: their state is not part of the world digest.

pub mod complete;
pub mod order;
pub mod sessions;
pub mod windows;
pub mod writers;

#[cfg(test)]
mod tests;

pub use complete::{Complete, EarlyComplete};
pub use order::{Disorder, Order};
pub use sessions::{OpenSession, Sessions};
pub use windows::{Kind, Span, Windows, FLUSH_AND_HOLD_TIMEOUT_US, FREEZE_TIMEOUT_US};
pub use writers::{WriterSeen, Writers};

use crate::protocol::msg::Msg;
use crate::scenario::Scenario;
use crate::sched::{ActorId, Delivery};
use crate::world::VmLab;

/// The checkers of one run.
#[derive(Debug, Default)]
pub struct Watch {
    /// Per VM of the scenario, per guest writer (in the scenario's order), its own
    /// freeze→thaw window.
    guest_freeze_us: Vec<Vec<u64>>,
    pub order: Order,
    pub windows: Windows,
    pub writers: Writers,
    pub complete: Complete,
    pub sessions: Sessions,
}

impl Watch {
    pub fn new(scenario: &Scenario) -> Self {
        let guest_freeze_us = scenario
            .vms
            .iter()
            .map(|vm| {
                vm.guest
                    .writers
                    .iter()
                    .map(|w| {
                        w.freeze_timeout
                            .map_or(FREEZE_TIMEOUT_US, |t| t.millis.saturating_mul(1_000))
                    })
                    .collect()
            })
            .collect();
        Watch {
            guest_freeze_us,
            ..Watch::default()
        }
    }

    /// `writers` are VM `vm`'s guest writers (in the scenario's order): a freeze→thaw
    /// window of their VSS service is bound by the timeouts of the writers it froze.
    /// (The host's Hyper-V writer does nothing at OnFreeze, so nothing bounds the host's
    /// window.)
    pub fn guest_writers(&mut self, vm: usize, writers: &[ActorId]) {
        let limits = self.guest_freeze_us.get(vm).map_or(&[][..], Vec::as_slice);
        for (&w, &limit) in writers.iter().zip(limits) {
            self.windows.set_writer_limit(w, limit);
        }
    }

    /// Shows one delivery to every checker.
    pub fn delivered(&mut self, d: &Delivery<'_, Msg>) {
        self.order.delivered(d);
        self.windows.delivered(d);
        self.writers.delivered(d);
        self.complete.delivered(d);
        self.sessions.delivered(d);
    }

    /// Shows storage after a step.
    pub fn after_step(&mut self, vms: &[VmLab]) {
        self.windows.after_step(vms.iter().map(|v| v.held));
    }
}
