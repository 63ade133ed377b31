//! `hvsim host agent`, run as a real process: the start, stop and collect scripts of an F2
//! and an F3 scenario (snapshots, reviewed), the argument line the start script gives the
//! agent run by the real `hvsim-agent` and its log checked by `hvsim check-writes`, a
//! Linux guest refused naming its VM, `-o` writing a new file and refusing an existing one,
//! and the exit codes (issue 12 §1).

use std::process::{Command, Output};

mod output_file;

fn hvsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hvsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("hvsim runs")
}

const AGENT: &str = r"C:\hvsim\hvsim-agent.exe";

fn script_of(name: &str, part: &str) -> String {
    let file = format!("scenarios/{name}.toml");
    let out = hvsim(&["host", "agent", &file, "--agent", AGENT, "--part", part]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
    assert!(stderr.is_empty(), "{name}: {stderr}");
    String::from_utf8(out.stdout).expect("the script is UTF-8")
}

fn snapshot(name: &str) {
    for part in ["start", "stop", "collect"] {
        let script = script_of(name, part);
        insta::with_settings!({filters => vec![(r"made by hvsim \S+", "made by hvsim [version]")]}, {
            insta::assert_snapshot!(format!("{name}-{part}"), script);
        });
    }
}

/// F2 on a 2012 R2 host: one VM, transactions and metadata writes on D: (45 operations
/// a second); the host is older than PowerShell Direct, which the header says.
#[test]
fn f2_agent_scripts() {
    snapshot("f2-online-backup-checkpoint");
}

/// F3 off-host on a 2019 cluster: two VMs on two hosts, each on its first volume, C:.
#[test]
fn f3_agent_scripts() {
    snapshot("f3-production-checkpoint-offhost-group");
}

/// The `Args = '...'` literal of each VM in a start script (no quote in these scenarios'
/// values, so the literal ends at the next quote).
fn arg_lines(script: &str) -> Vec<String> {
    script
        .split("Args = '")
        .skip(1)
        .map(|rest| rest[..rest.find('\'').unwrap()].to_string())
        .collect()
}

/// The start script's argument line, as the guest's `Start-Process` hands it to the agent
/// (no value holds a space here, so it splits at spaces), run by the real agent: its
/// Windows paths are plain file names in a temporary folder on this machine. Only
/// `--writes` is made small. The log it writes is then checked by `check-writes` against
/// the file the agent wrote: every logged write is there.
#[test]
fn the_real_agent_takes_the_start_scripts_arguments() {
    for name in [
        "f2-online-backup-checkpoint",
        "f3-production-checkpoint-offhost-group",
    ] {
        let lines = arg_lines(&script_of(name, "start"));
        assert!(!lines.is_empty(), "{name}");
        for line in lines {
            let mut args: Vec<String> = line.split(' ').map(str::to_string).collect();
            let at = args.iter().position(|a| a == "--writes").unwrap();
            args[at + 1] = "25".into();
            let rate = args.iter().position(|a| a == "--rate").unwrap();
            assert!(args[rate + 1].parse::<u32>().unwrap() > 0, "{line}");
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_hvsim-agent"))
                .args(&args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name}: {line}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let disk = dir.path().join(&args[0]);
            let log = dir.path().join(&args[2]);
            assert!(disk.is_file() && log.is_file(), "{name}: {line}");
            let out = hvsim(&[
                "check-writes",
                disk.to_str().unwrap(),
                "--log",
                log.to_str().unwrap(),
                "--raw",
            ]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.starts_with("25 writes checked,") && stdout.contains("I1 holds"),
                "{name}: {stdout}"
            );
        }
    }
}

/// `-o` writes a new file with exactly what stdout gets; an existing file is refused
/// (exit 3, nothing changed) unless --force; the scenario itself never.
#[test]
fn output_file_is_new_unless_forced_and_never_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = output_file::scenario_copy(dir.path(), "f2-online-backup-checkpoint.toml");
    let sc = scenario.to_str().unwrap();
    output_file::assert_new_unless_forced_never_the_input(
        &hvsim,
        &["host", "agent", sc, "--agent", AGENT, "--part", "stop"],
        &scenario,
        &dir.path().join("stop.ps1"),
    );
}

/// A Linux guest with a workload: exit 2 naming the VM and SSH, nothing printed; an
/// unreadable scenario: exit 3; a part that does not exist: clap's usage error.
#[test]
fn a_linux_guest_exits_2_naming_it() {
    let out = hvsim(&[
        "host",
        "agent",
        "scenarios/f3-linux-daemon-missing.toml",
        "--agent",
        AGENT,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("lnx01 is a Linux guest") && stderr.contains("SSH is not implemented"),
        "{stderr}"
    );
    let out = hvsim(&["host", "agent", "scenarios/no-such.toml", "--agent", AGENT]);
    assert_eq!(out.status.code(), Some(3));
    let out = hvsim(&[
        "host",
        "agent",
        "scenarios/f2-online-backup-checkpoint.toml",
        "--agent",
        AGENT,
        "--part",
        "restart",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
