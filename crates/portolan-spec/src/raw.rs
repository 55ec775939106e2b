//! The unchecked form of a spec: what the YAML says, with source positions,
//! before any reference is resolved or any value is checked.
//!
//! These types also produce the JSON Schema (`portolan schema`), so their doc
//! comments are what editors show as completion help.

use schemars::JsonSchema;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};

use crate::given::{self, Given};

/// A Portolan spec: the networking requirements of one system.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Portolan spec")]
pub struct RawSpec {
    /// Format version of this file. Only `1` exists.
    #[schemars(with = "u32")]
    pub portolan: Spanned<i64>,
    /// The product described.
    pub system: RawSystem,
    /// The roles that are deployed, in the order the connection matrix shows them.
    pub components: Vec<RawComponent>,
    /// Named endpoints outside the system: host names, wildcard patterns, CIDRs, placeholders.
    #[serde(default)]
    pub externals: Vec<RawExternal>,
    /// Options that switch conditional flows on.
    #[serde(default)]
    pub features: Vec<RawFeature>,
    /// Port values the operator may change.
    #[serde(default)]
    pub parameters: Vec<RawParameter>,
    /// What must be allowed to flow.
    #[serde(default)]
    pub flows: Vec<RawFlow>,
}

/// The product described by the spec.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSystem {
    /// Display name, e.g. "Circonus Inside".
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Who makes it.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub vendor: Option<Spanned<String>>,
    /// One paragraph about it.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
    /// Where the requirements were published.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub source: Option<Spanned<String>>,
}

/// What a component is to the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawKind {
    /// Part of the product.
    #[default]
    System,
    /// Something the operator provides: a database, object storage, a queue, a load balancer.
    Dependency,
    /// The outside world: end users, the Internet. It has no fixed address.
    External,
}

/// A role that is deployed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    /// Identifier: lowercase letters, digits and '-'.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Display name; defaults to the id.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// system (default), dependency or external.
    #[serde(default)]
    pub kind: RawKind,
    /// Other spellings of the name, used when importing pages.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub aliases: Vec<Spanned<String>>,
    /// What the component does.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
}

/// A named endpoint outside the system. Exactly one of host, cidr, placeholder.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExternal {
    /// Identifier, shared namespace with components.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// A DNS name; a '*' label makes it a wildcard pattern (monitoring.*.amazonaws.com).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// An address block, e.g. 203.0.113.0/24.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cidr: Option<Spanned<String>>,
    /// Something the operator must name ("X IRC network"); the deployment gives its address.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub placeholder: Option<Spanned<String>>,
    /// Display name; defaults to the host, CIDR or placeholder.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// What it is.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
}

/// An option that switches conditional flows on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFeature {
    /// Identifier used in `when`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Display name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// What enabling it means.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
}

/// A port value the operator may change.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawParameter {
    /// Identifier, used in ports as `$id`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// What the port is for.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
    /// The value used when the deployment gives none.
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub default: Option<Spanned<i64>>,
    /// How vendor tables show it; default "User-defined".
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub shown_as: Option<Spanned<String>>,
}

/// One id or a list of ids.
// Deserialised by hand rather than as an untagged enum: serde buffers
// untagged values and loses the position of each list item, which
// diagnostics underline.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum RawIds {
    /// One id.
    One(String),
    /// Several ids: one flow per id.
    Many(#[schemars(with = "Vec<String>")] Vec<Spanned<String>>),
}

impl RawIds {
    /// Whether there is no id (an empty list).
    pub fn is_empty(&self) -> bool {
        matches!(self, RawIds::Many(many) if many.is_empty())
    }

    /// The ids in order, each with where it is written (`whole`, the
    /// location of the value, for a single id).
    pub fn items<'a>(
        &'a self,
        whole: &'a Location,
    ) -> impl Iterator<Item = (&'a str, &'a Location)> + 'a {
        let (one, many) = match self {
            RawIds::One(one) => (Some((one.as_str(), whole)), &[][..]),
            RawIds::Many(many) => (None, many.as_slice()),
        };
        one.into_iter()
            .chain(many.iter().map(|s| (s.value.as_str(), &s.referenced)))
    }
}

impl<'de> Deserialize<'de> for RawIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ids;
        impl<'de> Visitor<'de> for Ids {
            type Value = RawIds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id or a list of ids")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawIds, E> {
                Ok(RawIds::One(value.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawIds, E> {
                Ok(RawIds::One(value.to_string()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawIds, E> {
                Ok(RawIds::One(value.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawIds, A::Error> {
                let mut many = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    many.push(item);
                }
                Ok(RawIds::Many(many))
            }
        }
        deserializer.deserialize_any(Ids)
    }
}

/// A port, range, parameter, or a list of them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawPorts {
    /// A single port number.
    Number(i64),
    /// "8000-8010" (a range), "443", or "$parameter".
    Text(String),
    /// A list of the above.
    List(Vec<RawPortItem>),
}

/// One item of a port list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawPortItem {
    /// A single port number.
    Number(i64),
    /// "8000-8010", "443", or "$parameter".
    Text(String),
}

/// A condition over features.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawCondition {
    /// The feature with this id is enabled.
    Feature(String),
    /// At least one holds.
    Any {
        /// The alternatives.
        any: Vec<RawCondition>,
    },
    /// All hold.
    All {
        /// The conditions.
        all: Vec<RawCondition>,
    },
    /// It does not hold.
    Not {
        /// The negated condition.
        not: Box<RawCondition>,
    },
}

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (and ICMPv6 for IPv6 peers).
    Icmp,
    /// Every protocol.
    Any,
}

/// Something that must be allowed to flow.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    /// Source component id, or a list of them.
    #[schemars(with = "RawIds")]
    pub from: Spanned<RawIds>,
    /// Destination component or external id, or a list of them.
    #[schemars(with = "RawIds")]
    pub to: Spanned<RawIds>,
    /// tcp, udp, icmp or any.
    #[schemars(with = "RawProtocol")]
    pub protocol: Spanned<RawProtocol>,
    /// Destination port(s); omitted (or `"*"`) means every port.
    #[serde(default, deserialize_with = "given::present")]
    #[schemars(with = "Option<RawPorts>")]
    pub port: Given<RawPorts>,
    /// A fixed source port (U:8112:8112); omitted means ephemeral.
    #[serde(default, deserialize_with = "given::present")]
    #[schemars(with = "Option<RawPorts>")]
    pub source_port: Given<RawPorts>,
    /// Multicast group the flow is sent to; `to` names its receivers.
    #[serde(default, deserialize_with = "given::present")]
    #[schemars(with = "Option<String>")]
    pub multicast: Given<String>,
    /// false marks an optional flow (default true).
    #[serde(default)]
    pub required: Option<bool>,
    /// Condition over features for the flow to exist.
    #[serde(default, deserialize_with = "given::present")]
    #[schemars(with = "Option<RawCondition>")]
    pub when: Given<RawCondition>,
    /// Short label: the "Name" column of vendor tables.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Why the flow exists.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub purpose: Option<Spanned<String>>,
    /// Where the requirement came from (page, line, cell).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub origin: Option<Spanned<String>>,
    /// Set when a value was inferred rather than stated; says what was guessed.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub guess: Option<Spanned<String>>,
}

/// Reads one word of `words` in any case (`TCP`, `Udp`: operators paste
/// from vendor pages); the error lists the words as written in docs.
fn word<'de, D: Deserializer<'de>, T: Copy>(
    deserializer: D,
    words: &'static [&'static str],
    values: &[T],
) -> Result<T, D::Error> {
    let text = String::deserialize(deserializer)?;
    words
        .iter()
        .position(|w| w.eq_ignore_ascii_case(text.trim()))
        .map(|i| values[i])
        .ok_or_else(|| de::Error::unknown_variant(&text, words))
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use RawKind::*;
        word(
            deserializer,
            &["system", "dependency", "external"],
            &[System, Dependency, External],
        )
    }
}

impl<'de> Deserialize<'de> for RawProtocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use RawProtocol::*;
        word(
            deserializer,
            &["tcp", "udp", "icmp", "any"],
            &[Tcp, Udp, Icmp, Any],
        )
    }
}
