//! A toy world for the scheduler's tests and benchmarks: a requester asks a coordinator
//! for backups; the coordinator freezes every writer, waits for all of them (or a failure,
//! or its timeout) and thaws or aborts. Writers run a small workload between freezes.
//! Delays and failures are random draws, so seeds give different interleavings.
//!
//! It is deliberately not the VSS protocol (that lives with the scenario code); it only
//! exercises messages, timers, cancellations, random draws and equal-time choices.

#![allow(dead_code)] // the tests and the bench each use a part

use hvsim_sim::sched::{Actor, ActorId, Cx, Detail, Details, Envelope, Message, Scheduler};

/// Shape of a toy world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToyConfig {
    /// Number of writers (at least one is used).
    pub writers: u16,
    /// Backups the requester asks for, one after the other.
    pub rounds: u32,
    /// Message delays are drawn from `0..=max_delay_us`.
    pub max_delay_us: u64,
    /// Chance, in percent, that a writer fails to freeze.
    pub fail_percent: u64,
    /// Workload writes each writer performs.
    pub workload_writes: u32,
    /// How long the coordinator waits for all writers.
    pub timeout_us: u64,
}

impl Default for ToyConfig {
    fn default() -> Self {
        ToyConfig {
            writers: 2,
            rounds: 3,
            max_delay_us: 500,
            fail_percent: 10,
            workload_writes: 5,
            timeout_us: 800,
        }
    }
}

/// Messages of the toy world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToyMsg {
    /// From the world: the requester starts.
    Begin,
    StartBackup {
        round: u32,
    },
    Freeze {
        round: u32,
    },
    Frozen {
        round: u32,
        writer: u16,
    },
    Failed {
        round: u32,
        writer: u16,
    },
    Thaw {
        round: u32,
    },
    Abort {
        round: u32,
    },
    /// The coordinator's timer.
    Timeout {
        round: u32,
    },
    BackupDone {
        round: u32,
        ok: bool,
    },
    /// A writer's workload step (a timer, the first one posted by the world).
    WorkloadWrite,
}

impl Message for ToyMsg {
    fn event(&self) -> &'static str {
        match self {
            ToyMsg::Begin => "Begin",
            ToyMsg::StartBackup { .. } => "StartBackup",
            ToyMsg::Freeze { .. } => "OnFreeze",
            ToyMsg::Frozen { .. } => "Frozen",
            ToyMsg::Failed { .. } => "Failed",
            ToyMsg::Thaw { .. } => "OnThaw",
            ToyMsg::Abort { .. } => "OnAbort",
            ToyMsg::Timeout { .. } => "Timeout",
            ToyMsg::BackupDone { .. } => "BackupDone",
            ToyMsg::WorkloadWrite => "WorkloadWrite",
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(self.event().as_bytes());
        let (round, extra) = match *self {
            ToyMsg::Begin | ToyMsg::WorkloadWrite => (0, 0),
            ToyMsg::StartBackup { round }
            | ToyMsg::Freeze { round }
            | ToyMsg::Thaw { round }
            | ToyMsg::Abort { round }
            | ToyMsg::Timeout { round } => (round, 0),
            ToyMsg::Frozen { round, writer } | ToyMsg::Failed { round, writer } => {
                (round, u64::from(writer))
            }
            ToyMsg::BackupDone { round, ok } => (round, u64::from(ok)),
        };
        h.update(&round.to_le_bytes());
        h.update(&extra.to_le_bytes());
    }

    fn details(&self, details: &mut Details) {
        match *self {
            ToyMsg::Begin | ToyMsg::WorkloadWrite => {}
            ToyMsg::StartBackup { round }
            | ToyMsg::Freeze { round }
            | ToyMsg::Thaw { round }
            | ToyMsg::Abort { round }
            | ToyMsg::Timeout { round } => details.push(("round", round.into())),
            ToyMsg::Frozen { round, writer } | ToyMsg::Failed { round, writer } => {
                details.push(("round", round.into()));
                details.push(("writer", Detail::U64(writer.into())));
            }
            ToyMsg::BackupDone { round, ok } => {
                details.push(("round", round.into()));
                details.push(("ok", ok.into()));
            }
        }
    }
}

const REQUESTER: ActorId = ActorId::new(0);
const COORDINATOR: ActorId = ActorId::new(1);

fn writer_id(index: u16) -> ActorId {
    ActorId::new(u32::from(index) + 2)
}

/// A toy world on a scheduler taking its choices from `decisions` (for replays).
pub fn built(
    decisions: hvsim_sim::sched::Decisions,
    config: ToyConfig,
) -> Result<Scheduler<ToyMsg>, hvsim_sim::trace::ReplayError> {
    let mut sched = Scheduler::new(decisions);
    build(&mut sched, config);
    Ok(sched)
}

/// Adds the toy world's actors and its first events to `sched`.
pub fn build(sched: &mut Scheduler<ToyMsg>, config: ToyConfig) {
    let writers = config.writers.clamp(1, u16::MAX - 2);
    sched.add_actor(Box::new(Requester {
        rounds: config.rounds,
        max_delay_us: config.max_delay_us,
        round: 0,
        succeeded: 0,
        failed: 0,
    }));
    sched.add_actor(Box::new(Coordinator {
        writers,
        max_delay_us: config.max_delay_us,
        timeout_us: config.timeout_us,
        round: 0,
        active: false,
        frozen: 0,
        timer: None,
    }));
    for index in 0..writers {
        sched.add_actor(Box::new(Writer {
            name: format!("Writer{}", index + 1),
            index,
            max_delay_us: config.max_delay_us,
            fail_percent: config.fail_percent,
            writes_left: config.workload_writes,
            frozen: false,
            writes_done: 0,
            writes_while_frozen: 0,
        }));
        if config.workload_writes > 0 {
            sched.post(writer_id(index), 0, ToyMsg::WorkloadWrite);
        }
    }
    sched.post(REQUESTER, 0, ToyMsg::Begin);
}

struct Requester {
    rounds: u32,
    max_delay_us: u64,
    round: u32,
    succeeded: u32,
    failed: u32,
}

impl Actor<ToyMsg> for Requester {
    fn name(&self) -> &str {
        "Requester"
    }

    fn handle(&mut self, env: Envelope<ToyMsg>, cx: &mut Cx<'_, ToyMsg>) {
        match env.msg {
            ToyMsg::Begin if self.rounds > 0 => {
                self.round = 1;
                cx.out.send(COORDINATOR, ToyMsg::StartBackup { round: 1 });
            }
            ToyMsg::BackupDone { round, ok } if round == self.round => {
                if ok {
                    self.succeeded += 1;
                } else {
                    self.failed += 1;
                }
                if self.round < self.rounds {
                    self.round += 1;
                    let delay = cx.out.random_range(0, self.max_delay_us);
                    let round = self.round;
                    cx.out
                        .send_after(COORDINATOR, delay, ToyMsg::StartBackup { round });
                } else {
                    cx.out
                        .record("JobFinished", [("succeeded", self.succeeded.into())]);
                }
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        for v in [self.round, self.succeeded, self.failed] {
            h.update(&v.to_le_bytes());
        }
    }
}

struct Coordinator {
    writers: u16,
    max_delay_us: u64,
    timeout_us: u64,
    round: u32,
    active: bool,
    frozen: u16,
    timer: Option<hvsim_sim::sched::TimerId>,
}

impl Coordinator {
    fn finish(&mut self, cx: &mut Cx<'_, ToyMsg>, ok: bool) {
        let round = self.round;
        if let Some(timer) = self.timer.take() {
            cx.out.cancel_timer(timer);
        }
        for index in 0..self.writers {
            let msg = if ok {
                ToyMsg::Thaw { round }
            } else {
                ToyMsg::Abort { round }
            };
            cx.out.send(writer_id(index), msg);
        }
        self.active = false;
        cx.out.send(REQUESTER, ToyMsg::BackupDone { round, ok });
    }
}

impl Actor<ToyMsg> for Coordinator {
    fn name(&self) -> &str {
        "Coordinator"
    }

    fn handle(&mut self, env: Envelope<ToyMsg>, cx: &mut Cx<'_, ToyMsg>) {
        match env.msg {
            ToyMsg::StartBackup { round } => {
                self.round = round;
                self.active = true;
                self.frozen = 0;
                for index in 0..self.writers {
                    let delay = cx.out.random_range(0, self.max_delay_us);
                    cx.out
                        .send_after(writer_id(index), delay, ToyMsg::Freeze { round });
                }
                self.timer = Some(cx.out.set_timer(self.timeout_us, ToyMsg::Timeout { round }));
            }
            ToyMsg::Frozen { round, .. } if self.active && round == self.round => {
                self.frozen += 1;
                if self.frozen == self.writers {
                    self.finish(cx, true);
                }
            }
            ToyMsg::Failed { round, .. } if self.active && round == self.round => {
                self.finish(cx, false);
            }
            ToyMsg::Timeout { round } if self.active && round == self.round => {
                self.timer = None;
                cx.out
                    .record("TimedOut", [("frozen", Detail::U64(self.frozen.into()))]);
                self.finish(cx, false);
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.round.to_le_bytes());
        h.update(&[u8::from(self.active)]);
        h.update(&self.frozen.to_le_bytes());
        h.update(&[u8::from(self.timer.is_some())]);
    }
}

struct Writer {
    name: String,
    index: u16,
    max_delay_us: u64,
    fail_percent: u64,
    writes_left: u32,
    frozen: bool,
    writes_done: u32,
    writes_while_frozen: u32,
}

impl Actor<ToyMsg> for Writer {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<ToyMsg>, cx: &mut Cx<'_, ToyMsg>) {
        match env.msg {
            ToyMsg::Freeze { round } => {
                let delay = cx.out.random_range(0, self.max_delay_us);
                let writer = self.index;
                let reply = if cx.out.chance(self.fail_percent) {
                    ToyMsg::Failed { round, writer }
                } else {
                    self.frozen = true;
                    ToyMsg::Frozen { round, writer }
                };
                cx.out.send_after(COORDINATOR, delay, reply);
            }
            ToyMsg::Thaw { .. } | ToyMsg::Abort { .. } => self.frozen = false,
            ToyMsg::WorkloadWrite if self.writes_left > 0 => {
                self.writes_left -= 1;
                if self.frozen {
                    // A frozen writer must not write: count the violation the way an
                    // invariant checker would.
                    self.writes_while_frozen += 1;
                } else {
                    self.writes_done += 1;
                }
                cx.out.detail("writes_done", self.writes_done);
                if self.writes_left > 0 {
                    let delay = cx.out.random_range(1, self.max_delay_us.max(1));
                    cx.out.set_timer(delay, ToyMsg::WorkloadWrite);
                }
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[u8::from(self.frozen)]);
        for v in [self.writes_left, self.writes_done, self.writes_while_frozen] {
            h.update(&v.to_le_bytes());
        }
    }
}
