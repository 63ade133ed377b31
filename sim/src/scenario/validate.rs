//! Semantic checks: every name refers to something declared, and the world is possible.
//! The checks do not decide what the simulator will do (eligibility, fallbacks); they only
//! reject scenarios that cannot describe a real setup.

use super::codes::Hresult;
use super::error::Problem;
use super::file_name::volume_folder;
use super::file_name::{file_name_problem, windows_folder, MAX_NAME_UTF16, MAX_PATH_UTF16};
use super::layout::MIN_GUEST_VOLUME;
use super::limits::*;
use super::model::*;
use super::units::{Bytes, VirtualTime};
use std::collections::{BTreeMap, BTreeSet};

/// The codes a background merge fails with (Hyper-V-VMMS 19100, field failures 24, 25).
const MERGE_FAILURE_CODES: [Hresult; 2] =
    [Hresult::EAccessDenied, Hresult::ErrorFileSystemLimitation];

/// The codes Vmms fails a checkpoint's files with (field failures 26, 27).
const CHECKPOINT_FAILURE_CODES: [Hresult; 2] =
    [Hresult::ErrorFileNotFound, Hresult::ErrorSharingViolation];

/// Checks of a valid scenario that need more than the scenario (a world built from it).
pub type WorldCheck<'a> = &'a dyn Fn(&Scenario) -> Vec<Problem>;

/// No check beyond the scenario's own rules.
pub fn no_world_check(_: &Scenario) -> Vec<Problem> {
    Vec::new()
}

impl Scenario {
    /// Every semantic problem, each with the field path it concerns; empty when valid.
    pub fn validate(&self) -> Vec<Problem> {
        let mut check = Checker::default();
        check.scenario(self);
        check.problems
    }

    /// [`Scenario::validate`], then, for a valid scenario only, the problems `world`
    /// finds (a run passes the checks that need a world built, such as what its volumes
    /// can hold: the layers above the scenario know how to build one).
    pub fn problems(&self, world: WorldCheck<'_>) -> Vec<Problem> {
        let problems = self.validate();
        if !problems.is_empty() {
            return problems;
        }
        world(self)
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Names in `names` must be unique; reports each repeat at `path(i)`.
    fn unique<'a>(
        &mut self,
        what: &str,
        names: impl IntoIterator<Item = &'a str>,
        path: impl Fn(usize) -> String,
    ) {
        let mut seen = BTreeSet::new();
        for (i, name) in names.into_iter().enumerate() {
            if name.is_empty() {
                self.problem(path(i), format!("{what} name is empty"));
            } else if !seen.insert(name) {
                self.problem(path(i), format!("{what} {name:?} is declared twice"));
            }
        }
    }

    /// A list longer than a scenario may ask for.
    fn count(&mut self, path: impl Into<String>, what: &str, n: usize, max: usize) {
        if n > max {
            self.problem(path, format!("{n} {what}; a scenario has at most {max}"));
        }
    }

    /// A name that becomes a file or folder name (see `file_name`); empty names are
    /// reported by `unique`.
    fn file_name(&mut self, path: impl Into<String>, what: &str, name: &str) {
        if name.is_empty() {
            return;
        }
        if let Some(problem) = file_name_problem(name) {
            self.problem(path, format!("{what} {problem}"));
        }
    }

    /// A host, cluster or file server name: a NetBIOS computer name (it appears in
    /// `\\server\share` paths).
    fn computer_name(&mut self, path: impl Into<String>, what: &str, name: &str) {
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name.is_empty() && (!plain || name.len() > MAX_COMPUTER_NAME) {
            self.problem(
                path,
                format!(
                    "{what} {name:?} is not a computer name (letters, digits, '-' and '_', at most {MAX_COMPUTER_NAME})"
                ),
            );
        }
    }

    /// Free text and names that are not file names: printable, and not a book.
    fn text(&mut self, path: impl Into<String>, what: &str, text: &str) {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            self.problem(
                path,
                format!("{what} has {chars} characters; at most {MAX_TEXT_CHARS}"),
            );
        } else if let Some(c) = text.chars().find(|c| c.is_control()) {
            self.problem(
                path,
                format!(
                    "{what} {text:?} holds the control character U+{:04X}",
                    u32::from(c)
                ),
            );
        }
    }

    fn size_at_most(&mut self, path: impl Into<String>, what: &str, size: Bytes, max: Bytes) {
        if size > max {
            self.problem(path, format!("{what} {size} is too large; at most {max}"));
        }
    }

    fn duration_at_most(&mut self, path: impl Into<String>, what: &str, t: VirtualTime) {
        if t > MAX_DURATION {
            self.problem(
                path,
                format!("{what} {t} is too long; at most {MAX_DURATION}"),
            );
        }
    }

    /// Files of one volume have distinct names, ignoring case as Windows does; each
    /// volume gets its own folder on this machine.
    fn files_per_volume(&mut self, s: &Scenario) {
        let mut folders: BTreeMap<String, usize> = BTreeMap::new();
        for (i, v) in s.volumes.iter().enumerate() {
            let folder = volume_folder(&v.name).to_lowercase();
            if v.name.is_empty() {
                continue;
            }
            if let Some(&first) = folders.get(&folder) {
                self.problem(
                    format!("volumes[{i}].name"),
                    format!(
                        "volume {:?} would share the folder {:?} with volume {:?} (names that differ only in case or in characters other than letters, digits, '-' and '_')",
                        v.name,
                        volume_folder(&v.name),
                        s.volumes[first].name
                    ),
                );
            } else {
                folders.insert(folder, i);
            }
        }
        // (volume, file in lower case) → (VM index, file as written, its path)
        let mut files: BTreeMap<(String, String), (usize, String, String)> = BTreeMap::new();
        for (i, vm) in s.vms.iter().enumerate() {
            for (j, d) in vm.disks.iter().enumerate() {
                let volume = match (&d.volume, &d.share) {
                    (Some(v), None) => v.clone(),
                    (None, Some(unc)) => match share_volume(s, unc) {
                        Ok(v) => v.name.clone(),
                        Err(_) => continue,
                    },
                    _ => continue,
                };
                if d.file.is_empty() {
                    continue;
                }
                let path = format!("vms[{i}].disks[{j}].file");
                match files.get(&(volume.clone(), d.file.to_lowercase())) {
                    None => {
                        files.insert((volume, d.file.to_lowercase()), (i, d.file.clone(), path));
                    }
                    // The same name twice in one VM: `unique` reports it.
                    Some((first_vm, first_file, _)) if *first_vm == i && first_file == &d.file => {}
                    Some((_, _, first)) => {
                        let first = first.clone();
                        self.problem(
                            path,
                            format!(
                                "disk file {:?} is also {first} on volume {volume:?} (the files of a volume have distinct names, ignoring case)",
                                d.file
                            ),
                        );
                    }
                }
            }
        }
    }

    fn scenario(&mut self, s: &Scenario) {
        if s.name.is_empty() {
            self.problem("name", "name is empty");
        }
        self.text("name", "the scenario name", &s.name);
        self.count("hosts", "hosts", s.hosts.len(), MAX_HOSTS);
        self.count("vms", "VMs", s.vms.len(), MAX_VMS);
        self.count("faults", "faults", s.faults.len(), MAX_FAULTS);
        for (i, h) in s.hosts.iter().enumerate() {
            self.computer_name(format!("hosts[{i}].name"), "host name", &h.name);
        }
        for (i, f) in s.file_servers.iter().enumerate() {
            self.computer_name(
                format!("file_servers[{i}].name"),
                "file server name",
                &f.name,
            );
        }
        for (i, v) in s.volumes.iter().enumerate() {
            self.text(format!("volumes[{i}].name"), "volume name", &v.name);
        }
        for (i, vm) in s.vms.iter().enumerate() {
            self.file_name(format!("vms[{i}].name"), "VM name", &vm.name);
        }
        self.files_per_volume(s);
        if s.covers.is_empty() {
            self.problem("covers", "covers names no SPEC item");
        }
        self.unique("covered item", s.covers.iter().map(|c| c.as_str()), |i| {
            format!("covers[{i}]")
        });
        if s.hosts.is_empty() {
            self.problem("hosts", "no host declared");
        }
        self.unique("host", s.hosts.iter().map(|h| h.name.as_str()), |i| {
            format!("hosts[{i}].name")
        });
        self.unique(
            "file server",
            s.file_servers.iter().map(|f| f.name.as_str()),
            |i| format!("file_servers[{i}].name"),
        );
        self.unique("volume", s.volumes.iter().map(|v| v.name.as_str()), |i| {
            format!("volumes[{i}].name")
        });
        self.unique("VM", s.vms.iter().map(|v| v.name.as_str()), |i| {
            format!("vms[{i}].name")
        });
        if let Some(cluster) = &s.cluster {
            self.cluster(s, cluster);
        }
        for (i, server) in s.file_servers.iter().enumerate() {
            self.file_server(s, i, server);
        }
        for (i, volume) in s.volumes.iter().enumerate() {
            self.volume(s, i, volume);
        }
        for (i, vm) in s.vms.iter().enumerate() {
            self.vm(s, i, vm);
        }
        self.job(s);
        for (i, fault) in s.faults.iter().enumerate() {
            self.fault(s, i, fault);
            // The same fault twice fires once: a second copy only misleads the reader.
            if let Some(j) = s.faults[..i].iter().position(|f| f == fault) {
                self.problem(
                    format!("faults[{i}]"),
                    format!("the same fault as faults[{j}]"),
                );
            }
        }
        self.expect(s);
    }

    fn cluster(&mut self, s: &Scenario, cluster: &Cluster) {
        self.computer_name("cluster.name", "cluster name", &cluster.name);
        if cluster.nodes.is_empty() {
            self.problem("cluster.nodes", "a cluster has at least one node");
        }
        self.unique(
            "cluster node",
            cluster.nodes.iter().map(|n| n.as_str()),
            |i| format!("cluster.nodes[{i}]"),
        );
        for (i, node) in cluster.nodes.iter().enumerate() {
            match s.host(node) {
                None => self.problem(format!("cluster.nodes[{i}]"), no_such("host", node)),
                Some(host) if host.version < cluster.functional_level => self.problem(
                    "cluster.functional_level",
                    format!(
                        "functional level {} is above node {:?} ({})",
                        cluster.functional_level, host.name, host.version
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    fn file_server(&mut self, s: &Scenario, i: usize, server: &FileServer) {
        if s.host(&server.name).is_some() {
            self.problem(
                format!("file_servers[{i}].name"),
                format!("{:?} is also a Hyper-V host", server.name),
            );
        }
        self.unique(
            "share",
            server.shares.iter().map(|sh| sh.name.as_str()),
            |j| format!("file_servers[{i}].shares[{j}].name"),
        );
        for (j, share) in server.shares.iter().enumerate() {
            self.file_name(
                format!("file_servers[{i}].shares[{j}].name"),
                "share name",
                &share.name,
            );
            let path = format!("file_servers[{i}].shares[{j}].volume");
            match s.volume(&share.volume) {
                None => self.problem(path, no_such("volume", &share.volume)),
                Some(v) if v.file_server.as_deref() != Some(server.name.as_str()) => self.problem(
                    path,
                    format!(
                        "volume {:?} is not on file server {:?}",
                        v.name, server.name
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    fn volume(&mut self, s: &Scenario, i: usize, v: &Volume) {
        let at = |field: &str| format!("volumes[{i}].{field}");
        let owners = usize::from(v.host.is_some())
            + usize::from(v.file_server.is_some())
            + usize::from(v.csv);
        if owners != 1 {
            self.problem(
                at("name"),
                "a volume has exactly one of host, file_server, csv = true",
            );
        }
        if let Some(host) = &v.host {
            if s.host(host).is_none() {
                self.problem(at("host"), no_such("host", host));
            }
        }
        if let Some(server) = &v.file_server {
            if !s.file_servers.iter().any(|f| &f.name == server) {
                self.problem(at("file_server"), no_such("file server", server));
            }
        }
        if v.csv && s.cluster.is_none() {
            self.problem(at("csv"), "a Cluster Shared Volume needs a [cluster]");
        }
        if let Some(c) = &v.coordinator {
            // Field failure 38: a CSV's coordinator is one of its cluster's nodes.
            if !v.csv {
                self.problem(
                    at("coordinator"),
                    "only a Cluster Shared Volume has a coordinator",
                );
            } else if s.cluster.as_ref().is_some_and(|cl| !cl.nodes.contains(c)) {
                self.problem(
                    at("coordinator"),
                    format!("{c:?} is not a node of the cluster"),
                );
            }
        }
        self.size_at_most(at("capacity"), "capacity", v.capacity, MAX_VOLUME_SIZE);
        if v.free > v.capacity {
            self.problem(
                at("free"),
                format!("free space {} exceeds capacity {}", v.free, v.capacity),
            );
        }
        if let Some(max) = v.shadow_storage_max {
            self.size_at_most(at("shadow_storage_max"), "shadow storage", max, v.capacity);
        }
    }

    fn vm(&mut self, s: &Scenario, i: usize, vm: &Vm) {
        let at = |field: &str| format!("vms[{i}].{field}");
        self.unique(
            "pass-through disk",
            vm.pass_through.iter().map(|p| p.name.as_str()),
            |k| format!("vms[{i}].pass_through[{k}].name"),
        );
        let host = s.host(&vm.host);
        if host.is_none() {
            self.problem(at("host"), no_such("host", &vm.host));
        }
        self.replica(i, vm);
        match vm.generation {
            1 => {}
            2 => {
                if let Some(h) = host.filter(|h| h.version < HyperVVersion::V2012R2) {
                    self.problem(
                        at("generation"),
                        format!(
                            "generation 2 VMs need Hyper-V 2012 R2 or later, host {:?} runs {}",
                            h.name, h.version
                        ),
                    );
                }
                if !vm.scsi_controller {
                    self.problem(
                        at("scsi_controller"),
                        "a generation 2 VM always has a SCSI controller",
                    );
                }
            }
            other => self.problem(
                at("generation"),
                format!("generation {other} does not exist (expected 1 or 2)"),
            ),
        }
        if let (Some(h), Some(ic)) = (host, vm.integration_services.version) {
            if ic > h.version {
                self.problem(
                    at("integration_services.version"),
                    format!(
                        "integration services {ic} are newer than host {:?} ({})",
                        h.name, h.version
                    ),
                );
            }
        }
        if vm.disks.is_empty() {
            self.problem(at("disks"), "a VM has at least one disk");
        }
        self.count(at("disks"), "disks", vm.disks.len(), MAX_DISKS_PER_VM);
        self.unique("disk", vm.disks.iter().map(|d| d.file.as_str()), |j| {
            format!("vms[{i}].disks[{j}].file")
        });
        let mounts: Vec<(usize, usize, &GuestVolume)> = vm
            .disks
            .iter()
            .enumerate()
            .flat_map(|(j, d)| d.volumes.iter().enumerate().map(move |(k, gv)| (j, k, gv)))
            .collect();
        {
            let mut seen = BTreeSet::new();
            for (j, k, gv) in &mounts {
                if !seen.insert(gv.mount.as_str()) {
                    self.problem(
                        format!("vms[{i}].disks[{j}].volumes[{k}].mount"),
                        format!("guest volume {:?} is declared twice", gv.mount),
                    );
                }
            }
        }
        for (j, disk) in vm.disks.iter().enumerate() {
            self.disk(s, vm, i, j, disk);
        }
        let on_share = vm.disks.iter().filter(|d| d.share.is_some()).count();
        if on_share != 0 && on_share != vm.disks.len() {
            self.problem(
                at("disks"),
                "a VM's disks are all local or all on SMB shares, never split (R10)",
            );
        }
        for (j, k, gv) in &mounts {
            if let Some(target) = &gv.shadow_storage {
                if !mounts.iter().any(|(_, _, other)| &other.mount == target) {
                    self.problem(
                        format!("vms[{i}].disks[{j}].volumes[{k}].shadow_storage"),
                        no_such("guest volume", target),
                    );
                }
            }
        }
        self.guest(i, vm, &mounts);
        self.workload(i, vm, &mounts);
    }

    fn disk(&mut self, s: &Scenario, vm: &Vm, i: usize, j: usize, disk: &Disk) {
        let at = |field: &str| format!("vms[{i}].disks[{j}].{field}");
        let bs = disk.block_size.0;
        if !bs.is_power_of_two() || !((1 << 20)..=(256 << 20)).contains(&bs) {
            self.problem(
                at("block_size"),
                format!(
                    "VHDX block size {} is not a power of two from 1 MiB to 256 MiB",
                    disk.block_size
                ),
            );
        }
        if disk.size.0 == 0 {
            self.problem(at("size"), "disk size is zero");
        }
        self.size_at_most(at("size"), "disk size", disk.size, MAX_DISK_SIZE);
        self.disk_format(s, vm, i, j, disk);
        if bs.is_power_of_two() && disk.size.0.div_ceil(bs) > MAX_DISK_BLOCKS {
            self.problem(
                at("block_size"),
                format!(
                    "disk size {} in blocks of {} is {} blocks; a disk has at most {MAX_DISK_BLOCKS} (choose a larger block_size)",
                    disk.size,
                    disk.block_size,
                    disk.size.0.div_ceil(bs)
                ),
            );
        }
        self.disk_file_name(vm, i, j, disk);
        self.count(
            at("volumes"),
            "guest volumes",
            disk.volumes.len(),
            MAX_GUEST_VOLUMES_PER_DISK,
        );
        let home = match (&disk.volume, &disk.share) {
            (Some(_), Some(_)) | (None, None) => {
                self.problem(at("file"), "a disk lives on exactly one of volume, share");
                None
            }
            (Some(name), None) => match s.volume(name) {
                None => {
                    self.problem(at("volume"), no_such("volume", name));
                    None
                }
                Some(v) => {
                    if s.host(&vm.host).is_some() {
                        self.reachable(s, vm, v, at("volume"));
                    }
                    Some((v, "volume"))
                }
            },
            (None, Some(unc)) => match share_volume(s, unc) {
                Ok(v) => Some((v, "share")),
                Err(message) => {
                    self.problem(at("share"), message);
                    None
                }
            },
        };
        if let Some((volume, field)) = home {
            if disk.size > volume.capacity {
                self.problem(
                    at(field),
                    format!(
                        "disk {:?} ({}) is larger than volume {:?} ({})",
                        disk.file, disk.size, volume.name, volume.capacity
                    ),
                );
            }
        }
        let mut total: u64 = 0;
        for (k, gv) in disk.volumes.iter().enumerate() {
            total = total.saturating_add(gv.size.0);
            if gv.free > gv.size {
                self.problem(
                    format!("vms[{i}].disks[{j}].volumes[{k}].free"),
                    format!("free space {} exceeds size {}", gv.free, gv.size),
                );
            }
        }
        if total > disk.size.0 {
            self.problem(
                at("volumes"),
                format!("guest volumes add up to more than the disk ({})", disk.size),
            );
        } else if disk.size.0 > 0 && disk.size <= MAX_DISK_SIZE {
            self.guest_spans(i, j, disk);
        }
    }

    /// R12: a replica VM does not run on its replica server (so its backups are
    /// crash-consistent copies), and only a replica has a replication state.
    fn replica(&mut self, i: usize, vm: &Vm) {
        match (vm.replica, vm.replica_state) {
            (Some(ReplicaRole::Replica), _) if vm.state != VmState::Off => self.problem(
                format!("vms[{i}].replica"),
                "a replica VM does not run on its replica server: give it state = \"off\" (R12)",
            ),
            (Some(ReplicaRole::Replica), _) | (_, None) => {}
            (_, Some(_)) => self.problem(
                format!("vms[{i}].replica_state"),
                "only a replica VM (replica = \"replica\") has a replication state (R12)",
            ),
        }
    }

    /// The disk's format (SPEC F1 note): a `.vhd` is a VHD, whose size is whole sectors up
    /// to 2040 GiB; a 2008 R2 host knows no other format.
    fn disk_format(&mut self, s: &Scenario, vm: &Vm, i: usize, j: usize, disk: &Disk) {
        let at = |field: &str| format!("vms[{i}].disks[{j}].{field}");
        if disk.is_vhd() {
            if !disk.size.0.is_multiple_of(512) {
                self.problem(
                    at("size"),
                    format!(
                        "a VHD's size is whole 512-byte sectors; {} is not",
                        disk.size
                    ),
                );
            }
            self.size_at_most(at("size"), "VHD disk size", disk.size, MAX_VHD_SIZE);
        } else if s
            .host(&vm.host)
            .is_some_and(|h| h.version == HyperVVersion::V2008R2)
        {
            self.problem(
                at("file"),
                format!(
                    "Hyper-V 2008 R2 has no VHDX: its disks are VHD files, so name {:?} with .vhd",
                    disk.file
                ),
            );
        }
    }

    /// The disk's file name, and the names Hyper-V and a restore derive from it: the
    /// checkpoint files `<disk>_<GUID>.avhdx` and an alternate-location restore's
    /// `<VM>-<disk>`.
    fn disk_file_name(&mut self, vm: &Vm, i: usize, j: usize, disk: &Disk) {
        let path = format!("vms[{i}].disks[{j}].file");
        let before = self.problems.len();
        self.file_name(path.clone(), "disk file", &disk.file);
        if self.problems.len() > before || disk.file.is_empty() {
            return;
        }
        // "_" + GUID (36) + ".avhdx" replaces at most the ".vhdx" of the name.
        let checkpoint = disk.file.encode_utf16().count() + 1 + 36 + ".avhdx".len();
        let restored = format!("{}-{}", vm.name, disk.file).encode_utf16().count();
        if checkpoint > MAX_NAME_UTF16 || restored > MAX_NAME_UTF16 {
            self.problem(
                path,
                format!(
                    "disk file {:?} is too long for the names derived from it (checkpoint files add 43 characters, a restore prefixes the VM name); a file name has at most {MAX_NAME_UTF16} UTF-16 units",
                    disk.file
                ),
            );
            return;
        }
        // Where the volume or share is a Windows path, the checkpoint files' full path
        // must fit MAX_PATH too.
        let folder = disk
            .volume
            .as_deref()
            .and_then(windows_folder)
            .or(disk.share.as_deref().and_then(windows_folder));
        if let Some(folder) = folder {
            let full = folder.encode_utf16().count() + 1 + checkpoint;
            if full > MAX_PATH_UTF16 {
                self.problem(
                    path,
                    format!(
                        "disk file {:?} in {folder:?} gives checkpoint file paths of {full} UTF-16 units; a Windows path has at most {MAX_PATH_UTF16}",
                        disk.file
                    ),
                );
            }
        }
    }

    /// Every guest volume gets the room it needs where the build will place it.
    fn guest_spans(&mut self, i: usize, j: usize, disk: &Disk) {
        let min = Bytes(MIN_GUEST_VOLUME);
        for (k, span) in disk.guest_spans().into_iter().enumerate() {
            if span.len >= MIN_GUEST_VOLUME {
                continue;
            }
            let got = Bytes(span.len);
            match disk.volumes.get(k) {
                Some(gv) => self.problem(
                    format!("vms[{i}].disks[{j}].volumes[{k}].size"),
                    format!(
                        "guest volume {:?} gets {got} of the disk (its size in whole MiB, from {} on); a guest volume needs at least {min}",
                        gv.mount,
                        Bytes(span.start)
                    ),
                ),
                None => self.problem(
                    format!("vms[{i}].disks[{j}].size"),
                    format!(
                        "disk size {} leaves {got} for its volume after the first MiB; a guest volume needs at least {min}",
                        disk.size
                    ),
                ),
            }
        }
    }

    /// A VM's host reaches its own local volumes and, as a cluster node, the CSVs.
    fn reachable(&mut self, s: &Scenario, vm: &Vm, v: &Volume, path: String) {
        let ok = if v.csv {
            s.cluster
                .as_ref()
                .is_some_and(|c| c.nodes.iter().any(|n| n == &vm.host))
        } else if let Some(owner) = &v.host {
            owner == &vm.host
        } else {
            false
        };
        if !ok {
            let message = if v.file_server.is_some() {
                format!(
                    "volume {:?} belongs to a file server; name the share (share = '\\\\server\\share')",
                    v.name
                )
            } else {
                format!(
                    "volume {:?} is not reachable from host {:?}",
                    v.name, vm.host
                )
            };
            self.problem(path, message);
        }
    }

    fn guest(&mut self, i: usize, vm: &Vm, mounts: &[(usize, usize, &GuestVolume)]) {
        let at = |field: &str| format!("vms[{i}].guest.{field}");
        let os = vm.guest.os;
        if os != GuestOs::Windows && !vm.guest.writers.is_empty() {
            self.problem(
                at("writers"),
                format!("VSS writers run only in Windows guests, this guest is {os}"),
            );
        }
        if os != GuestOs::Linux && vm.guest.vss_daemon.is_some() {
            self.problem(
                at("vss_daemon"),
                format!("hv_vss_daemon runs only in Linux guests, this guest is {os}"),
            );
        }
        self.linux_daemon(i, vm, mounts);
        self.unique(
            "writer",
            vm.guest.writers.iter().map(|w| w.name.as_str()),
            |k| format!("vms[{i}].guest.writers[{k}].name"),
        );
        if let Some(release) = &vm.guest.release {
            self.text(at("release"), "release", release);
        }
        self.count(
            at("writers"),
            "writers",
            vm.guest.writers.len(),
            MAX_WRITERS_PER_GUEST,
        );
        for (j, k, gv) in mounts {
            self.text(
                format!("vms[{i}].disks[{j}].volumes[{k}].mount"),
                "mount",
                &gv.mount,
            );
        }
        for (k, writer) in vm.guest.writers.iter().enumerate() {
            let wat = |field: &str| format!("vms[{i}].guest.writers[{k}].{field}");
            self.text(wat("name"), "writer name", &writer.name);
            if let Some(t) = writer.freeze_timeout {
                self.duration_at_most(wat("freeze_timeout"), "freeze timeout", t);
            }
            match (writer.fail_at, writer.fail_with) {
                (Some(_), None) => self.problem(
                    wat("fail_at"),
                    "fail_at needs fail_with (the error or \"timeout\")",
                ),
                (None, Some(_)) => self.problem(
                    wat("fail_with"),
                    "fail_with needs fail_at (the writer event)",
                ),
                _ => {}
            }
        }
        for (j, k, gv) in mounts {
            let allowed = match gv.fs {
                FileSystem::Fat32 => true,
                FileSystem::Ntfs | FileSystem::Refs => os != GuestOs::Linux,
                FileSystem::Ext4 | FileSystem::Xfs => os != GuestOs::Windows,
            };
            if !allowed {
                self.problem(
                    format!("vms[{i}].disks[{j}].volumes[{k}].fs"),
                    format!("a {os} guest has no {} volumes", gv.fs),
                );
            }
        }
    }

    fn workload(&mut self, i: usize, vm: &Vm, mounts: &[(usize, usize, &GuestVolume)]) {
        let at = |field: &str| format!("vms[{i}].workload.{field}");
        let rates = [
            (
                "transactions.rate",
                vm.workload.transactions.as_ref().map(|t| t.rate),
            ),
            (
                "metadata_writes.rate",
                vm.workload.metadata_writes.as_ref().map(|r| r.rate),
            ),
            (
                "page_file_writes.rate",
                vm.workload.page_file_writes.as_ref().map(|r| r.rate),
            ),
        ];
        for (field, rate) in rates {
            if let Some(rate) = rate.filter(|&r| r > MAX_RATE) {
                self.problem(
                    at(field),
                    format!("rate {rate} per second is too high; at most {MAX_RATE}"),
                );
            }
        }
        if let Some(t) = &vm.workload.transactions {
            if t.blocks == 0 {
                self.problem(
                    at("transactions.blocks"),
                    "a transaction writes at least one block",
                );
            }
            if t.blocks > MAX_TRANSACTION_BLOCKS {
                self.problem(
                    at("transactions.blocks"),
                    format!(
                        "{} blocks per transaction; at most {MAX_TRANSACTION_BLOCKS}",
                        t.blocks
                    ),
                );
            }
            if let Some(target) = &t.volume {
                if !mounts.iter().any(|(_, _, gv)| &gv.mount == target) {
                    self.problem(at("transactions.volume"), no_such("guest volume", target));
                }
            }
        }
        if vm.workload.page_file_writes.is_some() && !mounts.iter().any(|(_, _, gv)| gv.page_file) {
            self.problem(
                at("page_file_writes"),
                "page file writes need a guest volume with page_file = true",
            );
        }
    }

    fn job(&mut self, s: &Scenario) {
        let job = &s.job;
        if job.vms.is_empty() {
            self.problem("job.vms", "the job backs up at least one VM");
        }
        self.unique("job VM", job.vms.iter().map(|v| v.as_str()), |i| {
            format!("job.vms[{i}]")
        });
        for (i, name) in job.vms.iter().enumerate() {
            if s.vm(name).is_none() {
                self.problem(format!("job.vms[{i}]"), no_such("VM", name));
            }
        }
        if let Some(proxy) = &job.proxy {
            self.computer_name("job.proxy", "proxy name", proxy);
        }
        match (job.mode, &job.proxy) {
            (BackupMode::OffHost, None) => {
                self.problem("job.proxy", "off-host backup needs a proxy (R9)")
            }
            (BackupMode::OnHost, Some(_)) => {
                self.problem("job.proxy", "a proxy is only used with mode = \"off_host\"")
            }
            _ => {}
        }
        let mut grouped = BTreeSet::new();
        for (g, group) in job.snapshot_groups.iter().enumerate() {
            for (k, name) in group.iter().enumerate() {
                let path = format!("job.snapshot_groups[{g}][{k}]");
                if !job.vms.contains(name) {
                    self.problem(path, format!("VM {name:?} is not in job.vms"));
                } else if !grouped.insert(name.as_str()) {
                    self.problem(path, format!("VM {name:?} is in two snapshot groups"));
                }
            }
            let volumes: Vec<BTreeSet<&str>> = group
                .iter()
                .filter_map(|name| s.vm(name))
                .map(|vm| {
                    vm.disks
                        .iter()
                        .filter_map(|d| d.volume.as_deref())
                        .collect()
                })
                .collect();
            if let Some((first, rest)) = volumes.split_first() {
                if !first
                    .iter()
                    .any(|v| rest.iter().all(|other| other.contains(v)))
                {
                    self.problem(
                        format!("job.snapshot_groups[{g}]"),
                        "the VMs of a snapshot group share no volume (F3.5)",
                    );
                }
            }
        }
        let c = &job.concurrency;
        for (field, limit) in [
            ("per_job", Some(c.per_job)),
            ("per_host", c.per_host),
            ("per_volume", c.per_volume),
        ] {
            match limit {
                Some(0) => self.problem(
                    format!("job.concurrency.{field}"),
                    "at least one backup in flight",
                ),
                Some(n) if n > MAX_CONCURRENCY => self.problem(
                    format!("job.concurrency.{field}"),
                    format!("{n} backups in flight (at most {MAX_CONCURRENCY})"),
                ),
                _ => {}
            }
        }
        if job.recovery_points == 0 {
            self.problem("job.recovery_points", "at least one recovery point");
        }
        if job.recovery_points > MAX_RECOVERY_POINTS {
            self.problem(
                "job.recovery_points",
                format!(
                    "{} recovery points; a job makes at most {MAX_RECOVERY_POINTS}",
                    job.recovery_points
                ),
            );
        }
        if let Some(restore) = &job.restore {
            if let Some(point) = restore.recovery_point {
                if point == 0 || point > job.recovery_points {
                    self.problem(
                        "job.restore.recovery_point",
                        format!(
                            "recovery point {point} does not exist (the job makes {})",
                            job.recovery_points
                        ),
                    );
                }
            }
            match (restore.target, &restore.host) {
                (RestoreTarget::AlternateLocation, None) => self.problem(
                    "job.restore.host",
                    "an alternate-location restore names its host",
                ),
                (RestoreTarget::AlternateLocation, Some(h)) if s.host(h).is_none() => {
                    self.problem("job.restore.host", no_such("host", h))
                }
                (RestoreTarget::Original | RestoreTarget::ItemLevel, Some(_)) => self.problem(
                    "job.restore.host",
                    "only an alternate-location restore names a host",
                ),
                _ => {}
            }
        }
    }

    fn fault(&mut self, s: &Scenario, i: usize, fault: &Fault) {
        let (field, kind, name) = match fault {
            Fault::ProviderCommitFailure { volume, .. } => {
                ("provider_commit_failure", "volume", volume)
            }
            Fault::HoldWritesTimeout { volume } => ("hold_writes_timeout", "volume", volume),
            Fault::FsrvpTimeout { file_server, .. } => {
                ("fsrvp_timeout", "file_server", file_server)
            }
            Fault::FsrvpSlowClient { file_server, delay } => {
                let path = format!("faults[{i}].fsrvp_slow_client.delay");
                self.duration_at_most(path, "MS-FSRVP call delay", *delay);
                ("fsrvp_slow_client", "file_server", file_server)
            }
            Fault::DiffAreaFull { volume } => ("diff_area_full", "volume", volume),
            Fault::OutOfSpace { volume, .. } => ("out_of_space", "volume", volume),
            Fault::HostCrash { host, .. } => ("host_crash", "host", host),
            Fault::DaemonExit { vm, .. } => ("daemon_exit", "vm", vm),
            Fault::TransferInterrupted { vm } => ("transfer_interrupted", "vm", vm),
            Fault::WriterFailure { vm, .. } => ("writer_failure", "vm", vm),
            Fault::ProviderFailure { volume, .. } => ("provider_failure", "volume", volume),
            // The requester is always there: nothing to look up.
            Fault::RequesterCrash { .. } => return,
            Fault::SnapshotSetInProgress { host, until } => {
                let path = format!("faults[{i}].snapshot_set_in_progress.until");
                self.duration_at_most(path, "foreign snapshot set", *until);
                ("snapshot_set_in_progress", "host", host)
            }
            Fault::MergeFailure { vm, code } => {
                if !MERGE_FAILURE_CODES.contains(code) {
                    self.problem(
                        format!("faults[{i}].merge_failure.code"),
                        format!(
                            "a merge fails with {} (field failures 24, 25), not {code}",
                            MERGE_FAILURE_CODES.map(|c| c.as_str()).join(" or ")
                        ),
                    );
                }
                ("merge_failure", "vm", vm)
            }
            Fault::CheckpointFailure { vm, code } => {
                if !CHECKPOINT_FAILURE_CODES.contains(code) {
                    self.problem(
                        format!("faults[{i}].checkpoint_failure.code"),
                        format!(
                            "a checkpoint's files fail with {} (field failures 26, 27), not {code}",
                            CHECKPOINT_FAILURE_CODES.map(|c| c.as_str()).join(" or ")
                        ),
                    );
                }
                ("checkpoint_failure", "vm", vm)
            }
            Fault::ChangeTrackingLost { vm, .. } => ("change_tracking_lost", "vm", vm),
            Fault::VhdSetCheckpointError { vm, .. } => ("vhd_set_checkpoint_error", "vm", vm),
            Fault::LiveMigration { vm, .. } => ("live_migration", "vm", vm),
            Fault::LiveMigrated { vm, .. } => ("live_migrated", "vm", vm),
            Fault::StorageMigrated { vm, .. } => ("storage_migrated", "vm", vm),
        };
        let path = format!("faults[{i}].{field}.{kind}");
        let exists = match kind {
            "volume" => s.volume(name).is_some(),
            "file_server" => s.file_servers.iter().any(|f| &f.name == name),
            "host" => s.host(name).is_some(),
            _ => s.vm(name).is_some(),
        };
        if !exists {
            let what = match kind {
                "file_server" => "file server",
                "vm" => "VM",
                other => other,
            };
            self.problem(path, no_such(what, name));
            return;
        }
        if let Fault::WriterFailure { vm, writer, .. } = fault {
            let Some(w) = s
                .vm(vm)
                .and_then(|v| v.guest.writers.iter().find(|w| &w.name == writer))
            else {
                self.problem(
                    format!("faults[{i}].writer_failure.writer"),
                    format!("VM {vm:?} has no writer named {writer:?}"),
                );
                return;
            };
            if let Some(event) = w.fail_at {
                // One writer, one failure: two would race for the same event.
                self.problem(
                    format!("faults[{i}].writer_failure.writer"),
                    format!(
                        "writer {writer:?} of VM {vm:?} already fails at {event} (its fail_at)"
                    ),
                );
            }
            let earlier = s.faults[..i].iter().position(|f| {
                matches!(f, Fault::WriterFailure { vm: v, writer: w, .. } if v == vm && w == writer)
            });
            if let Some(j) = earlier.filter(|&j| &s.faults[j] != fault) {
                self.problem(
                    format!("faults[{i}].writer_failure.writer"),
                    format!("writer {writer:?} of VM {vm:?} already fails by faults[{j}]"),
                );
            }
        }
        if let Fault::ChangeTrackingLost {
            before_point,
            cause,
            vm,
        } = fault
        {
            // Only an incremental job's later points start from change tracking.
            let points = s.job.recovery_points;
            if s.job.kind != BackupKind::Incremental {
                self.problem(
                    format!("faults[{i}].change_tracking_lost"),
                    "only an incremental job reads change tracking (job.kind)",
                );
            } else if *before_point < 2 || *before_point > points {
                self.problem(
                    format!("faults[{i}].change_tracking_lost.before_point"),
                    format!(
                        "point {before_point} is not between 2 and the job's {points} recovery point(s)"
                    ),
                );
            }
            if *cause == TrackingLoss::OwnerNodeChanged
                && !s
                    .cluster
                    .as_ref()
                    .is_some_and(|c| s.vm(vm).is_some_and(|v| c.nodes.contains(&v.host)))
            {
                self.problem(
                    format!("faults[{i}].change_tracking_lost.cause"),
                    format!("VM {vm:?} is not on a cluster node: it has no owner node to change"),
                );
            }
        }
        if let Fault::VhdSetCheckpointError { vm, error_code } = fault {
            if ![32768, 32770, 32775].contains(error_code) {
                self.problem(
                    format!("faults[{i}].vhd_set_checkpoint_error.error_code"),
                    format!(
                        "{error_code} is not an ErrorCode a VHD Set checkpoint fails with \
                         (32768, 32770, 32775)"
                    ),
                );
            }
            // VHD Sets and their checkpoints through WMI exist from 2016 on (F3).
            let host = s.vm(vm).and_then(|v| s.host(&v.host)).map(|h| h.version);
            if host.is_some_and(|h| !h.at_least(HyperVVersion::V2016)) {
                self.problem(
                    format!("faults[{i}].vhd_set_checkpoint_error.vm"),
                    format!("VM {vm:?} is on a host older than 2016: it has no VHD Set"),
                );
            }
        }
        if let Fault::LiveMigration {
            vm,
            to,
            during_point,
        } = fault
        {
            // R11: a live migration moves a VM between two nodes of its cluster.
            let from = s.vm(vm).map(|v| v.host.as_str()).unwrap_or_default();
            let nodes = s.cluster.as_ref().map(|c| &c.nodes);
            if !nodes.is_some_and(|n| n.iter().any(|h| h == from)) {
                self.problem(
                    format!("faults[{i}].live_migration.vm"),
                    format!("VM {vm:?} is not on a cluster node: it cannot be live-migrated"),
                );
            } else if to == from || !nodes.is_some_and(|n| n.contains(to)) {
                self.problem(
                    format!("faults[{i}].live_migration.to"),
                    format!("{to:?} is not another node of VM {vm:?}'s cluster"),
                );
            }
            let points = s.job.recovery_points;
            if *during_point < 1 || *during_point > points {
                self.problem(
                    format!("faults[{i}].live_migration.during_point"),
                    format!(
                        "point {during_point} is not between 1 and the job's {points} recovery point(s)"
                    ),
                );
            }
        }
        self.moved_between_points(s, i, fault);
        if let Fault::DaemonExit { vm, .. } = fault {
            if s.vm(vm).is_some_and(|v| v.guest.os != GuestOs::Linux) {
                self.problem(
                    path,
                    format!("VM {vm:?} has no hv_vss_daemon (not a Linux guest)"),
                );
            }
        }
    }

    /// R11: a VM moved between two points moves once, before a later point of its job,
    /// to a host of the same version (its plan stands) whose storage it can reach: a
    /// node of its cluster, or any host when its disks are on SMB shares; its disks move
    /// to another volume its host reaches (a host volume of its own, or a CSV of its
    /// cluster).
    fn moved_between_points(&mut self, s: &Scenario, i: usize, fault: &Fault) {
        let (kind, vm, before_point) = match fault {
            Fault::LiveMigrated {
                vm, before_point, ..
            } => ("live_migrated", vm, *before_point),
            Fault::StorageMigrated {
                vm, before_point, ..
            } => ("storage_migrated", vm, *before_point),
            _ => return,
        };
        let Some(v) = s.vm(vm) else { return };
        let points = s.job.recovery_points;
        if before_point < 2 || before_point > points {
            self.problem(
                format!("faults[{i}].{kind}.before_point"),
                format!("point {before_point} is not between 2 and the job's {points} recovery point(s)"),
            );
        }
        let earlier = s.faults[..i].iter().any(|f| match f {
            Fault::LiveMigrated { vm: w, .. } => kind == "live_migrated" && w == vm,
            Fault::StorageMigrated { vm: w, .. } => kind == "storage_migrated" && w == vm,
            _ => false,
        });
        if earlier {
            self.problem(
                format!("faults[{i}].{kind}.vm"),
                format!("VM {vm:?} already moves by an earlier {kind}"),
            );
        }
        let nodes = s
            .cluster
            .as_ref()
            .filter(|c| c.nodes.contains(&v.host))
            .map(|c| &c.nodes);
        match fault {
            Fault::LiveMigrated { to, .. } => {
                let path = format!("faults[{i}].live_migrated.to");
                let Some(target) = s.host(to) else {
                    self.problem(path, no_such("host", to));
                    return;
                };
                let on_shares = v.disks.iter().all(|d| d.share.is_some());
                let from = s.host(&v.host).map(|h| h.version);
                if *to == v.host {
                    self.problem(path, format!("VM {vm:?} already runs on {to:?}"));
                } else if from.is_some_and(|f| f != target.version) {
                    self.problem(
                        path,
                        format!(
                            "{to:?} runs Hyper-V {}, not the {} of VM {vm:?}'s host",
                            target.version,
                            from.map(|f| f.to_string()).unwrap_or_default()
                        ),
                    );
                } else if !on_shares && !nodes.is_some_and(|n| n.contains(to)) {
                    self.problem(
                        path,
                        format!(
                            "{to:?} is not another node of VM {vm:?}'s cluster, and its disks \
                             are not on SMB shares both hosts reach"
                        ),
                    );
                }
            }
            Fault::StorageMigrated { volume, .. } => {
                let path = format!("faults[{i}].storage_migrated.volume");
                let Some(target) = s.volume(volume) else {
                    self.problem(path, no_such("volume", volume));
                    return;
                };
                let reached = target.host.as_deref() == Some(v.host.as_str())
                    || (target.csv && nodes.is_some());
                if v.disks
                    .iter()
                    .any(|d| d.volume.as_deref() == Some(volume.as_str()))
                {
                    self.problem(
                        path,
                        format!("a disk of VM {vm:?} is already on {volume:?}"),
                    );
                } else if !reached {
                    self.problem(
                        path,
                        format!(
                            "{volume:?} is neither a volume of host {:?} nor a CSV of its cluster",
                            v.host
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    /// A Linux guest's daemon behaviour names one of its mounts, a real errno and a
    /// delay; mounts frozen by hand are its own mounts (field failures 13, 17, 18).
    fn linux_daemon(&mut self, i: usize, vm: &Vm, mounts: &[(usize, usize, &GuestVolume)]) {
        let at = |field: &str| format!("vms[{i}].guest.{field}");
        let is_mount = |m: &str| mounts.iter().any(|(_, _, g)| g.mount == m);
        match &vm.guest.vss_daemon {
            Some(DaemonState::FreezeFails { target, errno }) => {
                if !is_mount(target) {
                    self.problem(
                        at("vss_daemon.freeze_fails.target"),
                        no_such("guest volume", target),
                    );
                }
                if !(1..=4095).contains(errno) {
                    self.problem(
                        at("vss_daemon.freeze_fails.errno"),
                        format!("errno {errno} is not an error number (1..4095)"),
                    );
                }
            }
            Some(DaemonState::SlowReply { delay, .. }) => {
                if delay.millis == 0 {
                    self.problem(
                        at("vss_daemon.slow_reply.delay"),
                        "a slow reply needs a delay",
                    );
                }
                self.duration_at_most(at("vss_daemon.slow_reply.delay"), "delay", *delay);
            }
            _ => {}
        }
        for (j, k, g) in mounts {
            if g.iscsi && vm.guest.os != GuestOs::Windows {
                self.problem(
                    format!("vms[{i}].disks[{j}].volumes[{k}].iscsi"),
                    format!(
                        "an in-guest iSCSI volume is modelled for Windows guests, this guest is {}",
                        vm.guest.os
                    ),
                );
            }
        }
        if vm.guest.os != GuestOs::Linux && !vm.guest.frozen_by_admin.is_empty() {
            self.problem(
                at("frozen_by_admin"),
                format!(
                    "fsfreeze runs only in Linux guests, this guest is {}",
                    vm.guest.os
                ),
            );
        }
        for (k, m) in vm.guest.frozen_by_admin.iter().enumerate() {
            if !is_mount(m) {
                self.problem(
                    format!("vms[{i}].guest.frozen_by_admin[{k}]"),
                    no_such("guest volume", m),
                );
            }
        }
    }

    fn expect(&mut self, s: &Scenario) {
        let e = &s.expect;
        if e.outcome == Outcome::Failure && e.code.is_none() && e.event.is_none() {
            self.problem(
                "expect.outcome",
                "a failure names the code or the Hyper-V event it is reported with",
            );
        }
        self.unique("expected VM", e.vms.iter().map(|v| v.vm.as_str()), |i| {
            format!("expect.vms[{i}].vm")
        });
        for (i, ve) in e.vms.iter().enumerate() {
            if !s.job.vms.contains(&ve.vm) {
                let message = if s.vm(&ve.vm).is_none() {
                    no_such("VM", &ve.vm)
                } else {
                    format!("VM {:?} is not in job.vms", ve.vm)
                };
                self.problem(format!("expect.vms[{i}].vm"), message);
            }
            if ve.checkpoint.is_some() && ve.method == Some(BackupMethod::SavedState) {
                self.problem(
                    format!("expect.vms[{i}].checkpoint"),
                    "a saved-state backup takes no checkpoint",
                );
            }
            if let Some(d) = &ve.downtime {
                self.duration_at_most(format!("expect.vms[{i}].downtime.max"), "downtime", d.max);
                if d.min > d.max {
                    self.problem(
                        format!("expect.vms[{i}].downtime.min"),
                        format!("minimum {} is above maximum {}", d.min, d.max),
                    );
                }
            }
            for (k, m) in ve.frozen_after.iter().enumerate() {
                let mounted = s.vm(&ve.vm).is_some_and(|v| {
                    v.disks
                        .iter()
                        .flat_map(|d| &d.volumes)
                        .any(|g| &g.mount == m)
                });
                if !mounted {
                    self.problem(
                        format!("expect.vms[{i}].frozen_after[{k}]"),
                        no_such("guest volume", m),
                    );
                }
            }
            if let Some(t) = &ve.transfers {
                if t.len() != s.job.recovery_points as usize {
                    self.problem(
                        format!("expect.vms[{i}].transfers"),
                        format!(
                            "{} transfer(s) listed for a job of {} recovery point(s)",
                            t.len(),
                            s.job.recovery_points
                        ),
                    );
                }
            }
            if let Some(node) = &ve.owner_node {
                if s.host(node).is_none() {
                    self.problem(format!("expect.vms[{i}].owner_node"), no_such("host", node));
                }
            }
            if let Some(st) = ve.state_after_restore {
                let path = format!("expect.vms[{i}].state_after_restore");
                match &s.job.restore {
                    None => self.problem(path, "the job has no restore"),
                    Some(r) if r.target != RestoreTarget::Original => self.problem(
                        path,
                        format!(
                            "a restore to {} leaves the VM as it is; only one to the original \
                             place sets its state (R16)",
                            r.target
                        ),
                    ),
                    // Field failure 15: a restore in place leaves the VM off or saved.
                    Some(_) if !matches!(st, VmState::Off | VmState::Saved) => self.problem(
                        path,
                        format!("a restored VM is \"off\" or \"saved\", never \"{st}\""),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}

/// Resolves `\\server\share` to the volume holding the share.
fn share_volume<'a>(s: &'a Scenario, unc: &str) -> Result<&'a Volume, String> {
    let (server, share) = unc
        .strip_prefix("\\\\")
        .and_then(|rest| rest.split_once('\\'))
        .filter(|(server, share)| !server.is_empty() && !share.is_empty() && !share.contains('\\'))
        .ok_or_else(|| format!("{unc:?} is not a share path like '\\\\fs1\\vms'"))?;
    if server.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "name the file server by name, not by address {server:?} (R10)"
        ));
    }
    let fs = s
        .file_servers
        .iter()
        .find(|f| f.name == server)
        .ok_or_else(|| no_such("file server", server))?;
    let sh = fs
        .shares
        .iter()
        .find(|sh| sh.name == share)
        .ok_or_else(|| format!("file server {server:?} has no share {share:?}"))?;
    s.volume(&sh.volume)
        .ok_or_else(|| no_such("volume", &sh.volume))
}

fn no_such(what: &str, name: &str) -> String {
    format!("no {what} named {name:?}")
}
