//! The spec's flows in lab terms: which hosts send and receive each, its
//! sampled ports, and what each host listens on.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use portolan_spec::deployment::Deployment;
use portolan_spec::plan::{EndpointKind, LeftOut, LeftOutReason, OffFlow, PlannedFlow};
use portolan_spec::{ComponentKind, ExternalId, PortRange};

use super::checks::Builder;
use super::model::{Role, Transport};
use super::sample::{sample_ports, Rng};

/// A flow of the spec in lab terms.
#[derive(Debug, Clone)]
pub(super) struct LabFlow {
    pub(super) id: String,
    pub(super) enabled: bool,
    pub(super) required: bool,
    pub(super) condition: Option<String>,
    pub(super) from: Vec<usize>,
    pub(super) to_party: String,
    pub(super) to: Vec<usize>,
    pub(super) name: Option<String>,
    pub(super) source_port: Option<u16>,
    pub(super) multicast: Option<IpAddr>,
    /// Sampled (transport, port) pairs.
    pub(super) sample: Vec<(Transport, u16)>,
    /// Why no check can be made, if so.
    pub(super) unusable: Option<String>,
}

/// Why a flow cannot be checked when an end has no host.
const NO_HOST: &str = "an end of the flow has no host in the lab";

/// Where a flow of the lab comes from in the plan.
enum Source<'p> {
    /// A flow that exists.
    On(&'p PlannedFlow),
    /// A flow whose feature is off.
    Off(&'p OffFlow),
    /// A flow left out for another reason.
    Left(&'p LeftOut),
}

impl Builder<'_> {
    pub(super) fn nodes_of_component(&self, id: &str) -> Vec<usize> {
        let kind = self
            .spec
            .components
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.kind);
        if kind == Some(ComponentKind::External) {
            return vec![self.outside];
        }
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].component() == Some(id))
            .collect()
    }

    pub(super) fn node_of_external(&self, id: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(
                |&i| matches!(&self.nodes[i].role, Role::External { external } if external == id),
            )
            .collect()
    }

    /// Every flow of the spec in lab terms, in spec order, from the plan:
    /// the flows that exist, those whose feature is off (planned as though
    /// it were on), and those left out for another reason (not checked).
    pub(super) fn lab_flows(&mut self, probe_names: &BTreeMap<String, String>) -> Vec<LabFlow> {
        let plan = self.plan;
        let off: HashSet<usize> = plan.off_flows.iter().map(|f| f.flow.flow).collect();
        let mut sources: Vec<(usize, Source<'_>)> = plan
            .flows
            .iter()
            .map(|f| (f.flow, Source::On(f)))
            .chain(plan.off_flows.iter().map(|f| (f.flow.flow, Source::Off(f))))
            .chain(
                plan.left_out
                    .iter()
                    .filter(|l| !off.contains(&l.flow))
                    .map(|l| (l.flow, Source::Left(l))),
            )
            .collect();
        sources.sort_by_key(|(index, _)| *index);
        sources
            .into_iter()
            .map(|(_, source)| match source {
                Source::On(flow) => self.planned_flow(flow, None, probe_names),
                Source::Off(off) => {
                    self.planned_flow(&off.flow, Some(off.condition.clone()), probe_names)
                }
                Source::Left(left) => self.left_out_flow(left),
            })
            .collect()
    }

    /// A flow of the plan (`condition`: its feature is off) in lab terms,
    /// its ports sampled.
    fn planned_flow(
        &mut self,
        flow: &PlannedFlow,
        condition: Option<String>,
        probe_names: &BTreeMap<String, String>,
    ) -> LabFlow {
        let enabled = condition.is_none();
        let from = self.nodes_of_component(&flow.from.id);
        let id = flow.to.id.clone();
        let (to_party, mut to, mut name) = match flow.to.kind {
            EndpointKind::External => {
                let name = probe_names.get(&id).cloned();
                (id.clone(), self.node_of_external(&id), name)
            }
            EndpointKind::Outside => (
                self.nodes[self.outside].party.clone(),
                self.nodes_of_component(&id),
                None,
            ),
            EndpointKind::System | EndpointKind::Dependency => {
                (id.clone(), self.nodes_of_component(&id), None)
            }
        };
        let mut ports = flow.written_ports.clone();
        let mut unusable = None;
        if let Some(deployment) = &self.options.deployment {
            match self.placed_destination(flow, deployment) {
                Ok(Some((proxy, port))) => {
                    to = vec![proxy];
                    name = None;
                    ports = vec![PortRange::single(port)];
                }
                Ok(None) => {}
                // A flow that must be blocked is probed to the
                // endpoint's lab host all the same.
                Err(reason) if enabled => unusable = Some(reason),
                Err(_) => {}
            }
            if let Some(reason) = self.outside_misplaced(flow) {
                unusable = Some(reason);
            }
        }
        if from.is_empty() || to.is_empty() {
            unusable = Some(NO_HOST.to_owned());
        }
        let mut rng = Rng::new(self.options.seed, &flow.id);
        let (sample, note) = sample_ports(flow.protocol, &ports, &mut rng);
        if let Some(note) = note {
            self.samples.push(format!("{}: {note}", flow.id));
        }
        LabFlow {
            id: flow.id.clone(),
            enabled,
            required: flow.required,
            condition,
            from,
            to_party,
            to,
            name,
            source_port: flow.written_source_ports.first().map(|r| r.start),
            multicast: flow.multicast,
            sample,
            unusable,
        }
    }

    /// A flow the plan leaves out for a reason other than its feature: the
    /// lab reports it as not checked. (A flow whose feature is off is left
    /// out of `Plan::off_flows` only when a port parameter has no value.)
    fn left_out_flow(&self, left: &LeftOut) -> LabFlow {
        let enabled = !matches!(left.reason, LeftOutReason::FeatureOff { .. });
        let from = self.nodes_of_component(&left.from);
        let to = if self.spec.component_by_id(&left.to).is_some() {
            self.nodes_of_component(&left.to)
        } else {
            self.node_of_external(&left.to)
        };
        let reason = if from.is_empty() || to.is_empty() {
            NO_HOST.to_owned()
        } else if enabled {
            left.reason.to_string()
        } else {
            "a port parameter has no value".to_owned()
        };
        LabFlow {
            id: left.id.clone(),
            enabled,
            required: left.required,
            condition: None,
            from,
            to_party: left.to.clone(),
            to,
            name: None,
            source_port: None,
            multicast: None,
            sample: Vec::new(),
            unusable: Some(reason),
        }
    }

    /// In a lab of the user's deployment, where a flow to an external
    /// endpoint goes: `Some((proxy host, port))` when the plan sends it
    /// through a proxy, `None` to the endpoint itself; an error when the lab
    /// cannot probe it.
    fn placed_destination(
        &self,
        flow: &PlannedFlow,
        deployment: &Deployment,
    ) -> Result<Option<(usize, u16)>, String> {
        if flow.to.kind != EndpointKind::External {
            return Ok(None);
        }
        let external = &flow.to.id;
        if let Some(via) = &flow.via_proxy {
            let Some(net) = flow.to.nets.first() else {
                return Err(format!(
                    "the deployment's proxy of `{external}` is a name ({}); the lab proves proxies given by address",
                    via.proxy
                ));
            };
            let address = net.addr().to_string();
            let port = flow.ports.first().map_or(0, |r| r.start);
            return match self
                .nodes
                .iter()
                .position(|n| matches!(&n.role, Role::Proxy { address: a } if *a == address))
            {
                Some(node) => Ok(Some((node, port))),
                None => Err(format!("no lab host for the proxy {}", via.proxy)),
            };
        }
        // The deployment's own addresses: an address the spec gives is not
        // where the lab's host for the endpoint stands.
        let placement = self
            .spec
            .externals
            .iter()
            .position(|e| e.id == *external)
            .and_then(|e| deployment.externals.get(&ExternalId(e)));
        let has_address = placement.is_some_and(|p| {
            p.addresses
                .iter()
                .any(|a| matches!(a, portolan_spec::deployment::Address::Net(_)))
        });
        if !has_address {
            return Err(format!(
                "the deployment gives `{external}` no address; host firewalls cannot match names, so the lab proves flows to addresses"
            ));
        }
        Ok(None)
    }

    /// In a lab of the user's deployment, why a flow of an outside-world
    /// component cannot be probed: the deployment places that component
    /// elsewhere than the lab's outside host stands.
    fn outside_misplaced(&self, flow: &PlannedFlow) -> Option<String> {
        let outside = &self.nodes[self.outside];
        for end in [&flow.from, &flow.to] {
            // Without addresses the outside world is any address.
            if end.kind != EndpointKind::Outside || end.any || end.nets.is_empty() {
                continue;
            }
            if !outside
                .addresses()
                .iter()
                .any(|ip| end.nets.iter().any(|n| n.contains(ip)))
            {
                return Some(format!(
                    "the lab's outside world stands at {}, not among the addresses the deployment gives `{}`",
                    outside
                        .addresses()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    end.id
                ));
            }
        }
        None
    }

    pub(super) fn add_listens(&mut self, flows: &[LabFlow]) {
        for flow in flows.iter().filter(|f| f.unusable.is_none()) {
            for &d in &flow.to {
                for &(transport, port) in &flow.sample {
                    let listens = &mut self.listens[d];
                    match (flow.multicast, transport) {
                        (Some(group), _) => {
                            listens.multicast.insert((group, port));
                        }
                        (None, Transport::Tcp) => {
                            listens.tcp.insert(port);
                        }
                        // The destination's kernel answers echo requests.
                        (None, Transport::Icmp) => {}
                        (None, _) => {
                            listens.udp.insert(port);
                        }
                    }
                }
            }
        }
        // Sampled ports nothing names, per host.
        let k = self.options.other_ports;
        let tcp_count = (k * 2).div_ceil(3);
        for (i, node) in self.nodes.iter().enumerate() {
            let mut rng = Rng::new(self.options.seed, &format!("other-ports/{}", node.party));
            for n in 0..k {
                let transport = if n < tcp_count {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                let listens = &self.listens[i];
                let port =
                    rng.port(|p| listens.tcp.contains(&p) || listens.udp.contains(&p) || p == 53);
                self.other_samples[i].insert((transport, port));
                match transport {
                    Transport::Tcp => self.listens[i].tcp.insert(port),
                    _ => self.listens[i].udp.insert(port),
                };
            }
        }
        // UDP ports a host also sends from share the port with its probes.
        for flow in flows.iter().filter(|f| f.unusable.is_none()) {
            let Some(sport) = flow.source_port else {
                continue;
            };
            if flow.multicast.is_some() {
                continue;
            }
            for &s in &flow.from {
                let listens = &mut self.listens[s];
                if listens.udp.remove(&sport) {
                    listens.udp_shared.insert(sport);
                }
            }
        }
        let outside = &mut self.listens[self.outside];
        outside.dns = true;
        outside.udp.remove(&crate::dns::DNS_PORT);
        outside.udp_shared.remove(&crate::dns::DNS_PORT);
    }
}
