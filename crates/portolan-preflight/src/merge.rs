//! Many hosts' results into one connection matrix.

use std::collections::BTreeSet;

use portolan_render::results::{
    Axis, CellEntry, CellStatus, HostSummary, ResultCell, ResultsMatrix,
};

use crate::document::{detail_text, probe_text, HostResults};
use crate::ResultsError;

/// One results file, read.
#[derive(Debug, Clone)]
pub struct ResultsInput {
    /// The file's name, for messages and the page.
    pub file: String,
    /// Its content.
    pub results: HostResults,
}

/// Merges results into the connection matrix.
///
/// Every file must come from the same spec (by SHA-256): the spec file's if
/// `expected_spec` (its name and hash) is given, else the first file's; and
/// from the same deployment. Rows are the components that send flows,
/// columns the components and external endpoints that receive them, in spec
/// order. Each cell holds one entry per probe of its flows from every host
/// that checked as the source component, one per part not probed, and an
/// untested entry for flows whose source component sent no results.
pub fn merge(
    inputs: &[ResultsInput],
    expected_spec: Option<(&str, &str)>,
) -> Result<ResultsMatrix, ResultsError> {
    let first = inputs.first().ok_or(ResultsError::NoInput)?;
    let (expected_from, expected) = match expected_spec {
        Some((file, sha)) => (file.to_owned(), sha.to_owned()),
        None => (first.file.clone(), first.results.spec.sha256.clone()),
    };
    for input in inputs {
        let spec = &input.results.spec;
        if spec.sha256 != expected {
            return Err(ResultsError::SpecMismatch {
                file: input.file.clone(),
                found_system: spec.system.clone(),
                found: spec.sha256.clone(),
                expected: expected.clone(),
                expected_from: expected_from.clone(),
            });
        }
        let deployment = &input.results.deployment;
        if deployment.sha256 != first.results.deployment.sha256 {
            return Err(ResultsError::DeploymentMismatch {
                file: input.file.clone(),
                found: deployment.sha256.clone(),
                expected: first.results.deployment.sha256.clone(),
                expected_from: first.file.clone(),
            });
        }
    }
    let base = &first.results;
    let sources: BTreeSet<&str> = base.flows.iter().map(|f| f.from.as_str()).collect();
    let destinations: BTreeSet<&str> = base.flows.iter().map(|f| f.to.as_str()).collect();
    let rows: Vec<Axis> = base
        .components
        .iter()
        .filter(|c| sources.contains(c.id.as_str()))
        .map(|c| Axis {
            id: c.id.clone(),
            name: c.name.clone(),
        })
        .collect();
    let columns: Vec<Axis> = base
        .components
        .iter()
        .chain(&base.externals)
        .filter(|c| destinations.contains(c.id.as_str()))
        .map(|c| Axis {
            id: c.id.clone(),
            name: c.name.clone(),
        })
        .collect();
    let host_label = |r: &HostResults| match r.from {
        Some(from) => format!("{} on {} ({from})", r.component, r.host),
        None => format!("{} on {}", r.component, r.host),
    };
    let mut cells: Vec<ResultCell> = Vec::new();
    for flow in &base.flows {
        let (Some(row), Some(column)) = (
            rows.iter().position(|r| r.id == flow.from),
            columns.iter().position(|c| c.id == flow.to),
        ) else {
            continue;
        };
        let index = match cells
            .iter()
            .position(|c| c.row == row && c.column == column)
        {
            Some(i) => i,
            None => {
                cells.push(ResultCell {
                    row,
                    column,
                    tokens: Vec::new(),
                    entries: Vec::new(),
                });
                cells.len() - 1
            }
        };
        let cell = &mut cells[index];
        for token in &flow.tokens {
            let token = if flow.required {
                token.clone()
            } else {
                format!("({token})")
            };
            if !cell.tokens.contains(&token) {
                cell.tokens.push(token);
            }
        }
        let reporters: Vec<&ResultsInput> = inputs
            .iter()
            .filter(|i| i.results.component == flow.from)
            .collect();
        if reporters.is_empty() {
            cell.entries.push(CellEntry {
                flow: flow.id.clone(),
                required: flow.required,
                status: CellStatus::Untested,
                host: None,
                target: None,
                outcome: format!("no results from a host of `{}`", flow.from),
                detail: String::new(),
            });
            continue;
        }
        for input in reporters {
            let r = &input.results;
            let mut any = false;
            for check in r.checks.iter().filter(|c| c.flow == flow.id) {
                any = true;
                cell.entries.push(CellEntry {
                    flow: flow.id.clone(),
                    required: check.required,
                    status: if check.result.is_pass() {
                        CellStatus::Pass
                    } else {
                        CellStatus::Fail
                    },
                    host: Some(host_label(r)),
                    target: Some(probe_text(check)),
                    outcome: check.result.outcome.class.to_string(),
                    detail: detail_text(check),
                });
            }
            for u in r.untested.iter().filter(|u| u.flow == flow.id) {
                any = true;
                cell.entries.push(CellEntry {
                    flow: flow.id.clone(),
                    required: u.required,
                    status: CellStatus::Untested,
                    host: Some(host_label(r)),
                    target: None,
                    outcome: format!("not probed: {}", u.reason),
                    detail: String::new(),
                });
            }
            if !any {
                cell.entries.push(CellEntry {
                    flow: flow.id.clone(),
                    required: flow.required,
                    status: CellStatus::Untested,
                    host: Some(host_label(r)),
                    target: None,
                    outcome: "not in this host's results".to_owned(),
                    detail: String::new(),
                });
            }
        }
    }
    cells.sort_by_key(|c| (c.row, c.column));
    let mut deployment = base
        .deployment
        .name
        .clone()
        .unwrap_or_else(|| base.deployment.file.clone());
    deployment.push_str(&format!(" (sha256 {})", base.deployment.sha256));
    let facts = vec![
        (
            "Spec".to_owned(),
            format!("{} (sha256 {})", base.spec.file, expected),
        ),
        ("Deployment".to_owned(), deployment),
        (
            "Results".to_owned(),
            format!("{} file(s) from {} host(s)", inputs.len(), {
                let hosts: BTreeSet<(&str, &str)> = inputs
                    .iter()
                    .map(|i| (i.results.host.as_str(), i.results.component.as_str()))
                    .collect();
                hosts.len()
            }),
        ),
    ];
    let hosts = inputs
        .iter()
        .map(|i| HostSummary {
            component: i.results.component.clone(),
            host: match i.results.from {
                Some(from) => format!("{} ({from})", i.results.host),
                None => i.results.host.clone(),
            },
            file: i.file.clone(),
            finished_at: i.results.finished_at.clone(),
            passed: i.results.summary.passed,
            failed: i.results.summary.failed,
            untested: i.results.summary.untested,
        })
        .collect();
    Ok(ResultsMatrix {
        title: base.spec.system.clone(),
        facts,
        rows,
        columns,
        cells,
        hosts,
    })
}
