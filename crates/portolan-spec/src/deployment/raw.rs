//! The unchecked form of a deployment: what the YAML says, with source
//! positions. These types also produce the JSON Schema
//! (`portolan schema --deployment`), so their doc comments are what editors
//! show as completion help.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// A Portolan deployment: where the components of one spec run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Portolan deployment")]
pub struct RawDeployment {
    /// Format version of this file. Only `1` exists.
    #[schemars(with = "u32")]
    pub deployment: Spanned<i64>,
    /// A name for this deployment (a site, an environment).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// What this deployment is.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
    /// Ids of the spec's features that are enabled; every other feature is off.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub features: Vec<Spanned<String>>,
    /// Values of the spec's parameters, by parameter id; parameters not listed keep their default.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, u16>")]
    pub parameters: RawMap<Spanned<i64>>,
    /// Where each component runs, by component id.
    #[serde(default = "absent_section::<Option<RawComponentPlacement>>")]
    #[schemars(with = "BTreeMap<String, RawComponentPlacement>")]
    pub components: Spanned<RawMap<Option<RawComponentPlacement>>>,
    /// Where external endpoints are, by external id: addresses for placeholders, pinned
    /// addresses or a proxy for host names.
    #[serde(default = "absent_section::<Option<RawExternalBinding>>")]
    #[schemars(with = "BTreeMap<String, RawExternalBinding>")]
    pub externals: Spanned<RawMap<Option<RawExternalBinding>>>,
    /// Site flows: what the operator's estate needs on the hosts (admin SSH,
    /// DNS, NTP, monitoring), labelled as site flows, not the vendor's.
    #[serde(default)]
    pub site: Vec<crate::site::RawSiteFlow>,
}

/// Where a component runs. Each target uses the placement it understands:
/// host firewalls the addresses, Kubernetes the selector, AWS the security group.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawComponentPlacement {
    /// IPv4 or IPv6 addresses, CIDRs, or DNS names of the hosts running the component.
    /// Quote IPv6 addresses.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<Spanned<String>>,
    /// The pods running the component.
    #[serde(default)]
    pub kubernetes: Option<RawKubernetes>,
    /// The AWS security group of the component.
    #[serde(default)]
    pub aws: Option<RawAws>,
    /// A name for the host (or hosts) at `addresses`. Components with equal
    /// address sets run on one host and share its firewall ruleset; by
    /// default the host is named after them (`api+web-frontend`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
}

/// Where an external endpoint is, as the operator knows it.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExternalBinding {
    /// IPv4 or IPv6 addresses, CIDRs or DNS names; replace the spec's host or CIDR.
    /// Required for placeholders.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub addresses: Vec<Spanned<String>>,
    /// An HTTP(S) proxy that carries the TCP flows to this endpoint, as `address:port`
    /// (`192.0.2.50:3128`, `[2001:db8::50]:3128`, `proxy.example.net:3128`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub proxy: Option<Spanned<String>>,
    /// How AWS reaches the endpoint.
    #[serde(default)]
    pub aws: Option<RawAws>,
}

/// A Kubernetes pod selector.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetes {
    /// The namespace of the pods.
    #[schemars(with = "String")]
    pub namespace: Spanned<String>,
    /// Labels the pods carry (matchLabels).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub pod_selector: RawMap<Spanned<String>>,
}

/// An AWS placement: a security group (components) or a managed prefix list (externals).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// Name of the security group the component's instances or tasks are in.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub security_group: Option<Spanned<String>>,
    /// Id of a managed prefix list (`pl-…`) that holds the endpoint's addresses.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub prefix_list: Option<Spanned<String>>,
}

/// A YAML mapping read in file order, each key with its position.
#[derive(Debug)]
pub struct RawMap<T>(pub Vec<(Spanned<String>, T)>);

impl<T> Default for RawMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for RawMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapVisitor<T> {
            type Value = RawMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of ids")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                // `components:` with nothing under it is an empty mapping.
                Ok(RawMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, T>()? {
                    out.push(entry);
                }
                Ok(RawMap(out))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// An absent section: an empty mapping at an unknown position.
fn absent_section<T>() -> Spanned<RawMap<T>> {
    Spanned::new(
        RawMap::default(),
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// The JSON Schema (draft 2020-12) of a deployment file, pretty-printed.
pub fn deployment_schema() -> String {
    let schema = schemars::schema_for!(RawDeployment);
    // Serialising a schema built from our own types cannot fail.
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
