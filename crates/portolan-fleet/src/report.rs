//! The fleet's report: every host (checked or not, and why), every host's
//! results merged into the connection matrix, the time of each phase.

use std::net::{IpAddr, SocketAddr};

use portolan_preflight::{merge, CheckRecord, HostResults, ResultsError, ResultsInput};
use portolan_probe::junit::{self, Case, Status, Suite};
use portolan_render::results::{HostSummary, ResultsMatrix};
use serde::Serialize;

use crate::hosts::Unreachable;
use crate::Phase;

/// The value of the `format` field of the JSON report.
pub const FLEET_FORMAT: &str = "portolan-fleet-results/1";

/// What became of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Logged in, listeners up, checks run, results collected.
    Checked,
    /// No SSH connection (refused, timed out, no route, name unknown).
    Unreachable,
    /// Connected, but the login was refused (keys, host key).
    LoginFailed,
    /// `--sudo` was asked and `sudo -n` does not work there.
    SudoRefused,
    /// Another operating system or architecture than this binary's.
    Unsupported,
    /// A step on the host failed (copy, listen, check, lost connection).
    Failed,
    /// Stopped by the operator before it was checked.
    Interrupted,
    /// There is no machine to log in to (an address block, or no inventory
    /// host runs the component).
    NotPlaced,
    /// Placed by DNS names only (a managed service, often): not logged in,
    /// which does not fail the preflight.
    NameOnly,
}

impl HostStatus {
    /// The status as the report's tables show it.
    pub const fn as_str(self) -> &'static str {
        match self {
            HostStatus::Checked => "checked",
            HostStatus::Unreachable => "UNREACHABLE",
            HostStatus::LoginFailed => "LOGIN FAILED",
            HostStatus::SudoRefused => "SUDO REFUSED",
            HostStatus::Unsupported => "UNSUPPORTED",
            HostStatus::Failed => "FAILED",
            HostStatus::Interrupted => "INTERRUPTED",
            HostStatus::NotPlaced => "NO HOST",
            HostStatus::NameOnly => "not logged in",
        }
    }
}

/// What a host's `portolan listen` for one component did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListenerReport {
    /// The component.
    pub component: String,
    /// Endpoints bound: `tcp 198.18.0.3:5432`.
    pub bound: Vec<String>,
    /// Endpoints already held by another process on the host (the
    /// product's service, presumably): probes to them reach that process.
    pub held: Vec<String>,
    /// UDP endpoints among [`ListenerReport::held`]: checks of flows to
    /// them run with `--udp service` semantics.
    #[serde(skip)]
    pub held_udp: Vec<(IpAddr, u16)>,
    /// Endpoints another component's listener on the same host already serves.
    pub shared: Vec<String>,
    /// Bind failures for other reasons, and errors, as printed.
    pub errors: Vec<String>,
    /// Its last line when stopped (`stopped: 3 TCP connection(s) accepted…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl ListenerReport {
    /// Reads `listen`'s lines; `ours` are the endpoints this host's other
    /// listeners already bound.
    pub fn from_lines(component: &str, lines: &[String], ours: &[String]) -> Self {
        let mut report = ListenerReport {
            component: component.to_owned(),
            ..Self::default()
        };
        for line in lines {
            if let Some(rest) = line.strip_prefix("listening ") {
                if let Some((endpoint, _)) = rest.split_once(" (") {
                    report.bound.push(endpoint.to_owned());
                } else {
                    report.bound.push(rest.to_owned());
                }
            } else if let Some(rest) = line.strip_prefix("cannot bind ") {
                let (endpoint, why) = rest.split_once(": ").unwrap_or((rest, ""));
                if why.starts_with("in use") {
                    if ours.iter().any(|o| o == endpoint) {
                        report.shared.push(endpoint.to_owned());
                    } else {
                        report.held.push(endpoint.to_owned());
                        if let Some(address) = endpoint.strip_prefix("udp ") {
                            if let Ok(sa) = address.parse::<SocketAddr>() {
                                report.held_udp.push((sa.ip(), sa.port()));
                            }
                        }
                    }
                } else {
                    report.errors.push(line.clone());
                }
            } else if line.starts_with("error: no port of") {
                // Said again by the bind failures above.
            } else if line.starts_with("error:") {
                report.errors.push(line.clone());
            }
        }
        report
    }

    /// Nothing bound because every port is already served (by the product
    /// or by this host's other listeners), and nothing else went wrong.
    pub fn all_taken(&self) -> bool {
        self.bound.is_empty()
            && self.errors.is_empty()
            && (!self.held.is_empty() || !self.shared.is_empty())
    }
}

/// One host in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostOutcome {
    /// Its name.
    pub name: String,
    /// What ssh was given.
    pub destination: String,
    /// How it was reached: `ssh admin@192.0.2.1 -p 2222`.
    pub reached: String,
    /// Where it comes from (deployment host, inventory line).
    pub origin: String,
    /// The components it runs.
    pub components: Vec<String>,
    /// What became of it.
    pub status: HostStatus,
    /// Why it was not checked, in ssh's (or the step's) own words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The private directory on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Where the binary came from: copied, or installed with the same SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// Its listeners.
    pub listeners: Vec<ListenerReport>,
    /// The components whose checks ran.
    pub checked: Vec<String>,
    /// `removed DIR`, `kept DIR`, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<String>,
}

impl HostOutcome {
    /// A row for something no machine could be found for.
    pub fn not_placed(u: Unreachable) -> Self {
        Self {
            name: u.name,
            destination: String::new(),
            reached: "not reached".to_owned(),
            origin: String::new(),
            components: u.components,
            status: if u.name_only {
                HostStatus::NameOnly
            } else {
                HostStatus::NotPlaced
            },
            reason: Some(u.reason),
            dir: None,
            binary: None,
            listeners: Vec::new(),
            checked: Vec::new(),
            cleanup: None,
        }
    }
}

/// How long a phase took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PhaseTiming {
    /// The phase.
    pub phase: Phase,
    /// Seconds.
    pub seconds: f64,
}

/// The whole preflight.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The system's name.
    pub system: String,
    /// The spec file as given.
    pub spec_file: String,
    /// Its SHA-256: every host's results must carry it.
    pub spec_sha256: String,
    /// Every host, checked or not.
    pub hosts: Vec<HostOutcome>,
    /// Inventory hosts that run no component (not contacted).
    pub idle: Vec<String>,
    /// Every host's results, per component.
    #[serde(serialize_with = "results_only")]
    pub results: Vec<ResultsInput>,
    /// The negative probes, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative: Option<NegativeReport>,
    /// Time per phase.
    pub phases: Vec<PhaseTiming>,
    /// Whether the operator interrupted it.
    pub interrupted: bool,
}

/// The negative probes (`--negative`) and what they found.
#[derive(Debug, Clone, Serialize)]
pub struct NegativeReport {
    /// Negative flows derived (each probed on every address of its destination).
    pub flows: usize,
    /// Every sending host's results of the negative spec.
    #[serde(serialize_with = "results_only")]
    pub results: Vec<ResultsInput>,
}

impl NegativeReport {
    /// Probes sent, and the admitted ones with the host that sent them.
    pub fn admitted(&self) -> (usize, Vec<(&str, &CheckRecord)>) {
        let mut sent = 0;
        let mut admitted = Vec::new();
        for input in &self.results {
            for check in &input.results.checks {
                sent += 1;
                if crate::negative::admitted(check) {
                    admitted.push((input.results.host.as_str(), check));
                }
            }
        }
        (sent, admitted)
    }

    /// `12 of 12 blocked`, or how many were admitted and the first of them.
    pub fn text(&self) -> String {
        let (sent, admitted) = self.admitted();
        if admitted.is_empty() {
            return format!("{sent} of {sent} blocked");
        }
        let first: Vec<String> = admitted
            .iter()
            .take(10)
            .map(|(host, c)| {
                format!(
                    "{} from {host}: {}",
                    portolan_preflight::probe_text(c),
                    c.result.outcome.class
                )
            })
            .collect();
        format!(
            "{} of {sent} ADMITTED (excess openings): {}{}",
            admitted.len(),
            first.join("; "),
            if admitted.len() > 10 { "; …" } else { "" }
        )
    }
}

fn results_only<S: serde::Serializer>(inputs: &[ResultsInput], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(inputs.iter().map(|i| &i.results))
}

impl FleetReport {
    /// Whether every host was checked and every probe of a required flow
    /// passed.
    pub fn passed(&self) -> bool {
        !self.interrupted
            && self
                .hosts
                .iter()
                .all(|h| matches!(h.status, HostStatus::Checked | HostStatus::NameOnly))
            && self.results.iter().all(|r| r.results.passed(false))
            && self
                .negative
                .as_ref()
                .is_none_or(|n| n.admitted().1.is_empty())
    }

    /// Hosts checked and hosts in all.
    pub fn coverage(&self) -> (usize, usize) {
        let checked = self
            .hosts
            .iter()
            .filter(|h| h.status == HostStatus::Checked)
            .count();
        (checked, self.hosts.len())
    }

    /// For a component: hosts that checked it and hosts that run it.
    pub fn component_coverage(&self, component: &str) -> (usize, usize) {
        let runs: Vec<&HostOutcome> = self
            .hosts
            .iter()
            .filter(|h| {
                !matches!(h.status, HostStatus::NotPlaced | HostStatus::NameOnly)
                    && h.components.iter().any(|c| c == component)
            })
            .collect();
        let checked = runs
            .iter()
            .filter(|h| h.status == HostStatus::Checked)
            .count();
        (checked, runs.len())
    }

    /// The connection matrix of every host's results; `template` gives the
    /// matrix's axes and flows when no host sent results. Rows and columns
    /// of components say on how many of their hosts they were checked; the
    /// host list has one row per host, checked or not.
    pub fn matrix(&self, template: &HostResults) -> Result<ResultsMatrix, ResultsError> {
        let expected = Some((self.spec_file.as_str(), self.spec_sha256.as_str()));
        let mut matrix = if self.results.is_empty() {
            let mut empty = template.clone();
            empty.component = String::new();
            let mut m = merge(
                &[ResultsInput {
                    file: String::new(),
                    results: empty,
                }],
                expected,
            )?;
            m.hosts.clear();
            m.facts.retain(|(k, _)| k != "Results");
            m
        } else {
            merge(&self.results, expected)?
        };
        for axis in matrix.rows.iter_mut().chain(matrix.columns.iter_mut()) {
            if template.components.iter().any(|c| c.id == axis.id) {
                let (checked, all) = self.component_coverage(&axis.id);
                axis.name = match all {
                    0 => format!("{} (no host)", axis.name),
                    _ => format!("{} ({checked} of {all} hosts)", axis.name),
                };
            }
        }
        let (checked, all) = self.coverage();
        matrix.facts.push((
            "Hosts".to_owned(),
            format!("{checked} of {all} checked over SSH"),
        ));
        let held: Vec<String> = self
            .hosts
            .iter()
            .flat_map(|h| {
                h.listeners
                    .iter()
                    .flat_map(move |l| l.held.iter().map(move |e| format!("{e} on {}", h.name)))
            })
            .collect();
        if !held.is_empty() {
            matrix.facts.push((
                "Already in use".to_owned(),
                format!(
                    "{}: probed against the process holding them (the product's service?), UDP with --udp service semantics",
                    held.join(", ")
                ),
            ));
        }
        if let Some(negative) = &self.negative {
            matrix
                .facts
                .push(("Negative probes".to_owned(), negative.text()));
        }
        if !self.phases.is_empty() {
            matrix.facts.push(("Phases".to_owned(), self.phases_text()));
        }
        if self.interrupted {
            matrix.facts.push((
                "Interrupted".to_owned(),
                "yes: the results are incomplete".to_owned(),
            ));
        }
        // Hosts without results of their own: not checked, or only listening.
        for h in self
            .hosts
            .iter()
            .filter(|h| h.status != HostStatus::Checked || h.checked.is_empty())
        {
            matrix.hosts.push(HostSummary {
                component: h.components.join(", "),
                host: h.name.clone(),
                file: h.reached.clone(),
                finished_at: match h.status {
                    HostStatus::Checked => "listened (sends no flow)".to_owned(),
                    other => format!("{}: {}", other.as_str(), h.reason.as_deref().unwrap_or("")),
                },
                passed: 0,
                failed: 0,
                untested: 0,
            });
        }
        Ok(matrix)
    }

    /// `connect 0.31 s, prepare 1.20 s, …`.
    pub fn phases_text(&self) -> String {
        self.phases
            .iter()
            .map(|p| format!("{} {:.2} s", p.phase.as_str(), p.seconds))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The report as JSON (`format`: [`FLEET_FORMAT`]), ending with a newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        #[derive(Serialize)]
        struct Document<'a> {
            format: &'static str,
            passed: bool,
            #[serde(flatten)]
            report: &'a FleetReport,
        }
        let mut json = serde_json::to_string_pretty(&Document {
            format: FLEET_FORMAT,
            passed: self.passed(),
            report: self,
        })?;
        json.push('\n');
        Ok(json)
    }

    /// JUnit XML: a suite `hosts` with one case per host (a failure unless
    /// checked), then each host's results as `portolan check` writes them.
    pub fn junit(&self) -> Result<String, portolan_probe::Error> {
        let name = format!("portolan preflight {}", self.system);
        let hosts = Suite {
            name: "hosts".to_owned(),
            cases: self
                .hosts
                .iter()
                .map(|h| Case {
                    name: format!("{} ({})", h.name, h.reached),
                    classname: "portolan.preflight.hosts".to_owned(),
                    time: None,
                    status: if h.status == HostStatus::Checked {
                        Status::Pass
                    } else {
                        Status::Failure {
                            message: format!(
                                "{}: {}",
                                h.status.as_str(),
                                h.reason.as_deref().unwrap_or("")
                            ),
                            kind: h.status.as_str().to_owned(),
                        }
                    },
                })
                .collect(),
        };
        let negative = self.negative.as_ref().map(|n| Suite {
            name: "negative probes".to_owned(),
            cases: n
                .results
                .iter()
                .flat_map(|i| i.results.checks.iter().map(move |c| (i, c)))
                .map(|(i, c)| Case {
                    name: format!("{} from {}", c.result.spec.id, i.results.host),
                    classname: format!("portolan.preflight.negative.{}", i.results.component),
                    time: Some(c.result.outcome.elapsed),
                    status: if crate::negative::admitted(c) {
                        Status::Failure {
                            message: format!(
                                "admitted: {} {} (no flow grants it)",
                                portolan_preflight::probe_text(c),
                                c.result.outcome.class
                            ),
                            kind: c.result.outcome.class.name().to_owned(),
                        }
                    } else {
                        Status::Pass
                    },
                })
                .collect(),
        });
        let suites = std::iter::once(hosts)
            .chain(
                self.results
                    .iter()
                    .map(|i| portolan_preflight::junit_suite(&i.results)),
            )
            .chain(negative);
        let report = junit::report(&name, suites);
        Ok(report.to_string()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_lines_sort_ours_held_and_errors() {
        let lines: Vec<String> = [
            "listening tcp 198.18.0.3:5432 (api->db/tcp/5432)",
            "cannot bind tcp 198.18.0.3:80: in use: Address already in use (os error 98) (api->db/tcp/80)",
            "cannot bind udp 198.18.0.3:53: in use: Address already in use (os error 98) (api->db/udp/53)",
            "cannot bind tcp 198.18.0.3:8080: in use: Address already in use (os error 98) (x)",
            "cannot bind tcp 198.18.0.3:81: not permitted (a privileged port?): Permission denied (os error 13) (y)",
            "ready: 1 endpoint(s) of `db` bound, 4 failed; serving until Ctrl-C",
        ]
        .map(String::from)
        .to_vec();
        let ours = vec!["tcp 198.18.0.3:8080".to_owned()];
        let r = ListenerReport::from_lines("db", &lines, &ours);
        assert_eq!(r.bound, ["tcp 198.18.0.3:5432"]);
        assert_eq!(r.held, ["tcp 198.18.0.3:80", "udp 198.18.0.3:53"]);
        assert_eq!(r.held_udp, [("198.18.0.3".parse().expect("ip"), 53)]);
        assert_eq!(r.shared, ["tcp 198.18.0.3:8080"]);
        assert_eq!(r.errors.len(), 1);
        assert!(!r.all_taken());
        let taken = ListenerReport::from_lines("db", &lines[1..3], &[]);
        assert!(taken.all_taken());
    }
}
