//! The VSS service actor, run by the host (`HostVss`) and by every Windows guest
//! (`GuestVss`): messages in, the [`Coordinator`] decides, its effects go out through
//! `cx` and onto the world. Flows differ only in the writers and providers they register
//! and in what those do at each event.

use std::collections::BTreeMap;

use crate::protocol::msg::{Claim, Msg, SnapshotProp};
use crate::protocol::vss::{AppLevel, Coordinator, Effect, Input, VssCall, VssTimer};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope, Origin, TimerTable};
use crate::site::Site;
use crate::world::Lab;

/// How long a message between the service and its peers takes.
const CALL_US: u64 = 1_000;

pub struct VssService {
    core: Coordinator,
    timers: TimerTable<VssTimer>,
    /// The VM whose writes a flush-and-hold of this service holds (GuestVss), or `None`
    /// for the VMs with disks on the set's volumes (HostVss).
    hold_vm: Option<usize>,
    /// The writers' claims on the VMs of the set being made (their components), handed
    /// to the requester with DoSnapshotSet's result.
    claims: Vec<Claim>,
    /// What providers handed over of the shadow copies they made, by set (F4.8: the file
    /// share provider's `\\server\share@{GUID}` paths); GetSnapshotProperties answers it.
    snapshots: BTreeMap<u64, Vec<SnapshotProp>>,
}

impl VssService {
    pub fn new(name: String, hold_vm: Option<usize>) -> Self {
        VssService {
            core: Coordinator::new(name),
            timers: TimerTable::new(),
            hold_vm,
            claims: Vec::new(),
            snapshots: BTreeMap::new(),
        }
    }

    /// GetSnapshotProperties' answer for `set`: each shadow copy a provider handed over,
    /// then the device object of each volume snapshot the system provider took (which
    /// VSS knows as its own).
    fn properties(&self, set: u64, lab: &Lab) -> Vec<SnapshotProp> {
        let mut out = self.snapshots.get(&set).cloned().unwrap_or_default();
        for s in lab.shadows.get(&set).into_iter().flatten() {
            if s.exposed.is_none() && !out.iter().any(|p| p.volume == s.volume) {
                out.push(SnapshotProp {
                    volume: s.volume.clone(),
                    device: format!(r"\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy{}", s.id),
                });
            }
        }
        out
    }

    pub fn add_writer(&mut self, id: ActorId, level: AppLevel, freeze_us: Option<u64>) {
        self.core.add_writer(id, level, freeze_us);
    }

    /// A volume of another machine (an SMB share's volume): its snapshot is the file
    /// server's business, the host holds no writes for it.
    pub fn set_remote(&mut self, volume: &str) {
        self.core.set_remote(volume);
    }

    /// Another requester's snapshot set is in creation here until `until_us`.
    pub fn hold_foreign_set(&mut self, until_us: u64) {
        self.core.hold_foreign_set(until_us);
    }

    pub fn set_provider(&mut self, volume: Option<&str>, id: ActorId) {
        self.core.set_provider(volume, id);
    }

    fn apply(&mut self, effect: Effect, cx: &mut Cx<'_, Msg, Site>) {
        match effect {
            Effect::Refuse {
                to,
                call,
                set,
                fail,
            } => cx.out.send(
                to,
                Msg::VssDone {
                    call,
                    set,
                    result: Err(fail),
                    claims: Vec::new(),
                    writers: Vec::new(),
                    snapshots: Vec::new(),
                },
            ),
            Effect::Finish {
                to,
                call,
                set,
                result,
                writers,
            } => {
                let claims = std::mem::take(&mut self.claims);
                let snapshots = match (call, &result) {
                    (VssCall::GetSnapshotProperties, Ok(())) => self.properties(set, cx.world),
                    _ => Vec::new(),
                };
                if matches!(
                    call,
                    VssCall::BackupComplete | VssCall::AbortBackup | VssCall::BackupShutdown
                ) {
                    self.snapshots.remove(&set);
                }
                let msg = Msg::VssDone {
                    call,
                    set,
                    result,
                    claims,
                    writers,
                    snapshots,
                };
                cx.out.send_after(to, CALL_US, msg);
            }
            Effect::Writer { to, event, set } => {
                cx.out.send_after(to, CALL_US, Msg::Writer { event, set });
            }
            Effect::Provider {
                to,
                call,
                set,
                volumes,
            } => cx
                .out
                .send_after(to, CALL_US, Msg::Provider { call, set, volumes }),
            Effect::Volsnap { hold } => {
                // Its own step in the trace: IOCTL_VOLSNAP_FLUSH_AND_HOLD_WRITES and the
                // release of the held writes.
                let me = cx.out.me();
                cx.out.send(me, Msg::Hold { on: hold });
            }
            Effect::HoldWrites { volumes, on } => {
                hold_writes(cx.world, self.hold_vm, &volumes, on);
                cx.out.detail("volumes", Detail::Text(volumes.join(", ")));
            }
            Effect::SetTimer { timer, after_us } => {
                self.timers
                    .set(&mut cx.out, timer, after_us, Msg::Window { timer });
            }
            Effect::StopTimer(timer) => {
                self.timers.stop(&mut cx.out, timer);
            }
        }
    }
}

/// Flush-and-hold on storage: the VMs' writes wait (or go on again).
/// Issue 11 §3: a host's set opens the backup window of the VMs on its volumes (their
/// workloads start writing) and its end closes it.
fn backup_windows(cx: &mut Cx<'_, Msg, Site>, call: VssCall, volumes: &[String]) {
    match call {
        VssCall::SetBackupState => {
            let mut woken = Vec::new();
            for vm in cx.world.lab.vms_on(volumes) {
                if let Some(workload) = cx.world.lab.open_window(vm) {
                    cx.out.send(workload, Msg::Tick);
                    woken.push(cx.world.lab.vms[vm].name.clone());
                }
            }
            if !woken.is_empty() {
                cx.out
                    .detail("workload", format!("{} start", woken.join(", ")));
            }
        }
        VssCall::BackupComplete | VssCall::AbortBackup => {
            for vm in cx.world.lab.vms_on(volumes) {
                cx.world.lab.close_window(vm);
            }
        }
        _ => {}
    }
}

fn hold_writes(lab: &mut Lab, vm: Option<usize>, volumes: &[String], on: bool) {
    let vms: Vec<usize> = match vm {
        Some(vm) => vec![vm],
        None => (0..lab.vms.len())
            .filter(|&i| lab.vms[i].disks.iter().any(|d| volumes.contains(&d.volume)))
            .collect(),
    };
    for i in vms {
        if let Some(v) = lab.vms.get_mut(i) {
            v.held = on;
        }
    }
}

impl Actor<Msg, Site> for VssService {
    fn name(&self) -> &str {
        self.core.name()
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let from = env.sender().unwrap_or(cx.out.me());
        let input = match env.msg {
            Msg::Vss {
                call,
                set,
                volumes,
                with_writers,
            } => {
                if self.hold_vm.is_none() {
                    backup_windows(cx, call, &volumes);
                }
                if let (VssCall::BackupShutdown, Some(made)) = (call, self.core.unreleased()) {
                    // Reference vss.md §1.1 step 13: the object is released with its set
                    // never completed nor aborted; what the set made outside VSS (a
                    // Hyper-V checkpoint) stays (field failure 22).
                    cx.out.detail(
                        "release",
                        format!(
                            "snapshot set {made} was never completed or aborted: its \
                             auto-release shadow copies are deleted"
                        ),
                    );
                }
                Input::Call {
                    from,
                    call,
                    set,
                    volumes,
                    with_writers,
                }
            }
            Msg::WriterDone {
                event,
                state,
                result,
                claims,
            } => {
                self.claims.extend(claims);
                Input::WriterDone {
                    from,
                    event,
                    state,
                    result,
                }
            }
            Msg::ProviderDone { call, result } => Input::ProviderDone { from, call, result },
            Msg::Hold { on } => Input::Volsnap { hold: on },
            Msg::SnapshotProperties { set, snapshots } => {
                self.snapshots.entry(set).or_default().extend(snapshots);
                return;
            }
            Msg::Window { timer } => match env.origin {
                Origin::Timer(id) if self.timers.fired(timer, id) => Input::Timer(timer),
                _ => return, // replaced or stopped after it was queued
            },
            _ => return,
        };
        for effect in self.core.handle(cx.out.now_us(), input) {
            self.apply(effect, cx);
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        self.core.digest(h);
        for (set, props) in &self.snapshots {
            h.update(&set.to_le_bytes());
            for p in props {
                h.update(p.volume.as_bytes()).update(p.device.as_bytes());
            }
        }
    }
}
