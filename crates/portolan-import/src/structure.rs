//! The page model: the headings on the path to each block, the pseudo-headings
//! (bold lines and short lines ending with ':') above it, the prose of each
//! section, and the words that make a heading context rather than a party.

use crate::blocks::Block;
use crate::text::{plain, words};

/// A heading on the path to a block.
#[derive(Debug, Clone)]
pub(crate) struct Heading {
    pub(crate) level: usize,
    pub(crate) text: String,
    pub(crate) line: usize,
}

/// Where a block sits.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ctx {
    pub(crate) path: Vec<Heading>,
    /// A short paragraph ending with ':' ("Web frontend:") above the block.
    pub(crate) pseudo: Option<(String, usize)>,
    /// Index of the section (heading scope); 0 before the first heading.
    pub(crate) section: usize,
}

pub(crate) struct Doc<'a> {
    pub(crate) blocks: &'a [Block],
    pub(crate) ctx: Vec<Ctx>,
    /// Plain text of each section's paragraphs, with their first line.
    pub(crate) prose: Vec<Vec<(usize, String)>>,
    /// Heading text of each section.
    pub(crate) section_heading: Vec<Option<Heading>>,
    /// Whether a section's prose says its requirements are conditional.
    pub(crate) conditional: Vec<bool>,
}

impl<'a> Doc<'a> {
    pub(crate) fn new(blocks: &'a [Block]) -> Self {
        let mut ctx = Vec::with_capacity(blocks.len());
        let mut path: Vec<Heading> = Vec::new();
        let mut pseudo = None;
        let mut section = 0;
        let mut prose = vec![Vec::new()];
        let mut section_heading = vec![None];
        for block in blocks {
            match block {
                Block::Heading { line, level, text } => {
                    path.retain(|h| h.level < *level);
                    let h = Heading {
                        level: *level,
                        text: plain(text),
                        line: *line,
                    };
                    path.push(h.clone());
                    pseudo = None;
                    section += 1;
                    prose.push(Vec::new());
                    section_heading.push(Some(h));
                }
                Block::Paragraph { line, text } => {
                    if let Some(p) = pseudo_heading(text) {
                        pseudo = Some((p, *line));
                    } else {
                        prose[section].push((*line, text.clone()));
                    }
                }
                _ => {}
            }
            ctx.push(Ctx {
                path: path.clone(),
                pseudo: pseudo.clone(),
                section,
            });
        }
        let conditional = prose
            .iter()
            .map(|paragraphs| paragraphs.iter().any(|(_, t)| is_conditional(&plain(t))))
            .collect();
        Self {
            blocks,
            ctx,
            prose,
            section_heading,
            conditional,
        }
    }
}

/// A one-line paragraph that introduces what follows: "Web frontend:",
/// "All hosts:", "**Server**".
pub(crate) fn pseudo_heading(text: &str) -> Option<String> {
    if text.contains('\n') {
        return None;
    }
    let t = text.trim();
    if t.starts_with("**") && t.ends_with("**") && t.len() > 4 {
        return Some(plain(t));
    }
    let p = plain(t);
    if p.ends_with(':') && p.split_whitespace().count() <= 8 {
        return Some(p.trim_end_matches(':').trim().to_owned());
    }
    None
}

pub(crate) const GENERIC: &[&str] = &[
    "ingress",
    "egress",
    "inbound",
    "outbound",
    "incoming",
    "outgoing",
    "rules",
    "rule",
    "ports",
    "port",
    "protocols",
    "protocol",
    "and",
    "&",
    "networking",
    "network",
    "requirements",
    "requirement",
    "required",
    "firewall",
    "firewalls",
    "connectivity",
    "overview",
    "reference",
    "open",
    "used",
    "use",
    "by",
    "the",
    "for",
    "of",
    "on",
    "to",
    "list",
    "table",
    "access",
    "traffic",
    "connections",
    "connection",
    "matrix",
    "legend",
    "external",
    "internet",
    "endpoints",
    "endpoint",
    "hosts",
    "allowlist",
    "whitelist",
    "domains",
    "urls",
    "summary",
    "details",
    "security",
    "groups",
    "group",
    "settings",
    "communication",
    "communications",
    "tcp",
    "udp",
    "inter-component",
    "components",
    "a",
    "an",
    "all",
    "required:",
    "needed",
];

/// A heading less its generic words ("Control plane ports" → "Control
/// plane"); empty when it is all generic ("Ingress", "Networking Requirements").
pub(crate) fn strip_generic(heading: &str) -> String {
    let text = heading.replace("(s)", "s");
    let ws: Vec<&str> = text.split_whitespace().collect();
    let is_generic = |w: &&str| {
        let w = w
            .trim_matches(|c: char| !c.is_alphanumeric() && c != '&')
            .to_lowercase();
        w.is_empty() || GENERIC.contains(&w.as_str())
    };
    let start = ws.iter().position(|w| !is_generic(w));
    let end = ws.iter().rposition(|w| !is_generic(w));
    match (start, end) {
        (Some(s), Some(e)) => ws[s..=e]
            .join(" ")
            .trim_matches(|c: char| c == ':' || c == ',')
            .to_owned(),
        _ => String::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    In,
    Out,
    Both,
}

pub(crate) fn direction_word(text: &str) -> Option<Dir> {
    let ws = words(text);
    let has = |set: &[&str]| ws.iter().any(|w| set.contains(&w.as_str()));
    let inbound = has(&[
        "ingress",
        "inbound",
        "incoming",
        "in",
        "input",
        "inbound/outbound",
    ]);
    let outbound = has(&[
        "egress",
        "outbound",
        "outgoing",
        "out",
        "output",
        "inbound/outbound",
    ]);
    let both = has(&[
        "both",
        "bidirectional",
        "bi-directional",
        "in/out",
        "inbound/outbound",
    ]);
    match (inbound, outbound, both) {
        (_, _, true) | (true, true, _) => Some(Dir::Both),
        (true, false, _) => Some(Dir::In),
        (false, true, _) => Some(Dir::Out),
        _ => None,
    }
}

pub(crate) fn path_direction(path: &[Heading]) -> Option<Dir> {
    path.iter()
        .rev()
        .filter(|h| strip_generic(&h.text).is_empty() || h.text.split_whitespace().count() <= 4)
        .find_map(|h| {
            let ws = words(&h.text);
            let ingress = ws
                .iter()
                .any(|w| matches!(w.as_str(), "ingress" | "inbound" | "incoming"));
            let egress = ws
                .iter()
                .any(|w| matches!(w.as_str(), "egress" | "outbound" | "outgoing"));
            match (ingress, egress) {
                (true, false) => Some(Dir::In),
                (false, true) => Some(Dir::Out),
                _ => None,
            }
        })
}

pub(crate) const CONDITIONAL_SECTION: &[&str] = &[
    "may or may not be required",
    "may or may not",
    "depending on your setup",
    "depending on",
    "if you intend",
    "only required",
    "only needed",
    "optional",
    "if you use",
    "if you plan",
];

pub(crate) fn is_conditional(text: &str) -> bool {
    let lower = text.to_lowercase();
    CONDITIONAL_SECTION.iter().any(|p| lower.contains(p))
}

pub(crate) const ALL_HOSTS: &[&str] = &[
    "allhosts",
    "allnodes",
    "allcomponents",
    "allservers",
    "allmachines",
    "everyhost",
    "everynode",
    "allsystems",
    "allinstances",
    "eachhost",
    "everysystemcomponent",
    "allsystemcomponents",
    "everycomponent",
    "eachcomponent",
];

impl<'d> Doc<'d> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Block, &Ctx)> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b, &self.ctx[i]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generic_headings() {
        assert_eq!(strip_generic("Control plane ports"), "Control plane");
        assert_eq!(strip_generic("Ingress"), "");
        assert_eq!(strip_generic("External Internet Access"), "");
        assert_eq!(strip_generic("Worker node(s)"), "Worker nodes");
        assert_eq!(
            strip_generic("Ports used by the Consul agent"),
            "Consul agent"
        );
    }
}
