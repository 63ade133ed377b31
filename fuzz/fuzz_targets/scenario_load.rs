//! Parses and validates fuzzer-made scenario files (`Scenario::from_toml`, as `hvsim run`
//! loads them): start it from a copy of the library (`cp -r scenarios corpus`).
//!
//! Crashes, hangs and out-of-memory aborts are what the fuzzer looks for; errors are fine
//! when each names its place (line and column) and says what is wrong.

#![no_main]

use hvsim_sim::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Scenario files are UTF-8; other bytes fail at reading, before the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = Scenario::from_toml(text, "fuzz.toml") {
        for error in &errors.0 {
            let shown = error.to_string();
            assert!(error.line_column().is_some(), "no line: {shown}");
            assert!(!shown.trim_end().ends_with(':'), "no message: {shown}");
        }
    }
});
