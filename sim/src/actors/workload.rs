//! `Workload`: what the guest writes while the job runs (section 3 of the simulator
//! issue): application transactions (blocks plus a commit record) that stop while the
//! writers are frozen, file-system metadata, and the page file (R14). A transaction with
//! a commit record stays open until the next one begins: its commit record is written
//! then, so a snapshot can hold an open transaction, which the application's writer
//! undoes in an auto-recoverable snapshot (F2.10). Writes are held
//! during flush-and-hold and while the VM is saved; each completed write goes to the
//! oracle.

use crate::protocol::msg::Msg;
use crate::scenario::Workload as Spec;
use crate::sched::{Actor, Cx, Detail, Envelope};
use crate::site::Site;
use crate::world::PAGE;

/// No workload step is scheduled past this virtual time.
pub const WORKLOAD_CAP_US: u64 = 4 * 3_600_000_000;

pub struct Workload {
    name: String,
    vm: usize,
    spec: Spec,
    /// Ticks after this virtual time are not scheduled (the job is over).
    pub until_us: u64,
    ticks: u64,
    /// A write failed: the guest saw an I/O error (I1 then judges what was lost).
    pub errors: u64,
    /// The open transaction's commit record: disk, guest volume, offset and bytes.
    commit: Option<(usize, usize, u64, Vec<u8>)>,
}

impl Workload {
    pub fn new(vm_name: &str, vm: usize, spec: Spec, until_us: u64) -> Self {
        Workload {
            name: format!("Workload@{vm_name}"),
            vm,
            spec,
            until_us,
            ticks: 0,
            errors: 0,
            commit: None,
        }
    }

    /// Operations per virtual second of each kind: transactions, metadata, page file
    /// (u64: three u32 rates never wrap).
    fn rates(spec: &Spec) -> [u64; 3] {
        [
            spec.transactions.as_ref().map_or(0, |t| t.rate),
            spec.metadata_writes.as_ref().map_or(0, |r| r.rate),
            spec.page_file_writes.as_ref().map_or(0, |r| r.rate),
        ]
        .map(u64::from)
    }

    /// Operations per virtual second, all kinds together.
    pub fn rate(spec: &Spec) -> u64 {
        Self::rates(spec).iter().sum()
    }

    fn step(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let rates = Self::rates(&self.spec);
        let total = Self::rate(&self.spec);
        if total == 0 {
            return;
        }
        let pick = cx.out.choose(total);
        let lab = &mut cx.world.lab;
        let vm = &mut lab.vms[self.vm];
        let op = match decide(rates, pick, vm.can_write(), vm.frozen) {
            Decision::Held => {
                cx.out.detail("held", true);
                return;
            }
            Decision::Paused => {
                cx.out.detail("paused", "writers frozen");
                return;
            }
            Decision::Write(op) => op,
        };
        // Every guest volume of the VM's open disks, as (disk, volume).
        let vols: Vec<(usize, usize)> = vm
            .disks
            .iter()
            .enumerate()
            .filter(|(_, d)| d.live.is_some())
            .flat_map(|(i, d)| (0..d.vols.len()).map(move |v| (i, v)))
            .collect();
        let Some(&first) = vols.first() else {
            return;
        };
        // The volume of the transactions, or the first.
        let (d, txn_vol) = self
            .spec
            .transactions
            .as_ref()
            .and_then(|t| t.volume.as_ref())
            .and_then(|m| {
                vols.iter()
                    .copied()
                    .find(|&(d, v)| &vm.disks[d].vols[v].mount == m)
            })
            .unwrap_or(first);
        let hot_pages = vm.disks[d].vols[txn_vol].hot / PAGE;
        let r = if op == Op::Transaction {
            let spec = self.spec.transactions.clone().expect("rate > 0");
            let blocks = u64::from(spec.blocks.max(1));
            let mut r = Ok(());
            // The previous transaction commits before this one begins.
            if let Some((cd, cv, at, data)) = self.commit.take() {
                r = vm.guest_write(cd, cv, at, data);
                if r.is_ok() {
                    vm.commit();
                }
            }
            for _ in 0..blocks {
                // Database pages in the second quarter of the hot area.
                let page = hot_pages / 4 + cx.out.choose((hot_pages / 4).max(1));
                let data = vm.next_data(2, 0xDB);
                let at = page.min(hot_pages.saturating_sub(2)) * PAGE;
                r = r.and(if spec.commit_record {
                    vm.transaction_write(d, txn_vol, at, data)
                } else {
                    vm.guest_write(d, txn_vol, at, data)
                });
            }
            if spec.commit_record {
                let page = hot_pages / 2 + cx.out.choose((hot_pages / 8).max(1));
                let data = vm.next_data(1, 0xC0);
                self.commit = Some((d, txn_vol, page * PAGE, data));
            }
            cx.out.record(
                "Transaction",
                [
                    ("blocks", Detail::U64(blocks)),
                    (
                        "volume",
                        Detail::Text(vm.disks[d].vols[txn_vol].mount.clone()),
                    ),
                ],
            );
            r
        } else if op == Op::Metadata {
            let (d, v) = vols[cx.out.choose(vols.len() as u64) as usize];
            let pages = (vm.disks[d].vols[v].hot / PAGE / 4).max(1);
            let page = cx.out.choose(pages);
            let data = vm.next_data(1, 0x4D);
            cx.out.record(
                "FileSystemMetadata",
                [("volume", Detail::Text(vm.disks[d].vols[v].mount.clone()))],
            );
            vm.guest_write(d, v, page * PAGE, data)
        } else {
            let (d, v) = vols
                .iter()
                .copied()
                .find(|&(d, v)| vm.disks[d].vols[v].page_file)
                .unwrap_or(first);
            let (from, hot) = vm.disks[d].vols[v].page_file_pages();
            let page = from + cx.out.choose((hot / 4).saturating_sub(4).max(1));
            let data = vm.next_data(4, 0x9F);
            cx.out.record(
                "PageFileWrite",
                [("volume", Detail::Text(vm.disks[d].vols[v].mount.clone()))],
            );
            vm.guest_write(d, v, page.min(hot.saturating_sub(4)) * PAGE, data)
        };
        if let Err(e) = r {
            self.errors += 1;
            cx.out.detail("io_error", e.to_string());
        }
    }
}

impl Actor<Msg, Site> for Workload {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        if !matches!(env.msg, Msg::Tick) {
            return;
        }
        if cx.world.vms[self.vm].window_over() {
            // Its backup is read: the guest's workload has stopped (issue 11 §3).
            return;
        }
        self.ticks += 1;
        self.step(cx);
        let rate = Self::rate(&self.spec).max(1);
        let mean = 1_000_000 / rate;
        let next = mean / 2 + cx.out.choose(mean.max(1));
        let done = cx.world.server.job.done;
        if !done && cx.out.now_us() + next <= self.until_us {
            cx.out.set_timer(next.max(1), Msg::Tick);
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.ticks.to_le_bytes());
        h.update(&self.errors.to_le_bytes());
        h.update(&[u8::from(self.commit.is_some())]);
    }
}

/// What one workload step writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Database blocks and a commit record on the transactions' volume.
    Transaction,
    /// A file-system metadata page on any volume.
    Metadata,
    /// Page-file pages (R14: excluded from backups, never judged by I2).
    PageFile,
}

/// The decision of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// The VM cannot write: flush-and-hold holds its writes, or it is not running.
    Held,
    /// The application's writer is frozen: it issues no transaction until thawed (its
    /// other writes go on: the file system and the page file are not VSS writers).
    Paused,
    Write(Op),
}

/// Picks the step's operation: `pick` is uniform below the sum of `rates`
/// (transactions, metadata, page file per virtual second), so each kind comes in
/// proportion to its rate.
fn decide(rates: [u64; 3], pick: u64, can_write: bool, frozen: bool) -> Decision {
    let [t, m, _] = rates;
    if !can_write {
        return Decision::Held;
    }
    let op = if pick < t {
        Op::Transaction
    } else if pick < t + m {
        Op::Metadata
    } else {
        Op::PageFile
    };
    if op == Op::Transaction && frozen {
        return Decision::Paused;
    }
    Decision::Write(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u64; 3] = [40, 10, 5];

    fn kinds(can_write: bool, frozen: bool) -> Vec<Decision> {
        (0..RATES.iter().sum())
            .map(|pick| decide(RATES, pick, can_write, frozen))
            .collect()
    }

    fn count(d: &[Decision], want: Decision) -> usize {
        d.iter().filter(|&&x| x == want).count()
    }

    #[test]
    fn each_kind_comes_in_proportion_to_its_rate() {
        let d = kinds(true, false);
        assert_eq!(count(&d, Decision::Write(Op::Transaction)), 40);
        assert_eq!(count(&d, Decision::Write(Op::Metadata)), 10);
        assert_eq!(count(&d, Decision::Write(Op::PageFile)), 5);
    }

    #[test]
    fn a_held_or_stopped_vm_writes_nothing() {
        assert!(kinds(false, false).iter().all(|&x| x == Decision::Held));
        assert!(kinds(false, true).iter().all(|&x| x == Decision::Held));
    }

    #[test]
    fn frozen_writers_pause_transactions_only() {
        let d = kinds(true, true);
        assert_eq!(count(&d, Decision::Paused), 40);
        assert_eq!(count(&d, Decision::Write(Op::Metadata)), 10);
        assert_eq!(count(&d, Decision::Write(Op::PageFile)), 5);
    }

    #[test]
    fn a_kind_with_no_rate_never_comes() {
        let d: Vec<_> = (0..15)
            .map(|p| decide([0, 10, 5], p, true, false))
            .collect();
        assert_eq!(count(&d, Decision::Write(Op::Transaction)), 0);
        assert_eq!(count(&d, Decision::Write(Op::Metadata)), 10);
    }
}
