//! The flow rules of each host as the host targets write them, one rule a
//! value: what a change request adds to or removes from a running firewall
//! (`portolan diff`), without reading a generated file back. The text of a
//! rule is the very text `generate` writes for it (the same rendering
//! functions), so a rule to remove is found in the loaded ruleset as it is.

use portolan_spec::plan::Plan;

use crate::generate::{GenerateError, Options, TargetKind};
use crate::host;

/// One named address set (nftables) a host's rules use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamedSet {
    /// The table holding it: `inet portolan`, or `inet filter` in chain mode.
    pub table: String,
    /// Its name, as the rules reference it (`@name`).
    pub name: String,
    /// `ipv4_addr` or `ipv6_addr`.
    pub kind: &'static str,
    /// Its elements (addresses and CIDR blocks), in the order written.
    pub elements: Vec<String>,
}

/// One rule of a host's flow rules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleText {
    /// The program that loads it: `nft`, `iptables` or `ip6tables`.
    pub tool: &'static str,
    /// The table: `inet portolan` / `inet filter` (nftables), `filter` (iptables).
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule as written in the generated file, without the chain
    /// (`ip saddr @server_v4 tcp dport 5432 accept comment "…"`, or
    /// `-s 192.0.2.10/32 -p tcp -m tcp --dport 5432 … -j ACCEPT`).
    pub rule: String,
    /// The flows it serves (their ids).
    pub flows: Vec<String>,
}

/// The flow rules and sets of one host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostRules {
    /// The host's name (as in the file names `generate` writes).
    pub host: String,
    /// The sets its rules use (nftables only).
    pub sets: Vec<NamedSet>,
    /// Its flow rules, input then output, in the order written.
    pub rules: Vec<RuleText>,
}

/// The flow rules of every host of the plan (or of `options.component`'s
/// host) for the nftables or iptables target, in `options.mode`. Rules that
/// cannot be written (host names, patterns) are not among them, as they
/// are only comments in the generated files.
pub fn host_rules(
    plan: &Plan,
    options: &Options,
    target: TargetKind,
) -> Result<Vec<HostRules>, GenerateError> {
    let name = target.as_str();
    if !matches!(target, TargetKind::Nftables | TargetKind::Iptables) {
        return Err(GenerateError::Internal {
            target: name,
            message: "host rules exist for the nftables and iptables targets only".to_owned(),
        });
    }
    let mut out = Vec::new();
    for host in host::hosts(plan, options, name)? {
        let ruleset = host::build(plan, host, options, name);
        let (sets, rules) = match target {
            TargetKind::Nftables => crate::nftables::rule_texts(&ruleset, options),
            _ => (Vec::new(), crate::iptables::rule_texts(&ruleset, options)),
        };
        out.push(HostRules {
            host: host.name.clone(),
            sets,
            rules,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cloud::test_plan;
    use crate::Mode;

    #[test]
    fn every_rule_is_a_line_generate_writes() {
        let plan = test_plan(
            "deployment: 1\ncomponents:\n  web: {addresses: [10.0.0.1, \"2001:db8::1\"]}\n  db: {addresses: [10.0.0.2]}\n  cache: {addresses: [10.0.0.3]}\n",
        );
        for target in [TargetKind::Nftables, TargetKind::Iptables] {
            for mode in [Mode::Standalone, Mode::Chain, Mode::Audit] {
                let options = Options {
                    mode,
                    ..Options::default()
                };
                let files = target.target().generate(&plan, &options).unwrap().files;
                let hosts = host_rules(&plan, &options, target).unwrap();
                assert_eq!(hosts.len(), 3);
                let mut count = 0;
                for host in &hosts {
                    let text: String = files
                        .iter()
                        .filter(|(path, _)| {
                            path.to_string_lossy()
                                .starts_with(&format!("{}.", host.host))
                        })
                        .map(|(_, t)| t.as_str())
                        .collect();
                    let lines: Vec<&str> = text.lines().map(str::trim).collect();
                    for rule in &host.rules {
                        let written = match target {
                            TargetKind::Nftables => rule.rule.clone(),
                            _ => format!("-A {} {}", rule.chain, rule.rule),
                        };
                        assert!(
                            lines.contains(&written.as_str()),
                            "{target} {mode:?}: {written}"
                        );
                        count += 1;
                    }
                    for set in &host.sets {
                        assert!(
                            text.contains(&format!("set {} {{", set.name)),
                            "{}",
                            set.name
                        );
                    }
                }
                assert!(count >= 6, "{target} {mode:?}: {count}");
            }
        }
        assert!(host_rules(&plan, &Options::default(), TargetKind::Aws).is_err());
    }
}
