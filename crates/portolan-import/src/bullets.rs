//! Bullets that state flows in words rather than as host names:
//! port-first ("443: access to the web interface (HTTPS)", "*10051*:
//! trapper port, for active agents"), arrows ("Active proxy → Zabbix
//! server: TCP 10051"), named peers ("Consul on port 8500, if you use
//! Consul", "SMTP server, port 587: email alerts") and lead-ins ("**RPC**
//! (default 4647, TCP). Clients connect to servers …").

use crate::build::{Cond, Dest, Draft, Kind, PItem};
use crate::clauses::{clauses, ports_in, same_as_subject, Party, Said};
use crate::conditions::{condition_in, CondText};
use crate::context::{party_list, party_name, Scope};
use crate::page::Reader;
use crate::peers::Peer;
use crate::ports::{port_or_range, protocols_in, Proto};
use crate::report::WarningCode;
use crate::text::{contains_words, find_ci, plain};

/// What a bullet says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bullet {
    /// Destination ports.
    pub(crate) ports: Vec<(u16, u16)>,
    /// Protocols it states; empty when it states none.
    pub(crate) protos: Vec<Proto>,
    /// "A → B".
    pub(crate) arrow: Option<(Vec<String>, Vec<String>)>,
    /// The peer a named-peer bullet names ("Consul on port 8500").
    pub(crate) peer: Option<String>,
    /// Clauses that say who connects to whom.
    pub(crate) said: Vec<Said>,
    /// "…, for active agents, active proxies": who uses the port.
    pub(crate) users: Vec<String>,
    /// A lead-in name ("HTTP API").
    pub(crate) name: Option<String>,
    /// The words after the port or peer, as the flows' purpose.
    pub(crate) purpose: String,
    /// A condition it states.
    pub(crate) condition: Option<CondText>,
    /// Whether it says the flow is optional.
    pub(crate) optional: bool,
}

/// Words that make a bullet optional without naming a feature.
const OPTIONAL_WORDS: &[&str] = &[
    "(if used)",
    "if used",
    "(optional)",
    "optional",
    "can be blocked",
    "only in ",
    "only with ",
    "only for ",
    " only)",
    "only if ",
    "if you ",
];

/// Words that make the text before "port" a sentence, not a peer's name
/// ("A port may be a range", "If `source_port` is blank").
const NOT_A_NAME: &[&str] = &[
    " if ",
    " is ",
    " may ",
    " must ",
    " can ",
    " be ",
    " are ",
    " when ",
    " the default ",
    " which ",
    " this ",
    " that ",
    " each ",
    " every ",
    " any ",
];

/// Separators between a port or peer and what it is for.
const DESCRIPTION_SEPARATORS: &[&str] = &[": ", " – ", " — ", " - "];

/// Protocols named as words of their own (TCP, UDP, HTTPS…) in a fragment.
fn stated_protocols(fragment: &str) -> Vec<Proto> {
    protocols_in(&fragment.replace(['(', ')', ','], " "))
}

fn split_description(text: &str) -> (&str, &str) {
    DESCRIPTION_SEPARATORS
        .iter()
        .filter_map(|s| text.find(s).map(|p| (p, s.len())))
        .min_by_key(|(p, _)| *p)
        .map_or((text, ""), |(p, n)| (&text[..p], &text[p + n..]))
}

/// The protocols a bullet states near its port, else the words TCP and
/// UDP anywhere in it, else TCP for "(HTTPS)", "(HTTP)", "(TLS)".
fn protocols_or_words(stated: Vec<Proto>, t: &str) -> Vec<Proto> {
    if !stated.is_empty() {
        return stated;
    }
    let words: Vec<Proto> = ["TCP", "UDP"]
        .iter()
        .filter(|w| contains_words(t, w))
        .flat_map(|w| protocols_in(w))
        .collect();
    if !words.is_empty() {
        return words;
    }
    let lower = t.to_lowercase();
    if ["(https", "(http", "https)", "http)", "(tls", "over https"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return vec![Proto::Tcp];
    }
    Vec::new()
}

/// A sentence of prose read as a bullet without a port: its protocols,
/// condition and optional words; the caller gives the ports and parties.
pub(crate) fn sentence_bullet(sentence: &str) -> Bullet {
    let t = sentence.trim().trim_end_matches('.');
    Bullet {
        protos: protocols_or_words(Vec::new(), t),
        condition: condition_in(t),
        optional: OPTIONAL_WORDS.iter().any(|w| t.to_lowercase().contains(w)),
        purpose: format!("{t}."),
        ..Bullet::default()
    }
}

/// Reads a bullet; `None` when it states no port.
pub(crate) fn bullet(raw: &str) -> Option<Bullet> {
    let text = plain(raw);
    let t = text.trim();
    let mut b = Bullet {
        condition: condition_in(raw),
        optional: OPTIONAL_WORDS.iter().any(|w| t.to_lowercase().contains(w)),
        ..Bullet::default()
    };
    if arrow_bullet(t, &mut b) {
        return Some(b);
    }
    let (head, description) = split_description(t);
    let lead: String = head
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    if let Some(r) = port_or_range(&lead).filter(|_| !lead.is_empty()) {
        // "443: …", "162 (UDP): …", "9092 (PLAINTEXT or SASL_PLAINTEXT): …".
        b.ports = vec![r];
        b.ports.extend(
            ports_in(&head[lead.len()..])
                .into_iter()
                .filter(|p| *p != r),
        );
        b.protos = stated_protocols(&head[lead.len()..]);
        b.purpose = description.to_owned();
    } else if let Some(p) = find_ci(head, "port ") {
        named_port_bullet(&head[..p], &head[p..], &mut b)?;
        b.purpose = description.to_owned();
    } else if let Some(p) = find_ci(t, "(default ") {
        default_port_bullet(t, p, &mut b)?;
    } else {
        return None;
    }
    b.said = clauses(&b.purpose)
        .into_iter()
        .filter(|s| !s.to.is_empty())
        .collect();
    if let Some(p) = find_ci(&b.purpose, ", for ") {
        b.users = party_list(&b.purpose[p + 6..]);
    }
    b.protos = protocols_or_words(b.protos, t);
    Some(b)
}

/// "A → B: TCP 10051": whether `t` is such a bullet (read into `b`).
fn arrow_bullet(t: &str, b: &mut Bullet) -> bool {
    let Some((p, n)) = ["→", " -> "]
        .iter()
        .find_map(|a| t.find(a).map(|p| (p, a.len())))
    else {
        return false;
    };
    let (right, tail) = t[p + n..].split_once(':').unwrap_or((&t[p + n..], ""));
    let (from, to) = (party_list(&t[..p]), party_list(right));
    let ports = ports_in(tail);
    if from.is_empty() || to.is_empty() || ports.is_empty() {
        return false;
    }
    b.ports = ports;
    b.protos = stated_protocols(tail);
    b.arrow = Some((from, to));
    b.purpose = tail.trim().to_owned();
    true
}

/// "Consul on port 8500", "SMTP server, port 587", "`sentry.io`, port
/// 443": the peer `before` names, on the ports `from_port` gives; `None`
/// when that is no such bullet.
fn named_port_bullet(before: &str, from_port: &str, b: &mut Bullet) -> Option<()> {
    let ports = ports_in(from_port);
    let name = before.trim().trim_end_matches(',').trim();
    let name = name.strip_suffix(" on").unwrap_or(name).trim();
    let spaced = format!(" {} ", name.to_lowercase());
    if ports.is_empty()
        || name.is_empty()
        || name.split_whitespace().count() > 5
        || NOT_A_NAME.iter().any(|w| spaced.contains(w))
        || party_name(name).chars().count() < 2
    {
        return None;
    }
    b.ports = ports;
    b.peer = Some(party_name(name));
    b.protos = stated_protocols(from_port);
    Some(())
}

/// "HTTP API (default 4646, TCP). Clients …", the parenthesis at `p`:
/// the service's name, ports and purpose; `None` without a port.
fn default_port_bullet(t: &str, p: usize, b: &mut Bullet) -> Option<()> {
    let inner = t[p + 1..].split(')').next().unwrap_or("");
    let ports = ports_in(inner);
    if ports.is_empty() {
        return None;
    }
    b.ports = ports;
    b.protos = stated_protocols(inner);
    b.name = Some(t[..p].trim().to_owned()).filter(|n| !n.is_empty());
    b.purpose = t[p..]
        .split_once(')')
        .map_or("", |(_, rest)| rest)
        .trim_start_matches(['.', ' '])
        .to_owned();
    Some(())
}

/// Sources, destinations and the ports a statement gives (empty: the bullet's).
type Statement = (Vec<Party>, Vec<Party>, Vec<(u16, u16)>);

impl Reader<'_, '_> {
    /// The party a bullet names, resolved against the list's subjects.
    fn bullet_party(
        &mut self,
        party: &Party,
        subjects: &[usize],
        source: bool,
        line: usize,
    ) -> Vec<Peer> {
        match party {
            Party::Subject if subjects.is_empty() => vec![Peer::Comp(self.system_component(line))],
            Party::Subject => subjects.iter().map(|&s| Peer::Comp(s)).collect(),
            Party::Named(name) => {
                if let Some(&s) = subjects
                    .iter()
                    .find(|&&s| same_as_subject(name, &self.b.components[s].name))
                {
                    return vec![Peer::Comp(s)];
                }
                let kind = self.kind_for(name, Kind::System);
                self.peer(name, source, subjects.first().copied(), line, kind)
                    .into_iter()
                    .collect()
            }
        }
    }

    /// The flows of a bullet that states a port; returns how many.
    pub(crate) fn bullet_flows(
        &mut self,
        b: &Bullet,
        line: usize,
        subjects: &[usize],
        scope: &Scope,
    ) -> usize {
        let mut guesses = Vec::new();
        let statements = bullet_statements(b, scope);
        let protos = if b.protos.is_empty() {
            guesses.push("protocol not stated on the page; TCP assumed".to_owned());
            vec![Proto::Tcp]
        } else {
            b.protos.clone()
        };
        let when = b.condition.as_ref().and_then(|c| self.b.condition(c));
        self.b.describe(when.as_ref(), &b.purpose);
        let flow = BulletFlow {
            bullet: b,
            line,
            protos,
            required: when.is_none() && !b.optional,
            when,
        };
        let mut n = 0;
        for (from, to, ports) in statements {
            let ports = if ports.is_empty() {
                b.ports.clone()
            } else {
                ports
            };
            let mut sources: Vec<Peer> = Vec::new();
            for p in &from {
                sources.extend(self.bullet_party(p, subjects, true, line));
            }
            let mut g = guesses.clone();
            if sources.is_empty() {
                // Bullets say who connects in words; without them the source
                // is unspecified (never guessed from words like "web UI").
                sources.push(self.implicit(true, line, None, "", &mut g));
            }
            let mut dests: Vec<Peer> = Vec::new();
            for p in &to {
                dests.extend(self.bullet_party(p, subjects, false, line));
            }
            n += self.add_bullet_flows(&flow, &sources, &dests, &ports, &g);
        }
        if n > 0 && !flow.required && flow.when.is_none() {
            self.b.warn(
                line,
                WarningCode::OptionalWithoutCondition,
                "optional bullet names no condition; the flow is optional without `when`",
            );
        }
        n
    }

    /// One flow per source component, destination and protocol; returns
    /// how many.
    fn add_bullet_flows(
        &mut self,
        flow: &BulletFlow,
        sources: &[Peer],
        dests: &[Peer],
        ports: &[(u16, u16)],
        guesses: &[String],
    ) -> usize {
        let b = flow.bullet;
        let mut n = 0;
        for from in sources {
            let Peer::Comp(from) = *from else { continue };
            for to in dests {
                let dest = match *to {
                    Peer::Comp(c) => Dest::Comp(c),
                    Peer::Ext(e) => Dest::Ext(e),
                };
                for proto in &flow.protos {
                    let mut draft = Draft::new(from, dest, *proto, flow.line);
                    if matches!(proto, Proto::Tcp | Proto::Udp) {
                        draft.ports = ports.iter().map(|&(a, z)| PItem::Range(a, z)).collect();
                    }
                    draft.required = flow.required;
                    draft.when = flow.when.clone();
                    draft.name = b.name.clone();
                    draft.purpose = (!b.purpose.is_empty()).then(|| b.purpose.clone());
                    draft.guesses = guesses.to_vec();
                    self.b.add(draft);
                    n += 1;
                }
            }
        }
        n
    }
}

/// What every flow of one bullet shares.
struct BulletFlow<'b> {
    bullet: &'b Bullet,
    line: usize,
    protos: Vec<Proto>,
    required: bool,
    when: Option<Cond>,
}

/// Who connects to whom in a bullet: its arrow and its clauses (with the
/// bullet's ports they repeat); else its peer, else the scope's peers,
/// else its users to the subject.
fn bullet_statements(b: &Bullet, scope: &Scope) -> Vec<Statement> {
    let named = |v: &[String]| -> Vec<Party> { v.iter().cloned().map(Party::Named).collect() };
    let mut statements: Vec<Statement> = Vec::new();
    if let Some((from, to)) = &b.arrow {
        statements.push((named(from), named(to), Vec::new()));
    }
    for s in &b.said {
        let ports = s
            .ports
            .iter()
            .filter(|p| b.ports.contains(p))
            .copied()
            .collect();
        statements.push((s.from.clone(), s.to.clone(), ports));
    }
    if !statements.is_empty() {
        return statements;
    }
    if let Some(peer) = &b.peer {
        statements.push((
            vec![Party::Subject],
            vec![Party::Named(peer.clone())],
            Vec::new(),
        ));
    } else if !scope.sources.is_empty() || !scope.dests.is_empty() {
        let from = if scope.sources.is_empty() {
            Vec::new()
        } else {
            named(&scope.sources)
        };
        let to = if scope.dests.is_empty() {
            vec![Party::Subject]
        } else {
            named(&scope.dests)
        };
        statements.push((from, to, Vec::new()));
    } else {
        statements.push((named(&b.users), vec![Party::Subject], Vec::new()));
    }
    statements
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let b = bullet("443: access to the Nextcloud web interface and WebDAV (HTTPS)").unwrap();
        assert_eq!(b.ports, vec![(443, 443)]);
        assert_eq!(b.protos, vec![Proto::Tcp]);
        let b = bullet("*10050*: the server connects out to passive agents on this port").unwrap();
        assert_eq!(b.said.len(), 1);
        let b =
            bullet("162 (UDP): SNMP traps, only if you receive SNMP traps on the server").unwrap();
        assert_eq!(b.protos, vec![Proto::Udp]);
        assert!(b.condition.is_some() || b.optional);
        let b = bullet("Active proxy → Zabbix server: TCP 10051").unwrap();
        assert_eq!(
            b.arrow,
            Some((
                vec!["Active proxy".to_owned()],
                vec!["Zabbix server".to_owned()]
            ))
        );
        let b = bullet("Consul on port 8500, if you use Consul as the storage backend.").unwrap();
        assert_eq!(b.peer.as_deref(), Some("Consul"));
        assert_eq!(b.ports, vec![(8500, 8500)]);
        let b = bullet("**RPC** (default 4647, TCP). Internal RPC: clients connect to servers, and servers connect to each other.").unwrap();
        assert_eq!(b.ports, vec![(4647, 4647)]);
        assert_eq!(b.said.len(), 2);
        let b =
            bullet("*10051*: trapper port, for active agents, active proxies and `zabbix_sender`")
                .unwrap();
        assert_eq!(b.users.len(), 3, "{b:?}");
        assert_eq!(bullet("Monitor remote locations"), None);
        assert_eq!(bullet("The HSM, on the port its vendor documents"), None);
    }
}
