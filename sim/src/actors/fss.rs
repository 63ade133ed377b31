//! `FssProvider` (File Share Shadow Copy Provider, on the Hyper-V host) and `FssAgent`
//! (File Server VSS Agent Service, on the SMB3 file server; its PrepareShadowCopySet,
//! CommitShadowCopySet and ExposeShadowCopySet ask the server's own VSS, the
//! `FileServerVss` actor, and wait for it): F4 over MS-FSRVP. The provider runs each
//! MS-FSRVP call in its host VSS provider phase (SPEC F4 phase mapping), hands HostVss
//! the exposed share paths GetShareMapping answered (F4.8), ends auto-recovery at
//! PostFinalCommit and deletes the share mappings when the set is released (F4.10).

use std::collections::BTreeMap;

use crate::fsrvp::{
    ClientStatus, FsrvpCall, FsrvpError, FsrvpReply, FssAgent, FssClient, SetState, ShareMapping1,
};
use crate::protocol::msg::{Fail, Msg, SnapshotProp};
use crate::protocol::vss::ProviderCall;
use crate::scenario::{FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Envelope, Origin, TimerId};
use crate::site::Site;
use crate::world::{Lab, Shadow};
use hvsim_engine::volume::SnapshotId;
use uuid::Uuid;

/// One RPC round trip to the file server.
const RPC_US: u64 = 2_000;

pub struct FssProvider {
    name: String,
    /// Agent of each file server, by server name (lower case).
    agents: BTreeMap<String, ActorId>,
    client: Option<FssClient>,
    agent: Option<ActorId>,
    /// The VSS call waiting for the FSRVP sequence, and its set.
    waiting: Option<(ActorId, ProviderCall, u64)>,
    /// How late each request reaches a file server (a slow client, by server name in
    /// lower case): the agent's timers run meanwhile.
    call_delays: BTreeMap<String, u64>,
    /// The server of the current set, lower case.
    server: String,
}

/// The volume and snapshot a shadow copy share `\\server\share@{GUID}` exposes: the
/// exposure `share@{GUID}` on one of that file server's volumes (what the file server
/// shows under that name).
pub(crate) fn exposed_on(lab: &crate::world::Lab, unc: &str) -> Option<(String, SnapshotId)> {
    let (server, name) = unc.trim_start_matches('\\').split_once('\\')?;
    lab.volumes
        .iter()
        .filter(|(vol, _)| {
            lab.scenario.volumes.iter().any(|v| {
                v.name == **vol
                    && v.file_server
                        .as_deref()
                        .is_some_and(|fs| fs.eq_ignore_ascii_case(server))
            })
        })
        .find_map(|(vol, v)| v.exposed(name).map(|s| (vol.clone(), s.id())))
}

impl FssProvider {
    pub fn new(host: &str, agents: BTreeMap<String, ActorId>) -> Self {
        FssProvider {
            name: format!("FssProvider@{host}"),
            agents,
            client: None,
            agent: None,
            waiting: None,
            call_delays: BTreeMap::new(),
            server: String::new(),
        }
    }

    /// Requests to each file server (lower-case name) arrive this many µs late.
    pub fn with_call_delays(mut self, delays: BTreeMap<String, u64>) -> Self {
        self.call_delays = delays;
        self
    }

    /// `\\server\share` paths of the shares on these volumes that hold VM disks.
    fn shares(&self, lab: &Lab, volumes: &[String]) -> Vec<String> {
        let mut out: Vec<String> = lab
            .scenario
            .vms
            .iter()
            .flat_map(|v| v.disks.iter())
            .filter_map(|d| d.share.clone())
            .filter(|share| {
                let Some((server, name)) = share.trim_start_matches('\\').split_once('\\') else {
                    return false;
                };
                lab.scenario.file_servers.iter().any(|fs| {
                    fs.name.eq_ignore_ascii_case(server)
                        && fs.shares.iter().any(|s| {
                            s.name.eq_ignore_ascii_case(name) && volumes.contains(&s.volume)
                        })
                })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn send_next(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let (Some(client), Some(agent)) = (self.client.as_mut(), self.agent) else {
            return;
        };
        if let Some(call) = client.next_call() {
            let late = self.call_delays.get(&self.server).copied().unwrap_or(0);
            cx.out.send_after(agent, RPC_US + late, Msg::Fsrvp { call });
        }
    }

    fn done(&mut self, result: Result<(), Fail>, cx: &mut Cx<'_, Msg, Site>) {
        if let Some((vss, call, _)) = self.waiting.take() {
            cx.out.send(vss, Msg::ProviderDone { call, result });
        }
    }

    fn on_reply(&mut self, r: Result<FsrvpReply, FsrvpError>, cx: &mut Cx<'_, Msg, Site>) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let status = client.on_reply(r);
        self.on_status(status, cx);
    }

    /// Sends the next request, or answers the VSS call the phase ran for.
    fn on_status(&mut self, status: ClientStatus, cx: &mut Cx<'_, Msg, Site>) {
        match status {
            ClientStatus::Continue => self.send_next(cx),
            // The phase's calls are done; the next VSS call resumes the client.
            ClientStatus::Paused { .. } => self.done(Ok(()), cx),
            ClientStatus::Done { mappings } => self.exposed(&mappings, cx),
            ClientStatus::Failed { op, error } => {
                self.client = None;
                let code = match error {
                    FsrvpError::WaitTimeout | FsrvpError::AgentTimeout => Hresult::VssEFssTimeout,
                    FsrvpError::AccessDenied => Hresult::EAccessDenied,
                    _ => Hresult::VssEUnexpectedProviderError,
                };
                let fail = Fail::new(
                    code,
                    FailureClass::Host,
                    format!("MS-FSRVP {op} failed: {}", error.name()),
                );
                self.done(Err(fail), cx);
            }
            ClientStatus::CleanedUp | ClientStatus::Aborted => {
                self.client = None;
                self.done(Ok(()), cx);
            }
        }
    }

    /// F4.7–F4.8: the shadow copy paths, handed to VSS as the set's snapshots.
    /// GetShareMapping answers `\\server\share@{GUID}` (MS-FSRVP 2.2.3.1); the file server
    /// exposes the snapshot under `share@{GUID}`.
    fn exposed(&mut self, mappings: &[ShareMapping1], cx: &mut Cx<'_, Msg, Site>) {
        let Some((vss, _, set)) = self.waiting else {
            return;
        };
        let lab = &mut cx.world.lab;
        let mut missing = Vec::new();
        let mut handed = Vec::new();
        for m in mappings {
            match exposed_on(lab, &m.shadow_copy_share_name) {
                Some((volume, id)) => {
                    cx.out.detail("exposed", m.shadow_copy_share_name.clone());
                    handed.push(SnapshotProp {
                        volume: volume.clone(),
                        device: m.shadow_copy_share_name.clone(),
                    });
                    lab.shadows.entry(set).or_default().push(Shadow {
                        volume,
                        id,
                        exposed: Some(m.shadow_copy_share_name.clone()),
                    });
                }
                None => missing.push(m.shadow_copy_share_name.clone()),
            }
        }
        if missing.is_empty() {
            // F4.8: the paths GetShareMapping answered go to VSS, which answers them to
            // the requester's GetSnapshotProperties.
            cx.out.detail("spec", "F4.7-F4.8");
            cx.out.send(
                vss,
                Msg::SnapshotProperties {
                    set,
                    snapshots: handed,
                },
            );
            self.done(Ok(()), cx);
        } else {
            // A mapping that names no exposed shadow copy is the provider's error, never a
            // snapshot set short of a share.
            let fail = Fail::new(
                Hresult::VssEUnexpectedProviderError,
                FailureClass::Host,
                format!("no exposed shadow copy share {}", missing.join(", ")),
            );
            self.done(Err(fail), cx);
        }
    }

    /// BeginPrepareSnapshot: a new FSRVP client for the shares on these volumes, run up
    /// to its first pause (the set started, every share added).
    fn begin(
        &mut self,
        from: ActorId,
        call: ProviderCall,
        set: u64,
        volumes: &[String],
        cx: &mut Cx<'_, Msg, Site>,
    ) {
        let shares = self.shares(cx.world, volumes);
        let server = shares
            .first()
            .and_then(|s| s.trim_start_matches('\\').split('\\').next())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let Some(&agent) = self.agents.get(&server) else {
            let f = Fail::new(
                Hresult::VssEUnexpectedProviderError,
                FailureClass::Host,
                format!("no File Server VSS Agent on {server} (R10)"),
            );
            cx.out.send(
                from,
                Msg::ProviderDone {
                    call,
                    result: Err(f),
                },
            );
            return;
        };
        self.agent = Some(agent);
        self.server = server;
        self.client = Some(FssClient::new(shares).phased());
        self.waiting = Some((from, call, set));
        self.send_next(cx);
    }

    /// A later phase: resumes the client (or starts its cleanup) and sends its calls.
    fn phase(&mut self, from: ActorId, call: ProviderCall, set: u64, cx: &mut Cx<'_, Msg, Site>) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        match call {
            ProviderCall::PostFinalCommitSnapshots => client.begin_cleanup(),
            ProviderCall::AbortSnapshots => {
                cx.world.shadows.remove(&set);
                client.abort();
            }
            ProviderCall::DeleteSnapshots => {
                cx.world.shadows.remove(&set);
                client.resume();
            }
            _ => client.resume(),
        }
        self.waiting = Some((from, call, set));
        let status = client.status();
        self.on_status(status, cx);
    }
}

impl Actor<Msg, Site> for FssProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let Some(from) = env.sender() else {
            return;
        };
        match env.msg {
            Msg::Provider { call, set, volumes } => {
                cx.out.detail("provider", "File Share Shadow Copy Provider");
                if call == ProviderCall::CommitSnapshots {
                    // F4.3: HostVss's shadow copy request reaches the share's provider.
                    cx.out.detail("spec", "F4.3");
                }
                match call {
                    ProviderCall::BeginPrepareSnapshot => self.begin(from, call, set, &volumes, cx),
                    ProviderCall::EndPrepareSnapshots
                    | ProviderCall::CommitSnapshots
                    | ProviderCall::PostCommitSnapshots
                    | ProviderCall::PostFinalCommitSnapshots
                    | ProviderCall::DeleteSnapshots
                    | ProviderCall::AbortSnapshots
                        if self.client.is_some() =>
                    {
                        self.phase(from, call, set, cx)
                    }
                    _ => cx.out.send_after(
                        from,
                        1_000,
                        Msg::ProviderDone {
                            call,
                            result: Ok(()),
                        },
                    ),
                }
            }
            Msg::FsrvpResult { result } => self.on_reply(result, cx),
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[
            u8::from(self.client.is_some()),
            u8::from(self.waiting.is_some()),
        ]);
    }
}

/// The FSRVP server with the file server's VSS.
pub struct FssAgentActor {
    name: String,
    agent: FssAgent,
    timer: Option<TimerId>,
    /// The server's own VSS, which PrepareShadowCopySet, CommitShadowCopySet and
    /// ExposeShadowCopySet wait for (MS-FSRVP 3.1.4.13, 3.1.4.5, 3.1.4.6).
    local_vss: Option<ActorId>,
    /// The operation waiting for it: the caller, the operation and the set.
    waiting: Option<(ActorId, &'static str, Uuid)>,
    /// The set the local VSS has prepared and holds until the commit goes on with it.
    prepared: Option<Uuid>,
}

impl FssAgentActor {
    pub fn new(server: &str, agent: FssAgent) -> Self {
        FssAgentActor {
            name: format!("FssAgent@{server}"),
            agent,
            timer: None,
            local_vss: None,
            waiting: None,
            prepared: None,
        }
    }

    /// Prepare, Commit and Expose run the server's own VSS (`FileServerVss`) and wait
    /// for it.
    pub fn with_local_vss(mut self, vss: ActorId) -> Self {
        self.local_vss = Some(vss);
        self
    }

    /// Prepare, Commit or Expose with a local VSS: the agent asks it and waits (at most
    /// the caller's timeout); the answer leaves when it answers or the wait ends. A call
    /// the agent refuses (state, set, a fault) is answered at once.
    fn ask_local(
        &mut self,
        vss: ActorId,
        client: ActorId,
        call: FsrvpCall,
        cx: &mut Cx<'_, Msg, Site>,
    ) {
        let now = cx.out.now_us();
        let op = call.name();
        let asked = match &call {
            FsrvpCall::PrepareShadowCopySet { set_id, timeout_ms } => self
                .agent
                .begin_prepare(now, *set_id, *timeout_ms)
                .map(|volumes| (*set_id, Msg::LocalPrepare { volumes })),
            FsrvpCall::CommitShadowCopySet { set_id, timeout_ms } => self
                .agent
                .begin_commit(now, *set_id, *timeout_ms)
                .map(|volumes| (*set_id, Msg::LocalSnapshotSet { volumes })),
            FsrvpCall::ExposeShadowCopySet { set_id, timeout_ms } => self
                .agent
                .begin_expose(now, *set_id, *timeout_ms)
                .map(|copies| (*set_id, Msg::LocalExpose { copies })),
            _ => return,
        };
        match asked {
            Ok((set_id, msg)) => {
                cx.out
                    .detail("waits_s", u64::from(call.timeout_ms().unwrap_or(0)) / 1000);
                if matches!(msg, Msg::LocalSnapshotSet { .. }) {
                    // F4.4–F4.5: the commit relayed here goes to the server's own VSS.
                    cx.out.detail("spec", "F4.4-F4.5");
                }
                if matches!(msg, Msg::LocalSnapshotSet { .. }) && self.prepared == Some(set_id) {
                    // The commit goes on with the set the local VSS prepared.
                    self.prepared = None;
                }
                self.waiting = Some((client, op, set_id));
                cx.out.send(vss, msg);
            }
            Err(e) => {
                cx.out.detail("result", e.name());
                let delay = self.agent.reply_delay_us(&call).max(RPC_US);
                if delay > RPC_US {
                    cx.out.detail("answered_after_s", delay / 1_000_000);
                }
                cx.out
                    .send_after(client, delay, Msg::FsrvpResult { result: Err(e) });
            }
        }
        self.drop_orphan(vss, cx);
        self.arm(cx);
    }

    /// The local VSS answered `op`: within the wait, the operation's answer leaves;
    /// after it the agent has answered already and the late answer changes nothing (a
    /// set prepared late is dropped).
    fn local_done(
        &mut self,
        vss: ActorId,
        op: &str,
        local: Result<Option<Vec<(Uuid, String)>>, Fail>,
        cx: &mut Cx<'_, Msg, Site>,
    ) {
        let now = cx.out.now_us();
        let reply = match self.waiting.filter(|w| w.1 == op) {
            Some((client, _, set_id)) => {
                let failed = |_| FsrvpError::WaitFailed;
                let reply = match op {
                    "PrepareShadowCopySet" => {
                        let r =
                            self.agent
                                .end_prepare(now, set_id, local.map(|_| ()).map_err(failed));
                        if matches!(r, Some(Ok(_))) {
                            self.prepared = Some(set_id);
                        }
                        r
                    }
                    "CommitShadowCopySet" => {
                        self.agent
                            .end_commit(now, set_id, local.map(|_| ()).map_err(failed))
                    }
                    _ => self.agent.end_expose(
                        now,
                        set_id,
                        local.map(Option::unwrap_or_default).map_err(failed),
                    ),
                };
                reply.map(|r| (client, r))
            }
            None => None,
        };
        match reply {
            Some((client, reply)) => {
                self.waiting = None;
                match &reply {
                    Ok(_) => cx.out.detail("result", "S_OK"),
                    Err(e) => cx.out.detail("result", e.name()),
                }
                cx.out
                    .send_after(client, RPC_US, Msg::FsrvpResult { result: reply });
            }
            None => {
                cx.out.detail("late", "the wait had ended: nothing taken");
                if op == "PrepareShadowCopySet" {
                    cx.out.send(vss, Msg::LocalAbort);
                }
            }
        }
        self.arm(cx);
    }

    /// The wait ended before the local VSS answered: FSSAGENT_E_TIMEOUT for a commit
    /// (MS-FSRVP 3.1.4.5), FSRVP_E_WAIT_TIMEOUT for a prepare or an expose.
    fn wait_timed_out(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let Some((client, op, _)) = self.waiting else {
            return;
        };
        if self.agent.wait_end().is_some_and(|(o, _)| o == op) {
            return;
        }
        self.waiting = None;
        let e = if op == "CommitShadowCopySet" {
            FsrvpError::AgentTimeout
        } else {
            FsrvpError::WaitTimeout
        };
        cx.out.detail(
            match op {
                "PrepareShadowCopySet" => "prepare",
                "CommitShadowCopySet" => "commit",
                _ => "expose",
            },
            e.name(),
        );
        cx.out.send(client, Msg::FsrvpResult { result: Err(e) });
    }

    /// A set the local VSS prepared whose MS-FSRVP set went away (aborted, deleted by
    /// the timer, or stuck in a commit that never asked): the local VSS drops it, so its
    /// writers' sessions end (OnAbort).
    fn drop_orphan(&mut self, vss: ActorId, cx: &mut Cx<'_, Msg, Site>) {
        if let Some(id) = self.prepared {
            if self.agent.set_state(id) != Some(SetState::Added) {
                self.prepared = None;
                cx.out.send(vss, Msg::LocalAbort);
            }
        }
    }

    /// Keeps one scheduler timer on the agent's next message-sequence deadline.
    fn arm(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        if let Some(t) = self.timer.take() {
            cx.out.cancel_timer(t);
        }
        if let Some(at) = self.agent.next_deadline() {
            let delay = at.saturating_sub(cx.out.now_us());
            self.timer = Some(cx.out.set_timer(delay, Msg::FsrvpTimer));
        }
    }

    pub fn leftovers(&self) -> Vec<String> {
        self.agent.leftovers()
    }
}

impl Actor<Msg, Site> for FssAgentActor {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        match (env.msg, env.origin) {
            (Msg::Fsrvp { call }, Origin::Actor(client))
                if self.local_vss.is_some() && call.timeout_ms().is_some() =>
            {
                let vss = self.local_vss.expect("checked");
                self.ask_local(vss, client, call, cx)
            }
            (Msg::LocalPrepareDone { result }, Origin::Actor(vss)) => {
                self.local_done(vss, "PrepareShadowCopySet", result.map(|_| None), cx)
            }
            (Msg::LocalSnapshotSetDone { result }, Origin::Actor(vss)) => {
                self.local_done(vss, "CommitShadowCopySet", result.map(|_| None), cx)
            }
            (Msg::LocalExposeDone { result }, Origin::Actor(vss)) => {
                self.local_done(vss, "ExposeShadowCopySet", result.map(Some), cx)
            }
            (Msg::Fsrvp { call }, Origin::Actor(client)) => {
                let delay = self.agent.reply_delay_us(&call).max(RPC_US);
                let result = self.agent.call(cx.out.now_us(), true, call);
                match &result {
                    Ok(_) => cx.out.detail("result", "S_OK"),
                    Err(e) => cx.out.detail("result", e.name()),
                }
                if delay > RPC_US {
                    // A stuck operation: the answer leaves when the caller's wait ends.
                    cx.out.detail("answered_after_s", delay / 1_000_000);
                }
                cx.out
                    .send_after(client, delay, Msg::FsrvpResult { result });
                if let Some(vss) = self.local_vss {
                    self.drop_orphan(vss, cx);
                }
                self.arm(cx);
            }
            (Msg::FsrvpTimer, Origin::Timer(_)) => {
                self.timer = None;
                let now = cx.out.now_us();
                if let Some((op, _)) = self.agent.wait_end().filter(|(_, end)| *end <= now) {
                    // The operation's wait failed: the 180 s timer starts (a commit's
                    // set is back in Added, MS-FSRVP 3.1.4.5).
                    cx.out.detail("wait_ended", op);
                    cx.out.detail("message_sequence_timer", "180 s");
                }
                let expires = self
                    .agent
                    .message_sequence_deadline()
                    .is_some_and(|d| d <= now);
                let gone = self.agent.on_timer(now);
                if expires {
                    cx.out.detail("message_sequence_timer", "expired");
                }
                cx.out.detail("sets_deleted", gone.len() as u64);
                self.wait_timed_out(cx);
                if let Some(vss) = self.local_vss {
                    self.drop_orphan(vss, cx);
                }
                self.arm(cx);
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        self.agent.digest(h);
        if let Some((_, op, set)) = self.waiting {
            h.update(op.as_bytes()).update(set.as_bytes());
        }
        if let Some(set) = self.prepared {
            h.update(b"prepared").update(set.as_bytes());
        }
    }
}
