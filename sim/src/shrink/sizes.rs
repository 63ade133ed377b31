//! Smaller sizes (issue 10 §3): virtual disks with their guest volumes, guest volumes on
//! their own, block sizes, and host, CSV and file server volumes. Each size is tried at
//! the smallest value the scenario rules accept first, then ever less far toward it
//! (halving, then a quarter off), so a greedy search reaches a small size in few runs and
//! still closes in on a threshold the failure needs (R1's 1 GB guest volume). Every size that
//! depends on the one reduced stays consistent: guest volumes inside their disk, a guest
//! volume's free space in proportion to its size, a volume at least as large as the disks
//! on it and its free space and shadow storage within its capacity. Whether less free
//! space newly trips R8 (a checkpoint that cannot grow) is the run's to say: such a
//! candidate fails another way and is not kept.

use crate::scenario::limits::MAX_DISK_BLOCKS;
use crate::scenario::{Bytes, Scenario, FIRST_VOLUME_AT, MIN_GUEST_VOLUME};

const MIB: u64 = 1 << 20;

/// What is kept of the way from the smallest value to the current one, most reducing
/// first: none of it, fractions of it, half of it, three quarters of it.
const KEPT: [(u64, u64); 8] = [
    (0, 1),
    (1, 1024),
    (1, 256),
    (1, 64),
    (1, 16),
    (1, 4),
    (1, 2),
    (3, 4),
];

/// The smallest VHDX block size (SPEC F1 note: 1 MiB to 256 MiB, a power of two).
const MIN_BLOCK: u64 = MIB;

fn whole_mib(b: u64) -> u64 {
    b / MIB * MIB
}

/// `x × n / d` without overflow (`n ≤ d`).
fn part(x: u64, n: u64, d: u64) -> u64 {
    u64::try_from(u128::from(x) * u128::from(n) / u128::from(d)).unwrap_or(x)
}

/// The values tried for a size `cur` whose least valid value is `least`, most reducing
/// first, in whole MiBs (never under `least`), each smaller than `cur`.
fn toward(cur: u64, least: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for (n, d) in KEPT {
        let Some(way) = cur.checked_sub(least) else {
            break;
        };
        let v = whole_mib(least + part(way, n, d)).max(least);
        if v < cur && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The free space of a volume of `size` bytes, kept in proportion when it becomes
/// `new_size`, in whole MiBs.
fn scaled_free(free: u64, size: u64, new_size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    whole_mib(part(free, new_size.min(size), size)).min(new_size)
}

/// The size candidates of `s`, pushed with what each reduced.
pub(super) fn sizes(s: &Scenario, push: &mut impl FnMut(Scenario, String)) {
    for (i, vm) in s.vms.iter().enumerate() {
        for (d, disk) in vm.disks.iter().enumerate() {
            disk_size(s, i, d, push);
            for g in 0..disk.volumes.len() {
                guest_volume(s, i, d, g, push);
            }
            let bs = disk.block_size.0;
            // Within the blocks a disk may have (the BAT is held in memory).
            let fewest = disk.size.0.div_ceil(MAX_DISK_BLOCKS).next_power_of_two();
            for to in [MIN_BLOCK.max(fewest), bs / 2] {
                if to >= MIN_BLOCK.max(fewest) && to < bs {
                    let mut c = s.clone();
                    c.vms[i].disks[d].block_size = Bytes(to);
                    push(
                        c,
                        format!(
                            "disk {} block size {} → {}",
                            disk.file,
                            disk.block_size,
                            Bytes(to)
                        ),
                    );
                }
            }
        }
    }
    for v in 0..s.volumes.len() {
        volume(s, v, push);
    }
}

/// Disk `d` of VM `i` smaller, its guest volumes (sizes and free space) in proportion,
/// none under its minimum; then the disk alone cut to what its listed volumes take.
fn disk_size(s: &Scenario, i: usize, d: usize, push: &mut impl FnMut(Scenario, String)) {
    let disk = &s.vms[i].disks[d];
    let size = disk.size.0;
    let n = disk.volumes.len().max(1) as u64;
    for t in toward(size, FIRST_VOLUME_AT + n * MIN_GUEST_VOLUME) {
        let mut c = s.clone();
        let to = &mut c.vms[i].disks[d];
        for g in &mut to.volumes {
            let new = whole_mib(part(g.size.0, t.min(size), size)).max(MIN_GUEST_VOLUME);
            g.free = Bytes(scaled_free(g.free.0, g.size.0, new));
            g.size = Bytes(new.min(g.size.0));
        }
        let used: u64 = to.volumes.iter().map(|g| g.size.0).sum();
        let new = t.max(FIRST_VOLUME_AT + used);
        if new >= size {
            continue;
        }
        to.size = Bytes(new);
        push(
            c,
            format!("disk {} size {} → {}", disk.file, disk.size, Bytes(new)),
        );
    }
    // Unpartitioned space at the end of the disk: cut alone.
    let used: u64 = disk.volumes.iter().map(|g| whole_mib(g.size.0)).sum();
    if !disk.volumes.is_empty() && FIRST_VOLUME_AT + used < size {
        let mut c = s.clone();
        c.vms[i].disks[d].size = Bytes(FIRST_VOLUME_AT + used);
        push(
            c,
            format!(
                "disk {} size {} → {} (its volumes)",
                disk.file,
                disk.size,
                Bytes(FIRST_VOLUME_AT + used)
            ),
        );
    }
}

/// Guest volume `g` of disk `d` of VM `i` smaller, its free space in proportion (its
/// disk unchanged: the disk's own candidates cut it after).
fn guest_volume(
    s: &Scenario,
    i: usize,
    d: usize,
    g: usize,
    push: &mut impl FnMut(Scenario, String),
) {
    let vm = &s.vms[i];
    let gv = &vm.disks[d].volumes[g];
    for to in toward(gv.size.0, MIN_GUEST_VOLUME) {
        let free = scaled_free(gv.free.0, gv.size.0, to);
        let mut c = s.clone();
        let x = &mut c.vms[i].disks[d].volumes[g];
        x.free = Bytes(free);
        x.size = Bytes(to);
        push(
            c,
            format!(
                "guest volume {} of VM {} size {} → {}, free {} → {}",
                gv.mount,
                vm.name,
                gv.size,
                Bytes(to),
                gv.free,
                Bytes(free)
            ),
        );
    }
}

/// Volume `v` (of a host, a file server or a CSV) smaller: its free space, its shadow
/// storage limit, and its capacity down to the largest of the disks on it, its free
/// space and its shadow storage limit.
fn volume(s: &Scenario, v: usize, push: &mut impl FnMut(Scenario, String)) {
    let vol = &s.volumes[v];
    let mut with = |what: &str, from: Bytes, to: u64, set: &dyn Fn(&mut Scenario)| {
        let mut c = s.clone();
        set(&mut c);
        push(
            c,
            format!("volume {} {what} {from} → {}", vol.name, Bytes(to)),
        );
    };
    for to in toward(vol.free.0, MIB) {
        with("free", vol.free, to, &|c| c.volumes[v].free = Bytes(to));
    }
    if let Some(max) = vol.shadow_storage_max {
        for to in toward(max.0, MIB) {
            with("shadow storage", max, to, &|c| {
                c.volumes[v].shadow_storage_max = Some(Bytes(to))
            });
        }
    }
    let largest_disk = s
        .vms
        .iter()
        .flat_map(|vm| &vm.disks)
        .filter(|d| s.disk_volume(d) == Some(vol.name.as_str()))
        .map(|d| d.size.0)
        .max()
        .unwrap_or(0);
    let least = largest_disk
        .max(vol.free.0)
        .max(vol.shadow_storage_max.map_or(0, |b| b.0))
        .max(MIB);
    for to in toward(vol.capacity.0, least) {
        with("capacity", vol.capacity, to, &|c| {
            c.volumes[v].capacity = Bytes(to)
        });
    }
}
