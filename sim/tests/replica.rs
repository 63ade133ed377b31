//! Hyper-V Replica and a backup at once (SPEC R12, field failures 24 and 41), on a real
//! run: two AVHDX files stay on the VM and the merge fails with 19100 and 0x80070299.

mod library;

use hvsim_sim::scenario::{Hresult, Outcome};

use library::told;

#[test]
fn a_replicated_vm_keeps_two_avhdx_after_a_19100_merge_failure() {
    let out = told("r12-replica-primary-merge-failure");
    let r = &out.report;
    assert_eq!(r.outcome, Outcome::Failure);
    assert_eq!(r.code, Some(Hresult::ErrorFileSystemLimitation));
    assert_eq!(r.event, Some(19100));
    let vm = r.vms.iter().find(|v| v.vm == "app01").expect("reported");
    assert_eq!(vm.avhdx_left, 2);
    // The two AVHDX files are real files on the VM's volume, in its chain.
    let disk = &out.lab.vms[0].disks[0];
    assert_eq!(disk.chain.files.len(), 3, "{:?}", disk.chain.files);
    assert!(disk.chain.files[1..].iter().all(|f| f.ends_with(".avhdx")));
    let on_volume = out.lab.volumes.values().flat_map(|v| v.list()).count();
    assert_eq!(on_volume, 3);
    let release = out
        .story
        .iter()
        .find(|l| l.contains("job=MergeCheckpoint"))
        .expect("the release is answered");
    assert!(
        release.contains("hr=ERROR_FILE_SYSTEM_LIMITATION") && release.contains("0x80070299"),
        "{release}"
    );
    assert!(r.passed(), "{r}");
}
