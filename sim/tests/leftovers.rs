//! A VM's starting state left by an earlier failed backup (field failures 11 and 22): the
//! files are real AVHDX files, and the next backup meets them as a real host does.

mod library;

#[test]
fn ff22_a_lingering_recovery_checkpoint_is_merged_by_the_next_backup() {
    let s = library::load("f2-lingering-recovery-checkpoint-merged");
    let lingering = "disk_1_A1C3FDA5-5DFE-4001-A6D7-EBE18195A85C.avhdx";
    let mut sched = library::start(&s);
    {
        let d = &sched.world().lab.vms[0].disks[0];
        assert_eq!(
            d.chain.files,
            ["disk_1.vhdx", lingering],
            "the VM runs on it"
        );
        assert!(d.chain.volume.exists(lingering));
    }
    while sched.step().expect("a step").is_some() {}
    let out = library::told("f2-lingering-recovery-checkpoint-merged");
    let merged: Vec<&String> = out
        .story
        .iter()
        .filter(|l| l.contains("MergeStep  merged="))
        .collect();
    assert_eq!(merged.len(), 2, "{merged:?}");
    assert!(
        merged[1].ends_with(&format!("merged={lingering}")),
        "{merged:?}"
    );
    assert!(
        out.report.files_left.is_empty(),
        "{:?}",
        out.report.files_left
    );
    let d = &sched.world().lab.vms[0].disks[0];
    assert_eq!(d.chain.files, ["disk_1.vhdx"]);
    assert!(!d.chain.volume.exists(lingering));
}

#[test]
fn an_unknown_leftover_is_refused_at_its_place_in_the_file() {
    let path = library::dir().join("f2-leftover-auto-recovery-file-exists.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let bad = text.replace(
        "leftovers = [\"auto_recovery\"]",
        "leftovers = [\"autorecovery\"]",
    );
    assert_ne!(bad, text);
    let line = 1 + bad
        .lines()
        .position(|l| l.starts_with("leftovers"))
        .unwrap();
    let e = hvsim_sim::scenario::Scenario::from_toml(&bad, "ff11.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("ff11.toml:{line}:")), "{e}");
    assert!(e.contains("leftovers") && e.contains("autorecovery"), "{e}");
    assert!(e.contains("auto_recovery"), "names the known ones: {e}");
}
