//! The deployment file: where the roles of a spec run, which features are
//! enabled and which values the parameters take.
//!
//! Like the spec, it is read in two steps: [`RawDeployment`] is the unchecked
//! form, exactly as the YAML says it (it also produces the JSON Schema,
//! [`deployment_schema`]); [`load_deployment`] checks it against a [`Spec`]
//! into a [`Deployment`], or returns every problem as [`Diagnostics`].
//!
//! ```
//! use portolan_spec::{load_spec, SourceFile};
//! use portolan_spec::deployment::load_deployment;
//!
//! let spec = load_spec(SourceFile::new("portolan.yaml", "portolan: 1
//! system: {name: Demo}
//! components: [{id: web}, {id: db, kind: dependency}]
//! flows: [{from: web, to: db, protocol: tcp, port: 5432}]
//! ")).unwrap().value;
//! let deployment = load_deployment(SourceFile::new("deployment.yaml", "deployment: 1
//! components:
//!   web: {addresses: [192.0.2.10]}
//!   db: {addresses: [192.0.2.20, \"2001:db8::20\"]}
//! "), &spec).unwrap().value;
//! let db = spec.component_by_id("db").unwrap();
//! assert_eq!(deployment.components[&db].addresses.len(), 2);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

use crate::check::{check_text, is_valid_host, parse_yaml, Loaded};
use crate::diag::{did_you_mean, Code, Diagnostic, Diagnostics, SourceFile, Span};
use crate::model::*;

// ---------------------------------------------------------------------------
// Unchecked form
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Checked form
// ---------------------------------------------------------------------------

/// A checked deployment, bound to the spec it was checked against.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// A name for this deployment.
    pub name: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// Features enabled.
    pub features: BTreeSet<FeatureId>,
    /// Parameter values given by the deployment (defaults are not copied here).
    pub parameters: BTreeMap<ParameterId, u16>,
    /// Placement of the components the deployment names.
    pub components: BTreeMap<ComponentId, Placement>,
    /// Placement of the external endpoints the deployment names.
    pub externals: BTreeMap<ExternalId, Placement>,
    /// Site flows (the `site:` section), in file order.
    pub site: Vec<crate::site::SiteFlow>,
    /// Where the `components:` section is (for diagnostics about what is missing).
    #[serde(skip)]
    pub components_span: Span,
    /// Where the `externals:` section is, or the `components:` section when absent.
    #[serde(skip)]
    pub externals_span: Span,
    /// The file the deployment was read from.
    #[serde(skip)]
    pub source: Arc<SourceFile>,
}

impl Deployment {
    /// An empty deployment (no feature, no placement), e.g. to build one in code.
    pub fn empty(source: Arc<SourceFile>) -> Self {
        Self {
            name: None,
            description: None,
            features: BTreeSet::new(),
            parameters: BTreeMap::new(),
            components: BTreeMap::new(),
            externals: BTreeMap::new(),
            site: Vec::new(),
            components_span: Span::default(),
            externals_span: Span::default(),
            source,
        }
    }

    /// The value of a parameter: the deployment's, else the spec's default.
    pub fn parameter_value(&self, spec: &Spec, parameter: ParameterId) -> Option<u16> {
        self.parameters
            .get(&parameter)
            .copied()
            .or(spec.parameters[parameter.0].default)
    }

    /// Whether a flow's condition holds (flows without `when` always exist).
    pub fn flow_enabled(&self, flow: &Flow) -> bool {
        flow.when.as_ref().is_none_or(|c| c.holds(&self.features))
    }
}

/// One address of a placement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Address {
    /// An address or address block (a single address is a /32 or /128).
    Net(IpNet),
    /// A DNS name.
    Host(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Net(net) => write_net(f, net),
            Address::Host(host) => f.write_str(host),
        }
    }
}

/// Writes a net as an address when it holds one address, else as a CIDR.
pub fn write_net(f: &mut impl fmt::Write, net: &IpNet) -> fmt::Result {
    if net.prefix_len() == net.max_prefix_len() {
        write!(f, "{}", net.addr())
    } else {
        write!(f, "{net}")
    }
}

/// Where a component or external endpoint is.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Placement {
    /// Addresses, blocks and DNS names.
    pub addresses: Vec<Address>,
    /// The pods, in Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSelector>,
    /// The security group or prefix list, in AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsPlacement>,
    /// The proxy carrying TCP flows to an external endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,
    /// The host name the deployment gives a component's addresses (`host:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where the placement is written (its id key).
    #[serde(skip)]
    pub span: Span,
}

impl Placement {
    /// Whether nothing at all says where it is.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
            && self.kubernetes.is_none()
            && self.aws.is_none()
            && self.proxy.is_none()
    }
}

/// Components that run on the same host (or the same group of hosts): those
/// whose address sets are equal. A host firewall ruleset is per host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The deployment's `host:` name, else the components' ids joined with
    /// `+` (`api+web-frontend`); one component alone gives its own id.
    pub name: String,
    /// Whether the name is the deployment's `host:`.
    pub named: bool,
    /// The components it runs, in spec order.
    pub components: Vec<ComponentId>,
    /// Its addresses, as the first component lists them.
    pub addresses: Vec<Address>,
    /// Where its first component is placed.
    #[serde(skip)]
    pub span: Span,
}

impl Host {
    /// Whether the addresses are one machine's: at most one IPv4 address,
    /// one IPv6 address and one DNS name, and no block. Traffic between
    /// two components of one machine stays on it (loopback); between
    /// components of a group of machines it may cross the network.
    pub fn is_one_machine(&self) -> bool {
        let count = |f: fn(&Address) -> bool| self.addresses.iter().filter(|a| f(a)).count();
        let blocks =
            count(|a| matches!(a, Address::Net(n) if n.prefix_len() != n.max_prefix_len()));
        blocks == 0
            && count(|a| matches!(a, Address::Net(IpNet::V4(_)))) <= 1
            && count(|a| matches!(a, Address::Net(IpNet::V6(_)))) <= 1
            && count(|a| matches!(a, Address::Host(_))) <= 1
    }
}

impl Deployment {
    /// The hosts of the deployment, in spec order of their first component:
    /// every component with addresses that is not of kind `external`,
    /// grouped by equal address sets (in any order). Names contradicting
    /// each other are a diagnostic of [`load_deployment`]; here the first
    /// `host:` of a group wins.
    pub fn hosts(&self, spec: &Spec) -> Vec<Host> {
        let mut hosts: Vec<Host> = Vec::new();
        // Address set → index in `hosts`.
        let mut keys: HashMap<BTreeSet<&Address>, usize> = HashMap::new();
        for (&id, placement) in &self.components {
            if placement.addresses.is_empty() || spec.component(id).kind == ComponentKind::External
            {
                continue;
            }
            let key: BTreeSet<&Address> = placement.addresses.iter().collect();
            match keys.get(&key).copied() {
                Some(i) => {
                    let host = &mut hosts[i];
                    host.components.push(id);
                    if let (false, Some(name)) = (host.named, &placement.host) {
                        host.name.clone_from(name);
                        host.named = true;
                    }
                }
                None => {
                    keys.insert(key, hosts.len());
                    hosts.push(Host {
                        name: placement.host.clone().unwrap_or_default(),
                        named: placement.host.is_some(),
                        components: vec![id],
                        addresses: placement.addresses.clone(),
                        span: placement.span,
                    });
                }
            }
        }
        for host in &mut hosts {
            if !host.named {
                host.name = host
                    .components
                    .iter()
                    .map(|c| spec.component(*c).id.as_str())
                    .collect::<Vec<_>>()
                    .join("+");
            }
        }
        hosts
    }

    /// The host a component runs on, if it has addresses.
    pub fn host_of(&self, spec: &Spec, component: ComponentId) -> Option<Host> {
        self.hosts(spec)
            .into_iter()
            .find(|h| h.components.contains(&component))
    }
}

/// A Kubernetes namespace and pod selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubernetesSelector {
    /// Namespace.
    pub namespace: String,
    /// matchLabels; empty selects every pod of the namespace.
    pub pod_selector: BTreeMap<String, String>,
}

/// An AWS placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsPlacement {
    /// Security group name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
    /// Managed prefix list id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_list: Option<String>,
}

/// An HTTP(S) proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proxy {
    /// Its address or name.
    pub address: Address,
    /// Its TCP port.
    pub port: u16,
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Address::Net(IpNet::V6(net)) => write!(f, "[{}]:{}", net.addr(), self.port),
            other => write!(f, "{other}:{}", self.port),
        }
    }
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------

/// Parses a deployment and checks it against `spec`. On success the
/// deployment comes with its warnings; otherwise every error and warning found.
pub fn load_deployment(
    source: Arc<SourceFile>,
    spec: &Spec,
) -> Result<Loaded<Deployment>, Diagnostics> {
    let fail = |source: Arc<SourceFile>, d: Diagnostic| Diagnostics {
        source,
        items: vec![d],
    };
    if source.text.trim().is_empty() {
        let d = Diagnostic::new(Code::YamlSyntax, "the file is empty")
            .with_label(Span::new(0, 0), "nothing here")
            .with_help("a deployment starts with `deployment: 1`; see docs/deployment-format.md");
        return Err(fail(source, d));
    }
    let raw: RawDeployment = match parse_yaml(&source, "deployment") {
        Ok(raw) => raw,
        Err(mut items) => {
            // The structural codes are shared with the spec; the pointer to
            // the format reference must name this file's format.
            for d in &mut items {
                d.help = d
                    .help
                    .take()
                    .map(|h| h.replace("docs/spec-format.md", "docs/deployment-format.md"));
            }
            return Err(Diagnostics { source, items });
        }
    };
    let mut checker = DeploymentChecker {
        spec,
        source: &source,
        diagnostics: Vec::new(),
        errors: 0,
        index: spec.endpoint_index(),
        already_reported: BTreeSet::new(),
    };
    let deployment = checker.check(raw);
    let diagnostics = Diagnostics {
        source: source.clone(),
        items: checker.diagnostics,
    };
    if diagnostics.has_errors() {
        return Err(diagnostics);
    }
    Ok(Loaded {
        value: Deployment {
            source,
            ..deployment
        },
        warnings: diagnostics,
    })
}

/// Parses one address: an IPv4 or IPv6 address, a CIDR, or a DNS name.
/// The error says what is wrong, for a diagnostic's label.
pub fn parse_address(text: &str) -> Result<Address, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(Address::Net(IpNet::from(addr)));
    }
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "host bits set: the block is {}, the address is {}",
                net.trunc(),
                net.addr()
            ));
        }
        return Ok(Address::Net(net));
    }
    let looks_numeric = text
        .split('.')
        .all(|label| label.chars().all(|c| c.is_ascii_digit()));
    if text.contains([':', '/', '*']) || looks_numeric || !is_valid_host(text) {
        return Err("not an IP address, CIDR or DNS name".to_owned());
    }
    Ok(Address::Host(text.to_ascii_lowercase()))
}

/// Parses `address:port`, `[v6]:port` or `name:port`.
pub fn parse_proxy(text: &str) -> Result<Proxy, String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or("write an IPv6 proxy as [address]:port")?;
        (host, port)
    } else {
        text.rsplit_once(':')
            .ok_or("a proxy is address:port, e.g. 192.0.2.50:3128")?
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| format!("`{port}` is not a port in 1..65535"))?;
    let address = parse_address(host)?;
    if let Address::Net(net) = &address {
        if net.prefix_len() != net.max_prefix_len() {
            return Err("a proxy is one address, not a block".to_owned());
        }
    }
    Ok(Proxy { address, port })
}

struct DeploymentChecker<'a> {
    spec: &'a Spec,
    source: &'a SourceFile,
    diagnostics: Vec<Diagnostic>,
    /// How many of `diagnostics` are errors.
    errors: usize,
    /// The spec's components and externals by id.
    index: EndpointIndex<'a>,
    /// Ids whose placement already has an error (a bad address, or a
    /// misspelt key that likely meant them): "unplaced" would only repeat it.
    already_reported: BTreeSet<String>,
}

/// The closest candidate: a likely typo by similarity, or one edit
/// (a transposition counts as one) away.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    did_you_mean(word, candidates.clone()).or_else(|| {
        candidates
            .into_iter()
            .find(|c| strsim::damerau_levenshtein(word, c) <= 1.max(word.len() / 4))
    })
}

/// Whose an address is, for the overlap check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Component(ComponentId),
    External(ExternalId),
}

impl DeploymentChecker<'_> {
    fn span<T>(&self, spanned: &Spanned<T>) -> Span {
        Span::from_location(&spanned.referenced, self.source)
    }

    fn push(&mut self, d: Diagnostic) {
        self.errors += usize::from(d.is_error());
        self.diagnostics.push(d);
    }

    fn error_count(&self) -> usize {
        self.errors
    }

    fn check(&mut self, raw: RawDeployment) -> Deployment {
        if raw.deployment.value != 1 {
            let span = self.span(&raw.deployment);
            self.push(
                Diagnostic::new(
                    Code::UnsupportedVersion,
                    format!(
                        "unsupported deployment format version {}",
                        raw.deployment.value
                    ),
                )
                .with_label(span, "this build reads version 1")
                .with_help("write `deployment: 1`"),
            );
        }
        let features = self.check_features(&raw.features);
        let parameters = self.check_parameters(&raw.parameters);
        let top = |key| top_level_key(&self.source.text, key);
        let version_span = top("deployment").unwrap_or_default();
        let components_span = top("components").unwrap_or(version_span);
        let externals_span = top("externals").unwrap_or(components_span);
        let mut addressed: Vec<(Owner, IpNet, Span)> = Vec::new();
        let mut components = BTreeMap::new();
        for (key, placement) in &raw.components.value.0 {
            let key_span = self.span(key);
            let Some(id) = self.component_key(&key.value, key_span) else {
                continue;
            };
            if components.contains_key(&id) {
                continue; // serde-saphyr already rejects duplicate keys
            }
            // Components of kind `external` are "anywhere": overlapping them is their point.
            if let Some(p) = placement {
                if self.spec.component(id).kind != ComponentKind::External {
                    for (net, span) in self.nets_with_spans(p.addresses.iter()) {
                        addressed.push((Owner::Component(id), net, span));
                    }
                }
            }
            let errors_before = self.error_count();
            let placement = match placement {
                Some(p) => self.check_component_placement(p, key_span),
                None => Placement {
                    span: key_span,
                    ..Placement::default()
                },
            };
            if self.error_count() > errors_before {
                self.already_reported.insert(key.value.clone());
            }
            components.insert(id, placement);
        }
        let mut externals = BTreeMap::new();
        for (key, binding) in &raw.externals.value.0 {
            let key_span = self.span(key);
            let Some(id) = self.external_key(&key.value, key_span) else {
                continue;
            };
            let errors_before = self.error_count();
            let placement = match binding {
                Some(b) => self.check_external_binding(b, key_span),
                None => Placement {
                    span: key_span,
                    ..Placement::default()
                },
            };
            if self.error_count() > errors_before {
                self.already_reported.insert(key.value.clone());
            }
            if let Some(b) = binding {
                for (net, span) in self.nets_with_spans(b.addresses.iter()) {
                    addressed.push((Owner::External(id), net, span));
                }
            }
            externals.insert(id, placement);
        }
        let mut deployment = Deployment {
            name: self.text("name", raw.name.as_ref(), false),
            description: self.text("description", raw.description.as_ref(), true),
            features,
            parameters,
            components,
            externals,
            site: Vec::new(),
            components_span,
            externals_span,
            source: Arc::new(self.source.clone()),
        };
        let host_spans: BTreeMap<ComponentId, Span> = raw
            .components
            .value
            .0
            .iter()
            .filter_map(|(key, p)| {
                let id = self.index.component(&key.value)?;
                let host = p.as_ref()?.host.as_ref()?;
                Some((id, self.span(host)))
            })
            .collect();
        let hosts = self.check_hosts(&deployment, &host_spans);
        self.check_overlaps(&deployment, &addressed, &hosts);
        self.check_flows(&deployment);
        let (site, diagnostics) =
            crate::site::check(self.spec, self.source, &raw.site, &deployment);
        self.diagnostics.extend(diagnostics);
        deployment.site = site;
        let at = top_level_key(&self.source.text, "site").unwrap_or(version_span);
        let dns = crate::site::dns_warnings(self.spec, &deployment, at);
        self.diagnostics.extend(dns);
        deployment
    }

    /// `host:` names: only on components with addresses, one name per
    /// host, one host per name. Returns the hosts.
    fn check_hosts(
        &mut self,
        deployment: &Deployment,
        host_spans: &BTreeMap<ComponentId, Span>,
    ) -> Vec<Host> {
        for (&id, &span) in host_spans {
            let Some(placement) = deployment.components.get(&id) else {
                continue;
            };
            if placement.host.is_none() {
                continue; // an invalid name, already reported
            }
            let component = self.spec.component(id);
            let why = if component.kind == ComponentKind::External {
                format!(
                    "`{}` is the outside world (kind `external`), not a host",
                    component.id
                )
            } else if placement.addresses.is_empty() {
                format!(
                    "`{}` has no `addresses:`, and a host name names the host at its addresses",
                    component.id
                )
            } else {
                continue;
            };
            self.push(
                Diagnostic::new(Code::DeploymentInvalidPlacement, why)
                    .with_label(span, "this host name names nothing")
                    .with_help("remove `host:`, or give the component `addresses:`"),
            );
        }
        let hosts = deployment.hosts(self.spec);
        // Host name → indices of the hosts of that name, in order.
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, host) in hosts.iter().enumerate() {
            by_name.entry(host.name.as_str()).or_default().push(i);
        }
        let id = |c: ComponentId| self.spec.component(c).id.clone();
        let mut diagnostics = Vec::new();
        for (index, host) in hosts.iter().enumerate() {
            // Two different names for one host.
            let named: Vec<(ComponentId, &String)> = host
                .components
                .iter()
                .filter_map(|c| Some((*c, deployment.components.get(c)?.host.as_ref()?)))
                .collect();
            if let Some((other, other_name)) = named.iter().find(|(_, n)| **n != host.name) {
                let (first, _) = named[0];
                let mut d = Diagnostic::new(
                    Code::DeploymentHostConflict,
                    format!(
                        "components `{}` and `{}` have the same addresses, so they run on one host, but name it `{}` and `{other_name}`",
                        id(first),
                        id(*other),
                        host.name
                    ),
                )
                .with_help("give the components of one host the same `host:` name, or give it on one of them only");
                if let Some(span) = host_spans.get(other) {
                    d = d.with_label(*span, "this name");
                }
                if let Some(span) = host_spans.get(&first) {
                    d = d.with_label(*span, "contradicts this one");
                }
                diagnostics.push(d);
            }
            if !host.named {
                continue;
            }
            let Some((named_by, _)) = named.first() else {
                continue;
            };
            let span = host_spans.get(named_by).copied().unwrap_or(host.span);
            // One name for two hosts (file names would collide).
            // Hosts have disjoint components: another index is another host.
            if let Some(other) = by_name
                .get(host.name.as_str())
                .and_then(|same| same.iter().find(|&&o| o != index))
                .map(|&o| &hosts[o])
            {
                if other.components[0] < host.components[0] || !other.named {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::DeploymentHostConflict,
                            format!(
                                "host name `{}` is also the name of the host of {}, whose addresses differ",
                                host.name,
                                other
                                    .components
                                    .iter()
                                    .map(|c| format!("`{}`", id(*c)))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                        .with_label(span, "names a second host")
                        .with_help("components run on one host when their `addresses:` are equal; give each host its own name"),
                    );
                    continue;
                }
            }
            // The name of a component that is not on this host.
            if let Some(c) = self.index.component(&host.name) {
                if !host.components.contains(&c) {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::DeploymentHostConflict,
                            format!(
                                "host name `{}` is the id of a component that does not run on this host",
                                host.name
                            ),
                        )
                        .with_label(span, "names a component elsewhere")
                        .with_help("choose a name that is not the id of another component (`--component` takes both)"),
                    );
                }
            }
        }
        for d in diagnostics {
            self.push(d);
        }
        hosts
    }

    /// Free text: control characters are an error (see [`check_text`]).
    fn text(
        &mut self,
        field: &str,
        value: Option<&Spanned<String>>,
        multiline: bool,
    ) -> Option<String> {
        let value = value?;
        let span = self.span(value);
        let code = Code::DeploymentControlCharacter;
        if let Some(d) = check_text(self.source, code, field, &value.value, span, multiline) {
            self.push(d);
        }
        Some(value.value.clone())
    }

    fn nets_with_spans<'r>(
        &self,
        addresses: impl Iterator<Item = &'r Spanned<String>>,
    ) -> Vec<(IpNet, Span)> {
        addresses
            .filter_map(|a| match parse_address(&a.value) {
                Ok(Address::Net(net)) => Some((net, self.span(a))),
                _ => None,
            })
            .collect()
    }

    fn check_features(&mut self, raw: &[Spanned<String>]) -> BTreeSet<FeatureId> {
        let mut out = BTreeSet::new();
        for name in raw {
            let span = self.span(name);
            match self.spec.feature_by_id(&name.value) {
                Some(f) => {
                    out.insert(f);
                }
                None => {
                    let near = suggest(
                        &name.value,
                        self.spec.features.iter().map(|f| f.id.as_str()),
                    );
                    let help = match near {
                        Some(n) => format!("did you mean `{n}`?"),
                        None if self.spec.features.is_empty() => {
                            "the spec defines no features".to_owned()
                        }
                        None => format!(
                            "the spec's features: {}",
                            self.spec
                                .features
                                .iter()
                                .map(|f| f.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.push(
                        Diagnostic::new(
                            Code::DeploymentUnknownFeature,
                            format!("unknown feature `{}`", name.value),
                        )
                        .with_label(span, "the spec defines no such feature")
                        .with_help(help),
                    );
                }
            }
        }
        out
    }

    fn check_parameters(&mut self, raw: &RawMap<Spanned<i64>>) -> BTreeMap<ParameterId, u16> {
        let mut out = BTreeMap::new();
        for (key, value) in &raw.0 {
            let key_span = self.span(key);
            let Some(p) = self.spec.parameter_by_id(&key.value) else {
                let near = suggest(
                    &key.value,
                    self.spec.parameters.iter().map(|p| p.id.as_str()),
                );
                if let Some(n) = near {
                    self.already_reported.insert(format!("${n}"));
                }
                self.push(
                    Diagnostic::new(
                        Code::DeploymentUnknownParameter,
                        format!("unknown parameter `{}`", key.value),
                    )
                    .with_label(key_span, "the spec defines no such parameter")
                    .with_help(match near {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => "only the spec's `parameters:` can be given values".to_owned(),
                    }),
                );
                continue;
            };
            match u16::try_from(value.value) {
                Ok(port) if port >= 1 => {
                    out.insert(p, port);
                }
                _ => {
                    let span = self.span(value);
                    self.push(
                        Diagnostic::new(
                            Code::DeploymentInvalidPort,
                            format!("port {} is out of range", value.value),
                        )
                        .with_label(span, "not in 1..65535")
                        .with_help("a parameter's value is a port from 1 to 65535"),
                    );
                }
            }
        }
        out
    }

    fn component_key(&mut self, id: &str, span: Span) -> Option<ComponentId> {
        if let Some(c) = self.index.component(id) {
            return Some(c);
        }
        let help = if self.index.external(id).is_some() {
            format!("`{id}` is an external endpoint: put it under `externals:`")
        } else if let Some(c) = self.spec.components.iter().find(|c| {
            c.name.eq_ignore_ascii_case(id) || c.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
        }) {
            self.already_reported.insert(c.id.clone());
            format!("`{id}` names component `{}`: use its id", c.id)
        } else if let Some(near) = suggest(id, self.spec.components.iter().map(|c| c.id.as_str())) {
            self.already_reported.insert(near.to_owned());
            format!("did you mean `{near}`?")
        } else {
            "only the spec's components can be placed".to_owned()
        };
        self.push(
            Diagnostic::new(
                Code::DeploymentUnknownComponent,
                format!("unknown component `{id}`"),
            )
            .with_label(span, "the spec has no such component")
            .with_help(help),
        );
        None
    }

    fn external_key(&mut self, id: &str, span: Span) -> Option<ExternalId> {
        if let Some(e) = self.index.external(id) {
            return Some(e);
        }
        let help = if self.index.component(id).is_some() {
            format!("`{id}` is a component: put it under `components:`")
        } else if let Some(near) = suggest(id, self.spec.externals.iter().map(|e| e.id.as_str())) {
            self.already_reported.insert(near.to_owned());
            format!("did you mean `{near}`?")
        } else {
            "only the spec's externals can be bound".to_owned()
        };
        self.push(
            Diagnostic::new(
                Code::DeploymentUnknownExternal,
                format!("unknown external endpoint `{id}`"),
            )
            .with_label(span, "the spec has no such external endpoint")
            .with_help(help),
        );
        None
    }

    fn check_addresses(&mut self, raw: &[Spanned<String>]) -> Vec<Address> {
        let mut out = Vec::new();
        for text in raw {
            let span = self.span(text);
            match parse_address(&text.value) {
                Ok(address) => {
                    if !out.contains(&address) {
                        out.push(address);
                    }
                }
                Err(why) => self.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidAddress,
                        format!("`{}` is not an address", text.value),
                    )
                    .with_label(span, why)
                    .with_help(
                        "write an IPv4 or IPv6 address (192.0.2.10, \"2001:db8::10\"), a CIDR \
                         (192.0.2.0/24) or a DNS name (db.example.net); quote IPv6 addresses",
                    ),
                ),
            }
        }
        out
    }

    fn check_component_placement(&mut self, raw: &RawComponentPlacement, span: Span) -> Placement {
        let addresses = self.check_addresses(&raw.addresses);
        let kubernetes = raw
            .kubernetes
            .as_ref()
            .and_then(|k| self.check_kubernetes(k));
        let aws = raw
            .aws
            .as_ref()
            .and_then(|a| self.check_aws(a, false, span));
        let host = raw.host.as_ref().and_then(|h| {
            if is_host_name(&h.value) {
                return Some(h.value.clone());
            }
            let span = self.span(h);
            self.push(
                Diagnostic::new(
                    Code::DeploymentInvalidPlacement,
                    format!("`{}` is not a host name", h.value),
                )
                .with_label(span, "not usable as a host name")
                .with_help(
                    "a host name is 1 to 63 lowercase letters, digits, '-', '_', '.' and '+', \
                     starting with a letter or digit (it names the host's ruleset file)",
                ),
            );
            None
        });
        Placement {
            addresses,
            kubernetes,
            aws,
            proxy: None,
            host,
            span,
        }
    }

    fn check_external_binding(&mut self, raw: &RawExternalBinding, span: Span) -> Placement {
        let addresses = self.check_addresses(&raw.addresses);
        let proxy = raw.proxy.as_ref().and_then(|p| {
            let pspan = self.span(p);
            match parse_proxy(&p.value) {
                Ok(proxy) => Some(proxy),
                Err(why) => {
                    self.push(
                        Diagnostic::new(
                            Code::DeploymentInvalidAddress,
                            format!("`{}` is not a proxy address", p.value),
                        )
                        .with_label(pspan, why)
                        .with_help(
                            "write address:port: 192.0.2.50:3128, [2001:db8::50]:3128 or proxy.example.net:3128",
                        ),
                    );
                    None
                }
            }
        });
        let aws = raw.aws.as_ref().and_then(|a| self.check_aws(a, true, span));
        Placement {
            addresses,
            kubernetes: None,
            aws,
            proxy,
            host: None,
            span,
        }
    }

    fn check_kubernetes(&mut self, raw: &RawKubernetes) -> Option<KubernetesSelector> {
        let mut ok = true;
        let ns_span = self.span(&raw.namespace);
        if !is_dns_label(&raw.namespace.value) {
            ok = false;
            self.push(
                Diagnostic::new(
                    Code::DeploymentInvalidPlacement,
                    format!(
                        "`{}` is not a Kubernetes namespace name",
                        raw.namespace.value
                    ),
                )
                .with_label(ns_span, "not a DNS label")
                .with_help(
                    "namespaces are lowercase letters, digits and '-', at most 63 characters",
                ),
            );
        }
        let mut labels = BTreeMap::new();
        for (key, value) in &raw.pod_selector.0 {
            let key_span = self.span(key);
            let value_span = self.span(value);
            if !is_label_key(&key.value) {
                ok = false;
                self.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a Kubernetes label key", key.value),
                    )
                    .with_label(key_span, "invalid label key")
                    .with_help("a label key is [prefix/]name, the name at most 63 characters of letters, digits, '-', '_' and '.'"),
                );
            }
            if !is_label_value(&value.value) {
                ok = false;
                self.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a Kubernetes label value", value.value),
                    )
                    .with_label(value_span, "invalid label value")
                    .with_help("a label value is at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
                );
            }
            labels.insert(key.value.clone(), value.value.clone());
        }
        ok.then(|| KubernetesSelector {
            namespace: raw.namespace.value.clone(),
            pod_selector: labels,
        })
    }

    fn check_aws(&mut self, raw: &RawAws, external: bool, span: Span) -> Option<AwsPlacement> {
        let mut ok = true;
        if let Some(sg) = &raw.security_group {
            let sg_span = self.span(sg);
            if external {
                ok = false;
                self.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        "a security group belongs to a component, not an external endpoint",
                    )
                    .with_label(sg_span, "here")
                    .with_help("give the endpoint `addresses:` or `aws: {prefix_list: pl-…}`"),
                );
            } else if sg.value.is_empty()
                || sg.value.len() > 255
                || sg.value.starts_with("sg-")
                || !sg.value.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            {
                ok = false;
                self.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a security group name", sg.value),
                    )
                    .with_label(sg_span, "invalid security group name")
                    .with_help("give the group's name (1 to 255 ASCII characters, not starting with `sg-`); the aws target creates it"),
                );
            }
        }
        if let Some(pl) = &raw.prefix_list {
            let pl_span = self.span(pl);
            let valid = pl.value.strip_prefix("pl-").is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !valid {
                ok = false;
                self.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPlacement,
                        format!("`{}` is not a prefix list id", pl.value),
                    )
                    .with_label(pl_span, "expected pl- and hex digits")
                    .with_help("e.g. pl-63a5400a (`aws ec2 describe-managed-prefix-lists`)"),
                );
            }
        }
        if raw.security_group.is_none() && raw.prefix_list.is_none() {
            ok = false;
            self.push(
                Diagnostic::new(Code::DeploymentInvalidPlacement, "empty `aws:` placement")
                    .with_label(span, "aws placement without a value")
                    .with_help(if external {
                        "give `prefix_list: pl-…`, or remove `aws:`"
                    } else {
                        "give `security_group: <name>`, or remove `aws:`"
                    }),
            );
        }
        ok.then(|| AwsPlacement {
            security_group: raw.security_group.as_ref().map(|s| s.value.clone()),
            prefix_list: raw.prefix_list.as_ref().map(|s| s.value.clone()),
        })
    }

    fn owner_name(&self, owner: Owner) -> String {
        match owner {
            Owner::Component(c) => format!("component `{}`", self.spec.component(c).id),
            Owner::External(e) => format!("external `{}`", self.spec.external(e).id),
        }
    }

    /// Addresses of different components, or of a component and an external
    /// endpoint, that overlap make a rule about one also match the other.
    /// Components of one host (equal address sets) share their addresses by
    /// design; among the rest, one diagnostic per pair of hosts and nets.
    fn check_overlaps(
        &mut self,
        deployment: &Deployment,
        addressed: &[(Owner, IpNet, Span)],
        hosts: &[Host],
    ) {
        let host_index: HashMap<ComponentId, usize> = hosts
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.components.iter().map(move |c| (*c, i)))
            .collect();
        let host_of = |owner: &Owner| match owner {
            Owner::Component(c) => host_index.get(c).copied(),
            Owner::External(_) => None,
        };
        let mut reported_hosts = BTreeSet::new();
        let mut all: Vec<(Owner, IpNet, Option<Span>)> = addressed
            .iter()
            .map(|(o, n, s)| (*o, *n, Some(*s)))
            .collect();
        // CIDRs the spec gives to externals the deployment does not rebind.
        for (i, external) in self.spec.externals.iter().enumerate() {
            if let ExternalAddress::Cidr(net) = external.address {
                if deployment
                    .externals
                    .get(&ExternalId(i))
                    .is_none_or(|p| p.addresses.is_empty())
                {
                    all.push((Owner::External(ExternalId(i)), net, None));
                }
            }
        }
        let mut reported = BTreeSet::new();
        let nets: Vec<IpNet> = all.iter().map(|(_, net, _)| *net).collect();
        let pairs = overlapping_pairs(&nets, |i, j| {
            let ((owner_a, ..), (owner_b, ..)) = (&all[i], &all[j]);
            let (host_a, host_b) = (host_of(owner_a), host_of(owner_b));
            owner_a != owner_b
                && !matches!((owner_a, owner_b), (Owner::External(_), Owner::External(_)))
                && !(host_a.is_some() && host_a == host_b)
        });
        for (i, j) in pairs {
            let ((owner_a, net_a, span_a), (owner_b, net_b, span_b)) = (&all[i], &all[j]);
            {
                let (host_a, host_b) = (host_of(owner_a), host_of(owner_b));
                if let (Some(a), Some(b)) = (host_a, host_b) {
                    if !reported_hosts.insert((
                        a.min(b),
                        a.max(b),
                        *net_a.min(net_b),
                        *net_a.max(net_b),
                    )) {
                        continue;
                    }
                }
                let (first, second) = match (span_a, span_b) {
                    (Some(a), Some(b)) => (*b, Some(*a)),
                    (Some(a), None) => (*a, None),
                    (None, Some(b)) => (*b, None),
                    (None, None) => continue,
                };
                if !reported.insert((first.offset, second.map(|s| s.offset))) {
                    continue;
                }
                let (name_a, name_b) = (self.owner_name(*owner_a), self.owner_name(*owner_b));
                let message = if net_a == net_b {
                    format!(
                        "{name_a} and {name_b} share the address {}",
                        net_text(net_a)
                    )
                } else {
                    format!(
                        "{} of {name_a} overlaps {} of {name_b}",
                        net_text(net_a),
                        net_text(net_b)
                    )
                };
                let mut d = Diagnostic::new(Code::DeploymentOverlappingAddresses, message)
                    .with_label(
                        first,
                        if second.is_some() {
                            "overlaps"
                        } else {
                            "overlaps a CIDR the spec gives an external endpoint"
                        },
                    )
                    .with_help(if host_a.is_some() && host_b.is_some() {
                        "a rule about one would also match the other; give each component \
                         its own addresses (split the block, or list the hosts), or, when \
                         components share a host, give them exactly the same addresses"
                    } else {
                        "a rule about one would also match the other; give each component \
                         its own addresses (split the block, or list the hosts)"
                    });
                if let Some(second) = second {
                    d = d.with_label(second, "this address");
                }
                self.push(d);
            }
        }
    }

    /// Flows whose condition holds must have both ends placed and every
    /// parameter valued.
    fn check_flows(&mut self, deployment: &Deployment) {
        let mut reported_unplaced: BTreeSet<(String, bool)> = BTreeSet::new();
        let mut reported_parameters = BTreeSet::new();
        for flow in &self.spec.flows {
            if !deployment.flow_enabled(flow) {
                continue;
            }
            for p in flow
                .ports
                .parameters()
                .chain(flow.source_ports.parameters())
            {
                if deployment.parameter_value(self.spec, p).is_none()
                    && reported_parameters.insert(p)
                    && !self
                        .already_reported
                        .contains(&format!("${}", self.spec.parameters[p.0].id))
                {
                    let id = &self.spec.parameters[p.0].id;
                    let (span, label) = match top_level_key(&self.source.text, "parameters") {
                        Some(span) => (span, format!("`{id}` is not among these parameters")),
                        None => (
                            top_level_key(&self.source.text, "deployment").unwrap_or_default(),
                            "this deployment has no `parameters:` section".to_owned(),
                        ),
                    };
                    self.push(
                        Diagnostic::new(
                            Code::DeploymentMissingParameter,
                            format!(
                                "parameter `{id}` has no default and no value, and flow {} uses it",
                                flow.id
                            ),
                        )
                        .with_label(span, label)
                        .with_help(format!("add `{id}: <port>` under `parameters:`")),
                    );
                }
            }
            let mut unplaced = Vec::new();
            if !is_placed(self.spec, deployment, Destination::Component(flow.from)) {
                unplaced.push(Destination::Component(flow.from));
            }
            if !is_placed(self.spec, deployment, flow.to) && !unplaced.contains(&flow.to) {
                unplaced.push(flow.to);
            }
            for peer in unplaced {
                let id = self.spec.destination_id(peer).to_owned();
                if self.already_reported.contains(&id) {
                    continue;
                }
                let (section, span, example) = match peer {
                    Destination::Component(_) => (
                        "components",
                        deployment.components_span,
                        format!("{id}: {{addresses: [192.0.2.10]}}"),
                    ),
                    Destination::External(_) => (
                        "externals",
                        deployment.externals_span,
                        format!("{id}: {{addresses: [198.51.100.7]}}"),
                    ),
                };
                let code = if flow.required {
                    Code::DeploymentUnplacedFlow
                } else {
                    Code::DeploymentUnplacedOptionalFlow
                };
                // One diagnostic per peer and severity; the message names the first flow.
                if !reported_unplaced.insert((id.clone(), flow.required)) {
                    continue;
                }
                let what = if flow.required {
                    "required"
                } else {
                    "enabled optional"
                };
                let existing = match peer {
                    Destination::Component(c) => deployment.components.get(&c).map(|p| p.span),
                    Destination::External(e) => deployment.externals.get(&e).map(|p| p.span),
                };
                let d = Diagnostic::new(
                    code,
                    format!(
                        "`{id}` has no address, and the {what} flow {} needs one",
                        flow.id
                    ),
                )
                .with_label(
                    existing.unwrap_or(span),
                    match existing {
                        Some(_) => "placed here without an address".to_owned(),
                        None => format!("`{id}` is not placed under `{section}:`"),
                    },
                )
                .with_help(format!(
                    "add `{example}` (or a Kubernetes/AWS placement) under `{section}:`{}",
                    match &flow.when {
                        Some(c) => format!(
                            ", or switch off the features of `when: {}`",
                            c.display(self.spec)
                        ),
                        None => String::new(),
                    }
                ));
                self.push(d);
            }
        }
    }
}

/// Every pair `(i, j)`, `i < j`, of `nets` that overlap (one contains the
/// other: address blocks never overlap partially) and that `keep` accepts,
/// sorted. A sweep over the nets in address order with a stack of the
/// blocks enclosing the current one: linear in the nets plus the pairs
/// found, where comparing every pair would be quadratic.
fn overlapping_pairs(nets: &[IpNet], keep: impl Fn(usize, usize) -> bool) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..nets.len()).collect();
    order.sort_by_key(|&i| (nets[i].network(), nets[i].prefix_len(), i));
    let mut enclosing: Vec<usize> = Vec::new();
    let mut pairs = Vec::new();
    for i in order {
        while let Some(&outer) = enclosing.last() {
            if nets[outer].contains(&nets[i].network()) {
                break;
            }
            enclosing.pop();
        }
        for &outer in &enclosing {
            let pair = (outer.min(i), outer.max(i));
            if keep(pair.0, pair.1) {
                pairs.push(pair);
            }
        }
        enclosing.push(i);
    }
    pairs.sort_unstable();
    pairs
}

/// Whether a flow end has anything that says where it is. Components of kind
/// `external` without a placement are "any address" and count as placed.
pub fn is_placed(spec: &Spec, deployment: &Deployment, end: Destination) -> bool {
    match end {
        Destination::Component(c) => {
            spec.component(c).kind == ComponentKind::External
                || deployment.components.get(&c).is_some_and(|p| !p.is_empty())
        }
        Destination::External(e) => {
            deployment.externals.get(&e).is_some_and(|p| !p.is_empty())
                || !matches!(spec.external(e).address, ExternalAddress::Placeholder(_))
        }
    }
}

/// The span of a top-level `key:` (at the start of a line), if present.
fn top_level_key(text: &str, key: &str) -> Option<Span> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
        {
            return Some(Span::new(offset, key.len()));
        }
        offset += line.len();
    }
    None
}

fn net_text(net: &IpNet) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_net(&mut out, net);
    out
}

/// Whether `text` can name a host: it becomes a file name (`<host>.nft`)
/// and a set name, so no '/' and no leading dot.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | '+')
        })
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn is_label_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_label_key(text: &str) -> bool {
    match text.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253
                && is_valid_host(prefix)
                && !prefix.contains('*')
                && is_label_name(name)
        }
        None => is_label_name(text),
    }
}

fn is_label_value(text: &str) -> bool {
    text.is_empty() || is_label_name(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{render_diagnostics, RenderStyle};
    use crate::load_spec;

    const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: cache, kind: dependency}
  - {id: users, kind: external}
externals:
  - {id: partner, cidr: 203.0.113.0/24}
  - {id: irc, placeholder: X IRC network}
  - {id: slack, host: slack.com}
features:
  - {id: slack-alerts}
  - {id: irc-alerts}
parameters:
  - {id: db-port, default: 5432}
  - {id: cache-port}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: $db-port}
  - {from: web, to: cache, protocol: tcp, port: $cache-port}
  - {from: web, to: partner, protocol: tcp, port: 443}
  - {from: web, to: slack, protocol: tcp, port: 443, required: false, when: slack-alerts}
  - {from: web, to: irc, protocol: tcp, port: 6697, required: false, when: irc-alerts}
";

    fn spec() -> Spec {
        load_spec(SourceFile::new("portolan.yaml", SPEC))
            .expect("valid spec")
            .value
    }

    fn load(text: &str) -> Result<Loaded<Deployment>, Diagnostics> {
        load_deployment(SourceFile::new("deployment.yaml", text), &spec())
    }

    fn codes(text: &str) -> Vec<Code> {
        match load(text) {
            Ok(l) => l.warnings.items.iter().map(|d| d.code).collect(),
            Err(d) => d.items.iter().map(|d| d.code).collect(),
        }
    }

    /// Each diagnostic's message and help, unwrapped.
    fn messages(text: &str) -> String {
        let diagnostics = match load(text) {
            Ok(l) => l.warnings,
            Err(d) => d,
        };
        diagnostics
            .items
            .iter()
            .map(|d| format!("{} / {}\n", d.message, d.help.as_deref().unwrap_or("")))
            .collect()
    }

    fn rendered(text: &str) -> String {
        let diagnostics = match load(text) {
            Ok(l) => l.warnings,
            Err(d) => d,
        };
        render_diagnostics(&diagnostics, RenderStyle::Plain)
    }

    const GOOD: &str = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.10, \"2001:db8::10\"]}
  db: {addresses: [db.example.net]}
  cache: {addresses: [192.0.2.20]}
";

    #[test]
    fn a_valid_deployment_loads_without_diagnostics() {
        let loaded = load(GOOD).expect("valid");
        // db is placed by name and no flow allows DNS: the only warning.
        let codes: Vec<Code> = loaded.warnings.items.iter().map(|d| d.code).collect();
        assert_eq!(codes, [Code::DeploymentNoDnsFlow]);
        let d = loaded.value;
        let spec = spec();
        let web = spec.component_by_id("web").expect("web");
        assert_eq!(
            d.components[&web].addresses,
            [
                Address::Net("192.0.2.10/32".parse().expect("net")),
                Address::Net("2001:db8::10/128".parse().expect("net"))
            ]
        );
        let db = spec.component_by_id("db").expect("db");
        assert_eq!(
            d.components[&db].addresses,
            [Address::Host("db.example.net".into())]
        );
        let cache_port = spec.parameter_by_id("cache-port").expect("param");
        assert_eq!(d.parameters[&cache_port], 6379);
    }

    /// Regression (issue 9, row 13): only the first structural problem of
    /// a deployment was reported.
    #[test]
    fn every_structural_problem_is_reported_at_once() {
        let text = "deployment: 1
nme: lab
components:
  web: {adresses: [192.0.2.10]}
  db: {addresses: 192.0.2.20, kubernetes: {namespace: [x]}}
site:
  - {to: [192.0.2.53], protocol: UDP, port: 53}
";
        assert_eq!(
            codes(text),
            [
                Code::UnknownKey,
                Code::UnknownKey,
                Code::WrongType,
                Code::WrongType,
                Code::MissingKey,
            ]
        );
        let out = rendered(text);
        assert!(out.contains("see docs/deployment-format.md"), "{out}");
        assert!(out.contains("this site flow has no `purpose`"), "{out}");
    }

    #[test]
    fn unknown_names_get_did_you_mean() {
        let text = "deployment: 1
features: [slak-alerts]
parameters: {cache-prt: 6379, db-port: 70000}
components:
  wbe: {addresses: [192.0.2.10]}
  slack: {addresses: [192.0.2.11]}
  db: {addresses: [192.0.2.20]}
  cache: {addresses: [192.0.2.21]}
externals:
  irk: {addresses: [198.51.100.7]}
";
        let out = rendered(text);
        assert_eq!(
            codes(text),
            [
                Code::DeploymentUnknownFeature,
                Code::DeploymentUnknownParameter,
                Code::DeploymentInvalidPort,
                Code::DeploymentUnknownComponent,
                Code::DeploymentUnknownComponent,
                Code::DeploymentUnknownExternal,
            ]
        );
        assert!(out.contains("did you mean `slack-alerts`?"), "{out}");
        assert!(out.contains("did you mean `cache-port`?"), "{out}");
        assert!(out.contains("did you mean `web`?"), "{out}");
        assert!(
            out.contains("`slack` is an external endpoint: put it under `externals:`"),
            "{out}"
        );
        assert!(out.contains("did you mean `irc`?"), "{out}");
        assert!(out.contains("deployment.yaml:2:12"), "{out}");
        insta::assert_snapshot!("unknown_names", out);
    }

    #[test]
    fn invalid_addresses_are_located() {
        let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.300, 192.0.2.5/24, not an address, \"2001:db8::1::2\"]}
  db: {addresses: [192.0.2.20]}
  cache: {addresses: [192.0.2.21]}
externals:
  slack: {proxy: 192.0.2.50}
";
        assert_eq!(
            codes(text),
            [Code::DeploymentInvalidAddress; 5],
            "{}",
            rendered(text)
        );
        let out = rendered(text);
        assert!(
            out.contains("host bits set: the block is 192.0.2.0/24"),
            "{out}"
        );
        assert!(out.contains("deployment.yaml:4:21"), "{out}");
        insta::assert_snapshot!("invalid_addresses", out);
    }

    #[test]
    fn overlapping_addresses_between_components_are_errors() {
        let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.0/24]}
  db: {addresses: [192.0.2.10]}
  cache: {addresses: [203.0.113.5]}
  users: {addresses: [192.0.2.0/24]}
";
        // users is the outside world: overlapping it is its point.
        assert_eq!(
            codes(text),
            [
                Code::DeploymentOverlappingAddresses,
                Code::DeploymentOverlappingAddresses
            ],
            "{}",
            rendered(text)
        );
        insta::assert_snapshot!("overlapping_addresses", rendered(text));
        // The same address twice within one component is not an overlap.
        assert_eq!(
            codes(&GOOD.replace("192.0.2.20]", "192.0.2.20, 192.0.2.20/32]")),
            [Code::DeploymentNoDnsFlow]
        );
    }

    #[test]
    fn components_with_equal_address_sets_share_one_host() {
        let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  db: {addresses: [\"2001:db8::10\", 192.0.2.10/32]}
  web: {addresses: [192.0.2.10, \"2001:db8::10\"]}
  cache: {addresses: [192.0.2.20]}
";
        let loaded = load(text).expect("equal sets are one host, not an overlap");
        assert!(loaded.warnings.items.is_empty(), "{}", rendered(text));
        let spec = spec();
        let hosts = loaded.value.hosts(&spec);
        let id = |name| spec.component_by_id(name).expect("component");
        assert_eq!(hosts.len(), 2);
        // Spec order names the host, whatever order the deployment uses.
        assert_eq!(hosts[0].name, "web+db");
        assert!(!hosts[0].named);
        assert_eq!(hosts[0].components, [id("web"), id("db")]);
        assert!(hosts[0].is_one_machine());
        assert_eq!(hosts[1].name, "cache");
        assert_eq!(hosts[1].components, [id("cache")]);
        assert_eq!(
            loaded.value.host_of(&spec, id("db")).map(|h| h.name),
            Some("web+db".to_owned())
        );
        // The outside world and components without addresses are on no host.
        assert!(loaded.value.host_of(&spec, id("users")).is_none());

        // Several machines running the same roles are one host group, not one machine.
        let group = load(&text.replace("\"2001:db8::10\"", "192.0.2.11"))
            .expect("valid")
            .value;
        let hosts = group.hosts(&spec);
        assert_eq!(hosts[0].components.len(), 2);
        assert!(!hosts[0].is_one_machine());
    }

    #[test]
    fn a_partial_overlap_with_a_shared_host_is_still_an_error_once() {
        let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.10, 192.0.2.11]}
  db: {addresses: [192.0.2.11, 192.0.2.10]}
  cache: {addresses: [192.0.2.10]}
";
        // web and db share a host; cache is on one of its addresses only:
        // a rule about cache would match web and db. Reported once, not
        // once per component of the host.
        assert_eq!(
            codes(text),
            [Code::DeploymentOverlappingAddresses],
            "{}",
            rendered(text)
        );
        let out = messages(text);
        assert!(
            out.contains("component `web` and component `cache` share the address 192.0.2.10"),
            "{out}"
        );
        assert!(
            out.contains("give them exactly the same addresses"),
            "{out}"
        );
        assert!(rendered(text).contains("deployment.yaml:6:23"));
        // A block and an address inside it are a partial overlap too.
        let block = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.0/24]}
  db: {addresses: [192.0.2.0/24]}
  cache: {addresses: [192.0.2.0/25]}
";
        assert_eq!(codes(block), [Code::DeploymentOverlappingAddresses]);
    }

    #[test]
    fn host_names_are_checked() {
        let named = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.10], host: app1}
  db: {addresses: [192.0.2.10]}
  cache: {addresses: [192.0.2.20]}
";
        let loaded = load(named).expect("valid");
        let spec = spec();
        let hosts = loaded.value.hosts(&spec);
        assert_eq!(hosts[0].name, "app1");
        assert!(hosts[0].named);
        assert_eq!(hosts[0].components.len(), 2);
        // The same name on both components of a host is fine.
        assert!(load(&named.replace(
            "[192.0.2.10]}\n  cache",
            "[192.0.2.10], host: app1}\n  cache"
        ))
        .is_ok());

        let cases = [
            // Two names for one host.
            (
                named.replace(
                    "[192.0.2.10]}\n  cache",
                    "[192.0.2.10], host: app2}\n  cache",
                ),
                Code::DeploymentHostConflict,
                "name it `app1` and `app2`",
            ),
            // One name for two hosts.
            (
                named.replace("[192.0.2.20]}", "[192.0.2.20], host: app1}"),
                Code::DeploymentHostConflict,
                "host name `app1` is also the name of the host of `web`, `db`",
            ),
            // The default name of another host.
            (
                named.replace("host: app1", "host: cache"),
                Code::DeploymentHostConflict,
                "`cache` is also the name of the host of `cache`",
            ),
            // The id of a component elsewhere, without addresses of its own.
            (
                named.replace("host: app1", "host: users"),
                Code::DeploymentHostConflict,
                "is the id of a component that does not run on this host",
            ),
            // Not a usable file name.
            (
                named.replace("host: app1", "host: ../etc"),
                Code::DeploymentInvalidPlacement,
                "`../etc` is not a host name",
            ),
            // A name without addresses names nothing.
            (
                named.replace(
                    "cache: {addresses: [192.0.2.20]}",
                    "cache: {addresses: [192.0.2.20]}\n  users: {host: world}",
                ),
                Code::DeploymentInvalidPlacement,
                "`users` is the outside world",
            ),
        ];
        for (text, code, fragment) in cases {
            let out = rendered(&text);
            assert_eq!(codes(&text), [code], "{out}");
            assert!(messages(&text).contains(fragment), "{fragment}: {out}");
            // Located at the `host:` value.
            assert!(out.contains("host: ") && out.contains("──┬"), "{out}");
        }
        insta::assert_snapshot!(
            "host_conflict",
            rendered(&named.replace(
                "[192.0.2.10]}\n  cache",
                "[192.0.2.10], host: app2}\n  cache"
            ))
        );
    }

    #[test]
    fn required_flows_need_placed_ends_and_parameter_values() {
        let text = "deployment: 1
features: [irc-alerts]
components:
  web: {addresses: [192.0.2.10]}
  cache:
";
        let found = codes(text);
        assert_eq!(
            found,
            [
                Code::DeploymentUnplacedFlow,
                Code::DeploymentMissingParameter,
                Code::DeploymentUnplacedFlow,
                Code::DeploymentUnplacedOptionalFlow,
            ],
            "{}",
            rendered(text)
        );
        insta::assert_snapshot!("unplaced", rendered(text));
    }

    #[test]
    fn kubernetes_and_aws_placements_are_checked() {
        let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web:
    addresses: [192.0.2.10]
    kubernetes: {namespace: Web_NS, pod_selector: {app: web, \"bad key!\": x}}
    aws: {security_group: sg-123}
  db:
    aws: {security_group: demo-db}
  cache:
    kubernetes: {namespace: demo, pod_selector: {app.kubernetes.io/name: cache}}
externals:
  slack: {aws: {security_group: nope}}
  partner: {aws: {prefix_list: pl-zz}}
";
        assert_eq!(
            codes(text),
            [Code::DeploymentInvalidPlacement; 5],
            "{}",
            rendered(text)
        );
        // A valid selector and security group place a component.
        let ok = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {kubernetes: {namespace: demo, pod_selector: {app: web}}}
  db: {aws: {security_group: demo-db}}
  cache: {aws: {prefix_list: pl-6da54004}}
";
        let loaded = load(ok).expect("valid");
        let spec = spec();
        let web = spec.component_by_id("web").expect("web");
        let k = loaded.value.components[&web]
            .kubernetes
            .clone()
            .expect("selector");
        assert_eq!(k.namespace, "demo");
        assert_eq!(k.pod_selector["app"], "web");
    }

    #[test]
    fn structural_errors_point_at_the_deployment_format() {
        let text = "deployment: 1\ncomponents:\n  web: {adresses: [192.0.2.10]}\n";
        let err = load(text).expect_err("unknown key");
        assert_eq!(err.items[0].code, Code::UnknownKey);
        assert_eq!(
            err.items[0].help.as_deref(),
            Some("did you mean `addresses`?")
        );
        let err = load("deployment: 2\ncomponents: {}\n").expect_err("version");
        assert_eq!(err.items[0].code, Code::UnsupportedVersion);
        let err = load("  \n").expect_err("empty");
        assert!(err.items[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("deployment-format.md")));
        let err = load("deployment: 1\ncomponents: [web]\n").expect_err("list");
        assert_eq!(err.items[0].code, Code::YamlSyntax);
        assert!(
            err.items[0].message.contains("mapping"),
            "{}",
            err.items[0].message
        );
    }

    #[test]
    fn the_overlap_sweep_finds_every_pair_the_pairwise_scan_finds() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.3/32",
            "10.1.2.3/32",
            "10.2.0.0/16",
            "192.0.2.0/24",
            "192.0.2.128/25",
            "198.51.100.7/32",
            "2001:db8::/32",
            "2001:db8::10/128",
            "0.0.0.0/0",
            "10.1.2.3/32",
        ]
        .iter()
        .map(|n| n.parse().expect("net"))
        .collect();
        let mut pairwise = Vec::new();
        for i in 0..nets.len() {
            for j in i + 1..nets.len() {
                if nets[i].contains(&nets[j].network()) || nets[j].contains(&nets[i].network()) {
                    pairwise.push((i, j));
                }
            }
        }
        assert_eq!(overlapping_pairs(&nets, |_, _| true), pairwise);
        let odd = |i: usize, j: usize| (i + j) % 2 == 1;
        let kept: Vec<_> = pairwise.into_iter().filter(|&(i, j)| odd(i, j)).collect();
        assert_eq!(overlapping_pairs(&nets, odd), kept);
    }

    #[test]
    fn addresses_and_proxies_parse() {
        assert_eq!(
            parse_address("192.0.2.0/24"),
            Ok(Address::Net("192.0.2.0/24".parse().expect("net")))
        );
        assert_eq!(
            parse_address("DB.Example.NET"),
            Ok(Address::Host("db.example.net".into()))
        );
        assert!(parse_address("10.0.0.256").is_err());
        assert!(parse_address("*.example.net").is_err());
        assert!(parse_address("2001:db8::1/129").is_err());
        let p = parse_proxy("[2001:db8::50]:3128").expect("v6 proxy");
        assert_eq!(p.to_string(), "[2001:db8::50]:3128");
        assert_eq!(
            parse_proxy("proxy.example.net:8080").expect("named").port,
            8080
        );
        assert!(parse_proxy("192.0.2.50:0").is_err());
        assert!(parse_proxy("192.0.2.0/24:3128").is_err());
    }

    #[test]
    fn schema_describes_the_top_level_keys() {
        let schema: serde_json::Value =
            serde_json::from_str(&deployment_schema()).expect("schema is JSON");
        assert_eq!(schema["title"], "Portolan deployment");
        assert!(
            schema.to_string().contains("\"host\""),
            "schema lacks components' host"
        );
        for key in [
            "deployment",
            "features",
            "parameters",
            "components",
            "externals",
        ] {
            assert!(
                schema["properties"].get(key).is_some(),
                "schema lacks {key}"
            );
        }
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    }
}
