//! The file server's own VSS (MS-FSRVP 3.1.4.13, 3.1.4.5, 3.1.4.6; SPEC F4.5, F4.6):
//! the agent's PrepareShadowCopySet, CommitShadowCopySet and ExposeShadowCopySet each
//! wait for the server's local VSS, which runs a snapshot set of its own with its own
//! writer (a file-server writer such as File Server Resource Manager's) and its own
//! provider. `FileServerVss` is that VSS service: Prepare runs the writer events and
//! provider calls up to EndPrepareSnapshots, Commit the rest in VSS order (reference
//! vss.md §1.1–§1.2), Expose makes each shadow copy a share and answers its name. It
//! answers the agent when its part is done, or when a writer or the provider failed. The
//! agent's wait bounds each: an answer after the caller's timeout changes nothing.

use crate::fsrvp::{expose_shadow_copy, LocalShadowCopy};
use crate::protocol::msg::{Fail, Msg};
use crate::protocol::vss::{ProviderCall, WriterEvent};
use crate::scenario::{FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Envelope, Origin};
use crate::site::Site;

/// A writer's answer to one event.
const WRITER_US: u64 = 10_000;
/// A provider call.
const PROVIDER_US: u64 = 1_000;

/// One step of the local snapshot set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Writer(WriterEvent),
    Provider(ProviderCall),
}

/// The VSS sequence of one snapshot set with one writer and one provider (vss.md §1.1,
/// §1.2). The agent's local requester reads nothing (the host reads the exposed share),
/// so it ends its backup as soon as the set exists: OnBackupComplete closes the writer's
/// session (I3).
const SEQUENCE: [Step; 14] = [
    Step::Writer(WriterEvent::OnIdentify),
    Step::Writer(WriterEvent::OnPrepareBackup),
    Step::Writer(WriterEvent::OnPrepareSnapshot),
    Step::Provider(ProviderCall::BeginPrepareSnapshot),
    Step::Provider(ProviderCall::EndPrepareSnapshots),
    Step::Writer(WriterEvent::OnFreeze),
    Step::Provider(ProviderCall::PreCommitSnapshots),
    Step::Provider(ProviderCall::CommitSnapshots),
    Step::Provider(ProviderCall::PostCommitSnapshots),
    Step::Writer(WriterEvent::OnThaw),
    Step::Provider(ProviderCall::PreFinalCommitSnapshots),
    Step::Writer(WriterEvent::OnPostSnapshot),
    Step::Provider(ProviderCall::PostFinalCommitSnapshots),
    Step::Writer(WriterEvent::OnBackupComplete),
];

/// The steps PrepareShadowCopySet waits for: up to EndPrepareSnapshots.
const PREPARED: usize = 5;

/// Where the local set is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Local {
    Idle,
    /// Running up to step `until` (exclusive) for the agent; `next` is the next step.
    Running {
        agent: ActorId,
        volumes: Vec<String>,
        next: usize,
        until: usize,
    },
    /// Prepared, held until the commit goes on with it.
    Prepared {
        volumes: Vec<String>,
    },
}

/// The local VSS service of one file server.
pub struct FileServerVss {
    name: String,
    writer: ActorId,
    provider: ActorId,
    /// The local snapshot set's number (one per prepare or commit that starts one).
    set: u64,
    local: Local,
}

impl FileServerVss {
    pub fn new(server: &str, writer: ActorId, provider: ActorId) -> Self {
        FileServerVss {
            name: format!("FileServerVss@{server}"),
            writer,
            provider,
            set: 0,
            local: Local::Idle,
        }
    }

    /// Starts (or, after a prepare, goes on with) the set up to step `until`.
    fn run(
        &mut self,
        agent: ActorId,
        volumes: Vec<String>,
        until: usize,
        cx: &mut Cx<'_, Msg, Site>,
    ) {
        let next = match std::mem::replace(&mut self.local, Local::Idle) {
            Local::Prepared { volumes: held } if held == volumes => PREPARED,
            Local::Idle => 0,
            // A set still running or prepared for other volumes: dropped first.
            _ => {
                self.abort(cx);
                0
            }
        };
        if next == 0 {
            self.set += 1;
        }
        self.local = Local::Running {
            agent,
            volumes,
            next,
            until,
        };
        self.next(cx);
    }

    /// Sends the next step, or answers the agent after the last of its part.
    fn next(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let Local::Running {
            agent,
            volumes,
            next,
            until,
        } = &mut self.local
        else {
            return;
        };
        let (agent, set) = (*agent, self.set);
        if *next >= *until {
            let done = if *until == PREPARED {
                self.local = Local::Prepared {
                    volumes: volumes.clone(),
                };
                Msg::LocalPrepareDone { result: Ok(()) }
            } else {
                self.local = Local::Idle;
                Msg::LocalSnapshotSetDone { result: Ok(()) }
            };
            cx.out.send(agent, done);
            return;
        }
        let step = SEQUENCE[*next];
        *next += 1;
        match step {
            Step::Writer(event) => cx.out.send(self.writer, Msg::Writer { event, set }),
            Step::Provider(call) => {
                let volumes = volumes.clone();
                cx.out
                    .send(self.provider, Msg::Provider { call, set, volumes });
            }
        }
    }

    /// A writer or the provider failed: the set is aborted and the agent told.
    fn failed(&mut self, fail: Fail, cx: &mut Cx<'_, Msg, Site>) {
        if let Local::Running { agent, until, .. } = self.local {
            self.abort(cx);
            let msg = if until == PREPARED {
                Msg::LocalPrepareDone { result: Err(fail) }
            } else {
                Msg::LocalSnapshotSetDone { result: Err(fail) }
            };
            cx.out.send(agent, msg);
        }
    }

    /// Drops the set: its writer's session ends with OnAbort.
    fn abort(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        if self.local != Local::Idle {
            self.local = Local::Idle;
            let set = self.set;
            cx.out.send(
                self.writer,
                Msg::Writer {
                    event: WriterEvent::OnAbort,
                    set,
                },
            );
        }
    }

    /// ExposeShadowCopySet: each shadow copy becomes the share `<ShareName>@{<GUID>}` on
    /// its volume; the answer names them (MS-FSRVP 3.1.4.6).
    fn expose(&mut self, agent: ActorId, copies: &[LocalShadowCopy], cx: &mut Cx<'_, Msg, Site>) {
        let lab = &cx.world.lab;
        let result = copies
            .iter()
            .map(|c| {
                let volume = lab
                    .volumes
                    .get(&c.volume)
                    .ok_or_else(|| format!("no volume {} for share {}", c.volume, c.share))?;
                expose_shadow_copy(volume, c.snapshot, &c.share, c.shadow_copy_id)
                    .map(|name| (c.shadow_copy_id, name))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|why| Fail::new(Hresult::VssEObjectNotFound, FailureClass::Host, why));
        if result.is_ok() {
            // F4.6: the shadow copy exposed as a share of the file server.
            cx.out.detail("spec", "F4.6");
        }
        cx.out
            .send_after(agent, PROVIDER_US, Msg::LocalExposeDone { result });
    }
}

impl Actor<Msg, Site> for FileServerVss {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let Origin::Actor(from) = env.origin else {
            return;
        };
        let running = matches!(self.local, Local::Running { .. });
        match env.msg {
            Msg::LocalPrepare { volumes } if !running => self.run(from, volumes, PREPARED, cx),
            Msg::LocalSnapshotSet { volumes } if !running => {
                self.run(from, volumes, SEQUENCE.len(), cx)
            }
            Msg::LocalExpose { copies } => self.expose(from, &copies, cx),
            Msg::LocalAbort if !running => self.abort(cx),
            Msg::WriterDone { result: Err(f), .. } | Msg::ProviderDone { result: Err(f), .. } => {
                self.failed(f, cx)
            }
            Msg::WriterDone { .. } | Msg::ProviderDone { .. } => self.next(cx),
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.set.to_le_bytes());
        match &self.local {
            Local::Running {
                volumes,
                next,
                until,
                ..
            } => h
                .update(&[1])
                .update(volumes.join(",").as_bytes())
                .update(&[*next as u8, *until as u8]),
            Local::Prepared { volumes } => h.update(&[2]).update(volumes.join(",").as_bytes()),
            Local::Idle => h.update(&[0]),
        };
    }
}

/// The file server's writer: answers each event, one of them slowly when a fault says so.
pub struct FileServerWriter {
    name: String,
    /// The event it answers late and how long it takes (fault `fsrvp_timeout`: OnFreeze
    /// on CommitShadowCopySet, OnPrepareSnapshot on PrepareShadowCopySet).
    slow: Option<(WriterEvent, u64)>,
}

/// The writer a Windows file server with the File Server VSS Agent Service runs.
pub const FILE_SERVER_WRITER: &str = "FSRM Writer";

impl FileServerWriter {
    pub fn new(server: &str, slow: Option<(WriterEvent, u64)>) -> Self {
        FileServerWriter {
            name: format!("FileServerWriter@{server}/{FILE_SERVER_WRITER}"),
            slow,
        }
    }
}

impl Actor<Msg, Site> for FileServerWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let (Msg::Writer { event, .. }, Origin::Actor(vss)) = (env.msg, env.origin) else {
            return;
        };
        let delay = match self.slow {
            Some((slow, us)) if slow == event => us,
            _ => WRITER_US,
        };
        if delay > WRITER_US {
            cx.out.detail("answers_after_s", delay / 1_000_000);
        }
        cx.out.send_after(
            vss,
            delay,
            Msg::WriterDone {
                event,
                state: event.state_after(),
                result: Ok(()),
                claims: Vec::new(),
            },
        );
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        if let Some((event, us)) = self.slow {
            h.update(event.name().as_bytes()).update(&us.to_le_bytes());
        }
    }
}

/// The file server's own provider (the system provider): its commit takes the shadow
/// copies the agent then holds.
pub struct FileServerProvider {
    name: String,
}

impl FileServerProvider {
    pub fn new(server: &str) -> Self {
        FileServerProvider {
            name: format!("FileServerProvider@{server}"),
        }
    }
}

impl Actor<Msg, Site> for FileServerProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let (Msg::Provider { call, .. }, Origin::Actor(vss)) = (env.msg, env.origin) else {
            return;
        };
        if call == ProviderCall::CommitSnapshots {
            cx.out
                .detail("provider", "Microsoft Software Shadow Copy provider 1.0");
        }
        cx.out.send_after(
            vss,
            PROVIDER_US,
            Msg::ProviderDone {
                call,
                result: Ok(()),
            },
        );
    }

    fn digest(&self, _h: &mut blake3::Hasher) {}
}
