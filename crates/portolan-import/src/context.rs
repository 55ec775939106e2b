//! What a table or list inherits from the page around it: captions that
//! name its source or destination ("Source – Kibana", "Ports used for
//! all-machine to control plane communications"), the sentence that
//! introduces it ("The application servers must be able to reach the
//! following hosts:"), and which headings are topics ("Public port",
//! "Database and cache") rather than parties. Every word list is data.

use crate::blocks::Block;
use crate::structure::{direction_word, strip_generic, Dir, Doc, ALL_HOSTS};
use crate::text::{find_ci, plain, squash, words};

/// The context of one block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope {
    /// The party the block is about, with the line that names it.
    pub(crate) subject: Option<(String, usize)>,
    /// Sources every row has, from a caption or sentence.
    pub(crate) sources: Vec<String>,
    /// Destinations every row has, from a caption or sentence.
    pub(crate) dests: Vec<String>,
    /// Direction from the subject's point of view.
    pub(crate) dir: Option<Dir>,
    /// The line of the caption or sentence that gave sources or destinations.
    pub(crate) line: Option<usize>,
    /// Whether the subject is a heading (not a sentence).
    pub(crate) from_heading: bool,
}

/// Words that open a caption naming the source of what follows.
const SOURCE_LEADS: &[&str] = &["source", "sources", "from", "origin"];
/// Words that open a caption naming the destination of what follows.
const DEST_LEADS: &[&str] = &["destination", "destinations", "to", "target", "targets"];
/// What separates a caption's lead word from its party.
const LEAD_SEPARATORS: &[char] = &[':', '–', '—', '-'];
/// Leading words of an "X to Y" caption that are not part of X.
const PAIR_PREFIXES: &[&str] = &[
    "ports used for ",
    "ports used by ",
    "ports for ",
    "port requirements for ",
    "traffic from ",
    "connections from ",
    "communication from ",
    "communications from ",
    "from ",
];
/// Trailing words of an "X to Y" caption that are not part of Y.
const PAIR_SUFFIXES: &[&str] = &[
    " communications",
    " communication",
    " traffic",
    " connections",
    " connectivity",
    " ports",
];

/// Last words that make a heading a topic ("Public port", "Cassandra
/// client port", "ZooKeeper mode"), not a component.
const TOPIC_TAILS: &[&str] = &[
    "public",
    "private",
    "internal",
    "inter-node",
    "internode",
    "intra-cluster",
    "client",
    "default",
    "additional",
    "other",
    "common",
    "management",
    "administrative",
    "listeners",
    "listener",
    "sources",
    "notifications",
    "configuration",
    "prerequisites",
    "installation",
    "mode",
    "setup",
    "options",
    "notes",
    "reference",
    "information",
    "info",
];

/// Verbs that say the words before them connect to the words after them,
/// with the direction from the subject's point of view.
const CONNECT_VERBS: &[(&str, Dir)] = &[
    (" must be able to reach ", Dir::Out),
    (" must be able to connect to ", Dir::Out),
    (" needs to be able to reach ", Dir::Out),
    (" need to be able to reach ", Dir::Out),
    (" need to reach ", Dir::Out),
    (" needs to reach ", Dir::Out),
    (" must reach ", Dir::Out),
    (" must connect to ", Dir::Out),
    (" connects out to ", Dir::Out),
    (" connect out to ", Dir::Out),
    (" connects to ", Dir::Out),
    (" connect to ", Dir::Out),
    (" connects on ", Dir::Out),
    (" connect on ", Dir::Out),
    (" reaches ", Dir::Out),
    (" reach ", Dir::Out),
    (" talks to ", Dir::Out),
    (" talk to ", Dir::Out),
    (" listens on ", Dir::In),
    (" listen on ", Dir::In),
];

/// Objects that name no party ("the following hosts", "each data source
/// you configure").
const NON_PARTIES: &[&str] = &[
    "the following",
    "following",
    "these",
    "this",
    "each ",
    "every ",
    "any ",
    "port",
    "ports",
    "it",
    "them",
];

/// Words before the party of a heading that are not part of it: "Outbound
/// traffic from each database node" is about "Database node" (the generic
/// words go first, see `strip_generic`).
const HEADING_LEADS: &[&str] = &["from ", "each ", "every ", "per "];

/// The party a heading names: its generic words dropped, then the leading
/// words of [`HEADING_LEADS`] ("Inbound traffic to each database node" →
/// "Database node").
/// A heading that names every host ("Every system component") stays whole.
pub(crate) fn heading_party(heading: &str) -> String {
    let mut t = strip_generic(heading);
    if ALL_HOSTS.contains(&squash(&t).as_str()) {
        return t;
    }
    let mut dropped = false;
    loop {
        let lower = t.to_lowercase();
        match HEADING_LEADS.iter().find(|l| lower.starts_with(**l)) {
            Some(l) => {
                t = t[l.len()..].trim_start().to_owned();
                dropped = true;
            }
            None => break,
        }
    }
    if dropped {
        party_name(&t)
    } else {
        t
    }
}

/// Articles and determiners dropped from the front of a party.
const ARTICLES: &[&str] = &[
    "the ", "a ", "an ", "your ", "our ", "its ", "their ", "other ",
];

/// A party as the page names it: articles dropped, first letter upper case,
/// "all-machine" read as "All machines".
pub(crate) fn party_name(text: &str) -> String {
    let mut t = text
        .trim()
        .trim_end_matches([':', '.', ','])
        .trim()
        .to_owned();
    loop {
        let lower = t.to_lowercase();
        match ARTICLES.iter().find(|a| lower.starts_with(**a)) {
            Some(a) => t = t[a.len()..].trim_start().to_owned(),
            None => break,
        }
    }
    let lower = t.to_lowercase();
    if let Some(rest) = lower.strip_prefix("all-") {
        if !rest.contains(' ') && !rest.is_empty() {
            let plural = if rest.ends_with('s') {
                rest.to_owned()
            } else {
                format!("{rest}s")
            };
            t = format!("all {plural}");
        }
    }
    let mut chars = t.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => t,
    }
}

/// Parties in a phrase: "Logstash, Beats, Elastic Agent", "users or the reverse proxy".
pub(crate) fn party_list(text: &str) -> Vec<String> {
    let t = text
        .replace(" and ", ",")
        .replace(" or ", ",")
        .replace("; ", ",");
    t.split(',')
        .map(party_name)
        .filter(|p| !p.is_empty() && !is_non_party(p))
        .collect()
}

fn is_non_party(name: &str) -> bool {
    let lower = name.to_lowercase();
    NON_PARTIES
        .iter()
        .any(|n| lower == n.trim() || lower.starts_with(n))
        || lower.split_whitespace().count() > 6
}

/// Reads a caption: "Source – Kibana" (sources), "Destination – MySQL
/// Database" (destinations), "Ports used for all-machine to control plane
/// communications" (both).
pub(crate) fn caption(text: &str) -> (Vec<String>, Vec<String>) {
    let t = plain(text);
    let t = t.trim().trim_end_matches(':').trim();
    let lower = t.to_lowercase();
    for (leads, is_source) in [(SOURCE_LEADS, true), (DEST_LEADS, false)] {
        for lead in leads {
            if !lower.starts_with(lead) {
                continue;
            }
            // "Source – X", "Source: X": the lead word, then a dash or colon.
            let rest = t[lead.len()..].trim_start();
            if !rest.starts_with(LEAD_SEPARATORS) {
                continue;
            }
            let parties = party_list(rest.trim_start_matches(LEAD_SEPARATORS));
            if parties.is_empty() {
                continue;
            }
            return if is_source {
                (parties, Vec::new())
            } else {
                (Vec::new(), parties)
            };
        }
    }
    // "Inbound traffic from other hosts", "Outbound connections to X".
    if let Some(found) = directed(t, true) {
        return found;
    }
    // "X to Y communications", "from X to Y".
    let Some(prefix) = PAIR_PREFIXES.iter().find(|p| lower.starts_with(**p)) else {
        return (Vec::new(), Vec::new());
    };
    let body = &t[prefix.len()..];
    let Some(to) = find_ci(body, " to ") else {
        return (Vec::new(), Vec::new());
    };
    let mut dest = body[to + 4..].trim().to_owned();
    for s in PAIR_SUFFIXES {
        if dest.to_lowercase().ends_with(s) {
            dest.truncate(dest.len() - s.len());
        }
    }
    let from = party_list(&body[..to]);
    let to = party_list(&dest);
    if from.is_empty() || to.is_empty() {
        return (Vec::new(), Vec::new());
    }
    (from, to)
}

/// A direction cell that names the peer: "Allow inbound from clients"
/// (sources), "Outbound to the proxy" (destinations); empty otherwise.
pub(crate) fn direction_peers(cell: &str) -> (Vec<String>, Vec<String>) {
    directed(&plain(cell), false).unwrap_or_default()
}

/// A text that states its direction and names the peer: "Inbound traffic
/// from other hosts" (sources), "Outbound connections to the internet"
/// (destinations). "Inbound traffic to X" names the subject, not a peer.
/// A caption (`caption`) has only direction and generic words before the
/// peer; a cell may have a short lead of any words ("Allow inbound from").
fn directed(t: &str, caption: bool) -> Option<(Vec<String>, Vec<String>)> {
    let (word, is_source) = match direction_word(t)? {
        Dir::In => (" from ", true),
        Dir::Out => (" to ", false),
        Dir::Both => return None,
    };
    let at = find_ci(t, word)?;
    let lead = &t[..at];
    let short = if caption {
        strip_generic(lead).is_empty()
    } else {
        lead.split_whitespace().count() <= 3
    };
    if !short || direction_word(lead).is_none() {
        return None;
    }
    let mut rest = t[at + word.len()..].trim().to_owned();
    for s in PAIR_SUFFIXES {
        if rest.to_lowercase().ends_with(s) {
            rest.truncate(rest.len() - s.len());
        }
    }
    let parties = party_list(&rest);
    if parties.is_empty() {
        return None;
    }
    Some(if is_source {
        (parties, Vec::new())
    } else {
        (Vec::new(), parties)
    })
}

/// Whether a heading is a topic of the page rather than a party.
pub(crate) fn is_topic(heading: &str) -> bool {
    let stripped = strip_generic(heading);
    if stripped.is_empty() {
        return true;
    }
    let ws = words(&stripped.to_lowercase());
    ws.last().is_some_and(|w| TOPIC_TAILS.contains(&w.as_str()))
        || ws.iter().any(|w| w == "and" || w == "&")
        || caption(heading) != (Vec::new(), Vec::new())
}

/// A sentence that says who connects to whom: "The application servers
/// must be able to reach the following hosts", "Users and the desktop and
/// mobile clients reach the web server", "The Zabbix server listens on
/// port 10051". Gives the subject's parties, the direction, and the
/// object's parties (empty when the object names none).
pub(crate) fn connect_sentence(sentence: &str) -> Option<(Vec<String>, Dir, Vec<String>)> {
    let text = format!(" {} ", plain(sentence).trim().trim_end_matches([':', '.']));
    let (pos, verb, dir) = CONNECT_VERBS
        .iter()
        .filter_map(|(v, d)| find_ci(&text, v).map(|p| (p, *v, *d)))
        .min_by_key(|(p, _, _)| *p)?;
    let head = text[..pos]
        .rsplit([',', ';', ':', '.'])
        .next()
        .unwrap_or("");
    let subjects = party_list(head);
    if subjects.is_empty() || head.split_whitespace().count() > 8 {
        return None;
    }
    let object = &text[pos + verb.len()..];
    let object = object
        .split([',', ';', '(', ':'])
        .next()
        .unwrap_or("")
        .split(" on ")
        .next()
        .unwrap_or("")
        .split(" over ")
        .next()
        .unwrap_or("");
    let objects = if dir == Dir::In {
        Vec::new()
    } else {
        party_list(object)
    };
    Some((subjects, dir, objects))
}

impl Doc<'_> {
    /// Section `s` and the sections whose headings enclose it, innermost first.
    pub(crate) fn enclosing_sections(&self, s: usize) -> Vec<usize> {
        let mut out = vec![s];
        let mut level = match &self.section_heading[s] {
            Some(h) => h.level,
            None => return out,
        };
        for k in (0..s).rev() {
            match &self.section_heading[k] {
                Some(h) if h.level < level => {
                    out.push(k);
                    level = h.level;
                }
                Some(_) => {}
                None => out.push(k),
            }
        }
        out
    }

    /// The sentences that introduce block `i`: the pseudo-heading just
    /// above it, else the paragraph just above it in the same section when
    /// it ends with ':' ("The application servers must be able to reach the
    /// following hosts:"); its sentences, last first.
    pub(crate) fn intro(&self, i: usize) -> Vec<(String, usize)> {
        let ctx = &self.ctx[i];
        let Some(above) = i.checked_sub(1) else {
            return Vec::new();
        };
        let Block::Paragraph { line, text } = &self.blocks[above] else {
            return Vec::new();
        };
        if let Some((p, pline)) = &ctx.pseudo {
            if pline == line {
                return vec![(p.clone(), *pline)];
            }
        }
        let p = plain(text);
        if !p.trim_end().ends_with(':') {
            return Vec::new();
        }
        let mut sentences: Vec<(String, usize)> = p
            .split(". ")
            .filter(|s| !s.trim().is_empty())
            .map(|s| (s.trim().to_owned(), *line))
            .collect();
        sentences.reverse();
        sentences
    }

    /// What block `i` inherits: captions, the introducing sentence, the
    /// headings that are parties.
    pub(crate) fn scope(&self, i: usize) -> Scope {
        let ctx = &self.ctx[i];
        let mut scope = Scope::default();
        let mut texts: Vec<(String, usize)> = Vec::new();
        if let Some(p) = &ctx.pseudo {
            texts.push(p.clone());
        }
        for h in ctx.path.iter().rev().filter(|h| h.level > 1) {
            texts.push((h.text.clone(), h.line));
        }
        for (text, line) in &texts {
            let (sources, dests) = caption(text);
            if scope.sources.is_empty() && !sources.is_empty() {
                scope.sources = sources;
                scope.line = Some(*line);
            }
            if scope.dests.is_empty() && !dests.is_empty() {
                scope.dests = dests;
                scope.line = Some(*line);
            }
        }
        let said = self
            .intro(i)
            .into_iter()
            .find_map(|(sentence, line)| connect_sentence(&sentence).map(|c| (c, line)));
        if let Some(((subjects, dir, objects), line)) = said {
            {
                if objects.is_empty() && subjects.len() == 1 {
                    scope.subject = Some((subjects[0].clone(), line));
                    scope.dir = Some(dir);
                } else if !objects.is_empty() {
                    scope.sources = subjects;
                    scope.dests = objects;
                    scope.line = Some(line);
                }
            }
        }
        if scope.subject.is_none() {
            scope.subject = ctx
                .path
                .iter()
                .rev()
                .filter(|h| h.level > 1)
                .find(|h| !is_topic(&h.text))
                .map(|h| (heading_party(&h.text), h.line));
            scope.from_heading = scope.subject.is_some();
        }
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn captions() {
        assert_eq!(caption("Source – Kibana"), (s(&["Kibana"]), s(&[])));
        assert_eq!(
            caption("Destination – MySQL Database"),
            (s(&[]), s(&["MySQL Database"]))
        );
        assert_eq!(
            caption("**Ports used for all-machine to control plane communications**"),
            (s(&["All machines"]), s(&["Control plane"]))
        );
        assert_eq!(
            caption("Source – End user / browser"),
            (s(&["End user / browser"]), s(&[]))
        );
        assert_eq!(caption("Ingress"), (s(&[]), s(&[])));
        assert_eq!(
            caption("Inbound traffic from other hosts"),
            (s(&["Hosts"]), s(&[]))
        );
        assert_eq!(
            caption("Outbound connections to the object store"),
            (s(&[]), s(&["Object store"]))
        );
        assert_eq!(
            caption("Inbound traffic to each database node"),
            (s(&[]), s(&[]))
        );
        assert_eq!(
            caption("Outbound traffic from the workers"),
            (s(&[]), s(&[]))
        );
        assert_eq!(caption("Server"), (s(&[]), s(&[])));
        assert_eq!(caption("Storage"), (s(&[]), s(&[])));
    }

    #[test]
    fn direction_cells() {
        assert_eq!(
            direction_peers("Allow inbound from Teleport services"),
            (s(&["Teleport services"]), s(&[]))
        );
        assert_eq!(
            direction_peers("Outbound to the proxy"),
            (s(&[]), s(&["Proxy"]))
        );
        assert_eq!(direction_peers("Inbound"), (s(&[]), s(&[])));
        assert_eq!(
            direction_peers("Incoming, used by clients that connect from outside"),
            (s(&[]), s(&[]))
        );
    }

    #[test]
    fn heading_parties() {
        assert_eq!(
            heading_party("Inbound traffic to each database node"),
            "Database node"
        );
        assert_eq!(
            heading_party("Outbound traffic from each database node"),
            "Database node"
        );
        assert_eq!(heading_party("Control plane ports"), "Control plane");
        assert_eq!(heading_party("Every worker"), "Worker");
        assert_eq!(
            heading_party("Every system component"),
            "Every system component"
        );
    }

    #[test]
    fn topics() {
        for t in [
            "Public port",
            "Cassandra inter-node ports",
            "Cassandra client port",
            "Database and cache",
            "Network ports",
            "ZooKeeper mode",
            "Source – Kibana",
        ] {
            assert!(is_topic(t), "{t}");
        }
        for t in [
            "Consul servers",
            "Control plane",
            "Worker node(s)",
            "Zabbix proxy",
        ] {
            assert!(!is_topic(t), "{t}");
        }
    }

    #[test]
    fn sentences() {
        assert_eq!(
            connect_sentence("The application servers must be able to reach the following hosts:"),
            Some((s(&["Application servers"]), Dir::Out, s(&[])))
        );
        assert_eq!(
            connect_sentence("Users and the desktop and mobile clients reach the web server:"),
            Some((
                s(&["Users", "Desktop", "Mobile clients"]),
                Dir::Out,
                s(&["Web server"])
            ))
        );
        assert_eq!(
            connect_sentence("The Sentry host connects out to:"),
            Some((s(&["Sentry host"]), Dir::Out, s(&[])))
        );
        assert_eq!(
            connect_sentence("Grafana connects out to each data source you configure"),
            Some((s(&["Grafana"]), Dir::Out, s(&[])))
        );
        assert_eq!(connect_sentence("Open the ports before you install"), None);
    }
}
