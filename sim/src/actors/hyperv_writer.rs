//! `HyperVWriter`: the Microsoft Hyper-V VSS Writer, hosted by VMMS. At PrepareForSnapshot
//! it gets every VM of the backup ready (the guest's own backup through `HvIc`, a saved
//! state, or a checkpoint) and answers only when all are; at PostSnapshot it runs the
//! auto-recovery (F1.A, F2.10–12) and resumes saved VMs; at BackupComplete it merges
//! the backup checkpoints (F2.14). No partial backups: one VM failing fails them all.

use std::collections::{BTreeMap, BTreeSet};

use crate::msg::{Fail, IcPurpose, Msg, Reached, VmmsOp};
use crate::plan::{Flow, Method, Stage};
use crate::scenario::{FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Envelope};
use crate::vss::{WriterEvent, WriterState};
use crate::world::Lab;

/// "Microsoft Hyper-V VSS Writer".
pub const WRITER_ID: &str = "66841cd4-6ded-4f4b-8f17-fd23f8ddc3de";

pub struct HyperVWriter {
    name: String,
    host: String,
    vmms: ActorId,
    ics: BTreeMap<usize, ActorId>,
    state: WriterState,
    /// The event being handled, who asked, the set, and the VMs still outstanding.
    event: Option<(WriterEvent, ActorId, u64)>,
    outstanding: BTreeSet<usize>,
    failure: Option<Fail>,
    /// VMs whose guest holds an internal snapshot (F1), saved VMs, checkpointed VMs.
    prepared: BTreeMap<usize, Method>,
}

impl HyperVWriter {
    pub fn new(host: &str, vmms: ActorId) -> Self {
        HyperVWriter {
            name: format!("HyperVWriter@{host}"),
            host: host.to_string(),
            vmms,
            ics: BTreeMap::new(),
            state: WriterState::Stable,
            event: None,
            outstanding: BTreeSet::new(),
            failure: None,
            prepared: BTreeMap::new(),
        }
    }

    pub fn add_ic(&mut self, vm: usize, ic: ActorId) {
        self.ics.insert(vm, ic);
    }

    /// The VMs of this backup on this host, with their plans.
    fn vms(&self, lab: &Lab) -> Vec<(usize, crate::plan::Plan)> {
        lab.plans
            .iter()
            .filter(|(&vm, p)| lab.vms[vm].host == self.host && p.flow != Flow::F3)
            .map(|(&vm, p)| (vm, p.clone()))
            .collect()
    }

    fn prepare_snapshot(&mut self, cx: &mut Cx<'_, Msg, Lab>) {
        for (vm, plan) in self.vms(cx.world) {
            if let Some((id, text)) = &plan.refused {
                let lab = &mut *cx.world;
                let host = self.host.clone();
                lab.raise(*id, &host, text.clone());
                cx.out.detail("event", u64::from(*id));
                self.failure.get_or_insert(
                    Fail::new(
                        Hresult::VssEWritererrorNonretryable,
                        FailureClass::Guest,
                        text.clone(),
                    )
                    .with_event(*id),
                );
                continue;
            }
            let msg = match (plan.flow, plan.method) {
                (_, Method::SavedState) => Msg::Vmms(VmmsOp::SaveState { vm }),
                (_, Method::NamedCheckpoint) => Msg::Vmms(VmmsOp::NamedBackupCheckpoint { vm }),
                (Flow::F1, _) => Msg::IcBackup {
                    purpose: IcPurpose::ChildVmSnapshot,
                },
                _ => Msg::IcBackup {
                    purpose: IcPurpose::Checkpoint,
                },
            };
            let to = match &msg {
                Msg::Vmms(_) => self.vmms,
                _ => match self.ics.get(&vm) {
                    Some(&ic) => ic,
                    None => continue,
                },
            };
            self.outstanding.insert(vm);
            self.prepared.insert(vm, plan.method);
            super::tag(cx.world, &mut cx.out, vm, Stage::GuestRequest);
            cx.out.send(to, msg);
        }
    }

    fn post_snapshot(&mut self, set: u64, cx: &mut Cx<'_, Msg, Lab>) {
        for (vm, plan) in self.vms(cx.world) {
            let Some(&method) = self.prepared.get(&vm) else {
                continue;
            };
            let files: Vec<Vec<String>> = {
                let lab = &*cx.world;
                lab.vms[vm]
                    .disks
                    .iter()
                    .map(|d| d.chain.files.clone())
                    .collect()
            };
            match (plan.flow, method) {
                (_, Method::SavedState) => {
                    cx.world.sources.insert(vm, (Some(set), files));
                    self.outstanding.insert(vm);
                    cx.out.send(self.vmms, Msg::Vmms(VmmsOp::Resume { vm }));
                }
                (_, Method::NamedCheckpoint) => {
                    // R4: the shadow copy holds the checkpoint's image: its parent.
                    let parents = files.iter().map(|f| f[..f.len() - 1].to_vec()).collect();
                    cx.world.sources.insert(vm, (Some(set), parents));
                }
                (Flow::F1, _) => {
                    super::tag(cx.world, &mut cx.out, vm, Stage::AutoRecovery);
                    // F1.A: inside the writable snapshot, back to the internal snapshot.
                    if let Err(f) = self.revert_in_snapshot(vm, set, cx) {
                        let lab = &mut *cx.world;
                        let about = format!("virtual machine '{}': {}", lab.vms[vm].name, f.detail);
                        let host = self.host.clone();
                        lab.raise(10103, &host, about);
                        self.failure.get_or_insert(f.with_event(10103));
                    }
                    cx.world.sources.insert(vm, (Some(set), files));
                    if let Some(&ic) = self.ics.get(&vm) {
                        self.outstanding.insert(vm);
                        cx.out.send(ic, Msg::IcFinish { ok: true });
                    }
                }
                _ => {
                    super::tag(cx.world, &mut cx.out, vm, Stage::AutoRecovery);
                    self.outstanding.insert(vm);
                    cx.out
                        .send(self.vmms, Msg::Vmms(VmmsOp::AutoRecover { vm, set }));
                }
            }
        }
    }

    fn revert_in_snapshot(
        &mut self,
        vm: usize,
        set: u64,
        cx: &mut Cx<'_, Msg, Lab>,
    ) -> Result<(), Fail> {
        let guard = &mut *cx.world;
        let lab = &mut *guard;
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
                .open_on(&snap, true, false, cx.out.guids())
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
        cx.out.detail(
            "auto_recovery",
            format!("{restored} chunks rolled back to the internal snapshot"),
        );
        Ok(())
    }

    fn backup_complete(&mut self, cx: &mut Cx<'_, Msg, Lab>) {
        for (vm, _) in self.vms(cx.world) {
            match self.prepared.remove(&vm) {
                Some(Method::SavedState) | None => {}
                Some(_)
                    if cx.world.vms[vm]
                        .disks
                        .iter()
                        .any(|d| d.chain.checkpoints() > 0) =>
                {
                    self.outstanding.insert(vm);
                    cx.out
                        .send(self.vmms, Msg::Vmms(VmmsOp::MergeCheckpoint { vm }));
                }
                Some(_) => {}
            }
        }
    }

    fn abort(&mut self, cx: &mut Cx<'_, Msg, Lab>) {
        let prepared = std::mem::take(&mut self.prepared);
        for (vm, method) in prepared {
            let (saved, checkpoints, flow) = {
                let lab = &*cx.world;
                let v = &lab.vms[vm];
                (
                    v.power == crate::world::Power::Saved,
                    v.disks.iter().any(|d| d.chain.checkpoints() > 0),
                    lab.plans.get(&vm).map(|p| p.flow),
                )
            };
            if saved {
                self.outstanding.insert(vm);
                cx.out.send(self.vmms, Msg::Vmms(VmmsOp::Resume { vm }));
            } else if checkpoints {
                self.outstanding.insert(vm);
                cx.out
                    .send(self.vmms, Msg::Vmms(VmmsOp::MergeCheckpoint { vm }));
            } else if flow == Some(Flow::F1) && method == Method::GuestVss {
                if let Some(&ic) = self.ics.get(&vm) {
                    self.outstanding.insert(vm);
                    cx.out.send(ic, Msg::IcFinish { ok: false });
                }
            }
        }
    }

    fn reply_if_done(&mut self, cx: &mut Cx<'_, Msg, Lab>) {
        if !self.outstanding.is_empty() {
            return;
        }
        let Some((event, vss, _)) = self.event.take() else {
            return;
        };
        let result = match self.failure.take() {
            Some(f) if event != WriterEvent::OnAbort => {
                self.state = event.failed_state();
                Err(f)
            }
            _ => {
                self.state = event.state_after();
                Ok(())
            }
        };
        cx.out.send_after(
            vss,
            10_000,
            Msg::WriterDone {
                event,
                state: self.state,
                result,
            },
        );
    }
}

impl Actor<Msg, Lab> for HyperVWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Lab>) {
        let from = env.sender().unwrap_or(cx.out.me());
        match env.msg {
            Msg::Writer { event, set } => {
                self.event = Some((event, from, set));
                self.failure = None;
                match event {
                    WriterEvent::OnIdentify => cx.out.detail("writer_id", WRITER_ID),
                    WriterEvent::OnPrepareSnapshot => self.prepare_snapshot(cx),
                    WriterEvent::OnPostSnapshot => self.post_snapshot(set, cx),
                    WriterEvent::OnBackupComplete => self.backup_complete(cx),
                    WriterEvent::OnAbort => self.abort(cx),
                    _ => {}
                }
                self.reply_if_done(cx);
            }
            Msg::IcReady { vm, result } => {
                self.outstanding.remove(&vm);
                match result {
                    Ok(r) => {
                        cx.world.consistency.entry(vm).or_insert(r);
                    }
                    Err(f) => {
                        self.prepared.remove(&vm);
                        let lab = &mut *cx.world;
                        if lab.vms[vm]
                            .host_version
                            .at_least(crate::scenario::HyperVVersion::V2012R2)
                        {
                            let about =
                                format!("virtual machine '{}': {}", lab.vms[vm].name, f.detail);
                            let host = self.host.clone();
                            lab.raise(10150, &host, about);
                        }
                        self.failure.get_or_insert(f);
                    }
                }
                self.reply_if_done(cx);
            }
            Msg::VmmsDone { op, result } => {
                let vm = op.vm();
                self.outstanding.remove(&vm);
                match (&op, result) {
                    (VmmsOp::SaveState { .. } | VmmsOp::NamedBackupCheckpoint { .. }, Ok(())) => {
                        cx.world.consistency.insert(vm, Reached::Crash);
                    }
                    (VmmsOp::SaveState { .. } | VmmsOp::NamedBackupCheckpoint { .. }, Err(f)) => {
                        self.prepared.remove(&vm);
                        self.failure.get_or_insert(f);
                    }
                    (_, Err(f)) => {
                        self.failure.get_or_insert(f);
                    }
                    _ => {}
                }
                self.reply_if_done(cx);
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[self.state as u8]);
        for vm in &self.outstanding {
            h.update(&(*vm as u64).to_le_bytes());
        }
    }
}
