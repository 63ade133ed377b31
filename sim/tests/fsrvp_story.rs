//! The F4 library scenarios told as stories: the MS-FSRVP calls, their answers and the
//! agent's timers appear in the order MS-FSRVP and SPEC F4 give them.

mod library;

/// The story lines of a library scenario's run, which must pass.
fn story(name: &str) -> Vec<String> {
    library::told(name).story
}

/// Index of the first line at or after `from` containing every one of `parts`.
fn find(lines: &[String], from: usize, parts: &[&str]) -> usize {
    lines[from..]
        .iter()
        .position(|l| parts.iter().all(|p| l.contains(p)))
        .map(|i| from + i)
        .unwrap_or_else(|| {
            panic!(
                "no line with {parts:?} after line {from}:\n{}",
                lines[from..].join("\n")
            )
        })
}

/// The virtual time of a story line, in milliseconds (`  12.   1.706s  ...`).
fn at_ms(line: &str) -> u64 {
    let t = line
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.strip_suffix('s'))
        .unwrap_or_else(|| panic!("no time in {line}"));
    let (s, ms) = t.split_once('.').unwrap_or((t, "0"));
    s.parse::<u64>().unwrap() * 1000 + ms.parse::<u64>().unwrap()
}

/// Issue 9 item 2 (MS-FSRVP 3.1.4.5): the file server's own writer freezes for longer
/// than the commit's wait, which ends with the provider's 60 s timeout; the agent answers
/// FSSAGENT_E_TIMEOUT, puts the set back in Added with its 180 s timer, the provider's
/// AbortShadowCopySet succeeds, and the local VSS's late answer takes nothing.
#[test]
fn commit_timeout_returns_the_set_to_added_and_the_abort_succeeds() {
    let lines = story("f4-fsrvp-commit-timeout");
    let commit = find(
        &lines,
        0,
        &[
            "FssProvider@hv1 → FssAgent@fs1: CommitShadowCopySet",
            "waits_s=60",
        ],
    );
    let freeze = find(
        &lines,
        commit,
        &[
            "FileServerWriter@fs1/FSRM Writer: OnFreeze",
            "answers_after_s=90",
        ],
    );
    let ended = find(
        &lines,
        freeze,
        &[
            "FssAgent@fs1: FssAgentTimer",
            "wait_ended=CommitShadowCopySet",
            "commit=FSSAGENT_E_TIMEOUT",
        ],
    );
    // The wait ends with the provider's 60 s commit timeout, before the writer answers.
    assert_eq!(at_ms(&lines[ended]) - at_ms(&lines[commit]), 60_000);
    find(
        &lines,
        ended,
        &["FssAgent@fs1 → FssProvider@hv1", "hr=FSSAGENT_E_TIMEOUT"],
    );
    let late = find(
        &lines,
        ended,
        &["FileServerVss@fs1 → FssAgent@fs1: AsyncFinished", "late="],
    );
    assert!(at_ms(&lines[late]) - at_ms(&lines[freeze]) >= 90_000);
    let abort = find(
        &lines,
        ended,
        &["FssAgent@fs1: AbortShadowCopySet", "result=S_OK"],
    );
    find(
        &lines,
        abort,
        &["FssAgent@fs1 → FssProvider@hv1", "hr=S_OK"],
    );
    assert!(
        !lines.iter().any(|l| l.contains("FSRVP_E_BAD_STATE")),
        "{}",
        lines.join("\n")
    );
    // The 180 s timer started at the wait's end runs out with nothing left to delete.
    let expired = find(
        &lines,
        abort,
        &["message_sequence_timer=expired", "sets_deleted=0"],
    );
    assert_eq!(at_ms(&lines[expired]) - at_ms(&lines[ended]), 180_000);
}

/// Issue 9 item 1 (SPEC F4 phase mapping, MS-FSRVP 3.2.4.2): each MS-FSRVP call comes in
/// its host VSS provider phase, and RecoveryComplete before the requester reads.
#[test]
fn each_fsrvp_call_runs_in_its_vss_provider_phase() {
    let lines = story("f4-smb3-share-backup");
    let phases: [(&str, &[&str]); 6] = [
        (
            "BeginPrepareSnapshot",
            &[
                "IsPathSupported",
                "GetSupportedVersion",
                "SetContext",
                "StartShadowCopySet",
                "AddToShadowCopySet",
            ],
        ),
        ("EndPrepareSnapshots", &["PrepareShadowCopySet"]),
        ("CommitSnapshots", &["CommitShadowCopySet"]),
        (
            "PostCommitSnapshots",
            &["ExposeShadowCopySet", "GetShareMapping"],
        ),
        (
            "PostFinalCommitSnapshots",
            &["RecoveryCompleteShadowCopySet"],
        ),
        ("DeleteSnapshots", &["DeleteShareMapping"]),
    ];
    let calls: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (_, rest) = l.split_once("FssProvider@hv1 → FssAgent@fs1: ")?;
            Some((i, rest.split_whitespace().next()?))
        })
        .collect();
    let mut seen = 0;
    for (phase, expected) in phases {
        let start = find(
            &lines,
            0,
            &[&format!("HostVss@hv1 → FssProvider@hv1: {phase}")],
        );
        let end = find(
            &lines,
            start,
            &[&format!("ProviderReturned  call={phase}  hr=S_OK")],
        );
        let inside: Vec<&str> = calls
            .iter()
            .filter(|(i, _)| (start..end).contains(i))
            .map(|(_, c)| *c)
            .collect();
        assert_eq!(inside, expected, "{phase}");
        seen += inside.len();
    }
    assert_eq!(seen, calls.len(), "calls outside their phase: {calls:?}");
    let recovered = find(&lines, 0, &["RecoveryCompleteShadowCopySet"]);
    let read = find(&lines, 0, &["Requester: ReadBackup", r"\\fs1\vms@{"]);
    assert!(recovered < read);
}

/// Issue 9 item 1 (the server's timers bite when calls are late): requests reach the
/// agent 200 s apart, so SetContext's 180 s timer runs out before StartShadowCopySet,
/// which the agent then refuses (no context: FSRVP_E_BAD_STATE); BeginPrepareSnapshot
/// fails with it.
#[test]
fn a_slow_client_gets_the_message_sequence_timer_outcome() {
    let lines = story("f4-fsrvp-slow-client");
    let context = find(&lines, 0, &["FssAgent@fs1: SetContext", "result=S_OK"]);
    let expired = find(
        &lines,
        context,
        &[
            "FssAgent@fs1: FssAgentTimer",
            "message_sequence_timer=expired",
        ],
    );
    assert_eq!(at_ms(&lines[expired]) - at_ms(&lines[context]), 180_000);
    let start = find(
        &lines,
        expired,
        &[
            "FssAgent@fs1: StartShadowCopySet",
            "result=FSRVP_E_BAD_STATE",
        ],
    );
    // SetContext's answer (2 ms), then the 200 s late request (and its own 2 ms).
    assert_eq!(at_ms(&lines[start]) - at_ms(&lines[context]), 200_004);
    find(
        &lines,
        start,
        &[
            "ProviderReturned  call=BeginPrepareSnapshot  hr=VSS_E_UNEXPECTED_PROVIDER_ERROR",
            "StartShadowCopySet failed: FSRVP_E_BAD_STATE",
        ],
    );
}

/// Issue 9 §1.1, reference vss.md §8: the requester's GetSnapshotProperties answer names
/// the exposed `\\<server>\<share>@{GUID}` path GetShareMapping gave, and the read goes
/// to that same path.
#[test]
fn get_snapshot_properties_names_the_exposed_share_the_read_goes_to() {
    let lines = story("f4-smb3-share-backup");
    let mapped = find(&lines, 0, &["FssAgent@fs1 → FssProvider@hv1", "exposed="]);
    let path = lines[mapped]
        .split("exposed=")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .expect("a path")
        .to_string();
    assert!(
        path.starts_with(r"\\fs1\vms@{") && path.ends_with('}'),
        "{path}"
    );
    let props = find(
        &lines,
        mapped,
        &["HostVss@hv1 → Requester: AsyncFinished  call=GetSnapshotProperties"],
    );
    assert!(
        lines[props].contains(&format!("snapshots={path}")),
        "{}",
        lines[props]
    );
    let read = find(&lines, props, &["Requester: ReadBackup"]);
    assert!(
        lines[read].contains(&format!("on {path}")),
        "{}",
        lines[read]
    );
}

/// The lines of the host's provider phase `phase` on the FssProvider: from its call to
/// its successful return, checked to hold nothing of the host's set but the file share
/// provider, the agent and the file server's own VSS (the guest's writes go on).
fn phase(lines: &[String], from: usize, phase: &str) -> (usize, usize) {
    let start = find(
        lines,
        from,
        &[&format!("HostVss@hv1 → FssProvider@hv1: {phase}")],
    );
    let end = find(
        lines,
        start,
        &[
            "FssProvider@hv1 → HostVss@hv1: ProviderReturned",
            &format!("call={phase}  hr=S_OK"),
        ],
    );
    for l in lines[start + 1..end]
        .iter()
        .filter(|l| !l.contains("guest write step"))
    {
        assert!(
            l.contains("FssAgent@fs1") || l.contains("FileServer") || l.contains("FssProvider"),
            "{phase}: {l}"
        );
    }
    (start, end)
}

/// Finds each of `steps` (`to`, event) in order from `at`; returns the last line.
fn in_order(lines: &[String], mut at: usize, steps: &[(&str, &str)]) -> usize {
    for (to, event) in steps {
        at = find(lines, at, &[&format!("{to}{event}")]);
    }
    at
}

const WRITER: &str = "FileServerVss@fs1 → FileServerWriter@fs1/FSRM Writer: ";
const PROVIDER: &str = "FileServerVss@fs1 → FileServerProvider@fs1: ";

/// Issue 9 item 1 (MS-FSRVP 3.1.4.13, SPEC F4 phase mapping): inside the host's
/// EndPrepareSnapshots the agent's PrepareShadowCopySet asks the file server's own VSS to
/// prepare (its writer's events up to OnPrepareSnapshot, its provider's prepare calls)
/// and answers only once it has; no freeze or commit happens on the file server yet.
#[test]
fn prepare_waits_for_the_file_servers_own_vss_to_prepare() {
    let lines = story("f4-smb3-share-backup");
    let (start, end) = phase(&lines, 0, "EndPrepareSnapshots");
    let call = find(
        &lines,
        start,
        &[
            "FssProvider@hv1 → FssAgent@fs1: PrepareShadowCopySet",
            "waits_s=1800",
        ],
    );
    let asked = find(
        &lines,
        call,
        &[
            "FssAgent@fs1 → FileServerVss@fs1: PrepareForSnapshot",
            "volumes=fs1-E",
        ],
    );
    let last = in_order(
        &lines,
        asked,
        &[
            (WRITER, "OnIdentify"),
            (WRITER, "OnPrepareBackup"),
            (WRITER, "OnPrepareSnapshot"),
            (PROVIDER, "BeginPrepareSnapshot"),
            (PROVIDER, "EndPrepareSnapshots"),
        ],
    );
    let done = find(
        &lines,
        last,
        &[
            "FileServerVss@fs1 → FssAgent@fs1: AsyncFinished",
            "call=PrepareForSnapshot  hr=S_OK",
        ],
    );
    let answer = find(
        &lines,
        done,
        &["FssAgent@fs1 → FssProvider@hv1: FsrvpReturned", "hr=S_OK"],
    );
    assert!(answer < end);
    assert!(
        !lines[start..end]
            .iter()
            .any(|l| l.contains("OnFreeze") || l.contains("CommitSnapshots")),
        "{}",
        lines[start..end].join("\n")
    );
}

/// Issue 9 item 1 (MS-FSRVP 3.1.4.5, SPEC F4.5): inside the host's CommitSnapshots the
/// agent's CommitShadowCopySet goes on with the set its local VSS prepared: the writer's
/// Freeze to BackupComplete and the provider's commit calls in VSS order, and the agent
/// answers only once that set exists.
#[test]
fn commit_runs_the_file_servers_own_vss_in_vss_order() {
    let lines = story("f4-smb3-share-backup");
    let (start, end) = phase(&lines, 0, "CommitSnapshots");
    let call = find(
        &lines,
        start,
        &["FssProvider@hv1 → FssAgent@fs1: CommitShadowCopySet"],
    );
    let asked = find(
        &lines,
        call,
        &["FssAgent@fs1 → FileServerVss@fs1: DoSnapshotSet"],
    );
    let last = in_order(
        &lines,
        asked,
        &[
            (WRITER, "OnFreeze"),
            (PROVIDER, "PreCommitSnapshots"),
            (PROVIDER, "CommitSnapshots"),
            (PROVIDER, "PostCommitSnapshots"),
            (WRITER, "OnThaw"),
            (PROVIDER, "PreFinalCommitSnapshots"),
            (WRITER, "OnPostSnapshot"),
            (PROVIDER, "PostFinalCommitSnapshots"),
            (WRITER, "OnBackupComplete"),
        ],
    );
    // The prepared set goes on: nothing of the prepare is run again.
    assert!(
        !lines[start..end]
            .iter()
            .any(|l| l.contains("OnIdentify") || l.contains("PrepareSnapshot")),
        "{}",
        lines[start..end].join("\n")
    );
    let done = find(
        &lines,
        last,
        &[
            "FileServerVss@fs1 → FssAgent@fs1: AsyncFinished",
            "call=DoSnapshotSet  hr=S_OK",
        ],
    );
    let answer = find(
        &lines,
        done,
        &["FssAgent@fs1 → FssProvider@hv1: FsrvpReturned", "hr=S_OK"],
    );
    assert!(answer < end);
}

/// Issue 9 item 1 (MS-FSRVP 3.1.4.6, 3.1.4.9; SPEC F4.6-F4.9): inside the host's
/// PostCommitSnapshots the agent's ExposeShadowCopySet asks the file server's own VSS to
/// expose the shadow copy, which names the share; that name travels back in messages:
/// GetShareMapping's answer, the file share provider's hand-over to HostVss, the
/// GetSnapshotProperties answer, and the requester reads from it.
#[test]
fn the_exposed_share_name_travels_from_the_file_servers_vss_to_the_read() {
    let lines = story("f4-smb3-share-backup");
    let (start, end) = phase(&lines, 0, "PostCommitSnapshots");
    let call = find(
        &lines,
        start,
        &["FssProvider@hv1 → FssAgent@fs1: ExposeShadowCopySet"],
    );
    let asked = find(
        &lines,
        call,
        &[
            "FssAgent@fs1 → FileServerVss@fs1: ExposeSnapshot",
            "volumes=fs1-E",
        ],
    );
    let named = find(
        &lines,
        asked,
        &[
            "FileServerVss@fs1 → FssAgent@fs1: AsyncFinished",
            "call=ExposeSnapshot  hr=S_OK",
            "shares=vms@{",
        ],
    );
    let share = lines[named]
        .split("shares=")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .expect("a share name")
        .to_string();
    let path = format!(r"\\fs1\{share}");
    let answered = find(
        &lines,
        named,
        &["FssAgent@fs1 → FssProvider@hv1: FsrvpReturned", "hr=S_OK"],
    );
    let mapping = find(
        &lines,
        answered,
        &["FssProvider@hv1 → FssAgent@fs1: GetShareMapping"],
    );
    let mapped = find(
        &lines,
        mapping,
        &[
            "FssAgent@fs1 → FssProvider@hv1: FsrvpReturned",
            &format!("exposed={path}"),
        ],
    );
    let handed = find(
        &lines,
        mapped,
        &[
            "FssProvider@hv1 → HostVss@hv1: SnapshotProperties",
            &format!("snapshots={path}"),
        ],
    );
    // The hand-over and the provider's return are sent at one instant; the scheduler
    // may deliver either first. What matters is that VSS has the path before it answers.
    assert!(handed <= end + 1, "{}", lines[handed]);
    let props = find(
        &lines,
        handed,
        &[
            "HostVss@hv1 → Requester: AsyncFinished  call=GetSnapshotProperties",
            &format!("snapshots={path}"),
        ],
    );
    find(
        &lines,
        props,
        &["Requester: ReadBackup", &format!("on {path}")],
    );
}

/// Issue 9 item 1 (SPEC F4.8-F4.9): the requester opens the share path GetSnapshotProperties
/// answered, not the world's record of the shadow copy. Once the file share provider has
/// recorded the exposed shadow copy, the record is made to name another share and a
/// snapshot that does not exist; the backup still reads the answered
/// `\\fs1\vms@{GUID}` and holds the right bytes (I2).
#[test]
fn the_requester_reads_the_answered_path_not_the_worlds_record() {
    let s = library::load("f4-smb3-share-backup");
    let mut sched = library::start(&s);
    let recorded = |lab: &hvsim_sim::site::Site| {
        lab.shadows
            .get(&1)
            .is_some_and(|v| v.iter().any(|x| x.exposed.is_some()))
    };
    library::step_until(&mut sched, "no shadow copy share recorded", recorded);
    let lab = sched.world_mut();
    let record = lab.shadows.get_mut(&1).unwrap();
    let real = record[0].exposed.clone().unwrap();
    assert!(real.starts_with(r"\\fs1\vms@{"), "{real}");
    record[0].exposed = Some(r"\\fs1\vms@{00000000-0000-0000-0000-000000000000}".into());
    record[0].id = 9_999;
    sched.run_until_quiet(2_000_000).unwrap();
    let r = hvsim_sim::run::evaluate(&mut sched, &s, s.seed);
    assert!(r.passed(), "{r}");
    let i2 = r.invariants.iter().find(|c| c.id == "I2").unwrap();
    assert!(i2.ok, "{r}");
}

/// Issue 9 item 1 (MS-FSRVP 3.1.4.13): the file server's own writer takes longer to
/// prepare than the provider's 30 min PrepareShadowCopySet wait (the commit-timeout
/// scenario with its fault moved to PrepareShadowCopySet). The wait ends at the caller's
/// timeout with FSRVP_E_WAIT_TIMEOUT, the set stays Added with the 180 s timer, the host
/// fails with VSS_E_FSS_TIMEOUT and aborts; the local VSS's late answer takes nothing
/// and its prepared set is dropped (OnAbort), so no writer session stays open (I3).
#[test]
fn a_prepare_later_than_its_wait_times_out_and_the_late_set_is_dropped() {
    let path = library::dir().join("f4-fsrvp-commit-timeout.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // A light workload: the guest writes for the whole 30 min wait.
    let text = text
        .replace(
            r#"operation = "CommitShadowCopySet""#,
            r#"operation = "PrepareShadowCopySet""#,
        )
        .replace("rate = 30", "rate = 1");
    assert!(text.contains("PrepareShadowCopySet") && text.contains("rate = 1"));
    let s = std::rc::Rc::new(
        hvsim_sim::run::from_toml(&text, "f4-fsrvp-prepare-timeout.toml")
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let story = hvsim_sim::run::RunOptions {
        story: true,
        ..Default::default()
    };
    let out = hvsim_sim::run::run(std::rc::Rc::clone(&s), s.seed, story).unwrap();
    assert!(out.report.passed(), "{}", out.report);
    let lines = out.story;
    let call = find(
        &lines,
        0,
        &[
            "FssProvider@hv1 → FssAgent@fs1: PrepareShadowCopySet",
            "waits_s=1800",
        ],
    );
    let slow = find(
        &lines,
        call,
        &[
            "FileServerWriter@fs1/FSRM Writer: OnPrepareSnapshot",
            "answers_after_s=1900",
        ],
    );
    let ended = find(
        &lines,
        slow,
        &[
            "FssAgent@fs1: FssAgentTimer",
            "wait_ended=PrepareShadowCopySet",
            "prepare=FSRVP_E_WAIT_TIMEOUT",
        ],
    );
    assert_eq!(at_ms(&lines[ended]) - at_ms(&lines[call]), 1_800_000);
    find(
        &lines,
        ended,
        &[
            "ProviderReturned  call=EndPrepareSnapshots",
            "hr=VSS_E_FSS_TIMEOUT",
        ],
    );
    let abort = find(
        &lines,
        ended,
        &["FssAgent@fs1: AbortShadowCopySet", "result=S_OK"],
    );
    let late = find(
        &lines,
        abort,
        &[
            "FileServerVss@fs1 → FssAgent@fs1: AsyncFinished",
            "call=PrepareForSnapshot",
            "late=",
        ],
    );
    assert!(at_ms(&lines[late]) - at_ms(&lines[slow]) >= 1_900_000);
    find(
        &lines,
        late,
        &["FileServerVss@fs1 → FileServerWriter@fs1/FSRM Writer: OnAbort"],
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("FileServerVss@fs1 → FileServerWriter@fs1/FSRM Writer: OnFreeze")),
        "nothing frozen on the file server"
    );
}
