//! The text of rules by handle, from `nft -a list table FAMILY NAME` (nft
//! prints each rule followed by `# handle N`).

use std::collections::HashMap;

/// A rule as `nft -a list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleText {
    /// The rule without its comment and handle, e.g. `tcp dport 9000 accept`.
    pub text: String,
    /// The rule's comment (generated rules carry their flow id), unquoted.
    pub comment: Option<String>,
}

/// Rules of one table: (chain, handle) → text.
pub(crate) type TableRules = HashMap<(String, u64), RuleText>;

/// Parses a table listing printed with handles.
pub(crate) fn parse_listing(listing: &str) -> TableRules {
    let mut rules = TableRules::new();
    let mut chain: Option<String> = None;
    for line in listing.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("chain ") {
            chain = Some(chain_name(rest));
            continue;
        }
        if line.starts_with('}') {
            chain = None;
            continue;
        }
        let Some(chain) = &chain else { continue };
        let Some((rule, handle)) = line.rsplit_once(" # handle ") else {
            continue;
        };
        let Ok(handle) = handle.trim().parse::<u64>() else {
            continue;
        };
        rules.insert((chain.clone(), handle), split_comment(rule));
    }
    rules
}

/// The chain name at the start of `NAME { # handle N` (maybe quoted).
fn chain_name(rest: &str) -> String {
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_string(),
        None => rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Splits `… comment "text"` (nft prints the comment last) into the rule
/// and the comment.
fn split_comment(rule: &str) -> RuleText {
    if rule.ends_with('"') {
        if let Some(at) = rule.rfind(" comment \"") {
            let comment = &rule[at + " comment \"".len()..rule.len() - 1];
            return RuleText {
                text: rule[..at].trim_end().to_string(),
                comment: Some(comment.replace("\\\"", "\"")),
            };
        }
    }
    RuleText {
        text: rule.trim_end().to_string(),
        comment: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_found_by_chain_and_handle() {
        let listing = "table inet portolan { # handle 4\n\
            \tchain input { # handle 1\n\
            \t\ttype filter hook input priority filter; policy drop;\n\
            \t\tct state established,related accept # handle 5\n\
            \t\tip saddr 198.18.0.2 tcp dport 8112 accept comment \"api->data-storage/tcp/8112\" # handle 17\n\
            \t}\n\
            \tchain \"from api\" { # handle 2\n\
            \t\tudp dport 53 drop # handle 18\n\
            \t}\n\
            }\n";
        let rules = parse_listing(listing);
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[&("input".to_string(), 17)],
            RuleText {
                text: "ip saddr 198.18.0.2 tcp dport 8112 accept".into(),
                comment: Some("api->data-storage/tcp/8112".into()),
            }
        );
        assert_eq!(rules[&("input".to_string(), 5)].comment, None);
        assert_eq!(
            rules[&("from api".to_string(), 18)].text,
            "udp dport 53 drop"
        );
    }
}
