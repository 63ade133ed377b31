//! Named bad-input cases, each with the error it must give (or the content it must read).

mod common;

use common::*;
use hvsim_engine::vhdx::{
    HEADER1_OFFSET, HEADER2_OFFSET, META_FILE_PARAMETERS, META_VIRTUAL_DISK_SIZE,
    REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET,
};
use hvsim_engine::{CreateOptions, MemStorage, OpenOptions, Vhdx, VhdxError};
use std::path::Path;
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn open_ro(bytes: &[u8]) -> Result<Vhdx, VhdxError> {
    Vhdx::open(
        Box::new(MemStorage::from_vec(bytes.to_vec())),
        &ro_opts(),
        None,
    )
}

fn open_rw(bytes: &[u8]) -> Result<Vhdx, VhdxError> {
    Vhdx::open(
        Box::new(MemStorage::from_vec(bytes.to_vec())),
        &rw_opts(),
        None,
    )
}

/// Opens both ways; both must fail, and the message must contain every word.
fn expect_err(bytes: &[u8], words: &[&str]) -> VhdxError {
    let mut last = None;
    for (mode, r) in [("read-only", open_ro(bytes)), ("writable", open_rw(bytes))] {
        match r {
            Ok(_) => panic!("{mode} open succeeded; expected an error naming {words:?}"),
            Err(e) => {
                let m = e.to_string().to_lowercase();
                for w in words {
                    assert!(
                        m.contains(&w.to_lowercase()),
                        "{mode}: {e} does not mention {w:?}"
                    );
                }
                last = Some(e);
            }
        }
    }
    last.unwrap()
}

/// Runs the mutant harness (thread, time limit, allocation and growth bounds) on `bytes`
/// and returns its failures.
fn harness(s: &Sample, what: &str, bytes: &[u8], expect: Expect) -> Vec<String> {
    let mut r = Report::default();
    r.check(s, what, bytes, expect);
    r.failures
}

fn read_all(v: &mut Vhdx) -> Vec<u8> {
    let mut b = vec![0u8; v.virtual_size() as usize];
    v.read(0, &mut b).unwrap();
    b
}

fn bat_entry_at(s: &Sample, index: u64) -> u64 {
    s.bat_offset + 8 * index
}

/// A BAT entry past the end of the file (a truncated image, or a damaged entry): the
/// block's bytes are lost. A read-only open still reads every other block; a read of that
/// one fails naming it, and a writable open (whose growth would make it read zeros) is
/// refused.
#[test]
fn bat_entry_past_the_end_of_the_file() {
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    let past = (m.len() as u64).next_multiple_of(MIB) + 16 * MIB;
    set_u64(&mut m, bat_entry_at(&s, 1), past | 6);
    let lost = |e: &VhdxError| {
        matches!(e, VhdxError::BlockPastEnd { what: "payload block", index: 1, offset, .. } if *offset == past)
            && e.to_string().contains("truncated")
    };
    let mut v = open_ro(&m).expect("a read-only open reads what is left");
    let mut b = vec![0u8; MIB as usize];
    v.read(0, &mut b).unwrap();
    assert!(b == s.content[..MIB as usize], "block 0 reads its bytes");
    let e = v.read(MIB + 4096, &mut b[..512]).unwrap_err();
    assert!(lost(&e), "{e:?}");
    let e = open_rw(&m).unwrap_err();
    assert!(lost(&e), "{e:?}");
}

#[test]
fn overlapping_regions() {
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    // The metadata region moved onto the BAT (entry 1's file offset is at 16 + 32 + 16).
    let bat = s.bat_offset;
    edit_region_tables(&mut m, |t| {
        for i in 0..2 {
            let e = 16 + 32 * i;
            if u64::from_le_bytes(t[e + 16..e + 24].try_into().unwrap()) != bat {
                t[e + 16..e + 24].copy_from_slice(&bat.to_le_bytes());
            }
        }
    });
    let e = expect_err(&m, &["region table", "overlap"]);
    assert!(
        matches!(
            e,
            VhdxError::Corrupt {
                structure: "region table",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn region_overlapping_the_log() {
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    let log = s.log_offset;
    let bat = s.bat_offset;
    edit_region_tables(&mut m, |t| {
        for i in 0..2 {
            let e = 16 + 32 * i;
            if u64::from_le_bytes(t[e + 16..e + 24].try_into().unwrap()) == bat {
                t[e + 16..e + 24].copy_from_slice(&log.to_le_bytes());
            }
        }
    });
    expect_err(&m, &["region table", "log"]);
}

fn edit_item(s: &Sample, id: uuid::Uuid, f: impl Fn(&mut [u8])) -> Vec<u8> {
    let (at, len) = item_offset(s, id);
    let mut m = s.bytes.clone();
    f(&mut m[at as usize..(at + len) as usize]);
    m
}

#[test]
fn block_size_not_a_power_of_two() {
    let s = dynamic(512);
    let m = edit_item(&s, META_FILE_PARAMETERS, |b| {
        b[0..4].copy_from_slice(&(3 * MIB as u32).to_le_bytes())
    });
    let e = expect_err(&m, &["metadata", "block size"]);
    assert!(matches!(e, VhdxError::Corrupt { .. }), "{e:?}");
    let mut o = CreateOptions::new(8 * MIB);
    o.block_size = Some(3 * MIB as u32);
    let e = Vhdx::create(Box::new(MemStorage::new()), &o, None).unwrap_err();
    assert!(matches!(e, VhdxError::InvalidParameter(_)), "{e:?}");
    assert!(e.to_string().contains("block size"), "{e}");
}

#[test]
fn virtual_size_zero_or_beyond_64_tib() {
    let s = dynamic(512);
    for size in [0u64, 64 * 1024 * 1024 * MIB + 512, u64::MAX - 511] {
        let m = edit_item(&s, META_VIRTUAL_DISK_SIZE, |b| {
            b[0..8].copy_from_slice(&size.to_le_bytes())
        });
        let e = expect_err(&m, &["metadata", "virtual disk size"]);
        assert!(matches!(e, VhdxError::Corrupt { .. }), "size {size}: {e:?}");
        let e =
            Vhdx::create(Box::new(MemStorage::new()), &CreateOptions::new(size), None).unwrap_err();
        assert!(
            matches!(e, VhdxError::InvalidParameter(_)),
            "size {size}: {e:?}"
        );
        assert!(e.to_string().contains("virtual size"), "{e}");
    }
    // Exactly 64 TiB is allowed as a parameter, but this BAT (1 MiB) cannot hold it.
    let m = edit_item(&s, META_VIRTUAL_DISK_SIZE, |b| {
        b[0..8].copy_from_slice(&(64 * 1024 * 1024 * MIB).to_le_bytes())
    });
    expect_err(&m, &["BAT"]);
}

#[test]
fn log_entry_with_a_bad_checksum_is_not_replayed() {
    let s = pending_log();
    let old = s.old_content.clone().unwrap();
    let (pos, len) = s.pending_entry.unwrap();
    for p in [0, 5, 60, 70, len / 2, len - 1] {
        let mut m = s.bytes.clone();
        m[(s.log_offset + pos + p) as usize] ^= 0x40;
        let mut v = open_ro(&m).unwrap();
        assert!(!v.log_replayed(), "byte {p}");
        assert_eq!(read_all(&mut v), old, "read-only, byte {p}");
        let mut v = open_rw(&m).unwrap();
        assert_eq!(read_all(&mut v), old, "writable, byte {p}");
        // The open damaged nothing: after a write session the old data is still there.
        v.write(3 * MIB, &[7u8; 4096]).unwrap();
        let st = v.into_storage().unwrap();
        let mut v = Vhdx::open(st, &ro_opts(), None).unwrap();
        let mut got = read_all(&mut v);
        got[3 * MIB as usize..3 * MIB as usize + 4096]
            .copy_from_slice(&old[3 * MIB as usize..3 * MIB as usize + 4096]);
        assert_eq!(got, old, "after a session, byte {p}");
    }
    // The intact entry replays (sanity of the sample).
    let mut v = open_ro(&s.bytes).unwrap();
    assert!(v.log_replayed());
    assert_eq!(read_all(&mut v), s.content);
}

/// Adds a third region entry (at a new MiB at the end of the file, filled with a
/// pattern) to both region tables.
fn add_region(s: &Sample, required: bool) -> (Vec<u8>, u64, uuid::Uuid) {
    let id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
    let mut m = s.bytes.clone();
    let at = (m.len() as u64).next_multiple_of(MIB);
    m.resize(at as usize, 0);
    m.extend(pattern(MIB as usize, 77));
    edit_region_tables(&mut m, |t| {
        let n = u32::from_le_bytes(t[8..12].try_into().unwrap()) as usize;
        let e = 16 + 32 * n;
        t[e..e + 16].copy_from_slice(&id.to_bytes_le());
        t[e + 16..e + 24].copy_from_slice(&at.to_le_bytes());
        t[e + 24..e + 28].copy_from_slice(&(MIB as u32).to_le_bytes());
        t[e + 28..e + 32].copy_from_slice(&u32::from(required).to_le_bytes());
        t[8..12].copy_from_slice(&(n as u32 + 1).to_le_bytes());
    });
    (m, at, id)
}

/// Adds a metadata item (8 bytes after the last item) to the metadata table.
fn add_item(s: &Sample, flags: u32) -> (Vec<u8>, u64, uuid::Uuid) {
    let id = uuid::Uuid::from_u128(0xfeed_face_0000_4000_8000_0000_0000_0001);
    let mut m = s.bytes.clone();
    let end = s.items.iter().map(|(_, o, l)| o + l).max().unwrap();
    let data_at = end.next_multiple_of(8);
    m[data_at as usize..data_at as usize + 8].copy_from_slice(b"OPTIONAL");
    let mo = s.meta_offset as usize;
    let n = u16::from_le_bytes([m[mo + 10], m[mo + 11]]) as usize;
    let e = mo + 32 + 32 * n;
    m[e..e + 16].copy_from_slice(&id.to_bytes_le());
    m[e + 16..e + 20].copy_from_slice(&((data_at - s.meta_offset) as u32).to_le_bytes());
    m[e + 20..e + 24].copy_from_slice(&8u32.to_le_bytes());
    m[e + 24..e + 28].copy_from_slice(&flags.to_le_bytes());
    m[mo + 10..mo + 12].copy_from_slice(&(n as u16 + 1).to_le_bytes());
    (m, data_at, id)
}

#[test]
fn unknown_required_region() {
    let s = dynamic(512);
    let (m, _, id) = add_region(&s, true);
    for r in [open_ro(&m), open_rw(&m)] {
        match r {
            Err(VhdxError::UnknownRequired { what, id: got }) => {
                assert_eq!(what, "region");
                assert_eq!(got, id);
            }
            other => panic!("expected UnknownRequired, got {other:?}"),
        }
    }
}

#[test]
fn unknown_required_metadata_item() {
    let s = dynamic(512);
    let (m, _, id) = add_item(&s, 4);
    for r in [open_ro(&m), open_rw(&m)] {
        match r {
            Err(VhdxError::UnknownRequired { what, id: got }) => {
                assert_eq!(what, "metadata item");
                assert_eq!(got, id);
            }
            other => panic!("expected UnknownRequired, got {other:?}"),
        }
    }
}

/// A write session that allocates blocks (and frees one), then a clean close.
fn write_session(m: Vec<u8>) -> Vec<u8> {
    let mut v = open_rw(&m).unwrap();
    v.write(MIB, &pattern(MIB as usize, 40)).unwrap();
    v.write(3 * MIB + 512, &pattern(8192, 41)).unwrap();
    v.trim(0, MIB).unwrap();
    v.write(0, &pattern(4096, 42)).unwrap();
    storage_bytes(v.into_storage().unwrap())
}

#[test]
fn unknown_optional_region_survives_a_write_session() {
    let s = dynamic(512);
    let (m, at, id) = add_region(&s, false);
    let mut v = open_ro(&m).unwrap();
    assert_eq!(read_all(&mut v), s.content);
    let after = write_session(m);
    assert_eq!(
        &after[at as usize..(at + MIB) as usize],
        &pattern(MIB as usize, 77)[..],
        "region bytes changed"
    );
    for t in [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET] {
        let n = get_u32(&after, t + 8);
        let found = (0..n as u64).any(|i| {
            after[(t + 16 + 32 * i) as usize..(t + 32 + 32 * i) as usize] == id.to_bytes_le()
        });
        assert!(found, "region entry gone from the table at {t:#x}");
    }
    open_ro(&after).unwrap();
}

#[test]
fn unknown_optional_metadata_item_survives_a_write_session() {
    let s = dynamic(512);
    let (m, at, id) = add_item(&s, 0);
    let mut v = open_ro(&m).unwrap();
    assert_eq!(read_all(&mut v), s.content);
    assert!(v.metadata_items().iter().any(|i| i.item_id == id));
    let after = write_session(m);
    assert_eq!(&after[at as usize..at as usize + 8], b"OPTIONAL");
    let v = open_ro(&after).unwrap();
    let it = v
        .metadata_items()
        .iter()
        .find(|i| i.item_id == id)
        .expect("item kept");
    assert_eq!(it.data, b"OPTIONAL");
}

#[test]
fn both_headers_invalid() {
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    m[HEADER1_OFFSET as usize + 100] ^= 1;
    m[HEADER2_OFFSET as usize] = b'X';
    let e = expect_err(&m, &["header 1", "header 2", "checksum", "signature"]);
    assert!(
        matches!(
            e,
            VhdxError::Corrupt {
                structure: "header",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn one_header_invalid_opens_with_a_warning() {
    let s = dynamic(512);
    for at in [HEADER1_OFFSET, HEADER2_OFFSET] {
        let mut m = s.bytes.clone();
        m[at as usize + 8] ^= 1;
        let mut v = open_ro(&m).unwrap();
        assert_eq!(read_all(&mut v), s.content);
        assert!(
            v.warnings().iter().any(|w| w.contains("header")),
            "{:?}",
            v.warnings()
        );
    }
}

#[test]
fn partially_present_in_a_dynamic_disk() {
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    let e0 = get_u64(&m, bat_entry_at(&s, 0));
    set_u64(&mut m, bat_entry_at(&s, 0), (e0 & !7) | 7);
    let e = expect_err(&m, &["BAT", "PARTIALLY_PRESENT"]);
    assert!(
        matches!(
            e,
            VhdxError::Corrupt {
                structure: "BAT",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn reserved_bat_state_4() {
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    let e0 = get_u64(&m, bat_entry_at(&s, 0));
    set_u64(&mut m, bat_entry_at(&s, 0), (e0 & !7) | 4);
    let e = expect_err(&m, &["BAT", "reserved state 4"]);
    assert!(
        matches!(
            e,
            VhdxError::Corrupt {
                structure: "BAT",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn region_at_the_top_of_the_address_space() {
    // A region whose offset + length wraps past 2^64, behind a valid checksum.
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    let meta = s.meta_offset;
    edit_region_tables(&mut m, |t| {
        for i in 0..2 {
            let e = 16 + 32 * i;
            if u64::from_le_bytes(t[e + 16..e + 24].try_into().unwrap()) == meta {
                t[e + 16..e + 24].copy_from_slice(&(u64::MAX - MIB + 1).to_le_bytes());
            }
        }
    });
    let f = harness(
        &s,
        "metadata region at 2^64 - 1 MiB",
        &m,
        Expect::OkOrErrNaming(&["region", "truncated"]),
    );
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn log_at_the_top_of_the_address_space() {
    // LogOffset + LogLength wraps past 2^64; LogGuid is nil so nothing is replayed.
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    edit_headers(&mut m, |h| {
        h[72..80].copy_from_slice(&(u64::MAX - MIB + 1).to_le_bytes())
    });
    let f = harness(
        &s,
        "log at 2^64 - 1 MiB",
        &m,
        Expect::OkOrErrNaming(&["header", "log"]),
    );
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn log_past_the_end_of_the_file_is_never_written() {
    // LogGuid is nil (a clean image) but the log lies far past the end of the file: a
    // writable session must not write its log entries there (growing the file to
    // terabytes); the open should refuse the header.
    let s = dynamic(512);
    for off in [64 * MIB, 1u64 << 40, 1u64 << 60] {
        let mut m = s.bytes.clone();
        edit_headers(&mut m, |h| h[72..80].copy_from_slice(&off.to_le_bytes()));
        let f = harness(
            &s,
            &format!("log at {off:#x}"),
            &m,
            Expect::OkOrErrNaming(&["header", "log"]),
        );
        assert!(f.is_empty(), "{f:#?}");
    }
}

/// The pending entry with its header fields edited and its checksum fixed.
fn edit_pending_entry(s: &Sample, f: impl Fn(&mut [u8])) -> Vec<u8> {
    let (pos, len) = s.pending_entry.unwrap();
    let at = (s.log_offset + pos) as usize;
    let mut m = s.bytes.clone();
    f(&mut m[at..at + len as usize]);
    fix_crc(&mut m, at, len as usize);
    m
}

#[test]
fn log_entry_asking_for_a_huge_file() {
    // LastFileOffset of 1 PiB - 1 MiB: a replay must not extend an 8 MiB file to a
    // petabyte (in memory, an abort; on disk, a huge sparse file).
    let s = pending_log();
    let m = edit_pending_entry(&s, |e| {
        e[56..64].copy_from_slice(&((1u64 << 50) - MIB).to_le_bytes())
    });
    let f = harness(
        &s,
        "LastFileOffset 1 PiB",
        &m,
        Expect::OkOrErrNaming(&["log"]),
    );
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn log_zero_descriptor_wrapping_past_2_pow_64() {
    // A zero descriptor whose offset + length wraps: must be an error, not an overflow.
    let s = pending_log();
    let m = edit_pending_entry(&s, |e| {
        e[64..68].copy_from_slice(b"zero");
        e[72..80].copy_from_slice(&(u64::MAX - 4095).to_le_bytes());
        e[80..88].copy_from_slice(&4096u64.to_le_bytes());
    });
    let f = harness(
        &s,
        "zero descriptor wrapping",
        &m,
        Expect::OkOrErrNaming(&["log"]),
    );
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn log_descriptor_targeting_a_header() {
    let s = pending_log();
    let m = edit_pending_entry(&s, |e| {
        e[80..88].copy_from_slice(&HEADER1_OFFSET.to_le_bytes())
    });
    let e = expect_err(&m, &["log entry", "header"]);
    assert!(
        matches!(
            e,
            VhdxError::Corrupt {
                structure: "log entry",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn not_vhdx_and_tiny_files() {
    for len in [0usize, 1, 7] {
        assert!(matches!(open_ro(&vec![0u8; len]), Err(VhdxError::NotVhdx)));
    }
    assert!(matches!(
        open_ro(b"vhdxfilX-and-more"),
        Err(VhdxError::NotVhdx)
    ));
    let e = open_ro(b"vhdxfile").unwrap_err();
    assert!(matches!(e, VhdxError::Truncated { .. }), "{e:?}");
    // A 1 MiB file with a signature and nothing else.
    let mut b = vec![0u8; MIB as usize];
    b[..8].copy_from_slice(b"vhdxfile");
    let e = open_ro(&b).unwrap_err();
    assert!(e.to_string().contains("header"), "{e}");
    let s = dynamic(512);
    let f = harness(
        &s,
        "only a signature",
        &b,
        Expect::OkOrErrNaming(&["header"]),
    );
    assert!(f.is_empty(), "{f:#?}");
}

// ------------------------------------------------------------------ files and parents

fn create_base(path: &Path, seed: u64) {
    let mut o = CreateOptions::new(4 * MIB);
    o.block_size = Some(MIB as u32);
    o.guids = guids(seed);
    let mut v = Vhdx::create_file(path, &o).unwrap();
    v.write(0, &pattern(MIB as usize, 3)).unwrap();
    v.close().unwrap();
}

fn create_child(path: &Path, parent: &Path, paths: Vec<(String, String)>) {
    let mut o = CreateOptions::new(0);
    o.block_size = Some(MIB as u32);
    o.parent = Some(parent.to_path_buf());
    o.parent_paths = paths;
    o.guids = guids(21);
    let mut v = Vhdx::create_file(path, &o).unwrap();
    v.write(512, &[9u8; 512]).unwrap();
    v.close().unwrap();
}

#[test]
fn parent_outside_the_allowed_directories() {
    let dir = tempfile::tempdir().unwrap();
    let (a, elsewhere) = (dir.path().join("a"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let base = elsewhere.join("base.vhdx");
    create_base(&base, 1);
    let child = a.join("child.avhdx");
    create_child(&child, &base, Vec::new());
    let v = Vhdx::open_file(&child, &OpenOptions::read_only()).unwrap_err();
    assert!(matches!(v, VhdxError::ParentNotAllowed { .. }), "{v:?}");
    assert!(
        v.to_string().contains("outside the allowed directories"),
        "{v}"
    );
    // Never opened: the same answer when the "parent" is not even a VHDX file (opening it
    // would have said so).
    std::fs::write(&base, b"not a vhdx at all").unwrap();
    let e = Vhdx::open_file(&child, &OpenOptions::read_only()).unwrap_err();
    assert!(matches!(e, VhdxError::ParentNotAllowed { .. }), "{e:?}");
    // The locator really says ..\elsewhere\base.vhdx.
    let c = Vhdx::open(
        Box::new(MemStorage::from_vec(std::fs::read(&child).unwrap())),
        &OpenOptions::read_only(),
        None,
    )
    .unwrap_err();
    assert!(matches!(c, VhdxError::ParentMissing), "{c:?}");
}

#[test]
fn parent_allowed_when_its_directory_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, elsewhere) = (dir.path().join("a"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let base = elsewhere.join("base.vhdx");
    create_base(&base, 1);
    let child = a.join("child.avhdx");
    create_child(&child, &base, Vec::new());
    let mut opts = OpenOptions::read_only();
    opts.resolver.allowed_dirs = vec![a.clone(), elsewhere.clone()];
    let mut v = Vhdx::open_file(&child, &opts).unwrap();
    let mut b = vec![0u8; 1024];
    v.read(0, &mut b).unwrap();
    assert_eq!(&b[..512], &pattern(MIB as usize, 3)[..512]);
    assert_eq!(&b[512..], &[9u8; 512][..]);
}

#[cfg(unix)]
#[test]
fn symlink_to_a_parent_outside_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, elsewhere) = (dir.path().join("a"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let base = elsewhere.join("base.vhdx");
    create_base(&base, 1);
    let link = a.join("base.vhdx");
    std::os::unix::fs::symlink(&base, &link).unwrap();
    let child = a.join("child.avhdx");
    create_child(
        &child,
        &link,
        vec![("relative_path".into(), ".\\base.vhdx".into())],
    );
    let e = Vhdx::open_file(&child, &OpenOptions::read_only()).unwrap_err();
    assert!(matches!(e, VhdxError::ParentNotAllowed { .. }), "{e:?}");
}

#[test]
fn parent_modified_after_the_child_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.vhdx");
    create_base(&base, 1);
    let child = dir.path().join("child.avhdx");
    create_child(&child, &base, Vec::new());
    Vhdx::open_file(&child, &OpenOptions::read_only()).unwrap();
    let mut p = Vhdx::open_file(&base, &OpenOptions::writable()).unwrap();
    p.write(2 * MIB, &[1u8; 4096]).unwrap();
    p.close().unwrap();
    let e = Vhdx::open_file(&child, &OpenOptions::read_only()).unwrap_err();
    assert!(
        matches!(e, VhdxError::ParentLinkageMismatch { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("DataWriteGuid"), "{e}");
}

#[test]
fn check_file_reports_damage_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.vhdx");
    let s = dynamic(512);
    let mut m = s.bytes.clone();
    m[REGION_TABLE2_OFFSET as usize + 20] ^= 1;
    std::fs::write(&path, &m).unwrap();
    let r = Vhdx::check_file(&path, &OpenOptions::read_only(), false);
    assert!(
        r.findings
            .iter()
            .any(|f| f.message.contains("region table 2")),
        "{r:?}"
    );
    let r = Vhdx::check_file(&path, &OpenOptions::read_only(), true);
    assert!(!r.repaired.is_empty(), "{r:?}");
    assert!(Vhdx::check_file(&path, &OpenOptions::read_only(), false).is_sound());
    // Both region tables gone: an error finding.
    m[REGION_TABLE1_OFFSET as usize + 20] ^= 1;
    std::fs::write(&path, &m).unwrap();
    let r = Vhdx::check_file(&path, &OpenOptions::read_only(), true);
    assert!(
        r.findings
            .iter()
            .any(|f| f.message.contains("region table")),
        "{r:?}"
    );
    let _ = Duration::ZERO;
}

/// A pending log entry that zeroes a GiB of a sparse file: the replay makes the range read
/// zeros without writing them, so a damaged or hostile log cannot fill the disk.
#[test]
#[cfg(unix)] // allocated blocks, as Unix's metadata counts them
fn a_replayed_zero_descriptor_costs_no_disk_space() {
    use std::os::unix::fs::MetadataExt;
    let s = pending_log();
    let apparent = 1u64 << 30;
    let from = 8 * MIB;
    let m = edit_pending_entry(&s, |e| {
        e[64..68].copy_from_slice(b"zero");
        e[72..80].copy_from_slice(&(apparent - from).to_le_bytes());
        e[80..88].copy_from_slice(&from.to_le_bytes());
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.vhdx");
    std::fs::write(&path, &m).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(apparent).unwrap();
    // Data in the range, so that a zeroing that writes nothing would leave it there.
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0xA5; 4096], apparent - 4096).unwrap();
    drop(f);
    let allocated = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
    let before = allocated(&path);
    let opened = Vhdx::open_file(&path, &rw_opts());
    assert!(opened.is_ok(), "the replay: {:?}", opened.err());
    drop(opened);
    let after = allocated(&path);
    assert!(
        after <= before + MIB,
        "the replay allocated {} MiB for zeros ({before} bytes before)",
        (after - before) / MIB
    );
    let mut last = [0u8; 4096];
    std::fs::File::open(&path)
        .unwrap()
        .read_exact_at(&mut last, apparent - 4096)
        .unwrap();
    assert!(
        last.iter().all(|&b| b == 0),
        "the zeroed range still holds data"
    );
}
