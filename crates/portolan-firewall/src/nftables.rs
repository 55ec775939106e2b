//! The `nftables` target: one complete ruleset per host of the plan
//! (`<host>.nft`; a host runs one component, or several whose addresses
//! are equal, and its ruleset holds the rules of all of them), loadable
//! atomically with `nft -f`.
//!
//! Each file replaces `table inet portolan` in one transaction (the
//! `table …{}` / `delete table …` idiom makes the delete safe when the table
//! does not exist yet) and leaves every other table alone. The table has an
//! input and an output chain with the chosen default policy, accepts
//! established/related traffic, loopback and the ICMP/ICMPv6 that IP needs
//! (errors, path MTU discovery, neighbour and multicast listener discovery;
//! not echo), holds one named set per peer and family, and one rule per flow
//! and direction with the flow id as its comment. Rules towards host names
//! and wildcard patterns cannot be written: they appear commented out with
//! their warning (or, with a resolver, host names are resolved at generation
//! time; patterns never are).

use std::fmt::Write as _;
use std::path::PathBuf;

use portolan_spec::plan::{net_text, Plan};
use portolan_spec::{PortRange, Protocol};

use crate::generate::{GenerateError, Generated, Mode, Options, Policy, Target};
use crate::host::{self, Direction, DisabledRule, HostRuleset, Peer, Rule};
use crate::rules::{NamedSet, RuleText};

/// The nftables target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nftables;

/// The table every ruleset replaces.
pub const TABLE: &str = "portolan";

/// nft limits comments to 128 bytes.
const COMMENT_MAX: usize = 128;

impl Target for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn generate(&self, plan: &Plan, options: &Options) -> Result<Generated, GenerateError> {
        let mut generated = Generated::default();
        for host in host::hosts(plan, options, self.name())? {
            let ruleset = host::build(plan, host, options, self.name());
            let text = render(plan, &ruleset, options);
            generated
                .files
                .push((PathBuf::from(format!("{}.nft", host.name)), text));
            generated.warnings.extend(ruleset.warnings);
        }
        Ok(generated)
    }
}

/// Renders one host's ruleset in the chosen mode.
fn render(plan: &Plan, ruleset: &HostRuleset, options: &Options) -> String {
    if options.mode == Mode::Chain {
        return render_chains(plan, ruleset, options);
    }
    let mut out = String::from("#!/usr/sbin/nft -f\n");
    let load = format!("nft -f {}.nft", ruleset.host.name);
    for line in host::header(plan, ruleset, options, "nftables", &load) {
        out.push_str(&format!("# {line}\n"));
    }
    out.push('\n');
    // Creating the table first makes the delete succeed on a host where it
    // does not exist yet; the three statements are one transaction.
    out.push_str(&format!(
        "table inet {TABLE} {{}}\ndelete table inet {TABLE}\n\ntable inet {TABLE} {{\n"
    ));
    sets(&mut out, ruleset, "");
    for direction in [Direction::Input, Direction::Output] {
        chain(&mut out, ruleset, direction, options);
    }
    out.push_str("}\n");
    out
}

/// The named sets the rules use, prefixed with `prefix`.
fn sets(out: &mut String, ruleset: &HostRuleset, prefix: &str) {
    for index in host::used_sets(ruleset) {
        let set = &ruleset.sets[index];
        for (family, nets, kind) in [("v4", &set.v4, "ipv4_addr"), ("v6", &set.v6, "ipv6_addr")] {
            if nets.is_empty() {
                continue;
            }
            let elements: Vec<String> = nets.iter().map(net_text).collect();
            let _ = write!(
                out,
                "\t# {}\n\tset {prefix}{}_{family} {{\n\t\ttype {kind}\n\t\tflags interval\n\t\telements = {{ {} }}\n\t}}\n\n",
                set.comment,
                set.name,
                elements.join(", ")
            );
        }
    }
}

/// The table chain mode writes into, and the names of its chains.
pub const CHAIN_TABLE: &str = "inet filter";
/// The regular chains of chain mode (input, output).
pub const CHAINS: [&str; 2] = ["portolan_input", "portolan_output"];

/// Chain mode: regular chains (and sets) in the operator's `inet filter`
/// table, flushed and refilled in one transaction; no base chain, no
/// policy, only the accepts of the flows. The operator jumps to them.
fn render_chains(plan: &Plan, ruleset: &HostRuleset, options: &Options) -> String {
    let mut out = String::from("#!/usr/sbin/nft -f\n");
    let load = format!("nft -f {}.nft", ruleset.host.name);
    for line in host::header(plan, ruleset, options, "nftables", &load) {
        out.push_str(&format!("# {line}\n"));
    }
    let [input, output] = CHAINS;
    let _ = write!(
        out,
        "# Jump to the chains once, from the host's own base chains (docs/rollout.md), e.g.:\n\
         #   nft insert rule {CHAIN_TABLE} input jump {input}\n\
         #   nft insert rule {CHAIN_TABLE} output jump {output}\n\n"
    );
    // Declare (harmless when they exist), then empty, then fill: one
    // transaction, so reloading never leaves stale addresses or rules.
    let mut declared = Vec::new();
    for index in host::used_sets(ruleset) {
        let set = &ruleset.sets[index];
        for (family, nets, kind) in [("v4", &set.v4, "ipv4_addr"), ("v6", &set.v6, "ipv6_addr")] {
            if !nets.is_empty() {
                declared.push((format!("portolan_{}_{family}", set.name), kind));
            }
        }
    }
    let _ = writeln!(out, "table {CHAIN_TABLE} {{");
    for (name, kind) in &declared {
        let _ = writeln!(out, "\tset {name} {{ type {kind}; flags interval; }}");
    }
    for chain in CHAINS {
        let _ = writeln!(out, "\tchain {chain} {{\n\t}}");
    }
    out.push_str("}\n");
    for chain in CHAINS {
        let _ = writeln!(out, "flush chain {CHAIN_TABLE} {chain}");
    }
    for (name, _) in &declared {
        let _ = writeln!(out, "flush set {CHAIN_TABLE} {name}");
    }
    let _ = writeln!(out, "\ntable {CHAIN_TABLE} {{");
    sets(&mut out, ruleset, "portolan_");
    for (direction, chain) in [(Direction::Input, input), (Direction::Output, output)] {
        let _ = writeln!(out, "\tchain {chain} {{");
        if ruleset.igmp {
            out.push_str("\t\t# IGMP, so that the host can join its multicast groups.\n");
            out.push_str("\t\tip protocol igmp accept\n");
        }
        flow_rules(&mut out, ruleset, direction, "portolan_", "accept");
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out
}

fn chain(out: &mut String, ruleset: &HostRuleset, direction: Direction, options: &Options) {
    let audit = options.mode == Mode::Audit;
    let policy = if audit {
        Policy::Accept
    } else {
        options.policy
    };
    let (name, hook) = match direction {
        Direction::Input => ("input", "input"),
        Direction::Output => ("output", "output"),
    };
    let lo = match direction {
        Direction::Input => "iif",
        Direction::Output => "oif",
    };
    let _ = writeln!(out, "\tchain {name} {{");
    // In audit mode the table only watches: it runs before the host's own
    // chains and accepts, which in nftables does not end their evaluation.
    let priority = if audit { "filter - 10" } else { "filter" };
    let _ = writeln!(
        out,
        "\t\ttype filter hook {hook} priority {priority}; policy {};",
        policy.as_str()
    );
    out.push_str("\t\tct state established,related accept\n");
    if audit {
        let _ = writeln!(
            out,
            "\t\tct state invalid limit rate 10/second burst 20 packets log prefix \"portolan-audit invalid {name}: \""
        );
        out.push_str("\t\tct state invalid counter accept comment \"would drop: invalid\"\n");
    } else {
        out.push_str("\t\tct state invalid drop\n");
    }
    let _ = writeln!(out, "\t\t{lo} \"lo\" accept");
    out.push_str("\t\t# ICMP that IPv4 needs: errors, and fragmentation-needed (a destination-unreachable code) for path MTU discovery. No echo.\n");
    out.push_str(
        "\t\ticmp type { destination-unreachable, time-exceeded, parameter-problem } accept\n",
    );
    out.push_str("\t\t# ICMPv6 that IPv6 needs (RFC 4890): errors, packet-too-big for path MTU discovery, neighbour discovery, multicast listener discovery. No echo.\n");
    out.push_str("\t\ticmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept\n");
    let nd = match direction {
        Direction::Input => "nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert",
        Direction::Output => "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit",
    };
    let _ = writeln!(out, "\t\ticmpv6 type {{ {nd} }} ip6 hoplimit 255 accept");
    out.push_str("\t\ticmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } ip6 hoplimit 1 accept\n");
    if ruleset.igmp {
        out.push_str("\t\t# IGMP, so that the host can join its multicast groups.\n");
        out.push_str("\t\tip protocol igmp accept\n");
    }
    let verdict = if audit { "counter accept" } else { "accept" };
    flow_rules(out, ruleset, direction, "", verdict);
    if audit {
        let _ = writeln!(
            out,
            "\t\tlimit rate 10/second burst 20 packets log prefix \"portolan-audit not in spec {name}: \""
        );
        out.push_str("\t\tcounter comment \"would drop: not in spec\"\n");
    } else if policy == Policy::Accept {
        let _ = writeln!(
            out,
            "\t\tlimit rate 10/second burst 20 packets log prefix \"portolan-audit {name}: \""
        );
    }
    out.push_str("\t}\n");
    if direction == Direction::Input {
        out.push('\n');
    }
}

/// The rules of the flows of one direction: the spec's, then the site's,
/// each followed by its rules that cannot be written (commented out).
fn flow_rules(
    out: &mut String,
    ruleset: &HostRuleset,
    direction: Direction,
    prefix: &str,
    verdict: &str,
) {
    for (site, heading) in [
        (false, "# Flows of the spec."),
        (
            true,
            "# Site flows (the deployment's `site:`, the operator's own, not the vendor's).",
        ),
    ] {
        let rules: Vec<&Rule> = ruleset
            .rules(direction)
            .filter(|r| r.site == site)
            .collect();
        let disabled: Vec<&DisabledRule> = ruleset
            .disabled(direction)
            .filter(|r| r.site == site)
            .collect();
        if !rules.is_empty() || !disabled.is_empty() {
            let _ = writeln!(out, "\t\t{heading}");
        }
        for rule in rules {
            for line in rule_lines(rule, ruleset, prefix, verdict) {
                let _ = writeln!(out, "\t\t{line}");
            }
        }
        for rule in disabled {
            let _ = writeln!(out, "\t\t# WARNING: flow {}: {}", rule.flow, rule.reason);
            let _ = writeln!(out, "\t\t# {}", disabled_line(rule));
        }
    }
}

/// The sets and flow rules of one host, one value each, as
/// [`crate::rules::host_rules`] hands them out: the same text
/// [`render`] writes, in the same order.
pub(crate) fn rule_texts(
    ruleset: &HostRuleset,
    options: &Options,
) -> (Vec<NamedSet>, Vec<RuleText>) {
    let standalone_table = format!("inet {TABLE}");
    let (table, prefix, chains) = if options.mode == Mode::Chain {
        (CHAIN_TABLE, "portolan_", CHAINS)
    } else {
        (standalone_table.as_str(), "", ["input", "output"])
    };
    let verdict = if options.mode == Mode::Audit {
        "counter accept"
    } else {
        "accept"
    };
    let mut sets = Vec::new();
    for index in host::used_sets(ruleset) {
        let set = &ruleset.sets[index];
        for (family, nets, kind) in [("v4", &set.v4, "ipv4_addr"), ("v6", &set.v6, "ipv6_addr")] {
            if !nets.is_empty() {
                sets.push(NamedSet {
                    table: table.to_owned(),
                    name: format!("{prefix}{}_{family}", set.name),
                    kind,
                    elements: nets.iter().map(net_text).collect(),
                });
            }
        }
    }
    let mut rules = Vec::new();
    for (direction, chain) in [
        (Direction::Input, chains[0]),
        (Direction::Output, chains[1]),
    ] {
        for site in [false, true] {
            for rule in ruleset.rules(direction).filter(|r| r.site == site) {
                for line in rule_lines(rule, ruleset, prefix, verdict) {
                    if !line.starts_with('#') {
                        rules.push(RuleText {
                            tool: "nft",
                            table: table.to_owned(),
                            chain: chain.to_owned(),
                            rule: line,
                            flows: rule.flows.clone(),
                        });
                    }
                }
            }
        }
    }
    (sets, rules)
}

/// The nft statements of one rule: one per address family it applies to.
fn rule_lines(rule: &Rule, ruleset: &HostRuleset, prefix: &str, verdict: &str) -> Vec<String> {
    let (v4, v6) = host::families(rule, &ruleset.sets);
    let addr_dir = match rule.direction {
        Direction::Input => "saddr",
        Direction::Output => "daddr",
    };
    let (comment, all_flows) = host::rule_comment(&rule.flows, COMMENT_MAX, comment);
    let mut lines: Vec<String> = all_flows
        .filter(|_| v4 || v6)
        .map(|all| format!("# flows: {all}"))
        .into_iter()
        .collect();
    for (enabled, family, ip) in [(v4, "v4", "ip"), (v6, "v6", "ip6")] {
        if !enabled {
            continue;
        }
        let mut parts = Vec::new();
        match &rule.peer {
            Peer::Set(i) => {
                parts.push(format!(
                    "{ip} {addr_dir} @{prefix}{}_{family}",
                    ruleset.sets[*i].name
                ));
                if let Some(group) = rule.group {
                    parts.push(format!("{ip} daddr {group}"));
                }
            }
            Peer::Group(group) => parts.push(format!("{ip} daddr {group}")),
        }
        parts.extend(protocol_match(
            rule.protocol,
            &rule.source_ports,
            &rule.ports,
            ip,
        ));
        parts.push(verdict.to_owned());
        parts.push(format!("comment \"{comment}\""));
        lines.push(parts.join(" "));
    }
    lines
}

fn protocol_match(
    protocol: Protocol,
    source_ports: &[PortRange],
    ports: &[PortRange],
    ip: &str,
) -> Vec<String> {
    let mut parts = Vec::new();
    match protocol {
        Protocol::Tcp | Protocol::Udp => {
            let p = protocol.as_str();
            if source_ports.is_empty() && ports.is_empty() {
                parts.push(format!("meta l4proto {p}"));
            }
            if !source_ports.is_empty() {
                parts.push(format!("{p} sport {}", port_set(source_ports)));
            }
            if !ports.is_empty() {
                parts.push(format!("{p} dport {}", port_set(ports)));
            }
        }
        Protocol::Icmp => parts.push(
            if ip == "ip" {
                "meta l4proto icmp"
            } else {
                "meta l4proto ipv6-icmp"
            }
            .to_owned(),
        ),
        Protocol::Any => {}
    }
    parts
}

fn port_set(ports: &[PortRange]) -> String {
    match ports {
        [single] => single.to_string(),
        many => format!(
            "{{ {} }}",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A pseudo-rule for a person: what would be written if names could be matched.
fn disabled_line(rule: &DisabledRule) -> String {
    let dir = match rule.direction {
        Direction::Input => "saddr",
        Direction::Output => "daddr",
    };
    let mut parts = vec![format!("{dir} {}", rule.peer)];
    parts.extend(protocol_match(
        rule.protocol,
        &rule.source_ports,
        &rule.ports,
        "ip",
    ));
    parts.push("accept".to_owned());
    parts.push(format!("comment \"{}\"", comment(&rule.flow)));
    parts.join(" ")
}

/// A flow id as an nft comment: no double quotes, at most 128 bytes.
fn comment(flow: &str) -> String {
    let mut text: String = flow.chars().filter(|c| *c != '"').collect();
    if text.len() > COMMENT_MAX {
        let mut end = COMMENT_MAX - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_bounded_and_unquoted() {
        assert_eq!(comment("a\"b"), "ab");
        let long = "x".repeat(300);
        assert_eq!(comment(&long).len(), COMMENT_MAX);
    }

    #[test]
    fn port_sets() {
        let r = |a, b| PortRange { start: a, end: b };
        assert_eq!(port_set(&[r(443, 443)]), "443");
        assert_eq!(port_set(&[r(80, 80), r(8000, 8010)]), "{ 80, 8000-8010 }");
    }
}
