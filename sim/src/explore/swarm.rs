//! `--swarm`: options a run's seed draws within what its scenario allows (as VOPR's swarm
//! testing does): the workload's rate and mix, which writers get a tight freeze window,
//! and how likely a run is to get a fault. They are applied to a loaded scenario, never
//! to its file, and printed as one `--swarm-options` value that `hvsim run` takes back.
//!
//! The scheduler has no reply-timing knob a scenario can set, so reply jitter is not
//! among the options.

use std::fmt;
use std::str::FromStr;

use crate::scenario::limits::{MAX_RATE, MAX_TRANSACTION_BLOCKS};
use crate::scenario::{Scenario, VirtualTime};
use crate::seeds::draw;

const WORKLOAD_PERCENTS: [u32; 5] = [25, 50, 100, 200, 400];
const BLOCK_PERCENTS: [u32; 3] = [50, 100, 200];
const WINDOWS_S: [u64; 4] = [5, 10, 20, 30];
const FAULT_CHANCES: [u32; 4] = [0, 25, 50, 100];

/// The options drawn for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmOptions {
    /// Every workload rate, in percent of the scenario's.
    pub workload: u32,
    /// Data blocks per transaction, in percent of the scenario's.
    pub blocks: u32,
    /// Metadata writes kept (`off` drops them).
    pub metadata: bool,
    /// Page file writes kept.
    pub page_file: bool,
    /// Writers (`vm/writer`) whose freeze→thaw window is `window`.
    pub tight: Vec<String>,
    pub window: VirtualTime,
    /// With `--faults random`: the chance in percent that the run gets a fault.
    pub fault_chance: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("swarm options {text:?}: {problem}")]
pub struct SwarmError {
    pub text: String,
    pub problem: String,
}

fn pick<T: Copy>(seed: u64, salt: u64, from: &[T]) -> T {
    from[draw(seed, salt, from.len() as u64) as usize]
}

/// A writer name the text form can carry.
fn plain(name: &str) -> bool {
    !name.contains([',', '+', '=', '/', '\''])
}

impl SwarmOptions {
    /// The options `seed` draws for `s`.
    pub fn draw(s: &Scenario, seed: u64) -> SwarmOptions {
        let mut tight = Vec::new();
        let mut salt = 100;
        for vm in &s.vms {
            for w in &vm.guest.writers {
                salt += 1;
                if plain(&vm.name) && plain(&w.name) && draw(seed, salt, 4) == 0 {
                    tight.push(format!("{}/{}", vm.name, w.name));
                }
            }
        }
        SwarmOptions {
            workload: pick(seed, 1, &WORKLOAD_PERCENTS),
            blocks: pick(seed, 2, &BLOCK_PERCENTS),
            metadata: draw(seed, 3, 4) != 0,
            page_file: draw(seed, 4, 4) != 0,
            tight,
            window: VirtualTime {
                millis: pick(seed, 5, &WINDOWS_S) * 1_000,
            },
            fault_chance: pick(seed, 6, &FAULT_CHANCES),
        }
    }

    /// `s` with the options applied. Rates and blocks stay within the scenario limits
    /// and above zero where the scenario had some.
    pub fn apply(&self, s: &mut Scenario) {
        let scale = |v: u32, percent: u32, max: u32| {
            let scaled = u64::from(v) * u64::from(percent) / 100;
            (scaled.clamp(1, u64::from(max))) as u32
        };
        for vm in &mut s.vms {
            let w = &mut vm.workload;
            if let Some(t) = &mut w.transactions {
                t.rate = scale(t.rate, self.workload, MAX_RATE);
                t.blocks = scale(t.blocks, self.blocks, MAX_TRANSACTION_BLOCKS);
            }
            for r in [&mut w.metadata_writes, &mut w.page_file_writes]
                .into_iter()
                .flatten()
            {
                r.rate = scale(r.rate, self.workload, MAX_RATE);
            }
            if !self.metadata {
                w.metadata_writes = None;
            }
            if !self.page_file {
                w.page_file_writes = None;
            }
            for writer in &mut vm.guest.writers {
                if self.tight.contains(&format!("{}/{}", vm.name, writer.name)) {
                    writer.freeze_timeout = Some(self.window);
                }
            }
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl fmt::Display for SwarmOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workload={},blocks={},metadata={},page_file={},window={}s,tight={},faults={}",
            self.workload,
            self.blocks,
            on_off(self.metadata),
            on_off(self.page_file),
            self.window.millis / 1_000,
            self.tight.join("+"),
            self.fault_chance
        )
    }
}

impl FromStr for SwarmOptions {
    type Err = SwarmError;
    fn from_str(text: &str) -> Result<Self, SwarmError> {
        let bad = |problem: String| SwarmError {
            text: text.to_string(),
            problem,
        };
        let mut o = SwarmOptions {
            workload: 100,
            blocks: 100,
            metadata: true,
            page_file: true,
            tight: Vec::new(),
            window: VirtualTime { millis: 60_000 },
            fault_chance: 0,
        };
        let percent = |key: &str, v: &str| {
            v.parse::<u32>()
                .ok()
                .filter(|p| (1..=10_000).contains(p))
                .ok_or_else(|| bad(format!("{key}={v:?} is not a percentage in 1..=10000")))
        };
        let switch = |key: &str, v: &str| match v {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(bad(format!("{key}={v:?} is neither on nor off"))),
        };
        for field in text.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("{field:?} is not key=value")))?;
            match key {
                "workload" => o.workload = percent(key, value)?,
                "blocks" => o.blocks = percent(key, value)?,
                "metadata" => o.metadata = switch(key, value)?,
                "page_file" => o.page_file = switch(key, value)?,
                "window" => {
                    o.window = value
                        .parse()
                        .map_err(|e| bad(format!("window={value:?}: {e}")))?
                }
                "tight" => {
                    o.tight = value
                        .split('+')
                        .filter(|w| !w.is_empty())
                        .map(str::to_string)
                        .collect()
                }
                "faults" => {
                    o.fault_chance = value
                        .parse()
                        .ok()
                        .filter(|p| *p <= 100)
                        .ok_or_else(|| bad(format!("faults={value:?} is not a percentage")))?
                }
                _ => {
                    return Err(bad(format!(
                        "unknown option {key:?} (workload, blocks, metadata, page_file, window, tight, faults)"
                    )))
                }
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(name: &str) -> Scenario {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(format!("{name}.toml"));
        Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn drawn_options_print_and_parse_back_and_keep_the_scenario_valid() {
        let base = library("f2-online-backup-checkpoint");
        let mut seen_tight = false;
        for seed in 0..200 {
            let o = SwarmOptions::draw(&base, seed);
            assert_eq!(o, SwarmOptions::draw(&base, seed), "stable");
            let back: SwarmOptions = o.to_string().parse().unwrap();
            assert_eq!(back, o, "{o}");
            let mut s = base.clone();
            o.apply(&mut s);
            assert!(s.validate().is_empty(), "{o}: {:?}", s.validate());
            seen_tight |= !o.tight.is_empty();
        }
        assert!(seen_tight);
    }

    #[test]
    fn applied_options_change_the_loaded_scenario() {
        let base = library("f2-online-backup-checkpoint");
        let o: SwarmOptions = "workload=200,metadata=off,window=5s,tight=app01/SqlServerWriter"
            .parse()
            .unwrap();
        let mut s = base.clone();
        o.apply(&mut s);
        let vm = s.vms.iter().position(|v| v.name == "app01").unwrap();
        let (before, after) = (&base.vms[vm], &s.vms[vm]);
        if let (Some(a), Some(b)) = (&before.workload.transactions, &after.workload.transactions) {
            assert_eq!(b.rate, (a.rate * 2).min(MAX_RATE));
        }
        assert_eq!(after.workload.metadata_writes, None);
        let w = after
            .guest
            .writers
            .iter()
            .find(|w| w.name == "SqlServerWriter")
            .unwrap();
        assert_eq!(w.freeze_timeout, Some(VirtualTime { millis: 5_000 }));
    }

    #[test]
    fn bad_text_names_the_option() {
        for (text, what) in [
            ("workload=0", "workload"),
            ("metadata=maybe", "metadata"),
            ("speed=2", "unknown option \"speed\""),
            ("window=fast", "window"),
        ] {
            let e = text.parse::<SwarmOptions>().unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
