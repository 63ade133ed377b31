//! FSRVP against real engine volumes (F4.4–F4.10, vss.md §5).

use super::agent::{
    TIMER_ADD_US, TIMER_COMMIT_US, TIMER_EXPOSE_US, TIMER_FAILED_WAIT_US,
    TIMER_GET_SHARE_MAPPING_US, TIMER_PREPARE_US, TIMER_SET_CONTEXT_US,
};
use super::client::{
    COMMIT_TIMEOUT_MS, EXPOSE_TIMEOUT_MS, HOST_BACKUP_CONTEXT, PREPARE_TIMEOUT_MS,
};
use super::codes::*;
use super::*;
use hvsim_engine::volume::Volume;
use hvsim_engine::{GuidGen, Storage};
use uuid::Uuid;

const SEC: u64 = 1_000_000;
const VMS: &str = r"\\fs1\VMs";
const DATA: &str = r"\\fs1\Data";
const OTHER: &str = r"\\fs1\Other";

/// File server fs1: shares VMs and Data on volume D (VMs holds vm1.vhdx), Other on E
/// (holding vm2.vhdx).
fn setup() -> (FssAgent, Volume, Volume) {
    let d = Volume::new("fs1-D", 1 << 20);
    let e = Volume::new("fs1-E", 1 << 20);
    d.create("vm1.vhdx")
        .unwrap()
        .write_at(&[0xAA; 40_000], 0)
        .unwrap();
    e.create("vm2.vhdx")
        .unwrap()
        .write_at(&[0x11; 20_000], 0)
        .unwrap();
    let agent = FssAgent::new(
        "fs1",
        vec![
            ("VMs".into(), d.clone()),
            ("Data".into(), d.clone()),
            ("Other".into(), e.clone()),
        ],
        GuidGen::seeded(7),
    );
    (agent, d, e)
}

/// Runs the client against the agent until it stops asking; each request arrives 1 ms
/// after the previous answer and is answered at once, or, for an unresponsive operation,
/// the answer reaches the client only after its timeout.
fn drive(
    client: &mut FssClient,
    agent: &mut FssAgent,
    now: &mut u64,
    log: &mut Vec<FsrvpCall>,
) -> ClientStatus {
    while let Some(call) = client.next_call() {
        *now += 1000;
        log.push(call.clone());
        let delay = agent.reply_delay_us(&call);
        let r = agent.call(*now, true, call);
        *now += delay;
        let st = client.on_reply(r);
        if st != ClientStatus::Continue {
            return st;
        }
    }
    client.status()
}

fn ok(agent: &mut FssAgent, now: u64, call: FsrvpCall) -> FsrvpReply {
    let name = call.name();
    agent
        .call(now, true, call)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn err(agent: &mut FssAgent, now: u64, call: FsrvpCall) -> u32 {
    match agent.call(now, true, call) {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e.code(),
    }
}

fn start(agent: &mut FssAgent, now: u64) -> Uuid {
    ok(
        agent,
        now,
        FsrvpCall::SetContext {
            context: HOST_BACKUP_CONTEXT,
        },
    );
    match ok(
        agent,
        now,
        FsrvpCall::StartShadowCopySet {
            client_set_id: Uuid::nil(),
        },
    ) {
        FsrvpReply::SetId(id) => id,
        r => panic!("{r:?}"),
    }
}

fn add(agent: &mut FssAgent, now: u64, set_id: Uuid, share: &str) -> Uuid {
    match ok(
        agent,
        now,
        FsrvpCall::AddToShadowCopySet {
            client_shadow_copy_id: Uuid::nil(),
            set_id,
            share_path: share.into(),
        },
    ) {
        FsrvpReply::ShadowCopyId(id) => id,
        r => panic!("{r:?}"),
    }
}

fn commit(set_id: Uuid) -> FsrvpCall {
    FsrvpCall::CommitShadowCopySet {
        set_id,
        timeout_ms: COMMIT_TIMEOUT_MS,
    }
}
fn expose(set_id: Uuid) -> FsrvpCall {
    FsrvpCall::ExposeShadowCopySet {
        set_id,
        timeout_ms: EXPOSE_TIMEOUT_MS,
    }
}
fn prepare(set_id: Uuid) -> FsrvpCall {
    FsrvpCall::PrepareShadowCopySet {
        set_id,
        timeout_ms: PREPARE_TIMEOUT_MS,
    }
}
fn mapping(set_id: Uuid, shadow_copy_id: Uuid, share: &str, level: u32) -> FsrvpCall {
    FsrvpCall::GetShareMapping {
        shadow_copy_id,
        set_id,
        share_path: share.into(),
        level,
    }
}
fn delete(set_id: Uuid, shadow_copy_id: Uuid, share: &str) -> FsrvpCall {
    FsrvpCall::DeleteShareMapping {
        set_id,
        shadow_copy_id,
        share_path: share.into(),
    }
}

/// A set with VMs (volume D) and Other (volume E), committed at `now`.
fn committed(agent: &mut FssAgent, now: u64) -> (Uuid, Uuid, Uuid) {
    let set = start(agent, now);
    let a = add(agent, now, set, VMS);
    let b = add(agent, now, set, OTHER);
    ok(agent, now, prepare(set));
    ok(agent, now, commit(set));
    (set, a, b)
}

#[test]
fn happy_path_exposes_the_snapshot_instant_and_cleanup_leaves_nothing() {
    let (mut agent, d, e) = setup();
    let mut client = FssClient::new(vec![VMS.into(), OTHER.into()]);
    let (mut now, mut log) = (10 * SEC, Vec::new());
    let ClientStatus::Done { mappings } = drive(&mut client, &mut agent, &mut now, &mut log) else {
        panic!("{:?}", client.status());
    };
    let names: Vec<&str> = log.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "IsPathSupported",
            "IsPathSupported",
            "GetSupportedVersion",
            "SetContext",
            "StartShadowCopySet",
            "AddToShadowCopySet",
            "AddToShadowCopySet",
            "PrepareShadowCopySet",
            "CommitShadowCopySet",
            "ExposeShadowCopySet",
            "GetShareMapping",
            "GetShareMapping",
        ]
    );
    assert_eq!(client.owner_machine_name(), Some("fs1"));
    let set = client.set_id().unwrap();
    assert_eq!(agent.set_state(set), Some(SetState::Exposed));
    // The last GetShareMapping restarted the timer: 30 min for the backup's reads.
    assert_eq!(
        agent.next_deadline(),
        Some(now + TIMER_GET_SHARE_MAPPING_US)
    );
    assert_eq!(mappings.len(), 2);
    let sc = client.shadow_copy_ids().to_vec();
    let guid = sc[0].hyphenated().to_string().to_uppercase();
    assert_eq!(mappings[0].shadow_copy_set_id, set);
    assert_eq!(mappings[0].shadow_copy_id, sc[0]);
    assert_eq!(mappings[0].share_name_unc, VMS);
    assert_eq!(
        mappings[0].shadow_copy_share_name,
        format!(r"\\fs1\VMs@{{{guid}}}")
    );
    assert_eq!(mappings[1].share_name_unc, OTHER);
    // Committed at the time of the commit call (the 9th, 1 ms apart).
    assert_eq!(mappings[0].creation_timestamp, 10 * SEC + 9 * 1000);

    // The backup reads the exposed share while the VM keeps writing to the live one.
    d.open("vm1.vhdx")
        .unwrap()
        .write_at(&[0xBB; 100], 16_384)
        .unwrap();
    e.remove("vm2.vhdx").unwrap();
    let shadow = d.exposed(&format!("VMs@{{{guid}}}")).expect("exposed");
    assert_eq!(shadow.contents("vm1.vhdx").unwrap(), vec![0xAA; 40_000]);
    assert_eq!(d.contents("vm1.vhdx").unwrap()[16_384..16_484], [0xBB; 100]);
    let shadow_e = e.exposed(&exposed_name("Other", sc[1])).expect("exposed");
    assert_eq!(shadow_e.contents("vm2.vhdx").unwrap(), vec![0x11; 20_000]);
    // Auto-recovery context: writable until RecoveryComplete.
    assert!(shadow.is_writable().unwrap());
    assert_eq!(agent.leftovers().len(), 4, "{:?}", agent.leftovers());

    client.begin_cleanup();
    let call = client.next_call().unwrap();
    assert_eq!(
        call,
        FsrvpCall::RecoveryCompleteShadowCopySet { set_id: set }
    );
    assert_eq!(
        client.on_reply(agent.call(now, true, call)),
        ClientStatus::Continue
    );
    assert!(!shadow.is_writable().unwrap());
    assert_eq!(agent.next_deadline(), None);
    let st = drive(&mut client, &mut agent, &mut now, &mut log);
    assert_eq!(st, ClientStatus::CleanedUp);
    assert_eq!(
        log.iter()
            .filter(|c| c.name() == "DeleteShareMapping")
            .count(),
        2
    );
    assert_eq!(agent.leftovers(), Vec::<String>::new());
    assert!(d.snapshots().is_empty() && e.snapshots().is_empty());
    assert!(d.exposed(&format!("VMs@{{{guid}}}")).is_none());
    assert!(agent.set_ids().is_empty());
}

#[test]
fn client_sends_the_provider_limits_and_the_backup_context() {
    let (mut agent, _, _) = setup();
    let mut client = FssClient::new(vec![VMS.into()]);
    let (mut now, mut log) = (0, Vec::new());
    drive(&mut client, &mut agent, &mut now, &mut log);
    let find = |n: &str| log.iter().find(|c| c.name() == n).unwrap().clone();
    assert_eq!(
        find("SetContext"),
        FsrvpCall::SetContext {
            context: 0x0040_0000
        }
    );
    assert_eq!(find("PrepareShadowCopySet").timeout_ms(), Some(1_800_000));
    assert_eq!(find("CommitShadowCopySet").timeout_ms(), Some(60_000));
    assert_eq!(find("ExposeShadowCopySet").timeout_ms(), Some(1_800_000));
}

#[test]
fn opnums_and_codes_are_the_protocol_values() {
    let s = Uuid::nil();
    assert_eq!(FsrvpCall::GetSupportedVersion.opnum(), 0);
    assert_eq!(FsrvpCall::SetContext { context: 0 }.opnum(), 1);
    assert_eq!(commit(s).opnum(), 4);
    assert_eq!(expose(s).opnum(), 5);
    assert_eq!(FsrvpCall::AbortShadowCopySet { set_id: s }.opnum(), 7);
    assert_eq!(mapping(s, s, VMS, 1).opnum(), 10);
    assert_eq!(delete(s, s, VMS).opnum(), 11);
    assert_eq!(prepare(s).opnum(), 12);
    let table: Vec<(&str, u32)> = FsrvpError::ALL
        .iter()
        .map(|e| (e.name(), e.code()))
        .collect();
    assert_eq!(
        table,
        [
            ("FSRVP_E_BAD_STATE", 0x80042301),
            ("FSRVP_E_SHADOW_COPY_SET_IN_PROGRESS", 0x80042316),
            ("FSRVP_E_NOT_SUPPORTED", 0x8004230C),
            ("FSRVP_E_WAIT_TIMEOUT", 0x00000102),
            ("FSRVP_E_WAIT_FAILED", 0xFFFFFFFF),
            ("FSRVP_E_OBJECT_ALREADY_EXISTS", 0x8004230D),
            ("FSRVP_E_OBJECT_NOT_FOUND", 0x80042308),
            ("FSRVP_E_UNSUPPORTED_CONTEXT", 0x8004231B),
            ("FSRVP_E_SHADOWCOPYSET_ID_MISMATCH", 0x80042501),
            ("FSSAGENT_E_TIMEOUT", 0x80042500),
            ("E_ACCESSDENIED", 0x80070005),
            ("E_INVALIDARG", 0x80070057),
        ]
    );
    assert_eq!(FsrvpError::WaitTimeout.provider_hresult(), 0x80042417);
    assert_eq!(FsrvpError::BadState.provider_hresult(), 0x80042301);
}

#[test]
fn get_supported_version_is_version_1() {
    let (mut agent, _, _) = setup();
    assert_eq!(
        ok(&mut agent, 0, FsrvpCall::GetSupportedVersion),
        FsrvpReply::Version { min: 1, max: 1 }
    );
}

#[test]
fn only_backup_operators_may_call() {
    let (mut agent, _, _) = setup();
    let r = agent.call(0, false, FsrvpCall::GetSupportedVersion);
    assert_eq!(r.unwrap_err().code(), 0x80070005);
    let r = agent.call(0, false, FsrvpCall::SetContext { context: 0 });
    assert_eq!(r.unwrap_err().code(), 0x80070005);
    assert!(!agent.context_set());
}

#[test]
fn set_context_rejects_what_is_not_a_context() {
    let (mut agent, _, _) = setup();
    assert_eq!(
        err(&mut agent, 0, FsrvpCall::SetContext { context: 0x5 }),
        0x8004231B
    );
    let both = ATTR_NO_AUTO_RECOVERY | ATTR_AUTO_RECOVERY;
    assert_eq!(
        err(&mut agent, 0, FsrvpCall::SetContext { context: both }),
        0x8004231B
    );
    assert!(!agent.context_set());
    for c in [0x0, 0x9, 0x10, 0x19, 0x0040_0000, 0x0040_0010] {
        ok(&mut agent, 0, FsrvpCall::SetContext { context: c });
        assert_eq!(agent.context(), c);
    }
    assert!(agent.context_set());
    assert_eq!(agent.next_deadline(), Some(TIMER_SET_CONTEXT_US));
}

#[test]
fn start_needs_a_context() {
    let (mut agent, _, _) = setup();
    let c = FsrvpCall::StartShadowCopySet {
        client_set_id: Uuid::nil(),
    };
    assert_eq!(err(&mut agent, 0, c), 0x80042301);
}

#[test]
fn start_while_a_set_is_not_recovered_is_in_progress() {
    let (mut agent, _, _) = setup();
    let (set, a, b) = committed(&mut agent, 0);
    let c = FsrvpCall::StartShadowCopySet {
        client_set_id: Uuid::nil(),
    };
    assert_eq!(err(&mut agent, 0, c.clone()), 0x80042316);
    ok(&mut agent, 0, expose(set));
    assert_eq!(err(&mut agent, 0, c.clone()), 0x80042316);
    ok(
        &mut agent,
        0,
        FsrvpCall::RecoveryCompleteShadowCopySet { set_id: set },
    );
    assert!(matches!(ok(&mut agent, 0, c), FsrvpReply::SetId(id) if id != set));
    // The recovered set still holds its mappings.
    ok(&mut agent, 0, delete(set, a, VMS));
    ok(&mut agent, 0, delete(set, b, OTHER));
}

#[test]
fn add_checks_state_share_and_volume() {
    let (mut agent, _, _) = setup();
    let set = start(&mut agent, 0);
    let addc = |set_id, share: &str| FsrvpCall::AddToShadowCopySet {
        client_shadow_copy_id: Uuid::nil(),
        set_id,
        share_path: share.into(),
    };
    // Unknown set.
    assert_eq!(
        err(&mut agent, 0, addc(Uuid::from_u128(5), VMS)),
        0x80042501
    );
    // A share the server does not have; a path of another server.
    assert_eq!(err(&mut agent, 0, addc(set, r"\\fs1\nope")), 0x80070057);
    assert_eq!(err(&mut agent, 0, addc(set, r"\\fs2\VMs")), 0x80070057);
    assert_eq!(agent.set_state(set), Some(SetState::Started));
    add(&mut agent, 0, set, VMS);
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert_eq!(agent.next_deadline(), Some(TIMER_ADD_US));
    // The same share twice, and another share on the same volume.
    assert_eq!(err(&mut agent, 0, addc(set, VMS)), 0x8004230D);
    assert_eq!(err(&mut agent, 0, addc(set, r"\\FS1\vms\")), 0x8004230D);
    assert_eq!(err(&mut agent, 0, addc(set, DATA)), 0x8004230D);
    add(&mut agent, 0, set, OTHER);
    ok(&mut agent, 0, commit(set));
    // Not once committed.
    assert_eq!(err(&mut agent, 0, addc(set, DATA)), 0x80042301);
}

#[test]
fn prepare_commit_expose_only_in_sequence() {
    let (mut agent, d, _) = setup();
    let set = start(&mut agent, 0);
    assert_eq!(err(&mut agent, 0, prepare(set)), 0x80042301);
    assert_eq!(err(&mut agent, 0, commit(set)), 0x80042301);
    assert_eq!(err(&mut agent, 0, expose(set)), 0x80042301);
    add(&mut agent, 0, set, VMS);
    assert_eq!(err(&mut agent, 0, expose(set)), 0x80042301);
    ok(&mut agent, 0, prepare(set));
    assert!(d.snapshots().is_empty());
    ok(&mut agent, 5 * SEC, commit(set));
    assert_eq!(d.snapshots().len(), 1);
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    assert_eq!(agent.next_deadline(), Some(5 * SEC + TIMER_COMMIT_US));
    assert_eq!(err(&mut agent, 5 * SEC, prepare(set)), 0x80042301);
    assert_eq!(err(&mut agent, 5 * SEC, commit(set)), 0x80042301);
    ok(&mut agent, 5 * SEC, expose(set));
    assert_eq!(err(&mut agent, 5 * SEC, expose(set)), 0x80042301);
    assert_eq!(d.snapshots().len(), 1);
}

#[test]
fn get_share_mapping_only_when_exposed() {
    let (mut agent, _, _) = setup();
    let (set, a, b) = committed(&mut agent, 0);
    assert_eq!(err(&mut agent, 0, mapping(set, a, VMS, 1)), 0x80042301);
    ok(&mut agent, 0, expose(set));
    assert!(matches!(
        ok(&mut agent, 0, mapping(set, a, VMS, 1)),
        FsrvpReply::ShareMapping(_)
    ));
    assert_eq!(err(&mut agent, 0, mapping(set, a, VMS, 2)), 0x80070057);
    assert_eq!(
        err(&mut agent, 0, mapping(set, Uuid::from_u128(9), VMS, 1)),
        0x80042308
    );
    assert_eq!(err(&mut agent, 0, mapping(set, b, VMS, 1)), 0x80042308);
    assert_eq!(
        err(&mut agent, 0, mapping(Uuid::from_u128(9), a, VMS, 1)),
        0x80042501
    );
    ok(
        &mut agent,
        0,
        FsrvpCall::RecoveryCompleteShadowCopySet { set_id: set },
    );
    assert_eq!(err(&mut agent, 0, mapping(set, a, VMS, 1)), 0x80042301);
}

#[test]
fn recovery_complete_only_when_exposed_and_stops_the_timer() {
    let (mut agent, _, _) = setup();
    let (set, _, _) = committed(&mut agent, 0);
    let rc = FsrvpCall::RecoveryCompleteShadowCopySet { set_id: set };
    assert_eq!(err(&mut agent, 0, rc.clone()), 0x80042301);
    ok(&mut agent, 0, expose(set));
    assert!(agent.next_deadline().is_some());
    ok(&mut agent, 0, rc.clone());
    assert_eq!(agent.set_state(set), Some(SetState::Recovered));
    assert_eq!(agent.next_deadline(), None);
    assert_eq!(err(&mut agent, 0, rc), 0x80042301);
}

#[test]
fn abort_deletes_an_uncommitted_set_and_is_a_no_op_after_commit() {
    let (mut agent, d, _) = setup();
    let set = start(&mut agent, 0);
    add(&mut agent, 0, set, VMS);
    ok(&mut agent, 0, FsrvpCall::AbortShadowCopySet { set_id: set });
    assert_eq!(agent.set_state(set), None);
    assert_eq!(
        err(&mut agent, 0, FsrvpCall::AbortShadowCopySet { set_id: set }),
        0x80042501
    );

    let (set, _, _) = committed(&mut agent, 0);
    ok(&mut agent, 0, FsrvpCall::AbortShadowCopySet { set_id: set });
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    assert_eq!(d.snapshots().len(), 1);
    ok(&mut agent, 0, expose(set));
    ok(&mut agent, 0, FsrvpCall::AbortShadowCopySet { set_id: set });
    assert_eq!(agent.set_state(set), Some(SetState::Exposed));
    ok(
        &mut agent,
        0,
        FsrvpCall::RecoveryCompleteShadowCopySet { set_id: set },
    );
    ok(&mut agent, 0, FsrvpCall::AbortShadowCopySet { set_id: set });
    assert_eq!(agent.set_state(set), Some(SetState::Recovered));
    assert_eq!(d.snapshots().len(), 1);
}

/// MS-FSRVP 3.1.4.5: while the commit's wait runs the set is CreationInProgress and an
/// Abort is FSRVP_E_BAD_STATE; when the caller's timeout ends the wait, the set is Added
/// again with the 180 s timer running, and an Abort then deletes it.
#[test]
fn abort_while_creation_in_progress_is_bad_state_until_the_wait_ends() {
    let (mut agent, d, _) = setup();
    agent.set_unresponsive("CommitShadowCopySet").unwrap();
    let set = start(&mut agent, 0);
    add(&mut agent, 0, set, VMS);
    ok(&mut agent, 0, prepare(set));
    assert_eq!(err(&mut agent, SEC, commit(set)), FSSAGENT_E_TIMEOUT);
    assert_eq!(agent.set_state(set), Some(SetState::CreationInProgress));
    let wait_end = SEC + u64::from(COMMIT_TIMEOUT_MS) * 1000;
    // The timer stopped at the commit; the wait's end is the next thing due.
    assert_eq!(agent.next_deadline(), Some(wait_end));
    let abort = FsrvpCall::AbortShadowCopySet { set_id: set };
    assert_eq!(err(&mut agent, 30 * SEC, abort.clone()), FSRVP_E_BAD_STATE);
    assert_eq!(agent.set_state(set), Some(SetState::CreationInProgress));
    assert!(agent.on_timer(wait_end).is_empty());
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert_eq!(agent.next_deadline(), Some(wait_end + TIMER_COMMIT_US));
    ok(&mut agent, wait_end + SEC, abort);
    assert!(agent.set_ids().is_empty());
    assert!(d.snapshots().is_empty() && agent.leftovers().is_empty());
}

#[test]
fn delete_share_mapping_removes_share_snapshot_then_set() {
    let (mut agent, d, e) = setup();
    let (set, a, b) = committed(&mut agent, 0);
    assert_eq!(err(&mut agent, 0, delete(set, a, VMS)), 0x80042301);
    ok(&mut agent, 0, expose(set));
    assert_eq!(
        err(&mut agent, 0, delete(Uuid::from_u128(3), a, VMS)),
        0x80042501
    );
    assert_eq!(err(&mut agent, 0, delete(set, a, OTHER)), 0x80042308);
    ok(&mut agent, 0, delete(set, a, VMS));
    assert!(d.exposed(&exposed_name("VMs", a)).is_none());
    assert!(d.snapshots().is_empty());
    assert_eq!(e.snapshots().len(), 1);
    assert_eq!(agent.set_state(set), Some(SetState::Exposed));
    assert_eq!(err(&mut agent, 0, delete(set, a, VMS)), 0x80042308);
    ok(&mut agent, 0, delete(set, b, OTHER));
    assert!(e.snapshots().is_empty());
    assert_eq!(agent.set_state(set), None);
    assert!(agent.leftovers().is_empty());
}

#[test]
fn unknown_set_ids_are_a_mismatch() {
    let (mut agent, _, _) = setup();
    start(&mut agent, 0);
    let x = Uuid::from_u128(42);
    for c in [
        prepare(x),
        commit(x),
        expose(x),
        FsrvpCall::RecoveryCompleteShadowCopySet { set_id: x },
        FsrvpCall::AbortShadowCopySet { set_id: x },
        mapping(x, x, VMS, 1),
        delete(x, x, VMS),
    ] {
        let name = c.name();
        assert_eq!(err(&mut agent, 0, c), 0x80042501, "{name}");
    }
}

#[test]
fn path_queries() {
    let (mut agent, _, _) = setup();
    let sup = |p: &str| FsrvpCall::IsPathSupported {
        share_path: p.into(),
    };
    assert_eq!(
        ok(&mut agent, 0, sup(VMS)),
        FsrvpReply::PathSupported {
            supported: true,
            owner_machine_name: "fs1".into()
        }
    );
    assert_eq!(err(&mut agent, 0, sup(r"\\fs1\nope")), 0x80070057);
    assert_eq!(err(&mut agent, 0, sup("fs1/VMs")), 0x80070057);
    let copied = |p: &str| FsrvpCall::IsPathShadowCopied {
        share_path: p.into(),
    };
    let present = |r| {
        matches!(
            r,
            FsrvpReply::PathShadowCopied {
                shadow_copy_present: true,
                ..
            }
        )
    };
    assert!(!present(ok(&mut agent, 0, copied(VMS))));
    committed(&mut agent, 0);
    assert!(present(ok(&mut agent, 0, copied(VMS))));
    assert!(!present(ok(&mut agent, 0, copied(DATA))));
}

#[test]
fn timer_expiry_deletes_unrecovered_sets_and_clears_the_context() {
    let (mut agent, d, e) = setup();
    ok(
        &mut agent,
        0,
        FsrvpCall::SetContext {
            context: HOST_BACKUP_CONTEXT,
        },
    );
    assert!(agent.on_timer(TIMER_SET_CONTEXT_US - 1).is_empty());
    assert!(agent.context_set());
    assert!(agent.on_timer(TIMER_SET_CONTEXT_US).is_empty());
    assert!(!agent.context_set());
    assert_eq!(agent.next_deadline(), None);
    let start_c = FsrvpCall::StartShadowCopySet {
        client_set_id: Uuid::nil(),
    };
    assert_eq!(err(&mut agent, TIMER_SET_CONTEXT_US, start_c), 0x80042301);

    let t = 1000 * SEC;
    let (set, a, _) = committed(&mut agent, t);
    ok(&mut agent, t, expose(set));
    assert_eq!(d.snapshots().len() + e.snapshots().len(), 2);
    let due = agent.next_deadline().unwrap();
    assert_eq!(due, t + 180 * SEC);
    assert_eq!(agent.on_timer(due), vec![set]);
    assert!(d.snapshots().is_empty() && e.snapshots().is_empty());
    assert!(d.exposed(&exposed_name("VMs", a)).is_none());
    assert!(agent.leftovers().is_empty());
    assert!(!agent.context_set());
    assert_eq!(agent.set_state(set), None);
}

#[test]
fn timer_spares_recovered_sets_and_overdue_timers_expire_before_a_call() {
    let (mut agent, d, _) = setup();
    let (old, _, _) = committed(&mut agent, 0);
    ok(&mut agent, 0, expose(old));
    ok(
        &mut agent,
        0,
        FsrvpCall::RecoveryCompleteShadowCopySet { set_id: old },
    );
    let set = start(&mut agent, 10 * SEC);
    add(&mut agent, 10 * SEC, set, DATA);
    let due = agent.next_deadline().unwrap();
    assert_eq!(due, 10 * SEC + TIMER_ADD_US);
    // A call after the deadline finds the timer expired: the set is gone.
    assert_eq!(err(&mut agent, due + 1, prepare(set)), 0x80042501);
    assert_eq!(agent.set_state(old), Some(SetState::Recovered));
    assert_eq!(d.snapshots().len(), 1);
    assert_eq!(agent.leftovers().len(), 4, "{:?}", agent.leftovers());
}

/// Issue 9 item 2 (MS-FSRVP 3.1.4.5): a commit that never completes is answered after the
/// client's 60 s with FSSAGENT_E_TIMEOUT, the set is back in Added, so the client's
/// abort succeeds, deletes the set and the next backup can start at once.
#[test]
fn unresponsive_commit_fails_with_fss_timeout_and_the_abort_succeeds() {
    let (mut agent, d, e) = setup();
    agent.set_unresponsive("CommitShadowCopySet").unwrap();
    let mut client = FssClient::new(vec![VMS.into(), OTHER.into()]);
    let (mut now, mut log) = (0, Vec::new());
    let st = drive(&mut client, &mut agent, &mut now, &mut log);
    let error = FsrvpError::AgentTimeout;
    assert_eq!(
        st,
        ClientStatus::Failed {
            op: "CommitShadowCopySet",
            error
        }
    );
    assert_eq!(error.code(), 0x80042500);
    assert_eq!(error.provider_hresult(), VSS_E_FSS_TIMEOUT);
    // The commit answer came after the caller's 60 s; then the abort, accepted.
    let n = log.len();
    assert_eq!(log[n - 2].name(), "CommitShadowCopySet");
    assert_eq!(log[n - 1].name(), "AbortShadowCopySet");
    assert!(now >= 60 * SEC);
    assert_eq!(client.abort_result(), Some(Ok(())));
    assert!(agent.set_ids().is_empty());
    assert!(d.snapshots().is_empty() && e.snapshots().is_empty());
    // The 180 s timer started when the wait ended still runs; it finds nothing to delete.
    let due = agent.next_deadline().unwrap();
    assert!(due > now && due <= now + TIMER_COMMIT_US, "{due} {now}");
    // The next backup does not wait for the timer.
    agent.clear_unresponsive("CommitShadowCopySet");
    let mut again = FssClient::new(vec![VMS.into()]);
    assert!(matches!(
        drive(&mut again, &mut agent, &mut now, &mut log),
        ClientStatus::Done { .. }
    ));
}

/// MS-FSRVP 3.1.4.13: the timer stops while Prepare waits; the wait that ends with the
/// client's 30 min starts it at 180 s, so the client's abort still finds the set and
/// deletes it (the Add's 1800 s timer used to delete it first).
#[test]
fn unresponsive_prepare_is_aborted_cleanly() {
    let (mut agent, d, _) = setup();
    agent.set_unresponsive("PrepareShadowCopySet").unwrap();
    let mut client = FssClient::new(vec![VMS.into()]);
    let (mut now, mut log) = (0, Vec::new());
    let st = drive(&mut client, &mut agent, &mut now, &mut log);
    assert_eq!(
        st,
        ClientStatus::Failed {
            op: "PrepareShadowCopySet",
            error: FsrvpError::WaitTimeout
        }
    );
    assert!(now >= 1_800 * SEC);
    assert_eq!(client.abort_result(), Some(Ok(())));
    assert!(agent.set_ids().is_empty());
    assert!(d.snapshots().is_empty());
}

/// MS-FSRVP 3.1.4.6: the timer stops while Expose waits; after the client's 30 min the
/// set is still Committed (the abort is a no-op) and the 180 s timer started at the
/// wait's end deletes set and snapshot.
#[test]
fn unresponsive_expose_leaves_the_snapshot_to_the_timer() {
    let (mut agent, d, _) = setup();
    agent.set_unresponsive("ExposeShadowCopySet").unwrap();
    let mut client = FssClient::new(vec![VMS.into()]);
    let (mut now, mut log) = (0, Vec::new());
    let st = drive(&mut client, &mut agent, &mut now, &mut log);
    assert_eq!(
        st,
        ClientStatus::Failed {
            op: "ExposeShadowCopySet",
            error: FsrvpError::WaitTimeout
        }
    );
    assert_eq!(client.abort_result(), Some(Ok(())));
    let set = client.set_id().unwrap();
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    assert_eq!(d.snapshots().len(), 1);
    let due = agent.next_deadline().unwrap();
    assert!(
        due > now && due <= now + TIMER_FAILED_WAIT_US,
        "{due} {now}"
    );
    assert_eq!(agent.on_timer(due), vec![set]);
    assert!(d.snapshots().is_empty());
    assert!(agent.leftovers().is_empty());
}

#[test]
fn unresponsive_and_failing_accept_only_timed_operations_with_a_typed_error() {
    let (mut agent, _, _) = setup();
    let e = agent.set_unresponsive("SetContext").unwrap_err();
    assert_eq!(e.op, "SetContext");
    assert_eq!(
        e.to_string(),
        "FssAgent fault: \"SetContext\" is not an MS-FSRVP operation that waits (one of \
         PrepareShadowCopySet, CommitShadowCopySet, ExposeShadowCopySet)"
    );
    assert!(agent.set_failing("commitshadowcopyset").is_err());
    assert!(agent.set_failing("CommitShadowCopySet").is_ok());
}

#[test]
fn client_fails_on_an_unknown_share_without_further_calls() {
    let (mut agent, _, _) = setup();
    let mut client = FssClient::new(vec![r"\\fs1\nope".into()]);
    let (mut now, mut log) = (0, Vec::new());
    let st = drive(&mut client, &mut agent, &mut now, &mut log);
    assert_eq!(
        st,
        ClientStatus::Failed {
            op: "IsPathSupported",
            error: FsrvpError::InvalidArg
        }
    );
    assert_eq!(log.len(), 1);
    assert_eq!(client.next_call(), None);
}

#[test]
fn client_rejects_a_server_without_version_1_and_aborts_on_a_failed_add() {
    let mut client = FssClient::new(vec![VMS.into()]);
    client.next_call();
    client.on_reply(Ok(FsrvpReply::PathSupported {
        supported: true,
        owner_machine_name: "fs1".into(),
    }));
    assert_eq!(client.next_call(), Some(FsrvpCall::GetSupportedVersion));
    let st = client.on_reply(Ok(FsrvpReply::Version { min: 2, max: 3 }));
    assert_eq!(
        st,
        ClientStatus::Failed {
            op: "GetSupportedVersion",
            error: FsrvpError::NotSupported
        }
    );

    let (mut agent, _, _) = setup();
    let mut client = FssClient::new(vec![VMS.into(), r"\\fs1\Data".into()]);
    let (mut now, mut log) = (0, Vec::new());
    let st = drive(&mut client, &mut agent, &mut now, &mut log);
    // Data is on the volume of VMs: the second Add fails, the set is aborted.
    assert_eq!(
        st,
        ClientStatus::Failed {
            op: "AddToShadowCopySet",
            error: FsrvpError::ObjectAlreadyExists
        }
    );
    assert_eq!(log.last().unwrap().name(), "AbortShadowCopySet");
    assert!(agent.set_ids().is_empty());
}

#[test]
fn digest_follows_the_state_and_is_deterministic() {
    let dig = |a: &FssAgent| {
        let mut h = blake3::Hasher::new();
        a.digest(&mut h);
        h.finalize()
    };
    let run = || {
        let (mut agent, _, _) = setup();
        let before = dig(&agent);
        committed(&mut agent, 3 * SEC);
        (before, dig(&agent))
    };
    let (b1, a1) = run();
    let (b2, a2) = run();
    assert_eq!((b1, a1), (b2, a2));
    assert_ne!(b1, a1);
}

#[test]
fn stuck_expose_keeps_the_committed_snapshot_until_the_timer() {
    let (mut agent, d, _) = setup();
    agent.set_unresponsive("ExposeShadowCopySet").unwrap();
    let set = start(&mut agent, 0);
    add(&mut agent, 0, set, VMS);
    ok(&mut agent, 0, commit(set));
    assert_eq!(agent.reply_delay_us(&expose(set)), 1_800 * SEC);
    assert_eq!(agent.reply_delay_us(&commit(set)), 0);
    assert_eq!(err(&mut agent, SEC, expose(set)), 0x00000102);
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    // Abort once committed is a no-op: the snapshot stays, unexposed.
    ok(
        &mut agent,
        SEC,
        FsrvpCall::AbortShadowCopySet { set_id: set },
    );
    assert_eq!(d.snapshots().len(), 1);
    assert_eq!(agent.leftovers().len(), 1, "{:?}", agent.leftovers());
    // The commit's timer stopped at the expose: next is the wait's end, then 180 s.
    let wait_end = SEC + 1_800 * SEC;
    assert_eq!(agent.next_deadline(), Some(wait_end));
    assert!(agent.on_timer(wait_end).is_empty());
    assert_eq!(d.snapshots().len(), 1);
    let due = agent.next_deadline().unwrap();
    assert_eq!(due, wait_end + TIMER_FAILED_WAIT_US);
    assert_eq!(agent.on_timer(due), vec![set]);
    assert!(d.snapshots().is_empty());
    assert!(agent.leftovers().is_empty());
}

#[test]
fn a_failed_commit_returns_the_set_to_added() {
    let (mut agent, d, _) = setup();
    agent.set_failing("CommitShadowCopySet").unwrap();
    let set = start(&mut agent, 0);
    add(&mut agent, 0, set, VMS);
    ok(&mut agent, 0, prepare(set));
    assert_eq!(err(&mut agent, 2 * SEC, commit(set)), 0xFFFFFFFF);
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert!(d.snapshots().is_empty());
    assert_eq!(agent.next_deadline(), Some(2 * SEC + TIMER_COMMIT_US));
    // Added again: a retry may commit.
    agent.clear_failing("CommitShadowCopySet");
    ok(&mut agent, 3 * SEC, commit(set));
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    assert_eq!(d.snapshots().len(), 1);
}

#[test]
fn a_failed_prepare_is_reported_and_the_set_aborted() {
    let (mut agent, _, _) = setup();
    agent.set_failing("PrepareShadowCopySet").unwrap();
    let mut client = FssClient::new(vec![VMS.into()]);
    let (mut now, mut log) = (0, Vec::new());
    let st = drive(&mut client, &mut agent, &mut now, &mut log);
    assert_eq!(
        st,
        ClientStatus::Failed {
            op: "PrepareShadowCopySet",
            error: FsrvpError::WaitFailed
        }
    );
    assert_eq!(FsrvpError::WaitFailed.provider_hresult(), 0xFFFFFFFF);
    assert_eq!(client.abort_result(), Some(Ok(())));
    assert!(agent.set_ids().is_empty());
}

/// MS-FSRVP 3.1.4.9: the server first verifies that the share exists; one it does not
/// have is E_INVALIDARG (as Samba's FSRVP server answers), for every call that names a
/// share, and leaves the set as it was. FSRVP_E_NOT_SUPPORTED is kept for an existing
/// share whose file store cannot be shadow-copied.
#[test]
fn a_share_the_server_does_not_have_is_an_invalid_argument() {
    let (mut agent, _, _) = setup();
    let nope = r"\\fs1\nope\";
    let sup = FsrvpCall::IsPathSupported {
        share_path: nope.into(),
    };
    assert_eq!(err(&mut agent, 0, sup), E_INVALIDARG);
    let copied = FsrvpCall::IsPathShadowCopied {
        share_path: nope.into(),
    };
    assert_eq!(err(&mut agent, 0, copied), E_INVALIDARG);
    let set = start(&mut agent, 0);
    let addc = FsrvpCall::AddToShadowCopySet {
        client_shadow_copy_id: Uuid::nil(),
        set_id: set,
        share_path: nope.into(),
    };
    assert_eq!(err(&mut agent, 0, addc), E_INVALIDARG);
    assert_eq!(agent.set_state(set), Some(SetState::Started));
}

/// Sends every request a phased client has before its next pause (or end).
fn drive_phase(
    client: &mut FssClient,
    agent: &mut FssAgent,
    now: &mut u64,
) -> (Vec<&'static str>, ClientStatus) {
    let mut log = Vec::new();
    let st = drive(client, agent, now, &mut log);
    (log.iter().map(FsrvpCall::name).collect(), st)
}

/// Issue 9 item 1 (SPEC F4 phase mapping): a phased client sends each phase's calls
/// and pauses before PrepareShadowCopySet, CommitShadowCopySet, ExposeShadowCopySet and
/// DeleteShareMapping; RecoveryComplete comes with `begin_cleanup`.
#[test]
fn a_phased_client_pauses_between_the_vss_provider_phases() {
    let (mut agent, d, _) = setup();
    let mut client = FssClient::new(vec![VMS.into()]).phased();
    let mut now = 0;
    let phases: [(&[&str], &str); 4] = [
        (
            &[
                "IsPathSupported",
                "GetSupportedVersion",
                "SetContext",
                "StartShadowCopySet",
                "AddToShadowCopySet",
            ],
            "PrepareShadowCopySet",
        ),
        (&["PrepareShadowCopySet"], "CommitShadowCopySet"),
        (&["CommitShadowCopySet"], "ExposeShadowCopySet"),
        (&["ExposeShadowCopySet", "GetShareMapping"], ""),
    ];
    for (i, (calls, next)) in phases.into_iter().enumerate() {
        if i > 0 {
            client.resume();
        }
        let (sent, st) = drive_phase(&mut client, &mut agent, &mut now);
        assert_eq!(sent, calls);
        if next.is_empty() {
            assert!(matches!(st, ClientStatus::Done { .. }), "{st:?}");
        } else {
            assert_eq!(st, ClientStatus::Paused { next });
            // Paused: nothing goes until the next phase.
            assert_eq!(client.next_call(), None);
        }
    }
    let set = client.set_id().unwrap();
    assert_eq!(agent.set_state(set), Some(SetState::Exposed));
    client.begin_cleanup();
    let (sent, st) = drive_phase(&mut client, &mut agent, &mut now);
    assert_eq!(sent, ["RecoveryCompleteShadowCopySet"]);
    assert_eq!(
        st,
        ClientStatus::Paused {
            next: "DeleteShareMapping"
        }
    );
    assert_eq!(agent.set_state(set), Some(SetState::Recovered));
    assert_eq!(d.snapshots().len(), 1);
    client.resume();
    let (sent, st) = drive_phase(&mut client, &mut agent, &mut now);
    assert_eq!(sent, ["DeleteShareMapping"]);
    assert_eq!(st, ClientStatus::CleanedUp);
    assert!(d.snapshots().is_empty() && agent.leftovers().is_empty());
}

/// The host's AbortSnapshots during a pause: AbortShadowCopySet before the commit, the
/// share mappings once exposed; either way nothing is left on the file server.
#[test]
fn a_phased_client_aborts_from_any_pause() {
    for pauses in 1..=4 {
        let (mut agent, d, _) = setup();
        let mut client = FssClient::new(vec![VMS.into()]).phased();
        let mut now = 0;
        for i in 0..pauses {
            if i > 0 {
                client.resume();
            }
            drive_phase(&mut client, &mut agent, &mut now);
        }
        client.abort();
        let (sent, st) = drive_phase(&mut client, &mut agent, &mut now);
        match pauses {
            1..=2 => {
                assert_eq!(sent, ["AbortShadowCopySet"], "after {pauses} phase(s)");
                assert_eq!(st, ClientStatus::Aborted);
                assert_eq!(client.abort_result(), Some(Ok(())));
                assert!(agent.set_ids().is_empty());
            }
            3 => {
                // Committed: the abort is a no-op; the 180 s timer deletes the copy.
                assert_eq!(sent, ["AbortShadowCopySet"]);
                assert_eq!(d.snapshots().len(), 1);
                let due = agent.next_deadline().unwrap();
                agent.on_timer(due);
            }
            _ => {
                assert_eq!(sent, ["DeleteShareMapping"]);
                assert_eq!(st, ClientStatus::CleanedUp);
            }
        }
        assert!(
            d.snapshots().is_empty() && agent.leftovers().is_empty(),
            "after {pauses} phase(s): {:?}",
            agent.leftovers()
        );
    }
}

/// A set with VMs (volume D) and Other (volume E), prepared at `now`.
fn prepared(agent: &mut FssAgent, now: u64) -> Uuid {
    let set = start(agent, now);
    add(agent, now, set, VMS);
    add(agent, now, set, OTHER);
    ok(agent, now, prepare(set));
    set
}

/// MS-FSRVP 3.1.4.5 with the server's own VSS answering later: the set is
/// CreationInProgress with no timer and no snapshot while the local VSS works; its
/// answer within the wait takes the shadow copies at that instant and starts the timer.
#[test]
fn commit_waits_for_the_local_vss_and_takes_the_copies_when_it_answers() {
    let (mut agent, d, e) = setup();
    let set = prepared(&mut agent, 0);
    let volumes = agent
        .begin_commit(SEC, set, COMMIT_TIMEOUT_MS)
        .expect("begin");
    assert_eq!(volumes, vec!["fs1-D".to_string(), "fs1-E".to_string()]);
    assert_eq!(agent.set_state(set), Some(SetState::CreationInProgress));
    assert_eq!(agent.message_sequence_deadline(), None);
    assert_eq!(agent.next_deadline(), Some(SEC + 60 * SEC));
    assert!(d.snapshots().is_empty() && e.snapshots().is_empty());
    // An abort meanwhile is refused.
    assert_eq!(
        err(
            &mut agent,
            2 * SEC,
            FsrvpCall::AbortShadowCopySet { set_id: set }
        ),
        FSRVP_E_BAD_STATE
    );
    let reply = agent.end_commit(5 * SEC, set, Ok(()));
    assert_eq!(reply, Some(Ok(FsrvpReply::Ok)));
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    assert_eq!(d.snapshots().len(), 1);
    assert_eq!(e.snapshots().len(), 1);
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(5 * SEC + TIMER_COMMIT_US)
    );
}

/// The local VSS failed within the wait: the set returns to Added, nothing taken, the
/// 180 s timer runs and the caller gets the failure.
#[test]
fn a_local_vss_failure_returns_the_set_to_added() {
    let (mut agent, d, _) = setup();
    let set = prepared(&mut agent, 0);
    agent.begin_commit(SEC, set, COMMIT_TIMEOUT_MS).unwrap();
    let reply = agent.end_commit(3 * SEC, set, Err(FsrvpError::WaitFailed));
    assert_eq!(reply, Some(Err(FsrvpError::WaitFailed)));
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert!(d.snapshots().is_empty());
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(3 * SEC + TIMER_FAILED_WAIT_US)
    );
}

/// The local VSS is slower than the caller's wait: when the wait ends the set is back in
/// Added with the 180 s timer, the abort succeeds, and the late answer takes nothing.
#[test]
fn a_local_vss_slower_than_the_wait_changes_nothing() {
    let (mut agent, d, _) = setup();
    let set = prepared(&mut agent, 0);
    agent.begin_commit(SEC, set, COMMIT_TIMEOUT_MS).unwrap();
    let end = SEC + u64::from(COMMIT_TIMEOUT_MS) * 1000;
    assert_eq!(agent.wait_end(), Some(("CommitShadowCopySet", end)));
    assert!(agent.on_timer(end).is_empty());
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(end + TIMER_FAILED_WAIT_US)
    );
    // The answer at the very end of the wait is late too.
    assert_eq!(agent.end_commit(end, set, Ok(())), None);
    assert_eq!(agent.end_commit(end + 30 * SEC, set, Ok(())), None);
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert!(d.snapshots().is_empty());
    ok(
        &mut agent,
        end + 31 * SEC,
        FsrvpCall::AbortShadowCopySet { set_id: set },
    );
    assert_eq!(agent.set_state(set), None);
}

/// begin_commit checks like CommitShadowCopySet: an unknown set, a set not Added.
#[test]
fn begin_commit_checks_the_set_and_its_state() {
    let (mut agent, _, _) = setup();
    assert_eq!(
        agent.begin_commit(0, Uuid::nil(), COMMIT_TIMEOUT_MS),
        Err(FsrvpError::ShadowCopySetIdMismatch)
    );
    let set = start(&mut agent, 0);
    assert_eq!(
        agent.begin_commit(0, set, COMMIT_TIMEOUT_MS),
        Err(FsrvpError::BadState)
    );
}

/// MS-FSRVP 3.1.4.13 with the server's own VSS answering later: PrepareShadowCopySet
/// hands it the set's volumes, stops the message-sequence timer and waits at most the
/// caller's timeout; the set stays Added and nothing is taken. The answer within the
/// wait is the call's success and starts the 1800 s timer.
#[test]
fn prepare_waits_for_the_local_vss_and_answers_when_it_has() {
    let (mut agent, d, e) = setup();
    let set = start(&mut agent, 0);
    add(&mut agent, 0, set, VMS);
    add(&mut agent, 0, set, OTHER);
    let volumes = agent
        .begin_prepare(SEC, set, PREPARE_TIMEOUT_MS)
        .expect("begin");
    assert_eq!(volumes, vec!["fs1-D".to_string(), "fs1-E".to_string()]);
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert_eq!(agent.message_sequence_deadline(), None);
    let end = SEC + u64::from(PREPARE_TIMEOUT_MS) * 1000;
    assert_eq!(agent.wait_end(), Some(("PrepareShadowCopySet", end)));
    // An answer for another operation or set is no answer to this wait.
    assert_eq!(agent.end_commit(2 * SEC, set, Ok(())), None);
    assert_eq!(agent.end_prepare(2 * SEC, Uuid::nil(), Ok(())), None);
    assert_eq!(
        agent.end_prepare(4 * SEC, set, Ok(())),
        Some(Ok(FsrvpReply::Ok))
    );
    assert_eq!(agent.wait_end(), None);
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(4 * SEC + TIMER_PREPARE_US)
    );
    assert!(d.snapshots().is_empty() && e.snapshots().is_empty());
    // Prepared: the commit may follow.
    assert!(agent.begin_commit(5 * SEC, set, COMMIT_TIMEOUT_MS).is_ok());
}

/// The local VSS prepares for longer than the caller's timeout: the wait ends with the
/// 180 s timer, the set stays Added, and the late answer changes nothing; a failed local
/// prepare within the wait is FSRVP_E_WAIT_FAILED with the 180 s timer.
#[test]
fn a_local_prepare_later_than_the_wait_or_failed_changes_nothing() {
    let (mut agent, _, _) = setup();
    let set = start(&mut agent, 0);
    add(&mut agent, 0, set, VMS);
    agent.begin_prepare(SEC, set, 10_000).unwrap();
    let end = 11 * SEC;
    assert!(agent.on_timer(end).is_empty());
    assert_eq!(agent.wait_end(), None);
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(end + TIMER_FAILED_WAIT_US)
    );
    assert_eq!(agent.end_prepare(end, set, Ok(())), None);
    assert_eq!(agent.end_prepare(end + SEC, set, Ok(())), None);
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(end + TIMER_FAILED_WAIT_US)
    );
    // A second prepare whose local VSS fails within the wait.
    agent.begin_prepare(20 * SEC, set, 10_000).unwrap();
    assert_eq!(
        agent.end_prepare(21 * SEC, set, Err(FsrvpError::WaitFailed)),
        Some(Err(FsrvpError::WaitFailed))
    );
    assert_eq!(agent.set_state(set), Some(SetState::Added));
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(21 * SEC + TIMER_FAILED_WAIT_US)
    );
    // begin_prepare checks like PrepareShadowCopySet.
    assert_eq!(
        agent.begin_prepare(22 * SEC, Uuid::nil(), 10_000),
        Err(FsrvpError::ShadowCopySetIdMismatch)
    );
    let (mut agent, _, _) = setup();
    let (set, _, _) = committed(&mut agent, 0);
    assert_eq!(
        agent.begin_prepare(SEC, set, 10_000),
        Err(FsrvpError::BadState)
    );
}

/// MS-FSRVP 3.1.4.6, 3.1.4.9: ExposeShadowCopySet hands the local VSS each committed
/// shadow copy (id, share, volume, snapshot) and waits; nothing is exposed and
/// GetShareMapping is refused until it answers. The share names it answers are the
/// mapped shares' names: GetShareMapping returns them as ShadowCopyShareName, whatever
/// the agent would have spelt itself.
#[test]
fn expose_waits_for_the_local_vss_and_get_share_mapping_answers_its_names() {
    let (mut agent, d, e) = setup();
    let (set, a, b) = committed(&mut agent, 0);
    let copies = agent
        .begin_expose(SEC, set, EXPOSE_TIMEOUT_MS)
        .expect("begin");
    let mut seen: Vec<(Uuid, &str, &str)> = copies
        .iter()
        .map(|c| (c.shadow_copy_id, c.share.as_str(), c.volume.as_str()))
        .collect();
    seen.sort();
    let mut want = vec![(a, "VMs", "fs1-D"), (b, "Other", "fs1-E")];
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    assert_eq!(agent.message_sequence_deadline(), None);
    assert_eq!(
        err(&mut agent, 2 * SEC, mapping(set, a, VMS, 1)),
        FSRVP_E_BAD_STATE
    );
    assert!(d.exposed(&exposed_name("VMs", a)).is_none());
    // The local VSS exposes each copy; this one spells the GUID in lower case.
    let names: Vec<(Uuid, String)> = copies
        .iter()
        .map(|c| {
            let volume = if c.volume == "fs1-D" { &d } else { &e };
            let name = format!("{}@{{{}}}", c.share, c.shadow_copy_id);
            volume.expose_snapshot(c.snapshot, &name).unwrap();
            (c.shadow_copy_id, name)
        })
        .collect();
    assert_eq!(
        agent.end_expose(3 * SEC, set, Ok(names)),
        Some(Ok(FsrvpReply::Ok))
    );
    assert_eq!(agent.set_state(set), Some(SetState::Exposed));
    assert_eq!(
        agent.message_sequence_deadline(),
        Some(3 * SEC + TIMER_EXPOSE_US)
    );
    let FsrvpReply::ShareMapping(m) = ok(&mut agent, 4 * SEC, mapping(set, a, VMS, 1)) else {
        panic!("not a mapping");
    };
    assert_eq!(m.shadow_copy_share_name, format!(r"\\fs1\VMs@{{{a}}}"));
    assert_ne!(
        m.shadow_copy_share_name,
        format!(r"\\fs1\{}", exposed_name("VMs", a))
    );
    assert!(d.exposed(&format!("VMs@{{{a}}}")).is_some());
}

/// The local VSS exposes later than the caller's wait: the set stays Committed with the
/// 180 s timer, the late names are not taken (GetShareMapping stays refused), and the
/// timer's expiry deletes the set with its snapshots and the share exposed late. An
/// answer that leaves a shadow copy unnamed is FSRVP_E_OBJECT_NOT_FOUND, set Committed.
#[test]
fn a_local_expose_later_than_the_wait_or_incomplete_is_not_taken() {
    let (mut agent, d, _) = setup();
    let (set, a, b) = committed(&mut agent, 0);
    let copies = agent.begin_expose(SEC, set, 10_000).unwrap();
    let end = 11 * SEC;
    agent.on_timer(end);
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    let vms = copies.iter().find(|c| c.shadow_copy_id == a).unwrap();
    let late = expose_shadow_copy(&d, vms.snapshot, "VMs", a).unwrap();
    assert_eq!(late, exposed_name("VMs", a));
    assert_eq!(
        agent.end_expose(end + SEC, set, Ok(vec![(a, late.clone())])),
        None
    );
    assert_eq!(
        err(&mut agent, end + 2 * SEC, mapping(set, a, VMS, 1)),
        FSRVP_E_BAD_STATE
    );
    // Incomplete: Other's copy unnamed.
    agent.begin_expose(end + 3 * SEC, set, 10_000).unwrap();
    assert_eq!(
        agent.end_expose(end + 4 * SEC, set, Ok(vec![(a, late.clone())])),
        Some(Err(FsrvpError::ObjectNotFound))
    );
    assert_eq!(agent.set_state(set), Some(SetState::Committed));
    let _ = b;
    let expiry = end + 4 * SEC + TIMER_FAILED_WAIT_US;
    assert_eq!(agent.message_sequence_deadline(), Some(expiry));
    assert_eq!(agent.on_timer(expiry), vec![set]);
    assert!(d.exposed(&late).is_none());
    assert!(d.snapshots().is_empty());
    assert!(agent.leftovers().is_empty());
}
