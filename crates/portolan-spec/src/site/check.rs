//! Checking the `site:` section of a deployment into [`SiteFlow`]s.

use std::collections::BTreeSet;

use serde_saphyr::Spanned;

use super::{is_placed_component, RawSiteFlow, SiteEnd, SiteFlow};
use crate::check::EVERY_PORT;
use crate::checker::Checker;
use crate::deployment::{parse_address, Address, Deployment};
use crate::diag::{Code, Diagnostic, Span};
use crate::model::*;
use crate::raw::{RawIds, RawPortItem, RawPorts, RawProtocol};

/// `admin SSH` → `admin-ssh`.
pub(super) fn slug(text: &str) -> String {
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

pub(super) fn valid_name(name: &str) -> bool {
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

pub(super) fn parse_port_item(item: &RawPortItem) -> Result<PortRange, String> {
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
