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

mod probe;
mod ruleset;
mod twin;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use portolan_lab::trace::{Decider, Hop, HopVerdict, TRACE_TABLE};
use portolan_spec::plan::{Endpoint, Plan, PlannedFlow, PlannedHost};
use portolan_spec::Protocol;

pub use ruleset::{HostRuleset, RulesetFormat};

use crate::error::VerifyError;
use crate::flow_traffic_text;
use crate::model::{Direction, Excess, Fix, FlowCheck, InputKind, RuleRef, Section, Verdict};
use probe::{Outcome, Probe, Transport};
use twin::{Twin, PEERS, TWIN};

/// Ports probed for excess between every pair (besides ports the plan
/// grants between them): services commonly left open.
pub const SAMPLED_PORTS: &[u16] = &[22, 80, 443, 3306, 5432, 6379, 8080, 9100, 27017, 50000];

/// What a probe is for.
#[derive(Debug, Clone)]
enum Purpose {
    /// A planned flow (index into `Plan::flows`).
    Flow(usize),
    /// A negative probe: from or to this peer (id and addresses text).
    Excess {
        peer: String,
        peers: String,
        any: bool,
        outbound: bool,
    },
}

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
                    crate::Position::file(&mine[0].file),
                    format!("`{name}` is not a host of the deployment"),
                )
            })?;
            verify_host(plan, host, &mine)
        })
        .collect()
}

/// The address that stands for a block (its first host address).
fn stand_in(net: &IpNet) -> IpAddr {
    if net.prefix_len() == net.max_prefix_len() || net.prefix_len() + 1 >= net.max_prefix_len() {
        return net.addr();
    }
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + 1)),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + 1)),
    }
}

/// An address for "any address" that no endpoint of the plan holds.
fn any_address(plan: &Plan, v6: bool) -> IpAddr {
    let taken = |ip: &IpAddr| {
        plan.components
            .iter()
            .chain(plan.flows.iter().map(|f| &f.to))
            .any(|e| !e.any && e.nets.iter().any(|n| n.contains(ip)))
    };
    (1..=254u16)
        .map(|i| {
            if v6 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x7700 + i))
            } else {
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, i as u8))
            }
        })
        .find(|ip| !taken(ip))
        .unwrap_or(if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0xffff))
        } else {
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 255))
        })
}

/// An end's stand-in addresses: (IPv4, IPv6).
fn addresses(plan: &Plan, end: &Endpoint) -> (Option<IpAddr>, Option<IpAddr>) {
    if end.any {
        return (
            Some(any_address(plan, false)),
            Some(any_address(plan, true)),
        );
    }
    (end.v4().next().map(stand_in), end.v6().next().map(stand_in))
}

/// Ports to probe for a flow: all of a range of up to three, else both ends
/// and the middle; every port: 1, 32768 and 65535.
fn sampled(flow: &PlannedFlow) -> Vec<u16> {
    let ranges = if flow.ports.is_empty() {
        vec![portolan_spec::PortRange {
            start: 1,
            end: 65535,
        }]
    } else {
        flow.ports.clone()
    };
    let mut out = Vec::new();
    for r in ranges {
        if r.len() <= 3 {
            out.extend(r.start..=r.end);
        } else {
            out.extend([r.start, r.start + (r.end - r.start) / 2, r.end]);
        }
    }
    out.dedup();
    out
}

/// An iptables-nft rule by handle, in iptables syntax with its comment
/// (nft does not print the comments of iptables rules): the chain's rules
/// listed by `nft -a` (handles, in order) and by `iptables -S` (same
/// order).
fn iptables_rule(twin: &Twin, hop: &Hop, handle: u64) -> Option<(String, Option<String>)> {
    let run = |program: &str, args: &[&str]| -> Option<String> {
        let mut command = std::process::Command::new(program);
        command.args(args);
        let out = twin.lab.exec(TWIN, command).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let listing = run(
        "nft",
        &["-a", "list", "chain", &hop.family, &hop.table, &hop.chain],
    )?;
    let position = listing
        .lines()
        .filter(|l| l.contains(" # handle ") && !l.trim_start().starts_with("chain "))
        .position(|l| l.trim_end().ends_with(&format!("# handle {handle}")))?;
    let program = if hop.family == "ip6" {
        "ip6tables"
    } else {
        "iptables"
    };
    let rules = run(program, &["-t", &hop.table, "-S", &hop.chain])?;
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

fn untested(flow: &PlannedFlow, why: impl Into<String>) -> FlowCheck {
    FlowCheck {
        flow: flow.id.clone(),
        from: flow.from.id.clone(),
        to: flow.to.id.clone(),
        traffic: flow_traffic_text(flow),
        required: flow.required,
        verdict: Verdict::Untested,
        rules: Vec::new(),
        detail: why.into(),
    }
}

struct Plans {
    probes: Vec<(Purpose, bool, Probe)>,
    checks: Vec<Option<FlowCheck>>,
    host_addrs: BTreeSet<IpAddr>,
    peer_addrs: BTreeSet<IpAddr>,
}

/// Whether two ends are at the same addresses (one host), in any order.
fn same_addresses(a: &Endpoint, b: &Endpoint) -> bool {
    let sorted = |e: &Endpoint| {
        let mut nets = e.nets.clone();
        nets.sort();
        nets
    };
    !a.nets.is_empty() && sorted(a) == sorted(b)
}

/// Which flows touch the host, and the probes that check them.
fn plan_probes(plan: &Plan, host: &PlannedHost) -> Plans {
    let (h4, h6) = (
        host.nets
            .iter()
            .find(|n| matches!(n, IpNet::V4(_)))
            .map(stand_in),
        host.nets
            .iter()
            .find(|n| matches!(n, IpNet::V6(_)))
            .map(stand_in),
    );
    let mut p = Plans {
        probes: Vec::new(),
        checks: Vec::new(),
        host_addrs: BTreeSet::new(),
        peer_addrs: BTreeSet::new(),
    };
    p.host_addrs.extend(h4.iter().chain(h6.iter()));
    for (index, flow) in plan.flows.iter().enumerate() {
        let to_here = flow.to.is_component() && host.runs(&flow.to.id);
        let from_here = host.runs(&flow.from.id);
        if !to_here && !from_here {
            p.checks.push(None);
            continue;
        }
        let check = if flow.local {
            Some(FlowCheck {
                verdict: Verdict::NotGoverned,
                ..untested(flow, "local: both ends on this machine (loopback)")
            })
        } else if to_here && from_here {
            Some(untested(
                flow,
                "both ends run on this host (a group of machines): the twin is one machine",
            ))
        } else if flow.multicast.is_some() {
            Some(untested(flow, "multicast is not probed in the twin"))
        } else if !matches!(flow.protocol, Protocol::Tcp | Protocol::Udp) {
            Some(untested(
                flow,
                format!(
                    "{} flows are not probed in the twin (TCP and UDP are)",
                    flow.protocol
                ),
            ))
        } else {
            None
        };
        if check.is_some() {
            p.checks.push(check);
            continue;
        }
        let peer = if to_here { &flow.from } else { &flow.to };
        let (p4, p6) = addresses(plan, peer);
        let families: Vec<(IpAddr, IpAddr)> = [(h4, p4), (h6, p6)]
            .into_iter()
            .filter_map(|(h, q)| Some((h?, q?)))
            .collect();
        if families.is_empty() {
            let why = if peer.nets.is_empty() && !peer.any {
                format!("{} has no address in the deployment (only names): give it addresses to check this flow", peer.id)
            } else {
                "the host and its peer share no address family".to_owned()
            };
            p.checks.push(Some(untested(flow, why)));
            continue;
        }
        let transport = if flow.protocol == Protocol::Tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let source_port = flow.source_ports.first().map_or(0, |r| r.start);
        for (h, q) in families {
            p.peer_addrs.insert(q);
            for port in sampled(flow) {
                let (source, destination) = if to_here {
                    (SocketAddr::new(q, source_port), SocketAddr::new(h, port))
                } else {
                    (SocketAddr::new(h, source_port), SocketAddr::new(q, port))
                };
                p.probes.push((
                    Purpose::Flow(index),
                    from_here,
                    Probe {
                        transport,
                        source,
                        destination,
                    },
                ));
            }
        }
        p.checks.push(None);
    }
    // Negative probes: every peer of the host, and any address, both ways.
    let mut peers: Vec<&Endpoint> = Vec::new();
    for f in &plan.flows {
        for e in [&f.from, &f.to] {
            // One peer per address set: components sharing a host are one.
            let seen = peers
                .iter()
                .any(|x| x.id == e.id || (x.any == e.any && same_addresses(x, e)));
            if !host.runs(&e.id) && !seen && (e.any || !e.nets.is_empty()) {
                peers.push(e);
            }
        }
    }
    let any = Endpoint {
        id: "(any address)".into(),
        name: "any address".into(),
        kind: portolan_spec::plan::EndpointKind::Outside,
        any: true,
        nets: Vec::new(),
        hosts: Vec::new(),
        patterns: Vec::new(),
        kubernetes: None,
        aws: None,
        span: None,
    };
    if !peers.iter().any(|e| e.any) {
        peers.push(&any);
    }
    for peer in peers {
        let (p4, p6) = addresses(plan, peer);
        let Some((h, q)) = [(h4, p4), (h6, p6)]
            .into_iter()
            .find_map(|(h, q)| Some((h?, q?)))
        else {
            continue;
        };
        p.peer_addrs.insert(q);
        for outbound in [false, true] {
            // Ports the plan grants between the peer and the host in this
            // direction (0: every port), which are not excess; a flow from
            // or to any address grants them to every peer.
            let granted: BTreeSet<u16> = plan
                .flows
                .iter()
                .filter(|f| {
                    let (here, there) = if outbound {
                        (&f.from, &f.to)
                    } else {
                        (&f.to, &f.from)
                    };
                    host.runs(&here.id)
                        && (there.id == peer.id || there.any || same_addresses(there, peer))
                        && matches!(f.protocol, Protocol::Tcp | Protocol::Any)
                })
                .flat_map(|f| {
                    if f.ports.is_empty() || f.protocol == Protocol::Any {
                        vec![0u16]
                    } else {
                        f.ports.iter().flat_map(|r| r.start..=r.end).collect()
                    }
                })
                .collect();
            if granted.contains(&0) {
                continue;
            }
            for &port in SAMPLED_PORTS.iter().filter(|port| !granted.contains(port)) {
                let (source, destination) = if outbound {
                    (SocketAddr::new(h, 0), SocketAddr::new(q, port))
                } else {
                    (SocketAddr::new(q, 0), SocketAddr::new(h, port))
                };
                p.probes.push((
                    Purpose::Excess {
                        peer: peer.id.clone(),
                        peers: peer.addresses_text(),
                        any: peer.any,
                        outbound,
                    },
                    outbound,
                    Probe {
                        transport: Transport::Tcp,
                        source,
                        destination,
                    },
                ));
            }
        }
    }
    p
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
    let inbound: Vec<&Probe> = planned
        .probes
        .iter()
        .filter(|p| !p.1)
        .map(|p| &p.2)
        .collect();
    let outbound: Vec<&Probe> = planned
        .probes
        .iter()
        .filter(|p| p.1)
        .map(|p| &p.2)
        .collect();
    let outcomes_in;
    let outcomes_out;
    {
        let _twin_listens = probe::listen(&twin.lab, TWIN, &inbound, &token)?;
        let _peers_listen = probe::listen(&twin.lab, PEERS, &outbound, &token)?;
        outcomes_in = probe::send(
            &twin.lab,
            PEERS,
            inbound.iter().map(|p| **p).collect(),
            &token,
        )?;
        outcomes_out = probe::send(
            &twin.lab,
            TWIN,
            outbound.iter().map(|p| **p).collect(),
            &token,
        )?;
    }
    let (mut i, mut o) = (outcomes_in.into_iter(), outcomes_out.into_iter());
    let results: Vec<(&Purpose, &Probe, Outcome)> = planned
        .probes
        .iter()
        .map(|(purpose, out, probe)| {
            let outcome = if *out { o.next() } else { i.next() };
            (
                purpose,
                probe,
                outcome.unwrap_or_else(|| Outcome {
                    open: false,
                    key: None,
                    error: Some("not sent".into()),
                }),
            )
        })
        .collect();
    for (index, flow) in plan.flows.iter().enumerate() {
        if let Some(check) = &planned.checks[index] {
            section.checks.push(check.clone());
            continue;
        }
        let mine: Vec<&(&Purpose, &Probe, Outcome)> = results
            .iter()
            .filter(|r| matches!(r.0, Purpose::Flow(x) if *x == index))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let (check, fix) = flow_check(&twin, host, flow, &mine);
        section.checks.push(check);
        section.fixes.extend(fix);
    }
    for (purpose, probe, outcome) in &results {
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

/// A flow's verdict from its probes: admitted when every probe was
/// answered (the accepts that let it through), else blocked by the traced
/// drop of the first failing probe.
fn flow_check(
    twin: &Twin,
    host: &PlannedHost,
    flow: &PlannedFlow,
    probes: &[&(&Purpose, &Probe, Outcome)],
) -> (FlowCheck, Option<Fix>) {
    let mut check = untested(flow, "");
    let failed: Vec<&&(&Purpose, &Probe, Outcome)> = probes.iter().filter(|p| !p.2.open).collect();
    if failed.is_empty() {
        check.verdict = Verdict::Admitted;
        let mut rules: Vec<RuleRef> = Vec::new();
        for p in probes {
            for hop in hops(twin, &p.2) {
                let r = rule_ref(twin, &host.name, &hop);
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
        }
        check.detail = format!(
            "{} probe(s) answered through host {}",
            probes.len(),
            host.name
        );
        check.rules = rules;
        return (check, None);
    }
    check.verdict = Verdict::Blocked;
    let first = failed[0];
    let drop = hops(twin, &first.2)
        .into_iter()
        .find(|h| h.verdict == HopVerdict::Drop);
    let what = format!(
        "{} {} -> {}",
        match first.1.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        },
        first.1.source,
        first.1.destination
    );
    let error = first.2.error.clone().unwrap_or_default();
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
    let fix = drop.map(|hop| fix(flow, host, &hop, first.1, is_iptables_table(twin, &hop)));
    (check, fix)
}

/// The rule to insert before the deciding drop, in the ruleset's syntax.
fn fix(flow: &PlannedFlow, host: &PlannedHost, hop: &Hop, probe: &Probe, iptables: bool) -> Fix {
    let inbound = host.runs(&flow.to.id) && !host.runs(&flow.from.id);
    let peer = if inbound { &flow.from } else { &flow.to };
    let proto = if flow.protocol == Protocol::Udp {
        "udp"
    } else {
        "tcp"
    };
    let ports: Vec<String> = if flow.ports.is_empty() {
        vec!["1-65535".into()]
    } else {
        flow.ports.iter().map(|r| r.to_string()).collect()
    };
    let v6 = probe.destination.is_ipv6();
    let nets: Vec<String> = if peer.any {
        Vec::new()
    } else {
        peer.nets
            .iter()
            .filter(|n| matches!(n, IpNet::V6(_)) == v6)
            .map(portolan_spec::plan::net_text)
            .collect()
    };
    let comment = flow.id.replace(['"', '\\', '\n', '\r'], "_");
    let text = if iptables {
        let addr_flag = if inbound { "-s" } else { "-d" };
        let addr = if nets.is_empty() {
            String::new()
        } else {
            format!(" {addr_flag} {}", nets.join(","))
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
        format!(
            "-I {}{addr} -p {proto} {dports} -m comment --comment \"{comment}\" -j ACCEPT",
            hop.chain
        )
    } else {
        let family_word = if v6 { "ip6" } else { "ip" };
        let dir = if inbound { "saddr" } else { "daddr" };
        let addr = if nets.is_empty() {
            String::new()
        } else {
            format!("{family_word} {dir} {{ {} }} ", nets.join(", "))
        };
        let verb = if matches!(hop.decider, Decider::Policy) {
            "add"
        } else {
            "insert"
        };
        format!(
            "{verb} rule {} {} {} {addr}{proto} dport {{ {} }} accept comment \"{comment}\"",
            hop.family,
            hop.table,
            hop.chain,
            ports.join(", ")
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
