//! `hvsim shrink`: a failing run made as small as it will go while it fails the same way,
//! written as a scenario file that `hvsim run` reproduces.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use hvsim_sim::explore::{apply, Judgement, SwarmOptions};
use hvsim_sim::faults::{FaultPlan, FaultPoint};
use hvsim_sim::scenario::Scenario;
use hvsim_sim::shrink::{bake, fewest_choices, reduce, reduce_swarm, trial, written, Budget, Size};
use hvsim_sim::trace::read_trace;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `hvsim shrink`: its arguments.
#[derive(Args)]
pub struct ShrinkArgs {
    /// The failing run: a scenario file (TOML) or a trace (JSON Lines, its scenario and
    /// seed in its header).
    input: PathBuf,
    /// Seed of the failing run (the file's or the trace's own by default).
    #[arg(long)]
    seed: Option<u64>,
    /// The swarm options of the failing run, as `hvsim explore --swarm` prints them.
    #[arg(long, value_name = "OPTIONS")]
    swarm_options: Option<SwarmOptions>,
    /// The fault point K of the failing run (as `hvsim explore --faults` prints it).
    #[arg(long, value_name = "K")]
    fault_point: Option<usize>,
    /// Write the smaller scenario here (default: INPUT's name with `-shrunk.toml`, beside
    /// it).
    #[arg(long, short, value_name = "SMALLER.toml")]
    output: Option<PathBuf>,
    /// Replace an existing output file (never the input).
    #[arg(long)]
    force: bool,
    /// The most runs the search makes.
    #[arg(long, default_value_t = 400)]
    max_runs: u32,
    /// Wall-clock limit of each run (`300s`, `5 min`).
    #[arg(long, value_name = "DURATION", default_value = "300s",
          value_parser = crate::run_cmd::parse_timeout)]
    timeout: Duration,
}

/// The scenario and seed of a scenario file or a trace.
fn load_input(path: &Path) -> Result<(Scenario, u64)> {
    let is_trace = path
        .extension()
        .is_some_and(|x| x == "jsonl" || x == "json");
    if !is_trace {
        let s = hvsim_sim::run::load(path).map_err(|e| anyhow!("{e}"))?;
        let seed = s.seed;
        return Ok((s, seed));
    }
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let t = read_trace(BufReader::new(f)).with_context(|| path.display().to_string())?;
    let text = t.header.scenario.as_deref().ok_or_else(|| {
        anyhow!(
            "{}: line 1: the trace's header carries no scenario to shrink",
            path.display()
        )
    })?;
    let s = hvsim_sim::run::from_canonical(text).map_err(|problems| {
        let first = problems.first().map(|p| p.to_string()).unwrap_or_default();
        anyhow!("{}: line 1: the trace's scenario: {first}", path.display())
    })?;
    Ok((s, t.header.seed))
}

fn point_of(s: &Scenario, file: &Path, k: usize) -> Result<FaultPoint> {
    let points = FaultPlan::points(s);
    let n = points.len();
    points.into_iter().nth(k).ok_or_else(|| {
        anyhow!(
            "{}: --fault-point {k}: the scenario's fault plan has {n} points (0..{n})",
            file.display()
        )
    })
}

fn default_output(input: &Path) -> PathBuf {
    let stem = input.file_stem().unwrap_or_default().to_string_lossy();
    input.with_file_name(format!("{stem}-shrunk.toml"))
}

pub fn shrink_cmd(args: ShrinkArgs) -> Result<ExitCode> {
    let ShrinkArgs {
        input,
        seed,
        swarm_options,
        fault_point,
        output,
        force,
        max_runs,
        timeout,
    } = args;
    let (base, own_seed) = load_input(&input)?;
    let seed = seed.unwrap_or(own_seed);
    let point = fault_point
        .map(|k| point_of(&base, &input, k))
        .transpose()?;
    let out_path = output.unwrap_or_else(|| default_output(&input));
    // Refused now, before the search, when it is in the way (and never the input).
    drop(crate::files::new_output(
        &out_path,
        force,
        std::slice::from_ref(&input),
    )?);

    let judgement = if swarm_options.is_none() && point.is_none() {
        Judgement::Expect
    } else {
        Judgement::Invariants
    };
    let mut first = base.clone();
    apply(&mut first, swarm_options.as_ref(), point.as_ref());
    let t = trial(&first, seed, judgement, Some(timeout)).ok_or_else(|| {
        anyhow!(
            "{}: with the swarm options and fault point the scenario is not valid",
            input.display()
        )
    })?;
    let want = t.signature.ok_or_else(|| {
        anyhow!(
            "{}: the run at seed {seed} passes: there is no failure to shrink",
            input.display()
        )
    })?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "signature: {want}")?;
    let before = Size::of(&first);
    let (choices_before, steps_before) = (t.choices, t.steps);

    let mut budget = Budget::new(max_runs, Some(timeout));
    let mut removed = Vec::new();
    let swarm = match swarm_options.clone() {
        Some(o) => {
            let (kept, r) = reduce_swarm(&base, o, point.as_ref(), seed, &want, &mut budget);
            removed.extend(r);
            kept
        }
        None => None,
    };
    let baked = bake(
        &base,
        swarm.as_ref(),
        point.as_ref(),
        seed,
        &want,
        Some(timeout),
    )
    .map_err(|e| anyhow!("{}: {e}", input.display()))?;
    if let Some(p) = &point {
        let fault = serde_json::to_string(&p.fault).unwrap_or_default();
        removed.push(format!(
            "fault point {} written as the scenario's one fault {fault}",
            fault_point.unwrap_or_default()
        ));
    }
    let (mut smaller, r) = reduce(baked, seed, Judgement::Expect, &want, &mut budget);
    removed.extend(r);
    let (new_seed, choices, steps) = match fewest_choices(&smaller, seed, &want, &mut budget) {
        Some(best) => best,
        // The budget is spent: the seed stays, its log measured by one more run.
        None => trial(&smaller, seed, Judgement::Expect, Some(timeout))
            .map_or((seed, 0, 0), |t| (seed, t.choices, t.steps)),
    };
    smaller.seed = new_seed;
    smaller.name = out_path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(smaller.name);

    let mut reproduce = format!("{} --seed {seed}", input.display());
    if let Some(o) = &swarm_options {
        reproduce.push_str(&format!(" --swarm-options '{o}'"));
    }
    if let Some(k) = fault_point {
        reproduce.push_str(&format!(" --fault-point {k}"));
    }
    let header = [
        format!("Shrunk by `hvsim shrink` from {reproduce}."),
        format!("Fails with: {want}"),
    ];
    let text = written(&smaller, &header).context("writing the smaller scenario as TOML")?;
    // The file as `hvsim run` will read it must fail the same way.
    let back = hvsim_sim::run::from_toml(&text, &out_path.display().to_string())
        .map_err(|e| anyhow!("the smaller scenario does not load back: {e}"))?;
    let got = trial(&back, new_seed, Judgement::Expect, Some(timeout)).and_then(|t| t.signature);
    if got.as_ref() != Some(&want) {
        return Err(anyhow!(
            "the smaller scenario read back fails with {} instead of {want}",
            got.map_or("nothing".to_string(), |g| g.to_string())
        ));
    }
    let mut f = crate::files::new_output(&out_path, force, std::slice::from_ref(&input))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", out_path.display()))?;
    crate::files::commit_output(f, false)?;

    for r in &removed {
        writeln!(stdout, "  {r}")?;
    }
    if new_seed != seed {
        writeln!(stdout, "  seed {seed} → {new_seed}")?;
    }
    writeln!(stdout, "before: {before}")?;
    writeln!(stdout, "after:  {}", Size::of(&smaller))?;
    writeln!(
        stdout,
        "decision log: {choices_before} choices in {steps_before} steps → {choices} choices in {steps} steps"
    )?;
    let cut = if budget.spent() {
        " (the limit: stopped there)"
    } else {
        ""
    };
    writeln!(stdout, "runs: {} of at most {max_runs}{cut}", budget.runs)?;
    writeln!(stdout, "written: {}", out_path.display())?;
    writeln!(stdout, "reproduce: hvsim run {}", out_path.display())?;
    Ok(ExitCode::SUCCESS)
}
