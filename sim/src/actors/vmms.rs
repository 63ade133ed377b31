//! `Vmms`: the Virtual Machine Management Service of a host. Saves and resumes VMs,
//! takes checkpoints (backup, auto-recovery, production, standard, R4's named backup
//! checkpoint) as real AVHDX files, merges them online while the guest writes on, and
//! raises Hyper-V-VMMS events.

use std::collections::BTreeMap;
use std::rc::Rc;

use hvsim_engine::chain::{
    auto_recovery_file, backup_checkpoint_name, checkpoint_file, ChainError, DiskChain, Merge,
    MergeProgress,
};

use crate::faults::{CheckpointStep, FaultPlan};
use crate::msg::{Fail, IcPurpose, Msg, Reached, VmmsOp};
use crate::plan::{Flow, Method};
use crate::scenario::{FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope};
use crate::world::{Lab, Point, Power};

const SAVE_US: u64 = 4_000_000;
const RESUME_US: u64 = 2_000_000;
const CHECKPOINT_US: u64 = 800_000;
const MERGE_STEP_US: u64 = 100_000;
/// Blocks copied per merge step.
const MERGE_BLOCKS: u64 = 4;

/// Checkpoints Vmms made for a backup, per VM.
#[derive(Debug, Default)]
struct Taken {
    /// Per disk: the auto-recovery chain (F2.6).
    ar: Vec<Option<DiskChain>>,
    /// The backup/recovery checkpoint is in the chain.
    checkpoint: bool,
}

pub struct Vmms {
    name: String,
    faults: Rc<FaultPlan>,
    /// HvIc of each VM on this host.
    ics: BTreeMap<usize, ActorId>,
    taken: BTreeMap<usize, Taken>,
    /// Who waits for a VM's recovery checkpoint or merge.
    waiters: BTreeMap<(usize, &'static str), (ActorId, VmmsOp)>,
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
            faults,
            ics: BTreeMap::new(),
            taken: BTreeMap::new(),
            waiters: BTreeMap::new(),
        }
    }

    pub fn add_ic(&mut self, vm: usize, ic: ActorId) {
        self.ics.insert(vm, ic);
    }

    /// Takes a checkpoint of every disk of the VM: `<disk>_<GUID>.avhdx`, plus the
    /// independent `<disk>-AutoRecovery.avhdx` for F2. Nothing is left behind on failure.
    fn checkpoint(
        &mut self,
        vm: usize,
        with_ar: bool,
        cx: &mut Cx<'_, Msg, Lab>,
    ) -> Result<(), Fail> {
        let guard = &mut *cx.world;
        let lab = &mut *guard;
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
                result = Err(Fail::new(Hresult::VssEUnexpected, FailureClass::Host, e));
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
            let t = self.taken.entry(vm).or_default();
            t.checkpoint = true;
            t.ar = ar;
        }
        for d in &mut v.disks {
            if v.power != Power::Off {
                if let Err(e) = d.reopen(false, cx.out.guids()) {
                    result = result.and(Err(Fail::new(
                        Hresult::VssEUnexpected,
                        FailureClass::Host,
                        e,
                    )));
                }
            }
        }
        result
    }

    fn reply(
        &mut self,
        to: ActorId,
        delay: u64,
        op: VmmsOp,
        result: Result<(), Fail>,
        cx: &mut Cx<'_, Msg, Lab>,
    ) {
        cx.out.send_after(to, delay, Msg::VmmsDone { op, result });
    }

    fn start_merge(&mut self, vm: usize, cx: &mut Cx<'_, Msg, Lab>) -> Result<bool, Fail> {
        let guard = &mut *cx.world;
        let lab = &mut *guard;
        let v = &mut lab.vms[vm];
        let mut any = false;
        for d in &mut v.disks {
            if d.chain.checkpoints() == 0 || d.merge.is_some() {
                continue;
            }
            d.reopen(true, cx.out.guids())
                .map_err(|e| Fail::new(Hresult::VssEUnexpected, FailureClass::Host, e))?;
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

    /// One step of every running merge of the VM; true when all are done.
    fn merge_step(&mut self, vm: usize, cx: &mut Cx<'_, Msg, Lab>) -> Result<bool, Fail> {
        let guard = &mut *cx.world;
        let lab = &mut *guard;
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
                    d.reopen(false, cx.out.guids()).map_err(fail)?;
                }
            }
        }
        Ok(done)
    }

    /// F2.10–F2.12 inside the volume snapshot: the auto-recovery checkpoint holds the
    /// consistent image; it is merged into the base there, and discarded on the live
    /// volume.
    fn auto_recover(&mut self, vm: usize, set: u64, cx: &mut Cx<'_, Msg, Lab>) -> Result<(), Fail> {
        let fail = |e: String| Fail::new(Hresult::VssEAutorecoveryFailed, FailureClass::Host, e);
        let Some(taken) = self.taken.get_mut(&vm) else {
            let name = cx.world.vms[vm].name.clone();
            return Err(fail(format!(
                "{name}: no backup checkpoint to auto-recover"
            )));
        };
        let guard = &mut *cx.world;
        let lab = &mut *guard;
        let mut recovered = false;
        for (i, ar) in taken.ar.iter_mut().enumerate() {
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
        {
            // F2.13: the requester reads each base disk from the snapshot, where it now
            // holds the consistent image.
            let files = lab.vms[vm]
                .disks
                .iter()
                .map(|d| vec![d.chain.base().to_string()])
                .collect();
            lab.sources.insert(vm, (Some(set), files));
        }
        Ok(())
    }

    fn discard_ar(&mut self, vm: usize) {
        let Some(t) = self.taken.get_mut(&vm) else {
            return;
        };
        for ar in t.ar.iter_mut().filter_map(Option::take) {
            let _ = ar.volume.remove(ar.active());
        }
    }
}

impl Actor<Msg, Lab> for Vmms {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Lab>) {
        let from = env.sender().unwrap_or(cx.out.me());
        match env.msg {
            Msg::Vmms(op) => self.on_op(from, op, cx),
            Msg::IcReady { vm, result } => self.on_ic_ready(vm, result, cx),
            Msg::MergeStep { vm } => match self.merge_step(vm, cx) {
                Ok(false) => {
                    cx.out.set_timer(MERGE_STEP_US, Msg::MergeStep { vm });
                }
                Ok(true) => {
                    if let Some(t) = self.taken.get_mut(&vm) {
                        t.checkpoint = false;
                    }
                    if let Some((to, op)) = self.waiters.remove(&(vm, "merge")) {
                        self.reply(to, 0, op, Ok(()), cx);
                    }
                }
                Err(f) => {
                    {
                        let lab = &mut *cx.world;
                        let about = format!("virtual machine '{}': {}", lab.vms[vm].name, f.detail);
                        let host = lab.vms[vm].host.clone();
                        lab.raise(19100, &host, about);
                    }
                    let f = f.with_event(19100);
                    if let Some((to, op)) = self.waiters.remove(&(vm, "merge")) {
                        self.reply(to, 0, op, Err(f), cx);
                    }
                }
            },
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        for (vm, t) in &self.taken {
            h.update(&(*vm as u64).to_le_bytes());
            h.update(&[u8::from(t.checkpoint), t.ar.iter().flatten().count() as u8]);
        }
        for (vm, what) in self.waiters.keys() {
            h.update(&(*vm as u64).to_le_bytes());
            h.update(what.as_bytes());
        }
    }
}

impl Vmms {
    fn on_op(&mut self, from: ActorId, op: VmmsOp, cx: &mut Cx<'_, Msg, Lab>) {
        let vm = op.vm();
        match &op {
            VmmsOp::SaveState { .. } => {
                let lab = &mut *cx.world;
                let now = cx.out.now_us();
                let v = &mut lab.vms[vm];
                if v.power == Power::Running {
                    v.power = Power::Saved;
                    v.saved_at_us = Some(now);
                    cx.out.detail("state", "saved (memory written to disk)");
                } else {
                    cx.out.detail(
                        "state",
                        format!("already {}: nothing to save", v.power.name()),
                    );
                }
                self.reply(from, SAVE_US, op, Ok(()), cx);
            }
            VmmsOp::Resume { .. } => {
                let lab = &mut *cx.world;
                let now = cx.out.now_us();
                let v = &mut lab.vms[vm];
                if v.power == Power::Saved && v.saved_at_us.is_some() {
                    v.power = Power::Running;
                    let since = v.saved_at_us.take().unwrap_or(now);
                    v.downtime_us += now + RESUME_US - since;
                    cx.out.detail("downtime_us", v.downtime_us);
                }
                self.reply(from, RESUME_US, op, Ok(()), cx);
            }
            VmmsOp::NamedBackupCheckpoint { .. } => {
                let name = {
                    let lab = &*cx.world;
                    backup_checkpoint_name(
                        &lab.vms[vm].name,
                        1_700_000_000 + cx.out.now_us() / 1_000_000,
                    )
                };
                cx.out.detail("checkpoint", name);
                let r = self.checkpoint(vm, false, cx);
                if r.is_ok() {
                    let lab = &mut *cx.world;
                    lab.vms[vm].capture(Point::Instant);
                }
                self.reply(from, CHECKPOINT_US, op, r, cx);
            }
            VmmsOp::CheckpointNow { .. } => {
                let flow = cx.world.plans.get(&vm).map(|p| p.flow);
                let r = self.checkpoint(vm, flow == Some(Flow::F2), cx);
                self.reply(from, CHECKPOINT_US, op, r, cx);
            }
            VmmsOp::BackupCheckpoints { .. } => {
                let r = self.checkpoint(vm, true, cx);
                self.reply(from, CHECKPOINT_US, op, r, cx);
            }
            VmmsOp::CreateRecoveryCheckpoint { .. } => {
                let method = cx.world.plans.get(&vm).map(|p| p.method);
                match method {
                    Some(Method::GuestVss | Method::DaemonFreeze) => {
                        let Some(&ic) = self.ics.get(&vm) else { return };
                        self.waiters.insert((vm, "checkpoint"), (from, op));
                        cx.out.send(
                            ic,
                            Msg::IcBackup {
                                purpose: IcPurpose::Checkpoint,
                            },
                        );
                    }
                    _ => {
                        cx.out.detail("checkpoint", "standard");
                        let r = self.checkpoint(vm, false, cx);
                        if r.is_ok() {
                            let lab = &mut *cx.world;
                            lab.vms[vm].capture(Point::Instant);
                            lab.consistency.insert(vm, Reached::Crash);
                        }
                        self.reply(from, CHECKPOINT_US, op, r, cx);
                    }
                }
            }
            VmmsOp::MergeCheckpoint { .. } => {
                super::tag(cx.world, &mut cx.out, vm, crate::plan::Stage::Merge);
                self.discard_ar(vm);
                match self.start_merge(vm, cx) {
                    Ok(true) => {
                        self.waiters.insert((vm, "merge"), (from, op));
                        cx.out.set_timer(MERGE_STEP_US, Msg::MergeStep { vm });
                    }
                    Ok(false) => self.reply(from, 0, op, Ok(()), cx),
                    Err(f) => self.reply(from, 0, op, Err(f), cx),
                }
            }
            VmmsOp::AutoRecover { set, .. } => {
                let r = self.auto_recover(vm, *set, cx);
                self.reply(from, CHECKPOINT_US, op, r, cx);
            }
        }
    }

    fn on_ic_ready(&mut self, vm: usize, result: Result<Reached, Fail>, cx: &mut Cx<'_, Msg, Lab>) {
        let Some((to, op)) = self.waiters.remove(&(vm, "checkpoint")) else {
            return;
        };
        match result {
            Ok(reached) => {
                cx.world.consistency.insert(vm, reached);
                self.reply(to, 0, op, Ok(()), cx);
            }
            Err(f) => {
                {
                    let lab = &mut *cx.world;
                    let about = format!("virtual machine '{}': {}", lab.vms[vm].name, f.detail);
                    let host = lab.vms[vm].host.clone();
                    lab.raise(10150, &host, about);
                }
                let (only, name) = {
                    let lab = &*cx.world;
                    (
                        lab.plans.get(&vm).is_some_and(|p| p.production_only),
                        lab.vms[vm].name.clone(),
                    )
                };
                if only {
                    // ProductionOnly: no fallback.
                    self.reply(to, 0, op, Err(f), cx);
                    return;
                }
                // Production falls back to a standard checkpoint (crash-consistent).
                cx.out.record(
                    "FallbackToStandard",
                    [
                        ("vm", Detail::Text(name)),
                        ("cause", Detail::Str(f.code.as_str())),
                    ],
                );
                let r = self.checkpoint(vm, false, cx);
                if r.is_ok() {
                    let lab = &mut *cx.world;
                    lab.vms[vm].capture(Point::Instant);
                    lab.consistency.insert(vm, Reached::Crash);
                    lab.fallbacks.insert(vm);
                }
                self.reply(to, CHECKPOINT_US, op, r, cx);
            }
        }
    }
}
