//! The result of a lab run: every check with its verdict, the connection
//! matrix, and the JSON, JUnit and text forms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use portolan_probe::junit::{self, Case, Status, Suite};
use quick_junit::Report;
use serde::{Serialize, Serializer};

use crate::design::{Check, CheckKind, Expect, LabParameter, NotChecked, Role, Transport};

/// Whether a check holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A flow that must pass passed.
    Passed,
    /// A flow that must pass did not.
    Failed,
    /// A probe that must be blocked was blocked.
    Blocked,
    /// A probe that must be blocked got through.
    NotBlocked,
    /// The probe could not be made (the lab's problem, not the firewall's).
    Error,
}

impl Verdict {
    /// Whether the check holds.
    pub const fn holds(self) -> bool {
        matches!(self, Verdict::Passed | Verdict::Blocked)
    }

    /// A word for a person.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "FAILED",
            Verdict::Blocked => "blocked",
            Verdict::NotBlocked => "NOT BLOCKED",
            Verdict::Error => "ERROR",
        }
    }
}

/// A check and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check.
    #[serde(flatten)]
    pub check: Check,
    /// Whether it holds.
    pub verdict: Verdict,
    /// What the probe saw: `open`, `refused`, `filtered`, `unreachable`,
    /// `dns_failed`, `local_error`; for multicast `received` or `not_received`.
    pub outcome: String,
    /// Why it does not hold, or how it was blocked, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The system's error message, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_error: Option<String>,
    /// Attempts used.
    pub attempts: u32,
    /// Time taken.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    /// Addresses the lab DNS gave for the check's name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<IpAddr>,
    /// Multicast: the hosts that received the datagram.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub received_by: Vec<String>,
    /// What settled the probe: `trace` (a trace event of the drop),
    /// `answer` (a connection, echo, refusal or local error) or `timeout`.
    pub settled_by: Settled,
    /// The rule (or chain policy) that decided the probe's packet, from the
    /// trace events: the drop, or else the receiver's accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<DecidingRule>,
}

/// What settled a probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// An answer came (or a local error), or there was nothing to wait for.
    #[default]
    Answer,
    /// A trace event of the drop.
    Trace,
    /// Silence until the timeout.
    Timeout,
}

/// The rule that decided a packet, as the kernel's trace named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecidingRule {
    /// The host, table, chain, rule handle or policy, and verdict.
    #[serde(flatten)]
    pub hop: crate::trace::Hop,
    /// The rule's text (`nft -a list`), without its comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The rule's comment (the flow id for generated rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// All of it in words, e.g. ``rule 17 `tcp dport 9000 accept` in chain
    /// input of table inet portolan on host db`` or `policy drop of chain
    /// input of table inet portolan on host db`.
    pub text: String,
}

/// How the run used nftables tracing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TracingSummary {
    /// Whether probes were decided by trace events.
    pub enabled: bool,
    /// Why not (turned off, or what the kernel refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Hosts whose ruleset was traced.
    pub traced_hosts: usize,
    /// Trace events read.
    pub events: u64,
    /// Times a trace socket overflowed and lost events.
    pub overruns: u64,
    /// Probes settled by a trace event of their drop.
    pub settled_by_trace: usize,
    /// Probes settled by a timeout (no answer and no drop event: the event
    /// was lost, the host is not traced, or something other than nftables
    /// dropped the packet).
    pub settled_by_timeout: usize,
}

impl TracingSummary {
    /// One line for a person.
    pub fn line(&self) -> String {
        if !self.enabled {
            return format!(
                "Verdicts by timeout only (tracing off: {}); {} probe(s) waited for a timeout",
                self.unavailable.as_deref().unwrap_or("not used"),
                self.settled_by_timeout
            );
        }
        let mut line = format!(
            "Verdicts traced in {} host(s): {} probe(s) settled by a drop event, {} by a timeout",
            self.traced_hosts, self.settled_by_trace, self.settled_by_timeout
        );
        if self.overruns > 0 {
            let _ = write!(
                line,
                " ({} trace buffer overrun(s): events were lost, those probes fell back to the timeout)",
                self.overruns
            );
        }
        line
    }
}

impl CheckResult {
    /// One line for a person: what was probed, and the verdict with its reason.
    pub fn line(&self) -> String {
        let c = &self.check;
        let what = match (&c.flow, c.kind) {
            (Some(flow), CheckKind::Flow) => flow.clone(),
            (Some(flow), CheckKind::FeatureOff) => format!(
                "{flow} (feature off: {})",
                c.condition.as_deref().unwrap_or("?")
            ),
            (_, kind) => kind.describe().to_owned(),
        };
        let target = match (&c.name, c.protocol) {
            (Some(name), _) => format!("{} {name} ({})", c.to_host, c.target_text()),
            (None, Transport::Multicast) => format!("group {}", c.target),
            (None, _) => format!("{} {}", c.to_host, c.target_text()),
        };
        let sport = c
            .source_port
            .map(|p| format!(" from port {p}"))
            .unwrap_or_default();
        let mut line = format!(
            "{what}: {} -> {target} {}/{}{sport}: {}",
            c.from_host,
            c.protocol.as_str(),
            c.family,
            self.verdict.as_str()
        );
        if let Some(reason) = &self.reason {
            let _ = write!(line, ", {reason}");
        }
        line
    }
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

/// How long each phase took.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Removing leftovers of killed runs.
    #[serde(rename = "cleanup_ms", serialize_with = "millis")]
    pub cleanup: Duration,
    /// Designing the run (hosts, deployment, plan, checks) and generating the rulesets.
    #[serde(rename = "plan_ms", serialize_with = "millis")]
    pub plan: Duration,
    /// Creating namespaces, bridge, links, addresses.
    #[serde(rename = "namespaces_ms", serialize_with = "millis")]
    pub namespaces: Duration,
    /// Loading the firewalls.
    #[serde(rename = "rules_ms", serialize_with = "millis")]
    pub rules: Duration,
    /// Binding listeners.
    #[serde(rename = "listeners_ms", serialize_with = "millis")]
    pub listeners: Duration,
    /// Resolving names through the lab DNS.
    #[serde(rename = "dns_ms", serialize_with = "millis")]
    pub dns: Duration,
    /// Probing.
    #[serde(rename = "probes_ms", serialize_with = "millis")]
    pub probes: Duration,
    /// Stopping listeners and deleting the lab.
    #[serde(rename = "teardown_ms", serialize_with = "millis")]
    pub teardown: Duration,
    /// The whole run.
    #[serde(rename = "total_ms", serialize_with = "millis")]
    pub total: Duration,
}

/// A host of the run.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// Host name.
    pub host: String,
    /// Network namespace (exists while the lab runs).
    pub namespace: String,
    /// What it stands for.
    pub role: Role,
    /// Its party in the matrix.
    pub party: String,
    /// Addresses.
    pub addresses: Vec<IpAddr>,
    /// Whether a generated firewall was loaded.
    pub firewall: bool,
    /// What it listened on.
    pub listening: Vec<String>,
    /// TCP connections its listeners accepted.
    pub tcp_accepted: u64,
    /// Token datagrams its listeners echoed.
    pub udp_answered: u64,
    /// Datagrams its listeners ignored for want of the run's token.
    pub udp_ignored: u64,
    /// Multicast token datagrams its receivers got.
    pub multicast_received: u64,
}

/// A name the lab DNS served.
#[derive(Debug, Clone, Serialize)]
pub struct DnsName {
    /// The name (patterns: the name probed for it).
    pub name: String,
    /// What the lab DNS answered.
    pub addresses: Vec<IpAddr>,
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Every check.
    pub checks: usize,
    /// Checks that hold.
    pub holding: usize,
    /// Flows (and multicast deliveries) that passed.
    pub passed: usize,
    /// Flows that did not pass.
    pub failed: usize,
    /// Negative probes blocked as required.
    pub blocked: usize,
    /// Negative probes that got through.
    pub not_blocked: usize,
    /// Negative probes that were ICMP echo requests (also counted in
    /// `blocked` or `not_blocked`).
    pub icmp_negative: usize,
    /// Probes that could not be made.
    pub errors: usize,
}

/// One cell of the connection matrix: the checks from one party to another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Flow checks that passed.
    pub passed: usize,
    /// Flow checks that failed.
    pub failed: usize,
    /// Negative checks blocked as required.
    pub blocked: usize,
    /// Negative checks that got through.
    pub not_blocked: usize,
    /// Checks that could not be made.
    pub errors: usize,
}

impl Cell {
    fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed => self.failed += 1,
            Verdict::Blocked => self.blocked += 1,
            Verdict::NotBlocked => self.not_blocked += 1,
            Verdict::Error => self.errors += 1,
        }
    }

    /// Whether every check of the cell holds.
    pub fn holds(&self) -> bool {
        self.failed == 0 && self.not_blocked == 0 && self.errors == 0
    }

    /// One symbol: `✓` flows pass (and the rest is blocked), `⊘` only
    /// blocked as required, `✗` something failed, `·` nothing checked.
    pub fn symbol(&self) -> &'static str {
        if !self.holds() {
            "✗"
        } else if self.passed > 0 {
            "✓"
        } else if self.blocked > 0 {
            "⊘"
        } else {
            "·"
        }
    }
}

/// The connection matrix: rows send, columns receive.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// Sending parties, in spec order.
    pub rows: Vec<String>,
    /// Receiving parties: components, the outside world, external endpoints.
    pub columns: Vec<String>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<Cell>>,
}

/// Everything a lab run found.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    /// The system's name.
    pub system: String,
    /// The run id (prefix of every namespace).
    pub run_id: String,
    /// Features enabled.
    pub features: Vec<String>,
    /// Features of the spec left off.
    pub features_off: Vec<String>,
    /// Instances of each system component.
    pub replicas: usize,
    /// The seed of the sampling.
    pub seed: u64,
    /// The hosts.
    pub hosts: Vec<HostReport>,
    /// Parameters without default given a lab value.
    pub lab_parameters: Vec<LabParameter>,
    /// The lab deployment file.
    pub deployment: String,
    /// Where the lab DNS served.
    pub dns_server: String,
    /// What the lab DNS answered.
    pub dns: Vec<DnsName>,
    /// What the nftables generator could not express.
    pub generate_warnings: Vec<String>,
    /// Listeners that could not be bound (the checks that needed them fail).
    pub listener_failures: Vec<String>,
    /// Every check with its verdict.
    pub results: Vec<CheckResult>,
    /// What could not be checked.
    pub not_checked: Vec<NotChecked>,
    /// How ports were sampled.
    pub samples: Vec<String>,
    /// Leftovers of killed runs removed before this one.
    pub stale_removed: Vec<String>,
    /// Namespaces named like a lab's that were left alone, with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale_kept: Vec<String>,
    /// Time per phase.
    pub timings: Timings,
    /// How verdicts were reached (trace events or timeouts).
    pub tracing: TracingSummary,
    /// Counts.
    pub summary: Summary,
    /// Connection matrix.
    pub matrix: Matrix,
}

impl LabReport {
    /// Whether every check holds and every listener was bound.
    pub fn holds(&self) -> bool {
        self.listener_failures.is_empty() && self.results.iter().all(|r| r.verdict.holds())
    }

    /// The checks that do not hold.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| !r.verdict.holds())
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising our own plain types cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report as JUnit: one suite per sending party, one case per check.
    pub fn junit(&self) -> Report {
        let mut suites: BTreeMap<&str, Suite> = BTreeMap::new();
        let order: Vec<&str> = self.matrix.rows.iter().map(String::as_str).collect();
        for result in &self.results {
            let c = &result.check;
            let suite = suites.entry(c.from.as_str()).or_insert_with(|| Suite {
                name: format!("portolan lab: from {}", c.from),
                cases: Vec::new(),
            });
            let status = if result.verdict.holds() {
                Status::Pass
            } else {
                Status::Failure {
                    message: result.line(),
                    kind: result.verdict.as_str().to_owned(),
                }
            };
            let name = format!(
                "{} {} {} -> {} {}/{}{}",
                c.probe,
                c.flow.as_deref().unwrap_or(c.kind.describe()),
                c.from_host,
                c.name.clone().unwrap_or_else(|| c.target_text()),
                c.protocol.as_str(),
                c.family,
                match c.expect {
                    Expect::Open => "",
                    Expect::Blocked => " (must be blocked)",
                }
            );
            suite.cases.push(Case {
                name,
                classname: format!("portolan.lab.{}", c.from),
                time: Some(result.elapsed),
                status,
            });
        }
        let mut ordered: Vec<(&str, Suite)> = suites.into_iter().collect();
        ordered.sort_by_key(|(party, _)| order.iter().position(|p| p == party));
        junit::report(
            &format!("portolan lab {}", self.system),
            ordered.into_iter().map(|(_, s)| s),
        )
    }

    /// The JUnit report as XML.
    pub fn junit_xml(&self) -> Result<String, quick_junit::SerializeError> {
        self.junit().to_string()
    }

    /// The report for a person: the matrix, the failures, what was not
    /// checked, counts and times.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let components = self
            .hosts
            .iter()
            .filter(|h| matches!(h.role, Role::Instance { .. }))
            .count();
        let externals = self
            .hosts
            .iter()
            .filter(|h| matches!(h.role, Role::External { .. } | Role::Proxy { .. }))
            .count();
        let _ = writeln!(
            out,
            "{}: lab {} with {} hosts ({components} component instances, the outside world, {externals} external endpoints)",
            self.system,
            self.run_id,
            self.hosts.len()
        );
        let features = if self.features_off.is_empty() && !self.features.is_empty() {
            format!("all ({})", self.features.join(", "))
        } else if self.features.is_empty() {
            "none".to_owned()
        } else {
            self.features.join(", ")
        };
        let _ = writeln!(out, "Features on: {features}");
        if !self.features_off.is_empty() {
            let _ = writeln!(
                out,
                "Features off (their flows must be blocked): {}",
                self.features_off.join(", ")
            );
        }
        if !self.lab_parameters.is_empty() {
            let values: Vec<String> = self
                .lab_parameters
                .iter()
                .map(|p| format!("{} = {}", p.id, p.value))
                .collect();
            let _ = writeln!(
                out,
                "Parameters without default, given a lab value: {}",
                values.join(", ")
            );
        }
        out.push('\n');
        self.render_matrix(&mut out);

        let failures: Vec<&CheckResult> = self.failures().collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "\nFailures ({}):", failures.len());
            for f in &failures {
                let _ = writeln!(out, "  ✗ {}", f.line());
            }
        }
        if !self.listener_failures.is_empty() {
            let _ = writeln!(
                out,
                "\nListeners that could not be bound ({}):",
                self.listener_failures.len()
            );
            for f in &self.listener_failures {
                let _ = writeln!(out, "  ✗ {f}");
            }
        }
        if !self.generate_warnings.is_empty() {
            let _ = writeln!(
                out,
                "\nGenerator warnings ({}):",
                self.generate_warnings.len()
            );
            for w in &self.generate_warnings {
                let _ = writeln!(out, "  {w}");
            }
        }
        if !self.not_checked.is_empty() {
            let _ = writeln!(out, "\nNot checked ({}):", self.not_checked.len());
            for n in &self.not_checked {
                let flow = n
                    .flow
                    .as_ref()
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default();
                let _ = writeln!(out, "  - {flow}{}: {}", n.what, n.reason);
            }
        }
        if !self.samples.is_empty() {
            let _ = writeln!(out, "\nSampled ports:");
            for s in &self.samples {
                let _ = writeln!(out, "  - {s}");
            }
        }
        if !self.dns.is_empty() {
            let names: Vec<String> = self
                .dns
                .iter()
                .map(|d| {
                    format!(
                        "{} = {}",
                        d.name,
                        d.addresses
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "\nLab DNS ({}): {} names resolved ({}{})",
                self.dns_server,
                self.dns.len(),
                names.iter().take(3).cloned().collect::<Vec<_>>().join("; "),
                if names.len() > 3 { "; …" } else { "" }
            );
        }
        let s = &self.summary;
        let flows = s.passed + s.failed;
        let negatives = s.blocked + s.not_blocked;
        let _ = writeln!(
            out,
            "\nChecks: {} — flows {}/{flows} passed, negative probes {}/{negatives} blocked{}{}",
            s.checks,
            s.passed,
            s.blocked,
            if s.icmp_negative > 0 {
                format!(" ({} of them ICMP echo)", s.icmp_negative)
            } else {
                String::new()
            },
            if s.errors > 0 {
                format!(", {} could not be made", s.errors)
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "{}", self.tracing.line());
        let t = &self.timings;
        let _ = writeln!(
            out,
            "Time: {:.2} s (cleanup {:.2}, plan {:.2}, namespaces {:.2}, rules {:.2}, listeners {:.2}, dns {:.2}, probes {:.2}, teardown {:.2})",
            t.total.as_secs_f64(),
            t.cleanup.as_secs_f64(),
            t.plan.as_secs_f64(),
            t.namespaces.as_secs_f64(),
            t.rules.as_secs_f64(),
            t.listeners.as_secs_f64(),
            t.dns.as_secs_f64(),
            t.probes.as_secs_f64(),
            t.teardown.as_secs_f64()
        );
        if self.holds() {
            let _ = writeln!(out, "Result: every check holds.");
        } else {
            let bad = failures.len() + self.listener_failures.len();
            let _ = writeln!(out, "Result: {bad} check(s) do not hold.");
        }
        out
    }

    fn render_matrix(&self, out: &mut String) {
        let m = &self.matrix;
        // External endpoints are folded into one column: a terminal is narrow.
        let externals: Vec<usize> = (0..m.columns.len())
            .filter(|&c| self.is_external(&m.columns[c]))
            .collect();
        let inner: Vec<usize> = (0..m.columns.len())
            .filter(|c| !externals.contains(c))
            .collect();
        let _ = writeln!(
            out,
            "Connection matrix (rows send to columns): ✓ flows pass and the rest is blocked · ⊘ blocked as required · ✗ a check fails · blank: nothing checked"
        );
        let width = m.rows.iter().map(|r| r.chars().count()).max().unwrap_or(0) + 4;
        let mut header = format!("{:width$}", "");
        for (n, _) in inner.iter().enumerate() {
            let _ = write!(header, "{:>3}", n + 1);
        }
        if !externals.is_empty() {
            header.push_str("  ext");
        }
        let _ = writeln!(out, "{}", header.trim_end());
        for (r, row) in m.rows.iter().enumerate() {
            let number = inner
                .iter()
                .position(|&c| &m.columns[c] == row)
                .map(|n| format!("{:>2} ", n + 1))
                .unwrap_or_else(|| "   ".to_owned());
            let mut line = format!("{number}{row:width$}", width = width - 3);
            for &c in &inner {
                let symbol = match m.cells[r][c].symbol() {
                    "·" => " ",
                    s => s,
                };
                let _ = write!(line, "{symbol:>3}");
            }
            if !externals.is_empty() {
                let mut folded = Cell::default();
                for &c in &externals {
                    let cell = m.cells[r][c];
                    folded.passed += cell.passed;
                    folded.failed += cell.failed;
                    folded.blocked += cell.blocked;
                    folded.not_blocked += cell.not_blocked;
                    folded.errors += cell.errors;
                }
                let symbol = match folded.symbol() {
                    "·" => " ",
                    s => s,
                };
                let _ = write!(line, "{symbol:>5}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if !externals.is_empty() {
            let mut lines = Vec::new();
            for &c in &externals {
                let mut cell = Cell::default();
                for row in &m.cells {
                    let x = row[c];
                    cell.passed += x.passed;
                    cell.failed += x.failed;
                    cell.blocked += x.blocked;
                    cell.not_blocked += x.not_blocked;
                    cell.errors += x.errors;
                }
                lines.push(format!("{} {}", cell.symbol(), m.columns[c]));
            }
            let _ = writeln!(out, "ext: {}", lines.join(", "));
        }
    }

    fn is_external(&self, party: &str) -> bool {
        self.hosts.iter().any(|h| {
            h.party == party && matches!(h.role, Role::External { .. } | Role::Proxy { .. })
        })
    }
}

/// Builds the matrix and the summary from the results.
pub(crate) fn tally(parties: &[(String, bool)], results: &[CheckResult]) -> (Matrix, Summary) {
    let rows: Vec<String> = parties
        .iter()
        .filter(|(_, sends)| *sends)
        .map(|(p, _)| p.clone())
        .collect();
    let columns: Vec<String> = parties.iter().map(|(p, _)| p.clone()).collect();
    let mut cells = vec![vec![Cell::default(); columns.len()]; rows.len()];
    let mut summary = Summary::default();
    for result in results {
        summary.checks += 1;
        if result.verdict.holds() {
            summary.holding += 1;
        }
        match result.verdict {
            Verdict::Passed => summary.passed += 1,
            Verdict::Failed => summary.failed += 1,
            Verdict::Blocked => summary.blocked += 1,
            Verdict::NotBlocked => summary.not_blocked += 1,
            Verdict::Error => summary.errors += 1,
        }
        if result.check.expect == Expect::Blocked && result.check.protocol == Transport::Icmp {
            summary.icmp_negative += 1;
        }
        let r = rows.iter().position(|p| *p == result.check.from);
        let c = columns.iter().position(|p| *p == result.check.to);
        if let (Some(r), Some(c)) = (r, c) {
            cells[r][c].add(result.verdict);
        }
    }
    (
        Matrix {
            rows,
            columns,
            cells,
        },
        summary,
    )
}

/// The verdict of a multicast check from who received it.
pub(crate) fn multicast_verdict(check: &Check, received: &[String]) -> (Verdict, Option<String>) {
    debug_assert_eq!(check.protocol, Transport::Multicast);
    match check.expect {
        Expect::Open => {
            let missing: Vec<&String> = check
                .receivers
                .iter()
                .filter(|r| !received.contains(r))
                .collect();
            if missing.is_empty() {
                (
                    Verdict::Passed,
                    Some(format!("received by {}", received.join(", "))),
                )
            } else {
                let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                (
                    Verdict::Failed,
                    Some(format!("timed out: not received by {}", missing.join(", "))),
                )
            }
        }
        Expect::Blocked => {
            if received.is_empty() {
                (Verdict::Blocked, Some("received by no host".to_owned()))
            } else {
                (
                    Verdict::NotBlocked,
                    Some(format!("received by {}", received.join(", "))),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::{Family, Transport};

    fn check(probe: &str, expect: Expect, from: &str, to: &str) -> Check {
        Check {
            probe: probe.to_owned(),
            kind: if expect == Expect::Open {
                CheckKind::Flow
            } else {
                CheckKind::NotGranted
            },
            expect,
            flow: (expect == Expect::Open).then(|| format!("{from}->{to}/tcp/80")),
            required: None,
            condition: None,
            from: from.to_owned(),
            to: to.to_owned(),
            from_host: format!("{from}-1"),
            to_host: format!("{to}-1"),
            protocol: Transport::Tcp,
            family: Family::Ipv4,
            target: "198.18.0.2:80".parse().expect("addr"),
            name: None,
            source_port: None,
            receivers: Vec::new(),
            note: None,
        }
    }

    fn result(check: Check, verdict: Verdict) -> CheckResult {
        CheckResult {
            check,
            verdict,
            outcome: "open".to_owned(),
            reason: None,
            os_error: None,
            attempts: 1,
            elapsed: Duration::from_millis(1),
            resolved: Vec::new(),
            received_by: Vec::new(),
            settled_by: Settled::default(),
            decided_by: None,
        }
    }

    #[test]
    fn the_matrix_counts_each_verdict_in_its_cell() {
        let parties = vec![
            ("web".to_owned(), true),
            ("db".to_owned(), true),
            ("slack".to_owned(), false),
        ];
        let results = vec![
            result(check("c1", Expect::Open, "web", "db"), Verdict::Passed),
            result(check("c2", Expect::Blocked, "db", "web"), Verdict::Blocked),
            result(
                check("c3", Expect::Blocked, "db", "web"),
                Verdict::NotBlocked,
            ),
            result(check("c4", Expect::Open, "web", "slack"), Verdict::Failed),
        ];
        let (m, s) = tally(&parties, &results);
        assert_eq!(
            m.rows,
            ["web", "db"],
            "endpoints that never send are no row"
        );
        assert_eq!(m.columns, ["web", "db", "slack"]);
        assert_eq!(m.cells[0][1].symbol(), "✓");
        assert_eq!(m.cells[1][0].symbol(), "✗");
        assert_eq!(m.cells[0][2].symbol(), "✗");
        assert_eq!(m.cells[1][1].symbol(), "·");
        assert_eq!(
            (
                s.checks,
                s.holding,
                s.passed,
                s.failed,
                s.blocked,
                s.not_blocked
            ),
            (4, 2, 1, 1, 1, 1)
        );
        let only_blocked = Cell {
            blocked: 3,
            ..Cell::default()
        };
        assert_eq!(only_blocked.symbol(), "⊘");
    }

    #[test]
    fn multicast_verdicts_need_every_receiver_or_none() {
        let mut c = check("m1", Expect::Open, "fd", "fd");
        c.protocol = Transport::Multicast;
        c.receivers = vec!["fd-1".into(), "fd-2".into()];
        let (v, _) = multicast_verdict(&c, &["fd-1".into(), "fd-2".into()]);
        assert_eq!(v, Verdict::Passed);
        let (v, reason) = multicast_verdict(&c, &["fd-1".into()]);
        assert_eq!(v, Verdict::Failed);
        assert!(reason.expect("reason").contains("fd-2"));
        c.expect = Expect::Blocked;
        c.receivers.clear();
        assert_eq!(multicast_verdict(&c, &[]).0, Verdict::Blocked);
        assert_eq!(
            multicast_verdict(&c, &["fd-1".into()]).0,
            Verdict::NotBlocked
        );
    }

    #[test]
    fn icmp_lines_have_no_port_and_negative_echoes_are_counted() {
        let mut c = check("c5", Expect::Blocked, "db", "web");
        c.kind = CheckKind::EchoNotGranted;
        c.protocol = Transport::Icmp;
        c.family = Family::Ipv6;
        c.target = "[fd00:706f:7274::2]:0".parse().expect("addr");
        let mut r = result(c, Verdict::NotBlocked);
        r.reason = Some("got through: the echo reply came back".into());
        assert_eq!(
            r.line(),
            "ICMP echo not granted to this source: db-1 -> web-1 fd00:706f:7274::2 icmp/ipv6: NOT BLOCKED, got through: the echo reply came back"
        );
        let parties = vec![("web".to_owned(), true), ("db".to_owned(), true)];
        let blocked = result(r.check.clone(), Verdict::Blocked);
        let (_, s) = tally(
            &parties,
            &[
                r,
                blocked,
                result(check("c1", Expect::Blocked, "db", "web"), Verdict::Blocked),
            ],
        );
        assert_eq!((s.blocked, s.not_blocked, s.icmp_negative), (2, 1, 2));
    }

    #[test]
    fn failure_lines_name_the_flow_the_hosts_and_the_reason() {
        let mut r = result(check("c1", Expect::Open, "api", "db"), Verdict::Failed);
        r.reason = Some("timed out after 3 attempt(s): dropped on the way".into());
        assert_eq!(
            r.line(),
            "api->db/tcp/80: api-1 -> db-1 198.18.0.2:80 tcp/ipv4: FAILED, timed out after 3 attempt(s): dropped on the way"
        );
    }
}
