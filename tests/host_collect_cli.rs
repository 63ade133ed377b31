//! `hvsim host collect`, run as a real process: the inventory collection script of an F1
//! and an F3 scenario (snapshots, reviewed: the data section names exactly the scenario's
//! hosts, volumes, VMs and disks, the body only reads), `-o` writing a new file and
//! refusing an existing one or the scenario itself, and the exit codes (issue 12 §1).

use std::path::Path;
use std::process::{Command, Output};

mod output_file;

fn hvsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hvsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("hvsim runs")
}

fn script_of(name: &str) -> String {
    let file = format!("scenarios/{name}.toml");
    let out = hvsim(&["host", "collect", &file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
    assert!(stderr.is_empty(), "{name}: {stderr}");
    String::from_utf8(out.stdout).expect("the script is UTF-8")
}

fn snapshot(name: &str) {
    let script = script_of(name);
    insta::with_settings!({filters => vec![(r"made by hvsim \S+", "made by hvsim [version]")]}, {
        insta::assert_snapshot!(name, script);
    });
}

/// F1 on a 2012 host: one host, one volume named by the scenario (found through the VM's
/// disk on it), one VM with one disk; no cluster, no file server.
#[test]
fn f1_collection_script() {
    snapshot("f1-online-2012-autorecovery");
}

/// F3 off-host on a 2019 cluster: two hosts, the cluster asked at its first node, a CSV
/// named by its path, two VMs on different nodes.
#[test]
fn f3_collection_script() {
    snapshot("f3-production-checkpoint-offhost-group");
}

#[test]
fn the_script_says_what_made_it_and_that_it_only_reads() {
    let script = script_of("f4-smb3-share-backup");
    let head: Vec<&str> = script.lines().take(10).collect();
    let head = head.join("\n");
    assert!(
        head.contains(&format!("made by hvsim {}", env!("CARGO_PKG_VERSION"))),
        "{head}"
    );
    assert!(head.contains("READ-ONLY"), "{head}");
    assert!(
        script.contains("$scenarioName = 'f4-smb3-share-backup'"),
        "{head}"
    );
    // F4: the file server and its share are data, asked with Get-SmbShare.
    assert!(
        script.contains("@{ Name = 'fs1'; Shares = @(") && script.contains("Get-SmbShare"),
        "{script}"
    );
}

/// `-o` writes a new file with exactly what stdout gets; an existing file is refused
/// (exit 3, nothing changed) unless --force; the scenario itself never, even with --force.
#[test]
fn output_file_is_new_unless_forced_and_never_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = output_file::scenario_copy(dir.path(), "f1-online-2012-autorecovery.toml");
    output_file::assert_new_unless_forced_never_the_input(
        &hvsim,
        &["host", "collect", scenario.to_str().unwrap()],
        &scenario,
        &dir.path().join("collect.ps1"),
    );
}

/// A VM name with a curly quote passes the scenario's own checks (it is a valid file
/// name) but cannot be quoted for PowerShell: exit 2 naming the field, nothing printed.
/// An unreadable scenario: exit 3.
#[test]
fn a_name_powershell_reads_as_a_quote_exits_2_naming_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/f1-online-2012-autorecovery.toml"),
    )
    .unwrap();
    let file = dir.path().join("curly.toml");
    std::fs::write(&file, text.replace("sql01", "sql\u{2019}01")).unwrap();
    let out = hvsim(&["host", "collect", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("vms[0].name: \"sql\u{2019}01\" holds U+2019"),
        "{stderr}"
    );

    let out = hvsim(&["host", "collect", "scenarios/no-such-scenario.toml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
}

/// The script's document saved by Windows PowerShell 5.1's `>` is UTF-16LE with a byte
/// order mark; `host plan --inventory` reads it as it reads UTF-8 (with or without a
/// mark), and says what a file in neither encoding is (exit 3).
#[test]
fn an_inventory_saved_by_powershell_redirection_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let json = r#"{
  "hosts": [{ "name": "HV1", "version": "2019" }],
  "cluster": null,
  "volumes": [{ "name": "hv1-D", "path": "D:\\", "host": "hv1", "csv": false,
                "capacity": 4398046511104, "free": 2199023255552 }],
  "vms": [{ "name": "web01", "host": "HV1", "generation": 2, "config_version": "9.0",
            "state": "running", "checkpoint_type": "Production", "integration_services": true,
            "integration_services_version": null, "backup_enabled": true, "scsi_controller": true,
            "disks": [{ "file": "web01.vhdx", "volume": "hv1-D", "share": null, "size": 136365211648 }] }],
  "file_servers": []
}
"#;
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(json.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf8_bom: Vec<u8> = [0xEF, 0xBB, 0xBF].into_iter().chain(json.bytes()).collect();
    for (name, bytes) in [
        ("utf16.json", utf16),
        ("utf8-bom.json", utf8_bom),
        ("utf8.json", json.as_bytes().to_vec()),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = hvsim(&[
            "host",
            "plan",
            "scenarios/f3-production-checkpoint-onhost.toml",
            "--inventory",
            file.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("Preflight: the host matches the scenario"),
            "{name}: {stdout}"
        );
    }
    let latin1 = dir.path().join("latin1.json");
    std::fs::write(&latin1, b"{\"hosts\": [{\"name\": \"h\xe9\"}]}").unwrap();
    let out = hvsim(&[
        "host",
        "plan",
        "scenarios/f3-production-checkpoint-onhost.toml",
        "--inventory",
        latin1.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("latin1.json: not UTF-8 text (byte 22 is not UTF-8)"),
        "{stderr}"
    );
}
