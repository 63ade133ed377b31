//! SPEC I3, writers back to stable: each writer's state as the writer itself last reported
//! it (its `WriterDone`), and the events it was sent and never answered. VSS's own idea of
//! a writer's state is protocol state, not evidence.

use std::collections::BTreeMap;

use crate::protocol::msg::Msg;
use crate::protocol::vss::{WriterEvent, WriterState};
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
}

impl WriterSeen {
    /// The events it never answered after its last answer: what it was left doing.
    pub fn left_unanswered(&self) -> impl Iterator<Item = &(u64, WriterEvent)> {
        self.unanswered
            .iter()
            .filter(move |(step, _)| *step > self.answered_at)
    }
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

    /// I3's problems: a writer whose last own status is not stable, or that was left
    /// with an event it never answered.
    pub fn problems(&self, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (id, seen) in &self.seen {
            let name = names.get(id.index()).map_or("?", String::as_str);
            let left: Vec<String> = seen
                .left_unanswered()
                .map(|(step, e)| format!("{} (step {step})", e.name()))
                .collect();
            if !left.is_empty() {
                out.push(format!("{name} never answered {}", left.join(", ")));
            } else if let Some(s) = seen.state.filter(|s| *s != WriterState::Stable) {
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
        let mut text = format!(
            "{} writer(s) stable by their own last status",
            self.seen.len()
        );
        if superseded > 0 {
            text.push_str(&format!(
                " ({superseded} unanswered event(s) superseded by a later answer)"
            ));
        }
        text
    }
}
