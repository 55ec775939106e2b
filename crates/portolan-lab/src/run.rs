//! A whole lab run: design, build, load the firewalls, listen, probe, tear
//! down, report. See [`run_lab`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portolan_firewall::nftables::Nftables;
use portolan_firewall::{Options as GenerateOptions, Policy, Target as _};
use portolan_spec::{ErrorKind, Spec};
use tokio::sync::oneshot;

use crate::agent::{Agent, AgentConfig, Bound, Command, Receipts};
use crate::design::{design, DesignError, LabDesign, LabEvent, LabOptions, Phase, Role, Transport};
use crate::error::LabError;
use crate::lab::{find_program, Lab};
use crate::load::{check_rulesets, firewalled_hosts, load_rulesets, Rulesets};
use crate::probes::{probe_all, raise_open_files_limit};
use crate::report::{
    tally, CheckResult, DnsName, HostReport, LabReport, Settled, Timings, TracingSummary, Verdict,
};
use crate::rules::{RulesFile, RulesFormat, UserRules};
use crate::trace::{HopVerdict, Tracer};

/// Why a lab run could not be carried out (a failing check is not an
/// error: it is in the [`LabReport`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The spec and options do not make a lab (unknown feature, …).
    #[error(transparent)]
    Design(#[from] DesignError),
    /// The lab could not be built or used (privileges, `nft` missing, …).
    #[error(transparent)]
    Lab(#[from] LabError),
    /// The rulesets of a directory do not fit the deployment's hosts, or
    /// their loader refuses them (nothing was loaded).
    #[error("{0}")]
    Rules(String),
    /// The nftables generator refused the lab deployment (a bug).
    #[error("internal error: the nftables generator cannot serve the lab deployment: {0}")]
    Generate(String),
}

impl RunError {
    /// Whose the fault is. Inside a run, the lab names its own hosts and
    /// namespaces, so every [`LabError`] is this machine's (or a bug), even
    /// one that [`LabError::kind`] would call input; rulesets given that do
    /// not fit or do not load are the user's.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RunError::Design(e) => e.kind(),
            RunError::Rules(_) => ErrorKind::Input,
            RunError::Lab(_) => ErrorKind::Environment,
            RunError::Generate(_) => ErrorKind::Internal,
        }
    }
}

/// What a run produced besides its report: the lab deployment and the
/// rulesets as loaded, for `--keep`.
#[derive(Debug, Clone)]
pub struct LabArtifacts {
    /// `lab-deployment.yaml`.
    pub deployment: String,
    /// `(file name, ruleset as loaded)`, e.g. `("api.nft", …)`, in the
    /// order of the hosts.
    pub rulesets: Vec<(String, String)>,
}

/// Runs the lab for `spec`: removes leftovers of killed runs, designs the
/// run ([`design`]), generates one nftables ruleset per component from the
/// lab deployment's plan and loads it into every instance of the component
/// (default policy drop), binds the listeners, resolves the external
/// endpoints' names through the lab DNS, probes, tears everything down and
/// reports.
///
/// The lab is torn down on every path out of this function, errors
/// included; a process killed meanwhile leaves namespaces that the next run
/// removes (see [`crate::cleanup_stale`]). For Ctrl-C, call
/// [`crate::cleanup_registered`] from the signal handler.
///
/// Blocks the calling thread; it must not be inside a tokio runtime.
pub fn run_lab(spec: &Spec, options: &LabOptions) -> Result<(LabReport, LabArtifacts), RunError> {
    let started = Instant::now();
    let emit = |event: LabEvent| {
        if let Some(progress) = &options.progress {
            progress(event);
        }
    };
    let mut timings = Timings::default();

    emit(LabEvent::Phase(Phase::Cleanup));
    crate::privileges::check_privileges()?;
    if find_program("nft").is_none() {
        return Err(LabError::NftMissing.into());
    }
    raise_open_files_limit();
    let t = Instant::now();
    let stale = crate::cleanup::cleanup_stale(crate::topology::RESOURCE_PREFIX)?;
    let mut stale_removed: Vec<String> = stale.namespaces.clone();
    stale_removed.extend(stale.lock_files.iter().map(|p| p.display().to_string()));
    let mut stale_kept: Vec<String> = stale
        .in_use
        .iter()
        .map(|n| format!("{n} (an earlier run's, with a process still inside)"))
        .collect();
    stale_kept.extend(
        stale
            .not_ours
            .iter()
            .map(|n| format!("{n} (no lab recorded it as its own)")),
    );
    timings.cleanup = t.elapsed();

    emit(LabEvent::Phase(Phase::Plan));
    let t = Instant::now();
    let design = design(spec, options)?;
    let rulesets = match &options.rules {
        Some(rules) => user_rulesets(&design, rules, options)?,
        None => generated_rulesets(&design, options)?,
    };
    let (rulesets, generate_warnings) = rulesets;
    timings.plan = t.elapsed();

    emit(LabEvent::Phase(Phase::Namespaces));
    let t = Instant::now();
    let lab = Lab::create(with_talking(&design))?;
    timings.namespaces = t.elapsed();

    let outcome = in_lab(&lab, &design, &rulesets, options, &mut timings);

    emit(LabEvent::Phase(Phase::Teardown));
    let t = Instant::now();
    let destroyed = lab.destroy();
    timings.teardown = t.elapsed();
    let (results, hosts, listener_failures, dns, tracing) = outcome?;
    destroyed?;
    timings.total = started.elapsed();

    let artifacts = LabArtifacts {
        deployment: design.deployment_yaml.clone(),
        rulesets: ruleset_names(&design)
            .iter()
            .filter_map(|name| rulesets.get(name))
            .flatten()
            .map(|f| (f.file_name(), f.text.clone()))
            .collect(),
    };
    let mut parties: Vec<(String, bool)> = Vec::new();
    for node in &design.nodes {
        if !parties.iter().any(|(p, _)| *p == node.party) {
            parties.push((
                node.party.clone(),
                !matches!(node.role, Role::External { .. } | Role::Proxy { .. }),
            ));
        }
    }
    let (matrix, summary) = tally(&parties, &results);
    let report = LabReport {
        system: design.system.clone(),
        run_id: design.topology.run_id().to_string(),
        features: design.features.clone(),
        features_off: spec
            .features
            .iter()
            .filter(|f| !design.features.contains(&f.id))
            .map(|f| f.id.clone())
            .collect(),
        replicas: design.replicas,
        seed: design.seed,
        hosts,
        lab_parameters: design.lab_parameters.clone(),
        deployment: design.deployment_yaml.clone(),
        dns_server: design.dns_server.to_string(),
        dns,
        generate_warnings,
        listener_failures,
        results,
        not_checked: design.not_checked.clone(),
        samples: design.samples.clone(),
        stale_removed,
        stale_kept,
        timings,
        tracing,
        summary,
        matrix,
    };
    Ok((report, artifacts))
}

type InLab = (
    Vec<CheckResult>,
    Vec<HostReport>,
    Vec<String>,
    Vec<DnsName>,
    TracingSummary,
);

/// Everything done while the lab exists; the caller tears it down.
fn in_lab(
    lab: &Lab,
    design: &LabDesign,
    rulesets: &Rulesets,
    options: &LabOptions,
    timings: &mut Timings,
) -> Result<InLab, RunError> {
    let emit = |event: LabEvent| {
        if let Some(progress) = &options.progress {
            progress(event);
        }
    };

    emit(LabEvent::Phase(Phase::Rules));
    let t = Instant::now();
    let jobs = firewalled_hosts(design, rulesets);
    if options.rules.is_some() {
        let refused = check_rulesets(lab, &jobs)?;
        if !refused.is_empty() {
            let text: Vec<String> = refused
                .iter()
                .map(|r| format!("{}: {} refuses it:\n{}", r.file, r.program, r.message))
                .collect();
            return Err(RunError::Rules(format!(
                "{}\nnothing was loaded",
                text.join("\n")
            )));
        }
    }
    let (tracer, mut tracing) = start_tracing(lab, &jobs, options);
    let untraced = load_rulesets(lab, &jobs, tracer.is_some())?;
    tracing.traced_hosts = tracing.traced_hosts.saturating_sub(untraced.len());
    if let (Some(first), true) = (untraced.first(), tracing.enabled) {
        tracing.unavailable = Some(format!(
            "{} host(s) refused the trace table, e.g. {first}",
            untraced.len()
        ));
    }
    timings.rules = t.elapsed();

    emit(LabEvent::Phase(Phase::Listeners));
    let t = Instant::now();
    let token = run_token(design);
    let receipts = Arc::new(Receipts::default());
    let names = Arc::new(design.names.clone());
    let mut agents: Vec<Agent> = Vec::with_capacity(design.nodes.len());
    let mut ready = Vec::with_capacity(design.nodes.len());
    for (node, listens) in design.nodes.iter().zip(&design.listens) {
        let config = AgentConfig {
            host: node.host.clone(),
            addrs: node.addresses(),
            v4: node.has_ipv4.then_some(node.ipv4),
            tcp: listens.tcp.clone(),
            udp: listens.udp.clone(),
            udp_shared: listens.udp_shared.clone(),
            multicast: listens.multicast.clone(),
            dns: listens.dns.then(|| names.clone()),
            token: token.clone(),
        };
        let (agent, bound) = Agent::start(lab, config, receipts.clone())?;
        agents.push(agent);
        ready.push(bound);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::io("start a tokio runtime", "lab orchestration", e))?;
    let bound: Vec<Bound> = rt.block_on(async {
        let mut out = Vec::with_capacity(ready.len());
        for r in ready {
            out.push(r.await.unwrap_or_default());
        }
        out
    });
    let mut listener_failures = Vec::new();
    let mut hosts = Vec::with_capacity(design.nodes.len());
    for (node, b) in design.nodes.iter().zip(&bound) {
        for f in &b.failures {
            listener_failures.push(format!("{}: {f}", node.host));
        }
        hosts.push(HostReport {
            host: node.host.clone(),
            namespace: design.topology.netns_name(&node.host),
            role: node.role.clone(),
            party: node.party.clone(),
            addresses: node.addresses(),
            firewall: node.firewalled(),
            listening: b.endpoints.clone(),
            tcp_accepted: 0,
            udp_answered: 0,
            udp_ignored: 0,
            multicast_received: 0,
        });
    }
    timings.listeners = t.elapsed();

    emit(LabEvent::Phase(Phase::Dns));
    let t = Instant::now();
    let outside = design
        .nodes
        .iter()
        .position(|n| n.role == Role::Outside)
        .unwrap_or(0);
    let wanted: BTreeSet<String> = design
        .checks
        .iter()
        .filter_map(|c| c.name.clone())
        .collect();
    let resolved: BTreeMap<String, Result<Vec<IpAddr>, String>> = rt.block_on(async {
        let mut pending = Vec::new();
        for name in &wanted {
            let (reply, rx) = oneshot::channel();
            let sent = agents[outside].send(Command::Resolve {
                server: design.dns_server,
                name: name.clone(),
                timeout: Duration::from_secs(2),
                reply,
            });
            pending.push((name.clone(), sent, rx));
        }
        let mut out = BTreeMap::new();
        for (name, sent, rx) in pending {
            let result = if sent {
                rx.await
                    .unwrap_or_else(|_| Err("the outside world's agent stopped".to_owned()))
            } else {
                Err("the outside world's agent stopped".to_owned())
            };
            out.insert(name, result);
        }
        out
    });
    let dns: Vec<DnsName> = resolved
        .iter()
        .map(|(name, r)| DnsName {
            name: name.clone(),
            addresses: r.clone().unwrap_or_default(),
        })
        .collect();
    timings.dns = t.elapsed();

    emit(LabEvent::Phase(Phase::Probes));
    let t = Instant::now();
    let mut results = rt.block_on(probe_all(
        &agents,
        design,
        options,
        &token,
        &receipts,
        &resolved,
        tracer.as_ref(),
    ));
    if let Some(tracer) = &tracer {
        explain(&mut results, tracer);
        let stats = tracer.stats();
        tracing.events = stats.events;
        tracing.overruns = stats.overruns;
    }
    tracing.settled_by_trace = results
        .iter()
        .filter(|r| r.settled_by == Settled::Trace)
        .count();
    tracing.settled_by_timeout = results
        .iter()
        .filter(|r| r.settled_by == Settled::Timeout)
        .count();
    drop(tracer);
    timings.probes = t.elapsed();

    // Listeners close before the namespaces go.
    for (agent, host) in agents.into_iter().zip(&mut hosts) {
        let stats = agent.stop()?;
        host.tcp_accepted = stats.tcp_accepted;
        host.udp_answered = stats.udp_answered;
        host.udp_ignored = stats.udp_ignored;
        host.multicast_received = stats.multicast_received;
    }
    Ok((results, hosts, listener_failures, dns, tracing))
}

/// Opens the trace sockets of the firewalled hosts, unless tracing is off
/// or the kernel refuses (then verdicts fall back to timeouts, and the
/// summary says why).
fn start_tracing(
    lab: &Lab,
    hosts: &[(&str, &[RulesFile])],
    options: &LabOptions,
) -> (Option<Arc<Tracer>>, TracingSummary) {
    let mut summary = TracingSummary::default();
    if !options.trace {
        summary.unavailable = Some("turned off".to_owned());
        return (None, summary);
    }
    if hosts.is_empty() {
        summary.unavailable = Some("no host has a firewall".to_owned());
        return (None, summary);
    }
    let names: Vec<&str> = hosts.iter().map(|(h, _)| *h).collect();
    match Tracer::listen(lab, &names) {
        Ok(tracer) => {
            summary.enabled = true;
            summary.traced_hosts = names.len();
            (Some(Arc::new(tracer)), summary)
        }
        Err(e) => {
            summary.unavailable = Some(format!("the kernel refused nftables tracing: {e}"));
            (None, summary)
        }
    }
}

/// The deployment's hosts that get a firewall, in the order of the lab's
/// hosts.
fn ruleset_names(design: &LabDesign) -> Vec<String> {
    let mut seen = BTreeSet::new();
    design
        .nodes
        .iter()
        .filter_map(|n| n.ruleset.clone())
        .filter(|name| seen.insert(name.clone()))
        .collect()
}

/// One nftables ruleset per host of the plan, default policy drop, with the
/// generator's warnings.
fn generated_rulesets(
    design: &LabDesign,
    options: &LabOptions,
) -> Result<(Rulesets, Vec<String>), RunError> {
    // A spec of outside-world components only has no host to generate for.
    if !design.nodes.iter().any(|n| n.firewalled()) {
        return Ok((Rulesets::new(), Vec::new()));
    }
    let generated = Nftables
        .generate(
            &design.plan,
            &GenerateOptions {
                policy: Policy::Drop,
                ..GenerateOptions::default()
            },
        )
        .map_err(|e| RunError::Generate(e.to_string()))?;
    let mut rulesets = Rulesets::new();
    for (path, text) in &generated.files {
        let host = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match &options.mutate_ruleset {
            Some(mutate) => mutate(&host, text),
            None => text.clone(),
        };
        let file = RulesFile {
            host: host.clone(),
            path: path.clone(),
            format: RulesFormat::Nft,
            text,
        };
        rulesets.insert(host, vec![file]);
    }
    let warnings = generated.warnings.iter().map(ToString::to_string).collect();
    Ok((rulesets, warnings))
}

/// A person's rulesets, one set of files per host of the deployment
/// (`mutate_ruleset` applies to them too).
fn user_rulesets(
    design: &LabDesign,
    rules: &UserRules,
    options: &LabOptions,
) -> Result<(Rulesets, Vec<String>), RunError> {
    crate::rules::match_hosts(rules, &ruleset_names(design))
        .map_err(|m| RunError::Rules(m.to_string()))?;
    let mut rulesets = Rulesets::new();
    for file in &rules.files {
        let mut file = file.clone();
        if let Some(mutate) = &options.mutate_ruleset {
            file.text = mutate(&file.host, &file.text);
        }
        rulesets.entry(file.host.clone()).or_default().push(file);
    }
    Ok((rulesets, Vec::new()))
}

/// Names, for every unicast result, the rule that decided its packet (the
/// drop, or else the receiver's accept) from the trace, and says it in the
/// reason of the checks that did not hold and of traced blocks.
fn explain(results: &mut [CheckResult], tracer: &Tracer) {
    tracer.prefetch_rules(
        results
            .iter()
            .filter_map(|r| r.decided_by.as_ref().map(|d| &d.hop)),
    );
    for result in results.iter_mut() {
        let Some(decided) = &mut result.decided_by else {
            continue;
        };
        if let Some(rule) = tracer.rule_text(&decided.hop) {
            decided.rule = Some(rule.text.clone());
            decided.comment = rule.comment.clone();
        }
        decided.text = tracer.describe(&decided.hop);
        let text = decided.text.clone();
        let dropped = decided.hop.verdict == HopVerdict::Drop;
        result.reason = match (result.verdict, dropped, result.reason.take()) {
            (Verdict::Blocked | Verdict::Failed, true, _) => Some(format!("dropped by {text}")),
            (Verdict::NotBlocked, false, Some(reason)) => {
                Some(format!("{reason}, accepted by {text}"))
            }
            (_, _, reason) => reason,
        };
    }
}

/// A token that differs between runs (the run id is random) and that no
/// stray datagram carries by chance.
/// The design's topology, told which hosts exchange packets: the two ends
/// of every check (a multicast check: its sender with every host, since
/// receivers answer by unicast), and every host with the lab DNS server.
fn with_talking(design: &LabDesign) -> crate::topology::Topology {
    let mut topology = design.topology.clone();
    let dns = design
        .nodes
        .iter()
        .find(|n| IpAddr::V4(n.ipv4) == design.dns_server.ip())
        .map(|n| n.host.as_str());
    let hosts: Vec<&str> = design.nodes.iter().map(|n| n.host.as_str()).collect();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for check in &design.checks {
        if check.protocol == Transport::Multicast {
            pairs.extend(hosts.iter().map(|h| (check.from_host.as_str(), *h)));
        } else {
            pairs.push((check.from_host.as_str(), check.to_host.as_str()));
        }
    }
    if let Some(dns) = dns {
        pairs.extend(hosts.iter().map(|h| (dns, *h)));
    }
    topology.set_talking(pairs);
    topology
}

fn run_token(design: &LabDesign) -> String {
    format!("{}-{:x}", design.topology.run_id(), std::process::id())
}
