//! Puts the actors of a scenario on a scheduler: for each host its VSS, Hyper-V writer,
//! provider and Vmms; for each VM its integration components, the guest's VSS with its
//! writers and provider (Windows) or hv_vss_daemon (Linux), and its workload.

use std::collections::BTreeMap;
use std::rc::Rc;

use hvsim_engine::GuidGen;

use crate::actors::{
    FssAgentActor, FssProvider, GuestProvider, GuestProviderKind, GuestWriter, HostProvider, HvIc,
    HyperVWriter, LinuxVssDaemon, Requester, Vmms, VssService, Workload,
};
use crate::faults::{FaultError, FaultPlan};
use crate::fsrvp::FssAgent;
use crate::plan::Flow;
use crate::protocol::msg::Msg;
use crate::protocol::vss::{AppLevel, FREEZE_WINDOW_US};
use crate::scenario::{GuestOs, ProviderKind, Scenario};
use crate::sched::{ActorId, Decisions, Scheduler};
use crate::world::{build_lab, Lab, Power};

pub use crate::world::BuildError;

/// When the job starts: the guests have written for a while.
pub const START_US: u64 = 500_000;
/// No workload step is scheduled past this virtual time.
pub const WORKLOAD_CAP_US: u64 = 4 * 3_600_000_000;

/// Ids handed out in the order actors are added.
struct Ids(u32);
impl Ids {
    fn next(&mut self) -> ActorId {
        let id = ActorId::new(self.0);
        self.0 += 1;
        id
    }
}

impl From<FaultError> for BuildError {
    fn from(e: FaultError) -> Self {
        BuildError(e.to_string())
    }
}

/// The world of a run: a scheduler taking its choices from `decisions`, owning the
/// storage lab, with the actors on it and the first events posted.
pub fn populate(
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
) -> Result<Scheduler<Msg, Lab>, BuildError> {
    populate_on(decisions, scenario, seed, None)
}

/// [`populate`], with the volumes' files written through to `on_disk` when given.
pub fn populate_on(
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
    on_disk: Option<&std::path::Path>,
) -> Result<Scheduler<Msg, Lab>, BuildError> {
    // Every fault resolved once; one the model cannot inject is refused here.
    let faults = Rc::new(FaultPlan::new(&scenario, seed)?);
    let mut guids = GuidGen::seeded(seed);
    let mut lab = build_lab(Rc::clone(&scenario), &mut guids, on_disk)?;
    // A recorded run digests the world after every step: the oracle then keeps a hash
    // chain of the bytes written (set before any workload step).
    for vm in &mut lab.vms {
        vm.oracle.hash_writes = true;
    }
    let mut sched = Scheduler::with_world(decisions, guids, lab);
    let s = &*scenario;
    let mut ids = Ids(0);

    // Plan every id first: actors name their peers.
    let requester = ids.next();
    let mut hosts: BTreeMap<String, (ActorId, ActorId, ActorId, ActorId)> = BTreeMap::new();
    let mut fss_providers: BTreeMap<String, ActorId> = BTreeMap::new();
    for h in &s.hosts {
        hosts.insert(
            h.name.clone(),
            (ids.next(), ids.next(), ids.next(), ids.next()),
        );
        if !s.file_servers.is_empty() {
            fss_providers.insert(h.name.clone(), ids.next());
        }
    }
    let mut agents: BTreeMap<String, ActorId> = BTreeMap::new();
    for fs in s.file_servers.iter().filter(|f| f.vss_agent) {
        agents.insert(fs.name.to_ascii_lowercase(), ids.next());
    }
    struct VmIds {
        ic: ActorId,
        workload: ActorId,
        guest_vss: Option<ActorId>,
        provider: Option<ActorId>,
        writers: Vec<ActorId>,
        daemon: Option<ActorId>,
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

    // Then add them, in the same order.
    let host_vss: BTreeMap<String, ActorId> =
        hosts.iter().map(|(h, ids)| (h.clone(), ids.0)).collect();
    let vmms: BTreeMap<String, ActorId> = hosts.iter().map(|(h, ids)| (h.clone(), ids.3)).collect();
    let id = sched.add_actor(Box::new(Requester::new(
        host_vss,
        vmms,
        s.job.mode,
        Rc::clone(&faults),
    )));
    debug_assert_eq!(id, requester);
    for h in &s.hosts {
        let (_, writer_id, provider_id, vmms_id) = hosts[&h.name];
        let mut vss = VssService::new(format!("HostVss@{}", h.name), None);
        vss.add_writer(writer_id, AppLevel::BackEnd, None);
        vss.set_provider(None, provider_id);
        if let Some(&fss) = fss_providers.get(&h.name) {
            // Volumes of file servers are shadow-copied over MS-FSRVP (F4.3).
            for v in s.volumes.iter().filter(|v| v.file_server.is_some()) {
                vss.set_provider(Some(&v.name), fss);
                vss.set_remote(&v.name);
            }
        }
        sched.add_actor(Box::new(vss));
        let mut writer = HyperVWriter::new(&h.name, vmms_id);
        let mut vmms_actor = Vmms::new(&h.name, Rc::clone(&faults));
        for (i, vm) in s.vms.iter().enumerate() {
            if vm.host == h.name {
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
            Rc::clone(&faults),
        )));
        sched.add_actor(Box::new(vmms_actor));
        if fss_providers.contains_key(&h.name) {
            sched.add_actor(Box::new(FssProvider::new(&h.name, agents.clone())));
        }
    }
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
        for operation in faults.fsrvp_timeouts(f) {
            agent.set_unresponsive(operation.as_str());
        }
        sched.add_actor(Box::new(FssAgentActor::new(&fs.name, agent)));
    }
    for (i, vm) in s.vms.iter().enumerate() {
        let ids = &vm_ids[i];
        let (_, _, _, vmms_id) = hosts[&vm.host];
        let peer = ids.guest_vss.or(ids.daemon);
        sched.add_actor(Box::new(HvIc::new(&vm.name, i, vm.guest.os, peer, vmms_id)));
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
            let flow = sched.world().plans.get(&i).map(|p| p.flow);
            let kind = if flow == Some(Flow::F1) {
                GuestProviderKind::Software
            } else {
                GuestProviderKind::IntegrationServices
            };
            sched.add_actor(Box::new(GuestProvider::new(&vm.name, i, kind, vmms_id)));
            for (k, w) in vm.guest.writers.iter().enumerate() {
                sched.add_actor(Box::new(GuestWriter::new(
                    &vm.name,
                    i,
                    w.clone(),
                    faults.writer_failure(i, k),
                )));
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
        if Workload::rate(&vm.workload) > 0 && sched.world().vms[i].power == Power::Running {
            sched.post(ids.workload, 0, Msg::Tick);
        }
    }
    sched.post(requester, START_US, Msg::Start);
    Ok(sched)
}
