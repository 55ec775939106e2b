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
    set.covers(cell.0, cell.1)
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

/// Who an excess line is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExcessPeer {
    /// Every peer (a rule without peers).
    Any,
    /// One component, by id.
    Id(String),
    /// Addresses.
    Nets(NetSet),
}

/// What one grant admits beyond the required flows for one peer: the
/// protocol × port cells, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcessGroup {
    /// The peer.
    pub peer: ExcessPeer,
    /// Where it is granted and not required.
    pub cells: Vec<Traffic>,
}

/// A group under construction: cells as (protocol cell, port start, port
/// end), adjacent port cells merged as they come.
struct Building {
    peer: ExcessPeer,
    cells: Vec<((u128, u128), u128, u128)>,
}

impl Building {
    fn add(&mut self, pc: (u128, u128), qc: (u128, u128)) {
        if let Some(last) = self.cells.last_mut() {
            if last.0 == pc && last.2.checked_add(1) == Some(qc.0) {
                last.2 = qc.1;
                return;
            }
        }
        self.cells.push((pc, qc.0, qc.1));
    }
}

/// What `grant` admits beyond every request in `required`: the excess,
/// cell by cell (peers granted but not required in that cell), grouped by
/// peer in order of first appearance (in a cell: any peer, then components
/// by id, then addresses).
///
/// Components are tracked by their index in the grant, so a grant to a
/// hundred components costs a hundred look-ups per cell, never a copy of
/// the set.
pub fn excess(grant: &Grant, required: &[&Request]) -> Vec<ExcessGroup> {
    let mut protocol_cuts: Vec<&RangeSet> = Vec::new();
    let mut port_cuts: Vec<&RangeSet> = Vec::new();
    for r in required {
        for t in &r.traffic {
            protocol_cuts.push(&t.protocols);
            port_cuts.push(&t.ports);
        }
    }
    let ids: Vec<&String> = grant.peers.ids.iter().collect();
    let mut groups: Vec<Building> = Vec::new();
    let mut any_group: Option<usize> = None;
    let mut id_groups: Vec<Option<usize>> = vec![None; ids.len()];
    let mut net_groups: Vec<usize> = Vec::new();
    let port_cells = cells(&grant.traffic.ports, &port_cuts);
    for pc in cells(&grant.traffic.protocols, &protocol_cuts) {
        for &qc in &port_cells {
            let mut everyone = false;
            let mut needed_ids: BTreeSet<&str> = BTreeSet::new();
            let mut needed_nets = NetSet::empty();
            for r in required {
                if !r
                    .traffic
                    .iter()
                    .any(|t| holds(&t.protocols, pc) && holds(&t.ports, qc))
                {
                    continue;
                }
                for a in &r.alternatives {
                    everyone |= a.everyone;
                    needed_ids.extend(a.ids.iter().map(String::as_str));
                    if !grant.peers.nets.is_empty() && !a.nets.is_empty() {
                        needed_nets = needed_nets.union(&a.nets);
                    }
                }
            }
            if everyone {
                continue;
            }
            if grant.peers.everyone {
                let g = *any_group.get_or_insert_with(|| {
                    groups.push(Building {
                        peer: ExcessPeer::Any,
                        cells: Vec::new(),
                    });
                    groups.len() - 1
                });
                groups[g].add(pc, qc);
                continue;
            }
            for (i, id) in ids.iter().enumerate() {
                if needed_ids.contains(id.as_str()) {
                    continue;
                }
                let g = *id_groups[i].get_or_insert_with(|| {
                    groups.push(Building {
                        peer: ExcessPeer::Id((*id).clone()),
                        cells: Vec::new(),
                    });
                    groups.len() - 1
                });
                groups[g].add(pc, qc);
            }
            if grant.peers.nets.is_empty() {
                continue;
            }
            let beyond = grant.peers.nets.difference(&needed_nets);
            if beyond.is_empty() {
                continue;
            }
            let found = net_groups
                .iter()
                .copied()
                .find(|&g| groups[g].peer == ExcessPeer::Nets(beyond.clone()));
            let g = match found {
                Some(g) => g,
                None => {
                    groups.push(Building {
                        peer: ExcessPeer::Nets(beyond),
                        cells: Vec::new(),
                    });
                    net_groups.push(groups.len() - 1);
                    groups.len() - 1
                }
            };
            groups[g].add(pc, qc);
        }
    }
    groups
        .into_iter()
        .map(|b| ExcessGroup {
            peer: b.peer,
            cells: b
                .cells
                .into_iter()
                .map(|(pc, s, e)| Traffic {
                    protocols: RangeSet::range(pc.0, pc.1),
                    ports: RangeSet::range(s, e),
                })
                .collect(),
        })
        .collect()
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
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].peer, ExcessPeer::Nets(nets(&["192.0.2.0/24"])));
        assert_eq!(
            e[0].cells,
            [tcp((1, 442)), tcp((444, 1024))],
            "the cells apart from 443, in order"
        );
        assert_eq!(
            e[1].peer,
            ExcessPeer::Nets(nets(&["192.0.2.0/24"]).difference(&nets(&["192.0.2.10/32"])))
        );
        assert_eq!(e[1].cells, [tcp((443, 443))]);
    }

    #[test]
    fn excess_per_component_skips_the_cells_it_needs() {
        // A grant to three components over 1000-1010; api needs 1005,
        // web needs 1000-1010: web has no excess, api all but 1005.
        let grant = Grant {
            peers: Peers {
                ids: ["api", "db", "web"].map(String::from).into(),
                ..Peers::default()
            },
            traffic: tcp((1000, 1010)),
            rule: 0,
        };
        let api = Request {
            alternatives: vec![Peers::id("api")],
            traffic: vec![tcp((1005, 1005))],
        };
        let web = Request {
            alternatives: vec![Peers::id("web")],
            traffic: vec![tcp((1000, 1010))],
        };
        let e = excess(&grant, &[&api, &web]);
        assert_eq!(
            e,
            [
                ExcessGroup {
                    peer: ExcessPeer::Id("api".into()),
                    cells: vec![tcp((1000, 1004)), tcp((1006, 1010))],
                },
                ExcessGroup {
                    peer: ExcessPeer::Id("db".into()),
                    cells: vec![tcp((1000, 1010))],
                },
            ]
        );
        // A request from every peer leaves nothing.
        let all = Request {
            alternatives: vec![Peers::everyone()],
            traffic: vec![tcp((1000, 1010))],
        };
        assert!(excess(&grant, &[&all]).is_empty());
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
