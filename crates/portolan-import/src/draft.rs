//! The draft spec: what the importer writes, as typed values. The
//! [`Builder`] keeps indices while it reads; [`Builder::draft`] turns them
//! into this model (ids instead of indices, only what the flows use, flows
//! from one line that differ only in their source grouped), which
//! [`crate::yaml`] serialises and the report counts.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::build::{Addr, Builder, Cond, Dest, Draft, Kind, PItem};
use crate::yaml::Plain;

/// A spec as the importer writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftSpec {
    /// The format version: always 1.
    pub portolan: u32,
    /// The system's name and the page it was read from.
    pub system: DraftSystem,
    /// Every component the page names.
    pub components: Vec<DraftComponent>,
    /// External endpoints some flow reaches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub externals: Vec<DraftExternal>,
    /// Features some flow's condition names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<DraftFeature>,
    /// Parameters some flow's ports name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<DraftParameter>,
    /// The flows, in page order.
    pub flows: Vec<DraftFlow>,
}

/// `system:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftSystem {
    pub name: String,
    pub source: String,
}

/// A component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftComponent {
    pub id: String,
    pub name: String,
    /// `dependency` or `external`; a part of the system says nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An external endpoint: exactly one of `host`, `cidr` and `placeholder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftExternal {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftFeature {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftParameter {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<u16>,
    pub shown_as: String,
}

/// A flow: one or more sources, one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftFlow {
    pub from: OneOrMany<String>,
    pub to: String,
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<OneOrMany<DraftPort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<OneOrMany<DraftPort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast: Option<String>,
    /// Written only when false.
    #[serde(skip_serializing_if = "is_true")]
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<DraftCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guess: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_true(b: &bool) -> bool {
    *b
}

/// One value, or a list of them (written as the value alone when single).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> OneOrMany<T> {
    /// How many values.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

/// A port: a number, a range, or a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftPort {
    Number(u16),
    Range(u16, u16),
    Parameter(String),
}

impl Serialize for DraftPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => serializer.serialize_u16(*n),
            Self::Range(a, b) => serializer.serialize_str(&format!("{a}-{b}")),
            Self::Parameter(id) => Plain(&format!("${id}")).serialize(serializer),
        }
    }
}

/// A condition over features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftCondition {
    Feature(String),
    Any(Vec<DraftCondition>),
    All(Vec<DraftCondition>),
    Not(Box<DraftCondition>),
}

impl Serialize for DraftCondition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = match self {
            Self::Feature(id) => return serializer.serialize_str(id),
            _ => serializer.serialize_map(Some(1))?,
        };
        match self {
            Self::Feature(_) => {}
            Self::Any(items) => map.serialize_entry("any", items)?,
            Self::All(items) => map.serialize_entry("all", items)?,
            Self::Not(inner) => map.serialize_entry("not", inner)?,
        }
        map.end()
    }
}

impl Builder {
    /// The spec read so far, as typed values: only the externals, features
    /// and parameters the flows use.
    pub fn draft(&self, system: &str) -> DraftSpec {
        let used = self.used();
        DraftSpec {
            portolan: 1,
            system: DraftSystem {
                name: one_line(system),
                source: one_line(&self.file),
            },
            components: self.components.iter().map(draft_component).collect(),
            externals: (self.externals.iter().enumerate())
                .filter(|(i, _)| used.externals.contains(i))
                .map(|(_, e)| draft_external(e))
                .collect(),
            features: (self.features.iter().enumerate())
                .filter(|(i, _)| used.features.contains(i))
                .map(|(_, f)| DraftFeature {
                    id: f.id.clone(),
                    name: one_line(&f.name),
                    description: f.description.as_deref().map(multi_line),
                })
                .collect(),
            parameters: (self.params.iter().enumerate())
                .filter(|(i, _)| used.parameters.contains(i))
                .map(|(_, p)| DraftParameter {
                    id: p.id.clone(),
                    description: p.description.as_deref().map(multi_line),
                    default: p.default,
                    shown_as: one_line(&p.shown_as),
                })
                .collect(),
            flows: self
                .grouped()
                .iter()
                .map(|group| self.draft_flow(group))
                .collect(),
        }
    }

    /// One flow of the spec for a group of drafts that differ only in their source.
    fn draft_flow(&self, group: &[usize]) -> DraftFlow {
        let first = &self.flows[group[0]];
        let from = group
            .iter()
            .map(|&i| self.components[self.flows[i].from].id.clone())
            .collect();
        let to = match first.to {
            Dest::Comp(c) => self.components[c].id.clone(),
            Dest::Ext(e) => self.externals[e].id.clone(),
        };
        DraftFlow {
            from: OneOrMany(from),
            to,
            protocol: first.proto.as_str(),
            port: self.draft_ports(&first.ports),
            source_port: self.draft_ports(&first.source_ports),
            multicast: first.multicast.map(|m| m.to_string()),
            required: first.required,
            when: first.when.as_ref().map(|c| self.draft_condition(c)),
            name: first.name.as_deref().map(one_line),
            purpose: first.purpose.as_deref().map(multi_line),
            origin: one_line(&self.origin(first)),
            guess: (!first.guesses.is_empty()).then(|| one_line(&first.guesses.join("; "))),
        }
    }

    fn draft_ports(&self, ports: &[PItem]) -> Option<OneOrMany<DraftPort>> {
        if ports.is_empty() {
            return None;
        }
        let items = ports.iter().map(|p| match *p {
            PItem::Range(a, b) if a == b => DraftPort::Number(a),
            PItem::Range(a, b) => DraftPort::Range(a, b),
            PItem::Param(i) => DraftPort::Parameter(self.params[i].id.clone()),
        });
        Some(OneOrMany(items.collect()))
    }

    fn draft_condition(&self, c: &Cond) -> DraftCondition {
        match c {
            Cond::Feature(f) => DraftCondition::Feature(self.features[*f].id.clone()),
            Cond::Any(items) => {
                DraftCondition::Any(items.iter().map(|c| self.draft_condition(c)).collect())
            }
            Cond::All(items) => {
                DraftCondition::All(items.iter().map(|c| self.draft_condition(c)).collect())
            }
            Cond::Not(inner) => DraftCondition::Not(Box::new(self.draft_condition(inner))),
        }
    }

    /// Flows that differ only in their source and come from one line, as
    /// groups of indices, in page order.
    fn grouped(&self) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.flows.len()).collect();
        order.sort_by_key(|&i| (self.flows[i].line, i));
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in order {
            let f = &self.flows[i];
            let same = groups.last().is_some_and(|g| {
                same_but_source(&self.flows[g[0]], f)
                    && !g.iter().any(|&j| self.flows[j].from == f.from)
            });
            match groups.last_mut() {
                Some(g) if same => g.push(i),
                _ => groups.push(vec![i]),
            }
        }
        groups
    }
}

/// Whether two drafts of one line say the same but for their source.
fn same_but_source(h: &Draft, f: &Draft) -> bool {
    h.line == f.line
        && h.to == f.to
        && h.proto == f.proto
        && h.ports == f.ports
        && h.source_ports == f.source_ports
        && h.multicast == f.multicast
        && h.required == f.required
        && h.when == f.when
        && h.name == f.name
        && h.purpose == f.purpose
        && h.guesses == f.guesses
        && h.also == f.also
}

fn draft_component(c: &crate::build::Comp) -> DraftComponent {
    DraftComponent {
        id: c.id.clone(),
        name: one_line(&c.name),
        kind: match c.kind {
            Kind::System => None,
            Kind::Dependency => Some("dependency"),
            Kind::External => Some("external"),
        },
        aliases: c.aliases.iter().map(|a| one_line(a)).collect(),
        description: c.description.as_deref().map(multi_line),
    }
}

fn draft_external(e: &crate::build::Ext) -> DraftExternal {
    let (mut host, mut cidr, mut placeholder) = (None, None, None);
    match &e.addr {
        Addr::Host(h) => host = Some(h.clone()),
        Addr::Cidr(c) => cidr = Some(c.clone()),
        Addr::Placeholder(p) => placeholder = Some(one_line(p)),
    }
    DraftExternal {
        id: e.id.clone(),
        host,
        cidr,
        placeholder,
        name: e.name.as_deref().map(one_line),
    }
}

/// Text from a page for a one-line field of the spec (a name, `shown_as`,
/// `origin`): line breaks and tabs become spaces, other control characters
/// go, as the spec refuses them (`spec::control-character`).
fn one_line(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if portolan_spec::text::is_control(c) => None,
            c => Some(c),
        })
        .collect()
}

/// Text from a page for a description or purpose: line breaks and tabs
/// stay, other control characters go.
fn multi_line(s: &str) -> String {
    s.chars()
        .filter(|&c| c == '\n' || c == '\t' || !portolan_spec::text::is_control(c))
        .collect()
}
