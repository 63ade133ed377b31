//! What a run showed, read from its trace: the vocabulary `hvsim run --trace` writes and a
//! recorder on a real host writes the same way (step lines with actor, event and
//! details). Only what a host can observe is read — writer states, HRESULTs, checkpoint
//! kinds, saved states, fallbacks, downtime, the AVHDX files made and removed — never the
//! world digests or the scheduler's choices, which only a simulated run has.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::trace::Trace;

/// One observation and the step it was made at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen<T> {
    pub step: u64,
    pub actor: String,
    pub what: T,
}

/// Everything a check compares, per kind, in step order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observations {
    pub steps: u64,
    /// Writer states (`VSS_WS_*`) each writer reported, by writer.
    pub writer_states: BTreeMap<String, Vec<Seen<String>>>,
    /// Failure HRESULTs (`hr`, `writer_hr` other than S_OK).
    pub codes: Vec<Seen<String>>,
    /// Checkpoint kinds Vmms took (`checkpoint`) and the consistency each reached
    /// (`consistency`): the production → standard fallback shows here (F3, R4).
    pub checkpoints: Vec<Seen<String>>,
    /// VMs saved (their memory written to disk): the online → saved state fallback (R1–R3).
    pub saves: Vec<Seen<String>>,
    /// Fallback events (`FallbackToCrashConsistent` …) with the VM they name.
    pub fallbacks: Vec<Seen<String>>,
    /// Each VM's downtime as Vmms reported it on resume, in microseconds.
    pub downtime_us: Vec<Seen<u64>>,
    /// AVHDX files created and not deleted or merged by the end, GUIDs written `*`
    /// (a host's GUIDs are its own), with the step that made each.
    pub files_left: Vec<Seen<String>>,
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

/// `disk_1_A1C3FDA5-5DFE-4001-A6D7-EBE18195A85C.avhdx` → `disk_1_*.avhdx` (SPEC F2.5's
/// naming; the GUID is the host's own, never the model's).
pub fn without_guid(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find(is_guid_start(rest)) {
        out.push_str(&rest[..i]);
        out.push('*');
        rest = &rest[i + 36..];
    }
    out.push_str(rest);
    out
}

/// A closure finding the byte offset of the first GUID (8-4-4-4-12 hex digits) in `s`.
fn is_guid_start(s: &str) -> impl FnMut(char) -> bool + '_ {
    let bytes = s.as_bytes();
    let mut at = 0usize;
    move |c: char| {
        let i = at;
        at += c.len_utf8();
        let candidate = &bytes[i..];
        candidate.len() >= 36
            && candidate[..36].iter().enumerate().all(|(k, b)| match k {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    }
}

impl Observations {
    pub fn of(trace: &Trace) -> Self {
        let mut o = Observations {
            steps: trace.steps.len() as u64,
            ..Observations::default()
        };
        // Files made, by name as recorded, with their step and actor.
        let mut made: Vec<Seen<String>> = Vec::new();
        for s in &trace.steps {
            let seen = |what: String| Seen {
                step: s.step,
                actor: s.actor.clone(),
                what,
            };
            let d = &s.details;
            if let Some(state) = d.get("state").and_then(text) {
                if state.starts_with("VSS_WS_") && !d.contains_key("failed") {
                    o.writer_states
                        .entry(s.actor.clone())
                        .or_default()
                        .push(seen(state.to_string()));
                }
                if state.starts_with("saved") {
                    o.saves.push(seen(state.to_string()));
                }
            }
            for key in ["hr", "writer_hr"] {
                if let Some(hr) = d.get(key).and_then(text) {
                    if hr != "S_OK" {
                        o.codes.push(seen(hr.to_string()));
                    }
                }
            }
            if let Some(kind) = d.get("checkpoint").and_then(text) {
                o.checkpoints.push(seen(kind.to_string()));
            }
            // The consistency a checkpoint reached: application for a production
            // checkpoint, crash for its standard fallback (F3.2).
            if let Some(level) = d.get("consistency").and_then(text) {
                o.checkpoints.push(seen(format!("{level}-consistent")));
            }
            if s.event.starts_with("Fallback") {
                let vm = d.get("vm").and_then(text).unwrap_or("");
                o.fallbacks.push(seen(format!("{} {vm}", s.event)));
            }
            if let Some(us) = d.get("downtime_us").and_then(Value::as_u64) {
                o.downtime_us.push(Seen {
                    step: s.step,
                    actor: s.actor.clone(),
                    what: us,
                });
            }
            for key in ["created", "auto_recovery"] {
                if let Some(name) = d.get(key).and_then(text) {
                    if name.to_ascii_lowercase().ends_with(".avhdx") {
                        made.push(seen(name.to_string()));
                    }
                }
            }
            for key in ["deleted", "merged"] {
                if let Some(names) = d.get(key).and_then(text) {
                    for name in names.split(", ") {
                        if let Some(i) = made.iter().position(|m| m.what == name) {
                            made.remove(i);
                        }
                    }
                }
            }
        }
        o.files_left = made
            .into_iter()
            .map(|m| Seen {
                what: without_guid(&m.what),
                ..m
            })
            .collect();
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_in_checkpoint_file_names_are_starred() {
        assert_eq!(
            without_guid("disk_1_A1C3FDA5-5DFE-4001-A6D7-EBE18195A85C.avhdx"),
            "disk_1_*.avhdx"
        );
        assert_eq!(
            without_guid("disk_1-AutoRecovery.avhdx"),
            "disk_1-AutoRecovery.avhdx"
        );
        assert_eq!(without_guid("é-no-guid"), "é-no-guid");
    }
}
