//! AWS security groups, evaluated by their documented semantics (Amazon VPC
//! User Guide, "Security group rules"), from the JSON of
//! `aws ec2 describe-security-groups`:
//!
//! - A1 "Security groups are stateful": the response to an allowed request
//!   is allowed whatever the rules say; only the initiating direction of a
//!   flow is checked: the egress rules of the source's group and the ingress
//!   rules of the destination's group.
//! - A2 rules only allow: "You can specify allow rules, but not deny
//!   rules"; what no rule of the group allows is denied, and the rules of a
//!   group are a union.
//! - A3 a rule's source/destination is a CIDR (`IpRanges`, `Ipv6Ranges`), a
//!   prefix list (`PrefixListIds`) or a security group
//!   (`UserIdGroupPairs`): a group reference admits the instances the group
//!   is attached to (here: the components the deployment gives it).
//! - A4 `IpProtocol` `-1` is every protocol and every port; `tcp`/`udp`
//!   (or 6/17) use `FromPort..ToPort`; for `icmp`/`icmpv6` `FromPort` is the
//!   ICMP type (`-1`: every type); other protocol numbers admit the whole
//!   protocol.
//! - A5 a new group has an egress rule admitting everything (`-1` to
//!   `0.0.0.0/0`); the JSON shows it like any other rule, and it is
//!   reported as an opening to any address.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use portolan_spec::plan::{Endpoint, Plan, PlannedFlow};
use portolan_spec::Protocol;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Code, Hint, Position, VerifyError};
use crate::kubernetes::{gaps_text, push_excess};
use crate::model::{Direction, Excess, Fix, FlowCheck, InputKind, RuleRef, Section, Verdict};
use crate::sets::{NetSet, RangeSet};
use crate::space::{self, proto, Gap, Grant, Peers, Request, Traffic, MAX_PORT};
use crate::{flow_traffic_text, request_traffic};

/// The output of `aws ec2 describe-security-groups`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSecurityGroups {
    /// The groups.
    pub security_groups: Vec<Spanned<SecurityGroup>>,
}

/// A security group.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroup {
    /// `sg-…`.
    pub group_id: String,
    /// The name the deployment uses.
    pub group_name: String,
    /// Inbound rules.
    #[serde(default)]
    pub ip_permissions: Vec<Spanned<Permission>>,
    /// Outbound rules.
    #[serde(default)]
    pub ip_permissions_egress: Vec<Spanned<Permission>>,
}

/// One rule (an `IpPermission`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` or a protocol number.
    pub ip_protocol: String,
    /// First port, or ICMP type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i64>,
    /// Last port, or ICMP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i64>,
    /// IPv4 blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<IpRange>,
    /// IPv6 blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_ranges: Vec<Ipv6Range>,
    /// Managed prefix lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_list_ids: Vec<PrefixListId>,
    /// Security groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_id_group_pairs: Vec<GroupPair>,
}

/// An IPv4 block of a rule.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct IpRange {
    /// The block.
    pub cidr_ip: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An IPv6 block of a rule.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Ipv6Range {
    /// The block.
    pub cidr_ipv6: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A prefix list of a rule.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PrefixListId {
    /// `pl-…`.
    pub prefix_list_id: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A security group referenced by a rule.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct GroupPair {
    /// `sg-…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The account owning it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Security groups read from a file.
#[derive(Debug, Clone)]
pub struct Groups {
    file: String,
    groups: Vec<Spanned<SecurityGroup>>,
}

impl Groups {
    /// Reads the JSON of `aws ec2 describe-security-groups` (`file` names it in errors).
    pub fn read(file: &str, text: &str) -> Result<Self, VerifyError> {
        let hint = || Hint::Holds {
            input: InputKind::Aws,
            what: "the JSON of `aws ec2 describe-security-groups --output json`".to_owned(),
        };
        if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
            return Err(VerifyError::input_hint(
                Code::NotSecurityGroups,
                Position::new(file, e.line() as u64, e.column() as u64),
                format!("not JSON: {e}"),
                hint(),
            ));
        }
        // JSON is YAML: the YAML reader gives every group and rule its position.
        let parsed: DescribeSecurityGroups = serde_saphyr::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| Position::of_yaml(file, &l))
                .unwrap_or_else(|| Position::file(file));
            VerifyError::input_hint(
                Code::NotSecurityGroups,
                at,
                format!(
                    "not the output of describe-security-groups: {}",
                    e.to_string().lines().next().unwrap_or("")
                ),
                hint(),
            )
        })?;
        Ok(Self {
            file: file.to_owned(),
            groups: parsed.security_groups,
        })
    }
}

fn protocol_traffic(p: &Permission, at: &Position) -> Result<Traffic, VerifyError> {
    let number: u128 = match p.ip_protocol.to_ascii_lowercase().as_str() {
        "-1" | "all" => return Ok(Traffic::all()),
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "icmp" => proto::ICMP,
        "icmpv6" | "58" => proto::ICMPV6,
        other => other
            .parse::<u128>()
            .ok()
            .filter(|n| *n <= proto::MAX)
            .ok_or_else(|| {
                VerifyError::input_hint(
                    Code::InvalidSecurityGroup,
                    at.clone(),
                    format!("unknown IpProtocol `{other}`"),
                    "IpProtocol is tcp, udp, icmp, icmpv6, -1 or a protocol number",
                )
            })?,
    };
    let range = |from: Option<i64>, to: Option<i64>| -> Result<RangeSet, VerifyError> {
        match (from, to) {
            (None, _) | (Some(-1), _) => Ok(RangeSet::range(0, MAX_PORT)),
            (Some(f), t) => {
                let t = t.filter(|t| *t != -1).unwrap_or(f);
                if !(0..=65535).contains(&f) || !(f..=65535).contains(&t) {
                    return Err(VerifyError::input(
                        Code::InvalidSecurityGroup,
                        at.clone(),
                        format!("FromPort {f} ToPort {t} is not a port range"),
                    ));
                }
                Ok(RangeSet::range(f as u128, t as u128))
            }
        }
    };
    Ok(match number {
        proto::TCP | proto::UDP => Traffic::of(number, range(p.from_port, p.to_port)?),
        // ICMP: FromPort is the type; the code (ToPort) is not checked.
        proto::ICMP | proto::ICMPV6 => Traffic::of(number, range(p.from_port, None)?),
        n => Traffic::of(n, RangeSet::range(0, MAX_PORT)),
    })
}

fn parse_net(text: &str, at: &Position) -> Result<IpNet, VerifyError> {
    text.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
        VerifyError::input(
            Code::InvalidSecurityGroup,
            at.clone(),
            format!("`{text}` is not a CIDR block"),
        )
    })
}

struct Evaluator<'a> {
    plan: &'a Plan,
    groups: &'a Groups,
    /// Component id → index of its group.
    group_of: BTreeMap<String, usize>,
    /// Per group and direction, its grants.
    grants: BTreeMap<(usize, Direction), Vec<Grant>>,
    rules: Vec<RuleRef>,
    assumptions: BTreeSet<String>,
}

/// Verifies the plan's flows against security groups.
pub fn verify(plan: &Plan, groups: &Groups) -> Result<Section, VerifyError> {
    let mut ev = Evaluator::new(plan, groups)?;
    ev.build()?;
    let mut section = Section::new(InputKind::Aws, &groups.file, None);
    for flow in &plan.flows {
        let (check, fix) = ev.check(flow);
        section.checks.push(check);
        section.fixes.extend(fix);
    }
    section.excess = ev.excess();
    if ev.group_of.is_empty() {
        ev.assumptions.insert(
            "no component has an aws security_group in the deployment: no flow is governed".into(),
        );
    }
    section.assumptions = ev.assumptions.into_iter().collect();
    Ok(section)
}

impl<'a> Evaluator<'a> {
    fn new(plan: &'a Plan, groups: &'a Groups) -> Result<Self, VerifyError> {
        let mut group_of = BTreeMap::new();
        for c in &plan.components {
            let Some(name) = c.aws.as_ref().and_then(|a| a.security_group.as_ref()) else {
                continue;
            };
            let found: Vec<usize> = (0..groups.groups.len())
                .filter(|i| groups.groups[*i].value.group_name == *name)
                .collect();
            match found.as_slice() {
                [i] => {
                    group_of.insert(c.id.clone(), *i);
                }
                [] => {
                    return Err(VerifyError::input_hint(Code::UnknownSecurityGroup,
                        Position::file(&groups.file),
                        format!("the deployment gives {} the security group `{name}`, which this file does not hold", c.id),
                        format!(
                            "the file holds {}",
                            groups.groups.iter().map(|g| format!("`{}`", g.value.group_name)).collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
                _ => {
                    return Err(VerifyError::input_hint(Code::AmbiguousSecurityGroup,
                        Position::file(&groups.file),
                        format!("{} security groups are named `{name}` (the group of {})", found.len(), c.id),
                        "describe the groups of one VPC: --filters Name=vpc-id,Values=vpc-…",
                    ))
                }
            }
        }
        Ok(Self {
            plan,
            groups,
            group_of,
            grants: BTreeMap::new(),
            rules: Vec::new(),
            assumptions: BTreeSet::new(),
        })
    }

    fn build(&mut self) -> Result<(), VerifyError> {
        let file = self.groups.file.clone();
        let by_id: BTreeMap<&str, usize> = self
            .groups
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.value.group_id.as_str(), i))
            .collect();
        for (gi, group) in self.groups.groups.iter().enumerate() {
            for (direction, list) in [
                (Direction::Ingress, &group.value.ip_permissions),
                (Direction::Egress, &group.value.ip_permissions_egress),
            ] {
                let mut grants = Vec::new();
                for (ri, perm) in list.iter().enumerate() {
                    let at = Position::of_yaml(&file, &perm.referenced);
                    let p = &perm.value;
                    let traffic = protocol_traffic(p, &at)?;
                    let mut peers = Peers::default();
                    for r in &p.ip_ranges {
                        peers.nets.add(&parse_net(&r.cidr_ip, &at)?);
                    }
                    for r in &p.ipv6_ranges {
                        peers.nets.add(&parse_net(&r.cidr_ipv6, &at)?);
                    }
                    for pl in &p.prefix_list_ids {
                        peers
                            .ids
                            .insert(format!("prefix list {}", pl.prefix_list_id));
                    }
                    for pair in &p.user_id_group_pairs {
                        let Some(id) = &pair.group_id else { continue };
                        match by_id.get(id.as_str()) {
                            Some(&other) => {
                                for (c, g) in &self.group_of {
                                    if *g == other {
                                        peers.ids.insert(c.clone());
                                    }
                                }
                            }
                            None => {
                                self.assumptions.insert(format!(
                                    "{at}: group {id} is not in the file: its members are unknown, the reference admits none of the deployment's components"
                                ));
                            }
                        }
                    }
                    let rule = self.rules.len();
                    self.rules.push(RuleRef {
                        text: format!(
                            "security group {} ({}), {} rule {}: {}",
                            group.value.group_name,
                            group.value.group_id,
                            direction.as_str(),
                            ri + 1,
                            permission_text(p)
                        ),
                        location: Some(at.to_string()),
                        comment: None,
                    });
                    grants.push(Grant {
                        peers,
                        traffic,
                        rule,
                    });
                }
                self.grants.insert((gi, direction), grants);
            }
        }
        Ok(())
    }

    /// The ways a policy can name an end: its group, its prefix list, its
    /// addresses. For a check (not `for_excess`), a member of a group whose
    /// addresses the deployment does not give is also admitted by a rule
    /// for every IPv4 address (`0.0.0.0/0` holds its private address,
    /// whatever it is); for the excess, such a rule stays an opening to any
    /// address.
    fn alternatives(&self, end: &Endpoint, for_excess: bool) -> Vec<Peers> {
        let mut out = Vec::new();
        if self.group_of.contains_key(&end.id) {
            out.push(Peers::id(&end.id));
            if !for_excess && end.nets.is_empty() && !end.any {
                let mut v4 = NetSet::empty();
                v4.v4 = RangeSet::range(0, u32::MAX as u128);
                out.push(Peers::nets(v4));
            }
        }
        if let Some(pl) = end.aws.as_ref().and_then(|a| a.prefix_list.as_ref()) {
            let mut p = Peers::default();
            p.ids.insert(format!("prefix list {pl}"));
            out.push(p);
        }
        let mut by_address = Peers::nets(if end.any {
            NetSet::all()
        } else {
            NetSet::of(&end.nets)
        });
        for name in end.hosts.iter().chain(&end.patterns) {
            by_address.ids.insert(format!("name {name}"));
        }
        if !by_address.is_empty() {
            out.push(by_address);
        }
        if out.is_empty() {
            out.push(Peers::id(&end.id));
        }
        out
    }

    fn traffic(&self, flow: &PlannedFlow) -> Vec<Traffic> {
        if flow.protocol != Protocol::Icmp {
            return request_traffic(flow);
        }
        // ICMP flows are echo (as the lab probes them): type 8, and type
        // 128 over IPv6 when an end has IPv6 addresses.
        let mut out = vec![Traffic::of(proto::ICMP, RangeSet::range(8, 8))];
        if flow.from.v6().next().is_some() || flow.to.v6().next().is_some() {
            out.push(Traffic::of(proto::ICMPV6, RangeSet::range(128, 128)));
        }
        out
    }

    fn check(&self, flow: &PlannedFlow) -> (FlowCheck, Vec<Fix>) {
        let mut check = FlowCheck {
            flow: flow.id.clone(),
            from: flow.from.id.clone(),
            to: flow.to.id.clone(),
            traffic: flow_traffic_text(flow),
            required: flow.required,
            verdict: Verdict::NotGoverned,
            rules: Vec::new(),
            detail: String::new(),
        };
        let mut details = Vec::new();
        let mut fixes = Vec::new();
        // Shown only when the flow passes (a block shows the deciding group).
        let mut admitting = Vec::new();
        for (direction, subject, peer) in [
            (Direction::Egress, &flow.from, &flow.to),
            (Direction::Ingress, &flow.to, &flow.from),
        ] {
            let Some(&gi) = self.group_of.get(&subject.id) else {
                continue;
            };
            if check.verdict == Verdict::NotGoverned {
                check.verdict = Verdict::Admitted;
            }
            let group = &self.groups.groups[gi].value;
            let grants: Vec<&Grant> = self.grants[&(gi, direction)].iter().collect();
            let request = Request {
                alternatives: self.alternatives(peer, false),
                traffic: self.traffic(flow),
            };
            let gaps = space::gaps(&grants, &request);
            if gaps.is_empty() {
                details.push(format!(
                    "{} {} ({}): admitted",
                    subject.id,
                    direction.as_str(),
                    group.group_name
                ));
                for r in space::admitting(&grants, &request) {
                    admitting.push(self.rules[r].clone());
                }
            } else {
                check.verdict = Verdict::Blocked;
                details.push(format!(
                    "{} {} ({}): no rule admits {}",
                    subject.id,
                    direction.as_str(),
                    group.group_name,
                    gaps_text(&gaps)
                ));
                check.rules.push(RuleRef {
                    text: format!(
                        "security group {} ({}): {} rules",
                        group.group_name,
                        group.group_id,
                        direction.as_str()
                    ),
                    location: Some(
                        Position::of_yaml(&self.groups.file, &self.groups.groups[gi].referenced)
                            .to_string(),
                    ),
                    comment: None,
                });
                if let Some(fix) = self.fix(flow, direction, group, peer, &gaps) {
                    fixes.push(fix);
                }
            }
        }
        if check.verdict == Verdict::NotGoverned {
            details.push("neither end has a security group in the deployment".into());
        }
        if check.verdict == Verdict::Admitted {
            check.rules = admitting;
        }
        check.detail = details.join("; ");
        (check, fixes)
    }

    /// An `aws ec2 authorize-security-group-…` command with the missing permissions.
    fn fix(
        &self,
        flow: &PlannedFlow,
        direction: Direction,
        group: &SecurityGroup,
        peer: &Endpoint,
        gaps: &[Gap],
    ) -> Option<Fix> {
        let mut permissions: Vec<Permission> = Vec::new();
        let description = Some(flow.id.clone());
        for gap in gaps {
            let mut base = Permission {
                ip_protocol: String::new(),
                from_port: None,
                to_port: None,
                ip_ranges: Vec::new(),
                ipv6_ranges: Vec::new(),
                prefix_list_ids: Vec::new(),
                user_id_group_pairs: Vec::new(),
            };
            if let Some(&pg) = self.group_of.get(&peer.id) {
                base.user_id_group_pairs.push(GroupPair {
                    group_id: Some(self.groups.groups[pg].value.group_id.clone()),
                    user_id: None,
                    description: description.clone(),
                });
            } else if let Some(pl) = peer.aws.as_ref().and_then(|a| a.prefix_list.clone()) {
                base.prefix_list_ids.push(PrefixListId {
                    prefix_list_id: pl,
                    description: description.clone(),
                });
            } else {
                if !gap.peers.ids.iter().all(|i| i.starts_with("name "))
                    || !peer.hosts.is_empty()
                    || !peer.patterns.is_empty()
                {
                    return None;
                }
                for net in gap.peers.nets.cidrs() {
                    match net {
                        IpNet::V4(_) => base.ip_ranges.push(IpRange {
                            cidr_ip: net.to_string(),
                            description: description.clone(),
                        }),
                        IpNet::V6(_) => base.ipv6_ranges.push(Ipv6Range {
                            cidr_ipv6: net.to_string(),
                            description: description.clone(),
                        }),
                    }
                }
            }
            for &(ps, pe) in gap.traffic.protocols.ranges() {
                for protocol in ps..=pe {
                    let name = match protocol {
                        proto::TCP => "tcp",
                        proto::UDP => "udp",
                        proto::ICMP => "icmp",
                        proto::ICMPV6 => "icmpv6",
                        _ if gap.traffic.protocols == RangeSet::range(0, proto::MAX) => "-1",
                        _ => return None,
                    };
                    for &(s, e) in gap.traffic.ports.ranges() {
                        let mut p = base.clone();
                        p.ip_protocol = name.into();
                        match name {
                            "tcp" | "udp" => {
                                p.from_port = Some(s as i64);
                                p.to_port = Some(e as i64);
                            }
                            "icmp" | "icmpv6" => {
                                p.from_port = Some(s as i64);
                                p.to_port = Some(-1);
                            }
                            _ => {}
                        }
                        if !permissions.contains(&p) {
                            permissions.push(p);
                        }
                    }
                    if name == "-1" {
                        break;
                    }
                }
            }
        }
        let json = serde_json::to_string(&permissions).ok()?;
        Some(Fix {
            flow: flow.id.clone(),
            text: format!(
                "aws ec2 authorize-security-group-{} --group-id {} --ip-permissions '{}'",
                direction.as_str(),
                group.group_id,
                json.replace('\'', "'\\''")
            ),
        })
    }

    fn excess(&self) -> Vec<Excess> {
        let mut out = Vec::new();
        for (gi, group) in self.groups.groups.iter().enumerate() {
            let members: Vec<&String> = self
                .group_of
                .iter()
                .filter(|(_, g)| **g == gi)
                .map(|(c, _)| c)
                .collect();
            let Some(first) = members.first() else {
                continue;
            };
            for direction in [Direction::Ingress, Direction::Egress] {
                let required: Vec<Request> = self
                    .plan
                    .flows
                    .iter()
                    .filter_map(|f| {
                        let (subject, peer) = match direction {
                            Direction::Ingress => (&f.to, &f.from),
                            Direction::Egress => (&f.from, &f.to),
                        };
                        members.contains(&&subject.id).then(|| Request {
                            alternatives: self.alternatives(peer, true),
                            traffic: self.traffic(f),
                        })
                    })
                    .collect();
                let required: Vec<&Request> = required.iter().collect();
                let subject = if members.len() == 1 {
                    (*first).clone()
                } else {
                    format!(
                        "{} ({})",
                        group.value.group_name,
                        members
                            .iter()
                            .map(|m| m.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                for grant in &self.grants[&(gi, direction)] {
                    let groups = space::excess(grant, &required);
                    push_excess(
                        &mut out,
                        &subject,
                        direction,
                        groups,
                        &self.rules[grant.rule],
                    );
                }
            }
        }
        out
    }
}

/// A rule in the words of the console: `tcp 5432 from sg-… , 10.0.0.0/8`.
fn permission_text(p: &Permission) -> String {
    let ports = match (p.ip_protocol.as_str(), p.from_port, p.to_port) {
        ("-1", _, _) => "all traffic".to_owned(),
        (proto, None, _) | (proto, Some(-1), _) => format!("{proto} all"),
        (proto, Some(f), Some(t)) if t != f && t != -1 && !proto.starts_with("icmp") => {
            format!("{proto} {f}-{t}")
        }
        (proto, Some(f), _) => format!("{proto} {f}"),
    };
    let mut peers: Vec<String> = p.ip_ranges.iter().map(|r| r.cidr_ip.clone()).collect();
    peers.extend(p.ipv6_ranges.iter().map(|r| r.cidr_ipv6.clone()));
    peers.extend(p.prefix_list_ids.iter().map(|r| r.prefix_list_id.clone()));
    peers.extend(
        p.user_id_group_pairs
            .iter()
            .filter_map(|r| r.group_id.clone()),
    );
    format!("{ports} {}", peers.join(", "))
}

#[cfg(test)]
mod tests;
