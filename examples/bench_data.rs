//! Writes a deterministic test disk for benchmarks: `SIZE` bytes cut into pieces of
//! `PIECE` bytes, a quarter of them (chosen by the seed) all zeros, the rest random.
//!
//! Usage: `cargo run --release --example bench_data -- OUT SIZE PIECE [SEED]`
//! (sizes in bytes). Refuses to overwrite OUT.

use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 4 {
        eprintln!("usage: bench_data OUT SIZE PIECE [SEED]");
        return ExitCode::from(2);
    }
    let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
    let run = || -> Result<(), String> {
        let size = num(&args[1])?;
        let piece = num(&args[2])?;
        let seed = args.get(3).map_or(Ok(1), |s| num(s))?;
        if piece == 0 || size % piece != 0 {
            return Err(format!(
                "size {size} is not a multiple of the piece size {piece}"
            ));
        }
        let pieces = (size / piece) as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Exactly a quarter of the pieces are zero; which ones depends on the seed.
        let mut zero = vec![false; pieces];
        zero.iter_mut().take(pieces / 4).for_each(|z| *z = true);
        zero.shuffle(&mut rng);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&args[0])
            .map_err(|e| format!("{}: {e}", args[0]))?;
        let mut buf = vec![0u8; piece as usize];
        for z in zero {
            if z {
                buf.fill(0);
            } else {
                rng.fill_bytes(&mut buf);
            }
            out.write_all(&buf)
                .map_err(|e| format!("{}: {e}", args[0]))?;
        }
        out.sync_all().map_err(|e| format!("{}: {e}", args[0]))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_data: {e}");
            ExitCode::FAILURE
        }
    }
}
