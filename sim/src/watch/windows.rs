//! SPEC I5, windows: how long each VSS service kept its writers frozen and its volumes'
//! writes held, measured from what the scheduler delivered and what storage showed, with
//! limits from the reference and the scenario, never from the VSS service's own timers.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::msg::Msg;
use crate::protocol::vss::WriterEvent;
use crate::sched::{ActorId, Delivery};

/// A writer's freeze→thaw window when the scenario sets none (reference §1.4).
pub const FREEZE_TIMEOUT_US: u64 = 60_000_000;
/// volsnap's flush-and-hold window (reference §1.4).
pub const FLUSH_AND_HOLD_TIMEOUT_US: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// From the first OnFreeze a service delivers in a set to the first OnThaw or
    /// OnAbort after it.
    FreezeThaw,
    /// From the step a service's hold turns its VMs' writes held to the step storage
    /// shows them all released.
    FlushAndHold,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::FreezeThaw => "freeze→thaw",
            Kind::FlushAndHold => "flush-and-hold",
        }
    }
}

/// One window of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub kind: Kind,
    pub service: ActorId,
    /// The snapshot set the service was working on.
    pub set: Option<u64>,
    pub from_step: u64,
    pub from_us: u64,
    /// `None`: still open when the run ended.
    pub to_us: Option<u64>,
    /// `None`: nothing bounds it (no writer of the service freezes).
    pub limit_us: Option<u64>,
}

impl Span {
    /// Its length, counting an open window up to `end_us`.
    pub fn held_us(&self, end_us: u64) -> u64 {
        self.to_us.unwrap_or(end_us).saturating_sub(self.from_us)
    }

    /// Whether it outlasted its limit by `end_us`.
    pub fn over(&self, end_us: u64) -> bool {
        self.limit_us.is_some_and(|l| self.held_us(end_us) > l)
    }

    /// One line naming the step it opened at, the service, the window and its length.
    pub fn describe(&self, names: &[String], end_us: u64) -> String {
        let service = names.get(self.service.index()).map_or("?", String::as_str);
        let set = self.set.map_or(String::new(), |s| format!(" (set {s})"));
        let open = if self.to_us.is_none() {
            ", never closed"
        } else {
            ""
        };
        format!(
            "step {}: {service}'s {}{set} lasted {} µs{open}, over its {} µs timeout",
            self.from_step,
            self.kind.name(),
            self.held_us(end_us),
            self.limit_us.unwrap_or(0)
        )
    }
}

/// A hold in progress: its span and the VMs whose writes it holds.
#[derive(Debug)]
struct Holding {
    span: usize,
    vms: Vec<usize>,
}

/// The windows checker of one run.
#[derive(Debug, Default)]
pub struct Windows {
    /// The freeze→thaw window of each writer that has one of its own.
    writer_limits: BTreeMap<ActorId, u64>,
    spans: Vec<Span>,
    /// Open freeze→thaw windows by (service, set).
    freezing: BTreeMap<(ActorId, u64), usize>,
    /// (service, set) pairs whose window opened already.
    froze: BTreeSet<(ActorId, u64)>,
    holds: BTreeMap<ActorId, Holding>,
    /// The set each service last sent a writer event or provider call for.
    service_set: BTreeMap<ActorId, u64>,
    /// This step delivers volsnap's hold (`true`) or release to this service.
    hold_msg: Option<(ActorId, bool)>,
    /// Per VM, whether storage showed its writes held after the last step.
    held: Vec<bool>,
    now_us: u64,
    step: u64,
}

impl Windows {
    /// Writer `writer`'s own freeze→thaw window. A service's window is bound by the
    /// shortest window among the writers it actually sent OnFreeze in that set: VSS
    /// fails the first writer whose own window passes and aborts the set.
    pub fn set_writer_limit(&mut self, writer: ActorId, limit_us: u64) {
        self.writer_limits.insert(writer, limit_us);
    }

    /// Looks at one delivery.
    pub fn delivered(&mut self, d: &Delivery<'_, Msg>) {
        self.now_us = d.time_us;
        self.step = d.step;
        self.hold_msg = None;
        match d.msg {
            Msg::Writer { event, set } => {
                let Some(service) = d.sender() else { return };
                self.service_set.insert(service, *set);
                let key = (service, *set);
                let writer_limit = self.writer_limits.get(&d.to).copied();
                match event {
                    WriterEvent::OnFreeze if self.froze.insert(key) => {
                        self.freezing.insert(key, self.spans.len());
                        self.spans.push(Span {
                            kind: Kind::FreezeThaw,
                            service,
                            set: Some(*set),
                            from_step: d.step,
                            from_us: d.time_us,
                            to_us: None,
                            limit_us: writer_limit,
                        });
                    }
                    WriterEvent::OnFreeze => {
                        // Another writer of the same window: the shortest window binds.
                        if let (Some(&i), Some(l)) = (self.freezing.get(&key), writer_limit) {
                            let span = &mut self.spans[i];
                            span.limit_us = Some(span.limit_us.map_or(l, |s| s.min(l)));
                        }
                    }
                    WriterEvent::OnThaw | WriterEvent::OnAbort => {
                        if let Some(i) = self.freezing.remove(&key) {
                            self.spans[i].to_us = Some(d.time_us);
                        }
                    }
                    _ => {}
                }
            }
            Msg::Provider { set, .. } => {
                if let Some(service) = d.sender() {
                    self.service_set.insert(service, *set);
                }
            }
            Msg::Hold { on } => self.hold_msg = Some((d.to, *on)),
            _ => {}
        }
    }

    /// Looks at storage after a step: `held[i]` tells whether VM `i`'s writes are held.
    pub fn after_step(&mut self, held: impl ExactSizeIterator<Item = bool>) {
        if self.held.len() != held.len() {
            self.held = vec![false; held.len()];
        }
        let opening = match self.hold_msg {
            Some((service, true)) => (!self.holds.contains_key(&service)).then_some(service),
            _ => None,
        };
        // No allocation unless a hold opens in this step.
        let mut turned_on = Vec::new();
        for (i, now) in held.enumerate() {
            if opening.is_some() && now && !self.held[i] {
                turned_on.push(i);
            }
            self.held[i] = now;
        }
        if let Some(service) = opening {
            self.holds.insert(
                service,
                Holding {
                    span: self.spans.len(),
                    vms: turned_on,
                },
            );
            self.spans.push(Span {
                kind: Kind::FlushAndHold,
                service,
                set: self.service_set.get(&service).copied(),
                from_step: self.step,
                from_us: self.now_us,
                to_us: None,
                limit_us: Some(FLUSH_AND_HOLD_TIMEOUT_US),
            });
        }
        // Storage decides when a hold ends; a hold that held no VM's writes (they were
        // held already, or no VM is on its volumes) ends with volsnap's release.
        let (held, now, msg) = (&self.held, self.now_us, self.hold_msg);
        let spans = &mut self.spans;
        self.holds.retain(|&service, h| {
            let released = if h.vms.is_empty() {
                msg == Some((service, false))
            } else {
                h.vms.iter().all(|&vm| !held[vm])
            };
            if released {
                spans[h.span].to_us = Some(now);
            }
            !released
        });
    }

    /// Every window measured, in the order they opened.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// What I5 compared: "2 freeze→thaw and 3 flush-and-hold window(s)".
    pub fn compared(&self) -> String {
        let count = |k| self.spans.iter().filter(|s| s.kind == k).count();
        let unbounded = self.spans.iter().filter(|s| s.limit_us.is_none()).count();
        let mut text = format!(
            "{} freeze→thaw and {} flush-and-hold window(s) within their timeouts",
            count(Kind::FreezeThaw),
            count(Kind::FlushAndHold)
        );
        if unbounded > 0 {
            text.push_str(&format!(
                " ({unbounded} with no freezing writer to bound it)"
            ));
        }
        text
    }
}
