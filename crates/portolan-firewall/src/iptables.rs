//! The `iptables` target: per host of the plan an `iptables-restore` file
//! (`<host>.rules.v4`) and an `ip6tables-restore` file (`<host>.rules.v6`)
//! with the meaning of the nftables ruleset.
//!
//! Each file replaces the `filter` table (as `/etc/iptables/rules.v4` does):
//! INPUT and OUTPUT get the chosen policy, FORWARD stays ACCEPT (the nftables
//! ruleset has no forward chain either). Without ipset, every peer address
//! is expanded into its own rule; each rule carries the flow id as a
//! comment. Host names and patterns are left out exactly as in nftables.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use portolan_spec::plan::Plan;
use portolan_spec::{PortRange, Protocol};

use crate::generate::{GenerateError, Generated, Mode, Options, Policy, Target};
use crate::host::{self, Direction, HostRuleset, Peer, Rule};
use crate::rules::RuleText;

/// The iptables target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iptables;

/// `-m multiport` takes at most 15 ports, a range counting as two.
const MULTIPORT_MAX: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Target for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn generate(&self, plan: &Plan, options: &Options) -> Result<Generated, GenerateError> {
        let mut generated = Generated::default();
        for host in host::hosts(plan, options, self.name())? {
            let ruleset = host::build(plan, host, options, self.name());
            for (family, ext) in [(Family::V4, "v4"), (Family::V6, "v6")] {
                let text = render(plan, &ruleset, options, family);
                generated
                    .files
                    .push((PathBuf::from(format!("{}.rules.{ext}", host.name)), text));
            }
            generated.warnings.extend(ruleset.warnings);
        }
        Ok(generated)
    }
}

/// The user chains of chain and audit modes (input, output).
pub const CHAINS: [&str; 2] = ["PORTOLAN-INPUT", "PORTOLAN-OUTPUT"];

fn render(plan: &Plan, ruleset: &HostRuleset, options: &Options, family: Family) -> String {
    let (tool, file_ext) = match family {
        Family::V4 => ("iptables-restore", "v4"),
        Family::V6 => ("ip6tables-restore", "v6"),
    };
    let user_chains = options.mode != Mode::Standalone;
    let noflush = if user_chains { " --noflush" } else { "" };
    let load = format!("{tool}{noflush} < {}.rules.{file_ext}", ruleset.host.name);
    let mut out = String::new();
    for line in host::header(plan, ruleset, options, "iptables", &load) {
        let _ = writeln!(out, "# {line}");
    }
    if user_chains {
        let cmd = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        let [input, output] = CHAINS;
        let _ = write!(
            out,
            "# Only the user chains {input} and {output} are (re)filled; nothing else is touched.\n\
             # Jump to them once, from the host's own firewall (docs/rollout.md: ufw, firewalld, Docker), e.g.:\n\
             #   {cmd} -I INPUT -j {input}\n\
             #   {cmd} -I OUTPUT -j {output}\n*filter\n:{input} - [0:0]\n:{output} - [0:0]\n"
        );
        let audit = options.mode == Mode::Audit;
        for (direction, chain) in [(Direction::Input, input), (Direction::Output, output)] {
            if audit {
                // Only watches: what the spec allows returns to the host's
                // chains counted; the rest returns logged as "not in spec".
                let lo = match direction {
                    Direction::Input => "-i lo",
                    Direction::Output => "-o lo",
                };
                let _ = writeln!(
                    out,
                    "-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
                );
                let _ = writeln!(out, "-A {chain} {lo} -j RETURN");
                ip_needs(&mut out, ruleset, direction, family, chain, "RETURN");
            } else if ruleset.igmp && family == Family::V4 {
                out.push_str("# IGMP, so that the host can join its multicast groups.\n");
                let _ = writeln!(out, "-A {chain} -p igmp -j ACCEPT");
            }
            let verdict = if audit { "RETURN" } else { "ACCEPT" };
            flow_rules(&mut out, ruleset, direction, family, chain, verdict);
            if audit {
                let short = match direction {
                    Direction::Input => "in",
                    Direction::Output => "out",
                };
                let _ = writeln!(
                    out,
                    "-A {chain} -m limit --limit 10/sec --limit-burst 20 -j LOG --log-prefix \"portolan not in spec {short}: \""
                );
            }
        }
        out.push_str("COMMIT\n");
        return out;
    }
    out.push_str("# FORWARD is not managed (ACCEPT), as in the nftables ruleset; this file replaces the whole filter table.\n");
    let policy = match options.policy {
        Policy::Drop => "DROP",
        Policy::Accept => "ACCEPT",
    };
    out.push_str("*filter\n");
    let _ = writeln!(out, ":INPUT {policy} [0:0]");
    out.push_str(":FORWARD ACCEPT [0:0]\n");
    let _ = writeln!(out, ":OUTPUT {policy} [0:0]");
    for direction in [Direction::Input, Direction::Output] {
        chain(&mut out, ruleset, direction, family, options.policy);
    }
    out.push_str("COMMIT\n");
    out
}

fn chain(
    out: &mut String,
    ruleset: &HostRuleset,
    direction: Direction,
    family: Family,
    policy: Policy,
) {
    let (chain, lo) = match direction {
        Direction::Input => ("INPUT", "-i lo"),
        Direction::Output => ("OUTPUT", "-o lo"),
    };
    let _ = writeln!(
        out,
        "-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    );
    let _ = writeln!(out, "-A {chain} -m conntrack --ctstate INVALID -j DROP");
    let _ = writeln!(out, "-A {chain} {lo} -j ACCEPT");
    ip_needs(out, ruleset, direction, family, chain, "ACCEPT");
    flow_rules(out, ruleset, direction, family, chain, "ACCEPT");
    if policy == Policy::Accept {
        let prefix = match direction {
            Direction::Input => "portolan-audit input: ",
            Direction::Output => "portolan-audit output: ",
        };
        let _ = writeln!(
            out,
            "-A {chain} -m limit --limit 10/sec --limit-burst 20 -j LOG --log-prefix \"{prefix}\""
        );
    }
}

/// The ICMP (and IGMP) that IP needs.
fn ip_needs(
    out: &mut String,
    ruleset: &HostRuleset,
    direction: Direction,
    family: Family,
    chain: &str,
    verdict: &str,
) {
    match family {
        Family::V4 => {
            out.push_str("# ICMP that IPv4 needs: errors, and fragmentation-needed (a destination-unreachable code) for path MTU discovery. No echo.\n");
            for t in [
                "destination-unreachable",
                "time-exceeded",
                "parameter-problem",
            ] {
                let _ = writeln!(
                    out,
                    "-A {chain} -p icmp -m icmp --icmp-type {t} -j {verdict}"
                );
            }
            if ruleset.igmp {
                out.push_str("# IGMP, so that the host can join its multicast groups.\n");
                let _ = writeln!(out, "-A {chain} -p igmp -j {verdict}");
            }
        }
        Family::V6 => {
            out.push_str("# ICMPv6 that IPv6 needs (RFC 4890): errors, packet-too-big for path MTU discovery, neighbour discovery, multicast listener discovery. No echo.\n");
            for t in [
                "destination-unreachable",
                "packet-too-big",
                "time-exceeded",
                "parameter-problem",
            ] {
                let _ = writeln!(
                    out,
                    "-A {chain} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j {verdict}"
                );
            }
            let nd: &[&str] = match direction {
                Direction::Input => &[
                    "neighbour-solicitation",
                    "neighbour-advertisement",
                    "router-advertisement",
                ],
                Direction::Output => &[
                    "neighbour-solicitation",
                    "neighbour-advertisement",
                    "router-solicitation",
                ],
            };
            for t in nd {
                let _ = writeln!(
                    out,
                    "-A {chain} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -m hl --hl-eq 255 -j {verdict}"
                );
            }
            // Multicast listener discovery: query, report, done, MLDv2 report.
            for t in [130, 131, 132, 143] {
                let _ = writeln!(
                    out,
                    "-A {chain} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -m hl --hl-eq 1 -j {verdict}"
                );
            }
        }
    }
}

/// The rules of the flows of one direction: the spec's, then the site's,
/// each followed by its rules that cannot be written (commented out).
fn flow_rules(
    out: &mut String,
    ruleset: &HostRuleset,
    direction: Direction,
    family: Family,
    chain: &str,
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
        let disabled: Vec<_> = ruleset
            .disabled(direction)
            .filter(|r| r.site == site)
            .collect();
        if !rules.is_empty() || !disabled.is_empty() {
            let _ = writeln!(out, "{heading}");
        }
        for rule in rules {
            for line in rule_lines(chain, rule, ruleset, family, verdict) {
                let _ = writeln!(out, "{line}");
            }
        }
        for rule in disabled {
            let _ = writeln!(out, "# WARNING: flow {}: {}", rule.flow, rule.reason);
            let flag = match direction {
                Direction::Input => "-s",
                Direction::Output => "-d",
            };
            let mut parts = vec![format!("-A {chain} {flag} {}", rule.peer)];
            if let Some(m) = port_matches(rule.protocol, &rule.source_ports, &rule.ports, family)
                .into_iter()
                .next()
                .filter(|m| !m.is_empty())
            {
                parts.push(m);
            }
            parts.push(format!(
                "-m comment --comment \"{}\" -j ACCEPT",
                comment(&rule.flow)
            ));
            let _ = writeln!(out, "# {}", parts.join(" "));
        }
    }
}

/// The flow rules of one host, both families, one value each, as
/// [`crate::rules::host_rules`] hands them out: the same text [`render`]
/// writes (without `-A CHAIN`), in the same order.
pub(crate) fn rule_texts(ruleset: &HostRuleset, options: &Options) -> Vec<RuleText> {
    let chains = if options.mode == Mode::Standalone {
        ["INPUT", "OUTPUT"]
    } else {
        CHAINS
    };
    let verdict = if options.mode == Mode::Audit {
        "RETURN"
    } else {
        "ACCEPT"
    };
    let mut out = Vec::new();
    for (family, tool) in [(Family::V4, "iptables"), (Family::V6, "ip6tables")] {
        for (direction, chain) in [
            (Direction::Input, chains[0]),
            (Direction::Output, chains[1]),
        ] {
            for site in [false, true] {
                for rule in ruleset.rules(direction).filter(|r| r.site == site) {
                    let head = format!("-A {chain} ");
                    for line in rule_lines(chain, rule, ruleset, family, verdict) {
                        if let Some(rest) = line.strip_prefix(&head) {
                            out.push(RuleText {
                                tool,
                                table: "filter".to_owned(),
                                chain: chain.to_owned(),
                                rule: rest.to_owned(),
                                flows: rule.flows.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// One iptables rule per peer address (and per port chunk).
fn rule_lines(
    chain: &str,
    rule: &Rule,
    ruleset: &HostRuleset,
    family: Family,
    verdict: &str,
) -> Vec<String> {
    let in_family = |addr: &IpAddr| match family {
        Family::V4 => addr.is_ipv4(),
        Family::V6 => addr.is_ipv6(),
    };
    let (peer_flag, addresses): (&str, Vec<IpNet>) = match (&rule.peer, rule.direction) {
        (Peer::Group(group), _) => ("-d", vec![IpNet::from(*group)]),
        (Peer::Set(i), direction) => {
            let set = &ruleset.sets[*i];
            let nets = match family {
                Family::V4 => set.v4.clone(),
                Family::V6 => set.v6.clone(),
            };
            let flag = match direction {
                Direction::Input => "-s",
                Direction::Output => "-d",
            };
            (flag, nets)
        }
    };
    let group = match rule.group {
        Some(g) if !in_family(&g) => return Vec::new(),
        Some(g) => Some(g),
        None => None,
    };
    if let Peer::Group(g) = &rule.peer {
        if !in_family(g) {
            return Vec::new();
        }
    }
    let (comment, all_flows) = host::rule_comment(&rule.flows, COMMENT_MAX, comment);
    let mut lines: Vec<String> = all_flows
        .filter(|_| !addresses.is_empty())
        .map(|all| format!("# flows: {all}"))
        .into_iter()
        .collect();
    for net in &addresses {
        let mut head = format!("-A {chain} {peer_flag} {net}");
        if let Some(g) = group {
            let _ = write!(head, " -d {}", IpNet::from(g));
        }
        for ports in port_matches(rule.protocol, &rule.source_ports, &rule.ports, family) {
            let mut line = head.clone();
            if !ports.is_empty() {
                line.push(' ');
                line.push_str(&ports);
            }
            let _ = write!(line, " -m comment --comment \"{comment}\" -j {verdict}");
            lines.push(line);
        }
    }
    lines
}

/// The protocol and port matches, one string per rule needed (multiport
/// takes at most 15 ports, so long lists are split).
fn port_matches(
    protocol: Protocol,
    source_ports: &[PortRange],
    ports: &[PortRange],
    family: Family,
) -> Vec<String> {
    match protocol {
        Protocol::Any => vec![String::new()],
        Protocol::Icmp => vec![match family {
            Family::V4 => "-p icmp".to_owned(),
            Family::V6 => "-p ipv6-icmp".to_owned(),
        }],
        Protocol::Tcp | Protocol::Udp => {
            let p = protocol.as_str();
            let mut out = Vec::new();
            for s in chunks(source_ports) {
                for d in chunks(ports) {
                    let mut m = format!("-p {p}");
                    let single = s.len() <= 1 && d.len() <= 1;
                    if single {
                        if !s.is_empty() || !d.is_empty() {
                            let _ = write!(m, " -m {p}");
                        }
                        if let [r] = s.as_slice() {
                            let _ = write!(m, " --sport {}", range(*r));
                        }
                        if let [r] = d.as_slice() {
                            let _ = write!(m, " --dport {}", range(*r));
                        }
                    } else {
                        if !s.is_empty() {
                            let _ = write!(m, " -m multiport --sports {}", list(&s));
                        }
                        if !d.is_empty() {
                            let _ = write!(m, " -m multiport --dports {}", list(&d));
                        }
                    }
                    out.push(m);
                }
            }
            out
        }
    }
}

/// Splits a port list into multiport-sized chunks; an empty list is one empty chunk.
fn chunks(ports: &[PortRange]) -> Vec<Vec<PortRange>> {
    let mut out: Vec<Vec<PortRange>> = vec![Vec::new()];
    let mut weight = 0;
    for r in ports {
        let w = if r.is_single() { 1 } else { 2 };
        if weight + w > MULTIPORT_MAX {
            out.push(Vec::new());
            weight = 0;
        }
        weight += w;
        if let Some(last) = out.last_mut() {
            last.push(*r);
        }
    }
    out
}

fn range(r: PortRange) -> String {
    if r.is_single() {
        r.start.to_string()
    } else {
        format!("{}:{}", r.start, r.end)
    }
}

fn list(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(|r| range(*r))
        .collect::<Vec<_>>()
        .join(",")
}

/// The comment match takes at most 255 characters (256 with the final NUL).
const COMMENT_MAX: usize = 255;

/// A flow id as an iptables comment: no double quotes, at most 255 characters.
fn comment(flow: &str) -> String {
    flow.chars()
        .filter(|c| *c != '"')
        .take(COMMENT_MAX)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_port_lists_are_split_for_multiport() {
        let ports: Vec<PortRange> = (1..=20).map(PortRange::single).collect();
        let m = port_matches(Protocol::Tcp, &[], &ports, Family::V4);
        assert_eq!(m.len(), 2);
        assert!(
            m[0].ends_with("--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"),
            "{}",
            m[0]
        );
        assert!(m[1].ends_with("--dports 16,17,18,19,20"), "{}", m[1]);
        let single = port_matches(
            Protocol::Udp,
            &[PortRange::single(8112)],
            &[PortRange::single(8112)],
            Family::V4,
        );
        assert_eq!(single, ["-p udp -m udp --sport 8112 --dport 8112"]);
        assert_eq!(
            port_matches(Protocol::Tcp, &[], &[], Family::V6),
            ["-p tcp"]
        );
    }
}
