//! Test-only pause points. With `HVSIM_TEST_PAUSE=NAME` in its environment, a command
//! stops at the point NAME, says so on stderr (`hvsim: paused at NAME`) and goes on when
//! its stdin reaches end of file. The whole-program tests use it to hold a lock or to kill
//! a command at a known point; nothing else sets it.

use std::io;

pub fn pause(point: &str) {
    if std::env::var_os("HVSIM_TEST_PAUSE").is_some_and(|v| v == point) {
        eprintln!("hvsim: paused at {point}");
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    }
}
