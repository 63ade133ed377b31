//! Observations: what the run reads back from the host and its guests once the job
//! ended, for the same checkers the simulated run has (I1–I5, F5.T).

use crate::scenario::{GuestOs, Scenario};

use super::action::{Action, Phase, Shell, Step};
use super::places::Places;

fn observe(shell: Shell, what: &str, query: String, cites: &[&str]) -> Step {
    Step::new(
        Phase::Observations,
        Action::Observe {
            shell,
            what: what.to_string(),
            query,
        },
        cites,
    )
}

/// The observations of `s`, host by host, then each VM of the job, then file servers.
pub fn observations(s: &Scenario, places: &Places) -> Vec<Step> {
    let mut steps = Vec::new();
    for h in &s.hosts {
        let sh = || Shell::Host(h.name.clone());
        steps.push(observe(
            sh(),
            "Hyper-V-VMMS events of the job (10103, 10150, 19100, 4010 ...)",
            "Get-WinEvent -FilterHashtable @{ LogName = 'Microsoft-Hyper-V-VMMS-Admin'; StartTime = $jobStart }".into(),
            &["F5.T", "R7", "FF12", "FF13", "FF24"],
        ));
        steps.push(observe(
            sh(),
            "VSS events of the job (8193, 8194, 12293, 12366)",
            "Get-WinEvent -FilterHashtable @{ LogName = 'Application'; ProviderName = 'VSS'; StartTime = $jobStart }".into(),
            &["FF5", "FF7"],
        ));
        steps.push(observe(
            sh(),
            "host writers back to stable",
            "vssadmin list writers".into(),
            &["I3", "I5", "FF3"],
        ));
        steps.push(observe(
            sh(),
            "no shadow copy left",
            "vssadmin list shadows".into(),
            &["I3"],
        ));
    }
    for vm in s.vms.iter().filter(|v| s.job.vms.contains(&v.name)) {
        let host = || Shell::Host(vm.host.clone());
        let n = &vm.name;
        steps.push(observe(
            host(),
            "the VM's state and checkpoints left",
            format!("Get-VM -Name '{n}' | Select-Object State; Get-VMSnapshot -VMName '{n}'"),
            &["I3", "I4", "FF22"],
        ));
        for d in &vm.disks {
            let stem = d.file.rsplit_once('.').map_or(d.file.as_str(), |(s, _)| s);
            steps.push(observe(
                host(),
                "files beside the disk (AVHDX left)",
                format!(
                    "Get-ChildItem -LiteralPath '{}' -Filter '{stem}*.avhdx'",
                    places.folder(d)
                ),
                &["I3", "FF11", "FF23"],
            ));
        }
        match vm.guest.os {
            GuestOs::Windows => steps.push(observe(
                Shell::PsDirect(n.clone()),
                "guest writers back to stable",
                "vssadmin list writers".into(),
                &["I3", "I5"],
            )),
            GuestOs::Linux => {
                for g in vm.disks.iter().flat_map(|d| &d.volumes) {
                    steps.push(observe(
                        Shell::Ssh(n.clone()),
                        "the mount is not left frozen",
                        format!(
                            "timeout 5 touch {0}/.hvsim-probe && rm {0}/.hvsim-probe",
                            g.mount.trim_end_matches('/')
                        ),
                        &["I3", "FF13", "FF18"],
                    ));
                }
            }
            GuestOs::Other => {}
        }
    }
    let asker = s.hosts.first().map_or("", |h| h.name.as_str());
    for fs in &s.file_servers {
        steps.push(observe(
            Shell::Host(asker.to_string()),
            "no shadow copy share left exposed",
            format!("Get-SmbShare -CimSession '{}' -Name '*@{{*'", fs.name),
            &["I3", "F4.10"],
        ));
    }
    steps
}
