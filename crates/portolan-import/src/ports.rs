//! Ports and protocols as vendor pages write them: `2379-2380`, `8500; 8501`,
//! `22/TCP`, `TCP and UDP`, `User-defined`, `443 or user-defined`, and the
//! matrix cell notation `IP:protocol:source_port:destination_port`.

use std::net::IpAddr;

use crate::text::{contains_words, find_ci, words};

/// A transport protocol of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// Every protocol.
    Any,
}

impl Proto {
    /// The word of the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Any => "any",
        }
    }
}

/// One destination or source port item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortItem {
    /// An inclusive range (`start == end` for one port).
    Range(u16, u16),
    /// A parameter, by id as written (`$postgres-port`).
    ParamRef(String),
    /// A port the operator chooses ("User-defined"), with a default if the cell gives one.
    UserDefined {
        /// The cell as written, kept as the parameter's `shown_as`.
        shown_as: String,
        /// A number stated next to it ("443 or user-defined").
        default: Option<u16>,
    },
}

/// What a port cell says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCell {
    /// Port items; empty with `all` means every port.
    pub items: Vec<PortItem>,
    /// Every port ("All", "Any", "*").
    pub all: bool,
    /// Nothing ("N/A", "-", empty).
    pub none: bool,
    /// Protocols written in the cell (`22/TCP`, `8600 (TCP and UDP)`).
    pub protocols: Vec<Proto>,
    /// Parts that could not be read.
    pub unknown: Vec<String>,
}

fn parse_u16(s: &str) -> Option<u16> {
    let s = s.trim();
    if s.is_empty() || s.len() > 5 || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>()
        .ok()
        .filter(|&n| (1..=65535).contains(&n))
        .map(|n| n as u16)
}

/// A port or a range: `443`, `2379-2380`, `8000 – 8010`, `1024 to 65535`, `8000..8010`.
pub fn port_or_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    if let Some(p) = parse_u16(s) {
        return Some((p, p));
    }
    for sep in ["-", "–", "—", "..", ":", " to ", " through "] {
        if let Some(pos) = find_ci(s, sep) {
            let (a, b) = (&s[..pos], &s[pos + sep.len()..]);
            if let (Some(a), Some(b)) = (parse_u16(a), parse_u16(b)) {
                if a <= b {
                    return Some((a, b));
                }
            }
        }
    }
    None
}

/// Protocols named in a text: `TCP`, `udp`, `TCP / UDP`, `TCP and UDP`,
/// `Both`, `HTTPS` (over TCP). Returns the protocols and whether an
/// application protocol implied TCP.
pub fn protocols_in(text: &str) -> Vec<Proto> {
    let mut out = Vec::new();
    let mut push = |p: Proto| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for w in words(&text.replace(['/', '+', '&'], " ")) {
        match w.as_str() {
            "tcp" | "t" => push(Proto::Tcp),
            "udp" | "u" => push(Proto::Udp),
            "icmp" | "icmpv6" | "ping" => push(Proto::Icmp),
            "both" => {
                push(Proto::Tcp);
                push(Proto::Udp);
            }
            "any" | "all" | "*" => push(Proto::Any),
            "http" | "https" | "grpc" | "ssh" | "tls" | "websocket" | "websockets" | "wss"
            | "mqtt" | "mqtts" | "amqp" | "amqps" | "ldap" | "ldaps" | "smtp" | "smtps"
            | "imap" | "imaps" | "rdp" | "postgres" | "postgresql" | "mysql" | "redis" | "rpc"
            | "jdbc" | "ftp" | "sftp" | "git" | "h2" | "kafka" | "nats" => push(Proto::Tcp),
            _ => {}
        }
    }
    out
}

/// Words a protocol cell may hold besides protocol names.
const PROTOCOL_CELL_WORDS: &[&str] = &[
    "and",
    "or",
    "only",
    "both",
    "multicast",
    "over",
    "ssl",
    "plaintext",
    "sasl_plaintext",
    "n/a",
    "na",
    "-",
    "only)",
    "v4",
    "v6",
    "ipv4",
    "ipv6",
];

/// What a protocol cell holds besides protocols ("-A INPUT -j ACCEPT" in
/// "TCP<br>-A INPUT -j ACCEPT"), so that it is reported, not dropped.
pub fn protocol_leftover(text: &str) -> Option<String> {
    let leftover: Vec<String> = text
        .split(|c: char| c.is_whitespace() || matches!(c, '/' | '+' | '&' | ',' | '(' | ')'))
        .filter(|w| !w.is_empty())
        .filter(|w| {
            let lower = w.to_lowercase();
            protocols_in(&lower).is_empty()
                && !PROTOCOL_CELL_WORDS.contains(&lower.as_str())
                && lower.parse::<std::net::IpAddr>().is_err()
        })
        .map(str::to_owned)
        .collect();
    (!leftover.is_empty()).then(|| leftover.join(" "))
}

/// Whether a text names only protocols (so a cell like "TCP" is not a port).
fn only_protocol_words(text: &str) -> bool {
    let ws = words(&text.replace(['/', '+', '&', ',', '(', ')'], " "));
    !ws.is_empty()
        && ws.iter().all(|w| {
            matches!(
                w.as_str(),
                "tcp" | "udp" | "icmp" | "and" | "or" | "only" | "both"
            )
        })
}

fn user_defined_word(text: &str) -> bool {
    let t = text.to_lowercase();
    [
        "user-defined",
        "user defined",
        "userdefined",
        "configurable",
        "custom",
        "customizable",
        "customisable",
        "variable",
        "your choice",
        "operator-defined",
        "as configured",
        "user-specified",
        "user specified",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Port cells that say there is no port.
const NO_PORT: &[&str] = &["n/a", "na", "-", "–", "—", "none", "n.a.", "not applicable"];

/// Port cells that say every port.
const EVERY_PORT: &[&str] = &[
    "all",
    "any",
    "*",
    "all ports",
    "any port",
    "every port",
    "all tcp",
    "all udp",
];

/// Words that join the ports of one cell ("80 and 443", "80 or 443").
const PORT_JOINERS: &[&str] = &[" and ", " or ", " AND ", " OR ", " & "];

/// Reads a port cell.
pub fn port_cell(text: &str) -> PortCell {
    let mut cell = PortCell::default();
    let t = text.trim();
    let lower = t.to_lowercase();
    if t.is_empty() || NO_PORT.contains(&lower.as_str()) {
        cell.none = true;
        return cell;
    }
    if EVERY_PORT.contains(&lower.as_str()) {
        cell.all = true;
        cell.protocols = protocols_in(&lower);
        return cell;
    }
    if user_defined_word(t) {
        let default = t.split(|c: char| !c.is_ascii_digit()).find_map(parse_u16);
        cell.items.push(PortItem::UserDefined {
            shown_as: t.to_owned(),
            default,
        });
        return cell;
    }
    if let Some(name) = t.strip_prefix('$') {
        let name = name.trim_matches(|c| c == '{' || c == '}');
        if !name.is_empty() {
            cell.items.push(PortItem::ParamRef(name.to_owned()));
            return cell;
        }
    }
    let Some(rest) = without_parentheses(t, &mut cell) else {
        return cell;
    };
    let mut normalized = rest.replace(['\n', ';', ','], "|");
    for joiner in PORT_JOINERS {
        normalized = normalized.replace(joiner, "|");
    }
    for part in normalized.split('|') {
        let part = part.trim();
        if !part.is_empty() {
            port_part(part, &mut cell);
        }
    }
    if cell.items.is_empty() && cell.unknown.is_empty() && !cell.protocols.is_empty() {
        cell.all = true;
    }
    cell
}

/// A port cell less its parenthesis: protocols in it ("8600 (TCP and
/// UDP)") go to `cell`, a remark ("(default)") is dropped; `None` when the
/// port is the one in parentheses ("disabled (8501)"), put in `cell`.
fn without_parentheses(t: &str, cell: &mut PortCell) -> Option<String> {
    let mut rest = t.to_owned();
    let (Some(open), Some(close)) = (rest.find('('), rest.rfind(')')) else {
        return Some(rest);
    };
    if open >= close {
        return Some(rest);
    }
    let inner = rest[open + 1..close].to_owned();
    let ps = protocols_in(&inner);
    if !ps.is_empty() {
        cell.protocols.extend(ps);
        rest.replace_range(open..=close, " ");
    } else if let Some(r) = port_or_range(&inner).filter(|_| {
        !rest
            .replace(&rest[open..=close], "")
            .contains(|c: char| c.is_ascii_digit())
    }) {
        cell.items.push(PortItem::Range(r.0, r.1));
        return None;
    } else {
        // "(default)", "(configurable)": remarks, not ports.
        rest.replace_range(open..=close, " ");
    }
    Some(rest)
}

/// One part of a port cell: a port or range, with protocols ("22/TCP",
/// "TCP/22", "443 TCP", "TCP 443", "udp:53"), protocols alone, or a part
/// that could not be read.
fn port_part(part: &str, cell: &mut PortCell) {
    if let Some(r) = port_or_range(part) {
        cell.items.push(PortItem::Range(r.0, r.1));
        return;
    }
    let pieces: Vec<&str> = part
        .split(['/', ' ', ':'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut ports = Vec::new();
    let mut protos = Vec::new();
    let mut other = false;
    for p in &pieces {
        if let Some(r) = port_or_range(p) {
            ports.push(r);
        } else if only_protocol_words(p) {
            protos.extend(protocols_in(p));
        } else {
            other = true;
        }
    }
    if !ports.is_empty() && !other {
        cell.items
            .extend(ports.into_iter().map(|(a, b)| PortItem::Range(a, b)));
        for p in protos {
            if !cell.protocols.contains(&p) {
                cell.protocols.push(p);
            }
        }
    } else if only_protocol_words(part) {
        cell.protocols.extend(protocols_in(part));
    } else {
        cell.unknown.push(part.to_owned());
    }
}

/// A default port stated in a description: "By default this is `5432`",
/// "defaults to 5432", "default: 5432", "(default 8080)".
pub fn default_in(text: &str) -> Option<u16> {
    let lower = text.to_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("default") {
        let start = from + pos;
        let after = &lower[start..];
        let window: String = after.chars().take(40).collect();
        if let Some(p) = window
            .split(|c: char| !c.is_ascii_digit())
            .find_map(parse_u16)
        {
            return Some(p);
        }
        from = start + "default".len();
    }
    None
}

/// Well-known services a page may name without a port: the port to assume
/// and what to say about it.
pub fn service_port_hint(text: &str) -> Option<(Proto, u16, &'static str)> {
    let hints: &[(&str, Proto, u16, &str)] = &[
        (
            "irc",
            Proto::Tcp,
            6697,
            "6697 (IRC over TLS) assumed; plain IRC would be 6667",
        ),
        (
            "smtp",
            Proto::Tcp,
            587,
            "587 (SMTP submission) assumed; relays may use 25 or 465",
        ),
        ("ntp", Proto::Udp, 123, "123/udp (NTP) assumed"),
        ("syslog", Proto::Udp, 514, "514/udp (syslog) assumed"),
        (
            "ldap",
            Proto::Tcp,
            636,
            "636 (LDAPS) assumed; plain LDAP would be 389",
        ),
        ("ssh", Proto::Tcp, 22, "22 (SSH) assumed"),
        ("dns", Proto::Udp, 53, "53/udp (DNS) assumed"),
        ("snmp", Proto::Udp, 161, "161/udp (SNMP) assumed"),
    ];
    hints
        .iter()
        .find(|(word, ..)| contains_words(text, word))
        .map(|&(_, proto, port, note)| (proto, port, note))
}

/// What a field of the matrix notation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// An address (multicast group).
    Ip,
    /// The protocol.
    Protocol,
    /// The source port.
    SourcePort,
    /// The destination port.
    DestinationPort,
}

/// The cell notation a matrix page's legend describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legend {
    /// Fields in order.
    pub fields: Vec<Field>,
    /// The separator between fields.
    pub separator: char,
    /// Protocol letters or words and what they mean.
    pub letters: Vec<(String, Proto)>,
    /// Where the notation was described (0: the default).
    pub line: usize,
}

impl Default for Legend {
    fn default() -> Self {
        Self {
            fields: vec![
                Field::Ip,
                Field::Protocol,
                Field::SourcePort,
                Field::DestinationPort,
            ],
            separator: ':',
            letters: default_letters(),
            line: 0,
        }
    }
}

fn default_letters() -> Vec<(String, Proto)> {
    vec![
        ("t".to_owned(), Proto::Tcp),
        ("u".to_owned(), Proto::Udp),
        ("i".to_owned(), Proto::Icmp),
        ("tcp".to_owned(), Proto::Tcp),
        ("udp".to_owned(), Proto::Udp),
        ("icmp".to_owned(), Proto::Icmp),
    ]
}

fn field_of(name: &str) -> Option<Field> {
    let n = name.trim().to_lowercase().replace([' ', '-'], "_");
    match n.as_str() {
        "ip" | "address" | "addr" | "group" | "multicast" | "ip_address" | "dst_ip" | "host" => {
            Some(Field::Ip)
        }
        "protocol" | "proto" | "transport" | "prot" => Some(Field::Protocol),
        "source_port" | "src_port" | "sport" | "source" | "src" | "from_port" => {
            Some(Field::SourcePort)
        }
        "destination_port" | "dest_port" | "dst_port" | "dport" | "port" | "destination"
        | "dest" | "dst" | "to_port" | "ports" => Some(Field::DestinationPort),
        _ => None,
    }
}

/// Reads a legend from a code span such as `IP:protocol:source_port:destination_port`
/// or `protocol/port`.
pub fn legend_pattern(code: &str) -> Option<(Vec<Field>, char)> {
    for sep in [':', '/', ',', '|'] {
        let parts: Vec<&str> = code.split(sep).collect();
        if parts.len() < 2 {
            continue;
        }
        let fields: Option<Vec<Field>> = parts.iter().map(|p| field_of(p)).collect();
        if let Some(fields) = fields {
            if fields.contains(&Field::DestinationPort) || fields.contains(&Field::Protocol) {
                return Some((fields, sep));
            }
        }
    }
    None
}

/// Protocol letters defined in legend text: `"T" for TCP`, `T = TCP`, `` `U` for UDP ``.
pub fn legend_letters(text: &str) -> Vec<(String, Proto)> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], '"' | '`' | '\'' | '“') {
            let close = match chars[i] {
                '“' => '”',
                c => c,
            };
            if let Some(len) = chars[i + 1..].iter().take(8).position(|&c| c == close) {
                let token: String = chars[i + 1..i + 1 + len].iter().collect();
                let after: String = chars[i + 2 + len..].iter().take(24).collect();
                let after = after.trim_start();
                let after = after
                    .strip_prefix("for ")
                    .or_else(|| after.strip_prefix("= "))
                    .or_else(|| after.strip_prefix("means "))
                    .or_else(|| after.strip_prefix("is "))
                    .or_else(|| after.strip_prefix(": "));
                if let Some(after) = after {
                    let word: String = after
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    let proto = match word.to_lowercase().as_str() {
                        "tcp" => Some(Proto::Tcp),
                        "udp" => Some(Proto::Udp),
                        "icmp" => Some(Proto::Icmp),
                        "any" | "all" => Some(Proto::Any),
                        _ => None,
                    };
                    if let (Some(p), false) = (proto, token.is_empty()) {
                        out.push((token.to_lowercase(), p));
                    }
                }
                i += len + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// One token of a matrix cell, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Protocol.
    pub proto: Proto,
    /// Multicast group.
    pub multicast: Option<IpAddr>,
    /// Destination ports; empty is every port.
    pub ports: Vec<PortItem>,
    /// Fixed source ports; empty is ephemeral.
    pub source_ports: Vec<PortItem>,
    /// A trailing `?`: optional.
    pub optional: bool,
    /// A trailing `[n]`: condition number n.
    pub condition: Option<usize>,
}

fn port_field(text: &str) -> Result<Vec<PortItem>, String> {
    let t = text.trim();
    if t.is_empty() || t == "*" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in t.split(',') {
        let part = part.trim();
        if let Some(name) = part.strip_prefix('$') {
            out.push(PortItem::ParamRef(
                name.trim_matches(|c| c == '{' || c == '}').to_owned(),
            ));
        } else if let Some((a, b)) = port_or_range(part) {
            out.push(PortItem::Range(a, b));
        } else {
            return Err(format!("`{part}` is not a port"));
        }
    }
    Ok(out)
}

impl Legend {
    fn protocol(&self, text: &str) -> Option<Proto> {
        let t = text.trim().to_lowercase();
        if t == "*" {
            return Some(Proto::Any);
        }
        self.letters
            .iter()
            .find(|(l, _)| *l == t)
            .map(|(_, p)| *p)
            .or_else(|| {
                default_letters()
                    .into_iter()
                    .find(|(l, _)| *l == t)
                    .map(|(_, p)| p)
            })
    }

    /// Reads one cell token. Leading fields may be elided, so fields are
    /// matched from the right.
    pub fn token(&self, raw: &str) -> Result<Token, String> {
        let (text, condition, optional) = token_marks(raw);
        // A bracketed IPv6 group leads: [ff02::fb]:U::8082.
        let (mut ip_text, text) = match text.strip_prefix('[').and_then(|t| t.find(']')) {
            Some(close) => (
                Some(text[1..=close].to_owned()),
                text[close + 2..]
                    .trim_start_matches(self.separator)
                    .to_owned(),
            ),
            None => (None, text),
        };
        let mut parts: Vec<&str> = text.split(self.separator).collect();
        let mut fields = self.fields.clone();
        if ip_text.is_some() {
            if let Some(pos) = fields.iter().position(|f| *f == Field::Ip) {
                fields.remove(pos);
            }
        }
        if parts.len() > fields.len() {
            return Err(format!(
                "`{raw}` has {} fields; the legend has {}",
                parts.len(),
                fields.len()
            ));
        }
        if text == "*" && fields.len() > 1 {
            parts = vec!["*"; fields.len()];
        }
        let offset = fields.len() - parts.len();
        let mut token = Token {
            proto: Proto::Tcp,
            multicast: None,
            ports: Vec::new(),
            source_ports: Vec::new(),
            optional,
            condition,
        };
        let mut saw_protocol = false;
        for (field, part) in fields[offset..].iter().zip(&parts) {
            match field {
                Field::Ip => {
                    let p = part.trim();
                    if !p.is_empty() && p != "*" {
                        ip_text = Some(p.to_owned());
                    }
                }
                Field::Protocol => {
                    token.proto = self
                        .protocol(part)
                        .ok_or_else(|| format!("`{part}` is not a protocol of the legend"))?;
                    saw_protocol = true;
                }
                Field::SourcePort => token.source_ports = port_field(part)?,
                Field::DestinationPort => token.ports = port_field(part)?,
            }
        }
        if !saw_protocol {
            return Err(format!("`{raw}` names no protocol"));
        }
        token.multicast = ip_text.map(|ip| multicast_group(&ip)).transpose()?;
        if token.proto == Proto::Any || token.proto == Proto::Icmp {
            token.ports.clear();
            token.source_ports.clear();
        }
        Ok(token)
    }
}

/// A cell token less its trailing marks: a condition number `[n]`, then
/// a `?` for optional.
fn token_marks(raw: &str) -> (String, Option<usize>, bool) {
    let mut text = raw.trim().to_owned();
    let mut condition = None;
    if text.ends_with(']') {
        if let Some(open) = text.rfind('[') {
            if let Ok(n) = text[open + 1..text.len() - 1].trim().parse::<usize>() {
                condition = Some(n);
                text.truncate(open);
            }
        }
    }
    let optional = text.ends_with('?');
    if optional {
        text.pop();
    }
    (text, condition, optional)
}

/// The multicast group a token names.
fn multicast_group(ip: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| format!("`{ip}` is not an IP address"))?;
    if !addr.is_multicast() {
        return Err(format!(
            "`{ip}` is a unicast address; only multicast groups are read from cells"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn r(a: u16, b: u16) -> PortItem {
        PortItem::Range(a, b)
    }

    #[test]
    fn port_cells() {
        assert_eq!(port_cell("2379-2380").items, [r(2379, 2380)]);
        assert_eq!(
            port_cell("8500; 8501").items,
            [r(8500, 8500), r(8501, 8501)]
        );
        let c = port_cell("22/TCP");
        assert_eq!(
            (c.items.as_slice(), c.protocols.as_slice()),
            (&[r(22, 22)][..], &[Proto::Tcp][..])
        );
        let c = port_cell("8600 (TCP and UDP)");
        assert_eq!(c.protocols, [Proto::Tcp, Proto::Udp]);
        assert_eq!(c.items, [r(8600, 8600)]);
        assert!(port_cell("N/A").none);
        assert!(port_cell("All").all);
        assert_eq!(
            port_cell("443 or user-defined").items,
            [PortItem::UserDefined {
                shown_as: "443 or user-defined".into(),
                default: Some(443)
            }]
        );
        assert_eq!(port_cell("80, 443").items, [r(80, 80), r(443, 443)]);
        assert_eq!(port_cell("30000 - 32767").items, [r(30000, 32767)]);
        assert_eq!(port_cell("70000").unknown, ["70000"]);
        assert_eq!(port_cell("disabled (8501)").items, [r(8501, 8501)]);
        assert_eq!(port_cell("$pg").items, [PortItem::ParamRef("pg".into())]);
    }

    #[test]
    fn protocol_cells_with_more_than_protocols() {
        assert_eq!(protocol_leftover("TCP"), None);
        assert_eq!(protocol_leftover("TCP and UDP"), None);
        assert_eq!(protocol_leftover("UDP (multicast 225.0.1.9)"), None);
        assert_eq!(protocol_leftover("HTTPS"), None);
        assert_eq!(
            protocol_leftover("TCP\n-A INPUT -j ACCEPT").as_deref(),
            Some("-A INPUT -j ACCEPT")
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(protocols_in("TCP / UDP"), [Proto::Tcp, Proto::Udp]);
        assert_eq!(protocols_in("TCP and UDP"), [Proto::Tcp, Proto::Udp]);
        assert_eq!(protocols_in("HTTPS"), [Proto::Tcp]);
        assert!(protocols_in("Kubernetes API").is_empty());
    }

    #[test]
    fn defaults() {
        assert_eq!(default_in("By default this is `5432`."), Some(5432));
        assert_eq!(default_in("defaults to 3306"), Some(3306));
        assert_eq!(default_in("no number"), None);
    }

    #[test]
    fn circonus_tokens() {
        let l = Legend::default();
        let t = l.token("T::8112").unwrap();
        assert_eq!(
            (t.proto, t.ports.clone()),
            (Proto::Tcp, vec![r(8112, 8112)])
        );
        let t = l.token("U:8112:8112").unwrap();
        assert_eq!(t.source_ports, [r(8112, 8112)]);
        let t = l.token("225.0.1.9:U::8082").unwrap();
        assert_eq!(t.multicast, Some("225.0.1.9".parse().unwrap()));
        let t = l.token("*:*:*:*").unwrap();
        assert_eq!(t.proto, Proto::Any);
        let t = l.token("T::$postgres-port?[2]").unwrap();
        assert!(t.optional);
        assert_eq!(t.condition, Some(2));
        assert_eq!(t.ports, [PortItem::ParamRef("postgres-port".into())]);
        let t = l.token("[ff02::fb]:U::5353").unwrap();
        assert!(t.multicast.is_some());
        assert!(l.token("X::80").is_err());
        assert!(l.token("10.0.0.1:T::80").is_err());
        assert!(l.token("T::99999").is_err());
        assert!(l.token("a:b:c:d:e").is_err());
    }

    #[test]
    fn other_legends() {
        let (fields, sep) = legend_pattern("protocol/port").unwrap();
        let l = Legend {
            fields,
            separator: sep,
            letters: default_letters(),
            line: 1,
        };
        let t = l.token("tcp/5432").unwrap();
        assert_eq!(t.ports, [r(5432, 5432)]);
        assert_eq!(
            legend_letters("shown as \"T\" for TCP or `U` for UDP, S = any"),
            [("t".to_owned(), Proto::Tcp), ("u".to_owned(), Proto::Udp)]
        );
    }
}
