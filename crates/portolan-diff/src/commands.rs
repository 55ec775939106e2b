//! Per host, the nftables or iptables commands that turn the rules
//! `generate` writes for the old plan into those it writes for the new:
//! rules compared as the text written ([`portolan_firewall::rules`]), sets
//! element by element.

use std::collections::BTreeSet;

use portolan_firewall::rules::{host_rules, HostRules, NamedSet, RuleText};
use portolan_firewall::{GenerateError, Options, TargetKind};
use portolan_spec::plan::Plan;
use serde::Serialize;

/// What a command does, in the order they are to be run: what the new
/// rules need first, then the rules, then what the old ones needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Create a named set (nftables).
    AddSet,
    /// Add addresses to a set (nftables).
    AddElements,
    /// Add a rule.
    AddRule,
    /// Remove a rule.
    DeleteRule,
    /// Remove addresses from a set (nftables).
    DeleteElements,
    /// Remove a set no rule uses any more (nftables).
    DeleteSet,
}

impl Action {
    /// The action in words: `add rule`, `delete set`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::AddSet => "add set",
            Action::AddElements => "add elements",
            Action::AddRule => "add rule",
            Action::DeleteRule => "delete rule",
            Action::DeleteElements => "delete elements",
            Action::DeleteSet => "delete set",
        }
    }

    /// Whether it adds (rather than removes).
    pub const fn adds(self) -> bool {
        matches!(self, Action::AddSet | Action::AddElements | Action::AddRule)
    }
}

/// One command of a host's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// What it does.
    pub action: Action,
    /// `nft`, `iptables` or `ip6tables`.
    pub tool: &'static str,
    /// The table.
    pub table: String,
    /// The chain (rules) or set (sets) it acts on.
    pub object: String,
    /// The rule text as `generate` writes it, or the set's elements.
    pub text: String,
    /// The flows it serves (their ids): the rule's, or those of every rule
    /// that uses the set.
    pub flows: Vec<String>,
    /// The shell lines to run: comments (`#`) say what to look up, where a
    /// value is only known on the host (an nft rule handle).
    pub shell: Vec<String>,
}

/// The commands of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostChange {
    /// The host's name.
    pub host: String,
    /// Only the new plan has the host: load its generated file whole.
    pub new_host: bool,
    /// Only the old plan has the host: its rules are to go.
    pub gone: bool,
    /// The commands, in the order to run them.
    pub commands: Vec<Command>,
}

/// Quotes `text` as one shell word (single quotes; `'` as `'\''`).
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// An iptables rule as `iptables-restore` reads it, for a shell: each
/// double-quoted argument (a comment holding a flow id such as
/// `a->db/tcp/$db-port`) single-quoted instead, so that the shell expands
/// nothing in it. The rest are flags, addresses and numbers.
fn shell_words(rule: &str) -> String {
    let mut out = String::new();
    let mut rest = rule;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('"').unwrap_or(after.len());
        out.push_str(&quoted(&after[..end]));
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

fn all_rules(
    plan: &Plan,
    options: &Options,
    target: TargetKind,
) -> Result<Vec<HostRules>, GenerateError> {
    match host_rules(plan, options, target) {
        Ok(hosts) => Ok(hosts),
        // No component has addresses: no host has rules.
        Err(GenerateError::CannotServe { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The hosts whose rules differ, with their commands: the new plan's hosts
/// in order, then those only the old plan has.
pub(crate) fn host_changes(
    old: &Plan,
    new: &Plan,
    target: TargetKind,
    options: &Options,
) -> Result<Vec<HostChange>, GenerateError> {
    let old_hosts = all_rules(old, options, target)?;
    let new_hosts = all_rules(new, options, target)?;
    let empty = |host: &str| HostRules {
        host: host.to_owned(),
        sets: Vec::new(),
        rules: Vec::new(),
    };
    let mut out = Vec::new();
    for n in &new_hosts {
        let o = old_hosts.iter().find(|o| o.host == n.host);
        let commands = host_commands(o.unwrap_or(&empty(&n.host)), n);
        if !commands.is_empty() {
            out.push(HostChange {
                host: n.host.clone(),
                new_host: o.is_none(),
                gone: false,
                commands,
            });
        }
    }
    for o in old_hosts
        .iter()
        .filter(|o| !new_hosts.iter().any(|n| n.host == o.host))
    {
        out.push(HostChange {
            host: o.host.clone(),
            new_host: false,
            gone: true,
            commands: host_commands(o, &empty(&o.host)),
        });
    }
    Ok(out)
}

/// The rules of `rules` that `other` does not have, counting repeats.
fn missing<'a>(rules: &'a [RuleText], other: &[RuleText]) -> Vec<&'a RuleText> {
    let key = |r: &RuleText| (r.tool, r.table.clone(), r.chain.clone(), r.rule.clone());
    let mut left: Vec<_> = other.iter().map(key).collect();
    rules
        .iter()
        .filter(|r| {
            let k = key(r);
            match left.iter().position(|l| *l == k) {
                Some(i) => {
                    left.remove(i);
                    false
                }
                None => true,
            }
        })
        .collect()
}

/// The ids of the flows of every rule (of either version) using a set.
fn set_flows(set: &NamedSet, old: &HostRules, new: &HostRules) -> Vec<String> {
    let reference = format!("@{} ", set.name);
    let mut flows: Vec<String> = Vec::new();
    for rule in old.rules.iter().chain(&new.rules) {
        if rule.rule.contains(&reference) {
            for f in &rule.flows {
                if !flows.contains(f) {
                    flows.push(f.clone());
                }
            }
        }
    }
    flows
}

fn set_command(action: Action, set: &NamedSet, elements: &[String], flows: Vec<String>) -> Command {
    let (text, statement) = match action {
        Action::AddSet => (
            String::new(),
            format!(
                "add set {} {} {{ type {}; flags interval; }}",
                set.table, set.name, set.kind
            ),
        ),
        Action::DeleteSet => (
            String::new(),
            format!("delete set {} {}", set.table, set.name),
        ),
        _ => {
            let verb = if action.adds() { "add" } else { "delete" };
            let list = elements.join(", ");
            let statement = format!("{verb} element {} {} {{ {list} }}", set.table, set.name);
            (list, statement)
        }
    };
    Command {
        action,
        tool: "nft",
        table: set.table.clone(),
        object: set.name.clone(),
        text,
        flows,
        shell: vec![format!("nft {}", quoted(&statement))],
    }
}

fn rule_command(action: Action, rule: &RuleText) -> Command {
    let shell = match (rule.tool, action) {
        ("nft", Action::AddRule) => vec![format!(
            "nft {}",
            quoted(&format!(
                "add rule {} {} {}",
                rule.table, rule.chain, rule.rule
            ))
        )],
        ("nft", _) => {
            // nft deletes by handle, which only the host knows: look the
            // rule up in the listing (`RULE # handle N`, as written, its
            // counters' values left out), and fail rather than guess when it
            // is not there exactly once.
            let lookup = format!(
                "nft -a list chain {} {} | awk -v rule={} '{{ sub(/^[[:space:]]+/, \"\"); gsub(/counter packets [0-9]+ bytes [0-9]+/, \"counter\") }} index($0, rule \" # handle \") == 1 {{ print $NF }}'",
                rule.table,
                rule.chain,
                quoted(&rule.rule)
            );
            vec![
                format!("# remove: {}", rule.rule),
                format!(
                    "nft delete rule {} {} handle \"$({lookup})\"",
                    rule.table, rule.chain
                ),
            ]
        }
        (tool, action) => {
            let flag = if action == Action::AddRule {
                "-A"
            } else {
                "-D"
            };
            vec![format!(
                "{tool} {flag} {} {}",
                rule.chain,
                shell_words(&rule.rule)
            )]
        }
    };
    Command {
        action,
        tool: rule.tool,
        table: rule.table.clone(),
        object: rule.chain.clone(),
        text: rule.rule.clone(),
        flows: rule.flows.clone(),
        shell,
    }
}

fn host_commands(old: &HostRules, new: &HostRules) -> Vec<Command> {
    let mut out = Vec::new();
    for set in &new.sets {
        let flows = set_flows(set, old, new);
        let before = old
            .sets
            .iter()
            .find(|s| s.name == set.name && s.table == set.table);
        let had: BTreeSet<&String> = before
            .map(|s| s.elements.iter().collect())
            .unwrap_or_default();
        let added: Vec<String> = set
            .elements
            .iter()
            .filter(|e| !had.contains(e))
            .cloned()
            .collect();
        if before.is_none() {
            out.push(set_command(Action::AddSet, set, &[], flows.clone()));
        }
        if !added.is_empty() {
            out.push(set_command(Action::AddElements, set, &added, flows.clone()));
        }
        if let Some(before) = before {
            let now: BTreeSet<&String> = set.elements.iter().collect();
            let gone: Vec<String> = before
                .elements
                .iter()
                .filter(|e| !now.contains(e))
                .cloned()
                .collect();
            if !gone.is_empty() {
                out.push(set_command(Action::DeleteElements, set, &gone, flows));
            }
        }
    }
    for rule in missing(&new.rules, &old.rules) {
        out.push(rule_command(Action::AddRule, rule));
    }
    for rule in missing(&old.rules, &new.rules) {
        out.push(rule_command(Action::DeleteRule, rule));
    }
    for set in &old.sets {
        if !new
            .sets
            .iter()
            .any(|s| s.name == set.name && s.table == set.table)
        {
            let flows = set_flows(set, old, new);
            out.push(set_command(Action::DeleteSet, set, &[], flows));
        }
    }
    // Stable: adds first, then deletes, each in the order found.
    out.sort_by_key(|c| c.action);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(chain: &str, text: &str, flow: &str) -> RuleText {
        RuleText {
            tool: "nft",
            table: "inet portolan".to_owned(),
            chain: chain.to_owned(),
            rule: text.to_owned(),
            flows: vec![flow.to_owned()],
        }
    }

    fn set(name: &str, elements: &[&str]) -> NamedSet {
        NamedSet {
            table: "inet portolan".to_owned(),
            name: name.to_owned(),
            kind: "ipv4_addr",
            elements: elements.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    #[test]
    fn sets_and_rules_in_the_order_to_run() {
        let old = HostRules {
            host: "h".to_owned(),
            sets: vec![set("db_v4", &["192.0.2.1"]), set("old_v4", &["192.0.2.9"])],
            rules: vec![
                rule(
                    "output",
                    "ip daddr @db_v4 tcp dport 5432 accept comment \"a->db/tcp/5432\"",
                    "a->db/tcp/5432",
                ),
                rule(
                    "output",
                    "ip daddr @old_v4 tcp dport 1 accept comment \"a->old/tcp/1\"",
                    "a->old/tcp/1",
                ),
            ],
        };
        let new = HostRules {
            host: "h".to_owned(),
            sets: vec![set("db_v4", &["192.0.2.2"])],
            rules: vec![rule(
                "output",
                "ip daddr @db_v4 tcp dport 6432 accept comment \"a->db/tcp/6432\"",
                "a->db/tcp/6432",
            )],
        };
        let commands = host_commands(&old, &new);
        let shell: Vec<&str> = commands
            .iter()
            .flat_map(|c| c.shell.iter().map(String::as_str))
            .collect();
        assert_eq!(
            shell,
            [
                "nft 'add element inet portolan db_v4 { 192.0.2.2 }'",
                "nft 'add rule inet portolan output ip daddr @db_v4 tcp dport 6432 accept comment \"a->db/tcp/6432\"'",
                "# remove: ip daddr @db_v4 tcp dport 5432 accept comment \"a->db/tcp/5432\"",
                "nft delete rule inet portolan output handle \"$(nft -a list chain inet portolan output | awk -v rule='ip daddr @db_v4 tcp dport 5432 accept comment \"a->db/tcp/5432\"' '{ sub(/^[[:space:]]+/, \"\"); gsub(/counter packets [0-9]+ bytes [0-9]+/, \"counter\") } index($0, rule \" # handle \") == 1 { print $NF }')\"",
                "# remove: ip daddr @old_v4 tcp dport 1 accept comment \"a->old/tcp/1\"",
                "nft delete rule inet portolan output handle \"$(nft -a list chain inet portolan output | awk -v rule='ip daddr @old_v4 tcp dport 1 accept comment \"a->old/tcp/1\"' '{ sub(/^[[:space:]]+/, \"\"); gsub(/counter packets [0-9]+ bytes [0-9]+/, \"counter\") } index($0, rule \" # handle \") == 1 { print $NF }')\"",
                "nft 'delete element inet portolan db_v4 { 192.0.2.1 }'",
                "nft 'delete set inet portolan old_v4'",
            ]
        );
        assert_eq!(commands[0].flows, ["a->db/tcp/5432", "a->db/tcp/6432"]);
        assert!(host_commands(&new, &new).is_empty());
    }

    #[test]
    fn quotes_survive_the_shell() {
        assert_eq!(quoted("it's"), "'it'\\''s'");
        assert_eq!(
            shell_words(
                "-p tcp --dport 5432 -m comment --comment \"a->db/tcp/$db-port\" -j ACCEPT"
            ),
            "-p tcp --dport 5432 -m comment --comment 'a->db/tcp/$db-port' -j ACCEPT"
        );
    }
}
