//! The simulated backend: the host side of a scenario as actors of this crate. For each
//! host its VSS, Hyper-V writer, provider and Vmms; for each VM its integration
//! components, the guest's VSS with its writers and provider (Windows) or hv_vss_daemon
//! (Linux), and its workload.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::actors::{
    FileServerProvider, FileServerVss, FileServerWriter, FssAgentActor, FssProvider, GuestProvider,
    GuestProviderKind, GuestWriter, HostProvider, HvIc, HyperVWriter, LinuxVssDaemon, Vmms,
    VssService, Workload, WORKLOAD_CAP_US,
};
use crate::faults::FaultPlan;
use crate::fsrvp::FssAgent;
use crate::plan::Flow;
use crate::protocol::msg::Msg;
use crate::protocol::vss::{AppLevel, WriterEvent, FREEZE_WINDOW_US};
use crate::scenario::{FsrvpOperation, GuestOs, ProviderKind, Scenario, WorkloadWindow};

/// How long the file server's writer takes to freeze when a fault makes the server's
/// commit time out: longer than the caller's 60 s wait (reference vss.md §5, FF40).
const SLOW_FILE_SERVER_FREEZE_US: u64 = 90_000_000;
/// How long it takes to prepare when a fault makes the server's prepare time out: longer
/// than the caller's 30 min wait (reference vss.md §5).
const SLOW_FILE_SERVER_PREPARE_US: u64 = 1_900_000_000;
use crate::sched::{ActorId, Scheduler};
use crate::site::Site;
use crate::world::{BackupWindow, Power, WindowState};

use super::{Backend, BackendError, HostEnd, HostEndpoints};

/// The host side simulated: real VSS sequences, providers, Vmms and guests, on the
/// world's volumes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Simulated;

/// Ids handed out in the order actors are added.
struct Ids(u32);
impl Ids {
    fn next(&mut self) -> ActorId {
        let id = ActorId::new(self.0);
        self.0 += 1;
        id
    }
}

struct VmIds {
    ic: ActorId,
    workload: ActorId,
    guest_vss: Option<ActorId>,
    provider: Option<ActorId>,
    writers: Vec<ActorId>,
    daemon: Option<ActorId>,
}

/// Every actor's id, planned before any is added: actors name their peers.
struct Layout {
    /// Per host: VSS, Hyper-V writer, provider, Vmms.
    hosts: BTreeMap<String, (ActorId, ActorId, ActorId, ActorId)>,
    fss_providers: BTreeMap<String, ActorId>,
    agents: BTreeMap<String, ActorId>,
    vm_ids: Vec<VmIds>,
    /// Per file server with an agent (scenario order): its own VSS service, planned
    /// last so that the other actors keep their ids.
    local_vss: Vec<ActorId>,
}

impl Layout {
    fn plan(s: &Scenario, first: ActorId) -> Layout {
        let mut ids = Ids(u32::try_from(first.index()).unwrap_or(u32::MAX));
        let mut hosts = BTreeMap::new();
        let mut fss_providers = BTreeMap::new();
        for h in &s.hosts {
            hosts.insert(
                h.name.clone(),
                (ids.next(), ids.next(), ids.next(), ids.next()),
            );
            if !s.file_servers.is_empty() {
                fss_providers.insert(h.name.clone(), ids.next());
            }
        }
        let mut agents = BTreeMap::new();
        for fs in s.file_servers.iter().filter(|f| f.vss_agent) {
            agents.insert(fs.name.to_ascii_lowercase(), ids.next());
        }
        let mut vm_ids = Vec::new();
        for vm in &s.vms {
            let ic = ids.next();
            let workload = ids.next();
            let windows = vm.guest.os == GuestOs::Windows && vm.integration_services.installed;
            let linux = vm.guest.os == GuestOs::Linux && vm.integration_services.installed;
            let guest_vss = windows.then(|| ids.next());
            let provider = windows.then(|| ids.next());
            let writers = if windows {
                vm.guest.writers.iter().map(|_| ids.next()).collect()
            } else {
                Vec::new()
            };
            let daemon = linux.then(|| ids.next());
            vm_ids.push(VmIds {
                ic,
                workload,
                guest_vss,
                provider,
                writers,
                daemon,
            });
        }
        // Each: writer, provider, VSS service.
        let local_vss = s
            .file_servers
            .iter()
            .filter(|f| f.vss_agent)
            .map(|_| {
                ids.next();
                ids.next();
                ids.next()
            })
            .collect();
        Layout {
            hosts,
            fss_providers,
            agents,
            vm_ids,
            local_vss,
        }
    }

    fn endpoints(&self) -> HostEndpoints {
        let mut ends = HostEndpoints::default();
        for (h, &(vss, _, _, vmms)) in &self.hosts {
            ends.insert(h, HostEnd { vss, vmms });
        }
        ends
    }
}

impl Backend for Simulated {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn endpoints(&self, scenario: &Scenario, first: ActorId) -> HostEndpoints {
        Layout::plan(scenario, first).endpoints()
    }

    fn install(
        &mut self,
        sched: &mut Scheduler<Msg, Site>,
        scenario: &Scenario,
        faults: &Rc<FaultPlan>,
    ) -> Result<HostEndpoints, BackendError> {
        let s = scenario;
        let first = ActorId::new(u32::try_from(sched.actor_names().len()).unwrap_or(u32::MAX));
        let Layout {
            hosts,
            fss_providers,
            agents,
            vm_ids,
            local_vss,
        } = Layout::plan(s, first);
        let mut installed = HostEndpoints::default();
        for (hi, h) in s.hosts.iter().enumerate() {
            let (_, writer_id, provider_id, vmms_id) = hosts[&h.name];
            let mut vss = VssService::new(format!("HostVss@{}", h.name), None);
            if let Some(until) = faults.foreign_set_until(hi) {
                vss.hold_foreign_set(until);
            }
            vss.add_writer(writer_id, AppLevel::BackEnd, None);
            vss.set_provider(None, provider_id);
            if let Some(&fss) = fss_providers.get(&h.name) {
                // Volumes of file servers are shadow-copied over MS-FSRVP (F4.3).
                for v in s.volumes.iter().filter(|v| v.file_server.is_some()) {
                    vss.set_provider(Some(&v.name), fss);
                    vss.set_remote(&v.name);
                }
            }
            let vss_at = sched.add_actor(Box::new(vss));
            let mut writer = HyperVWriter::new(&h.name, vmms_id);
            let mut vmms_actor = Vmms::new(&h.name, Rc::clone(faults));
            for (i, vm) in s.vms.iter().enumerate() {
                // R11: a host a VM is live-migrated to between points answers for it too.
                if vm.host == h.name || faults.later_hosts(i).contains(&hi) {
                    writer.add_ic(i, vm_ids[i].ic);
                    vmms_actor.add_ic(i, vm_ids[i].ic);
                }
            }
            sched.add_actor(Box::new(writer));
            let kind = if s
                .volumes
                .iter()
                .any(|v| v.csv && v.provider == ProviderKind::Hardware)
            {
                ProviderKind::Hardware
            } else {
                ProviderKind::System
            };
            sched.add_actor(Box::new(HostProvider::new(
                &h.name,
                kind,
                Rc::clone(faults),
            )));
            let vmms_at = sched.add_actor(Box::new(vmms_actor));
            installed.insert(
                &h.name,
                HostEnd {
                    vss: vss_at,
                    vmms: vmms_at,
                },
            );
            if fss_providers.contains_key(&h.name) {
                let delays = s
                    .file_servers
                    .iter()
                    .enumerate()
                    .map(|(f, fs)| (fs.name.to_ascii_lowercase(), faults.fsrvp_call_delay_us(f)))
                    .collect();
                let provider = FssProvider::new(&h.name, agents.clone()).with_call_delays(delays);
                sched.add_actor(Box::new(provider));
            }
        }
        let mut file_servers = Vec::new();
        for (f, fs) in s
            .file_servers
            .iter()
            .enumerate()
            .filter(|(_, f)| f.vss_agent)
        {
            let shares = {
                let l = sched.world();
                fs.shares
                    .iter()
                    .filter_map(|sh| {
                        l.volumes
                            .get(&sh.volume)
                            .map(|v| (sh.name.clone(), v.clone()))
                    })
                    .collect()
            };
            let guids = sched.guids().fork();
            let mut agent = FssAgent::new(&fs.name, shares, guids);
            // A prepare or commit that times out is the server's own VSS too slow for the
            // caller's wait: its writer's prepare or freeze outlasts it (MS-FSRVP
            // 3.1.4.13, 3.1.4.5).
            let mut slow_writer = None;
            for operation in faults.fsrvp_timeouts(f) {
                let slow = match operation {
                    FsrvpOperation::PrepareShadowCopySet => {
                        Some((WriterEvent::OnPrepareSnapshot, SLOW_FILE_SERVER_PREPARE_US))
                    }
                    FsrvpOperation::CommitShadowCopySet => {
                        Some((WriterEvent::OnFreeze, SLOW_FILE_SERVER_FREEZE_US))
                    }
                    FsrvpOperation::ExposeShadowCopySet => None,
                };
                if slow.is_some() {
                    slow_writer = slow;
                    continue;
                }
                agent.set_unresponsive(operation.as_str()).map_err(|e| {
                    BackendError::Unsupported {
                        backend: "simulated",
                        why: e.to_string(),
                    }
                })?;
            }
            let vss = local_vss[file_servers.len()];
            file_servers.push((fs.name.clone(), slow_writer));
            sched.add_actor(Box::new(
                FssAgentActor::new(&fs.name, agent).with_local_vss(vss),
            ));
        }
        let vmms_of: BTreeMap<String, ActorId> = hosts
            .iter()
            .map(|(h, &(_, _, _, vmms))| (h.clone(), vmms))
            .collect();
        for (i, vm) in s.vms.iter().enumerate() {
            let ids = &vm_ids[i];
            let (_, _, _, vmms_id) = hosts[&vm.host];
            let peer = ids.guest_vss.or(ids.daemon);
            sched.add_actor(Box::new(
                HvIc::new(&vm.name, i, vm.guest.os, peer, vmms_id).following_owner(vmms_of.clone()),
            ));
            sched.add_actor(Box::new(Workload::new(
                &vm.name,
                i,
                vm.workload.clone(),
                WORKLOAD_CAP_US,
            )));
            if let (Some(_), Some(provider)) = (ids.guest_vss, ids.provider) {
                let mut vss = VssService::new(format!("GuestVss@{}", vm.name), Some(i));
                for (w, &wid) in vm.guest.writers.iter().zip(&ids.writers) {
                    let freeze = Some(
                        w.freeze_timeout
                            .map_or(FREEZE_WINDOW_US, |t| t.millis.saturating_mul(1_000)),
                    );
                    vss.add_writer(wid, GuestWriter::level(w), freeze);
                }
                vss.set_provider(None, provider);
                sched.add_actor(Box::new(vss));
                // The run's checkers bound this service's freeze by its writers' timeouts.
                sched.world_mut().watch_guest_writers(i, &ids.writers);
                let flow = sched.world().plans.get(&i).map(|p| p.flow);
                let kind = if flow == Some(Flow::F1) {
                    GuestProviderKind::Software
                } else {
                    GuestProviderKind::IntegrationServices
                };
                sched.add_actor(Box::new(
                    GuestProvider::new(&vm.name, i, kind, vmms_id).following_owner(vmms_of.clone()),
                ));
                for (k, w) in vm.guest.writers.iter().enumerate() {
                    let failure = faults.writer_failure(i, k);
                    if failure.is_some_and(|(at, _)| at == crate::scenario::WriterEvent::OnIdentify)
                    {
                        // Out of the metadata, the writer never gets OnPostSnapshot: its
                        // application's open transaction stays in the snapshot (F2.10).
                        let lab = &mut sched.world_mut().vms[i];
                        if lab.app_writer.as_deref() == Some(w.name.as_str()) {
                            lab.app_writer = None;
                        }
                    }
                    sched.add_actor(Box::new(GuestWriter::new(&vm.name, i, w.clone(), failure)));
                }
            }
            if let Some(daemon) = ids.daemon {
                sched.add_actor(Box::new(LinuxVssDaemon::new(
                    &vm.name,
                    i,
                    vm,
                    faults.daemon(i),
                )));
                // The guest boots: the daemon registers with the driver.
                sched.post(daemon, 0, Msg::Start);
            }
            // Workload steps: each guest writes from the start on its own, or from when
            // the job reaches it (issue 11 §3).
            if Workload::rate(&vm.workload) > 0 {
                if vm.workload.window == WorkloadWindow::Backup {
                    sched.world_mut().vms[i].window = Some(BackupWindow {
                        workload: ids.workload,
                        state: WindowState::Waiting,
                    });
                } else if sched.world().vms[i].power == Power::Running {
                    sched.post(ids.workload, 0, Msg::Tick);
                }
            }
        }
        // Each file server's own VSS, where the layout planned it.
        for (name, slow_writer) in file_servers {
            let writer = sched.add_actor(Box::new(FileServerWriter::new(&name, slow_writer)));
            let provider = sched.add_actor(Box::new(FileServerProvider::new(&name)));
            sched.add_actor(Box::new(FileServerVss::new(&name, writer, provider)));
        }
        Ok(installed)
    }
}
