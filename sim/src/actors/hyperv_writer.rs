//! `HyperVWriter`: the Microsoft Hyper-V VSS Writer, hosted by VMMS. Its decisions are
//! [`crate::protocol::hyperv::writer`]'s; this adapter gives it the host's VMs of the
//! backup, rolls a VM back inside the external snapshot (F1.A) and writes its components:
//! per VM the consistency reached and the files to read, which travel with its
//! OnPostSnapshot answer to VSS and on to the requester.

use std::collections::BTreeMap;

use crate::plan::{Flow, Method, Plan, Stage};
use crate::protocol::hyperv::{
    Image, Readiness, WriterCore, WriterEffect, WriterPort, WriterStep, WriterVm, WRITER_ID,
};
use crate::protocol::msg::{Claim, Fail, Msg, Reached, Source};
use crate::protocol::vss::WriterEvent;
use crate::scenario::{FailureClass, Hresult, HyperVVersion};
use crate::sched::{Actor, ActorId, Cx, Envelope};
use crate::site::Site;
use crate::world::{Lab, Power};

pub struct HyperVWriter {
    name: String,
    host: String,
    core: WriterCore,
    /// The components of the backup under way, per VM.
    claims: BTreeMap<usize, Claim>,
}

/// How the writer gets a VM of this plan ready.
fn readiness(plan: &Plan) -> Readiness {
    match (plan.flow, plan.method) {
        (_, Method::SavedState) => Readiness::SavedState,
        (_, Method::NamedCheckpoint) => Readiness::NamedCheckpoint,
        (Flow::F1, _) => Readiness::ChildVmSnapshot,
        _ => Readiness::GuestCheckpoint,
    }
}

/// The writer's component for a 2008 R2 / 2012 VM, as backup tools show it (reference
/// §4.1, field failure 14): which of the writer's two methods backs the VM up.
fn component(lab: &Lab, vm: usize) -> Option<String> {
    let plan = lab.plans.get(&vm).filter(|p| p.flow == Flow::F1)?;
    let method = match readiness(plan) {
        Readiness::SavedState => "Backup Using Saved State",
        Readiness::ChildVmSnapshot => "Backup Using Child Partition Snapshot",
        _ => return None,
    };
    Some(format!("{method}\\{}", lab.vms[vm].name))
}

/// Why the writer leaves the VM out of its metadata, if it does (field failure 20, R12).
fn skipped(lab: &Lab, vm: usize) -> Option<String> {
    lab.scenario.vm(&lab.vms[vm].name)?.writer_skips()
}

impl HyperVWriter {
    pub fn new(host: &str, vmms: ActorId) -> Self {
        HyperVWriter {
            name: format!("HyperVWriter@{host}"),
            host: host.to_string(),
            core: WriterCore::new(vmms),
            claims: BTreeMap::new(),
        }
    }

    pub fn add_ic(&mut self, vm: usize, ic: ActorId) {
        self.core.add_ic(vm, ic);
    }

    /// The VMs of this backup on this host (F3's go through WMI, not the writer); a VM
    /// whose configuration cannot be read is not in the writer's metadata at all.
    fn vms(&self, lab: &Lab) -> Vec<WriterVm> {
        lab.plans
            .iter()
            .filter(|(&vm, p)| lab.vms[vm].host == self.host && p.flow != Flow::F3)
            .filter(|(&vm, _)| skipped(lab, vm).is_none())
            .map(|(&vm, p)| {
                let v = &lab.vms[vm];
                WriterVm {
                    vm,
                    name: v.name.clone(),
                    readiness: readiness(p),
                    refused: p.refused.clone(),
                    saved: v.power == Power::Saved,
                    checkpoints: v.disks.iter().any(|d| d.chain.checkpoints() > 0),
                    raises_guest_not_ready: v.host_version.at_least(HyperVVersion::V2012R2),
                    no_auto_recovery: v.no_auto_recovery,
                }
            })
            .collect()
    }
}

/// The writer's effects on this step's `cx`.
struct Port<'a, 'b> {
    cx: &'a mut Cx<'b, Msg, Site>,
    host: &'a str,
    claims: &'a mut BTreeMap<usize, Claim>,
}

impl Port<'_, '_> {
    fn claim(&mut self, vm: usize) -> &mut Claim {
        self.claims.entry(vm).or_insert_with(|| Claim::new(vm))
    }
}

impl WriterPort for Port<'_, '_> {
    fn effect(&mut self, effect: WriterEffect) {
        let cx = &mut *self.cx;
        match effect {
            WriterEffect::Identify => {
                cx.out.detail("writer_id", WRITER_ID);
                // Field failure 20, R12: a VM the writer cannot back up has no component.
                let skipped: Vec<(usize, String)> = cx
                    .world
                    .plans
                    .keys()
                    .copied()
                    .filter(|&vm| cx.world.vms[vm].host == self.host)
                    .filter_map(|vm| skipped(cx.world, vm).map(|why| (vm, why)))
                    .collect();
                for (vm, why) in skipped {
                    let name = cx.world.vms[vm].name.clone();
                    cx.out
                        .detail("skipped", format!("{name}: {why}, so it has no component"));
                }
            }
            WriterEffect::Step { vm, step } => {
                let stage = match step {
                    WriterStep::GuestRequest => Stage::GuestRequest,
                    WriterStep::AutoRecovery => Stage::AutoRecovery,
                };
                super::tag(cx.world, &mut cx.out, vm, stage);
                if step == WriterStep::GuestRequest {
                    if let Some(c) = component(cx.world, vm) {
                        cx.out.detail("component", c);
                    }
                }
            }
            WriterEffect::Send {
                to,
                delay_us,
                mut msg,
            } => {
                // OnPostSnapshot's answer carries the writer's components.
                if let Msg::WriterDone {
                    event: WriterEvent::OnPostSnapshot,
                    claims,
                    ..
                } = &mut msg
                {
                    *claims = std::mem::take(self.claims).into_values().collect();
                }
                cx.out.send_after(to, delay_us, msg);
            }
            WriterEffect::Raise { id, text, shown } => {
                cx.world.raise(id, self.host, text);
                if shown {
                    cx.out.detail("event", u64::from(id));
                }
            }
            WriterEffect::GuestReached { vm, reached } => {
                self.claim(vm).reached.get_or_insert(reached);
            }
            WriterEffect::CrashConsistent { vm } => {
                self.claim(vm).reached = Some(Reached::Crash);
            }
            WriterEffect::ReadFrom { vm, set, image } => {
                let files = cx.world.vms[vm]
                    .disks
                    .iter()
                    .map(|d| {
                        let f = &d.chain.files;
                        match image {
                            Image::Chain => f.clone(),
                            Image::CheckpointParent => f[..f.len().saturating_sub(1)].to_vec(),
                        }
                    })
                    .collect();
                self.claim(vm).source = Some(Source {
                    set: Some(set),
                    files,
                });
            }
            WriterEffect::NoAutoRecovery { vm } => {
                let name = &cx.world.vms[vm].name;
                cx.out.detail(
                    "auto_recovery",
                    format!(
                        "skipped for {name}: its guest answered HOT_BACKUP with VSS_HBU_NO_AUTO_RECOVERY, so no auto-recovery checkpoint and no AUTO_RECOVER; the image is the backup checkpoint's parent, frozen at FREEZE (R5)"
                    ),
                );
            }
            WriterEffect::AutoRecovered { chunks } => cx.out.detail(
                "auto_recovery",
                format!("{chunks} chunks rolled back to the internal snapshot"),
            ),
        }
    }

    fn revert_in_snapshot(&mut self, vm: usize, set: u64) -> Result<u64, Fail> {
        let cx = &mut *self.cx;
        let lab = &cx.world.lab;
        let fail = |e: String| Fail::new(Hresult::VssEAutorecoveryFailed, FailureClass::Host, e);
        let mut restored = 0;
        for d in &lab.vms[vm].disks {
            let shadow = lab
                .shadows
                .get(&set)
                .and_then(|s| s.iter().find(|s| s.volume == d.volume))
                .cloned();
            let Some(shadow) = shadow else { continue };
            let volume = lab
                .volumes
                .get(&d.volume)
                .cloned()
                .ok_or_else(|| fail("no volume".into()))?;
            let snap = volume
                .snapshot(shadow.id)
                .map_err(|e| fail(e.to_string()))?;
            let mut inside = d
                .chain
                .open_any_on(&snap, true, false, cx.out.guids())
                .map_err(|e| fail(e.to_string()))?;
            for v in &d.vols {
                if v.internal.is_some() {
                    restored += v
                        .layout
                        .revert(&mut inside)
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            inside.close().map_err(|e| fail(e.to_string()))?;
        }
        Ok(restored)
    }
}

impl Actor<Msg, Site> for HyperVWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let from = env.sender().unwrap_or(cx.out.me());
        match env.msg {
            Msg::Writer { event, set } => {
                if event == WriterEvent::OnPrepareSnapshot {
                    self.claims.clear();
                }
                let vms = self.vms(cx.world);
                let mut port = Port {
                    cx,
                    host: &self.host,
                    claims: &mut self.claims,
                };
                self.core.on_event(event, from, set, &vms, &mut port);
            }
            Msg::IcReady { vm, result } => {
                let vms = self.vms(cx.world);
                let mut port = Port {
                    cx,
                    host: &self.host,
                    claims: &mut self.claims,
                };
                self.core.on_ic_ready(vm, result, &vms, &mut port);
            }
            Msg::VmmsDone { op, result, claim } => {
                // F2.13: where the auto-recovered image is, as Vmms reports it.
                if let Some(c) = claim {
                    self.claims
                        .entry(c.vm)
                        .or_insert_with(|| Claim::new(c.vm))
                        .merge(c);
                }
                let mut port = Port {
                    cx,
                    host: &self.host,
                    claims: &mut self.claims,
                };
                self.core.on_vmms_done(&op, result, &mut port);
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        self.core.digest(h);
    }
}
