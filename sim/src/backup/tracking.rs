//! Change tracking between two recovery points: how it is lost (field failures 33, 34,
//! 36), and the query an incremental starts with. A tracker that cannot answer for the
//! replica's reference point makes the point a full read, named with its cause; it never
//! fails the job, as a real host's change query error does not.

use hvsim_engine::rct::RefPoint;

use super::replica::Replica;
use crate::scenario::TrackingLoss;
use crate::world::VmLab;

/// Loses `vm`'s change tracking as `cause` says; `baseline` is the reference point per
/// disk the replica's next incremental would start from. Returns what happened.
pub fn lose(vm: &mut VmLab, baseline: &[Option<RefPoint>], cause: TrackingLoss) -> String {
    let name = vm.name.clone();
    for (i, d) in vm.disks.iter_mut().enumerate() {
        let Some(t) = d.rct.as_mut() else { continue };
        match cause {
            TrackingLoss::ReferencePointDeleted => {
                if let Some(Some(rp)) = baseline.get(i) {
                    t.retire(rp);
                }
            }
            TrackingLoss::OwnerNodeChanged => t.reset(
                "the owner node changed in a failed live migration: the change tracking \
                 is not comparable",
            ),
            TrackingLoss::Damaged => t.reset("the change-tracking files (.rct, .mrt) are damaged"),
        }
    }
    match cause {
        TrackingLoss::ReferencePointDeleted => {
            format!("{name}: the retained reference point was deleted")
        }
        TrackingLoss::OwnerNodeChanged => {
            format!("{name}: a failed live migration changed the owner node")
        }
        TrackingLoss::Damaged => format!("{name}: the change-tracking files were damaged"),
    }
}

/// Why `vm`'s change tracking cannot answer for `replica`'s reference points (the
/// incremental's change query errors with "full backup required"), if it cannot.
pub fn why_full(vm: &VmLab, replica: Option<&Replica>) -> Option<String> {
    let replica = replica?;
    for (d, rp) in vm.disks.iter().zip(&replica.baseline) {
        let (Some(t), Some(rp)) = (d.rct.as_ref(), rp) else {
            continue;
        };
        match t.changed_since(rp) {
            Err(e) if e.needs_full_backup() => return Some(format!("{}: {e}", d.file)),
            _ => {}
        }
    }
    None
}
