//! One run of a scenario: the world on a scheduler, the loop, the story in protocol
//! terms, the invariants and the report.

mod f5t;
mod invariants;
#[cfg(test)]
mod invariants_tests;
mod load;
mod replay;
mod report;
mod step_cap;
mod world;

pub use crate::scenario::volume_folder;
pub use load::{from_canonical, from_toml, load};
pub use replay::{replay_run, RunReplayError};
pub use report::{
    Check, ConsistencyCheckReport, JobTimeline, PointReport, RestoreReport, RunReport, TaskReport,
    VmReport,
};
pub use step_cap::{step_limit, CapSource, StepCap, BASE_STEPS, STEPS_PER_VM_POINT};
pub use world::{populate, populate_on, populate_with, BuildError, START_US};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::backup::Transfer;
use crate::plan::{Flow, Method};
use crate::protocol::msg::{Msg, Reached};
use crate::scenario::{BackupMethod, CheckpointKind, Consistency, Outcome, Scenario, TransferKind};
use crate::sched::{Decisions, Detail, Scheduler, SimError, StepRecord, Stop};
use crate::site::Site;
use crate::trace::{Header, TraceWriter};
use crate::world::{DiskError, Power};

/// Steps a trace may hold: a traced run stops there (see [`StepCap`]).
pub const MAX_STEPS: u64 = crate::trace::MAX_STEPS;

/// Default wall-clock limit of one run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Not a `#[source]`: the message already holds the cause, and a chain would print
    /// it twice.
    #[error("writing the trace: {0}")]
    Trace(std::io::Error),
    /// The run is cut off at its cap: no verdict on a job that has not ended.
    #[error("step cap reached: {steps} steps taken and the job has not ended; {cap}")]
    StepLimit { steps: u64, cap: StepCap },
    /// The run took longer than its wall-clock limit.
    #[error("time limit reached: the run took longer than {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The machine running the simulation failed (a full disk under `--on-disk`): never a
    /// simulated outcome.
    #[error("I/O error of this machine: {0}")]
    HostIo(String),
    /// `--keep-disks`/`--on-disk` would replace a file that is already there.
    #[error("{} already exists; nothing is replaced (nothing was written)", .0.display())]
    Exists(PathBuf),
    #[error("a volume file is not a plain file name: {0}")]
    NotPlain(String),
    #[error("{}: {error}", .path.display())]
    Output {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        RunError::Trace(e)
    }
}

/// What a run produced.
pub struct RunOutput {
    pub report: RunReport,
    /// The world as the run left it: volumes with their files, VMs, the oracle.
    pub lab: Site,
    /// The numbered story (empty unless asked for).
    pub story: Vec<String>,
    pub stop: Stop,
}

/// Options of a run.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Tell the story (records every step's event and details).
    pub story: bool,
    /// Write a trace here.
    pub trace: Option<&'a mut dyn Write>,
    /// Write every volume's files here at the end (`DIR/<volume>/<file>`), so other tools
    /// can open the images the run left.
    pub keep_disks: Option<&'a std::path::Path>,
    /// Hold the volumes' files on disk as the run goes (`DIR/<volume>/<file>`, written
    /// through; the folder must not hold them yet).
    pub on_disk: Option<&'a std::path::Path>,
    /// Steps after which the run stops with [`RunError::StepLimit`]; [`step_limit`] of
    /// the scenario when absent (a traced run stops at [`MAX_STEPS`] either way).
    pub max_steps: Option<u64>,
    /// Wall-clock time after which the run stops with [`RunError::Timeout`].
    pub timeout: Option<Duration>,
    /// Called with every step as it is taken and the actor name table: what a picture
    /// of the run needs that the trace does not hold (who sent each message).
    pub on_step: Option<&'a mut OnStep<'a>>,
}

/// A callback given every step of a run and the actor name table.
pub type OnStep<'a> = dyn FnMut(&StepRecord, &[String]) + 'a;

/// The scheduler checks the clock every this many steps.
const CLOCK_EVERY: u64 = 256;

/// The header of a run's trace: it embeds the scenario so the trace alone replays.
pub fn trace_header(s: &Scenario, seed: u64) -> Header {
    let mut h = Header::new(s.digest(), seed);
    h.scenario = Some(s.canonical());
    h
}

pub fn run(
    scenario: Rc<Scenario>,
    seed: u64,
    mut opts: RunOptions<'_>,
) -> Result<RunOutput, RunError> {
    let started = Instant::now();
    // Refuse before anything is written: the base disks' names are known now.
    for dir in [opts.on_disk, opts.keep_disks].into_iter().flatten() {
        refuse_existing(base_disk_paths(&scenario, dir))?;
    }
    let mut sched = populate_on(
        Decisions::seeded(seed),
        Rc::clone(&scenario),
        seed,
        opts.on_disk,
    )?;
    if let Some(e) = sched.world().host_io_error() {
        return Err(RunError::HostIo(e));
    }
    let recording = opts.story || opts.trace.is_some() || opts.on_step.is_some();
    sched.set_recording(recording);
    if !recording {
        // No digest is taken: skip hashing every write.
        for vm in &mut sched.world_mut().vms {
            vm.oracle.hash_writes = false;
        }
    }
    let mut story = Story::default();
    let mut trace = match opts.trace {
        Some(w) => Some(TraceWriter::new(w, &trace_header(&scenario, seed))?),
        None => None,
    };
    let cap = StepCap::of(&scenario, opts.max_steps, trace.is_some());
    let stop = sched.run_with(cap.steps, |n, rec, names, lab| {
        if let Some(t) = opts.timeout {
            if n % CLOCK_EVERY == 0 && started.elapsed() > t {
                return Err(RunError::Timeout(t));
            }
        }
        if opts.on_disk.is_some() {
            if let Some(e) = lab.host_io_error() {
                return Err(RunError::HostIo(e));
            }
        }
        if let Some(t) = trace.as_mut() {
            t.write_step(rec, names)?;
        }
        if opts.story {
            story.push(rec, names);
        }
        if let Some(f) = opts.on_step.as_mut() {
            f(rec, names);
        }
        Ok(())
    })?;
    if let Some(t) = trace.as_mut() {
        t.write_end(stop, sched.steps())?;
    }
    if let Some(t) = trace {
        t.finish()?;
    }
    if stop == Stop::StepLimit {
        // The trace ends with the cut; the run has no verdict.
        return Err(RunError::StepLimit {
            steps: sched.steps(),
            cap,
        });
    }
    let report = evaluate(&mut sched, &scenario, seed);
    let mut lab = sched.into_world();
    if opts.on_disk.is_some() {
        // The files on disk get their final headers: no log left to replay.
        let closed = close_chains(&mut lab);
        if let Some(e) = lab.host_io_error() {
            return Err(RunError::HostIo(e));
        }
        closed.map_err(|e| RunError::HostIo(e.to_string()))?;
    }
    if let Some(dir) = opts.keep_disks {
        keep_disks(&mut lab, dir)?;
    }
    Ok(RunOutput {
        report,
        lab,
        story: story.finish(),
        stop,
    })
}

/// The job's tasks in virtual time, with the VMs' names (issue 11 §2).
fn timeline(lab: &Site, s: &Scenario) -> JobTimeline {
    let job = &lab.server.job;
    let tasks: Vec<TaskReport> = job
        .timeline
        .iter()
        .map(|t| TaskReport {
            lane: t.lane,
            point: t.point,
            vms: t.vms.iter().map(|&vm| lab.vms[vm].name.clone()).collect(),
            start_us: t.start_us,
            end_us: t.end_us,
        })
        .collect();
    let first = tasks.iter().map(|t| t.start_us).min().unwrap_or(0);
    let last = tasks
        .iter()
        .map(|t| t.end_us.unwrap_or(t.start_us))
        .max()
        .unwrap_or(0);
    JobTimeline {
        concurrent: !s.job.concurrency.is_serial(),
        duration_us: last.saturating_sub(first),
        most_in_flight: job.most_in_flight(),
        tasks,
    }
}

/// Closes every VM's open chain, so every header and log is final on the files.
fn close_chains(lab: &mut Site) -> Result<(), DiskError> {
    for vm in &mut lab.vms {
        for d in &mut vm.disks {
            d.close()?;
        }
    }
    Ok(())
}

/// `dir/<volume folder>/<file>` of every base disk of the scenario.
fn base_disk_paths(s: &Scenario, dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for vm in &s.vms {
        for d in &vm.disks {
            let volume = crate::world::disk_volume(s, d);
            if let Some(v) = volume {
                paths.push(dir.join(volume_folder(&v)).join(&d.file));
            }
        }
    }
    paths
}

/// Refuses when any of `paths` exists (a symbolic link too, even a dangling one).
fn refuse_existing(paths: impl IntoIterator<Item = PathBuf>) -> Result<(), RunError> {
    for p in paths {
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(RunError::Exists(p));
        }
    }
    Ok(())
}

/// Writes every file of every volume under `dir/<volume>/`. Volume names such as
/// `C:\ClusterStorage\Volume1` become one safe folder name (validation keeps them
/// distinct, and file names plain). Every target is checked before any is written, and
/// each is created new: an existing file is never replaced.
pub fn keep_disks(lab: &mut Site, dir: &Path) -> Result<(), RunError> {
    close_chains(lab).map_err(|e| RunError::HostIo(e.to_string()))?;
    let mut files = Vec::new();
    for (name, v) in &lab.volumes {
        let folder = dir.join(volume_folder(name));
        for f in v.list() {
            // Validation keeps names plain; a name that is not is never joined to a path.
            if let Some(problem) = crate::scenario::file_name_problem(&f) {
                return Err(RunError::NotPlain(format!("{f:?}: {problem}")));
            }
            files.push((folder.clone(), folder.join(&f), v.clone(), f));
        }
    }
    refuse_existing(files.iter().map(|(_, path, _, _)| path.clone()))?;
    for (folder, path, v, f) in files {
        let out = |error| RunError::Output {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(&folder).map_err(|error| RunError::Output {
            path: folder.clone(),
            error,
        })?;
        let Some(bytes) = v.contents(&f) else {
            continue;
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => RunError::Exists(path.clone()),
                _ => out(e),
            })?;
        file.write_all(&bytes).map_err(out)?;
    }
    Ok(())
}

/// The report of a run that has stopped: what happened, the invariants on the disks'
/// real bytes, the expectations.
pub fn evaluate(sched: &mut Scheduler<Msg, Site>, s: &Scenario, seed: u64) -> RunReport {
    let (steps, now) = (sched.steps(), sched.now_us());
    let names = sched.actor_names().to_vec();
    conclude(sched.world_mut(), s, seed, steps, now, &names)
}

fn conclude(
    lab: &mut Site,
    s: &Scenario,
    seed: u64,
    steps: u64,
    now: u64,
    names: &[String],
) -> RunReport {
    let job = &lab.server.job;
    let outcome = if job.failure.is_some() || !job.done || job.requester_died.is_some() {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    let mut vms = Vec::new();
    for (&vm, p) in &lab.plans {
        // What the hosts claimed, as the job's record on the backup server has it.
        let claim = job.claims.get(&vm);
        // The level the VM's newest made recovery point holds: a VM whose backup failed
        // has none, whatever its host claimed before the failure.
        let reached = lab
            .server
            .points
            .iter()
            .rev()
            .filter(|p| p.made)
            .find_map(|p| lab.server.level(p.number, vm));
        let fallback = claim.is_some_and(|c| c.fallback);
        let (method, checkpoint) = match (p.flow, p.method) {
            (_, Method::SavedState) => (BackupMethod::SavedState, None),
            (_, Method::NamedCheckpoint) => {
                (BackupMethod::Checkpoint, Some(CheckpointKind::Backup))
            }
            (Flow::F3, Method::Standard) => {
                (BackupMethod::Checkpoint, Some(CheckpointKind::Standard))
            }
            (Flow::F3, _) if fallback => (BackupMethod::Checkpoint, Some(CheckpointKind::Standard)),
            (Flow::F3, _) => (BackupMethod::Checkpoint, Some(CheckpointKind::Production)),
            (Flow::F2, _) => (BackupMethod::Online, Some(CheckpointKind::Backup)),
            (Flow::F1, _) => (BackupMethod::Online, None),
        };
        let consistency = reached.map(|r| match r {
            Reached::Application => Consistency::Application,
            Reached::File => Consistency::File,
            Reached::Crash => Consistency::Crash,
        });
        let mut note = p.reason.clone();
        if fallback {
            note = "the guest could not quiesce: fell back to a crash-consistent recovery checkpoint (disks only, no memory)".into();
        }
        if p.flow == Flow::F2 && lab.vms[vm].no_auto_recovery {
            let why = "no auto-recovery checkpoint: the guest answered HOT_BACKUP with VSS_HBU_NO_AUTO_RECOVERY (R5)";
            note = if note.is_empty() {
                why.to_string()
            } else {
                format!("{note}; {why}")
            };
        }
        // Its latest restore to the original place (R16, field failure 15).
        let restored = lab
            .server
            .restores
            .iter()
            .rev()
            .find(|r| r.vm == vm)
            .and_then(|r| r.power);
        vms.push(VmReport {
            vm: lab.vms[vm].name.clone(),
            method,
            checkpoint,
            consistency,
            downtime_us: lab.vms[vm].downtime_us,
            restored,
            note,
            frozen: lab.vms[vm].fs_frozen.clone(),
            transfers: lab
                .server
                .points
                .iter()
                .filter_map(|p| p.transfers.get(&vm))
                .map(|t| match t {
                    Transfer::Full => TransferKind::Full,
                    Transfer::Incremental => TransferKind::Incremental,
                    Transfer::ExpressFull => TransferKind::ExpressFull,
                })
                .collect(),
            owner_node: lab.vms[vm].host.clone(),
            csv_reads: lab.vms[vm].csv_reads.clone(),
            avhdx_left: lab.vms[vm]
                .disks
                .iter()
                .map(|d| d.chain.checkpoints())
                .sum(),
            migrations: lab.vms[vm]
                .migrations
                .iter()
                .map(|m| m.describe(&lab.vms[vm].name))
                .collect(),
        });
    }
    let mut checks = vec![invariants::i1(lab)];
    checks.push(invariants::i2(lab, outcome));
    checks.push(invariants::i3(lab, names));
    checks.push(invariants::i4(lab));
    checks.push(invariants::i5(lab, outcome, names, now));
    if let Some(c) = invariants::i6(lab) {
        checks.push(c);
    }
    let failure = lab.server.job.failure.clone();
    // F5.T: the class comes from the pattern of every failure across the job's VMs and
    // hosts; the first failure's own side only when no failure names a VM.
    let outcomes: Vec<f5t::VmOutcome<'_>> = lab
        .plans
        .keys()
        .map(|&vm| {
            let v = &lab.vms[vm];
            f5t::VmOutcome {
                vm: &v.name,
                host: &v.host,
                volumes: v.disks.iter().map(|d| d.volume.as_str()).collect(),
                failed: lab
                    .server
                    .job
                    .failures
                    .iter()
                    .find(|f| f.vms.contains(&vm))
                    .map(|f| (f.step, f.fail.class)),
            }
        })
        .collect();
    let classified = failure.as_ref().and(f5t::classify(&outcomes));
    let mut report = RunReport {
        scenario: s.name.clone(),
        seed,
        outcome,
        code: failure.as_ref().map(|f| f.code),
        event: failure.as_ref().and_then(|f| f.event),
        failure_class: classified
            .as_ref()
            .map(|c| c.class)
            .or(failure.as_ref().map(|f| f.class)),
        failure_evidence: classified.map(|c| {
            format!(
                "class {} ({} side): {}",
                f5t::number(c.class),
                c.class,
                c.evidence
            )
        }),
        failure: failure
            .as_ref()
            .map(|f| f.detail.clone())
            .or_else(|| {
                lab.server.job.requester_died.map(|call| {
                    format!(
                        "the requester died after {call} returned: no BackupComplete or \
                         AbortBackup closed its writer sessions (field failure 10)"
                    )
                })
            })
            .or_else(|| (!lab.server.job.done).then(|| "the job did not finish".to_string())),
        retries: lab.server.job.retries.clone(),
        writers: lab
            .server
            .job
            .failed_writers
            .iter()
            .map(|w| {
                let name = names.get(w.writer.index()).map_or("?", |n| n.as_str());
                let code = w.failure.as_ref().map(|f| f.code);
                format!(
                    "{name} {}",
                    crate::protocol::vss::vssadmin::line(w.state, code)
                )
            })
            .collect(),
        vms,
        bytes_read: lab.server.bytes.read,
        bytes_hashed: lab.server.bytes.hashed,
        bytes_sent: lab.server.bytes.sent,
        points: lab
            .server
            .points
            .iter()
            .map(|p| PointReport {
                number: p.number,
                made: p.made,
                transfers: p
                    .transfers
                    .iter()
                    .map(|(&vm, t)| (lab.vms[vm].name.clone(), t.name()))
                    .collect(),
                bytes_read: p.bytes_read,
                bytes_hashed: p.bytes_hashed,
                bytes_sent: p.bytes_sent,
                excluded: p
                    .excluded
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} bytes {}..{} ({})",
                            lab.vms[e.vm].name,
                            lab.vms[e.vm].disks[e.disk].file,
                            e.offset,
                            e.offset + e.len,
                            e.why
                        )
                    })
                    .collect(),
            })
            .collect(),
        consistency_checks: lab.server.checks.clone(),
        restores: lab
            .server
            .restores
            .iter()
            .map(|r| RestoreReport {
                vm: lab.vms[r.vm].name.clone(),
                target: r.target.to_string(),
                point: r.point,
                files: r
                    .items
                    .iter()
                    .map(|i| format!("{}:{}", i.volume.name(), i.file))
                    .collect(),
                bytes_written: r.bytes_written,
                state: r.power.map(|p| p.name().to_string()),
            })
            .collect(),
        events: lab.events.clone(),
        invariants: checks,
        expectations: Vec::new(),
        steps,
        virtual_us: now,
        job: timeline(lab, s),
        files_left: files_left(lab),
        requester_died: lab.server.job.requester_died,
        left_by_dead_requester: invariants::left_by_dead_requester(lab, names),
    };
    report.expectations = expectations(s, &report);
    report
}

/// Files on the volumes besides the VMs' base disks, as `volume:file`.
fn files_left(lab: &crate::world::Lab) -> Vec<String> {
    let bases: Vec<&str> = lab
        .vms
        .iter()
        .flat_map(|v| v.disks.iter().map(|d| d.chain.base()))
        .collect();
    lab.volumes
        .iter()
        .flat_map(|(n, v)| {
            v.list()
                .into_iter()
                .filter(|f| !bases.contains(&f.as_str()))
                .map(move |f| format!("{n}:{f}"))
        })
        .collect()
}

fn expectations(s: &Scenario, r: &RunReport) -> Vec<Check> {
    let e = &s.expect;
    let mut out = Vec::new();
    let mut add = |ok: bool, message: String| {
        out.push(Check {
            id: "expect",
            ok,
            message,
        })
    };
    add(
        r.outcome == e.outcome,
        format!("outcome {} (got {})", e.outcome, r.outcome),
    );
    if let Some(c) = e.code {
        add(
            r.code == Some(c),
            format!(
                "code {c} (got {})",
                r.code.map_or("none".into(), |c| c.to_string())
            ),
        );
    }
    if let Some(ev) = e.event {
        let raised = r.events.iter().any(|x| x.id == ev) || r.event == Some(ev);
        add(raised, format!("event {ev} raised"));
    }
    if let Some(n) = e.retries {
        let got = r.retries.iter().filter(|x| x.starts_with("retry ")).count();
        add(
            got == n as usize,
            format!("{n} retries of the host backup (got {got})"),
        );
    }
    for w in &e.writers {
        add(
            r.writers.contains(w),
            format!("writer {w} (got {})", r.writers.join("; ")),
        );
    }
    if let Some(c) = e.failure_class {
        add(
            r.failure_class == Some(c),
            format!(
                "failure class {c} (got {})",
                r.failure_class.map_or("none".into(), |c| c.to_string())
            ),
        );
    }
    if !e.files_left.is_empty() {
        // One `*` stands for a checkpoint's GUID, which depends on the seed.
        let matches = |want: &String, got: &String| match want.split_once('*') {
            Some((head, tail)) => {
                got.len() >= head.len() + tail.len() && got.starts_with(head) && got.ends_with(tail)
            }
            None => want == got,
        };
        add(
            e.files_left.len() == r.files_left.len()
                && e.files_left
                    .iter()
                    .zip(&r.files_left)
                    .all(|(w, g)| matches(w, g)),
            format!(
                "files left {} (got {})",
                e.files_left.join(", "),
                r.files_left.join(", ")
            ),
        );
    }
    for v in &e.vms {
        let Some(got) = r.vms.iter().find(|x| x.vm == v.vm) else {
            add(false, format!("{} was in the job", v.vm));
            continue;
        };
        if let Some(m) = v.method {
            add(
                got.method == m,
                format!("{}: method {m} (got {})", v.vm, got.method),
            );
        }
        if let Some(c) = v.checkpoint {
            add(
                got.checkpoint == Some(c),
                format!(
                    "{}: {c} checkpoint (got {})",
                    v.vm,
                    got.checkpoint.map_or("none".into(), |c| c.to_string())
                ),
            );
        }
        if let Some(c) = v.consistency {
            add(
                got.consistency == Some(c),
                format!(
                    "{}: {c}-consistent (got {})",
                    v.vm,
                    got.consistency.map_or("none".into(), |c| c.to_string())
                ),
            );
        }
        if let Some(d) = &v.downtime {
            let us = got.downtime_us;
            add(
                us >= d.min.millis.saturating_mul(1_000)
                    && us <= d.max.millis.saturating_mul(1_000),
                format!(
                    "{}: downtime within {}..{} (got {} ms)",
                    v.vm,
                    d.min,
                    d.max,
                    us / 1_000
                ),
            );
        }
        if !v.frozen_after.is_empty() || !got.frozen.is_empty() {
            add(
                got.frozen == v.frozen_after,
                format!(
                    "{}: left frozen in the guest: {} (got {})",
                    v.vm,
                    show_mounts(&v.frozen_after),
                    show_mounts(&got.frozen)
                ),
            );
        }
        if let Some(t) = &v.transfers {
            let names =
                |t: &[TransferKind]| t.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
            add(
                got.transfers == *t,
                format!(
                    "{}: transfers [{}] (got [{}])",
                    v.vm,
                    names(t),
                    names(&got.transfers)
                ),
            );
        }
        if let Some(io) = v.csv_read {
            let got_io: Vec<&str> = got.csv_reads.iter().map(|(i, _)| i.as_str()).collect();
            add(
                !got.csv_reads.is_empty() && got.csv_reads.iter().all(|(i, _)| *i == io),
                format!(
                    "{}: CSV snapshot read {} (got [{}])",
                    v.vm,
                    io.as_str(),
                    got_io.join(", ")
                ),
            );
        }
        if let Some(n) = v.avhdx_left {
            add(
                got.avhdx_left == n as usize,
                format!("{}: {n} AVHDX left (got {})", v.vm, got.avhdx_left),
            );
        }
        if let Some(node) = &v.owner_node {
            add(
                got.owner_node == *node,
                format!("{}: owned by {node} (got {})", v.vm, got.owner_node),
            );
        }
        if let Some(st) = v.state_after_restore {
            // The state the VM's own restore to the original place left it in; a job
            // that restored nothing there meets no such expectation.
            add(
                got.restored.map(Power::name) == Some(st.as_str()),
                format!(
                    "{}: {st} after restore (got {})",
                    v.vm,
                    got.restored
                        .map_or("no restore to the original place", Power::name)
                ),
            );
        }
    }
    out
}

fn show_mounts(mounts: &[String]) -> String {
    if mounts.is_empty() {
        "nothing".into()
    } else {
        mounts.join(" ")
    }
}

/// The numbered story of a run: protocol steps in order, guest writes and merge steps
/// folded into counts.
#[derive(Default)]
struct Story {
    lines: Vec<String>,
    n: u64,
    folded: u64,
    merge_steps: u64,
}

impl Story {
    fn flush_folded(&mut self) {
        if self.folded > 0 {
            self.lines
                .push(format!("       … {} guest write step(s)", self.folded));
            self.folded = 0;
        }
        if self.merge_steps > 0 {
            self.lines
                .push(format!("       … {} merge step(s)", self.merge_steps));
            self.merge_steps = 0;
        }
    }

    fn push(&mut self, rec: &StepRecord, names: &[String]) {
        let actor = names.get(rec.actor.index()).map_or("?", String::as_str);
        if actor.starts_with("Workload@") {
            self.folded += 1;
            return;
        }
        if rec.event == "MergeStep" && !rec.details.iter().any(|(k, _)| *k == "merged") {
            self.merge_steps += 1;
            return;
        }
        self.flush_folded();
        self.n += 1;
        let from = rec
            .from
            .and_then(|f| names.get(f.index()))
            .map_or(String::new(), |f| {
                if f == actor {
                    String::new()
                } else {
                    format!("{f} → ")
                }
            });
        let mut line = format!(
            "{:>4}. {:>9}  {from}{actor}: {}",
            self.n,
            format!(
                "{}.{:03}s",
                rec.time_us / 1_000_000,
                rec.time_us % 1_000_000 / 1_000
            ),
            rec.event
        );
        for (k, v) in &rec.details {
            let v = match v {
                Detail::U64(x) => x.to_string(),
                Detail::I64(x) => x.to_string(),
                Detail::Bool(x) => x.to_string(),
                Detail::Str(s) => s.to_string(),
                Detail::Text(s) => s.clone(),
                Detail::Actor(a) => names.get(a.index()).cloned().unwrap_or_default(),
            };
            line.push_str(&format!("  {k}={v}"));
        }
        self.lines.push(line);
    }

    fn finish(mut self) -> Vec<String> {
        self.flush_folded();
        self.lines
    }
}
