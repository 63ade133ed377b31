//! `FssClient`: the FssProvider's side of MS-FSRVP on the Hyper-V host (F4.3, F4.4, F4.7,
//! F4.8) as a pure state machine. The caller takes each request from `next_call`, delivers
//! it to the file server's agent and hands the answer to `on_reply`.
//!
//! Order (vss.md §5): IsPathSupported ×N → GetSupportedVersion → SetContext → Start →
//! AddToShadowCopySet ×N → Prepare → Commit → Expose → GetShareMapping ×N, then `Done`.
//! The cleanup phase (`begin_cleanup`, after the backup read the shares):
//! RecoveryCompleteShadowCopySet → DeleteShareMapping ×N. A failure once the set exists
//! (and before `Done`) is followed by AbortShadowCopySet before `Failed` is reported.
//!
//! One client talks to one file server: every share belongs to the server named by the
//! first IsPathSupported answer (`owner_machine_name`), where the caller reconnects.
//!
//! A `phased` client follows the host's VSS provider phases (SPEC F4 phase mapping,
//! MS-FSRVP 3.2.4.2): it pauses before PrepareShadowCopySet, CommitShadowCopySet,
//! ExposeShadowCopySet and DeleteShareMapping until `resume`, and `abort` ends the set
//! from wherever it paused.

use super::agent::{FsrvpCall, FsrvpReply, ShareMapping1};
use super::codes::{FsrvpError, ATTR_AUTO_RECOVERY, FSRVP_CTX_BACKUP, FSRVP_RPC_VERSION_1};
use uuid::Uuid;

/// Provider-side limits (vss.md §5): prepare within 30 min, commit within 60 s, expose
/// within 30 min.
pub const PREPARE_TIMEOUT_MS: u32 = 30 * 60 * 1000;
pub const COMMIT_TIMEOUT_MS: u32 = 60 * 1000;
pub const EXPOSE_TIMEOUT_MS: u32 = 30 * 60 * 1000;

/// The context the provider sets for a host-level Hyper-V backup: BACKUP with
/// auto-recovery, since the Hyper-V writer fixes the shadow copy after it is taken
/// (vss.md §3).
pub const HOST_BACKUP_CONTEXT: u32 = FSRVP_CTX_BACKUP | ATTR_AUTO_RECOVERY;

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientStatus {
    /// Take the next request from `next_call`.
    Continue,
    /// The shadow copies are exposed: one mapping per share, in the order of the shares.
    Done { mappings: Vec<ShareMapping1> },
    /// `op` failed with `error` (any abort has been sent and answered already).
    Failed { op: &'static str, error: FsrvpError },
    /// The cleanup phase ended: recovery completed, every mapping deleted.
    CleanedUp,
    /// A phased client waits for `resume` before sending `next`.
    Paused { next: &'static str },
    /// `abort` ended the set (AbortShadowCopySet answered, or nothing was left to abort).
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    IsPathSupported(usize),
    GetSupportedVersion,
    SetContext,
    Start,
    Add(usize),
    Prepare,
    Commit,
    Expose,
    GetMapping(usize),
    Done,
    RecoveryComplete,
    Delete(usize),
    CleanedUp,
    Abort,
    Failed,
    Aborted,
}

/// The FssProvider's sequence for one shadow copy set on one file server.
#[derive(Debug, Clone)]
pub struct FssClient {
    shares: Vec<String>,
    context: u32,
    client_set_id: Uuid,
    step: Step,
    awaiting: bool,
    owner_machine_name: Option<String>,
    set_id: Option<Uuid>,
    shadow_copy_ids: Vec<Uuid>,
    mappings: Vec<ShareMapping1>,
    failure: Option<(&'static str, FsrvpError)>,
    abort_result: Option<Result<(), FsrvpError>>,
    /// Pauses before each phase's first call (SPEC F4 phase mapping).
    phased: bool,
    /// The pause at the current step was lifted by `resume`.
    resumed: bool,
}

impl FssClient {
    /// `shares` are UNC paths `\\server\share`.
    pub fn new(shares: Vec<String>) -> Self {
        FssClient {
            shares,
            context: HOST_BACKUP_CONTEXT,
            client_set_id: Uuid::nil(),
            step: Step::IsPathSupported(0),
            awaiting: false,
            owner_machine_name: None,
            set_id: None,
            shadow_copy_ids: Vec::new(),
            mappings: Vec::new(),
            failure: None,
            abort_result: None,
            phased: false,
            resumed: false,
        }
    }

    /// Pauses before PrepareShadowCopySet, CommitShadowCopySet, ExposeShadowCopySet and
    /// DeleteShareMapping, so each runs in its VSS provider phase.
    pub fn phased(mut self) -> Self {
        self.phased = true;
        self
    }

    /// Whether the client holds before sending the current step.
    fn paused(&self) -> bool {
        self.phased
            && !self.resumed
            && !self.awaiting
            && matches!(
                self.step,
                Step::Prepare | Step::Commit | Step::Expose | Step::Delete(0)
            )
    }

    /// Lifts the current pause: the next phase's calls may go.
    pub fn resume(&mut self) {
        if self.paused() {
            self.resumed = true;
        }
    }

    /// Ends the set on the host's AbortSnapshots: AbortShadowCopySet while the set is not
    /// exposed (a no-op on the server once committed: its timer deletes the copy), the
    /// share mappings once it is; nothing before the set exists.
    pub fn abort(&mut self) {
        if self.awaiting {
            return;
        }
        self.resumed = true;
        self.step = match self.step {
            _ if self.set_id.is_none() => Step::Aborted,
            Step::Add(_) | Step::Prepare | Step::Commit | Step::Expose => Step::Abort,
            Step::Done | Step::RecoveryComplete | Step::Delete(_) if !self.shares.is_empty() => {
                Step::Delete(0)
            }
            Step::Done | Step::RecoveryComplete | Step::Delete(_) => Step::CleanedUp,
            other => other,
        };
    }

    /// Another SetContext value (default `HOST_BACKUP_CONTEXT`).
    pub fn with_context(mut self, context: u32) -> Self {
        self.context = context;
        self
    }

    /// The id sent with StartShadowCopySet (the server ignores it; default nil).
    pub fn with_client_set_id(mut self, id: Uuid) -> Self {
        self.client_set_id = id;
        self
    }

    /// The server that owns the shares, once IsPathSupported answered.
    pub fn owner_machine_name(&self) -> Option<&str> {
        self.owner_machine_name.as_deref()
    }

    /// The server's id of the shadow copy set, once started.
    pub fn set_id(&self) -> Option<Uuid> {
        self.set_id
    }

    /// The shadow copy ids, in the order of the shares.
    pub fn shadow_copy_ids(&self) -> &[Uuid] {
        &self.shadow_copy_ids
    }

    /// What the AbortShadowCopySet after a failure returned (None if none was sent).
    pub fn abort_result(&self) -> Option<Result<(), FsrvpError>> {
        self.abort_result
    }

    /// The next request, or None while an answer is awaited or when nothing is left to
    /// send (Done, Failed, CleanedUp).
    pub fn next_call(&mut self) -> Option<FsrvpCall> {
        if self.awaiting || self.paused() {
            return None;
        }
        self.resumed = false;
        let set_id = self.set_id.unwrap_or_default();
        let call = match self.step {
            Step::IsPathSupported(i) => FsrvpCall::IsPathSupported {
                share_path: self.shares[i].clone(),
            },
            Step::GetSupportedVersion => FsrvpCall::GetSupportedVersion,
            Step::SetContext => FsrvpCall::SetContext {
                context: self.context,
            },
            Step::Start => FsrvpCall::StartShadowCopySet {
                client_set_id: self.client_set_id,
            },
            Step::Add(i) => FsrvpCall::AddToShadowCopySet {
                client_shadow_copy_id: Uuid::nil(),
                set_id,
                share_path: self.shares[i].clone(),
            },
            Step::Prepare => FsrvpCall::PrepareShadowCopySet {
                set_id,
                timeout_ms: PREPARE_TIMEOUT_MS,
            },
            Step::Commit => FsrvpCall::CommitShadowCopySet {
                set_id,
                timeout_ms: COMMIT_TIMEOUT_MS,
            },
            Step::Expose => FsrvpCall::ExposeShadowCopySet {
                set_id,
                timeout_ms: EXPOSE_TIMEOUT_MS,
            },
            Step::GetMapping(i) => FsrvpCall::GetShareMapping {
                shadow_copy_id: self.shadow_copy_ids[i],
                set_id,
                share_path: self.shares[i].clone(),
                level: 1,
            },
            Step::RecoveryComplete => FsrvpCall::RecoveryCompleteShadowCopySet { set_id },
            Step::Delete(i) => FsrvpCall::DeleteShareMapping {
                set_id,
                shadow_copy_id: self.shadow_copy_ids[i],
                share_path: self.shares[i].clone(),
            },
            Step::Abort => FsrvpCall::AbortShadowCopySet { set_id },
            Step::Done | Step::CleanedUp | Step::Failed | Step::Aborted => return None,
        };
        self.awaiting = true;
        Some(call)
    }

    /// Starts the cleanup phase after `Done`: RecoveryComplete, then DeleteShareMapping
    /// for every share. Does nothing in any other state.
    pub fn begin_cleanup(&mut self) {
        if self.step == Step::Done {
            self.step = Step::RecoveryComplete;
        }
    }

    /// The status without a new answer.
    pub fn status(&self) -> ClientStatus {
        if self.paused() {
            return ClientStatus::Paused {
                next: self.op_name(),
            };
        }
        match self.step {
            Step::Done => ClientStatus::Done {
                mappings: self.mappings.clone(),
            },
            Step::CleanedUp => ClientStatus::CleanedUp,
            Step::Aborted => ClientStatus::Aborted,
            Step::Failed => {
                let (op, error) = self.failure.expect("failed with a cause");
                ClientStatus::Failed { op, error }
            }
            _ => ClientStatus::Continue,
        }
    }

    fn op_name(&self) -> &'static str {
        match self.step {
            Step::IsPathSupported(_) => "IsPathSupported",
            Step::GetSupportedVersion => "GetSupportedVersion",
            Step::SetContext => "SetContext",
            Step::Start => "StartShadowCopySet",
            Step::Add(_) => "AddToShadowCopySet",
            Step::Prepare => "PrepareShadowCopySet",
            Step::Commit => "CommitShadowCopySet",
            Step::Expose => "ExposeShadowCopySet",
            Step::GetMapping(_) => "GetShareMapping",
            Step::RecoveryComplete => "RecoveryCompleteShadowCopySet",
            Step::Delete(_) => "DeleteShareMapping",
            Step::Abort => "AbortShadowCopySet",
            Step::Done | Step::CleanedUp | Step::Failed | Step::Aborted => "",
        }
    }

    /// The answer to the request last taken from `next_call`. An answer nobody waits for
    /// changes nothing.
    pub fn on_reply(&mut self, r: Result<FsrvpReply, FsrvpError>) -> ClientStatus {
        if !self.awaiting {
            return self.status();
        }
        self.awaiting = false;
        if self.step == Step::Abort {
            self.abort_result = Some(r.map(|_| ()));
            // A failed call's abort reports the failure; a requested one just ends.
            self.step = if self.failure.is_some() {
                Step::Failed
            } else {
                Step::Aborted
            };
            return self.status();
        }
        let op = self.op_name();
        match self.advance(r) {
            Ok(()) => self.status(),
            Err(error) => {
                self.failure = Some((op, error));
                let set_exists = self.set_id.is_some()
                    && matches!(
                        self.step,
                        Step::Add(_)
                            | Step::Prepare
                            | Step::Commit
                            | Step::Expose
                            | Step::GetMapping(_)
                    );
                if set_exists {
                    self.step = Step::Abort;
                    ClientStatus::Continue
                } else {
                    self.step = Step::Failed;
                    self.status()
                }
            }
        }
    }

    /// Moves to the next step on a good answer.
    fn advance(&mut self, r: Result<FsrvpReply, FsrvpError>) -> Result<(), FsrvpError> {
        let reply = r?;
        let n = self.shares.len();
        // An answer of the wrong kind is a broken peer: treated as out of sequence.
        let wrong = FsrvpError::BadState;
        self.step = match (self.step, reply) {
            (
                Step::IsPathSupported(i),
                FsrvpReply::PathSupported {
                    supported,
                    owner_machine_name,
                },
            ) => {
                if !supported {
                    return Err(FsrvpError::NotSupported);
                }
                self.owner_machine_name.get_or_insert(owner_machine_name);
                if i + 1 < n {
                    Step::IsPathSupported(i + 1)
                } else {
                    Step::GetSupportedVersion
                }
            }
            (Step::GetSupportedVersion, FsrvpReply::Version { min, max }) => {
                if !(min..=max).contains(&FSRVP_RPC_VERSION_1) {
                    return Err(FsrvpError::NotSupported);
                }
                Step::SetContext
            }
            (Step::SetContext, FsrvpReply::Ok) => Step::Start,
            (Step::Start, FsrvpReply::SetId(id)) => {
                self.set_id = Some(id);
                if n == 0 {
                    Step::Prepare
                } else {
                    Step::Add(0)
                }
            }
            (Step::Add(i), FsrvpReply::ShadowCopyId(id)) => {
                self.shadow_copy_ids.push(id);
                if i + 1 < n {
                    Step::Add(i + 1)
                } else {
                    Step::Prepare
                }
            }
            (Step::Prepare, FsrvpReply::Ok) => Step::Commit,
            (Step::Commit, FsrvpReply::Ok) => Step::Expose,
            (Step::Expose, FsrvpReply::Ok) => {
                if n == 0 {
                    Step::Done
                } else {
                    Step::GetMapping(0)
                }
            }
            (Step::GetMapping(i), FsrvpReply::ShareMapping(m)) => {
                self.mappings.push(m);
                if i + 1 < n {
                    Step::GetMapping(i + 1)
                } else {
                    Step::Done
                }
            }
            (Step::RecoveryComplete, FsrvpReply::Ok) => {
                if n == 0 {
                    Step::CleanedUp
                } else {
                    Step::Delete(0)
                }
            }
            (Step::Delete(i), FsrvpReply::Ok) => {
                if i + 1 < n {
                    Step::Delete(i + 1)
                } else {
                    Step::CleanedUp
                }
            }
            _ => return Err(wrong),
        };
        Ok(())
    }
}
