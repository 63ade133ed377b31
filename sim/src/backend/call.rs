//! What the requester asks of a host and what comes back: the calls and results that
//! cross the seam, as the same messages the model's trace shows.

use crate::protocol::msg::{Claim, Fail, Msg, SnapshotProp, VmmsOp};
use crate::protocol::vss::{VssCall, WriterStatus};

/// A requester's call to a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostCall {
    /// An `IVssBackupComponents` call to the host's VSS for snapshot set `set`, on the
    /// volumes of the task; `with_writers` is false for F3.5's bare volume snapshot.
    Vss {
        call: VssCall,
        set: u64,
        volumes: Vec<String>,
        with_writers: bool,
    },
    /// F3.3: a production checkpoint of a VM (WMI `CreateSnapshot`).
    CreateRecoveryCheckpoint { vm: usize },
    /// F3.4: the VM's recovery checkpoint merged back once read.
    MergeCheckpoint { vm: usize },
}

/// A host's answer to a [`HostCall`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostReply {
    /// `IVssAsync` finished for the call; DoSnapshotSet's carries the writers' claims
    /// on the VMs of the set (GetWriterComponents, GetSnapshotProperties).
    Vss {
        call: VssCall,
        set: u64,
        result: Result<(), Fail>,
        claims: Vec<Claim>,
        /// GatherWriterStatus: the writers' states and failures.
        writers: Vec<WriterStatus>,
        /// GetSnapshotProperties: the set's shadow copies and where each is read.
        snapshots: Vec<SnapshotProp>,
    },
    /// The WMI job of the call ended; a checkpoint's carries its claim (the checkpoint's
    /// properties).
    Vmms {
        op: VmmsOp,
        result: Result<(), Fail>,
        claim: Option<Claim>,
    },
}

impl HostCall {
    /// The call a message is, if it is one a requester makes. Vmms jobs the host starts
    /// itself (the Hyper-V writer's save, resume, backup checkpoints, auto-recovery) are
    /// not: they never cross the seam.
    pub fn from_msg(msg: &Msg) -> Option<HostCall> {
        match msg {
            Msg::Vss {
                call,
                set,
                volumes,
                with_writers,
            } => Some(HostCall::Vss {
                call: *call,
                set: *set,
                volumes: volumes.clone(),
                with_writers: *with_writers,
            }),
            Msg::Vmms(VmmsOp::CreateRecoveryCheckpoint { vm }) => {
                Some(HostCall::CreateRecoveryCheckpoint { vm: *vm })
            }
            Msg::Vmms(VmmsOp::MergeCheckpoint { vm }) => {
                Some(HostCall::MergeCheckpoint { vm: *vm })
            }
            _ => None,
        }
    }

    pub fn into_msg(self) -> Msg {
        match self {
            HostCall::Vss {
                call,
                set,
                volumes,
                with_writers,
            } => Msg::Vss {
                call,
                set,
                volumes,
                with_writers,
            },
            HostCall::CreateRecoveryCheckpoint { vm } => {
                Msg::Vmms(VmmsOp::CreateRecoveryCheckpoint { vm })
            }
            HostCall::MergeCheckpoint { vm } => Msg::Vmms(VmmsOp::MergeCheckpoint { vm }),
        }
    }

    /// The name the trace gives the call (the real API's).
    pub fn name(&self) -> &'static str {
        match self {
            HostCall::Vss { call, .. } => call.name(),
            HostCall::CreateRecoveryCheckpoint { vm } => {
                VmmsOp::CreateRecoveryCheckpoint { vm: *vm }.name()
            }
            HostCall::MergeCheckpoint { vm } => VmmsOp::MergeCheckpoint { vm: *vm }.name(),
        }
    }

    /// True for a call to the host's VSS, false for one to its Vmms.
    pub fn to_vss(&self) -> bool {
        matches!(self, HostCall::Vss { .. })
    }

    /// The host's answer to this call with `result`.
    pub fn answer(&self, result: Result<(), Fail>) -> HostReply {
        match self {
            HostCall::Vss { call, set, .. } => HostReply::Vss {
                call: *call,
                set: *set,
                result,
                claims: Vec::new(),
                writers: Vec::new(),
                snapshots: Vec::new(),
            },
            HostCall::CreateRecoveryCheckpoint { vm } => HostReply::Vmms {
                op: VmmsOp::CreateRecoveryCheckpoint { vm: *vm },
                result,
                claim: None,
            },
            HostCall::MergeCheckpoint { vm } => HostReply::Vmms {
                op: VmmsOp::MergeCheckpoint { vm: *vm },
                result,
                claim: None,
            },
        }
    }
}

impl HostReply {
    /// The reply a message is, if it answers a requester's call.
    pub fn from_msg(msg: &Msg) -> Option<HostReply> {
        match msg {
            Msg::VssDone {
                call,
                set,
                result,
                claims,
                writers,
                snapshots,
            } => Some(HostReply::Vss {
                call: *call,
                set: *set,
                result: result.clone(),
                claims: claims.clone(),
                writers: writers.clone(),
                snapshots: snapshots.clone(),
            }),
            Msg::VmmsDone { op, result, claim } => {
                HostCall::from_msg(&Msg::Vmms(op.clone()))?;
                Some(HostReply::Vmms {
                    op: op.clone(),
                    result: result.clone(),
                    claim: claim.clone(),
                })
            }
            _ => None,
        }
    }

    pub fn into_msg(self) -> Msg {
        match self {
            HostReply::Vss {
                call,
                set,
                result,
                claims,
                writers,
                snapshots,
            } => Msg::VssDone {
                call,
                set,
                result,
                claims,
                writers,
                snapshots,
            },
            HostReply::Vmms { op, result, claim } => Msg::VmmsDone { op, result, claim },
        }
    }

    /// The reply with the host's claims: all of them for a VSS call, the first for a
    /// Vmms job (one VM's).
    pub fn with_claims(self, given: Vec<Claim>) -> Self {
        match self {
            HostReply::Vss {
                call,
                set,
                result,
                writers,
                snapshots,
                ..
            } => HostReply::Vss {
                call,
                set,
                result,
                claims: given,
                writers,
                snapshots,
            },
            HostReply::Vmms { op, result, .. } => HostReply::Vmms {
                op,
                result,
                claim: given.into_iter().next(),
            },
        }
    }

    pub fn result(&self) -> &Result<(), Fail> {
        match self {
            HostReply::Vss { result, .. } | HostReply::Vmms { result, .. } => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{FailureClass, Hresult};

    fn calls() -> Vec<HostCall> {
        vec![
            HostCall::Vss {
                call: VssCall::DoSnapshotSet,
                set: 3,
                volumes: vec!["hv1-D".into()],
                with_writers: false,
            },
            HostCall::CreateRecoveryCheckpoint { vm: 1 },
            HostCall::MergeCheckpoint { vm: 2 },
        ]
    }

    #[test]
    fn a_call_survives_the_message_it_travels_as() {
        for c in calls() {
            let msg = c.clone().into_msg();
            assert_eq!(HostCall::from_msg(&msg), Some(c.clone()));
            // The trace names the call as the message does.
            assert_eq!(
                crate::sched::Message::event(&msg),
                c.name(),
                "{c:?} is traced under its own name"
            );
        }
    }

    #[test]
    fn host_internal_jobs_and_other_messages_are_not_requester_calls() {
        for op in [
            VmmsOp::SaveState { vm: 0 },
            VmmsOp::Resume { vm: 0 },
            VmmsOp::BackupCheckpoints {
                vm: 0,
                consistent: true,
            },
            VmmsOp::NamedBackupCheckpoint { vm: 0 },
            VmmsOp::CheckpointNow { vm: 0 },
            VmmsOp::AutoRecover { vm: 0, set: 1 },
        ] {
            assert_eq!(HostCall::from_msg(&Msg::Vmms(op.clone())), None, "{op:?}");
            let done = Msg::VmmsDone {
                op,
                result: Ok(()),
                claim: None,
            };
            assert_eq!(HostReply::from_msg(&done), None);
        }
        assert_eq!(HostCall::from_msg(&Msg::Start), None);
        assert_eq!(HostCall::from_msg(&Msg::ReadBackup { lane: 0 }), None);
    }

    #[test]
    fn an_answer_names_its_call_and_carries_the_code() {
        let fail = Fail::new(Hresult::VssEUnexpected, FailureClass::Host, "scripted");
        for c in calls() {
            let reply = c.answer(Err(fail.clone()));
            assert_eq!(reply.result(), &Err(fail.clone()));
            let msg = reply.clone().into_msg();
            assert_eq!(HostReply::from_msg(&msg), Some(reply));
            match (&c, msg) {
                (
                    HostCall::Vss { call, set, .. },
                    Msg::VssDone {
                        call: c2, set: s2, ..
                    },
                ) => {
                    assert_eq!((*call, *set), (c2, s2));
                }
                (HostCall::CreateRecoveryCheckpoint { vm }, Msg::VmmsDone { op, .. })
                | (HostCall::MergeCheckpoint { vm }, Msg::VmmsDone { op, .. }) => {
                    assert_eq!(op.vm(), *vm);
                    assert_eq!(op.name(), c.name());
                }
                (c, m) => panic!("{c:?} answered by {m:?}"),
            }
        }
        assert!(calls()[0].to_vss());
        assert!(!calls()[1].to_vss());
    }
}
