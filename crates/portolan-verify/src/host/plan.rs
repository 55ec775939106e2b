//! Which probes check a host's flows: the planned flows to and from the
//! host (TCP, UDP, ICMP echo, multicast; flows between two of its own
//! components over loopback, or between two of its machines across the
//! wire), and the negative probes that look for excess.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use portolan_spec::plan::{Endpoint, Plan, PlannedFlow, PlannedHost};
use portolan_spec::Protocol;

use super::probe::{MulticastProbe, Probe, Transport};
use crate::flow_traffic_text;
use crate::model::{FlowCheck, Verdict};

/// Ports probed for excess between every pair (besides ports the plan
/// grants between them): services commonly left open.
pub const SAMPLED_PORTS: &[u16] = &[22, 80, 443, 3306, 5432, 6379, 8080, 9100, 27017, 50000];

/// What a probe is for.
#[derive(Debug, Clone)]
pub(super) enum Purpose {
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

/// Where a probe is sent from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Side {
    /// From the peers' namespace to the twin.
    Inbound,
    /// From the twin to the peers' namespace.
    Outbound,
    /// From the twin to one of its own addresses: over loopback.
    Local,
}

/// The probes of one host, and the checks decided without probing.
pub(super) struct Plans {
    pub probes: Vec<(Purpose, Side, Probe)>,
    /// Multicast datagrams, each for a flow (index into `Plan::flows`).
    pub multicast: Vec<(usize, MulticastProbe)>,
    pub checks: Vec<Option<FlowCheck>>,
    pub host_addrs: BTreeSet<IpAddr>,
    pub peer_addrs: BTreeSet<IpAddr>,
}

/// The address that stands for a block (its first host address).
pub(super) fn stand_in(net: &IpNet) -> IpAddr {
    if net.prefix_len() == net.max_prefix_len() || net.prefix_len() + 1 >= net.max_prefix_len() {
        return net.addr();
    }
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) + 1)),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + 1)),
    }
}

/// Another machine of a host that is a group of machines, in the family
/// of `first` (the twin's own address): its second address, or the second
/// host address of its block. `None` when the host is one address there.
fn other_member(host: &PlannedHost, first: IpAddr) -> Option<IpAddr> {
    let family: Vec<&IpNet> = host
        .nets
        .iter()
        .filter(|n| n.addr().is_ipv4() == first.is_ipv4())
        .collect();
    if let Some(second) = family.iter().map(|n| stand_in(n)).find(|ip| *ip != first) {
        return Some(second);
    }
    let net = family.first()?;
    let next = match stand_in(net) {
        IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(u32::from(ip).checked_add(1)?)),
        IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from(u128::from(ip).checked_add(1)?)),
    };
    (net.contains(&next) && next != net.broadcast()).then_some(next)
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

/// The probes of a flow's traffic: (transport, destination port). A flow
/// of every protocol is sampled as TCP and UDP on its sampled ports and an
/// ICMP echo (port 0).
fn samples(flow: &PlannedFlow) -> Vec<(Transport, u16)> {
    let transports: &[Transport] = match flow.protocol {
        Protocol::Tcp => &[Transport::Tcp],
        Protocol::Udp => &[Transport::Udp],
        Protocol::Icmp => return vec![(Transport::Icmp, 0)],
        Protocol::Any => &[Transport::Tcp, Transport::Udp],
    };
    let mut out: Vec<(Transport, u16)> = transports
        .iter()
        .flat_map(|t| sampled(flow).into_iter().map(move |port| (*t, port)))
        .collect();
    if flow.protocol == Protocol::Any {
        out.push((Transport::Icmp, 0));
    }
    out
}

/// A check decided without a probe (the detail says why): never a pass.
pub(super) fn untested(flow: &PlannedFlow, why: impl Into<String>) -> FlowCheck {
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

/// Whether two ends are at the same addresses (one host), in any order.
fn same_addresses(a: &Endpoint, b: &Endpoint) -> bool {
    let sorted = |e: &Endpoint| {
        let mut nets = e.nets.clone();
        nets.sort();
        nets
    };
    !a.nets.is_empty() && sorted(a) == sorted(b)
}

/// The probes of a unicast flow, for each (side, the host's address, the
/// peer's address) of `pairs`.
fn unicast(p: &mut Plans, index: usize, flow: &PlannedFlow, pairs: &[(Side, IpAddr, IpAddr)]) {
    let source_port = flow.source_ports.first().map_or(0, |r| r.start);
    for &(side, here, there) in pairs {
        if side != Side::Local {
            p.peer_addrs.insert(there);
        }
        for (transport, port) in samples(flow) {
            let source_port = if transport == Transport::Icmp {
                0
            } else {
                source_port
            };
            let (source, destination) = match side {
                Side::Inbound => (
                    SocketAddr::new(there, source_port),
                    SocketAddr::new(here, port),
                ),
                Side::Outbound | Side::Local => (
                    SocketAddr::new(here, source_port),
                    SocketAddr::new(there, port),
                ),
            };
            p.probes.push((
                Purpose::Flow(index),
                side,
                Probe {
                    transport,
                    source,
                    destination,
                },
            ));
        }
    }
}

/// Which flows touch the host, and the probes that check them.
pub(super) fn plan_probes(plan: &Plan, host: &PlannedHost) -> Plans {
    let first = |v4: bool| {
        host.nets
            .iter()
            .find(|n| n.addr().is_ipv4() == v4)
            .map(stand_in)
    };
    let (h4, h6) = (first(true), first(false));
    let mut p = Plans {
        probes: Vec::new(),
        multicast: Vec::new(),
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
        let check = plan_flow(
            &mut p,
            plan,
            host,
            index,
            flow,
            to_here,
            from_here,
            (h4, h6),
        );
        p.checks.push(check);
    }
    negative_probes(&mut p, plan, host, h4, h6);
    p
}

/// The probes of one flow of the host; or its check when it cannot be probed.
#[allow(clippy::too_many_arguments)]
fn plan_flow(
    p: &mut Plans,
    plan: &Plan,
    host: &PlannedHost,
    index: usize,
    flow: &PlannedFlow,
    to_here: bool,
    from_here: bool,
    (h4, h6): (Option<IpAddr>, Option<IpAddr>),
) -> Option<FlowCheck> {
    let own: Vec<IpAddr> = h4.iter().chain(h6.iter()).copied().collect();
    if let Some(group) = flow.multicast {
        return plan_multicast(p, plan, host, index, flow, group, to_here, from_here, &own);
    }
    if own.is_empty() {
        return Some(untested(flow, format!("host {} has no address", host.name)));
    }
    let mut pairs = Vec::new();
    if to_here && from_here {
        // Two components of one machine (or a component with itself):
        // over loopback, to the host's own address. Two machines of a
        // group: across the wire, both ways (each machine's input and
        // output rules are the same ruleset).
        for &here in &own {
            match other_member(host, here).filter(|_| !flow.local) {
                Some(other) => {
                    pairs.push((Side::Inbound, here, other));
                    pairs.push((Side::Outbound, here, other));
                }
                None => pairs.push((Side::Local, here, here)),
            }
        }
    } else {
        let peer = if to_here { &flow.from } else { &flow.to };
        let (p4, p6) = addresses(plan, peer);
        let side = if to_here {
            Side::Inbound
        } else {
            Side::Outbound
        };
        for (h, q) in [(h4, p4), (h6, p6)] {
            if let (Some(h), Some(q)) = (h, q) {
                pairs.push((side, h, q));
            }
        }
        if pairs.is_empty() {
            let why = if peer.nets.is_empty() && !peer.any {
                format!("{} has no address in the deployment (only names): give it addresses to check this flow", peer.id)
            } else {
                "the host and its peer share no address family".to_owned()
            };
            return Some(untested(flow, why));
        }
    }
    unicast(p, index, flow, &pairs);
    None
}

/// A multicast flow: the host sends datagrams to the group (its output
/// rules), receives them from the sender (its input rules), or both.
#[allow(clippy::too_many_arguments)]
fn plan_multicast(
    p: &mut Plans,
    plan: &Plan,
    host: &PlannedHost,
    index: usize,
    flow: &PlannedFlow,
    group: IpAddr,
    to_here: bool,
    from_here: bool,
    own: &[IpAddr],
) -> Option<FlowCheck> {
    if group.is_ipv6() {
        return Some(untested(
            flow,
            "IPv6 multicast is not probed in the twin (IPv4 groups are)",
        ));
    }
    let Some(here) = own.iter().copied().find(IpAddr::is_ipv4) else {
        return Some(untested(
            flow,
            "the host has no IPv4 address for an IPv4 group",
        ));
    };
    let port = flow.ports.first().map_or(9, |r| r.start);
    if from_here {
        p.multicast.push((
            index,
            MulticastProbe {
                outbound: true,
                source: here,
                group: SocketAddr::new(group, port),
            },
        ));
    }
    if to_here {
        let sender = if from_here {
            other_member(host, here)
        } else {
            addresses(plan, &flow.from).0
        };
        let Some(sender) = sender else {
            return Some(untested(
                flow,
                "the sender has no other IPv4 address than the host's: a datagram to itself never crosses the host's input rules",
            ));
        };
        p.peer_addrs.insert(sender);
        p.multicast.push((
            index,
            MulticastProbe {
                outbound: false,
                source: sender,
                group: SocketAddr::new(group, port),
            },
        ));
    }
    None
}

/// Negative probes: every peer of the host, and any address, both ways.
fn negative_probes(
    p: &mut Plans,
    plan: &Plan,
    host: &PlannedHost,
    h4: Option<IpAddr>,
    h6: Option<IpAddr>,
) {
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
            let granted = granted_ports(plan, host, peer, outbound);
            if granted.contains(&0) {
                continue;
            }
            for &port in SAMPLED_PORTS.iter().filter(|port| !granted.contains(port)) {
                let (side, source, destination) = if outbound {
                    (
                        Side::Outbound,
                        SocketAddr::new(h, 0),
                        SocketAddr::new(q, port),
                    )
                } else {
                    (
                        Side::Inbound,
                        SocketAddr::new(q, 0),
                        SocketAddr::new(h, port),
                    )
                };
                p.probes.push((
                    Purpose::Excess {
                        peer: peer.id.clone(),
                        peers: peer.addresses_text(),
                        any: peer.any,
                        outbound,
                    },
                    side,
                    Probe {
                        transport: Transport::Tcp,
                        source,
                        destination,
                    },
                ));
            }
        }
    }
}

/// TCP ports the plan grants between the peer and the host in this
/// direction (0: every port), which are not excess; a flow from or to any
/// address grants them to every peer.
fn granted_ports(
    plan: &Plan,
    host: &PlannedHost,
    peer: &Endpoint,
    outbound: bool,
) -> BTreeSet<u16> {
    plan.flows
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
        .collect()
}
