//! The checks that must be blocked: flows of features that are off, ports
//! and echo no flow grants a source, multicast groups no flow grants it.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use super::checks::{Builder, Draft};
use super::flows::LabFlow;
use super::model::{CheckKind, Expect, Family, NotChecked, Role, Transport};
use super::sample::fnv;

/// A negative probe not yet made into a check.
type Candidate = (Transport, u16, Family);

/// A probe already made: source host, destination host, transport, port,
/// family.
pub(super) type ProbeKey = (usize, usize, Transport, u16, Family);

/// The negative probes of one ordered pair of hosts: source, destination,
/// the destination's party, and what no flow admits.
type Pair = (usize, usize, String, Vec<Candidate>);

/// A party: its name, its hosts, and whether it sends.
type Party = (String, Vec<usize>, bool);

/// Fewest negative probes per pair of parties when the total is bounded.
pub(super) const MIN_NEGATIVE_PER_PAIR: usize = 4;

/// What is not checked of a flow whose feature is off.
const OFF_FLOW: &str = "blocking of the flow (its feature is off)";

impl Builder<'_> {
    /// Checks of flows whose feature is off; returns their keys so that the
    /// pair-wise negative probes do not repeat them.
    pub(super) fn feature_off_checks(&mut self, flows: &[LabFlow]) -> HashSet<ProbeKey> {
        let mut keys = HashSet::new();
        for flow in flows.iter().filter(|f| !f.enabled) {
            if let Some(reason) = &flow.unusable {
                self.not_checked.push(NotChecked {
                    flow: Some(flow.id.clone()),
                    what: OFF_FLOW.to_owned(),
                    reason: reason.clone(),
                });
                continue;
            }
            match flow.multicast {
                Some(group) => self.feature_off_multicast(flow, group),
                None => self.feature_off_unicast(flow, &mut keys),
            }
        }
        keys
    }

    /// A multicast flow whose feature is off: its first source's datagrams
    /// must reach no receiver, unless an enabled flow grants them.
    fn feature_off_multicast(&mut self, flow: &LabFlow, group: IpAddr) {
        let s = flow.from[0];
        for &(_, port) in &flow.sample {
            let granted = (0..self.nodes.len())
                .filter(|&r| self.listens[r].multicast.contains(&(group, port)))
                .any(|r| self.oracle().multicast_receives(s, r, group, port));
            if granted {
                self.not_checked.push(NotChecked {
                    flow: Some(flow.id.clone()),
                    what: format!(
                        "blocking of multicast {group}:{port} from {}",
                        self.nodes[s].host
                    ),
                    reason: "an enabled flow grants it".to_owned(),
                });
                continue;
            }
            self.push_multicast(
                s,
                group,
                port,
                Vec::new(),
                CheckKind::FeatureOff,
                Some(flow),
                &flow.to_party,
            );
        }
    }

    /// A unicast flow whose feature is off, from its first source to its
    /// first other host: blocked, unless an enabled flow allows it.
    fn feature_off_unicast(&mut self, flow: &LabFlow, keys: &mut HashSet<ProbeKey>) {
        let s = flow.from[0];
        let Some(d) = flow.to.iter().copied().find(|&d| d != s) else {
            self.not_checked.push(NotChecked {
                flow: Some(flow.id.clone()),
                what: OFF_FLOW.to_owned(),
                reason: "its only source and destination are the same host, and loopback passes every firewall (use --replicas 2)".to_owned(),
            });
            return;
        };
        for &(transport, port) in &flow.sample {
            for family in self.common_families(s, d) {
                let oracle = self.oracle();
                if let Some(granting) =
                    oracle.granting(s, d, transport, flow.source_port, port, family)
                {
                    self.not_checked.push(NotChecked {
                        flow: Some(flow.id.clone()),
                        what: format!(
                            "blocking of {}/{port} {family} from {} to {} (its feature is off)",
                            transport.as_str(),
                            self.nodes[s].host,
                            self.nodes[d].host
                        ),
                        reason: format!("allowed by enabled flow(s) {granting}"),
                    });
                    continue;
                }
                keys.insert((s, d, transport, port, family));
                let probe = (transport, port, family);
                self.push(Draft {
                    condition: flow.condition.clone(),
                    ..Draft::of_flow(flow, CheckKind::FeatureOff, Expect::Blocked, (s, d), probe)
                });
            }
        }
    }

    /// The parties that send (components, the outside world) and receive
    /// (those and the external endpoints), each with its hosts.
    fn parties(&self) -> Vec<Party> {
        let mut out: Vec<Party> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let sends = !matches!(node.role, Role::External { .. } | Role::Proxy { .. });
            match out.iter_mut().find(|(p, _, _)| *p == node.party) {
                Some((_, hosts, _)) => hosts.push(i),
                None => out.push((node.party.clone(), vec![i], sends)),
            }
        }
        out
    }

    /// For each ordered pair of parties (one host of each), every probe no
    /// flow admits, bounded per pair and in total.
    pub(super) fn negative_checks(&mut self, explicit: &HashSet<ProbeKey>) {
        let (pairs, pairs_left_out, party_pairs) = self.negative_pairs(explicit);
        let seed = self.options.seed;
        if pairs_left_out > 0 {
            self.not_checked.push(NotChecked {
                flow: None,
                what: format!(
                    "every negative probe on {pairs_left_out} of {party_pairs} ordered pairs of parties"
                ),
                reason: format!(
                    "at most about {} negative probes in all, and at least {MIN_NEGATIVE_PER_PAIR} on a pair probed: a deterministic sample of pairs (seed {seed}) in which every party probes others and is probed by others",
                    self.options.max_negative_total
                ),
            });
        }
        // Bounded: per pair, and in total (large specs get a thinner, still
        // deterministic, sample on every pair kept rather than none on some).
        let total: usize = pairs.iter().map(|p| p.3.len()).sum();
        let mut cap = self.options.max_negative_per_pair.max(1);
        if total > self.options.max_negative_total && !pairs.is_empty() {
            cap =
                cap.min((self.options.max_negative_total / pairs.len()).max(MIN_NEGATIVE_PER_PAIR));
        }
        let (mut skipped, mut thinned) = (0usize, 0usize);
        for (s, d, dest, mut candidates) in pairs {
            if candidates.len() > cap {
                skipped += candidates.len() - cap;
                thinned += 1;
                self.thin(s, d, &mut candidates, cap);
            }
            for candidate in candidates {
                self.push_negative(s, d, &dest, candidate);
            }
        }
        if skipped > 0 {
            self.not_checked.push(NotChecked {
                flow: None,
                what: format!(
                    "{skipped} of {total} negative probes, on {thinned} pairs of hosts"
                ),
                reason: format!(
                    "at most {cap} negative probes per pair of parties (at most {} per pair, about {} in all); a deterministic sample (seed {seed}) was probed on every pair",
                    self.options.max_negative_per_pair, self.options.max_negative_total
                ),
            });
        }
    }

    /// Every probe no flow admits, per ordered pair of parties that has any;
    /// with how many ordered pairs of parties were left out by the sample
    /// of pairs (see [`crate::pair_sample`]) and how many there are.
    fn negative_pairs(&self, explicit: &HashSet<ProbeKey>) -> (Vec<Pair>, usize, usize) {
        let parties = self.parties();
        // Too many pairs of parties to probe each (quadratic): a sample of
        // pairs with something to probe that leaves no party out on either
        // side.
        let seed = self.options.seed;
        let sends: Vec<bool> = parties.iter().map(|p| p.2).collect();
        let pair = |s: usize, d: usize| -> Option<Pair> {
            let (source, source_hosts, _) = &parties[s];
            let (dest, dest_hosts, _) = &parties[d];
            let s = source_hosts[(fnv(dest) % source_hosts.len() as u64) as usize];
            let mut d = dest_hosts[(fnv(source) % dest_hosts.len() as u64) as usize];
            if s == d {
                // One host: loopback passes every firewall.
                d = dest_hosts.iter().copied().find(|&h| h != s)?;
            }
            if !self.nodes[s].firewalled() && !self.nodes[d].firewalled() {
                return None;
            }
            let candidates = self.candidates(s, d, explicit);
            (!candidates.is_empty()).then(|| (s, d, dest.clone(), candidates))
        };
        let sampled = crate::pair_sample::pairs(
            &sends,
            self.options.max_negative_total / MIN_NEGATIVE_PER_PAIR,
            |s, d| fnv(&format!("{seed}/{}/{}", parties[s].0, parties[d].0)),
            |s, d| pair(s, d).is_some(),
        );
        let mut pairs = Vec::new();
        let (mut left_out, mut all) = (0usize, 0usize);
        for s in (0..parties.len()).filter(|&s| sends[s]) {
            for d in 0..parties.len() {
                all += 1;
                if sampled.as_ref().is_some_and(|keep| !keep.contains(&(s, d))) {
                    left_out += 1;
                    continue;
                }
                pairs.extend(pair(s, d));
            }
        }
        (pairs, left_out, all)
    }

    /// What `d` answers on (its listeners, and echo) that no flow admits
    /// from `s` and no check of a flow whose feature is off probes already.
    fn candidates(&self, s: usize, d: usize, explicit: &HashSet<ProbeKey>) -> Vec<Candidate> {
        let listens = &self.listens[d];
        let ports = listens
            .tcp
            .iter()
            .map(|&p| (Transport::Tcp, p))
            .chain(
                listens
                    .udp
                    .iter()
                    .chain(&listens.udp_shared)
                    .map(|&p| (Transport::Udp, p)),
            )
            .chain(
                listens
                    .dns
                    .then_some((Transport::Udp, crate::dns::DNS_PORT)),
            )
            // Every host's kernel answers ICMP echo: no listener needed.
            .chain([(Transport::Icmp, 0)]);
        let families = self.common_families(s, d);
        let mut candidates = Vec::new();
        for (transport, port) in ports {
            for &family in &families {
                if explicit.contains(&(s, d, transport, port, family))
                    || self.oracle.allowed(s, d, transport, None, port, family)
                {
                    continue;
                }
                candidates.push((transport, port, family));
            }
        }
        candidates
    }

    /// Keeps `cap` of a pair's candidates: ICMP echo first (two probes at
    /// most, and the only check of a pair's ICMP rules), then a
    /// deterministic sample of ports.
    fn thin(&self, s: usize, d: usize, candidates: &mut Vec<Candidate>, cap: usize) {
        let seed = self.options.seed;
        let key = format!("{seed}/{}/{}", self.nodes[s].host, self.nodes[d].host);
        candidates.sort_by_cached_key(|(t, p, f)| {
            (
                *t != Transport::Icmp,
                fnv(&format!("{key}/{}/{p}/{f}", t.as_str())),
            )
        });
        candidates.truncate(cap);
        candidates.sort();
    }

    /// A probe from `s` to `d` that must be blocked.
    fn push_negative(&mut self, s: usize, d: usize, dest: &str, candidate: Candidate) {
        let (transport, port, family) = candidate;
        let sampled = self.other_samples[d].contains(&(transport, port))
            || (self.listens[d].dns && port == crate::dns::DNS_PORT);
        self.push(Draft {
            kind: if transport == Transport::Icmp {
                CheckKind::EchoNotGranted
            } else if sampled {
                CheckKind::SampledPort
            } else {
                CheckKind::NotGranted
            },
            expect: Expect::Blocked,
            flow: None,
            required: None,
            condition: None,
            from: s,
            to: d,
            to_party: dest.to_owned(),
            protocol: transport,
            family,
            port,
            name: None,
            source_port: None,
            note: None,
        });
    }

    /// Datagrams to every group a usable flow uses, from each sending
    /// party that no flow grants it: they must reach no receiver.
    pub(super) fn multicast_negative_checks(&mut self, flows: &[LabFlow]) {
        let groups: BTreeSet<(IpAddr, u16)> = flows
            .iter()
            .filter(|f| f.enabled && f.unusable.is_none())
            .filter_map(|f| f.multicast.map(|g| (g, f)))
            .flat_map(|(g, f)| f.sample.iter().map(move |&(_, p)| (g, p)))
            .collect();
        let parties = self.parties();
        for (group, port) in groups {
            let receivers: Vec<usize> = (0..self.nodes.len())
                .filter(|&r| self.listens[r].multicast.contains(&(group, port)))
                .collect();
            let to_party = receivers
                .first()
                .map(|&r| self.nodes[r].party.clone())
                .unwrap_or_default();
            for (_, hosts, sends) in &parties {
                if !sends {
                    continue;
                }
                let granted = flows.iter().any(|f| {
                    f.enabled
                        && f.multicast == Some(group)
                        && f.sample.iter().any(|&(_, p)| p == port)
                        && f.from.iter().any(|s| hosts.contains(s))
                });
                if granted {
                    continue;
                }
                let s = hosts[0];
                let expected: Vec<usize> = receivers
                    .iter()
                    .copied()
                    .filter(|&r| self.oracle().multicast_receives(s, r, group, port))
                    .collect();
                if !expected.is_empty() {
                    continue;
                }
                self.push_multicast(
                    s,
                    group,
                    port,
                    Vec::new(),
                    CheckKind::MulticastNotGranted,
                    None,
                    &to_party,
                );
            }
        }
    }
}
