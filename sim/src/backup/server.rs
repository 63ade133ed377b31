//! `BackupServer`: what the backup server holds and does for a job (R14, R16-R18, F5.E):
//! per VM a replica, the recovery points made of it, the figures of each point, the
//! consistency checks and the restores. It is handed the disks it reads; it knows
//! nothing of actors or of where a disk was opened.

use std::collections::BTreeMap;

use hvsim_engine::disk::VirtualDisk;
use hvsim_engine::rct::{ChangeTracker, RefPoint};

use super::check::{check_disk, CheckRecord, DiskCheck};
use super::figures::Bytes;
use super::job::JobRecord;
use super::points::{Excluded, PointFigures};
use super::replica::Replica;
use super::restore::{restore, RestoreJob, RestoreRecord};
use super::transfer::{self, DiskSync, Transfer};
use super::BackupError;
use crate::protocol::hyperv::migration::Placement;
use crate::protocol::msg::Reached;
use crate::scenario::ConsistencyCheck;
use crate::world::{SparseImage, VmLab};

#[derive(Debug, Default)]
pub struct BackupServer {
    /// Recovery points (R18, 1-based): per point, per VM, the disk images kept, for I2
    /// and I6.
    pub backups: BTreeMap<u32, BTreeMap<usize, Vec<SparseImage>>>,
    /// Per recovery point and VM, the consistency level the host claimed for its image
    /// (I2 judges it against what storage showed).
    pub levels: BTreeMap<u32, BTreeMap<usize, Reached>>,
    /// The job's end, failure and claims.
    pub job: JobRecord,
    /// The replica of each VM (the state the next point starts from).
    pub replicas: BTreeMap<usize, Replica>,
    /// Figures per recovery point attempted.
    pub points: Vec<PointFigures>,
    /// R17 consistency checks run.
    pub checks: Vec<CheckRecord>,
    /// The job's restores (R16).
    pub restores: Vec<RestoreRecord>,
    /// Bytes read, checksummed and sent for the whole job.
    pub bytes: Bytes,
    /// Disk images of the VM being transferred or checked, until it is done.
    incoming: Vec<SparseImage>,
    /// A check under way: its findings so far.
    checking: DiskCheck,
    /// What this point read per VM, kept when the point is made.
    pending: BTreeMap<usize, Vec<SparseImage>>,
}

impl BackupServer {
    /// Starts recovery point `number`.
    pub fn begin_point(&mut self, number: u32) {
        self.pending.clear();
        self.points.push(PointFigures {
            number,
            ..PointFigures::default()
        });
    }

    /// Adds figures to the job and to the current point.
    fn count(&mut self, b: Bytes) {
        self.bytes.add(b);
        if let Some(p) = self.points.last_mut() {
            p.bytes_read += b.read;
            p.bytes_hashed += b.hashed;
            p.bytes_sent += b.sent;
        }
    }

    /// How this point brings `vm`'s replica of `disks` disks up to date (see
    /// [`Transfer::choose`]); `tracked`: change tracking runs on every disk.
    pub fn transfer_for(
        &self,
        vm: usize,
        express_full: bool,
        incremental: bool,
        tracked: bool,
        disks: usize,
    ) -> Transfer {
        Transfer::choose(
            self.replicas.get(&vm),
            express_full,
            incremental && tracked,
            disks,
        )
    }

    /// Starts bringing `vm` over by `transfer`, one disk after the other.
    pub fn begin_transfer(&mut self, vm: usize, transfer: Transfer) {
        self.incoming.clear();
        if let Some(p) = self.points.last_mut() {
            p.transfers.insert(vm, transfer);
        }
    }

    /// Brings disk `i` of `vm` over from `source`. An incremental asks `tracker` (the
    /// disk's change tracking) what changed since the replica's reference point, and
    /// leaves out `excluded` (R14); `label` names the disk in errors.
    #[allow(clippy::too_many_arguments)]
    pub fn transfer_disk(
        &mut self,
        vm: usize,
        i: usize,
        transfer: Transfer,
        source: &mut (dyn VirtualDisk + Send),
        tracker: Option<&ChangeTracker>,
        excluded: &[(u64, u64)],
        label: &str,
    ) -> Result<DiskSync, BackupError> {
        let replica = self.replicas.get(&vm);
        let mut image = replica
            .and_then(|r| r.images.get(i).cloned())
            .unwrap_or_default();
        let done = match transfer {
            Transfer::Full => transfer::full(source, &mut image, label)?,
            Transfer::ExpressFull => transfer::express_full(source, &mut image, label)?,
            Transfer::Incremental => {
                let base = replica
                    .and_then(|r| r.baseline.get(i))
                    .and_then(Option::as_ref);
                let changed = match (tracker, base) {
                    (Some(t), Some(rp)) => {
                        t.changed_since(rp)
                            .map_err(|source| BackupError::ChangeTracking {
                                disk: label.to_string(),
                                source,
                            })?
                    }
                    _ => Vec::new(),
                };
                transfer::incremental(source, &mut image, &changed, excluded, label)?
            }
        };
        self.count(done.bytes);
        if let Some(p) = self.points.last_mut() {
            p.excluded
                .extend(done.excluded.iter().map(|&(offset, len)| Excluded {
                    vm,
                    disk: i,
                    offset,
                    len,
                    why: "guest page file (R14)".into(),
                }));
        }
        self.incoming.push(image);
        Ok(done)
    }

    /// Every disk of `vm` came over: the replica holds them, and the point will keep them.
    pub fn end_transfer(&mut self, vm: usize) {
        let images = std::mem::take(&mut self.incoming);
        self.replicas.entry(vm).or_default().images = images.clone();
        self.pending.insert(vm, images);
    }

    /// F5.T: the connection dropped half way through `vm`'s transfer, which had sent
    /// `sent` bytes: only the first half crossed, the replica holds part of the new data
    /// and is flagged inconsistent (R17) with `why` of the offset where the last disk was
    /// cut, which it returns.
    pub fn interrupt_transfer(
        &mut self,
        vm: usize,
        sent: u64,
        why: impl FnOnce(u64) -> String,
    ) -> String {
        let unsent = sent - sent / 2;
        self.bytes.sent -= unsent;
        if let Some(p) = self.points.last_mut() {
            p.bytes_sent -= unsent;
        }
        let incoming = std::mem::take(&mut self.incoming);
        let r = self.replicas.entry(vm).or_default();
        let why = why(r.cut_short(&incoming));
        r.inconsistent = Some(why.clone());
        why
    }

    /// Where `vm`'s last complete transfer found it (R11).
    pub fn placement(&self, vm: usize) -> Option<&Placement> {
        self.replicas.get(&vm)?.placement.as_ref()
    }

    /// `vm`'s transfer completed with the VM at `at`.
    pub fn placed(&mut self, vm: usize, at: Placement) {
        self.replicas.entry(vm).or_default().placement = Some(at);
    }

    /// Flags `vm`'s replica inconsistent (R17) for `why`.
    pub fn flag_inconsistent(&mut self, vm: usize, why: String) {
        self.replicas.entry(vm).or_default().inconsistent = Some(why);
    }

    /// Whether `vm`'s replica is flagged inconsistent (R17).
    pub fn is_inconsistent(&self, vm: usize) -> bool {
        self.replicas
            .get(&vm)
            .is_some_and(|r| r.inconsistent.is_some())
    }

    /// Starts an R17 consistency check of `vm`'s replica, one disk after the other.
    pub fn begin_check(&mut self) {
        self.incoming.clear();
        self.checking = DiskCheck::default();
    }

    /// Checks disk `i` of `vm` against `source` outside `excluded` (R14). The check's
    /// figures count for the job, not for the point.
    pub fn check_disk(
        &mut self,
        vm: usize,
        i: usize,
        source: &mut (dyn VirtualDisk + Send),
        excluded: &[(u64, u64)],
        label: &str,
    ) -> Result<(), BackupError> {
        let mut image = self
            .replicas
            .get(&vm)
            .and_then(|r| r.images.get(i).cloned())
            .unwrap_or_default();
        let c = check_disk(source, &mut image, excluded, label)?;
        self.bytes.add(c.bytes);
        let k = &mut self.checking;
        k.compared += c.compared;
        k.differing += c.differing;
        k.first_difference = k.first_difference.or(c.first_difference);
        self.incoming.push(image);
        Ok(())
    }

    /// Every disk of VM `name` (`vm`) was checked in recovery point `point`: the replica
    /// is repaired and no longer flagged; the check is recorded.
    pub fn end_check(
        &mut self,
        vm: usize,
        name: &str,
        setting: ConsistencyCheck,
        point: u32,
    ) -> &CheckRecord {
        let r = self.replicas.entry(vm).or_default();
        let reason = match (setting, &r.inconsistent) {
            (_, Some(why)) => format!("replica flagged inconsistent: {why}"),
            (ConsistencyCheck::Scheduled, None) => "scheduled".to_string(),
            _ => "on demand".to_string(),
        };
        r.images = std::mem::take(&mut self.incoming);
        r.inconsistent = None;
        let k = std::mem::take(&mut self.checking);
        self.checks.push(CheckRecord {
            vm: name.to_string(),
            setting,
            point,
            reason,
            bytes_compared: k.compared,
            bytes_differing: k.differing,
            first_difference: k.first_difference,
            repaired: k.differing > 0,
        });
        &self.checks[self.checks.len() - 1]
    }

    /// The VMs read into the current point, with their images, taken for keeping.
    pub fn take_pending(&mut self) -> BTreeMap<usize, Vec<SparseImage>> {
        std::mem::take(&mut self.pending)
    }

    /// Keeps `images` of `vm` as recovery point `n` (R18) with the `level` the host
    /// claimed for them; with `baseline`, the next incremental starts from those
    /// reference points.
    pub fn keep(
        &mut self,
        n: u32,
        vm: usize,
        images: Vec<SparseImage>,
        level: Option<Reached>,
        baseline: Option<Vec<Option<RefPoint>>>,
    ) {
        if let Some(b) = baseline {
            self.replicas.entry(vm).or_default().baseline = b;
        }
        if let Some(level) = level {
            self.levels.entry(n).or_default().insert(vm, level);
        }
        self.backups.entry(n).or_default().insert(vm, images);
    }

    /// The level the host claimed for `vm`'s image in recovery point `n`, if any.
    pub fn level(&self, n: u32, vm: usize) -> Option<Reached> {
        self.levels.get(&n)?.get(&vm).copied()
    }

    /// The current point is made (every transfer completed).
    pub fn point_made(&mut self) {
        if let Some(p) = self.points.last_mut() {
            p.made = true;
        }
    }

    /// The VMs recovery point `n` holds.
    pub fn vms_in(&self, n: u32) -> Vec<usize> {
        self.backups
            .get(&n)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    /// R16: restores recovery point `job.point` of `vm` as `job` says, and records it.
    pub fn restore(
        &mut self,
        vm: &mut VmLab,
        job: &RestoreJob<'_>,
    ) -> Result<&RestoreRecord, BackupError> {
        let images = self
            .backups
            .get(&job.point)
            .and_then(|p| p.get(&job.vm))
            .ok_or_else(|| BackupError::NoPoint {
                point: job.point,
                vm: vm.name.clone(),
            })?;
        let rec = restore(vm, images, job)?;
        self.restores.push(rec);
        Ok(&self.restores[self.restores.len() - 1])
    }

    /// Feeds the server's state into the world digest: the bytes read and sent, and the
    /// counts of points, checks and restores of jobs that make more than one point,
    /// check or restore.
    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.bytes.read.to_le_bytes());
        h.update(&self.bytes.sent.to_le_bytes());
        if self.backups.len() > 1 || !self.checks.is_empty() || !self.restores.is_empty() {
            h.update(&(self.backups.len() as u64).to_le_bytes());
            h.update(&(self.checks.len() as u64).to_le_bytes());
            h.update(&(self.restores.len() as u64).to_le_bytes());
        }
    }
}
