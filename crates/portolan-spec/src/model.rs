//! The checked form of a spec: every reference resolved, every value valid.
//!
//! Items refer to each other by typed index ([`ComponentId`], ...) into the
//! [`Spec`]'s vectors. Each item keeps the [`Span`] it was read from so that
//! later stages (planning, generating) can point at it in their diagnostics.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::diag::{SourceFile, Span};

macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub usize);
    };
}

index_type!(
    /// Index of a component in [`Spec::components`].
    ComponentId
);
index_type!(
    /// Index of an external endpoint in [`Spec::externals`].
    ExternalId
);
index_type!(
    /// Index of a feature in [`Spec::features`].
    FeatureId
);
index_type!(
    /// Index of a parameter in [`Spec::parameters`].
    ParameterId
);

/// A checked spec.
#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    /// The product described.
    pub system: System,
    /// Roles, in matrix order.
    pub components: Vec<Component>,
    /// Named endpoints outside the system.
    pub externals: Vec<External>,
    /// Options that switch conditional flows on.
    pub features: Vec<Feature>,
    /// Port values the operator may change.
    pub parameters: Vec<Parameter>,
    /// Flows, one per (source, destination) pair, in file order.
    pub flows: Vec<Flow>,
    /// The file the spec was read from.
    #[serde(skip)]
    pub source: Arc<SourceFile>,
}

/// The product described by a spec.
#[derive(Debug, Clone, Serialize)]
pub struct System {
    /// Display name.
    pub name: String,
    /// Who makes it.
    pub vendor: Option<String>,
    /// One paragraph about it.
    pub description: Option<String>,
    /// Where the requirements were published.
    pub source: Option<String>,
}

/// What a component is to the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// Part of the product.
    System,
    /// Provided by the operator.
    Dependency,
    /// The outside world; has no fixed address.
    External,
}

impl ComponentKind {
    /// The word used in the spec.
    pub const fn as_str(self) -> &'static str {
        match self {
            ComponentKind::System => "system",
            ComponentKind::Dependency => "dependency",
            ComponentKind::External => "external",
        }
    }
}

/// A role that is deployed.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is to the system.
    pub kind: ComponentKind,
    /// Other spellings of the name.
    pub aliases: Vec<String>,
    /// What it does.
    pub description: Option<String>,
    /// Where it is defined.
    #[serde(skip)]
    pub span: Span,
}

/// Where an external endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum ExternalAddress {
    /// A DNS name.
    Host(String),
    /// A DNS name with at least one `*` label.
    Pattern(String),
    /// An address block.
    Cidr(ipnet::IpNet),
    /// Something the operator must name; the deployment gives its address.
    Placeholder(String),
}

impl fmt::Display for ExternalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalAddress::Host(h) | ExternalAddress::Pattern(h) => f.write_str(h),
            ExternalAddress::Cidr(c) => write!(f, "{c}"),
            ExternalAddress::Placeholder(p) => write!(f, "<{p}>"),
        }
    }
}

/// A named endpoint outside the system.
#[derive(Debug, Clone, Serialize)]
pub struct External {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where it is.
    pub address: ExternalAddress,
    /// What it is.
    pub description: Option<String>,
    /// Where it is defined.
    #[serde(skip)]
    pub span: Span,
}

/// An option that switches conditional flows on.
#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What enabling it means.
    pub description: Option<String>,
    /// Where it is defined.
    #[serde(skip)]
    pub span: Span,
}

/// A port value the operator may change.
#[derive(Debug, Clone, Serialize)]
pub struct Parameter {
    /// Identifier.
    pub id: String,
    /// What it is for.
    pub description: Option<String>,
    /// Value used when the deployment gives none.
    pub default: Option<u16>,
    /// How vendor tables show it.
    pub shown_as: String,
    /// Where it is defined.
    #[serde(skip)]
    pub span: Span,
}

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP / ICMPv6.
    Icmp,
    /// Every protocol.
    Any,
}

impl Protocol {
    /// The word used in the spec.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Any => "any",
        }
    }

    /// Whether flows of this protocol have ports.
    pub const fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive range of ports; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port (inclusive).
    pub end: u16,
}

impl PortRange {
    /// A single port.
    pub const fn single(port: u16) -> Self {
        Self {
            start: port,
            end: port,
        }
    }

    /// Whether the range holds one port.
    pub const fn is_single(self) -> bool {
        self.start == self.end
    }

    /// Whether `port` is inside.
    pub const fn contains(self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }

    /// How many ports it holds.
    pub const fn len(self) -> u32 {
        self.end as u32 - self.start as u32 + 1
    }

    /// Never empty: a range holds at least one port. Present for clippy's `len_without_is_empty`.
    pub const fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One item of a flow's port list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortItem {
    /// Fixed ports.
    Range(PortRange),
    /// A parameter's value.
    Parameter(ParameterId),
}

/// A flow's ports: empty means every port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Ports(pub Vec<PortItem>);

impl Ports {
    /// Whether every port is meant.
    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    /// The concrete ranges once parameters have values; `None` when a
    /// parameter has neither a value nor a default (its id is returned).
    pub fn resolve(
        &self,
        value_of: impl Fn(ParameterId) -> Option<u16>,
    ) -> Result<Vec<PortRange>, ParameterId> {
        self.0
            .iter()
            .map(|item| match *item {
                PortItem::Range(range) => Ok(range),
                PortItem::Parameter(p) => value_of(p).map(PortRange::single).ok_or(p),
            })
            .collect()
    }

    /// The parameters this port list uses.
    pub fn parameters(&self) -> impl Iterator<Item = ParameterId> + '_ {
        self.0.iter().filter_map(|item| match item {
            PortItem::Parameter(p) => Some(*p),
            PortItem::Range(_) => None,
        })
    }
}

/// Where a flow goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// A component of the spec.
    Component(ComponentId),
    /// A named external endpoint.
    External(ExternalId),
}

/// A condition over features.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// The feature is enabled.
    Feature(FeatureId),
    /// At least one holds.
    Any(Vec<Condition>),
    /// All hold.
    All(Vec<Condition>),
    /// It does not hold.
    Not(Box<Condition>),
}

impl Condition {
    /// Whether the condition holds for a set of enabled features.
    pub fn holds(&self, enabled: &BTreeSet<FeatureId>) -> bool {
        match self {
            Condition::Feature(f) => enabled.contains(f),
            Condition::Any(cs) => cs.iter().any(|c| c.holds(enabled)),
            Condition::All(cs) => cs.iter().all(|c| c.holds(enabled)),
            Condition::Not(c) => !c.holds(enabled),
        }
    }

    /// Every feature mentioned.
    pub fn features(&self) -> Vec<FeatureId> {
        let mut out = Vec::new();
        self.collect_features(&mut out);
        out
    }

    fn collect_features(&self, out: &mut Vec<FeatureId>) {
        match self {
            Condition::Feature(f) => out.push(*f),
            Condition::Any(cs) | Condition::All(cs) => {
                cs.iter().for_each(|c| c.collect_features(out));
            }
            Condition::Not(c) => c.collect_features(out),
        }
    }

    /// The condition written with feature ids, as a person reads it.
    pub fn display<'a>(&'a self, spec: &'a Spec) -> impl fmt::Display + 'a {
        ConditionDisplay {
            condition: self,
            spec,
        }
    }
}

struct ConditionDisplay<'a> {
    condition: &'a Condition,
    spec: &'a Spec,
}

impl fmt::Display for ConditionDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, cs: &[Condition], word: &str| {
            f.write_str("(")?;
            for (i, c) in cs.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                write!(f, "{}", c.display(self.spec))?;
            }
            f.write_str(")")
        };
        match self.condition {
            Condition::Feature(id) => f.write_str(&self.spec.features[id.0].id),
            Condition::Any(cs) => join(f, cs, "or"),
            Condition::All(cs) => join(f, cs, "and"),
            Condition::Not(c) => write!(f, "not {}", c.display(self.spec)),
        }
    }
}

/// Something that must be allowed to flow, from one component to one destination.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    /// A stable identifier: `from->to/protocol/ports`, with a `#n` suffix if needed to be unique.
    pub id: String,
    /// Source component.
    pub from: ComponentId,
    /// Destination.
    pub to: Destination,
    /// Multicast group the flow is sent to (`to` names its receivers).
    pub multicast: Option<IpAddr>,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination ports; empty means every port.
    pub ports: Ports,
    /// Fixed source ports; empty means ephemeral.
    pub source_ports: Ports,
    /// Whether the flow is required (false: optional).
    pub required: bool,
    /// Condition over features for the flow to exist.
    pub when: Option<Condition>,
    /// Short label.
    pub name: Option<String>,
    /// Why the flow exists.
    pub purpose: Option<String>,
    /// Where the requirement came from.
    pub origin: Option<String>,
    /// What was inferred rather than stated.
    pub guess: Option<String>,
    /// Where the flow is written.
    #[serde(skip)]
    pub span: Span,
}

impl Spec {
    /// A component by id.
    pub fn component(&self, id: ComponentId) -> &Component {
        &self.components[id.0]
    }

    /// An external endpoint by id.
    pub fn external(&self, id: ExternalId) -> &External {
        &self.externals[id.0]
    }

    /// A component's index by its id string.
    pub fn component_by_id(&self, id: &str) -> Option<ComponentId> {
        self.components
            .iter()
            .position(|c| c.id == id)
            .map(ComponentId)
    }

    /// Components and external endpoints indexed by id, for lookups in
    /// constant time: a spec can have thousands of components, and the
    /// checks look up every flow end and every placement.
    pub fn endpoint_index(&self) -> EndpointIndex<'_> {
        let mut index = EndpointIndex::default();
        // The first definition wins, as with `component_by_id` (a second one
        // is a `duplicate-id` error).
        for (i, c) in self.components.iter().enumerate().rev() {
            index.components.insert(c.id.as_str(), ComponentId(i));
        }
        for (i, e) in self.externals.iter().enumerate().rev() {
            index.externals.insert(e.id.as_str(), ExternalId(i));
        }
        index
    }

    /// A feature's index by its id string.
    pub fn feature_by_id(&self, id: &str) -> Option<FeatureId> {
        self.features.iter().position(|f| f.id == id).map(FeatureId)
    }

    /// A parameter's index by its id string.
    pub fn parameter_by_id(&self, id: &str) -> Option<ParameterId> {
        self.parameters
            .iter()
            .position(|p| p.id == id)
            .map(ParameterId)
    }

    /// The id string of a destination.
    pub fn destination_id(&self, destination: Destination) -> &str {
        match destination {
            Destination::Component(c) => &self.components[c.0].id,
            Destination::External(e) => &self.externals[e.0].id,
        }
    }

    /// The display name of a destination.
    pub fn destination_name(&self, destination: Destination) -> &str {
        match destination {
            Destination::Component(c) => &self.components[c.0].name,
            Destination::External(e) => &self.externals[e.0].name,
        }
    }

    /// Ports written for a person: `8112`, `8000-8010`, `$postgres-port`, or `*`.
    pub fn ports_text(&self, ports: &Ports) -> String {
        if ports.is_all() {
            return "*".to_owned();
        }
        ports
            .0
            .iter()
            .map(|item| match item {
                PortItem::Range(r) => r.to_string(),
                PortItem::Parameter(p) => format!("${}", self.parameters[p.0].id),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A spec's components and external endpoints by id (see [`Spec::endpoint_index`]).
#[derive(Debug, Clone, Default)]
pub struct EndpointIndex<'s> {
    components: HashMap<&'s str, ComponentId>,
    externals: HashMap<&'s str, ExternalId>,
}

impl EndpointIndex<'_> {
    /// A component by id.
    pub fn component(&self, id: &str) -> Option<ComponentId> {
        self.components.get(id).copied()
    }

    /// An external endpoint by id.
    pub fn external(&self, id: &str) -> Option<ExternalId> {
        self.externals.get(id).copied()
    }
}

/// Concrete ports written for a person: `8112`, `8000-8010,9000`, or `*`.
/// Planned flows hold ranges, not [`Ports`]: this is [`Spec::ports_text`]
/// once parameters have values, so that every output spells ports alike.
pub fn ranges_text(ranges: &[PortRange]) -> String {
    if ranges.is_empty() {
        return "*".to_owned();
    }
    ranges
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
