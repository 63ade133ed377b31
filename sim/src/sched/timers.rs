//! A table of an actor's timers keyed by a typed name: at most one live timer per key.
//!
//! Setting a key again cancels the timer it had; stopping a key cancels it. A delivery
//! whose timer is no longer the key's live one (it was replaced or stopped after it was
//! queued) is stale, and [`TimerTable::fired`] says so: the actor then ignores it.

use std::collections::BTreeMap;

use super::{Out, TimerId};

#[derive(Clone, Debug)]
pub struct TimerTable<K> {
    live: BTreeMap<K, TimerId>,
}

impl<K> Default for TimerTable<K> {
    fn default() -> Self {
        TimerTable {
            live: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> TimerTable<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers `msg` to the actor `delay_us` from now as the timer `key`, replacing (and
    /// cancelling) the key's previous timer.
    pub fn set<M>(&mut self, out: &mut Out<'_, M>, key: K, delay_us: u64, msg: M) {
        self.stop(out, key);
        let id = out.set_timer(delay_us, msg);
        self.live.insert(key, id);
    }

    /// Cancels the key's timer; false when it had none.
    pub fn stop<M>(&mut self, out: &mut Out<'_, M>, key: K) -> bool {
        match self.live.remove(&key) {
            Some(id) => {
                out.cancel_timer(id);
                true
            }
            None => false,
        }
    }

    /// A timer `id` of `key` was delivered: true when it is the key's live timer (the key
    /// is then clear), false when it is stale.
    pub fn fired(&mut self, key: K, id: TimerId) -> bool {
        if self.live.get(&key) == Some(&id) {
            self.live.remove(&key);
            true
        } else {
            false
        }
    }

    /// Whether the key has a timer running.
    pub fn is_set(&self, key: K) -> bool {
        self.live.contains_key(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::{Actor, Cx, Decisions, Envelope, Message, Origin, Scheduler};

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Key {
        A,
        B,
    }

    #[derive(Debug)]
    enum M {
        Set(Key, u64),
        Stop(Key),
        Fire(Key),
    }

    impl Message for M {
        fn event(&self) -> &'static str {
            "m"
        }
    }

    /// Names each step after what the table said: "live A", "stale B", ...
    struct Owner(TimerTable<Key>);

    impl Actor<M> for Owner {
        fn name(&self) -> &str {
            "owner"
        }

        fn handle(&mut self, env: Envelope<M>, cx: &mut Cx<'_, M>) {
            let event = match env.msg {
                M::Set(k, delay) => {
                    self.0.set(&mut cx.out, k, delay, M::Fire(k));
                    "set"
                }
                M::Stop(k) => {
                    self.0.stop(&mut cx.out, k);
                    "stop"
                }
                M::Fire(k) => match (env.origin, k) {
                    (Origin::Timer(id), Key::A) if self.0.fired(k, id) => "live A",
                    (Origin::Timer(id), Key::B) if self.0.fired(k, id) => "live B",
                    _ => "stale",
                },
            };
            cx.out.record(event, []);
        }

        fn digest(&self, _: &mut blake3::Hasher) {}
    }

    /// Runs the posted messages; returns (time, event) of each step.
    fn run(posts: Vec<(u64, M)>) -> Vec<(u64, &'static str)> {
        let mut sched = Scheduler::new(Decisions::seeded(0));
        sched.set_recording(true);
        let me = sched.add_actor(Box::new(Owner(TimerTable::new())));
        for (at, m) in posts {
            sched.post(me, at, m);
        }
        let mut steps = Vec::new();
        while let Ok(Some(r)) = sched.step() {
            steps.push((r.time_us, r.event));
        }
        steps
    }

    #[test]
    fn setting_a_key_again_replaces_its_timer() {
        let steps = run(vec![(0, M::Set(Key::A, 100)), (10, M::Set(Key::A, 500))]);
        assert_eq!(steps, [(0, "set"), (10, "set"), (510, "live A")]);
    }

    #[test]
    fn stopping_a_key_cancels_its_timer_only() {
        let steps = run(vec![
            (0, M::Set(Key::A, 100)),
            (0, M::Set(Key::B, 200)),
            (50, M::Stop(Key::A)),
        ]);
        let fired: Vec<_> = steps.iter().filter(|s| s.1 != "set").collect();
        assert_eq!(fired, [&(50, "stop"), &(200, "live B")]);
    }

    #[test]
    fn a_delivery_that_is_not_the_keys_live_timer_is_stale() {
        let mut t = TimerTable::new();
        let old = TimerId {
            due_us: 100,
            seq: 1,
        };
        let new = TimerId {
            due_us: 500,
            seq: 2,
        };
        t.live.insert(Key::A, new);
        assert!(!t.fired(Key::A, old), "replaced");
        assert!(t.is_set(Key::A));
        assert!(t.fired(Key::A, new));
        assert!(!t.is_set(Key::A));
        assert!(!t.fired(Key::A, new), "fired once only");
        assert!(!t.fired(Key::B, new), "never set");
    }
}
