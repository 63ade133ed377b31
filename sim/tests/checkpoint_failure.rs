//! Vmms cannot create a checkpoint's files (field failures 26, 27): the fault's code
//! reaches the requester through the guest's failed commit and the Hyper-V writer's
//! OnPrepareSnapshot, before any volume snapshot; nothing is left behind.

mod library;

use hvsim_sim::scenario::{Hresult, Scenario};

fn check(name: &str, code: Hresult, hex: &str) {
    let out = library::told(name);
    let r = &out.report;
    assert_eq!(r.code, Some(code), "{r}");
    assert!(
        r.failure.as_deref().is_some_and(
            |f| f.contains(hex) && f.contains("cannot create the checkpoint of disk_1.vhdx")
        ),
        "{r}"
    );
    assert!(r.files_left.is_empty(), "{:?}", r.files_left);
    assert!(!out
        .story
        .iter()
        .any(|l| l.contains("HostProvider@hv1: CommitSnapshots")));
    assert!(r.events.iter().any(|e| e.id == 10150));
}

#[test]
fn ff26_checkpoint_storage_missing_fails_with_0x80070002() {
    check(
        "f2-checkpoint-storage-missing",
        Hresult::ErrorFileNotFound,
        "0x80070002",
    );
}

#[test]
fn ff27_a_locked_avhdx_fails_with_0x80070020() {
    check(
        "f2-avhdx-locked-after-power-loss",
        Hresult::ErrorSharingViolation,
        "0x80070020",
    );
}

#[test]
fn a_checkpoint_failure_with_another_code_is_refused_where_it_is_written() {
    let path = library::dir().join("f2-checkpoint-storage-missing.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let bad = text.replacen(
        "code = \"ERROR_FILE_NOT_FOUND\" }",
        "code = \"E_ACCESSDENIED\" }",
        1,
    );
    assert_ne!(bad, text);
    let line = 1 + bad
        .lines()
        .position(|l| l.starts_with("checkpoint_failure"))
        .unwrap();
    let e = Scenario::from_toml(&bad, "c.toml").unwrap_err().to_string();
    assert!(e.starts_with(&format!("c.toml:{line}:")), "{e}");
    assert!(
        e.contains("faults[0].checkpoint_failure.code")
            && e.contains("ERROR_FILE_NOT_FOUND or ERROR_SHARING_VIOLATION"),
        "{e}"
    );
}
