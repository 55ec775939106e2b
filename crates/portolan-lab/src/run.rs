//! A whole lab run: design, build, load the firewalls, listen, probe, tear
//! down, report. See [`run_lab`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portolan_firewall::nftables::Nftables;
use portolan_firewall::{Options as GenerateOptions, Policy, Target as _};
use portolan_probe::{
    OutcomeClass, ProbeOptions, ProbeResult, ProbeSpec, Protocol as ProbeProtocol, Target, UdpMode,
};
use portolan_spec::{ErrorKind, Spec};
use tokio::sync::oneshot;

use crate::agent::{Agent, AgentConfig, Bound, Command, Receipts};
use crate::design::{
    design, Check, DesignError, Expect, LabDesign, LabEvent, LabOptions, Phase, Role, Transport,
};
use crate::error::LabError;
use crate::lab::{find_program, Lab};
use crate::load::{check_rulesets, firewalled_hosts, load_rulesets, Rulesets};
use crate::report::{
    multicast_verdict, tally, CheckResult, DecidingRule, DnsName, HostReport, LabReport, Settled,
    Timings, TracingSummary, Verdict,
};
use crate::rules::{RulesFile, RulesFormat, UserRules};
use crate::trace::{early_verdict, packet_key, HopVerdict, Tracer};

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

/// The probe for a unicast check, or the result of a name that did not resolve.
fn unicast_probe(
    check: &Check,
    token: &str,
    resolved: &BTreeMap<String, Result<Vec<IpAddr>, String>>,
    source: IpAddr,
) -> Result<(ProbeSpec, Vec<IpAddr>), (String, Vec<IpAddr>)> {
    let mut target = check.target;
    let mut addresses = Vec::new();
    if let Some(name) = &check.name {
        match resolved.get(name) {
            Some(Ok(found)) => {
                addresses = found.clone();
                let same_family = |ip: &&IpAddr| ip.is_ipv4() == check.target.is_ipv4();
                match found
                    .iter()
                    .find(|ip| **ip == check.target.ip())
                    .or_else(|| found.iter().find(same_family))
                {
                    Some(ip) => target = SocketAddr::new(*ip, check.target.port()),
                    None => {
                        return Err((
                            format!(
                                "{name} has no {} address in the lab DNS",
                                if check.target.is_ipv4() {
                                    "IPv4"
                                } else {
                                    "IPv6"
                                }
                            ),
                            addresses,
                        ))
                    }
                }
            }
            Some(Err(e)) => return Err((e.clone(), addresses)),
            None => return Err((format!("{name} was not resolved"), addresses)),
        }
    }
    let protocol = match check.protocol {
        Transport::Tcp => ProbeProtocol::Tcp,
        Transport::Icmp => ProbeProtocol::IcmpEcho {
            token: token.to_owned(),
        },
        Transport::Udp | Transport::Multicast => ProbeProtocol::Udp {
            mode: UdpMode::PortolanListener {
                token: token.to_owned(),
            },
        },
    };
    // Sent from the host's own address: the packet is then known before it
    // leaves (its trace events are matched by addresses), and with a fixed
    // source port the probe's socket matches the echo more closely than a
    // listener sharing the port.
    let mut spec =
        ProbeSpec::new(check.probe.clone(), Target::Addr(target), protocol).with_source_ip(source);
    if let Some(port) = check.source_port {
        spec = spec.with_source_port(port);
    }
    Ok((spec, addresses))
}

/// Runs every check: unicast probes per source host, all hosts at once
/// (positive and negative probes with their own timeouts), multicast checks
/// alongside; then, one at a time, the probes from fixed source ports (two
/// hosts probing each other from the same port must not overlap).
async fn probe_all(
    agents: &[Agent],
    design: &LabDesign,
    options: &LabOptions,
    token: &str,
    receipts: &Arc<Receipts>,
    resolved: &BTreeMap<String, Result<Vec<IpAddr>, String>>,
    tracer: Option<&Arc<Tracer>>,
) -> Vec<CheckResult> {
    let total = design.checks.len();
    let done = Arc::new(AtomicUsize::new(0));
    let progress = options.progress.clone();
    let tick = {
        let done = done.clone();
        let progress = progress.clone();
        move || {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(p) = &progress {
                p(LabEvent::Checks { done: n, total });
            }
        }
    };
    let probe_tick: portolan_probe::ProgressFn = {
        let tick = tick.clone();
        Arc::new(move |_| tick())
    };
    let sources = design
        .checks
        .iter()
        .map(|c| c.from_host.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let concurrency = bounded_concurrency(options.concurrency, sources);
    let early_verdict = tracer.map(|t| early_verdict(Arc::clone(t)));
    let positive = ProbeOptions {
        concurrency,
        timeout: options.positive_timeout,
        retries: options.positive_retries,
        progress: Some(probe_tick.clone()),
        early_verdict: early_verdict.clone(),
        ..ProbeOptions::default()
    };
    let negative = ProbeOptions {
        concurrency,
        timeout: options.negative_timeout,
        retries: 0,
        progress: Some(probe_tick.clone()),
        early_verdict,
        ..ProbeOptions::default()
    };
    let tracer = tracer.map(|t| &**t);
    let host_index: BTreeMap<&str, usize> = design
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.host.as_str(), i))
        .collect();

    let mut results: Vec<Option<CheckResult>> = vec![None; total];
    // Per source host: (check index, probe) for each kind of run.
    let mut batches: BTreeMap<(usize, bool), Vec<(usize, ProbeSpec)>> = BTreeMap::new();
    let mut fixed: Vec<(usize, usize, ProbeSpec)> = Vec::new();
    let mut multicast: Vec<usize> = Vec::new();
    let mut addresses: BTreeMap<usize, Vec<IpAddr>> = BTreeMap::new();
    for (i, check) in design.checks.iter().enumerate() {
        let Some(&s) = host_index.get(check.from_host.as_str()) else {
            continue;
        };
        if check.protocol == Transport::Multicast {
            multicast.push(i);
            continue;
        }
        let source = design.nodes[s].ip(check.family);
        match unicast_probe(check, token, resolved, source) {
            Ok((probe, found)) => {
                addresses.insert(i, found);
                if check.source_port.is_some() {
                    fixed.push((s, i, probe));
                } else {
                    batches
                        .entry((s, check.expect == Expect::Open))
                        .or_default()
                        .push((i, probe));
                }
            }
            Err((reason, found)) => {
                tick();
                results[i] = Some(CheckResult {
                    check: check.clone(),
                    verdict: Verdict::Error,
                    outcome: OutcomeClass::DnsFailed.name().to_owned(),
                    reason: Some(format!(
                        "name did not resolve through the lab DNS: {reason}"
                    )),
                    os_error: None,
                    attempts: 0,
                    elapsed: Duration::ZERO,
                    resolved: found,
                    received_by: Vec::new(),
                    settled_by: Settled::default(),
                    decided_by: None,
                });
            }
        }
    }

    // Unicast batches, every host at once, with the multicast checks.
    let mut pending = Vec::new();
    for ((s, open), batch) in batches {
        let (indices, probes): (Vec<usize>, Vec<ProbeSpec>) = batch.into_iter().unzip();
        let (reply, rx) = oneshot::channel();
        let sent = agents[s].send(Command::Probe {
            probes,
            options: if open {
                positive.clone()
            } else {
                negative.clone()
            },
            reply,
        });
        pending.push((indices, sent, rx));
    }
    let unicast = async {
        let mut out = Vec::new();
        for (indices, sent, rx) in pending {
            let found = if sent {
                rx.await.unwrap_or_default()
            } else {
                Vec::new()
            };
            out.push((indices, found));
        }
        out
    };
    let host_index = &host_index;
    let multicast_checks = futures::future::join_all(multicast.iter().map(|&i| {
        let check = &design.checks[i];
        let tick = tick.clone();
        async move {
            let result =
                multicast_check(agents, design, host_index, check, options, receipts).await;
            tick();
            (i, result)
        }
    }));
    let (unicast, multicast) = futures::join!(unicast, multicast_checks);
    if let Some(tracer) = tracer {
        // The receivers' accepts of the last probes may still be unread.
        tracer.flush(Duration::from_secs(5)).await;
    }
    for (indices, found) in unicast {
        let by_id: BTreeMap<String, ProbeResult> =
            found.into_iter().map(|r| (r.spec.id.clone(), r)).collect();
        for i in indices {
            let check = &design.checks[i];
            results[i] = Some(unicast_result(
                check,
                by_id.get(&check.probe),
                addresses.remove(&i).unwrap_or_default(),
                tracer,
            ));
        }
    }
    for (i, result) in multicast {
        results[i] = Some(result);
    }

    // Fixed source ports, one probe at a time.
    let mut fixed_found = Vec::with_capacity(fixed.len());
    for (s, i, probe) in fixed {
        let check = &design.checks[i];
        let mut opts = if check.expect == Expect::Open {
            positive.clone()
        } else {
            negative.clone()
        };
        opts.concurrency = 1;
        let (reply, rx) = oneshot::channel();
        let found = if agents[s].send(Command::Probe {
            probes: vec![probe],
            options: opts,
            reply,
        }) {
            rx.await.unwrap_or_default()
        } else {
            Vec::new()
        };
        fixed_found.push((i, found));
    }
    if let (Some(tracer), false) = (tracer, fixed_found.is_empty()) {
        tracer.flush(Duration::from_secs(5)).await;
    }
    for (i, found) in fixed_found {
        results[i] = Some(unicast_result(
            &design.checks[i],
            found.first(),
            addresses.remove(&i).unwrap_or_default(),
            tracer,
        ));
    }

    results
        .into_iter()
        .zip(&design.checks)
        .map(|(r, check)| {
            r.unwrap_or_else(|| CheckResult {
                check: check.clone(),
                verdict: Verdict::Error,
                outcome: OutcomeClass::LocalError.name().to_owned(),
                reason: Some("the probe was not run: its host's agent stopped".to_owned()),
                os_error: None,
                attempts: 0,
                elapsed: Duration::ZERO,
                resolved: Vec::new(),
                received_by: Vec::new(),
                settled_by: Settled::default(),
                decided_by: None,
            })
        })
        .collect()
}

/// Probes in flight per batch: the option, but no more than the process's
/// file descriptors allow with every host running two batches at once (a
/// large lab would otherwise fail probes with "too many open files").
fn bounded_concurrency(wanted: usize, sources: usize) -> usize {
    let wanted = wanted.max(1);
    let (Some(limit), Ok(open)) = (open_files_limit(), std::fs::read_dir("/proc/self/fd")) else {
        return wanted;
    };
    let free = limit.saturating_sub(open.count() + FD_MARGIN);
    let per_batch = free / (2 * sources.max(1));
    wanted.min(per_batch).max(MIN_CONCURRENCY)
}

/// File descriptors kept free for everything but probes.
const FD_MARGIN: usize = 256;
/// Probes in flight per batch, whatever the limits.
const MIN_CONCURRENCY: usize = 4;

/// The soft limit of open files, from `/proc/self/limits`.
/// Raises this process's soft limit of open files to its hard limit. The
/// lab holds about 60 descriptors per host (a listening socket per port and
/// family, netlink and trace sockets, each host's runtime), and the usual
/// soft limit of a shell (1,024) would end a lab of 20 components with "too
/// many open files", although the hard limit (often 524,288) allows far
/// more. Best effort: the probes' concurrency is bounded by whatever limit
/// there is ([`bounded_concurrency`]).
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(usize::MAX / 2),
        n => n.parse().ok(),
    }
}

/// The traced verdict of a probe's packet: the first drop, or else the
/// receiver's accept (or any accept); the packet is forgotten by the tracer.
fn traced_hop(check: &Check, result: &ProbeResult, tracer: &Tracer) -> Option<DecidingRule> {
    let (local, peer) = (result.details.local?, result.details.peer?);
    let kind = match check.protocol {
        Transport::Tcp => portolan_probe::FlowKind::Tcp,
        Transport::Udp => portolan_probe::FlowKind::Udp,
        Transport::Icmp => portolan_probe::FlowKind::IcmpEcho,
        Transport::Multicast => return None,
    };
    let hops = tracer.take(&packet_key(kind, local, peer));
    let hop = hops
        .iter()
        .find(|h| h.verdict == HopVerdict::Drop)
        .or_else(|| hops.iter().find(|h| h.host == check.to_host))
        .or_else(|| hops.first())?;
    Some(DecidingRule {
        hop: hop.clone(),
        rule: None,
        comment: None,
        text: String::new(),
    })
}

/// The verdict of a unicast probe.
fn unicast_result(
    check: &Check,
    result: Option<&ProbeResult>,
    resolved: Vec<IpAddr>,
    tracer: Option<&Tracer>,
) -> CheckResult {
    let Some(result) = result else {
        return CheckResult {
            check: check.clone(),
            verdict: Verdict::Error,
            outcome: OutcomeClass::LocalError.name().to_owned(),
            reason: Some("the probe was not run: its host's agent stopped".to_owned()),
            os_error: None,
            attempts: 0,
            elapsed: Duration::ZERO,
            resolved,
            received_by: Vec::new(),
            settled_by: Settled::default(),
            decided_by: None,
        };
    };
    let outcome = &result.outcome;
    let attempts = outcome.attempts;
    let local_rule = outcome.os_error.is_some();
    let (verdict, reason) = match (&check.expect, &outcome.class) {
        (Expect::Open, OutcomeClass::Open) => (Verdict::Passed, None),
        (_, OutcomeClass::LocalError) => (
            Verdict::Error,
            Some(format!(
                "could not probe from this host ({}): a lab limitation, not the firewall's verdict",
                outcome.os_error.as_deref().unwrap_or("local error")
            )),
        ),
        (Expect::Open, class) => (
            Verdict::Failed,
            Some(failure_reason(class, local_rule, attempts)),
        ),
        (Expect::Blocked, OutcomeClass::Filtered) => (
            Verdict::Blocked,
            Some(if local_rule {
                "dropped by the sender's firewall".to_owned()
            } else {
                "dropped (no answer in time)".to_owned()
            }),
        ),
        (Expect::Blocked, OutcomeClass::Unreachable) => (
            Verdict::Blocked,
            Some("rejected: no route to host".to_owned()),
        ),
        (Expect::Blocked, OutcomeClass::Open) => (
            Verdict::NotBlocked,
            Some(match check.protocol {
                Transport::Tcp => "got through: the connection was accepted".to_owned(),
                Transport::Icmp => "got through: the echo reply came back".to_owned(),
                _ => "got through: the listener's echo came back".to_owned(),
            }),
        ),
        (Expect::Blocked, OutcomeClass::Refused) => (
            Verdict::NotBlocked,
            Some("got through: the host answered (connection refused)".to_owned()),
        ),
        (Expect::Blocked, class) => (
            Verdict::Error,
            Some(format!(
                "could not probe: {}",
                failure_reason(class, local_rule, attempts)
            )),
        ),
    };
    CheckResult {
        check: check.clone(),
        verdict,
        outcome: outcome.class.name().to_owned(),
        reason,
        os_error: outcome.os_error.clone(),
        attempts,
        elapsed: outcome.elapsed,
        resolved,
        received_by: Vec::new(),
        settled_by: if result.details.settled_early.is_some() {
            Settled::Trace
        } else if outcome.class == OutcomeClass::Filtered && outcome.os_error.is_none() {
            Settled::Timeout
        } else {
            Settled::Answer
        },
        decided_by: tracer.and_then(|t| traced_hop(check, result, t)),
    }
}

fn failure_reason(class: &OutcomeClass, os_error: bool, attempts: u32) -> String {
    match class {
        OutcomeClass::Filtered if os_error => {
            "blocked by the sender's own firewall (operation not permitted)".to_owned()
        }
        OutcomeClass::Filtered => {
            format!("timed out after {attempts} attempt(s): dropped on the way")
        }
        OutcomeClass::Refused => "refused: reached the host, nothing listens".to_owned(),
        OutcomeClass::Unreachable => "no route to host".to_owned(),
        OutcomeClass::DnsFailed => "the name did not resolve".to_owned(),
        other => format!("could not send: {other}"),
    }
}

/// Sends a multicast check's datagram and watches who receives it: a flow
/// is retried until every receiver has it; a datagram that must be blocked
/// is sent once and watched for the negative timeout.
async fn multicast_check(
    agents: &[Agent],
    design: &LabDesign,
    host_index: &BTreeMap<&str, usize>,
    check: &Check,
    options: &LabOptions,
    receipts: &Receipts,
) -> CheckResult {
    let started = tokio::time::Instant::now();
    let (attempts_allowed, wait) = match check.expect {
        Expect::Open => (options.positive_retries + 1, options.positive_timeout),
        Expect::Blocked => (1, options.negative_timeout),
    };
    let mut attempts = 0;
    let mut error = None;
    if let Some(&s) = host_index.get(check.from_host.as_str()) {
        while attempts < attempts_allowed {
            attempts += 1;
            let (reply, rx) = oneshot::channel();
            let sent = agents[s].send(Command::Multicast {
                probe: check.probe.clone(),
                group: check.target,
                reply,
            });
            match (sent, if sent { rx.await.ok() } else { None }) {
                (true, Some(Ok(()))) => error = None,
                (_, Some(Err(e))) => {
                    error = Some(e);
                }
                _ => error = Some("the sender's agent stopped".to_owned()),
            }
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let got = receipts.receivers(&check.probe);
                let complete =
                    check.expect == Expect::Open && check.receivers.iter().all(|r| got.contains(r));
                if complete || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let got = receipts.receivers(&check.probe);
            if check.expect == Expect::Blocked || check.receivers.iter().all(|r| got.contains(r)) {
                break;
            }
        }
    } else {
        error = Some(format!("no host {}", check.from_host));
    }
    let received: Vec<String> = receipts.receivers(&check.probe).into_iter().collect();
    let _ = design;
    let (mut verdict, mut reason) = multicast_verdict(check, &received);
    if let Some(e) = &error {
        // A send that failed on the sender's own firewall (EPERM) is a block.
        let blocked_locally = e.contains("ermission") || e.contains("not permitted");
        match (check.expect, blocked_locally) {
            (Expect::Blocked, true) => {
                reason = Some("dropped by the sender's firewall".to_owned());
            }
            (Expect::Open, true) => {
                verdict = Verdict::Failed;
                reason = Some(
                    "blocked by the sender's own firewall (operation not permitted)".to_owned(),
                );
            }
            (_, false) => {
                verdict = Verdict::Error;
                reason = Some(format!("could not send: {e}"));
            }
        }
    }
    let os_error_is_none = error.is_none();
    CheckResult {
        check: check.clone(),
        verdict,
        outcome: if received.is_empty() {
            "not_received".to_owned()
        } else {
            "received".to_owned()
        },
        reason,
        os_error: error,
        attempts,
        elapsed: started.elapsed(),
        resolved: Vec::new(),
        received_by: received,
        settled_by: if check.expect == Expect::Blocked && os_error_is_none {
            Settled::Timeout
        } else {
            Settled::Answer
        },
        decided_by: None,
    }
}
