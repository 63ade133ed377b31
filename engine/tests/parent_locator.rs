//! Parent resolution through the locator's path keys, in the forms Hyper-V writes them,
//! and only inside the directories the caller allows.

use hvsim_engine::vhdx::{ParentResolver, MIB};
use hvsim_engine::{CreateOptions, FileStorage, OpenOptions, Vhdx, VhdxError};
use std::path::Path;

/// A 4 MiB parent with one recognisable write, closed.
fn make_parent(path: &Path) {
    let mut p = Vhdx::create_file(path, &CreateOptions::new(4 * MIB)).unwrap();
    p.write(MIB, b"parent bytes").unwrap();
    p.close().unwrap();
}

/// A child whose locator holds exactly `keys` (plus parent_linkage).
fn make_child(child: &Path, parent: &Path, keys: &[(&str, &str)]) {
    let pv = Vhdx::open_file(parent, &OpenOptions::read_only()).unwrap();
    let opts = CreateOptions {
        parent_paths: keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..CreateOptions::default()
    };
    let file = FileStorage::create_new(child).unwrap();
    let mut c = Vhdx::create(Box::new(file), &opts, Some(pv)).unwrap();
    c.write(MIB + 7, b"CHILD").unwrap();
    c.close().unwrap();
}

fn read_through(child: &Path, resolver: ParentResolver) -> Result<Vec<u8>, VhdxError> {
    let opts = OpenOptions {
        resolver,
        ..OpenOptions::read_only()
    };
    let mut v = Vhdx::open_file(child, &opts)?;
    let mut b = vec![0u8; 12];
    v.read(MIB, &mut b)?;
    Ok(b)
}

const MERGED: &[u8] = b"parent CHILD";

#[test]
fn relative_path_as_hyper_v_writes_it() {
    let d = tempfile::tempdir().unwrap();
    make_parent(&d.path().join("base.vhdx"));
    let child = d.path().join("child.avhdx");
    make_child(
        &child,
        &d.path().join("base.vhdx"),
        &[("relative_path", ".\\base.vhdx")],
    );
    assert_eq!(
        read_through(&child, ParentResolver::default()).unwrap(),
        MERGED
    );
}

#[test]
fn absolute_win32_path_with_and_without_prefix() {
    let d = tempfile::tempdir().unwrap();
    let vms = d.path().join("VMs");
    std::fs::create_dir(&vms).unwrap();
    make_parent(&vms.join("base.vhdx"));
    for (i, value) in [
        "C:\\VMs\\base.vhdx",
        "\\\\?\\C:\\VMs\\base.vhdx",
        "c:\\VMs\\base.vhdx",
    ]
    .iter()
    .enumerate()
    {
        let child = vms.join(format!("child{i}.avhdx"));
        make_child(
            &child,
            &vms.join("base.vhdx"),
            &[("absolute_win32_path", value)],
        );
        let mut r = ParentResolver::default();
        r.drives.insert('C', d.path().to_path_buf());
        assert_eq!(read_through(&child, r).unwrap(), MERGED, "{value}");
        // Without a drive mapping there is nothing to follow.
        let err = read_through(&child, ParentResolver::default()).unwrap_err();
        assert!(matches!(err, VhdxError::ParentNotFound { .. }), "{err}");
    }
}

#[test]
fn volume_path_and_resolution_order() {
    let d = tempfile::tempdir().unwrap();
    make_parent(&d.path().join("base.vhdx"));
    let guid = "6a3b6e4e-0d2f-4a54-9b1c-1f0e0c1b2a3d";
    let child = d.path().join("child.avhdx");
    // relative_path is stale (the parent was renamed): volume_path is tried next.
    make_child(
        &child,
        &d.path().join("base.vhdx"),
        &[
            ("relative_path", ".\\old-name.vhdx"),
            (
                "volume_path",
                &format!("\\\\?\\Volume{{{guid}}}\\base.vhdx"),
            ),
        ],
    );
    let mut r = ParentResolver::default();
    r.volumes.insert(guid.to_string(), d.path().to_path_buf());
    assert_eq!(read_through(&child, r).unwrap(), MERGED);
    let err = read_through(&child, ParentResolver::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("relative_path") && msg.contains("old-name.vhdx"),
        "{msg}"
    );
}

#[test]
fn allowed_directories_bound_every_key() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    let inside = d.path().join("inside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&inside).unwrap();
    make_parent(&outside.join("base.vhdx"));
    let child = inside.join("child.avhdx");
    make_child(
        &child,
        &outside.join("base.vhdx"),
        &[
            ("relative_path", "..\\outside\\base.vhdx"),
            ("absolute_win32_path", "D:\\outside\\base.vhdx"),
        ],
    );
    let mut r = ParentResolver::default();
    r.drives.insert('D', d.path().to_path_buf());
    let err = read_through(&child, r.clone()).unwrap_err();
    assert!(matches!(err, VhdxError::ParentNotAllowed { .. }), "{err}");
    r.allowed_dirs = vec![inside.clone(), outside.clone()];
    assert_eq!(read_through(&child, r).unwrap(), MERGED);
}

#[test]
fn a_parent_written_after_its_child_was_made_is_detected() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.vhdx");
    make_parent(&base);
    let child = d.path().join("child.avhdx");
    make_child(&child, &base, &[("relative_path", ".\\base.vhdx")]);
    // Opening the parent writable without writing keeps its DataWriteGuid.
    Vhdx::open_file(&base, &OpenOptions::writable())
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(
        read_through(&child, ParentResolver::default()).unwrap(),
        MERGED
    );
    let mut p = Vhdx::open_file(&base, &OpenOptions::writable()).unwrap();
    p.write(0, b"x").unwrap();
    p.close().unwrap();
    let err = read_through(&child, ParentResolver::default()).unwrap_err();
    assert!(
        matches!(err, VhdxError::ParentLinkageMismatch { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("modified after the child was made"),
        "{err}"
    );
}
