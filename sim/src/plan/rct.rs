//! Which change tracking an incremental backup of a VM can use (reference vss.md §4.3,
//! field failures 32 and 37): Hyper-V's resilient change tracking (RCT) only where its
//! prerequisites hold; before 2016 the requester's own change-tracking filter driver
//! (DPM's, on 2012 R2 and earlier); on a 2016+ host that misses a prerequisite, none,
//! so the next point is a full read instead of an RCT incremental.

use crate::scenario::{ConfigVersion, HyperVVersion};

/// RCT-based backups need this configuration version: vendors (Veeam) require 8.x while
/// Microsoft's feature table says 6.2 for production checkpoints; kept as one parameter.
pub const RCT_CONFIG_VERSION: ConfigVersion = ConfigVersion { major: 8, minor: 0 };

/// The change tracking of a VM's disks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeTracking {
    /// Hyper-V's resilient change tracking, queried through a reference point.
    Rct,
    /// The requester's change-tracking filter driver (hosts before 2016).
    FilterDriver,
    /// No change tracking: every point reads the disks in full; why.
    None(String),
}

impl ChangeTracking {
    pub fn name(&self) -> &'static str {
        match self {
            ChangeTracking::Rct => "RCT",
            ChangeTracking::FilterDriver => "change-tracking filter driver",
            ChangeTracking::None(_) => "none",
        }
    }

    pub fn tracks(&self) -> bool {
        !matches!(self, ChangeTracking::None(_))
    }
}

/// What the decision looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RctFacts {
    pub host: HyperVVersion,
    pub config_version: ConfigVersion,
    /// The cluster the VM's host is a node of.
    pub cluster: Option<ClusterFacts>,
    /// The VM's disk files (a `.vhd` has no RCT, a `.vhds` is a shared VHD Set).
    pub disk_files: Vec<String>,
    /// A disk reached over SMB from another machine: the RCT API answers on the local
    /// host only.
    pub remote_disk: Option<String>,
}

/// A cluster's name, functional level and every node's version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFacts {
    pub name: String,
    pub level: HyperVVersion,
    pub nodes: Vec<(String, HyperVVersion)>,
}

/// The change tracking `f` allows.
pub fn change_tracking(f: &RctFacts) -> ChangeTracking {
    if !f.host.at_least(HyperVVersion::V2016) {
        return ChangeTracking::FilterDriver;
    }
    match rct_blocker(f) {
        None => ChangeTracking::Rct,
        Some(why) => ChangeTracking::None(why),
    }
}

/// Why RCT cannot be used, if it cannot.
fn rct_blocker(f: &RctFacts) -> Option<String> {
    let cv = f.config_version;
    let min = RCT_CONFIG_VERSION;
    if (cv.major, cv.minor) < (min.major, min.minor) {
        return Some(format!("configuration version {cv} is below {min}"));
    }
    if let Some(ClusterFacts { name, level, nodes }) = &f.cluster {
        if let Some((n, v)) = nodes
            .iter()
            .find(|(_, v)| !v.at_least(HyperVVersion::V2016))
        {
            return Some(format!("cluster node {n} runs {v}, not 2016 or later"));
        }
        if !level.at_least(HyperVVersion::V2016) {
            return Some(format!(
                "cluster {name} functional level {level} is not raised to 2016"
            ));
        }
    }
    for file in &f.disk_files {
        let lower = file.to_ascii_lowercase();
        if lower.ends_with(".vhd") {
            return Some(format!("{file} is a VHD, not a VHDX"));
        }
        if lower.ends_with(".vhds") {
            return Some(format!("{file} is a shared VHD Set"));
        }
    }
    if let Some(d) = &f.remote_disk {
        return Some(format!(
            "{d}, a remote share: the RCT API answers on the local host only"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RctFacts {
        RctFacts {
            host: HyperVVersion::V2019,
            config_version: ConfigVersion { major: 9, minor: 0 },
            cluster: None,
            disk_files: vec!["web01.vhdx".into()],
            remote_disk: None,
        }
    }

    type Change = Box<dyn Fn(&mut RctFacts)>;

    /// Cluster clu1 at `level` with nodes n1, n2, ... at `nodes`.
    fn cluster(level: HyperVVersion, nodes: &[HyperVVersion]) -> ClusterFacts {
        ClusterFacts {
            name: "clu1".into(),
            level,
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("n{}", i + 1), *v))
                .collect(),
        }
    }

    #[test]
    fn a_2016_host_with_every_prerequisite_uses_rct() {
        assert_eq!(change_tracking(&facts()), ChangeTracking::Rct);
        let mut f = facts();
        f.host = HyperVVersion::V2016;
        f.config_version = RCT_CONFIG_VERSION;
        f.cluster = Some(cluster(
            HyperVVersion::V2016,
            &[HyperVVersion::V2016, HyperVVersion::V2019],
        ));
        assert_eq!(change_tracking(&f), ChangeTracking::Rct);
    }

    #[test]
    fn hosts_before_2016_use_the_filter_driver() {
        for host in [
            HyperVVersion::V2008R2,
            HyperVVersion::V2012,
            HyperVVersion::V2012R2,
        ] {
            let mut f = facts();
            f.host = host;
            assert_eq!(change_tracking(&f), ChangeTracking::FilterDriver, "{host}");
        }
    }

    #[test]
    fn each_missing_prerequisite_names_itself() {
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|f| f.config_version = ConfigVersion { major: 7, minor: 1 }),
                "configuration version 7.1 is below 8.0",
            ),
            (
                Box::new(|f| {
                    f.cluster = Some(cluster(HyperVVersion::V2012R2, &[HyperVVersion::V2016]))
                }),
                "cluster clu1 functional level 2012 R2 is not raised to 2016",
            ),
            (
                Box::new(|f| {
                    f.cluster = Some(cluster(
                        HyperVVersion::V2016,
                        &[HyperVVersion::V2016, HyperVVersion::V2012R2],
                    ))
                }),
                "cluster node n2 runs 2012 R2, not 2016 or later",
            ),
            (
                Box::new(|f| f.disk_files = vec!["old.VHD".into()]),
                "old.VHD is a VHD, not a VHDX",
            ),
            (
                Box::new(|f| f.disk_files = vec!["quorum.vhds".into()]),
                "quorum.vhds is a shared VHD Set",
            ),
            (
                Box::new(|f| f.remote_disk = Some(r"a.vhdx on \\fs1\vms".into())),
                r"a.vhdx on \\fs1\vms, a remote share: the RCT API answers on the local host only",
            ),
        ];
        for (change, why) in cases {
            let mut f = facts();
            change(&mut f);
            assert_eq!(change_tracking(&f), ChangeTracking::None(why.into()));
        }
    }
}
