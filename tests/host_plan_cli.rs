//! `hvsim host plan`, run as a real process: the plan of library scenarios (snapshots,
//! reviewed against SPEC F1–F4 and the staged field failures), and its exit codes: 0 for
//! a plan that can run, 1 listing every difference of the host, 2 listing every refusal.

use std::path::Path;
use std::process::{Command, Output};

fn hvsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hvsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("hvsim runs")
}

fn plan_of(name: &str) -> (Option<i32>, String, String) {
    let file = format!("scenarios/{name}.toml");
    let out = hvsim(&["host", "plan", &file]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn snapshot(name: &str) {
    let (code, stdout, stderr) = plan_of(name);
    assert_eq!(code, Some(0), "{name}: {stderr}");
    insta::assert_snapshot!(name, stdout);
}

#[test]
fn f1_plan() {
    snapshot("f1-online-2012-autorecovery");
}

#[test]
fn f2_plan() {
    snapshot("f2-online-backup-checkpoint");
}

#[test]
fn f3_plan() {
    snapshot("f3-production-checkpoint-onhost");
}

#[test]
fn f4_plan() {
    snapshot("f4-smb3-share-backup");
}

#[test]
fn ff21_production_only_plan() {
    snapshot("f3-linux-daemon-missing-production-only");
}

#[test]
fn ff22_lingering_checkpoint_plan() {
    snapshot("f2-lingering-recovery-checkpoint-merged");
}

#[test]
fn r2_backup_service_disabled_plan() {
    snapshot("r2-backup-service-disabled");
}

#[test]
fn r8_low_space_plan() {
    snapshot("r8-free-space-short");
}

#[test]
fn ff13_ff18_frozen_fs_plan() {
    snapshot("f3-linux-fsfreeze-by-hand-data");
}

/// Every refusal is listed (not the first), each with its place and reason; exit 2.
#[test]
fn refused_items_exit_2_listing_all() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/f2-provider-commit-failure.toml"),
    )
    .unwrap();
    // A second unstageable fault: another requester's snapshot set in creation.
    let file = dir.path().join("two-refusals.toml");
    std::fs::write(
        &file,
        format!("{text}\n[[faults]]\nsnapshot_set_in_progress = {{ host = \"hv1\", until = \"20000 ms\" }}\n"),
    )
    .unwrap();
    let out = hvsim(&["host", "plan", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("Refused: 2 item(s)"), "{stdout}");
    assert!(
        stdout.contains("faults[0]: provider_commit_failure"),
        "{stdout}"
    );
    assert!(
        stdout.contains("faults[1]: snapshot_set_in_progress"),
        "{stdout}"
    );
    assert!(stderr.contains("2 item(s) cannot be staged"), "{stderr}");
}

/// An inventory that differs in several ways: exit 1 and every difference listed; the
/// same inventory made to match: exit 0.
#[test]
fn preflight_differences_exit_1_listing_all() {
    let dir = tempfile::tempdir().unwrap();
    let inv = |version: &str, generation: u8, free: &str| {
        format!(
            r#"{{
  "hosts": [{{ "name": "hv1", "version": "{version}" }}],
  "volumes": [{{ "name": "hv1-D", "path": "D:\\", "capacity": "4 TiB", "free": "{free}" }}],
  "vms": [{{ "name": "web01", "host": "hv1", "generation": {generation}, "config_version": "9.0",
             "scsi_controller": true,
             "disks": [{{ "file": "web01.vhdx", "volume": "hv1-D", "size": "127 GiB" }}] }}]
}}"#
        )
    };
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, inv("2016", 1, "10 GiB")).unwrap();
    let out = hvsim(&[
        "host",
        "plan",
        "scenarios/f3-production-checkpoint-onhost.toml",
        "--inventory",
        bad.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Preflight: 3 difference(s)"), "{stdout}");
    assert!(stdout.contains("host hv1: Windows Server 2016, the scenario needs 2019"));
    assert!(stdout.contains("VM web01: generation 1, the scenario needs 2"));
    assert!(stdout.contains("volume hv1-D: 10 GiB free, below the AVHDX growth of 127 GiB (R8)"));
    // The inventory's path replaces the scenario's volume name in the commands.
    assert!(stdout.contains(r"D:\web01.vhdx"), "{stdout}");

    let good = dir.path().join("good.json");
    std::fs::write(&good, inv("2019", 2, "2 TiB")).unwrap();
    let out = hvsim(&[
        "host",
        "plan",
        "scenarios/f3-production-checkpoint-onhost.toml",
        "--inventory",
        good.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["differences"], serde_json::json!([]));
    assert_eq!(v["refusals"], serde_json::json!([]));
    let kinds: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"wmi_call") && kinds.contains(&"job_poll"),
        "{kinds:?}"
    );
}

/// A malformed inventory: exit 3 with file, line and field; nothing on stdout.
#[test]
fn a_malformed_inventory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("host.json");
    std::fs::write(
        &bad,
        "{\n \"hosts\": [{ \"name\": \"hv1\", \"version\": 2019 }]\n}\n",
    )
    .unwrap();
    let out = hvsim(&[
        "host",
        "plan",
        "scenarios/f3-production-checkpoint-onhost.toml",
        "--inventory",
        bad.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("host.json:2:"), "{stderr}");
    assert!(stderr.contains("hosts[0].version"), "{stderr}");
    assert!(out.stdout.is_empty());
}
