//! Findings: failing runs grouped by scenario and signature, with a count, the
//! fastest-failing run (fewest steps, then least virtual time) first.

use super::execute::{RunResult, Verdict};
use super::signature::Signature;

/// One bug, seen in `runs.len()` runs.
#[derive(Clone, Debug)]
pub struct Finding {
    pub target: usize,
    pub signature: Signature,
    /// The fastest run's message.
    pub message: String,
    /// Indexes into the results, fastest-failing first.
    pub runs: Vec<usize>,
}

/// The findings of `results`, in the order their first run appears.
pub fn group(results: &[RunResult]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let Verdict::Fail { signature, message } = &r.verdict else {
            continue;
        };
        let target = r.spec.target;
        match findings
            .iter_mut()
            .find(|f| f.target == target && &f.signature == signature)
        {
            Some(f) => f.runs.push(i),
            None => findings.push(Finding {
                target,
                signature: signature.clone(),
                message: message.clone(),
                runs: vec![i],
            }),
        }
    }
    for f in &mut findings {
        f.runs.sort_by_key(|&i| {
            (
                results[i].steps,
                results[i].virtual_us,
                results[i].spec.index,
            )
        });
        if let Verdict::Fail { message, .. } = &results[f.runs[0]].verdict {
            f.message = message.clone();
        }
    }
    findings
}
