//! `FssAgent`: the server side of MS-FSRVP on the file server (F4.4–F4.7), a sans-IO state
//! machine. The caller passes virtual time (microseconds) into every call and fires the
//! message-sequence timer itself (`next_deadline` / `on_timer`).
//!
//! Choices where vss.md §5 is silent:
//! - Every operation checks the caller first (E_ACCESSDENIED), then the set id
//!   (FSRVP_E_SHADOWCOPYSET_ID_MISMATCH), then the state (FSRVP_E_BAD_STATE), then its
//!   arguments.
//! - A share path is `\\server\share` (an optional trailing `\`); anything else, or
//!   another server's name, is E_INVALIDARG. A share the server does not have is
//!   E_INVALIDARG too, for every call that names one (MS-FSRVP 3.1.4.9: the server
//!   verifies the share exists before asking whether its file store is supported; Samba's
//!   FSRVP server answers the same).
//! - A volume is in a set at most once (FSRVP_E_OBJECT_ALREADY_EXISTS for a second share
//!   on it, as for the same share twice), so each shadow copy maps exactly one share.
//! - GetShareMapping before Expose (and after RecoveryComplete) is FSRVP_E_BAD_STATE, not
//!   Windows Server 2012's 0x80042311.
//! - Timer values not in vss.md follow Samba's FSRVP server: Prepare 1800 s, Expose 180 s,
//!   and a successful GetShareMapping restarts it at 1800 s (the backup reads the shares
//!   before RecoveryComplete). SetContext restarts the timer at 180 s whatever runs;
//!   Abort and DeleteShareMapping leave it as it is.
//! - `creation_timestamp` is the virtual time of the commit, in microseconds.

use super::codes::*;
use super::file_server_vss::{guid, FileServerVss};
use hvsim_engine::volume::{SnapshotId, Volume};
use hvsim_engine::GuidGen;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const SEC: u64 = 1_000_000;
/// Message-sequence timer values (vss.md §5; Prepare and Expose as Samba's FSRVP server).
pub const TIMER_SET_CONTEXT_US: u64 = 180 * SEC;
pub const TIMER_START_US: u64 = 180 * SEC;
pub const TIMER_ADD_US: u64 = 1800 * SEC;
pub const TIMER_PREPARE_US: u64 = 1800 * SEC;
pub const TIMER_COMMIT_US: u64 = 180 * SEC;
pub const TIMER_EXPOSE_US: u64 = 180 * SEC;
/// After a Prepare, Commit or Expose whose wait failed (MS-FSRVP 3.1.4.5, 3.1.4.13).
pub const TIMER_FAILED_WAIT_US: u64 = 180 * SEC;
/// GetShareMapping restarts the timer with room for the backup's reads.
pub const TIMER_GET_SHARE_MAPPING_US: u64 = 1800 * SEC;

/// One FileServerVssAgent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsrvpCall {
    GetSupportedVersion,
    SetContext {
        context: u32,
    },
    StartShadowCopySet {
        client_set_id: Uuid,
    },
    AddToShadowCopySet {
        client_shadow_copy_id: Uuid,
        set_id: Uuid,
        share_path: String,
    },
    PrepareShadowCopySet {
        set_id: Uuid,
        timeout_ms: u32,
    },
    CommitShadowCopySet {
        set_id: Uuid,
        timeout_ms: u32,
    },
    ExposeShadowCopySet {
        set_id: Uuid,
        timeout_ms: u32,
    },
    RecoveryCompleteShadowCopySet {
        set_id: Uuid,
    },
    AbortShadowCopySet {
        set_id: Uuid,
    },
    IsPathSupported {
        share_path: String,
    },
    IsPathShadowCopied {
        share_path: String,
    },
    GetShareMapping {
        shadow_copy_id: Uuid,
        set_id: Uuid,
        share_path: String,
        level: u32,
    },
    DeleteShareMapping {
        set_id: Uuid,
        shadow_copy_id: Uuid,
        share_path: String,
    },
}

impl FsrvpCall {
    /// The operation number on the wire.
    pub fn opnum(&self) -> u32 {
        use FsrvpCall::*;
        match self {
            GetSupportedVersion => opnum::GET_SUPPORTED_VERSION,
            SetContext { .. } => opnum::SET_CONTEXT,
            StartShadowCopySet { .. } => opnum::START_SHADOW_COPY_SET,
            AddToShadowCopySet { .. } => opnum::ADD_TO_SHADOW_COPY_SET,
            CommitShadowCopySet { .. } => opnum::COMMIT_SHADOW_COPY_SET,
            ExposeShadowCopySet { .. } => opnum::EXPOSE_SHADOW_COPY_SET,
            RecoveryCompleteShadowCopySet { .. } => opnum::RECOVERY_COMPLETE_SHADOW_COPY_SET,
            AbortShadowCopySet { .. } => opnum::ABORT_SHADOW_COPY_SET,
            IsPathSupported { .. } => opnum::IS_PATH_SUPPORTED,
            IsPathShadowCopied { .. } => opnum::IS_PATH_SHADOW_COPIED,
            GetShareMapping { .. } => opnum::GET_SHARE_MAPPING,
            DeleteShareMapping { .. } => opnum::DELETE_SHARE_MAPPING,
            PrepareShadowCopySet { .. } => opnum::PREPARE_SHADOW_COPY_SET,
        }
    }

    /// The operation name (as in MS-FSRVP).
    pub fn name(&self) -> &'static str {
        use FsrvpCall::*;
        match self {
            GetSupportedVersion => "GetSupportedVersion",
            SetContext { .. } => "SetContext",
            StartShadowCopySet { .. } => "StartShadowCopySet",
            AddToShadowCopySet { .. } => "AddToShadowCopySet",
            CommitShadowCopySet { .. } => "CommitShadowCopySet",
            ExposeShadowCopySet { .. } => "ExposeShadowCopySet",
            RecoveryCompleteShadowCopySet { .. } => "RecoveryCompleteShadowCopySet",
            AbortShadowCopySet { .. } => "AbortShadowCopySet",
            IsPathSupported { .. } => "IsPathSupported",
            IsPathShadowCopied { .. } => "IsPathShadowCopied",
            GetShareMapping { .. } => "GetShareMapping",
            DeleteShareMapping { .. } => "DeleteShareMapping",
            PrepareShadowCopySet { .. } => "PrepareShadowCopySet",
        }
    }

    /// The caller's timeout, for the three operations that carry one.
    pub fn timeout_ms(&self) -> Option<u32> {
        match self {
            FsrvpCall::PrepareShadowCopySet { timeout_ms, .. }
            | FsrvpCall::CommitShadowCopySet { timeout_ms, .. }
            | FsrvpCall::ExposeShadowCopySet { timeout_ms, .. } => Some(*timeout_ms),
            _ => None,
        }
    }
}

/// FSSAGENT_SHARE_MAPPING_1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMapping1 {
    pub shadow_copy_set_id: Uuid,
    pub shadow_copy_id: Uuid,
    /// `\\server\share`.
    pub share_name_unc: String,
    /// `\\server\share@{GUID}`.
    pub shadow_copy_share_name: String,
    /// Virtual time of the commit, in microseconds.
    pub creation_timestamp: u64,
}

/// A committed shadow copy the agent asks its local VSS to expose (ExposeShadowCopySet,
/// MS-FSRVP 3.1.4.6): its id, the share it copies, the volume and the volume snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalShadowCopy {
    pub shadow_copy_id: Uuid,
    pub share: String,
    pub volume: String,
    pub snapshot: SnapshotId,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsrvpReply {
    Version {
        min: u32,
        max: u32,
    },
    Ok,
    SetId(Uuid),
    ShadowCopyId(Uuid),
    PathSupported {
        supported: bool,
        owner_machine_name: String,
    },
    PathShadowCopied {
        shadow_copy_present: bool,
        compatibility: u32,
    },
    ShareMapping(ShareMapping1),
}

/// The state of a shadow copy set on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetState {
    Started,
    Added,
    CreationInProgress,
    Committed,
    Exposed,
    Recovered,
}

impl SetState {
    pub fn name(self) -> &'static str {
        match self {
            SetState::Started => "Started",
            SetState::Added => "Added",
            SetState::CreationInProgress => "CreationInProgress",
            SetState::Committed => "Committed",
            SetState::Exposed => "Exposed",
            SetState::Recovered => "Recovered",
        }
    }
}

/// One shadow copy: the volume of one share (a volume is in a set at most once, so a
/// shadow copy has exactly one mapped share).
#[derive(Debug, Clone)]
struct ShadowCopy {
    /// Share name as configured on the server.
    share: String,
    volume: Volume,
    /// The volume snapshot, once committed.
    snapshot: Option<SnapshotId>,
    creation_timestamp: u64,
    /// MappedShare.ShadowCopyShareName once exposed (MappedShare.IsExposed): the share
    /// name the server's local VSS answered, `<ShareName>@{<GUID>}`.
    exposed_as: Option<String>,
}

#[derive(Debug, Clone)]
struct ShadowCopySet {
    client_id: Uuid,
    state: SetState,
    context: u32,
    /// By shadow copy id.
    copies: BTreeMap<Uuid, ShadowCopy>,
}

/// The File Share Shadow Copy Agent of one file server.
#[derive(Debug, Clone)]
pub struct FssAgent {
    server: String,
    vss: FileServerVss,
    guids: GuidGen,
    context: u32,
    context_set: bool,
    sets: BTreeMap<Uuid, ShadowCopySet>,
    /// The message-sequence timer: when it expires (virtual µs).
    deadline: Option<u64>,
    /// A Prepare, Commit or Expose whose wait never completes (fault injection): the
    /// message-sequence timer is stopped until the caller's timeout ends the wait.
    wait: Option<Wait>,
    /// Operations that never complete (fault injection).
    unresponsive: BTreeSet<&'static str>,
    /// Operations that fail with FSRVP_E_WAIT_FAILED (fault injection).
    failing: BTreeSet<&'static str>,
}

/// A stuck operation's wait (MS-FSRVP 3.1.4.5, 3.1.4.6, 3.1.4.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    op: &'static str,
    set: Uuid,
    /// When the caller's timeout ends it (virtual µs).
    end: u64,
}

/// A fault named an operation that does not wait on the server (`set_unresponsive`,
/// `set_failing` take only [`UNRESPONSIVE_OPS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FssAgent fault: {op:?} is not an MS-FSRVP operation that waits (one of PrepareShadowCopySet, CommitShadowCopySet, ExposeShadowCopySet)")]
pub struct NotAWaitingOperation {
    pub op: String,
}

/// The operation's name as [`UNRESPONSIVE_OPS`] spells it, or why not.
fn waiting_operation(op: &str) -> Result<&'static str, NotAWaitingOperation> {
    UNRESPONSIVE_OPS
        .iter()
        .copied()
        .find(|o| *o == op)
        .ok_or_else(|| NotAWaitingOperation { op: op.to_string() })
}

/// Operations `set_unresponsive` accepts.
pub const UNRESPONSIVE_OPS: [&str; 3] = [
    "PrepareShadowCopySet",
    "CommitShadowCopySet",
    "ExposeShadowCopySet",
];

impl FssAgent {
    /// `server` is the file server name (shares are `\\server\share`), `shares` maps share
    /// name -> the engine volume holding it.
    pub fn new(server: &str, shares: Vec<(String, Volume)>, guids: GuidGen) -> Self {
        FssAgent {
            server: server.to_string(),
            vss: FileServerVss::new(shares),
            guids,
            context: FSRVP_CTX_BACKUP,
            context_set: false,
            sets: BTreeMap::new(),
            deadline: None,
            wait: None,
            unresponsive: BTreeSet::new(),
            failing: BTreeSet::new(),
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether SetContext was called and the timer has not expired since.
    pub fn context_set(&self) -> bool {
        self.context_set
    }

    /// The current context (with its attributes).
    pub fn context(&self) -> u32 {
        self.context
    }

    /// The state of a set, if it exists.
    pub fn set_state(&self, set_id: Uuid) -> Option<SetState> {
        self.sets.get(&set_id).map(|s| s.state)
    }

    /// Ids of every set, in order.
    pub fn set_ids(&self) -> Vec<Uuid> {
        self.sets.keys().copied().collect()
    }

    /// Fault: the named operation ("PrepareShadowCopySet" | "CommitShadowCopySet" |
    /// "ExposeShadowCopySet") never completes on the server. Being sans-IO, `call` cannot
    /// block: it returns `Err(FsrvpError::WaitTimeout)` at once, and `reply_delay_us`
    /// tells the caller to deliver that answer only after the caller's own timeout.
    ///
    /// The message-sequence timer stops while the operation waits; when the caller's
    /// timeout ends the wait it starts at 180 s. What the stuck operation leaves behind:
    /// Prepare leaves the set Added (nothing was prepared); Commit keeps it
    /// CreationInProgress (an Abort then fails with FSRVP_E_BAD_STATE) until the wait
    /// ends, when the set returns to Added (MS-FSRVP 3.1.4.5; the answer is
    /// FSSAGENT_E_TIMEOUT, the code 3.1.4.5 gives a timed-out commit); Expose leaves it
    /// Committed with its snapshot unexposed (Abort is then a no-op, the timer deletes
    /// set and snapshot).
    ///
    /// Any other name is refused with [`NotAWaitingOperation`].
    pub fn set_unresponsive(&mut self, op: &str) -> Result<(), NotAWaitingOperation> {
        self.unresponsive.insert(waiting_operation(op)?);
        Ok(())
    }

    /// Fault: the named operation (same names as `set_unresponsive`) fails at once with
    /// FSRVP_E_WAIT_FAILED and restarts the timer at 180 s. A failed Commit returns the
    /// set to Added (its snapshots are dropped); a failed Prepare leaves it Added and a
    /// failed Expose leaves it Committed, nothing exposed. Any other name is refused with
    /// [`NotAWaitingOperation`].
    pub fn set_failing(&mut self, op: &str) -> Result<(), NotAWaitingOperation> {
        self.failing.insert(waiting_operation(op)?);
        Ok(())
    }

    /// Ends a `set_failing` fault.
    pub fn clear_failing(&mut self, op: &str) {
        self.failing.remove(op);
    }

    /// Ends a `set_unresponsive` fault.
    pub fn clear_unresponsive(&mut self, op: &str) {
        self.unresponsive.remove(op);
    }

    /// How long after the request its answer should be delivered: the caller's timeout
    /// for an unresponsive operation, else 0.
    pub fn reply_delay_us(&self, call: &FsrvpCall) -> u64 {
        match call.timeout_ms() {
            Some(ms) if self.unresponsive.contains(call.name()) => u64::from(ms) * 1000,
            _ => 0,
        }
    }

    /// The earliest virtual time at which the message-sequence timer expires or a stuck
    /// commit's wait ends (None when neither is pending).
    pub fn next_deadline(&self) -> Option<u64> {
        let wait_end = self.wait.map(|w| w.end);
        match (self.deadline, wait_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the message-sequence timer expires, if it runs.
    pub fn message_sequence_deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// The stuck operation and when its wait ends (the caller's timeout), if one waits.
    pub fn wait_end(&self) -> Option<(&'static str, u64)> {
        self.wait.map(|w| (w.op, w.end))
    }

    /// Ends a stuck operation's wait once the caller's timeout is over: a failed wait
    /// starts the message-sequence timer at 180 s, and a commit's set returns to Added
    /// (MS-FSRVP 3.1.4.5; Prepare's stays Added, Expose's Committed).
    fn end_wait(&mut self, now_us: u64) {
        let Some(w) = self.wait.filter(|w| w.end <= now_us) else {
            return;
        };
        self.wait = None;
        if w.op == "CommitShadowCopySet" {
            if let Some(set) = self.sets.get_mut(&w.set) {
                set.state = SetState::Added;
            }
        }
        self.restart_timer(w.end, TIMER_FAILED_WAIT_US);
    }

    /// Starts a stuck operation's wait: the answer leaves when it ends (`reply_delay_us`).
    fn stuck(&mut self, op: &'static str, set: Uuid, now_us: u64, timeout_ms: u32) {
        let end = now_us + u64::from(timeout_ms) * 1000;
        self.wait = Some(Wait { op, set, end });
    }

    /// Ends a stuck operation's wait and expires the message-sequence timer, whichever
    /// are due at `now_us`, in time order. An expiry deletes every set not Recovered (its
    /// snapshot and shares too) and clears ContextSet. Returns the ids of sets deleted.
    pub fn on_timer(&mut self, now_us: u64) -> Vec<Uuid> {
        self.catch_up(now_us, true)
    }

    /// Runs what fell due by `now_us` in time order (a timer due at `now_us` itself only
    /// when `at_now`): a stuck operation's wait ends, the message-sequence timer expires.
    fn catch_up(&mut self, now_us: u64, at_now: bool) -> Vec<Uuid> {
        let mut gone = Vec::new();
        loop {
            let timer = self
                .deadline
                .filter(|&d| d < now_us || (at_now && d == now_us));
            let wait = self.wait.map(|w| w.end).filter(|&e| e <= now_us);
            match (timer, wait) {
                (Some(d), w) if w.is_none_or(|e| d < e) => gone.extend(self.expire()),
                (_, Some(_)) => self.end_wait(now_us),
                _ => return gone,
            }
        }
    }

    /// The message-sequence timer expires.
    fn expire(&mut self) -> Vec<Uuid> {
        self.deadline = None;
        self.context_set = false;
        let doomed: Vec<Uuid> = self
            .sets
            .iter()
            .filter(|(_, s)| s.state != SetState::Recovered)
            .map(|(id, _)| *id)
            .collect();
        for id in &doomed {
            self.delete_set(*id);
        }
        doomed
    }

    /// Deletes a set with every snapshot it took.
    fn delete_set(&mut self, id: Uuid) {
        if self.wait.is_some_and(|w| w.set == id) {
            self.wait = None;
        }
        if let Some(set) = self.sets.remove(&id) {
            for sc in set.copies.values() {
                if let Some(snap) = sc.snapshot {
                    // Already gone only if someone deleted it behind the agent's back.
                    let _ = self.vss.delete(&sc.volume, snap);
                }
            }
        }
    }

    fn restart_timer(&mut self, now_us: u64, after_us: u64) {
        self.deadline = Some(now_us + after_us);
    }

    /// Handles one request. A timer already overdue (deadline before `now_us`) expires
    /// first; one due exactly at `now_us` is left to the caller's ordering of events.
    pub fn call(
        &mut self,
        now_us: u64,
        caller_is_backup_operator: bool,
        call: FsrvpCall,
    ) -> Result<FsrvpReply, FsrvpError> {
        // A stuck operation's wait ends with the caller's timeout, so a call at that
        // instant (the client's next request) already finds the wait over.
        self.catch_up(now_us, false);
        if !caller_is_backup_operator {
            return Err(FsrvpError::AccessDenied);
        }
        use FsrvpCall::*;
        match call {
            GetSupportedVersion => Ok(FsrvpReply::Version {
                min: FSRVP_RPC_VERSION_1,
                max: FSRVP_RPC_VERSION_1,
            }),
            SetContext { context } => {
                if !is_valid_context(context) {
                    return Err(FsrvpError::UnsupportedContext);
                }
                self.context = context;
                self.context_set = true;
                self.restart_timer(now_us, TIMER_SET_CONTEXT_US);
                Ok(FsrvpReply::Ok)
            }
            StartShadowCopySet { client_set_id } => {
                if !self.context_set {
                    return Err(FsrvpError::BadState);
                }
                if self.sets.values().any(|s| s.state != SetState::Recovered) {
                    return Err(FsrvpError::ShadowCopySetInProgress);
                }
                // The server picks the id (Windows ignores the client's).
                let id = self.guids.next_guid();
                self.sets.insert(
                    id,
                    ShadowCopySet {
                        client_id: client_set_id,
                        state: SetState::Started,
                        context: self.context,
                        copies: BTreeMap::new(),
                    },
                );
                self.restart_timer(now_us, TIMER_START_US);
                Ok(FsrvpReply::SetId(id))
            }
            AddToShadowCopySet {
                client_shadow_copy_id: _,
                set_id,
                share_path,
            } => self.add(now_us, set_id, &share_path),
            PrepareShadowCopySet { set_id, timeout_ms } => {
                // The local VSS prepares in no time here.
                self.begin_prepare(now_us, set_id, timeout_ms)?;
                self.end_prepare(now_us, set_id, Ok(()))
                    .unwrap_or(Err(FsrvpError::ShadowCopySetIdMismatch))
            }
            CommitShadowCopySet { set_id, timeout_ms } => self.commit(now_us, set_id, timeout_ms),
            ExposeShadowCopySet { set_id, timeout_ms } => self.expose(now_us, set_id, timeout_ms),
            RecoveryCompleteShadowCopySet { set_id } => {
                let set = self.set(set_id)?;
                if set.state != SetState::Exposed {
                    return Err(FsrvpError::BadState);
                }
                for sc in set.copies.values() {
                    if let Some(snap) = sc.snapshot {
                        self.vss
                            .end_auto_recovery(&sc.volume, snap)
                            .map_err(|_| FsrvpError::ObjectNotFound)?;
                    }
                }
                self.sets.get_mut(&set_id).expect("checked").state = SetState::Recovered;
                self.deadline = None;
                Ok(FsrvpReply::Ok)
            }
            AbortShadowCopySet { set_id } => match self.set(set_id)?.state {
                SetState::CreationInProgress => Err(FsrvpError::BadState),
                SetState::Committed | SetState::Exposed | SetState::Recovered => Ok(FsrvpReply::Ok),
                SetState::Started | SetState::Added => {
                    self.delete_set(set_id);
                    Ok(FsrvpReply::Ok)
                }
            },
            IsPathSupported { share_path } => {
                self.existing_share(&share_path)?;
                Ok(FsrvpReply::PathSupported {
                    supported: true,
                    owner_machine_name: self.server.clone(),
                })
            }
            IsPathShadowCopied { share_path } => {
                let (share, _) = self.existing_share(&share_path)?;
                let present = self.sets.values().any(|s| {
                    s.copies
                        .values()
                        .any(|c| c.share == share && c.snapshot.is_some())
                });
                Ok(FsrvpReply::PathShadowCopied {
                    shadow_copy_present: present,
                    compatibility: 0,
                })
            }
            GetShareMapping {
                shadow_copy_id,
                set_id,
                share_path,
                level,
            } => {
                let set = self.set(set_id)?;
                if set.state != SetState::Exposed {
                    return Err(FsrvpError::BadState);
                }
                if level != 1 {
                    return Err(FsrvpError::InvalidArg);
                }
                let (sc, share) = self.mapped(set_id, shadow_copy_id, &share_path)?;
                // The name the local VSS answered at Expose (MS-FSRVP 3.1.4.9:
                // ShadowCopyShareName is the mapped share's), not one made up here.
                let exposed = sc.exposed_as.clone().ok_or(FsrvpError::ObjectNotFound)?;
                let reply = FsrvpReply::ShareMapping(ShareMapping1 {
                    shadow_copy_set_id: set_id,
                    shadow_copy_id,
                    share_name_unc: format!(r"\\{}\{}", self.server, share),
                    shadow_copy_share_name: format!(r"\\{}\{}", self.server, exposed),
                    creation_timestamp: sc.creation_timestamp,
                });
                self.restart_timer(now_us, TIMER_GET_SHARE_MAPPING_US);
                Ok(reply)
            }
            DeleteShareMapping {
                set_id,
                shadow_copy_id,
                share_path,
            } => {
                let set = self.set(set_id)?;
                if !matches!(set.state, SetState::Exposed | SetState::Recovered) {
                    return Err(FsrvpError::BadState);
                }
                self.mapped(set_id, shadow_copy_id, &share_path)?;
                let set = self.sets.get_mut(&set_id).expect("checked");
                // The share was the shadow copy's last (only) mapping: the snapshot goes
                // with it, and the set once it holds no shadow copy.
                let sc = set.copies.remove(&shadow_copy_id).expect("checked");
                if let Some(snap) = sc.snapshot {
                    let _ = self.vss.delete(&sc.volume, snap);
                }
                if set.copies.is_empty() {
                    self.sets.remove(&set_id);
                }
                Ok(FsrvpReply::Ok)
            }
        }
    }

    fn set(&self, set_id: Uuid) -> Result<&ShadowCopySet, FsrvpError> {
        self.sets
            .get(&set_id)
            .ok_or(FsrvpError::ShadowCopySetIdMismatch)
    }

    /// `\\server\share` (an optional trailing `\`) -> `share`; E_INVALIDARG when the path
    /// is not a share of this server.
    fn parse_share_path<'a>(&self, path: &'a str) -> Result<&'a str, FsrvpError> {
        let rest = path.strip_prefix(r"\\").ok_or(FsrvpError::InvalidArg)?;
        let (server, share) = rest.split_once('\\').ok_or(FsrvpError::InvalidArg)?;
        let share = share.strip_suffix('\\').unwrap_or(share);
        if !server.eq_ignore_ascii_case(&self.server) || share.is_empty() || share.contains('\\') {
            return Err(FsrvpError::InvalidArg);
        }
        Ok(share)
    }

    /// The share `share_path` names, with its volume; E_INVALIDARG when this server has no
    /// such share (MS-FSRVP 3.1.4.9).
    fn existing_share(&self, share_path: &str) -> Result<(&str, &Volume), FsrvpError> {
        let name = self.parse_share_path(share_path)?;
        self.vss.share(name).ok_or(FsrvpError::InvalidArg)
    }

    /// The shadow copy `shadow_copy_id` of the set, checked to map `share_path`.
    fn mapped(
        &self,
        set_id: Uuid,
        shadow_copy_id: Uuid,
        share_path: &str,
    ) -> Result<(&ShadowCopy, String), FsrvpError> {
        let name = self.parse_share_path(share_path)?;
        let sc = self.sets[&set_id]
            .copies
            .get(&shadow_copy_id)
            .ok_or(FsrvpError::ObjectNotFound)?;
        if !sc.share.eq_ignore_ascii_case(name) {
            return Err(FsrvpError::ObjectNotFound);
        }
        Ok((sc, sc.share.clone()))
    }

    fn add(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        share_path: &str,
    ) -> Result<FsrvpReply, FsrvpError> {
        let state = self.set(set_id)?.state;
        if !matches!(state, SetState::Started | SetState::Added) {
            return Err(FsrvpError::BadState);
        }
        let (share, volume) = self.existing_share(share_path)?;
        let (share, volume) = (share.to_string(), volume.clone());
        let vol_name = volume.name();
        if self.sets[&set_id]
            .copies
            .values()
            .any(|c| c.volume.name() == vol_name)
        {
            return Err(FsrvpError::ObjectAlreadyExists);
        }
        let id = self.guids.next_guid();
        let set = self.sets.get_mut(&set_id).expect("checked");
        set.copies.insert(
            id,
            ShadowCopy {
                share,
                volume,
                snapshot: None,
                creation_timestamp: 0,
                exposed_as: None,
            },
        );
        set.state = SetState::Added;
        self.restart_timer(now_us, TIMER_ADD_US);
        Ok(FsrvpReply::ShadowCopyId(id))
    }

    /// MS-FSRVP 3.1.4.5 done at once: the server's local VSS answers in no time.
    fn commit(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        timeout_ms: u32,
    ) -> Result<FsrvpReply, FsrvpError> {
        self.begin_commit(now_us, set_id, timeout_ms)?;
        self.end_commit(now_us, set_id, Ok(()))
            .unwrap_or(Err(FsrvpError::ShadowCopySetIdMismatch))
    }

    /// The first half of the three operations that wait for the server's local VSS
    /// (MS-FSRVP 3.1.4.13, 3.1.4.5, 3.1.4.6): the set must be in `from`, the
    /// message-sequence timer stops and the wait starts, bounded by the caller's
    /// timeout. The faults of `set_unresponsive`/`set_failing` answer here: a stuck
    /// operation's answer leaves when its wait ends (`reply_delay_us`); a failed one
    /// starts the 180 s timer at once.
    fn begin_wait(
        &mut self,
        now_us: u64,
        op: &'static str,
        set_id: Uuid,
        from: SetState,
        timeout_ms: u32,
    ) -> Result<(), FsrvpError> {
        self.catch_up(now_us, false);
        if self.set(set_id)?.state != from {
            return Err(FsrvpError::BadState);
        }
        self.deadline = None;
        let committing = op == "CommitShadowCopySet";
        if committing {
            self.sets.get_mut(&set_id).expect("checked").state = SetState::CreationInProgress;
        }
        self.stuck(op, set_id, now_us, timeout_ms);
        if self.unresponsive.contains(op) {
            // A commit's set stays CreationInProgress until the wait ends.
            return Err(if committing {
                FsrvpError::AgentTimeout
            } else {
                FsrvpError::WaitTimeout
            });
        }
        if self.failing.contains(op) {
            self.wait = None;
            if committing {
                self.sets.get_mut(&set_id).expect("checked").state = SetState::Added;
            }
            self.restart_timer(now_us, TIMER_FAILED_WAIT_US);
            return Err(FsrvpError::WaitFailed);
        }
        Ok(())
    }

    /// Ends the wait of `op` on `set_id` when the local VSS answers within it; false
    /// when no such wait runs any more (it ended first: the late answer changes nothing).
    fn answered_within_wait(&mut self, now_us: u64, op: &str, set_id: Uuid) -> bool {
        self.catch_up(now_us, false);
        let waiting = self
            .wait
            .is_some_and(|w| w.op == op && w.set == set_id && w.end > now_us);
        if waiting {
            self.wait = None;
        }
        waiting
    }

    /// The volumes of a set's shadow copies, sorted.
    fn volumes(&self, set_id: Uuid) -> Vec<String> {
        let mut volumes: Vec<String> = self.sets[&set_id]
            .copies
            .values()
            .map(|c| c.volume.name())
            .collect();
        volumes.sort();
        volumes
    }

    /// PrepareShadowCopySet's first half (MS-FSRVP 3.1.4.13): from Added, the agent asks
    /// its local VSS to prepare the returned volumes (the writers' PrepareForSnapshot, the
    /// provider's BeginPrepareSnapshot / EndPrepareSnapshots) and waits at most the
    /// caller's timeout; `end_prepare` takes the answer. A wait that ends first answers
    /// FSRVP_E_WAIT_TIMEOUT, the set stays Added and the 180 s timer starts.
    pub fn begin_prepare(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        timeout_ms: u32,
    ) -> Result<Vec<String>, FsrvpError> {
        self.begin_wait(
            now_us,
            "PrepareShadowCopySet",
            set_id,
            SetState::Added,
            timeout_ms,
        )?;
        Ok(self.volumes(set_id))
    }

    /// PrepareShadowCopySet's second half: the local VSS answered. Within the wait a
    /// success starts the 1800 s timer (Samba's value), a failure is FSRVP_E_WAIT_FAILED
    /// with the 180 s timer; the set stays Added either way. `None` when the wait had
    /// ended first.
    pub fn end_prepare(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        local: Result<(), FsrvpError>,
    ) -> Option<Result<FsrvpReply, FsrvpError>> {
        if !self.answered_within_wait(now_us, "PrepareShadowCopySet", set_id) {
            return None;
        }
        Some(match local {
            Ok(()) => {
                self.restart_timer(now_us, TIMER_PREPARE_US);
                Ok(FsrvpReply::Ok)
            }
            Err(e) => {
                self.restart_timer(now_us, TIMER_FAILED_WAIT_US);
                Err(e)
            }
        })
    }

    /// CommitShadowCopySet's first half (MS-FSRVP 3.1.4.5): the set becomes
    /// CreationInProgress, the timer stops, and the agent waits (at most the caller's
    /// timeout) for its local VSS to shadow-copy the returned volumes; `end_commit` takes
    /// that answer. A wait that ends first returns the set to Added with the 180 s timer
    /// (see `on_timer`). The faults of `set_unresponsive`/`set_failing` answer here.
    pub fn begin_commit(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        timeout_ms: u32,
    ) -> Result<Vec<String>, FsrvpError> {
        self.begin_wait(
            now_us,
            "CommitShadowCopySet",
            set_id,
            SetState::Added,
            timeout_ms,
        )?;
        Ok(self.volumes(set_id))
    }

    /// CommitShadowCopySet's second half: the local VSS answered. Within the wait, a
    /// success takes the shadow copies (Committed) and a failure returns the set to
    /// Added; either starts the timer at 180 s. `None` when no commit of `set_id` waits
    /// any more (its wait ended first: the late answer changes nothing).
    pub fn end_commit(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        local: Result<(), FsrvpError>,
    ) -> Option<Result<FsrvpReply, FsrvpError>> {
        if !self.answered_within_wait(now_us, "CommitShadowCopySet", set_id) {
            return None;
        }
        let set = self.sets.get_mut(&set_id)?;
        self.deadline = Some(now_us + TIMER_COMMIT_US);
        if let Err(e) = local {
            set.state = SetState::Added;
            return Some(Err(e));
        }
        let auto_recovery = set.context & ATTR_AUTO_RECOVERY != 0;
        for sc in set.copies.values_mut() {
            sc.snapshot = Some(self.vss.create_shadow_copy(&sc.volume, auto_recovery));
            sc.creation_timestamp = now_us;
        }
        set.state = SetState::Committed;
        Some(Ok(FsrvpReply::Ok))
    }

    /// MS-FSRVP 3.1.4.6 done at once: the local VSS exposes in no time.
    fn expose(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        timeout_ms: u32,
    ) -> Result<FsrvpReply, FsrvpError> {
        let copies = self.begin_expose(now_us, set_id, timeout_ms)?;
        let set = &self.sets[&set_id];
        let exposed = copies
            .iter()
            .map(|c| {
                let volume = &set.copies[&c.shadow_copy_id].volume;
                self.vss
                    .expose(volume, c.snapshot, &c.share, c.shadow_copy_id)
                    .map(|name| (c.shadow_copy_id, name))
                    .map_err(|_| FsrvpError::ObjectNotFound)
            })
            .collect();
        self.end_expose(now_us, set_id, exposed)
            .unwrap_or(Err(FsrvpError::ShadowCopySetIdMismatch))
    }

    /// ExposeShadowCopySet's first half (MS-FSRVP 3.1.4.6): from Committed, the agent
    /// asks its local VSS to expose each returned shadow copy as a share and waits at
    /// most the caller's timeout; `end_expose` takes the names it answers. A wait that
    /// ends first answers FSRVP_E_WAIT_TIMEOUT and leaves the set Committed with the
    /// 180 s timer, which deletes the copies (and any share exposed late) with the set.
    pub fn begin_expose(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        timeout_ms: u32,
    ) -> Result<Vec<LocalShadowCopy>, FsrvpError> {
        self.begin_wait(
            now_us,
            "ExposeShadowCopySet",
            set_id,
            SetState::Committed,
            timeout_ms,
        )?;
        Ok(self.sets[&set_id]
            .copies
            .iter()
            .filter_map(|(id, sc)| {
                Some(LocalShadowCopy {
                    shadow_copy_id: *id,
                    share: sc.share.clone(),
                    volume: sc.volume.name(),
                    snapshot: sc.snapshot?,
                })
            })
            .collect())
    }

    /// ExposeShadowCopySet's second half: the local VSS answered with the share name of
    /// each shadow copy (`<ShareName>@{<GUID>}`). Within the wait, the names are the
    /// mapped shares' (GetShareMapping answers them), the set is Exposed and the timer
    /// starts at 180 s; a failure, or a shadow copy left unnamed, is an error that leaves
    /// the set Committed with the 180 s timer. `None` when the wait had ended first.
    pub fn end_expose(
        &mut self,
        now_us: u64,
        set_id: Uuid,
        local: Result<Vec<(Uuid, String)>, FsrvpError>,
    ) -> Option<Result<FsrvpReply, FsrvpError>> {
        if !self.answered_within_wait(now_us, "ExposeShadowCopySet", set_id) {
            return None;
        }
        self.restart_timer(now_us, TIMER_FAILED_WAIT_US);
        let set = self.sets.get_mut(&set_id)?;
        let names = match local {
            Ok(names) => names,
            Err(e) => return Some(Err(e)),
        };
        if set
            .copies
            .keys()
            .any(|id| !names.iter().any(|(n, _)| n == id))
        {
            return Some(Err(FsrvpError::ObjectNotFound));
        }
        for (id, name) in names {
            if let Some(sc) = set.copies.get_mut(&id) {
                sc.exposed_as = Some(name);
            }
        }
        set.state = SetState::Exposed;
        self.restart_timer(now_us, TIMER_EXPOSE_US);
        Some(Ok(FsrvpReply::Ok))
    }

    /// What still exists: exposed shares and snapshots (for the I3 no-leftovers
    /// invariant), as human-readable strings, sorted.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (set_id, set) in &self.sets {
            for sc in set.copies.values() {
                if let Some(snap) = sc.snapshot {
                    out.push(format!(
                        "snapshot {} of volume {} (share {}, set {{{}}}, {})",
                        snap,
                        sc.volume.name(),
                        sc.share,
                        guid(*set_id),
                        set.state.name()
                    ));
                }
                if let Some(name) = &sc.exposed_as {
                    out.push(format!(r"share \\{}\{}", self.server, name));
                }
            }
        }
        out.sort();
        out
    }

    /// The whole state, in a fixed order.
    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(b"FssAgent");
        put_str(h, &self.server);
        for name in self.vss.share_names() {
            put_str(h, &name);
        }
        h.update(&self.context.to_le_bytes());
        h.update(&[self.context_set as u8]);
        match self.deadline {
            Some(d) => h.update(&[1]).update(&d.to_le_bytes()),
            None => h.update(&[0]),
        };
        match self.wait {
            Some(w) => {
                h.update(&[1]);
                put_str(h, w.op);
                h.update(w.set.as_bytes()).update(&w.end.to_le_bytes())
            }
            None => h.update(&[0]),
        };
        h.update(&(self.unresponsive.len() as u64).to_le_bytes());
        for op in &self.unresponsive {
            put_str(h, op);
        }
        h.update(&(self.failing.len() as u64).to_le_bytes());
        for op in &self.failing {
            put_str(h, op);
        }
        h.update(&(self.sets.len() as u64).to_le_bytes());
        for (id, set) in &self.sets {
            h.update(id.as_bytes());
            h.update(set.client_id.as_bytes());
            h.update(&[set.state as u8]);
            h.update(&set.context.to_le_bytes());
            h.update(&(set.copies.len() as u64).to_le_bytes());
            for (scid, sc) in &set.copies {
                h.update(scid.as_bytes());
                put_str(h, &sc.share);
                put_str(h, &sc.volume.name());
                match sc.snapshot {
                    Some(s) => h.update(&[1]).update(&s.to_le_bytes()),
                    None => h.update(&[0]),
                };
                h.update(&sc.creation_timestamp.to_le_bytes());
                match &sc.exposed_as {
                    Some(name) => put_str(h.update(&[1]), name),
                    None => {
                        h.update(&[0]);
                    }
                }
            }
        }
    }
}

fn put_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}
