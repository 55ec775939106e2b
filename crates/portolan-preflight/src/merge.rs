//! Many hosts' results into one connection matrix.

use std::collections::BTreeSet;
use std::net::IpAddr;

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
    ensure_known_flows(inputs)?;
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
    let host_label = |r: &HostResults| match (r.from, r.addresses.as_slice()) {
        (Some(from), _) => format!("{} on {} ({from})", r.component, r.host),
        (None, []) => format!("{} on {}", r.component, r.host),
        (None, held) => format!("{} on {} ({})", r.component, r.host, ips_text(held)),
    };
    let coverage: Vec<Coverage> = rows
        .iter()
        .filter_map(|row| coverage_of(inputs, base, &row.id))
        .collect();
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
        if let Some(c) = coverage.iter().find(|c| c.component == flow.from) {
            for address in &c.missing {
                cell.entries.push(CellEntry {
                    flow: flow.id.clone(),
                    required: flow.required,
                    status: CellStatus::Untested,
                    host: Some(format!("{} at {address}", flow.from)),
                    target: None,
                    outcome: "no results".to_owned(),
                    detail: String::new(),
                });
            }
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
    let mut hosts: Vec<HostSummary> = inputs
        .iter()
        .map(|i| HostSummary {
            component: i.results.component.clone(),
            host: match (i.results.from, i.results.addresses.as_slice()) {
                (Some(from), _) => format!("{} ({from})", i.results.host),
                (None, []) => i.results.host.clone(),
                (None, held) => format!("{} ({})", i.results.host, ips_text(held)),
            },
            file: i.file.clone(),
            finished_at: i.results.finished_at.clone(),
            passed: i.results.summary.passed,
            failed: i.results.summary.failed,
            untested: i.results.summary.untested,
        })
        .collect();
    // The hosts that sent nothing, each with its address.
    for c in &coverage {
        for address in &c.missing {
            hosts.push(HostSummary {
                component: c.component.clone(),
                host: format!("{address} (no results)"),
                file: String::new(),
                finished_at: String::new(),
                passed: 0,
                failed: 0,
                untested: 0,
            });
        }
    }
    let mut rows = rows;
    for row in &mut rows {
        if let Some(c) = coverage.iter().find(|c| c.component == row.id) {
            row.name = format!("{} ({} of {} hosts)", row.name, c.reported, c.total);
        }
    }
    Ok(ResultsMatrix {
        title: base.spec.system.clone(),
        facts,
        rows,
        columns,
        cells,
        hosts,
    })
}

/// How many of a component's hosts (its addresses in the deployment) sent
/// results.
struct Coverage {
    component: String,
    reported: usize,
    total: usize,
    /// The addresses no results came from.
    missing: Vec<IpAddr>,
}

/// The coverage of a component with more than one address, or with one
/// that sent nothing while another host of it reported. `None` when it has
/// at most one address and it reported, or when a results file does not
/// say which of the component's hosts it is (written before results
/// carried addresses).
fn coverage_of(inputs: &[ResultsInput], base: &HostResults, component: &str) -> Option<Coverage> {
    let addresses = &base
        .components
        .iter()
        .find(|c| c.id == component)?
        .addresses;
    let reporters: Vec<&HostResults> = inputs
        .iter()
        .map(|i| &i.results)
        .filter(|r| r.component == component)
        .collect();
    if addresses.len() < 2 || reporters.is_empty() {
        return None;
    }
    let mut covered: BTreeSet<IpAddr> = BTreeSet::new();
    for r in &reporters {
        match (r.from, r.addresses.as_slice()) {
            (Some(from), _) => {
                covered.insert(from);
            }
            (None, []) => return None,
            (None, held) => covered.extend(held.iter().copied()),
        }
    }
    let missing: Vec<IpAddr> = addresses
        .iter()
        .filter(|a| !covered.contains(a))
        .copied()
        .collect();
    Some(Coverage {
        component: component.to_owned(),
        reported: addresses.len() - missing.len(),
        total: addresses.len(),
        missing,
    })
}

/// Every check and untested entry must be of a flow the results list: one
/// that is not would be dropped from the matrix without a word.
fn ensure_known_flows(inputs: &[ResultsInput]) -> Result<(), ResultsError> {
    for input in inputs {
        let r = &input.results;
        let known = |id: &str| r.flows.iter().any(|f| f.id == id);
        let unknown = r
            .checks
            .iter()
            .map(|c| c.flow.as_str())
            .chain(r.untested.iter().map(|u| u.flow.as_str()))
            .find(|id| !known(id));
        if let Some(flow) = unknown {
            return Err(ResultsError::UnknownFlow {
                file: input.file.clone(),
                flow: flow.to_owned(),
            });
        }
        let axes = |id: &str| r.components.iter().chain(&r.externals).any(|a| a.id == id);
        if let Some(flow) = r.flows.iter().find(|f| !axes(&f.from) || !axes(&f.to)) {
            return Err(ResultsError::UnknownFlow {
                file: input.file.clone(),
                flow: flow.id.clone(),
            });
        }
    }
    Ok(())
}

fn ips_text(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portolan_probe::{OutcomeClass, ProbeDetails, ProbeOutcome, ProbeResult};

    use super::*;
    use crate::checks::tests::{loaded, DEPLOYMENT};
    use crate::document::{DeploymentIdentity, Settings, SpecIdentity, Summary};
    use crate::{derive_checks, CheckOptions, CheckRecord, UdpAgainst, RESULTS_FORMAT};

    /// `web`'s results with every probe open except the first (refused).
    fn web_results() -> HostResults {
        let (spec, plan) = loaded(DEPLOYMENT);
        let set = derive_checks(&spec, &plan, "web", &CheckOptions::default()).expect("derives");
        let checks: Vec<CheckRecord> = set
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| CheckRecord {
                flow: p.flow.clone(),
                to: p.to.clone(),
                required: p.required,
                proxy: None,
                result: ProbeResult {
                    spec: p.probe.clone(),
                    outcome: ProbeOutcome {
                        class: if i == 0 {
                            OutcomeClass::Refused
                        } else {
                            OutcomeClass::Open
                        },
                        os_error: (i == 0).then(|| "Connection refused (os error 111)".into()),
                        elapsed: Duration::from_millis(2),
                        attempts: 1,
                    },
                    details: ProbeDetails::default(),
                },
            })
            .collect();
        let (components, externals, flows) = HostResults::matrix_records(&spec, &plan);
        HostResults {
            format: RESULTS_FORMAT.into(),
            spec: SpecIdentity {
                system: "Demo".into(),
                file: "portolan.yaml".into(),
                sha256: "aa".repeat(32),
            },
            deployment: DeploymentIdentity {
                name: None,
                file: "deployment.yaml".into(),
                sha256: "bb".repeat(32),
            },
            component: "web".into(),
            host: "web-1".into(),
            from: None,
            addresses: Vec::new(),
            started_at: "2025-01-01T00:00:00.000Z".into(),
            finished_at: "2025-01-01T00:00:01.000Z".into(),
            settings: Settings {
                timeout_ms: 1000,
                retries: 0,
                concurrency: 16,
                udp: UdpAgainst::Listener,
                https_proxy: None,
            },
            components,
            externals,
            summary: Summary::of(&checks, &set.untested),
            flows,
            checks,
            untested: set.untested,
        }
    }

    fn input(file: &str, results: HostResults) -> ResultsInput {
        ResultsInput {
            file: file.into(),
            results,
        }
    }

    #[test]
    fn cells_follow_the_entries_and_silent_sources_are_untested() {
        let matrix = merge(&[input("web.json", web_results())], None).expect("merges");
        let rows: Vec<&str> = matrix.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(rows, ["web", "users"]);
        let status = |from: &str, to: &str| {
            let r = matrix.rows.iter().position(|a| a.id == from).expect("row");
            let c = matrix
                .columns
                .iter()
                .position(|a| a.id == to)
                .expect("column");
            matrix.cell(r, c).expect("cell").status()
        };
        assert_eq!(status("web", "db"), CellStatus::Fail, "refused 5432");
        assert_eq!(status("web", "cache"), CellStatus::Pass);
        assert_eq!(status("web", "slack"), CellStatus::Pass);
        assert_eq!(
            status("web", "aws"),
            CellStatus::Untested,
            "a wildcard pattern"
        );
        assert_eq!(status("web", "kube"), CellStatus::Untested);
        // Nobody checked as `users`: said so, not left blank.
        assert_eq!(status("users", "web"), CellStatus::Untested);
        let users = matrix
            .cells
            .iter()
            .find(|c| matrix.rows[c.row].id == "users")
            .expect("users cell");
        assert_eq!(
            users.entries[0].outcome,
            "no results from a host of `users`"
        );
        let db = matrix.cell(0, 1).expect("web->db");
        assert_eq!(db.tokens, ["T::5432", "I::", "U::*", "T::1-2000"]);
    }

    #[test]
    fn a_check_of_a_flow_the_file_does_not_list_is_refused() {
        let mut results = web_results();
        results.checks[0].flow = "web->ghost/tcp/1".into();
        let err = merge(&[input("web.json", results)], None).expect_err("unknown flow");
        assert!(matches!(err, ResultsError::UnknownFlow { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("web.json: flow `web->ghost/tcp/1`"));
    }

    #[test]
    fn a_component_s_silent_hosts_are_counted_listed_and_make_cells_partial() {
        let mut results = web_results();
        let (one, two): (IpAddr, IpAddr) = (
            "198.18.0.2".parse().expect("ip"),
            "198.18.0.9".parse().expect("ip"),
        );
        let web = results
            .components
            .iter_mut()
            .find(|c| c.id == "web")
            .expect("web");
        web.addresses = vec![one, two];
        results.addresses = vec![one];
        let matrix = merge(&[input("web.json", results)], None).expect("merges");
        assert!(
            matrix.rows[0].name.ends_with(" (1 of 2 hosts)"),
            "{:?}",
            matrix.rows[0]
        );
        let cache = matrix
            .columns
            .iter()
            .position(|c| c.id == "cache")
            .expect("cache");
        assert_eq!(
            matrix.cell(0, cache).expect("web->cache").status(),
            CellStatus::Partial,
            "every probe passed, but one host of web sent nothing"
        );
        let hosts: Vec<&str> = matrix.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(hosts, ["web-1 (198.18.0.2)", "198.18.0.9 (no results)"]);
    }

    #[test]
    fn files_of_another_spec_or_deployment_are_refused_by_name() {
        let good = web_results();
        let mut other = good.clone();
        other.spec.sha256 = "cc".repeat(32);
        let err = merge(
            &[input("a.json", good.clone()), input("b.json", other)],
            None,
        )
        .expect_err("another spec");
        assert!(
            err.to_string().starts_with(
                "b.json: results of another spec: it was checked against `Demo` with spec sha256 cccc"
            ),
            "{err}"
        );
        let err = merge(&[input("a.json", good.clone())], Some(("spec.yaml", "dd")))
            .expect_err("not the spec given");
        assert!(
            err.to_string().ends_with("but spec.yaml has sha256 dd"),
            "{err}"
        );
        let mut moved = good.clone();
        moved.deployment.sha256 = "ee".repeat(32);
        let err = merge(&[input("a.json", good), input("c.json", moved)], None)
            .expect_err("another deployment");
        assert!(
            err.to_string()
                .starts_with("c.json: results of another deployment"),
            "{err}"
        );
        assert!(matches!(merge(&[], None), Err(ResultsError::NoInput)));
    }
}
