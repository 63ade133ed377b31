//! Systematic damage to every on-disk structure of small valid images: bit flips, zeroed
//! and 0xFF-filled ranges, truncations, and field edits with their checksums fixed up (so
//! that the damage reaches the parsers behind the CRC). Every mutant must open to the
//! right content or fail with a `VhdxError` naming the damaged structure; never panic,
//! hang, allocate beyond a bound proportional to the file, or grow the file without bound.

mod common;

use common::*;
use hvsim_engine::vhdx::{
    HEADER1_OFFSET, HEADER2_OFFSET, META_FILE_PARAMETERS, META_LOGICAL_SECTOR_SIZE,
    META_PARENT_LOCATOR, META_PHYSICAL_SECTOR_SIZE, META_VIRTUAL_DISK_ID, META_VIRTUAL_DISK_SIZE,
    REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET,
};

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
    let mut r = Report::default();
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
