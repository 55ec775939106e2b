//! Planning: a spec and a deployment resolved into concrete flows.
//!
//! [`plan`] keeps every flow whose condition holds and whose ends are placed,
//! with addresses, selectors and ports resolved ([`PlannedFlow`]); every other
//! flow is listed in [`Plan::left_out`] with the reason. A flow whose
//! feature is off is also planned as though its condition held
//! ([`Plan::off_flows`]), so that checks of its blocking work from the plan
//! too. Generators of firewall policy, the lab and preflight work from a
//! [`Plan`] only.
//!
//! Components whose address sets are equal run on one host
//! ([`Plan::hosts`]). A flow between two different components of one
//! machine is [`PlannedFlow::local`]: it stays on the machine (loopback) and
//! needs no network rule, yet it stays in the plan so that reports show it.
//!
//! Two rules keep a plan from opening more than the spec says:
//! - a component of kind `external` without addresses in the deployment is
//!   "any address", written out explicitly as `0.0.0.0/0` and `::/0` with
//!   [`Endpoint::any`] set; nothing else is ever widened;
//! - an external endpoint with a host name (or a wildcard pattern) and no
//!   addresses in the deployment stays a name: targets that cannot match
//!   names say so with a warning.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::deployment::{Address, AwsPlacement, Deployment, KubernetesSelector, Placement, Proxy};
use crate::diag::Span;
use crate::model::*;

/// A spec resolved against a deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The system's display name.
    pub system: String,
    /// The deployment's name, if it has one.
    pub deployment: Option<String>,
    /// Every component of the spec, in spec order, with its placement.
    pub components: Vec<Endpoint>,
    /// The hosts: components with addresses grouped by equal address sets,
    /// in spec order of their first component.
    pub hosts: Vec<PlannedHost>,
    /// Flows that exist in this deployment, in spec order.
    pub flows: Vec<PlannedFlow>,
    /// Flows that do not, each with the reason.
    pub left_out: Vec<LeftOut>,
    /// The flows of [`left_out`](Self::left_out) whose feature is off,
    /// planned as though their condition held: ports resolved, ends as the
    /// deployment places them (an unplaced end has no address), in spec
    /// order. They are there to check that they stay blocked (the lab does);
    /// nothing may open a rule for them. One whose port parameter has no
    /// value is not here: its ports are unknown.
    #[serde(skip)]
    pub off_flows: Vec<OffFlow>,
    /// Site flows of the deployment (`site:`), expanded to one flow per
    /// component end, each marked [`PlannedFlow::site`]; targets write them
    /// after the spec's flows (see [`Plan::all_flows`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub site_flows: Vec<PlannedFlow>,
    /// Where the deployment's `components:` section is, for diagnostics of
    /// generators about components the deployment does not place.
    #[serde(skip)]
    pub components_span: Span,
}

/// What an end of a flow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// A component that is part of the product.
    System,
    /// A component the operator provides.
    Dependency,
    /// A component of kind `external`: the outside world.
    Outside,
    /// A named external endpoint (host name, pattern, CIDR, placeholder).
    External,
}

/// One end of a flow, placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Component or external id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is.
    pub kind: EndpointKind,
    /// True when the deployment gives no address for an `outside` component:
    /// [`nets`](Self::nets) then holds exactly `0.0.0.0/0` and `::/0`.
    pub any: bool,
    /// Addresses and blocks (a single address is a /32 or /128).
    pub nets: Vec<IpNet>,
    /// DNS names, to be resolved by whoever can (not a plan's job).
    pub hosts: Vec<String>,
    /// Wildcard DNS patterns (`monitoring.*.amazonaws.com`).
    pub patterns: Vec<String>,
    /// Kubernetes pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSelector>,
    /// AWS security group or prefix list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsPlacement>,
    /// Where the deployment places it (`None`: the spec alone places it, or nothing does).
    #[serde(skip)]
    pub span: Option<Span>,
}

impl Endpoint {
    /// Whether nothing says where it is.
    pub fn is_unplaced(&self) -> bool {
        !self.any
            && self.nets.is_empty()
            && self.hosts.is_empty()
            && self.patterns.is_empty()
            && self.kubernetes.is_none()
            && self.aws.is_none()
    }

    /// The IPv4 blocks.
    pub fn v4(&self) -> impl Iterator<Item = &IpNet> {
        self.nets.iter().filter(|n| matches!(n, IpNet::V4(_)))
    }

    /// The IPv6 blocks.
    pub fn v6(&self) -> impl Iterator<Item = &IpNet> {
        self.nets.iter().filter(|n| matches!(n, IpNet::V6(_)))
    }

    /// Whether it is a component (not a named external endpoint).
    pub fn is_component(&self) -> bool {
        self.kind != EndpointKind::External
    }

    /// Addresses, names and patterns for a person, `any` for the outside world.
    pub fn addresses_text(&self) -> String {
        if self.any {
            return "any (0.0.0.0/0, ::/0)".to_owned();
        }
        let mut parts: Vec<String> = self.nets.iter().map(net_text).collect();
        parts.extend(self.hosts.iter().cloned());
        parts.extend(self.patterns.iter().cloned());
        if let Some(k) = &self.kubernetes {
            let labels: Vec<String> = k
                .pod_selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("k8s {}/{{{}}}", k.namespace, labels.join(",")));
        }
        if let Some(a) = &self.aws {
            if let Some(sg) = &a.security_group {
                parts.push(format!("sg {sg}"));
            }
            if let Some(pl) = &a.prefix_list {
                parts.push(format!("prefix list {pl}"));
            }
        }
        if parts.is_empty() {
            "(unplaced)".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Components that run on the same host (or group of hosts): their
/// address sets are equal in the deployment. Host firewalls write one
/// ruleset per host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedHost {
    /// The deployment's `host:` name, else the components' ids joined with
    /// `+`; one component alone gives its own id.
    pub name: String,
    /// Ids of the components it runs, in spec order.
    pub components: Vec<String>,
    /// Its addresses and blocks (a single address is a /32 or /128).
    pub nets: Vec<IpNet>,
    /// Its DNS names.
    pub names: Vec<String>,
    /// Whether the addresses are one machine's (at most one IPv4 and one
    /// IPv6 address and one name, no block): then flows between its
    /// components are [`PlannedFlow::local`].
    pub one_machine: bool,
    /// Where its first component is placed.
    #[serde(skip)]
    pub span: Span,
}

impl PlannedHost {
    /// Whether it runs the component `id`.
    pub fn runs(&self, id: &str) -> bool {
        self.components.iter().any(|c| c == id)
    }

    /// Its addresses for a person.
    pub fn addresses_text(&self) -> String {
        let mut parts: Vec<String> = self.nets.iter().map(net_text).collect();
        parts.extend(self.names.iter().cloned());
        parts.join(", ")
    }
}

/// A net as an address when it holds one address, else as a CIDR.
pub fn net_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// A flow that exists in the deployment, every value concrete.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFlow {
    /// The spec flow's id (`site:NAME…` for a site flow).
    pub id: String,
    /// Index of the flow in [`Spec::flows`]; for a site flow, in the
    /// deployment's site flows.
    pub flow: usize,
    /// True for a site flow: the operator's own (deployment `site:`), not
    /// the vendor's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub site: bool,
    /// Source.
    pub from: Endpoint,
    /// Destination (with a proxy: the proxy, see [`via_proxy`](Self::via_proxy)).
    pub to: Endpoint,
    /// Protocol.
    pub protocol: Protocol,
    /// Fixed source ports; empty means ephemeral (any).
    pub source_ports: Vec<PortRange>,
    /// Destination ports; empty means every port (or none: icmp, any).
    pub ports: Vec<PortRange>,
    /// The destination's ports as the checked spec lists them, resolved but
    /// not merged (with a proxy: the destination's, not the proxy's). The
    /// lab samples ports from these, so that which ports it probes does not
    /// depend on how ranges merge.
    #[serde(skip)]
    pub written_ports: Vec<PortRange>,
    /// The fixed source ports as the checked spec lists them, resolved but
    /// not merged.
    #[serde(skip)]
    pub written_source_ports: Vec<PortRange>,
    /// Multicast group the flow is sent to; `to` are its receivers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast: Option<IpAddr>,
    /// Required (true) or optional.
    pub required: bool,
    /// True when source and destination are two different components of
    /// one machine ([`PlannedHost::one_machine`]): the traffic stays on it
    /// (loopback) and host firewalls need no rule for it. Multicast flows
    /// and flows of a component to itself are never local.
    pub local: bool,
    /// Set when the deployment sends this flow through a proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_proxy: Option<ProxiedFlow>,
    /// Short label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Where the flow is written in the spec.
    #[serde(skip)]
    pub span: Span,
}

/// A flow whose feature is off, planned as though its condition held
/// (see [`Plan::off_flows`]).
#[derive(Debug, Clone)]
pub struct OffFlow {
    /// The flow. It is not in [`Plan::flows`]: nothing may open it.
    pub flow: PlannedFlow,
    /// Its `when`, as written.
    pub condition: String,
    /// Features the condition names that are off.
    pub off: Vec<String>,
    /// Features the condition names that are on (they matter under `not`).
    pub on: Vec<String>,
}

/// What a proxied flow was before the proxy replaced its destination.
#[derive(Debug, Clone, Serialize)]
pub struct ProxiedFlow {
    /// The proxy, as `address:port`.
    pub proxy: String,
    /// The endpoint the proxy reaches.
    pub destination: Endpoint,
    /// The ports the proxy reaches it on.
    pub ports: Vec<PortRange>,
}

/// A flow that does not exist in the deployment.
#[derive(Debug, Clone, Serialize)]
pub struct LeftOut {
    /// The spec flow's id.
    pub id: String,
    /// Index of the flow in [`Spec::flows`].
    pub flow: usize,
    /// Source id.
    pub from: String,
    /// Destination id.
    pub to: String,
    /// Whether the spec marks it required.
    pub required: bool,
    /// Why it is left out.
    pub reason: LeftOutReason,
    /// The reason as a sentence.
    pub message: String,
    /// Where the flow is written in the spec.
    #[serde(skip)]
    pub span: Span,
}

/// Why a flow is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LeftOutReason {
    /// Its `when` does not hold for the features enabled.
    FeatureOff {
        /// The condition, as written.
        condition: String,
        /// Features it names that are off.
        off: Vec<String>,
        /// Features it names that are on (they matter under `not`).
        on: Vec<String>,
    },
    /// An end has no placement in the deployment.
    Unplaced {
        /// Ids of the ends without placement.
        peers: Vec<String>,
    },
    /// A port parameter has neither a default nor a value.
    MissingParameter {
        /// The parameters.
        parameters: Vec<String>,
    },
}

impl fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOutReason::FeatureOff { condition, off, on } => {
                if on.is_empty() && off.len() == 1 && off[0] == *condition {
                    return write!(f, "feature off: {condition}");
                }
                write!(f, "feature off: `when: {condition}` does not hold")?;
                let mut lists = Vec::new();
                if !off.is_empty() {
                    lists.push(format!("off: {}", off.join(", ")));
                }
                if !on.is_empty() {
                    lists.push(format!("on: {}", on.join(", ")));
                }
                if lists.is_empty() {
                    Ok(())
                } else {
                    write!(f, " ({})", lists.join("; "))
                }
            }
            LeftOutReason::Unplaced { peers } => write!(
                f,
                "could not be placed: {} has no address in the deployment",
                peers
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            LeftOutReason::MissingParameter { parameters } => write!(
                f,
                "parameter {} has no default and no value",
                parameters
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl Plan {
    /// A component's placement by id.
    pub fn component(&self, id: &str) -> Option<&Endpoint> {
        self.components.iter().find(|c| c.id == id)
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> Option<&PlannedHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The host a component runs on (none without addresses, or for the outside world).
    pub fn host_of(&self, component: &str) -> Option<&PlannedHost> {
        self.hosts.iter().find(|h| h.runs(component))
    }

    /// The spec's flows, then the site flows.
    pub fn all_flows(&self) -> impl Iterator<Item = &PlannedFlow> + '_ {
        self.flows.iter().chain(&self.site_flows)
    }

    /// Flows that need a network rule (every flow but the local ones).
    pub fn network_flows(&self) -> impl Iterator<Item = &PlannedFlow> + '_ {
        self.flows.iter().filter(|f| !f.local)
    }

    /// Flows a component sends.
    pub fn flows_from<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a PlannedFlow> + 'a {
        self.flows.iter().filter(move |f| f.from.id == id)
    }

    /// Flows a component receives (multicast receivers included).
    pub fn flows_to<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a PlannedFlow> + 'a {
        self.flows
            .iter()
            .filter(move |f| f.to.is_component() && f.to.id == id)
    }
}

/// Resolves a spec against a deployment. Never fails: whatever cannot be
/// planned is in [`Plan::left_out`] with its reason. Load the deployment with
/// [`crate::deployment::load_deployment`] first to get diagnostics for
/// required flows that cannot be placed.
pub fn plan(spec: &Spec, deployment: &Deployment) -> Plan {
    let components: Vec<Endpoint> = (0..spec.components.len())
        .map(|i| component_endpoint(spec, deployment, ComponentId(i)))
        .collect();
    let hosts = planned_hosts(spec, deployment);
    let planner = FlowPlanner {
        spec,
        deployment,
        components: &components,
        machines: machines(&hosts),
    };
    let (mut flows, mut left_out, mut off_flows) = (Vec::new(), Vec::new(), Vec::new());
    for (index, flow) in spec.flows.iter().enumerate() {
        if let Some(off) = planner.feature_off(flow) {
            // Planned all the same, ends unplaced or not, so that checks of
            // its blocking work from the plan; without its ports, it cannot be.
            if let Ok(planned) = planner.resolve(index, flow, true) {
                off_flows.push(off.with(planned));
            }
            left_out.push(planner.left_out(index, flow, off.reason()));
            continue;
        }
        match planner.resolve(index, flow, false) {
            Ok(planned) => flows.push(planned),
            Err(reason) => left_out.push(planner.left_out(index, flow, reason)),
        }
    }
    let site_flows = crate::site::plan_site_flows(spec, deployment, &components);
    Plan {
        system: spec.system.name.clone(),
        deployment: deployment.name.clone(),
        components,
        hosts,
        flows,
        left_out,
        off_flows,
        site_flows,
        components_span: deployment.components_span,
    }
}

/// The deployment's hosts, their addresses split into nets and names.
fn planned_hosts(spec: &Spec, deployment: &Deployment) -> Vec<PlannedHost> {
    deployment
        .hosts(spec)
        .into_iter()
        .map(|h| {
            let (mut nets, mut names) = (Vec::new(), Vec::new());
            for address in &h.addresses {
                match address {
                    Address::Net(n) => nets.push(*n),
                    Address::Host(n) => names.push(n.clone()),
                }
            }
            PlannedHost {
                one_machine: h.is_one_machine(),
                components: h
                    .components
                    .iter()
                    .map(|c| spec.component(*c).id.clone())
                    .collect(),
                nets,
                names,
                name: h.name,
                span: h.span,
            }
        })
        .collect()
}

/// Components of one machine, each with the index of its host: a flow
/// between two of them stays on it.
fn machines(hosts: &[PlannedHost]) -> HashMap<String, usize> {
    hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.one_machine)
        .flat_map(|(i, h)| h.components.iter().map(move |c| (c.clone(), i)))
        .collect()
}

/// A flow's condition that does not hold, with the features it names.
struct Off {
    condition: String,
    off: Vec<String>,
    on: Vec<String>,
}

impl Off {
    fn reason(&self) -> LeftOutReason {
        LeftOutReason::FeatureOff {
            condition: self.condition.clone(),
            off: self.off.clone(),
            on: self.on.clone(),
        }
    }

    fn with(&self, flow: PlannedFlow) -> OffFlow {
        OffFlow {
            flow,
            condition: self.condition.clone(),
            off: self.off.clone(),
            on: self.on.clone(),
        }
    }
}

/// What planning one flow needs: the spec, the deployment, every
/// component placed, and which components share a machine.
struct FlowPlanner<'a> {
    spec: &'a Spec,
    deployment: &'a Deployment,
    components: &'a [Endpoint],
    machines: HashMap<String, usize>,
}

impl FlowPlanner<'_> {
    fn left_out(&self, index: usize, flow: &Flow, reason: LeftOutReason) -> LeftOut {
        LeftOut {
            id: flow.id.clone(),
            flow: index,
            from: self.spec.component(flow.from).id.clone(),
            to: self.spec.destination_id(flow.to).to_owned(),
            required: flow.required,
            message: reason.to_string(),
            reason,
            span: flow.span,
        }
    }

    /// Why the flow's `when` does not hold, if it does not.
    fn feature_off(&self, flow: &Flow) -> Option<Off> {
        let features = &self.deployment.features;
        let condition = flow.when.as_ref().filter(|c| !c.holds(features))?;
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for f in condition.features() {
            let id = self.spec.features[f.0].id.clone();
            let list = if features.contains(&f) {
                &mut on
            } else {
                &mut off
            };
            if !list.contains(&id) {
                list.push(id);
            }
        }
        Some(Off {
            condition: condition.display(self.spec).to_string(),
            off,
            on,
        })
    }

    /// The flow with every value concrete, or why it cannot be: a port
    /// parameter without value, or (unless `unplaced` is allowed) an end
    /// the deployment does not place.
    fn resolve(
        &self,
        index: usize,
        flow: &Flow,
        unplaced: bool,
    ) -> Result<PlannedFlow, LeftOutReason> {
        let (spec, deployment) = (self.spec, self.deployment);
        let value_of = |p| deployment.parameter_value(spec, p);
        let (Ok(written_ports), Ok(written_source_ports)) = (
            flow.ports.resolve(value_of),
            flow.source_ports.resolve(value_of),
        ) else {
            let mut parameters: Vec<String> = flow
                .ports
                .parameters()
                .chain(flow.source_ports.parameters())
                .filter(|p| value_of(*p).is_none())
                .map(|p| spec.parameters[p.0].id.clone())
                .collect();
            parameters.dedup();
            return Err(LeftOutReason::MissingParameter { parameters });
        };
        let from = self.components[flow.from.0].clone();
        let mut to = match flow.to {
            Destination::Component(c) => self.components[c.0].clone(),
            Destination::External(e) => external_endpoint(spec, deployment, e),
        };
        let mut ports = normalise(written_ports.clone());
        let mut via_proxy = None;
        if let Some(proxy) = self.proxy_of(flow) {
            via_proxy = Some(ProxiedFlow {
                proxy: proxy.to_string(),
                destination: to.clone(),
                ports: ports.clone(),
            });
            to = proxy_endpoint(&to, proxy);
            ports = vec![PortRange::single(proxy.port)];
        }
        let mut peers = Vec::new();
        if from.is_unplaced() {
            peers.push(from.id.clone());
        }
        if to.is_unplaced() && !peers.contains(&to.id) {
            peers.push(to.id.clone());
        }
        if !peers.is_empty() && !unplaced {
            return Err(LeftOutReason::Unplaced { peers });
        }
        Ok(PlannedFlow {
            id: flow.id.clone(),
            flow: index,
            from,
            to,
            protocol: flow.protocol,
            source_ports: normalise(written_source_ports.clone()),
            ports,
            written_ports,
            written_source_ports,
            multicast: flow.multicast,
            required: flow.required,
            site: false,
            local: self.is_local(flow),
            via_proxy,
            name: flow.name.clone(),
            purpose: flow.purpose.clone(),
            span: flow.span,
        })
    }

    /// The proxy a TCP flow to an external endpoint goes through.
    fn proxy_of(&self, flow: &Flow) -> Option<&Proxy> {
        let Destination::External(e) = flow.to else {
            return None;
        };
        let proxy = self.deployment.externals.get(&e)?.proxy.as_ref()?;
        (flow.protocol == Protocol::Tcp).then_some(proxy)
    }

    /// Whether the flow joins two different components of one machine.
    fn is_local(&self, flow: &Flow) -> bool {
        let machine_of = |c: ComponentId| self.machines.get(&self.spec.component(c).id).copied();
        match flow.to {
            Destination::Component(to) => {
                to != flow.from
                    && flow.multicast.is_none()
                    && machine_of(to).is_some()
                    && machine_of(to) == machine_of(flow.from)
            }
            Destination::External(_) => false,
        }
    }
}

/// Sorted, merged ranges: `[443, 80, 80]` → `[80, 443]`.
pub(crate) fn normalise(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.start) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

pub(crate) fn empty_endpoint(id: &str, name: &str, kind: EndpointKind) -> Endpoint {
    Endpoint {
        id: id.to_owned(),
        name: name.to_owned(),
        kind,
        any: false,
        nets: Vec::new(),
        hosts: Vec::new(),
        patterns: Vec::new(),
        kubernetes: None,
        aws: None,
        span: None,
    }
}

pub(crate) fn apply_placement(endpoint: &mut Endpoint, placement: &Placement) {
    for address in &placement.addresses {
        match address {
            Address::Net(net) => endpoint.nets.push(*net),
            Address::Host(host) => endpoint.hosts.push(host.clone()),
        }
    }
    endpoint.kubernetes = placement.kubernetes.clone();
    endpoint.aws = placement.aws.clone();
    endpoint.span = Some(placement.span);
}

fn component_endpoint(spec: &Spec, deployment: &Deployment, id: ComponentId) -> Endpoint {
    let component = spec.component(id);
    let kind = match component.kind {
        ComponentKind::System => EndpointKind::System,
        ComponentKind::Dependency => EndpointKind::Dependency,
        ComponentKind::External => EndpointKind::Outside,
    };
    let mut endpoint = empty_endpoint(&component.id, &component.name, kind);
    if let Some(placement) = deployment.components.get(&id) {
        apply_placement(&mut endpoint, placement);
    }
    let has_addresses = !endpoint.nets.is_empty() || !endpoint.hosts.is_empty();
    if kind == EndpointKind::Outside && !has_addresses {
        endpoint.any = true;
        endpoint.nets = vec![
            IpNet::V4(ipnet::Ipv4Net::default()),
            IpNet::V6(ipnet::Ipv6Net::default()),
        ];
    }
    endpoint
}

fn external_endpoint(spec: &Spec, deployment: &Deployment, id: ExternalId) -> Endpoint {
    let external = spec.external(id);
    let mut endpoint = empty_endpoint(&external.id, &external.name, EndpointKind::External);
    let placement = deployment.externals.get(&id);
    if let Some(placement) = placement {
        apply_placement(&mut endpoint, placement);
    }
    // Addresses in the deployment replace the spec's; otherwise the spec's stand.
    if placement.is_none_or(|p| p.addresses.is_empty()) {
        match &external.address {
            ExternalAddress::Host(h) => endpoint.hosts.push(h.clone()),
            ExternalAddress::Pattern(p) => endpoint.patterns.push(p.clone()),
            ExternalAddress::Cidr(net) => endpoint.nets.push(*net),
            ExternalAddress::Placeholder(_) => {}
        }
    }
    endpoint
}

fn proxy_endpoint(original: &Endpoint, proxy: &Proxy) -> Endpoint {
    let mut endpoint = empty_endpoint(&original.id, &original.name, EndpointKind::External);
    match &proxy.address {
        Address::Net(net) => endpoint.nets.push(*net),
        Address::Host(host) => endpoint.hosts.push(host.clone()),
    }
    endpoint.span = original.span;
    endpoint
}

#[cfg(test)]
mod tests;
