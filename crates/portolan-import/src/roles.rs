//! What a table column is, from its header, and the words of cells that say
//! whether a row is required. Keyword tables are data.

use crate::ports::{protocols_in, Proto};
use crate::text::{plain, words};

/// Column roles of port tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Name,
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

pub(crate) fn role(header: &str) -> Role {
    let t = plain(header).to_lowercase().replace('?', "");
    let t = t.trim();
    let has = |s: &str| t.contains(s);
    let ws = words(&t.replace(['(', ')', '/'], " "));
    let w = |s: &str| ws.iter().any(|x| x == s);
    if [
        "start port",
        "from port",
        "port start",
        "begin port",
        "first port",
        "min port",
        "lower port",
        "port from",
        "starting port",
    ]
    .iter()
    .any(|s| has(s))
    {
        return Role::StartPort;
    }
    if [
        "end port",
        "to port",
        "port end",
        "last port",
        "max port",
        "upper port",
        "port to",
        "ending port",
    ]
    .iter()
    .any(|s| has(s))
    {
        return Role::EndPort;
    }
    if ["source port", "src port", "sport", "source ports"]
        .iter()
        .any(|s| has(s))
    {
        return Role::SourcePort;
    }
    if [
        "source/destination",
        "source / destination",
        "src/dst",
        "source or destination",
        "source/target",
        "from/to",
        "peer",
        "remote",
        "remote host",
        "other side",
    ]
    .contains(&t)
    {
        return Role::SourceOrDestination;
    }
    if has("optional")
        || has("required")
        || has("mandatory")
        || t == "requirement"
        || t == "necessity"
    {
        return Role::Required;
    }
    if w("port") || w("ports") || w("portrange") || has("port range") || has("port number") {
        return Role::Port;
    }
    if w("protocol") || w("protocols") || w("proto") || w("transport") {
        return Role::Protocol;
    }
    if w("direction") || t == "dir" || t == "traffic" || t == "in/out" || t == "inbound/outbound" {
        return Role::Direction;
    }
    if [
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
    ]
    .contains(&t)
    {
        return Role::Source;
    }
    if [
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
    ]
    .contains(&t)
    {
        return Role::Destination;
    }
    if [
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
    ]
    .contains(&t)
    {
        return Role::Purpose;
    }
    if [
        "name",
        "service",
        "component",
        "application",
        "app",
        "service name",
        "process",
        "services",
        "daemon",
    ]
    .contains(&t)
    {
        return Role::Name;
    }
    if ["condition", "when", "feature", "if", "conditions"].contains(&t) {
        return Role::Condition;
    }
    Role::Other
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
