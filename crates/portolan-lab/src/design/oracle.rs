//! What the firewalls must admit, decided from the plan alone.

use std::collections::HashMap;
use std::net::IpAddr;

use portolan_spec::plan::{Endpoint, Plan, PlannedFlow};
use portolan_spec::{PortRange, Protocol};

use super::model::{Family, Node, Transport};

/// What the firewalls must admit, from the plan: traffic passes when the
/// sender's output and the receiver's input each have a flow that admits it
/// (hosts without a firewall admit everything; a host talking to itself
/// uses loopback, which every ruleset admits).
pub(super) struct Oracle<'a> {
    pub(super) nodes: &'a [Node],
    /// Unicast flows by source component: the output rules of its hosts.
    pub(super) outputs: HashMap<&'a str, Vec<&'a PlannedFlow>>,
    /// Unicast flows by destination component: the input rules of its hosts.
    pub(super) inputs: HashMap<&'a str, Vec<&'a PlannedFlow>>,
    /// Multicast flows.
    pub(super) multicast: Vec<&'a PlannedFlow>,
}

impl<'a> Oracle<'a> {
    pub(super) fn new(plan: &'a Plan, nodes: &'a [Node]) -> Self {
        let mut outputs: HashMap<&str, Vec<&PlannedFlow>> = HashMap::new();
        let mut inputs: HashMap<&str, Vec<&PlannedFlow>> = HashMap::new();
        let mut multicast = Vec::new();
        for flow in &plan.flows {
            if flow.multicast.is_some() {
                multicast.push(flow);
                continue;
            }
            outputs.entry(flow.from.id.as_str()).or_default().push(flow);
            if flow.to.is_component() {
                inputs.entry(flow.to.id.as_str()).or_default().push(flow);
            }
        }
        Oracle {
            nodes,
            outputs,
            inputs,
            multicast,
        }
    }
}

pub(super) fn contains(endpoint: &Endpoint, ip: IpAddr) -> bool {
    endpoint.nets.iter().any(|n| n.contains(&ip))
}

pub(super) fn ports_admit(ports: &[PortRange], port: Option<u16>) -> bool {
    match port {
        _ if ports.is_empty() => true,
        Some(p) => ports.iter().any(|r| r.contains(p)),
        None => false,
    }
}

pub(super) fn protocol_admits(protocol: Protocol, transport: Transport) -> bool {
    match protocol {
        Protocol::Any => true,
        Protocol::Tcp => transport == Transport::Tcp,
        Protocol::Udp => matches!(transport, Transport::Udp | Transport::Multicast),
        Protocol::Icmp => transport == Transport::Icmp,
    }
}

/// Whether a flow's protocol and ports admit the traffic (not its ends).
fn admits(flow: &PlannedFlow, transport: Transport, sport: Option<u16>, port: u16) -> bool {
    protocol_admits(flow.protocol, transport)
        && ports_admit(&flow.ports, Some(port))
        && ports_admit(&flow.source_ports, sport)
}

/// The flows of one side's rules that admit the traffic by protocol and
/// ports.
fn side<'s>(
    flows: Option<&'s Vec<&'s PlannedFlow>>,
    transport: Transport,
    sport: Option<u16>,
    port: u16,
) -> impl Iterator<Item = &'s PlannedFlow> + 's {
    flows
        .into_iter()
        .flatten()
        .copied()
        .filter(move |f| admits(f, transport, sport, port))
}

impl Oracle<'_> {
    /// The flows of each side that admit the traffic: the output rules of
    /// `s`'s component, the input rules of `d`'s (`None` for a host
    /// without firewall).
    fn admitting(
        &self,
        s: usize,
        d: usize,
        transport: Transport,
        sport: Option<u16>,
        port: u16,
        family: Family,
    ) -> (
        Option<impl Iterator<Item = &PlannedFlow> + '_>,
        Option<impl Iterator<Item = &PlannedFlow> + '_>,
    ) {
        let (src, dst) = (&self.nodes[s], &self.nodes[d]);
        let (sip, dip) = (src.ip(family), dst.ip(family));
        let output = src.component().map(|c| {
            side(self.outputs.get(c), transport, sport, port).filter(move |f| contains(&f.to, dip))
        });
        let input = dst.component().map(|c| {
            side(self.inputs.get(c), transport, sport, port).filter(move |f| contains(&f.from, sip))
        });
        (output, input)
    }

    /// The flows that admit the traffic on each side (`None` for a side
    /// without firewall), or why not.
    pub(super) fn sides(
        &self,
        s: usize,
        d: usize,
        transport: Transport,
        sport: Option<u16>,
        port: u16,
        family: Family,
    ) -> (Option<Vec<&str>>, Option<Vec<&str>>) {
        let (output, input) = self.admitting(s, d, transport, sport, port, family);
        (
            output.map(|f| f.map(|f| f.id.as_str()).collect()),
            input.map(|f| f.map(|f| f.id.as_str()).collect()),
        )
    }

    /// Whether the firewalls on both sides admit the traffic.
    pub(super) fn allowed(
        &self,
        s: usize,
        d: usize,
        transport: Transport,
        sport: Option<u16>,
        port: u16,
        family: Family,
    ) -> bool {
        if s == d {
            return true;
        }
        // The same as `granting(..).is_some()`, without building the text:
        // this runs for every candidate negative probe.
        let (output, input) = self.admitting(s, d, transport, sport, port, family);
        output.is_none_or(|mut f| f.next().is_some())
            && input.is_none_or(|mut f| f.next().is_some())
    }

    /// When allowed, the flows that allow it, as text.
    pub(super) fn granting(
        &self,
        s: usize,
        d: usize,
        transport: Transport,
        sport: Option<u16>,
        port: u16,
        family: Family,
    ) -> Option<String> {
        if s == d {
            return Some("(loopback)".to_owned());
        }
        let (output, input) = self.sides(s, d, transport, sport, port, family);
        fn side(flows: Option<Vec<&str>>) -> Option<Vec<&str>> {
            match flows {
                None => Some(Vec::new()),
                Some(f) if f.is_empty() => None,
                Some(f) => Some(f),
            }
        }
        let mut all = side(output)?;
        for f in side(input)? {
            if !all.contains(&f) {
                all.push(f);
            }
        }
        Some(if all.is_empty() {
            "(no firewall on either side)".to_owned()
        } else {
            all.join(", ")
        })
    }

    /// Whether a datagram from `s` to the group reaches receiver `r`.
    pub(super) fn multicast_receives(&self, s: usize, r: usize, group: IpAddr, port: u16) -> bool {
        let (src, rcv) = (&self.nodes[s], &self.nodes[r]);
        let sip = match group {
            IpAddr::V4(_) => IpAddr::V4(src.ipv4),
            IpAddr::V6(_) => IpAddr::V6(src.ipv6),
        };
        let admits = |f: &&&PlannedFlow| {
            f.multicast == Some(group)
                && protocol_admits(f.protocol, Transport::Multicast)
                && ports_admit(&f.ports, Some(port))
                && f.source_ports.is_empty()
        };
        let output = src
            .component()
            .is_none_or(|c| self.multicast.iter().filter(admits).any(|f| f.from.id == c));
        let input = rcv.component().is_none_or(|c| {
            self.multicast
                .iter()
                .filter(admits)
                .any(|f| f.to.id == c && contains(&f.from, sip))
        });
        output && input
    }
}
