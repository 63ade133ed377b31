//! The checks every run makes, each with the SPEC items and field failures it verifies.
//! A run reports a check's verdict under an invariant's id (`RunReport::invariants`):
//! the watch checkers fold into I3 and I5. A check verifies its items in a run when that
//! verdict is present and holds.

/// One check of a run and what it verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunCheck {
    /// Where the check lives (module and function).
    pub name: &'static str,
    /// The id of the report's check that carries its verdict.
    pub report: &'static str,
    /// The items it verifies.
    pub verifies: &'static [&'static str],
}

/// Every run check, in the order of the invariants.
pub const RUN_CHECKS: &[RunCheck] = &[
    RunCheck {
        name: "invariants::i1",
        report: "I1",
        verifies: &["I1"],
    },
    RunCheck {
        name: "invariants::i2",
        report: "I2",
        verifies: &["I2"],
    },
    RunCheck {
        name: "invariants::i3",
        report: "I3",
        verifies: &["I3"],
    },
    RunCheck {
        name: "watch::writers",
        report: "I3",
        verifies: &["I3"],
    },
    // A writer session opened with PrepareForBackup is closed (field failure 10).
    RunCheck {
        name: "watch::sessions",
        report: "I3",
        verifies: &["I3", "FF10"],
    },
    RunCheck {
        name: "invariants::i4",
        report: "I4",
        verifies: &["I4"],
    },
    RunCheck {
        name: "watch::order",
        report: "I5",
        verifies: &["I5"],
    },
    RunCheck {
        name: "watch::windows",
        report: "I5",
        verifies: &["I5"],
    },
    RunCheck {
        name: "watch::complete",
        report: "I5",
        verifies: &["I5"],
    },
    // Only runs with a restore report I6.
    RunCheck {
        name: "invariants::i6",
        report: "I6",
        verifies: &["I6"],
    },
];
