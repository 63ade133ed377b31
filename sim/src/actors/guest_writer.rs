//! `GuestWriter`: an application writer inside a Windows guest (System, Registry,
//! SQL-like, Exchange-like). It flushes and stops its transactions at OnFreeze, resumes at
//! OnThaw or OnAbort, and can be told to fail or hang at any event.

use crate::msg::{Fail, Msg};
use crate::scenario::{self, FailureClass, Hresult, Writer, WriterFailure};
use crate::sched::{Actor, Cx, Detail, Envelope, Origin};
use crate::vss::{AppLevel, WriterEvent, WriterState};
use crate::world::Lab;

/// How long a writer takes to handle an event (a flush at OnFreeze takes longer).
const HANDLE_US: u64 = 20_000;
const FLUSH_US: u64 = 150_000;

pub struct GuestWriter {
    name: String,
    vm: usize,
    config: Writer,
    /// The event this writer fails at, and how (from the fault plan).
    failure: Option<(scenario::WriterEvent, WriterFailure)>,
    state: WriterState,
}

impl GuestWriter {
    pub fn new(
        vm_name: &str,
        vm: usize,
        config: Writer,
        failure: Option<(scenario::WriterEvent, WriterFailure)>,
    ) -> Self {
        GuestWriter {
            name: format!("GuestWriter@{vm_name}/{}", config.name),
            vm,
            config,
            failure,
            state: WriterState::Stable,
        }
    }

    pub fn level(config: &Writer) -> AppLevel {
        use crate::scenario::WriterKind::*;
        match config.kind {
            System | Registry => AppLevel::System,
            Sql | Exchange => AppLevel::BackEnd,
        }
    }

    fn code(f: WriterFailure) -> Hresult {
        match f {
            WriterFailure::Retryable => Hresult::VssEWritererrorRetryable,
            WriterFailure::NonRetryable => Hresult::VssEWritererrorNonretryable,
            WriterFailure::OutOfResources => Hresult::VssEWritererrorOutOfResources,
            WriterFailure::InconsistentSnapshot => Hresult::VssEWritererrorInconsistentSnapshot,
            WriterFailure::Timeout => Hresult::VssEWritererrorTimeout,
        }
    }
}

impl Actor<Msg, Lab> for GuestWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Lab>) {
        let (Msg::Writer { event, .. }, Origin::Actor(vss)) = (env.msg, env.origin) else {
            return;
        };
        let failing = self
            .failure
            .filter(|(at, _)| WriterEvent::from_scenario(*at) == event);
        if let Some((_, with)) = failing {
            if with == WriterFailure::Timeout {
                // The handler never returns: VSS's window decides.
                cx.out
                    .record(event.name(), [("reply", Detail::Str("none (hangs)"))]);
                return;
            }
            self.state = event.failed_state();
            let code = Self::code(with);
            cx.out.record(
                event.name(),
                [
                    ("SetWriterFailure", Detail::Str(code.as_str())),
                    ("state", Detail::Str(self.state.name())),
                ],
            );
            let fail = Fail::new(
                code,
                FailureClass::Guest,
                format!("{} failed {}", self.config.name, event.name()),
            );
            cx.out.send_after(
                vss,
                HANDLE_US,
                Msg::WriterDone {
                    event,
                    state: self.state,
                    result: Err(fail),
                },
            );
            return;
        }
        let delay = match event {
            WriterEvent::OnFreeze => {
                // Flush and stop issuing transactions until thaw.
                cx.world.vms[self.vm].frozen = true;
                super::tag(cx.world, &mut cx.out, self.vm, crate::plan::Stage::Quiesce);
                FLUSH_US
            }
            WriterEvent::OnThaw | WriterEvent::OnAbort => {
                cx.world.vms[self.vm].frozen = false;
                HANDLE_US
            }
            _ => HANDLE_US,
        };
        self.state = event.state_after();
        cx.out.detail("state", self.state.name());
        cx.out.send_after(
            vss,
            delay,
            Msg::WriterDone {
                event,
                state: self.state,
                result: Ok(()),
            },
        );
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[self.state as u8]);
    }
}
