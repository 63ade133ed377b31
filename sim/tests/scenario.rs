//! The scenario library parses and validates, covers the SPEC items it must, and malformed
//! files get exact `file:line:column: field: problem` errors, never a panic.

use hvsim_sim::scenario::{BackupMethod, Consistency, Outcome, Scenario, ScenarioError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

fn library() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let name = format!(
                "scenarios/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            let text = std::fs::read_to_string(&path).expect("readable scenario");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn load_library() -> Vec<(String, Scenario)> {
    library()
        .into_iter()
        .map(|(name, text)| match Scenario::from_toml(&text, &name) {
            Ok(scenario) => (name, scenario),
            Err(e) => panic!("{e}"),
        })
        .collect()
}

#[test]
fn every_library_file_parses_validates_and_says_what_it_shows() {
    let library = load_library();
    assert!(library.len() >= 20, "only {} scenarios", library.len());
    for (file, scenario) in &library {
        let stem = file
            .trim_start_matches("scenarios/")
            .trim_end_matches(".toml");
        assert_eq!(
            scenario.name, stem,
            "{file}: name differs from the file name"
        );
        let text = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(file),
        )
        .unwrap_or_default();
        assert!(text.starts_with("# "), "{file}: no header comment");
        assert!(!scenario.covers.is_empty(), "{file}: covers nothing");
    }
}

/// A scenario showing the normal path of an item: success, no fault, no failing writer.
fn happy(s: &Scenario) -> bool {
    s.expect.outcome == Outcome::Success
        && s.faults.is_empty()
        && s.vms
            .iter()
            .all(|vm| vm.guest.writers.iter().all(|w| w.fail_at.is_none()))
}

/// A scenario showing what goes wrong: a failure, an injected fault, or a downgrade.
fn failure_variant(s: &Scenario) -> bool {
    s.expect.outcome == Outcome::Failure
        || s.injects_failure()
        || s.expect.vms.iter().any(|v| {
            v.method == Some(BackupMethod::SavedState) || v.consistency == Some(Consistency::Crash)
        })
}

#[test]
fn flows_and_rules_are_covered_with_a_normal_and_a_failure_variant() {
    let library = load_library();
    let required = [
        "F1", "F2", "F3", "F4", "F5", "R1", "R2", "R3", "R4", "R5", "R7", "R8",
    ];
    let mut missing = Vec::new();
    for id in required {
        let covering: Vec<&Scenario> = library
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.covers.iter().any(|c| c.is_within(id)))
            .collect();
        if !covering.iter().any(|s| happy(s)) {
            missing.push(format!("{id}: no scenario of the normal path"));
        }
        if !covering.iter().any(|s| failure_variant(s)) {
            missing.push(format!("{id}: no failure variant"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn summaries_and_digests_are_stable() {
    let library = load_library();
    let (_, first) = &library[0];
    let text: Vec<String> = library
        .iter()
        .map(|(_, s)| format!("{s}digest {}\n", s.digest()))
        .collect();
    insta::assert_snapshot!("library_summaries", text.join("\n"));
    // The digest is of the meaning, not the text: comments and unit spellings do not count.
    let (file, source) = &library_text("f2-online-backup-checkpoint");
    let reworded = source
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\"2 TiB\"", "2199023255552");
    let a = Scenario::from_toml(source, file).expect("valid");
    let b = Scenario::from_toml(&reworded, file).expect("valid");
    assert_eq!(a.digest(), b.digest());
    let mut c = a.clone();
    c.seed += 1;
    assert_ne!(a.digest(), c.digest());
    assert_ne!(first.digest(), a.digest());
}

fn library_text(name: &str) -> (String, String) {
    library()
        .into_iter()
        .find(|(file, _)| file.ends_with(&format!("/{name}.toml")))
        .expect("library file")
}

/// A small valid scenario that the malformed cases below each break in one place.
const BASE: &str = r#"name = "base"
covers = ["F3", "F3.2"]

[[hosts]]
name = "hv1"
version = "2019"

[[volumes]]
name = "hv1-D"
host = "hv1"
capacity = "1 TiB"
free = "500 GiB"

[[vms]]
name = "vm1"
host = "hv1"
generation = 2
config_version = "9.0"
disks = [{ file = "vm1.vhdx", size = "40 GiB", volume = "hv1-D" }]

[vms.guest]
os = "windows"
writers = [
    { name = "System Writer", kind = "System" },
    { name = "SqlServerWriter", kind = "SQL", fail_at = "OnFreeze", fail_with = "timeout" },
]

[job]
kind = "full"
vms = ["vm1"]

[expect]
outcome = "failure"
code = "VSS_E_WRITERERROR_TIMEOUT"
"#;

fn broken(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    let text = BASE.replacen(from, to, 1);
    match hvsim_sim::run::from_toml(&text, "scenarios/broken.toml") {
        Ok(_) => "Ok".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn base_of_the_malformed_cases_is_valid() {
    assert_eq!(broken("", ""), "Ok");
}

#[test]
fn malformed_files_get_file_line_column_field_and_problem() {
    let cases = [
        (
            "unknown field",
            broken("generation = 2", "generation = 2\ngenration = 2"),
        ),
        (
            "wrong type",
            broken("generation = 2", "generation = \"two\""),
        ),
        ("bad enum value", broken("\"OnFreeze\"", "\"OnFreez\"")),
        ("bad Hyper-V version", broken("\"2019\"", "\"2019 R2\"")),
        ("bad size", broken("\"40 GiB\"", "\"40 gigs\"")),
        ("missing required field", broken("kind = \"full\"\n", "")),
        ("missing name of a host", broken("name = \"hv1\"\n", "")),
        ("bad covers id shape", broken("\"F3.2\"", "\"F3-2\"")),
        ("covers id not in SPEC.md", broken("\"F3.2\"", "\"F3.9\"")),
        (
            "dangling volume",
            broken("volume = \"hv1-D\"", "volume = \"hv2-D\""),
        ),
        (
            "dangling job VM",
            broken("vms = [\"vm1\"]", "vms = [\"vm2\"]"),
        ),
        (
            "writer on a Linux guest",
            broken("os = \"windows\"", "os = \"linux\""),
        ),
        (
            "disk larger than its volume",
            broken("\"40 GiB\"", "\"2 TiB\""),
        ),
        (
            "fail_at without fail_with",
            broken(", fail_with = \"timeout\"", ""),
        ),
        (
            "failure without code",
            broken("code = \"VSS_E_WRITERERROR_TIMEOUT\"\n", ""),
        ),
        (
            "unknown fault",
            broken(
                "[expect]",
                "[[faults]]\nnetwork_down = { vm = \"vm1\" }\n\n[expect]",
            ),
        ),
        (
            "fault on a missing volume",
            broken(
                "[expect]",
                "[[faults]]\ndiff_area_full = { volume = \"hv1-E\" }\n\n[expect]",
            ),
        ),
        (
            "TOML syntax",
            broken("free = \"500 GiB\"", "free = \"500 GiB"),
        ),
        (
            "duplicate key",
            broken("generation = 2", "generation = 2\ngeneration = 1"),
        ),
        (
            "several semantic problems",
            broken(
                "host = \"hv1\"\ngeneration = 2",
                "host = \"hv9\"\ngeneration = 3",
            ),
        ),
    ];
    let report: Vec<String> = cases
        .iter()
        .map(|(what, error)| format!("{what}:\n{error}\n"))
        .collect();
    insta::assert_snapshot!("malformed", report.join("\n"));
}

#[test]
fn validate_works_without_a_file() {
    let (file, text) = library_text("f3-production-checkpoint-onhost");
    let mut scenario = Scenario::from_toml(&text, &file).expect("valid");
    assert!(scenario.validate().is_empty());
    scenario.vms[0].host = "nowhere".into();
    let problems: Vec<String> = scenario.validate().iter().map(|p| p.to_string()).collect();
    assert_eq!(problems, ["vms[0].host: no host named \"nowhere\""]);
}

#[test]
fn missing_file_is_an_error_value() {
    let err = Scenario::load(std::path::Path::new("scenarios/does-not-exist.toml"))
        .expect_err("no such file");
    assert!(matches!(err.0[0], ScenarioError::Read { .. }), "{err}");
}

/// Random byte edits of valid files: every result is Ok or errors that each carry a line.
#[test]
fn random_edits_never_panic_and_errors_have_a_line() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ce7a110);
    let alphabet = b" \n\t\"'=[]{}.,#0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-:\\\xc3\xa9";
    let mut errors = 0;
    for (file, text) in library() {
        for _ in 0..300 {
            let mut bytes = text.clone().into_bytes();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bytes.len());
                match rng.gen_range(0..3) {
                    0 => bytes[at] = alphabet[rng.gen_range(0..alphabet.len())],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, alphabet[rng.gen_range(0..alphabet.len())]),
                }
            }
            // Scenario text is UTF-8; an edit that breaks UTF-8 fails at reading.
            let Ok(edited) = String::from_utf8(bytes) else {
                continue;
            };
            if let Err(e) = Scenario::from_toml(&edited, &file) {
                errors += 1;
                for error in &e.0 {
                    assert!(
                        error.line_column().is_some(),
                        "no line for {error}\n--- input ---\n{edited}"
                    );
                }
            }
        }
    }
    assert!(errors > 1000, "edits too gentle: {errors} errors");
}

/// Names that become file or folder names are one plain Windows file name: each hostile
/// name is refused at its field, with file:line:column (issue 7 §1).
#[test]
fn names_that_become_files_are_plain_windows_names() {
    let long = "a".repeat(250);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "\"vm1.vhdx\"",
            "\"../../x.vhdx\"".into(),
            "vms[0].disks[0].file",
        ),
        (
            "\"vm1.vhdx\"",
            "\"/tmp/x.vhdx\"".into(),
            "vms[0].disks[0].file",
        ),
        (
            "\"vm1.vhdx\"",
            "'C:\\x.vhdx'".into(),
            "vms[0].disks[0].file",
        ),
        ("\"vm1.vhdx\"", "\".\"".into(), "vms[0].disks[0].file"),
        ("\"vm1.vhdx\"", "\"..\"".into(), "vms[0].disks[0].file"),
        ("\"vm1.vhdx\"", "\"a/b\"".into(), "vms[0].disks[0].file"),
        (
            "\"vm1.vhdx\"",
            "\"a\\u0000b\"".into(),
            "vms[0].disks[0].file",
        ),
        (
            "\"vm1.vhdx\"",
            "\"CON.vhdx\"".into(),
            "vms[0].disks[0].file",
        ),
        ("\"vm1.vhdx\"", "\"x.vhdx.\"".into(), "vms[0].disks[0].file"),
        (
            "\"vm1.vhdx\"",
            "\"a|b.vhdx\"".into(),
            "vms[0].disks[0].file",
        ),
        (
            "\"vm1.vhdx\"",
            format!("\"{long}.vhdx\""),
            "vms[0].disks[0].file",
        ),
        ("name = \"vm1\"", "name = \"../vm1\"".into(), "vms[0].name"),
        ("name = \"hv1\"", "name = 'hv1\\x'".into(), "hosts[0].name"),
    ];
    for (from, to, field) in cases {
        let error = broken(from, &to);
        assert!(
            error.starts_with("scenarios/broken.toml:") && error.contains(&format!(": {field}: ")),
            "{to}: {error}"
        );
        let (line, column) = error
            .trim_start_matches("scenarios/broken.toml:")
            .split_once(": ")
            .and_then(|(lc, _)| lc.split_once(':'))
            .expect("line:column");
        assert!(
            line.parse::<usize>().is_ok() && column.parse::<usize>().is_ok(),
            "{error}"
        );
    }
    assert_eq!(
        broken("\"vm1.vhdx\"", "\"../../x.vhdx\""),
        "scenarios/broken.toml:19:19: vms[0].disks[0].file: disk file \"../../x.vhdx\" holds '/', a path separator; a file name is one plain name"
    );
    assert_eq!(
        broken("\"vm1.vhdx\"", "\"NUL.vhdx\""),
        "scenarios/broken.toml:19:19: vms[0].disks[0].file: disk file \"NUL.vhdx\" is a device name Windows reserves"
    );
}

/// On a volume that is a Windows path (a CSV), a disk's checkpoint files must fit
/// MAX_PATH as a whole path.
#[test]
fn checkpoint_paths_fit_windows_max_path() {
    let on_path = BASE.replace("\"hv1-D\"", r"'C:\ClusterStorage\Volume1'");
    let file = format!("{}.vhdx", "d".repeat(196));
    let text = on_path.replace("vm1.vhdx", &file);
    let e = Scenario::from_toml(&text, "csv.toml").expect_err("too long a path");
    assert_eq!(
        e.to_string(),
        format!(
            "csv.toml:19:19: vms[0].disks[0].file: disk file {file:?} in \"C:\\\\ClusterStorage\\\\Volume1\" gives checkpoint file paths of 270 UTF-16 units; a Windows path has at most 259"
        )
    );
    let fits = on_path.replace("vm1.vhdx", &format!("{}.vhdx", "d".repeat(185)));
    assert!(Scenario::from_toml(&fits, "csv.toml").is_ok());
}

/// Two volumes that would share a folder, and two disks of one volume whose names differ
/// only in case, are refused: neither could be written beside the other.
#[test]
fn volume_folders_and_disk_files_do_not_collide() {
    let two_volumes = broken(
        "[[vms]]",
        "[[volumes]]\nname = \"HV1-d\"\nhost = \"hv1\"\ncapacity = \"1 TiB\"\nfree = \"500 GiB\"\n\n[[vms]]",
    );
    assert_eq!(
        two_volumes,
        "scenarios/broken.toml:15:8: volumes[1].name: volume \"HV1-d\" would share the folder \"HV1-d\" with volume \"hv1-D\" (names that differ only in case or in characters other than letters, digits, '-' and '_')"
    );
    let vm2 = BASE[BASE.find("[[vms]]").unwrap()..BASE.find("[job]").unwrap()]
        .replace("name = \"vm1\"", "name = \"vm2\"")
        .replace("vm1.vhdx", "VM1.vhdx");
    let two_disks = broken("[job]", &format!("{vm2}[job]"));
    assert!(
        two_disks.ends_with(
            "vms[1].disks[0].file: disk file \"VM1.vhdx\" is also vms[0].disks[0].file on volume \"hv1-D\" (the files of a volume have distinct names, ignoring case)"
        ),
        "{two_disks}"
    );
}

/// Every number has a bound, cited in the error; numbers that once overflowed or ran
/// away are refused at their field (issue 7 §6).
#[test]
fn numbers_beyond_their_bounds_are_refused_with_the_bound() {
    let workload = |w: &str| broken("[vms.guest]", &format!("workload = {w}\n\n[vms.guest]"));
    assert_eq!(
        workload("{ transactions = { rate = 2147483648, blocks = 1 }, metadata_writes = { rate = 2147483648 } }"),
        "scenarios/broken.toml:21:38: vms[0].workload.transactions.rate: rate 2147483648 per second is too high; at most 1000\n\
         scenarios/broken.toml:21:91: vms[0].workload.metadata_writes.rate: rate 2147483648 per second is too high; at most 1000"
    );
    assert_eq!(
        workload("{ transactions = { rate = 10, blocks = 4294967295 } }"),
        "scenarios/broken.toml:21:51: vms[0].workload.transactions.blocks: 4294967295 blocks per transaction; at most 256"
    );
    assert_eq!(
        broken("vms = [\"vm1\"]", "vms = [\"vm1\"]\nrecovery_points = 1000"),
        "scenarios/broken.toml:31:19: job.recovery_points: 1000 recovery points; a job makes at most 64"
    );
    assert_eq!(
        broken("\"40 GiB\"", "\"65 TiB\"")
            .lines()
            .next()
            .unwrap_or_default(),
        "scenarios/broken.toml:19:38: vms[0].disks[0].size: disk size 65 TiB is too large; at most 64 TiB"
    );
    assert_eq!(
        broken("\"40 GiB\"", "\"40 TiB\", block_size = \"1 MiB\"")
            .lines()
            .next()
            .unwrap_or_default(),
        "scenarios/broken.toml:19:61: vms[0].disks[0].block_size: disk size 40 TiB in blocks of 1 MiB is 41943040 blocks; a disk has at most 1048576 (choose a larger block_size)"
    );
    assert_eq!(
        broken("\"timeout\" }", "\"timeout\", freeze_timeout = \"25 h\" }"),
        "scenarios/broken.toml:25:109: vms[0].guest.writers[1].freeze_timeout: freeze timeout 90000 s is too long; at most 86400 s"
    );
}

/// A disk or guest volume too small for what the build writes is refused, never dropped
/// in silence; so is a volume whose free space cannot hold its base disks (issue 7 §6).
#[test]
fn worlds_too_small_to_build_are_refused_where_they_are_written() {
    assert_eq!(
        broken("\"40 GiB\"", "\"4 MiB\""),
        "scenarios/broken.toml:19:38: vms[0].disks[0].size: disk size 4 MiB leaves 3 MiB for its volume after the first MiB; a guest volume needs at least 4 MiB"
    );
    assert_eq!(
        broken(
            "volume = \"hv1-D\" }",
            "volume = \"hv1-D\", volumes = [{ mount = \"C:\", size = \"39 GiB\", fs = \"NTFS\", free = \"1 GiB\" }, { mount = \"D:\", size = \"3 MiB\", fs = \"NTFS\", free = \"1 MiB\" }] }"
        ),
        "scenarios/broken.toml:19:164: vms[0].disks[0].volumes[1].size: guest volume \"D:\" gets 3 MiB of the disk (its size in whole MiB, from 39937 MiB on); a guest volume needs at least 4 MiB"
    );
    assert_eq!(
        broken("free = \"500 GiB\"", "free = 0"),
        "scenarios/broken.toml:12:8: volumes[0].free: volume \"hv1-D\" has 0 B free; the base disks on it need 36 MiB (VHDX structures and the guests' first files)"
    );
}

/// An error always says what is wrong: a file that breaks off mid-assignment too.
#[test]
fn a_file_that_breaks_off_says_what_is_missing() {
    let text = format!("{BASE}name = ");
    let e = Scenario::from_toml(&text, "scenarios/cut.toml").expect_err("cut");
    assert_eq!(
        e.to_string(),
        "scenarios/cut.toml:35:8: the file ends where a value or a closing bracket is expected"
    );
}

/// A value of a megabyte gives a readable error: the message is cut, and says by how
/// much.
#[test]
fn a_huge_value_gives_a_short_error() {
    let huge = "v".repeat(1_000_000);
    let error = broken("vms = [\"vm1\"]", &format!("vms = [\"{huge}\"]"));
    let lines: Vec<&str> = error.lines().collect();
    assert!(
        lines.iter().all(|l| l.chars().count() < 1_200),
        "{}",
        &error[..1_500]
    );
    assert!(
        lines[0].starts_with("scenarios/broken.toml:30:8: job.vms[0]: no VM named \"vvvv"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("… (999014 more characters)"),
        "{}",
        lines[0]
    );
}

/// The same fault written twice fires once: the second copy is refused where it stands.
#[test]
fn a_fault_written_twice_is_refused() {
    let fault = "[[faults]]\ndiff_area_full = { volume = \"hv1-D\" }\n\n";
    let once = broken("[expect]", &format!("{fault}[expect]"));
    assert_eq!(once, "Ok");
    let twice = broken("[expect]", &format!("{fault}{fault}[expect]"));
    assert_eq!(
        twice,
        "scenarios/broken.toml:35:1: faults[1]: the same fault as faults[0]"
    );
}

/// Field failure 15: the state a restore leaves a VM in is expected only of a restore to
/// the original place, is "off" or "saved", and a bad one is named where it is written.
#[test]
fn a_state_after_restore_is_refused_where_it_is_written() {
    let with = |target: &str, state: &str| {
        let text = BASE
            .replacen(
                "vms = [\"vm1\"]",
                &format!("vms = [\"vm1\"]\nrestore = {{ target = \"{target}\" }}"),
                1,
            )
            .replacen(
                "code = \"VSS_E_WRITERERROR_TIMEOUT\"",
                &format!(
                    "code = \"VSS_E_WRITERERROR_TIMEOUT\"\n\
                     vms = [{{ vm = \"vm1\", state_after_restore = \"{state}\" }}]"
                ),
                1,
            );
        match hvsim_sim::run::from_toml(&text, "scenarios/broken.toml") {
            Ok(_) => "Ok".to_string(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(with("original", "saved"), "Ok");
    assert_eq!(with("original", "off"), "Ok");
    assert_eq!(
        with("item_level", "off"),
        "scenarios/broken.toml:36:44: expect.vms[0].state_after_restore: a restore to \
         item_level leaves the VM as it is; only one to the original place sets its state (R16)"
    );
    assert_eq!(
        with("original", "running"),
        "scenarios/broken.toml:36:44: expect.vms[0].state_after_restore: a restored VM is \
         \"off\" or \"saved\", never \"running\""
    );
    assert_eq!(
        with("original", "asleep"),
        "scenarios/broken.toml:36:44: expect.vms[0].state_after_restore: unknown VM state \
         \"asleep\" (expected one of running, off, saved, paused)"
    );
}

/// SPEC F1 note: a disk's format is its name's (`.vhd` is a VHD); a 2008 R2 host has only
/// VHD, and a VHD's size is whole sectors up to 2040 GiB. Each refusal names the field.
#[test]
fn a_disk_format_the_host_cannot_use_is_refused_where_it_is_written() {
    let on_2008r2 = |file: &str, size: &str| {
        let text = BASE
            .replacen("version = \"2019\"", "version = \"2008 R2\"", 1)
            .replacen("config_version = \"9.0\"", "config_version = \"1.0\"", 1)
            .replacen("generation = 2", "generation = 1", 1)
            .replacen("capacity = \"1 TiB\"", "capacity = \"4 TiB\"", 1)
            .replacen(
                "{ file = \"vm1.vhdx\", size = \"40 GiB\"",
                &format!("{{ file = \"{file}\", size = \"{size}\""),
                1,
            );
        match hvsim_sim::run::from_toml(&text, "scenarios/broken.toml") {
            Ok(_) => "Ok".to_string(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(on_2008r2("vm1.vhd", "40 GiB"), "Ok");
    assert_eq!(
        on_2008r2("vm1.vhdx", "40 GiB"),
        "scenarios/broken.toml:19:19: vms[0].disks[0].file: Hyper-V 2008 R2 has no VHDX: \
         its disks are VHD files, so name \"vm1.vhdx\" with .vhd"
    );
    assert_eq!(
        on_2008r2("vm1.vhd", "2041 GiB"),
        "scenarios/broken.toml:19:37: vms[0].disks[0].size: VHD disk size 2041 GiB is too \
         large; at most 2040 GiB"
    );
    assert_eq!(
        on_2008r2("vm1.vhd", "42949673473 B"),
        "scenarios/broken.toml:19:37: vms[0].disks[0].size: a VHD's size is whole 512-byte \
         sectors; 42949673473 B is not"
    );
    // A 2019 host takes either format.
    assert_eq!(broken("vm1.vhdx", "vm1.vhd"), "Ok");
}

/// Field failures 33, 34, 36: a lost change tracking is validated like the other faults:
/// its VM, an incremental job, a point that follows another, a cause by name, and an
/// owner node only in a cluster; an expected transfer list has one entry per point.
#[test]
fn change_tracking_lost_is_refused_where_it_is_written() {
    let incremental = |fault: &str, transfers: &str| {
        let text = BASE
            .replacen(
                "kind = \"full\"",
                "kind = \"incremental\"\nrecovery_points = 3",
                1,
            )
            .replacen(
                "[expect]",
                &format!("[[faults]]\nchange_tracking_lost = {fault}\n\n[expect]"),
                1,
            )
            .replacen(
                "code = \"VSS_E_WRITERERROR_TIMEOUT\"",
                &format!(
                    "code = \"VSS_E_WRITERERROR_TIMEOUT\"\nvms = [{{ vm = \"vm1\", transfers = {transfers} }}]"
                ),
                1,
            );
        match hvsim_sim::run::from_toml(&text, "scenarios/broken.toml") {
            Ok(_) => "Ok".to_string(),
            Err(e) => e.to_string(),
        }
    };
    let three = "[\"full\", \"incremental\", \"full\"]";
    let ok = "{ vm = \"vm1\", before_point = 3, cause = \"reference_point_deleted\" }";
    assert_eq!(incremental(ok, three), "Ok");
    assert_eq!(
        incremental(
            "{ vm = \"vm9\", before_point = 3, cause = \"damaged\" }",
            three
        ),
        "scenarios/broken.toml:34:31: faults[0].change_tracking_lost.vm: no VM named \"vm9\""
    );
    assert_eq!(
        incremental(
            "{ vm = \"vm1\", before_point = 1, cause = \"damaged\" }",
            three
        ),
        "scenarios/broken.toml:34:53: faults[0].change_tracking_lost.before_point: point 1 is \
         not between 2 and the job's 3 recovery point(s)"
    );
    assert_eq!(
        incremental(
            "{ vm = \"vm1\", before_point = 2, cause = \"owner_node_changed\" }",
            three
        ),
        "scenarios/broken.toml:34:64: faults[0].change_tracking_lost.cause: VM \"vm1\" is not \
         on a cluster node: it has no owner node to change"
    );
    let bad_cause = incremental(
        "{ vm = \"vm1\", before_point = 2, cause = \"gone\" }",
        three,
    );
    assert!(
        bad_cause.starts_with("scenarios/broken.toml:34:")
            && bad_cause.contains("gone")
            && bad_cause.contains("reference_point_deleted"),
        "{bad_cause}"
    );
    assert_eq!(
        incremental(ok, "[\"full\"]"),
        "scenarios/broken.toml:39:34: expect.vms[0].transfers: 1 transfer(s) listed for a job \
         of 3 recovery point(s)"
    );
    let full_job = broken(
        "[expect]",
        &format!("[[faults]]\nchange_tracking_lost = {ok}\n\n[expect]"),
    );
    assert_eq!(
        full_job,
        "scenarios/broken.toml:33:24: faults[0].change_tracking_lost: only an incremental job \
         reads change tracking (job.kind)"
    );
}

/// Field failure 39: a VHD Set checkpoint error names a known ErrorCode and a 2016+ VM.
#[test]
fn vhd_set_checkpoint_error_is_refused_where_it_is_written() {
    let with = |fault: &str| {
        broken(
            "[expect]",
            &format!("[[faults]]\nvhd_set_checkpoint_error = {fault}\n\n[expect]"),
        )
    };
    assert_eq!(with("{ vm = \"vm1\", error_code = 32770 }"), "Ok");
    assert_eq!(
        with("{ vm = \"vm1\", error_code = 4096 }"),
        "scenarios/broken.toml:33:55: faults[0].vhd_set_checkpoint_error.error_code: 4096 is \
         not an ErrorCode a VHD Set checkpoint fails with (32768, 32770, 32775)"
    );
    assert_eq!(
        with("{ vm = \"vm2\", error_code = 32768 }"),
        "scenarios/broken.toml:33:35: faults[0].vhd_set_checkpoint_error.vm: no VM named \"vm2\""
    );
    let old_host = BASE.replacen("version = \"2019\"", "version = \"2012 R2\"", 1).replacen(
        "[expect]",
        "[[faults]]\nvhd_set_checkpoint_error = { vm = \"vm1\", error_code = 32768 }\n\n[expect]",
        1,
    );
    let e = hvsim_sim::run::from_toml(&old_host, "scenarios/broken.toml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains(
            "faults[0].vhd_set_checkpoint_error.vm: VM \"vm1\" is on a host older than 2016: \
             it has no VHD Set"
        ),
        "{e}"
    );
}

/// R11, field failure 35: a live migration names a VM on a cluster node, another node of
/// that cluster, and a point of the job.
#[test]
fn live_migration_is_refused_where_it_is_written() {
    let clustered = BASE
        .replacen(
            "[[volumes]]",
            "[[hosts]]\nname = \"hv2\"\nversion = \"2019\"\n\n[cluster]\nname = \"clu1\"\nfunctional_level = \"2019\"\nnodes = [\"hv1\", \"hv2\"]\n\n[[volumes]]",
            1,
        )
        .replacen(
            "[expect]",
            "[[faults]]\nlive_migration = FAULT\n\n[expect]",
            1,
        );
    let with = |base: &str, fault: &str| match hvsim_sim::run::from_toml(
        &base.replacen("FAULT", fault, 1),
        "scenarios/broken.toml",
    ) {
        Ok(_) => "Ok".to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(with(&clustered, "{ vm = \"vm1\", to = \"hv2\" }"), "Ok");
    assert_eq!(
        with(&clustered, "{ vm = \"vm1\", to = \"hv1\" }"),
        "scenarios/broken.toml:42:37: faults[0].live_migration.to: \"hv1\" is not another node \
         of VM \"vm1\"'s cluster"
    );
    assert_eq!(
        with(
            &clustered,
            "{ vm = \"vm1\", to = \"hv2\", during_point = 2 }"
        ),
        "scenarios/broken.toml:42:59: faults[0].live_migration.during_point: point 2 is not \
         between 1 and the job's 1 recovery point(s)"
    );
    assert_eq!(
        with(&clustered, "{ vm = \"vm9\", to = \"hv2\" }"),
        "scenarios/broken.toml:42:25: faults[0].live_migration.vm: no VM named \"vm9\""
    );
    let standalone = BASE.replacen(
        "[expect]",
        "[[faults]]\nlive_migration = FAULT\n\n[expect]",
        1,
    );
    assert_eq!(
        with(&standalone, "{ vm = \"vm1\", to = \"hv1\" }"),
        "scenarios/broken.toml:33:25: faults[0].live_migration.vm: VM \"vm1\" is not on a \
         cluster node: it cannot be live-migrated"
    );
}

/// R12: a VM's replica role is one of the two sides of a Hyper-V Replica relationship.
#[test]
fn replica_role_is_refused_where_it_is_written() {
    assert_eq!(
        broken("generation = 2", "generation = 2\nreplica = \"primary\""),
        "Ok"
    );
    assert_eq!(
        broken("generation = 2", "generation = 2\nreplica = \"secondary\""),
        "scenarios/broken.toml:18:11: vms[0].replica: unknown replica role \"secondary\" \
         (expected one of primary, replica)"
    );
}

/// Field failure 38: a volume's coordinator is a node of its cluster, and only a CSV has one.
#[test]
fn csv_coordinator_is_refused_where_it_is_written() {
    assert_eq!(
        broken(
            "host = \"hv1\"\ncapacity",
            "host = \"hv1\"\ncoordinator = \"hv1\"\ncapacity"
        ),
        "scenarios/broken.toml:11:15: volumes[0].coordinator: only a Cluster Shared Volume has \
         a coordinator"
    );
}
