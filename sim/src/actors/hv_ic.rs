//! `HvIc`: the Hyper-V integration components' backup service in a guest. In a Windows
//! guest it is the guest's VSS requester ("Hyper-V Volume Shadow Copy Requestor"); in a
//! Linux guest it is the hv_snapshot channel to `hv_vss_daemon`.

use crate::linux::msg::HV_S_OK;
use crate::linux::{HvVssMsg, HvVssOp};
use crate::msg::{Fail, IcPurpose, Msg, Reached, VmmsOp};
use crate::scenario::{FailureClass, GuestOs, Hresult};
use crate::sched::{Actor, ActorId, Cx, Envelope};
use crate::vss::VssCall;
use crate::world::{Lab, Point};

fn hv_vss(op: HvVssOp) -> Msg {
    Msg::HvVss {
        msg: HvVssMsg::new(op).encode(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    /// Windows: waiting for a VSS call of the guest's backup.
    Vss(VssCall),
    /// Linux: FREEZE sent, then Vmms taking the checkpoint, then THAW sent.
    Freezing,
    Checkpointing,
    Thawing,
    /// Windows F1: the guest's set exists until the host is done (IcFinish).
    Holding,
}

pub struct HvIc {
    name: String,
    vm: usize,
    os: GuestOs,
    /// The guest's VSS (Windows) or the daemon channel (Linux).
    peer: Option<ActorId>,
    vmms: ActorId,
    asker: Option<ActorId>,
    purpose: IcPurpose,
    stage: Stage,
    set: u64,
    failure: Option<Fail>,
    /// What the guest reached, when it is ready.
    reached: Reached,
}

impl HvIc {
    pub fn new(
        vm_name: &str,
        vm: usize,
        os: GuestOs,
        peer: Option<ActorId>,
        vmms: ActorId,
    ) -> Self {
        HvIc {
            name: format!("HvIc@{vm_name}"),
            vm,
            os,
            peer,
            vmms,
            asker: None,
            purpose: IcPurpose::Checkpoint,
            stage: Stage::Idle,
            set: 0,
            failure: None,
            reached: Reached::Application,
        }
    }

    fn call(&mut self, call: VssCall, cx: &mut Cx<'_, Msg, Lab>) {
        let Some(vss) = self.peer else { return };
        self.stage = Stage::Vss(call);
        cx.out.send(
            vss,
            Msg::Vss {
                call,
                set: self.set,
                volumes: self.guest_volumes(cx.world),
                with_writers: true,
            },
        );
    }

    fn guest_volumes(&self, lab: &Lab) -> Vec<String> {
        lab.vms[self.vm]
            .disks
            .iter()
            .flat_map(|d| d.vols.iter().map(|v| v.mount.clone()))
            .collect()
    }

    fn ready(&mut self, result: Result<Reached, Fail>, cx: &mut Cx<'_, Msg, Lab>) {
        if result.is_ok() {
            super::tag(cx.world, &mut cx.out, self.vm, crate::plan::Stage::Ready);
        }
        if let Some(to) = self.asker.take() {
            let vm = self.vm;
            cx.out.send(to, Msg::IcReady { vm, result });
        }
    }

    fn on_vss_done(&mut self, call: VssCall, result: Result<(), Fail>, cx: &mut Cx<'_, Msg, Lab>) {
        match (call, result) {
            (VssCall::GatherWriterMetadata, Ok(())) => self.call(VssCall::PrepareForBackup, cx),
            (VssCall::PrepareForBackup, Ok(())) => self.call(VssCall::DoSnapshotSet, cx),
            (VssCall::DoSnapshotSet, Ok(())) => match self.purpose {
                // F1.6-7: the internal snapshot exists; the host may go on.
                IcPurpose::ChildVmSnapshot => {
                    self.stage = Stage::Holding;
                    self.ready(Ok(Reached::Application), cx);
                }
                // F2.8-9: the checkpoint is taken; the guest's backup is complete.
                IcPurpose::Checkpoint => {
                    self.reached = Reached::Application;
                    self.call(VssCall::BackupComplete, cx);
                }
            },
            (VssCall::BackupComplete, _) => {
                self.stage = Stage::Idle;
                if self.asker.is_some() {
                    let r = Ok(self.reached);
                    self.ready(r, cx);
                }
            }
            (VssCall::AbortBackup, _) => {
                self.stage = Stage::Idle;
                let f = self.failure.take().unwrap_or_else(|| {
                    Fail::new(Hresult::VssEUnexpected, FailureClass::Guest, "aborted")
                });
                self.ready(Err(f), cx);
            }
            (VssCall::GatherWriterMetadata, Err(f)) => {
                self.stage = Stage::Idle;
                self.ready(Err(f), cx);
            }
            (_, Err(f)) => {
                // After PrepareForBackup, every early stop goes through AbortBackup.
                self.failure = Some(f);
                self.call(VssCall::AbortBackup, cx);
            }
        }
    }

    fn on_hv_vss_reply(&mut self, op: HvVssOp, error: u32, cx: &mut Cx<'_, Msg, Lab>) {
        match (self.stage, op) {
            (Stage::Freezing, HvVssOp::Freeze) if error == HV_S_OK => {
                cx.world.vms[self.vm].capture(Point::Freeze);
                self.stage = Stage::Checkpointing;
                let vm = self.vm;
                cx.out
                    .send(self.vmms, Msg::Vmms(VmmsOp::CheckpointNow { vm }));
            }
            (Stage::Freezing, HvVssOp::Freeze) => {
                self.stage = Stage::Idle;
                let f = Fail::new(
                    Hresult::HvEFail,
                    FailureClass::Guest,
                    format!("hv_vss_daemon: FREEZE failed (0x{error:08X})"),
                );
                self.ready(Err(f), cx);
            }
            (Stage::Thawing, HvVssOp::Thaw) => {
                self.stage = Stage::Idle;
                match self.failure.take() {
                    Some(f) => self.ready(Err(f), cx),
                    None => self.ready(Ok(Reached::File), cx),
                }
            }
            _ => {}
        }
    }
}

impl Actor<Msg, Lab> for HvIc {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Lab>) {
        let from = env.sender().unwrap_or(cx.out.me());
        match env.msg {
            Msg::IcBackup { purpose } => {
                self.asker = Some(from);
                self.purpose = purpose;
                self.failure = None;
                match (self.os, self.peer) {
                    (GuestOs::Windows, Some(_)) => {
                        self.set += 1;
                        cx.out
                            .detail("guest_requester", "Hyper-V Volume Shadow Copy Requestor");
                        self.call(VssCall::GatherWriterMetadata, cx);
                    }
                    (GuestOs::Linux, Some(daemon)) => {
                        self.stage = Stage::Freezing;
                        cx.out.send(daemon, hv_vss(HvVssOp::Freeze));
                    }
                    _ => {
                        let f = Fail::new(
                            Hresult::HvEFail,
                            FailureClass::Guest,
                            "the guest has no backup integration service",
                        );
                        self.ready(Err(f), cx);
                    }
                }
            }
            Msg::IcFinish { ok } => {
                self.asker = Some(from);
                if self.stage == Stage::Holding {
                    self.reached = Reached::Application;
                    if ok {
                        self.call(VssCall::BackupComplete, cx);
                    } else {
                        self.failure = Some(Fail::new(
                            Hresult::VssEUnexpected,
                            FailureClass::Host,
                            "the host aborted",
                        ));
                        self.call(VssCall::AbortBackup, cx);
                    }
                } else {
                    self.ready(Ok(self.reached), cx);
                }
            }
            Msg::VssDone { call, result, .. } => self.on_vss_done(call, result, cx),
            Msg::HvVssReply { msg, status } => {
                if let Ok(m) = HvVssMsg::decode(&msg) {
                    self.on_hv_vss_reply(m.op, status, cx);
                }
            }
            Msg::VmmsDone { result, .. } if self.stage == Stage::Checkpointing => {
                if let Err(f) = result {
                    self.failure = Some(f);
                }
                self.stage = Stage::Thawing;
                if let Some(d) = self.peer {
                    cx.out.send(d, hv_vss(HvVssOp::Thaw));
                }
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(format!("{:?}{}", self.stage, self.set).as_bytes());
    }
}
