//! QEMU-made images committed under fixtures/qemu/ (made by fixtures/make-fixtures.sh):
//! hvsim must read exactly what qemu-io wrote into them. The expected bytes are
//! recomputed here from the same qemu-io commands, which are checked to appear verbatim
//! in the script, so the two cannot drift apart silently.

mod common;

use common::*;
use hvsim_engine::DiskType;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Fixture {
    name: &'static str,
    disk_type: DiskType,
    size: u64,
    block_size: u64,
    /// The qemu-io commands, in order, exactly as in make-fixtures.sh.
    commands: &'static [&'static str],
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "dyn-1m",
        disk_type: DiskType::Dynamic,
        size: 5243904,
        block_size: MIB,
        commands: &[
            "write -P 0xab 4096 10000",
            "write -P 0x11 1048000 2000",
            "write -P 0x5c 3145728 1048576",
            "write -P 0xe7 5242000 1904",
            "write -z 3146000 1000",
            "write -P 0x3d 1 511",
        ],
    },
    Fixture {
        name: "fixed-2m",
        disk_type: DiskType::Fixed,
        size: 3146240,
        block_size: 2 * MIB,
        commands: &[
            "write -P 0x42 0 4096",
            "write -P 0x99 2097000 300",
            "write -P 0xc8 3145000 1240",
        ],
    },
    Fixture {
        name: "dyn-4g",
        disk_type: DiskType::Dynamic,
        size: 4297064448,
        block_size: MIB,
        commands: &[
            "write -P 0x71 4294966000 3000",
            "write -P 0x72 4293918720 1048576",
            "write -P 0x73 4296015000 1049448",
            "write -P 0x74 100 100",
        ],
    },
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The model of a fixture: its qemu-io commands applied to a zeroed disk.
fn expected(f: &Fixture) -> Model {
    let mut m = Model::new(f.size);
    for c in f.commands {
        let words: Vec<&str> = c.split_whitespace().collect();
        match words.as_slice() {
            ["write", "-P", pat, off, len] => {
                let p = u8::from_str_radix(pat.trim_start_matches("0x"), 16).expect("pattern");
                m.write(off.parse().unwrap(), &vec![p; len.parse().unwrap()]);
            }
            ["write", "-z", off, len] => m.zero(off.parse().unwrap(), len.parse().unwrap()),
            _ => panic!("unknown qemu-io command in the fixture table: {c}"),
        }
    }
    m
}

/// Decompresses fixtures/qemu/NAME.vhdx.gz into `dir`.
fn unpack(name: &str, dir: &Path) -> PathBuf {
    let gz = fixtures_dir().join("qemu").join(format!("{name}.vhdx.gz"));
    assert!(
        gz.exists(),
        "missing fixture {} (fixtures/make-fixtures.sh makes it)",
        gz.display()
    );
    let out = run_ok(Command::new("gzip").arg("-dc").arg(&gz));
    let path = dir.join(format!("{name}.vhdx"));
    write_file(&path, &out.stdout);
    path
}

#[test]
fn the_table_matches_the_script() {
    let script =
        std::fs::read_to_string(fixtures_dir().join("make-fixtures.sh")).expect("make-fixtures.sh");
    for f in FIXTURES {
        assert!(
            script.contains(&format!("pack {}", f.name)),
            "{} is not made by the script",
            f.name
        );
        for c in f.commands {
            assert!(
                script.contains(&format!("'{c}'")),
                "{}: command {c:?} is not in make-fixtures.sh",
                f.name
            );
        }
        assert!(
            script.contains(&format!("\"$work/{}.vhdx\" {}", f.name, f.size)),
            "{}: size differs from the script",
            f.name
        );
    }
}

#[test]
fn hvsim_reads_what_qemu_io_wrote() {
    let dir = scratch_dir();
    for f in FIXTURES {
        let path = unpack(f.name, dir.path());
        let model = expected(f);
        let mut v = open_ro(&path);
        assert_eq!(v.disk_type(), f.disk_type, "{}: disk type", f.name);
        assert_eq!(v.virtual_size(), f.size, "{}: virtual size", f.name);
        assert_eq!(
            v.geometry().block_size,
            f.block_size,
            "{}: block size",
            f.name
        );
        assert_eq!(
            v.logical_sector_size(),
            512,
            "{}: logical sector size",
            f.name
        );
        if f.size <= 64 * MIB {
            assert_hvsim_all(f.name, &mut v, &model);
        } else {
            assert_hvsim_ranges(f.name, &mut v, &model, &model.probe_ranges(7));
        }
    }
}

/// hvsim writes into a fixture, closes it, and reads it back; the written image stays
/// readable by hvsim and sound and identical for QEMU.
#[test]
fn hvsim_writes_into_fixtures() {
    let dir = scratch_dir();
    for (i, f) in FIXTURES.iter().enumerate() {
        let path = unpack(f.name, dir.path());
        let mut model = expected(f);
        let mut v = open_rw(&path);
        let mix = OpMix {
            count: 12,
            ..OpMix::default()
        };
        let ops = if f.size <= 64 * MIB {
            random_ops(900 + i as u64, f.size, f.block_size, mix)
        } else {
            // Near the 4 GiB chunk boundary only.
            let base = 4 * GIB - 2 * MIB;
            random_ops(900 + i as u64, f.size - base, f.block_size, mix)
                .into_iter()
                .map(|op| match op {
                    Op::Write { offset, data } => Op::Write {
                        offset: offset + base,
                        data,
                    },
                    Op::Trim { offset, len } => Op::Trim {
                        offset: offset + base,
                        len,
                    },
                })
                .collect()
        };
        apply(&mut v, &mut model, &ops);
        v.close().expect("close");
        let mut v = open_ro(&path);
        assert_hvsim_ranges(f.name, &mut v, &model, &model.probe_ranges(8));
        drop(v);
        if f.size <= 64 * MIB {
            qemu_verify(f.name, &path, &model, dir.path(), true);
        } else {
            qemu_check(&path);
        }
    }
}
