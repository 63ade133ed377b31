//! `GuestWriter`: an application writer inside a Windows guest. Its decisions are
//! [`crate::protocol::guest_writer`]'s; this adapter stops and resumes the guest's
//! transactions and answers the guest's VSS.

use crate::plan::Stage;
use crate::protocol::guest_writer::{self, GuestWriterCore, GuestWriterEffect};
use crate::protocol::msg::Msg;
use crate::protocol::vss::{AppLevel, WriterEvent};
use crate::scenario::{self, Writer, WriterFailure};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope, Origin};
use crate::site::Site;

pub struct GuestWriter {
    name: String,
    vm: usize,
    core: GuestWriterCore,
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
            core: GuestWriterCore::new(config, failure),
        }
    }

    pub fn level(config: &Writer) -> AppLevel {
        guest_writer::level(config.kind)
    }

    /// F2.10: with the auto-recovery disks attached, the writer writes its own undo pages
    /// into them (real bytes through the engine); Err names the file and the problem.
    fn recover(&self, cx: &mut Cx<'_, Msg, Site>) -> Result<(), String> {
        let Some(ar) = cx.world.vms[self.vm]
            .auto_recovery
            .as_mut()
            .filter(|a| a.attached)
        else {
            return Ok(()); // not an auto-recoverable snapshot: nothing to do
        };
        let writer = self.core.config().name.clone();
        let pages = ar
            .roll_back(&writer, cx.out.guids())
            .map_err(|e| e.to_string())?;
        let what = if pages == 0 {
            "nothing to undo".to_string()
        } else {
            format!(
                "{pages} page(s) of its open transaction undone in {}",
                ar.files().join(", ")
            )
        };
        cx.out.detail("auto_recovery", what);
        Ok(())
    }

    fn apply(&self, vss: ActorId, effect: GuestWriterEffect, cx: &mut Cx<'_, Msg, Site>) {
        match effect {
            // Done in `handle`, which may change the answer.
            GuestWriterEffect::Recover => {}
            GuestWriterEffect::Hang { event } => {
                cx.out
                    .record(event.name(), [("reply", Detail::Str("none (hangs)"))]);
            }
            GuestWriterEffect::SetWriterFailure { event, code, state } => cx.out.record(
                event.name(),
                [
                    ("SetWriterFailure", Detail::Str(code.as_str())),
                    ("state", Detail::Str(state.name())),
                ],
            ),
            GuestWriterEffect::Crashed { event, state } => cx.out.record(
                event.name(),
                [
                    (
                        "exception",
                        Detail::Str("callback crashed; VSS event 12366"),
                    ),
                    ("state", Detail::Str(state.name())),
                ],
            ),
            GuestWriterEffect::CallbackDenied { event, state } => cx.out.record(
                event.name(),
                [
                    (
                        "callback",
                        Detail::Str("IVssWriterCallback access denied; event 8194"),
                    ),
                    ("state", Detail::Str(state.name())),
                ],
            ),
            GuestWriterEffect::Freeze => cx.world.vms[self.vm].frozen = true,
            GuestWriterEffect::Thaw => cx.world.vms[self.vm].frozen = false,
            GuestWriterEffect::State(state) => cx.out.detail("state", state.name()),
            GuestWriterEffect::Reply {
                delay_us,
                event,
                state,
                result,
            } => {
                // A failure VSS logs (12366, 8194) goes to the guest's event log.
                if let Err(f) = &result {
                    if let Some(id) = f.event {
                        let guest = cx.world.vms[self.vm].name.clone();
                        cx.world.raise(id, &guest, f.detail.clone());
                    }
                }
                cx.out.send_after(
                    vss,
                    delay_us,
                    Msg::WriterDone {
                        event,
                        state,
                        result,
                        claims: Vec::new(),
                    },
                )
            }
        }
    }
}

impl Actor<Msg, Site> for GuestWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let (Msg::Writer { event, .. }, Origin::Actor(vss)) = (env.msg, env.origin) else {
            return;
        };
        // The step is reached whether the writer then succeeds or fails at it.
        match event {
            WriterEvent::OnPrepareSnapshot => {
                super::tag(cx.world, &mut cx.out, self.vm, Stage::WriterPrepare)
            }
            WriterEvent::OnFreeze => super::tag(cx.world, &mut cx.out, self.vm, Stage::Quiesce),
            _ => {}
        }
        let mut effects = self.core.on_event(event);
        if effects.contains(&GuestWriterEffect::Recover) {
            if let Err(problem) = self.recover(cx) {
                effects = self.core.recovery_failed(&problem);
            }
        }
        let effects = self.core.in_turn(cx.out.now_us(), effects);
        for effect in effects {
            self.apply(vss, effect, cx);
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        self.core.digest(h);
    }
}
