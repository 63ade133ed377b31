//! Linux guests end to end (issue 9 §1.5, SPEC R5, field failures 13, 16–18): the
//! operations the host sends through hv_snapshot, the auto-recovery a Linux guest does not
//! get, and what each hv_vss_daemon behaviour leaves in the guest.

mod library;

use hvsim_sim::scenario::{DaemonOp, DaemonState, Outcome, Scenario};

/// The hv_vss operations HvIc sent to the guest, in story order.
fn host_ops(story: &[String], vm: &str) -> Vec<String> {
    let from = format!("HvIc@{vm} → LinuxVssDaemon@{vm}: ");
    story
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find(&from)? + from.len()..];
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

fn position(story: &[String], what: &str) -> usize {
    story
        .iter()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in the story:\n{}", story.join("\n")))
}

const FULL_SET: [&str; 5] = [
    "VSS_OP_HOT_BACKUP",
    "VSS_OP_GET_DM_INFO",
    "VSS_OP_FREEZE",
    "VSS_OP_THAW",
    "VSS_OP_BU_COMPLETE",
];

#[test]
fn an_f2_linux_guest_gets_the_whole_operation_set_and_no_auto_recovery() {
    let out = library::told("r5-linux-daemon-file-consistent");
    let story = &out.story;
    assert_eq!(host_ops(story, "lnx01"), FULL_SET, "{}", story.join("\n"));
    // BU_COMPLETE only once the host's volume snapshot exists (SPEC F2 order note).
    let commit = position(story, "CommitSnapshots  volumes=hv1-D");
    let bu_complete = position(story, ": VSS_OP_BU_COMPLETE");
    assert!(
        commit < bu_complete,
        "BU_COMPLETE before the host's snapshot"
    );
    // R5: no auto-recovery checkpoint, no AUTO_RECOVER, and the report says why.
    assert!(
        story
            .iter()
            .all(|l| !l.contains("AutoRecovery.avhdx") && !l.contains("AUTO_RECOVER ")),
        "{}",
        story.join("\n")
    );
    assert!(story
        .iter()
        .any(|l| l.contains("auto_recovery=skipped for lnx01")));
    let vm = &out.report.vms[0];
    assert!(
        vm.note.contains("VSS_HBU_NO_AUTO_RECOVERY"),
        "{}",
        out.report
    );
    assert!(out.lab.vms[0].no_auto_recovery);
}

#[test]
fn an_f3_linux_guest_gets_bu_complete_right_after_thaw() {
    let out = library::told("f3-linux-fsfreeze-by-hand-data");
    assert_eq!(host_ops(&out.story, "lnx01"), FULL_SET);
    // The administrator's /srv gets EBUSY at FREEZE and is thawed by the daemon's THAW.
    let thaw = &out.story[position(&out.story, ": VSS_OP_THAW")];
    assert!(thaw.contains("FITHAW=/srv"), "{thaw}");
    let freeze = &out.story[position(&out.story, ": VSS_OP_FREEZE")];
    assert!(!freeze.contains("FIFREEZE=/srv"), "{freeze}");
    assert!(out.lab.vms[0].fs_frozen.is_empty());
    assert_eq!(
        out.report.vms[0].consistency,
        Some(hvsim_sim::scenario::Consistency::File)
    );
}

#[test]
fn the_syslog_deadlock_leaves_root_frozen_and_the_guest_writes_nothing_more() {
    let s = library::load("r5-linux-syslog-deadlock-root-frozen");
    let mut sched = library::start(&s);
    library::step_until(&mut sched, "/ is never frozen", |site| {
        site.vms[0].fs_frozen.iter().any(|m| m == "/")
    });
    let writes_at_freeze = sched.world().vms[0].oracle.completed_writes;
    while sched.step().expect("a step").is_some() {}
    let vm = &sched.world().vms[0];
    assert_eq!(vm.fs_frozen, ["/srv", "/"]);
    assert!(!vm.can_write());
    assert_eq!(
        vm.oracle.completed_writes, writes_at_freeze,
        "the guest wrote after / froze"
    );

    // The host's side: the FREEZE timer (900 s) fails the request, the production
    // checkpoint falls back to a crash-consistent, disk-only recovery checkpoint, and the
    // report names what is left frozen.
    let out = library::told("r5-linux-syslog-deadlock-root-frozen");
    let failed = &out.story[position(&out.story, "op=VSS_OP_FREEZE  status=HV_E_FAIL")];
    assert!(failed.contains(" 900.5"), "{failed}");
    assert!(out
        .story
        .iter()
        .any(|l| l.contains("FallbackToCrashConsistent")));
    assert_eq!(out.report.vms[0].frozen, ["/srv", "/"]);
    assert!(out.report.events.iter().any(|e| e.id == 10150));
    let i3 = out.report.invariants.iter().find(|c| c.id == "I3").unwrap();
    assert!(
        i3.ok && i3.message.contains("lnx01: /srv /"),
        "{}",
        i3.message
    );
}

/// Field failure 18: hv_vss_daemon died between FREEZE and THAW, and the kernel's timer
/// thaws nothing, so a real guest stays frozen. Where the scenario does not state it, I3
/// holds (the run left nothing a real host would not) and names the mounts.
#[test]
fn a_guest_a_dead_daemon_left_frozen_is_named_by_i3() {
    // The same run, but the scenario no longer states what the guest is left with.
    let mut s = (*library::load("r5-linux-daemon-exits-during-thaw-left-frozen")).clone();
    s.expect.vms[0].frozen_after.clear();
    let s = std::rc::Rc::new(s);
    let out = hvsim_sim::run::run(std::rc::Rc::clone(&s), s.seed, Default::default()).unwrap();
    let i3 = out.report.invariants.iter().find(|c| c.id == "I3").unwrap();
    assert!(i3.ok, "{}", out.report);
    assert!(
        i3.message.contains(
            "hv_vss_daemon froze and died before thawing, left frozen (field failure 18): \
             lnx02: /srv /"
        ),
        "{}",
        i3.message
    );
}

#[test]
fn a_slow_freeze_answer_is_refused_and_the_daemon_thaws() {
    let out = library::told("r5-linux-daemon-slow-freeze-reply");
    let late = &out.story[position(&out.story, "answer rejected (errno 22)")];
    assert!(late.contains("FITHAW=/"), "{late}");
    assert!(out.lab.vms[0].fs_frozen.is_empty());
    assert!(out.lab.vms[0].can_write());
}

#[test]
fn a_failing_freeze_is_undone_by_thaw_and_fails_an_f2_backup() {
    let out = library::told("r5-linux-freeze-fails-new-mount");
    assert_eq!(
        host_ops(&out.story, "lnx01"),
        [
            "VSS_OP_HOT_BACKUP",
            "VSS_OP_GET_DM_INFO",
            "VSS_OP_FREEZE",
            "VSS_OP_THAW"
        ]
    );
    assert_eq!(out.report.outcome, Outcome::Failure);
    assert!(out.lab.vms[0].fs_frozen.is_empty());
}

#[test]
fn without_a_daemon_the_host_stops_at_hot_backup() {
    let out = library::told("f3-linux-daemon-missing-production-only");
    assert_eq!(host_ops(&out.story, "lnx01"), ["VSS_OP_HOT_BACKUP"]);
    assert_eq!(out.report.outcome, Outcome::Failure);
    assert!(out.report.events.iter().any(|e| e.id == 10150));
}

const GUEST: &str = r#"name = "linux"
covers = ["R5"]

[[hosts]]
name = "hv1"
version = "2019"

[[volumes]]
name = "hv1-D"
host = "hv1"
capacity = "1 TiB"
free = "500 GiB"

[[vms]]
name = "lnx01"
host = "hv1"
generation = 2
config_version = "9.0"
disks = [{ file = "lnx01.vhdx", size = "40 GiB", volume = "hv1-D", volumes = [
    { mount = "/", size = "20 GiB", fs = "ext4", free = "10 GiB" },
    { mount = "/srv", size = "19 GiB", fs = "xfs", free = "10 GiB" },
] }]
guest = { os = "linux", vss_daemon = DAEMON }

[job]
kind = "full"
vms = ["lnx01"]

[expect]
outcome = "success"
"#;

fn guest(daemon: &str) -> Result<Scenario, String> {
    hvsim_sim::run::from_toml(&GUEST.replace("DAEMON", daemon), "scenarios/linux.toml")
        .map_err(|e| e.to_string())
}

#[test]
fn every_daemon_behaviour_is_selectable_and_the_old_names_keep_their_form() {
    let cases = [
        ("\"running\"", DaemonState::Running),
        ("\"missing\"", DaemonState::Missing),
        ("\"hanging\"", DaemonState::Hanging),
        ("\"syslog_deadlock\"", DaemonState::SyslogDeadlock),
        (
            "{ freeze_fails = { target = \"/srv\", errno = 5 } }",
            DaemonState::FreezeFails {
                target: "/srv".into(),
                errno: 5,
            },
        ),
        (
            "{ slow_reply = { op = \"THAW\", delay = \"40 s\" } }",
            DaemonState::SlowReply {
                op: DaemonOp::Thaw,
                delay: hvsim_sim::scenario::VirtualTime::from_secs(40),
            },
        ),
        (
            "{ exits_during = \"HOT_BACKUP\" }",
            DaemonState::ExitsDuring(DaemonOp::HotBackup),
        ),
        ("\"no_auto_recovery_lost\"", DaemonState::NoAutoRecoveryLost),
    ];
    for (text, want) in cases {
        let s = guest(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(s.vms[0].guest.vss_daemon, Some(want), "{text}");
        // The canonical form round-trips.
        let back = Scenario::from_canonical(&s.canonical()).expect("canonical");
        assert_eq!(back, s, "{text}");
    }
    // The names that existed before keep their canonical spelling (and digests).
    for old in ["running", "missing", "hanging"] {
        let s = guest(&format!("\"{old}\"")).unwrap();
        assert!(
            s.canonical().contains(&format!("\"vss_daemon\":\"{old}\"")),
            "{}",
            s.canonical()
        );
        assert!(!s.canonical().contains("frozen_by_admin"));
        assert!(!s.canonical().contains("frozen_after"));
    }
}

#[test]
fn a_bad_daemon_behaviour_is_refused_at_its_field_and_line() {
    let e = guest("\"sleeping\"").unwrap_err();
    assert!(e.starts_with("scenarios/linux.toml:"), "{e}");
    assert!(e.contains("vms[0].guest.vss_daemon"), "{e}");
    assert!(e.contains("sleeping"), "{e}");
    let e = guest("{ freeze_fails = { target = \"/data\", errno = 5 } }").unwrap_err();
    assert!(
        e.contains("vms[0].guest.vss_daemon.freeze_fails.target: no guest volume named \"/data\""),
        "{e}"
    );
    let e = guest("{ freeze_fails = { target = \"/srv\", errno = 0 } }").unwrap_err();
    assert!(
        e.contains("freeze_fails.errno: errno 0 is not an error number"),
        "{e}"
    );
    let e = guest("{ slow_reply = { op = \"FREEZE\", delay = \"0 s\" } }").unwrap_err();
    assert!(
        e.contains("slow_reply.delay: a slow reply needs a delay"),
        "{e}"
    );
    let e = guest("\"running\", frozen_by_admin = [\"/data\"]").unwrap_err();
    assert!(
        e.contains("vms[0].guest.frozen_by_admin[0]: no guest volume named \"/data\""),
        "{e}"
    );
}

#[test]
fn a_mismatched_integration_components_version_is_a_warning_not_an_offline_backup() {
    // Field failure 19, R1 corrected: event 4010 and "Degraded", the backup runs as usual.
    let out = library::told("r1-linux-ic-version-mismatch-degraded");
    let e = out
        .report
        .events
        .iter()
        .find(|e| e.id == 4010)
        .expect("4010");
    assert_eq!(e.host, "hv1");
    assert!(
        out.report.vms[0].note.contains("Degraded"),
        "{}",
        out.report
    );

    // A Windows guest with 2012 components on a 2012 R2 host stays online too.
    use hvsim_sim::plan::{plan, Method};
    let mut s = (*library::load("f2-online-backup-checkpoint")).clone();
    let before = plan(&s, 0).method;
    s.vms[0].integration_services.version = Some(hvsim_sim::scenario::HyperVVersion::V2012);
    assert_eq!(before, Method::GuestVss);
    assert_eq!(plan(&s, 0).method, Method::GuestVss);
    assert!(plan(&s, 0).reason.contains("event 4010"));
}

#[test]
fn a_guest_whose_answer_lost_no_auto_recovery_gets_auto_recover() {
    // Reference §8: without VSS_HBU_NO_AUTO_RECOVERY the host takes the auto-recovery
    // checkpoint and sends AUTO_RECOVER after its snapshot, before BU_COMPLETE.
    let out = library::told("r5-linux-hot-backup-flag-lost-auto-recover");
    assert_eq!(
        host_ops(&out.story, "lnx01"),
        [
            "VSS_OP_HOT_BACKUP",
            "VSS_OP_GET_DM_INFO",
            "VSS_OP_FREEZE",
            "VSS_OP_THAW",
            "VSS_OP_AUTO_RECOVER",
            "VSS_OP_BU_COMPLETE"
        ]
    );
    assert!(out
        .story
        .iter()
        .any(|l| l.contains("auto_recovery=lnx01-AutoRecovery.avhdx")));
    assert!(
        position(&out.story, "CommitSnapshots  volumes=hv1-D")
            < position(&out.story, ": VSS_OP_AUTO_RECOVER")
    );
    assert!(!out.lab.vms[0].no_auto_recovery);
}

#[test]
fn root_frozen_by_hand_stops_the_host_at_hot_backup() {
    // Field failure 13: with `/` already frozen by the administrator the daemon blocks
    // logging HOT_BACKUP; the host's 30 s wait fails it and no FREEZE is ever sent.
    let out = library::told("f3-linux-fsfreeze-by-hand-root");
    assert_eq!(host_ops(&out.story, "lnx01"), ["VSS_OP_HOT_BACKUP"]);
    let failed = &out.story[position(&out.story, "op=VSS_OP_HOT_BACKUP  status=HV_E_FAIL")];
    assert!(failed.contains(" 30.5"), "{failed}");
    assert_eq!(out.report.vms[0].frozen, ["/"]);
    // Frozen since the guest booted: no guest write completes during the whole run.
    let s = library::load("f3-linux-fsfreeze-by-hand-root");
    let mut sched = library::start(&s);
    library::step_until(&mut sched, "/ is never frozen", |site| {
        site.vms[0].fs_frozen == ["/"]
    });
    let at_boot = sched.world().vms[0].oracle.completed_writes;
    while sched.step().expect("a step").is_some() {}
    assert_eq!(sched.world().vms[0].oracle.completed_writes, at_boot);
}
