//! The results document a host writes (`portolan check --format json`), and
//! its JUnit form.

use std::net::IpAddr;

use portolan_probe::junit::{self, Case, Status, Suite};
use portolan_probe::{ProbeResult, Protocol};
use portolan_spec::plan::Plan;
use portolan_spec::Spec;
use serde::{Deserialize, Serialize};

use crate::checks::{UdpAgainst, Untested};
use crate::ResultsError;

/// The value of [`HostResults::format`]: what `portolan report` accepts.
pub const RESULTS_FORMAT: &str = "portolan-preflight-results/1";

/// The spec a host checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecIdentity {
    /// The system's name.
    pub system: String,
    /// The spec file as given on the command line.
    pub file: String,
    /// SHA-256 of the spec file.
    pub sha256: String,
}

/// The deployment a host checked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentIdentity {
    /// The deployment's name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The deployment file as given on the command line.
    pub file: String,
    /// SHA-256 of the deployment file.
    pub sha256: String,
}

/// How the probes ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Time allowed for one attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Further attempts after a timeout.
    pub retries: u32,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Who answered UDP probes to components.
    pub udp: UdpAgainst,
    /// The HTTP proxy of `HTTPS_PROXY`, if TLS probes used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,
}

/// A row or column of the matrix: a component or external endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxisRecord {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// A component's single addresses in the deployment: its hosts, which
    /// a report expects results from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
}

/// A flow of the plan, as the report draws it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Flow id.
    pub id: String,
    /// Source component id.
    pub from: String,
    /// Destination id.
    pub to: String,
    /// Whether it is required.
    pub required: bool,
    /// Matrix notation (`T::5432`, `U:8112:8112`).
    pub tokens: Vec<String>,
}

/// One probe and the flow it checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Flow id.
    pub flow: String,
    /// Destination id.
    pub to: String,
    /// Whether the flow is required.
    pub required: bool,
    /// The proxy the probe went through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// What the probe found.
    pub result: ProbeResult,
}

/// Counts over a host's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Probes run.
    pub probes: usize,
    /// Probes that passed.
    pub passed: usize,
    /// Probes that did not pass.
    pub failed: usize,
    /// Probes of required flows that did not pass.
    pub required_failed: usize,
    /// Entries of flows (or parts) not probed.
    pub untested: usize,
    /// Untested entries of required flows.
    pub required_untested: usize,
}

impl Summary {
    /// Counts a host's checks and untested flows.
    pub fn of(checks: &[CheckRecord], untested: &[Untested]) -> Self {
        let failed: Vec<&CheckRecord> = checks.iter().filter(|c| !c.result.is_pass()).collect();
        Self {
            probes: checks.len(),
            passed: checks.len() - failed.len(),
            failed: failed.len(),
            required_failed: failed.iter().filter(|c| c.required).count(),
            untested: untested.len(),
            required_untested: untested.iter().filter(|u| u.required).count(),
        }
    }
}

/// What one host found, as written by `portolan check --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostResults {
    /// Always [`RESULTS_FORMAT`].
    pub format: String,
    /// The spec checked against.
    pub spec: SpecIdentity,
    /// The deployment checked with.
    pub deployment: DeploymentIdentity,
    /// The component this host checked as.
    pub component: String,
    /// The host's name.
    pub host: String,
    /// The address the probes were sent from, if one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpAddr>,
    /// The component's addresses that are on this host (which of its hosts
    /// this one is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
    /// When probing started (RFC 3339, UTC).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// How the probes ran.
    pub settings: Settings,
    /// Every component of the spec, in matrix order.
    pub components: Vec<AxisRecord>,
    /// Every external endpoint of the spec.
    pub externals: Vec<AxisRecord>,
    /// Every flow of the plan (of every component), so that a report can
    /// show what no host checked.
    pub flows: Vec<FlowRecord>,
    /// The probes of this host.
    pub checks: Vec<CheckRecord>,
    /// This host's flows that were not probed, and why.
    pub untested: Vec<Untested>,
    /// Counts.
    pub summary: Summary,
}

impl HostResults {
    /// The axes and flows of the matrix, from the spec and plan.
    pub fn matrix_records(
        spec: &Spec,
        plan: &Plan,
    ) -> (Vec<AxisRecord>, Vec<AxisRecord>, Vec<FlowRecord>) {
        let components = spec
            .components
            .iter()
            .map(|c| AxisRecord {
                id: c.id.clone(),
                name: c.name.clone(),
                addresses: plan
                    .component(&c.id)
                    .map(crate::checks::single_addresses)
                    .unwrap_or_default(),
            })
            .collect();
        let externals = spec
            .externals
            .iter()
            .map(|e| AxisRecord {
                id: e.id.clone(),
                name: e.name.clone(),
                addresses: Vec::new(),
            })
            .collect();
        let flows = plan
            .flows
            .iter()
            .map(|f| FlowRecord {
                id: f.id.clone(),
                from: f.from.id.clone(),
                to: f.to.id.clone(),
                required: f.required,
                tokens: portolan_render::flow_tokens(spec, &spec.flows[f.flow]),
            })
            .collect();
        (components, externals, flows)
    }

    /// Whether every probe of a required flow passed (untested flows do not
    /// count, unless `strict`).
    pub fn passed(&self, strict: bool) -> bool {
        self.summary.required_failed == 0 && (!strict || self.summary.required_untested == 0)
    }

    /// Pretty-printed JSON, ending with a newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        Ok(json)
    }
}

/// Reads a results document; `file` names it in errors. Broken JSON gives
/// serde's line and column; JSON without the right `format` is
/// [`ResultsError::NotResults`].
pub fn read_results(file: &str, text: &str) -> Result<HostResults, ResultsError> {
    match serde_json::from_str::<HostResults>(text) {
        Ok(results) if results.format == RESULTS_FORMAT => Ok(results),
        Ok(results) => Err(ResultsError::NotResults {
            file: file.to_owned(),
            expected: RESULTS_FORMAT,
            found: format!(", found {:?}", results.format),
        }),
        Err(error) => {
            // Valid JSON of another shape: say what it is not, rather than
            // which field is missing.
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
                let format = value.get("format").and_then(|f| f.as_str());
                if format != Some(RESULTS_FORMAT) {
                    return Err(ResultsError::NotResults {
                        file: file.to_owned(),
                        expected: RESULTS_FORMAT,
                        found: match format {
                            Some(f) => format!(", found {f:?}"),
                            None => ", found no format".to_owned(),
                        },
                    });
                }
            }
            Err(ResultsError::Json {
                file: file.to_owned(),
                message: error.to_string(),
            })
        }
    }
}

/// The results as JUnit XML: one test suite for the host, one test case per
/// probe (a failure unless it passed; failures of optional flows are
/// reported as skipped, as they do not fail the check) and one skipped test
/// case per flow not probed.
pub fn junit_xml(results: &HostResults) -> Result<String, portolan_probe::Error> {
    let suite = junit_suite(results);
    let name = suite.name.clone();
    Ok(junit::report(&name, [suite]).to_string()?)
}

/// The test suite of [`junit_xml`], for reports that gather many hosts.
pub fn junit_suite(results: &HostResults) -> Suite {
    let name = format!("portolan check {} on {}", results.component, results.host);
    let probed = results.checks.iter().map(|check| {
        let result = &check.result;
        let message = result.summary();
        Case {
            name: result.spec.id.clone(),
            classname: format!(
                "portolan.{}.{}",
                results.component,
                result.spec.protocol.name()
            ),
            time: Some(result.outcome.elapsed),
            status: if result.is_pass() {
                Status::Pass
            } else if check.required {
                Status::Failure {
                    message,
                    kind: result.outcome.class.name().to_owned(),
                }
            } else {
                Status::Skipped {
                    message: format!("optional flow: {message}"),
                }
            },
        }
    });
    let untested = results.untested.iter().map(|u| Case {
        name: u.flow.clone(),
        classname: format!("portolan.{}.untested", results.component),
        time: None,
        status: Status::Skipped {
            message: format!("not probed: {}", u.reason),
        },
    });
    Suite {
        name,
        cases: probed.chain(untested).collect(),
    }
}

/// A short description of what a probe does, for tables: `tcp 198.18.0.3:5432`,
/// `icmp 198.18.0.3`.
pub fn probe_text(check: &CheckRecord) -> String {
    let spec = &check.result.spec;
    let mut text = format!("{} {}", spec.protocol.name(), spec.target_text());
    if let Protocol::Tls { sni: Some(sni) } = &spec.protocol {
        if *sni != spec.target.host_str() {
            text.push_str(&format!(" (SNI {sni})"));
        }
    }
    if let Some(port) = spec.source_port {
        text.push_str(&format!(" from port {port}"));
    }
    if let Some(proxy) = &check.proxy {
        text.push_str(&format!(" via proxy {proxy}"));
    }
    text
}

/// Facts gathered by a probe, for tables and tooltips: the OS error, time
/// and attempts, DNS, TLS and multicast responders.
pub fn detail_text(check: &CheckRecord) -> String {
    let result = &check.result;
    let outcome = &result.outcome;
    let details = &result.details;
    let mut parts = Vec::new();
    if let Some(e) = &outcome.os_error {
        parts.push(e.clone());
    }
    parts.push(format!(
        "{:.1} ms, {} attempt(s)",
        outcome.elapsed.as_secs_f64() * 1000.0,
        outcome.attempts
    ));
    if let Some(dns) = details.dns_time {
        let addrs: Vec<String> = details.resolved.iter().map(ToString::to_string).collect();
        parts.push(format!(
            "DNS {:.1} ms → {}",
            dns.as_secs_f64() * 1000.0,
            if addrs.is_empty() {
                "nothing".to_owned()
            } else {
                addrs.join(", ")
            }
        ));
    }
    if let Some(tls) = &details.tls {
        let mut t = Vec::new();
        if let Some(v) = &tls.version {
            t.push(v.clone());
        }
        if let Some(issuer) = &tls.issuer {
            t.push(format!("issuer {issuer}"));
        }
        t.push(if tls.verified {
            "chain verified".to_owned()
        } else {
            format!(
                "chain NOT verified{}",
                tls.verify_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        });
        parts.push(format!("TLS {}", t.join(", ")));
    }
    if !details.responders.is_empty() {
        let r: Vec<String> = details.responders.iter().map(ToString::to_string).collect();
        parts.push(format!("answered by {}", r.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_documents_are_named_with_the_reason() {
        let err = read_results("a.json", "{\"format\": ").expect_err("broken");
        assert_eq!(
            err.to_string(),
            "a.json: broken JSON: EOF while parsing a value at line 1 column 11"
        );
        let err = read_results("b.json", "[1, 2]").expect_err("not results");
        assert_eq!(
            err.to_string(),
            "b.json: not a Portolan results file (expected \"format\": \"portolan-preflight-results/1\", found no format)"
        );
        let err = read_results(
            "c.json",
            "{\"format\": \"portolan-preflight-results/1\", \"spec\": 3}",
        )
        .expect_err("wrong shape");
        assert!(
            err.to_string()
                .starts_with("c.json: broken JSON: invalid type: integer `3`"),
            "{err}"
        );
    }
}
