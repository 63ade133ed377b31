//! JUnit XML (quick-junit, the writer cargo-nextest uses): a testsuite per scenario, a
//! testcase per run, failures with their signature, message and reproduce command.

use std::collections::BTreeMap;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

pub use quick_junit::SerializeError as JunitError;

/// One testcase.
#[derive(Clone, Debug)]
pub struct JunitCase {
    /// Its testsuite: the scenario.
    pub suite: String,
    /// E.g. "run 17 seed 123456".
    pub name: String,
    pub time: Duration,
    /// Signature, message, reproduce command.
    pub failure: Option<(String, String, String)>,
}

/// The report named `name`, every suite carrying `properties`, suites in the order their
/// first case comes.
pub fn junit_report(
    name: &str,
    properties: &[(&str, String)],
    cases: &[JunitCase],
) -> Result<String, JunitError> {
    let mut order: Vec<&str> = Vec::new();
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    let mut total = Duration::ZERO;
    for c in cases {
        let suite = suites.entry(&c.suite).or_insert_with(|| {
            order.push(&c.suite);
            let mut s = TestSuite::new(c.suite.as_str());
            for (k, v) in properties {
                s.add_property(Property::new(*k, v.as_str()));
            }
            s
        });
        let status = match &c.failure {
            None => TestCaseStatus::success(),
            Some((signature, message, reproduce)) => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_type(signature.as_str());
                st.set_message(message.as_str());
                st.set_description(format!("{signature}\n{message}\nreproduce: {reproduce}"));
                st
            }
        };
        let mut case = TestCase::new(c.name.as_str(), status);
        case.set_classname(c.suite.as_str());
        case.set_time(c.time);
        suite.add_test_case(case);
        total += c.time;
    }
    let mut report = Report::new(name);
    report.set_time(total);
    for s in order {
        if let Some(suite) = suites.remove(s) {
            report.add_test_suite(suite);
        }
    }
    report.to_string()
}

/// The JUnit report of an exploration: properties hvsim version and exploration seed.
pub fn exploration_junit(x: &super::Exploration<'_>) -> Result<String, JunitError> {
    let cases: Vec<JunitCase> = x
        .results
        .iter()
        .map(|r| {
            let t = &x.targets[r.spec.target];
            JunitCase {
                suite: t.scenario.name.clone(),
                name: format!("run {} seed {}", r.spec.index, r.spec.seed),
                time: r.wall,
                failure: match &r.verdict {
                    super::Verdict::Pass => None,
                    super::Verdict::Fail { signature, message } => {
                        Some((signature.to_string(), message.clone(), r.spec.reproduce(t)))
                    }
                },
            }
        })
        .collect();
    let mut properties = vec![
        ("hvsim.version", env!("CARGO_PKG_VERSION").to_string()),
        ("hvsim.seed", x.seed.to_string()),
        ("hvsim.faults", x.faults_name().to_string()),
        ("hvsim.swarm", x.swarm.to_string()),
    ];
    if let Some(s) = x.shard {
        properties.push(("hvsim.shard", s.to_string()));
    }
    junit_report("hvsim explore", &properties, &cases)
}
