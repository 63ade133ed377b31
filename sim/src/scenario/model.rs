//! The typed scenario: the world (hosts, cluster, file servers, volumes, VMs with their
//! disks, guests, writers and workload), the backup job, the faults to inject and what the
//! run must show. Field names are those of the TOML file.

use super::codes::Hresult;
use super::names::named_enum;
use super::spec_id::SpecId;
use super::units::{Bytes, VirtualTime};
use super::ValueError;
use serde::{Deserialize, Serialize};

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, the file name without `.toml`.
    pub name: String,
    /// SPEC items this scenario demonstrates.
    pub covers: Vec<SpecId>,
    /// Default seed of the scheduler's generator (a run may override it).
    #[serde(default)]
    pub seed: u64,
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub cluster: Option<Cluster>,
    #[serde(default)]
    pub file_servers: Vec<FileServer>,
    pub volumes: Vec<Volume>,
    pub vms: Vec<Vm>,
    pub job: Job,
    #[serde(default)]
    pub faults: Vec<Fault>,
    pub expect: Expect,
}

named_enum! {
    /// Windows Server release of a Hyper-V host (also a cluster functional level and an
    /// integration services release).
    pub enum HyperVVersion ("Hyper-V version") {
        V2008R2 = "2008 R2",
        V2012 = "2012",
        V2012R2 = "2012 R2",
        V2016 = "2016",
        V2019 = "2019",
        V2022 = "2022",
        V2025 = "2025",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub version: HyperVVersion,
}

/// A failover cluster of some hosts; its CSVs are volumes with `csv = true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub functional_level: HyperVVersion,
    pub nodes: Vec<String>,
}

/// An SMB 3.0 file server (F4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub name: String,
    pub version: HyperVVersion,
    /// File Server VSS Agent Service installed (R10).
    #[serde(default = "yes")]
    pub vss_agent: bool,
    pub shares: Vec<Share>,
}

/// A share; VM disks name it by UNC path `\\server\share`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub name: String,
    /// The file server's volume holding the share.
    pub volume: String,
}

named_enum! {
    /// Which host VSS provider snapshots a volume.
    pub enum ProviderKind ("provider") {
        /// Microsoft Software Shadow Copy provider (copy-on-write).
        System = "system",
        /// A SAN/CSV hardware provider.
        Hardware = "hardware",
    }
}

/// A volume of a host, of a file server, or a Cluster Shared Volume: exactly one of
/// `host`, `file_server`, `csv = true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub file_server: Option<String>,
    #[serde(default)]
    pub csv: bool,
    pub capacity: Bytes,
    pub free: Bytes,
    #[serde(default = "system_provider")]
    pub provider: ProviderKind,
    /// Limit of the shadow storage (diff area) for snapshots of this volume.
    #[serde(default)]
    pub shadow_storage_max: Option<Bytes>,
    /// A CSV's coordinator (owner) node; the cluster's first node when absent (FF38).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
}

named_enum! {
    pub enum VmState ("VM state") {
        Running = "running",
        Off = "off",
        Saved = "saved",
        Paused = "paused",
    }
}

named_enum! {
    /// `Set-VM -CheckpointType` (2016 and later).
    pub enum CheckpointSetting ("checkpoint type") {
        Production = "Production",
        ProductionOnly = "ProductionOnly",
        Standard = "Standard",
        Disabled = "Disabled",
    }
}

/// A VM configuration version such as `"5.0"` or `"9.0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigVersion {
    pub major: u16,
    pub minor: u16,
}

impl std::str::FromStr for ConfigVersion {
    type Err = ValueError;
    fn from_str(text: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::ConfigVersion {
            text: text.to_string(),
        };
        let (major, minor) = text.split_once('.').ok_or_else(bad)?;
        let number = |s: &str| {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        Ok(ConfigVersion {
            major: number(major).ok_or_else(bad)?,
            minor: number(minor).ok_or_else(bad)?,
        })
    }
}

impl std::fmt::Display for ConfigVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for ConfigVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    pub name: String,
    pub host: String,
    /// 1 or 2.
    pub generation: u8,
    pub config_version: ConfigVersion,
    #[serde(default = "running")]
    pub state: VmState,
    /// A SCSI controller is present (R7). Generation 2 VMs always have one.
    #[serde(default = "yes")]
    pub scsi_controller: bool,
    #[serde(default = "production")]
    pub checkpoint_type: CheckpointSetting,
    #[serde(default)]
    pub integration_services: IntegrationServices,
    pub disks: Vec<Disk>,
    pub guest: Guest,
    #[serde(default)]
    pub workload: Workload,
    /// Physical disks the VM uses directly (R13): no file on a host volume, so a host-level
    /// backup cannot carry them; only a backup inside the guest can.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_through: Vec<PassThroughDisk>,
    /// The VM's configuration file cannot be read (corrupt): the Hyper-V writer leaves
    /// the VM out of its metadata (field failure 20).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub config_corrupt: bool,
    /// The VM's role in a running Hyper-V Replica relationship (R12, field failures 24,
    /// 41); none when it is not replicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaRole>,
    /// A replica VM's replication state (R12); `normal` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_state: Option<ReplicaState>,
}

named_enum! {
    /// A replicated VM's side of the relationship (R12).
    pub enum ReplicaRole ("replica role") {
        Primary = "primary",
        Replica = "replica",
    }
}

named_enum! {
    /// Where a replica VM's replication stands (R12): only in `normal` can it be backed
    /// up; in every other state the backup of the replica fails.
    pub enum ReplicaState ("replica state") {
        Normal = "normal",
        /// Replication health critical (unhealthy).
        Critical = "critical",
        Resynchronizing = "resynchronizing",
        ResyncRequired = "resync_required",
        /// In or awaiting initial replication.
        InitialReplication = "initial_replication",
        /// Applying `.hrl` log files, or the last apply failed, was cancelled or
        /// interrupted.
        ApplyingLogs = "applying_logs",
        /// Being migrated or failed over.
        FailingOver = "failing_over",
    }
}

impl Vm {
    /// Why the Hyper-V writer leaves the VM out of its metadata, if it does: its
    /// configuration cannot be read (field failure 20), or it is a replica VM whose
    /// replication holds it (R12).
    pub fn writer_skips(&self) -> Option<String> {
        if self.config_corrupt {
            return Some("its configuration cannot be read (corrupt)".into());
        }
        match (self.replica, self.replica_state) {
            (Some(ReplicaRole::Replica), Some(st)) if st != ReplicaState::Normal => Some(format!(
                "it is a Hyper-V Replica replica in state {st}, which cannot be backed up (R12)"
            )),
            _ => None,
        }
    }
}

impl Vm {
    /// Whether guest volume `volume` of disk `disk` is a generation 2 VM's EFI system
    /// partition: the first volume of its first disk, FAT32. VSS cannot shadow-copy it,
    /// so the guest's snapshot set leaves it out and it does not keep the guest from an
    /// online backup (R4); the host's checkpoint carries it, crash-consistent.
    pub fn is_efi_partition(&self, disk: usize, volume: usize) -> bool {
        self.generation == 2
            && disk == 0
            && volume == 0
            && self.disks[0]
                .volumes
                .first()
                .is_some_and(|v| v.fs == FileSystem::Fat32)
    }
}

/// A physical disk handed to a VM whole (`{ name = "PhysicalDisk2", size = "500 GiB" }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassThroughDisk {
    pub name: String,
    pub size: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationServices {
    #[serde(default = "yes")]
    pub installed: bool,
    /// The backup (volume shadow copy) integration service is enabled (R1, R2).
    #[serde(default = "yes")]
    pub backup_enabled: bool,
    /// Release the components come from; the host's own when absent.
    #[serde(default)]
    pub version: Option<HyperVVersion>,
}

impl Default for IntegrationServices {
    fn default() -> Self {
        IntegrationServices {
            installed: true,
            backup_enabled: true,
            version: None,
        }
    }
}

/// A virtual disk: a VHDX on a host volume or CSV (`volume`) or on an SMB share
/// (`share = '\\fs1\vms'`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// File name, e.g. `disk_1.vhdx`.
    pub file: String,
    pub size: Bytes,
    #[serde(default = "default_block_size")]
    pub block_size: Bytes,
    #[serde(default)]
    pub volume: Option<String>,
    #[serde(default)]
    pub share: Option<String>,
    /// A dynamic (LDM) disk inside the guest (R1, R4).
    #[serde(default)]
    pub dynamic: bool,
    #[serde(default)]
    pub volumes: Vec<GuestVolume>,
    /// Files an earlier failed backup left beside the disk: the VM's starting state
    /// (field failure 11).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Leftover>,
}

named_enum! {
    /// A file an earlier run left beside a disk.
    pub enum Leftover ("leftover") {
        /// `<disk>-AutoRecovery.avhdx` of a failed 2012 R2 backup (FF11).
        AutoRecovery = "auto_recovery",
        /// A backup (recovery) checkpoint a failed backup never merged: the VM runs on
        /// its `<disk>_<GUID>.avhdx` (FF22).
        RecoveryCheckpoint = "recovery_checkpoint",
    }
}

impl Leftover {
    /// The file this leftover is, beside disk `file`.
    pub fn file(self, disk: &str) -> String {
        match self {
            Leftover::AutoRecovery => hvsim_engine::chain::auto_recovery_file(disk),
            // SPEC F2.5's example GUID.
            Leftover::RecoveryCheckpoint => hvsim_engine::chain::checkpoint_file(
                disk,
                uuid::Uuid::from_u128(0xA1C3FDA5_5DFE_4001_A6D7_EBE18195A85C),
            ),
        }
    }
}

named_enum! {
    pub enum FileSystem ("file system") {
        Ntfs = "NTFS",
        Refs = "ReFS",
        Fat32 = "FAT32",
        Ext4 = "ext4",
        Xfs = "xfs",
    }
}

/// A volume inside the guest, on one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestVolume {
    /// Drive letter or mount point: `C:`, `/`, `/boot/efi`.
    pub mount: String,
    pub size: Bytes,
    pub fs: FileSystem,
    pub free: Bytes,
    /// Holds the guest page file (R14).
    #[serde(default)]
    pub page_file: bool,
    /// Mount of the guest volume holding this volume's shadow storage, if any (R1).
    #[serde(default)]
    pub shadow_storage: Option<String>,
    /// Windows: the volume is on an iSCSI disk the guest attaches itself, not on a
    /// virtual disk: the integration services' provider cannot shadow-copy it (field
    /// failure 20). Its bytes still live in the modelled virtual disk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub iscsi: bool,
}

named_enum! {
    pub enum GuestOs ("guest OS") {
        Windows = "windows",
        Linux = "linux",
        /// No VSS support at all (e.g. Windows 2000).
        Other = "other",
    }
}

/// How `hv_vss_daemon` behaves in a Linux guest (R5, vss.md §4.4): a name
/// (`"running"`, `"missing"`, `"hanging"`, `"syslog_deadlock"`), or a one-key table for
/// the behaviours with arguments, e.g. `{ freeze_fails = { target = "/srv", errno = 5 } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DaemonState {
    /// The upstream daemon, healthy.
    Running,
    /// Absent: not installed or not started, it never registers.
    Missing,
    /// Reads the first request and never answers.
    Hanging,
    /// The guest's syslog writes to `/`: the daemon blocks in syslog() once `/` is
    /// frozen, before it answers FREEZE, and `/` stays frozen (field failure 17).
    SyslogDeadlock,
    /// FIFREEZE on the mount `target` fails with `errno` (field failure 18).
    FreezeFails { target: String, errno: i32 },
    /// Does `op` at once but writes its answer `delay` later.
    SlowReply { op: DaemonOp, delay: VirtualTime },
    /// Exits while it handles `op`.
    ExitsDuring(DaemonOp),
    /// The daemon's `error` overwrites the HOT_BACKUP operation byte of its answer, so
    /// the kernel leaves VSS_HBU_NO_AUTO_RECOVERY out (reference §8: a daemon defect):
    /// the host treats the guest as wanting auto-recovery.
    NoAutoRecoveryLost,
}

impl std::fmt::Display for DaemonState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonState::Running => f.write_str("running"),
            DaemonState::Missing => f.write_str("missing"),
            DaemonState::Hanging => f.write_str("hanging"),
            DaemonState::SyslogDeadlock => f.write_str("syslog_deadlock"),
            DaemonState::FreezeFails { target, errno } => {
                write!(f, "freeze_fails on {target} (errno {errno})")
            }
            DaemonState::SlowReply { op, delay } => write!(f, "slow_reply to {op} by {delay}"),
            DaemonState::ExitsDuring(op) => write!(f, "exits_during {op}"),
            DaemonState::NoAutoRecoveryLost => f.write_str("no_auto_recovery_lost"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    pub os: GuestOs,
    /// Free text, e.g. "Windows Server 2012 R2", "Debian 7".
    #[serde(default)]
    pub release: Option<String>,
    /// Linux only; `running` when absent.
    #[serde(default)]
    pub vss_daemon: Option<DaemonState>,
    /// Windows only.
    #[serde(default)]
    pub writers: Vec<Writer>,
    /// Linux only: mounts an administrator froze by hand (`fsfreeze -f`) before the
    /// backup, and never thawed (field failure 13).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen_by_admin: Vec<String>,
}

named_enum! {
    pub enum WriterKind ("writer kind") {
        System = "System",
        Registry = "Registry",
        Sql = "SQL",
        Exchange = "Exchange",
    }
}

named_enum! {
    pub enum WriterEvent ("writer event") {
        OnIdentify = "OnIdentify",
        OnPrepareBackup = "OnPrepareBackup",
        OnPrepareSnapshot = "OnPrepareSnapshot",
        OnFreeze = "OnFreeze",
        OnThaw = "OnThaw",
        OnPostSnapshot = "OnPostSnapshot",
        OnBackupComplete = "OnBackupComplete",
    }
}

named_enum! {
    /// What a failing writer does at its event: set one of the writer errors, or not
    /// return within its window (VSS then reports VSS_E_WRITERERROR_TIMEOUT).
    pub enum WriterFailure ("writer failure") {
        Retryable = "VSS_E_WRITERERROR_RETRYABLE",
        NonRetryable = "VSS_E_WRITERERROR_NONRETRYABLE",
        OutOfResources = "VSS_E_WRITERERROR_OUTOFRESOURCES",
        InconsistentSnapshot = "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
        Timeout = "timeout",
        /// The writer's callback raises an exception: VSS logs event 12366 and the
        /// writer fails at the event (field failure 5).
        Crash = "crash",
        /// The writer cannot call back to the requester (COM security): the guest logs
        /// event 8194 and the writer's answer is lost (field failure 7).
        AccessDenied = "E_ACCESSDENIED",
    }
}

/// An application writer in a Windows guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Writer {
    /// Writer name as `vssadmin list writers` shows it, e.g. "SqlServerWriter".
    pub name: String,
    pub kind: WriterKind,
    #[serde(default)]
    pub fail_at: Option<WriterEvent>,
    #[serde(default)]
    pub fail_with: Option<WriterFailure>,
    /// Freeze→thaw window; 60 s when absent (Exchange uses 20 s).
    #[serde(default)]
    pub freeze_timeout: Option<VirtualTime>,
}

/// What the guest writes while the job runs; rates are operations per virtual second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default)]
    pub transactions: Option<Transactions>,
    #[serde(default)]
    pub metadata_writes: Option<Rate>,
    /// Page file writes (R14: excluded from incrementals).
    #[serde(default)]
    pub page_file_writes: Option<Rate>,
    /// When the guest writes: the whole job (the default), or only while the job is at
    /// its VM (`"backup"`, issue 11 §3).
    #[serde(default, skip_serializing_if = "WorkloadWindow::is_job")]
    pub window: WorkloadWindow,
}

named_enum! {
    /// When a VM's workload writes.
    #[derive(Default)]
    pub enum WorkloadWindow ("workload window") {
        /// From the start of the run to the end of the job.
        #[default]
        Job = "job",
        /// From the job's first call that concerns the VM (its host's SetBackupState, a
        /// checkpoint job of it) until its backup is over (BackupComplete or AbortBackup
        /// of that set, or the checkpoint's merge) and its disks are merged back: a VM
        /// waiting for its turn costs no step.
        Backup = "backup",
    }
}

impl WorkloadWindow {
    pub fn is_job(&self) -> bool {
        *self == WorkloadWindow::Job
    }
}

/// Application transactions: `blocks` data blocks, then a commit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transactions {
    pub rate: u32,
    pub blocks: u32,
    #[serde(default = "yes")]
    pub commit_record: bool,
    /// Guest volume (mount) written to; the first volume when absent.
    #[serde(default)]
    pub volume: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub rate: u32,
}

named_enum! {
    pub enum BackupKind ("backup kind") {
        /// Express full: block-level synchronisation (F5.E).
        Full = "full",
        /// Only the blocks change tracking reports (R14).
        Incremental = "incremental",
    }
}

named_enum! {
    /// R9.
    pub enum BackupMode ("backup mode") {
        OnHost = "on_host",
        OffHost = "off_host",
    }
}

named_enum! {
    /// R17.
    pub enum ConsistencyCheck ("consistency check") {
        OnDemand = "on_demand",
        Scheduled = "scheduled",
        IfInconsistent = "if_inconsistent",
    }
}

/// The backup job the requester runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub kind: BackupKind,
    #[serde(default = "on_host")]
    pub mode: BackupMode,
    /// Off-host proxy machine (R9); required with `mode = "off_host"`.
    #[serde(default)]
    pub proxy: Option<String>,
    pub vms: Vec<String>,
    /// VMs that share one volume snapshot (F3.5).
    #[serde(default)]
    pub snapshot_groups: Vec<Vec<String>>,
    #[serde(default)]
    pub consistency_check: Option<ConsistencyCheck>,
    /// Backups run back to back, each a recovery point (R18).
    #[serde(default = "one")]
    pub recovery_points: u32,
    #[serde(default)]
    pub express_full_before_recovery_point: bool,
    #[serde(default)]
    pub restore: Option<Restore>,
    /// What the next backup of a VM found on another node of its cluster is (R11,
    /// field failure 34); `express_full` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_owner_change: Option<OwnerChangeSync>,
    /// How many backups may be in flight at once (issue 11 §2); one after another when
    /// absent, as every file written before this field ran.
    #[serde(default, skip_serializing_if = "Concurrency::is_serial")]
    pub concurrency: Concurrency,
}

/// Limits on the backups in flight at once, as backup products expose them (a job's
/// task limit; a per-host limit; a per-volume or per-CSV snapshot limit). A backup is
/// one task of the job: one host VSS backup of a host's VMs (F1, F2, F4), or one VM's
/// production checkpoint, or one F3.5 snapshot group. Absent limits bind nothing
/// beyond `per_job`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Backups of the job in flight at once.
    #[serde(default = "one")]
    pub per_job: u32,
    /// Backups in flight on one host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_host: Option<u32>,
    /// Backups in flight whose disks share a volume (a CSV, a local volume, a share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_volume: Option<u32>,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            per_job: 1,
            per_host: None,
            per_volume: None,
        }
    }
}

impl Concurrency {
    /// One backup at a time: the default, and what files without the field mean.
    pub fn is_serial(&self) -> bool {
        *self == Concurrency::default()
    }
}

named_enum! {
    /// R16.
    pub enum RestoreTarget ("restore target") {
        Original = "original",
        AlternateLocation = "alternate_location",
        ItemLevel = "item_level",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    pub target: RestoreTarget,
    /// 1-based recovery point; the last one when absent.
    #[serde(default)]
    pub recovery_point: Option<u32>,
    /// Host to restore to with `alternate_location`.
    #[serde(default)]
    pub host: Option<String>,
}

named_enum! {
    /// MS-FSRVP operations that carry a timeout.
    pub enum FsrvpOperation ("FSRVP operation") {
        PrepareShadowCopySet = "PrepareShadowCopySet",
        CommitShadowCopySet = "CommitShadowCopySet",
        ExposeShadowCopySet = "ExposeShadowCopySet",
    }
}

named_enum! {
    /// The calls VSS makes to a provider inside DoSnapshotSet (reference vss.md §1.2).
    pub enum ProviderOperation ("provider call") {
        BeginPrepareSnapshot = "BeginPrepareSnapshot",
        EndPrepareSnapshots = "EndPrepareSnapshots",
        PreCommitSnapshots = "PreCommitSnapshots",
        CommitSnapshots = "CommitSnapshots",
        PostCommitSnapshots = "PostCommitSnapshots",
        PreFinalCommitSnapshots = "PreFinalCommitSnapshots",
        PostFinalCommitSnapshots = "PostFinalCommitSnapshots",
    }
}

named_enum! {
    /// A requester call whose answer a crashing requester never acts on.
    pub enum RequesterStep ("requester step") {
        PrepareForBackup = "PrepareForBackup",
        DoSnapshotSet = "DoSnapshotSet",
    }
}

named_enum! {
    /// `hv_vss_op` operations forwarded to the daemon.
    pub enum DaemonOp ("hv_vss_daemon operation") {
        Freeze = "FREEZE",
        Thaw = "THAW",
        HotBackup = "HOT_BACKUP",
    }
}

/// A fault to inject; written as a table with one key, e.g.
/// `provider_commit_failure = { volume = "hv1-D" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The host provider fails CommitSnapshots for the volume.
    ProviderCommitFailure {
        volume: String,
        #[serde(default = "provider_veto")]
        code: Hresult,
    },
    /// Flush-and-hold on the volume outlasts its 10 s window.
    HoldWritesTimeout { volume: String },
    /// The file server's FSRVP agent does not answer the operation in time.
    FsrvpTimeout {
        file_server: String,
        operation: FsrvpOperation,
    },
    /// Every MS-FSRVP request to the file server's agent arrives `delay` late (a slow
    /// client or link: the agent's message-sequence timers may run out between calls).
    FsrvpSlowClient {
        file_server: String,
        delay: VirtualTime,
    },
    /// The shadow storage of the volume fills up while the snapshot exists.
    DiffAreaFull { volume: String },
    /// The volume runs out of space (AVHDX growth) at a step.
    OutOfSpace { volume: String, at: SpecId },
    /// The host goes down at a step.
    HostCrash { host: String, at: SpecId },
    /// `hv_vss_daemon` exits while handling the operation.
    DaemonExit { vm: String, during: DaemonOp },
    /// The network between agent and backup server drops during data transfer (F5.T).
    TransferInterrupted { vm: String },
    /// A guest writer fails at an event: the same misbehaviour as a writer's own
    /// `fail_at`/`fail_with`, written as a fault so a fault plan can inject it (F5.6).
    WriterFailure {
        vm: String,
        writer: String,
        at: WriterEvent,
        with: WriterFailure,
    },
    /// The host provider of the volume fails one of its calls with `code` (field failure
    /// 7): VSS logs it (event 12293, or 8193 for its own failed routine) and fails the
    /// whole set.
    ProviderFailure {
        volume: String,
        at: ProviderOperation,
        code: Hresult,
    },
    /// Another requester's snapshot set is in creation on the host until `until`
    /// (virtual time from the start): DoSnapshotSet meanwhile gets
    /// VSS_E_SNAPSHOT_SET_IN_PROGRESS (field failure 9).
    SnapshotSetInProgress { host: String, until: VirtualTime },
    /// Vmms' merge of the VM's backup checkpoint fails with `code` (Hyper-V-VMMS 19100):
    /// `E_ACCESSDENIED` (permissions, FF25) or `ERROR_FILE_SYSTEM_LIMITATION` (Replica
    /// and a backup at once, FF24). The AVHDX stays and the VM writes on into it (FF23).
    MergeFailure { vm: String, code: Hresult },
    /// The backup application dies once the host's VSS answers `after`: it never ends the
    /// sets it opened, so their writers' sessions stay open (field failure 10).
    RequesterCrash { after: RequesterStep },
    /// Vmms cannot create the VM's checkpoint files (F2.5, F3.3, R4) and fails with
    /// `code`: `ERROR_FILE_NOT_FOUND` (the checkpoint storage path is gone, FF26) or
    /// `ERROR_SHARING_VIOLATION` (an AVHDX still locked after a power loss, FF27).
    CheckpointFailure { vm: String, code: Hresult },
    /// The VM's change tracking is lost between two recovery points, before
    /// `before_point` (2 or later): the incremental it would start from cannot be
    /// answered (field failures 33, 34, 36).
    ChangeTrackingLost {
        vm: String,
        before_point: u32,
        cause: TrackingLoss,
    },
    /// The VM's CreateSnapshot job fails with this WMI ErrorCode (32768, 32770 or
    /// 32775), as checkpoints of guest-cluster VMs on VHD Sets do (field failure 39).
    VhdSetCheckpointError { vm: String, error_code: u32 },
    /// The cluster is asked to live-migrate the VM to node `to` while recovery point
    /// `during_point` reads it (R11, field failure 35).
    LiveMigration {
        vm: String,
        to: String,
        #[serde(default = "one")]
        during_point: u32,
    },
    /// Between two recovery points, before `before_point` (2 or later), the VM was
    /// live-migrated to host `to` (R11): to another node of its cluster (its storage
    /// stays where it is), or out of it to a standalone host (its disks on an SMB share
    /// both reach).
    LiveMigrated {
        vm: String,
        to: String,
        before_point: u32,
    },
    /// Between two recovery points, before `before_point` (2 or later), a storage live
    /// migration moved every disk of the VM to `volume` (R11, R17): the VHDX files are
    /// rewritten there.
    StorageMigrated {
        vm: String,
        volume: String,
        before_point: u32,
    },
}

named_enum! {
    /// How the requester brings a replica back in step once it finds the VM on another
    /// node of its cluster (R11 against field failure 34).
    pub enum OwnerChangeSync ("owner change sync") {
        /// Both sides read and checksummed, only the changed blocks sent (SPEC R11, DPM).
        ExpressFull = "express_full",
        /// Every block read and sent: change tracking is not trusted across an owner
        /// change (the vendors of field failure 34).
        Full = "full",
    }
}

named_enum! {
    /// How a VM's change tracking is lost between two points.
    pub enum TrackingLoss ("tracking loss") {
        /// The retained checkpoint or reference point was deleted (field failure 33).
        ReferencePointDeleted = "reference_point_deleted",
        /// A failed live migration changed the owner node (field failure 34).
        OwnerNodeChanged = "owner_node_changed",
        /// The change-tracking files were damaged or reset (field failure 36).
        Damaged = "damaged",
    }
}

named_enum! {
    pub enum Outcome ("outcome") {
        Success = "success",
        Failure = "failure",
    }
}

named_enum! {
    pub enum BackupMethod ("backup method") {
        /// Child partition snapshot / VSS in the guest.
        Online = "online",
        /// The VM is saved while the snapshot is made (R2, R3, F5.4a).
        SavedState = "saved_state",
        /// A checkpoint holds the image (R4, F3).
        Checkpoint = "checkpoint",
    }
}

named_enum! {
    pub enum CheckpointKind ("checkpoint kind") {
        Production = "production",
        Standard = "standard",
        /// `<VM name> - Backup - (<date time>)` (R4) or the F2 backup checkpoint.
        Backup = "backup",
    }
}

named_enum! {
    /// How a recovery point's data came over (R18, F5.E).
    pub enum TransferKind ("transfer") {
        Full = "full",
        Incremental = "incremental",
        ExpressFull = "express_full",
    }
}

named_enum! {
    pub enum Consistency ("consistency") {
        Application = "application",
        File = "file",
        Crash = "crash",
    }
}

named_enum! {
    /// F5.T troubleshooting classes.
    pub enum FailureClass ("failure class") {
        Host = "host",
        Guest = "guest",
        Communication = "communication",
        Server = "server",
    }
}

/// What the run must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub outcome: Outcome,
    /// The HRESULT the requester reports.
    #[serde(default)]
    pub code: Option<Hresult>,
    /// The Hyper-V-VMMS event id logged.
    #[serde(default)]
    pub event: Option<u32>,
    #[serde(default)]
    pub failure_class: Option<FailureClass>,
    #[serde(default)]
    pub vms: Vec<VmExpect>,
    /// How many times the requester ran a failed host backup again (field failure 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Writers left failed, as `vssadmin list writers` shows them:
    /// `"HyperVWriter@hv1 [8] Failed / Inconsistent shadow copy"` (field failure 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<String>,
    /// Files the job leaves on the host's volumes besides the base disks, as
    /// `volume:file` (the state a real host shows afterwards, e.g. FF11's leftover); one
    /// `*` stands for a checkpoint's GUID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_left: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmExpect {
    pub vm: String,
    #[serde(default)]
    pub method: Option<BackupMethod>,
    #[serde(default)]
    pub checkpoint: Option<CheckpointKind>,
    #[serde(default)]
    pub consistency: Option<Consistency>,
    #[serde(default)]
    pub downtime: Option<Downtime>,
    /// State of the VM after the job's restore (R4, R16).
    #[serde(default)]
    pub state_after_restore: Option<VmState>,
    /// Linux: the mounts the guest is left with frozen after the job (field failures
    /// 17, 18); I3 accepts exactly these and no others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen_after: Vec<String>,
    /// How each recovery point brought the VM's data over, in order (R18; what an
    /// incremental fell back to, field failures 32–36).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfers: Option<Vec<TransferKind>>,
    /// The node that owns the VM after the job (R11: a refused live migration leaves it
    /// where it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_node: Option<String>,
    /// The AVHDX files a real host leaves on the VM after the job (field failures 24, 41:
    /// a failed merge); I3 accepts exactly these on that VM and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avhdx_left: Option<u32>,
    /// How the VM's CSV software snapshot is read: `direct` on the coordinator node,
    /// `over_smb` from any other (field failure 38).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_read: Option<CsvIo>,
}

named_enum! {
    /// How a node reaches a CSV's snapshot (field failure 38).
    pub enum CsvIo ("CSV read") {
        /// The reading node is the coordinator: direct I/O.
        Direct = "direct",
        /// Another node: through the coordinator, over SMB (slow).
        OverSmb = "over_smb",
    }
}

/// Bounds on the time the VM is not running, in virtual time (I4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downtime {
    #[serde(default)]
    pub min: VirtualTime,
    pub max: VirtualTime,
}

impl Scenario {
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|vm| vm.name == name)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|host| host.name == name)
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|volume| volume.name == name)
    }

    /// The coordinator node of `volume` when it is a CSV snapshotted by the system
    /// (software) provider (field failure 38).
    pub fn csv_software_coordinator(&self, volume: &str) -> Option<&str> {
        let v = self
            .volume(volume)
            .filter(|v| v.csv && v.provider == ProviderKind::System)?;
        v.coordinator
            .as_deref()
            .or_else(|| self.cluster.as_ref()?.nodes.first().map(String::as_str))
    }

    /// The name of the volume holding `disk`: its own, or its share's (`\\fs1\vms`).
    pub fn disk_volume<'a>(&'a self, disk: &'a Disk) -> Option<&'a str> {
        if let Some(v) = &disk.volume {
            return Some(v);
        }
        let share = disk.share.as_deref()?;
        let (server, name) = share.trim_start_matches('\\').split_once('\\')?;
        let fs = self
            .file_servers
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(server))?;
        fs.shares
            .iter()
            .find(|sh| sh.name.eq_ignore_ascii_case(name))
            .map(|sh| sh.volume.as_str())
    }

    /// True when the scenario provokes a failure: a fault, a failing writer, or a Linux
    /// daemon that is missing or hangs.
    pub fn injects_failure(&self) -> bool {
        !self.faults.is_empty()
            || self.vms.iter().any(|vm| {
                vm.guest.writers.iter().any(|w| w.fail_at.is_some())
                    || vm
                        .guest
                        .vss_daemon
                        .as_ref()
                        .is_some_and(|d| *d != DaemonState::Running)
                    || !vm.guest.frozen_by_admin.is_empty()
            })
    }
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn running() -> VmState {
    VmState::Running
}
fn production() -> CheckpointSetting {
    CheckpointSetting::Production
}
fn system_provider() -> ProviderKind {
    ProviderKind::System
}
fn on_host() -> BackupMode {
    BackupMode::OnHost
}
fn provider_veto() -> Hresult {
    Hresult::VssEProviderVeto
}
fn default_block_size() -> Bytes {
    Bytes(32 << 20)
}

impl HyperVVersion {
    /// Whether this version is `min` or a later one.
    pub fn at_least(self, min: HyperVVersion) -> bool {
        fn rank(v: HyperVVersion) -> u8 {
            match v {
                HyperVVersion::V2008R2 => 0,
                HyperVVersion::V2012 => 1,
                HyperVVersion::V2012R2 => 2,
                HyperVVersion::V2016 => 3,
                HyperVVersion::V2019 => 4,
                HyperVVersion::V2022 => 5,
                HyperVVersion::V2025 => 6,
            }
        }
        rank(self) >= rank(min)
    }

    /// R6: the name the host gives the backup integration service in a VM's settings.
    pub fn backup_service_label(self) -> &'static str {
        if self.at_least(HyperVVersion::V2016) {
            "Backup (volume shadow copy)"
        } else if self.at_least(HyperVVersion::V2012R2) {
            "Backup (volume checkpoint)"
        } else {
            "Backup (volume snapshot)"
        }
    }
}
