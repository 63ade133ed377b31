//! Checkpoints and snapshots as marks on their volume's lane: a checkpoint taken or
//! merged on the volume that holds the VM's disk, a shadow copy committed or deleted on
//! each volume it covers. A mark whose volume has no lane (a guest's own volume, `C:`)
//! goes on the lane of the actor that made it.

use serde::Serialize;

use crate::scenario::Scenario;

use super::{Layout, Row};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    pub lane: usize,
    pub row: usize,
    /// "checkpoint", "checkpoint merged", "snapshot" or "snapshot deleted".
    pub kind: &'static str,
    /// What the mark is of: a file name or volume name.
    pub label: String,
}

/// The volume holding the disk of which `file` (an AVHDX, `disk_1_<GUID>.avhdx`) is a
/// checkpoint: the disk whose file name without extension starts it, longest first.
fn checkpoint_volume<'a>(scenario: &'a Scenario, file: &str) -> Option<&'a str> {
    scenario
        .vms
        .iter()
        .flat_map(|vm| &vm.disks)
        .filter(|d| {
            let stem = d.file.rsplit_once('.').map_or(d.file.as_str(), |(s, _)| s);
            file.starts_with(stem)
        })
        .max_by_key(|d| d.file.len())
        .and_then(|d| scenario.disk_volume(d))
}

pub fn marks(scenario: &Scenario, layout: &Layout, rows: &[Row]) -> Vec<Mark> {
    let mut marks = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let text = |key: &str| row.details.get(key).and_then(|v| v.as_str());
        let mut put = |lanes: Vec<usize>, kind: &'static str, label: &str| {
            let lanes = if lanes.is_empty() {
                vec![row.lane]
            } else {
                lanes
            };
            for lane in lanes {
                marks.push(Mark {
                    lane,
                    row: i,
                    kind,
                    label: label.to_owned(),
                });
            }
        };
        let checkpoint = match row.event.as_str() {
            "TakeCheckpoint" => Some(("checkpoint", text("created"))),
            "MergeCheckpoint" => Some(("checkpoint merged", text("merging"))),
            _ => None,
        };
        if let Some((kind, Some(file))) = checkpoint {
            let lanes = checkpoint_volume(scenario, file)
                .and_then(|v| layout.volume(v))
                .into_iter()
                .collect();
            put(lanes, kind, file);
            continue;
        }
        // The host's File Share Shadow Copy Provider only relays a commit over MS-FSRVP:
        // the file server's own provider takes the snapshot, and is marked.
        let relay = layout.lanes[row.lane].name.starts_with("FssProvider@");
        let snapshot = match row.event.as_str() {
            "CommitSnapshots" if !relay => Some("snapshot"),
            "DeleteSnapshots" => Some("snapshot deleted"),
            "AbortSnapshots" if text("deleted").is_some() => Some("snapshot deleted"),
            _ => None,
        };
        if let (Some(kind), Some(volumes)) = (snapshot, text("volumes")) {
            let lanes = volumes
                .split(", ")
                .filter_map(|v| layout.volume(v))
                .collect();
            let label = text("snapshot").or(text("deleted")).unwrap_or(volumes);
            put(lanes, kind, label);
        }
    }
    marks
}
