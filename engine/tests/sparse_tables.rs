//! A region table read from sparse storage (a volume's file, whose unwritten pages are
//! holes): its checksum covers all 64 KiB, holes included, though only the stored pages
//! are read. Damage anywhere in the table, in a stored page or in what was a hole, is
//! caught in the copy it hit, and the image opens from the other copy.

use hvsim_engine::vhdx::{REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET};
use hvsim_engine::volume::Volume;
use hvsim_engine::{CreateOptions, GuidGen, OpenOptions, Storage, Vhdx};

const MIB: u64 = 1 << 20;

fn image_on_volume() -> Volume {
    let volume = Volume::new("v", 1 << 30);
    let file = volume.create("disk.vhdx").unwrap();
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        guids: Some(GuidGen::seeded(3)),
        ..CreateOptions::new(64 * MIB)
    };
    let mut v = Vhdx::create(Box::new(file), &opts, None).unwrap();
    v.write(5 * MIB, &[0xAB; 8192]).unwrap();
    v.close().unwrap();
    volume
}

fn open(volume: &Volume) -> Vhdx {
    let file = volume.open("disk.vhdx").unwrap();
    Vhdx::open(Box::new(file), &OpenOptions::default(), None).unwrap()
}

#[test]
fn a_table_on_sparse_storage_opens_clean_and_reads_its_data() {
    let volume = image_on_volume();
    let mut v = open(&volume);
    assert_eq!(v.warnings(), &[] as &[String]);
    let mut buf = vec![0; 8192];
    v.read(5 * MIB, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0xAB));
}

#[test]
fn damage_in_a_hole_or_a_stored_page_of_a_table_is_caught_in_that_copy() {
    // Offsets inside each table: its entries (a stored page) and far past them (a hole
    // until this write).
    for (table, other) in [
        (REGION_TABLE1_OFFSET, "region table 1"),
        (REGION_TABLE2_OFFSET, "region table 2"),
    ] {
        for at in [20, 40 * 1024, 64 * 1024 - 1] {
            let volume = image_on_volume();
            let mut f = volume.open("disk.vhdx").unwrap();
            f.write_at(&[0x5A], table + at).unwrap();
            drop(f);
            let v = open(&volume);
            let warned = v.warnings().join("; ");
            assert!(
                warned.contains(&format!("{other} at offset"))
                    && (warned.contains("checksum mismatch") || warned.contains("differs")),
                "damage at {table:#x}+{at}: {warned:?}"
            );
        }
    }
}
