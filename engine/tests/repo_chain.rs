//! R16 to the original place: the restored disk replaces the whole chain, so the
//! checkpoint disks stacked on the old disk go; other files stay.

use hvsim_engine::repo::{Repository, RestoreTarget};
use hvsim_engine::vhdx::MIB;
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};

#[test]
fn restore_to_the_original_place_replaces_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let vms = d.path().join("vms");
    std::fs::create_dir(&vms).unwrap();
    let base = vms.join("disk_1.vhdx");
    let mut v = Vhdx::create_file(&base, &CreateOptions::new(8 * MIB)).unwrap();
    v.write(0, &[1u8; 4096]).unwrap();
    v.close().unwrap();
    let mut repo = Repository::init(&d.path().join("repo")).unwrap();
    let point = repo.backup_vhdx("disk_1", &base).unwrap().point;

    // After the backup: two checkpoints with writes, and an unrelated disk beside them.
    let mut parent = base.clone();
    let mut files = Vec::new();
    for name in ["disk_1_A.avhdx", "disk_1_B.avhdx"] {
        let path = vms.join(name);
        let opts = CreateOptions {
            parent: Some(parent.clone()),
            ..CreateOptions::default()
        };
        let mut c = Vhdx::create_file(&path, &opts).unwrap();
        c.write(0, &[9u8; 4096]).unwrap();
        c.close().unwrap();
        files.push(path.clone());
        parent = path;
    }
    let other = vms.join("other.vhdx");
    Vhdx::create_file(&other, &CreateOptions::new(4 * MIB))
        .unwrap()
        .close()
        .unwrap();
    std::fs::write(vms.join("vm.vmcx"), b"configuration").unwrap();

    let rep = repo
        .restore("disk_1", Some(point), RestoreTarget::Original(&base))
        .unwrap();
    let mut want: Vec<_> = files
        .iter()
        .map(|p| p.canonicalize().unwrap_or(p.clone()))
        .collect();
    want.sort();
    let mut got: Vec<_> = rep.removed_checkpoints.clone();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    for p in &files {
        assert!(!p.exists(), "{} should be gone", p.display());
    }
    assert!(
        other.exists() && vms.join("vm.vmcx").exists(),
        "unrelated files stay"
    );
    let mut v = Vhdx::open_file(&base, &OpenOptions::read_only()).unwrap();
    let mut b = vec![0u8; 4096];
    v.read(0, &mut b).unwrap();
    assert_eq!(
        b,
        vec![1u8; 4096],
        "the original place holds the captured image (I6)"
    );
}

/// One writer at a time: a second repository handle that wants to change it is refused
/// while the first holds the lock; readers are not.
#[test]
fn one_writer_at_a_time() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("d.vhdx");
    let mut v = Vhdx::create_file(&img, &CreateOptions::new(4 * MIB)).unwrap();
    v.write(0, &[3u8; 4096]).unwrap();
    v.close().unwrap();
    let dir = d.path().join("repo");
    let mut first = Repository::init(&dir).unwrap();
    first.backup_vhdx("d", &img).unwrap();
    let mut second = Repository::open(&dir).unwrap();
    let err = second.backup_vhdx("d", &img).unwrap_err();
    assert!(
        err.to_string()
            .contains("another process is writing to this repository"),
        "{err}"
    );
    assert_eq!(second.points("d").unwrap(), vec![1], "readers go on");
    drop(first);
    second.backup_vhdx("d", &img).unwrap();
    assert_eq!(second.points("d").unwrap(), vec![1, 2]);
}
