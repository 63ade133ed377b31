//! `--shard K/N`: a stable hash partition of (scenario file name, run index), like
//! nextest's `hash:K/N`. The N shards are disjoint and their union is every run.

use std::fmt;
use std::str::FromStr;

/// Shard `k` (1-based) of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: u64,
    pub n: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("shard {text:?}: {problem} (write K/N with 1 <= K <= N, e.g. 2/4)")]
pub struct ShardError {
    pub text: String,
    pub problem: &'static str,
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(text: &str) -> Result<Self, ShardError> {
        let bad = |problem| ShardError {
            text: text.to_string(),
            problem,
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(|| bad("no '/'"))?;
        let k: u64 = k.trim().parse().map_err(|_| bad("K is not a number"))?;
        let n: u64 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if n == 0 {
            return Err(bad("N is 0"));
        }
        if k == 0 || k > n {
            return Err(bad("K is out of 1..=N"));
        }
        Ok(Shard { k, n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// Whether run `index` of the scenario file `file` (its name, not its path: shards
    /// on different machines check out to different folders) belongs to this shard.
    pub fn holds(&self, file: &str, index: u64) -> bool {
        let mut h = blake3::Hasher::new();
        h.update(file.as_bytes());
        h.update(&index.to_le_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        u64::from_le_bytes(first) % self.n == self.k - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/4".parse(), Ok(Shard { k: 2, n: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_run() {
        for n in 1..=5 {
            let shards: Vec<Shard> = (1..=n).map(|k| Shard { k, n }).collect();
            for file in ["a.toml", "f3-production-checkpoint-onhost.toml"] {
                for i in 0..500 {
                    let owners = shards.iter().filter(|s| s.holds(file, i)).count();
                    assert_eq!(owners, 1, "{file} run {i} of {n} shards");
                }
            }
        }
    }
}
