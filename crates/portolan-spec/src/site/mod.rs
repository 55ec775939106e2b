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

mod check;
mod dns;
mod plan;

pub(crate) use check::check;
pub(crate) use dns::dns_warnings;
pub(crate) use plan::plan_site_flows;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::deployment::{Address, Deployment};
use crate::diag::Span;
use crate::given::Given;
use crate::model::*;
use crate::raw::{RawIds, RawPorts, RawProtocol};

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

#[cfg(test)]
mod tests {
    use super::check::{parse_port_item, slug, valid_name};
    use super::*;
    use crate::plan::EndpointKind;
    use crate::raw::RawPortItem;

    use crate::deployment::load_deployment;
    use crate::{load_spec, Diagnostics, Loaded, SourceFile};

    /// Web, a database, the outside world and one external endpoint by
    /// name (a fixture the lab's tests share).
    const SPEC: &str = include_str!("../../tests/fixtures/web-db-updates.portolan.yaml");

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
