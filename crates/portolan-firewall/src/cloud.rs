//! What the cloud-native targets (Kubernetes NetworkPolicy,
//! CiliumNetworkPolicy, AWS security groups) share: choosing the components
//! they write policy for, the checks no cloud target can pass (fixed source
//! ports, multicast), and their warnings.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use portolan_spec::diag::{did_you_mean, Code, Diagnostic};
use portolan_spec::plan::{Endpoint, EndpointKind, Plan, PlannedFlow};
use portolan_spec::ranges_text;

use crate::generate::{GenerateError, GenerateWarning, Options, WarningKind};

/// A lowercase DNS label made of a free-form name: letters and digits kept,
/// every other run of characters turned into one `-`
/// (`Circonus Inside` → `circonus-inside`).
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("system");
    }
    out
}

/// Whether a flow is received by a component (multicast receivers included).
pub(crate) fn receives(flow: &PlannedFlow, component: &Endpoint) -> bool {
    flow.to.is_component() && flow.to.id == component.id
}

/// Whether a flow is sent by a component.
pub(crate) fn sends(flow: &PlannedFlow, component: &Endpoint) -> bool {
    flow.from.id == component.id
}

/// A host name resolved at generation time (`--resolve`), whose addresses
/// stand for it in a component's policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolution {
    /// The component whose policy uses the addresses.
    pub component: String,
    /// The name.
    pub host: String,
    /// What it resolved to.
    pub addresses: Vec<IpAddr>,
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{} resolved at generation time to {} (regenerate when it moves)",
            self.host,
            addresses.join(", ")
        )
    }
}

/// Collects one target's warnings, and the names it resolved.
#[derive(Debug)]
pub(crate) struct Warnings {
    pub(crate) target: &'static str,
    pub(crate) items: Vec<GenerateWarning>,
    pub(crate) resolved: Vec<Resolution>,
}

impl Warnings {
    pub(crate) fn new(target: &'static str) -> Self {
        Self {
            target,
            items: Vec::new(),
            resolved: Vec::new(),
        }
    }

    /// Resolves a peer's host names with the `--resolve` resolver: the
    /// addresses found, and each name left unresolved with the reason
    /// (`None`: no resolver was given).
    pub(crate) fn resolve<'p>(
        &mut self,
        options: &Options,
        component: &Endpoint,
        peer: &'p Endpoint,
    ) -> (Vec<IpNet>, Vec<(&'p str, Option<String>)>) {
        let mut nets = Vec::new();
        let mut unresolved = Vec::new();
        for host in &peer.hosts {
            let Some(resolve) = &options.resolver else {
                unresolved.push((host.as_str(), None));
                continue;
            };
            match resolve(host) {
                Ok(addresses) => {
                    nets.extend(addresses.iter().copied().map(IpNet::from));
                    let resolution = Resolution {
                        component: component.id.clone(),
                        host: host.clone(),
                        addresses,
                    };
                    if !self.resolved.contains(&resolution) {
                        self.resolved.push(resolution);
                    }
                }
                Err(why) => unresolved.push((host.as_str(), Some(why))),
            }
        }
        (nets, unresolved)
    }

    pub(crate) fn push(
        &mut self,
        kind: WarningKind,
        flow: &PlannedFlow,
        component: &Endpoint,
        message: impl Into<String>,
    ) {
        let warning = GenerateWarning {
            target: self.target,
            kind,
            flow: flow.id.clone(),
            component: component.id.clone(),
            message: message.into(),
        };
        // A self-flow is seen as ingress and as egress: say it once.
        if !self.items.contains(&warning) {
            self.items.push(warning);
        }
    }

    /// The names resolved for one component's policy, then the warnings
    /// about it, one per line, each after `prefix`.
    pub(crate) fn lines(&self, component: &str, prefix: &str) -> String {
        let resolved = self
            .resolved
            .iter()
            .filter(|r| r.component == component)
            .map(|r| format!("{prefix}{r}\n"));
        let warnings = self
            .items
            .iter()
            .filter(|w| w.component == component)
            .map(|w| format!("{prefix}{w}\n"));
        resolved.chain(warnings).collect()
    }
}

/// What no cloud target can express: multicast and fixed source ports.
/// Returns `false` (after warning) when the flow is left out of `component`'s policy.
pub(crate) fn expressible(
    warnings: &mut Warnings,
    flow: &PlannedFlow,
    component: &Endpoint,
    what: &str,
) -> bool {
    if let Some(group) = flow.multicast {
        warnings.push(
            WarningKind::Multicast,
            flow,
            component,
            format!("{what} cannot express multicast (to {group}); not allowed"),
        );
        return false;
    }
    if !flow.source_ports.is_empty() {
        warnings.push(
            WarningKind::SourcePort,
            flow,
            component,
            format!(
                "{what} cannot match the fixed source port {}; not allowed, rather than allowing every source port",
                ranges_text(&flow.source_ports)
            ),
        );
        return false;
    }
    true
}

/// How a cloud target recognises the components it writes policy for.
pub(crate) struct Placement<'a> {
    /// The target's name.
    pub target: &'static str,
    /// Whether a component has the placement.
    pub placed: &'a dyn Fn(&Endpoint) -> bool,
    /// The placement in words, with its article: `a Kubernetes placement`.
    pub words: &'a str,
    /// The deployment key to add: `kubernetes: {namespace: ..., pod_selector: {...}}`.
    pub key: &'a str,
}

/// The components with the target's placement, in spec order, honouring
/// `--component`; a located diagnostic when there is none.
pub(crate) fn placed_components<'p>(
    plan: &'p Plan,
    options: &Options,
    placement: &Placement<'_>,
) -> Result<Vec<&'p Endpoint>, GenerateError> {
    let target = placement.target;
    let cannot = |d: Diagnostic| GenerateError::CannotServe {
        target,
        diagnostics: vec![d],
    };
    if let Some(id) = &options.component {
        let Some(component) = plan.component(id) else {
            let ids = plan.components.iter().map(|c| c.id.as_str());
            let help = match did_you_mean(id, ids.clone()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("components: {}", ids.collect::<Vec<_>>().join(", ")),
            };
            return Err(cannot(
                Diagnostic::new(
                    Code::DeploymentUnsupportedByTarget,
                    format!("the spec has no component `{id}`"),
                )
                .with_help(help),
            ));
        };
        if !(placement.placed)(component) {
            let span = component.span.unwrap_or(plan.components_span);
            return Err(cannot(
                Diagnostic::new(
                    Code::DeploymentUnsupportedByTarget,
                    format!(
                        "the {target} target has no policy for component `{id}`: the deployment does not give it {}",
                        placement.words
                    ),
                )
                .with_label(span, format!("`{id}` is not given {}", placement.words))
                .with_help(format!("add `{}` to `{id}`", placement.key)),
            ));
        }
        return Ok(vec![component]);
    }
    let all: Vec<&Endpoint> = plan
        .components
        .iter()
        .filter(|e| (placement.placed)(e))
        .collect();
    if all.is_empty() {
        let by_address = plan
            .components
            .iter()
            .filter(|e| {
                e.kind != EndpointKind::Outside && (!e.nets.is_empty() || !e.hosts.is_empty())
            })
            .count();
        let mut message = format!(
            "the {target} target cannot serve this deployment: no component has {}",
            placement.words
        );
        if by_address > 0 {
            message.push_str(&format!(
                " ({by_address} component(s) are placed by address only, which this target cannot select)"
            ));
        }
        return Err(cannot(
            Diagnostic::new(Code::DeploymentUnsupportedByTarget, message)
                .with_label(plan.components_span, format!("no component here has {}", placement.words))
                .with_help(format!(
                    "add `{}` to the components it places, or use the nftables or iptables target for address placements",
                    placement.key
                )),
        ));
    }
    Ok(all)
}

/// A plan of a small spec that has every kind of flow the cloud targets
/// treat differently, against the deployment text given.
#[cfg(test)]
pub(crate) fn test_plan(deployment: &str) -> Plan {
    use portolan_spec::deployment::load_deployment;
    use portolan_spec::{load_spec, SourceFile};

    const SPEC: &str = "portolan: 1
system: {name: Demo Shop}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: cache, kind: dependency}
  - {id: users, kind: external}
externals:
  - {id: slack, host: slack.com}
  - {id: cloudwatch, host: monitoring.*.amazonaws.com}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: \"5432-5440\"}
  - {from: web, to: cache, protocol: tcp, port: 6379}
  - {from: web, to: slack, protocol: tcp, port: 443}
  - {from: web, to: cloudwatch, protocol: tcp, port: 443}
  - {from: web, to: web, protocol: udp, port: 8112, source_port: 8112}
  - {from: web, to: web, protocol: udp, port: 8082, multicast: 225.0.1.9}
  - {from: web, to: db, protocol: icmp}
";
    let spec = match load_spec(SourceFile::new("portolan.yaml", SPEC)) {
        Ok(loaded) => loaded.value,
        Err(d) => panic!("test spec: {:?}", d.items),
    };
    let deployment = match load_deployment(SourceFile::new("deployment.yaml", deployment), &spec) {
        Ok(loaded) => loaded.value,
        Err(d) => panic!("test deployment: {:?}", d.items),
    };
    portolan_spec::plan::plan(&spec, &deployment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_is_a_dns_label() {
        assert_eq!(slug("Circonus Inside"), "circonus-inside");
        assert_eq!(slug("  Spacelift (self-hosted) "), "spacelift-self-hosted");
        assert_eq!(slug("!!!"), "system");
    }
}
