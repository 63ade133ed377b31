//! `hv_vss_daemon`, the user-space half of Linux guest backups (R5; vss.md §4.4).
//!
//! The daemon opens `/dev/vmbus/hv_vss`, registers with `VSS_OP_REGISTER1`, then answers
//! the requests the kernel forwards: FREEZE / THAW walk [`freeze_order`] issuing
//! FIFREEZE / FITHAW per mount (`/` last), HOT_BACKUP is acknowledged. EBUSY on freeze and
//! EINVAL on thaw count as success (the device is already frozen / not frozen); any other
//! freeze failure thaws everything and answers HV_E_FAIL. When writing an answer fails, the
//! daemon closes and reopens the device, thawing first if it had frozen anything.
//!
//! File systems are frozen per device (superblock): a second mount of a frozen source gets
//! EBUSY. The daemon runs each request to completion inside one call unless its
//! [`DaemonBehaviour`] says it hangs or answers late.

use super::mounts::{freeze_order, Mount};
use super::msg::{HvVssMsg, HvVssOp, HvVssReply, HV_E_FAIL, HV_S_OK};

pub const EBUSY: i32 = 16;
pub const EINVAL: i32 = 22;

/// How the simulated daemon behaves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DaemonBehaviour {
    /// The upstream daemon, healthy.
    Running,
    /// Not installed or not started (e.g. old integration services): never registers.
    Absent,
    /// Reads the first forwarded request and blocks before doing anything; never answers.
    Hanging,
    /// Exits (closes the device) when it receives this operation, before acting on it.
    ExitsDuring(HvVssOp),
    /// The guest's syslog writes to `/`: upstream logs each request's result before it
    /// writes the answer, so once `/` is frozen that syslog() call blocks for good. The
    /// FREEZE that froze `/` is never answered and `/` stays frozen (field failure 17).
    SyslogDeadlock,
    /// FIFREEZE on `target` fails with `errno` (EBUSY counts as success).
    FreezeFails { target: String, errno: i32 },
    /// Performs `op` at once but writes its answer `delay_us` later (e.g. a freeze that
    /// takes longer than the kernel's transaction timer).
    SlowReply { op: HvVssOp, delay_us: u64 },
    /// Healthy, but its answer's `error` overwrites the HOT_BACKUP operation byte, so the
    /// kernel does not add VSS_HBU_NO_AUTO_RECOVERY (reference §8: a daemon defect).
    NoAutoRecoveryLost,
}

/// A file-system change made by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FsEvent {
    Froze(String),
    Thawed(String),
}

/// What the daemon did with one forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonOutcome {
    /// Answer written at once.
    Reply { reply: HvVssReply, fs: Vec<FsEvent> },
    /// Answer written `delay_us` after the request.
    ReplyAfter {
        delay_us: u64,
        reply: HvVssReply,
        fs: Vec<FsEvent>,
    },
    /// Blocked for good.
    Hang { fs: Vec<FsEvent>, why: &'static str },
    /// Process exited; the device is closed.
    Exit,
}

/// Counters for traces and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DaemonCounters {
    pub registrations: u32,
    pub requests: u32,
    pub fifreeze_ok: u32,
    pub fithaw_ok: u32,
    pub reopens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HvVssDaemon {
    mounts: Vec<Mount>,
    behaviour: DaemonBehaviour,
    /// The process exists.
    running: bool,
    /// Blocked forever (Hanging, SyslogDeadlock).
    stuck: bool,
    /// Working on a request whose answer is not written yet (SlowReply).
    busy: bool,
    /// The daemon's own "I froze something" flag (`fs_frozen` upstream).
    fs_frozen: bool,
    /// Targets whose FIFREEZE froze a device (the daemon's or an administrator's), in
    /// freeze order, and those devices.
    frozen_targets: Vec<String>,
    frozen_sources: Vec<String>,
    counters: DaemonCounters,
}

impl HvVssDaemon {
    pub fn new(mounts: Vec<Mount>, behaviour: DaemonBehaviour) -> Self {
        let running = behaviour != DaemonBehaviour::Absent;
        HvVssDaemon {
            mounts,
            behaviour,
            running,
            stuck: false,
            busy: false,
            fs_frozen: false,
            frozen_targets: Vec::new(),
            frozen_sources: Vec::new(),
            counters: DaemonCounters::default(),
        }
    }

    /// An administrator froze these mounts by hand (`fsfreeze -f`) before the backup: the
    /// daemon's FIFREEZE on them gets EBUSY, and its THAW thaws them too, as FITHAW
    /// does not ask who froze a device (field failure 13).
    pub fn with_frozen_by_admin(mut self, targets: &[String]) -> Self {
        for t in targets {
            if let Some(m) = self.mounts.iter().find(|m| &m.target == t) {
                if !self.frozen_sources.contains(&m.source) {
                    self.frozen_sources.push(m.source.clone());
                    self.frozen_targets.push(m.target.clone());
                }
            }
        }
        self
    }

    /// Whether the device mounted at `/` is frozen now, by whoever froze it.
    fn root_is_frozen(&self) -> bool {
        self.mounts
            .iter()
            .any(|m| m.target == "/" && self.frozen_sources.contains(&m.source))
    }

    /// Mount targets frozen now (through the FIFREEZE that froze their device).
    pub fn frozen(&self) -> &[String] {
        &self.frozen_targets
    }

    pub fn behaviour(&self) -> &DaemonBehaviour {
        &self.behaviour
    }

    pub fn counters(&self) -> &DaemonCounters {
        &self.counters
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Whether the daemon would read a request waiting in the device now.
    pub fn can_read(&self) -> bool {
        self.running && !self.stuck && !self.busy
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(b"hv_vss_daemon\0");
        h.update(format!("{self:?}").as_bytes());
    }

    /// Open `/dev/vmbus/hv_vss` and write the registration; `None` when not running.
    pub fn open_and_register(&mut self) -> Option<[u8; 12]> {
        if !self.running {
            return None;
        }
        self.counters.registrations += 1;
        Some(HvVssMsg::new(HvVssOp::Register1).encode())
    }

    /// The slow answer has been written (accepted or not).
    pub fn answer_written(&mut self) {
        self.busy = false;
    }

    /// The write of an answer failed: close the device, thaw if anything is frozen, and
    /// reopen (the caller registers again through [`Self::open_and_register`]).
    pub fn reopen_after_write_failure(&mut self) -> Vec<FsEvent> {
        self.counters.reopens += 1;
        let mut fs = Vec::new();
        if self.fs_frozen {
            self.thaw_all(&mut fs);
        }
        fs
    }

    /// The device went away (driver unload): a daemon that can still run takes its reopen
    /// path, thaws what it froze, fails to open the device and exits.
    pub fn device_destroyed(&mut self) -> Vec<FsEvent> {
        let mut fs = Vec::new();
        if self.running && !self.stuck {
            if self.fs_frozen {
                self.thaw_all(&mut fs);
            }
            self.running = false;
        }
        fs
    }

    /// Handle one request read from the device.
    pub fn handle(&mut self, request: HvVssMsg) -> DaemonOutcome {
        let op = request.op;
        self.counters.requests += 1;
        match &self.behaviour {
            DaemonBehaviour::ExitsDuring(x) if *x == op => {
                self.running = false;
                return DaemonOutcome::Exit;
            }
            DaemonBehaviour::Hanging => {
                self.stuck = true;
                return DaemonOutcome::Hang {
                    fs: Vec::new(),
                    why: "hv_vss_daemon blocked, never answers",
                };
            }
            _ => {}
        }
        let mut fs = Vec::new();
        let error = match op {
            HvVssOp::Freeze => self.freeze_all(&mut fs),
            HvVssOp::Thaw => {
                self.thaw_all(&mut fs);
                HV_S_OK
            }
            // HOT_BACKUP is acknowledged; anything else is logged as illegal and answered
            // with the untouched error HV_S_OK, as upstream does.
            _ => HV_S_OK,
        };
        // Every request's result is logged before its answer is written.
        if self.behaviour == DaemonBehaviour::SyslogDeadlock && self.root_is_frozen() {
            self.stuck = true;
            return DaemonOutcome::Hang {
                fs,
                why: "hv_vss_daemon blocked in syslog() while / is frozen, before its answer",
            };
        }
        let reply = HvVssReply { error, flags: 0 };
        match self.behaviour {
            DaemonBehaviour::SlowReply { op: x, delay_us } if x == op => {
                self.busy = true;
                DaemonOutcome::ReplyAfter {
                    delay_us,
                    reply,
                    fs,
                }
            }
            _ => DaemonOutcome::Reply { reply, fs },
        }
    }

    /// FIFREEZE on one mount: Ok(true) froze it, Ok(false) EBUSY (already frozen).
    fn fifreeze(&mut self, m: &Mount) -> Result<bool, i32> {
        if let DaemonBehaviour::FreezeFails { target, errno } = &self.behaviour {
            if *target == m.target && *errno != EBUSY {
                return Err(*errno);
            }
            if *target == m.target {
                return Ok(false);
            }
        }
        if self.frozen_sources.contains(&m.source) {
            return Ok(false);
        }
        self.frozen_sources.push(m.source.clone());
        self.frozen_targets.push(m.target.clone());
        self.counters.fifreeze_ok += 1;
        Ok(true)
    }

    fn freeze_all(&mut self, fs: &mut Vec<FsEvent>) -> u32 {
        for m in freeze_order(&self.mounts) {
            match self.fifreeze(&m) {
                Ok(true) => {
                    self.fs_frozen = true;
                    fs.push(FsEvent::Froze(m.target.clone()));
                }
                Ok(false) => {}
                Err(_errno) => {
                    self.thaw_all(fs);
                    return HV_E_FAIL;
                }
            }
        }
        HV_S_OK
    }

    /// FITHAW on every mount in freeze order; mounts not frozen answer EINVAL (success).
    fn thaw_all(&mut self, fs: &mut Vec<FsEvent>) {
        for m in freeze_order(&self.mounts) {
            if let Some(i) = self.frozen_sources.iter().position(|s| *s == m.source) {
                self.frozen_sources.remove(i);
                self.frozen_targets.remove(i);
                self.counters.fithaw_ok += 1;
                fs.push(FsEvent::Thawed(m.target.clone()));
            }
        }
        self.fs_frozen = false;
    }
}
