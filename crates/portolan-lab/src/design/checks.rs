//! The checks of a run: flows that must pass, flows of features that are
//! off, ports and echo not granted, multicast not granted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use portolan_spec::plan::Plan;
use portolan_spec::Spec;

use super::flows::LabFlow;
use super::model::{
    Check, CheckKind, Expect, Family, Listens, Node, NotChecked, Transport, FAMILIES,
};
use super::options::LabOptions;
use super::oracle::Oracle;

pub(super) struct Builder<'a> {
    pub(super) spec: &'a Spec,
    pub(super) options: &'a LabOptions,
    pub(super) nodes: &'a [Node],
    pub(super) plan: &'a Plan,
    pub(super) oracle: Oracle<'a>,
    pub(super) listens: Vec<Listens>,
    pub(super) checks: Vec<Check>,
    pub(super) not_checked: Vec<NotChecked>,
    pub(super) samples: Vec<String>,
    pub(super) outside: usize,
    /// Per host: sampled ports no flow names.
    pub(super) other_samples: Vec<BTreeSet<(Transport, u16)>>,
}

/// A check being built, before its id.
pub(super) struct Draft {
    pub(super) kind: CheckKind,
    pub(super) expect: Expect,
    pub(super) flow: Option<String>,
    pub(super) required: Option<bool>,
    pub(super) condition: Option<String>,
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) to_party: String,
    pub(super) protocol: Transport,
    pub(super) family: Family,
    pub(super) port: u16,
    pub(super) name: Option<String>,
    pub(super) source_port: Option<u16>,
    pub(super) note: Option<String>,
}

impl Draft {
    /// A check of `flow` from host `s` to host `d` with `probe` (transport,
    /// port, family); nothing else set.
    pub(super) fn of_flow(
        flow: &LabFlow,
        kind: CheckKind,
        expect: Expect,
        (s, d): (usize, usize),
        (protocol, port, family): (Transport, u16, Family),
    ) -> Draft {
        Draft {
            kind,
            expect,
            flow: Some(flow.id.clone()),
            required: None,
            condition: None,
            from: s,
            to: d,
            to_party: flow.to_party.clone(),
            protocol,
            family,
            port,
            name: flow.name.clone(),
            source_port: flow.source_port,
            note: None,
        }
    }
}

impl<'a> Builder<'a> {
    /// A builder with no check yet.
    pub(super) fn new(
        spec: &'a Spec,
        options: &'a LabOptions,
        nodes: &'a [Node],
        plan: &'a Plan,
        outside: usize,
    ) -> Self {
        Builder {
            spec,
            options,
            nodes,
            plan,
            oracle: Oracle::new(plan, nodes),
            listens: vec![Listens::default(); nodes.len()],
            checks: Vec::new(),
            not_checked: Vec::new(),
            samples: Vec::new(),
            outside,
            other_samples: vec![BTreeSet::new(); nodes.len()],
        }
    }

    /// Every check of the run, in order: the flows, the flows of features
    /// that are off, what no flow grants, multicast no flow grants.
    pub(super) fn build(&mut self, probe_names: &BTreeMap<String, String>) {
        let flows = self.lab_flows(probe_names);
        self.add_listens(&flows);
        self.flow_checks(&flows);
        let explicit = self.feature_off_checks(&flows);
        self.negative_checks(&explicit);
        self.multicast_negative_checks(&flows);
    }
    pub(super) fn push(&mut self, draft: Draft) {
        let from = &self.nodes[draft.from];
        let to = &self.nodes[draft.to];
        let probe = format!("c{}", self.checks.len() + 1);
        self.checks.push(Check {
            probe,
            kind: draft.kind,
            expect: draft.expect,
            flow: draft.flow,
            required: draft.required,
            condition: draft.condition,
            from: from.party.clone(),
            to: draft.to_party,
            from_host: from.host.clone(),
            to_host: to.host.clone(),
            protocol: draft.protocol,
            family: draft.family,
            target: SocketAddr::new(to.ip(draft.family), draft.port),
            name: draft.name,
            source_port: draft.source_port,
            receivers: Vec::new(),
            note: draft.note,
        });
    }

    /// The families both hosts have an address of their own in.
    pub(super) fn common_families(&self, s: usize, d: usize) -> Vec<Family> {
        FAMILIES
            .into_iter()
            .filter(|&f| self.nodes[s].has(f) && self.nodes[d].has(f))
            .collect()
    }

    pub(super) fn oracle(&self) -> &Oracle<'_> {
        &self.oracle
    }

    pub(super) fn flow_checks(&mut self, flows: &[LabFlow]) {
        for flow in flows.iter().filter(|f| f.enabled) {
            if let Some(reason) = &flow.unusable {
                self.not_checked.push(NotChecked {
                    flow: Some(flow.id.clone()),
                    what: "the flow".to_owned(),
                    reason: reason.clone(),
                });
                continue;
            }
            if let Some(group) = flow.multicast {
                for &s in &flow.from {
                    for &(_, port) in &flow.sample {
                        self.push_multicast(
                            s,
                            group,
                            port,
                            flow.to.clone(),
                            CheckKind::Flow,
                            Some(flow),
                            &flow.to_party,
                        );
                    }
                }
                continue;
            }
            for &s in &flow.from {
                for &d in &flow.to {
                    for &(transport, port) in &flow.sample {
                        for family in self.common_families(s, d) {
                            let note = (s == d).then(|| {
                                "same host: travels over loopback, which every firewall admits"
                                    .to_owned()
                            });
                            let probe = (transport, port, family);
                            self.push(Draft {
                                required: Some(flow.required),
                                note,
                                ..Draft::of_flow(flow, CheckKind::Flow, Expect::Open, (s, d), probe)
                            });
                        }
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_multicast(
        &mut self,
        s: usize,
        group: IpAddr,
        port: u16,
        receivers: Vec<usize>,
        kind: CheckKind,
        flow: Option<&LabFlow>,
        to_party: &str,
    ) {
        let family = if group.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        };
        let from = &self.nodes[s];
        if !from.has(family) {
            // A machine without an address of the group's family.
            return;
        }
        let probe = format!("c{}", self.checks.len() + 1);
        let mut receivers: Vec<String> = receivers
            .iter()
            .filter(|&&r| self.nodes[r].has(family))
            .map(|&r| self.nodes[r].host.clone())
            .collect();
        receivers.sort();
        let expect = if receivers.is_empty() {
            Expect::Blocked
        } else {
            Expect::Open
        };
        self.checks.push(Check {
            probe,
            kind,
            expect,
            flow: flow.map(|f| f.id.clone()),
            required: flow.filter(|f| f.enabled).map(|f| f.required),
            condition: flow
                .filter(|f| !f.enabled)
                .and_then(|f| f.condition.clone()),
            from: from.party.clone(),
            to: to_party.to_owned(),
            from_host: from.host.clone(),
            to_host: SocketAddr::new(group, port).to_string(),
            protocol: Transport::Multicast,
            family,
            target: SocketAddr::new(group, port),
            name: None,
            source_port: flow.and_then(|f| f.source_port),
            receivers,
            note: None,
        });
    }
}
