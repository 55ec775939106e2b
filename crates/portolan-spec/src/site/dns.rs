//! The warning of names reached without a DNS flow.

use super::{is_placed_component, SiteEnd};
use crate::deployment::{Address, Deployment};
use crate::diag::{Code, Diagnostic, Span};
use crate::model::*;

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
