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
//!
//! HOT_BACKUP answers carry VSS_HBU_NO_AUTO_RECOVERY as vss.md §4.4 says. (Upstream sets
//! the flag only when the daemon's answer still holds the HOT_BACKUP operation byte, which
//! the daemon's `error` field overwrites; whether real hosts see the flag is not modelled.)
//! Simplifications: after the device is closed the driver keeps reading queued host
//! packets (upstream waits for the next channel interrupt); loop-backed devices are found
//! by name (see `mounts`).

use std::collections::VecDeque;

use super::daemon::{DaemonBehaviour, DaemonOutcome, FsEvent, HvVssDaemon, EINVAL};
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

    /// The daemon still has an answer to write (a slow reply): its timer must stay.
    pub fn answer_pending(&self) -> bool {
        self.late_answer.is_some()
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
                        "transaction timer expired, daemon gave no answer to {}",
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

    /// Driver unload (hv_vss_deinit): DEVICE_DYING; a pending timer is cancelled without an
    /// answer and host packets stay unread. The daemon's read fails and its reopen finds no
    /// device: it thaws what it froze (if it is not blocked) and exits.
    pub fn unload(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.state = TransactionState::DeviceDying;
        self.deadline_us = None;
        self.late_answer = None;
        self.outmsg = None;
        self.current = None;
        self.device_open = false;
        push_fs(self.daemon.device_destroyed(), &mut fx);
        fx.push(Effect::Note(
            "hv_snapshot unloaded (DEVICE_DYING)".to_string(),
        ));
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
                "request not delivered to hv_vss_daemon ({})",
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
                "hv_vss_daemon answer rejected (errno {EINVAL}): kernel not waiting for an answer; daemon reopens the device"
            )));
            let fs = self.daemon.reopen_after_write_failure();
            self.device_closed(fx);
            push_fs(fs, fx);
            self.register_daemon(fx);
            self.pump(now_us, fx);
            return;
        }
        self.state = TransactionState::UserspaceRecv;
        // Upstream adds the flag only while the answer still holds the HOT_BACKUP
        // byte; a daemon whose `error` overwrote it loses the flag.
        let lost = *self.daemon.behaviour() == DaemonBehaviour::NoAutoRecoveryLost;
        if let Some(m) = self.current.as_mut() {
            if m.op == HvVssOp::HotBackup && !lost {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::daemon::{DaemonBehaviour, EBUSY};
    use crate::linux::mounts::Mount;

    const S: u64 = 1_000_000;
    const EIO: i32 = 5;

    fn mounts() -> Vec<Mount> {
        vec![
            Mount::rw("/dev/sda2", "/", "ext4"),
            Mount::rw("/dev/sda1", "/boot/efi", "vfat"),
            Mount::rw("/dev/sdb1", "/home", "xfs"),
        ]
    }

    fn booted_with(mounts: Vec<Mount>, behaviour: DaemonBehaviour) -> HvSnapshot {
        let mut d = HvSnapshot::new(HvVssDaemon::new(mounts, behaviour));
        d.boot(0);
        d
    }

    fn booted(behaviour: DaemonBehaviour) -> HvSnapshot {
        booted_with(mounts(), behaviour)
    }

    /// The effects without notes.
    fn wire(fx: Vec<Effect>) -> Vec<Effect> {
        fx.into_iter()
            .filter(|e| !matches!(e, Effect::Note(_)))
            .collect()
    }

    fn notes(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Note(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn reply(op: HvVssOp, flags: u32, status: u32) -> Effect {
        Effect::ReplyToHost {
            msg: HvVssMsg { op, flags },
            status,
        }
    }

    fn froze(t: &str) -> Effect {
        Effect::Froze {
            target: t.to_string(),
        }
    }

    fn thawed(t: &str) -> Effect {
        Effect::Thawed {
            target: t.to_string(),
        }
    }

    fn timer(at_us: u64) -> Effect {
        Effect::TimerAt { at_us }
    }

    fn host(d: &mut HvSnapshot, now: u64, op: HvVssOp) -> Vec<Effect> {
        wire(d.host_message(now, HvVssMsg::new(op)))
    }

    #[test]
    fn boot_registers_with_register1_and_becomes_ready() {
        let mut d = HvSnapshot::new(HvVssDaemon::new(mounts(), DaemonBehaviour::Running));
        assert_eq!(d.state(), TransactionState::DeviceInit);
        let fx = d.boot(0);
        assert_eq!(
            notes(&fx),
            ["daemon registered (REGISTER1), kernel handshake answer 129, driver version 5.0"]
        );
        assert!(wire(fx).is_empty());
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(d.daemon().counters().registrations, 1);
    }

    #[test]
    fn boot_without_daemon_stays_in_device_init() {
        let mut d = HvSnapshot::new(HvVssDaemon::new(mounts(), DaemonBehaviour::Absent));
        let fx = d.boot(0);
        assert_eq!(notes(&fx).len(), 1);
        assert!(wire(fx).is_empty());
        assert_eq!(d.state(), TransactionState::DeviceInit);
        assert_eq!(d.daemon().counters().registrations, 0);
    }

    #[test]
    fn get_dm_info_is_answered_in_the_kernel_with_flags_zero() {
        let mut d = booted(DaemonBehaviour::Running);
        let fx = wire(d.host_message(
            5,
            HvVssMsg {
                op: HvVssOp::GetDmInfo,
                flags: 0xdead,
            },
        ));
        assert_eq!(fx, [reply(HvVssOp::GetDmInfo, 0, HV_S_OK)]);
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(d.daemon().counters().requests, 0);
    }

    #[test]
    fn create_delete_bu_complete_auto_recover_succeed_in_the_kernel() {
        let mut d = booted(DaemonBehaviour::Running);
        for op in [
            HvVssOp::Create,
            HvVssOp::Delete,
            HvVssOp::BuComplete,
            HvVssOp::AutoRecover,
        ] {
            let msg = HvVssMsg { op, flags: 3 };
            assert_eq!(wire(d.host_message(7, msg)), [reply(op, 3, HV_S_OK)]);
            assert_eq!(d.state(), TransactionState::Ready);
        }
        assert_eq!(d.daemon().counters().requests, 0);
        assert_eq!(d.reply_counts(), (4, 0));
    }

    #[test]
    fn freeze_walks_the_mounts_root_last_and_thaw_undoes_it() {
        let mut d = booted(DaemonBehaviour::Running);
        let fx = host(&mut d, 10 * S, HvVssOp::Freeze);
        assert_eq!(
            fx,
            [
                timer(910 * S),
                froze("/home"),
                froze("/"),
                reply(HvVssOp::Freeze, 0, HV_S_OK)
            ]
        );
        assert_eq!(d.daemon().frozen(), ["/home", "/"]);
        assert_eq!(d.state(), TransactionState::Ready);

        let fx = host(&mut d, 20 * S, HvVssOp::Thaw);
        assert_eq!(
            fx,
            [
                timer(50 * S),
                thawed("/home"),
                thawed("/"),
                reply(HvVssOp::Thaw, 0, HV_S_OK)
            ]
        );
        assert!(d.daemon().frozen().is_empty());
        // The cancelled timers come due and change nothing.
        let before = d.clone();
        assert!(d.on_timer(50 * S).is_empty());
        assert!(d.on_timer(910 * S).is_empty());
        assert_eq!(d, before);
    }

    #[test]
    fn hot_backup_goes_to_the_daemon_and_answers_no_auto_recovery() {
        let mut d = booted(DaemonBehaviour::Running);
        let fx = host(&mut d, S, HvVssOp::HotBackup);
        assert_eq!(
            fx,
            [
                timer(31 * S),
                reply(HvVssOp::HotBackup, VSS_HBU_NO_AUTO_RECOVERY, HV_S_OK)
            ]
        );
        assert_eq!(d.daemon().counters().requests, 1);
        assert!(d.daemon().frozen().is_empty());
    }

    #[test]
    fn without_daemon_forwarded_ops_fail_at_once() {
        let mut d = booted(DaemonBehaviour::Absent);
        for op in [HvVssOp::Freeze, HvVssOp::Thaw, HvVssOp::HotBackup] {
            assert_eq!(host(&mut d, S, op), [reply(op, 0, HV_E_FAIL)]);
            assert_eq!(d.state(), TransactionState::DeviceInit);
        }
        assert_eq!(d.reply_counts(), (0, 3));
    }

    #[test]
    fn without_daemon_a_kernel_answered_op_makes_ready_but_freeze_still_fails() {
        // The kernel's poll after answering sets READY even with no daemon; a FREEZE then
        // fails in the send (device not open), still at once and without a timer.
        let mut d = booted(DaemonBehaviour::Absent);
        host(&mut d, S, HvVssOp::GetDmInfo);
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(
            host(&mut d, 2 * S, HvVssOp::Freeze),
            [reply(HvVssOp::Freeze, 0, HV_E_FAIL)]
        );
        assert_eq!(d.state(), TransactionState::Ready);
    }

    #[test]
    fn a_host_message_during_a_transaction_waits_in_the_ring() {
        let mut d = booted(DaemonBehaviour::SlowReply {
            op: HvVssOp::Freeze,
            delay_us: 5 * S,
        });
        let fx = host(&mut d, 0, HvVssOp::Freeze);
        assert_eq!(
            fx,
            [timer(900 * S), froze("/home"), froze("/"), timer(5 * S)]
        );
        assert_eq!(d.state(), TransactionState::UserspaceReq);

        let fx = d.host_message(S, HvVssMsg::new(HvVssOp::GetDmInfo));
        assert_eq!(
            notes(&fx),
            ["VSS_OP_GET_DM_INFO waits in the VMBus ring: transaction in flight"]
        );
        assert!(wire(fx).is_empty());
        assert_eq!(d.queued(), 1);
        assert_eq!(d.state(), TransactionState::UserspaceReq);

        assert!(d.on_timer(4 * S).is_empty());
        let fx = wire(d.on_timer(5 * S));
        assert_eq!(
            fx,
            [
                reply(HvVssOp::Freeze, 0, HV_S_OK),
                reply(HvVssOp::GetDmInfo, 0, HV_S_OK)
            ]
        );
        assert_eq!(d.queued(), 0);
        assert_eq!(d.state(), TransactionState::Ready);
    }

    #[test]
    fn daemon_exiting_mid_transaction_fails_it_and_returns_to_device_init() {
        let mut d = booted(DaemonBehaviour::ExitsDuring(HvVssOp::Freeze));
        let fx = host(&mut d, 3 * S, HvVssOp::Freeze);
        assert_eq!(fx, [timer(903 * S), reply(HvVssOp::Freeze, 0, HV_E_FAIL)]);
        assert_eq!(d.state(), TransactionState::DeviceInit);
        assert!(!d.daemon().is_running());
        assert!(d.daemon().frozen().is_empty());
        // The timer was cancelled; later requests fail at once.
        assert!(d.on_timer(903 * S).is_empty());
        assert_eq!(
            host(&mut d, 904 * S, HvVssOp::Thaw),
            [reply(HvVssOp::Thaw, 0, HV_E_FAIL)]
        );
        assert_eq!(d.reply_counts(), (0, 2));
    }

    #[test]
    fn daemon_exiting_during_thaw_leaves_the_file_systems_frozen() {
        let mut d = booted(DaemonBehaviour::ExitsDuring(HvVssOp::Thaw));
        host(&mut d, 0, HvVssOp::Freeze);
        let fx = host(&mut d, 10 * S, HvVssOp::Thaw);
        assert_eq!(fx, [timer(40 * S), reply(HvVssOp::Thaw, 0, HV_E_FAIL)]);
        assert_eq!(d.state(), TransactionState::DeviceInit);
        assert_eq!(d.daemon().frozen(), ["/home", "/"]);
    }

    #[test]
    fn hanging_daemon_is_caught_by_the_freeze_timer() {
        let mut d = booted(DaemonBehaviour::Hanging);
        let fx = host(&mut d, S, HvVssOp::Freeze);
        assert_eq!(fx, [timer(901 * S)]);
        assert_eq!(d.state(), TransactionState::UserspaceReq);
        assert!(d.on_timer(900 * S).is_empty());
        assert_eq!(
            wire(d.on_timer(901 * S)),
            [reply(HvVssOp::Freeze, 0, HV_E_FAIL)]
        );
        assert_eq!(d.state(), TransactionState::Ready);

        // The THAW is written to the device but the daemon never reads it: 30 s timer.
        assert_eq!(host(&mut d, 902 * S, HvVssOp::Thaw), [timer(932 * S)]);
        assert_eq!(
            wire(d.on_timer(932 * S)),
            [reply(HvVssOp::Thaw, 0, HV_E_FAIL)]
        );
        // The unread THAW blocks the device: the next request fails at once, no timer.
        assert_eq!(
            host(&mut d, 940 * S, HvVssOp::HotBackup),
            [reply(HvVssOp::HotBackup, 0, HV_E_FAIL)]
        );
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(d.daemon().counters().requests, 1);
    }

    #[test]
    fn syslog_deadlock_never_answers_the_freeze_and_root_stays_frozen() {
        // Upstream logs "VSS: op=FREEZE: succeeded" before writing the answer: with `/`
        // frozen that syslog() call blocks, so the FREEZE that froze `/` is never
        // answered; the 900 s timer fails it and nothing thaws `/`.
        let mut d = booted(DaemonBehaviour::SyslogDeadlock);
        assert_eq!(
            host(&mut d, 0, HvVssOp::Freeze),
            [timer(900 * S), froze("/home"), froze("/")]
        );
        assert_eq!(d.state(), TransactionState::UserspaceReq);
        assert_eq!(
            wire(d.on_timer(900 * S)),
            [reply(HvVssOp::Freeze, 0, HV_E_FAIL)]
        );
        // The host's THAW reaches the device, but the daemon never reads it again.
        assert_eq!(host(&mut d, 901 * S, HvVssOp::Thaw), [timer(931 * S)]);
        assert_eq!(
            wire(d.on_timer(931 * S)),
            [reply(HvVssOp::Thaw, 0, HV_E_FAIL)]
        );
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(d.daemon().frozen(), ["/home", "/"]);
        assert_eq!(d.daemon().counters().fithaw_ok, 0);
    }

    #[test]
    fn a_daemon_that_overwrites_the_hot_backup_byte_loses_no_auto_recovery() {
        let mut d = booted(DaemonBehaviour::NoAutoRecoveryLost);
        assert_eq!(
            host(&mut d, 0, HvVssOp::HotBackup),
            [timer(30 * S), reply(HvVssOp::HotBackup, 0, HV_S_OK)]
        );
        // The kernel still answers AUTO_RECOVER itself.
        assert_eq!(
            host(&mut d, S, HvVssOp::AutoRecover),
            [reply(HvVssOp::AutoRecover, 0, HV_S_OK)]
        );
    }

    #[test]
    fn syslog_deadlock_is_harmless_while_root_is_not_frozen() {
        // HOT_BACKUP and a THAW log with `/` writable: both are answered.
        let mut d = booted(DaemonBehaviour::SyslogDeadlock);
        assert_eq!(
            host(&mut d, 0, HvVssOp::HotBackup),
            [
                timer(30 * S),
                reply(HvVssOp::HotBackup, VSS_HBU_NO_AUTO_RECOVERY, HV_S_OK)
            ]
        );
        assert_eq!(d.state(), TransactionState::Ready);
    }

    #[test]
    fn an_admin_freeze_of_root_gets_ebusy_and_thaw_undoes_it() {
        // `fsfreeze -f /` by hand: FIFREEZE on `/` gets EBUSY (success), and the
        // daemon's THAW thaws `/` too: FITHAW does not ask who froze it.
        let daemon = HvVssDaemon::new(mounts(), DaemonBehaviour::Running)
            .with_frozen_by_admin(&["/".to_string()]);
        let mut d = HvSnapshot::new(daemon);
        d.boot(0);
        assert_eq!(d.daemon().frozen(), ["/"]);
        assert_eq!(
            host(&mut d, S, HvVssOp::Freeze),
            [
                timer(901 * S),
                froze("/home"),
                reply(HvVssOp::Freeze, 0, HV_S_OK)
            ]
        );
        assert_eq!(
            host(&mut d, 2 * S, HvVssOp::Thaw),
            [
                timer(32 * S),
                thawed("/home"),
                thawed("/"),
                reply(HvVssOp::Thaw, 0, HV_S_OK)
            ]
        );
        assert!(d.daemon().frozen().is_empty());
    }

    #[test]
    fn an_admin_freeze_of_root_deadlocks_a_daemon_whose_syslog_is_on_root() {
        // Field failure 13: with `/` frozen by hand even HOT_BACKUP's log line blocks.
        let daemon = HvVssDaemon::new(mounts(), DaemonBehaviour::SyslogDeadlock)
            .with_frozen_by_admin(&["/".to_string()]);
        let mut d = HvSnapshot::new(daemon);
        d.boot(0);
        assert_eq!(host(&mut d, 0, HvVssOp::HotBackup), [timer(30 * S)]);
        assert_eq!(
            wire(d.on_timer(30 * S)),
            [reply(HvVssOp::HotBackup, 0, HV_E_FAIL)]
        );
    }

    #[test]
    fn a_failed_freeze_thaws_what_was_frozen_and_fails() {
        let mounts = vec![
            Mount::rw("/dev/sda2", "/", "ext4"),
            Mount::rw("/dev/sdb1", "/home", "xfs"),
            Mount::rw("/dev/sdc1", "/var", "ext4"),
        ];
        let mut d = booted_with(
            mounts,
            DaemonBehaviour::FreezeFails {
                target: "/var".to_string(),
                errno: EIO,
            },
        );
        assert_eq!(
            host(&mut d, 0, HvVssOp::Freeze),
            [
                timer(900 * S),
                froze("/home"),
                thawed("/home"),
                reply(HvVssOp::Freeze, 0, HV_E_FAIL)
            ]
        );
        assert!(d.daemon().frozen().is_empty());
        assert_eq!(d.state(), TransactionState::Ready);
    }

    #[test]
    fn a_failed_root_freeze_thaws_everything() {
        let mut d = booted(DaemonBehaviour::FreezeFails {
            target: "/".to_string(),
            errno: EIO,
        });
        assert_eq!(
            host(&mut d, 0, HvVssOp::Freeze),
            [
                timer(900 * S),
                froze("/home"),
                thawed("/home"),
                reply(HvVssOp::Freeze, 0, HV_E_FAIL)
            ]
        );
        assert!(d.daemon().frozen().is_empty());
    }

    #[test]
    fn ebusy_on_freeze_counts_as_success() {
        let mut d = booted(DaemonBehaviour::FreezeFails {
            target: "/home".to_string(),
            errno: EBUSY,
        });
        assert_eq!(
            host(&mut d, 0, HvVssOp::Freeze),
            [
                timer(900 * S),
                froze("/"),
                reply(HvVssOp::Freeze, 0, HV_S_OK)
            ]
        );
        assert_eq!(d.daemon().frozen(), ["/"]);
    }

    #[test]
    fn a_device_mounted_twice_gets_ebusy_then_einval_and_both_count_as_success() {
        let mounts = vec![
            Mount::rw("/dev/sda2", "/", "btrfs"),
            Mount::rw("/dev/sda2", "/home", "btrfs"),
        ];
        let mut d = booted_with(mounts, DaemonBehaviour::Running);
        assert_eq!(
            host(&mut d, 0, HvVssOp::Freeze),
            [
                timer(900 * S),
                froze("/home"),
                reply(HvVssOp::Freeze, 0, HV_S_OK)
            ]
        );
        assert_eq!(
            host(&mut d, S, HvVssOp::Thaw),
            [
                timer(31 * S),
                thawed("/home"),
                reply(HvVssOp::Thaw, 0, HV_S_OK)
            ]
        );
        assert!(d.daemon().frozen().is_empty());
    }

    #[test]
    fn a_freeze_answer_after_the_timer_fails_to_write_and_the_daemon_thaws_all() {
        let mut d = booted(DaemonBehaviour::SlowReply {
            op: HvVssOp::Freeze,
            delay_us: 1000 * S,
        });
        assert_eq!(
            host(&mut d, 0, HvVssOp::Freeze),
            [timer(900 * S), froze("/home"), froze("/"), timer(1000 * S)]
        );
        assert_eq!(
            wire(d.on_timer(900 * S)),
            [reply(HvVssOp::Freeze, 0, HV_E_FAIL)]
        );
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(d.daemon().frozen(), ["/home", "/"]);

        let fx = d.on_timer(1000 * S);
        assert!(notes(&fx)[0].contains("answer rejected (errno 22)"));
        assert_eq!(wire(fx), [thawed("/home"), thawed("/")]);
        assert!(d.daemon().frozen().is_empty());
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(d.daemon().counters().reopens, 1);
        assert_eq!(d.daemon().counters().registrations, 2);
    }

    #[test]
    fn a_late_freeze_answer_is_taken_as_the_answer_to_the_next_request() {
        // The kernel does not match answers to requests: a FREEZE answered after its
        // timer completes the THAW that is waiting for the busy daemon.
        let mut d = booted(DaemonBehaviour::SlowReply {
            op: HvVssOp::Freeze,
            delay_us: 1000 * S,
        });
        host(&mut d, 0, HvVssOp::Freeze);
        d.on_timer(900 * S);
        assert_eq!(host(&mut d, 990 * S, HvVssOp::Thaw), [timer(1020 * S)]);
        assert_eq!(
            wire(d.on_timer(1000 * S)),
            [
                reply(HvVssOp::Thaw, 0, HV_S_OK),
                thawed("/home"),
                thawed("/")
            ]
        );
        assert_eq!(d.state(), TransactionState::Ready);
        assert_eq!(d.daemon().counters().reopens, 1);
        assert!(d.on_timer(1020 * S).is_empty());
    }

    #[test]
    fn digest_follows_the_state() {
        let digest = |d: &HvSnapshot| {
            let mut h = blake3::Hasher::new();
            d.digest(&mut h);
            h.finalize()
        };
        let mut a = booted(DaemonBehaviour::Running);
        let b = booted(DaemonBehaviour::Running);
        assert_eq!(digest(&a), digest(&b));
        host(&mut a, 0, HvVssOp::Freeze);
        assert_ne!(digest(&a), digest(&b));
        let mut ha = blake3::Hasher::new();
        a.daemon().digest(&mut ha);
        let mut hb = blake3::Hasher::new();
        b.daemon().digest(&mut hb);
        assert_ne!(ha.finalize(), hb.finalize());
    }

    #[test]
    fn unload_cancels_the_transaction_without_answer_and_the_daemon_thaws() {
        let mut d = booted(DaemonBehaviour::SlowReply {
            op: HvVssOp::Freeze,
            delay_us: 10 * S,
        });
        host(&mut d, 0, HvVssOp::Freeze);
        assert_eq!(wire(d.unload()), [thawed("/home"), thawed("/")]);
        assert_eq!(d.state(), TransactionState::DeviceDying);
        assert!(!d.daemon().is_running());
        assert!(wire(d.on_timer(900 * S)).is_empty());
        assert!(host(&mut d, 901 * S, HvVssOp::GetDmInfo).is_empty());
        assert_eq!(d.queued(), 1);
        assert_eq!(d.reply_counts(), (0, 0));
    }

    /// Drive every pending timer in time order (timers created on the way included).
    fn run_timers(d: &mut HvSnapshot, mut pending: Vec<u64>, replies: &mut Vec<Effect>) {
        while let Some(at) = pending.iter().copied().min() {
            pending.retain(|t| *t != at);
            for e in d.on_timer(at) {
                match e {
                    Effect::TimerAt { at_us } => pending.push(at_us),
                    e @ Effect::ReplyToHost { .. } => replies.push(e),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn every_host_message_gets_exactly_one_answer_in_order() {
        let behaviours = [
            DaemonBehaviour::Running,
            DaemonBehaviour::Absent,
            DaemonBehaviour::Hanging,
            DaemonBehaviour::ExitsDuring(HvVssOp::Thaw),
            DaemonBehaviour::SyslogDeadlock,
            DaemonBehaviour::FreezeFails {
                target: "/".to_string(),
                errno: EIO,
            },
            DaemonBehaviour::SlowReply {
                op: HvVssOp::Freeze,
                delay_us: 1000 * S,
            },
        ];
        let ops = [
            HvVssOp::Freeze,
            HvVssOp::Thaw,
            HvVssOp::HotBackup,
            HvVssOp::GetDmInfo,
        ];
        let mut runs = 0;
        for behaviour in &behaviours {
            for a in ops {
                for b in ops {
                    for c in ops {
                        for overlap in [false, true] {
                            let mut d = booted(behaviour.clone());
                            let mut replies = Vec::new();
                            let mut pending = Vec::new();
                            for (i, op) in [a, b, c].into_iter().enumerate() {
                                let i = i as u64;
                                // Overlapping: all three arrive before any timer; else 2000 s apart, after every timer.
                                let now = if overlap { i } else { i * 2000 * S };
                                if !overlap {
                                    run_timers(&mut d, std::mem::take(&mut pending), &mut replies);
                                }
                                for e in d.host_message(now, HvVssMsg::new(op)) {
                                    match e {
                                        Effect::TimerAt { at_us } => pending.push(at_us),
                                        e @ Effect::ReplyToHost { .. } => replies.push(e),
                                        _ => {}
                                    }
                                }
                            }
                            run_timers(&mut d, pending, &mut replies);
                            let answered: Vec<HvVssOp> = replies
                                .iter()
                                .map(|e| match e {
                                    Effect::ReplyToHost { msg, .. } => msg.op,
                                    _ => unreachable!(),
                                })
                                .collect();
                            assert_eq!(answered, [a, b, c], "{behaviour:?} overlap={overlap}");
                            assert!(d.state() <= TransactionState::Ready);
                            assert_eq!(d.queued(), 0);
                            runs += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(runs, 7 * 64 * 2);
    }
}
