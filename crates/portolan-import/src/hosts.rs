//! Lists of hosts: `host:port (Name) TCP - purpose` items, nested under the
//! components that reach them.

use crate::blocks::{Block, Item};
use crate::build::{Addr, Cond, Dest, Draft, Kind, PItem};
use crate::bullets::{bullet, Bullet};
use crate::conditions::{condition_in, purpose_phrases, CondText};
use crate::page::Reader;
use crate::peers::{cidr_of, host_of};
use crate::ports::{port_cell, port_or_range, service_port_hint, PortItem, Proto};
use crate::prose::NOTATION_HEADINGS;
use crate::report::WarningCode;
use crate::structure::{is_conditional, strip_generic, Dir, ALL_HOSTS};
use crate::text::{contains_words, find_ci, plain, squash, words};

impl Reader<'_, '_> {
    pub(crate) fn lists(&mut self) {
        let doc = self.doc;
        for (i, block) in doc.blocks.iter().enumerate() {
            let Block::List(items) = block else { continue };
            if self.consumed.contains(&i) {
                continue;
            }
            self.list(i, items);
        }
    }

    pub(crate) fn list(&mut self, index: usize, items: &[Item]) {
        let ctx = &self.doc.ctx[index];
        let entries: Vec<Option<HostEntry>> = items.iter().map(|it| host_entry(&it.text)).collect();
        // A legend explains a notation with examples; its ports are no flows.
        let legend = ctx
            .path
            .iter()
            .any(|h| NOTATION_HEADINGS.iter().any(|w| contains_words(&h.text, w)));
        let bullets: Vec<Option<Bullet>> = items
            .iter()
            .zip(&entries)
            .map(|(it, e)| {
                if e.is_none() && !legend {
                    bullet(&it.text)
                } else {
                    None
                }
            })
            .collect();
        if entries.iter().all(Option::is_none) && bullets.iter().all(Option::is_none) {
            for item in items {
                self.b.report.rows_read += 1;
                self.b.skip(
                    item.line,
                    &plain(&item.text),
                    "list item names no host (prose bullet)",
                );
            }
            return;
        }
        self.used_sections.insert(ctx.section);
        let facts = self.list_facts(index);
        // Parents by indent.
        let mut subjects_of: Vec<Option<Vec<usize>>> = vec![None; items.len()];
        // Open items by indent: the parent of an item is the last open one
        // indented less.
        let mut open: Vec<usize> = Vec::new();
        for (k, item) in items.iter().enumerate() {
            self.b.report.rows_read += 1;
            while open.last().is_some_and(|&j| items[j].indent >= item.indent) {
                open.pop();
            }
            let parent = open.last().copied();
            open.push(k);
            let inherited = parent.and_then(|j| subjects_of[j].clone());
            subjects_of[k] = match (&entries[k], &bullets[k]) {
                (Some(entry), _) => Some(self.list_host_entry(entry, item, &facts, inherited)),
                (None, Some(b)) => {
                    self.list_bullet(b, index, item, &facts, inherited.clone());
                    inherited
                }
                (None, None) => self.list_heading_item(items, k, inherited),
            };
        }
    }

    /// What a list's section, intro and short paragraph above say of all
    /// its items.
    fn list_facts(&mut self, index: usize) -> ListFacts {
        let ctx = &self.doc.ctx[index];
        let pseudo_text = ctx
            .pseudo
            .as_ref()
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        let conditional = self.doc.conditional[ctx.section] || is_conditional(&pseudo_text);
        let pseudo_condition = condition_in(&pseudo_text);
        // Subjects of the list as a whole.
        let subjects = self.list_subjects(index);
        // "… on port 443:" above the list: the port of its hosts.
        let port = self
            .doc
            .intro(index)
            .iter()
            .filter(|(t, _)| find_ci(t, "port ").is_some())
            .find_map(|(t, _)| crate::clauses::ports_in(t).first().map(|&(a, _)| a));
        ListFacts {
            conditional,
            pseudo_condition,
            subjects,
            port,
        }
    }

    /// A host entry of a list: flows from its parent's subjects (else the
    /// list's, else the system's) to its hosts. Returns those subjects.
    fn list_host_entry(
        &mut self,
        entry: &HostEntry,
        item: &Item,
        facts: &ListFacts,
        inherited: Option<Vec<usize>>,
    ) -> Vec<usize> {
        let subjects = match inherited {
            Some(s) => s,
            None => match &facts.subjects {
                Some(s) => s.clone(),
                None => vec![self.system_component(item.line)],
            },
        };
        let given = HostGiven {
            conditional: facts.conditional,
            pseudo_condition: facts.pseudo_condition.as_ref(),
            list_port: facts.port,
        };
        self.host_flows(entry, &subjects, item.line, &given);
        subjects
    }

    /// A bullet of a list, with its parent's subjects (else the list's).
    fn list_bullet(
        &mut self,
        bullet: &Bullet,
        index: usize,
        item: &Item,
        facts: &ListFacts,
        inherited: Option<Vec<usize>>,
    ) {
        let subjects = inherited
            .or_else(|| facts.subjects.clone())
            .unwrap_or_default();
        let scope = self.doc.scope(index);
        if self.bullet_flows(bullet, item.line, &subjects, &scope) == 0 {
            self.b.skip(
                item.line,
                &plain(&item.text),
                "bullet names no source or destination that could be read",
            );
        }
    }

    /// An item that is neither host nor bullet: a short one with children
    /// names their subject; else it is skipped. Returns the subjects of
    /// its children.
    fn list_heading_item(
        &mut self,
        items: &[Item],
        k: usize,
        inherited: Option<Vec<usize>>,
    ) -> Option<Vec<usize>> {
        let item = &items[k];
        let has_children = items[k + 1..]
            .iter()
            .take_while(|it| it.indent > item.indent)
            .next()
            .is_some();
        let text = plain(&item.text);
        let text = text.trim_end_matches(':').trim().to_owned();
        if has_children && text.split_whitespace().count() <= 5 {
            let subjects = self.subjects_named(&text, item.line);
            self.b.definition(item.line);
            Some(subjects)
        } else {
            self.b.skip(item.line, &text, "list item names no host");
            inherited
        }
    }

    pub(crate) fn list_subjects(&mut self, index: usize) -> Option<Vec<usize>> {
        let ctx = &self.doc.ctx[index];
        let scope = self.doc.scope(index);
        if let (Some((name, line)), true) = (&scope.subject, scope.dir == Some(Dir::Out)) {
            if !scope.from_heading {
                return Some(self.subjects_named(name, *line));
            }
        }
        if let Some((pseudo, pline)) = &ctx.pseudo {
            if ALL_HOSTS.contains(&squash(pseudo).as_str()) {
                return Some(self.subjects_named(pseudo, *pline));
            }
            let name = strip_generic(pseudo);
            if !name.is_empty()
                && condition_in(pseudo).is_none()
                && name.split_whitespace().count() <= 4
            {
                return Some(self.subjects_named(&name, *pline));
            }
        }
        let (name, hline) = scope.subject?;
        if ALL_HOSTS.contains(&squash(&name).as_str()) {
            return Some(self.subjects_named(&name, hline));
        }
        Some(vec![self.section_component(&name, ctx.section)])
    }

    pub(crate) fn subjects_named(&mut self, name: &str, line: usize) -> Vec<usize> {
        if ALL_HOSTS.contains(&squash(name).as_str()) || squash(name) == "all" {
            let all: Vec<usize> = self
                .b
                .components
                .iter()
                .enumerate()
                .filter(|(_, c)| c.kind == Kind::System)
                .map(|(i, _)| i)
                .collect();
            if !all.is_empty() {
                return all;
            }
            return vec![self.system_component(line)];
        }
        let kind = self.kind_for(name, Kind::System);
        vec![self.b.component(name, kind)]
    }

    pub(crate) fn host_flows(
        &mut self,
        entry: &HostEntry,
        subjects: &[usize],
        line: usize,
        given: &HostGiven,
    ) {
        let meta = meta_of(&entry.meta);
        let (required, when) = self.host_condition(entry, &meta, line, given);
        let purpose = plain(&entry.purpose);
        self.b.describe(when.as_ref(), &purpose);
        let source_ports: Vec<PItem> = meta
            .source_ports
            .iter()
            .map(|&(a, b)| PItem::Range(a, b))
            .collect();
        for host in &entry.hosts {
            let (protos, ports, guesses) =
                self.host_ports(host, &meta, given.list_port, &purpose, line);
            let ext = self.b.external(host.addr.clone(), meta.name.as_deref());
            for &from in subjects {
                for proto in &protos {
                    let mut draft = Draft::new(from, Dest::Ext(ext), *proto, line);
                    if matches!(proto, Proto::Tcp | Proto::Udp) {
                        draft.ports = ports.clone();
                        draft.source_ports = source_ports.clone();
                    }
                    draft.required = required;
                    draft.when = when.clone();
                    draft.purpose = (!purpose.is_empty()).then(|| purpose.clone());
                    draft.guesses = guesses.clone();
                    self.b.add(draft);
                }
            }
        }
    }

    /// Whether a host entry is required, and its condition: its own, else
    /// one in its purpose, else (when optional) the list's or its
    /// purpose's phrases.
    fn host_condition(
        &mut self,
        entry: &HostEntry,
        meta: &Meta,
        line: usize,
        given: &HostGiven,
    ) -> (bool, Option<Cond>) {
        let conditional = given.conditional;
        let mut required = meta.required.unwrap_or(!conditional);
        let mut when = meta.condition.as_ref().and_then(|c| self.b.condition(c));
        // "`github.com` – app downloads (if used)": a condition in the purpose.
        // (In a section that says all its hosts are conditional, the purpose
        // names the feature instead; see below.)
        if when.is_none() && meta.required.is_none() && !conditional {
            if let Some(c) = condition_in(&entry.purpose) {
                when = self.b.condition(&c);
                required = when.is_none() && required;
            }
        }
        if when.is_none() && !required {
            if let Some(c) = given.pseudo_condition {
                when = self.b.condition(c);
            } else {
                let phrases = purpose_phrases(&entry.purpose);
                if !phrases.is_empty() {
                    when = self.b.condition(&CondText::Phrases(phrases));
                }
            }
        }
        if !required && when.is_none() {
            self.b.warn(
                line,
                WarningCode::OptionalWithoutCondition,
                "optional host entry names no condition",
            );
        }
        (required, when)
    }

    /// A host's protocols, ports and the guesses made: as stated (the
    /// host's, the entry's, the list's port), else its scheme's port, else
    /// a service's known port, else 443; TCP when no protocol is stated.
    fn host_ports(
        &mut self,
        host: &HostRef,
        meta: &Meta,
        list_port: Option<u16>,
        purpose: &str,
        line: usize,
    ) -> (Vec<Proto>, Vec<PItem>, Vec<String>) {
        let mut guesses = Vec::new();
        let (mut protos, mut ports) = (meta.protocols.clone(), Vec::new());
        if let Some(p) = host.port {
            ports.push(PItem::Range(p.0, p.1));
        } else if let Some(p) = meta.port.or(list_port) {
            ports.push(PItem::Range(p, p));
        }
        let hint_text = format!("{} {}", purpose, host.label());
        if ports.is_empty() {
            if let Some(p) = host.scheme_port {
                ports.push(PItem::Range(p, p));
            } else if let Some((proto, port, note)) = service_port_hint(&hint_text) {
                ports.push(PItem::Range(port, port));
                if protos.is_empty() {
                    protos.push(proto);
                }
                guesses.push(format!("port not stated on the page; {note}"));
                self.b.warn(
                    line,
                    WarningCode::PortAssumed,
                    format!("no port for {}; {note}", host.label()),
                );
            } else {
                ports.push(PItem::Range(443, 443));
                guesses.push("port not stated on the page; HTTPS (443) assumed".to_owned());
                self.b.warn(
                    line,
                    WarningCode::PortAssumed,
                    format!("no port for {}; 443 (HTTPS) assumed", host.label()),
                );
            }
        }
        if protos.is_empty() {
            protos.push(Proto::Tcp);
            if host.scheme_port.is_none() && guesses.is_empty() {
                guesses.push("protocol not stated on the page; TCP assumed".to_owned());
                self.b.warn(
                    line,
                    WarningCode::ProtocolAssumed,
                    format!("no protocol for {}; TCP assumed", host.label()),
                );
            }
        }
        (protos, ports, guesses)
    }
}

/// What a list says of all its items.
struct ListFacts {
    /// Whether its section or the paragraph above says its hosts are
    /// conditional.
    conditional: bool,
    /// A condition the paragraph above states.
    pseudo_condition: Option<CondText>,
    /// The subjects of the list as a whole.
    subjects: Option<Vec<usize>>,
    /// "… on port 443:" above the list: the port of its hosts.
    port: Option<u16>,
}

/// What the list around a host entry gives it.
pub(crate) struct HostGiven<'c> {
    /// Its section or list says its hosts are conditional.
    pub(crate) conditional: bool,
    /// The condition the paragraph above the list states.
    pub(crate) pseudo_condition: Option<&'c CondText>,
    /// The port the intro of the list states.
    pub(crate) list_port: Option<u16>,
}

/// One host of a host entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostRef {
    pub(crate) addr: Addr,
    pub(crate) port: Option<(u16, u16)>,
    /// 443 or 80 from a URL's scheme.
    pub(crate) scheme_port: Option<u16>,
}

impl HostRef {
    pub(crate) fn label(&self) -> String {
        match &self.addr {
            Addr::Host(h) | Addr::Cidr(h) => h.clone(),
            Addr::Placeholder(p) => format!("\"{p}\""),
        }
    }
}

/// A list item that names hosts: the hosts, the words after them up to the
/// description, and the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostEntry {
    pub(crate) hosts: Vec<HostRef>,
    pub(crate) meta: String,
    pub(crate) purpose: String,
}

/// A host token: `slack.com`, `usa.bulksms.com:5567`, `https://x.io/y`,
/// `10.0.0.0/8`, `<X IRC network>:6697` (a rendered placeholder).
pub(crate) fn host_token(token: &str) -> Option<HostRef> {
    let t = token.trim().trim_end_matches([',', ';', '.']);
    if t.is_empty() {
        return None;
    }
    if let Some(rest) = t.strip_prefix('<') {
        let close = rest.find('>')?;
        let name = rest[..close].trim();
        let after = &rest[close + 1..];
        let port = after.strip_prefix(':').and_then(port_or_range);
        if name.is_empty() || (!after.is_empty() && port.is_none()) {
            return None;
        }
        return Some(HostRef {
            addr: Addr::Placeholder(name.to_owned()),
            port,
            scheme_port: None,
        });
    }
    for (scheme, port) in [
        ("https://", 443),
        ("http://", 80),
        ("wss://", 443),
        ("ws://", 80),
    ] {
        if t.len() > scheme.len()
            && t.get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        {
            let rest = &t[scheme.len()..];
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let (host, p) = split_port(authority);
            let host = host_of(host).or_else(|| cidr_of(host))?;
            return Some(HostRef {
                addr: Addr::Host(host),
                port: p,
                scheme_port: Some(port),
            });
        }
    }
    if let Some(net) = cidr_of(t) {
        return Some(HostRef {
            addr: Addr::Cidr(net),
            port: None,
            scheme_port: None,
        });
    }
    let (host, port) = split_port(t);
    if host.len() != t.len() && port.is_none() {
        return None;
    }
    if let Some(net) = cidr_of(host) {
        return Some(HostRef {
            addr: Addr::Cidr(net),
            port,
            scheme_port: None,
        });
    }
    Some(HostRef {
        addr: Addr::Host(host_of(host)?),
        port,
        scheme_port: None,
    })
}

pub(crate) fn split_port(t: &str) -> (&str, Option<(u16, u16)>) {
    match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match port_or_range(p) {
            Some(r) => (h, Some(r)),
            None => (t, None),
        },
        _ => (t, None),
    }
}

/// Reads the hosts at the start of a list item.
pub(crate) fn host_entry(raw: &str) -> Option<HostEntry> {
    let mut rest = raw.trim();
    let mut hosts = Vec::new();
    loop {
        let (token, after, quoted) = next_token(rest)?;
        let host = if quoted == Tok::Quoted && hosts.is_empty() {
            let name = plain(&token);
            (!name.is_empty() && name.contains(' ')).then_some(HostRef {
                addr: Addr::Placeholder(name),
                port: None,
                scheme_port: None,
            })
        } else if quoted == Tok::Code {
            host_token(&token)
        } else {
            host_token(&plain_token(&token))
        };
        match host {
            Some(h) => hosts.push(h),
            None if hosts.is_empty() => return None,
            None => break,
        }
        rest = after.trim_start();
        // Alternatives: "a / b", "a or b", "a, b".
        let mut joined = false;
        for sep in ["/ ", "or ", ", ", "and "] {
            if let Some(next) = rest.strip_prefix(sep) {
                if next_token(next.trim_start()).is_some_and(|(t, _, q)| match q {
                    Tok::Code => host_token(&t).is_some(),
                    Tok::Quoted => false,
                    Tok::Other => host_token(&plain_token(&t)).is_some(),
                }) {
                    rest = next.trim_start();
                    joined = true;
                    break;
                }
            }
        }
        if !joined {
            break;
        }
    }
    let rest = rest.trim();
    // Description after " - ", ": ", " – ", " — " outside code spans.
    let (meta, purpose) = split_purpose(rest);
    Some(HostEntry {
        hosts,
        meta,
        purpose,
    })
}

/// What kind of token [`next_token`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A code span: its content is literal.
    Code,
    /// A quoted string.
    Quoted,
    /// A word or a link.
    Other,
}

/// The first token of a text: a code span, a quoted string, a link, or a
/// word; the rest; and its kind.
pub(crate) fn next_token(text: &str) -> Option<(String, &str, Tok)> {
    let t = text.trim_start();
    let first = t.chars().next()?;
    match first {
        '`' => {
            let run = t.chars().take_while(|&c| c == '`').count();
            let fence = &t[..run];
            let end = t[run..].find(fence)?;
            let inner = t[run..run + end].trim().to_owned();
            Some((inner, &t[run + end + run..], Tok::Code))
        }
        '"' | '“' => {
            let close = if first == '“' { '”' } else { '"' };
            let body = &t[first.len_utf8()..];
            let end = body.find(close)?;
            Some((
                body[..end].to_owned(),
                &body[end + close.len_utf8()..],
                Tok::Quoted,
            ))
        }
        '[' => {
            let end = t.find("](")?;
            let close = t[end..].find(')')? + end;
            let text_part = &t[1..end];
            let target = &t[end + 2..close];
            // Prefer the visible text when it is a host; else the target URL.
            let token = if host_token(&plain(text_part)).is_some() {
                text_part.to_owned()
            } else {
                target.to_owned()
            };
            Some((token, &t[close + 1..], Tok::Other))
        }
        _ => {
            let end = t.find(char::is_whitespace).unwrap_or(t.len());
            Some((t[..end].to_owned(), &t[end..], Tok::Other))
        }
    }
}

/// A token less markdown escapes and emphasis (`monitoring.\*.amazonaws.com`).
pub(crate) fn plain_token(token: &str) -> String {
    let p = plain(token);
    // Emphasis left unpaired by a line break ("*host*") wraps the whole token.
    if p.len() > 2 && p.starts_with('*') && p.ends_with('*') {
        return p[1..p.len() - 1].to_owned();
    }
    p
}

pub(crate) fn split_purpose(rest: &str) -> (String, String) {
    for lead in ["- ", "– ", "— ", ": ", "-- "] {
        if let Some(p) = rest.strip_prefix(lead) {
            return (String::new(), p.trim().to_owned());
        }
    }
    let mut in_code = false;
    let bytes: Vec<(usize, char)> = rest.char_indices().collect();
    for (k, &(i, c)) in bytes.iter().enumerate() {
        if c == '`' {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let tail = &rest[i..];
        for sep in [" - ", " – ", " — ", ": "] {
            if let Some(after) = tail.strip_prefix(sep) {
                return (rest[..i].trim().to_owned(), after.trim().to_owned());
            }
        }
        let _ = k;
    }
    (rest.to_owned(), String::new())
}

/// What the words between the hosts and the description say.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    pub(crate) name: Option<String>,
    pub(crate) protocols: Vec<Proto>,
    pub(crate) required: Option<bool>,
    pub(crate) condition: Option<CondText>,
    pub(crate) source_ports: Vec<(u16, u16)>,
    /// "`sentry.io`, port 443", "… (HTTPS)": the port the words state.
    pub(crate) port: Option<u16>,
}

/// The port an application protocol named alone implies: HTTPS or TLS 443, HTTP 80.
fn scheme_word(text: &str) -> Option<u16> {
    match text.trim().to_lowercase().as_str() {
        "https" | "tls" | "https/tls" | "wss" => Some(443),
        "http" | "ws" => Some(80),
        _ => None,
    }
}

pub(crate) fn meta_of(meta: &str) -> Meta {
    let mut out = Meta::default();
    let mut rest = meta.trim();
    if rest.starts_with('(') {
        if let Some(close) = rest.find(')') {
            let inner = plain(&rest[1..close]);
            // "(HTTPS)" is how it is reached, not what it is called.
            match scheme_word(&inner) {
                Some(port) => {
                    out.port = Some(port);
                    out.protocols.push(Proto::Tcp);
                }
                None => out.name = Some(inner).filter(|s| !s.is_empty()),
            }
            rest = rest[close + 1..].trim_start();
        }
    }
    let source_port_at = find_ci(rest, "from port ").map(|f| f + 5);
    if let Some(pos) = find_ci(rest, "port ").filter(|&p| Some(p) != source_port_at) {
        out.port = crate::clauses::ports_in(&rest[pos..])
            .first()
            .map(|&(a, _)| a)
            .or(out.port);
    }
    if out.port.is_none() {
        out.port = words(rest).iter().find_map(|w| scheme_word(w));
    }
    if let Some(pos) = find_ci(rest, "from port ") {
        if let Some((token, _, _)) = next_token(&rest[pos + 10..]) {
            out.source_ports = port_cell(&plain(&token))
                .items
                .iter()
                .filter_map(|p| match p {
                    PortItem::Range(a, b) => Some((*a, *b)),
                    _ => None,
                })
                .collect();
        }
    }
    out.condition = condition_in(rest);
    // Protocol and required words outside code spans and parentheses.
    let mut bare = String::new();
    let mut depth = 0usize;
    let mut code = false;
    for c in rest.chars() {
        match c {
            '`' => code = !code,
            '(' if !code => depth += 1,
            ')' if !code => depth = depth.saturating_sub(1),
            c if !code && depth == 0 => bare.push(c),
            _ => {}
        }
    }
    let head = match find_ci(&bare, "when") {
        Some(p) => bare[..p].to_owned(),
        None => bare.clone(),
    };
    let stated: Vec<Proto> = words(&head)
        .iter()
        .filter_map(|w| match w.as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "icmp" => Some(Proto::Icmp),
            _ => None,
        })
        .collect();
    for p in stated {
        if !out.protocols.contains(&p) {
            out.protocols.push(p);
        }
    }
    let ws = words(&head);
    if ws.iter().any(|w| w == "optional") {
        out.required = Some(false);
    } else if ws.iter().any(|w| w == "required") {
        out.required = Some(true);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_entries() {
        let e = host_entry("www.smsmatrix.com / usa.bulksms.com:5567 - International SMS alerts")
            .unwrap();
        assert_eq!(e.hosts.len(), 2);
        assert_eq!(e.hosts[1].port, Some((5567, 5567)));
        assert_eq!(e.purpose, "International SMS alerts");
        let e =
            host_entry("\"X IRC network\" - IRC alerts If using public / external server").unwrap();
        assert_eq!(e.hosts[0].addr, Addr::Placeholder("X IRC network".into()));
        let e =
            host_entry(r"monitoring.\*.amazonaws.com - Cloudwatch check configuration").unwrap();
        assert_eq!(
            e.hosts[0].addr,
            Addr::Host("monitoring.*.amazonaws.com".into())
        );
        let e = host_entry("`<X IRC network>:6697` (IRC network) TCP, optional, only when `irc-alerts` (IRC alerts): IRC alerts").unwrap();
        assert_eq!(e.hosts[0].port, Some((6697, 6697)));
        assert_eq!(
            e.meta,
            "(IRC network) TCP, optional, only when `irc-alerts` (IRC alerts)"
        );
        assert_eq!(e.purpose, "IRC alerts");
        assert!(host_entry("Blank leading fields are elided.").is_none());
        assert!(host_entry("`T::8112` is TCP to port 8112.").is_none());
        assert!(host_entry("see Components.md").is_none());
        let e = host_entry("https://hooks.example.com/path - webhooks").unwrap();
        assert_eq!(e.hosts[0].scheme_port, Some(443));
    }
}
