//! `Vmms`: the Virtual Machine Management Service of a host. Its decisions are
//! [`crate::protocol::hyperv::vmms`]'s; this adapter saves and resumes VMs, takes the
//! checkpoints (backup, auto-recovery, production, standard, R4's named backup
//! checkpoint) as real AVHDX files, merges them online while the guest writes on, and
//! raises Hyper-V-VMMS events. A checkpoint job's result carries its claim: the
//! consistency the checkpoint reached, a fallback to a standard one, and its files.

use std::collections::BTreeMap;
use std::rc::Rc;

use hvsim_engine::chain::{auto_recovery_file, checkpoint_file, ChainError, Merge, MergeProgress};
use hvsim_engine::volume::VolumeError;
use hvsim_engine::AnyDisk;

use crate::faults::{CheckpointStep, FaultPlan};
use crate::plan::ChangeTracking;
use crate::plan::{Flow, Method};
use crate::protocol::hyperv::wmi::{Release, ReturnValue};
use crate::protocol::hyperv::{Quiesce, VmmsCore, VmmsEffect, VmmsPort, VmmsTimer, VmmsVm};
use crate::protocol::msg::{Claim, Fail, Msg, Source, VmmsOp};
use crate::scenario::{BackupKind, FailureClass, GuestOs, Hresult, Leftover};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope};
use crate::site::Site;
use crate::world::{AutoRecovery, Lab, Point, Power};

/// What a checkpoint made without the guest is (F3 fallback, field failure 21).
const CRASH_CHECKPOINT: &str = "recovery checkpoint, crash-consistent, disks only (no memory)";

/// Blocks copied per merge step.
const MERGE_BLOCKS: u64 = 4;

pub struct Vmms {
    name: String,
    core: VmmsCore,
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
        // FF11: a file an earlier failed backup left is in the way (ERROR_FILE_EXISTS).
        ChainError::Volume(VolumeError::Exists { .. }) => Fail::new(
            Hresult::ErrorFileExists,
            FailureClass::Host,
            format!("{vm}: {e}"),
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
            faults,
            claims: BTreeMap::new(),
        }
    }

    pub fn add_ic(&mut self, vm: usize, ic: ActorId) {
        self.core.add_ic(vm, ic);
    }
}

/// What Vmms' core needs to know of a VM.
/// Issue 11 §3: a job on a VM opens its backup window (its workload starts writing);
/// the merge of its checkpoint closes it.
fn backup_window(cx: &mut Cx<'_, Msg, Site>, op: &VmmsOp) {
    let vm = op.vm();
    if let Some(workload) = cx.world.lab.open_window(vm) {
        cx.out.send(workload, Msg::Tick);
        let name = cx.world.lab.vms[vm].name.clone();
        cx.out.detail("workload", format!("{name} start"));
    }
    if matches!(op, VmmsOp::MergeCheckpoint { .. }) {
        cx.world.lab.close_window(vm);
    }
}

fn facts(lab: &Lab, faults: &FaultPlan, vm: usize) -> VmmsVm {
    let v = &lab.vms[vm];
    let plan = lab.plans.get(&vm);
    VmmsVm {
        vm,
        name: v.name.clone(),
        running: v.power == Power::Running,
        saved_since_us: v.saved_at_us.filter(|_| v.power == Power::Saved),
        // F2.6, unless the guest's HOT_BACKUP answer asked for none (R5).
        auto_recovery: plan.is_some_and(|p| p.flow == Flow::F2) && !v.no_auto_recovery,
        quiesce: match plan.map(|p| p.method) {
            Some(Method::GuestVss | Method::DaemonFreeze) => Quiesce::Guest,
            _ => Quiesce::None,
        },
        production_only: plan.is_some_and(|p| p.production_only),
        replica: lab.scenario.vms[vm].replica,
        guest_writers: v.os == GuestOs::Windows,
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
            VmmsEffect::FallbackToCrashConsistent { name, cause, .. } => cx.out.record(
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
        // Disks whose auto-recovery file this checkpoint created (a file that was there
        // before is not undone: FF11).
        let mut made_ar: Vec<usize> = Vec::new();
        let mut result = Ok(());
        for (i, d) in v.disks.iter_mut().enumerate() {
            if let Some(code) = self.faults.checkpoint_failure(vm) {
                // FF26, FF27: the checkpoint's storage is gone, or an AVHDX is locked.
                result = Err(Fail::new(
                    code,
                    FailureClass::Host,
                    format!(
                        "{}: cannot create the checkpoint of {}: {code} (0x{:08X})",
                        v.name,
                        d.file,
                        code.value()
                    ),
                ));
                break;
            }
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
                        made_ar.push(i);
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
                if made_ar.contains(&i) {
                    let _ = lab
                        .volumes
                        .get(&d.volume)
                        .map(|vol| vol.remove(&auto_recovery_file(&d.file)));
                }
            }
        } else if with_ar {
            // The open transaction the checkpoint fixed: what the writers undo (F2.10).
            v.auto_recovery = Some(AutoRecovery {
                chains: ar,
                rollback: v.undo.clone(),
                ..AutoRecovery::default()
            });
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
        let Some(mut ar) = self.cx.world.vms[vm].auto_recovery.take() else {
            return;
        };
        // F2.12: on the live volume the auto-recovery AVHDX is deleted, never merged; a
        // volume snapshot taken before keeps its copy.
        let mut deleted = Vec::new();
        for ar in ar.chains.iter_mut().filter_map(Option::take) {
            if ar.volume.remove(ar.active()).is_ok() {
                deleted.push(ar.active().to_string());
            }
        }
        if !deleted.is_empty() {
            self.cx.out.detail("deleted", deleted.join(", "));
        }
    }

    /// F2.10: the auto-recovery disks are hot-added through the VM's SCSI controller (R7
    /// is why one is needed); the guest's writers then write into them. The VM's own
    /// chain is never opened for that.
    fn attach_auto_recovery(&mut self, vm: usize) -> Result<(), Fail> {
        let cx = &mut *self.cx;
        let lab = &mut cx.world.lab;
        let v = &mut lab.vms[vm];
        let Some(ar) = v.auto_recovery.as_mut().filter(|a| !a.files().is_empty()) else {
            return Err(Fail::new(
                Hresult::VssEAutorecoveryFailed,
                FailureClass::Host,
                format!("{}: no auto-recovery checkpoint to attach", v.name),
            ));
        };
        for (d, _) in v.disks.iter().zip(&ar.chains).filter(|(_, c)| c.is_some()) {
            if self
                .faults
                .out_of_space(&d.volume, CheckpointStep::AutoRecoveryRollback)
            {
                fill(&lab.volumes, &d.volume);
            }
        }
        ar.attached = true;
        cx.out
            .detail("attached", format!("{} (SCSI)", ar.files().join(", ")));
        cx.out.detail("spec", "F2.10");
        Ok(())
    }

    fn detach_auto_recovery(&mut self, vm: usize) {
        let cx = &mut *self.cx;
        if let Some(ar) = cx.world.vms[vm].auto_recovery.as_mut() {
            ar.attached = false;
            let pages: u64 = ar.recovered.iter().map(|(_, p)| p).sum();
            cx.out.detail("detached", ar.files().join(", "));
            cx.out.detail(
                "recovered",
                format!(
                    "{pages} page(s) by {} writer(s) of the guest",
                    ar.recovered.len()
                ),
            );
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
            // FF28: a VHD chain (2008 R2) is merged only while the VM is off.
            let live = d
                .live
                .as_mut()
                .and_then(AnyDisk::as_vhdx_mut)
                .ok_or_else(|| {
                    Fail::new(
                        Hresult::VssEUnexpected,
                        FailureClass::Host,
                        format!(
                            "{}: a VHD chain is merged only while its VM is off",
                            d.chain.active()
                        ),
                    )
                })?;
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
        if let Some(code) = self.faults.merge_failure(vm) {
            // FF23-FF25: the merge stops; the VM writes on into its AVHDX.
            let mut failed = Vec::new();
            for d in v.disks.iter_mut().filter(|d| d.merge.is_some()) {
                d.merge = None;
                failed.push(d.chain.active().to_string());
                d.reopen(false, cx.out.guids()).map_err(|e| {
                    Fail::new(Hresult::VssEUnexpected, FailureClass::Host, e.to_string())
                })?;
            }
            return Err(Fail::new(
                code,
                FailureClass::Host,
                format!(
                    "merging {} failed: {code} (0x{:08X})",
                    failed.join(", "),
                    code.value()
                ),
            ));
        }
        let mut done = true;
        for d in &mut v.disks {
            let Some(mut m) = d.merge.take() else {
                continue;
            };
            let fail = |e: String| Fail::new(Hresult::VssEUnexpected, FailureClass::Host, e);
            let not_open = || {
                fail(format!(
                    "{}: not open as VHDX while merging",
                    d.chain.active()
                ))
            };
            let live = d
                .live
                .as_mut()
                .and_then(AnyDisk::as_vhdx_mut)
                .ok_or_else(not_open)?;
            match m
                .step(live, MERGE_BLOCKS)
                .map_err(|e| fail(e.to_string()))?
            {
                MergeProgress::Running { .. } => {
                    d.merge = Some(m);
                    done = false;
                }
                MergeProgress::Complete => {
                    let Some(AnyDisk::Vhdx(live)) = d.live.take() else {
                        return Err(not_open());
                    };
                    let parent = m.finish(live).map_err(|e| fail(e.to_string()))?;
                    parent.close().map_err(|e| fail(e.to_string()))?;
                    let gone = d.chain.active().to_string();
                    d.chain.merged().map_err(|e| fail(e.to_string()))?;
                    cx.out.detail("merged", gone);
                    // A recovery checkpoint an earlier backup left under this one is
                    // merged too, as Remove-VMSnapshot does (FF22); any other
                    // checkpoint stays.
                    let lingering = Leftover::RecoveryCheckpoint.file(&d.file);
                    if d.chain.checkpoints() == 0 || d.chain.active() != lingering {
                        d.reopen(false, cx.out.guids())
                            .map_err(|e| fail(e.to_string()))?;
                        continue;
                    }
                    d.reopen(true, cx.out.guids())
                        .map_err(|e| fail(e.to_string()))?;
                    let live = d
                        .live
                        .as_mut()
                        .and_then(AnyDisk::as_vhdx_mut)
                        .ok_or_else(|| fail(format!("{lingering}: not a VHDX chain")))?;
                    d.merge =
                        Some(Merge::start(live, cx.out.guids()).map_err(|e| fail(e.to_string()))?);
                    done = false;
                }
            }
        }
        Ok(done)
    }

    /// F2.12: the requester reads each disk's base with its recovered
    /// AutoRecovery.avhdx over it from the snapshot of `set`: the merge happens only
    /// inside the backup copy; the live chain never sees it (I1).
    fn auto_recover(&mut self, vm: usize, set: u64) -> Result<(), Fail> {
        let v = &self.cx.world.vms[vm];
        let ar = v.auto_recovery.as_ref();
        let files: Vec<Vec<String>> = v
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                ar.and_then(|a| a.chains.get(i))
                    .and_then(Option::as_ref)
                    .map_or_else(|| d.chain.files.clone(), |c| c.files.clone())
            })
            .collect();
        let image: Vec<String> = files.iter().map(|f| f.join(" + ")).collect();
        self.cx.out.detail(
            "image",
            format!("{} in snapshot set {set}", image.join(", ")),
        );
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
        let (core, faults, claims) = (&mut self.core, &*self.faults, &mut self.claims);
        match env.msg {
            Msg::Vmms(op) => {
                backup_window(cx, &op);
                let v = facts(cx.world, faults, op.vm());
                core.on_op(from, op, &v, now_us, &mut Port { cx, faults, claims });
            }
            Msg::IcReady { vm, result } => {
                let v = facts(cx.world, faults, vm);
                core.on_ic_ready(result, &v, &mut Port { cx, faults, claims });
            }
            Msg::MergeStep { vm } => {
                let v = facts(cx.world, faults, vm);
                core.on_merge_step(&v, &mut Port { cx, faults, claims });
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        for (vm, checkpoint) in self.core.taken() {
            let ar = self.core.recovery(*vm).map_or(0, |r| r as u8 + 1);
            h.update(&(*vm as u64).to_le_bytes());
            h.update(&[u8::from(*checkpoint), ar]);
        }
        for key in self.core.waiters() {
            h.update(&(key.vm as u64).to_le_bytes());
            h.update(key.on.name().as_bytes());
        }
    }
}
