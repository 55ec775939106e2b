//! The `aws` target: AWS security groups as Terraform JSON (`.tf.json`).
//!
//! One `aws_security_group` per component with an AWS placement (named as the
//! deployment says), and one `aws_vpc_security_group_ingress_rule` /
//! `aws_vpc_security_group_egress_rule` per flow direction and peer form:
//! peer groups by `referenced_security_group_id` (a Terraform reference to the
//! peer's group), addresses and external CIDRs by `cidr_ipv4` / `cidr_ipv6`,
//! external endpoints the deployment maps to a managed prefix list by
//! `prefix_list_id`. Security groups are stateful, so replies need no rule;
//! Terraform removes the default allow-all egress, so egress is as narrow as
//! ingress.
//!
//! Security groups cannot match DNS names, source ports or multicast: such
//! flows are warnings, listed in the file's top-level `"//"` comment.

use std::path::PathBuf;

use indexmap::IndexMap;
use ipnet::IpNet;
use portolan_spec::plan::{Endpoint, Plan, PlannedFlow};
use portolan_spec::Protocol;
use serde::{Deserialize, Serialize};

use crate::cloud::{expressible, placed_components, receives, sends, Placement, Warnings};
use crate::generate::{GenerateError, GenerateWarning, Generated, Options, Target, WarningKind};

/// The Terraform variable holding the VPC id the groups are created in.
pub const VPC_VARIABLE: &str = "vpc_id";

/// A Terraform JSON configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerraformFile {
    /// A comment (Terraform ignores `"//"` properties): provenance and warnings.
    #[serde(rename = "//")]
    pub comment: String,
    /// Input variables.
    pub variable: IndexMap<String, Variable>,
    /// Resources by type, then by name.
    pub resource: Resources,
}

/// A Terraform input variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Its type constraint.
    #[serde(rename = "type")]
    pub kind: String,
    /// What to give.
    pub description: String,
}

/// The resources, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// One group per component with an AWS placement.
    pub aws_security_group: IndexMap<String, SecurityGroup>,
    /// Inbound rules.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub aws_vpc_security_group_ingress_rule: IndexMap<String, SecurityGroupRule>,
    /// Outbound rules.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub aws_vpc_security_group_egress_rule: IndexMap<String, SecurityGroupRule>,
}

/// `aws_security_group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    /// The group's name.
    pub name: String,
    /// The group's description (fixed at creation).
    pub description: String,
    /// `${var.vpc_id}`.
    pub vpc_id: String,
    /// Tags.
    pub tags: IndexMap<String, String>,
}

/// `aws_vpc_security_group_ingress_rule` or `..._egress_rule`: exactly one of
/// the four peer arguments is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupRule {
    /// The group the rule belongs to (a Terraform reference).
    pub security_group_id: String,
    /// The flow it comes from.
    pub description: String,
    /// `tcp`, `udp`, `icmp`, `icmpv6` or `-1`.
    pub ip_protocol: String,
    /// First port, or ICMP type (`-1` for every type); absent for `-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    /// Last port, or ICMP code (`-1` for every code); absent for `-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    /// Peer IPv4 block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv4: Option<String>,
    /// Peer IPv6 block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv6: Option<String>,
    /// Peer security group (a Terraform reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referenced_security_group_id: Option<String>,
    /// Peer managed prefix list id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_list_id: Option<String>,
}

/// How a rule names its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AwsPeer {
    Net(IpNet),
    Group(String),
    PrefixList(String),
}

/// The Terraform name of a component's group: its id with `_` for `-`.
pub fn group_resource_name(component_id: &str) -> String {
    terraform_name(component_id)
}

/// A Terraform identifier made of free text: letters, digits and `_`,
/// starting with a letter or `_`.
fn terraform_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    match trimmed.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => trimmed.to_owned(),
        _ => format!("_{trimmed}"),
    }
}

/// A string Terraform takes literally: its string values are templates, where
/// `${` and `%{` start an interpolation or a directive (`$${`, `%%{` escape them).
pub fn terraform_literal(text: &str) -> String {
    text.replace("${", "$${").replace("%{", "%%{")
}

/// Security group and rule descriptions allow only `a-zA-Z0-9`, space and
/// `._-:/()#,@[]+=&;{}!$*`, at most 255 characters; written as a Terraform literal.
pub fn aws_description(text: &str) -> String {
    const ALLOWED: &str = " ._-:/()#,@[]+=&;{}!$*";
    let replaced = text.replace("->", " to ");
    let mut out: String = replaced
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ALLOWED.contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    out.truncate(255);
    // `$${` is read back as `${`: the description AWS sees is the one above.
    terraform_literal(&out)
}

const TARGET: &str = "aws";

/// The `aws` target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Aws;

impl Target for Aws {
    fn name(&self) -> &'static str {
        TARGET
    }

    /// One `security-groups.tf.json` (rules reference each other's groups, so
    /// they belong in one Terraform module). With `--component`, the file
    /// still declares every group, so that references resolve, but holds
    /// only the rules of that component's group.
    fn generate(&self, plan: &Plan, options: &Options) -> Result<Generated, GenerateError> {
        let (file, warnings) = terraform(plan, options)?;
        let mut text =
            serde_json::to_string_pretty(&file).map_err(|e| GenerateError::Internal {
                target: TARGET,
                message: e.to_string(),
            })?;
        text.push('\n');
        let name = match &options.component {
            Some(component) => format!("{component}.security-groups.tf.json"),
            None => "security-groups.tf.json".to_owned(),
        };
        Ok(Generated {
            files: vec![(PathBuf::from(name), text)],
            warnings,
        })
    }
}

/// Builds the Terraform configuration of a plan, with what it leaves out.
pub fn terraform(
    plan: &Plan,
    options: &Options,
) -> Result<(TerraformFile, Vec<GenerateWarning>), GenerateError> {
    let has_group = |e: &Endpoint| {
        e.is_component() && e.aws.as_ref().is_some_and(|a| a.security_group.is_some())
    };
    let components = placed_components(
        plan,
        options,
        &Placement {
            target: TARGET,
            placed: &has_group,
            words: "an AWS security group",
            key: "aws: {security_group: ...}",
        },
    )?;
    let mut warnings = Warnings::new(TARGET);
    let mut groups = IndexMap::new();
    for component in plan.components.iter().filter(|e| has_group(e)) {
        let Some(name) = component
            .aws
            .as_ref()
            .and_then(|a| a.security_group.clone())
        else {
            continue;
        };
        let mut tags = IndexMap::new();
        let name = terraform_literal(&name);
        tags.insert("Name".to_owned(), name.clone());
        tags.insert("ManagedBy".to_owned(), "portolan".to_owned());
        tags.insert("System".to_owned(), terraform_literal(&plan.system));
        tags.insert("Component".to_owned(), component.id.clone());
        groups.insert(
            group_resource_name(&component.id),
            SecurityGroup {
                name,
                description: aws_description(&format!(
                    "{} ({}) in {}, generated by portolan",
                    component.name, component.id, plan.system
                )),
                vpc_id: format!("${{var.{VPC_VARIABLE}}}"),
                tags,
            },
        );
    }
    let mut ingress = IndexMap::new();
    let mut egress = IndexMap::new();
    for component in components {
        let group = group_ref(&component.id);
        for flow in plan.all_flows() {
            if receives(flow, component) {
                if let Some(peers) = peers(flow, &flow.from, component, options, &mut warnings) {
                    add_rules(&mut ingress, flow, &group, &peers);
                }
            }
            if sends(flow, component) {
                if let Some(peers) = peers(flow, &flow.to, component, options, &mut warnings) {
                    add_rules(&mut egress, flow, &group, &peers);
                }
            }
        }
    }
    let mut comment = format!(
        "Security groups of {}, generated by portolan: one rule per flow and peer; whatever no rule allows is denied.",
        plan.system
    );
    for resolution in &warnings.resolved {
        comment.push('\n');
        comment.push_str(&format!(
            "{} (rules of {})",
            resolution, resolution.component
        ));
    }
    for warning in &warnings.items {
        comment.push('\n');
        comment.push_str(&warning.to_string());
    }
    let mut variable = IndexMap::new();
    variable.insert(
        VPC_VARIABLE.to_owned(),
        Variable {
            kind: "string".to_owned(),
            description: "Id of the VPC the security groups are created in.".to_owned(),
        },
    );
    Ok((
        TerraformFile {
            comment,
            variable,
            resource: Resources {
                aws_security_group: groups,
                aws_vpc_security_group_ingress_rule: ingress,
                aws_vpc_security_group_egress_rule: egress,
            },
        },
        warnings.items,
    ))
}

fn group_ref(component_id: &str) -> String {
    format!(
        "${{aws_security_group.{}.id}}",
        group_resource_name(component_id)
    )
}

/// How the rules of `component` name `peer` for `flow`; `None` (after
/// warning) when nothing of it can be named.
fn peers(
    flow: &PlannedFlow,
    peer: &Endpoint,
    component: &Endpoint,
    options: &Options,
    warnings: &mut Warnings,
) -> Option<Vec<AwsPeer>> {
    if !expressible(warnings, flow, component, "a security group") {
        return None;
    }
    let group = peer.aws.as_ref().and_then(|a| a.security_group.as_ref());
    if let (true, Some(_)) = (peer.is_component(), group) {
        return Some(vec![AwsPeer::Group(group_ref(&peer.id))]);
    }
    // `any` (the outside world) is in `nets` as 0.0.0.0/0 and ::/0.
    let mut out: Vec<AwsPeer> = peer.nets.iter().map(|n| AwsPeer::Net(n.trunc())).collect();
    let prefix_list = peer.aws.as_ref().and_then(|a| a.prefix_list.as_ref());
    match prefix_list {
        // The prefix list is how AWS reaches the endpoint's names.
        Some(id) => out.push(AwsPeer::PrefixList(id.clone())),
        None => {
            let every = if flow.protocol == Protocol::Any {
                " (every protocol)"
            } else {
                ""
            };
            let (resolved, unresolved) = warnings.resolve(options, component, peer);
            out.extend(resolved.into_iter().map(AwsPeer::Net));
            for (host, why) in unresolved {
                let message = match why {
                    None => format!(
                        "a security group cannot match the host name {host} of `{}`{every}; not allowed (use --resolve to write its current addresses, or give `{}` a CIDR or an AWS prefix list with `aws: {{prefix_list: pl-...}}` in the deployment)",
                        peer.id, peer.id
                    ),
                    Some(why) => format!(
                        "the host name {host} of `{}`{every} could not be resolved at generation time ({why}), and a security group cannot match names; not allowed",
                        peer.id
                    ),
                };
                warnings.push(WarningKind::HostName, flow, component, message);
            }
            for pattern in &peer.patterns {
                warnings.push(
                    WarningKind::WildcardHost,
                    flow,
                    component,
                    format!(
                        "a security group cannot match the wildcard host {pattern} of `{}`{every}; not allowed (give `{}` a CIDR, or an AWS prefix list with `aws: {{prefix_list: pl-...}}`, in the deployment)",
                        peer.id, peer.id
                    ),
                );
            }
        }
    }
    if out.is_empty() && peer.hosts.is_empty() && peer.patterns.is_empty() {
        warnings.push(
            WarningKind::UnplacedPeer,
            flow,
            component,
            format!(
                "`{}` has neither a security group, addresses nor a prefix list, so a security group rule cannot name it; not allowed",
                peer.id
            ),
        );
    }
    (!out.is_empty()).then_some(out)
}

/// The (ip_protocol, from_port, to_port) triples of a flow towards a peer.
fn protocol_ports(flow: &PlannedFlow, peer: &AwsPeer) -> Vec<(String, Option<i32>, Option<i32>)> {
    match flow.protocol {
        Protocol::Tcp | Protocol::Udp => {
            let name = flow.protocol.as_str().to_owned();
            if flow.ports.is_empty() {
                return vec![(name, Some(0), Some(65535))];
            }
            flow.ports
                .iter()
                .map(|r| {
                    (
                        name.clone(),
                        Some(i32::from(r.start)),
                        Some(i32::from(r.end)),
                    )
                })
                .collect()
        }
        Protocol::Icmp => {
            // ICMP and ICMPv6 are different IP protocols to AWS; a group or
            // prefix-list peer may be of either family, a CIDR of its own only.
            // Type and code -1: every type and code, as the spec says.
            let v4 = ("icmp".to_owned(), Some(-1), Some(-1));
            let v6 = ("icmpv6".to_owned(), Some(-1), Some(-1));
            match peer {
                AwsPeer::Net(IpNet::V4(_)) => vec![v4],
                AwsPeer::Net(IpNet::V6(_)) => vec![v6],
                AwsPeer::Group(_) | AwsPeer::PrefixList(_) => vec![v4, v6],
            }
        }
        Protocol::Any => vec![("-1".to_owned(), None, None)],
    }
}

/// A rule's description: the flow id, its name, and the proxy it goes through.
fn description(flow: &PlannedFlow) -> String {
    let mut text = flow.id.clone();
    if let Some(name) = &flow.name {
        text.push_str(&format!(" ({name})"));
    }
    if let Some(proxied) = &flow.via_proxy {
        text.push_str(&format!(" via proxy {}", proxied.proxy));
    }
    if flow.site {
        text.push_str(&format!(
            " (site flow: {})",
            flow.purpose.as_deref().unwrap_or_default()
        ));
    }
    text
}

fn add_rules(
    into: &mut IndexMap<String, SecurityGroupRule>,
    flow: &PlannedFlow,
    group: &str,
    peers: &[AwsPeer],
) {
    let mut rules = Vec::new();
    for peer in peers {
        for (ip_protocol, from_port, to_port) in protocol_ports(flow, peer) {
            let mut rule = SecurityGroupRule {
                security_group_id: group.to_owned(),
                description: aws_description(&description(flow)),
                ip_protocol,
                from_port,
                to_port,
                cidr_ipv4: None,
                cidr_ipv6: None,
                referenced_security_group_id: None,
                prefix_list_id: None,
            };
            match peer {
                AwsPeer::Net(net @ IpNet::V4(_)) => rule.cidr_ipv4 = Some(net.to_string()),
                AwsPeer::Net(net @ IpNet::V6(_)) => rule.cidr_ipv6 = Some(net.to_string()),
                AwsPeer::Group(reference) => {
                    rule.referenced_security_group_id = Some(reference.clone());
                }
                AwsPeer::PrefixList(id) => rule.prefix_list_id = Some(terraform_literal(id)),
            }
            rules.push(rule);
        }
    }
    let base = terraform_name(&flow.id);
    let single = rules.len() == 1;
    for (n, rule) in rules.into_iter().enumerate() {
        let mut name = if single {
            base.clone()
        } else {
            format!("{base}_{}", n + 1)
        };
        // Flow ids are unique, so a clash can come only from sanitising:
        // keep both rules rather than overwrite one.
        while into.contains_key(&name) {
            name.push('_');
        }
        into.insert(name, rule);
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
    aws: {security_group: shop-web}
  db:
    addresses: [10.0.0.7, \"2001:db8::7\"]
    aws: {security_group: shop-db}
  cache:
    kubernetes: {namespace: data, pod_selector: {app: cache}}
externals:
  cloudwatch:
    aws: {prefix_list: pl-0123456789abcdef0}
";

    #[test]
    fn peer_groups_are_references_and_the_outside_is_both_families() {
        let plan = test_plan(DEPLOYMENT);
        let (file, _) = terraform(&plan, &Options::default()).unwrap();
        let ingress = &file.resource.aws_vpc_security_group_ingress_rule;
        let names: Vec<_> = ingress.keys().cloned().collect();
        assert_eq!(
            names,
            [
                "users_web_tcp_443_1",
                "users_web_tcp_443_2",
                "web_db_tcp_5432_5440",
                "web_db_icmp_1",
                "web_db_icmp_2",
            ]
        );
        assert_eq!(
            ingress["users_web_tcp_443_1"].cidr_ipv4.as_deref(),
            Some("0.0.0.0/0")
        );
        assert_eq!(
            ingress["users_web_tcp_443_2"].cidr_ipv6.as_deref(),
            Some("::/0")
        );
        let db = &ingress["web_db_tcp_5432_5440"];
        assert_eq!(db.security_group_id, "${aws_security_group.db.id}");
        assert_eq!(
            db.referenced_security_group_id.as_deref(),
            Some("${aws_security_group.web.id}")
        );
        assert_eq!((db.from_port, db.to_port), (Some(5432), Some(5440)));
        assert_eq!(ingress["web_db_icmp_2"].ip_protocol, "icmpv6");
        let egress = &file.resource.aws_vpc_security_group_egress_rule;
        assert_eq!(
            egress["web_cloudwatch_tcp_443"].prefix_list_id.as_deref(),
            Some("pl-0123456789abcdef0")
        );
    }

    #[test]
    fn names_source_ports_multicast_are_warnings() {
        let plan = test_plan(DEPLOYMENT);
        let (file, warnings) = terraform(&plan, &Options::default()).unwrap();
        let codes: Vec<_> = warnings
            .iter()
            .map(|w| format!("{} {}", w.code(), w.flow))
            .collect();
        assert_eq!(
            codes,
            [
                "aws::unplaced-peer web->cache/tcp/6379",
                "aws::host-name web->slack/tcp/443",
                "aws::source-port web->web/udp/8112:8112",
                "aws::multicast web->web@225.0.1.9/udp/8082",
            ]
        );
        assert!(file.comment.contains("web->slack/tcp/443"));
    }

    #[test]
    fn descriptions_use_only_allowed_characters() {
        assert_eq!(aws_description("a->b/tcp/443 ✓"), "a to b/tcp/443  ");
        assert_eq!(aws_description(&"x".repeat(300)).len(), 255);
    }

    #[test]
    fn user_text_is_never_a_terraform_template() {
        assert_eq!(terraform_literal("a ${b} %{c}"), "a $${b} %%{c}");
        assert_eq!(aws_description("x ${var.y}"), "x $${var.y}");
    }

    #[test]
    fn terraform_names_start_with_a_letter() {
        assert_eq!(terraform_name("web-db"), "web_db");
        assert_eq!(terraform_name("9lives"), "_9lives");
        assert_eq!(terraform_name("a->b/tcp/8000-8010"), "a_b_tcp_8000_8010");
    }
}
