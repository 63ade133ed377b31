//! CSV software snapshots (field failure 38, SPEC R10), on a real run: the snapshot is
//! made on the coordinator node with redirected I/O, and a node that is not the
//! coordinator reads it over SMB; the story and the report say so.

mod library;

use hvsim_sim::scenario::CsvIo;

use library::told;

#[test]
fn a_non_coordinator_node_reads_the_csv_snapshot_over_smb() {
    let out = told("r10-csv-software-snapshot-non-coordinator");
    let commit = out
        .story
        .iter()
        .find(|l| l.contains("HostProvider@node2: CommitSnapshots"))
        .expect("the host provider commits");
    assert!(
        commit.contains(
            "csv=C:\\ClusterStorage\\Volume1: software snapshot made on the coordinator node \
             node1; redirected I/O while it is created"
        ),
        "{commit}"
    );
    let read = out
        .story
        .iter()
        .find(|l| l.contains("Requester: ReadBackup"))
        .expect("the requester reads");
    assert!(
        read.contains(
            "csv_read=C:\\ClusterStorage\\Volume1: read by node2 over SMB from the coordinator \
             node node1"
        ),
        "{read}"
    );
    let r = &out.report;
    let vm = r.vms.iter().find(|v| v.vm == "app01").expect("reported");
    assert_eq!(
        vm.csv_reads.iter().map(|(io, _)| *io).collect::<Vec<_>>(),
        vec![CsvIo::OverSmb]
    );
    assert!(r.to_string().contains("read by node2 over SMB"), "{r}");
    assert!(r.passed(), "{r}");
}
