//! The repository and restore never open a FIFO, socket or device, and never follow a
//! symbolic link out of their folder (issue 7 §4): such a file is refused with a message
//! naming it, or replaced as damage, and the command never waits on it.
// Needs FIFOs, sockets and symbolic links as Unix makes them.
#![cfg(unix)]

use hvsim_engine::repo::{ChunkRef, Problem, RepoError, Repository, RestoreTarget};
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const CHUNK: u64 = 64 * KIB;

/// Makes a FIFO. Not by running `mkfifo`: a child process forked while another test's
/// thread holds a repository lock would hold that lock until its exec.
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

fn is_fifo(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Runs `f` on a thread and fails the test if it has not returned after 20 s: a command
/// that opened a FIFO would wait there forever.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what}: still waiting after 20 s (a FIFO was opened?)"))
}

/// A 1 MiB image with two chunks of data, a repository of 64 KiB chunks, one point.
fn setup(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let img = dir.join("vms").join("disk.vhdx");
    fs::create_dir(dir.join("vms")).unwrap();
    let data: Vec<u8> = (0..2 * CHUNK).map(|i| (i % 251) as u8 ^ 0x5a).collect();
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(MIB)
    };
    let mut v = Vhdx::create_file(&img, &opts).unwrap();
    v.write(0, &data).unwrap();
    v.close().unwrap();
    let repo = dir.join("repo");
    Repository::init_with_chunk_size(&repo, CHUNK)
        .unwrap()
        .backup_vhdx("disk", &img)
        .unwrap();
    (img, repo, data)
}

fn read_start(path: &Path, len: u64) -> Vec<u8> {
    let mut v = Vhdx::open_file(path, &OpenOptions::read_only()).unwrap();
    let mut b = vec![0u8; len as usize];
    v.read(0, &mut b).unwrap();
    b
}

/// A restore to the original place looks at the files beside the disk (for checkpoints
/// to remove): a FIFO and a socket there are left alone, not opened.
#[test]
fn restore_in_place_beside_a_fifo_and_a_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, repo, data) = setup(tmp.path());
    let fifo = img.with_file_name("pipe");
    mkfifo(&fifo);
    let _sock = std::os::unix::net::UnixListener::bind(img.with_file_name("sock")).unwrap();
    let (img2, repo2) = (img.clone(), repo.clone());
    let rep = within("restore --replace beside a FIFO", move || {
        Repository::open(&repo2)
            .unwrap()
            .restore("disk", None, RestoreTarget::Original(&img2))
    })
    .unwrap();
    assert!(rep.removed_checkpoints.is_empty());
    assert_eq!(read_start(&img, 2 * CHUNK), data);
    assert!(is_fifo(&fifo), "the FIFO stays");
}

/// A FIFO or a symbolic link as the disk to replace is refused, naming it; the link's
/// target outside the folder is not written.
#[test]
fn a_special_file_as_the_destination_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, repo, _) = setup(tmp.path());
    let fifo = img.with_file_name("fifo.vhdx");
    mkfifo(&fifo);
    let (f2, repo2) = (fifo.clone(), repo.clone());
    let err = within("restore --replace onto a FIFO", move || {
        Repository::open(&repo2)
            .unwrap()
            .restore("disk", None, RestoreTarget::Original(&f2))
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&fifo.display().to_string()) && text.contains("a FIFO"),
        "{text}"
    );
    assert!(is_fifo(&fifo));

    let outside = tmp.path().join("outside.bin");
    fs::write(&outside, b"not yours").unwrap();
    let link = img.with_file_name("link.vhdx");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let r = Repository::open(&repo).unwrap();
    let err = r
        .restore("disk", None, RestoreTarget::Original(&link))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("link.vhdx") && text.contains("a symbolic link"),
        "{text}"
    );
    assert_eq!(fs::read(&outside).unwrap(), b"not yours");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // Nothing else was left in the folder.
    let mut names: Vec<_> = fs::read_dir(img.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["disk.vhdx", "fifo.vhdx", "link.vhdx"]);
}

/// Special files inside the repository: a block that is a FIFO or a link is damage
/// (verify names it, restore refuses it, a backup replaces it, the link's target stays
/// untouched); a FIFO as a manifest, a point counter, the lock file or the configuration
/// is an error naming it. Nothing waits.
#[test]
fn special_files_in_the_repository_are_refused_unopened() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, repo, _) = setup(tmp.path());
    let r = Repository::open(&repo).unwrap();
    let m = r.manifest("disk", 1).unwrap();
    let blocks: Vec<PathBuf> = m
        .chunks
        .iter()
        .filter_map(|c| match c {
            ChunkRef::Block(d) => Some(r.block_path(d)),
            ChunkRef::Zero => None,
        })
        .collect();
    assert_eq!(blocks.len(), 2);
    // Block 0 becomes a FIFO; block 1 a link to a copy of its bytes outside.
    fs::remove_file(&blocks[0]).unwrap();
    mkfifo(&blocks[0]);
    let outside = tmp.path().join("outside-block");
    fs::rename(&blocks[1], &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &blocks[1]).unwrap();
    let outside_bytes = fs::read(&outside).unwrap();

    let repo2 = repo.clone();
    let rep = within("verify", move || Repository::open(&repo2).unwrap().verify()).unwrap();
    for (i, kind) in [(0, "a FIFO"), (1, "a symbolic link")] {
        assert!(
            rep.problems.iter().any(|p| matches!(p,
                Problem::UnreadableBlock { path, error } if *path == blocks[i] && error.contains(kind))),
            "{kind}: {:?}",
            rep.problems
        );
        assert!(rep.problems.contains(&Problem::DamagedBlock {
            name: "disk".into(),
            point: 1,
            chunk: i as u64,
            path: blocks[i].clone()
        }));
    }
    let (repo2, out) = (repo.clone(), tmp.path().join("out.vhdx"));
    let err = within("restore", move || {
        Repository::open(&repo2)
            .unwrap()
            .restore("disk", None, RestoreTarget::Alternate(&out))
    })
    .unwrap_err();
    assert!(
        matches!(&err, RepoError::BadBlock { chunk: 0, path, .. } if *path == blocks[0])
            && err.to_string().contains("a FIFO"),
        "{err}"
    );
    let (repo2, img2) = (repo.clone(), img.clone());
    let s = within("backup", move || {
        Repository::open(&repo2).unwrap().backup_vhdx("disk", &img2)
    })
    .unwrap()
    .stats;
    assert_eq!(s.healed_blocks, 2, "{s:?}");
    assert!(blocks
        .iter()
        .all(|b| fs::symlink_metadata(b).unwrap().is_file()));
    assert_eq!(
        fs::read(&outside).unwrap(),
        outside_bytes,
        "the link's target"
    );
    assert!(r.verify().unwrap().is_clean());

    // A FIFO as a manifest, the point counter, the lock file, the configuration.
    let manifest = repo.join("points/disk/00000002.json");
    let counter = repo.join("points/disk/last-point");
    let lock = repo.join("hvsim-repo.lock");
    let config = repo.join("hvsim-repo.json");
    for fifo in [&manifest, &counter, &lock, &config] {
        let saved = tmp.path().join("saved");
        let _ = fs::remove_file(&saved);
        if fifo.exists() {
            fs::rename(fifo, &saved).unwrap();
        }
        mkfifo(fifo);
        let (repo2, img2) = (repo.clone(), img.clone());
        let text = within("open, verify and back up", move || {
            let mut r = Repository::open(&repo2)?;
            let rep = r.verify()?;
            if let Some(p) = rep.problems.first() {
                return Ok(p.to_string());
            }
            r.backup_vhdx("disk", &img2).map(|_| String::new())
        })
        .unwrap_or_else(|e: RepoError| e.to_string());
        let name = fifo.file_name().unwrap().to_str().unwrap();
        assert!(
            text.contains(name) && text.contains("a FIFO"),
            "{name}: {text}"
        );
        fs::remove_file(fifo).unwrap();
        if saved.exists() {
            fs::rename(&saved, fifo).unwrap();
        }
    }
    assert!(r.verify().unwrap().is_clean());
}

/// Leftover temporary files under the names the next writer uses, as links to a file
/// outside the repository: the writer replaces the links, the outside file is untouched.
#[test]
fn a_temporary_file_never_follows_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, repo, _) = setup(tmp.path());
    let outside = tmp.path().join("outside.bin");
    fs::write(&outside, b"keep me").unwrap();
    let pid = std::process::id();
    for n in 0..8 {
        let link = repo.join("tmp").join(format!("{pid}-{n}.tmp"));
        std::os::unix::fs::symlink(&outside, &link).unwrap();
    }
    // New content, so that the backup writes blocks, the counter and a manifest.
    let mut v = Vhdx::open_file(&img, &OpenOptions::writable()).unwrap();
    v.write(4 * CHUNK, &[0xEE; CHUNK as usize]).unwrap();
    v.close().unwrap();
    let mut r = Repository::open(&repo).unwrap();
    let rep = r.backup_vhdx("disk", &img).unwrap();
    assert_eq!(rep.stats.new_blocks, 1);
    assert!(
        fs::read(&outside).unwrap() == b"keep me",
        "the file outside the repository was written"
    );
    assert!(r.verify().unwrap().is_clean());
}

/// The repository's own folders are real folders: `tmp/` (or `blocks/`) as a link to a
/// folder outside is refused when the repository is opened, naming it, and nothing is
/// written there.
#[test]
fn the_repository_folders_are_not_links() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, repo, _) = setup(tmp.path());
    for sub in ["tmp", "blocks"] {
        let outside = tmp.path().join(format!("outside-{sub}"));
        fs::rename(repo.join(sub), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, repo.join(sub)).unwrap();
        let before = fs::read_dir(&outside).unwrap().count();
        let err = Repository::open(&repo)
            .and_then(|mut r| r.backup_vhdx("disk", &img))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("repo/{sub}")) && err.contains("a symbolic link"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), before);
        fs::remove_file(repo.join(sub)).unwrap();
        fs::rename(&outside, repo.join(sub)).unwrap();
    }
    assert!(Repository::open(&repo)
        .unwrap()
        .verify()
        .unwrap()
        .is_clean());
}
