//! SPEC R15's protection group: N VMs spread over H Hyper-V 2012 R2 hosts, each with one
//! thin disk and a guest that quiesces, all backed up by one full job; the `[expect]`
//! states what a real host shows for each VM (F2's online backup through a backup
//! checkpoint: application-consistent for Windows, file-consistent for Linux, R5).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::{GenError, GroupOptions, GuestMix};
use crate::scenario::limits::{MAX_DISK_SIZE, MAX_HOSTS, MAX_RATE, MAX_VMS};
use crate::scenario::*;

/// Each NTFS volume needs 1 GB with 300 MB free to be backed up online (SPEC R1); a disk
/// holds two guest volumes (system and data), so this is the least disk that keeps every
/// VM online.
pub const MIN_DISK: Bytes = Bytes(4 << 30);

const MIB: u64 = 1 << 20;
/// The release every host runs: F2's online backup with a backup checkpoint, the flow
/// of DPM's era that R15's anchor comes from.
const HOST_VERSION: HyperVVersion = HyperVVersion::V2012R2;
/// Blocks each transaction writes before its commit record.
const TRANSACTION_BLOCKS: u32 = 4;

/// The scenario of a protection group, checked against the scenario format's rules.
pub fn protection_group(o: &GroupOptions) -> Result<Scenario, GenError> {
    check(o)?;
    let hosts: Vec<String> = (1..=o.hosts).map(|k| numbered("hv", k, o.hosts)).collect();
    let mut vms = Vec::with_capacity(o.vms);
    let mut expect = Vec::with_capacity(o.vms);
    for (i, is_linux) in linux_vms(o).into_iter().enumerate() {
        let name = numbered("vm", i + 1, o.vms.max(100));
        // Round robin: host k holds VMs k, k + H, k + 2H, …
        let host = i % o.hosts;
        let volume = volume_name(o, &hosts[host], host);
        let guest = if is_linux {
            GuestOs::Linux
        } else {
            GuestOs::Windows
        };
        vms.push(vm(o, &name, &hosts[host], volume, guest));
        expect.push(VmExpect {
            vm: name,
            method: Some(BackupMethod::Online),
            // F2.5: on 2012 R2 every online backup goes through a backup checkpoint.
            checkpoint: Some(CheckpointKind::Backup),
            consistency: Some(match guest {
                GuestOs::Linux => Consistency::File,
                _ => Consistency::Application,
            }),
            downtime: Some(Downtime {
                min: VirtualTime::default(),
                max: VirtualTime::default(),
            }),
            state_after_restore: None,
            frozen_after: Vec::new(),
            transfers: None,
            owner_node: None,
            avhdx_left: None,
            // Each node coordinates the CSV its own VMs live on (FF38's other side).
            csv_read: o.csv.then_some(CsvIo::Direct),
        });
    }
    let volumes = hosts
        .iter()
        .enumerate()
        .map(|(k, h)| volume(o, h, k))
        .collect();
    let mut covers = vec!["R15", "F2", "F2.5", "R1"];
    if vms.iter().any(|v| v.guest.os == GuestOs::Linux) {
        covers.push("R5");
    }
    if o.csv {
        covers.push("R10");
    }
    let s = Scenario {
        name: format!("r15-protection-group-{}-vms", o.vms),
        covers: covers
            .into_iter()
            .map(|c| {
                c.parse().map_err(|e: ValueError| GenError::Invalid {
                    path: "covers".into(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?,
        seed: o.seed,
        hosts: hosts
            .iter()
            .map(|h| Host {
                name: h.clone(),
                version: HOST_VERSION,
            })
            .collect(),
        cluster: o.cluster.then(|| Cluster {
            name: "clu1".into(),
            functional_level: HOST_VERSION,
            nodes: hosts.clone(),
        }),
        file_servers: Vec::new(),
        volumes,
        job: Job {
            kind: BackupKind::Full,
            mode: BackupMode::OnHost,
            proxy: None,
            vms: vms.iter().map(|v: &Vm| v.name.clone()).collect(),
            snapshot_groups: Vec::new(),
            consistency_check: None,
            recovery_points: 1,
            express_full_before_recovery_point: false,
            restore: None,
            after_owner_change: None,
            concurrency: o.concurrency,
        },
        vms,
        faults: Vec::new(),
        expect: Expect {
            outcome: Outcome::Success,
            code: None,
            event: None,
            failure_class: None,
            vms: expect,
            retries: None,
            writers: Vec::new(),
            files_left: Vec::new(),
        },
    };
    if let Some(p) = s.validate().into_iter().next() {
        return Err(GenError::Invalid {
            path: p.path,
            message: p.message,
        });
    }
    Ok(s)
}

/// The scenario file's text: a comment with the command that writes it, then the
/// scenario. The same options give the same bytes.
pub fn protection_group_text(o: &GroupOptions) -> Result<String, GenError> {
    let s = protection_group(o)?;
    let linux = s
        .vms
        .iter()
        .filter(|v| v.guest.os == GuestOs::Linux)
        .count();
    let header = [
        format!(
            "SPEC R15: a protection group of {} VMs ({} Windows, {linux} Linux) on {} Hyper-V {HOST_VERSION} hosts{}, one full backup job over all of them.",
            o.vms,
            o.vms - linux,
            o.hosts,
            match (o.cluster, o.csv) {
                (true, true) => " of one cluster, each node's VMs on the CSV it coordinates",
                (true, false) => " of one cluster, each node's VMs on its own volume",
                _ => ", each host's VMs on its own volume",
            }
        ),
        "Every VM meets R1's online conditions: F2's backup checkpoint, no downtime; Windows guests application-consistent, Linux file-consistent (R5).".into(),
        format!("Written by: {}", o.command()),
    ];
    crate::shrink::written(&s, &header).map_err(|e| GenError::Toml(e.to_string()))
}

/// Refuses options no valid scenario follows from, naming the option and its bound.
fn check(o: &GroupOptions) -> Result<(), GenError> {
    let refuse = |option, value: String, why: String| Err(GenError::Option { option, value, why });
    if o.vms == 0 || o.vms > MAX_VMS {
        return refuse("vms", o.vms.to_string(), format!("from 1 to {MAX_VMS} VMs"));
    }
    if o.hosts == 0 || o.hosts > MAX_HOSTS.min(o.vms) {
        return refuse(
            "hosts",
            o.hosts.to_string(),
            format!(
                "from 1 to {} hosts (at most {MAX_HOSTS}, and no more than the VMs)",
                MAX_HOSTS.min(o.vms)
            ),
        );
    }
    if o.disk < MIN_DISK || o.disk > MAX_DISK_SIZE {
        return refuse(
            "disk",
            o.disk.to_string(),
            format!("from {MIN_DISK} (two guest volumes of at least 1 GB each, SPEC R1) to {MAX_DISK_SIZE}"),
        );
    }
    if o.csv && !o.cluster {
        return refuse(
            "csv",
            String::new(),
            "Cluster Shared Volumes need --cluster".into(),
        );
    }
    if o.rate > MAX_RATE {
        return refuse(
            "rate",
            o.rate.to_string(),
            format!("at most {MAX_RATE} transactions per second"),
        );
    }
    for (k, w) in o.writers.iter().enumerate() {
        if o.writers[..k].contains(w) {
            return refuse("writers", w.to_string(), "named twice".into());
        }
    }
    Ok(())
}

/// `prefix` and `n`, zero-padded to the width of `last` (at least two digits), so names
/// sort in order: `hv01`, `vm001`.
fn numbered(prefix: &str, n: usize, last: usize) -> String {
    let width = last.to_string().len().max(2);
    format!("{prefix}{n:0width$}")
}

/// Which VMs run Linux: none, all, or half of them drawn from the seed.
fn linux_vms(o: &GroupOptions) -> Vec<bool> {
    match o.guest {
        GuestMix::Windows => vec![false; o.vms],
        GuestMix::Linux => vec![true; o.vms],
        GuestMix::Mixed => {
            // A seeded Fisher–Yates shuffle of the VMs; the first half run Linux.
            let mut order: Vec<usize> = (0..o.vms).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
            for k in (1..order.len()).rev() {
                let j = (rng.next_u64() % (k as u64 + 1)) as usize;
                order.swap(k, j);
            }
            let mut linux = vec![false; o.vms];
            for &i in &order[..o.vms / 2] {
                linux[i] = true;
            }
            linux
        }
    }
}

/// The volume holding host `k`'s VMs: its own `D:` or the CSV it coordinates.
fn volume_name(o: &GroupOptions, host: &str, k: usize) -> String {
    if o.csv {
        format!("C:\\ClusterStorage\\Volume{}", k + 1)
    } else {
        format!("{host}-D")
    }
}

/// Host `k`'s volume, large enough for its VMs' disks fully written and as much again
/// (R8: the AVHDX growth of a backup never runs short).
fn volume(o: &GroupOptions, host: &str, k: usize) -> Volume {
    let vms = (o.vms - k).div_ceil(o.hosts) as u64;
    let disks = vms.saturating_mul(o.disk.0);
    let spare = 1u64 << 40;
    Volume {
        name: volume_name(o, host, k),
        host: (!o.csv).then(|| host.to_string()),
        file_server: None,
        csv: o.csv,
        capacity: Bytes(disks.saturating_mul(2).saturating_add(spare)),
        free: Bytes(disks.saturating_add(spare / 2)),
        provider: ProviderKind::System,
        shadow_storage_max: None,
        coordinator: o.csv.then(|| host.to_string()),
    }
}

/// One VM: generation 1 with a SCSI controller (R7), one thin disk with a system and a
/// data volume, a guest that quiesces, transactions on the data volume.
fn vm(o: &GroupOptions, name: &str, host: &str, volume: String, os: GuestOs) -> Vm {
    let usable = o.disk.0 - MIB;
    let system = usable / 2 / MIB * MIB;
    let data = (usable - system) / MIB * MIB;
    let (fs, mounts) = match os {
        GuestOs::Linux => ([FileSystem::Ext4, FileSystem::Xfs], ["/", "/srv"]),
        _ => ([FileSystem::Ntfs, FileSystem::Ntfs], ["C:", "D:"]),
    };
    let guest_volume = |k: usize, size: u64| GuestVolume {
        mount: mounts[k].into(),
        size: Bytes(size),
        fs: fs[k],
        // 40 % free: well above R1's 300 MB.
        free: Bytes(size / 5 * 2 / MIB * MIB),
        page_file: false,
        shadow_storage: None,
        iscsi: false,
    };
    let guest = match os {
        GuestOs::Linux => Guest {
            os,
            release: Some("CentOS 7".into()),
            vss_daemon: Some(DaemonState::Running),
            writers: Vec::new(),
            frozen_by_admin: Vec::new(),
        },
        _ => Guest {
            os,
            release: Some("Windows Server 2012 R2".into()),
            vss_daemon: None,
            writers: o.writers.iter().map(|&k| writer(k)).collect(),
            frozen_by_admin: Vec::new(),
        },
    };
    Vm {
        name: name.into(),
        host: host.into(),
        generation: 1,
        config_version: ConfigVersion { major: 5, minor: 0 },
        state: VmState::Running,
        scsi_controller: true,
        checkpoint_type: CheckpointSetting::Production,
        integration_services: IntegrationServices::default(),
        disks: vec![Disk {
            file: format!("{name}.vhdx"),
            size: o.disk,
            block_size: Bytes(32 << 20),
            volume: Some(volume),
            share: None,
            dynamic: false,
            volumes: vec![guest_volume(0, system), guest_volume(1, data)],
            leftovers: Vec::new(),
        }],
        guest,
        workload: Workload {
            transactions: (o.rate > 0).then(|| Transactions {
                rate: o.rate,
                blocks: TRANSACTION_BLOCKS,
                commit_record: true,
                volume: Some(mounts[1].into()),
            }),
            metadata_writes: None,
            page_file_writes: None,
            window: o.window,
        },
        pass_through: Vec::new(),
        config_corrupt: false,
        replica: None,
        replica_state: None,
    }
}

/// A writer of `kind` under the name `vssadmin list writers` shows.
fn writer(kind: WriterKind) -> Writer {
    let name = match kind {
        WriterKind::System => "System Writer",
        WriterKind::Registry => "Registry Writer",
        WriterKind::Sql => "SqlServerWriter",
        WriterKind::Exchange => "Microsoft Exchange Writer",
    };
    Writer {
        name: name.into(),
        kind,
        fail_at: None,
        fail_with: None,
        freeze_timeout: None,
    }
}
