//! What a generated protection group is made of.

use crate::scenario::{Bytes, Concurrency, WorkloadWindow, WriterKind};

/// The guests of a protection group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMix {
    /// Windows guests with VSS writers: application-consistent online backups (F2).
    Windows,
    /// Linux guests with `hv_vss_daemon`: file-consistent online backups (R5).
    Linux,
    /// Half of each; which VM runs which is drawn from the seed.
    Mixed,
}

impl GuestMix {
    pub const NAMES: &'static str = "windows, linux, mixed";

    pub fn as_str(self) -> &'static str {
        match self {
            GuestMix::Windows => "windows",
            GuestMix::Linux => "linux",
            GuestMix::Mixed => "mixed",
        }
    }
}

impl std::str::FromStr for GuestMix {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "windows" => Ok(GuestMix::Windows),
            "linux" => Ok(GuestMix::Linux),
            "mixed" => Ok(GuestMix::Mixed),
            _ => Err(format!(
                "unknown guest mix {text:?} (expected one of {})",
                GuestMix::NAMES
            )),
        }
    }
}

/// A protection group as `hvsim gen protection-group` is asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOptions {
    pub vms: usize,
    pub hosts: usize,
    /// Size of each VM's one virtual disk (thin: the world populates it sparsely).
    pub disk: Bytes,
    /// The hosts are the nodes of one failover cluster.
    pub cluster: bool,
    /// Each node's VMs live on a Cluster Shared Volume that node coordinates (R10).
    pub csv: bool,
    pub guest: GuestMix,
    /// The application writers of every Windows guest, in this order.
    pub writers: Vec<WriterKind>,
    /// Transactions per virtual second of every VM's workload (0: an idle group).
    pub rate: u32,
    /// When the workloads write: only while the job is at their VM (the default: a VM
    /// waiting for its turn costs nothing, issue 11 §3), or for the whole job.
    pub window: WorkloadWindow,
    /// How many host backups run at once (serial by default).
    pub concurrency: Concurrency,
    /// The scenario's seed; it also draws which VMs of a mixed group run Linux.
    pub seed: u64,
}

impl Default for GroupOptions {
    /// SPEC R15's anchor: 800 VMs of 100 GiB (on 8 hosts), Windows guests with the
    /// system, registry and SQL writers, 40 transactions per second.
    fn default() -> Self {
        GroupOptions {
            vms: 800,
            hosts: 8,
            disk: Bytes(100 << 30),
            cluster: false,
            csv: false,
            guest: GuestMix::Windows,
            writers: vec![WriterKind::System, WriterKind::Registry, WriterKind::Sql],
            rate: 40,
            window: WorkloadWindow::Backup,
            concurrency: Concurrency::default(),
            seed: 1,
        }
    }
}

impl GroupOptions {
    /// The options as a command line that writes the same file.
    pub fn command(&self) -> String {
        let mut c = format!(
            "hvsim gen protection-group --vms {} --hosts {} --disk \"{}\"",
            self.vms, self.hosts, self.disk
        );
        if self.cluster {
            c.push_str(" --cluster");
        }
        if self.csv {
            c.push_str(" --csv");
        }
        let writers: Vec<&str> = self.writers.iter().map(|w| w.as_str()).collect();
        c.push_str(&format!(
            " --guest {} --writers {} --rate {} --window {} --seed {}",
            self.guest.as_str(),
            if writers.is_empty() {
                "none".to_string()
            } else {
                writers.join(",")
            },
            self.rate,
            self.window,
            self.seed
        ));
        c
    }
}
