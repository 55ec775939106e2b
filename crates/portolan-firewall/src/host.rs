//! The model both host-firewall targets (nftables, iptables) render: per
//! component host, the peer address sets and the input and output rules,
//! each rule carrying its flow id, and the rules that cannot be written
//! (host names, patterns, peers without addresses) kept as disabled rules
//! with their warning.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use portolan_spec::diag::{did_you_mean, Code, Diagnostic};
use portolan_spec::plan::{net_text, Endpoint, EndpointKind, Plan, PlannedFlow};
use portolan_spec::{PortRange, Protocol};

use crate::generate::{GenerateError, GenerateWarning, Options, WarningKind};

/// Which way a rule matches traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Traffic to this host: the peer is the source.
    Input,
    /// Traffic from this host: the peer is the destination.
    Output,
}

/// A named set of peer addresses (one per address family when rendered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerSet {
    /// Base name (`data_storage`); targets add `_v4` / `_v6`.
    pub name: String,
    /// IPv4 blocks.
    pub v4: Vec<IpNet>,
    /// IPv6 blocks.
    pub v6: Vec<IpNet>,
    /// What the set is, for a comment above it.
    pub comment: String,
}

/// Who a rule matches on the far side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A set of addresses (index into [`HostRuleset::sets`]).
    Set(usize),
    /// A multicast group (output of a multicast sender).
    Group(IpAddr),
}

/// One rule of a host's ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The flow id, written as the rule's comment.
    pub flow: String,
    /// Input or output.
    pub direction: Direction,
    /// The far side.
    pub peer: Peer,
    /// For a multicast receiver: the group the traffic is sent to.
    pub group: Option<IpAddr>,
    /// Protocol.
    pub protocol: Protocol,
    /// Fixed source ports; empty: any.
    pub source_ports: Vec<PortRange>,
    /// Destination ports; empty: any.
    pub ports: Vec<PortRange>,
}

/// A rule that cannot be written, kept to be shown commented out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DisabledRule {
    /// The flow id.
    pub flow: String,
    /// Input or output.
    pub direction: Direction,
    /// What the peer is (names, patterns, or a placement without addresses).
    pub peer: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Fixed source ports.
    pub source_ports: Vec<PortRange>,
    /// Destination ports.
    pub ports: Vec<PortRange>,
    /// Why it is not written.
    pub reason: String,
}

/// Everything one component host's ruleset holds.
#[derive(Debug, Clone)]
pub(crate) struct HostRuleset {
    /// The component.
    pub component: Endpoint,
    /// Peer sets, in first-use order.
    pub sets: Vec<PeerSet>,
    /// Rules, in flow order, input and output mixed.
    pub rules: Vec<Rule>,
    /// Rules left out, in flow order.
    pub disabled: Vec<DisabledRule>,
    /// Whether the host sends or receives IPv4 multicast (IGMP needed).
    pub igmp: bool,
    /// What could not be expressed.
    pub warnings: Vec<GenerateWarning>,
}

impl HostRuleset {
    /// Rules of one direction.
    pub fn rules(&self, direction: Direction) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.direction == direction)
    }

    /// Disabled rules of one direction.
    pub fn disabled(&self, direction: Direction) -> impl Iterator<Item = &DisabledRule> {
        self.disabled
            .iter()
            .filter(move |r| r.direction == direction)
    }
}

/// The components a host target generates files for: those with addresses
/// that are not the outside world, honouring `--component`.
pub(crate) fn hosts<'p>(
    plan: &'p Plan,
    options: &Options,
    target: &'static str,
) -> Result<Vec<&'p Endpoint>, GenerateError> {
    let has_host = |e: &Endpoint| {
        e.kind != EndpointKind::Outside && (!e.nets.is_empty() || !e.hosts.is_empty())
    };
    let cannot = |d: Diagnostic| GenerateError::CannotServe {
        target,
        diagnostics: vec![d],
    };
    if let Some(id) = &options.component {
        let Some(component) = plan.component(id) else {
            let mut d = Diagnostic::new(
                Code::DeploymentUnsupportedByTarget,
                format!("the spec has no component `{id}`"),
            );
            d = d.with_help(
                match did_you_mean(id, plan.components.iter().map(|c| c.id.as_str())) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!(
                        "components: {}",
                        plan.components
                            .iter()
                            .map(|c| c.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            );
            return Err(cannot(d));
        };
        if !has_host(component) {
            let why = if component.kind == EndpointKind::Outside {
                "it is the outside world (kind `external`): there is no host to load rules on"
                    .to_owned()
            } else {
                format!(
                    "{target} rules are loaded on hosts, and the deployment gives it no addresses"
                )
            };
            let span = component.span.unwrap_or(plan.components_span);
            return Err(cannot(
                Diagnostic::new(
                    Code::DeploymentUnsupportedByTarget,
                    format!("the {target} target has no host for component `{id}`: {why}"),
                )
                .with_label(span, format!("`{id}` has no addresses"))
                .with_help(format!(
                    "add `addresses: [...]` to `{id}`, or use a target that matches its placement"
                )),
            ));
        }
        return Ok(vec![component]);
    }
    let all: Vec<&Endpoint> = plan.components.iter().filter(|e| has_host(e)).collect();
    if all.is_empty() {
        return Err(cannot(
            Diagnostic::new(
                Code::DeploymentUnsupportedByTarget,
                format!("the {target} target needs host addresses, and no component has any"),
            )
            .with_label(plan.components_span, "no component here has `addresses:`")
            .with_help("give the components `addresses: [...]`, or use the kubernetes, cilium or aws target for selector or security-group placements"),
        ));
    }
    Ok(all)
}

/// Builds the ruleset of one component host.
pub(crate) fn build(
    plan: &Plan,
    component: &Endpoint,
    options: &Options,
    target: &'static str,
) -> HostRuleset {
    let mut builder = Builder {
        options,
        target,
        out: HostRuleset {
            component: component.clone(),
            sets: Vec::new(),
            rules: Vec::new(),
            disabled: Vec::new(),
            igmp: false,
            warnings: Vec::new(),
        },
    };
    for flow in &plan.flows {
        let receives = flow.to.is_component() && flow.to.id == component.id;
        if receives {
            builder.add(flow, Direction::Input, &flow.from);
        }
        if flow.from.id == component.id {
            match flow.multicast {
                Some(group) => builder.push_rule(flow, Direction::Output, Peer::Group(group)),
                None => builder.add(flow, Direction::Output, &flow.to),
            }
        }
        if let (Some(IpAddr::V4(_)), true) =
            (flow.multicast, receives || flow.from.id == component.id)
        {
            builder.out.igmp = true;
        }
    }
    builder.out
}

struct Builder<'o> {
    options: &'o Options,
    target: &'static str,
    out: HostRuleset,
}

impl Builder<'_> {
    fn warn(&mut self, kind: WarningKind, flow: &PlannedFlow, message: String) {
        let warning = GenerateWarning {
            target: self.target,
            kind,
            flow: flow.id.clone(),
            component: self.out.component.id.clone(),
            message,
        };
        if !self.out.warnings.contains(&warning) {
            self.out.warnings.push(warning);
        }
    }

    fn disable(&mut self, flow: &PlannedFlow, direction: Direction, peer: String, reason: String) {
        self.out.disabled.push(DisabledRule {
            flow: flow.id.clone(),
            direction,
            peer,
            protocol: flow.protocol,
            source_ports: flow.source_ports.clone(),
            ports: flow.ports.clone(),
            reason,
        });
    }

    fn push_rule(&mut self, flow: &PlannedFlow, direction: Direction, peer: Peer) {
        let group = match (&peer, direction) {
            (Peer::Set(_), Direction::Input) => flow.multicast,
            _ => None,
        };
        let rule = Rule {
            flow: flow.id.clone(),
            direction,
            peer,
            group,
            protocol: flow.protocol,
            source_ports: flow.source_ports.clone(),
            ports: flow.ports.clone(),
        };
        if !self.out.rules.contains(&rule) {
            self.out.rules.push(rule);
        }
    }

    /// Adds the rule(s) for one direction of a flow, with `peer` on the far side.
    fn add(&mut self, flow: &PlannedFlow, direction: Direction, peer: &Endpoint) {
        let side = match direction {
            Direction::Input => "source",
            Direction::Output => "destination",
        };
        let mut nets: Vec<IpNet> = peer.nets.clone();
        let mut resolved = Vec::new();
        for host in &peer.hosts {
            match &self.options.resolver {
                Some(resolve) => match resolve(host) {
                    Ok(addresses) => {
                        resolved.push(format!(
                            "{host} = {}",
                            addresses
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        nets.extend(addresses.into_iter().map(IpNet::from));
                    }
                    Err(why) => {
                        let reason = format!(
                            "{side} {host} could not be resolved at generation time ({why}); {} cannot match host names, so the rule is not written",
                            self.target
                        );
                        self.warn(WarningKind::HostName, flow, reason.clone());
                        self.disable(flow, direction, host.clone(), reason);
                    }
                },
                None => {
                    let reason = format!(
                        "{side} is the host name {host}, which {} cannot match; the rule is not written (use --resolve to resolve it at generation time, or give `{}` addresses or a proxy in the deployment)",
                        self.target, peer.id
                    );
                    self.warn(WarningKind::HostName, flow, reason.clone());
                    self.disable(flow, direction, host.clone(), reason);
                }
            }
        }
        for pattern in &peer.patterns {
            let reason = format!(
                "{side} is the wildcard pattern {pattern}, which {} cannot match and which is never widened to every address; the rule is not written (give `{}` addresses or a proxy in the deployment)",
                self.target, peer.id
            );
            self.warn(WarningKind::WildcardHost, flow, reason.clone());
            self.disable(flow, direction, pattern.clone(), reason);
        }
        if peer.nets.is_empty() && peer.hosts.is_empty() && peer.patterns.is_empty() {
            let reason = format!(
                "{side} `{}` is placed as {} only; {} needs addresses, so the rule is not written",
                peer.id,
                peer.addresses_text(),
                self.target
            );
            self.warn(WarningKind::UnplacedPeer, flow, reason.clone());
            self.disable(flow, direction, peer.addresses_text(), reason);
        }
        if nets.is_empty() {
            return;
        }
        let nets = minimal(nets);
        let mut name = set_name(&peer.id);
        if flow.via_proxy.is_some() {
            name.push_str("_proxy");
        }
        let mut comment = format!("{} ({})", peer.name, peer.id);
        if peer.any {
            comment = format!(
                "{comment}: any address, the outside world has no address in the deployment"
            );
        } else if let Some(via) = &flow.via_proxy {
            comment = format!("{comment}: the proxy {} that reaches it", via.proxy);
        }
        if !resolved.is_empty() {
            comment = format!(
                "{comment}; resolved at generation time, regenerate when the names move: {}",
                resolved.join("; ")
            );
        }
        let set = PeerSet {
            v4: nets
                .iter()
                .filter(|n| matches!(n, IpNet::V4(_)))
                .copied()
                .collect(),
            v6: nets
                .iter()
                .filter(|n| matches!(n, IpNet::V6(_)))
                .copied()
                .collect(),
            name,
            comment,
        };
        let index = self.intern(set);
        self.push_rule(flow, direction, Peer::Set(index));
    }

    /// The index of an identical set, or of this one added (renamed if its name is taken).
    fn intern(&mut self, mut set: PeerSet) -> usize {
        if let Some(i) = self.out.sets.iter().position(|s| s == &set) {
            return i;
        }
        let base = set.name.clone();
        let mut n = 2;
        while self.out.sets.iter().any(|s| s.name == set.name) {
            set.name = format!("{base}_{n}");
            n += 1;
        }
        self.out.sets.push(set);
        self.out.sets.len() - 1
    }
}

/// The nets without those another one contains: interval sets reject
/// overlapping elements, and the union is the same.
pub(crate) fn minimal(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    nets.sort();
    nets.dedup();
    let all = nets.clone();
    nets.retain(|n| !all.iter().any(|o| o != n && o.contains(n)));
    nets
}

/// An identifier both nft and iptables accept: `data-storage` → `data_storage`.
pub(crate) fn set_name(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The families a rule applies to, given its peer set and group.
pub(crate) fn families(rule: &Rule, sets: &[PeerSet]) -> (bool, bool) {
    match (&rule.peer, rule.group) {
        (Peer::Group(IpAddr::V4(_)), _) => (true, false),
        (Peer::Group(IpAddr::V6(_)), _) => (false, true),
        (Peer::Set(i), Some(IpAddr::V4(_))) => (!sets[*i].v4.is_empty(), false),
        (Peer::Set(i), Some(IpAddr::V6(_))) => (false, !sets[*i].v6.is_empty()),
        (Peer::Set(i), None) => (!sets[*i].v4.is_empty(), !sets[*i].v6.is_empty()),
    }
}

/// The sets the rules use in one family, in order, without duplicates.
pub(crate) fn used_sets(ruleset: &HostRuleset) -> BTreeSet<usize> {
    ruleset
        .rules
        .iter()
        .filter_map(|r| match r.peer {
            Peer::Set(i) => Some(i),
            Peer::Group(_) => None,
        })
        .collect()
}

/// A header comment shared by both targets: what the file is, where it came
/// from, and every warning.
pub(crate) fn header(
    plan: &Plan,
    ruleset: &HostRuleset,
    options: &Options,
    target: &str,
    load: &str,
) -> Vec<String> {
    let c = &ruleset.component;
    let mut lines = vec![
        format!(
            "Generated by portolan {} for component `{}` ({}) of {}{}.",
            env!("CARGO_PKG_VERSION"),
            c.id,
            c.name,
            plan.system,
            plan.deployment
                .as_ref()
                .map(|d| format!(", deployment {d}"))
                .unwrap_or_default()
        ),
        format!(
            "Load on every host of the component: {load}. Its own addresses: {}.",
            c.addresses_text()
        ),
    ];
    lines.push(match options.policy {
        crate::generate::Policy::Drop => {
            "Default policy: drop. Only the flows below, established/related traffic, loopback and the ICMP that IP needs pass.".to_owned()
        }
        crate::generate::Policy::Accept => {
            "Default policy: accept (audit mode). Nothing is blocked; packets the spec does not allow are logged with the prefix `portolan-audit`.".to_owned()
        }
    });
    lines.push(
        "Not in the spec, so not allowed here: DNS, NTP, DHCP, management access (SSH). Add them to the spec if the host needs them."
            .to_owned(),
    );
    if ruleset.warnings.is_empty() {
        lines.push(format!("{target} warnings: none."));
    } else {
        lines.push(format!(
            "{target} warnings ({}): rules not written rather than widened.",
            ruleset.warnings.len()
        ));
        for w in &ruleset.warnings {
            lines.push(format!("  {w}"));
        }
    }
    lines
}

/// `192.0.2.1`, `192.0.2.0/24`.
pub(crate) fn net(net: &IpNet) -> String {
    net_text(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_spec::deployment::load_deployment;
    use portolan_spec::{load_spec, SourceFile};

    fn plan_of(spec: &str, deployment: &str) -> Plan {
        let spec = load_spec(SourceFile::new("portolan.yaml", spec))
            .expect("valid spec")
            .value;
        let deployment = load_deployment(SourceFile::new("deployment.yaml", deployment), &spec)
            .expect("valid deployment")
            .value;
        portolan_spec::plan::plan(&spec, &deployment)
    }

    const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: cache, kind: dependency}
flows:
  - {from: web, to: db, protocol: tcp, port: 5432}
  - {from: web, to: cache, protocol: tcp, port: 6379}
  - {from: db, to: db, protocol: udp, port: 7000, source_port: 7000}
";

    #[test]
    fn a_peer_without_addresses_is_a_warning_and_a_disabled_rule() {
        let plan = plan_of(
            SPEC,
            "deployment: 1
components:
  web: {addresses: [192.0.2.10]}
  db: {addresses: [192.0.2.20/31, 192.0.2.21]}
  cache: {kubernetes: {namespace: demo, pod_selector: {app: cache}}}
",
        );
        let web = plan.component("web").expect("web");
        let ruleset = build(&plan, web, &Options::default(), "nftables");
        assert_eq!(ruleset.warnings.len(), 1);
        assert_eq!(ruleset.warnings[0].kind, WarningKind::UnplacedPeer);
        assert_eq!(ruleset.warnings[0].flow, "web->cache/tcp/6379");
        assert_eq!(ruleset.disabled.len(), 1);
        assert!(ruleset.disabled[0].peer.contains("k8s demo/{app=cache}"));
        // Only the db rule is active; its set holds the block, not the address inside it.
        assert_eq!(ruleset.rules.len(), 1);
        let Peer::Set(i) = ruleset.rules[0].peer else {
            panic!("set peer expected");
        };
        assert_eq!(
            ruleset.sets[i].v4,
            ["192.0.2.20/31".parse::<IpNet>().expect("net")]
        );
        // A component placed on Kubernetes only has no host to load rules on.
        let options = Options {
            component: Some("cache".into()),
            ..Options::default()
        };
        assert!(matches!(
            hosts(&plan, &options, "nftables"),
            Err(GenerateError::CannotServe { .. })
        ));
    }

    #[test]
    fn a_self_flow_with_a_source_port_is_an_input_and_an_output_rule() {
        let plan = plan_of(
            SPEC,
            "deployment: 1
components:
  web: {addresses: [192.0.2.10]}
  db: {addresses: [192.0.2.20, \"2001:db8::20\"]}
  cache: {addresses: [192.0.2.30]}
",
        );
        let db = plan.component("db").expect("db");
        let ruleset = build(&plan, db, &Options::default(), "nftables");
        let directions: Vec<Direction> = ruleset
            .rules
            .iter()
            .filter(|r| r.flow == "db->db/udp/7000:7000")
            .map(|r| r.direction)
            .collect();
        assert_eq!(directions, [Direction::Input, Direction::Output]);
        let rule = &ruleset.rules[1];
        assert_eq!(rule.source_ports, [PortRange::single(7000)]);
        assert_eq!(families(rule, &ruleset.sets), (true, true));
        assert!(ruleset.warnings.is_empty());
        assert!(!ruleset.igmp);
    }

    #[test]
    fn minimal_drops_contained_nets_only() {
        let n = |s: &str| s.parse::<IpNet>().expect("net");
        assert_eq!(
            minimal(vec![
                n("192.0.2.5/32"),
                n("192.0.2.0/24"),
                n("198.51.100.1/32"),
                n("192.0.2.0/24")
            ]),
            [n("192.0.2.0/24"), n("198.51.100.1/32")]
        );
        assert_eq!(set_name("data-storage"), "data_storage");
    }
}
