//! The model both host-firewall targets (nftables, iptables) render: per
//! host of the plan (the components at one address set), the peer address
//! sets and the input and output rules of every component it runs, each
//! rule carrying its flow id, and the rules that cannot be written (host
//! names, patterns, peers without addresses) kept as disabled rules with
//! their warning. Flows between two components of one machine need no
//! rule (loopback is accepted) and are only listed.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use portolan_spec::diag::{did_you_mean, Code, Diagnostic};
use portolan_spec::plan::{Endpoint, EndpointKind, Plan, PlannedFlow, PlannedHost};
use portolan_spec::{PortRange, Protocol};

use crate::generate::{one_line, GenerateError, GenerateWarning, Options, WarningKind};

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
    /// The ids of the flows it serves, written as the rule's comment: one,
    /// or several when sharing a host makes the flows of different
    /// components match the same traffic.
    pub flows: Vec<String>,
    /// The (source, destination) component or endpoint ids of those flows.
    pub pairs: Vec<(String, String)>,
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
    /// Whether it serves site flows (the deployment's `site:`), written
    /// apart from the spec's: a rule never mixes the two.
    pub site: bool,
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
    /// Whether it is a site flow's.
    pub site: bool,
}

/// Everything one host's ruleset holds.
#[derive(Debug, Clone)]
pub(crate) struct HostRuleset {
    /// The host.
    pub host: PlannedHost,
    /// The components it runs, in spec order.
    pub components: Vec<Endpoint>,
    /// Flows between two of its components that stay on the machine, in flow order.
    pub local: Vec<String>,
    /// Peer sets, in first-use order.
    pub sets: Vec<PeerSet>,
    /// Rules, in flow order (the spec's, then the site's), input and output mixed.
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

/// The hosts a host target generates files for (components with
/// addresses that are not the outside world, grouped by host), honouring
/// `--component`, which takes a component id (its host) or a host name.
pub(crate) fn hosts<'p>(
    plan: &'p Plan,
    options: &Options,
    target: &'static str,
) -> Result<Vec<&'p PlannedHost>, GenerateError> {
    let cannot = |d: Diagnostic| GenerateError::CannotServe {
        target,
        diagnostics: vec![d],
    };
    if let Some(id) = &options.component {
        let Some(component) = plan.component(id) else {
            if let Some(host) = plan.host(id) {
                return Ok(vec![host]);
            }
            let mut d = Diagnostic::new(
                Code::DeploymentUnsupportedByTarget,
                format!("the spec has no component `{id}`"),
            );
            let candidates = plan
                .components
                .iter()
                .map(|c| c.id.as_str())
                .chain(plan.hosts.iter().map(|h| h.name.as_str()));
            d = d.with_help(match did_you_mean(id, candidates) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!(
                    "components: {}",
                    plan.components
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            return Err(cannot(d));
        };
        let Some(host) = plan.host_of(id) else {
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
        };
        return Ok(vec![host]);
    }
    if plan.hosts.is_empty() {
        return Err(cannot(
            Diagnostic::new(
                Code::DeploymentUnsupportedByTarget,
                format!("the {target} target needs host addresses, and no component has any"),
            )
            .with_label(plan.components_span, "no component here has `addresses:`")
            .with_help("give the components `addresses: [...]`, or use the kubernetes, cilium or aws target for selector or security-group placements"),
        ));
    }
    Ok(plan.hosts.iter().collect())
}

/// The flows whose input rule on the host of `options.component` admits a
/// NEW connection from `peer` (source port `peer_port`) to `port` over
/// `protocol`, in standalone mode: empty when the ruleset would drop it.
/// Chain and audit modes never drop anything themselves: every flow id is
/// not needed there, and callers check the mode first.
pub fn admitting_flows(
    plan: &Plan,
    options: &Options,
    target: &'static str,
    peer: IpAddr,
    peer_port: u16,
    protocol: Protocol,
    port: u16,
) -> Result<Vec<String>, GenerateError> {
    let mut out = Vec::new();
    for host in hosts(plan, options, target)? {
        let ruleset = build(plan, host, options, target);
        for rule in ruleset.rules(Direction::Input) {
            let Peer::Set(i) = rule.peer else { continue };
            let set = &ruleset.sets[i];
            let contains = set.v4.iter().chain(&set.v6).any(|n| n.contains(&peer));
            let protocol_ok = rule.protocol == protocol || rule.protocol == Protocol::Any;
            let port_ok = rule.ports.is_empty() || rule.ports.iter().any(|r| r.contains(port));
            let sport_ok = rule.source_ports.is_empty()
                || rule.source_ports.iter().any(|r| r.contains(peer_port));
            if contains && protocol_ok && port_ok && sport_ok && rule.group.is_none() {
                out.extend(rule.flows.iter().cloned());
            }
        }
    }
    Ok(out)
}

/// Builds the ruleset of one host: the rules of every component it runs,
/// without duplicates.
pub(crate) fn build(
    plan: &Plan,
    host: &PlannedHost,
    options: &Options,
    target: &'static str,
) -> HostRuleset {
    let mut builder = Builder {
        plan,
        options,
        target,
        member: String::new(),
        out: HostRuleset {
            host: host.clone(),
            components: plan
                .components
                .iter()
                .filter(|c| host.runs(&c.id))
                .cloned()
                .collect(),
            local: Vec::new(),
            sets: Vec::new(),
            rules: Vec::new(),
            disabled: Vec::new(),
            igmp: false,
            warnings: Vec::new(),
        },
    };
    for flow in plan.all_flows() {
        let receives = flow.to.is_component() && host.runs(&flow.to.id);
        let sends = host.runs(&flow.from.id);
        if flow.local && sends {
            // Both ends are on this machine: loopback, accepted by every chain.
            builder.out.local.push(flow.id.clone());
            continue;
        }
        if receives {
            builder.member.clone_from(&flow.to.id);
            builder.add(flow, Direction::Input, &flow.from);
        }
        if sends {
            builder.member.clone_from(&flow.from.id);
            match flow.multicast {
                Some(group) => builder.push_rule(flow, Direction::Output, Peer::Group(group)),
                None => builder.add(flow, Direction::Output, &flow.to),
            }
        }
        if let (Some(IpAddr::V4(_)), true) = (flow.multicast, receives || sends) {
            builder.out.igmp = true;
        }
    }
    builder.out
}

struct Builder<'o> {
    plan: &'o Plan,
    options: &'o Options,
    target: &'static str,
    /// The component of this host whose rule is being added.
    member: String,
    out: HostRuleset,
}

impl Builder<'_> {
    fn warn(&mut self, kind: WarningKind, flow: &PlannedFlow, message: String) {
        let warning = GenerateWarning {
            target: self.target,
            kind,
            flow: flow.id.clone(),
            component: self.member.clone(),
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
            site: flow.site,
        });
    }

    /// Adds a rule, or the flow to an existing rule matching the same
    /// traffic between other components (two components of the host
    /// reached on the same port from the same peer, or one peer host
    /// running two components): one rule, every flow id in its comment.
    /// Flows between the same two ends keep a rule each, as the spec
    /// writes them.
    fn push_rule(&mut self, flow: &PlannedFlow, direction: Direction, peer: Peer) {
        let group = match (&peer, direction) {
            (Peer::Set(_), Direction::Input) => flow.multicast,
            _ => None,
        };
        let pair = (flow.from.id.clone(), flow.to.id.clone());
        let rule = Rule {
            flows: vec![flow.id.clone()],
            pairs: vec![pair.clone()],
            direction,
            peer,
            group,
            protocol: flow.protocol,
            source_ports: flow.source_ports.clone(),
            ports: flow.ports.clone(),
            site: flow.site,
        };
        if self.out.rules.iter().any(|r| {
            r.flows.contains(&flow.id) && r.direction == rule.direction && r.peer == rule.peer
        }) {
            return;
        }
        let same = |r: &&mut Rule| {
            !r.pairs.contains(&pair)
                && r.direction == rule.direction
                && r.peer == rule.peer
                && r.group == rule.group
                && r.protocol == rule.protocol
                && r.source_ports == rule.source_ports
                && r.ports == rule.ports
                && r.site == rule.site
        };
        match self.out.rules.iter_mut().find(same) {
            Some(existing) => {
                existing.flows.push(flow.id.clone());
                existing.pairs.push(pair);
            }
            None => self.out.rules.push(rule),
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
        // A peer sharing its host with other components is that host: one
        // set serves the flows to and from all of them.
        let shared = self
            .plan
            .host_of(&peer.id)
            .filter(|h| peer.is_component() && h.components.len() > 1);
        let (mut name, mut comment) = match shared {
            Some(h) => (
                set_name(&h.name),
                format!("host {} ({})", h.name, member_names(self.plan, h)),
            ),
            None => (set_name(&peer.id), format!("{} ({})", peer.name, peer.id)),
        };
        if flow.via_proxy.is_some() {
            name.push_str("_proxy");
        }
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
            comment: one_line(&comment),
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

/// A rule's comment: its flow ids without double quotes, at most `max`
/// bytes. When several do not fit, the comment names those that do and how
/// many more there are, and the full list is returned for a comment line
/// above the rule. One id alone is cut to fit (`single`, the target's rule).
pub(crate) fn rule_comment(
    flows: &[String],
    max: usize,
    single: fn(&str) -> String,
) -> (String, Option<String>) {
    let clean: Vec<String> = flows
        .iter()
        .map(|f| f.chars().filter(|c| *c != '"').collect())
        .collect();
    if let [one] = clean.as_slice() {
        return (single(one), None);
    }
    let all = clean.join(", ");
    if all.len() <= max {
        return (all, None);
    }
    let mut text = String::new();
    for (i, id) in clean.iter().enumerate() {
        let candidate = if text.is_empty() {
            id.clone()
        } else {
            format!("{text}, {id}")
        };
        let rest = clean.len() - i - 1;
        let suffix = format!(", +{rest} more");
        if candidate.len() + suffix.len() > max {
            let left = clean.len() - i;
            text = if text.is_empty() {
                format!("+{left} more")
            } else {
                format!("{text}, +{left} more")
            };
            break;
        }
        text = candidate;
    }
    (text, Some(all))
}

/// `Web Frontend, Web Stream`: the display names of a host's components.
pub(crate) fn member_names(plan: &Plan, host: &PlannedHost) -> String {
    host.components
        .iter()
        .map(|id| plan.component(id).map_or(id.as_str(), |c| c.name.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
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
    let host = &ruleset.host;
    let deployment = plan
        .deployment
        .as_ref()
        .map(|d| format!(", deployment {d}"))
        .unwrap_or_default();
    let version = env!("CARGO_PKG_VERSION");
    let mut lines = match ruleset.components.as_slice() {
        [c] if c.id == host.name => vec![
            format!(
                "Generated by portolan {version} for component `{}` ({}) of {}{deployment}.",
                c.id, c.name, plan.system,
            ),
            format!(
                "Load on every host of the component: {load}. Its own addresses: {}.",
                c.addresses_text()
            ),
        ],
        components => vec![
            format!(
                "Generated by portolan {version} for host `{}` of {}{deployment}, which runs {}.",
                host.name,
                plan.system,
                components
                    .iter()
                    .map(|c| format!("`{}` ({})", c.id, c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "Load on {}: {load}. Its own addresses: {}.",
                if host.one_machine {
                    "the host"
                } else {
                    "every machine of the host"
                },
                host.addresses_text()
            ),
        ],
    };
    lines.push(match (options.mode, options.policy) {
        (crate::generate::Mode::Audit, _) => {
            "Mode: audit. Nothing is blocked: each flow's rule counts its packets, and what the spec does not allow (what standalone mode would drop) is counted and logged, rate-limited, with the prefix `portolan-audit` and `not in spec`.".to_owned()
        }
        (crate::generate::Mode::Chain, _) => {
            "Mode: chain. No base chain and no policy: only the accepts of the flows below, in chains the host's own firewall jumps to; what they do not accept returns to it, and it decides (docs/rollout.md).".to_owned()
        }
        (_, crate::generate::Policy::Drop) => {
            "Default policy: drop. Only the flows below, established/related traffic, loopback and the ICMP that IP needs pass.".to_owned()
        }
        (_, crate::generate::Policy::Accept) => {
            "Default policy: accept (audit mode). Nothing is blocked; packets the spec does not allow are logged with the prefix `portolan-audit`.".to_owned()
        }
    });
    let site = ruleset.rules.iter().filter(|r| r.site).count()
        + ruleset.disabled.iter().filter(|r| r.site).count();
    if site == 0 && options.mode == crate::generate::Mode::Chain {
        lines.push(
            "DNS, NTP, DHCP, management access (SSH): not in the spec; the host's own firewall decides about them (or add them as site flows in the deployment)."
                .to_owned(),
        );
    } else if site == 0 {
        lines.push(
            "Not in the spec, so not allowed here: DNS, NTP, DHCP, management access (SSH). Add them to the spec if the host needs them."
                .to_owned(),
        );
    } else {
        lines.push(format!(
            "Site flows ({site} rule(s), ids `site:…`): the deployment's `site:` section, the operator's own (SSH, DNS, NTP, monitoring), not the vendor's; listed after the spec's flows."
        ));
    }
    if !ruleset.local.is_empty() {
        lines.push(format!(
            "Flows between components of this host ({}): they stay on the machine (loopback, accepted below) and need no rule.",
            ruleset.local.len()
        ));
        for flow in &ruleset.local {
            lines.push(format!("  local: {flow}"));
        }
    }
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
    lines.iter().map(|line| one_line(line)).collect()
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
        let web = plan.host_of("web").expect("web");
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
        let db = plan.host_of("db").expect("db");
        let ruleset = build(&plan, db, &Options::default(), "nftables");
        let directions: Vec<Direction> = ruleset
            .rules
            .iter()
            .filter(|r| r.flows == ["db->db/udp/7000:7000"])
            .map(|r| r.direction)
            .collect();
        assert_eq!(directions, [Direction::Input, Direction::Output]);
        let rule = &ruleset.rules[1];
        assert_eq!(rule.source_ports, [PortRange::single(7000)]);
        assert_eq!(families(rule, &ruleset.sets), (true, true));
        assert!(ruleset.warnings.is_empty());
        assert!(!ruleset.igmp);
    }

    const SHARED: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web, name: Web}
  - {id: api, name: API}
  - {id: db, kind: dependency}
  - {id: users, kind: external}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: api, protocol: tcp, port: 8080}
  - {from: web, to: db, protocol: tcp, port: 5432}
  - {from: api, to: db, protocol: tcp, port: 5432}
  - {from: db, to: api, protocol: tcp, port: 9000}
  - {from: db, to: web, protocol: tcp, port: 9000}
";

    #[test]
    fn one_host_gets_the_rules_of_all_its_components_once() {
        let plan = plan_of(
            SHARED,
            "deployment: 1
components:
  web: {addresses: [192.0.2.10]}
  api: {addresses: [192.0.2.10]}
  db: {addresses: [192.0.2.20]}
",
        );
        let options = Options::default();
        let all = hosts(&plan, &options, "nftables").expect("hosts");
        let names: Vec<&str> = all.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web+api", "db"]);
        let app = build(&plan, all[0], &options, "nftables");
        // web->api stays on the machine: listed, no rule in either direction.
        assert_eq!(app.local, ["web->api/tcp/8080"]);
        // Flows of both components that match the same traffic are one
        // rule naming both, at the place of the first.
        let flows: Vec<(String, Direction)> = app
            .rules
            .iter()
            .map(|r| (r.flows.join(" "), r.direction))
            .collect();
        let expected = [
            ("users->web/tcp/443", Direction::Input),
            ("web->db/tcp/5432 api->db/tcp/5432", Direction::Output),
            ("db->api/tcp/9000 db->web/tcp/9000", Direction::Input),
        ];
        assert_eq!(flows, expected.map(|(f, d)| (f.to_owned(), d)),);
        // db's side: one set for the shared host, used by the flows to both.
        let db = build(&plan, all[1], &options, "nftables");
        assert_eq!(db.sets.len(), 1, "{:?}", db.sets);
        assert_eq!(db.sets[0].name, "web_api");
        assert_eq!(db.sets[0].comment, "host web+api (Web, API)");
        assert_eq!(db.rules.len(), 2);
        assert!(db.rules.iter().all(|r| r.flows.len() == 2));
        assert!(db.local.is_empty());

        // --component picks the host of the component, or a host by name.
        for pick in ["api", "web", "web+api"] {
            let options = Options {
                component: Some(pick.into()),
                ..Options::default()
            };
            let picked = hosts(&plan, &options, "nftables").expect("host");
            assert_eq!(picked.len(), 1);
            assert_eq!(picked[0].name, "web+api", "{pick}");
        }
        let options = Options {
            component: Some("web+ap".into()),
            ..Options::default()
        };
        match hosts(&plan, &options, "nftables") {
            Err(GenerateError::CannotServe { diagnostics, .. }) => assert_eq!(
                diagnostics[0].help.as_deref(),
                Some("did you mean `web+api`?")
            ),
            other => panic!("expected CannotServe, got {other:?}"),
        }
    }

    #[test]
    fn a_group_of_machines_keeps_the_rules_between_its_components() {
        let plan = plan_of(
            SHARED,
            "deployment: 1
components:
  web: {addresses: [192.0.2.10, 192.0.2.11], host: app}
  api: {addresses: [192.0.2.11, 192.0.2.10]}
  db: {addresses: [192.0.2.20]}
",
        );
        let app = plan.host("app").expect("app");
        let ruleset = build(&plan, app, &Options::default(), "nftables");
        assert!(ruleset.local.is_empty());
        let between: Vec<Direction> = ruleset
            .rules
            .iter()
            .filter(|r| r.flows == ["web->api/tcp/8080"])
            .map(|r| r.direction)
            .collect();
        assert_eq!(between, [Direction::Input, Direction::Output]);
        let Peer::Set(i) = ruleset.rules[1].peer else {
            panic!("set peer expected");
        };
        assert_eq!(ruleset.sets[i].name, "app");
    }

    #[test]
    fn merged_comments_name_every_flow_or_say_how_many_more() {
        let ids =
            |n: usize| -> Vec<String> { (0..n).map(|i| format!("app->db-{i}/tcp/5432")).collect() };
        let cut = |s: &str| s.chars().take(10).collect::<String>();
        assert_eq!(
            rule_comment(&ids(1), 10, cut),
            ("app->db-0/".to_owned(), None)
        );
        let (text, full) = rule_comment(&ids(2), 128, cut);
        assert_eq!(text, "app->db-0/tcp/5432, app->db-1/tcp/5432");
        assert_eq!(full, None);
        let (text, full) = rule_comment(&ids(10), 128, cut);
        assert!(text.len() <= 128, "{text}");
        assert!(text.ends_with(", app->db-5/tcp/5432, +4 more"), "{text}");
        assert!(text.starts_with("app->db-0/tcp/5432, app->db-1/tcp/5432"));
        assert_eq!(full.expect("full list").matches("/tcp/5432").count(), 10);
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
