//! The invariants of SPEC.md, evaluated on real bytes after every run, success or
//! failure. A violation names the invariant, the disk and the first differing offset.

use hvsim_engine::vhdx::MIB;
use hvsim_engine::GuidGen;

use super::report::Check;
use crate::backup as restore;
use crate::plan::Method;
use crate::protocol::msg::Reached;
use crate::scenario::{Consistency, Outcome};
use crate::sched::ActorId;
use crate::site::Site;
use crate::world::PAGE;

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

/// A byte count as the report shows it: KiB under a MiB (never a rounded "0.0"), else MiB
/// with one decimal.
fn size(bytes: u64) -> String {
    if bytes < MIB {
        format!("{} KiB", bytes.div_ceil(1024))
    } else if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// I1: every disk, read through its chain, holds every write the guest completed.
pub fn i1(lab: &mut Site) -> Check {
    let mut problems = Vec::new();
    let mut disks = 0;
    // Read-only opens: the ids they draw are the checker's own.
    let guids = &mut GuidGen::seeded(0);
    for vm in lab.vms.iter_mut() {
        for (i, d) in vm.disks.iter_mut().enumerate() {
            disks += 1;
            let want = &vm.oracle.live[i];
            let read = match d.live.as_mut() {
                Some(live) => want.first_difference_on_disk(live, MIB),
                None => match d.chain.open_any(false, false, guids) {
                    Ok(mut v) => want.first_difference_on_disk(&mut v, MIB),
                    Err(e) => {
                        problems.push(format!("{} {}: cannot open: {e}", vm.name, d.file));
                        continue;
                    }
                },
            };
            match read {
                Ok((first, _)) => {
                    if let Some(off) = first {
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
        &format!(
            "{disks} disk(s) of {} VM(s) hold all {writes} completed writes",
            lab.vms.len()
        ),
    )
}

/// I2: every recovery point holds exactly the image of its consistency point (minus the
/// ranges it excludes, R14, which it must not hold). It never holds on nothing: on a
/// successful job every VM of the job must have been read into every recovery point made,
/// or the check is violated, naming the VM (issue 8).
pub fn i2(lab: &Site, outcome: Outcome) -> Check {
    let mut problems = Vec::new();
    let mut disks = 0;
    let mut levels = 0;
    let mut bytes = 0u64;
    for (&n, vms) in &lab.server.backups {
        let excluded = lab
            .server
            .points
            .iter()
            .find(|p| p.number == n)
            .map(|p| &p.excluded[..])
            .unwrap_or(&[]);
        let at = if lab.server.backups.len() > 1 {
            format!(" (recovery point {n})")
        } else {
            String::new()
        };
        for (&vm, images) in vms {
            let v = &lab.vms[vm];
            let Some(fixed) = lab.observed().fixed(vm, n) else {
                problems.push(format!(
                    "{}{at}: backed up, but storage never fixed its image (no checkpoint, \
                     guest or volume snapshot was seen)",
                    v.name
                ));
                continue;
            };
            // F2.10: an image fixed with an auto-recovery checkpoint is the one its
            // guest's writers recover.
            let expected = fixed.expected();
            let recovered = if fixed.recovered.is_some() {
                " after the writers' recovery"
            } else {
                ""
            };
            // The level the host claimed for this point's image (kept with it on the
            // backup server) may not exceed the one the guest was in when storage
            // fixed the image.
            let claimed = lab.server.level(n, vm).map(|r| match r {
                Reached::Application => Consistency::Application,
                Reached::File => Consistency::File,
                Reached::Crash => Consistency::Crash,
            });
            levels += usize::from(claimed.is_some());
            if let Some(c) = claimed.filter(|&c| rank(c) > rank(fixed.level)) {
                problems.push(format!(
                    "{}{at}: claims {c}-consistent, but at the {} (step {}) the guest was \
                     {}-consistent",
                    v.name,
                    fixed.how.name(),
                    fixed.step,
                    fixed.level
                ));
            }
            if images.len() != v.disks.len() {
                problems.push(format!(
                    "{}{at}: {} of its {} disk(s) backed up",
                    v.name,
                    images.len(),
                    v.disks.len()
                ));
            }
            for (i, img) in images.iter().enumerate() {
                disks += 1;
                let mut want = expected[i].clone();
                for e in excluded.iter().filter(|e| e.vm == vm && e.disk == i) {
                    want.clear_range(e.offset, e.len);
                    if img.has_data_in(e.offset, e.len) {
                        problems.push(format!(
                            "{} {}{at}: the excluded range {}+{} ({}) holds data",
                            v.name, v.disks[i].file, e.offset, e.len, e.why
                        ));
                    }
                }
                bytes += img.len_pages().max(want.len_pages()) as u64 * PAGE;
                if let Some(off) = img.first_difference(&want) {
                    problems.push(format!(
                        "{} {}{at}: backup differs from the image at the {} (step {}){recovered} \
                         at offset {off}",
                        v.name,
                        v.disks[i].file,
                        fixed.how.name(),
                        fixed.step
                    ));
                }
            }
        }
    }
    if outcome == Outcome::Success {
        // A successful job read every VM it backed up into every point it made; a VM
        // missing from one was never compared, and a pass on it would be vacuous.
        let made: Vec<u32> = lab
            .server
            .points
            .iter()
            .filter(|p| p.made)
            .map(|p| p.number)
            .collect();
        if made.is_empty() {
            problems.push("the job succeeded but made no recovery point to compare".into());
        }
        for n in made {
            for &vm in lab.plans.keys() {
                if !lab
                    .server
                    .backups
                    .get(&n)
                    .is_some_and(|b| b.contains_key(&vm))
                {
                    problems.push(format!(
                        "{}: backed up by a successful job but its bytes were never read \
                         (recovery point {n})",
                        lab.vms[vm].name
                    ));
                }
            }
        }
        if disks == 0 && problems.is_empty() {
            problems.push("the job succeeded but no backed-up disk was compared".into());
        }
    }
    let fine = if disks == 0 {
        "no backup to compare (the job failed)".to_string()
    } else if lab.server.backups.len() > 1 {
        format!(
            "{disks} disk(s) in {} recovery points, {} of data compared, equal their consistency points; {levels} claimed level(s) match what storage saw",
            lab.server.backups.len(),
            size(bytes)
        )
    } else {
        format!(
            "{disks} disk(s), {} of data compared, equal their consistency point; {levels} claimed level(s) match what storage saw",
            size(bytes)
        )
    };
    check("I2", problems, &fine)
}

/// Consistency levels in order of strength.
fn rank(c: Consistency) -> u8 {
    match c {
        Consistency::Crash => 0,
        Consistency::File => 1,
        Consistency::Application => 2,
    }
}

/// Whether the host raised Hyper-V-VMMS 19100 (a background merge failed) for the VM:
/// its checkpoint then stays, as on a real host.
fn merge_failed(lab: &Site, vm: &str) -> bool {
    let about = format!("virtual machine '{vm}'");
    lab.events
        .iter()
        .any(|e| e.id == 19100 && e.text.contains(&about))
}

/// I3: nothing is left behind, every VM is as it was, and every writer is back to stable
/// by its own last answer (the watch's writers checker).
pub fn i3(lab: &Site, names: &[String]) -> Check {
    i3_but(lab, names, &[])
}

/// Field failure 10, what a real host shows after the requester process died: the
/// writer sessions it opened stay open (each writer waiting in its session) until VSS
/// collects them two days later. `Some` (saying so) when the requester died and those
/// open sessions are all that I3 finds; I3 itself still reports them.
pub fn left_by_dead_requester(lab: &Site, names: &[String]) -> Option<String> {
    let call = lab.server.job.requester_died?;
    let open: Vec<ActorId> = lab
        .watch()
        .sessions
        .open()
        .iter()
        .map(|s| s.writer)
        .collect();
    // What I3 accepts besides (the set's checkpoints, FF22) is named with it.
    let rest = i3_but(lab, names, &open);
    rest.ok.then(|| {
        format!(
            "the requester died after {call}: I3 finds only the {} writer session(s) it left \
             open (field failure 10); {}",
            open.len(),
            rest.message
        )
    })
}

/// I3 but for the writers in `left_open`, whose sessions and states are not looked at.
fn i3_but(lab: &Site, names: &[String], left_open: &[ActorId]) -> Check {
    let mut problems = Vec::new();
    let mut accepted = Vec::new();
    let mut frozen_before = Vec::new();
    let mut frozen_by_dead_daemon = Vec::new();
    // Checkpoints the run started with (FF22's starting state), still there: the VM is
    // as it was, not this run's leftover.
    let mut as_started = Vec::new();
    // Field failure 22: the checkpoints a dead requester's set made stay on a real host
    // (VSS releases the set's shadow copies, nothing merges the checkpoint): counted and
    // named, they wait for the next job.
    let mut for_next_job = Vec::new();
    let requester_died = lab.server.job.requester_died.is_some();
    let mut bases: Vec<&str> = lab
        .vms
        .iter()
        .flat_map(|v| v.disks.iter().map(|d| d.chain.base()))
        .collect();
    // Files the scenario's starting state left (FF11) are not this run's leftovers.
    let before: Vec<String> = lab
        .scenario
        .vms
        .iter()
        .flat_map(|v| &v.disks)
        .flat_map(|d| d.leftovers.iter().map(|l| l.file(&d.file)))
        .collect();
    // Field failures 24, 41: the AVHDX files a real host leaves after a failed merge, as
    // the scenario states them; exactly that many on that VM, never a merge still running.
    let mut expected_left = Vec::new();
    for v in &lab.vms {
        let want = lab
            .scenario
            .expect
            .vms
            .iter()
            .find(|e| e.vm == v.name)
            .and_then(|e| e.avhdx_left);
        let Some(want) = want else { continue };
        let left: usize = v.disks.iter().map(|d| d.chain.checkpoints()).sum();
        if left == want as usize && v.disks.iter().all(|d| d.merge.is_none()) {
            bases.extend(
                v.disks
                    .iter()
                    .flat_map(|d| d.chain.files.iter().map(String::as_str)),
            );
            expected_left.push(v.name.as_str());
        }
    }
    for (name, vol) in &lab.volumes {
        if !vol.snapshots().is_empty() {
            problems.push(format!(
                "volume {name} still has snapshot(s) {:?}",
                vol.snapshots()
            ));
        }
        for f in vol.list() {
            let reported = lab.vms.iter().any(|v| {
                merge_failed(lab, &v.name) && v.disks.iter().any(|d| d.chain.files.contains(&f))
            });
            // A dead requester's checkpoints are its chains' files (FF22, counted below).
            let lingering = requester_died
                && lab.vms.iter().any(|v| {
                    v.disks
                        .iter()
                        .any(|d| d.merge.is_none() && d.chain.files.contains(&f))
                });
            if !bases.contains(&f.as_str()) && !before.contains(&f) && !reported && !lingering {
                problems.push(format!("{name} still holds {f}"));
            }
        }
    }
    for v in &lab.vms {
        for d in &v.disks {
            if merge_failed(lab, &v.name) {
                // The host reported why the checkpoint stays (19100, FF23-FF25).
                continue;
            }
            // What the run left is measured against the chain it started with.
            let made: Vec<&String> = d
                .chain
                .files
                .iter()
                .filter(|f| !d.at_start.contains(f))
                .collect();
            if expected_left.contains(&v.name.as_str()) {
                // Stated by the scenario (field failures 24, 41), checked above.
            } else if d.merge.is_some() || (!made.is_empty() && !requester_died) {
                problems.push(format!("{}: {} still has checkpoint(s)", v.name, d.file));
            } else if !made.is_empty() {
                for_next_job.extend(made.iter().map(|f| format!("{} {f}", v.name)));
            } else if d.chain.checkpoints() > 0 {
                as_started.push(format!(
                    "{} {} ({})",
                    v.name,
                    d.file,
                    d.chain.files[1..].join(", ")
                ));
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
        let idx = lab.vm_index(&v.name);
        // After an original-place restore the VM is as the restore leaves it (R4, R16).
        let want = lab
            .server
            .restores
            .iter()
            .rev()
            .find(|r| Some(r.vm) == idx)
            .and_then(|r| r.power)
            .unwrap_or(v.power_before);
        if v.power != want {
            problems.push(format!(
                "{} is {} (should be {})",
                v.name,
                v.power.name(),
                want.name()
            ));
        }
        // A guest left with file systems frozen (its daemon deadlocked, or died before
        // THAW) holds every write: a violation, unless the scenario states exactly those
        // mounts as what a real guest is left with (field failures 17, 18).
        let expected_frozen = lab
            .scenario
            .expect
            .vms
            .iter()
            .find(|e| e.vm == v.name)
            .map(|e| e.frozen_after.as_slice())
            .unwrap_or_default();
        // Mounts an administrator froze by hand before the run (field failure 13) that
        // the backup never reached stay frozen: the VM is as it was.
        let admin = lab
            .scenario
            .vm(&v.name)
            .map(|s| s.guest.frozen_by_admin.as_slice())
            .unwrap_or_default();
        let as_before = !v.fs_frozen.is_empty()
            && !v.frozen
            && v.fs_frozen.len() == admin.len()
            && v.fs_frozen.iter().all(|m| admin.contains(m));
        if !v.fs_frozen.is_empty() && v.fs_frozen == expected_frozen && !v.frozen {
            accepted.push(format!("{}: {}", v.name, v.fs_frozen.join(" ")));
        } else if as_before {
            frozen_before.push(format!("{}: {}", v.name, v.fs_frozen.join(" ")));
        } else if v.daemon_exited && !v.fs_frozen.is_empty() && !v.frozen {
            // Field failure 18: hv_vss_daemon died between FREEZE and THAW; the kernel's
            // transaction timer answers the host but thaws nothing (vss.md §4.4), so a
            // real guest stays frozen until someone runs `fsfreeze -u`.
            frozen_by_dead_daemon.push(format!("{}: {}", v.name, v.fs_frozen.join(" ")));
        } else if v.frozen || v.held {
            problems.push(format!(
                "{}'s writes are still frozen or held{}",
                v.name,
                if v.fs_frozen.is_empty() {
                    String::new()
                } else {
                    format!(" (frozen in the guest: {})", v.fs_frozen.join(" "))
                }
            ));
        }
    }
    let sessions = &lab.watch().sessions;
    problems.extend(lab.watch().writers.problems(names, left_open));
    problems.extend(
        sessions
            .open()
            .iter()
            .filter(|s| !left_open.contains(&s.writer))
            .map(|s| s.describe(names)),
    );
    check(
        "I3",
        problems,
        &format!(
            "{} volume(s): no snapshot, checkpoint or AVHDX remains{}{}{}; {}; {}; {} VM(s) as before{}{}{}",
            lab.volumes.len(),
            if expected_left.is_empty() {
                String::new()
            } else {
                format!(
                    " but the AVHDX files stated left on {}",
                    expected_left.join(", ")
                )
            },
            if as_started.is_empty() {
                String::new()
            } else {
                format!(
                    " but the checkpoint(s) the run started with (field failure 22): {}",
                    as_started.join("; ")
                )
            },
            if for_next_job.is_empty() {
                String::new()
            } else {
                format!(
                    " but {} checkpoint file(s) the dead requester's backup made left for the \
                     next job (field failure 22): {}",
                    for_next_job.len(),
                    for_next_job.join(", ")
                )
            },
            lab.watch().writers.compared(),
            sessions.compared(),
            lab.vms.len(),
            if accepted.is_empty() {
                String::new()
            } else {
                format!(
                    " but for file systems left frozen as the scenario expects ({})",
                    accepted.join("; ")
                )
            },
            if frozen_before.is_empty() {
                String::new()
            } else {
                format!(
                    ", file systems frozen by hand before the run still frozen ({})",
                    frozen_before.join("; ")
                )
            },
            if frozen_by_dead_daemon.is_empty() {
                String::new()
            } else {
                format!(
                    ", file systems hv_vss_daemon froze and died before thawing, left \
                     frozen (field failure 18): {}",
                    frozen_by_dead_daemon.join("; ")
                )
            }
        ),
    )
}

/// I4: downtime only on the offline path, and measured.
pub fn i4(lab: &Site) -> Check {
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
    let offline = lab
        .plans
        .values()
        .filter(|p| p.method == Method::SavedState)
        .count();
    check(
        "I4",
        problems,
        &format!(
            "{} VM(s), {offline} offline: saved state only on the offline path",
            lab.plans.len()
        ),
    )
}

/// I5: writer and provider events followed the VSS sequence, freeze and flush-and-hold
/// stayed within their timeouts (both as the watch saw them, the run ending at `end_us`);
/// a failure carries a real code.
pub fn i5(lab: &Site, outcome: Outcome, names: &[String], end_us: u64) -> Check {
    let watch = lab.watch();
    let mut problems: Vec<String> = watch
        .order
        .disorders()
        .iter()
        .map(|d| d.describe(names))
        .collect();
    problems.extend(watch.complete.early().iter().map(|e| e.describe(names)));
    for span in watch.windows.spans().iter().filter(|s| s.over(end_us)) {
        problems.push(span.describe(names, end_us));
    }
    // A requester that died reports nothing: its failure is its death (field failure 10).
    let job = &lab.server.job;
    if outcome == Outcome::Failure && job.failure.is_none() && job.requester_died.is_none() {
        problems.push("the job failed without a code".into());
    }
    check(
        "I5",
        problems,
        &format!(
            "{} in VSS order; {}; {}; failures carry their code",
            watch.order.compared(),
            watch.complete.compared(),
            watch.windows.compared()
        ),
    )
}

/// I6: every restored item reads back exactly as the recovery point it came from.
pub fn i6(lab: &Site) -> Option<Check> {
    lab.scenario.job.restore.as_ref()?;
    let mut problems = Vec::new();
    let mut items = 0;
    for r in &lab.server.restores {
        let name = &lab.vms[r.vm].name;
        let Some(images) = lab.server.backups.get(&r.point).and_then(|p| p.get(&r.vm)) else {
            problems.push(format!("{name}: recovery point {} is gone", r.point));
            continue;
        };
        for item in &r.items {
            items += 1;
            let want = restore::expected(item, &images[item.disk]);
            match restore::read_back(item) {
                Ok(got) => {
                    if let Some(off) = got.first_difference(&want) {
                        problems.push(format!(
                            "{name}: restored {} on {} differs from recovery point {} at offset {off}",
                            item.file,
                            item.volume.name(),
                            r.point
                        ));
                    }
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
    }
    if lab.server.restores.is_empty()
        && lab.server.job.failure.is_none()
        && !lab.server.backups.is_empty()
    {
        problems.push("the job made recovery points but restored none".into());
    }
    let fine = if lab.server.restores.is_empty() {
        "nothing restored (the job made no recovery point)".to_string()
    } else {
        format!("{items} restored item(s) read back exactly as their recovery point")
    };
    Some(check("I6", problems, &fine))
}
