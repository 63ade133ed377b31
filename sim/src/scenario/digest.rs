//! The scenario's digest (for trace headers) and its one-screen summary.

use super::error::Problem;
use super::model::*;
use std::fmt;

/// Prefix of the canonical form; change it when the meaning of a field changes.
const CANONICAL_VERSION: &str = "hvsim-scenario-v2\n";

impl Scenario {
    /// The canonical serialisation: the typed scenario as compact JSON (fields in
    /// declaration order, defaults filled in, sizes in bytes, times in milliseconds), so
    /// comments, layout and spelling of units do not change it.
    pub fn canonical(&self) -> String {
        // Serialising plain structs, strings and integers to JSON cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{CANONICAL_VERSION}{json}")
    }

    /// The scenario back from its canonical form (a trace header carries it), checked
    /// as a scenario file is: fields and types, then [`Scenario::validate`].
    pub fn from_canonical(text: &str) -> Result<Scenario, Vec<Problem>> {
        Scenario::from_canonical_checked(text, &super::validate::no_world_check)
    }

    /// [`Scenario::from_canonical`], with `world`'s checks of a valid scenario.
    pub fn from_canonical_checked(
        text: &str,
        world: super::validate::WorldCheck<'_>,
    ) -> Result<Scenario, Vec<Problem>> {
        let problem = |path: &str, message: String| Problem {
            path: path.to_string(),
            message,
        };
        let json = text.strip_prefix(CANONICAL_VERSION).ok_or_else(|| {
            vec![problem(
                "(top level)",
                format!("does not start with {:?}", CANONICAL_VERSION.trim_end()),
            )]
        })?;
        let scenario: Scenario =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
                .map_err(|e| {
                    let path = match e.path().to_string() {
                        p if p == "." => "(top level)".to_string(),
                        p => p,
                    };
                    vec![problem(&path, e.inner().to_string())]
                })?;
        let problems = scenario.problems(world);
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(problems)
        }
    }

    /// BLAKE3 of [`Scenario::canonical`], as 64 hex digits.
    pub fn digest(&self) -> String {
        blake3::hash(self.canonical().as_bytes())
            .to_hex()
            .to_string()
    }
}

impl fmt::Display for Scenario {
    /// A stable summary: name, covered items, world, job, faults and expectations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let covers: Vec<&str> = self.covers.iter().map(|c| c.as_str()).collect();
        writeln!(f, "scenario {} (seed {})", self.name, self.seed)?;
        writeln!(f, "  covers: {}", covers.join(", "))?;
        for host in &self.hosts {
            writeln!(f, "  host {}: Hyper-V {}", host.name, host.version)?;
        }
        if let Some(c) = &self.cluster {
            writeln!(
                f,
                "  cluster {}: level {}, nodes {}",
                c.name,
                c.functional_level,
                c.nodes.join(", ")
            )?;
        }
        for fs in &self.file_servers {
            let shares: Vec<String> = fs
                .shares
                .iter()
                .map(|s| format!("\\\\{}\\{}", fs.name, s.name))
                .collect();
            writeln!(
                f,
                "  file server {}: {} shares {}",
                fs.name,
                fs.version,
                shares.join(", ")
            )?;
        }
        for v in &self.volumes {
            writeln!(f, "  volume {}: {} free of {}", v.name, v.free, v.capacity)?;
        }
        for vm in &self.vms {
            let writers: Vec<String> = vm
                .guest
                .writers
                .iter()
                .map(|w| match (w.fail_at, w.fail_with) {
                    (Some(at), Some(with)) => format!("{} (fails at {at} with {with})", w.name),
                    _ => w.name.clone(),
                })
                .collect();
            write!(
                f,
                "  vm {} on {}: gen {}, config {}, {}, {} guest, {} disk(s)",
                vm.name,
                vm.host,
                vm.generation,
                vm.config_version,
                vm.state,
                vm.guest.os,
                vm.disks.len()
            )?;
            if let Some(daemon) = &vm.guest.vss_daemon {
                write!(f, ", hv_vss_daemon {daemon}")?;
            }
            if !writers.is_empty() {
                write!(f, ", writers {}", writers.join(", "))?;
            }
            for p in &vm.pass_through {
                write!(f, ", pass-through {} ({})", p.name, p.size)?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "  job: {} {} of {} ({} recovery point(s))",
            self.job.kind,
            self.job.mode,
            self.job.vms.join(", "),
            self.job.recovery_points
        )?;
        let c = &self.job.concurrency;
        if !c.is_serial() {
            write!(f, ", up to {} backup(s) in flight", c.per_job)?;
            if let Some(n) = c.per_host {
                write!(f, ", {n} per host")?;
            }
            if let Some(n) = c.per_volume {
                write!(f, ", {n} per volume")?;
            }
        }
        writeln!(f)?;
        for fault in &self.faults {
            // The fault as its TOML table, in JSON spelling (stable, unlike Debug).
            let text = serde_json::to_string(fault).unwrap_or_default();
            writeln!(f, "  fault: {text}")?;
        }
        write!(f, "  expect: {}", self.expect.outcome)?;
        if let Some(code) = self.expect.code {
            write!(f, " {code} (0x{:08X})", code.value())?;
        }
        if let Some(event) = self.expect.event {
            write!(f, " event {event}")?;
        }
        for ve in &self.expect.vms {
            write!(f, "; {}", ve.vm)?;
            for part in [
                ve.method.map(|m| m.to_string()),
                ve.checkpoint.map(|c| format!("{c} checkpoint")),
                ve.consistency.map(|c| format!("{c}-consistent")),
                ve.downtime
                    .as_ref()
                    .map(|d| format!("downtime {}..{}", d.min, d.max)),
            ]
            .into_iter()
            .flatten()
            {
                write!(f, " {part}")?;
            }
        }
        writeln!(f)
    }
}
