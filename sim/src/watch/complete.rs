//! SPEC I5 and F2's order note: a guest's writers get OnBackupComplete only once the
//! host's volume snapshot exists. A guest's backup is nested in a host's when the host's
//! Hyper-V writer asked the guest's integration components for a backup checkpoint (F2,
//! F4) and the guest's VSS service starts it (OnIdentify) while that host's DoSnapshotSet
//! is in progress; its writers' OnBackupComplete must then follow a CommitSnapshots that
//! the host's provider returned with success in that call. With several backups in
//! flight (issue 11 §2) another host's set may be running meanwhile: only the host that
//! asked is the guest's. Judged from deliveries alone.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::msg::{IcPurpose, Msg};
use crate::protocol::vss::{ProviderCall, VssCall, WriterEvent};
use crate::sched::{ActorId, Delivery};

/// A guest writer told BackupComplete before the host's snapshot existed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlyComplete {
    pub step: u64,
    pub writer: ActorId,
    /// The guest's VSS service and the host's.
    pub guest: ActorId,
    pub host: ActorId,
}

impl EarlyComplete {
    pub fn describe(&self, names: &[String]) -> String {
        let name = |id: ActorId| names.get(id.index()).map_or("?", String::as_str);
        format!(
            "step {}: {} got OnBackupComplete from {} before {}'s volume snapshot existed \
             (SPEC F2 order note)",
            self.step,
            name(self.writer),
            name(self.guest),
            name(self.host)
        )
    }
}

/// One host DoSnapshotSet with writers.
#[derive(Debug, Default)]
struct HostSet {
    /// DoSnapshotSet has not returned yet.
    running: bool,
    /// A provider returned CommitSnapshots with success in it.
    committed: bool,
}

/// The checker of one run.
#[derive(Debug, Default)]
pub struct Complete {
    hosts: BTreeMap<ActorId, HostSet>,
    /// The service that asked each provider for CommitSnapshots.
    commit_asked: BTreeMap<ActorId, ActorId>,
    /// Each nested guest service, with its host's service.
    nested: BTreeMap<ActorId, ActorId>,
    /// The VSS service that last sent each writer an event.
    service_of: BTreeMap<ActorId, ActorId>,
    /// The host VSS service whose Hyper-V writer asked each guest's integration
    /// components for a backup that waits for the host's snapshot (F2, F4).
    asked_by: BTreeMap<ActorId, ActorId>,
    /// The host VSS service each guest VSS service's backup was asked by.
    guest_of: BTreeMap<ActorId, ActorId>,
    /// File servers' own VSS services: their sets are part of a provider's commit (F4,
    /// MS-FSRVP 3.1.4.5), finished before it returns, never nested in the host's.
    file_servers: BTreeSet<ActorId>,
    checked: u64,
    early: Vec<EarlyComplete>,
}

impl Complete {
    pub fn delivered(&mut self, d: &Delivery<'_, Msg>) {
        let Some(from) = d.sender() else { return };
        match d.msg {
            Msg::Vss {
                call: VssCall::DoSnapshotSet,
                with_writers: true,
                ..
            } => {
                self.hosts.insert(
                    d.to,
                    HostSet {
                        running: true,
                        committed: false,
                    },
                );
            }
            Msg::VssDone {
                call: VssCall::DoSnapshotSet,
                ..
            } => {
                if let Some(h) = self.hosts.get_mut(&from) {
                    h.running = false;
                }
            }
            Msg::Provider {
                call: ProviderCall::CommitSnapshots,
                ..
            } => {
                self.commit_asked.insert(d.to, from);
            }
            Msg::ProviderDone {
                call: ProviderCall::CommitSnapshots,
                result: Ok(()),
            } => {
                let host = self.commit_asked.remove(&from);
                if let Some(h) = host.and_then(|s| self.hosts.get_mut(&s)) {
                    h.committed = true;
                }
            }
            Msg::LocalPrepare { .. } | Msg::LocalSnapshotSet { .. } => {
                self.file_servers.insert(d.to);
            }
            Msg::IcBackup { purpose } => {
                // F3's checkpoint is the guest's backup: it waits for no host snapshot.
                let host = self.service_of.get(&from).copied();
                match (purpose, host) {
                    (IcPurpose::Checkpoint, _) | (_, None) => self.asked_by.remove(&d.to),
                    (_, Some(h)) => self.asked_by.insert(d.to, h),
                };
            }
            Msg::Vss { .. } => match self.asked_by.get(&from) {
                Some(&h) => {
                    self.guest_of.insert(d.to, h);
                }
                None => {
                    self.guest_of.remove(&d.to);
                }
            },
            Msg::Writer { event, .. } => {
                self.service_of.insert(d.to, from);
                match event {
                    WriterEvent::OnIdentify if !self.file_servers.contains(&from) => {
                        let host = self
                            .guest_of
                            .get(&from)
                            .copied()
                            .filter(|h| self.hosts.get(h).is_some_and(|s| s.running));
                        match host {
                            Some(h) => self.nested.insert(from, h),
                            None => self.nested.remove(&from),
                        };
                    }
                    WriterEvent::OnBackupComplete => self.backup_complete(d, from),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Writer `d.to` got OnBackupComplete from guest service `from`.
    fn backup_complete(&mut self, d: &Delivery<'_, Msg>, from: ActorId) {
        let Some(&host) = self.nested.get(&from) else {
            return;
        };
        self.checked += 1;
        if !self.hosts.get(&host).is_some_and(|h| h.committed) {
            self.early.push(EarlyComplete {
                step: d.step,
                writer: d.to,
                guest: from,
                host,
            });
        }
    }

    /// Every guest writer told BackupComplete too early, in step order.
    pub fn early(&self) -> &[EarlyComplete] {
        &self.early
    }

    /// What was compared: "3 guest OnBackupComplete(s) after the host's snapshot".
    pub fn compared(&self) -> String {
        format!(
            "{} guest OnBackupComplete(s) after the host's snapshot",
            self.checked
        )
    }
}
