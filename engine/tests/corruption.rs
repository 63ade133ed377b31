//! Systematic damage to every on-disk structure of small valid images: bit flips, zeroed
//! and 0xFF-filled ranges, truncations, and field edits with their checksums fixed up (so
//! that the damage reaches the parsers behind the CRC). Every mutant must open to the
//! right content or fail with a `VhdxError` naming the damaged structure; never panic,
//! hang, allocate beyond a bound proportional to the file, or grow the file without bound.
//! Where qemu-img opens a mutant too, both read the same bytes; what a writable open
//! writes is there after a reopen. A truncated image reports its lost blocks and never
//! reads them as zeros; a sparse file claiming huge structures costs a fixed bound.

mod common;

use common::*;
use hvsim_engine::vhdx::{BlockState, Severity};
use hvsim_engine::vhdx::{
    HEADER1_OFFSET, HEADER2_OFFSET, META_FILE_PARAMETERS, META_LOGICAL_SECTOR_SIZE,
    META_PARENT_LOCATOR, META_PHYSICAL_SECTOR_SIZE, META_VIRTUAL_DISK_ID, META_VIRTUAL_DISK_SIZE,
    REGION_BAT, REGION_METADATA, REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET,
};
use hvsim_engine::{CreateOptions, MemStorage, OpenOptions, Vhdx, VhdxError};
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const KIB: u64 = 1024;

const HEADER_WORDS: &[&str] = &["header"];
const REGION_WORDS: &[&str] = &["region"];
const META_WORDS: &[&str] = &[
    "metadata",
    "parent locator",
    "parent",
    "bat",
    "log",
    "region",
];
const BAT_WORDS: &[&str] = &["bat", "file layout", "payload block", "sector bitmap"];
const TRUNC_WORDS: &[&str] = &[
    "truncated",
    "past the end",
    "not a vhdx",
    "header",
    "region",
    "metadata",
    "bat",
    "log",
    "sector bitmap",
    "payload",
];
const ANY_STRUCTURE: &[&str] = &[
    "header",
    "region",
    "metadata",
    "bat",
    "log",
    "parent",
    "payload",
    "sector bitmap",
    "file layout",
    "truncated",
];

fn flip(b: &[u8], at: u64, bit: u32) -> Vec<u8> {
    let mut m = b.to_vec();
    m[at as usize] ^= 1 << (bit % 8);
    m
}

fn fill(b: &[u8], at: u64, len: u64, v: u8) -> Vec<u8> {
    let mut m = b.to_vec();
    let end = (at + len).min(m.len() as u64);
    m[at as usize..end as usize].fill(v);
    m
}

/// Positions to damage in a structure of `len` bytes: every byte of the first `dense`,
/// then every `step`-th.
fn positions(len: u64, dense: u64, step: u64) -> impl Iterator<Item = u64> {
    (0..dense.min(len)).chain((dense..len).step_by(step as usize))
}

/// Damage to one copy of a redundant structure, or to bytes nobody reads: the content must
/// be exactly the original.
fn redundant_copy(
    r: &mut Report,
    s: &Sample,
    name: &str,
    at: u64,
    len: u64,
    dense: u64,
    step: u64,
) {
    for p in positions(len, dense, step) {
        r.check(
            s,
            &format!("{name}: flip byte {p:#x}"),
            &flip(&s.bytes, at + p, p as u32),
            Expect::Original,
        );
    }
    for v in [0u8, 0xFF] {
        r.check(
            s,
            &format!("{name}: fill with {v:#x}"),
            &fill(&s.bytes, at, len, v),
            Expect::Original,
        );
    }
}

/// Damage to a structure the image needs.
#[allow(clippy::too_many_arguments)]
fn needed(
    r: &mut Report,
    s: &Sample,
    name: &str,
    at: u64,
    len: u64,
    dense: u64,
    step: u64,
    words: &'static [&'static str],
) {
    for p in positions(len, dense, step) {
        r.check(
            s,
            &format!("{name}: flip byte {p:#x}"),
            &flip(&s.bytes, at + p, p as u32),
            Expect::OkOrErrNaming(words),
        );
        if p < dense && p % 4 == 0 {
            r.check(
                s,
                &format!("{name}: 0xFF at {p:#x}"),
                &fill(&s.bytes, at + p, 1, 0xFF),
                Expect::OkOrErrNaming(words),
            );
        }
    }
    for v in [0u8, 0xFF] {
        r.check(
            s,
            &format!("{name}: fill with {v:#x}"),
            &fill(&s.bytes, at, len, v),
            Expect::OkOrErrNaming(words),
        );
        r.check(
            s,
            &format!("{name}: first half {v:#x}"),
            &fill(&s.bytes, at, len / 2, v),
            Expect::OkOrErrNaming(words),
        );
    }
}

fn headers(r: &mut Report, s: &Sample) {
    // File identifier: the signature is checked, the creator is diagnostics only.
    for p in 0..8 {
        r.check(
            s,
            &format!("file identifier: flip byte {p}"),
            &flip(&s.bytes, p, 0),
            Expect::OkOrErrNaming(&["not a vhdx"]),
        );
    }
    for p in (8..64 * KIB).step_by(4001) {
        r.check(
            s,
            &format!("file identifier: flip byte {p:#x}"),
            &flip(&s.bytes, p, 3),
            Expect::Original,
        );
    }
    // One header at a time: the other copy carries the image.
    redundant_copy(r, s, "header 1", HEADER1_OFFSET, 4096, 128, 61);
    redundant_copy(r, s, "header 2", HEADER2_OFFSET, 4096, 128, 61);
    redundant_copy(
        r,
        s,
        "header 1 reserved area",
        HEADER1_OFFSET + 4096,
        60 * KIB,
        0,
        8191,
    );
    headers_light(r, s);
}

/// Both headers damaged alike, and their fields edited behind a valid checksum.
fn headers_light(r: &mut Report, s: &Sample) {
    // Both headers damaged alike: unusable, and the error says "header".
    for p in (0..128).step_by(2).chain((128..4096).step_by(255)) {
        let mut m = flip(&s.bytes, HEADER1_OFFSET + p, p as u32);
        m[(HEADER2_OFFSET + p) as usize] ^= 1 << (p % 8);
        r.check(
            s,
            &format!("both headers: flip byte {p:#x}"),
            &m,
            Expect::OkOrErrNaming(HEADER_WORDS),
        );
    }
    let mut m = fill(&s.bytes, HEADER1_OFFSET, 4096, 0);
    m[HEADER2_OFFSET as usize..HEADER2_OFFSET as usize + 4096].fill(0xFF);
    r.check(
        s,
        "both headers: zero and 0xFF",
        &m,
        Expect::OkOrErrNaming(HEADER_WORDS),
    );
    // Field edits behind a valid checksum: every byte of the used part of both headers.
    for p in 0..80u64 {
        for v in [0u8, 0xFF, 0x10] {
            let mut m = s.bytes.clone();
            edit_headers(&mut m, |h| h[p as usize] = v);
            r.check(
                s,
                &format!("both headers, checksum fixed: byte {p} = {v:#x}"),
                &m,
                Expect::OkOrErrNaming(ANY_STRUCTURE),
            );
        }
    }
}

fn region_tables(r: &mut Report, s: &Sample) {
    redundant_copy(
        r,
        s,
        "region table 1",
        REGION_TABLE1_OFFSET,
        64 * KIB,
        80,
        2039,
    );
    redundant_copy(
        r,
        s,
        "region table 2",
        REGION_TABLE2_OFFSET,
        64 * KIB,
        80,
        2039,
    );
    for p in (0..80u64).chain((80..64 * KIB).step_by(4099)) {
        let mut m = flip(&s.bytes, REGION_TABLE1_OFFSET + p, p as u32);
        m[(REGION_TABLE2_OFFSET + p) as usize] ^= 1 << (p % 8);
        r.check(
            s,
            &format!("both region tables: flip byte {p:#x}"),
            &m,
            Expect::OkOrErrNaming(REGION_WORDS),
        );
    }
    // Field edits behind a valid checksum in copy 2 only: copy 1 still decides.
    for p in 8..80u64 {
        for v in [0u8, 0xFF, 0x10] {
            let mut m = s.bytes.clone();
            m[(REGION_TABLE2_OFFSET + p) as usize] = v;
            fix_region_table(&mut m, REGION_TABLE2_OFFSET);
            r.check(
                s,
                &format!("region table 2, checksum fixed: byte {p} = {v:#x}"),
                &m,
                Expect::Original,
            );
        }
    }
    // Field edits behind a valid checksum, in both copies.
    for p in 8..80u64 {
        for v in [0u8, 0xFF, 0x10] {
            let mut m = s.bytes.clone();
            edit_region_tables(&mut m, |t| t[p as usize] = v);
            r.check(
                s,
                &format!("both region tables, checksum fixed: byte {p} = {v:#x}"),
                &m,
                Expect::OkOrErrNaming(ANY_STRUCTURE),
            );
        }
    }
}

fn metadata(r: &mut Report, s: &Sample) {
    let n = s.items.len() as u64;
    needed(
        r,
        s,
        "metadata table",
        s.meta_offset,
        64 * KIB,
        32 + 32 * n + 32,
        1021,
        META_WORDS,
    );
    let names = [
        (META_FILE_PARAMETERS, "file parameters"),
        (META_VIRTUAL_DISK_SIZE, "virtual disk size"),
        (META_VIRTUAL_DISK_ID, "virtual disk id"),
        (META_LOGICAL_SECTOR_SIZE, "logical sector size"),
        (META_PHYSICAL_SECTOR_SIZE, "physical sector size"),
        (META_PARENT_LOCATOR, "parent locator"),
    ];
    for (id, name) in names {
        if !s.items.iter().any(|(i, _, _)| *i == id.to_string()) {
            continue;
        }
        let (at, len) = item_offset(s, id);
        // The disk id is informational: any value opens to the same content.
        if id == META_VIRTUAL_DISK_ID {
            redundant_copy(r, s, name, at, len, len, 1);
            continue;
        }
        let step = if len > 256 { 3 } else { 1 };
        needed(r, s, name, at, len, len.min(256), step, META_WORDS);
    }
}

fn bat(r: &mut Report, s: &Sample) {
    for &e in &s.interesting_entries {
        let at = s.bat_offset + 8 * e;
        for bit in (0..3).chain([20, 21, 25, 30, 35, 40, 50, 60, 63]) {
            let mut m = s.bytes.clone();
            let v = get_u64(&m, at) ^ (1 << bit);
            set_u64(&mut m, at, v);
            r.check(
                s,
                &format!("BAT entry {e}: flip bit {bit}"),
                &m,
                Expect::OkOrErrNaming(BAT_WORDS),
            );
        }
        for state in 0..8u64 {
            let mut m = s.bytes.clone();
            let v = (get_u64(&m, at) & !7) | state;
            set_u64(&mut m, at, v);
            r.check(
                s,
                &format!("BAT entry {e}: state {state}"),
                &m,
                Expect::OkOrErrNaming(BAT_WORDS),
            );
        }
        let mut m = s.bytes.clone();
        set_u64(&mut m, at, u64::MAX);
        r.check(
            s,
            &format!("BAT entry {e}: all ones"),
            &m,
            Expect::OkOrErrNaming(BAT_WORDS),
        );
    }
    for v in [0u8, 0xFF] {
        r.check(
            s,
            &format!("BAT page 0: fill {v:#x}"),
            &fill(&s.bytes, s.bat_offset, 4096, v),
            Expect::OkOrErrNaming(BAT_WORDS),
        );
    }
    // Past the entries in use: nobody reads these.
    let used = s.bat_entries * 8;
    for p in (used.next_multiple_of(4096)..s.bat_length).step_by(65519) {
        r.check(
            s,
            &format!("BAT unused byte {p:#x}"),
            &flip(&s.bytes, s.bat_offset + p, 1),
            Expect::Original,
        );
    }
}

fn payload(r: &mut Report, s: &Sample) {
    for &off in &s.payload_blocks {
        for p in (0..s.block_size).step_by(131_071) {
            r.check(
                s,
                &format!("payload at {:#x}", off + p),
                &flip(&s.bytes, off + p, 0),
                Expect::Opens,
            );
        }
    }
    for &off in &s.sector_bitmaps {
        for p in (0..1024u64).step_by(13).chain((1024..MIB).step_by(65_521)) {
            r.check(
                s,
                &format!("sector bitmap byte {p:#x}"),
                &flip(&s.bytes, off + p, p as u32),
                Expect::Opens,
            );
        }
        for v in [0u8, 0xFF] {
            r.check(
                s,
                &format!("sector bitmap: fill {v:#x}"),
                &fill(&s.bytes, off, MIB, v),
                Expect::Opens,
            );
        }
    }
}

fn truncations(r: &mut Report, s: &Sample) {
    let len = s.bytes.len() as u64;
    let mut cuts: Vec<u64> = (0..=MIB).step_by(64 * KIB as usize).collect();
    cuts.extend([0, 1, 7, 8, 9, 520, 4096]);
    let mut starts = vec![
        HEADER1_OFFSET,
        HEADER2_OFFSET,
        REGION_TABLE1_OFFSET,
        REGION_TABLE2_OFFSET,
    ];
    starts.extend([
        s.log_offset,
        s.log_offset + s.log_length,
        s.bat_offset,
        s.bat_offset + s.bat_length,
    ]);
    starts.extend([s.meta_offset, s.meta_offset + 64 * KIB]);
    starts.extend(s.items.iter().flat_map(|(_, o, l)| [*o, o + l]));
    starts.extend(s.payload_blocks.iter().flat_map(|&o| [o, o + s.block_size]));
    starts.extend(s.sector_bitmaps.iter().flat_map(|&o| [o, o + MIB]));
    for st in starts {
        cuts.extend([st.saturating_sub(1), st, st + 1, st + 4096]);
    }
    cuts.extend((MIB..len).step_by((MIB / 2) as usize));
    cuts.sort();
    cuts.dedup();
    for c in cuts.into_iter().filter(|&c| c < len) {
        r.check(
            s,
            &format!("truncated to {c:#x} bytes"),
            &s.bytes[..c as usize],
            Expect::OkOrErrNaming(TRUNC_WORDS),
        );
    }
    // An image cut after its last block reads zeros there, or says it is truncated.
    let mut longer = s.bytes.clone();
    longer.extend(std::iter::repeat_n(0xEE, 4096));
    r.check(s, "4 KiB of garbage appended", &longer, Expect::Original);
}

fn log_area(r: &mut Report, s: &Sample) {
    match s.pending_entry {
        None => {
            // No active log (LogGuid is nil): nothing in the log area is ever read.
            for p in (0..s.log_length).step_by(8191) {
                r.check(
                    s,
                    &format!("idle log byte {p:#x}"),
                    &flip(&s.bytes, s.log_offset + p, 2),
                    Expect::Original,
                );
            }
            r.check(
                s,
                "idle log filled 0xFF",
                &fill(&s.bytes, s.log_offset, s.log_length, 0xFF),
                Expect::Original,
            );
        }
        Some((pos, len)) => {
            let at = s.log_offset + pos;
            // The replayed sectors carry the edit: any structure may be named.
            let edited = Expect::OkOrErrNaming(ANY_STRUCTURE);
            // Inside the entry: the checksum fails, the entry is not replayed.
            for p in positions(len, 96, 127) {
                let m = flip(&s.bytes, at + p, p as u32);
                r.check_old(s, &format!("log entry: flip byte {p:#x}"), &m);
            }
            for (name, o, l) in [
                ("entry header", 0, 64),
                ("descriptors", 64, 4032),
                ("data sector", 4096, 4096),
            ] {
                if o + l <= len {
                    r.check_old(
                        s,
                        &format!("log {name} zeroed"),
                        &fill(&s.bytes, at + o, l, 0),
                    );
                    r.check_old(
                        s,
                        &format!("log {name} 0xFF"),
                        &fill(&s.bytes, at + o, l, 0xFF),
                    );
                }
            }
            // Elsewhere in the ring: the entry still replays.
            for p in (0..s.log_length)
                .step_by(12_289)
                .filter(|p| *p < pos || *p >= pos + len)
            {
                r.check(
                    s,
                    &format!("log ring byte {p:#x}"),
                    &flip(&s.bytes, s.log_offset + p, 4),
                    Expect::Original,
                );
            }
            // Field edits behind a valid entry checksum.
            for p in (0..64 + 32 * 2).filter(|p| !(4..8).contains(p)) {
                for v in [0xFFu8, 0x01] {
                    let mut m = s.bytes.clone();
                    m[(at + p) as usize] = v;
                    fix_crc(&mut m, at as usize, len as usize);
                    r.check(
                        s,
                        &format!("log entry, checksum fixed: byte {p} = {v:#x}"),
                        &m,
                        edited.clone(),
                    );
                }
            }
        }
    }
}

fn run_all(s: &Sample, parts: &[fn(&mut Report, &Sample)]) {
    let mut r = Report::with_qemu(s);
    for p in parts {
        p(&mut r, s);
    }
    r.finish(s.name);
}

const ALL: &[fn(&mut Report, &Sample)] = &[
    headers,
    region_tables,
    metadata,
    bat,
    payload,
    truncations,
    log_area,
];

#[test]
fn damaged_dynamic_512() {
    run_all(&dynamic(512), ALL);
}

#[test]
fn damaged_dynamic_4096() {
    run_all(&dynamic(4096), &[metadata, bat, payload, truncations]);
}

#[test]
fn damaged_fixed() {
    run_all(
        &fixed(),
        &[headers_light, metadata, bat, payload, truncations],
    );
}

#[test]
fn damaged_differencing_512() {
    run_all(
        &differencing(512),
        &[
            headers_light,
            region_tables,
            metadata,
            bat,
            payload,
            truncations,
            log_area,
        ],
    );
}

#[test]
fn damaged_differencing_4096() {
    run_all(&differencing(4096), &[metadata, bat, payload, truncations]);
}

#[test]
fn damaged_pending_log() {
    run_all(&pending_log(), &[log_area, headers_light, bat, truncations]);
}

// ------------------------------------------------------------------ truncated images

/// A block with data in an intact image: (payload block or sector bitmap, index, file
/// offset, bytes the file must hold).
#[derive(Clone, Copy, Debug)]
struct Placed {
    bitmap: bool,
    index: u64,
    offset: u64,
    len: u64,
}

/// Where the sample keeps data: payload blocks and sector bitmap blocks, and the end of
/// the structures every open needs (header area, log, regions).
fn placement(s: &Sample) -> (Vec<Placed>, u64, Vhdx) {
    let v = Vhdx::open(
        Box::new(MemStorage::from_vec(s.bytes.clone())),
        &ro_opts(),
        s.parent.as_deref().map(open_parent),
    )
    .expect("the intact sample opens");
    let g = v.geometry();
    let mut placed = Vec::new();
    for b in 0..g.payload_blocks {
        let (state, offset) = v.block(b);
        if state.has_data() {
            placed.push(Placed {
                bitmap: false,
                index: b,
                offset,
                len: g.block_len(b),
            });
        }
    }
    for c in 0..g.sector_bitmap_blocks {
        if let Some(offset) = v.sector_bitmap_offset(c) {
            placed.push(Placed {
                bitmap: true,
                index: c,
                offset,
                len: MIB,
            });
        }
    }
    let structures = [
        (0, MIB),
        (s.log_offset, s.log_length),
        (s.bat_offset, s.bat_length),
        (
            v.metadata_region().file_offset,
            u64::from(v.metadata_region().length),
        ),
    ]
    .iter()
    .map(|(o, l)| o + l)
    .max()
    .unwrap();
    (placed, structures, v)
}

/// Whether a read of block `b` of `v` must fail because `lost` holds what it needs.
fn lost_for(v: &Vhdx, b: u64, lost: &[Placed]) -> Option<Placed> {
    let (state, _) = v.block(b);
    let chunk = b / v.geometry().chunk_ratio;
    let payload = lost.iter().find(|p| !p.bitmap && p.index == b);
    let bitmap = lost.iter().find(|p| p.bitmap && p.index == chunk);
    match state {
        BlockState::FullyPresent => payload.copied(),
        BlockState::PartiallyPresent => payload.or(bitmap).copied(),
        _ => None,
    }
}

fn names(e: &VhdxError, p: &Placed) -> bool {
    matches!(e, VhdxError::BlockPastEnd { what, index, offset, .. }
        if *index == p.index && *offset == p.offset && what.contains("bitmap") == p.bitmap)
}

fn write_files(
    dir: &std::path::Path,
    s: &Sample,
    child: &[u8],
    parent: Option<&[u8]>,
) -> std::path::PathBuf {
    let img = dir.join("disk.vhdx");
    std::fs::write(&img, child).unwrap();
    if let Some(p) = parent {
        std::fs::write(dir.join("base.vhdx"), p).unwrap();
    }
    let _ = s;
    img
}

/// Cuts `s` at every half MiB. Before the end of the structures every open needs, the
/// open fails with a typed error; after it, `check` reports exactly the blocks that
/// lost bytes, each read of such a block fails naming it, every other block reads its
/// bytes, a writable open is refused, and an export fails rather than writing zeros.
/// qemu-img check agrees on whether the file is damaged, where it opens the format.
fn truncate_everywhere(s: &Sample) {
    let (placed, structures, _) = placement(s);
    let len = s.bytes.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    // qemu opens neither differencing images nor 4096-byte sectors: where it opens the
    // intact file, it is asked about every cut.
    let intact = write_files(dir.path(), s, &s.bytes, s.parent.as_deref());
    let qemu_knows = qemu_img(&[
        "check".as_ref(),
        "-f".as_ref(),
        "vhdx".as_ref(),
        intact.as_os_str(),
    ])
    .0 == Some(0);
    let mut cuts = 0;
    for cut in (MIB / 2..len).step_by((MIB / 2) as usize) {
        cuts += 1;
        let what = format!("[{}] cut at {cut:#x} of {len:#x}", s.name);
        let bytes = &s.bytes[..cut as usize];
        let img = write_files(dir.path(), s, bytes, s.parent.as_deref());
        let report = Vhdx::check_file(&img, &ro_opts(), false);
        let errors: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.message.as_str())
            .collect();
        let opened = Vhdx::open_file(&img, &ro_opts());
        let lost: Vec<Placed> = placed
            .iter()
            .filter(|p| p.offset + p.len > cut)
            .copied()
            .collect();
        if cut < structures {
            match opened {
                Ok(_) => panic!("{what}: opens without the structures it needs"),
                Err(VhdxError::Io { .. }) => panic!("{what}: untyped error"),
                Err(_) => {}
            }
            assert!(!errors.is_empty(), "{what}: check finds nothing");
        } else {
            let mut v = opened.unwrap_or_else(|e| panic!("{what}: does not open: {e}"));
            assert_eq!(
                errors.len(),
                lost.len(),
                "{what}: check names {errors:?}, lost are {lost:?}"
            );
            for p in &lost {
                let name = format!(
                    "{} {} at file offset {:#x}",
                    if p.bitmap {
                        "sector bitmap block of chunk"
                    } else {
                        "payload block"
                    },
                    p.index,
                    p.offset
                );
                assert!(
                    errors
                        .iter()
                        .any(|e| e.contains(&name) && e.contains("truncated")),
                    "{what}: check does not name {name}: {errors:?}"
                );
            }
            let g = v.geometry();
            for b in 0..g.payload_blocks {
                let at = b * g.block_size;
                let mut got = vec![0u8; g.block_len(b) as usize];
                let r = v.read(at, &mut got);
                match lost_for(&v, b, &lost) {
                    Some(p) => match r {
                        Err(e) if names(&e, &p) => {}
                        Err(e) => panic!("{what}: block {b}: wrong error {e}"),
                        Ok(()) => panic!("{what}: block {b} reads although {p:?} is lost"),
                    },
                    None => {
                        r.unwrap_or_else(|e| panic!("{what}: intact block {b}: {e}"));
                        assert!(
                            got == s.content[at as usize..at as usize + got.len()],
                            "{what}: intact block {b} reads other bytes"
                        );
                    }
                }
            }
            let raw = dir.path().join("export.raw");
            let out = std::fs::File::create(&raw).unwrap();
            let exported = hvsim_engine::vhdx::convert::export_raw(&mut v, &out, false);
            let reads_lost = (0..g.payload_blocks).any(|b| lost_for(&v, b, &lost).is_some());
            match exported {
                Err(VhdxError::BlockPastEnd { .. }) if reads_lost => {}
                Ok(_) if !reads_lost => {
                    assert!(std::fs::read(&raw).unwrap() == s.content, "{what}: export");
                }
                other => panic!("{what}: export gives {other:?} (lost: {lost:?})"),
            }
            // The image is locked while open: the read-only handle goes first.
            drop(v);
            let w = Vhdx::open_file(&img, &rw_opts());
            match (lost.first(), w) {
                (None, Ok(_)) => {}
                (None, Err(e)) => panic!("{what}: writable open fails: {e}"),
                (Some(p), Err(e)) if names(&e, p) => {}
                (Some(_), Err(e)) => panic!("{what}: writable open fails, but says: {e}"),
                (Some(p), Ok(_)) => panic!("{what}: opens writable although {p:?} is lost"),
            }
        }
        if qemu_knows {
            let (code, text) = qemu_img(&[
                "check".as_ref(),
                "-f".as_ref(),
                "vhdx".as_ref(),
                img.as_os_str(),
            ]);
            assert_eq!(
                code == Some(0),
                errors.is_empty(),
                "{what}: qemu-img check says {code:?} {text}, hvsim check {errors:?}"
            );
        }
    }
    eprintln!("{}: {cuts} cuts, qemu-img asked: {qemu_knows}", s.name);
}

#[test]
fn truncated_dynamic_512() {
    truncate_everywhere(&dynamic(512));
}

#[test]
fn truncated_dynamic_4096() {
    truncate_everywhere(&dynamic(4096));
}

#[test]
fn truncated_fixed() {
    truncate_everywhere(&fixed());
}

#[test]
fn truncated_differencing() {
    truncate_everywhere(&differencing(512));
    truncate_everywhere(&differencing(4096));
}

/// A differencing child over a truncated parent: reads that fall through to a lost parent
/// block fail naming it, the child's own blocks read their bytes, and a merge (which
/// opens the parent writable) is refused.
#[test]
fn truncated_parent_under_a_child() {
    let s = differencing(512);
    let pbytes = s.parent.clone().unwrap();
    let parent = Sample {
        bytes: pbytes.clone(),
        parent: None,
        ..parent_sample(&pbytes)
    };
    let (placed, structures, _) = placement(&parent);
    let dir = tempfile::tempdir().unwrap();
    let len = pbytes.len() as u64;
    for cut in (structures..len).step_by((MIB / 2) as usize) {
        let what = format!("[parent cut at {cut:#x}]");
        let img = write_files(dir.path(), &s, &s.bytes, Some(&pbytes[..cut as usize]));
        let lost: Vec<Placed> = placed
            .iter()
            .filter(|p| p.offset + p.len > cut)
            .copied()
            .collect();
        let mut v = Vhdx::open_file(&img, &ro_opts()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let g = v.geometry();
        for b in 0..g.payload_blocks {
            let at = b * g.block_size;
            let mut got = vec![0u8; g.block_len(b) as usize];
            let r = v.read(at, &mut got);
            let falls_through = matches!(
                v.block(b).0,
                BlockState::NotPresent | BlockState::PartiallyPresent
            );
            match lost.iter().find(|p| p.index == b).filter(|_| falls_through) {
                Some(p) => assert!(
                    matches!(&r, Err(e) if names(e, p)),
                    "{what}: block {b}: {r:?}"
                ),
                None => {
                    r.unwrap_or_else(|e| panic!("{what}: block {b}: {e}"));
                    assert!(got == s.content[at as usize..at as usize + got.len()]);
                }
            }
        }
        drop(v); // locked while open
        let merge = OpenOptions {
            parent_writable: true,
            ..rw_opts()
        };
        match (lost.first(), Vhdx::open_file(&img, &merge)) {
            (None, Ok(_)) => {}
            (Some(p), Err(e)) if names(&e, p) => {}
            (p, r) => panic!("{what}: lost {p:?}, open for a merge: {:?}", r.map(|_| ())),
        }
    }
}

/// The parent image as a sample of its own (its layout, for the truncation).
fn parent_sample(bytes: &[u8]) -> Sample {
    let v = open_parent(bytes);
    Sample {
        name: "parent",
        bytes: bytes.to_vec(),
        parent: None,
        content: Vec::new(),
        old_content: None,
        bat_offset: v.bat_region().file_offset,
        bat_length: u64::from(v.bat_region().length),
        meta_offset: v.metadata_region().file_offset,
        log_offset: v.header().log_offset,
        log_length: u64::from(v.header().log_length),
        items: Vec::new(),
        bat_entries: 0,
        payload_blocks: Vec::new(),
        sector_bitmaps: Vec::new(),
        interesting_entries: Vec::new(),
        block_size: v.geometry().block_size,
        pending_entry: None,
    }
}

// ------------------------------------------------------------------ sparse files

/// Apparent size of the sparse mutants: far more than any bound may be proportional to.
const SPARSE_LEN: u64 = 64 << 30;
/// What one open of a sparse mutant may allocate at peak, whatever its apparent size.
const SPARSE_BUDGET: i64 = 64 * MIB as i64;

/// Edits the region table entry of `region` (both copies): new file offset and length.
fn move_region(m: &mut [u8], region: uuid::Uuid, offset: u64, length: u32) {
    edit_region_tables(m, |t| {
        let count = get_u32(t, 8) as usize;
        for i in 0..count {
            let e = 16 + 32 * i;
            if uuid::Uuid::from_bytes_le(t[e..e + 16].try_into().unwrap()) == region {
                t[e + 16..e + 24].copy_from_slice(&offset.to_le_bytes());
                t[e + 24..e + 28].copy_from_slice(&length.to_le_bytes());
            }
        }
    });
}

/// Mutants of `s` in a 64 GiB sparse file, each claiming a structure of gigabytes that
/// the file's few real MiB do not hold.
fn sparse_mutants(s: &Sample) -> Vec<(&'static str, SparseStorage)> {
    let limit = SPARSE_LEN + 64 * MIB;
    let base = |m: &[u8]| {
        let mut st = SparseStorage::new(SPARSE_LEN, limit);
        st.put(0, m);
        st
    };
    let mut out = vec![("intact", base(&s.bytes))];

    // A 4 GiB log (with an active log GUID, so it is read) far out in the file.
    let mut m = s.bytes.clone();
    edit_headers(&mut m, |h| {
        h[48..64].copy_from_slice(&[0x5A; 16]);
        h[68..72].copy_from_slice(&0xFFF0_0000u32.to_le_bytes());
        h[72..80].copy_from_slice(&(32u64 << 30).to_le_bytes());
    });
    out.push(("4 GiB log", base(&m)));

    // A 64 TiB disk in 1 MiB blocks: a 512 MiB BAT, in a 4 GiB region of zeros.
    let mut m = s.bytes.clone();
    move_region(&mut m, REGION_BAT, 16 << 30, 0xFFF0_0000);
    let (at, _) = item_offset(s, META_VIRTUAL_DISK_SIZE);
    set_u64(&mut m, at, 64 << 40);
    out.push(("64 TiB disk, 4 GiB BAT region", base(&m)));

    // A 4 GiB metadata region whose table lists 2047 items of 1 MiB each.
    let mut m = s.bytes.clone();
    let meta_at = 20u64 << 30;
    move_region(&mut m, REGION_METADATA, meta_at, 0xFFF0_0000);
    let mut st = base(&m);
    let mut region = s.bytes[s.meta_offset as usize..(s.meta_offset + MIB) as usize].to_vec();
    let count = get_u32(&region, 8) >> 16;
    for i in count as usize..2047 {
        let e = &mut region[32 + 32 * i..64 + 32 * i];
        e[..16].copy_from_slice(
            uuid::Uuid::from_u128(0xABC0 + i as u128)
                .to_bytes_le()
                .as_ref(),
        );
        e[16..20].copy_from_slice(&((i as u32 + 1) << 20).to_le_bytes());
        e[20..24].copy_from_slice(&(1u32 << 20).to_le_bytes());
        e[24..28].copy_from_slice(&0u32.to_le_bytes());
    }
    region[10..12].copy_from_slice(&2047u16.to_le_bytes());
    st.put(meta_at, &region);
    out.push(("4 GiB metadata region, 2047 items of 1 MiB", st));
    out
}

/// Opens a sparse mutant read-only and writable on a thread of its own: its peak
/// allocation and what it did.
fn run_sparse(st: SparseStorage) -> (i64, Result<(), String>, Result<(), String>, Duration) {
    let start = std::time::Instant::now();
    let h = std::thread::spawn(move || {
        reset_peak();
        let probe = |v: &mut Vhdx| -> Result<(), VhdxError> {
            let mut b = vec![0u8; MIB as usize];
            let size = v.virtual_size();
            v.read(0, &mut b[..MIB.min(size) as usize])?;
            v.read(size - MIB.min(size), &mut b[..MIB.min(size) as usize])
        };
        let ro = Vhdx::open(Box::new(st.clone()), &ro_opts(), None)
            .and_then(|mut v| probe(&mut v))
            .map_err(|e| e.to_string());
        let rw = Vhdx::open(Box::new(st), &rw_opts(), None)
            .and_then(|mut v| {
                probe(&mut v)?;
                v.write(0, &[0xA5; 4096])?;
                v.close()
            })
            .map_err(|e| e.to_string());
        (peak_bytes(), ro, rw)
    });
    let (peak, ro, rw) = h.join().expect("no panic");
    (peak, ro, rw, start.elapsed())
}

/// Sizes read from a file are checked against what the file holds before anything is
/// allocated (issue 7 §3): a 64 GiB sparse file claiming gigabyte structures is refused
/// or opened within a fixed allocation bound, not one proportional to its apparent size.
#[test]
fn sparse_files_claiming_huge_structures() {
    let s = dynamic(512);
    let mut failures = Vec::new();
    for (what, st) in sparse_mutants(&s) {
        let (peak, ro, rw, took) = run_sparse(st);
        eprintln!(
            "{what}: peak {} KiB in {took:?}; read-only {ro:?}; writable {rw:?}",
            peak / 1024
        );
        if peak > SPARSE_BUDGET {
            failures.push(format!("{what}: allocated {peak} bytes at peak"));
        }
        if took > Duration::from_secs(10) {
            failures.push(format!("{what}: took {took:?}"));
        }
        if what == "intact" && (ro.is_err() || rw.is_err()) {
            failures.push(format!("{what}: {ro:?} {rw:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Damage to one copy of a redundant structure is repaired from the other (`check
/// --repair`): afterwards both region tables hold the original bytes again, both headers
/// are valid and agree, and the disk reads its original content.
#[test]
fn repair_brings_the_redundant_copies_back() {
    let s = dynamic(512);
    let rt = |b: &[u8], at: u64| b[at as usize..(at + 64 * KIB) as usize].to_vec();
    let original = rt(&s.bytes, REGION_TABLE1_OFFSET);
    assert_eq!(original, rt(&s.bytes, REGION_TABLE2_OFFSET));
    let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, at) in [
        ("region table 1", REGION_TABLE1_OFFSET),
        ("region table 2", REGION_TABLE2_OFFSET),
        ("header 1", HEADER1_OFFSET),
        ("header 2", HEADER2_OFFSET),
    ] {
        for p in [0u64, 5, 17, 40, 70] {
            damages.push((format!("{name}: flip byte {p}"), flip(&s.bytes, at + p, 3)));
        }
        damages.push((format!("{name}: zeroed"), fill(&s.bytes, at, 4096, 0)));
    }
    for p in [16u64, 24, 40, 56] {
        let mut m = s.bytes.clone();
        m[(REGION_TABLE2_OFFSET + p) as usize] ^= 0x10;
        fix_region_table(&mut m, REGION_TABLE2_OFFSET);
        damages.push((format!("region table 2, checksum fixed: byte {p}"), m));
    }
    for (what, m) in damages {
        let mut v = Vhdx::open(Box::new(MemStorage::from_vec(m)), &rw_opts(), None)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!v.warnings().is_empty(), "{what}: no warning");
        v.rewrite_redundant_copies().unwrap();
        let bytes = storage_bytes(v.into_storage().unwrap());
        for at in [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET] {
            assert!(
                rt(&bytes, at) == original,
                "{what}: the region table at {at:#x} is not the original"
            );
        }
        let mut v = Vhdx::open(
            Box::new(MemStorage::from_vec(bytes.clone())),
            &ro_opts(),
            None,
        )
        .unwrap();
        assert!(v.warnings().is_empty(), "{what}: {:?}", v.warnings());
        let h = |at: u64| bytes[at as usize + 16..at as usize + 80].to_vec();
        assert_eq!(
            h(HEADER1_OFFSET),
            h(HEADER2_OFFSET),
            "{what}: headers differ"
        );
        let mut got = vec![0u8; s.content.len()];
        v.read(0, &mut got).unwrap();
        assert!(got == s.content, "{what}: content");
    }
}

/// Sector bitmaps are 1 MiB each, and a differencing disk may have thousands of chunks:
/// reading one sector in each of 48 chunks keeps a few bitmaps in memory, not 48 MiB.
#[test]
fn sector_bitmaps_of_many_chunks_are_not_all_kept() {
    let chunk = 4096 * MIB; // 1 MiB blocks of 512-byte sectors
    let chunks = 48;
    let mut o = CreateOptions::new(chunks * chunk);
    o.block_size = Some(MIB as u32);
    o.guids = guids(21);
    let parent = Vhdx::create(Box::new(MemStorage::new()), &o, None).unwrap();
    let pbytes = storage_bytes(parent.into_storage().unwrap());
    let mut c = CreateOptions::new(0);
    c.block_size = Some(MIB as u32);
    c.parent_paths = vec![("relative_path".into(), ".\\base.vhdx".into())];
    c.guids = guids(22);
    let mut v = Vhdx::create(Box::new(MemStorage::new()), &c, Some(open_parent(&pbytes))).unwrap();
    for k in 0..chunks {
        v.write(k * chunk + 512, &[k as u8 + 1; 512]).unwrap();
    }
    let bytes = storage_bytes(v.into_storage().unwrap());
    let peak = std::thread::spawn(move || {
        let p = open_parent(&pbytes);
        let mut v = Vhdx::open(Box::new(MemStorage::from_vec(bytes)), &ro_opts(), Some(p)).unwrap();
        reset_peak();
        let mut b = [0u8; 1024];
        for k in 0..chunks {
            v.read(k * chunk, &mut b).unwrap();
            assert!(
                b[..512] == [0; 512] && b[512..] == [k as u8 + 1; 512],
                "chunk {k}"
            );
        }
        peak_bytes()
    })
    .join()
    .unwrap();
    assert!(peak < 16 * MIB as i64, "peak {peak} bytes while reading");
}
