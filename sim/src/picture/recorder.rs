//! The steps of a run as the picture needs them: the trace's fields and who sent each
//! message (the trace does not hold the sender; the scheduler's step record does).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::sched::{Detail, StepRecord};

/// Most steps a picture holds: a page past this would not load in a browser anyway. The
/// steps after it are counted, not kept.
pub const MAX_PICTURE_STEPS: usize = 200_000;

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PictureStep {
    pub step: u64,
    pub time_us: u64,
    /// The actor that took the step (the message's receiver).
    pub actor: String,
    /// The sender of the delivered message; `None` for timers and world events.
    pub from: Option<String>,
    pub event: String,
    pub details: Map<String, Value>,
    /// World digest after the step, 64 lowercase hex digits.
    pub digest: String,
}

/// Collects a run's steps as they are taken (see `RunOptions::on_step`).
#[derive(Default)]
pub struct Recorder {
    steps: Vec<PictureStep>,
    /// Steps taken past [`MAX_PICTURE_STEPS`].
    left_out: u64,
}

impl Recorder {
    pub fn push(&mut self, rec: &StepRecord, names: &[String]) {
        if self.steps.len() >= MAX_PICTURE_STEPS {
            self.left_out += 1;
            return;
        }
        let name = |id: crate::sched::ActorId| {
            names
                .get(id.index())
                .map_or_else(|| "?".to_owned(), Clone::clone)
        };
        let details = rec
            .details
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Detail::U64(v) => Value::from(*v),
                    Detail::I64(v) => Value::from(*v),
                    Detail::Bool(v) => Value::from(*v),
                    Detail::Str(v) => Value::from(*v),
                    Detail::Text(v) => Value::from(v.as_str()),
                    Detail::Actor(id) => Value::from(name(*id)),
                };
                ((*key).to_owned(), value)
            })
            .collect();
        self.steps.push(PictureStep {
            step: rec.step,
            time_us: rec.time_us,
            actor: name(rec.actor),
            from: rec.from.map(name),
            event: rec.event.to_owned(),
            details,
            digest: blake3::Hash::from(rec.digest.unwrap_or_default())
                .to_hex()
                .to_string(),
        });
    }

    /// The steps kept, and how many were taken past them.
    pub fn finish(self) -> (Vec<PictureStep>, u64) {
        (self.steps, self.left_out)
    }
}
