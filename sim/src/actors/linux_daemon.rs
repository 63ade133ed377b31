//! `LinuxVssDaemon`: a Linux guest's `hv_snapshot` driver with `hv_vss_daemon` behind
//! it ([`crate::linux`]), as an actor. The host side sends real `struct hv_vss_msg`
//! bytes; the driver's transaction timers (FREEZE 900 s, others 30 s) run on the
//! scheduler's clock; while any file system is frozen the guest's writes wait.

use crate::faults::DaemonFault;
use crate::linux::{
    parse_proc_mounts, DaemonBehaviour, Effect, HvSnapshot, HvVssDaemon, HvVssMsg, HvVssOp,
    TransactionState,
};
use crate::protocol::msg::Msg;
use crate::scenario::{DaemonOp, DaemonState, FileSystem, Vm};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope, Origin, TimerId};
use crate::site::Site;

pub struct LinuxVssDaemon {
    name: String,
    vm: usize,
    driver: HvSnapshot,
    host: Option<ActorId>,
    timers: Vec<(u64, TimerId)>,
}

/// The guest's `/proc/mounts`: its volumes on /dev/sdX partitions, and the pseudo file
/// systems every Linux guest has.
pub fn proc_mounts(vm: &Vm) -> String {
    let mut text = String::from(
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
         sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n\
         tmpfs /run tmpfs rw,nosuid,nodev,mode=755 0 0\n",
    );
    for (d, disk) in vm.disks.iter().enumerate() {
        let letter = (b'a' + (d as u8 % 26)) as char;
        for (p, g) in disk.volumes.iter().enumerate() {
            let fs = match g.fs {
                FileSystem::Fat32 => "vfat".to_string(),
                other => other.as_str().to_ascii_lowercase(),
            };
            let target = if g.mount.starts_with('/') {
                g.mount.clone()
            } else {
                format!("/mnt/{}", g.mount.trim_end_matches(':'))
            };
            text.push_str(&format!(
                "/dev/sd{letter}{} {target} {fs} rw,relatime 0 0\n",
                p + 1
            ));
        }
    }
    text
}

/// The kernel's operation for a scenario's daemon operation.
fn hv_op(op: DaemonOp) -> HvVssOp {
    match op {
        DaemonOp::Freeze => HvVssOp::Freeze,
        DaemonOp::Thaw => HvVssOp::Thaw,
        DaemonOp::HotBackup => HvVssOp::HotBackup,
    }
}

impl LinuxVssDaemon {
    pub fn new(vm_name: &str, vm: usize, spec: &Vm, fault: Option<DaemonFault>) -> Self {
        let state = spec
            .guest
            .vss_daemon
            .clone()
            .unwrap_or(DaemonState::Running);
        // A missing daemon is the guest's make-up (R5), not a fault: nothing to misbehave.
        // Otherwise a planned fault (a hang, a `daemon_exit`) overrides the daemon's own
        // behaviour.
        let behaviour = match (state, fault) {
            (DaemonState::Missing, _) => DaemonBehaviour::Absent,
            (_, Some(DaemonFault::Hangs)) => DaemonBehaviour::Hanging,
            (_, Some(DaemonFault::ExitsDuring(op))) => DaemonBehaviour::ExitsDuring(hv_op(op)),
            (DaemonState::Running | DaemonState::Hanging, None) => DaemonBehaviour::Running,
            (DaemonState::SyslogDeadlock, None) => DaemonBehaviour::SyslogDeadlock,
            (DaemonState::FreezeFails { target, errno }, None) => {
                DaemonBehaviour::FreezeFails { target, errno }
            }
            (DaemonState::SlowReply { op, delay }, None) => DaemonBehaviour::SlowReply {
                op: hv_op(op),
                delay_us: delay.millis.saturating_mul(1_000),
            },
            (DaemonState::ExitsDuring(op), None) => DaemonBehaviour::ExitsDuring(hv_op(op)),
            (DaemonState::NoAutoRecoveryLost, None) => DaemonBehaviour::NoAutoRecoveryLost,
        };
        // The mounts come from the scenario's own volumes: they always parse.
        let mounts = parse_proc_mounts(&proc_mounts(spec)).unwrap_or_default();
        let daemon =
            HvVssDaemon::new(mounts, behaviour).with_frozen_by_admin(&spec.guest.frozen_by_admin);
        LinuxVssDaemon {
            name: format!("LinuxVssDaemon@{vm_name}"),
            vm,
            driver: HvSnapshot::new(daemon),
            host: None,
            timers: Vec::new(),
        }
    }

    fn apply(&mut self, effects: Vec<Effect>, cx: &mut Cx<'_, Msg, Site>) {
        for e in effects {
            match e {
                Effect::ReplyToHost { msg, status } => {
                    if let Some(host) = self.host {
                        cx.out.send_after(
                            host,
                            1_000,
                            Msg::HvVssReply {
                                msg: msg.encode(),
                                status,
                            },
                        );
                    }
                }
                Effect::TimerAt { at_us } => {
                    if !self.timers.iter().any(|(at, _)| *at == at_us) {
                        let delay = at_us.saturating_sub(cx.out.now_us());
                        let id = cx.out.set_timer(delay, Msg::HvVssTimer);
                        self.timers.push((at_us, id));
                    }
                }
                Effect::Froze { target } => cx.out.detail("FIFREEZE", target),
                Effect::Thawed { target } => cx.out.detail("FITHAW", target),
                Effect::Note(n) => cx.out.detail("note", n),
            }
        }
        // No transaction in flight and no late answer to write: the driver's timers
        // have nothing left to guard.
        let idle = matches!(
            self.driver.state(),
            TransactionState::Ready | TransactionState::DeviceInit
        );
        if idle && self.driver.queued() == 0 && !self.driver.answer_pending() {
            for (_, t) in self.timers.drain(..) {
                cx.out.cancel_timer(t);
            }
        }
        // A frozen file system holds every guest write to it; the workload writes
        // everywhere, so any frozen mount holds the guest.
        let frozen = self.driver.daemon().frozen().to_vec();
        let v = &mut cx.world.vms[self.vm];
        v.held = !frozen.is_empty();
        v.fs_frozen = frozen;
        v.daemon_exited = self.driver.daemon().behaviour() != &DaemonBehaviour::Absent
            && !self.driver.daemon().is_running();
        cx.out.detail("state", format!("{:?}", self.driver.state()));
    }
}

impl Actor<Msg, Site> for LinuxVssDaemon {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let now = cx.out.now_us();
        match (env.msg, env.origin) {
            (Msg::Start, _) => {
                let fx = self.driver.boot(now);
                self.apply(fx, cx);
            }
            (Msg::HvVss { msg }, Origin::Actor(host)) => {
                self.host = Some(host);
                match HvVssMsg::decode(&msg) {
                    Ok(m) => {
                        cx.out.detail("op", m.op.name());
                        let fx = self.driver.host_message(now, m);
                        self.apply(fx, cx);
                    }
                    Err(e) => cx
                        .out
                        .record("BadHvVssMsg", [("error", Detail::Text(e.to_string()))]),
                }
            }
            (Msg::HvVssTimer, Origin::Timer(id)) => {
                self.timers.retain(|(_, t)| *t != id);
                let fx = self.driver.on_timer(now);
                self.apply(fx, cx);
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        self.driver.digest(h);
    }
}
