//! Grants and requests: whether a policy's rules cover a required flow, and
//! what they cover beyond the required flows.
//!
//! A rule grants traffic from (or to) a set of [`Peers`] over a set of
//! protocols × ports; a flow requests the same shape. Coverage is decided
//! cell by cell: the protocol and port axes are cut at every boundary of
//! every grant, so each cell is wholly inside or wholly outside each grant,
//! and in each cell the union of the granted peers must hold the requested
//! peers. NetworkPolicy rules and security-group permissions both reduce to
//! grants, so one piece of code decides both.

use std::collections::BTreeSet;

use crate::sets::{NetSet, RangeSet};

/// Who a rule admits: addresses, components matched by identity (pod
/// labels, security groups), or everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers {
    /// Addresses.
    pub nets: NetSet,
    /// Components matched by identity, by id.
    pub ids: BTreeSet<String>,
    /// Every peer, whatever its address or identity (a rule without peers).
    pub everyone: bool,
}

impl Peers {
    /// Every peer.
    pub fn everyone() -> Self {
        Self {
            everyone: true,
            ..Self::default()
        }
    }

    /// Addresses only.
    pub fn nets(nets: NetSet) -> Self {
        Self {
            nets,
            ..Self::default()
        }
    }

    /// One component by identity.
    pub fn id(id: &str) -> Self {
        Self {
            ids: BTreeSet::from([id.to_owned()]),
            ..Self::default()
        }
    }

    /// Whether it admits nobody.
    pub fn is_empty(&self) -> bool {
        !self.everyone && self.nets.is_empty() && self.ids.is_empty()
    }

    fn union_with(&mut self, other: &Peers) {
        self.everyone |= other.everyone;
        self.nets = self.nets.union(&other.nets);
        self.ids.extend(other.ids.iter().cloned());
    }

    /// Whether every peer of `other` is in `self`.
    pub fn contains_all(&self, other: &Peers) -> bool {
        self.everyone
            || (!other.everyone
                && self.nets.contains_all(&other.nets)
                && other.ids.is_subset(&self.ids))
    }

    /// The peers of `self` that are not in `other` (`everyone` minus
    /// anything short of everyone stays `everyone`: the report says so).
    pub fn difference(&self, other: &Peers) -> Peers {
        if other.everyone {
            return Peers::default();
        }
        Peers {
            nets: self.nets.difference(&other.nets),
            ids: self.ids.difference(&other.ids).cloned().collect(),
            everyone: self.everyone,
        }
    }

    /// Whether they share a peer.
    pub fn intersects(&self, other: &Peers) -> bool {
        (self.everyone && !other.is_empty())
            || (other.everyone && !self.is_empty())
            || self.nets.intersection(&other.nets) != NetSet::empty()
            || !self.ids.is_disjoint(&other.ids)
    }
}

/// Protocol numbers (IANA).
pub mod proto {
    /// ICMP.
    pub const ICMP: u128 = 1;
    /// TCP.
    pub const TCP: u128 = 6;
    /// UDP.
    pub const UDP: u128 = 17;
    /// ICMPv6.
    pub const ICMPV6: u128 = 58;
    /// SCTP.
    pub const SCTP: u128 = 132;
    /// The largest protocol number.
    pub const MAX: u128 = 255;
}

/// The largest port (or ICMP type) number.
pub const MAX_PORT: u128 = 65535;

/// Protocols × ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// Protocol numbers.
    pub protocols: RangeSet,
    /// Ports (ICMP: types).
    pub ports: RangeSet,
}

impl Traffic {
    /// Every protocol, every port.
    pub fn all() -> Self {
        Self {
            protocols: RangeSet::range(0, proto::MAX),
            ports: RangeSet::range(0, MAX_PORT),
        }
    }

    /// One protocol over some ports.
    pub fn of(protocol: u128, ports: RangeSet) -> Self {
        Self {
            protocols: RangeSet::range(protocol, protocol),
            ports,
        }
    }
}

/// What one rule grants, and which rule it is (an index the caller keeps).
#[derive(Debug, Clone)]
pub struct Grant {
    /// Who.
    pub peers: Peers,
    /// What.
    pub traffic: Traffic,
    /// The rule, as an index into the caller's table of rules.
    pub rule: usize,
}

/// What a flow needs: any one of `alternatives` covered in every cell of
/// `traffic` (a component may be matched by its group or by its address).
#[derive(Debug, Clone)]
pub struct Request {
    /// Ways of naming the peer; covering one of them is enough.
    pub alternatives: Vec<Peers>,
    /// The flow's traffic (one or more protocol × port shapes).
    pub traffic: Vec<Traffic>,
}

/// Part of a request no grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Peers not covered (of the first alternative).
    pub peers: Peers,
    /// In this part of the traffic.
    pub traffic: Traffic,
}

/// Cuts `set` at every start and after every end of `cuts`' ranges.
fn cells(set: &RangeSet, cuts: &[&RangeSet]) -> Vec<(u128, u128)> {
    let mut points: BTreeSet<u128> = BTreeSet::new();
    for c in cuts {
        for &(s, e) in c.ranges() {
            points.insert(s);
            if e < u128::MAX {
                points.insert(e + 1);
            }
        }
    }
    let mut out = Vec::new();
    for &(s, e) in set.ranges() {
        let mut start = s;
        let inner = if s < e {
            points.range(s + 1..=e).copied().collect()
        } else {
            Vec::new()
        };
        for p in inner {
            out.push((start, p - 1));
            start = p;
        }
        out.push((start, e));
    }
    out
}

fn holds(set: &RangeSet, cell: (u128, u128)) -> bool {
    set.contains_all(&RangeSet::range(cell.0, cell.1))
}

/// The parts of `request` that `grants` leave uncovered (empty: admitted).
pub fn gaps(grants: &[&Grant], request: &Request) -> Vec<Gap> {
    let protocol_cuts: Vec<&RangeSet> = grants.iter().map(|g| &g.traffic.protocols).collect();
    let port_cuts: Vec<&RangeSet> = grants.iter().map(|g| &g.traffic.ports).collect();
    let mut out: Vec<Gap> = Vec::new();
    for shape in &request.traffic {
        for pc in cells(&shape.protocols, &protocol_cuts) {
            let in_protocol: Vec<&&Grant> = grants
                .iter()
                .filter(|g| holds(&g.traffic.protocols, pc))
                .collect();
            for qc in cells(&shape.ports, &port_cuts) {
                let mut covered = Peers::default();
                for g in in_protocol.iter().filter(|g| holds(&g.traffic.ports, qc)) {
                    covered.union_with(&g.peers);
                }
                if request.alternatives.iter().any(|a| covered.contains_all(a)) {
                    continue;
                }
                let missing = request.alternatives[0].difference(&covered);
                push_gap(
                    &mut out,
                    Gap {
                        peers: missing,
                        traffic: Traffic {
                            protocols: RangeSet::range(pc.0, pc.1),
                            ports: RangeSet::range(qc.0, qc.1),
                        },
                    },
                );
            }
        }
    }
    out
}

/// Adds a gap, merged with the previous one when only the ports differ.
fn push_gap(out: &mut Vec<Gap>, gap: Gap) {
    if let Some(last) = out.last_mut() {
        if last.peers == gap.peers && last.traffic.protocols == gap.traffic.protocols {
            last.traffic.ports = last.traffic.ports.union(&gap.traffic.ports);
            return;
        }
    }
    out.push(gap);
}

/// The grants among `grants` that admit some of `request` (for the report:
/// which rules let it through).
pub fn admitting(grants: &[&Grant], request: &Request) -> Vec<usize> {
    let mut rules: Vec<usize> = grants
        .iter()
        .filter(|g| {
            request.alternatives.iter().any(|a| g.peers.intersects(a))
                && request.traffic.iter().any(|t| {
                    g.traffic.protocols.intersects(&t.protocols)
                        && g.traffic.ports.intersects(&t.ports)
                })
        })
        .map(|g| g.rule)
        .collect();
    rules.dedup();
    rules
}

/// What `grant` admits beyond every request in `required`: the excess,
/// cell by cell (peers granted but not required in that cell).
pub fn excess(grant: &Grant, required: &[&Request]) -> Vec<Gap> {
    let mut protocol_cuts: Vec<&RangeSet> = Vec::new();
    let mut port_cuts: Vec<&RangeSet> = Vec::new();
    for r in required {
        for t in &r.traffic {
            protocol_cuts.push(&t.protocols);
            port_cuts.push(&t.ports);
        }
    }
    let mut out = Vec::new();
    for pc in cells(&grant.traffic.protocols, &protocol_cuts) {
        for qc in cells(&grant.traffic.ports, &port_cuts) {
            let mut needed = Peers::default();
            for r in required {
                if r.traffic
                    .iter()
                    .any(|t| holds(&t.protocols, pc) && holds(&t.ports, qc))
                {
                    for a in &r.alternatives {
                        needed.union_with(a);
                    }
                }
            }
            let beyond = grant.peers.difference(&needed);
            if beyond.is_empty() {
                continue;
            }
            push_gap(
                &mut out,
                Gap {
                    peers: beyond,
                    traffic: Traffic {
                        protocols: RangeSet::range(pc.0, pc.1),
                        ports: RangeSet::range(qc.0, qc.1),
                    },
                },
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn nets(list: &[&str]) -> NetSet {
        let parsed: Vec<IpNet> = list.iter().map(|s| s.parse().unwrap()).collect();
        NetSet::of(&parsed)
    }

    fn tcp(ports: (u128, u128)) -> Traffic {
        Traffic::of(proto::TCP, RangeSet::range(ports.0, ports.1))
    }

    #[test]
    fn two_grants_together_cover_a_range() {
        // 8000-8049 from one rule and 8050-8100 from another: covered.
        let a = Grant {
            peers: Peers::nets(nets(&["10.0.0.0/8"])),
            traffic: tcp((8000, 8049)),
            rule: 0,
        };
        let b = Grant {
            peers: Peers::nets(nets(&["10.0.0.0/8"])),
            traffic: tcp((8050, 8100)),
            rule: 1,
        };
        let request = Request {
            alternatives: vec![Peers::nets(nets(&["10.1.2.3/32"]))],
            traffic: vec![tcp((8000, 8100))],
        };
        assert!(gaps(&[&a, &b], &request).is_empty());
        assert_eq!(admitting(&[&a, &b], &request), [0, 1]);
        // Without the second rule, 8050-8100 is the gap.
        let g = gaps(&[&a], &request);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].traffic.ports, RangeSet::range(8050, 8100));
    }

    #[test]
    fn excess_is_granted_minus_required() {
        let grant = Grant {
            peers: Peers::nets(nets(&["192.0.2.0/24"])),
            traffic: tcp((1, 1024)),
            rule: 0,
        };
        let need = Request {
            alternatives: vec![Peers::nets(nets(&["192.0.2.10/32"]))],
            traffic: vec![tcp((443, 443))],
        };
        let e = excess(&grant, &[&need]);
        // Other ports from the whole /24, then 443 from the /24 without .10.
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].traffic.ports, RangeSet::range(1, 442));
        assert_eq!(
            e[1].peers.nets,
            nets(&["192.0.2.0/24"]).difference(&nets(&["192.0.2.10/32"]))
        );
        assert_eq!(e[2].traffic.ports, RangeSet::range(444, 1024));
    }

    #[test]
    fn an_alternative_is_enough() {
        let by_group = Grant {
            peers: Peers::id("api"),
            traffic: tcp((5432, 5432)),
            rule: 0,
        };
        let request = Request {
            alternatives: vec![Peers::id("api"), Peers::nets(nets(&["10.0.0.5/32"]))],
            traffic: vec![tcp((5432, 5432))],
        };
        assert!(gaps(&[&by_group], &request).is_empty());
    }
}
