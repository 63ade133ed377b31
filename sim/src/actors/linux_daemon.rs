//! `LinuxVssDaemon`: the hv_snapshot channel with `hv_vss_daemon` behind it in a Linux
//! guest. FREEZE freezes the guest's file systems (writes stop), THAW thaws them; a
//! missing daemon fails at once, a hanging one is cut off by the kernel's transaction
//! timer (FREEZE 900 s).

use crate::msg::Msg;
use crate::scenario::DaemonState;
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope, Origin, TimerId};
use crate::world::LabRef;

use super::hv_ic::{VSS_OP_FREEZE, VSS_OP_THAW};

pub const HV_E_FAIL: u32 = 0x8000_4005;
/// The kernel's transaction timers (drivers/hv/hv_snapshot.c).
const FREEZE_TIMEOUT_US: u64 = 900_000_000;
const OTHER_TIMEOUT_US: u64 = 30_000_000;
const FREEZE_US: u64 = 200_000;

pub struct LinuxVssDaemon {
    name: String,
    vm: usize,
    lab: LabRef,
    state: DaemonState,
    frozen: bool,
    timer: Option<(TimerId, u8)>,
    /// The host side waiting for the transaction's reply.
    reply_to: Option<ActorId>,
}

impl LinuxVssDaemon {
    pub fn new(vm_name: &str, vm: usize, lab: LabRef, state: DaemonState) -> Self {
        LinuxVssDaemon {
            name: format!("LinuxVssDaemon@{vm_name}"),
            vm,
            lab,
            state,
            frozen: false,
            timer: None,
            reply_to: None,
        }
    }
}

impl Actor<Msg> for LinuxVssDaemon {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg>) {
        match (env.msg, env.origin) {
            (Msg::HvVss { op }, Origin::Actor(host)) => {
                self.reply_to = Some(host);
                let error = match (self.state, op) {
                    (DaemonState::Missing, _) => {
                        cx.detail("daemon", "not running: answered by the kernel");
                        HV_E_FAIL
                    }
                    (DaemonState::Hanging, _) => {
                        let t = if op == VSS_OP_FREEZE {
                            FREEZE_TIMEOUT_US
                        } else {
                            OTHER_TIMEOUT_US
                        };
                        cx.detail("daemon", "received, never answers");
                        let id = cx.set_timer(
                            t,
                            Msg::HvVssReply {
                                op,
                                error: HV_E_FAIL,
                            },
                        );
                        self.timer = Some((id, op));
                        return;
                    }
                    (DaemonState::Running, VSS_OP_FREEZE) => {
                        self.frozen = true;
                        self.lab.borrow_mut().vms[self.vm].held = true;
                        cx.detail("FIFREEZE", "every mounted file system, / last");
                        0
                    }
                    (DaemonState::Running, VSS_OP_THAW) => {
                        self.frozen = false;
                        self.lab.borrow_mut().vms[self.vm].held = false;
                        cx.detail("FITHAW", "every frozen file system");
                        0
                    }
                    (DaemonState::Running, _) => 0,
                };
                cx.send_after(host, FREEZE_US, Msg::HvVssReply { op, error });
            }
            (Msg::HvVssReply { op, error }, Origin::Timer(_)) => {
                // The transaction timer expired: HV_E_FAIL to the host.
                self.timer = None;
                cx.record("TransactionTimeout", [("op", Detail::U64(op.into()))]);
                if let Some(host) = self.reply_to {
                    cx.send(host, Msg::HvVssReply { op, error });
                }
            }
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[u8::from(self.frozen), u8::from(self.timer.is_some())]);
    }
}
