//! `Vmms`: the Virtual Machine Management Service of a host. Its decisions are
//! [`crate::protocol::hyperv::vmms`]'s; this adapter saves and resumes VMs, takes the
//! checkpoints (backup, auto-recovery, production, standard, R4's named backup
//! checkpoint) as real AVHDX files, merges them online while the guest writes on, and
//! raises Hyper-V-VMMS events. A checkpoint job's result carries its claim: the
//! consistency the checkpoint reached, a fallback to a standard one, and its files.

use std::collections::BTreeMap;
use std::rc::Rc;

use hvsim_engine::chain::{
    auto_recovery_file, checkpoint_file, ChainError, DiskChain, Merge, MergeProgress,
};

use crate::faults::{CheckpointStep, FaultPlan};
use crate::plan::{Flow, Method};
use crate::protocol::hyperv::rct::ChangeTracking;
use crate::protocol::hyperv::wmi::{Release, ReturnValue};
use crate::protocol::hyperv::{Quiesce, VmmsCore, VmmsEffect, VmmsPort, VmmsTimer, VmmsVm};
use crate::protocol::msg::{Claim, Fail, Msg, Source, VmmsOp};
use crate::scenario::{BackupKind, FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope};
use crate::site::Site;
use crate::world::{Lab, Point, Power};

/// What a checkpoint made without the guest is (F3 fallback, field failure 21).
const CRASH_CHECKPOINT: &str = "recovery checkpoint, crash-consistent, disks only (no memory)";

/// Blocks copied per merge step.
const MERGE_BLOCKS: u64 = 4;

/// Per VM and disk: the auto-recovery chain Vmms made (F2.6), until it is merged inside
/// the volume snapshot or discarded.
type AutoRecoveryChains = BTreeMap<usize, Vec<Option<DiskChain>>>;

pub struct Vmms {
    name: String,
    core: VmmsCore,
    ar: AutoRecoveryChains,
    faults: Rc<FaultPlan>,
    /// Per VM, what the job under way will report of its checkpoint.
    claims: BTreeMap<usize, Claim>,
}

/// The out-of-space fault: the volume's free space is gone as a checkpoint's files are
/// created on it (R8).
fn fill(volumes: &BTreeMap<String, hvsim_engine::volume::Volume>, volume: &str) {
    if let Some(vol) = volumes.get(volume) {
        vol.set_capacity(vol.capacity() - vol.free());
    }
}

fn disk_full(e: &ChainError, vm: &str) -> Fail {
    match e {
        ChainError::NoSpace { .. } => Fail::new(
            Hresult::ErrorDiskFull,
            FailureClass::Host,
            format!("{vm}: {e} (R8)"),
        ),
        _ => Fail::new(
            Hresult::VssEUnexpected,
            FailureClass::Host,
            format!("{vm}: {e}"),
        ),
    }
}

impl Vmms {
    pub fn new(host: &str, faults: Rc<FaultPlan>) -> Self {
        Vmms {
            name: format!("Vmms@{host}"),
            core: VmmsCore::new(),
            ar: BTreeMap::new(),
            faults,
            claims: BTreeMap::new(),
        }
    }

    pub fn add_ic(&mut self, vm: usize, ic: ActorId) {
        self.core.add_ic(vm, ic);
    }
}

/// What Vmms' core needs to know of a VM.
fn facts(lab: &Lab, faults: &FaultPlan, vm: usize) -> VmmsVm {
    let v = &lab.vms[vm];
    let plan = lab.plans.get(&vm);
    VmmsVm {
        vm,
        name: v.name.clone(),
        running: v.power == Power::Running,
        saved_since_us: v.saved_at_us.filter(|_| v.power == Power::Saved),
        auto_recovery: plan.is_some_and(|p| p.flow == Flow::F2),
        quiesce: match plan.map(|p| p.method) {
            Some(Method::GuestVss | Method::DaemonFreeze) => Quiesce::Guest,
            _ => Quiesce::None,
        },
        production_only: plan.is_some_and(|p| p.production_only),
        replica: lab.scenario.vms[vm].replica,
        snapshot_error: faults
            .create_snapshot_error(vm)
            .and_then(ReturnValue::from_code),
        release: plan.filter(|p| p.flow == Flow::F3).map(|p| {
            let incremental = lab.scenario.job.kind == BackupKind::Incremental;
            Release::choose(incremental, p.tracking == ChangeTracking::Rct)
        }),
    }
}

/// Vmms' effects and storage work on this step's `cx`.
struct Port<'a, 'b> {
    cx: &'a mut Cx<'b, Msg, Site>,
    ar: &'a mut AutoRecoveryChains,
    faults: &'a FaultPlan,
    claims: &'a mut BTreeMap<usize, Claim>,
}

impl Port<'_, '_> {
    fn claim(&mut self, vm: usize) -> &mut Claim {
        self.claims.entry(vm).or_insert_with(|| Claim::new(vm))
    }

    /// The claim a job's result carries: F3's checkpoint (its level, a fallback, and
    /// the read-only parents it froze) and F2's auto-recovery (the image's files in the
    /// snapshot); other jobs carry none.
    fn claim_of(&mut self, op: &VmmsOp, result: &Result<(), Fail>) -> Option<Claim> {
        let vm = op.vm();
        match op {
            VmmsOp::CreateRecoveryCheckpoint { .. } => {
                let mut c = self.claims.remove(&vm).unwrap_or_else(|| Claim::new(vm));
                if result.is_ok() {
                    let files = self.cx.world.vms[vm]
                        .disks
                        .iter()
                        .map(|d| d.chain.files[..d.chain.files.len().saturating_sub(1)].to_vec())
                        .collect();
                    c.source = Some(Source { set: None, files });
                }
                Some(c)
            }
            VmmsOp::AutoRecover { .. } => self.claims.remove(&vm),
            _ => None,
        }
    }
}

impl VmmsPort for Port<'_, '_> {
    fn effect(&mut self, effect: VmmsEffect) {
        let cx = &mut *self.cx;
        match effect {
            VmmsEffect::Reply {
                to,
                delay_us,
                op,
                result,
            } => {
                let claim = self.claim_of(&op, &result);
                let msg = Msg::VmmsDone { op, result, claim };
                self.cx.out.send_after(to, delay_us, msg);
            }
            VmmsEffect::Send { to, msg } => cx.out.send(to, msg),
            VmmsEffect::SetTimer {
                delay_us,
                timer: VmmsTimer::MergeStep { vm },
            } => {
                cx.out.set_timer(delay_us, Msg::MergeStep { vm });
            }
            VmmsEffect::Save { vm, now_us } => {
                let v = &mut cx.world.vms[vm];
                v.power = Power::Saved;
                v.saved_at_us = Some(now_us);
                cx.out.detail("state", "saved (memory written to disk)");
            }
            VmmsEffect::NothingToSave { vm } => {
                let power = cx.world.vms[vm].power.name();
                cx.out
                    .detail("state", format!("already {power}: nothing to save"));
            }
            VmmsEffect::Resume { vm, downtime_us } => {
                let v = &mut cx.world.vms[vm];
                v.power = Power::Running;
                v.saved_at_us = None;
                v.downtime_us += downtime_us;
                cx.out.detail("downtime_us", v.downtime_us);
            }
            VmmsEffect::NamedCheckpoint { name } => cx.out.detail("checkpoint", name),
            // A recovery checkpoint with no guest involvement: crash-consistent, disks
            // only; not a standard checkpoint, which would hold the VM's memory too.
            VmmsEffect::Standard => cx.out.detail("checkpoint", CRASH_CHECKPOINT),
            VmmsEffect::CaptureInstant { vm } => cx.world.vms[vm].capture(Point::Instant),
            VmmsEffect::Reached { vm, reached } => self.claim(vm).reached = Some(reached),
            VmmsEffect::FellBack { vm } => self.claim(vm).fallback = true,
            VmmsEffect::FallbackToStandard { name, cause, .. } => cx.out.record(
                "FallbackToCrashConsistent",
                [
                    ("vm", Detail::Text(name)),
                    ("cause", Detail::Str(cause.as_str())),
                    ("checkpoint", Detail::Str(CRASH_CHECKPOINT)),
                ],
            ),
            VmmsEffect::Wmi { key, value } => cx.out.detail(key, value),
            // The requester asks Vmms to let the checkpoint go; the WMI method it is
            // depends on the chain (the seam keeps one call name for both).
            VmmsEffect::WmiCall { method } => cx.out.detail("wmi", method),
            VmmsEffect::JobEnded { job } => {
                cx.out.detail(
                    "job",
                    format!(
                        "Msvm_ConcreteJob {}, JobState {}",
                        job.id,
                        job.state.describe()
                    ),
                );
                if let Some(code) = job.error_code {
                    cx.out.detail("ErrorCode", u64::from(code));
                }
                if let Some(text) = job.error_description {
                    cx.out.detail("ErrorDescription", text);
                }
            }
            VmmsEffect::Raise { id, vm, text } => {
                let host = cx.world.vms[vm].host.clone();
                cx.world.raise(id, &host, text);
            }
            VmmsEffect::MergeStarts { vm } => {
                super::tag(cx.world, &mut cx.out, vm, crate::plan::Stage::Merge);
            }
        }
    }

    /// Takes a checkpoint of every disk of the VM: `<disk>_<GUID>.avhdx`, plus the
    /// independent `<disk>-AutoRecovery.avhdx` for F2. Nothing is left behind on failure.
    fn checkpoint(&mut self, vm: usize, with_ar: bool) -> Result<(), Fail> {
        let cx = &mut *self.cx;
        let lab = &mut cx.world.lab;
        // The step this checkpoint is in the VM's flow: F2.5, F3.3 or R4 (F2.6 for its
        // auto-recovery files).
        let step = lab.plans.get(&vm).and_then(CheckpointStep::of);
        let v = &mut lab.vms[vm];
        let mut ar = Vec::new();
        let mut made: Vec<(usize, String)> = Vec::new();
        let mut result = Ok(());
        for (i, d) in v.disks.iter_mut().enumerate() {
            if step.is_some_and(|step| self.faults.out_of_space(&d.volume, step)) {
                fill(&lab.volumes, &d.volume);
            }
            if let Err(e) = d.close() {
                result = Err(Fail::new(
                    Hresult::VssEUnexpected,
                    FailureClass::Host,
                    e.to_string(),
                ));
                break;
            }
            let name = checkpoint_file(&d.file, cx.out.guids().next_guid());
            let base_len = d.chain.files.len();
            match d.chain.create_checkpoint(&name, cx.out.guids()) {
                Ok(()) => made.push((i, name.clone())),
                Err(e) => {
                    result = Err(disk_full(&e, &v.name));
                    break;
                }
            }
            cx.out.detail("created", name);
            if with_ar {
                if self
                    .faults
                    .out_of_space(&d.volume, CheckpointStep::AutoRecoveryCheckpoint)
                {
                    fill(&lab.volumes, &d.volume);
                }
                let ar_name = auto_recovery_file(&d.file);
                match d.chain.child_of(base_len - 1, &ar_name, cx.out.guids()) {
                    Ok(c) => {
                        cx.out.detail("auto_recovery", ar_name);
                        ar.push(Some(c));
                    }
                    Err(e) => {
                        result = Err(disk_full(&e, &v.name));
                        break;
                    }
                }
            }
        }
        if result.is_err() {
            // Undo: discard what was made, the VM runs on its old chain.
            for (i, _) in made {
                let d = &mut v.disks[i];
                let _ = d.chain.revert();
                let _ = lab
                    .volumes
                    .get(&d.volume)
                    .map(|vol| vol.remove(&auto_recovery_file(&d.file)));
            }
        } else {
            self.ar.insert(vm, ar);
        }
        for d in &mut v.disks {
            if v.power != Power::Off {
                if let Err(e) = d.reopen(false, cx.out.guids()) {
                    result = result.and(Err(Fail::new(
                        Hresult::VssEUnexpected,
                        FailureClass::Host,
                        e.to_string(),
                    )));
                }
            }
        }
        result
    }

    fn discard_auto_recovery(&mut self, vm: usize) {
        let Some(chains) = self.ar.get_mut(&vm) else {
            return;
        };
        for ar in chains.iter_mut().filter_map(Option::take) {
            let _ = ar.volume.remove(ar.active());
        }
    }

    fn start_merge(&mut self, vm: usize) -> Result<bool, Fail> {
        let cx = &mut *self.cx;
        let lab = &mut cx.world.lab;
        let v = &mut lab.vms[vm];
        let mut any = false;
        for d in &mut v.disks {
            if d.chain.checkpoints() == 0 || d.merge.is_some() {
                continue;
            }
            d.reopen(true, cx.out.guids()).map_err(|e| {
                Fail::new(Hresult::VssEUnexpected, FailureClass::Host, e.to_string())
            })?;
            let live = d.live.as_mut().expect("reopened");
            let m = Merge::start(live, cx.out.guids()).map_err(|e| {
                Fail::new(
                    Hresult::VssEUnexpected,
                    FailureClass::Host,
                    format!("{}: {e}", d.chain.active()),
                )
            })?;
            cx.out.detail("merging", d.chain.active().to_string());
            d.merge = Some(m);
            any = true;
        }
        Ok(any)
    }

    fn merge_step(&mut self, vm: usize) -> Result<bool, Fail> {
        let cx = &mut *self.cx;
        let lab = &mut cx.world.lab;
        let v = &mut lab.vms[vm];
        let mut done = true;
        for d in &mut v.disks {
            let Some(mut m) = d.merge.take() else {
                continue;
            };
            let live = d.live.as_mut().expect("open while merging");
            let fail = |e: String| Fail::new(Hresult::VssEUnexpected, FailureClass::Host, e);
            match m
                .step(live, MERGE_BLOCKS)
                .map_err(|e| fail(e.to_string()))?
            {
                MergeProgress::Running { .. } => {
                    d.merge = Some(m);
                    done = false;
                }
                MergeProgress::Complete => {
                    let parent = m
                        .finish(d.live.take().expect("open"))
                        .map_err(|e| fail(e.to_string()))?;
                    parent.close().map_err(|e| fail(e.to_string()))?;
                    let gone = d.chain.active().to_string();
                    d.chain.merged().map_err(|e| fail(e.to_string()))?;
                    cx.out.detail("merged", gone);
                    d.reopen(false, cx.out.guids())
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
        }
        Ok(done)
    }

    /// F2.10–F2.12 inside the volume snapshot: the auto-recovery checkpoint holds the
    /// consistent image; it is merged into the base there, and discarded on the live
    /// volume.
    fn auto_recover(&mut self, vm: usize, set: u64) -> Result<(), Fail> {
        let fail = |e: String| Fail::new(Hresult::VssEAutorecoveryFailed, FailureClass::Host, e);
        let cx = &mut *self.cx;
        let lab = &mut cx.world.lab;
        let mut recovered = false;
        let chains = self.ar.entry(vm).or_default();
        for (i, ar) in chains.iter_mut().enumerate() {
            let Some(ar) = ar.take() else { continue };
            let d = &lab.vms[vm].disks[i];
            let shadow = lab
                .shadows
                .get(&set)
                .and_then(|s| s.iter().find(|s| s.volume == d.volume))
                .cloned();
            let volume = lab
                .volumes
                .get(&d.volume)
                .cloned()
                .ok_or_else(|| fail("no volume".into()))?;
            // No snapshot of the disk's volume in the set (an SMB share whose shadow copy
            // was never handed to VSS, F4.7–F4.8): nothing holds the consistent image.
            let Some(shadow) = shadow else {
                let _ = volume.remove(ar.active());
                return Err(fail(format!(
                    "no snapshot of {} in snapshot set {set} to auto-recover {} in",
                    d.volume,
                    ar.active()
                )));
            };
            {
                let snap = volume
                    .snapshot(shadow.id)
                    .map_err(|e| fail(e.to_string()))?;
                let mut inside = ar
                    .open_on(&snap, true, true, cx.out.guids())
                    .map_err(|e| fail(e.to_string()))?;
                let mut m =
                    Merge::start(&mut inside, cx.out.guids()).map_err(|e| fail(e.to_string()))?;
                while m.step(&mut inside, 64).map_err(|e| fail(e.to_string()))?
                    != MergeProgress::Complete
                {}
                m.finish(inside)
                    .and_then(|p| p.close())
                    .map_err(|e| fail(e.to_string()))?;
                cx.out.detail(
                    "auto_recovered",
                    format!(
                        "{} merged into {} inside snapshot #{}",
                        ar.active(),
                        ar.base(),
                        shadow.id
                    ),
                );
                recovered = true;
            }
            volume
                .remove(ar.active())
                .map_err(|e| fail(e.to_string()))?;
        }
        if !recovered {
            // Auto-recovery that recovers nothing leaves no consistent image to read: the
            // job's error, never a silent success.
            return Err(fail(format!(
                "{}: no auto-recovery checkpoint to merge inside snapshot set {set}",
                lab.vms[vm].name
            )));
        }
        // F2.13: the requester reads each base disk from the snapshot, where it now holds
        // the consistent image.
        let files = lab.vms[vm]
            .disks
            .iter()
            .map(|d| vec![d.chain.base().to_string()])
            .collect();
        self.claim(vm).source = Some(Source {
            set: Some(set),
            files,
        });
        Ok(())
    }
}

impl Actor<Msg, Site> for Vmms {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let from = env.sender().unwrap_or(cx.out.me());
        let now_us = cx.out.now_us();
        let (core, ar, faults, claims) = (
            &mut self.core,
            &mut self.ar,
            &*self.faults,
            &mut self.claims,
        );
        match env.msg {
            Msg::Vmms(op) => {
                let v = facts(cx.world, faults, op.vm());
                core.on_op(
                    from,
                    op,
                    &v,
                    now_us,
                    &mut Port {
                        cx,
                        ar,
                        faults,
                        claims,
                    },
                );
            }
            Msg::IcReady { vm, result } => {
                let v = facts(cx.world, faults, vm);
                core.on_ic_ready(
                    result,
                    &v,
                    &mut Port {
                        cx,
                        ar,
                        faults,
                        claims,
                    },
                );
            }
            Msg::MergeStep { vm } => {
                let v = facts(cx.world, faults, vm);
                core.on_merge_step(
                    &v,
                    &mut Port {
                        cx,
                        ar,
                        faults,
                        claims,
                    },
                );
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        for (vm, checkpoint) in self.core.taken() {
            let ars = self.ar.get(vm).map_or(0, |a| a.iter().flatten().count());
            h.update(&(*vm as u64).to_le_bytes());
            h.update(&[u8::from(*checkpoint), ars as u8]);
        }
        for key in self.core.waiters() {
            h.update(&(key.vm as u64).to_le_bytes());
            h.update(key.on.name().as_bytes());
        }
    }
}
