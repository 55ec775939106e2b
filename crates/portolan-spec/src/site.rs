//! Site flows: what the operator's own estate needs on the hosts of a
//! deployment (SSH from an admin network, DNS to the resolvers, NTP,
//! monitoring scrapes, log shipping). They are not the vendor's flows: they
//! live in the deployment's `site:` section, are checked here into
//! [`SiteFlow`]s, and the plan expands them into flows marked
//! [`PlannedFlow::site`](crate::plan::PlannedFlow::site).
//!
//! An end omitted means every placed component (its "host"); an end is
//! either component ids or addresses (IPv4/IPv6 addresses, CIDRs, DNS
//! names), never both, and at least one end is components.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::check::EVERY_PORT;
use crate::checker::Checker;
use crate::deployment::{parse_address, Address, Deployment};
use crate::diag::{Code, Diagnostic, Span};
use crate::given::Given;
use crate::model::*;
use crate::plan::{apply_placement, empty_endpoint, Endpoint, EndpointKind, PlannedFlow};
use crate::raw::{RawIds, RawPortItem, RawPorts, RawProtocol};

/// One site flow as the deployment writes it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSiteFlow {
    /// A short name, used in flow ids (`site:admin-ssh`); default: made from
    /// the purpose. Lowercase letters, digits and `-`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub id: Option<Spanned<String>>,
    /// Sources: component ids, or IPv4/IPv6 addresses, CIDRs and DNS names.
    /// Omitted: every placed component.
    #[serde(default, deserialize_with = "crate::given::present")]
    #[schemars(with = "Option<RawIds>")]
    pub from: Given<RawIds>,
    /// Destinations: component ids, or IPv4/IPv6 addresses, CIDRs and DNS
    /// names. Omitted: every placed component.
    #[serde(default, deserialize_with = "crate::given::present")]
    #[schemars(with = "Option<RawIds>")]
    pub to: Given<RawIds>,
    /// tcp, udp, icmp or any.
    #[schemars(with = "RawProtocol")]
    pub protocol: Spanned<RawProtocol>,
    /// Destination port(s): a number, a range `"8000-8010"`, or a list;
    /// omitted (or `"*"`) means every port (tcp, udp). Not for icmp or any.
    #[serde(default, deserialize_with = "crate::given::present")]
    #[schemars(with = "Option<RawPorts>")]
    pub port: Given<RawPorts>,
    /// Why the site needs it (shown in rules, plans and change requests).
    #[schemars(with = "String")]
    pub purpose: Spanned<String>,
}

/// One end of a checked site flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "items")]
pub enum SiteEnd {
    /// Every placed component (the end was omitted).
    EveryHost,
    /// These components.
    Components(Vec<ComponentId>),
    /// These addresses, blocks and names (outside the system).
    Addresses(Vec<Address>),
}

/// A checked site flow.
#[derive(Debug, Clone, Serialize)]
pub struct SiteFlow {
    /// Its name, unique among the site flows (`admin-ssh`).
    pub name: String,
    /// Sources.
    pub from: SiteEnd,
    /// Destinations.
    pub to: SiteEnd,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination ports, sorted and merged; empty: every port (or none).
    pub ports: Vec<PortRange>,
    /// Why.
    pub purpose: String,
    /// Where it is written in the deployment (its protocol).
    #[serde(skip)]
    pub span: Span,
}

/// Where a component is placed in a way some target can use.
pub(crate) fn is_placed_component(spec: &Spec, deployment: &Deployment, id: ComponentId) -> bool {
    spec.component(id).kind != ComponentKind::External
        && deployment
            .components
            .get(&id)
            .is_some_and(|p| !p.addresses.is_empty() || p.kubernetes.is_some() || p.aws.is_some())
}

/// `admin SSH` → `admin-ssh`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "site".to_owned()
    } else {
        out
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks the `site:` section; every problem is a diagnostic.
pub(crate) fn check(
    spec: &Spec,
    c: &mut Checker,
    raw: &[RawSiteFlow],
    deployment: &Deployment,
) -> Vec<SiteFlow> {
    let mut checker = SiteChecker {
        c,
        spec,
        deployment,
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for entry in raw {
        if let Some(flow) = checker.entry(entry, &mut names) {
            out.push(flow);
        }
    }
    out
}

/// One item of a site flow's end.
enum EndItem {
    Component(ComponentId),
    Address(Address),
}

/// Checks the [`RawSiteFlow`]s of a deployment.
struct SiteChecker<'c, 'a> {
    c: &'c mut Checker,
    spec: &'a Spec,
    deployment: &'a Deployment,
}

impl SiteChecker<'_, '_> {
    fn invalid(&mut self, span: Span, message: String, label: &str, help: &str) {
        self.c.push(
            Diagnostic::new(Code::DeploymentInvalidSiteFlow, message)
                .with_label(span, label)
                .with_help(help),
        );
    }

    fn entry(&mut self, raw: &RawSiteFlow, names: &mut BTreeSet<String>) -> Option<SiteFlow> {
        let span = self.c.span(&raw.protocol);
        let errors = self.c.error_count();
        let name = self.name(raw, names);
        names.insert(name.clone());
        let ends_help =
            "list component ids or addresses, or remove the key to mean every placed component";
        let from = self.c.given("from", raw.from.clone(), ends_help);
        let to = self.c.given("to", raw.to.clone(), ends_help);
        let port = self.c.given(
            "port",
            raw.port.clone(),
            "write `port: \"*\"` (quoted) to mean every port, or give the port; an omitted `port` also means every port",
        );
        let from = from.and_then(|from| self.end(from.as_ref(), "from"));
        let to = to.and_then(|to| self.end(to.as_ref(), "to"));
        let protocol = match raw.protocol.value {
            RawProtocol::Tcp => Protocol::Tcp,
            RawProtocol::Udp => Protocol::Udp,
            RawProtocol::Icmp => Protocol::Icmp,
            RawProtocol::Any => Protocol::Any,
        };
        let ports = match &port.flatten() {
            Some(port) => self.ports_of(port, protocol),
            None => Vec::new(),
        };
        self.purpose(&raw.purpose);
        let (from, to) = (from?, to?);
        self.both_ends(&from, &to, span);
        if self.c.error_count() > errors {
            return None;
        }
        Some(SiteFlow {
            name,
            from,
            to,
            protocol,
            ports,
            purpose: raw.purpose.value.trim().to_owned(),
            span,
        })
    }

    /// The flow's name: its `id:`, else made from its purpose, unique.
    fn name(&mut self, raw: &RawSiteFlow, names: &BTreeSet<String>) -> String {
        let Some(id) = &raw.id else {
            let base = slug(&raw.purpose.value);
            let mut name = base.clone();
            let mut n = 2;
            while names.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            return name;
        };
        let id_span = self.c.span(id);
        if !valid_name(&id.value) {
            self.invalid(
                id_span,
                format!("site flow id `{}` is not a usable name", id.value),
                "not lowercase letters, digits and `-`",
                "write e.g. `id: admin-ssh` (1 to 63 characters, starting with a letter or digit)",
            );
        } else if names.contains(&id.value) {
            self.invalid(
                id_span,
                format!("two site flows are named `{}`", id.value),
                "already used above",
                "give each site flow its own `id:`",
            );
        }
        id.value.clone()
    }

    /// The ports of a flow of `protocol`: none for icmp and any.
    fn ports_of(&mut self, port: &Spanned<RawPorts>, protocol: Protocol) -> Vec<PortRange> {
        if protocol.has_ports() {
            return self.ports(port);
        }
        let port_span = self.c.span(port);
        self.c.push(
            Diagnostic::new(
                Code::DeploymentInvalidPort,
                format!("`port` given for protocol {protocol} in a site flow"),
            )
            .with_label(port_span, "icmp and any have no ports")
            .with_help("remove `port`, or use tcp or udp"),
        );
        Vec::new()
    }

    /// The purpose names the site's end in rules and tables: one line, not
    /// empty.
    fn purpose(&mut self, purpose: &Spanned<String>) {
        let code = Code::DeploymentControlCharacter;
        self.c.printable(code, "purpose", purpose, false);
        if purpose.value.trim().is_empty() {
            let span = self.c.span(purpose);
            self.invalid(
                span,
                "a site flow needs a purpose".to_owned(),
                "empty",
                "say why the site needs it (`purpose: admin SSH`): rules and change requests show it",
            );
        }
    }

    /// At least one end is the deployment's components.
    fn both_ends(&mut self, from: &SiteEnd, to: &SiteEnd, span: Span) {
        match (from, to) {
            (SiteEnd::EveryHost, SiteEnd::EveryHost) => self.invalid(
                span,
                "a site flow without `from` and `to`".to_owned(),
                "from every host to every host",
                "give `from:` (who reaches the hosts) or `to:` (what the hosts reach), or both",
            ),
            (SiteEnd::Addresses(_), SiteEnd::Addresses(_)) => self.invalid(
                span,
                "both ends of the site flow are addresses".to_owned(),
                "no component of the deployment on either end",
                "one end must be component ids, or be omitted to mean every placed component",
            ),
            _ => {}
        }
    }

    /// One end: component ids, or addresses; `None` after a diagnostic.
    fn end(&mut self, raw: Option<&Spanned<RawIds>>, field: &str) -> Option<SiteEnd> {
        let Some(raw) = raw else {
            return Some(SiteEnd::EveryHost);
        };
        let span = self.c.span(raw);
        if raw.value.is_empty() {
            self.invalid(
                span,
                format!("empty `{field}` list"),
                "no ids or addresses",
                "omit the key to mean every placed component, or list at least one",
            );
            return None;
        }
        let mut components = Vec::new();
        let mut addresses = Vec::new();
        let mut ok = true;
        for (item, at) in raw.value.items(&raw.referenced) {
            let span = Span::from_location(at, &self.c.source);
            match self.end_item(item.trim(), span, field) {
                Some(EndItem::Component(id)) => components.push(id),
                Some(EndItem::Address(address)) => addresses.push(address),
                None => ok = false,
            }
        }
        if !components.is_empty() && !addresses.is_empty() {
            self.invalid(
                span,
                format!("`{field}` mixes component ids and addresses"),
                "both kinds here",
                "split it into two site flows: one with the components, one with the addresses",
            );
            return None;
        }
        if !ok {
            return None;
        }
        if components.is_empty() {
            addresses.sort();
            addresses.dedup();
            Some(SiteEnd::Addresses(addresses))
        } else {
            components.sort();
            components.dedup();
            Some(SiteEnd::Components(components))
        }
    }

    /// One item of an end: a placed component or an address; `None` after
    /// a diagnostic.
    fn end_item(&mut self, item: &str, span: Span, field: &str) -> Option<EndItem> {
        if let Some(id) = self.spec.component_by_id(item) {
            if self.spec.component(id).kind == ComponentKind::External {
                self.invalid(
                    span,
                    format!("`{item}` is the outside world (kind `external`), not a host"),
                    "not a placed component",
                    "write the addresses of the peers instead",
                );
                return None;
            }
            if !is_placed_component(self.spec, self.deployment, id) {
                self.invalid(
                    span,
                    format!("site flow to or from `{item}`, which the deployment does not place"),
                    "no placement",
                    &format!("place `{item}` under `components:`, or remove it here"),
                );
                return None;
            }
            return Some(EndItem::Component(id));
        }
        match parse_address(item) {
            // A single label is more likely a misspelt component than a host.
            Ok(Address::Host(name)) if !name.contains('.') => {
                let ids = self.spec.components.iter().map(|c| c.id.as_str());
                let help = match crate::deployment::suggest(item, ids) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => "write a component id of the spec, an address, a CIDR or a fully qualified DNS name".to_owned(),
                };
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentUnknownComponent,
                        format!("site flow `{field}`: no component `{item}` in the spec"),
                    )
                    .with_label(span, "not a component id, nor a DNS name with a dot")
                    .with_help(help),
                );
                None
            }
            Ok(address) => Some(EndItem::Address(address)),
            Err(why) => {
                self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidAddress,
                        format!(
                            "site flow `{field}`: `{item}` is not a component id or an address"
                        ),
                    )
                    .with_label(span, why)
                    .with_help(
                        "write a component id, an IPv4 or IPv6 address, a CIDR or a DNS name",
                    ),
                );
                None
            }
        }
    }

    fn ports(&mut self, raw: &Spanned<RawPorts>) -> Vec<PortRange> {
        let span = self.c.span(raw);
        let items: Vec<RawPortItem> = match &raw.value {
            RawPorts::Number(n) => vec![RawPortItem::Number(*n)],
            RawPorts::Text(t) if t.trim() == EVERY_PORT => return Vec::new(),
            RawPorts::Text(t) => vec![RawPortItem::Text(t.clone())],
            RawPorts::List(list) => list.clone(),
        };
        let mut out = Vec::new();
        for item in items {
            match parse_port_item(&item) {
                Ok(range) => out.push(range),
                Err(why) => self.c.push(
                    Diagnostic::new(
                        Code::DeploymentInvalidPort,
                        format!("site flow port: {why}"),
                    )
                    .with_label(span, "not a port in 1..65535 or a range `a-b`")
                    .with_help("write `port: 22`, `port: \"8000-8010\"` or `port: [80, 443]`; parameters (`$x`) are the spec's, not the site's"),
                ),
            }
        }
        if matches!(&raw.value, RawPorts::List(l) if l.is_empty()) {
            self.c.push(
                Diagnostic::new(
                    Code::DeploymentInvalidPort,
                    "empty port list in a site flow",
                )
                .with_label(span, "no ports")
                .with_help("omit `port` to mean every port, or list at least one"),
            );
        }
        crate::plan::normalise(out)
    }
}

fn parse_port_item(item: &RawPortItem) -> Result<PortRange, String> {
    let number = |n: i64| -> Result<u16, String> {
        u16::try_from(n)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("{n} is out of range"))
    };
    match item {
        RawPortItem::Number(n) => number(*n).map(PortRange::single),
        RawPortItem::Text(text) => {
            let text = text.trim();
            let parse = |s: &str| -> Result<u16, String> {
                let n: i64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{text}` is not a port"))?;
                number(n)
            };
            match text.split_once('-') {
                Some((a, b)) => {
                    let (start, end) = (parse(a)?, parse(b)?);
                    if start > end {
                        return Err(format!("`{text}` is an inverted range"));
                    }
                    Ok(PortRange { start, end })
                }
                None => parse(text).map(PortRange::single),
            }
        }
    }
}

/// Whether traffic from `component` to DNS servers is allowed by a flow
/// of the spec (enabled, udp/tcp/any on port 53 or every port) or a site
/// flow whose sources include it.
fn dns_allowed(spec: &Spec, deployment: &Deployment, component: ComponentId) -> bool {
    let covers_53 = |protocol: Protocol, ports: &[PortRange]| {
        matches!(protocol, Protocol::Udp | Protocol::Tcp | Protocol::Any)
            && (ports.is_empty() || ports.iter().any(|r| r.contains(53)))
    };
    let by_spec = spec.flows.iter().any(|flow| {
        flow.from == component
            && deployment.flow_enabled(flow)
            && flow
                .ports
                .resolve(|p| deployment.parameter_value(spec, p))
                .is_ok_and(|ports| covers_53(flow.protocol, &ports))
    });
    by_spec
        || deployment.site.iter().any(|s| {
            let from = match &s.from {
                SiteEnd::EveryHost => true,
                SiteEnd::Components(c) => c.contains(&component),
                SiteEnd::Addresses(_) => false,
            };
            from && !matches!(s.to, SiteEnd::EveryHost) && covers_53(s.protocol, &s.ports)
        })
}

/// The DNS name `flow` reaches its destination by, if any: the first name
/// among the destination's addresses (its proxy's, for a proxied TCP
/// flow), else the spec's host name of an external endpoint.
fn name_reached(spec: &Spec, deployment: &Deployment, flow: &Flow) -> Option<String> {
    let first_name = |addresses: &[Address]| {
        addresses.iter().find_map(|a| match a {
            Address::Host(h) => Some(h.clone()),
            Address::Net(_) => None,
        })
    };
    match flow.to {
        Destination::Component(c) => deployment
            .components
            .get(&c)
            .and_then(|p| first_name(&p.addresses)),
        Destination::External(e) => {
            let placement = deployment.externals.get(&e);
            let proxied = placement
                .and_then(|p| p.proxy.as_ref())
                .filter(|_| flow.protocol == Protocol::Tcp);
            match (proxied, placement) {
                (Some(proxy), _) => first_name(std::slice::from_ref(&proxy.address)),
                (None, Some(p)) if !p.addresses.is_empty() => first_name(&p.addresses),
                _ => match &spec.external(e).address {
                    ExternalAddress::Host(h) | ExternalAddress::Pattern(h) => Some(h.clone()),
                    _ => None,
                },
            }
        }
    }
}

/// Warnings `deployment::no-dns-flow`: a placed component reaches an
/// external endpoint by DNS name (its own name, or a proxy given by name),
/// and no flow allows it DNS. The name then fails to resolve at run time
/// ("Temporary failure in name resolution") once a firewall enforces the plan.
pub(crate) fn dns_warnings(spec: &Spec, deployment: &Deployment, at: Span) -> Vec<Diagnostic> {
    let mut names_by_source: Vec<(ComponentId, Vec<String>)> = Vec::new();
    for flow in &spec.flows {
        if !deployment.flow_enabled(flow) || !is_placed_component(spec, deployment, flow.from) {
            continue;
        }
        let Some(name) = name_reached(spec, deployment, flow) else {
            continue;
        };
        match names_by_source.iter_mut().find(|(c, _)| *c == flow.from) {
            Some((_, names)) if !names.contains(&name) => names.push(name),
            Some(_) => {}
            None => names_by_source.push((flow.from, vec![name])),
        }
    }
    let missing: Vec<(ComponentId, Vec<String>)> = names_by_source
        .into_iter()
        .filter(|(c, _)| !dns_allowed(spec, deployment, *c))
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = missing
        .iter()
        .map(|(c, _)| format!("`{}`", spec.component(*c).id))
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for (_, n) in &missing {
        for name in n {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let more = if names.len() > 3 {
        format!(" and {} more", names.len() - 3)
    } else {
        String::new()
    };
    let from = if missing.len() == 1 {
        format!("from: [{}], ", spec.component(missing[0].0).id)
    } else {
        String::new()
    };
    vec![Diagnostic::new(
        Code::DeploymentNoDnsFlow,
        format!(
            "{} {} {}{more} by name, and no flow allows DNS: once a firewall enforces this plan, the names fail to resolve (\"Temporary failure in name resolution\")",
            ids.join(", "),
            if missing.len() == 1 { "reaches" } else { "reach" },
            names[..names.len().min(3)].join(", "),
        ),
    )
    .with_label(at, "no DNS flow for them in this deployment")
    .with_help(format!(
        "allow the resolvers as a site flow (without `from`, every placed host may ask them), e.g.\nsite:\n  - {{{from}to: [192.0.2.53], protocol: udp, port: 53, purpose: DNS resolvers}}\n  - {{{from}to: [192.0.2.53], protocol: tcp, port: 53, purpose: DNS resolvers (large answers)}}\nor give the endpoints addresses in the deployment"
    ))]
}

/// The site flows of a deployment as planned flows: one per pair of
/// ends (an omitted end is every placed component; addresses are one end,
/// the outside world narrowed to them). Ids are `site:NAME`, with
/// `@COMPONENT` (or `@FROM->TO`) when the entry makes several flows.
pub(crate) fn plan_site_flows(
    spec: &Spec,
    deployment: &Deployment,
    components: &[Endpoint],
) -> Vec<PlannedFlow> {
    if deployment.site.is_empty() {
        return Vec::new();
    }
    let machines: Vec<Vec<ComponentId>> = deployment
        .hosts(spec)
        .into_iter()
        .filter(|h| h.is_one_machine())
        .map(|h| h.components)
        .collect();
    let machine_of = |id: &str| {
        let c = spec.component_by_id(id)?;
        machines.iter().position(|m| m.contains(&c))
    };
    let mut out = Vec::new();
    for (index, site) in deployment.site.iter().enumerate() {
        let ends = |end: &SiteEnd| -> Vec<Endpoint> {
            match end {
                SiteEnd::EveryHost => (0..spec.components.len())
                    .map(ComponentId)
                    .filter(|c| is_placed_component(spec, deployment, *c))
                    .map(|c| components[c.0].clone())
                    .collect(),
                SiteEnd::Components(ids) => ids.iter().map(|c| components[c.0].clone()).collect(),
                SiteEnd::Addresses(addresses) => vec![address_endpoint(site, addresses)],
            }
        };
        let (froms, tos) = (ends(&site.from), ends(&site.to));
        let count = froms.len() * tos.len();
        for from in &froms {
            for to in &tos {
                let id = match (count, &site.from, &site.to) {
                    (1, _, _) => format!("site:{}", site.name),
                    (_, SiteEnd::Addresses(_), _) => format!("site:{}@{}", site.name, to.id),
                    (_, _, SiteEnd::Addresses(_)) => format!("site:{}@{}", site.name, from.id),
                    _ => format!("site:{}@{}->{}", site.name, from.id, to.id),
                };
                let both_components = !matches!(site.from, SiteEnd::Addresses(_))
                    && !matches!(site.to, SiteEnd::Addresses(_));
                let local = both_components
                    && from.id != to.id
                    && machine_of(&from.id).is_some()
                    && machine_of(&from.id) == machine_of(&to.id);
                out.push(PlannedFlow {
                    id,
                    flow: index,
                    site: true,
                    from: from.clone(),
                    to: to.clone(),
                    protocol: site.protocol,
                    source_ports: Vec::new(),
                    ports: site.ports.clone(),
                    multicast: None,
                    required: true,
                    local,
                    via_proxy: None,
                    name: None,
                    purpose: Some(site.purpose.clone()),
                    span: site.span,
                });
            }
        }
    }
    out
}

/// The addresses end of a site flow: the outside world narrowed to them,
/// named after the site flow (`site:admin-ssh`).
fn address_endpoint(site: &SiteFlow, addresses: &[Address]) -> Endpoint {
    let id = format!("site:{}", site.name);
    let mut endpoint = empty_endpoint(&id, &site.purpose, EndpointKind::Outside);
    let placement = crate::deployment::Placement {
        addresses: addresses.to_vec(),
        span: site.span,
        ..Default::default()
    };
    apply_placement(&mut endpoint, &placement);
    endpoint
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::deployment::load_deployment;
    use crate::{load_spec, Diagnostics, Loaded, SourceFile};

    const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: users, kind: external}
externals:
  - {id: updates, host: updates.example.com}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: 5432}
  - {from: web, to: updates, protocol: tcp, port: 443}
";

    const PLACED: &str = "deployment: 1
components:
  web: {addresses: [192.0.2.10]}
  db: {addresses: [192.0.2.20, \"2001:db8::20\"]}
";

    fn load(site: &str) -> Result<Loaded<Deployment>, Diagnostics> {
        let spec = load_spec(SourceFile::new("portolan.yaml", SPEC))
            .expect("valid spec")
            .value;
        load_deployment(
            SourceFile::new("deployment.yaml", format!("{PLACED}{site}")),
            &spec,
        )
    }

    fn codes(d: &Diagnostics) -> Vec<&'static str> {
        d.items.iter().map(|d| d.code.as_str()).collect()
    }

    fn errors(d: &Diagnostics) -> Vec<&'static str> {
        d.items
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code.as_str())
            .collect()
    }

    #[test]
    fn the_issue_example_plans_labelled_site_flows() {
        let site = "site:
  - {from: 198.51.100.0/24, protocol: tcp, port: 22, purpose: admin SSH}
  - {to: [192.0.2.53, 192.0.2.54], protocol: udp, port: 53, purpose: resolvers}
  - {from: 198.51.100.7, to: [db], protocol: tcp, port: 9100, purpose: node exporter scrape}
";
        let loaded = load(site).expect("valid");
        // A DNS site flow from every host: no DNS warning.
        assert!(codes(&loaded.warnings).is_empty(), "{:?}", loaded.warnings);
        let spec = load_spec(SourceFile::new("portolan.yaml", SPEC))
            .expect("spec")
            .value;
        let plan = crate::plan::plan(&spec, &loaded.value);
        let ids: Vec<&str> = plan.site_flows.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "site:admin-ssh@web",
                "site:admin-ssh@db",
                "site:resolvers@web",
                "site:resolvers@db",
                "site:node-exporter-scrape"
            ]
        );
        assert!(plan.site_flows.iter().all(|f| f.site && f.required));
        assert!(plan.flows.iter().all(|f| !f.site));
        let ssh = &plan.site_flows[0];
        assert_eq!(ssh.from.id, "site:admin-ssh");
        assert_eq!(ssh.from.kind, EndpointKind::Outside);
        assert!(!ssh.from.any);
        assert_eq!(
            ssh.from.nets,
            ["198.51.100.0/24".parse::<ipnet::IpNet>().expect("net")]
        );
        assert_eq!(ssh.to.id, "web");
        assert_eq!(ssh.ports, [PortRange::single(22)]);
        assert_eq!(ssh.purpose.as_deref(), Some("admin SSH"));
        assert_eq!(plan.site_flows[3].from.id, "db");
        assert_eq!(plan.site_flows[3].to.nets.len(), 2);
        assert_eq!(plan.all_flows().count(), plan.flows.len() + 5);
        let json = serde_json::to_value(&plan).expect("json");
        assert_eq!(json["site_flows"][0]["site"], true);
        assert!(json["flows"][0].get("site").is_none());
    }

    #[test]
    fn bad_site_flows_are_diagnostics_with_codes() {
        let cases = [
            ("- {protocol: tcp, port: 22, purpose: x}", "deployment::invalid-site-flow"),
            ("- {from: 198.51.100.1, to: 192.0.2.99, protocol: tcp, port: 22, purpose: x}", "deployment::invalid-site-flow"),
            ("- {from: [web, 198.51.100.1], protocol: tcp, port: 22, purpose: x}", "deployment::invalid-site-flow"),
            ("- {from: wbe, to: db, protocol: tcp, port: 22, purpose: x}", "deployment::unknown-component"),
            ("- {from: users, protocol: tcp, port: 22, purpose: x}", "deployment::invalid-site-flow"),
            ("- {from: 198.51.100.1/8, protocol: tcp, port: 22, purpose: x}", "deployment::invalid-address"),
            ("- {from: 198.51.100.1, protocol: icmp, port: 22, purpose: x}", "deployment::invalid-port"),
            ("- {from: 198.51.100.1, protocol: tcp, port: \"22-1\", purpose: x}", "deployment::invalid-port"),
            ("- {from: 198.51.100.1, protocol: tcp, port: 22, purpose: \" \"}", "deployment::invalid-site-flow"),
            ("- {id: a, from: 198.51.100.1, protocol: tcp, port: 22, purpose: x}\n  - {id: a, from: 198.51.100.2, protocol: tcp, port: 23, purpose: y}", "deployment::invalid-site-flow"),
        ];
        for (entry, code) in cases {
            let err = load(&format!("site:\n  {entry}\n")).expect_err(entry);
            assert_eq!(errors(&err), [code], "{entry}");
            let first = err.items.iter().find(|d| d.is_error()).expect("error");
            assert!(first.labels.iter().all(|l| l.span.offset > 0), "{entry}");
        }
        let err = load("site:\n  - {from: wbe, to: db, protocol: tcp, port: 22, purpose: x}\n")
            .expect_err("typo");
        let typo = err.items.iter().find(|d| d.is_error()).expect("error");
        assert_eq!(typo.help.as_deref(), Some("did you mean `web`?"));
    }

    /// Regression (issue 9, row 7): `from:` or `port:` written without a
    /// value read as "every placed component" / "every port".
    #[test]
    fn empty_values_are_errors_under_their_key() {
        let cases = [
            (
                "- {from: , to: [192.0.2.53], protocol: udp, port: 53, purpose: x}",
                "from",
            ),
            (
                "- {from: 198.51.100.1, to: ~, protocol: tcp, port: 22, purpose: x}",
                "to",
            ),
            (
                "- from: 198.51.100.1\n    protocol: tcp\n    port:\n    purpose: x",
                "port",
            ),
        ];
        for (entry, key) in cases {
            let text = format!("{PLACED}site:\n  {entry}\n");
            let err = load(&format!("site:\n  {entry}\n")).expect_err(entry);
            assert_eq!(errors(&err), ["spec::empty-value"], "{entry}");
            let label = err.items[0].labels[0].span;
            assert_eq!(
                &text[label.offset..label.offset + label.len],
                key,
                "{entry}"
            );
        }
        let every =
            load("site:\n  - {from: 198.51.100.1, protocol: tcp, port: \"*\", purpose: x}\n")
                .expect("`*` is every port");
        assert!(every.value.site[0].ports.is_empty());
    }

    #[test]
    fn a_name_without_dns_is_a_warning_with_the_fix() {
        let loaded = load("").expect("valid");
        assert_eq!(codes(&loaded.warnings), ["deployment::no-dns-flow"]);
        let w = &loaded.warnings.items[0];
        assert!(
            w.message
                .contains("`web` reaches updates.example.com by name"),
            "{}",
            w.message
        );
        assert!(w.help.as_deref().is_some_and(|h| h.contains("port: 53")));
        // A site DNS flow from web (or every host) silences it; one from db does not.
        let db_only = load(
            "site:\n  - {from: [db], to: [192.0.2.53], protocol: udp, port: 53, purpose: dns}\n",
        )
        .expect("valid");
        assert_eq!(codes(&db_only.warnings), ["deployment::no-dns-flow"]);
        let web = load(
            "site:\n  - {from: [web], to: [192.0.2.53], protocol: udp, port: 53, purpose: dns}\n",
        )
        .expect("valid");
        assert!(web.warnings.items.is_empty());
        // Pinned addresses need no DNS.
        let pinned = load("externals:\n  updates: {addresses: [198.51.100.9]}\n").expect("valid");
        assert!(pinned.warnings.items.is_empty());
    }

    #[test]
    fn slugs_and_names() {
        assert_eq!(slug("admin SSH"), "admin-ssh");
        assert_eq!(slug("  node exporter scrape!"), "node-exporter-scrape");
        assert_eq!(slug("!!!"), "site");
        assert!(valid_name("admin-ssh"));
        assert!(!valid_name("Admin"));
        assert!(!valid_name("-x"));
    }

    #[test]
    fn port_items() {
        let text = |s: &str| parse_port_item(&RawPortItem::Text(s.into()));
        assert_eq!(text("22"), Ok(PortRange::single(22)));
        assert_eq!(
            text("8000-8010"),
            Ok(PortRange {
                start: 8000,
                end: 8010
            })
        );
        assert!(text("10-1").is_err());
        assert!(text("$p").is_err());
        assert!(parse_port_item(&RawPortItem::Number(0)).is_err());
        assert!(parse_port_item(&RawPortItem::Number(70000)).is_err());
    }
}
