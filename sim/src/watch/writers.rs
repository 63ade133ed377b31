//! SPEC I3, writers back to stable: each writer's state as the writer itself last reported
//! it (its `WriterDone`), and the events it was sent and never answered. VSS's own idea of
//! a writer's state is protocol state, not evidence.

use std::collections::BTreeMap;

use crate::protocol::msg::Msg;
use crate::protocol::vss::{VssTimer, WriterEvent, WriterState};
use crate::sched::{ActorId, Delivery};

/// What one writer was sent and said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterSeen {
    /// The state of its last answer (`None`: it never answered).
    pub state: Option<WriterState>,
    /// The step of its last answer (0: none).
    pub answered_at: u64,
    /// Events delivered to it and never answered, with their steps.
    pub unanswered: Vec<(u64, WriterEvent)>,
    /// The VSS service that sent it its events.
    pub service: Option<ActorId>,
    /// Steps of unanswered events its service gave up waiting for (its writer-response
    /// window expired: VSS_E_WRITER_NOT_RESPONDING).
    pub given_up: Vec<u64>,
}

impl WriterSeen {
    /// The events it never answered after its last answer: what it was left doing.
    pub fn left_unanswered(&self) -> impl Iterator<Item = &(u64, WriterEvent)> {
        self.unanswered
            .iter()
            .filter(move |(step, _)| *step > self.answered_at)
    }

    /// Of those, the ones VSS did not give up on: the writer was left doing them with
    /// nobody told. A hung event VSS timed out is reported (the writer shows failed in
    /// `vssadmin list writers` until the next backup or a service restart, reference
    /// vss.md §8).
    fn left_untold(&self) -> impl Iterator<Item = &(u64, WriterEvent)> {
        self.left_unanswered()
            .filter(move |(step, _)| !self.given_up.contains(step))
    }
}

/// A state a writer may rest in after a backup: stable, or failed at an event after
/// which VSS sends it nothing more in that backup — Identify (it drops out of the
/// metadata) and BackupComplete (the shadow exists, the failure is logged); reference
/// vss.md §1.1 step 5, §2.4. Its failure stays visible in `vssadmin list writers`
/// until the next backup (§8). A writer failed at any other event must still get
/// OnAbort and answer it (back to stable), so its failed state as its last answer is
/// a sequence left unfinished.
fn at_rest(s: WriterState) -> bool {
    matches!(
        s,
        WriterState::Stable | WriterState::FailedAtIdentify | WriterState::FailedAtBackupComplete
    )
}

/// The writers checker of one run.
#[derive(Debug, Default)]
pub struct Writers {
    seen: BTreeMap<ActorId, WriterSeen>,
}

impl Writers {
    /// Looks at one delivery: an event to a writer, or a writer's answer.
    pub fn delivered(&mut self, d: &Delivery<'_, Msg>) {
        match d.msg {
            Msg::Writer { event, .. } => {
                let seen = self.seen.entry(d.to).or_default();
                seen.unanswered.push((d.step, *event));
                seen.service = d.sender();
            }
            Msg::Window {
                timer: VssTimer::WriterResponse,
            } => {
                for seen in self.seen.values_mut().filter(|s| s.service == Some(d.to)) {
                    let late: Vec<u64> = seen.left_unanswered().map(|(step, _)| *step).collect();
                    seen.given_up.extend(late);
                }
            }
            Msg::WriterDone { event, state, .. } => {
                let Some(writer) = d.sender() else { return };
                let seen = self.seen.entry(writer).or_default();
                seen.state = Some(*state);
                seen.answered_at = d.step;
                if let Some(i) = seen.unanswered.iter().position(|(_, e)| e == event) {
                    seen.unanswered.remove(i);
                }
            }
            _ => {}
        }
    }

    /// Every writer that was sent an event or answered, by actor id.
    pub fn seen(&self) -> &BTreeMap<ActorId, WriterSeen> {
        &self.seen
    }

    /// I3's problems: a writer whose last own status is not one it may rest in, or that
    /// was left with an event it never answered; but for the writers `in_session`, whose
    /// sessions were left open (their state is the session's, field failure 10).
    pub fn problems(&self, names: &[String], in_session: &[ActorId]) -> Vec<String> {
        let mut out = Vec::new();
        for (id, seen) in self.seen.iter().filter(|(id, _)| !in_session.contains(id)) {
            let name = names.get(id.index()).map_or("?", String::as_str);
            let left: Vec<String> = seen
                .left_untold()
                .map(|(step, e)| format!("{} (step {step})", e.name()))
                .collect();
            if !left.is_empty() {
                out.push(format!("{name} never answered {}", left.join(", ")));
            } else if seen.left_unanswered().next().is_some() {
                // Hung in an event VSS gave up on: its state is VSS's failure.
            } else if let Some(s) = seen.state.filter(|s| !at_rest(*s)) {
                out.push(format!("{name} last reported {}", s.name()));
            }
        }
        out
    }

    /// What I3 compared: "3 writer(s) stable by their own last status".
    pub fn compared(&self) -> String {
        let superseded: usize = self
            .seen
            .values()
            .map(|s| s.unanswered.len() - s.left_unanswered().count())
            .sum();
        let failed = self
            .seen
            .values()
            .filter(|s| s.left_unanswered().next().is_none())
            .filter(|s| {
                s.state
                    .is_some_and(|s| s != WriterState::Stable && at_rest(s))
            })
            .count();
        let hung = self
            .seen
            .values()
            .filter(|s| s.left_unanswered().next().is_some())
            .count();
        let mut text = format!(
            "{} writer(s) stable by their own last status",
            self.seen.len() - failed - hung
        );
        if failed > 0 {
            text.push_str(&format!(", {failed} failed (shown until the next backup)"));
        }
        let given_up: usize = self
            .seen
            .values()
            .map(|s| s.left_unanswered().count() - s.left_untold().count())
            .sum();
        if given_up > 0 {
            text.push_str(&format!(
                ", {given_up} hung event(s) VSS gave up on and reported (VSS_E_WRITER_NOT_RESPONDING)"
            ));
        }
        if superseded > 0 {
            text.push_str(&format!(
                " ({superseded} unanswered event(s) superseded by a later answer)"
            ));
        }
        text
    }
}
