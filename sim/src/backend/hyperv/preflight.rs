//! Preflight: the read-only queries that tell whether a host is the scenario's topology.
//! Their answers make a [`super::HostInventory`]; [`super::compare`] lists every
//! difference. Nothing here changes the host.

use crate::scenario::{GuestOs, Scenario};

use super::action::{Action, Phase, Shell, Step, VIRTUALIZATION_V2};
use super::places::Places;

fn query(host: &str, query: String, properties: &[&str], expect: String, cites: &[&str]) -> Step {
    Step::new(
        Phase::Preflight,
        Action::Preflight {
            shell: Shell::Host(host.to_string()),
            query,
            properties: properties.iter().map(|p| p.to_string()).collect(),
            expect,
        },
        cites,
    )
}

/// The preflight queries of `s`, host by host, then the cluster and the file servers.
pub fn preflight(s: &Scenario, places: &Places) -> Vec<Step> {
    let mut steps = Vec::new();
    for h in &s.hosts {
        steps.push(query(
            &h.name,
            "Get-CimInstance Win32_OperatingSystem".into(),
            &["Caption", "Version"],
            format!("Windows Server {}", h.version),
            &[],
        ));
        for v in s
            .volumes
            .iter()
            .filter(|v| v.host.as_deref() == Some(&h.name))
        {
            let path = places.volume(&v.name);
            steps.push(query(
                &h.name,
                format!("Get-Volume -FilePath '{path}\\'"),
                &["Size", "SizeRemaining", "FileSystemType"],
                format!(
                    "volume {} of {} with the AVHDX growth free",
                    v.name, v.capacity
                ),
                &["R8"],
            ));
        }
        for vm in s.vms.iter().filter(|vm| vm.host == h.name) {
            let n = &vm.name;
            steps.push(query(
                &h.name,
                format!("Get-VM -Name '{n}'"),
                &["Generation", "Version", "State", "CheckpointType"],
                format!(
                    "generation {}, configuration version {}",
                    vm.generation, vm.config_version
                ),
                &["F3"],
            ));
            steps.push(query(
                &h.name,
                format!("Get-VMIntegrationService -VMName '{n}'"),
                &["Name", "Enabled", "PrimaryStatusDescription"],
                format!(
                    "\"{}\" {}; integration services {}",
                    h.version.backup_service_label(),
                    if vm.integration_services.backup_enabled {
                        "enabled"
                    } else {
                        "present (staging disables it)"
                    },
                    vm.integration_services
                        .version
                        .map_or_else(|| format!("of {}", h.version), |v| format!("of {v}"))
                ),
                &["R1", "R2", "R6", "FF19"],
            ));
            steps.push(query(
                &h.name,
                format!("Get-VMScsiController -VMName '{n}'"),
                &["ControllerNumber"],
                if vm.scsi_controller || vm.generation == 2 {
                    "a SCSI controller".into()
                } else {
                    "any (staging removes it)".into()
                },
                &["R7"],
            ));
            steps.push(query(
                &h.name,
                format!("Get-VMHardDiskDrive -VMName '{n}' | Get-VHD"),
                &["Path", "Size", "VhdFormat", "BlockSize"],
                vm.disks
                    .iter()
                    .map(|d| format!("{} of {}", places.disk(d), d.size))
                    .collect::<Vec<_>>()
                    .join(", "),
                &["F3.3"],
            ));
            if vm.guest.os == GuestOs::Windows {
                steps.push(query(
                    &h.name,
                    format!("Invoke-Command -VMName '{n}' {{ vssadmin list writers }}"),
                    &["Writer name", "State"],
                    format!(
                        "writers {} stable",
                        vm.guest
                            .writers
                            .iter()
                            .map(|w| w.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    &["F1.4", "F2.4"],
                ));
            }
        }
        steps.push(query(
            &h.name,
            format!("Get-CimInstance -Namespace {VIRTUALIZATION_V2} -ClassName Msvm_VirtualSystemSnapshotService"),
            &["Name"],
            "the snapshot service (2016 and later: production checkpoints)".into(),
            &["F3"],
        ));
    }
    if let Some(c) = &s.cluster {
        let first = c.nodes.first().map_or("", String::as_str);
        steps.push(query(
            first,
            "Get-Cluster; Get-ClusterNode".into(),
            &["Name", "ClusterFunctionalLevel", "State"],
            format!(
                "cluster {} of {} at level {}",
                c.name,
                c.nodes.join(", "),
                c.functional_level
            ),
            &["F3", "R10"],
        ));
        for v in s.volumes.iter().filter(|v| v.csv) {
            steps.push(query(
                first,
                format!("Get-ClusterSharedVolume | Where-Object {{ $_.SharedVolumeInfo.FriendlyVolumeName -eq '{}' }}", places.volume(&v.name)),
                &["Name", "OwnerNode", "SharedVolumeInfo"],
                format!("a CSV of {}", v.capacity),
                &["R10", "FF38"],
            ));
        }
    }
    let asker = s.hosts.first().map_or("", |h| h.name.as_str());
    for fs in &s.file_servers {
        steps.push(query(
            asker,
            format!("Get-SmbShare -CimSession '{}'", fs.name),
            &["Name", "Path"],
            fs.shares
                .iter()
                .map(|sh| sh.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            &["F4", "R10"],
        ));
        // The volume holding each share (its free space and size), asked of the server.
        for sh in &fs.shares {
            steps.push(query(
                asker,
                format!(
                    "Get-Volume -CimSession '{0}' -FilePath (Get-SmbShare -CimSession '{0}' -Name '{1}').Path",
                    fs.name, sh.name
                ),
                &["Size", "SizeRemaining", "FileSystemType"],
                format!(
                    "volume {} of {}",
                    sh.volume,
                    s.volume(&sh.volume)
                        .map_or_else(|| "unknown size".to_string(), |v| v.capacity.to_string())
                ),
                &["F4", "R8"],
            ));
        }
        steps.push(query(
            asker,
            format!("Get-Service -ComputerName '{}' -Name fssagent", fs.name),
            &["Status"],
            if fs.vss_agent {
                "Running".into()
            } else {
                "absent or stopped".into()
            },
            &["R10"],
        ));
    }
    steps
}
