//! F5.T: the job's troubleshooting class, derived from the pattern of its failures across
//! VMs and hosts, not from one failure's own tag. Every VM on one host failing points at
//! the host (class 1), one VM among others that were backed up at its guest (class 2), a
//! failure during the data transfer at the communication (class 3), failures on several
//! hosts at the backup server's side of the communication (class 4). Where the pattern
//! cannot tell (the job's only VM on its host failed), the failure's own side decides.

use crate::protocol::JobStep;
use crate::scenario::FailureClass;

/// One VM of the job, as the classification sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmOutcome<'a> {
    pub vm: &'a str,
    pub host: &'a str,
    /// The volumes holding its disks (a CSV or share is shared by several hosts).
    pub volumes: Vec<&'a str>,
    /// Its first failure: the step, and the side the failure itself names.
    pub failed: Option<(JobStep, FailureClass)>,
}

/// The job's class and the pattern it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub class: FailureClass,
    /// E.g. "3 VMs on 2 hosts failed at the transfer".
    pub evidence: String,
}

/// The class's number in SPEC F5.T's list.
pub fn number(class: FailureClass) -> u8 {
    match class {
        FailureClass::Host => 1,
        FailureClass::Guest => 2,
        FailureClass::Communication => 3,
        FailureClass::Server => 4,
    }
}

fn vms(n: usize) -> String {
    format!("{n} VM{}", if n == 1 { "" } else { "s" })
}

/// The job's class from its VMs' outcomes; `None` when no VM failed.
pub fn classify(job: &[VmOutcome<'_>]) -> Option<Classified> {
    let failed: Vec<&VmOutcome<'_>> = job.iter().filter(|v| v.failed.is_some()).collect();
    let first = failed.first()?;
    let mut steps: Vec<JobStep> = failed
        .iter()
        .filter_map(|v| v.failed)
        .map(|f| f.0)
        .collect();
    steps.sort();
    steps.dedup();
    let at: Vec<&str> = steps.iter().map(|s| s.name()).collect();
    let at = at.join(" and ");
    let mut hosts: Vec<&str> = failed.iter().map(|v| v.host).collect();
    hosts.sort();
    hosts.dedup();
    let found = |class, evidence: String| Some(Classified { class, evidence });
    if hosts.len() > 1 {
        let n = failed.len();
        // Hosts that failed at the snapshot of one shared volume (a CSV) failed through
        // their shared storage, a host-side cause; anything else common to several hosts
        // is the backup server's side (or the domain controller).
        let shared = first
            .volumes
            .iter()
            .find(|vol| failed.iter().all(|v| v.volumes.contains(vol)));
        if let (Some(vol), false) = (shared, steps.contains(&JobStep::Transfer)) {
            return found(
                FailureClass::Host,
                format!(
                    "{} on {} hosts failed at {at}, all on the shared volume {vol}",
                    vms(n),
                    hosts.len()
                ),
            );
        }
        return found(
            FailureClass::Server,
            format!("{} on {} hosts failed at {at}", vms(n), hosts.len()),
        );
    }
    let host = first.host;
    let names: Vec<&str> = failed.iter().map(|v| v.vm).collect();
    let names = names.join(", ");
    let transfer_cut = failed
        .iter()
        .any(|v| v.failed == Some((JobStep::Transfer, FailureClass::Communication)));
    if transfer_cut {
        return found(
            FailureClass::Communication,
            format!("{names} on {host} failed at the transfer, not in VSS"),
        );
    }
    let on_host = job.iter().filter(|v| v.host == host).count();
    if failed.len() < on_host {
        return found(
            FailureClass::Guest,
            format!(
                "{} of {} on {host} failed at {at} ({names}); the others were backed up",
                failed.len(),
                vms(on_host)
            ),
        );
    }
    if on_host > 1 {
        return found(
            FailureClass::Host,
            format!("every VM on {host} ({on_host}) failed at {at}"),
        );
    }
    // One VM alone on its host: host and guest look the same from outside.
    let side = first.failed.map_or(FailureClass::Host, |f| f.1);
    found(
        side,
        format!("{names}, the job's only VM on {host}, failed at {at}; its failure names the {side} side"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::*;
    use JobStep::*;

    fn vm<'a>(
        vm: &'a str,
        host: &'a str,
        failed: Option<(JobStep, FailureClass)>,
    ) -> VmOutcome<'a> {
        VmOutcome {
            vm,
            host,
            volumes: vec![if host == "hv1" { "hv1-D" } else { "hv2-D" }],
            failed,
        }
    }

    fn class(job: &[VmOutcome<'_>]) -> (FailureClass, String) {
        let c = classify(job).expect("a failure");
        (c.class, c.evidence)
    }

    #[test]
    fn no_failure_no_class() {
        assert_eq!(classify(&[vm("a", "hv1", None)]), None);
        assert_eq!(classify(&[]), None);
    }

    /// Class 1: every VM on one host fails, whatever each failure's own tag says.
    #[test]
    fn every_vm_on_one_host_is_the_host() {
        let job = [
            vm("a", "hv1", Some((Snapshot, Guest))),
            vm("b", "hv1", Some((Snapshot, Guest))),
            vm("c", "hv2", None),
        ];
        assert_eq!(
            class(&job),
            (Host, "every VM on hv1 (2) failed at the snapshot".into())
        );
    }

    /// Class 2: one VM among others backed up on its host, whatever its own tag says.
    #[test]
    fn a_single_vm_among_others_is_the_guest() {
        let job = [
            vm("a", "hv1", None),
            vm("b", "hv1", Some((Snapshot, Host))),
            vm("c", "hv1", None),
        ];
        assert_eq!(
            class(&job),
            (
                Guest,
                "1 of 3 VMs on hv1 failed at the snapshot (b); the others were backed up".into()
            )
        );
    }

    /// Class 3: the connection dropped during one host's transfer.
    #[test]
    fn a_transfer_cut_on_one_host_is_communication() {
        let job = [
            vm("a", "hv1", Some((Transfer, Communication))),
            vm("b", "hv1", Some((Transfer, Communication))),
        ];
        assert_eq!(
            class(&job),
            (
                Communication,
                "a, b on hv1 failed at the transfer, not in VSS".into()
            )
        );
    }

    /// Class 4: failures on several hosts at once, at the transfer or at the snapshot of
    /// volumes they do not share.
    #[test]
    fn several_hosts_are_the_server_side() {
        let job = [
            vm("a", "hv1", Some((Transfer, Communication))),
            vm("b", "hv1", Some((Transfer, Communication))),
            vm("c", "hv2", Some((Transfer, Communication))),
        ];
        assert_eq!(
            class(&job),
            (Server, "3 VMs on 2 hosts failed at the transfer".into())
        );
        let job = [
            vm("a", "hv1", Some((Snapshot, Host))),
            vm("c", "hv2", Some((Snapshot, Guest))),
        ];
        assert_eq!(
            class(&job),
            (Server, "2 VMs on 2 hosts failed at the snapshot".into())
        );
    }

    /// Several hosts failing at the snapshot of the one CSV they share fail through their
    /// shared storage: the host side, not the server.
    #[test]
    fn several_hosts_on_one_failing_csv_are_the_host_side() {
        let csv = r"C:\ClusterStorage\Volume1";
        let on_csv = |name, host| VmOutcome {
            vm: name,
            host,
            volumes: vec![csv],
            failed: Some((Snapshot, Host)),
        };
        let job = [on_csv("a", "node1"), on_csv("b", "node2")];
        assert_eq!(
            class(&job),
            (
                Host,
                format!("2 VMs on 2 hosts failed at the snapshot, all on the shared volume {csv}")
            )
        );
        // At the transfer the shared volume is no excuse.
        let mut cut = job.clone();
        for v in &mut cut {
            v.failed = Some((Transfer, Communication));
        }
        assert_eq!(class(&cut).0, Server);
    }

    /// The job's only VM on its host: the pattern cannot tell, its own side decides.
    #[test]
    fn a_lone_vm_keeps_its_own_side() {
        for side in [Host, Guest] {
            let job = [vm("a", "hv1", Some((Snapshot, side))), vm("b", "hv2", None)];
            assert_eq!(
                class(&job),
                (
                    side,
                    format!(
                        "a, the job's only VM on hv1, failed at the snapshot; its failure \
                         names the {side} side"
                    )
                )
            );
        }
    }

    #[test]
    fn classes_are_numbered_as_spec_lists_them() {
        assert_eq!(
            [Host, Guest, Communication, Server].map(number),
            [1, 2, 3, 4]
        );
    }
}
