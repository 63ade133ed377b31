//! GUID generation. Headers get fresh GUIDs on every writing session, so the generator is
//! an explicit value: seeded for the simulator (same seed, same bytes), from the operating
//! system's entropy for the command line.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use uuid::Uuid;

/// A source of random (version 4) GUIDs.
#[derive(Debug, Clone)]
pub struct GuidGen {
    rng: ChaCha20Rng,
}

impl GuidGen {
    /// Deterministic generator: the same seed yields the same GUIDs on any machine.
    pub fn seeded(seed: u64) -> Self {
        GuidGen {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// Generator seeded from the operating system.
    pub fn from_entropy() -> Self {
        GuidGen {
            rng: ChaCha20Rng::from_entropy(),
        }
    }

    /// An independent generator drawn from this one: every image of a chain, and every
    /// open of an image, needs its own stream. (A clone repeats the same GUIDs: two
    /// sessions with one LogGuid could replay each other's log entries.)
    pub fn fork(&mut self) -> GuidGen {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        GuidGen {
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// The next GUID (never the nil GUID).
    pub fn next_guid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

impl Default for GuidGen {
    fn default() -> Self {
        Self::from_entropy()
    }
}
