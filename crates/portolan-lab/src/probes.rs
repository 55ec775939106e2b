//! The probes of a lab run: every check sent from its host's agent, decided
//! by its traced verdict, its answer or its timeout, and the limits that
//! bound how many are in flight. Called by [`crate::run`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portolan_probe::{
    OutcomeClass, ProbeOptions, ProbeResult, ProbeSpec, Protocol as ProbeProtocol, Target, UdpMode,
};
use tokio::sync::oneshot;

use crate::agent::{Agent, Command, Receipts};
use crate::design::{Check, Expect, LabDesign, LabEvent, LabOptions, Transport};
use crate::report::{multicast_verdict, CheckResult, DecidingRule, Settled, Verdict};
use crate::trace::{early_verdict, packet_key, HopVerdict, Tracer};

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
pub(crate) async fn probe_all(
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
pub(crate) fn raise_open_files_limit() {
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
