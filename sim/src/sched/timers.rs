//! A table of an actor's timers keyed by a typed name: at most one live timer per key.
//!
//! Setting a key again cancels the timer it had; stopping a key cancels it. A delivery
//! whose timer is no longer the key's live one (it was replaced or stopped after it was
//! queued) is stale, and [`TimerTable::fired`] says so: the actor then ignores it.

use std::collections::BTreeMap;

use super::{Cx, TimerId};

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
    pub fn set<M>(&mut self, cx: &mut Cx<'_, M>, key: K, delay_us: u64, msg: M) {
        self.stop(cx, key);
        let id = cx.set_timer(delay_us, msg);
        self.live.insert(key, id);
    }

    /// Cancels the key's timer; false when it had none.
    pub fn stop<M>(&mut self, cx: &mut Cx<'_, M>, key: K) -> bool {
        match self.live.remove(&key) {
            Some(id) => {
                cx.cancel_timer(id);
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
