//! `hvsim run FILE --backend hyperv` on a build that is not for Windows: a clear refusal
//! naming what the backend needs and `hvsim host plan`, exit 2, no run (issue 12 §1).
#![cfg(not(windows))]

mod common;

use common::hvsim;

const SCENARIO: &str = "scenarios/f1-writer-fails-at-freeze.toml";

#[test]
fn the_hyperv_backend_needs_the_windows_build() {
    let out = hvsim(&["run", SCENARIO, "--backend", "hyperv", "--host", "hv01"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "hvsim: error: --backend hyperv needs the Windows build of hvsim (hvsim.exe)"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!("this build is for {}", std::env::consts::OS)),
        "{err}"
    );
    assert!(
        err.contains(&format!("`hvsim host plan {SCENARIO}`")),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no story of a run that did not happen"
    );
}

#[test]
fn host_and_credential_belong_to_the_hyperv_backend() {
    let out = hvsim(&["run", SCENARIO, "--host", "hv01"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--host and --credential name a real host: they go with --backend hyperv"),
        "{err}"
    );
    let out = hvsim(&["run", SCENARIO, "--backend", "vmware"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("invalid value 'vmware' for '--backend <BACKEND>'"));
}
