//! What a table column is, from its header, and the words of cells that say
//! whether a row is required. Keyword tables are data.

use crate::ports::{protocols_in, Proto};
use crate::text::{plain, words};

/// Column roles of port tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Name,
    /// The component that listens on the row's port ("Component" beside
    /// a "Listens on" column).
    Listener,
    Port,
    StartPort,
    EndPort,
    SourcePort,
    Protocol,
    Direction,
    Source,
    Destination,
    SourceOrDestination,
    Purpose,
    Required,
    Condition,
    Other,
}

/// How a header is compared with a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The whole header.
    Exact,
    /// Anywhere in the header.
    Contains,
    /// One of the header's words.
    Word,
}

/// What a column is, by its header: the first entry that matches wins, so
/// the more specific entries come first.
const ROLE_WORDS: &[(Role, Match, &[&str])] = &[
    (
        Role::StartPort,
        Match::Contains,
        &[
            "start port",
            "from port",
            "port start",
            "begin port",
            "first port",
            "min port",
            "lower port",
            "port from",
            "starting port",
        ],
    ),
    (
        Role::EndPort,
        Match::Contains,
        &[
            "end port",
            "to port",
            "port end",
            "last port",
            "max port",
            "upper port",
            "port to",
            "ending port",
        ],
    ),
    (
        Role::SourcePort,
        Match::Contains,
        &["source port", "src port", "sport", "source ports"],
    ),
    (
        Role::SourceOrDestination,
        Match::Exact,
        &[
            "source/destination",
            "source / destination",
            "src/dst",
            "source or destination",
            "source/target",
            "source / target",
            "from/to",
            "peer",
            "peers",
            "remote",
            "remote host",
            "other side",
            "source / target network",
            "source/target network",
            "peer network",
            "remote network",
        ],
    ),
    (
        Role::Required,
        Match::Contains,
        &["optional", "required", "mandatory"],
    ),
    (Role::Required, Match::Exact, &["requirement", "necessity"]),
    (
        Role::Port,
        Match::Contains,
        &[
            "port range",
            "port number",
            "listens on",
            "listening port",
            "listen port",
        ],
    ),
    (Role::Protocol, Match::Contains, &["port type"]),
    (Role::Port, Match::Word, &["port", "ports", "portrange"]),
    (
        Role::Protocol,
        Match::Word,
        &["protocol", "protocols", "proto", "transport"],
    ),
    (Role::Direction, Match::Word, &["direction"]),
    (
        Role::Direction,
        Match::Exact,
        &[
            "dir",
            "traffic",
            "in/out",
            "inbound/outbound",
            "ingress",
            "egress",
            "inbound",
            "outbound",
            "incoming",
            "outgoing",
        ],
    ),
    (
        Role::Source,
        Match::Exact,
        &[
            "source",
            "from",
            "used by",
            "client",
            "clients",
            "initiator",
            "consumer",
            "consumers",
            "origin",
            "requester",
            "caller",
            "callers",
            "source host",
            "allowed from",
            "accessed by",
            "sender",
            "source hosts",
            "sources",
            "who connects",
            "connecting from",
            "source network",
            "source role",
            "source host role",
        ],
    ),
    (
        Role::Destination,
        Match::Exact,
        &[
            "destination",
            "target",
            "to",
            "dest",
            "dst",
            "server",
            "destination host",
            "endpoint",
            "host",
            "hostname",
            "receiver",
            "connects to",
            "destinations",
            "targets",
            "destination hosts",
            "remote service",
            "listener",
            "target network",
            "destination network",
            "destination role",
        ],
    ),
    (
        Role::Purpose,
        Match::Exact,
        &[
            "purpose",
            "description",
            "use",
            "usage",
            "notes",
            "note",
            "comment",
            "comments",
            "details",
            "function",
            "reason",
            "why",
            "remarks",
            "used for",
            "explanation",
            "info",
            "information",
            "rule purpose",
            "why the rule is required",
            "components",
        ],
    ),
    (
        Role::Name,
        Match::Exact,
        &[
            "name",
            "service",
            "component",
            "application",
            "app",
            "service name",
            "process",
            "services",
            "daemon",
            "data source",
            "data sources",
            "port name",
            "ceph daemon",
        ],
    ),
    (
        Role::Condition,
        Match::Exact,
        &["condition", "when", "feature", "if", "conditions"],
    ),
];

pub(crate) fn role(header: &str) -> Role {
    let t = plain(header).to_lowercase().replace('?', "");
    let t = t.trim();
    let ws = words(&t.replace(['(', ')', '/'], " "));
    ROLE_WORDS
        .iter()
        .find(|(_, how, keys)| {
            keys.iter().any(|k| match how {
                Match::Exact => t == *k,
                Match::Contains => t.contains(k),
                Match::Word => ws.iter().any(|w| w == k),
            })
        })
        .map_or(Role::Other, |(r, _, _)| *r)
}

/// The roles of a table's columns: a Name column beside a "Listens on"
/// column names the listener.
pub(crate) fn roles(header: &[String]) -> Vec<Role> {
    let mut roles: Vec<Role> = header.iter().map(|h| role(h)).collect();
    let listens = header.iter().any(|h| {
        let t = plain(h).to_lowercase();
        t.contains("listens on") || t.contains("listening port")
    });
    if listens {
        for r in roles.iter_mut().filter(|r| **r == Role::Name) {
            *r = Role::Listener;
        }
    }
    roles
}

pub(crate) fn required_word(text: &str) -> Option<bool> {
    let lower = text.trim().to_lowercase();
    if lower.is_empty() {
        return None;
    }
    if lower.starts_with("optional")
        || lower.starts_with("no")
        || lower.starts_with("conditional")
        || lower.starts_with("recommended")
        || lower.starts_with("if ")
        || lower == "o"
    {
        return Some(false);
    }
    if lower.starts_with("required")
        || lower.starts_with("yes")
        || lower.starts_with("mandatory")
        || lower.starts_with("always")
        || lower == "r"
        || lower == "✓"
    {
        return Some(true);
    }
    None
}

/// Protocols given in parentheses in a name or purpose: "(TCP and UDP)", "(TCP Only)".
pub(crate) fn paren_protocols(text: &str) -> Vec<Proto> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        let lower = inner.to_lowercase();
        let ws = words(&lower.replace('/', " "));
        if ws
            .iter()
            .all(|w| matches!(w.as_str(), "tcp" | "udp" | "and" | "or" | "only" | "both"))
        {
            for p in protocols_in(inner) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        rest = &rest[open + close..];
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert_eq!(role("Port(s)"), Role::Port);
        assert_eq!(role("Port Range"), Role::Port);
        assert_eq!(role("Default Ports"), Role::Port);
        assert_eq!(role("Start Port"), Role::StartPort);
        assert_eq!(role("end port"), Role::EndPort);
        assert_eq!(role("Proto"), Role::Protocol);
        assert_eq!(role("Used By"), Role::Source);
        assert_eq!(role("Optional/Required"), Role::Required);
        assert_eq!(role("Source/Destination"), Role::SourceOrDestination);
        assert_eq!(role("Target"), Role::Destination);
        assert_eq!(role("Purpose"), Role::Purpose);
    }
}
