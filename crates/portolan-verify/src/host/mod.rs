//! Host rulesets (nftables, iptables) checked in a kernel twin of each host.
//!
//! For each host given a ruleset, a twin is built: a network namespace
//! with the host's interface name and the deployment's addresses, the
//! ruleset loaded as it is (`nft -f`, `nft -j -f`, `iptables-restore`,
//! `ip6tables-restore`), and a namespace holding the addresses of every
//! peer. The plan's flows to and from the host are probed through it (TCP
//! connects, UDP token datagrams to real listeners), and the kernel's own
//! trace (portolan-lab's [`Tracer`](portolan_lab::trace::Tracer)) names the
//! rule that decided each packet: the drop of a blocked flow, the accepts of
//! an admitted one. Negative probes on sampled ports (every peer, both
//! directions) find what the ruleset opens beyond the plan.

mod plan;
mod probe;
mod ruleset;
mod twin;

use std::net::IpAddr;

use ipnet::IpNet;
use portolan_lab::trace::{Decider, Hop, HopVerdict, TRACE_TABLE};
use portolan_spec::plan::{Plan, PlannedFlow, PlannedHost};
use portolan_spec::Protocol;

pub use plan::SAMPLED_PORTS;
pub use ruleset::{HostRuleset, RulesetFormat};

use crate::error::{Code, VerifyError};
use crate::model::{Direction, Excess, Fix, FlowCheck, InputKind, RuleRef, Section, Verdict};
use plan::{plan_probes, untested, Purpose, Side};
use probe::{Outcome, Probe, Transport};
use twin::{Twin, PEERS, TWIN};

/// Verifies each host's rulesets in its twin: one section per host, in
/// the order the hosts are first given.
pub fn verify(plan: &Plan, rulesets: &[HostRuleset]) -> Result<Vec<Section>, VerifyError> {
    let mut hosts: Vec<&str> = Vec::new();
    for r in rulesets {
        if !hosts.contains(&r.host.as_str()) {
            hosts.push(&r.host);
        }
    }
    hosts
        .into_iter()
        .map(|name| {
            let mine: Vec<&HostRuleset> = rulesets.iter().filter(|r| r.host == name).collect();
            let host = plan.host(name).ok_or_else(|| {
                VerifyError::input(
                    Code::UnknownHost,
                    crate::Position::file(&mine[0].file),
                    format!("`{name}` is not a host of the deployment"),
                )
            })?;
            verify_host(plan, host, &mine)
        })
        .collect()
}

/// An iptables-nft rule by handle, in iptables syntax with its comment
/// (nft does not print the comments of iptables rules): the chain's rules
/// listed by `nft -a` (handles, in order) and by `iptables -S` (same
/// order).
fn iptables_rule(twin: &Twin, hop: &Hop, handle: u64) -> Option<(String, Option<String>)> {
    let (listing, rules) = chain_listings(twin, hop)?;
    let position = listing
        .lines()
        .filter(|l| l.contains(" # handle ") && !l.trim_start().starts_with("chain "))
        .position(|l| l.trim_end().ends_with(&format!("# handle {handle}")))?;
    let line = rules
        .lines()
        .filter(|l| l.starts_with(&format!("-A {} ", hop.chain)))
        .nth(position)?
        .to_owned();
    let comment = line.split_once("--comment ").map(|(_, rest)| {
        let rest = rest.trim_start();
        match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or("").to_owned(),
            None => rest.split_whitespace().next().unwrap_or("").to_owned(),
        }
    });
    Some((line, comment))
}

/// A chain's `nft -a` listing and `iptables -S` rules, listed once per twin.
fn chain_listings(twin: &Twin, hop: &Hop) -> Option<(String, String)> {
    let id = (hop.family.clone(), hop.table.clone(), hop.chain.clone());
    let cache = |twin: &Twin| {
        twin.chains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    };
    if let Some(known) = cache(twin) {
        return known;
    }
    let run = |program: &str, args: &[&str]| -> Option<String> {
        let mut command = std::process::Command::new(program);
        command.args(args);
        let out = twin.lab.exec(TWIN, command).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let program = if hop.family == "ip6" {
        "ip6tables"
    } else {
        "iptables"
    };
    let listed = run(
        "nft",
        &["-a", "list", "chain", &hop.family, &hop.table, &hop.chain],
    )
    .zip(run(program, &["-t", &hop.table, "-S", &hop.chain]));
    twin.chains
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id, listed.clone());
    listed
}

/// A hop as the report names the rule: table, chain, handle, text, comment.
fn rule_ref(twin: &Twin, host: &str, hop: &Hop) -> RuleRef {
    let verdict = match hop.verdict {
        HopVerdict::Accept => "accept",
        HopVerdict::Drop => "drop",
    };
    match hop.decider {
        Decider::Policy => RuleRef {
            text: format!(
                "{} {} {}: policy {verdict}",
                hop.family, hop.table, hop.chain
            ),
            location: Some(format!("host {host}")),
            comment: None,
        },
        Decider::Rule { handle } if is_iptables_table(twin, hop) => {
            let (text, comment) = iptables_rule(twin, hop, handle)
                .unwrap_or_else(|| (format!("rule handle {handle} ({verdict})"), None));
            RuleRef {
                text: format!(
                    "{} {} {} handle {handle}: {text}",
                    hop.family, hop.table, hop.chain
                ),
                location: Some(format!("host {host}")),
                comment,
            }
        }
        Decider::Rule { handle } => {
            let text = twin.tracer.rule_text(hop);
            RuleRef {
                text: format!(
                    "{} {} {} handle {handle}: {}",
                    hop.family,
                    hop.table,
                    hop.chain,
                    text.as_ref()
                        .map(|t| t.text.clone())
                        .unwrap_or_else(|| format!("({verdict})"))
                ),
                location: Some(format!("host {host}")),
                comment: text.and_then(|t| t.comment),
            }
        }
    }
}

/// The twin's verdicts for a packet, without the trace table's own.
fn hops(twin: &Twin, outcome: &Outcome) -> Vec<Hop> {
    outcome
        .key
        .map(|k| twin.tracer.hops(&k))
        .unwrap_or_default()
        .into_iter()
        .filter(|h| h.table != TRACE_TABLE)
        .collect()
}

fn verify_host(
    plan: &Plan,
    host: &PlannedHost,
    rulesets: &[&HostRuleset],
) -> Result<Section, VerifyError> {
    let kind = match rulesets[0].format {
        RulesetFormat::NftText | RulesetFormat::NftJson => InputKind::Nftables,
        _ => InputKind::Iptables,
    };
    let files: Vec<&str> = rulesets.iter().map(|r| r.file.as_str()).collect();
    let mut section = Section::new(kind, files.join(", "), Some(host.name.clone()));
    for r in rulesets {
        section.assumptions.extend(ruleset::assumptions(&r.text));
    }
    let planned = plan_probes(plan, host);
    if planned.host_addrs.is_empty() {
        section.assumptions.push(format!(
            "host {} has no address in the deployment: nothing was probed",
            host.name
        ));
    }
    let host_addrs: Vec<IpAddr> = planned.host_addrs.iter().copied().collect();
    let peer_addrs: Vec<IpAddr> = planned.peer_addrs.iter().copied().collect();
    let twin = Twin::build(rulesets, &host_addrs, &peer_addrs)?;
    section.assumptions.extend(twin.assumptions.iter().cloned());
    let token = format!("portolan-verify-{}", twin.lab.run_id());
    let results = run_probes(&twin, &planned, &token)?;
    if !flush_trace(&twin)? {
        section.assumptions.push(
            "the trace did not catch up within 5 s: some admitted flows may lack their rules"
                .into(),
        );
    }
    // Each flow's probes, by flow index.
    let mut by_flow: Vec<Vec<&ProbeResult>> = vec![Vec::new(); plan.flows.len()];
    for r in &results {
        if let Purpose::Flow(index) = r.purpose {
            by_flow[index].push(r);
        }
    }
    for (index, flow) in plan.flows.iter().enumerate() {
        if let Some(check) = &planned.checks[index] {
            section.checks.push(check.clone());
            continue;
        }
        if by_flow[index].is_empty() {
            continue;
        }
        let (check, fix) = flow_check(&twin, host, flow, &by_flow[index]);
        section.checks.push(check);
        section.fixes.extend(fix);
    }
    for ProbeResult {
        purpose,
        probe,
        outcome,
        ..
    } in &results
    {
        let Purpose::Excess {
            peer,
            peers,
            any,
            outbound,
        } = purpose
        else {
            continue;
        };
        if !outcome.open {
            continue;
        }
        // The accept that names the traffic (a rule) rather than a policy.
        let traced = hops(&twin, outcome);
        let decisive = traced
            .iter()
            .find(|h| h.verdict == HopVerdict::Accept && matches!(h.decider, Decider::Rule { .. }))
            .or(traced.last());
        let accepts: Vec<RuleRef> = decisive
            .iter()
            .map(|h| rule_ref(&twin, &host.name, h))
            .collect();
        section.excess.push(Excess {
            subject: host.name.clone(),
            direction: if *outbound {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            peer: Some(peer.clone()),
            peers: peers.clone(),
            traffic: format!("tcp {} (sampled)", probe.destination.port()),
            any: *any,
            rule: accepts.last().cloned().unwrap_or(RuleRef {
                text: "no traced verdict (no base chain on the path)".into(),
                location: Some(format!("host {}", host.name)),
                comment: None,
            }),
        });
    }
    let stats = twin.tracer.stats();
    if stats.overruns > 0 {
        section.assumptions.push(format!(
            "the trace lost events {} time(s): some deciding rules may be missing",
            stats.overruns
        ));
    }
    Ok(section)
}

/// A probe and what came of it.
#[derive(Debug, Clone)]
struct ProbeResult {
    purpose: Purpose,
    side: Side,
    probe: Probe,
    outcome: Outcome,
}

/// Runs every probe of the plan through the twin: listeners on both
/// sides, then the inbound, outbound and loopback probes, then the
/// multicast datagrams. Results in the order of `planned.probes`, then the
/// multicast ones.
fn run_probes(
    twin: &Twin,
    planned: &plan::Plans,
    token: &str,
) -> Result<Vec<ProbeResult>, VerifyError> {
    let of_side = |side: Side| -> Vec<Probe> {
        planned
            .probes
            .iter()
            .filter(|p| p.1 == side)
            .map(|p| p.2)
            .collect()
    };
    let (inbound, outbound, local) = (
        of_side(Side::Inbound),
        of_side(Side::Outbound),
        of_side(Side::Local),
    );
    let mut outcomes = std::collections::BTreeMap::new();
    // One side at a time, each with its own listeners: a flow with a fixed
    // source port equal to its port (a group's udp 8112 -> 8112) binds the
    // sender where the other side's listener would be.
    for (side, from, to, probes) in [
        (Side::Inbound, PEERS, TWIN, inbound),
        (Side::Outbound, TWIN, PEERS, outbound),
        (Side::Local, TWIN, TWIN, local),
    ] {
        let done = if probes.is_empty() {
            Vec::new()
        } else {
            let _listening =
                probe::listen(&twin.lab, to, &probes.iter().collect::<Vec<_>>(), token)?;
            probe::send(&twin.lab, from, probes, token, &twin.tracer)?
        };
        outcomes.insert(side, done.into_iter());
    }
    let mut results: Vec<ProbeResult> = planned
        .probes
        .iter()
        .map(|(purpose, side, probe)| ProbeResult {
            purpose: purpose.clone(),
            side: *side,
            probe: *probe,
            outcome: outcomes
                .get_mut(side)
                .and_then(Iterator::next)
                .unwrap_or_else(|| Outcome {
                    open: false,
                    key: None,
                    error: Some("not sent".into()),
                }),
        })
        .collect();
    if !planned.multicast.is_empty() {
        results.extend(multicast_probes(twin, planned, token)?);
    }
    Ok(results)
}

/// Waits (at most 5 s) until the tracer has read every event of the
/// packets sent so far: probes end as soon as they are answered, while
/// their events may still be on their way to the reader.
fn flush_trace(twin: &Twin) -> Result<bool, VerifyError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| VerifyError::Environment(format!("kernel twin: a tokio runtime: {e}")))?;
    Ok(runtime.block_on(twin.tracer.flush(std::time::Duration::from_secs(5))))
}

/// The multicast datagrams of the plan, as probe results.
fn multicast_probes(
    twin: &Twin,
    planned: &plan::Plans,
    token: &str,
) -> Result<Vec<ProbeResult>, VerifyError> {
    let mut results = Vec::new();
    let twin_v4 = planned.host_addrs.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let Some(twin_v4) = twin_v4 else {
        return Ok(results);
    };
    let probes: Vec<probe::MulticastProbe> = planned.multicast.iter().map(|m| m.1).collect();
    let done = probe::multicast(
        &twin.lab,
        &twin.tracer,
        (TWIN, PEERS),
        twin_v4,
        &probes,
        token,
    )?;
    for ((index, m), outcome) in planned.multicast.iter().zip(done) {
        results.push(ProbeResult {
            purpose: Purpose::Flow(*index),
            side: if m.outbound {
                Side::Outbound
            } else {
                Side::Inbound
            },
            probe: Probe {
                transport: Transport::Udp,
                source: std::net::SocketAddr::new(m.source, 0),
                destination: m.group,
            },
            outcome,
        });
    }
    Ok(results)
}

/// A flow's verdict from its probes: admitted when every probe was
/// answered (the accepts that let it through), else blocked by the traced
/// drop of the first failing probe.
fn flow_check(
    twin: &Twin,
    host: &PlannedHost,
    flow: &PlannedFlow,
    probes: &[&ProbeResult],
) -> (FlowCheck, Option<Fix>) {
    let mut check = untested(flow, "");
    let failed: Vec<&&ProbeResult> = probes.iter().filter(|p| !p.outcome.open).collect();
    let how = match (
        flow.multicast.is_some(),
        probes.iter().any(|p| p.side == Side::Local),
    ) {
        (true, _) => "multicast datagram(s) arrived",
        (false, true) => "probe(s) answered over loopback",
        (false, false) => "probe(s) answered",
    };
    if failed.is_empty() {
        check.verdict = Verdict::Admitted;
        let mut rules: Vec<RuleRef> = Vec::new();
        for p in probes {
            for hop in hops(twin, &p.outcome) {
                let r = rule_ref(twin, &host.name, &hop);
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
        }
        check.detail = format!("{} {how} through host {}", probes.len(), host.name);
        check.rules = rules;
        return (check, None);
    }
    check.verdict = Verdict::Blocked;
    let first = failed[0];
    let drop = hops(twin, &first.outcome)
        .into_iter()
        .find(|h| h.verdict == HopVerdict::Drop);
    let what = format!(
        "{} {} -> {}",
        first.probe.transport.name(),
        first.probe.source,
        first.probe.destination
    );
    let error = first.outcome.error.clone().unwrap_or_default();
    match &drop {
        Some(hop) => {
            check.detail = format!(
                "{}/{} probe(s) blocked on host {}; {what}: dropped ({error})",
                failed.len(),
                probes.len(),
                host.name
            );
            check.rules.push(rule_ref(twin, &host.name, hop));
        }
        None => {
            check.detail = format!(
                "{}/{} probe(s) blocked on host {}; {what}: {error}, and no traced drop of it (an answer, or a rule on a path the trace does not see, was dropped)",
                failed.len(),
                probes.len(),
                host.name
            );
        }
    }
    let fix = drop.map(|hop| fix(flow, host, &hop, first, is_iptables_table(twin, &hop)));
    (check, fix)
}

/// What a rule must match of a flow's traffic, in nft and iptables syntax.
fn traffic_match(flow: &PlannedFlow, v6: bool) -> (String, String) {
    let ports: Vec<String> = if flow.ports.is_empty() {
        vec!["1-65535".into()]
    } else {
        flow.ports.iter().map(|r| r.to_string()).collect()
    };
    match flow.protocol {
        // Every protocol: the addresses alone.
        Protocol::Any => (String::new(), String::new()),
        Protocol::Icmp if v6 => (
            "icmpv6 type echo-request".into(),
            "-p ipv6-icmp --icmpv6-type echo-request".into(),
        ),
        Protocol::Icmp => (
            "icmp type echo-request".into(),
            "-p icmp --icmp-type echo-request".into(),
        ),
        _ => {
            let proto = if flow.protocol == Protocol::Udp {
                "udp"
            } else {
                "tcp"
            };
            let dports = if ports.len() == 1 {
                format!("--dport {}", ports[0].replace('-', ":"))
            } else {
                format!(
                    "-m multiport --dports {}",
                    ports
                        .iter()
                        .map(|p| p.replace('-', ":"))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            (
                format!("{proto} dport {{ {} }}", ports.join(", ")),
                format!("-p {proto} {dports}"),
            )
        }
    }
}

/// The rule to insert before the deciding drop, in the ruleset's syntax:
/// the flow's peer addresses (a multicast flow's group as destination),
/// protocol and ports, with the flow id as comment.
fn fix(
    flow: &PlannedFlow,
    host: &PlannedHost,
    hop: &Hop,
    failed: &ProbeResult,
    iptables: bool,
) -> Fix {
    let inbound = host.runs(&flow.to.id) && !host.runs(&flow.from.id);
    let peer = if inbound { &flow.from } else { &flow.to };
    let v6 = failed.probe.destination.is_ipv6();
    let family_nets = |nets: &[IpNet]| -> Vec<String> {
        nets.iter()
            .filter(|n| matches!(n, IpNet::V6(_)) == v6)
            .map(portolan_spec::plan::net_text)
            .collect()
    };
    // (source, destination) addresses to match.
    let (saddr, daddr): (Vec<String>, Vec<String>) = match flow.multicast {
        Some(group) if failed.side == Side::Inbound => {
            (family_nets(&flow.from.nets), vec![group.to_string()])
        }
        Some(group) => (Vec::new(), vec![group.to_string()]),
        None if peer.any => (Vec::new(), Vec::new()),
        None if inbound => (family_nets(&peer.nets), Vec::new()),
        None => (Vec::new(), family_nets(&peer.nets)),
    };
    let comment = flow.id.replace(['"', '\\', '\n', '\r'], "_");
    let (nft_match, ipt_match) = traffic_match(flow, v6);
    let text = if iptables {
        let mut addr = String::new();
        if !saddr.is_empty() {
            addr.push_str(&format!(" -s {}", saddr.join(",")));
        }
        if !daddr.is_empty() {
            addr.push_str(&format!(" -d {}", daddr.join(",")));
        }
        let ipt_match = if ipt_match.is_empty() {
            String::new()
        } else {
            format!(" {ipt_match}")
        };
        format!(
            "-I {}{addr}{ipt_match} -m comment --comment \"{comment}\" -j ACCEPT",
            hop.chain
        )
    } else {
        let family_word = if v6 { "ip6" } else { "ip" };
        let mut addr = String::new();
        if !saddr.is_empty() {
            addr.push_str(&format!("{family_word} saddr {{ {} }} ", saddr.join(", ")));
        }
        if !daddr.is_empty() {
            addr.push_str(&format!("{family_word} daddr {{ {} }} ", daddr.join(", ")));
        }
        let verb = if matches!(hop.decider, Decider::Policy) {
            "add"
        } else {
            "insert"
        };
        let nft_match = if nft_match.is_empty() {
            String::new()
        } else {
            format!("{nft_match} ")
        };
        format!(
            "{verb} rule {} {} {} {addr}{nft_match}accept comment \"{comment}\"",
            hop.family, hop.table, hop.chain
        )
    };
    Fix {
        flow: flow.id.clone(),
        text,
    }
}

/// Whether a hop is in a table written by iptables-restore (iptables-nft):
/// its rules are reported and fixed in iptables syntax.
fn is_iptables_table(twin: &Twin, hop: &Hop) -> bool {
    twin.iptables
        && matches!(hop.family.as_str(), "ip" | "ip6")
        && matches!(
            hop.table.as_str(),
            "filter" | "nat" | "mangle" | "raw" | "security"
        )
}
