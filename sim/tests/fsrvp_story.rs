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

/// Issue 9 item 1 (MS-FSRVP 3.1.4.5, SPEC F4.5): inside the host's CommitSnapshots the
/// agent's CommitShadowCopySet runs the file server's own VSS: its writer's events and
/// its provider's calls in VSS order, the provider's commit between the writer's Freeze
/// and Thaw, and the agent answers only once that set exists.
#[test]
fn commit_runs_the_file_servers_own_vss_in_vss_order() {
    let lines = story("f4-smb3-share-backup");
    let host_commit = find(
        &lines,
        0,
        &["HostVss@hv1 → FssProvider@hv1: CommitSnapshots"],
    );
    let mut at = find(
        &lines,
        host_commit,
        &["FssProvider@hv1 → FssAgent@fs1: CommitShadowCopySet"],
    );
    at = find(
        &lines,
        at,
        &["FssAgent@fs1 → FileServerVss@fs1: DoSnapshotSet"],
    );
    let writer = "FileServerVss@fs1 → FileServerWriter@fs1/FSRM Writer: ";
    let provider = "FileServerVss@fs1 → FileServerProvider@fs1: ";
    let sequence = [
        (writer, "OnIdentify"),
        (writer, "OnPrepareBackup"),
        (writer, "OnPrepareSnapshot"),
        (provider, "BeginPrepareSnapshot"),
        (provider, "EndPrepareSnapshots"),
        (writer, "OnFreeze"),
        (provider, "PreCommitSnapshots"),
        (provider, "CommitSnapshots"),
        (provider, "PostCommitSnapshots"),
        (writer, "OnThaw"),
        (provider, "PreFinalCommitSnapshots"),
        (writer, "OnPostSnapshot"),
        (provider, "PostFinalCommitSnapshots"),
        (writer, "OnBackupComplete"),
    ];
    for (to, event) in sequence {
        at = find(&lines, at, &[&format!("{to}{event}")]);
    }
    let done = find(
        &lines,
        at,
        &["FileServerVss@fs1 → FssAgent@fs1: AsyncFinished", "hr=S_OK"],
    );
    let answer = find(
        &lines,
        done,
        &["FssAgent@fs1 → FssProvider@hv1: FsrvpReturned", "hr=S_OK"],
    );
    let returned = find(
        &lines,
        answer,
        &[
            "FssProvider@hv1 → HostVss@hv1: ProviderReturned",
            "call=CommitSnapshots",
        ],
    );
    // Nothing of the host's set happens between its CommitSnapshots and its return but
    // the file server's commit (the guest's own writes go on).
    for l in lines[host_commit + 1..returned]
        .iter()
        .filter(|l| !l.contains("guest write step"))
    {
        assert!(
            l.contains("FssAgent@fs1") || l.contains("FileServer") || l.contains("FssProvider"),
            "{l}"
        );
    }
}
