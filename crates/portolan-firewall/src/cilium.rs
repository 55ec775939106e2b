//! The `cilium` target: one `cilium.io/v2` CiliumNetworkPolicy per component
//! placed on Kubernetes.
//!
//! Cilium publishes no Rust types, so the subset of the CRD this target
//! writes is modelled here with serde; field names follow the CRD's OpenAPI
//! schema (`endpointSelector`, `fromEndpoints`, `toFQDNs`, ...), and every
//! struct refuses unknown fields when read back.
//!
//! Beyond plain NetworkPolicy, Cilium matches external DNS names
//! (`toFQDNs` with `matchName`, or `matchPattern` for `*` patterns), which
//! needs the DNS proxy to see the lookups: every policy therefore allows DNS
//! to kube-dns with an L7 `dns` rule matching every name. Fixed source ports,
//! multicast and "every ICMP type" are still inexpressible: warnings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipnet::IpNet;
use portolan_spec::deployment::KubernetesSelector;
use portolan_spec::plan::{Endpoint, Plan, PlannedFlow};
use portolan_spec::{PortRange, Protocol};
use serde::{Deserialize, Serialize};

use crate::cloud::{expressible, placed_components, receives, sends, slug, Placement, Warnings};
use crate::generate::{
    one_line, GenerateError, GenerateWarning, Generated, Options, Target, WarningKind,
};
use crate::kubernetes::{metadata_labels, DNS_NAMESPACE, DNS_POD_LABEL};
use crate::labels::object_name;

/// The label Cilium gives every endpoint with its pod's namespace.
pub const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

/// Cilium's limit on ports in one `toPorts` entry.
const MAX_PORTS: usize = 40;

/// A CiliumNetworkPolicy (`cilium.io/v2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiliumNetworkPolicy {
    /// Always `cilium.io/v2`.
    pub api_version: String,
    /// Always `CiliumNetworkPolicy`.
    pub kind: String,
    /// Name, namespace and labels.
    pub metadata: Metadata,
    /// The rule.
    pub spec: Rule,
}

/// The object metadata this target writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Object name.
    pub name: String,
    /// Namespace the policy applies in.
    pub namespace: String,
    /// Object labels.
    pub labels: BTreeMap<String, String>,
}

/// A policy rule (`spec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The endpoints the rule applies to.
    pub endpoint_selector: EndpointSelector,
    /// Default deny in both directions, stated rather than implied by the
    /// presence of rules (a component with no ingress rule denies all ingress).
    pub enable_default_deny: DefaultDeny,
    /// Allowed ingress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Allowed egress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
    /// A sentence for the people reading `kubectl describe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `enableDefaultDeny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultDeny {
    /// Deny ingress not allowed by a rule.
    pub ingress: bool,
    /// Deny egress not allowed by a rule.
    pub egress: bool,
}

/// Selects endpoints by label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSelector {
    /// Every label must match.
    pub match_labels: BTreeMap<String, String>,
}

/// An allowed ingress: one peer kind, optional ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    /// Source pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_endpoints: Vec<EndpointSelector>,
    /// Source address blocks.
    #[serde(rename = "fromCIDR", default, skip_serializing_if = "Vec::is_empty")]
    pub from_cidr: Vec<String>,
    /// Source entities (`all` for the outside world).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_entities: Vec<String>,
    /// Destination ports on the selected endpoints; empty means every port and protocol.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ports: Vec<PortRule>,
}

/// An allowed egress: one peer kind, optional ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    /// Destination pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_endpoints: Vec<EndpointSelector>,
    /// Destination address blocks.
    #[serde(rename = "toCIDR", default, skip_serializing_if = "Vec::is_empty")]
    pub to_cidr: Vec<String>,
    /// Destination entities (`all` for the outside world).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_entities: Vec<String>,
    /// Destination DNS names and patterns.
    #[serde(rename = "toFQDNs", default, skip_serializing_if = "Vec::is_empty")]
    pub to_fqdns: Vec<FqdnSelector>,
    /// Destination ports; empty means every port and protocol.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ports: Vec<PortRule>,
}

/// A DNS name (`matchName`) or pattern (`matchPattern`); exactly one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FqdnSelector {
    /// An exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// A pattern where `*` stands for DNS characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// Ports and optional L7 rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRule {
    /// Ports (at most 40).
    pub ports: Vec<PortProtocol>,
    /// L7 rules (only DNS here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
}

/// A port or range and its protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    /// The port as a string; `"0"` means every port.
    pub port: String,
    /// Last port of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
    /// `TCP`, `UDP` or `ANY`.
    pub protocol: String,
}

/// L7 rules of a port rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L7Rules {
    /// DNS names the endpoint may look up.
    pub dns: Vec<FqdnSelector>,
}

const TARGET: &str = "cilium";

/// The `cilium` target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cilium;

impl Target for Cilium {
    fn name(&self) -> &'static str {
        TARGET
    }

    /// One `<component>.ciliumnetworkpolicy.yaml` per component with a
    /// Kubernetes placement. Each file starts with `---`, so that files
    /// concatenated are one multi-document YAML stream.
    fn generate(&self, plan: &Plan, options: &Options) -> Result<Generated, GenerateError> {
        let built = cilium_policies(plan, options)?;
        // Cilium matches names itself (toFQDNs): nothing is resolved here.
        let warnings = Warnings {
            target: TARGET,
            items: built.warnings,
            resolved: Vec::new(),
        };
        let mut files = Vec::new();
        for (component, policy) in &built.policies {
            let yaml = serde_saphyr::to_string(policy).map_err(|e| GenerateError::Internal {
                target: TARGET,
                message: e.to_string(),
            })?;
            let mut text = format!(
                "---\n# CiliumNetworkPolicy of component `{component}` of {}, generated by portolan.\n\
                 # Whatever no rule allows is denied, in both directions; DNS to kube-dns is allowed\n\
                 # through Cilium's DNS proxy, which toFQDNs rules need.\n",
                one_line(&plan.system)
            );
            text.push_str(&warnings.lines(component, "# "));
            text.push_str(&crate::generate::site_flow_lines(plan, component, "# "));
            text.push_str(&yaml);
            files.push((
                PathBuf::from(format!("{component}.ciliumnetworkpolicy.yaml")),
                text,
            ));
        }
        Ok(Generated {
            files,
            warnings: warnings.items,
        })
    }
}

/// The CiliumNetworkPolicies of a plan, with what they leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiliumPolicies {
    /// Component id and its policy, one per component with a Kubernetes
    /// placement (or the one `--component` names), in spec order.
    pub policies: Vec<(String, CiliumNetworkPolicy)>,
    /// What could not be expressed, in component then flow order.
    pub warnings: Vec<GenerateWarning>,
}

/// Builds the CiliumNetworkPolicy objects of a plan.
pub fn cilium_policies(plan: &Plan, options: &Options) -> Result<CiliumPolicies, GenerateError> {
    let components = placed_components(
        plan,
        options,
        &Placement {
            target: TARGET,
            placed: &|e: &Endpoint| e.kubernetes.is_some(),
            words: "a Kubernetes placement (namespace and pod selector)",
            key: "kubernetes: {namespace: ..., pod_selector: {...}}",
        },
    )?;
    let mut warnings = Warnings::new(TARGET);
    let mut policies = Vec::new();
    let system = slug(&plan.system);
    for component in components {
        let Some(placement) = &component.kubernetes else {
            continue;
        };
        let mut ingress = Vec::new();
        let mut egress = Vec::new();
        for flow in plan.all_flows() {
            if receives(flow, component) {
                ingress.extend(ingress_rules(flow, component, &mut warnings));
            }
            if sends(flow, component) {
                egress.extend(egress_rules(flow, component, &mut warnings));
            }
        }
        egress.push(dns_rule());
        policies.push((
            component.id.clone(),
            CiliumNetworkPolicy {
                api_version: "cilium.io/v2".to_owned(),
                kind: "CiliumNetworkPolicy".to_owned(),
                metadata: Metadata {
                    name: object_name(&format!("{system}-{}", component.id)),
                    namespace: placement.namespace.clone(),
                    labels: metadata_labels(&system, &component.id),
                },
                spec: Rule {
                    endpoint_selector: EndpointSelector {
                        match_labels: placement.pod_selector.clone(),
                    },
                    enable_default_deny: DefaultDeny {
                        ingress: true,
                        egress: true,
                    },
                    ingress,
                    egress,
                    description: Some(format!(
                        "Flows of {} ({}) in {}, generated by portolan",
                        component.name, component.id, plan.system
                    )),
                },
            },
        ));
    }
    Ok(CiliumPolicies {
        policies,
        warnings: warnings.items,
    })
}

/// The selector of a component's pods, namespace included.
fn pod_selector(selector: &KubernetesSelector) -> EndpointSelector {
    let mut labels = selector.pod_selector.clone();
    labels.insert(NAMESPACE_LABEL.to_owned(), selector.namespace.clone());
    EndpointSelector {
        match_labels: labels,
    }
}

fn cidr_text(net: &IpNet) -> String {
    net.trunc().to_string()
}

fn port_protocol(range: PortRange, protocol: &str) -> PortProtocol {
    PortProtocol {
        port: range.start.to_string(),
        end_port: (!range.is_single()).then_some(range.end),
        protocol: protocol.to_owned(),
    }
}

/// The `toPorts` of a flow: empty for every protocol and port.
fn to_ports(flow: &PlannedFlow) -> Result<Vec<PortRule>, String> {
    let protocol = match flow.protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Icmp => {
            return Err(
                "a CiliumNetworkPolicy matches ICMP by listed type only (at most 40 per rule), and the spec allows every type; not allowed, rather than guessing types"
                    .to_owned(),
            )
        }
        Protocol::Any => return Ok(Vec::new()),
    };
    if flow.ports.is_empty() {
        // Port "0" is Cilium's "every port" of the protocol.
        return Ok(vec![PortRule {
            ports: vec![PortProtocol {
                port: "0".to_owned(),
                end_port: None,
                protocol: protocol.to_owned(),
            }],
            rules: None,
        }]);
    }
    Ok(flow
        .ports
        .chunks(MAX_PORTS)
        .map(|chunk| PortRule {
            ports: chunk.iter().map(|r| port_protocol(*r, protocol)).collect(),
            rules: None,
        })
        .collect())
}

/// The checks and ports every rule of a flow shares; `None` after warning.
fn common(
    flow: &PlannedFlow,
    component: &Endpoint,
    warnings: &mut Warnings,
) -> Option<Vec<PortRule>> {
    if !expressible(warnings, flow, component, "a CiliumNetworkPolicy") {
        return None;
    }
    match to_ports(flow) {
        Ok(ports) => Some(ports),
        Err(message) => {
            warnings.push(WarningKind::Icmp, flow, component, message);
            None
        }
    }
}

fn unplaced(flow: &PlannedFlow, peer: &Endpoint, component: &Endpoint, warnings: &mut Warnings) {
    warnings.push(
        WarningKind::UnplacedPeer,
        flow,
        component,
        format!(
            "`{}` has neither a Kubernetes placement, addresses nor a DNS name, so a CiliumNetworkPolicy cannot select it; not allowed",
            peer.id
        ),
    );
}

fn ingress_rules(
    flow: &PlannedFlow,
    component: &Endpoint,
    warnings: &mut Warnings,
) -> Vec<IngressRule> {
    let Some(to_ports) = common(flow, component, warnings) else {
        return Vec::new();
    };
    let peer = &flow.from;
    let rule = IngressRule {
        to_ports,
        ..IngressRule::default()
    };
    if peer.any {
        return vec![IngressRule {
            from_entities: vec!["all".to_owned()],
            ..rule
        }];
    }
    if let Some(selector) = &peer.kubernetes {
        return vec![IngressRule {
            from_endpoints: vec![pod_selector(selector)],
            ..rule
        }];
    }
    let names = peer
        .hosts
        .iter()
        .map(|h| (WarningKind::HostName, h))
        .chain(peer.patterns.iter().map(|p| (WarningKind::WildcardHost, p)));
    for (kind, name) in names {
        warnings.push(
            kind,
            flow,
            component,
            format!(
                "a CiliumNetworkPolicy cannot match a source by DNS name ({name} of `{}`); not allowed (give `{}` addresses in the deployment)",
                peer.id, peer.id
            ),
        );
    }
    if peer.nets.is_empty() {
        if peer.hosts.is_empty() && peer.patterns.is_empty() {
            unplaced(flow, peer, component, warnings);
        }
        return Vec::new();
    }
    vec![IngressRule {
        from_cidr: peer.nets.iter().map(cidr_text).collect(),
        ..rule
    }]
}

fn egress_rules(
    flow: &PlannedFlow,
    component: &Endpoint,
    warnings: &mut Warnings,
) -> Vec<EgressRule> {
    let Some(to_ports) = common(flow, component, warnings) else {
        return Vec::new();
    };
    let peer = &flow.to;
    let rule = EgressRule {
        to_ports,
        ..EgressRule::default()
    };
    if peer.any {
        return vec![EgressRule {
            to_entities: vec!["all".to_owned()],
            ..rule
        }];
    }
    if let Some(selector) = &peer.kubernetes {
        return vec![EgressRule {
            to_endpoints: vec![pod_selector(selector)],
            ..rule
        }];
    }
    // toCIDR and toFQDNs cannot share a rule: one rule each.
    let mut rules = Vec::new();
    if !peer.nets.is_empty() {
        rules.push(EgressRule {
            to_cidr: peer.nets.iter().map(cidr_text).collect(),
            ..rule.clone()
        });
    }
    let fqdns: Vec<FqdnSelector> = peer
        .hosts
        .iter()
        .map(|h| FqdnSelector {
            match_name: Some(h.clone()),
            match_pattern: None,
        })
        .chain(peer.patterns.iter().map(|p| FqdnSelector {
            match_name: None,
            match_pattern: Some(p.clone()),
        }))
        .collect();
    if !fqdns.is_empty() {
        rules.push(EgressRule {
            to_fqdns: fqdns,
            ..rule
        });
    }
    if rules.is_empty() {
        unplaced(flow, peer, component, warnings);
    }
    rules
}

/// Egress to kube-dns on port 53 (UDP and TCP), through Cilium's DNS proxy
/// (`rules.dns` matching every name) so that `toFQDNs` rules learn the
/// addresses the names resolve to.
pub fn dns_rule() -> EgressRule {
    EgressRule {
        to_endpoints: vec![EndpointSelector {
            match_labels: BTreeMap::from([
                (NAMESPACE_LABEL.to_owned(), DNS_NAMESPACE.to_owned()),
                (
                    format!("k8s:{}", DNS_POD_LABEL.0),
                    DNS_POD_LABEL.1.to_owned(),
                ),
            ]),
        }],
        to_ports: vec![PortRule {
            ports: vec![port_protocol(PortRange::single(53), "ANY")],
            rules: Some(L7Rules {
                dns: vec![FqdnSelector {
                    match_name: None,
                    match_pattern: Some("*".to_owned()),
                }],
            }),
        }],
        ..EgressRule::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cloud::test_plan;

    const DEPLOYMENT: &str = "deployment: 1
components:
  web:
    kubernetes: {namespace: front, pod_selector: {app: web}}
  db:
    kubernetes: {namespace: data, pod_selector: {app: db}}
  cache:
    addresses: [cache.internal.example]
";

    #[test]
    fn names_and_patterns_are_fqdn_rules_and_dns_is_allowed() {
        let plan = test_plan(DEPLOYMENT);
        let built = cilium_policies(&plan, &Options::default()).unwrap();
        let web = &built.policies[0].1.spec;
        let fqdns: Vec<_> = web
            .egress
            .iter()
            .flat_map(|r| &r.to_fqdns)
            .map(|f| (f.match_name.clone(), f.match_pattern.clone()))
            .collect();
        assert_eq!(
            fqdns,
            [
                (Some("cache.internal.example".to_owned()), None),
                (Some("slack.com".to_owned()), None),
                (None, Some("monitoring.*.amazonaws.com".to_owned())),
            ]
        );
        assert_eq!(web.egress.last(), Some(&dns_rule()));
        let db_peer = &web.egress[0].to_endpoints[0].match_labels;
        assert_eq!(db_peer[NAMESPACE_LABEL], "data");
        assert_eq!(web.egress[0].to_ports[0].ports[0].end_port, Some(5440));
        assert_eq!(web.ingress[0].from_entities, ["all"]);
    }

    #[test]
    fn source_ports_multicast_and_icmp_are_warnings() {
        let plan = test_plan(DEPLOYMENT);
        let built = cilium_policies(&plan, &Options::default()).unwrap();
        let codes: Vec<_> = built
            .warnings
            .iter()
            .map(|w| format!("{} {} {}", w.code(), w.component, w.flow))
            .collect();
        assert_eq!(
            codes,
            [
                "cilium::source-port web web->web/udp/8112:8112",
                "cilium::multicast web web->web@225.0.1.9/udp/8082",
                "cilium::icmp web web->db/icmp",
                "cilium::icmp db web->db/icmp",
            ]
        );
    }

    #[test]
    fn round_trips_through_yaml() {
        let plan = test_plan(DEPLOYMENT);
        let out = Cilium.generate(&plan, &Options::default()).unwrap();
        let built = cilium_policies(&plan, &Options::default()).unwrap();
        for ((_, text), (_, policy)) in out.files.iter().zip(&built.policies) {
            let back: CiliumNetworkPolicy = serde_saphyr::from_str(text).unwrap();
            assert_eq!(&back, policy);
        }
    }
}
