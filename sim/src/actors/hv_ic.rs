//! `HvIc`: the Hyper-V integration components' backup service in a guest. Its decisions
//! are [`crate::protocol::ic`]'s; this adapter names the guest's volumes in its VSS
//! calls, encodes hv_vss messages and records the freeze instant.

use std::collections::BTreeMap;

use crate::linux::{HvVssMsg, HvVssOp};
use crate::protocol::ic::{IcCore, IcEffect};
use crate::protocol::msg::Msg;
use crate::protocol::vss::{VssCall, WriterStatus};
use crate::scenario::{FileSystem, GuestOs};
use crate::sched::{Actor, ActorId, Cx, Envelope};
use crate::site::Site;
use crate::world::{Lab, Point};

fn hv_vss(op: HvVssOp) -> Msg {
    Msg::HvVss {
        msg: HvVssMsg::new(op).encode(),
    }
}

pub struct HvIc {
    name: String,
    vm: usize,
    core: IcCore,
    /// Every host's Vmms: the VM's owner node's answers for it (R11).
    vmms_of: BTreeMap<String, ActorId>,
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
            core: IcCore::new(vm, os, peer, vmms),
            vmms_of: BTreeMap::new(),
        }
    }

    /// Follows the VM to whichever host owns it, of `vmms_of` (host name → its Vmms).
    pub fn following_owner(mut self, vmms_of: BTreeMap<String, ActorId>) -> Self {
        self.vmms_of = vmms_of;
        self
    }

    /// The volumes the guest's requester adds to its snapshot set: those VSS can
    /// shadow-copy (NTFS, ReFS); a FAT32 EFI partition stays out (R4).
    fn guest_volumes(&self, lab: &Lab) -> Vec<String> {
        lab.vms[self.vm]
            .disks
            .iter()
            .flat_map(|d| d.vols.iter())
            .filter(|v| matches!(v.fs, FileSystem::Ntfs | FileSystem::Refs))
            .map(|v| v.mount.clone())
            .collect()
    }

    fn apply(&self, effects: Vec<IcEffect>, cx: &mut Cx<'_, Msg, Site>) {
        for effect in effects {
            match effect {
                IcEffect::GuestRequester => cx
                    .out
                    .detail("guest_requester", "Hyper-V Volume Shadow Copy Requestor"),
                IcEffect::CallVss { to, call, set } => {
                    let volumes = self.guest_volumes(cx.world);
                    cx.out.send(
                        to,
                        Msg::Vss {
                            call,
                            set,
                            volumes,
                            with_writers: true,
                        },
                    );
                }
                IcEffect::HvVss { to, op } => cx.out.send(to, hv_vss(op)),
                IcEffect::Froze => cx.world.vms[self.vm].capture(Point::Freeze),
                IcEffect::HotBackup { no_auto_recovery } => {
                    cx.world.vms[self.vm].no_auto_recovery = no_auto_recovery;
                    if no_auto_recovery {
                        cx.out.detail(
                            "auto_recovery",
                            "none: the guest answered VSS_HBU_NO_AUTO_RECOVERY (R5)",
                        );
                    }
                }
                IcEffect::Ready => {
                    super::tag(cx.world, &mut cx.out, self.vm, crate::plan::Stage::Ready)
                }
                IcEffect::Send { to, msg } => cx.out.send(to, msg),
            }
        }
    }
}

impl Actor<Msg, Site> for HvIc {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let from = env.sender().unwrap_or(cx.out.me());
        if let Some(&vmms) = self.vmms_of.get(&cx.world.vms[self.vm].host) {
            self.core.set_vmms(vmms);
        }
        let effects = match env.msg {
            Msg::IcBackup { purpose } => {
                let iscsi = cx
                    .world
                    .scenario
                    .vm(&cx.world.vms[self.vm].name)
                    .and_then(|v| v.disks.iter().flat_map(|d| &d.volumes).find(|g| g.iscsi))
                    .map(|g| g.mount.clone());
                self.core.set_unsupported_volume(iscsi);
                self.core.on_backup(from, purpose)
            }
            Msg::IcFinish { ok } => self.core.on_finish(from, ok),
            Msg::VssDone {
                call,
                result,
                writers,
                ..
            } => {
                if call == VssCall::GatherWriterStatus && result.is_ok() {
                    let registered = cx.world.vms[self.vm].writers;
                    self.core.writer_status(writers.len(), registered);
                }
                // GetWriterStatus: a failed writer's failure is the call's outcome.
                let result = match WriterStatus::first_failure(&writers) {
                    Some(f) if call == VssCall::GatherWriterStatus => Err(f),
                    _ => result,
                };
                self.core.on_vss_done(call, result)
            }
            Msg::HvVssReply { msg, status } => match HvVssMsg::decode(&msg) {
                Ok(m) => self.core.on_hv_vss_reply(m.op, m.flags, status),
                Err(_) => return,
            },
            Msg::VmmsDone { result, .. } => self.core.on_vmms_done(result),
            _ => return,
        };
        self.apply(effects, cx);
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        self.core.digest(h);
    }
}
