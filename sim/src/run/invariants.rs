//! The invariants of SPEC.md, evaluated on real bytes after every run, success or
//! failure. A violation names the invariant, the disk and the first differing offset.

use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::Volume;
use hvsim_engine::{CreateOptions, Vhdx};

use super::report::Check;
use crate::msg::Reached;
use crate::plan::Method;
use crate::scenario::Outcome;
use crate::vss::WriterState;
use crate::world::{Lab, Point, Power, SparseImage, PAGE};

fn check(id: &'static str, problems: Vec<String>, fine: &str) -> Check {
    Check {
        id,
        ok: problems.is_empty(),
        message: if problems.is_empty() {
            fine.to_string()
        } else {
            problems.join("; ")
        },
    }
}

/// I1: every disk, read through its chain, holds every write the guest completed.
pub fn i1(lab: &mut Lab) -> Check {
    let mut problems = Vec::new();
    let Lab { vms, guids, .. } = lab;
    for vm in vms.iter_mut() {
        for (i, d) in vm.disks.iter_mut().enumerate() {
            let read = match d.live.as_mut() {
                Some(live) => SparseImage::read_disk(live, MIB),
                None => match d.chain.open(false, false, guids) {
                    Ok(mut v) => SparseImage::read_disk(&mut v, MIB),
                    Err(e) => {
                        problems.push(format!("{} {}: cannot open: {e}", vm.name, d.file));
                        continue;
                    }
                },
            };
            match read {
                Ok((img, _)) => {
                    if let Some(off) = img.first_difference(&vm.oracle.live[i]) {
                        problems.push(format!(
                            "{} {}: first difference at offset {off}",
                            vm.name, d.file
                        ));
                    }
                }
                Err(e) => problems.push(format!("{} {}: {e}", vm.name, d.file)),
            }
        }
    }
    let writes: u64 = lab.vms.iter().map(|v| v.oracle.completed_writes).sum();
    check(
        "I1",
        problems,
        &format!("every disk holds all {writes} completed writes"),
    )
}

/// The point a backup of this consistency must equal.
pub fn point_of(r: Reached) -> Point {
    match r {
        Reached::Application => Point::Quiesce,
        Reached::File => Point::Freeze,
        Reached::Crash => Point::Instant,
    }
}

/// I2: a successful backup holds exactly the image of its point.
pub fn i2(lab: &Lab, outcome: Outcome) -> Check {
    let mut problems = Vec::new();
    let mut checked = 0;
    if outcome == Outcome::Success {
        for (&vm, images) in &lab.backups {
            let v = &lab.vms[vm];
            let Some(&reached) = lab.consistency.get(&vm) else {
                problems.push(format!("{}: backed up with no consistency point", v.name));
                continue;
            };
            let point = point_of(reached);
            let Some(expected) = v.oracle.at(point) else {
                problems.push(format!("{}: no {} was recorded", v.name, point.name()));
                continue;
            };
            for (i, img) in images.iter().enumerate() {
                checked += 1;
                if let Some(off) = img.first_difference(&expected[i]) {
                    problems.push(format!(
                        "{} {}: backup differs from the {} at offset {off}",
                        v.name,
                        v.disks[i].file,
                        point.name()
                    ));
                }
            }
        }
    }
    let fine = if checked == 0 {
        "no backup to compare (the job failed)".to_string()
    } else {
        format!("{checked} backed-up disk(s) equal their consistency point")
    };
    check("I2", problems, &fine)
}

/// I3: nothing is left behind and every VM is as it was.
pub fn i3(lab: &Lab, writer_states: &[(String, WriterState)]) -> Check {
    let mut problems = Vec::new();
    let bases: Vec<&str> = lab
        .vms
        .iter()
        .flat_map(|v| v.disks.iter().map(|d| d.chain.base()))
        .collect();
    for (name, vol) in &lab.volumes {
        if !vol.snapshots().is_empty() {
            problems.push(format!(
                "volume {name} still has snapshot(s) {:?}",
                vol.snapshots()
            ));
        }
        for f in vol.list() {
            if !bases.contains(&f.as_str()) {
                problems.push(format!("{name} still holds {f}"));
            }
        }
    }
    for v in &lab.vms {
        for d in &v.disks {
            if d.chain.checkpoints() > 0 || d.merge.is_some() {
                problems.push(format!("{}: {} still has checkpoint(s)", v.name, d.file));
            }
            for g in &d.vols {
                if g.internal.is_some() {
                    problems.push(format!(
                        "{} {}: the internal snapshot remains",
                        v.name, g.mount
                    ));
                }
            }
        }
        if v.power != v.power_before {
            problems.push(format!(
                "{} is {} (was {})",
                v.name,
                v.power.name(),
                v.power_before.name()
            ));
        }
        if v.frozen || v.held {
            problems.push(format!("{}'s writes are still frozen or held", v.name));
        }
    }
    for (w, s) in writer_states {
        if *s != WriterState::Stable {
            problems.push(format!("{w} is {}", s.name()));
        }
    }
    check(
        "I3",
        problems,
        "no snapshot, checkpoint or AVHDX remains; writers stable; VMs as before",
    )
}

/// I4: downtime only on the offline path, and measured.
pub fn i4(lab: &Lab) -> Check {
    let mut problems = Vec::new();
    for (&vm, p) in &lab.plans {
        let v = &lab.vms[vm];
        if p.method != Method::SavedState && v.downtime_us > 0 {
            problems.push(format!(
                "{} was down {} µs on an online path",
                v.name, v.downtime_us
            ));
        }
    }
    check("I4", problems, "saved state only on the offline path")
}

/// I5: freeze and flush-and-hold stayed within their windows; a failure carries a real
/// code.
pub fn i5(lab: &Lab, outcome: Outcome) -> Check {
    let mut problems = Vec::new();
    for w in &lab.windows {
        if w.held_us > w.limit_us {
            problems.push(format!(
                "{}: {} lasted {} µs, over its {} µs window",
                w.service, w.what, w.held_us, w.limit_us
            ));
        }
    }
    if outcome == Outcome::Failure && lab.failure.is_none() {
        problems.push("the job failed without a code".into());
    }
    check(
        "I5",
        problems,
        "freeze and flush-and-hold within their windows; failures carry their code",
    )
}

/// I6: restoring the backup yields exactly the image it captured.
pub fn i6(lab: &Lab) -> Option<Check> {
    lab.scenario.job.restore.as_ref()?;
    let mut problems = Vec::new();
    let scratch = Volume::new("restore", u64::MAX / 4);
    for (&vm, images) in &lab.backups {
        for (i, img) in images.iter().enumerate() {
            let d = &lab.vms[vm].disks[i];
            let name = format!("restored-{}", d.file);
            let r = (|| -> Result<Option<u64>, String> {
                let size = d.live.as_ref().map(|l| l.virtual_size()).unwrap_or(0);
                let size = if size == 0 {
                    img_size(lab, vm, i)
                } else {
                    size
                };
                let file = scratch.create(&name).map_err(|e| e.to_string())?;
                let mut v = Vhdx::create(Box::new(file), &CreateOptions::new(size), None)
                    .map_err(|e| e.to_string())?;
                img.for_each_page(|off, page| v.write(off, page))
                    .map_err(|e| e.to_string())?;
                v.close().map_err(|e| e.to_string())?;
                let mut back = Vhdx::open(
                    Box::new(scratch.open(&name).map_err(|e| e.to_string())?),
                    &hvsim_engine::OpenOptions::read_only(),
                    None,
                )
                .map_err(|e| e.to_string())?;
                let (got, _) = SparseImage::read_disk(&mut back, MIB).map_err(|e| e.to_string())?;
                Ok(got.first_difference(img))
            })();
            match r {
                Ok(None) => {}
                Ok(Some(off)) => {
                    problems.push(format!("{}: restored image differs at offset {off}", name))
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
    }
    Some(check(
        "I6",
        problems,
        "every restored disk reads back exactly as backed up",
    ))
}

fn img_size(lab: &Lab, vm: usize, disk: usize) -> u64 {
    let name = &lab.vms[vm].name;
    lab.scenario
        .vms
        .iter()
        .find(|v| &v.name == name)
        .map_or(64 * MIB, |v| v.disks[disk].size.0)
        .max(PAGE)
}

/// The VM's state after a restore to the original place (R4: saved).
pub fn state_after_restore(method: Method) -> Power {
    match method {
        Method::NamedCheckpoint => Power::Saved,
        _ => Power::Off,
    }
}
