//! The verdict of `hvsim conform`: each check with what it compared (a count, so a check
//! that had nothing to compare shows it), and each deviation with the step, record or
//! line it was found at and the SPEC item it breaks.

use std::fmt;

use serde::Serialize;

/// One deviation: the host did something the model does not allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deviation {
    /// The check that found it (`writers`, `checkpoints`, `events` …).
    pub check: &'static str,
    /// Where on the host's side: `step 14`, `ev.xml:3`, `vssadmin.txt:9`.
    pub at: String,
    pub what: String,
    /// The SPEC items or field failures it touches.
    pub spec: &'static str,
}

/// One check and what it compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    pub check: &'static str,
    /// Observations compared (host side).
    pub compared: u64,
    /// What the model had to compare them with.
    pub expected: u64,
    pub summary: String,
}

/// The whole verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conformance {
    pub run: String,
    pub scenario: String,
    pub seed: u64,
    pub checks: Vec<CheckOutcome>,
    pub deviations: Vec<Deviation>,
}

impl Conformance {
    pub fn conformant(&self) -> bool {
        self.deviations.is_empty()
    }
}

impl fmt::Display for Conformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: scenario {}, seed {}, held against the model's run of the same",
            self.run, self.scenario, self.seed
        )?;
        for c in &self.checks {
            writeln!(
                f,
                "  {:<12} {} compared, model {}: {}",
                c.check, c.compared, c.expected, c.summary
            )?;
        }
        if self.conformant() {
            return writeln!(f, "conformant: every check as the model");
        }
        for d in &self.deviations {
            writeln!(
                f,
                "DEVIATION {} at {}: {} ({})",
                d.check, d.at, d.what, d.spec
            )?;
        }
        writeln!(f, "{} deviation(s) from the model", self.deviations.len())
    }
}
