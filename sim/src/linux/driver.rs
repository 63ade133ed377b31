//! The `hv_snapshot` kernel driver: one VSS transaction at a time between the host and
//! `hv_vss_daemon` (R5; vss.md §4.4).
//!
//! Modelled on the upstream driver's behaviour:
//! - Host packets wait in the VMBus ring while a transaction is in flight (state above
//!   READY); the driver reads the next one when the transaction ends. Nothing is refused.
//! - GET_DM_INFO (flags 0), CREATE, DELETE, BU_COMPLETE, AUTO_RECOVER (and any other
//!   operation) are answered HV_S_OK by the kernel; answering ends in state READY, even
//!   from DEVICE_INIT.
//! - FREEZE, THAW, HOT_BACKUP: in DEVICE_INIT (no daemon registered) answered HV_E_FAIL at
//!   once; otherwise forwarded with a transaction timer (FREEZE 900 s, others 30 s). If the
//!   previous request still sits unread in the device, or the device is closed, the send
//!   fails and the host gets HV_E_FAIL at once.
//! - The daemon's answer is accepted only in USERSPACE_REQ (else EINVAL, and the daemon
//!   reopens the device). The kernel does not check which request an answer belongs to.
//! - Timer expiry: HV_E_FAIL to the host, state READY; the daemon is left as it is.
//! - Device closed (daemon exit or reopen): a pending transaction gets HV_E_FAIL, the
//!   unread request is dropped, state DEVICE_INIT.
//!
//! The host's answer carries the result in the IC message header (`status`) and echoes the
//! host's `hv_vss_msg` with the flags the kernel set.

use std::collections::VecDeque;

use super::daemon::{DaemonOutcome, FsEvent, HvVssDaemon, EINVAL};
use super::msg::{
    HvVssMsg, HvVssOp, HvVssReply, HV_E_FAIL, HV_S_OK, VSS_HBU_NO_AUTO_RECOVERY, VSS_VERSION,
};

/// Transaction timer for FREEZE.
pub const FREEZE_TIMEOUT_US: u64 = 900 * 1_000_000;
/// Transaction timer for the other forwarded operations (HV_UTIL_TIMEOUT).
pub const UTIL_TIMEOUT_US: u64 = 30 * 1_000_000;

/// `enum hvutil_device_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    DeviceInit = 0,
    Ready = 1,
    HostMsgReceived = 2,
    UserspaceReq = 3,
    UserspaceRecv = 4,
    DeviceDying = 5,
}

/// What the driver asks of the world.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Reply to the host over VMBus: the host's hv_vss_msg with the flags the kernel set;
    /// `status` is the result (icmsg_hdr.status): HV_S_OK or HV_E_FAIL.
    ReplyToHost { msg: HvVssMsg, status: u32 },
    /// Ask the caller to call `on_timer(at_us)` at this virtual time.
    TimerAt { at_us: u64 },
    /// FIFREEZE succeeded on `target` (I2 file-consistent = image at the freeze).
    Froze { target: String },
    /// FITHAW thawed `target`.
    Thawed { target: String },
    /// For the story / trace.
    Note(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HvSnapshot {
    state: TransactionState,
    daemon: HvVssDaemon,
    /// Host packets not read yet (the VMBus ring).
    ring: VecDeque<HvVssMsg>,
    /// The host message of the current transaction.
    current: Option<HvVssMsg>,
    /// Transaction timer deadline (armed while a request is with the daemon).
    deadline_us: Option<u64>,
    /// The request written to the device but not read by the daemon (hvutil outmsg).
    outmsg: Option<HvVssMsg>,
    /// Whether the device is open (hvutil transport in CHARDEV mode).
    device_open: bool,
    /// A late daemon answer and when it is written.
    late_answer: Option<(u64, HvVssReply)>,
    replies_ok: u32,
    replies_fail: u32,
}

impl HvSnapshot {
    pub fn new(daemon: HvVssDaemon) -> Self {
        HvSnapshot {
            state: TransactionState::DeviceInit,
            daemon,
            ring: VecDeque::new(),
            current: None,
            deadline_us: None,
            outmsg: None,
            device_open: false,
            late_answer: None,
            replies_ok: 0,
            replies_fail: 0,
        }
    }

    pub fn state(&self) -> TransactionState {
        self.state
    }

    pub fn daemon(&self) -> &HvVssDaemon {
        &self.daemon
    }

    /// Host messages waiting in the ring.
    pub fn queued(&self) -> usize {
        self.ring.len()
    }

    /// (HV_S_OK replies, HV_E_FAIL replies) sent to the host so far.
    pub fn reply_counts(&self) -> (u32, u32) {
        (self.replies_ok, self.replies_fail)
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(b"hv_snapshot\0");
        h.update(format!("{self:?}").as_bytes());
    }

    /// Guest boot: the daemon (unless absent) opens /dev/vmbus/hv_vss and registers with
    /// REGISTER1; the kernel answers the handshake; state READY.
    pub fn boot(&mut self, now_us: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if !self.register_daemon(&mut fx) {
            fx.push(Effect::Note(
                "no hv_vss_daemon: /dev/vmbus/hv_vss not opened, hv_snapshot stays in DEVICE_INIT"
                    .to_string(),
            ));
        }
        self.pump(now_us, &mut fx);
        fx
    }

    /// A message from the host.
    pub fn host_message(&mut self, now_us: u64, msg: HvVssMsg) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.ring.push_back(msg);
        if self.state > TransactionState::Ready {
            fx.push(Effect::Note(format!(
                "{} waits in the VMBus ring: transaction in flight",
                msg.op.name()
            )));
        }
        self.pump(now_us, &mut fx);
        fx
    }

    /// A timer the driver asked for has come due (stale timers do nothing).
    pub fn on_timer(&mut self, now_us: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        loop {
            let late = self.late_answer.filter(|(at, _)| *at <= now_us);
            let timeout = self.deadline_us.filter(|at| *at <= now_us);
            match (late, timeout) {
                // The earlier event first; on a tie the daemon's write wins the race.
                (Some((at, reply)), t) if t.is_none_or(|d| at <= d) => {
                    self.late_answer = None;
                    self.daemon.answer_written();
                    self.daemon_writes_answer(at, reply, &mut fx);
                    self.kick_daemon(at, &mut fx);
                }
                (_, Some(at)) => {
                    self.deadline_us = None;
                    let op = self.current.map(|m| m.op);
                    fx.push(Effect::Note(format!(
                        "VSS: timeout waiting for daemon to reply ({})",
                        op.map_or("?", HvVssOp::name)
                    )));
                    self.respond(HV_E_FAIL, &mut fx);
                    self.finish(at, &mut fx);
                }
                _ => break,
            }
        }
        fx
    }

    // ----- internals -----

    fn register_daemon(&mut self, fx: &mut Vec<Effect>) -> bool {
        let Some(bytes) = self.daemon.open_and_register() else {
            return false;
        };
        self.device_open = true;
        match HvVssMsg::decode(&bytes) {
            Ok(m) if m.op == HvVssOp::Register1 && self.state <= TransactionState::Ready => {
                // The kernel answers with a u32 (VSS_OP_REGISTER1); once the daemon has
                // read it the kernel is READY.
                self.state = TransactionState::Ready;
                fx.push(Effect::Note(format!(
                    "daemon registered (REGISTER1), kernel handshake answer {}, driver version {}.{}",
                    HvVssOp::Register1.code(),
                    VSS_VERSION >> 16,
                    VSS_VERSION & 0xffff
                )));
                true
            }
            _ => {
                fx.push(Effect::Note("daemon registration refused".to_string()));
                false
            }
        }
    }

    fn respond(&mut self, status: u32, fx: &mut Vec<Effect>) {
        let Some(msg) = self.current else { return };
        if status == HV_S_OK {
            self.replies_ok += 1;
        } else {
            self.replies_fail += 1;
        }
        fx.push(Effect::ReplyToHost { msg, status });
    }

    /// Transaction over: READY and read the next host packet (hv_poll_channel).
    fn finish(&mut self, now_us: u64, fx: &mut Vec<Effect>) {
        self.current = None;
        self.state = TransactionState::Ready;
        self.pump(now_us, fx);
    }

    /// Read host packets while no transaction is in flight.
    fn pump(&mut self, now_us: u64, fx: &mut Vec<Effect>) {
        while self.state <= TransactionState::Ready {
            let Some(msg) = self.ring.pop_front() else {
                return;
            };
            self.current = Some(msg);
            self.handle_request(now_us, msg, fx);
        }
    }

    fn handle_request(&mut self, now_us: u64, msg: HvVssMsg, fx: &mut Vec<Effect>) {
        match msg.op {
            HvVssOp::Freeze | HvVssOp::Thaw | HvVssOp::HotBackup => {
                if self.state < TransactionState::Ready {
                    fx.push(Effect::Note(format!(
                        "{}: no daemon registered, failing at once",
                        msg.op.name()
                    )));
                    self.respond(HV_E_FAIL, fx);
                    self.current = None;
                    return;
                }
                self.state = TransactionState::HostMsgReceived;
                self.send_op(now_us, msg, fx);
            }
            op => {
                if let Some(m) = self.current.as_mut() {
                    if op == HvVssOp::GetDmInfo {
                        m.flags = 0;
                    }
                }
                self.respond(HV_S_OK, fx);
                self.finish(now_us, fx);
            }
        }
    }

    fn send_op(&mut self, now_us: u64, msg: HvVssMsg, fx: &mut Vec<Effect>) {
        self.state = TransactionState::UserspaceReq;
        if !self.device_open || self.outmsg.is_some() {
            // hvutil_transport_send fails (-EINVAL / -EFAULT): the timer is cancelled
            // before it was ever due.
            fx.push(Effect::Note(format!(
                "VSS: failed to communicate to the daemon ({})",
                if self.device_open {
                    "previous request still unread"
                } else {
                    "device not open"
                }
            )));
            self.respond(HV_E_FAIL, fx);
            self.current = None;
            self.state = TransactionState::Ready;
            return;
        }
        let at_us = now_us
            + if msg.op == HvVssOp::Freeze {
                FREEZE_TIMEOUT_US
            } else {
                UTIL_TIMEOUT_US
            };
        self.deadline_us = Some(at_us);
        fx.push(Effect::TimerAt { at_us });
        self.outmsg = Some(HvVssMsg::new(msg.op));
        self.kick_daemon(now_us, fx);
    }

    /// Let the daemon read the pending request if it is able to.
    fn kick_daemon(&mut self, now_us: u64, fx: &mut Vec<Effect>) {
        while self.device_open && self.daemon.can_read() {
            let Some(request) = self.outmsg.take() else {
                return;
            };
            match self.daemon.handle(request) {
                DaemonOutcome::Reply { reply, fs } => {
                    push_fs(fs, fx);
                    self.daemon_writes_answer(now_us, reply, fx);
                }
                DaemonOutcome::ReplyAfter {
                    delay_us,
                    reply,
                    fs,
                } => {
                    push_fs(fs, fx);
                    let at_us = now_us + delay_us;
                    self.late_answer = Some((at_us, reply));
                    fx.push(Effect::Note(format!(
                        "hv_vss_daemon busy with {}, answers at {at_us} us",
                        request.op.name()
                    )));
                    fx.push(Effect::TimerAt { at_us });
                }
                DaemonOutcome::Hang { fs, why } => {
                    push_fs(fs, fx);
                    fx.push(Effect::Note(format!("{why} ({})", request.op.name())));
                }
                DaemonOutcome::Exit => {
                    fx.push(Effect::Note(format!(
                        "hv_vss_daemon exited during {}",
                        request.op.name()
                    )));
                    self.device_closed(fx);
                }
            }
        }
    }

    /// The daemon writes its answer to the device (vss_on_msg).
    fn daemon_writes_answer(&mut self, now_us: u64, reply: HvVssReply, fx: &mut Vec<Effect>) {
        if self.state != TransactionState::UserspaceReq {
            fx.push(Effect::Note(format!(
                "hv_vss_daemon answer rejected (errno {EINVAL}): transaction not active; daemon reopens the device"
            )));
            let fs = self.daemon.reopen_after_write_failure();
            self.device_closed(fx);
            push_fs(fs, fx);
            self.register_daemon(fx);
            self.pump(now_us, fx);
            return;
        }
        self.state = TransactionState::UserspaceRecv;
        if let Some(m) = self.current.as_mut() {
            if m.op == HvVssOp::HotBackup {
                m.flags = VSS_HBU_NO_AUTO_RECOVERY;
            }
        }
        if self.deadline_us.take().is_some() {
            self.respond(reply.error, fx);
            self.finish(now_us, fx);
        }
    }

    /// The daemon's file descriptor is closed (hvutil reset → vss_on_reset).
    fn device_closed(&mut self, fx: &mut Vec<Effect>) {
        self.device_open = false;
        self.outmsg = None;
        if self.deadline_us.take().is_some() {
            self.respond(HV_E_FAIL, fx);
            self.current = None;
        }
        self.state = TransactionState::DeviceInit;
    }
}

fn push_fs(fs: Vec<FsEvent>, fx: &mut Vec<Effect>) {
    fx.extend(fs.into_iter().map(|e| match e {
        FsEvent::Froze(target) => Effect::Froze { target },
        FsEvent::Thawed(target) => Effect::Thawed { target },
    }));
}
