//! Peers named in cells: components, address blocks, host names, "Self" and
//! "All", and the explicit unspecified party when the page names none.

use crate::build::{Addr, Kind};
use crate::page::Reader;
use crate::report::WarningCode;
use crate::text::{contains_words, inline, plain};

/// Words that open a name of a group rather than of one component.
const GROUP_OPENERS: &[&str] = &["all ", "every ", "each "];

/// Words that say a port serves the product's users, whose source is then
/// "Clients" rather than unspecified.
const CLIENT_WORDS: &[&str] = &[
    "frontend",
    "front end",
    "front-end",
    "web ui",
    "web interface",
    "browser",
    "browsers",
    "end users",
    "webhooks",
];

impl Reader<'_, '_> {
    /// The peer of a row that names none. A source is "Clients" when the
    /// row or its section says it serves a frontend, a web interface,
    /// browsers or webhooks (the product's users); otherwise, and for a
    /// destination, it is the explicit unspecified party the user must
    /// place. Either way the flow's `guess:` says so.
    pub(crate) fn implicit(
        &mut self,
        source: bool,
        line: usize,
        section: Option<usize>,
        text: &str,
        guesses: &mut Vec<String>,
    ) -> Peer {
        let what = if source { "source" } else { "destination" };
        if source {
            let said = CLIENT_WORDS.iter().find(|w| {
                contains_words(text, w)
                    || section.is_some_and(|s| {
                        self.doc.enclosing_sections(s).iter().any(|&k| {
                            self.doc.prose[k]
                                .iter()
                                .any(|(_, p)| contains_words(&plain(p), w))
                        })
                    })
            });
            if let Some(word) = said {
                self.b.warn(
                    line,
                    WarningCode::PeerAssumed,
                    format!("the source is not named on the page; taken as \"Clients\" (an external component), as the page says it serves the {word}"),
                );
                guesses.push(format!(
                    "source not named on the page; Clients assumed (it serves the {word})"
                ));
                return Peer::Comp(self.b.component("Clients", Kind::External));
            }
        }
        let name = if source {
            "Unspecified source"
        } else {
            "Unspecified destination"
        };
        self.b.warn(
            line,
            WarningCode::UnspecifiedPeer,
            format!("the {what} is not named on the page; the flow goes to \"{name}\", which you must place"),
        );
        guesses.push(format!(
            "{what} not named on the page; left unspecified: place it by hand"
        ));
        let c = self.b.component(name, Kind::External);
        if self.b.components[c].description.is_none() {
            self.b.components[c].description = Some(format!(
                "The page does not say what the {what} of these flows is: replace it with the component, network or endpoint it is."
            ));
        }
        Peer::Comp(c)
    }

    pub(crate) fn peers(
        &mut self,
        names: &[String],
        source: bool,
        subject: Option<usize>,
        line: usize,
    ) -> Vec<Peer> {
        let mut out = Vec::new();
        for name in names {
            if let Some(p) = self.peer(name, source, subject, line, Kind::System) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    pub(crate) fn peer(
        &mut self,
        name: &str,
        source: bool,
        subject: Option<usize>,
        line: usize,
        default: Kind,
    ) -> Option<Peer> {
        let lower = name.trim().to_lowercase();
        if ANY_PEER.contains(&lower.as_str()) {
            let mut g = Vec::new();
            self.b.warn(
                line,
                WarningCode::ImplicitPeer,
                format!("peer \"{name}\" is implicit"),
            );
            return Some(self.implicit(source, line, None, "", &mut g));
        }
        if SELF_PEER.contains(&lower.as_str()) {
            return self.self_peer(name, subject, line);
        }
        if let Some(peer) = self.address_peer(name, source) {
            return Some(peer);
        }
        let kind = self.kind_for(name, default);
        let new = self.b.find_component(name).is_none();
        let c = self.b.component(name.trim(), kind);
        if new && GROUP_OPENERS.iter().any(|g| lower.starts_with(g)) {
            self.b.warn(
                line,
                WarningCode::GroupComponent,
                format!("\"{}\" names a group of machines; it was kept as one component: place it on every host it covers", name.trim()),
            );
        }
        Some(Peer::Comp(c))
    }

    /// "Self", "localhost": the subject itself (said), or a skip without
    /// one.
    fn self_peer(&mut self, name: &str, subject: Option<usize>, line: usize) -> Option<Peer> {
        match subject {
            Some(s) => {
                let sname = self.b.components[s].name.clone();
                self.b.warn(
                    line,
                    WarningCode::ImplicitPeer,
                    format!("peer \"{name}\" taken as {sname} itself"),
                );
                Some(Peer::Comp(s))
            }
            None => {
                self.b.skip(
                    line,
                    name,
                    "\"Self\" without a heading naming the component",
                );
                None
            }
        }
    }

    /// A network or host name: an external source component, or an
    /// external destination.
    fn address_peer(&mut self, name: &str, source: bool) -> Option<Peer> {
        if let Some(net) = cidr_of(name) {
            if source {
                let label = if net == "0.0.0.0/0" || net == "::/0" {
                    "Anywhere".to_owned()
                } else {
                    net.clone()
                };
                return Some(Peer::Comp(self.b.component(&label, Kind::External)));
            }
            return Some(Peer::Ext(self.b.external(Addr::Cidr(net), None)));
        }
        let host = host_of(name)?;
        if source {
            return Some(Peer::Comp(self.b.component(&host, Kind::External)));
        }
        Some(Peer::Ext(self.b.external(Addr::Host(host), None)))
    }
}

/// Peers that mean anyone: the peer is implicit.
const ANY_PEER: &[&str] = &[
    "all",
    "any",
    "anywhere",
    "everyone",
    "everything",
    "*",
    "any host",
    "all hosts",
];

/// Peers that mean the subject itself.
const SELF_PEER: &[&str] = &[
    "self",
    "itself",
    "localhost",
    "local",
    "same host",
    "this host",
    "this node",
    "the same node",
];

/// A peer named in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    Comp(usize),
    Ext(usize),
}

/// Peer names in a cell: "Self, Control plane", "<ul><li>a</li><li>b</li></ul>", "a / b".
pub(crate) fn peer_names(raw: &str) -> Vec<String> {
    let cell = inline(raw);
    let mut out = Vec::new();
    for item in cell.items() {
        for part in item
            .replace("; ", ",")
            .replace(" and ", ",")
            .replace(" & ", ",")
            .replace(" / ", ",")
            .split(',')
        {
            let part = part.trim().trim_end_matches('.').trim();
            if !part.is_empty() && !matches!(part, "-" | "—" | "N/A" | "n/a") {
                out.push(part.to_owned());
            }
        }
    }
    out
}

/// An address block or a single address, as a CIDR.
pub(crate) fn cidr_of(text: &str) -> Option<String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<ipnet::IpNet>() {
        return Some(net.trunc().to_string());
    }
    if let Ok(addr) = t.parse::<std::net::IpAddr>() {
        return Some(addr.to_string());
    }
    None
}

pub(crate) const FILE_EXTENSIONS: &[&str] = &[
    "md", "yaml", "yml", "json", "txt", "html", "htm", "png", "jpg", "jpeg", "svg", "sh", "rs",
    "py", "toml", "conf", "cfg", "log", "xml", "csv", "gz", "zip", "tar", "exe", "js", "ts", "css",
    "pdf", "ini", "pem", "crt", "key", "jar", "go", "rb", "java", "deb", "rpm",
];

/// A DNS name (wildcards allowed) with at least one dot and a top-level
/// label of letters, lowercased.
pub(crate) fn host_of(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches('.').to_lowercase();
    if !t.contains('.') || !portolan_spec::check::is_valid_host(&t) {
        return None;
    }
    let tld = t.rsplit('.').next()?;
    if tld.len() < 2
        || !tld.chars().all(|c| c.is_ascii_alphabetic())
        || FILE_EXTENSIONS.contains(&tld)
    {
        return None;
    }
    if t.split('.').all(|l| l == "*") {
        return None;
    }
    Some(t)
}
