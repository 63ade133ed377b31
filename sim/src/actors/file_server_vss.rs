//! The file server's own VSS (MS-FSRVP 3.1.4.5, SPEC F4.5): while the agent commits a
//! shadow copy set, the server's local VSS runs a snapshot set of its own, with its own
//! writer (a file-server writer such as File Server Resource Manager's) and its own
//! provider. `FileServerVss` is that VSS service: it runs the writer events and provider
//! calls in VSS order (reference vss.md §1.1–§1.2) and answers the agent when the set
//! exists, or when a writer or the provider failed. The agent's wait bounds it: an answer
//! after the caller's timeout changes nothing (the set is back in Added).

use crate::protocol::msg::{Fail, Msg};
use crate::protocol::vss::{ProviderCall, WriterEvent};
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

/// The local VSS service of one file server.
pub struct FileServerVss {
    name: String,
    writer: ActorId,
    provider: ActorId,
    /// The local snapshot set's number (one per commit).
    set: u64,
    /// The agent waiting, the set's volumes and the next step.
    running: Option<(ActorId, Vec<String>, usize)>,
}

impl FileServerVss {
    pub fn new(server: &str, writer: ActorId, provider: ActorId) -> Self {
        FileServerVss {
            name: format!("FileServerVss@{server}"),
            writer,
            provider,
            set: 0,
            running: None,
        }
    }

    /// Sends the next step, or answers the agent after the last.
    fn next(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let Some((agent, volumes, i)) = self.running.as_mut() else {
            return;
        };
        let (agent, set) = (*agent, self.set);
        match SEQUENCE.get(*i) {
            Some(Step::Writer(event)) => {
                *i += 1;
                cx.out.send(self.writer, Msg::Writer { event: *event, set });
            }
            Some(Step::Provider(call)) => {
                *i += 1;
                let volumes = volumes.clone();
                cx.out.send(
                    self.provider,
                    Msg::Provider {
                        call: *call,
                        set,
                        volumes,
                    },
                );
            }
            None => {
                self.running = None;
                cx.out
                    .send(agent, Msg::LocalSnapshotSetDone { result: Ok(()) });
            }
        }
    }

    /// A writer or the provider failed: the set is aborted and the agent told.
    fn failed(&mut self, fail: Fail, cx: &mut Cx<'_, Msg, Site>) {
        if let Some((agent, _, _)) = self.running.take() {
            let set = self.set;
            cx.out.send(
                self.writer,
                Msg::Writer {
                    event: WriterEvent::OnAbort,
                    set,
                },
            );
            cx.out
                .send(agent, Msg::LocalSnapshotSetDone { result: Err(fail) });
        }
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
        match env.msg {
            Msg::LocalSnapshotSet { volumes } if self.running.is_none() => {
                self.set += 1;
                self.running = Some((from, volumes, 0));
                self.next(cx);
            }
            Msg::WriterDone { result: Err(f), .. } | Msg::ProviderDone { result: Err(f), .. } => {
                self.failed(f, cx)
            }
            Msg::WriterDone { .. } | Msg::ProviderDone { .. } => self.next(cx),
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.set.to_le_bytes());
        match &self.running {
            Some((_, v, i)) => h
                .update(&[1])
                .update(v.join(",").as_bytes())
                .update(&[*i as u8]),
            None => h.update(&[0]),
        };
    }
}

/// The file server's writer: answers each event, slowly at OnFreeze when a fault says so.
pub struct FileServerWriter {
    name: String,
    /// How long OnFreeze takes (a slow writer, fault `fsrvp_timeout` on
    /// CommitShadowCopySet).
    freeze_us: u64,
}

/// The writer a Windows file server with the File Server VSS Agent Service runs.
pub const FILE_SERVER_WRITER: &str = "FSRM Writer";

impl FileServerWriter {
    pub fn new(server: &str, freeze_us: Option<u64>) -> Self {
        FileServerWriter {
            name: format!("FileServerWriter@{server}/{FILE_SERVER_WRITER}"),
            freeze_us: freeze_us.unwrap_or(WRITER_US),
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
        let delay = if event == WriterEvent::OnFreeze {
            self.freeze_us
        } else {
            WRITER_US
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
        h.update(&self.freeze_us.to_le_bytes());
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
