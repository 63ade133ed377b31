//! The scheduler: determinism, choices, timers, stop reasons, replay of decisions.

mod toy;

use hvsim_sim::sched::{
    Actor, ActorId, Cx, Decisions, Delivery, Divergence, Envelope, Message, Origin, Scheduler,
    SimError, Stop, TimerId, World,
};
use hvsim_sim::trace::{read_trace, replay, Header, ReplayError, TraceWriter};
use proptest::prelude::*;
use toy::{ToyConfig, ToyMsg};

const MAX_STEPS: u64 = 100_000;

fn record(decisions: Decisions, seed: u64, config: ToyConfig) -> Vec<u8> {
    let mut sched = Scheduler::new(decisions);
    toy::build(&mut sched, config);
    let mut writer = TraceWriter::new(Vec::new(), &Header::new("toy", seed)).unwrap();
    let stop = sched.run_traced(MAX_STEPS, &mut writer).unwrap();
    assert_eq!(stop, Stop::Quiet);
    writer.finish().unwrap()
}

fn record_seed(seed: u64) -> Vec<u8> {
    record(Decisions::seeded(seed), seed, ToyConfig::default())
}

/// The step lines only (the header is the same for all seeds but the seed).
fn steps_of(trace: &[u8]) -> Vec<u8> {
    let start = trace.iter().position(|&b| b == b'\n').unwrap() + 1;
    trace[start..].to_vec()
}

#[test]
fn same_seed_gives_byte_identical_traces() {
    for seed in [0, 1, 42, u64::MAX] {
        let first = record_seed(seed);
        let second = record_seed(seed);
        assert!(first.len() > 1000, "the toy world should take many steps");
        assert_eq!(first, second, "seed {seed}");
    }
}

#[test]
fn different_seeds_give_different_interleavings() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..20 {
        distinct.insert(steps_of(&record_seed(seed)));
    }
    assert!(
        distinct.len() >= 15,
        "only {} distinct runs of 20",
        distinct.len()
    );
}

#[test]
fn untraced_run_takes_the_same_path_as_a_traced_one() {
    // Recording must not change the choices: same step count and final world.
    let mut plain = Scheduler::new(Decisions::seeded(9));
    toy::build(&mut plain, ToyConfig::default());
    assert_eq!(plain.run_until_quiet(MAX_STEPS).unwrap(), Stop::Quiet);

    let mut traced = Scheduler::new(Decisions::seeded(9));
    toy::build(&mut traced, ToyConfig::default());
    let mut writer = TraceWriter::new(std::io::sink(), &Header::new("toy", 9)).unwrap();
    traced.run_traced(MAX_STEPS, &mut writer).unwrap();

    assert_eq!(plain.steps(), traced.steps());
    assert_eq!(plain.now_us(), traced.now_us());
    assert_eq!(plain.world_digest(), traced.world_digest());
}

// A tiny message type for hand-made worlds.
#[derive(Debug, Clone, PartialEq)]
enum Ping {
    Hello(u64),
    Tick,
}

impl Message for Ping {
    fn event(&self) -> &'static str {
        match self {
            Ping::Hello(_) => "Hello",
            Ping::Tick => "Tick",
        }
    }
}

/// Logs what it receives; on `Hello(n)` with n > 0 sets a timer and cancels it when n is
/// even.
struct Logger {
    name: &'static str,
    log: Log,
}

impl Actor<Ping> for Logger {
    fn name(&self) -> &str {
        self.name
    }

    fn handle(&mut self, env: Envelope<Ping>, cx: &mut Cx<'_, Ping>) {
        let value = match env.msg {
            Ping::Hello(n) => n,
            Ping::Tick => {
                assert!(matches!(env.origin, Origin::Timer(_)));
                u64::MAX
            }
        };
        self.log
            .borrow_mut()
            .push((cx.out.now_us(), self.name, value));
        if let Ping::Hello(n) = env.msg {
            if n > 0 {
                let timer: TimerId = cx.out.set_timer(100, Ping::Tick);
                if n % 2 == 0 {
                    assert!(cx.out.cancel_timer(timer));
                    assert!(!cx.out.cancel_timer(timer), "a timer cancels once");
                }
            }
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&(self.log.borrow().len() as u64).to_le_bytes());
    }
}

type Log = std::rc::Rc<std::cell::RefCell<Vec<(u64, &'static str, u64)>>>;

fn loggers(decisions: Decisions) -> (Scheduler<Ping>, Log) {
    let log: Log = Default::default();
    let mut sched = Scheduler::new(decisions);
    for name in ["A", "B"] {
        sched.add_actor(Box::new(Logger {
            name,
            log: log.clone(),
        }));
    }
    (sched, log)
}

#[test]
fn events_are_delivered_in_time_order_and_cancelled_timers_never_fire() {
    let (mut sched, log) = loggers(Decisions::seeded(3));
    let a = sched.actor_named("A").unwrap();
    let b = sched.actor_named("B").unwrap();
    sched.post(b, 50, Ping::Hello(0));
    sched.post(a, 10, Ping::Hello(1)); // timer at 110, kept
    sched.post(a, 20, Ping::Hello(2)); // timer at 120, cancelled
    assert_eq!(sched.run_until_quiet(100).unwrap(), Stop::Quiet);
    assert_eq!(
        *log.borrow(),
        vec![
            (10, "A", 1),
            (20, "A", 2),
            (50, "B", 0),
            (110, "A", u64::MAX)
        ]
    );
    assert_eq!(sched.now_us(), 110);
}

/// A world that writes down every delivery it is shown, and every step's end.
#[derive(Default)]
struct Watching {
    seen: Vec<(u64, u64, ActorId, Origin, &'static str)>,
    ended: Vec<u64>,
}

impl World<Ping> for Watching {
    fn digest(&self, _h: &mut blake3::Hasher) {}

    fn delivered(&mut self, d: &Delivery<'_, Ping>) {
        self.seen
            .push((d.step, d.time_us, d.to, d.origin, d.msg.event()));
    }

    fn after_step(&mut self, step: u64) {
        self.ended.push(step);
    }
}

/// Forwards a `Hello(n)` with n > 0 to the other actor as `Hello(n - 1)`; asserts the
/// world saw its delivery before it runs.
struct Relay {
    name: &'static str,
    peer: ActorId,
}

impl Actor<Ping, Watching> for Relay {
    fn name(&self) -> &str {
        self.name
    }

    fn handle(&mut self, env: Envelope<Ping>, cx: &mut Cx<'_, Ping, Watching>) {
        let last = cx.world.seen.last().copied();
        assert_eq!(
            last.map(|(step, _, to, origin, _)| (step, to, origin)),
            Some((cx.out.step(), cx.out.me(), env.origin)),
            "the world sees a delivery before its handler runs"
        );
        assert_eq!(cx.world.ended.len() as u64, cx.out.step() - 1);
        if let Ping::Hello(n) = env.msg {
            if n > 0 {
                cx.out.send_after(self.peer, 5, Ping::Hello(n - 1));
            }
        }
    }

    fn digest(&self, _h: &mut blake3::Hasher) {}
}

#[test]
fn the_world_sees_each_delivery_before_its_handler_and_each_step_after() {
    let mut sched = Scheduler::with_world(
        Decisions::seeded(1),
        hvsim_sim::engine::GuidGen::seeded(0),
        Watching::default(),
    );
    let (a, b) = (ActorId::new(0), ActorId::new(1));
    sched.add_actor(Box::new(Relay { name: "A", peer: b }));
    sched.add_actor(Box::new(Relay { name: "B", peer: a }));
    sched.post(a, 10, Ping::Hello(2));
    assert_eq!(sched.run_until_quiet(100).unwrap(), Stop::Quiet);
    let world = sched.into_world();
    assert_eq!(
        world.seen,
        [
            (1, 10, a, Origin::World, "Hello"),
            (2, 15, b, Origin::Actor(a), "Hello"),
            (3, 20, a, Origin::Actor(b), "Hello"),
        ]
    );
    assert_eq!(world.ended, [1, 2, 3]);
}

#[test]
fn equal_time_events_are_a_recorded_choice_among_sorted_candidates() {
    // Three events due at once: the choice is an index into them in scheduling order.
    let (mut sched, log) = loggers(Decisions::replay(vec![vec![2], vec![0], vec![]]));
    sched.set_recording(true);
    let a = ActorId::new(0);
    for n in [10, 20, 30] {
        sched.post(a, 0, Ping::Hello(n));
    }
    // Hello(n) with even n sets and cancels a timer: no further events.
    let record = sched.step().unwrap().unwrap();
    assert_eq!(record.choices, vec![2]);
    let record = sched.step().unwrap().unwrap();
    assert_eq!(record.choices, vec![0]);
    let record = sched.step().unwrap().unwrap();
    assert!(record.choices.is_empty(), "a single candidate is no choice");
    let order: Vec<u64> = log.borrow().iter().map(|e| e.2).collect();
    assert_eq!(order, vec![30, 10, 20]);
}

#[test]
fn stop_reasons() {
    let (mut sched, _) = loggers(Decisions::seeded(1));
    let a = ActorId::new(0);
    for delay in [1, 2, 3] {
        sched.post(a, delay, Ping::Hello(0));
    }
    assert_eq!(sched.run_until_quiet(2).unwrap(), Stop::StepLimit);
    sched.post(a, 1000, Ping::Hello(0));
    sched.set_deadline(Some(500));
    assert_eq!(sched.run_until_quiet(10).unwrap(), Stop::Deadline);
    assert_eq!(sched.steps(), 3);
    sched.set_deadline(None);
    assert_eq!(sched.run_until_quiet(10).unwrap(), Stop::Quiet);
    assert_eq!(sched.steps(), 4);
    assert_eq!(sched.now_us(), 1002, "posted at 2 + 1000");
}

#[test]
fn a_message_to_a_missing_actor_is_an_error() {
    let (mut sched, _) = loggers(Decisions::seeded(1));
    sched.post(ActorId::new(7), 0, Ping::Tick);
    assert!(matches!(
        sched.run_until_quiet(10),
        Err(SimError::NoSuchActor { step: 1, actor }) if actor == ActorId::new(7)
    ));
}

fn toy_replay_world(choices: Vec<Vec<u64>>) -> Scheduler<ToyMsg> {
    let mut sched = Scheduler::new(Decisions::replay(choices));
    toy::build(&mut sched, ToyConfig::default());
    sched
}

#[test]
fn replayed_decisions_out_of_range_or_past_the_end_name_the_step() {
    let trace = read_trace(&record_seed(5)[..]).unwrap();
    let mut choices: Vec<Vec<u64>> = trace.steps.iter().map(|s| s.choices.clone()).collect();
    let k = choices.iter().position(|c| !c.is_empty()).unwrap();

    let mut out_of_range = choices.clone();
    out_of_range[k][0] = 1_000_000;
    let err = toy_replay_world(out_of_range)
        .run_until_quiet(MAX_STEPS)
        .unwrap_err();
    assert!(
        matches!(err, SimError::Divergence(Divergence::ChoiceOutOfRange { step, index: 1_000_000, .. }) if step == k as u64 + 1),
        "{err}"
    );

    // Cut the recording short: the first step that needs a choice past it fails.
    choices.truncate(k);
    let err = toy_replay_world(choices)
        .run_until_quiet(MAX_STEPS)
        .unwrap_err();
    assert!(
        matches!(err, SimError::Divergence(Divergence::PastEnd { step }) if step == k as u64 + 1),
        "{err}"
    );
}

/// A generator of another algorithm than the scheduler's ChaCha (SplitMix64).
struct SplitMix(u64);

impl rand_core::RngCore for SplitMix {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Panics when asked for randomness.
struct NoRandomness;

impl rand_core::RngCore for NoRandomness {
    fn next_u32(&mut self) -> u32 {
        panic!("randomness was asked for")
    }
    fn next_u64(&mut self) -> u64 {
        panic!("randomness was asked for")
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        panic!("randomness was asked for")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
        panic!("randomness was asked for")
    }
}

#[test]
fn replay_does_not_depend_on_the_generator() {
    // The toy world really needs randomness: a live run with a panicking generator fails.
    let live = std::panic::catch_unwind(|| {
        let mut sched = Scheduler::new(Decisions::Random(Box::new(NoRandomness)));
        toy::build(&mut sched, ToyConfig::default());
        let _ = sched.run_until_quiet(MAX_STEPS);
    });
    assert!(live.is_err());

    // The seed and its generator are part of the trace: a run recorded with another
    // algorithm is refused as not being its seed's (issue 7 §7: a changed seed is named).
    let bytes = record(
        Decisions::Random(Box::new(SplitMix(77))),
        77,
        ToyConfig::default(),
    );
    let trace = read_trace(&bytes[..]).unwrap();
    let err = replay(&trace, MAX_STEPS, |d| toy::built(d, ToyConfig::default())).unwrap_err();
    assert!(
        matches!(err, ReplayError::SeedChanged { seed: 77, step: 1 }),
        "{err}"
    );

    // A header whose seed is rewritten is named as such (issue 7 §7).
    let text = String::from_utf8(record_seed(8)).unwrap();
    let text = text.replacen("\"seed\":8", "\"seed\":12345", 1);
    let trace = read_trace(text.as_bytes()).unwrap();
    assert_eq!(trace.header.seed, 12345);
    let err = replay(&trace, MAX_STEPS, |d| toy::built(d, ToyConfig::default())).unwrap_err();
    assert!(
        matches!(err, ReplayError::SeedChanged { seed: 12345, .. }),
        "{err}"
    );

    // And a scheduler driven by the recorded choices alone never consults the panicking
    // generator it was not given: the replay source holds none.
    let choices = trace.steps.iter().map(|s| s.choices.clone()).collect();
    let mut sched = Scheduler::new(Decisions::replay(choices));
    toy::build(&mut sched, ToyConfig::default());
    assert_eq!(sched.run_until_quiet(MAX_STEPS).unwrap(), Stop::Quiet);
}

fn arb_config() -> impl Strategy<Value = ToyConfig> {
    (1u16..6, 0u32..6, 0u64..2000, 0u64..60, 0u32..12, 1u64..3000).prop_map(
        |(writers, rounds, max_delay_us, fail_percent, workload_writes, timeout_us)| ToyConfig {
            writers,
            rounds,
            max_delay_us,
            fail_percent,
            workload_writes,
            timeout_us,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_toy_worlds_terminate_and_replay_exactly(config in arb_config(), seed in any::<u64>()) {
        let mut sched = Scheduler::new(Decisions::seeded(seed));
        toy::build(&mut sched, config);
        let mut writer = TraceWriter::new(Vec::new(), &Header::new("toy", seed)).unwrap();
        let stop = sched.run_traced(10_000, &mut writer).unwrap();
        prop_assert_eq!(stop, Stop::Quiet);
        let bytes = writer.finish().unwrap();
        let trace = read_trace(&bytes[..]).unwrap();
        let report = replay(&trace, MAX_STEPS, |d| toy::built(d, config)).unwrap();
        prop_assert_eq!(report.steps, sched.steps());
        prop_assert_eq!(report.stop, Stop::Quiet);
    }
}
