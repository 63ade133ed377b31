//! VSS providers: `HostProvider` (the system software provider's copy-on-write volume
//! snapshots, or a CSV hardware provider) and `GuestProvider` (the guest's software
//! provider with its internal snapshot, or the Integration Services Shadow Copy Provider
//! of 2012 R2 and later, which has Vmms take a checkpoint at the commit instant).

use std::rc::Rc;

use hvsim_engine::volume::SnapshotOptions;

use crate::faults::FaultPlan;
use crate::plan::Stage;
use crate::protocol::hyperv::csv;
use crate::protocol::msg::{Fail, Msg, VmmsOp};
use crate::protocol::vss::ProviderCall;
use crate::scenario::{FailureClass, Hresult, ProviderKind, Scenario};
use crate::sched::{Actor, ActorId, Cx, Envelope, Origin, Out};
use crate::site::Site;
use crate::world::{Lab, Point, Shadow};

const CALL_US: u64 = 5_000;
const COMMIT_US: u64 = 300_000;
/// A commit that outlasts the 10 s flush-and-hold window.
const HOLD_TIMEOUT_COMMIT_US: u64 = 11_000_000;
/// The diff area a diff_area_full fault leaves: it fills at the first writes.
const FULL_DIFF_AREA: u64 = 256 * 1024;

/// What CommitSnapshots does for a set, decided before any storage is touched.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CommitPlan {
    /// How long the commit takes (past the 10 s flush-and-hold window when a
    /// hold_writes_timeout fault is planned on the set).
    pub delay_us: u64,
    /// Per volume of the set: the most its snapshot's diff area may hold.
    pub diff_areas: Vec<(String, u64)>,
}

/// The host provider's decision on CommitSnapshots: a planned commit failure on a volume
/// of the set fails it with that code (F5.T host class); otherwise each volume is
/// snapshotted with its diff area (256 KiB when a diff_area_full fault is planned, else
/// the volume's shadow storage limit, else unbounded).
pub(crate) fn decide_commit(
    faults: &FaultPlan,
    scenario: &Scenario,
    volumes: &[String],
) -> Result<CommitPlan, Fail> {
    if let Some((volume, code)) = faults.commit_failure(volumes) {
        return Err(Fail::new(
            code,
            FailureClass::Host,
            format!("CommitSnapshots failed on {volume}"),
        ));
    }
    let delay_us = if faults.hold_writes_timeout(volumes) {
        HOLD_TIMEOUT_COMMIT_US
    } else {
        COMMIT_US
    };
    let diff_areas = volumes
        .iter()
        .map(|v| {
            let limit = faults
                .diff_area_full(v)
                .then_some(FULL_DIFF_AREA)
                .or_else(|| {
                    scenario
                        .volumes
                        .iter()
                        .find(|sv| &sv.name == v)
                        .and_then(|sv| sv.shadow_storage_max.map(|b| b.0))
                })
                .unwrap_or(u64::MAX);
            (v.clone(), limit)
        })
        .collect();
    Ok(CommitPlan {
        delay_us,
        diff_areas,
    })
}

pub struct HostProvider {
    name: String,
    kind: ProviderKind,
    faults: Rc<FaultPlan>,
}

impl HostProvider {
    pub fn new(host: &str, kind: ProviderKind, faults: Rc<FaultPlan>) -> Self {
        HostProvider {
            name: format!("HostProvider@{host}"),
            kind,
            faults,
        }
    }

    fn commit(
        &mut self,
        set: u64,
        volumes: &[String],
        cx: &mut Cx<'_, Msg, Site>,
    ) -> (u64, Result<(), Fail>) {
        let lab = &mut cx.world.lab;
        let plan = match decide_commit(&self.faults, &lab.scenario, volumes) {
            Ok(plan) => plan,
            Err(fail) => {
                // The volume snapshot's step is reached, and fails.
                tag_vm_on(lab, &mut cx.out, volumes, Stage::VolumeSnapshot);
                return (COMMIT_US, Err(fail));
            }
        };
        let delay = plan.delay_us;
        for (v, diff_area) in &plan.diff_areas {
            let Some(volume) = lab.volumes.get(v).cloned() else {
                continue;
            };
            let diff_area = *diff_area;
            let snap = volume.create_snapshot(SnapshotOptions {
                writable: true,
                diff_area,
            });
            cx.out.detail("snapshot", format!("{v} #{}", snap.id()));
            if let Some(c) = lab.scenario.csv_software_coordinator(v) {
                cx.out.detail("csv", csv::creation(v, c));
            }
            if let Some(vm) = (0..lab.vms.len()).find(|&i| {
                lab.plans.contains_key(&i) && lab.vms[i].disks.iter().any(|d| &d.volume == v)
            }) {
                super::tag(lab, &mut cx.out, vm, Stage::VolumeSnapshot);
            }
            lab.shadows.entry(set).or_default().push(Shadow {
                volume: v.clone(),
                id: snap.id(),
                exposed: None,
            });
            // The snapshot instant: what a saved VM's backup holds (crash-consistent).
            let saved: Vec<usize> = lab
                .plans
                .iter()
                .filter(|(_, p)| p.method == crate::plan::Method::SavedState)
                .map(|(&i, _)| i)
                .collect();
            for i in saved {
                if lab.vms[i].disks.iter().any(|d| &d.volume == v) {
                    lab.vms[i].capture(Point::Instant);
                }
            }
        }
        (delay, Ok(()))
    }

    /// Deletes the set's snapshots; returns their volumes.
    fn delete(&mut self, set: u64, cx: &mut Cx<'_, Msg, Site>) -> Vec<String> {
        let lab = &mut cx.world.lab;
        let mut deleted = Vec::new();
        if let Some(shadows) = lab.shadows.remove(&set) {
            for s in shadows {
                if let Some(v) = lab.volumes.get(&s.volume) {
                    let _ = v.delete_snapshot(s.id);
                    cx.out.detail("deleted", format!("{} #{}", s.volume, s.id));
                    deleted.push(s.volume);
                }
            }
        }
        deleted
    }
}

/// Tags `stage` of the first backed-up VM with a disk on one of `volumes`.
fn tag_vm_on(lab: &Lab, out: &mut Out<'_, Msg>, volumes: &[String], stage: Stage) {
    if let Some(vm) = (0..lab.vms.len()).find(|&i| {
        lab.plans.contains_key(&i) && lab.vms[i].disks.iter().any(|d| volumes.contains(&d.volume))
    }) {
        super::tag(lab, out, vm, stage);
    }
}

impl Actor<Msg, Site> for HostProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let (Msg::Provider { call, set, volumes }, Origin::Actor(vss)) = (env.msg, env.origin)
        else {
            return;
        };
        cx.out.detail(
            "provider",
            match self.kind {
                ProviderKind::System => "Microsoft Software Shadow Copy provider 1.0",
                ProviderKind::Hardware => "hardware provider (CSV)",
            },
        );
        // A planned failure of this call: the provider does none of its work.
        let failed = call
            .operation()
            .and_then(|op| self.faults.provider_failure(op, &volumes));
        let (delay, result) = match (call, failed) {
            (_, Some((volume, code))) => {
                if call == ProviderCall::CommitSnapshots {
                    // The volume snapshot's step is reached, and fails.
                    tag_vm_on(
                        &cx.world.lab,
                        &mut cx.out,
                        &[volume.to_string()],
                        Stage::VolumeSnapshot,
                    );
                }
                let why = format!("{} failed on {volume}", call.name());
                (CALL_US, Err(Fail::new(code, FailureClass::Host, why)))
            }
            (ProviderCall::CommitSnapshots, None) => self.commit(set, &volumes, cx),
            (ProviderCall::PostFinalCommitSnapshots, None) => {
                // Read-only from here until the set is released.
                let lab = &cx.world.lab;
                for s in lab.shadows.get(&set).into_iter().flatten() {
                    if let Some(snap) = lab
                        .volumes
                        .get(&s.volume)
                        .and_then(|v| v.snapshot(s.id).ok())
                    {
                        let _ = snap.make_read_only();
                    }
                }
                (CALL_US, Ok(()))
            }
            (ProviderCall::AbortSnapshots | ProviderCall::DeleteSnapshots, None) => {
                let volumes = self.delete(set, cx);
                if call == ProviderCall::DeleteSnapshots {
                    // F1.10, F2.14, F3.5: the backup's volume snapshot deleted.
                    tag_vm_on(&cx.world.lab, &mut cx.out, &volumes, Stage::Release);
                }
                (CALL_US, Ok(()))
            }
            _ => (CALL_US, Ok(())),
        };
        cx.out
            .send_after(vss, delay, Msg::ProviderDone { call, result });
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(self.name.as_bytes());
    }
}

/// Which provider the guest's VSS uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestProviderKind {
    /// The guest's system software provider: an internal snapshot inside the disk (F1.5).
    Software,
    /// Hyper-V Integration Services Shadow Copy Provider: the commit is a checkpoint.
    IntegrationServices,
}

/// What the guest's provider does for a VSS provider call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuestAction {
    /// F1.5: the software provider's internal snapshot of every guest volume.
    CreateInternalSnapshots,
    /// F1.A/F1.B: the internal snapshot goes once the host is done, or on an abort.
    DeleteInternalSnapshots,
    /// F2.5/F3: the Integration Services provider has Vmms take the checkpoint at the
    /// commit instant, and answers CommitSnapshots only when Vmms has.
    CheckpointThroughVmms,
    /// F2.10: the guest's snapshot may take writes now (PreFinalCommitSnapshots): Vmms
    /// hot-adds the auto-recovery disks the guest's writers recover into.
    AttachAutoRecovery,
    /// F2.10: the writers are done (PostFinalCommitSnapshots) or the set is aborted:
    /// Vmms hot-removes them.
    DetachAutoRecovery,
    Nothing,
}

/// The guest provider's decision on a provider call: only CommitSnapshots does work for
/// the Integration Services provider (its checkpoint is merged by the host, F2.14); the
/// software provider makes its internal snapshot at commit and drops it at delete or
/// abort.
pub(crate) fn guest_action(call: ProviderCall, kind: GuestProviderKind) -> GuestAction {
    use GuestProviderKind::{IntegrationServices, Software};
    match (call, kind) {
        (ProviderCall::CommitSnapshots, Software) => GuestAction::CreateInternalSnapshots,
        (ProviderCall::CommitSnapshots, IntegrationServices) => GuestAction::CheckpointThroughVmms,
        (ProviderCall::PreFinalCommitSnapshots, IntegrationServices) => {
            GuestAction::AttachAutoRecovery
        }
        (
            ProviderCall::PostFinalCommitSnapshots | ProviderCall::AbortSnapshots,
            IntegrationServices,
        ) => GuestAction::DetachAutoRecovery,
        (ProviderCall::DeleteSnapshots | ProviderCall::AbortSnapshots, Software) => {
            GuestAction::DeleteInternalSnapshots
        }
        _ => GuestAction::Nothing,
    }
}

pub struct GuestProvider {
    name: String,
    vm: usize,
    kind: GuestProviderKind,
    vmms: ActorId,
    /// Every host's Vmms: the VM's owner node's takes its checkpoint (R11).
    vmms_of: std::collections::BTreeMap<String, ActorId>,
    /// The VSS service waiting for a call while Vmms does its work (CommitSnapshots,
    /// and the auto-recovery disks' attach and detach).
    waiting: Option<(ActorId, ProviderCall)>,
}

impl GuestProvider {
    pub fn new(vm_name: &str, vm: usize, kind: GuestProviderKind, vmms: ActorId) -> Self {
        GuestProvider {
            name: format!("GuestProvider@{vm_name}"),
            vm,
            kind,
            vmms,
            vmms_of: std::collections::BTreeMap::new(),
            waiting: None,
        }
    }

    /// Follows the VM to whichever host owns it, of `vmms_of` (host name → its Vmms).
    pub fn following_owner(mut self, vmms_of: std::collections::BTreeMap<String, ActorId>) -> Self {
        self.vmms_of = vmms_of;
        self
    }

    fn internal_snapshots(&mut self, lab: &mut Lab, create: bool) -> Result<(), Fail> {
        let vm = &mut lab.vms[self.vm];
        for d in &mut vm.disks {
            let Some(live) = d.live.as_mut() else {
                continue;
            };
            for v in &mut d.vols {
                let r = if create {
                    v.layout.create_snapshot(live).map(|s| v.internal = Some(s))
                } else if v.internal.is_some() {
                    v.layout.delete_snapshot(live, &mut v.internal)
                } else {
                    Ok(())
                };
                r.map_err(|e| {
                    Fail::new(
                        Hresult::VssEUnexpectedProviderError,
                        FailureClass::Guest,
                        e.to_string(),
                    )
                })?;
            }
        }
        if create {
            vm.capture(Point::Quiesce);
        }
        Ok(())
    }
}

impl Actor<Msg, Site> for GuestProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let Some(from) = env.sender() else {
            return;
        };
        match env.msg {
            Msg::Provider { call, .. } => {
                let result = match guest_action(call, self.kind) {
                    GuestAction::CreateInternalSnapshots => {
                        cx.out
                            .detail("provider", "Microsoft Software Shadow Copy provider 1.0");
                        super::tag(cx.world, &mut cx.out, self.vm, Stage::GuestSnapshot);
                        self.internal_snapshots(cx.world, true)
                    }
                    GuestAction::CheckpointThroughVmms => {
                        cx.out
                            .detail("provider", "Hyper-V IC Software Shadow Copy Provider");
                        super::tag(cx.world, &mut cx.out, self.vm, Stage::GuestSnapshot);
                        cx.world.vms[self.vm].capture(Point::Quiesce);
                        self.waiting = Some((from, call));
                        let vm = self.vm;
                        let owner = &cx.world.vms[vm].host;
                        let vmms = self.vmms_of.get(owner).copied().unwrap_or(self.vmms);
                        cx.out.send(vmms, Msg::Vmms(VmmsOp::CheckpointNow { vm }));
                        return;
                    }
                    // Only a VM with an auto-recovery checkpoint (F2, not F3) has disks
                    // to attach; only attached ones are detached.
                    GuestAction::AttachAutoRecovery | GuestAction::DetachAutoRecovery => {
                        let vm = self.vm;
                        let attach =
                            guest_action(call, self.kind) == GuestAction::AttachAutoRecovery;
                        let ar = cx.world.vms[vm].auto_recovery.as_ref();
                        if ar.is_some_and(|a| a.attached != attach) {
                            self.waiting = Some((from, call));
                            let op = if attach {
                                VmmsOp::AttachAutoRecovery { vm }
                            } else {
                                VmmsOp::DetachAutoRecovery { vm }
                            };
                            let owner = &cx.world.vms[vm].host;
                            let vmms = self.vmms_of.get(owner).copied().unwrap_or(self.vmms);
                            cx.out.send(vmms, Msg::Vmms(op));
                            return;
                        }
                        Ok(())
                    }
                    GuestAction::DeleteInternalSnapshots => {
                        if call == ProviderCall::DeleteSnapshots {
                            super::tag(cx.world, &mut cx.out, self.vm, Stage::GuestRelease);
                        }
                        self.internal_snapshots(cx.world, false)
                    }
                    GuestAction::Nothing => Ok(()),
                };
                cx.out
                    .send_after(from, CALL_US, Msg::ProviderDone { call, result });
            }
            Msg::VmmsDone { result, .. } => {
                if let Some((vss, call)) = self.waiting.take() {
                    cx.out.send(vss, Msg::ProviderDone { call, result });
                }
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[u8::from(self.waiting.is_some())]);
    }
}

#[cfg(test)]
#[path = "providers_tests.rs"]
mod tests;
