//! The preflight comparison: the scenario's topology against what the host has, listing
//! every difference. The backend never adapts the scenario to the host: a difference is
//! a reason not to run.

use std::fmt;

use serde::Serialize;

use crate::scenario::{Bytes, Fault, Scenario};

use super::inventory::HostInventory;

/// One way the host is not the scenario's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Difference {
    HostMissing {
        host: String,
    },
    HostVersion {
        host: String,
        want: String,
        found: String,
    },
    ClusterMissing {
        cluster: String,
    },
    ClusterLevel {
        cluster: String,
        want: String,
        found: String,
    },
    ClusterNodeMissing {
        cluster: String,
        node: String,
    },
    VmMissing {
        vm: String,
        host: String,
    },
    VmOnOtherHost {
        vm: String,
        want: String,
        found: String,
    },
    Generation {
        vm: String,
        want: u8,
        found: u8,
    },
    ConfigVersion {
        vm: String,
        want: String,
        found: String,
    },
    IntegrationServices {
        vm: String,
        want: bool,
        found: bool,
    },
    IntegrationServicesVersion {
        vm: String,
        want: String,
        found: String,
    },
    BackupServiceDisabled {
        vm: String,
    },
    NoScsiController {
        vm: String,
    },
    DiskMissing {
        vm: String,
        file: String,
    },
    DiskSize {
        vm: String,
        file: String,
        want: u64,
        found: u64,
    },
    DiskPlace {
        vm: String,
        file: String,
        want: String,
        found: String,
    },
    VolumeMissing {
        volume: String,
    },
    NotCsv {
        volume: String,
    },
    FreeSpace {
        volume: String,
        free: u64,
        need: u64,
    },
    FileServerMissing {
        server: String,
    },
    ShareMissing {
        server: String,
        share: String,
    },
    VssAgentMissing {
        server: String,
    },
}

fn size(b: u64) -> String {
    Bytes(b).to_string()
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Difference::*;
        match self {
            HostMissing { host } => write!(f, "host {host}: not in the inventory"),
            HostVersion { host, want, found } => {
                write!(f, "host {host}: Windows Server {found}, the scenario needs {want}")
            }
            ClusterMissing { cluster } => write!(f, "cluster {cluster}: not found"),
            ClusterLevel { cluster, want, found } => write!(
                f,
                "cluster {cluster}: functional level {found}, the scenario needs {want} (F3, FF32)"
            ),
            ClusterNodeMissing { cluster, node } => {
                write!(f, "cluster {cluster}: node {node} is not a member")
            }
            VmMissing { vm, host } => write!(f, "VM {vm}: not found on {host}"),
            VmOnOtherHost { vm, want, found } => {
                write!(f, "VM {vm}: runs on {found}, the scenario has it on {want}")
            }
            Generation { vm, want, found } => {
                write!(f, "VM {vm}: generation {found}, the scenario needs {want}")
            }
            ConfigVersion { vm, want, found } => write!(
                f,
                "VM {vm}: configuration version {found}, the scenario needs {want} (F3, FF32)"
            ),
            IntegrationServices { vm, want, found } => write!(
                f,
                "VM {vm}: integration services {}, the scenario has them {} (R1)",
                if *found { "installed" } else { "not installed" },
                if *want { "installed" } else { "not installed" }
            ),
            IntegrationServicesVersion { vm, want, found } => write!(
                f,
                "VM {vm}: integration services of {found}, the scenario needs {want} (R1, FF19)"
            ),
            BackupServiceDisabled { vm } => write!(
                f,
                "VM {vm}: the backup integration service is disabled, the scenario needs it enabled (R2)"
            ),
            NoScsiController { vm } => write!(
                f,
                "VM {vm}: no SCSI controller, the scenario has one (R7)"
            ),
            DiskMissing { vm, file } => write!(f, "VM {vm}: disk {file} not attached"),
            DiskSize { vm, file, want, found } => write!(
                f,
                "VM {vm}: disk {file} is {}, the scenario needs {}",
                size(*found),
                size(*want)
            ),
            DiskPlace { vm, file, want, found } => {
                write!(f, "VM {vm}: disk {file} is on {found}, the scenario has it on {want}")
            }
            VolumeMissing { volume } => write!(f, "volume {volume}: not found"),
            NotCsv { volume } => write!(
                f,
                "volume {volume}: not a Cluster Shared Volume, the scenario has a CSV (R10)"
            ),
            FreeSpace { volume, free, need } => write!(
                f,
                "volume {volume}: {} free, below the AVHDX growth of {} (R8)",
                size(*free),
                size(*need)
            ),
            FileServerMissing { server } => write!(f, "file server {server}: not found"),
            ShareMissing { server, share } => {
                write!(f, r"file server {server}: share \\{server}\{share} not found (F4)")
            }
            VssAgentMissing { server } => write!(
                f,
                "file server {server}: the File Server VSS Agent Service does not run (R10)"
            ),
        }
    }
}

/// R8: what the job's checkpoints may grow to on `volume`: each of the job's disks on it
/// rewritten whole into its AVHDX, at most the free space the scenario gives the volume
/// (what the run assumes).
pub fn avhdx_growth(s: &Scenario, volume: &str) -> u64 {
    let disks: u64 = s
        .vms
        .iter()
        .filter(|vm| s.job.vms.contains(&vm.name))
        .flat_map(|vm| &vm.disks)
        .filter(|d| s.disk_volume(d) == Some(volume))
        .map(|d| d.size.0)
        .sum();
    let declared = s.volume(volume).map_or(0, |v| v.free.0);
    disks.min(declared)
}

/// Every difference between the scenario's topology and the host's, in scenario order.
pub fn compare(s: &Scenario, inv: &HostInventory) -> Vec<Difference> {
    use Difference::*;
    let mut out = Vec::new();
    for h in &s.hosts {
        match inv
            .hosts
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(&h.name))
        {
            None => out.push(HostMissing {
                host: h.name.clone(),
            }),
            Some(x) if x.version != h.version => out.push(HostVersion {
                host: h.name.clone(),
                want: h.version.to_string(),
                found: x.version.to_string(),
            }),
            Some(_) => {}
        }
    }
    if let Some(c) = &s.cluster {
        match inv
            .cluster
            .as_ref()
            .filter(|x| x.name.eq_ignore_ascii_case(&c.name))
        {
            None => out.push(ClusterMissing {
                cluster: c.name.clone(),
            }),
            Some(x) => {
                if x.functional_level != c.functional_level {
                    out.push(ClusterLevel {
                        cluster: c.name.clone(),
                        want: c.functional_level.to_string(),
                        found: x.functional_level.to_string(),
                    });
                }
                for n in c
                    .nodes
                    .iter()
                    .filter(|n| !x.nodes.iter().any(|m| m.eq_ignore_ascii_case(n)))
                {
                    out.push(ClusterNodeMissing {
                        cluster: c.name.clone(),
                        node: n.clone(),
                    });
                }
            }
        }
    }
    let staged_full: Vec<&str> = s
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::OutOfSpace { volume, .. } => Some(volume.as_str()),
            _ => None,
        })
        .collect();
    for v in &s.volumes {
        let Some(x) = inv.volumes.iter().find(|x| x.name == v.name) else {
            out.push(VolumeMissing {
                volume: v.name.clone(),
            });
            continue;
        };
        if v.csv && !x.csv {
            out.push(NotCsv {
                volume: v.name.clone(),
            });
        }
        // A volume the staging fills (R8's fault) needs no room: it is made short.
        let need = avhdx_growth(s, &v.name);
        if !staged_full.contains(&v.name.as_str()) && x.free.0 < need {
            out.push(FreeSpace {
                volume: v.name.clone(),
                free: x.free.0,
                need,
            });
        }
    }
    for vm in &s.vms {
        let Some(x) = inv.vms.iter().find(|x| x.name == vm.name) else {
            out.push(VmMissing {
                vm: vm.name.clone(),
                host: vm.host.clone(),
            });
            continue;
        };
        let name = || vm.name.clone();
        if !x.host.eq_ignore_ascii_case(&vm.host) {
            out.push(VmOnOtherHost {
                vm: name(),
                want: vm.host.clone(),
                found: x.host.clone(),
            });
        }
        if x.generation != vm.generation {
            out.push(Generation {
                vm: name(),
                want: vm.generation,
                found: x.generation,
            });
        }
        if x.config_version != vm.config_version {
            out.push(ConfigVersion {
                vm: name(),
                want: vm.config_version.to_string(),
                found: x.config_version.to_string(),
            });
        }
        let ic = &vm.integration_services;
        if x.integration_services != ic.installed {
            out.push(IntegrationServices {
                vm: name(),
                want: ic.installed,
                found: x.integration_services,
            });
        }
        let host_version = s.host(&vm.host).map(|h| h.version);
        if let (Some(want), Some(found)) =
            (ic.version.or(host_version), x.integration_services_version)
        {
            if want != found {
                out.push(IntegrationServicesVersion {
                    vm: name(),
                    want: want.to_string(),
                    found: found.to_string(),
                });
            }
        }
        // Disabling is staged (R2); enabling one the host has off would be an adaptation.
        if ic.backup_enabled && !x.backup_enabled {
            out.push(BackupServiceDisabled { vm: name() });
        }
        if (vm.scsi_controller || vm.generation == 2) && !x.scsi_controller {
            out.push(NoScsiController { vm: name() });
        }
        for d in &vm.disks {
            let Some(xd) = x
                .disks
                .iter()
                .find(|xd| xd.file.eq_ignore_ascii_case(&d.file))
            else {
                out.push(DiskMissing {
                    vm: name(),
                    file: d.file.clone(),
                });
                continue;
            };
            if xd.size != d.size {
                out.push(DiskSize {
                    vm: name(),
                    file: d.file.clone(),
                    want: d.size.0,
                    found: xd.size.0,
                });
            }
            let want = d.share.clone().or(d.volume.clone()).unwrap_or_default();
            let found = xd.share.clone().or(xd.volume.clone()).unwrap_or_default();
            if !want.eq_ignore_ascii_case(&found) {
                out.push(DiskPlace {
                    vm: name(),
                    file: d.file.clone(),
                    want,
                    found,
                });
            }
        }
    }
    for fs in &s.file_servers {
        let Some(x) = inv
            .file_servers
            .iter()
            .find(|x| x.name.eq_ignore_ascii_case(&fs.name))
        else {
            out.push(FileServerMissing {
                server: fs.name.clone(),
            });
            continue;
        };
        for sh in &fs.shares {
            if !x.shares.iter().any(|n| n.eq_ignore_ascii_case(&sh.name)) {
                out.push(ShareMissing {
                    server: fs.name.clone(),
                    share: sh.name.clone(),
                });
            }
        }
        if fs.vss_agent && !x.vss_agent {
            out.push(VssAgentMissing {
                server: fs.name.clone(),
            });
        }
    }
    out
}
