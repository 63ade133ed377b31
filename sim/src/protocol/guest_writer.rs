//! The decisions of an application writer inside a Windows guest (System, Registry,
//! SQL-like, Exchange-like): it flushes and stops issuing transactions at OnFreeze,
//! resumes at OnThaw or OnAbort, and fails (SetWriterFailure) or hangs at the event the
//! scenario names (F5.6: one failing writer fails the whole preparation).

use crate::protocol::vss::{AppLevel, WriterEvent, WriterState};
use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult, Writer, WriterFailure, WriterKind};

/// How long a writer takes to handle an event.
pub const HANDLE_US: u64 = 20_000;
/// OnFreeze: flushing the writer's cached data takes longer.
pub const FLUSH_US: u64 = 150_000;

/// What the writer asks of the world, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestWriterEffect {
    /// The handler never returns: VSS's window decides.
    Hang { event: WriterEvent },
    /// The writer called SetWriterFailure with this code and is in this failed state.
    SetWriterFailure {
        event: WriterEvent,
        code: Hresult,
        state: WriterState,
    },
    /// The callback raised an exception; VSS caught it, logged event 12366 and holds the
    /// writer in this failed state.
    Crashed {
        event: WriterEvent,
        state: WriterState,
    },
    /// The writer could not call back to the requester (access denied, event 8194).
    CallbackDenied {
        event: WriterEvent,
        state: WriterState,
    },
    /// Flushed: the application issues no transactions until thaw.
    Freeze,
    /// The application issues transactions again.
    Thaw,
    /// OnPostSnapshot: on an auto-recoverable snapshot (VSS_VOLSNAP_ATTR_AUTORECOVER,
    /// reference vss.md §3) the writer undoes its own open transaction in it (F2.10).
    Recover,
    /// The writer's state after the event.
    State(WriterState),
    /// The writer's answer to VSS, `delay_us` from now.
    Reply {
        delay_us: u64,
        event: WriterEvent,
        state: WriterState,
        result: Result<(), Fail>,
    },
}

/// The VSS code a writer's configured failure reports.
pub fn failure_code(f: WriterFailure) -> Hresult {
    match f {
        WriterFailure::Retryable => Hresult::VssEWritererrorRetryable,
        WriterFailure::NonRetryable => Hresult::VssEWritererrorNonretryable,
        WriterFailure::OutOfResources => Hresult::VssEWritererrorOutOfResources,
        WriterFailure::InconsistentSnapshot => Hresult::VssEWritererrorInconsistentSnapshot,
        WriterFailure::Timeout => Hresult::VssEWritererrorTimeout,
        // VSS, not the writer, records the crashed callback's failure (UNCONFIRMED code).
        WriterFailure::Crash => Hresult::VssEUnexpectedWriterError,
        WriterFailure::AccessDenied => Hresult::EAccessDenied,
    }
}

/// The guest event logged when a writer cannot call back to the requester: access
/// denied querying IVssWriterCallback (field failure 7).
pub const EVENT_WRITER_CALLBACK_DENIED: u32 = 8194;

/// The VSS event logged when a writer's callback raises an exception (field failure 5).
pub const EVENT_WRITER_CALLBACK_CRASHED: u32 = 12366;

/// The application level a writer's kind freezes at.
pub fn level(kind: WriterKind) -> AppLevel {
    match kind {
        WriterKind::System | WriterKind::Registry => AppLevel::System,
        WriterKind::Sql | WriterKind::Exchange => AppLevel::BackEnd,
    }
}

/// One guest writer.
#[derive(Debug)]
pub struct GuestWriterCore {
    config: Writer,
    /// The event this writer fails at, and how (from the run's fault plan).
    failure: Option<(crate::scenario::WriterEvent, WriterFailure)>,
    state: WriterState,
    /// When the handler now running returns: VSS calls a writer's handlers one at a
    /// time, so an event arriving earlier (an OnAbort during a slow OnFreeze) is
    /// answered only after it.
    busy_until_us: u64,
}

impl GuestWriterCore {
    pub fn new(
        config: Writer,
        failure: Option<(crate::scenario::WriterEvent, WriterFailure)>,
    ) -> Self {
        GuestWriterCore {
            config,
            failure,
            state: WriterState::Stable,
            busy_until_us: 0,
        }
    }

    pub fn config(&self) -> &Writer {
        &self.config
    }

    pub fn state(&self) -> WriterState {
        self.state
    }

    /// A writer event from the guest's VSS.
    pub fn on_event(&mut self, event: WriterEvent) -> Vec<GuestWriterEffect> {
        let failing = self
            .failure
            .filter(|(at, _)| WriterEvent::from_scenario(*at) == event);
        if let Some((_, with)) = failing {
            return self.fail(event, with);
        }
        let mut fx = Vec::with_capacity(3);
        let delay_us = match event {
            WriterEvent::OnFreeze => {
                fx.push(GuestWriterEffect::Freeze);
                FLUSH_US
            }
            WriterEvent::OnThaw | WriterEvent::OnAbort => {
                fx.push(GuestWriterEffect::Thaw);
                HANDLE_US
            }
            WriterEvent::OnPostSnapshot => {
                fx.push(GuestWriterEffect::Recover);
                HANDLE_US
            }
            _ => HANDLE_US,
        };
        self.state = event.state_after();
        fx.push(GuestWriterEffect::State(self.state));
        fx.push(GuestWriterEffect::Reply {
            delay_us,
            event,
            state: self.state,
            result: Ok(()),
        });
        fx
    }

    /// `fx` (what `on_event` or `recovery_failed` decided for an event arriving at
    /// `now_us`) with its answer queued behind the handler still running: the answers
    /// leave in the order the events came, so the last answer VSS gets carries the
    /// writer's state after the last event (an OnAbort's stable, never a late
    /// OnFreeze's waiting-for-thaw). A hanging handler (no answer) holds nothing up.
    pub fn in_turn(
        &mut self,
        now_us: u64,
        mut fx: Vec<GuestWriterEffect>,
    ) -> Vec<GuestWriterEffect> {
        for e in &mut fx {
            if let GuestWriterEffect::Reply { delay_us, .. } = e {
                let start = self.busy_until_us.max(now_us);
                self.busy_until_us = start + *delay_us;
                *delay_us = self.busy_until_us - now_us;
            }
        }
        fx
    }

    /// The writer could not write its rollback into the auto-recoverable snapshot: it
    /// fails OnPostSnapshot, and the backup with VSS_E_AUTORECOVERY_FAILED naming it
    /// (reference vss.md §4.2). What it answers replaces the answer `on_event` gave.
    pub fn recovery_failed(&mut self, problem: &str) -> Vec<GuestWriterEffect> {
        let event = WriterEvent::OnPostSnapshot;
        self.state = event.failed_state();
        let code = Hresult::VssEAutorecoveryFailed;
        // Its writes go to the hot-added AutoRecovery.avhdx on the host's volume: a
        // failure there is the host storage's (F5.T).
        let fail = Fail::new(
            code,
            FailureClass::Host,
            format!(
                "{} could not roll back its open transaction in the auto-recovery snapshot: {problem}",
                self.config.name
            ),
        );
        vec![
            GuestWriterEffect::SetWriterFailure {
                event,
                code,
                state: self.state,
            },
            GuestWriterEffect::Reply {
                delay_us: HANDLE_US,
                event,
                state: self.state,
                result: Err(fail),
            },
        ]
    }

    fn fail(&mut self, event: WriterEvent, with: WriterFailure) -> Vec<GuestWriterEffect> {
        if with == WriterFailure::Timeout {
            return vec![GuestWriterEffect::Hang { event }];
        }
        // Denied the callback, the writer did its work; only its answer is lost.
        self.state = if with == WriterFailure::AccessDenied {
            event.state_after()
        } else {
            event.failed_state()
        };
        let code = failure_code(with);
        let crashed = with == WriterFailure::Crash;
        let mut fail = Fail::new(
            code,
            FailureClass::Guest,
            if crashed {
                format!(
                    "{}'s {} callback raised an exception (VSS event {EVENT_WRITER_CALLBACK_CRASHED})",
                    self.config.name,
                    event.name()
                )
            } else {
                format!("{} failed {}", self.config.name, event.name())
            },
        );
        if with == WriterFailure::AccessDenied {
            fail = Fail::new(
                code,
                FailureClass::Guest,
                format!(
                    "{}: unexpected error querying for the IVssWriterCallback interface at {}: \
                     hr = 0x80070005, access is denied (event {EVENT_WRITER_CALLBACK_DENIED})",
                    self.config.name,
                    event.name()
                ),
            )
            .with_event(EVENT_WRITER_CALLBACK_DENIED);
        }
        let mut fx = Vec::with_capacity(3);
        if with == WriterFailure::AccessDenied {
            // It did its work: flushed, resumed, or rolled back its open transaction in
            // the auto-recoverable snapshot (F2.10), which the backup then holds (I2).
            match event {
                WriterEvent::OnFreeze => fx.push(GuestWriterEffect::Freeze),
                WriterEvent::OnThaw | WriterEvent::OnAbort => fx.push(GuestWriterEffect::Thaw),
                WriterEvent::OnPostSnapshot => fx.push(GuestWriterEffect::Recover),
                _ => {}
            }
        }
        let told = if with == WriterFailure::AccessDenied {
            GuestWriterEffect::CallbackDenied {
                event,
                state: self.state,
            }
        } else if crashed {
            fail = fail.with_event(EVENT_WRITER_CALLBACK_CRASHED);
            GuestWriterEffect::Crashed {
                event,
                state: self.state,
            }
        } else {
            GuestWriterEffect::SetWriterFailure {
                event,
                code,
                state: self.state,
            }
        };
        fx.push(told);
        fx.push(GuestWriterEffect::Reply {
            delay_us: HANDLE_US,
            event,
            state: self.state,
            result: Err(fail),
        });
        fx
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[self.state as u8]);
    }
}

#[cfg(test)]
#[path = "guest_writer_tests.rs"]
mod tests;
