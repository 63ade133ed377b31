//! The bytes of one write and where it goes, both from the seed.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The tag of the agent's writes in the pattern (the simulator's workload uses 0xDB,
/// 0xC0, 0x4D and 0x9F for its kinds).
pub const AGENT_TAG: u8 = 0xA6;

/// The pattern's serial of write `seq` under `seed`: distinct per seed and write.
pub fn serial(seed: u64, seq: u64) -> u64 {
    seed.rotate_left(32) ^ seq
}

/// The simulator workload's pattern (`hvsim_sim::world::write_data`): the same formula,
/// so an agent's write and a simulated one of the same serial hold the same bytes.
/// `out`'s length is a multiple of 8 (writes are whole sectors).
pub fn write_data(serial: u64, tag: u8, out: &mut [u8]) {
    let base = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(tag);
    for (i, w) in (0u64..).zip(out.chunks_exact_mut(8)) {
        let x = base.wrapping_add(i.wrapping_mul(0xD1B5_4A32_D192_ED03)) | 1;
        w.copy_from_slice(&x.to_le_bytes());
    }
}

/// The bytes of write `seq`.
pub fn bytes(seed: u64, seq: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    write_data(serial(seed, seq), AGENT_TAG, &mut v);
    v
}

/// The seeded stream of offsets and lengths: ChaCha8 and the scheduler's unbiased draw.
pub struct Draws(ChaCha8Rng);

impl Draws {
    pub fn new(seed: u64) -> Self {
        Draws(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in `0..bound` (0 for a bound of 0 or 1), by rejection of the biased low
    /// products, as the simulator's scheduler draws.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound <= 1 {
            return 0;
        }
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let wide = u128::from(self.0.next_u64()) * u128::from(bound);
            if (wide as u64) >= threshold {
                return (wide >> 64) as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_the_simulators() {
        for (serial, tag, len) in [(0, 0xDB, 4096), (7, AGENT_TAG, 8192), (u64::MAX, 0, 64)] {
            let mut ours = vec![0u8; len];
            let mut sims = vec![0u8; len];
            write_data(serial, tag, &mut ours);
            hvsim_sim::world::write_data(serial, tag, &mut sims);
            assert_eq!(ours, sims, "serial {serial} tag {tag:#x}");
        }
    }

    #[test]
    fn writes_differ_by_seed_and_sequence_and_never_hold_a_zero_word() {
        let a = bytes(1, 0, 4096);
        assert_ne!(a, bytes(1, 1, 4096));
        assert_ne!(a, bytes(2, 0, 4096));
        assert_eq!(a, bytes(1, 0, 4096));
        assert!(a.chunks(8).all(|w| w != [0u8; 8]));
        // Known first word: the pattern does not drift unnoticed.
        assert_eq!(
            &a[..8],
            &(((1u64 << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA6) | 1).to_le_bytes()
        );
    }

    #[test]
    fn draws_are_seeded_and_bounded() {
        let (mut a, mut b) = (Draws::new(9), Draws::new(9));
        let xs: Vec<u64> = (0..100).map(|_| a.below(10)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.below(10)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|&x| x < 10));
        assert!((0..10).all(|v| xs.contains(&v)));
        assert_eq!(a.below(1), 0);
    }
}
