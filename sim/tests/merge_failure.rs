//! Background merge failures (field failures 24, 25): Vmms' merge of the backup
//! checkpoint fails with the fault's code, Hyper-V-VMMS 19100 names it, the backup made
//! before it stands, the AVHDX stays on the VM's chain and holds the writes made since.

mod library;

use hvsim_sim::scenario::Scenario;

fn check(name: &str, hex: &str) {
    let out = library::told(name);
    let r = &out.report;
    let ev = r
        .events
        .iter()
        .find(|e| e.id == 19100)
        .unwrap_or_else(|| panic!("no 19100: {r}"));
    assert!(
        ev.text.contains("virtual machine 'app01'") && ev.text.contains(hex),
        "{}",
        ev.text
    );
    assert_eq!(r.files_left.len(), 1, "{:?}", r.files_left);
    assert!(r.files_left[0].starts_with("hv1-D:disk_1_") && r.files_left[0].ends_with(".avhdx"));
    // The writer's BackupComplete stands: the merge is VMMS' background work.
    assert!(out.story.iter().any(|l| l
        .contains("event=OnBackupComplete  state=VSS_WS_STABLE  hr=S_OK")
        && l.contains("HyperVWriter")));
}

#[test]
fn ff25_merge_fails_on_permissions_with_19100_and_0x80070005() {
    check("f2-merge-fails-access-denied", "0x80070005");
}

#[test]
fn ff24_merge_fails_with_replica_at_once_with_19100_and_0x80070299() {
    check("f2-merge-fails-replica-at-once", "0x80070299");
}

#[test]
fn a_merge_failure_with_another_code_or_vm_is_refused_where_it_is_written() {
    let path = library::dir().join("f2-merge-fails-access-denied.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("merge_failure"))
        .unwrap();
    for (bad, field, says) in [
        (
            text.replace("code = \"E_ACCESSDENIED\"", "code = \"VSS_E_BAD_STATE\""),
            "faults[0].merge_failure.code",
            "E_ACCESSDENIED or ERROR_FILE_SYSTEM_LIMITATION",
        ),
        (
            text.replace("vm = \"app01\", code", "vm = \"app02\", code"),
            "faults[0].merge_failure.vm",
            "app02",
        ),
    ] {
        let e = Scenario::from_toml(&bad, "m.toml").unwrap_err().to_string();
        assert!(e.starts_with(&format!("m.toml:{line}:")), "{e}");
        assert!(e.contains(field) && e.contains(says), "{e}");
    }
}
