//! Cluster Shared Volume software snapshots (SPEC R10, field failure 38): the system
//! provider's snapshot of a CSV is made on the CSV's coordinator node, the CSV runs in
//! redirected I/O (every node's writes go through the coordinator over SMB) while it is
//! created, and a node that is not the coordinator reads the snapshot over SMB.

pub use crate::scenario::CsvIo;

/// The story's line for the creation of `volume`'s software snapshot.
pub fn creation(volume: &str, coordinator: &str) -> String {
    format!(
        "{volume}: software snapshot made on the coordinator node {coordinator}; redirected \
         I/O while it is created"
    )
}

/// How `reader` reads the snapshot of `volume` coordinated by `coordinator`, and the line
/// that says so.
pub fn read(volume: &str, coordinator: &str, reader: &str) -> (CsvIo, String) {
    if reader == coordinator {
        (
            CsvIo::Direct,
            format!("{volume}: read by {reader}, the coordinator node, with direct I/O"),
        )
    } else {
        (
            CsvIo::OverSmb,
            format!("{volume}: read by {reader} over SMB from the coordinator node {coordinator}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_is_not_the_coordinator_reads_over_smb() {
        assert_eq!(read("V1", "node1", "node2").0, CsvIo::OverSmb);
        assert_eq!(read("V1", "node1", "node1").0, CsvIo::Direct);
        assert!(read("V1", "node1", "node2")
            .1
            .contains("over SMB from the coordinator node node1"));
        assert!(creation("V1", "node1").contains("on the coordinator node node1; redirected I/O"));
    }
}
