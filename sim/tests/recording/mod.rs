//! A recording test backend: a small scripted host whose endpoints (one VSS service and
//! one Vmms per host, named as the simulated ones) write down every call the requester
//! makes, in order, and answer from a script. It is not a second simulator: it has no
//! writers, providers, guests or workload; it leaves only what the requester reads
//! (a volume snapshot per volume of a set, a recovery checkpoint) and its claims on them
//! (crash-consistent, and where each VM's backup is).

use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};

use hvsim_sim::backend::{Backend, BackendError, HostCall, HostEnd, HostEndpoints};
use hvsim_sim::engine::chain::{checkpoint_file, ChainError};
use hvsim_sim::engine::volume::{SnapshotOptions, VolumeError};
use hvsim_sim::engine::GuidGen;
use hvsim_sim::faults::FaultPlan;
use hvsim_sim::plan::Flow;
use hvsim_sim::protocol::msg::{Claim, Fail, Msg, Reached, Source};
use hvsim_sim::protocol::vss::VssCall;
use hvsim_sim::scenario::{FailureClass, Hresult, Scenario};
use hvsim_sim::sched::{Actor, ActorId, Cx, Envelope, Scheduler};
use hvsim_sim::site::Site;
use hvsim_sim::world::{DiskError, Lab, Power, Shadow};

/// Virtual time a scripted host takes to answer.
const ANSWER_US: u64 = 1_000;

/// Why the scripted host could not do what a call asked.
#[derive(Debug, thiserror::Error)]
enum HostError {
    #[error("no volume {0}")]
    NoVolume(String),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

/// One call as the host saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The endpoint's name (`HostVss@<host>` or `Vmms@<host>`).
    pub endpoint: String,
    pub call: HostCall,
}

/// How the scripted host answers: every call succeeds, except the first call named
/// `fail`, which fails with its code.
#[derive(Clone, Debug, Default)]
pub struct Script {
    fail: Option<(&'static str, Hresult)>,
    /// The host answers without its claims (no component names the VM's files).
    silent: bool,
}

impl Script {
    pub fn all_succeed() -> Self {
        Script::default()
    }

    /// The first call named `call` (its trace name) fails with `code`.
    pub fn fail(call: &'static str, code: Hresult) -> Self {
        Script {
            fail: Some((call, code)),
            silent: false,
        }
    }

    /// Every call succeeds, but no answer says where a VM's backup is.
    pub fn without_claims() -> Self {
        Script {
            fail: None,
            silent: true,
        }
    }
}

/// The recording backend.
pub struct Recording {
    script: Script,
    log: Sender<Recorded>,
    calls: Receiver<Recorded>,
    /// Announce endpoints one id off from where they are installed.
    misannounce: bool,
}

impl Recording {
    pub fn new(script: Script) -> Self {
        let (log, calls) = channel();
        Recording {
            script,
            log,
            calls,
            misannounce: false,
        }
    }

    /// A backend whose announcement does not match what it installs.
    pub fn misannouncing() -> Self {
        Recording {
            misannounce: true,
            ..Recording::new(Script::all_succeed())
        }
    }

    /// Every call recorded so far, in the order the host received them.
    pub fn calls(&self) -> Vec<Recorded> {
        self.calls.try_iter().collect()
    }

    fn layout(scenario: &Scenario, first: ActorId) -> HostEndpoints {
        let mut ends = HostEndpoints::default();
        let first = first.index() as u32;
        for (k, h) in scenario.hosts.iter().enumerate() {
            let at = first + 2 * k as u32;
            ends.insert(
                &h.name,
                HostEnd {
                    vss: ActorId::new(at),
                    vmms: ActorId::new(at + 1),
                },
            );
        }
        ends
    }
}

impl Backend for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn endpoints(&self, scenario: &Scenario, first: ActorId) -> HostEndpoints {
        let shift = u32::from(self.misannounce);
        Self::layout(scenario, ActorId::new(first.index() as u32 + shift))
    }

    fn install(
        &mut self,
        sched: &mut Scheduler<Msg, Site>,
        scenario: &Scenario,
        faults: &Rc<FaultPlan>,
    ) -> Result<HostEndpoints, BackendError> {
        if !faults.faults().is_empty() {
            // Refused, never run as if the fault were not there.
            return Err(BackendError::Unsupported {
                backend: "recording",
                why: format!(
                    "a scripted host stages no faults ({} planned)",
                    faults.faults().len()
                ),
            });
        }
        if !scenario.file_servers.is_empty() {
            return Err(BackendError::Unsupported {
                backend: "recording",
                why: "no file servers (MS-FSRVP) on a scripted host".into(),
            });
        }
        let mut ends = HostEndpoints::default();
        for h in &scenario.hosts {
            let vss = sched.add_actor(Box::new(Endpoint::new(
                format!("HostVss@{}", h.name),
                &h.name,
                &self.script,
                &self.log,
            )));
            let vmms = sched.add_actor(Box::new(Endpoint::new(
                format!("Vmms@{}", h.name),
                &h.name,
                &self.script,
                &self.log,
            )));
            ends.insert(&h.name, HostEnd { vss, vmms });
        }
        Ok(ends)
    }
}

/// A host's VSS service or Vmms, scripted.
struct Endpoint {
    name: String,
    host: String,
    fail: Option<(&'static str, Hresult)>,
    silent: bool,
    log: Sender<Recorded>,
    answered: u64,
}

impl Endpoint {
    fn new(name: String, host: &str, script: &Script, log: &Sender<Recorded>) -> Self {
        Endpoint {
            name,
            host: host.to_string(),
            fail: script.fail,
            silent: script.silent,
            log: log.clone(),
            answered: 0,
        }
    }

    /// What the host leaves for the requester to read when the call succeeds, and its
    /// claims on the VMs it backed up.
    fn effects(
        &self,
        call: &HostCall,
        lab: &mut Lab,
        guids: &mut GuidGen,
    ) -> Result<Vec<Claim>, HostError> {
        let mut claims = Vec::new();
        match call {
            HostCall::Vss {
                call: VssCall::DoSnapshotSet,
                set,
                volumes,
                with_writers,
            } => {
                for v in volumes {
                    let volume = lab
                        .volumes
                        .get(v)
                        .ok_or_else(|| HostError::NoVolume(v.clone()))?;
                    let snap = volume.create_snapshot(SnapshotOptions {
                        writable: false,
                        diff_area: u64::MAX,
                    });
                    lab.shadows.entry(*set).or_default().push(Shadow {
                        volume: v.clone(),
                        id: snap.id(),
                        exposed: None,
                    });
                }
                if *with_writers {
                    // A host backup: each VM of this host whose disks are in the set is
                    // read from the snapshot, as its chain stands.
                    for (&vm, plan) in &lab.plans {
                        let v = &lab.vms[vm];
                        if plan.flow != Flow::F3
                            && v.host == self.host
                            && v.disks.iter().all(|d| volumes.contains(&d.volume))
                        {
                            let files = v.disks.iter().map(|d| d.chain.files.clone()).collect();
                            claims.push(Claim {
                                vm,
                                reached: Some(Reached::Crash),
                                fallback: false,
                                source: Some(Source {
                                    set: Some(*set),
                                    files,
                                }),
                            });
                        }
                    }
                }
            }
            HostCall::Vss {
                call: VssCall::BackupComplete | VssCall::AbortBackup,
                set,
                ..
            } => {
                for s in lab.shadows.remove(set).unwrap_or_default() {
                    if let Some(v) = lab.volumes.get(&s.volume) {
                        v.delete_snapshot(s.id)?;
                    }
                }
            }
            HostCall::Vss { .. } => {}
            HostCall::CreateRecoveryCheckpoint { vm } => {
                let v = &mut lab.vms[*vm];
                let mut parents = Vec::new();
                for d in &mut v.disks {
                    d.close()?;
                    parents.push(d.chain.files.clone());
                    let name = checkpoint_file(&d.file, guids.next_guid());
                    d.chain.create_checkpoint(&name, guids)?;
                    if v.power != Power::Off {
                        d.reopen(false, guids)?;
                    }
                }
                // A standard checkpoint: crash-consistent, read from its parents.
                claims.push(Claim {
                    vm: *vm,
                    reached: Some(Reached::Crash),
                    fallback: false,
                    source: Some(Source {
                        set: None,
                        files: parents,
                    }),
                });
            }
            HostCall::MergeCheckpoint { vm } => {
                // No guest writes on this host: the checkpoint holds nothing to keep.
                let v = &mut lab.vms[*vm];
                for d in &mut v.disks {
                    d.close()?;
                    d.chain.revert()?;
                    if v.power != Power::Off {
                        d.reopen(false, guids)?;
                    }
                }
            }
        }
        Ok(claims)
    }
}

impl Actor<Msg, Site> for Endpoint {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        let Some(call) = HostCall::from_msg(&env.msg) else {
            return;
        };
        let Some(from) = env.sender() else {
            return;
        };
        self.log
            .send(Recorded {
                endpoint: self.name.clone(),
                call: call.clone(),
            })
            .ok();
        self.answered += 1;
        let (result, claims) = match self.fail {
            Some((name, code)) if name == call.name() => {
                self.fail = None;
                (
                    Err(Fail::new(code, FailureClass::Host, "scripted failure")),
                    Vec::new(),
                )
            }
            _ => match self.effects(&call, cx.world, cx.out.guids()) {
                Ok(_) if self.silent => (Ok(()), Vec::new()),
                Ok(claims) => (Ok(()), claims),
                Err(e) => (
                    Err(Fail::new(
                        Hresult::VssEUnexpected,
                        FailureClass::Host,
                        e.to_string(),
                    )),
                    Vec::new(),
                ),
            },
        };
        let reply = call.answer(result).with_claims(claims);
        cx.out.send_after(from, ANSWER_US, reply.into_msg());
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(self.name.as_bytes());
        h.update(&self.answered.to_le_bytes());
    }
}
