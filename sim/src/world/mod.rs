//! The world of one run: volumes holding real VHDX/AVHDX files, the VMs with their disk
//! chains and guest volumes, and the oracle of what each disk must hold. The scheduler
//! owns it and lends it to one actor at a time, through the actor's `cx`.

mod auto_recovery;
mod backup_window;
mod build;
mod image;
mod observed;
mod oracle;
mod storage_move;

pub use auto_recovery::{AutoRecovery, RollbackError};
pub use backup_window::{BackupWindow, WindowState};
pub(crate) use build::disk_volume;
pub use build::{build_lab, space_problems, BuildError};
pub use image::{SparseImage, PAGE};
pub use observed::{level_now, Fixed, Fixing, Observed};
pub use oracle::{Oracle, Point};

use std::collections::BTreeMap;
use std::rc::Rc;

use hvsim_engine::chain::{ChainError, DiskChain, Merge};
use hvsim_engine::disk::{VirtualDisk, VirtualDiskMut};
use hvsim_engine::guest::{GuestSnapshotError, GuestVolume, InternalSnapshot};
use hvsim_engine::rct::{ChangeTracker, RctError, RefPoint};
use hvsim_engine::vhdx::VhdxError;
use hvsim_engine::volume::{SnapshotId, Volume};
use hvsim_engine::{AnyDisk, GuidGen, Vhdx};

use crate::plan::Plan;
use crate::scenario::{FileSystem, GuestOs, HyperVVersion, Scenario};

/// Whether a VM runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    Running,
    /// Paused by the administrator: its memory stays in RAM, its guest runs no code and
    /// writes nothing, its disks stay open.
    Paused,
    /// Paused with its memory written to disk (R2, R3, F5.4a).
    Saved,
    Off,
}

impl Power {
    pub fn name(self) -> &'static str {
        match self {
            Power::Running => "running",
            Power::Paused => "paused",
            Power::Saved => "saved",
            Power::Off => "off",
        }
    }
}

/// A volume inside the guest, on one of the VM's disks.
#[derive(Debug)]
pub struct GuestVol {
    pub mount: String,
    pub fs: FileSystem,
    pub layout: GuestVolume,
    /// The guest software provider's internal snapshot (F1.5), while it exists.
    pub internal: Option<InternalSnapshot>,
    /// Bytes at the start of the volume's data the workload writes in.
    pub hot: u64,
    pub page_file: bool,
}

impl GuestVol {
    /// R14: where the guest keeps its page file on this volume, as pages `[from, to)` of
    /// the volume's data: the last quarter of its hot area.
    pub fn page_file_pages(&self) -> (u64, u64) {
        let hot = self.hot / PAGE;
        (hot * 3 / 4, hot)
    }
}

/// One virtual disk of a VM: its chain of files on a volume, open while the VM runs.
#[derive(Debug)]
pub struct DiskLab {
    pub file: String,
    pub volume: String,
    pub chain: DiskChain,
    /// The chain open for the VM, in its own format (VHD for 2008 R2, else VHDX).
    pub live: Option<AnyDisk>,
    /// An online merge of the active disk into its parent.
    pub merge: Option<Merge>,
    pub vols: Vec<GuestVol>,
    pub block_size: u64,
    /// Resilient change tracking of the virtual disk (incremental jobs only): every
    /// guest write is stamped, and a reference point closes each consistency point.
    pub rct: Option<ChangeTracker>,
    /// The chain's files when the run started (its base, and the checkpoints a starting
    /// state left, FF22): I3 measures what the run left against them.
    pub at_start: Vec<String>,
}

/// A writer that mirrors guest writes into a merge target while a merge runs.
struct Merging<'a> {
    merge: &'a Merge,
    disk: &'a mut Vhdx,
}

impl VirtualDisk for Merging<'_> {
    fn virtual_size(&self) -> u64 {
        self.disk.virtual_size()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        self.disk.read(offset, buf)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        self.disk.range_has_data(offset, len)
    }
    fn data_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        self.disk.data_ranges(unit)
    }
    fn stored_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        self.disk.stored_ranges(unit)
    }
}

impl VirtualDiskMut for Merging<'_> {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        self.merge.write(self.disk, offset, data)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        self.merge.trim(self.disk, offset, len)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        self.disk.flush()?;
        match self.disk.parent_mut() {
            Some(p) if p.is_writable() => p.flush(),
            _ => Ok(()),
        }
    }
}

/// A VM's disk could not be opened, closed or written.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{file} is not open")]
    NotOpen { file: String },
    #[error("{file}: {source}")]
    Image {
        file: String,
        #[source]
        source: VhdxError,
    },
    #[error("{file}: {source}")]
    Guest {
        file: String,
        #[source]
        source: GuestSnapshotError,
    },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("{file}: change tracking: {source}")]
    ChangeTracking {
        file: String,
        #[source]
        source: RctError,
    },
    /// A storage live migration could not copy the file to its new volume (R11).
    #[error("{file}: moving it to volume {volume}: {detail}")]
    Move {
        file: String,
        volume: String,
        detail: String,
    },
}

impl DiskLab {
    /// R14: the page file areas of the disk's guest volumes that hold one, as disk byte
    /// ranges `(offset, length)`.
    pub fn page_file_ranges(&self) -> Vec<(u64, u64)> {
        self.vols
            .iter()
            .filter(|v| v.page_file)
            .map(|v| {
                let (from, to) = v.page_file_pages();
                (v.layout.start + from * PAGE, (to - from) * PAGE)
            })
            .collect()
    }

    fn image_error(&self) -> impl FnOnce(VhdxError) -> DiskError + '_ {
        |source| DiskError::Image {
            file: self.chain.active().to_string(),
            source,
        }
    }

    /// Reopens the chain for the VM (and its parent writable while a merge runs).
    pub fn reopen(&mut self, parent_writable: bool, guids: &mut GuidGen) -> Result<(), DiskError> {
        if let Some(d) = self.live.take() {
            d.close().map_err(self.image_error())?;
        }
        let d = self.chain.open_any(true, parent_writable, guids)?;
        self.live = Some(d);
        Ok(())
    }

    /// Closes the open chain (the VM lets go of its files).
    pub fn close(&mut self) -> Result<(), DiskError> {
        if let Some(d) = self.live.take() {
            d.close().map_err(self.image_error())?;
        }
        Ok(())
    }

    /// A guest write to volume `vol` at `offset` of its data.
    pub fn write(&mut self, vol: usize, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let Some(live) = self.live.as_mut() else {
            return Err(DiskError::NotOpen {
                file: self.file.clone(),
            });
        };
        let v = &mut self.vols[vol];
        let r = match (&self.merge, live.as_vhdx_mut()) {
            (Some(m), Some(disk)) => {
                let mut w = Merging { merge: m, disk };
                v.layout.write(&mut w, &mut v.internal, offset, data)
            }
            // A merge is only ever started on a VHDX chain.
            (Some(_), None) => {
                return Err(DiskError::Chain(ChainError::NotVhdx {
                    file: self.chain.base().to_string(),
                    what: "a merge",
                }))
            }
            (None, _) => v.layout.write(live, &mut v.internal, offset, data),
        };
        r.map_err(|source| DiskError::Guest {
            file: self.chain.active().to_string(),
            source,
        })
    }
}

/// A Hyper-V-VMMS event raised during the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaisedEvent {
    pub id: u32,
    pub host: String,
    pub text: String,
}

/// One VM of the world.
#[derive(Debug)]
pub struct VmLab {
    pub name: String,
    pub host: String,
    pub host_version: HyperVVersion,
    pub os: GuestOs,
    pub power: Power,
    pub power_before: Power,
    /// When the VM was saved, for downtime.
    pub saved_at_us: Option<u64>,
    pub downtime_us: u64,
    /// Application writers are frozen: no new transactions (F5 writer duty 2).
    pub frozen: bool,
    /// Every guest write is held (flush-and-hold in the guest, or the VM is saved).
    pub held: bool,
    /// Linux: the mounts frozen in the guest now (FIFREEZE not undone), in freeze order.
    pub fs_frozen: Vec<String>,
    /// Linux: `hv_vss_daemon` exited while the guest ran; what it froze stays frozen, as
    /// FIFREEZE outlives the process and the kernel's timers thaw nothing (field failure
    /// 18).
    pub daemon_exited: bool,
    /// The guest's answer to HOT_BACKUP asked for no auto-recovery checkpoint
    /// (VSS_HBU_NO_AUTO_RECOVERY, R5): F2.6 and F2.10 are skipped for it.
    pub no_auto_recovery: bool,
    /// Application writers in the guest (VSS writers besides the system's).
    pub writers: usize,
    pub disks: Vec<DiskLab>,
    pub oracle: Oracle,
    /// Serial of the next write, for deterministic data.
    pub next_serial: u64,
    /// Per captured point kind: the RCT reference point of each disk made at the capture.
    pub rct_points: Vec<(Point, Vec<Option<RefPoint>>)>,
    /// Live migrations the cluster was asked for during the job, and its answers (R11).
    pub migrations: Vec<crate::protocol::hyperv::migration::Migration>,
    /// How each CSV snapshot read of the VM went (field failure 38).
    pub csv_reads: Vec<(crate::scenario::CsvIo, String)>,
    /// The guest application's undo log of its open transaction (written, not yet
    /// committed): what its VSS writer rolls back in an auto-recoverable snapshot
    /// (F2.10). Cleared by the commit record.
    pub undo: Vec<UndoPage>,
    /// The writer of the application whose transactions the workload writes: the
    /// guest's first SQL or Exchange writer (the model's reading); None when it has none,
    /// and then nobody undoes them.
    pub app_writer: Option<String>,
    /// The auto-recovery checkpoint Vmms made for this backup (F2.6), until it is
    /// deleted on the live volume (F2.12).
    pub auto_recovery: Option<AutoRecovery>,
    /// With `window = "backup"`, when its workload writes (issue 11 §3); None when it
    /// writes for the whole job.
    pub window: Option<BackupWindow>,
}

/// One page of an open transaction's undo log: its bytes before the transaction wrote
/// it, read back from the disk, at a byte offset of the virtual disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoPage {
    pub disk: usize,
    pub offset: u64,
    pub before: Vec<u8>,
    /// The writer whose application wrote it: the one that undoes it (F2.10).
    pub writer: Option<String>,
}

impl VmLab {
    /// Whether the guest can write now.
    pub fn can_write(&self) -> bool {
        self.power == Power::Running && !self.held
    }

    /// A completed guest write: to the disk, then to the oracle.
    pub fn guest_write(
        &mut self,
        disk: usize,
        vol: usize,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), DiskError> {
        self.disks[disk].write(vol, offset, &data)?;
        let at = self.disks[disk].vols[vol].layout.start + offset;
        let d = &mut self.disks[disk];
        if let Some(t) = d.rct.as_mut() {
            t.record_write(at, data.len() as u64)
                .map_err(|source| DiskError::ChangeTracking {
                    file: d.file.clone(),
                    source,
                })?;
        }
        self.oracle.completed(disk, at, data);
        Ok(())
    }

    /// A write of the application's open transaction: before it, the application logs
    /// the bytes of each page it overwrites for the first time in this transaction, as
    /// the disk holds them (its undo log; the oracle keeps its own account).
    pub fn transaction_write(
        &mut self,
        disk: usize,
        vol: usize,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), DiskError> {
        let at = self.disks[disk].vols[vol].layout.start + offset;
        let d = &mut self.disks[disk];
        let Some(live) = d.live.as_mut() else {
            return Err(DiskError::NotOpen {
                file: d.file.clone(),
            });
        };
        let fresh = |page: &u64| {
            !self
                .undo
                .iter()
                .any(|u| u.disk == disk && u.offset == *page)
        };
        let pages: Vec<u64> = (at..at + data.len() as u64)
            .step_by(PAGE as usize)
            .filter(fresh)
            .collect();
        if !pages.is_empty() {
            // One read of the whole range: the pages the transaction has not written yet
            // are kept from it.
            let mut range = vec![0u8; data.len()];
            live.read(at, &mut range)
                .map_err(|source| DiskError::Image {
                    file: d.chain.active().to_string(),
                    source,
                })?;
            for page in pages {
                let from = (page - at) as usize;
                self.undo.push(UndoPage {
                    disk,
                    offset: page,
                    before: range[from..from + PAGE as usize].to_vec(),
                    writer: self.app_writer.clone(),
                });
            }
        }
        // With no application writer nobody undoes the transaction: the oracle's
        // recovered image keeps it, as the snapshot does.
        if self.app_writer.is_some() {
            self.oracle.transaction_write(disk, at, data.len() as u64);
        }
        self.guest_write(disk, vol, offset, data)
    }

    /// The open transaction's commit record is on disk: nothing is left to undo.
    pub fn commit(&mut self) {
        self.undo.clear();
        self.oracle.commit();
    }

    /// With change tracking, closes the RCT epoch with a reference point at this instant,
    /// kept as `point`'s: the next incremental reads what changed after it.
    pub fn capture(&mut self, point: Point) {
        if self.disks.iter().all(|d| d.rct.is_none()) {
            return;
        }
        let refs = self
            .disks
            .iter_mut()
            .map(|d| d.rct.as_mut().and_then(|t| t.create_reference_point().ok()))
            .collect();
        self.rct_points.retain(|(p, _)| *p != point);
        self.rct_points.push((point, refs));
    }

    /// Deterministic page contents for the next write of `pages` pages.
    pub fn next_data(&mut self, pages: u64, tag: u8) -> Vec<u8> {
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut v = vec![0u8; (pages * PAGE) as usize];
        write_data(serial, tag, &mut v);
        v
    }
}

/// The bytes of the workload's write number `serial` with kind `tag`: never zero in any
/// 8-byte word, distinct per write. The guest agent of a real host writes the same
/// pattern (hvsim-agent's tests compare it with this one), so its log is judged as this
/// oracle is.
pub fn write_data(serial: u64, tag: u8, out: &mut [u8]) {
    let base = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(tag);
    // Exact 8-byte chunks: a loop without bounds checks, which the compiler vectorises
    // (every byte the workload writes in a run is made here).
    for (i, w) in (0u64..).zip(out.chunks_exact_mut(8)) {
        let x = base.wrapping_add(i.wrapping_mul(0xD1B5_4A32_D192_ED03)) | 1;
        w.copy_from_slice(&x.to_le_bytes());
    }
}

/// A volume snapshot a provider made, as the requester sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shadow {
    pub volume: String,
    pub id: SnapshotId,
    /// Exposed under this name (an SMB share `\\fs\share@{GUID}`), if any.
    pub exposed: Option<String>,
}

/// Everything storage-shaped of one run.
pub struct Lab {
    pub scenario: Rc<Scenario>,
    pub volumes: BTreeMap<String, Volume>,
    pub vms: Vec<VmLab>,
    pub events: Vec<RaisedEvent>,
    /// Volume snapshots that exist, by snapshot set.
    pub shadows: BTreeMap<u64, Vec<Shadow>>,
    /// The plan of each VM of the job.
    pub plans: BTreeMap<usize, Plan>,
    /// What storage showed step by step: written only by the scheduler's after-step
    /// call, never by an actor (the field is private to this module).
    observed: Observed,
}

impl Lab {
    /// The first I/O error of this machine under a volume's folder on disk, if any.
    pub fn host_io_error(&self) -> Option<String> {
        self.volumes.values().find_map(Volume::host_io_error)
    }

    /// What the run's observer saw of storage (the oracle's instants, for I2).
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    pub fn vm_index(&self, name: &str) -> Option<usize> {
        self.vms.iter().position(|v| v.name == name)
    }

    /// The SPEC.md item of a stage of `vm`'s flow ("" when none).
    pub fn spec(&self, vm: usize, stage: crate::plan::Stage) -> &'static str {
        let off_host = self.scenario.job.mode == crate::scenario::BackupMode::OffHost;
        self.plans.get(&vm).map_or("", |p| p.spec(stage, off_host))
    }

    /// Raises a Hyper-V-VMMS event on `host`: its meaning on that host's version, then
    /// what it is about.
    pub fn raise(&mut self, id: u32, host: &str, about: impl Into<String>) {
        let version = self
            .scenario
            .hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.version);
        let meaning = version.and_then(|v| crate::events::meaning(id, v));
        let about = about.into();
        self.events.push(RaisedEvent {
            id,
            host: host.to_string(),
            text: match meaning {
                Some(m) => format!("{m} ({about})"),
                None => about,
            },
        });
    }
}

impl Lab {
    /// The observer's look after a step of the run; `point` is the recovery point being
    /// made (0 before the first).
    pub fn observe(&mut self, step: u64, point: u32) {
        self.observed
            .after_step(step, point, &self.volumes, &self.vms);
    }

    /// A cheap digest of the storage state: files and lengths on every volume, snapshots,
    /// and each VM's power, flags and oracle position.
    pub fn digest(&self, h: &mut blake3::Hasher) {
        for (name, v) in &self.volumes {
            h.update(name.as_bytes());
            for f in v.list() {
                h.update(f.as_bytes());
                h.update(&v.file_len(&f).unwrap_or(0).to_le_bytes());
            }
            for s in v.snapshots() {
                h.update(&s.to_le_bytes());
            }
        }
        for vm in &self.vms {
            h.update(vm.power.name().as_bytes());
            h.update(&[u8::from(vm.frozen), u8::from(vm.held)]);
            h.update(&vm.downtime_us.to_le_bytes());
            h.update(&vm.next_serial.to_le_bytes());
            vm.oracle.digest(h);
            for d in &vm.disks {
                for f in &d.chain.files {
                    h.update(f.as_bytes());
                }
                h.update(&[u8::from(d.merge.is_some())]);
            }
        }
    }
}
