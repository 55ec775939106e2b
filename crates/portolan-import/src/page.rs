//! Reading a page: its structure (headings, pseudo-headings, sections), the
//! definitions it states (legend, features, parameters, conditions, kinds),
//! then its matrices, port tables and host lists, in that order, so that
//! later shapes can name the components earlier ones introduced.

use std::collections::{HashMap, HashSet};

use portolan_spec::SourceFile;

use crate::blocks::{blocks, Block, Item, Table};
use crate::build::{kind_of, Addr, Builder, Cond, Dest, Draft, Kind, PItem};
use crate::conditions::{condition_in, if_you_phrases, purpose_phrases, CondText};
use crate::ports::{
    legend_letters, legend_pattern, port_cell, port_or_range, protocols_in, service_port_hint,
    Legend, PortCell, PortItem, Proto,
};
use crate::text::{contains_words, find_ci, inline, plain, slug, squash, words};
use crate::{ImportError, ImportOptions, Imported};

/// A heading on the path to a block.
#[derive(Debug, Clone)]
struct Heading {
    level: usize,
    text: String,
    line: usize,
}

/// Where a block sits.
#[derive(Debug, Clone, Default)]
struct Ctx {
    path: Vec<Heading>,
    /// A short paragraph ending with ':' ("Web frontend:") above the block.
    pseudo: Option<(String, usize)>,
    /// Index of the section (heading scope); 0 before the first heading.
    section: usize,
}

struct Doc<'a> {
    blocks: &'a [Block],
    ctx: Vec<Ctx>,
    /// Plain text of each section's paragraphs, with their first line.
    prose: Vec<Vec<(usize, String)>>,
    /// Heading text of each section.
    section_heading: Vec<Option<Heading>>,
    /// Whether a section's prose says its requirements are conditional.
    conditional: Vec<bool>,
}

impl<'a> Doc<'a> {
    fn new(blocks: &'a [Block]) -> Self {
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
fn pseudo_heading(text: &str) -> Option<String> {
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

const GENERIC: &[&str] = &[
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
fn strip_generic(heading: &str) -> String {
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
enum Dir {
    In,
    Out,
    Both,
}

fn direction_word(text: &str) -> Option<Dir> {
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

fn path_direction(path: &[Heading]) -> Option<Dir> {
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

fn path_subject(path: &[Heading]) -> Option<(String, usize)> {
    path.iter().rev().find_map(|h| {
        let s = strip_generic(&h.text);
        (!s.is_empty()).then_some((s, h.line))
    })
}

const CONDITIONAL_SECTION: &[&str] = &[
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

fn is_conditional(text: &str) -> bool {
    let lower = text.to_lowercase();
    CONDITIONAL_SECTION.iter().any(|p| lower.contains(p))
}

const ALL_HOSTS: &[&str] = &[
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

/// Reads the page.
pub fn import(source: &SourceFile, options: &ImportOptions) -> Result<Imported, ImportError> {
    let blocks = blocks(&source.text);
    if !blocks
        .iter()
        .any(|b| matches!(b, Block::Table(_) | Block::List(_)))
    {
        return Err(ImportError::NoTable {
            file: source.name.clone(),
        });
    }
    let doc = Doc::new(&blocks);
    let mut b = Builder::new(&source.name);
    let system = system_name(&doc, &source.name, options);
    let mut reader = Reader {
        doc: &doc,
        b: &mut b,
        system: system.clone(),
        legend: Legend::default(),
        conditions: Vec::new(),
        consumed: HashSet::new(),
        used_sections: HashSet::new(),
        external_names: Vec::new(),
        dependency_sections: HashSet::new(),
        external_names_of_hosts: Vec::new(),
    };
    reader.definitions();
    reader.matrices();
    reader.port_tables();
    reader.lists();
    reader.prose_warnings();
    b.report.system = system.clone();
    b.report.flows_imported = b.flows.len();
    if b.flows.is_empty() {
        return Err(ImportError::NothingImported {
            file: source.name.clone(),
            report: Box::new(std::mem::take(&mut b.report)),
        });
    }
    let yaml = b.yaml(&system);
    b.report.components = b.components.len();
    b.report.externals = yaml_count(&yaml, "externals:");
    b.report.features = yaml_count(&yaml, "features:");
    b.report.parameters = yaml_count(&yaml, "parameters:");
    Ok(Imported {
        yaml,
        report: b.report,
    })
}

/// How many items a top-level YAML section of our own output has.
fn yaml_count(yaml: &str, section: &str) -> usize {
    let mut inside = false;
    let mut n = 0;
    for line in yaml.lines() {
        if line == section {
            inside = true;
        } else if inside && !line.starts_with(' ') {
            if !line.is_empty() {
                inside = false;
            }
        } else if inside && line.starts_with("  - ") {
            n += 1;
        }
    }
    n
}

fn system_name(doc: &Doc<'_>, file: &str, options: &ImportOptions) -> String {
    if let Some(name) = options.system_name.as_deref().map(str::trim) {
        if !name.is_empty() {
            return name.to_owned();
        }
    }
    let title = doc.blocks.iter().find_map(|b| match b {
        Block::Heading { level: 1, text, .. } => Some(plain(text)),
        _ => None,
    });
    if let Some(title) = title {
        let cut = [
            ": networking requirements",
            " networking requirements",
            ": network requirements",
            ": networking",
            " networking",
            ": ports",
            " ports and protocols",
            " port requirements",
            " firewall rules",
        ]
        .iter()
        .find_map(|s| find_ci(&title, s));
        let name = match cut {
            Some(p) => title[..p].trim().to_owned(),
            None => title.clone(),
        };
        if !strip_generic(&name).is_empty() {
            return name;
        }
    }
    // The proper noun the page repeats most ("Spacelift", "Circonus").
    let mut counts: HashMap<String, usize> = HashMap::new();
    for b in doc.blocks {
        let text = match b {
            Block::Paragraph { text, .. } => text.clone(),
            Block::List(items) => items
                .iter()
                .map(|i| i.text.clone())
                .collect::<Vec<_>>()
                .join(". "),
            _ => continue,
        };
        {
            for sentence in plain(&text).split(". ") {
                for w in sentence.split_whitespace().skip(1) {
                    let w = w.trim_matches(|c: char| !c.is_alphanumeric());
                    if w.len() > 2
                        && w.chars().next().is_some_and(char::is_uppercase)
                        && w.chars().skip(1).any(char::is_lowercase)
                    {
                        *counts.entry(w.to_owned()).or_insert(0) += 1;
                    }
                }
            }
        }
    }
    // Ties go to the alphabetically first word, so the result is stable.
    if let Some((w, n)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
        if *n >= 3 {
            return w.clone();
        }
    }
    let stem = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem.trim().is_empty() {
        "Imported system".to_owned()
    } else {
        stem
    }
}

/// Column roles of port tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
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

fn role(header: &str) -> Role {
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

/// A peer named in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Comp(usize),
    Ext(usize),
}

/// A port-table row, read but not yet turned into flows.
#[derive(Debug, Clone)]
struct PortRow {
    line: usize,
    raw: String,
    subject: Option<usize>,
    dir: Option<Dir>,
    dir_stated: bool,
    name: Option<String>,
    sources: Vec<String>,
    dests: Vec<String>,
    either: Vec<String>,
    /// The table has Name as its only peer column (vendor Ingress/Egress tables).
    name_is_peer: bool,
    ports: Vec<PortItem>,
    all_ports: bool,
    source_ports: Vec<PortItem>,
    multicast: Option<std::net::IpAddr>,
    protos: Vec<Proto>,
    proto_guess: Option<String>,
    required: Option<bool>,
    purpose: String,
    condition: Option<CondText>,
    /// Name, port, protocol, required and description, squashed: the
    /// egress row of one section and the ingress row of another that state
    /// the same flow have the same signature.
    signature: String,
    /// The signature less the name, for ingress rows that name their source.
    rest_of_row: String,
}

struct Reader<'d, 'b> {
    doc: &'d Doc<'d>,
    b: &'b mut Builder,
    system: String,
    legend: Legend,
    /// Numbered conditions of a rendered matrix page.
    conditions: Vec<CondText>,
    /// Blocks read as definitions.
    consumed: HashSet<usize>,
    /// Sections that held a table or list that was read.
    used_sections: HashSet<usize>,
    /// Names the page says are the outside world.
    external_names: Vec<String>,
    /// Sections that say their subject is a dependency.
    dependency_sections: HashSet<usize>,
    /// External endpoints the page's host lists name: (name, address).
    external_names_of_hosts: Vec<(String, Addr)>,
}

impl<'d> Doc<'d> {
    fn iter(&self) -> impl Iterator<Item = (usize, &Block, &Ctx)> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b, &self.ctx[i]))
    }
}

impl Reader<'_, '_> {
    /// Legend, kinds, and the Features, Parameters and Conditions lists.
    fn definitions(&mut self) {
        let doc = self.doc;
        // Legend: the first code span that reads as a cell notation.
        'legend: for (_, block, ctx) in doc.iter() {
            let (line, text) = match block {
                Block::Paragraph { line, text } => (*line, text.clone()),
                Block::List(items) => match items.first() {
                    Some(first) => (
                        first.line,
                        items
                            .iter()
                            .map(|i| i.text.clone())
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                    None => continue,
                },
                _ => continue,
            };
            let lower = text.to_lowercase();
            let in_legend = ctx.path.last().is_some_and(|h| {
                contains_words(&h.text, "legend") || contains_words(&h.text, "notation")
            });
            for code in inline(&text).code {
                if let Some((fields, separator)) = legend_pattern(&code) {
                    let described = in_legend
                        || [
                            "shown as",
                            "format",
                            "notation",
                            "legend",
                            "each cell",
                            "cells",
                            "written as",
                        ]
                        .iter()
                        .any(|w| lower.contains(w));
                    if fields.len() >= 3 || (fields.len() >= 2 && described) {
                        let section_text: Vec<String> = doc.prose[ctx.section]
                            .iter()
                            .map(|(_, t)| t.clone())
                            .chain(std::iter::once(text.clone()))
                            .collect();
                        let mut letters = legend_letters(&section_text.join("\n"));
                        for (_, b, c) in doc.iter() {
                            if c.section == ctx.section {
                                if let Block::List(items) = b {
                                    for item in items {
                                        letters.extend(legend_letters(&item.text));
                                    }
                                }
                            }
                        }
                        let mut legend = Legend {
                            fields,
                            separator,
                            line,
                            ..Legend::default()
                        };
                        if !letters.is_empty() {
                            letters.extend(legend.letters);
                            legend.letters = letters;
                        }
                        self.legend = legend;
                        break 'legend;
                    }
                }
            }
        }
        // Kinds stated in prose.
        for (_, block, ctx) in doc.iter() {
            if let Block::Paragraph { text, .. } = block {
                let p = plain(text);
                let lower = p.to_lowercase();
                if lower.starts_with("a dependency")
                    || lower.contains("provided and run by the operator")
                    || lower.contains("provided by the operator")
                {
                    self.dependency_sections.insert(ctx.section);
                }
                if let Some(pos) = lower.find(" stands for the outside world") {
                    for name in p[..pos].split([',', '\n']) {
                        let name = name.trim().trim_start_matches("and ").trim();
                        if !name.is_empty() {
                            self.external_names.push(name.to_owned());
                        }
                    }
                }
            }
        }
        // Names that host lists give their endpoints ("`host:443` (Amazon
        // CloudWatch) TCP …"), so that a table row naming the endpoint by
        // that name reaches the endpoint, not a new component.
        for (_, block, _) in doc.iter() {
            let Block::List(items) = block else { continue };
            for item in items {
                if let Some(entry) = host_entry(&item.text) {
                    let meta = meta_of(&entry.meta);
                    for host in &entry.hosts {
                        if let Some(name) = &meta.name {
                            self.external_names_of_hosts
                                .push((name.clone(), host.addr.clone()));
                        }
                        if let Addr::Placeholder(p) = &host.addr {
                            self.external_names_of_hosts
                                .push((p.clone(), host.addr.clone()));
                        }
                    }
                }
            }
        }
        // Definition lists.
        let mut features = Vec::new();
        let mut params = Vec::new();
        let mut conditions = Vec::new();
        for (i, block, ctx) in doc.iter() {
            let Block::List(items) = block else { continue };
            let heading = ctx.path.last().map(|h| squash(&h.text)).unwrap_or_default();
            let pseudo = ctx
                .pseudo
                .as_ref()
                .map(|(p, _)| squash(p))
                .unwrap_or_default();
            if heading == "features" && items.iter().all(|it| it.text.starts_with('`')) {
                features.push(i);
            } else if heading == "parameters" && items.iter().all(|it| it.text.starts_with("`$")) {
                params.push(i);
            } else if (pseudo == "conditions" || heading == "conditions")
                && items.iter().all(|it| find_ci(&it.text, "when").is_some())
            {
                conditions.push(i);
            }
        }
        for i in features {
            let Block::List(items) = &doc.blocks[i] else {
                continue;
            };
            for item in items {
                self.b.report.rows_read += 1;
                match feature_definition(&item.text) {
                    Some((id, name, description)) => {
                        self.b
                            .define_feature(&id, name.as_deref(), description.as_deref());
                        self.b.definition(item.line);
                    }
                    None => self.b.skip(
                        item.line,
                        &item.text,
                        "not a feature definition (`id` (name): description)",
                    ),
                }
            }
            self.consumed.insert(i);
        }
        for i in params {
            let Block::List(items) = &doc.blocks[i] else {
                continue;
            };
            for item in items {
                self.b.report.rows_read += 1;
                match parameter_definition(&item.text) {
                    Some(p) => {
                        self.b.param_defs.push(p);
                        self.b.definition(item.line);
                    }
                    None => self.b.skip(
                        item.line,
                        &item.text,
                        "not a parameter definition (`$id`, default N, shown as \"…\")",
                    ),
                }
            }
            self.consumed.insert(i);
        }
        for i in conditions {
            let Block::List(items) = &doc.blocks[i] else {
                continue;
            };
            for item in items {
                self.b.report.rows_read += 1;
                match condition_in(&item.text) {
                    Some(c) => {
                        self.conditions.push(c);
                        self.b.definition(item.line);
                    }
                    None => {
                        self.conditions.push(CondText::Phrases(Vec::new()));
                        self.b.skip(
                            item.line,
                            &item.text,
                            "numbered condition that could not be read",
                        );
                    }
                }
            }
            self.consumed.insert(i);
        }
    }

    fn kind_for(&self, name: &str, default: Kind) -> Kind {
        if self
            .external_names
            .iter()
            .any(|n| squash(n) == squash(name))
        {
            return Kind::External;
        }
        kind_of(name, default)
    }

    fn is_matrix(&self, table: &Table) -> bool {
        let roles: Vec<Role> = table.header.iter().map(|h| role(h)).collect();
        if roles
            .iter()
            .any(|r| matches!(r, Role::Port | Role::StartPort))
            || table.header.len() < 2
        {
            return false;
        }
        let corner = plain(&table.header[0]).to_lowercase();
        let corner_says = ["from", "to", "source", "destination", "→", "↓", "\\"]
            .iter()
            .any(|w| {
                if w.len() > 2 {
                    contains_words(&corner, w)
                } else {
                    corner.contains(w)
                }
            })
            || corner.contains("→")
            || corner.contains("↓");
        let names: HashSet<String> = table.header[1..]
            .iter()
            .map(|h| squash(&plain(h)))
            .collect();
        let matching = table
            .rows
            .iter()
            .filter(|r| {
                r.cells
                    .first()
                    .is_some_and(|c| names.contains(&squash(&plain(c))))
            })
            .count();
        let tokens = table.rows.iter().any(|r| {
            r.cells.iter().skip(1).any(|c| {
                inline(c)
                    .flat()
                    .split_whitespace()
                    .any(|t| self.legend.token(t).is_ok())
            })
        });
        (corner_says || matching >= 2) && tokens
    }

    fn matrices(&mut self) {
        let doc = self.doc;
        for (i, block) in doc.blocks.iter().enumerate() {
            let Block::Table(table) = block else { continue };
            if self.is_matrix(table) {
                self.consumed.insert(i);
                self.used_sections.insert(doc.ctx[i].section);
                self.matrix(table);
            }
        }
    }

    fn matrix(&mut self, table: &Table) {
        let width = table.header.len();
        if table.delimiter_cells != width && table.delimiter_cells != 0 {
            self.b.warn(
                table.line,
                format!(
                    "the header row has {width} cells but the delimiter row {}; the header's {width} columns were used",
                    table.delimiter_cells
                ),
            );
        }
        let corner = inline(&table.header[0]).text.to_lowercase();
        let rows_are_from = rows_are_from(&corner);
        // Columns.
        let mut columns: Vec<Option<usize>> = Vec::new();
        for h in &table.header[1..] {
            let cell = inline(h);
            let name = cell.flat();
            if name.is_empty() {
                columns.push(None);
                continue;
            }
            let anchor = cell.links.first().map(|l| l.1.clone()).unwrap_or_default();
            let c = match self.b.find_anchor(&anchor) {
                Some(c) => c,
                None => {
                    let kind = self.matrix_kind(&name);
                    self.b.component(&name, kind)
                }
            };
            if !anchor.is_empty() && !self.b.components[c].anchors.contains(&anchor) {
                self.b.components[c].anchors.push(anchor);
            }
            columns.push(Some(c));
        }
        if columns.iter().any(Option::is_none) {
            self.b.warn(
                table.line,
                "a matrix column has no name; its cells were skipped",
            );
        }
        let mut matched: HashSet<usize> = HashSet::new();
        for row in &table.rows {
            self.b.report.rows_read += 1;
            if row.is_blank() {
                self.b.skip(row.line, &row.raw, "blank separator row");
                continue;
            }
            let label = inline(row.cells.first().map(String::as_str).unwrap_or(""));
            let name = label.flat();
            if name.is_empty() {
                self.b
                    .skip(row.line, &row.raw, "matrix row without a component name");
                continue;
            }
            let anchor = label.links.first().map(|l| l.1.clone()).unwrap_or_default();
            let me = self.row_component(&name, &anchor, &columns, &matched, row.line);
            matched.insert(me);
            let mut flows = 0;
            let mut failures = 0;
            for (j, cell) in row.cells.iter().enumerate().skip(1) {
                let text = inline(cell).items().join(" ");
                if text.trim().is_empty() {
                    continue;
                }
                let Some(column) = columns.get(j - 1).copied() else {
                    self.b.skip(
                        row.line,
                        &text,
                        format!("cell beyond the header's {} columns", width - 1),
                    );
                    failures += 1;
                    continue;
                };
                let Some(other) = column else {
                    self.b
                        .skip(row.line, &text, "cell under a column without a name");
                    failures += 1;
                    continue;
                };
                let (from, to) = if rows_are_from {
                    (me, other)
                } else {
                    (other, me)
                };
                let (n, f) = self.matrix_cell(&text, from, to, row.line);
                flows += n;
                failures += f;
            }
            if flows == 0 && failures == 0 {
                self.b.skip(
                    row.line,
                    &name,
                    "matrix row lists no connection (every cell empty or N/A)",
                );
            }
        }
    }

    fn row_component(
        &mut self,
        name: &str,
        anchor: &str,
        columns: &[Option<usize>],
        matched: &HashSet<usize>,
        line: usize,
    ) -> usize {
        if let Some(c) = self.b.find_anchor(anchor) {
            self.b.alias(c, name);
            return c;
        }
        if let Some(c) = self.b.find_component(name) {
            return c;
        }
        // A different spelling of a column ("Long-tail Storage" for "Long-tail Store").
        let lower = name.to_lowercase();
        let best = columns
            .iter()
            .flatten()
            .filter(|c| !matched.contains(c))
            .map(|&c| {
                let other = self.b.components[c].name.to_lowercase();
                (strsim::jaro_winkler(&lower, &other), c)
            })
            .filter(|(score, _)| *score >= 0.9)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, c)) = best {
            let canonical = self.b.components[c].name.clone();
            self.b.alias(c, name);
            self.b.warn(
                line,
                format!("row \"{name}\" has no column of its own; taken as another spelling of column \"{canonical}\""),
            );
            return c;
        }
        let kind = self.matrix_kind(name);
        self.b.component(name, kind)
    }

    /// A matrix lists the product's own components, so only the outside
    /// world ("Outside", "Internet") is told apart.
    fn matrix_kind(&self, name: &str) -> Kind {
        match self.kind_for(name, Kind::System) {
            Kind::External => Kind::External,
            _ => Kind::System,
        }
    }

    /// The flows of one matrix cell; returns (flows, skipped tokens).
    fn matrix_cell(&mut self, text: &str, from: usize, to: usize, line: usize) -> (usize, usize) {
        let mut groups: Vec<(crate::ports::Token, Vec<PortItem>)> = Vec::new();
        let mut failures = 0;
        let from_name = self.b.components[from].name.clone();
        let to_name = self.b.components[to].name.clone();
        let separator = self.legend.separator;
        let spaced = if separator == ',' {
            text.replace(';', " ")
        } else {
            text.replace(", ", " ").replace(';', " ")
        };
        for raw in spaced.split_whitespace() {
            let lower = raw.to_lowercase();
            if matches!(
                lower.as_str(),
                "n/a" | "na" | "-" | "—" | "–" | "none" | "n.a."
            ) {
                continue;
            }
            match self.legend.token(raw) {
                Ok(token) => {
                    let ports = token.ports.clone();
                    let all = ports.is_empty();
                    match groups.iter_mut().find(|(t, p)| {
                        t.proto == token.proto
                            && t.multicast == token.multicast
                            && t.source_ports == token.source_ports
                            && t.optional == token.optional
                            && t.condition == token.condition
                            && p.is_empty() == all
                    }) {
                        Some((_, p)) if !all => p.extend(ports),
                        Some(_) => {}
                        None => groups.push((token, ports)),
                    }
                }
                Err(reason) => {
                    failures += 1;
                    self.b.skip(
                        line,
                        raw,
                        format!("matrix cell {from_name} → {to_name}: {reason}"),
                    );
                }
            }
        }
        let mut n = 0;
        for (token, ports) in groups {
            let mut draft = Draft::new(from, Dest::Comp(to), token.proto, line);
            let mut guesses = Vec::new();
            draft.ports = self.b.port_items(&ports, &to_name, "", line, &mut guesses);
            draft.source_ports =
                self.b
                    .port_items(&token.source_ports, &from_name, "", line, &mut guesses);
            draft.multicast = token.multicast;
            draft.guesses = guesses;
            draft.required = !token.optional;
            if let Some(k) = token.condition {
                match self.conditions.get(k.wrapping_sub(1)).cloned() {
                    Some(c) => draft.when = self.b.condition(&c),
                    None => self.b.warn(
                        line,
                        format!("condition [{k}] of cell {from_name} → {to_name} is not listed on the page; the flow was imported without it"),
                    ),
                }
            }
            if !draft.required && draft.when.is_none() {
                self.b.warn(
                    line,
                    format!("optional flow {from_name} → {to_name} names no condition"),
                );
            }
            self.b.add(draft);
            n += 1;
        }
        (n, failures)
    }

    fn section_component(&mut self, name: &str, section: usize) -> usize {
        let kind = if self.dependency_sections.contains(&section) {
            Kind::Dependency
        } else {
            self.kind_for(name, Kind::System)
        };
        let c = self.b.component(name, kind);
        if kind == Kind::Dependency {
            self.b.components[c].kind = Kind::Dependency;
        }
        c
    }

    fn system_component(&mut self, line: usize) -> usize {
        let system = self.system.clone();
        self.b.warn(
            line,
            format!("no heading names the component of this table or list; its flows were attached to \"{system}\""),
        );
        self.b.component(&system, Kind::System)
    }

    fn port_tables(&mut self) {
        let doc = self.doc;
        let mut rows: Vec<PortRow> = Vec::new();
        for (i, block) in doc.blocks.iter().enumerate() {
            let Block::Table(table) = block else { continue };
            if self.consumed.contains(&i) {
                continue;
            }
            let ctx = &doc.ctx[i];
            let roles: Vec<Role> = table.header.iter().map(|h| role(h)).collect();
            if !roles
                .iter()
                .any(|r| matches!(r, Role::Port | Role::StartPort))
            {
                for row in &table.rows {
                    self.b.report.rows_read += 1;
                    self.b.skip(
                        row.line,
                        &row.raw,
                        "table has no port column and is not a connection matrix",
                    );
                }
                continue;
            }
            self.used_sections.insert(ctx.section);
            let footnotes = self.footnotes_after(i);
            self.read_port_table(table, &roles, ctx, &footnotes, &mut rows);
        }
        self.emit_port_rows(rows);
    }

    /// Footnote definitions between a table and the next heading or table.
    fn footnotes_after(&self, index: usize) -> Vec<(String, String, usize)> {
        let mut out = Vec::new();
        for block in &self.doc.blocks[index + 1..] {
            match block {
                Block::Footnote { line, mark, text } => {
                    out.push((mark.clone(), text.clone(), *line))
                }
                Block::Heading { .. } | Block::Table(_) => break,
                _ => {}
            }
        }
        out
    }

    fn read_port_table(
        &mut self,
        table: &Table,
        roles: &[Role],
        ctx: &Ctx,
        footnotes: &[(String, String, usize)],
        out: &mut Vec<PortRow>,
    ) {
        let col = |r: Role| roles.iter().position(|&x| x == r);
        let cols = |r: Role| -> Vec<usize> {
            roles
                .iter()
                .enumerate()
                .filter(|(_, &x)| x == r)
                .map(|(i, _)| i)
                .collect()
        };
        let has_peer_columns = col(Role::Source).is_some()
            || col(Role::Destination).is_some()
            || col(Role::SourceOrDestination).is_some();
        let heading_dir = path_direction(&ctx.path);
        let needs_subject = !(col(Role::Source).is_some() && col(Role::Destination).is_some());
        let subject = if needs_subject {
            path_subject(&ctx.path).map(|(name, _)| self.section_component(&name, ctx.section))
        } else {
            None
        };
        if table.delimiter_cells == 0 {
            self.b.warn(
                table.line,
                "table without a delimiter row; its first row was taken as the header",
            );
        }
        for row in &table.rows {
            self.b.report.rows_read += 1;
            if row.is_blank() {
                self.b.skip(row.line, &row.raw, "blank separator row");
                continue;
            }
            let cell = |i: Option<usize>| -> String {
                i.and_then(|i| row.cells.get(i))
                    .cloned()
                    .unwrap_or_default()
            };
            let mut marks: Vec<String> = Vec::new();
            for c in &row.cells {
                marks.extend(inline(c).footnotes);
            }
            let notes: Vec<&str> = footnotes
                .iter()
                .filter(|(m, _, _)| marks.contains(m))
                .map(|(_, t, _)| t.as_str())
                .collect();
            // Ports.
            let port_text = cols(Role::Port)
                .into_iter()
                .map(|i| inline(&cell(Some(i))).items().join("\n"))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            let mut pc: PortCell = port_cell(&port_text);
            if let Some(s) = col(Role::StartPort) {
                let start = plain(&cell(Some(s)));
                let end = col(Role::EndPort)
                    .map(|e| plain(&cell(Some(e))))
                    .unwrap_or_default();
                let range = match (port_or_range(&start), port_or_range(&end)) {
                    (Some((a, _)), Some((_, b))) if a <= b => Some((a, b)),
                    (Some(r), None) if end.trim().is_empty() => Some(r),
                    _ => None,
                };
                if !start.trim().is_empty() || !end.trim().is_empty() {
                    pc.none = false;
                }
                match range {
                    Some((a, b)) => {
                        pc.items.push(PortItem::Range(a, b));
                        pc.none = false;
                    }
                    None if start.trim().is_empty() && end.trim().is_empty() => {}
                    None => pc.unknown.push(format!("{start} to {end}")),
                }
            }
            let mut source_ports = col(Role::SourcePort)
                .map(|i| port_cell(&plain(&cell(Some(i)))).items)
                .unwrap_or_default();
            // "8112 (source `8112`)": a fixed source port written in the port cell.
            if let Some(pos) = find_ci(&port_text, "(source ") {
                let inner = port_text[pos + 8..].split(')').next().unwrap_or("");
                source_ports.extend(port_cell(inner).items);
                let cleaned = port_cell(port_text[..pos].trim());
                pc.items = cleaned.items;
                pc.unknown = cleaned.unknown;
            }
            // Protocols.
            let proto_text = col(Role::Protocol)
                .map(|i| plain(&cell(Some(i))))
                .unwrap_or_default();
            let name = col(Role::Name)
                .map(|i| plain(&cell(Some(i))))
                .filter(|s| !s.is_empty());
            let purpose = cols(Role::Purpose)
                .into_iter()
                .map(|i| plain(&cell(Some(i))))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            // "UDP (multicast 225.0.1.9)": the group the flow is sent to.
            let multicast = find_ci(&proto_text, "multicast ").and_then(|p| {
                proto_text[p + 10..]
                    .split(|c: char| c == ')' || c.is_whitespace())
                    .next()
                    .and_then(|g| g.parse::<std::net::IpAddr>().ok())
                    .filter(std::net::IpAddr::is_multicast)
            });
            let mut protos = protocols_in(&proto_text);
            for p in &pc.protocols {
                if !protos.contains(p) {
                    protos.push(*p);
                }
            }
            let mut proto_guess = None;
            if protos.is_empty() {
                if !proto_text.trim().is_empty()
                    && !matches!(proto_text.trim(), "-" | "N/A" | "n/a")
                {
                    self.b.skip(
                        row.line,
                        &row.raw,
                        format!(
                            "protocol \"{}\" is not one the spec knows (tcp, udp, icmp, any)",
                            proto_text.trim()
                        ),
                    );
                    continue;
                }
                let hint_text = format!("{} {}", name.clone().unwrap_or_default(), purpose);
                let hinted = paren_protocols(&hint_text);
                if hinted.is_empty() {
                    protos.push(Proto::Tcp);
                    proto_guess = Some("protocol not stated on the page; TCP assumed".to_owned());
                } else {
                    protos = hinted;
                }
            }
            if pc.none
                && pc.items.is_empty()
                && protos.iter().any(|p| matches!(p, Proto::Tcp | Proto::Udp))
            {
                self.b.skip(row.line, &row.raw, "no port given");
                continue;
            }
            if pc.items.is_empty()
                && !pc.all
                && !pc.unknown.is_empty()
                && protos.iter().any(|p| matches!(p, Proto::Tcp | Proto::Udp))
            {
                self.b.skip(
                    row.line,
                    &row.raw,
                    format!("cannot read the port \"{}\"", pc.unknown.join(", ")),
                );
                continue;
            }
            if !pc.unknown.is_empty() {
                self.b.warn(
                    row.line,
                    format!(
                        "part of the port cell could not be read and was left out: \"{}\"",
                        pc.unknown.join(", ")
                    ),
                );
            }
            // Direction.
            let dir_cell = col(Role::Direction)
                .map(|i| plain(&cell(Some(i))))
                .unwrap_or_default();
            let (dir, dir_stated) = match direction_word(&dir_cell) {
                Some(d) => (Some(d), true),
                None => (heading_dir, heading_dir.is_some()),
            };
            // Required and condition.
            let required_text = col(Role::Required)
                .map(|i| plain(&cell(Some(i))))
                .unwrap_or_default();
            let mut required = required_word(&required_text);
            if required.is_none() {
                let n = name.clone().unwrap_or_default().to_lowercase();
                if n.contains("(optional)") || purpose.to_lowercase().starts_with("optional") {
                    required = Some(false);
                }
            }
            let condition_text = col(Role::Condition)
                .map(|i| cell(Some(i)))
                .unwrap_or_default();
            let purpose_raw = cols(Role::Purpose)
                .into_iter()
                .map(|i| cell(Some(i)))
                .collect::<Vec<_>>()
                .join(" ");
            let condition = [
                condition_text.as_str(),
                purpose_raw.as_str(),
                &cell(col(Role::Name)),
            ]
            .into_iter()
            .chain(notes.iter().copied())
            .find_map(|t| {
                if t.trim().is_empty() {
                    return None;
                }
                condition_in(t).or_else(|| {
                    // A Condition column holds the phrase itself.
                    (std::ptr::eq(t, condition_text.as_str()) && !plain(t).is_empty())
                        .then(|| CondText::Phrases(vec![plain(t)]))
                })
            });
            let split = |i: Option<usize>| -> Vec<String> {
                i.map(|i| peer_names(&cell(Some(i)))).unwrap_or_default()
            };
            let rest_of_row = [
                squash(&port_text),
                squash(&proto_text),
                squash(&required_text),
                squash(&purpose),
            ]
            .join("|");
            let signature = format!(
                "{}|{rest_of_row}",
                squash(&name.clone().unwrap_or_default())
            );
            let mut purpose_full = purpose.clone();
            for n in &notes {
                let n = plain(n);
                if !purpose_full.contains(&n) {
                    if !purpose_full.is_empty() {
                        purpose_full.push(' ');
                    }
                    purpose_full.push_str(&format!("({n})"));
                }
            }
            out.push(PortRow {
                line: row.line,
                raw: row.raw.clone(),
                subject,
                dir,
                dir_stated,
                name: name.clone(),
                sources: split(col(Role::Source)),
                dests: split(col(Role::Destination)),
                either: split(col(Role::SourceOrDestination)),
                name_is_peer: !has_peer_columns
                    && name.is_some()
                    && matches!(dir, Some(Dir::In | Dir::Out)),
                ports: pc.items,
                all_ports: pc.all,
                source_ports,
                multicast,
                protos,
                proto_guess,
                required,
                purpose: purpose_full,
                condition,
                signature,
                rest_of_row,
            });
        }
    }

    fn emit_port_rows(&mut self, rows: Vec<PortRow>) {
        // Egress rows that name their target: resolve, pairing with ingress
        // rows of other sections that state the same row (the two sides of
        // one flow, as per-component pages list them).
        let mut by_signature: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_rest: HashMap<&str, Vec<usize>> = HashMap::new();
        for (j, r) in rows.iter().enumerate() {
            if r.dir == Some(Dir::In) && r.subject.is_some() {
                if r.name_is_peer {
                    by_signature
                        .entry(r.signature.as_str())
                        .or_default()
                        .push(j);
                }
                if !r.sources.is_empty() {
                    by_rest.entry(r.rest_of_row.as_str()).or_default().push(j);
                }
            }
        }
        let mut targets: Vec<Vec<Peer>> = vec![Vec::new(); rows.len()];
        let mut merged_into: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
        let mut merges: Vec<(usize, usize)> = Vec::new();
        let mut deferred = Vec::new();
        for (k, row) in rows.iter().enumerate() {
            if !(row.name_is_peer && row.dir == Some(Dir::Out)) {
                continue;
            }
            let name = row.name.clone().unwrap_or_default();
            let resolved = self.b.find_component(&name);
            let elsewhere = |j: &&usize| {
                let r = &rows[**j];
                r.subject != row.subject && (resolved.is_none() || resolved == r.subject)
            };
            let pairs: Vec<usize> = by_signature
                .get(row.signature.as_str())
                .map(|js| js.iter().filter(elsewhere).copied().collect())
                .unwrap_or_default();
            // Ingress rows elsewhere that name this row's subject as their source.
            let subject_name = row.subject.map(|s| squash(&self.b.components[s].name));
            let from_pairs: Vec<usize> = by_rest
                .get(row.rest_of_row.as_str())
                .map(|js| {
                    js.iter()
                        .filter(elsewhere)
                        .filter(|&&j| {
                            subject_name
                                .as_ref()
                                .is_some_and(|n| rows[j].sources.iter().any(|s| squash(s) == *n))
                        })
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            let paired = if from_pairs.is_empty() {
                &pairs
            } else {
                &from_pairs
            };
            if let Some(c) = resolved {
                targets[k].push(Peer::Comp(c));
            } else if !paired.is_empty() {
                for &j in paired {
                    if let Some(s) = rows[j].subject {
                        if !targets[k].contains(&Peer::Comp(s)) {
                            targets[k].push(Peer::Comp(s));
                        }
                    }
                }
            } else if let Some(addr) = self
                .external_names_of_hosts
                .iter()
                .find(|(n, _)| squash(n) == squash(&name))
                .map(|(_, a)| a.clone())
            {
                let e = self.b.external(addr, Some(&name));
                targets[k].push(Peer::Ext(e));
            } else {
                let peer = self.peer(&name, false, row.subject, row.line, Kind::Dependency);
                if let Some(p) = peer {
                    targets[k].push(p);
                }
                self.near_miss(&name, row.line);
            }
            for j in pairs {
                merged_into[j].push(row.line);
            }
        }
        for (k, row) in rows.iter().enumerate() {
            if !merged_into[k].is_empty() {
                merges.extend(merged_into[k].iter().map(|&with| (row.line, with)));
                continue;
            }
            if self.implicit_ingress(row) {
                deferred.push(k);
                continue;
            }
            self.emit_port_row(row, &targets[k]);
        }
        // Ingress rows that name no source: when flows from named components
        // already reach the same ports, the row is their other side.
        let mut reaching: HashMap<(Dest, Proto, Vec<PItem>), usize> = HashMap::new();
        for f in &self.b.flows {
            if self.b.components[f.from].kind != Kind::External {
                reaching
                    .entry((f.to, f.proto, f.ports.clone()))
                    .or_insert(f.line);
            }
        }
        for k in deferred {
            let row = &rows[k];
            if let Some(with) = covering_flow(row, &reaching) {
                self.b.warn(
                    row.line,
                    format!("this ingress row names no source; the flow of line {with} reaches the same port, so no Clients flow was added (add one by hand if outside clients connect too)"),
                );
                merges.push((row.line, with));
                continue;
            }
            self.emit_port_row(row, &[]);
        }
        let mut also: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(line, with) in &merges {
            self.b.report.rows_merged.push(crate::report::Merged {
                line,
                with_line: with,
            });
            also.entry(with).or_default().push(line);
        }
        for f in &mut self.b.flows {
            if let Some(lines) = also.get(&f.line) {
                for &l in lines {
                    if !f.also.contains(&l) {
                        f.also.push(l);
                    }
                }
            }
        }
    }

    /// Whether a row is an ingress row whose source is implicit.
    fn implicit_ingress(&self, row: &PortRow) -> bool {
        if row.dir != Some(Dir::In)
            || !row.sources.is_empty()
            || !row.either.is_empty()
            || row.subject.is_none()
        {
            return false;
        }
        if row.name_is_peer {
            let name = row.name.clone().unwrap_or_default();
            return self
                .b
                .find_component(&name)
                .filter(|&c| Some(c) != row.subject)
                .is_none();
        }
        true
    }

    /// Warns when a new component's name contains an existing one's
    /// ("Spacelift Server" and "Server"): they were kept apart.
    fn near_miss(&mut self, name: &str, line: usize) {
        let Some(me) = self.b.find_component(name) else {
            return;
        };
        // A check for people reading a page, not for generated giants.
        if self.b.components.len() > 2000 {
            return;
        }
        let lower = name.to_lowercase();
        let similar: Vec<String> = self
            .b
            .components
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                *i != me && c.name.len() >= 3 && contains_words(&lower, &c.name.to_lowercase())
            })
            .map(|(_, c)| c.name.clone())
            .collect();
        for other in similar {
            self.b.warn(
                line,
                format!("\"{name}\" was kept apart from component \"{other}\" (a different name on the page); merge them by hand if they are one"),
            );
        }
    }

    fn emit_port_row(&mut self, row: &PortRow, targets: &[Peer]) {
        let mut guesses: Vec<String> = row.proto_guess.iter().cloned().collect();
        if let Some(g) = &row.proto_guess {
            self.b.warn(row.line, g.clone());
        }
        let subject = |me: &mut Self| -> usize {
            match row.subject {
                Some(s) => s,
                None => me.system_component(row.line),
            }
        };
        let mut pairs: Vec<(usize, Peer)> = Vec::new();
        let explicit_sources = !row.sources.is_empty();
        let explicit_dests = !row.dests.is_empty();
        let dir = match row.dir {
            Some(d) => d,
            None if explicit_sources && !explicit_dests => Dir::In,
            None if explicit_dests && !explicit_sources => Dir::Out,
            None if explicit_sources && explicit_dests => Dir::In,
            None if !row.either.is_empty() => {
                self.b.warn(
                    row.line,
                    "direction not stated; the peer was taken as the source (inbound)",
                );
                guesses.push("direction not stated; inbound assumed".to_owned());
                Dir::In
            }
            None => {
                let s = row
                    .subject
                    .map(|s| self.b.components[s].name.clone())
                    .unwrap_or_else(|| self.system.clone());
                self.b.warn(
                    row.line,
                    format!("direction not stated; taken as a port that {s} listens on"),
                );
                guesses.push(format!(
                    "direction not stated; a port {s} listens on assumed"
                ));
                Dir::In
            }
        };
        let _ = row.dir_stated;
        if explicit_sources && explicit_dests {
            let froms = self.peers(&row.sources, true, row.subject, row.line);
            let tos = self.peers(&row.dests, false, row.subject, row.line);
            for f in &froms {
                let Peer::Comp(f) = f else { continue };
                for t in &tos {
                    pairs.push((*f, *t));
                }
            }
        } else {
            if matches!(dir, Dir::In | Dir::Both) {
                let me = subject(self);
                let names: &[String] = if explicit_sources {
                    &row.sources
                } else {
                    &row.either
                };
                let froms = if !names.is_empty() {
                    self.peers(names, true, Some(me), row.line)
                } else if row.name_is_peer {
                    let name = row.name.clone().unwrap_or_default();
                    match self.b.find_component(&name).filter(|&c| c != me) {
                        Some(c) => vec![Peer::Comp(c)],
                        None => vec![self.implicit(true, row.line, &mut guesses)],
                    }
                } else {
                    vec![self.implicit(true, row.line, &mut guesses)]
                };
                for f in froms {
                    if let Peer::Comp(f) = f {
                        pairs.push((f, Peer::Comp(me)));
                    }
                }
            }
            if matches!(dir, Dir::Out | Dir::Both) {
                let me = subject(self);
                let names: &[String] = if explicit_dests {
                    &row.dests
                } else {
                    &row.either
                };
                let tos = if !names.is_empty() {
                    self.peers(names, false, Some(me), row.line)
                } else if !targets.is_empty() {
                    targets.to_vec()
                } else if let (Some(name), false) = (&row.name, row.name_is_peer) {
                    // A Name column in a table without peers: the service, not a peer.
                    let _ = name;
                    vec![self.implicit(false, row.line, &mut guesses)]
                } else {
                    vec![self.implicit(false, row.line, &mut guesses)]
                };
                for t in tos {
                    pairs.push((me, t));
                }
            }
        }
        if pairs.is_empty() {
            self.b
                .skip(row.line, &row.raw, "no source or destination could be read");
            return;
        }
        let when = row.condition.as_ref().and_then(|c| self.b.condition(c));
        let required = match row.required {
            Some(r) => r,
            None => when.is_none(),
        };
        if !required && when.is_none() {
            self.b.warn(
                row.line,
                "optional row names no condition; the flow is optional without `when`",
            );
        }
        for (from, to) in pairs {
            if let Peer::Ext(_) = to {
                if self.b.components[from].kind == Kind::External {
                    continue;
                }
            }
            let dest = match to {
                Peer::Comp(c) => Dest::Comp(c),
                Peer::Ext(e) => Dest::Ext(e),
            };
            let hint = match (&row.name, dir) {
                (Some(n), _) => n.clone(),
                (None, Dir::Out) => self.b.dest_name(dest),
                (None, _) => self.b.dest_name(dest),
            };
            for proto in &row.protos {
                let mut g = guesses.clone();
                let mut draft = Draft::new(from, dest, *proto, row.line);
                if matches!(proto, Proto::Tcp | Proto::Udp) {
                    draft.ports =
                        self.b
                            .port_items(&row.ports, &hint, &row.purpose, row.line, &mut g);
                    draft.source_ports =
                        self.b
                            .port_items(&row.source_ports, &hint, "", row.line, &mut g);
                } else if !row.ports.is_empty() {
                    self.b.warn(
                        row.line,
                        format!("ports given for protocol {}; left out", proto.as_str()),
                    );
                }
                let _ = row.all_ports;
                draft.required = required;
                draft.when = when.clone();
                if *proto == Proto::Udp && matches!(dest, Dest::Comp(_)) {
                    draft.multicast = row.multicast;
                }
                draft.name = row.name.clone();
                draft.purpose = (!row.purpose.is_empty()).then(|| row.purpose.clone());
                draft.guesses = g;
                self.b.add(draft);
            }
        }
    }

    /// The implicit peer of a row that names none: Clients for a source,
    /// the Internet for a destination.
    fn implicit(&mut self, source: bool, line: usize, guesses: &mut Vec<String>) -> Peer {
        let (name, what) = if source {
            ("Clients", "source")
        } else {
            ("Internet", "destination")
        };
        self.b.warn(
            line,
            format!(
                "the {what} is not named on the page; taken as \"{name}\" (an external component)"
            ),
        );
        guesses.push(format!("{what} not named on the page; {name} assumed"));
        let c = self.b.component(name, Kind::External);
        Peer::Comp(c)
    }

    fn peers(
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

    fn peer(
        &mut self,
        name: &str,
        source: bool,
        subject: Option<usize>,
        line: usize,
        default: Kind,
    ) -> Option<Peer> {
        let lower = name.trim().to_lowercase();
        if matches!(
            lower.as_str(),
            "all" | "any" | "anywhere" | "everyone" | "everything" | "*" | "any host" | "all hosts"
        ) {
            let mut g = Vec::new();
            self.b.warn(line, format!("peer \"{name}\" is implicit"));
            return Some(self.implicit(source, line, &mut g));
        }
        if matches!(
            lower.as_str(),
            "self"
                | "itself"
                | "localhost"
                | "local"
                | "same host"
                | "this host"
                | "this node"
                | "the same node"
        ) {
            return match subject {
                Some(s) => {
                    let sname = self.b.components[s].name.clone();
                    self.b
                        .warn(line, format!("peer \"{name}\" taken as {sname} itself"));
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
            };
        }
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
        if let Some(host) = host_of(name) {
            if source {
                return Some(Peer::Comp(self.b.component(&host, Kind::External)));
            }
            return Some(Peer::Ext(self.b.external(Addr::Host(host), None)));
        }
        let kind = self.kind_for(name, default);
        Some(Peer::Comp(self.b.component(name.trim(), kind)))
    }

    fn lists(&mut self) {
        let doc = self.doc;
        for (i, block) in doc.blocks.iter().enumerate() {
            let Block::List(items) = block else { continue };
            if self.consumed.contains(&i) {
                continue;
            }
            let ctx = &doc.ctx[i];
            self.list(items, ctx);
        }
    }

    fn list(&mut self, items: &[Item], ctx: &Ctx) {
        let entries: Vec<Option<HostEntry>> = items.iter().map(|it| host_entry(&it.text)).collect();
        if entries.iter().all(Option::is_none) {
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
        let pseudo_text = ctx
            .pseudo
            .as_ref()
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        let conditional = self.doc.conditional[ctx.section] || is_conditional(&pseudo_text);
        let pseudo_condition = condition_in(&pseudo_text);
        // Subjects of the list as a whole.
        let list_subjects = self.list_subjects(ctx, items.first().map_or(0, |i| i.line));
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
            match &entries[k] {
                Some(entry) => {
                    let subjects = match inherited.clone() {
                        Some(s) => s,
                        None => match &list_subjects {
                            Some(s) => s.clone(),
                            None => vec![self.system_component(item.line)],
                        },
                    };
                    subjects_of[k] = Some(subjects.clone());
                    self.host_flows(
                        entry,
                        &subjects,
                        item.line,
                        conditional,
                        pseudo_condition.as_ref(),
                    );
                }
                None => {
                    let has_children = items[k + 1..]
                        .iter()
                        .take_while(|it| it.indent > item.indent)
                        .next()
                        .is_some();
                    let text = plain(&item.text);
                    let text = text.trim_end_matches(':').trim().to_owned();
                    if has_children && text.split_whitespace().count() <= 5 {
                        let subjects = self.subjects_named(&text, item.line);
                        subjects_of[k] = Some(subjects);
                        self.b.definition(item.line);
                    } else {
                        subjects_of[k] = inherited;
                        self.b.skip(item.line, &text, "list item names no host");
                    }
                }
            }
        }
    }

    fn list_subjects(&mut self, ctx: &Ctx, line: usize) -> Option<Vec<usize>> {
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
        let _ = line;
        let (name, hline) = path_subject(&ctx.path)?;
        if ALL_HOSTS.contains(&squash(&name).as_str()) {
            return Some(self.subjects_named(&name, hline));
        }
        Some(vec![self.section_component(&name, ctx.section)])
    }

    fn subjects_named(&mut self, name: &str, line: usize) -> Vec<usize> {
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

    fn host_flows(
        &mut self,
        entry: &HostEntry,
        subjects: &[usize],
        line: usize,
        conditional: bool,
        pseudo_condition: Option<&CondText>,
    ) {
        let meta = meta_of(&entry.meta);
        let required = meta.required.unwrap_or(!conditional);
        let mut when = meta.condition.as_ref().and_then(|c| self.b.condition(c));
        if when.is_none() && !required {
            if let Some(c) = pseudo_condition {
                when = self.b.condition(c);
            } else {
                let phrases = purpose_phrases(&entry.purpose);
                if !phrases.is_empty() {
                    when = self.b.condition(&CondText::Phrases(phrases));
                }
            }
        }
        if !required && when.is_none() {
            self.b.warn(line, "optional host entry names no condition");
        }
        let purpose = plain(&entry.purpose);
        for host in &entry.hosts {
            let mut guesses = Vec::new();
            let (mut protos, mut ports) = (meta.protocols.clone(), Vec::new());
            if let Some(p) = host.port {
                ports.push(PItem::Range(p.0, p.1));
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
                    self.b
                        .warn(line, format!("no port for {}; {note}", host.label()));
                } else {
                    ports.push(PItem::Range(443, 443));
                    guesses.push("port not stated on the page; HTTPS (443) assumed".to_owned());
                    self.b.warn(
                        line,
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
                        format!("no protocol for {}; TCP assumed", host.label()),
                    );
                }
            }
            let ext = self.b.external(host.addr.clone(), meta.name.as_deref());
            for &from in subjects {
                for proto in &protos {
                    let mut draft = Draft::new(from, Dest::Ext(ext), *proto, line);
                    if matches!(proto, Proto::Tcp | Proto::Udp) {
                        draft.ports = ports.clone();
                        draft.source_ports = meta
                            .source_ports
                            .iter()
                            .map(|&(a, b)| PItem::Range(a, b))
                            .collect();
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

    /// Sentences of sections that held no table or list, which state a
    /// network requirement in prose: an image pull under a registry heading
    /// becomes a flow (see `image_pull`); any other is not imported, and
    /// said so.
    fn prose_warnings(&mut self) {
        const TRIGGERS: &[&str] = &[
            "needs to be able to",
            "need to be able to",
            "must be able to",
            "needs access to",
            "need access to",
            "requires access to",
            "require access to",
            "must reach",
            "needs to reach",
            "need to reach",
            "must be allowed",
            "must be open",
            "should be open",
            "must allow",
            "needs to connect",
            "must connect",
        ];
        for (section, paragraphs) in self.doc.prose.iter().enumerate() {
            if self.used_sections.contains(&section) {
                continue;
            }
            for (line, text) in paragraphs {
                for (offset_line, raw_line) in (*line..).zip(text.split('\n')) {
                    for sentence in plain(raw_line).split(". ") {
                        let lower = sentence.to_lowercase();
                        if TRIGGERS.iter().any(|t| lower.contains(t)) {
                            let heading_text = self.doc.section_heading[section]
                                .as_ref()
                                .map(|h| h.text.clone());
                            if let Some(pull) = heading_text
                                .as_deref()
                                .and_then(|h| image_pull(h, sentence))
                            {
                                self.image_pull_flow(&pull, offset_line);
                                continue;
                            }
                            let heading = heading_text
                                .map(|h| format!(" under \"{h}\""))
                                .unwrap_or_default();
                            self.b.warn(
                                offset_line,
                                format!("prose{heading} states a network requirement that was not imported (only tables and lists are read): \"{}\"", sentence.trim().trim_end_matches('.')),
                            );
                        }
                    }
                }
            }
        }
    }

    /// The flow an image-pull sentence states: from the container runtime
    /// to the registry the section is about.
    fn image_pull_flow(&mut self, pull: &ImagePull, line: usize) {
        let from = self.b.component("Container runtime", Kind::Dependency);
        if self.b.components[from].description.is_none() {
            self.b.components[from].description =
                Some("The nodes or container runtime that pull the container images.".to_owned());
        }
        let to = self.b.component(&pull.registry, Kind::Dependency);
        let mut draft = Draft::new(from, Dest::Comp(to), Proto::Tcp, line);
        draft.ports = vec![PItem::Range(443, 443)];
        if !pull.features.is_empty() {
            draft.when = self.b.condition(&CondText::Phrases(pull.features.clone()));
            draft.required = false;
        }
        draft.name = Some(pull.name.clone());
        draft.purpose = Some(format!("{}.", pull.sentence));
        draft.guesses = vec![
            "port not stated on the page; HTTPS (443) assumed, as container registries are served over HTTPS".to_owned(),
        ];
        self.b.add(draft);
    }
}

/// A sentence under a registry heading saying something must be able to
/// pull an image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImagePull {
    /// The registry: the section heading.
    registry: String,
    /// The flow's name: the image phrase ("Backend image").
    name: String,
    /// The sentence, as the flow's purpose.
    sentence: String,
    /// Feature phrases of a leading "If you …" clause; empty when unconditional.
    features: Vec<String>,
}

/// Phrases that state a need to pull, as prose words it.
const PULL_TRIGGERS: &[&str] = &[
    "needs to be able to pull ",
    "need to be able to pull ",
    "must be able to pull ",
    "should be able to pull ",
    "needs access to pull ",
    "need access to pull ",
    "requires access to pull ",
    "require access to pull ",
];

/// Words that open the subject of a main clause after an "If you …" clause
/// that has no comma ("If you deploy … operator the Kubernetes cluster will
/// need …").
const SUBJECT_OPENERS: &[&str] = &[" the ", " your ", " each ", " every ", " all "];

/// Reads an image-pull requirement: only under a heading about registries,
/// only with a pull trigger followed within a few words by "image(s)", and
/// only unconditional or conditional on a leading "If you …" clause; any
/// other sentence stays a warning.
fn image_pull(heading: &str, sentence: &str) -> Option<ImagePull> {
    // Only a section about registries says where the images come from.
    find_ci(heading, "registr")?;
    let sentence = sentence.trim().trim_end_matches('.').trim();
    let (pos, trigger) = PULL_TRIGGERS
        .iter()
        .filter_map(|t| find_ci(sentence, t).map(|p| (p, *t)))
        .min_by_key(|(p, _)| *p)?;
    let object = &sentence[pos + trigger.len()..];
    let mut phrase = Vec::new();
    let mut found = false;
    for w in object.split_whitespace().take(6) {
        let bare = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-');
        let lower = bare.to_lowercase();
        if phrase.is_empty()
            && matches!(
                lower.as_str(),
                "the" | "a" | "an" | "our" | "your" | "its" | "their" | "all" | "any"
            )
        {
            continue;
        }
        if bare.is_empty() || bare.len() != w.len() && !(lower == "image" || lower == "images") {
            // Punctuation ends the object before an image was named.
            return None;
        }
        phrase.push(bare.to_owned());
        if lower == "image" || lower == "images" {
            found = true;
            break;
        }
    }
    if !found {
        return None;
    }
    let mut name = phrase.join(" ");
    if let Some(first) = name.chars().next() {
        name.replace_range(..first.len_utf8(), &first.to_uppercase().to_string());
    }
    let head = &sentence[..pos];
    let features = if head.len() >= 7 && head[..7].eq_ignore_ascii_case("if you ") {
        let clause_end = match head.find(',') {
            Some(p) => p,
            None => SUBJECT_OPENERS
                .iter()
                .filter_map(|o| find_ci(&head[7..], o).map(|p| p + 7))
                .max()?,
        };
        let features = if_you_phrases(&head[7..clause_end]);
        if features.is_empty() {
            return None;
        }
        features
    } else if contains_words(head, "if") || contains_words(head, "when") {
        // A condition this rule cannot place: leave the sentence to the warning.
        return None;
    } else {
        Vec::new()
    };
    Some(ImagePull {
        registry: heading.trim().to_owned(),
        name,
        sentence: sentence.to_owned(),
        features,
    })
}

/// The line of a flow from a named component to the row's subject on the
/// same protocols and ports.
fn covering_flow(
    row: &PortRow,
    reaching: &HashMap<(Dest, Proto, Vec<PItem>), usize>,
) -> Option<usize> {
    let subject = row.subject?;
    let ranges: Vec<PItem> = row
        .ports
        .iter()
        .filter_map(|p| match p {
            PortItem::Range(a, b) => Some(PItem::Range(*a, *b)),
            _ => None,
        })
        .collect();
    if ranges.is_empty() || ranges.len() != row.ports.len() {
        return None;
    }
    let mut line = None;
    for proto in &row.protos {
        line = Some(*reaching.get(&(Dest::Comp(subject), *proto, ranges.clone()))?);
    }
    line
}

fn rows_are_from(corner: &str) -> bool {
    let from_words = ["from", "source", "src", "client", "sender"];
    let to_words = [
        "to",
        "destination",
        "dest",
        "dst",
        "target",
        "server",
        "receiver",
    ];
    let names = |text: &str, set: &[&str]| set.iter().any(|w| contains_words(text, w));
    if let Some(pos) = corner.find('↓') {
        let after: String = corner[pos + '↓'.len_utf8()..]
            .split('\n')
            .next()
            .unwrap_or("")
            .to_owned();
        if names(&after, &to_words) && !names(&after, &from_words) {
            return false;
        }
        if names(&after, &from_words) {
            return true;
        }
    }
    if let Some(pos) = corner.find('→') {
        let before = corner[..pos].rsplit('\n').next().unwrap_or("");
        if names(before, &from_words) && !names(before, &to_words) {
            return false;
        }
        if names(before, &to_words) {
            return true;
        }
    }
    for sep in ['\\', '/'] {
        if let Some(pos) = corner.find(sep) {
            let left = &corner[..pos];
            if names(left, &to_words) && !names(left, &from_words) {
                return false;
            }
            return true;
        }
    }
    true
}

fn required_word(text: &str) -> Option<bool> {
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
fn paren_protocols(text: &str) -> Vec<Proto> {
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

/// Peer names in a cell: "Self, Control plane", "<ul><li>a</li><li>b</li></ul>", "a / b".
fn peer_names(raw: &str) -> Vec<String> {
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
fn cidr_of(text: &str) -> Option<String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<ipnet::IpNet>() {
        return Some(net.trunc().to_string());
    }
    if let Ok(addr) = t.parse::<std::net::IpAddr>() {
        return Some(addr.to_string());
    }
    None
}

const FILE_EXTENSIONS: &[&str] = &[
    "md", "yaml", "yml", "json", "txt", "html", "htm", "png", "jpg", "jpeg", "svg", "sh", "rs",
    "py", "toml", "conf", "cfg", "log", "xml", "csv", "gz", "zip", "tar", "exe", "js", "ts", "css",
    "pdf", "ini", "pem", "crt", "key", "jar", "go", "rb", "java", "deb", "rpm",
];

/// A DNS name (wildcards allowed) with at least one dot and a top-level
/// label of letters, lowercased.
fn host_of(text: &str) -> Option<String> {
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

/// One host of a host entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRef {
    addr: Addr,
    port: Option<(u16, u16)>,
    /// 443 or 80 from a URL's scheme.
    scheme_port: Option<u16>,
}

impl HostRef {
    fn label(&self) -> String {
        match &self.addr {
            Addr::Host(h) | Addr::Cidr(h) => h.clone(),
            Addr::Placeholder(p) => format!("\"{p}\""),
        }
    }
}

/// A list item that names hosts: the hosts, the words after them up to the
/// description, and the description.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    hosts: Vec<HostRef>,
    meta: String,
    purpose: String,
}

/// A host token: `slack.com`, `usa.bulksms.com:5567`, `https://x.io/y`,
/// `10.0.0.0/8`, `<X IRC network>:6697` (a rendered placeholder).
fn host_token(token: &str) -> Option<HostRef> {
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

fn split_port(t: &str) -> (&str, Option<(u16, u16)>) {
    match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match port_or_range(p) {
            Some(r) => (h, Some(r)),
            None => (t, None),
        },
        _ => (t, None),
    }
}

/// Reads the hosts at the start of a list item.
fn host_entry(raw: &str) -> Option<HostEntry> {
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
enum Tok {
    /// A code span: its content is literal.
    Code,
    /// A quoted string.
    Quoted,
    /// A word or a link.
    Other,
}

/// The first token of a text: a code span, a quoted string, a link, or a
/// word; the rest; and its kind.
fn next_token(text: &str) -> Option<(String, &str, Tok)> {
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
fn plain_token(token: &str) -> String {
    let p = plain(token);
    // Emphasis left unpaired by a line break ("*host*") wraps the whole token.
    if p.len() > 2 && p.starts_with('*') && p.ends_with('*') {
        return p[1..p.len() - 1].to_owned();
    }
    p
}

fn split_purpose(rest: &str) -> (String, String) {
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
struct Meta {
    name: Option<String>,
    protocols: Vec<Proto>,
    required: Option<bool>,
    condition: Option<CondText>,
    source_ports: Vec<(u16, u16)>,
}

fn meta_of(meta: &str) -> Meta {
    let mut out = Meta::default();
    let mut rest = meta.trim();
    if rest.starts_with('(') {
        if let Some(close) = rest.find(')') {
            out.name = Some(plain(&rest[1..close])).filter(|s| !s.is_empty());
            rest = rest[close + 1..].trim_start();
        }
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
    out.protocols = words(&head)
        .iter()
        .filter_map(|w| match w.as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "icmp" => Some(Proto::Icmp),
            _ => None,
        })
        .collect();
    let ws = words(&head);
    if ws.iter().any(|w| w == "optional") {
        out.required = Some(false);
    } else if ws.iter().any(|w| w == "required") {
        out.required = Some(true);
    }
    out
}

/// `` `sqs` (SQS message queue): Use Amazon SQS as the message queue. ``
fn feature_definition(raw: &str) -> Option<(String, Option<String>, Option<String>)> {
    let (id, rest, _) = next_token(raw)?;
    if slug(&id) != id || id.is_empty() {
        return None;
    }
    let mut rest = rest.trim_start();
    let mut name = None;
    if rest.starts_with('(') {
        let close = rest.find(')')?;
        name = Some(plain(&rest[1..close]));
        rest = &rest[close + 1..];
    }
    let description = rest
        .trim_start()
        .strip_prefix(':')
        .map(|d| plain(d.trim()))
        .filter(|d| !d.is_empty());
    Some((id, name, description))
}

/// `` `$postgres-port`, default 5432, shown as "User-defined": Port of the database. ``
fn parameter_definition(raw: &str) -> Option<crate::build::Param> {
    let (token, rest, _) = next_token(raw)?;
    let id = token.strip_prefix('$')?.to_owned();
    if slug(&id) != id {
        return None;
    }
    let default = find_ci(rest, "default ").and_then(|p| {
        rest[p + 8..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<u16>().ok())
    });
    let (shown_as, after) = match find_ci(rest, "shown as \"") {
        Some(p) => {
            let body = &rest[p + 10..];
            // The quoted text may hold escaped quotes.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end?;
            (plain(&body[..end]), &body[end + 1..])
        }
        None => ("User-defined".to_owned(), ""),
    };
    let description = after
        .trim_start()
        .strip_prefix(':')
        .map(|d| plain(d.trim()))
        .filter(|d| !d.is_empty());
    Some(crate::build::Param {
        id,
        default,
        shown_as,
        description,
    })
}

#[allow(dead_code)]
fn unused(_: Cond) {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_reads_only_pulls_of_images_under_a_registry_heading() {
        let pull = image_pull(
            "Container registries",
            "If you deploy your workers using our Kubernetes operator the Kubernetes cluster will need to be able to pull the launcher image as well.",
        )
        .unwrap();
        assert_eq!(pull.registry, "Container registries");
        assert_eq!(pull.name, "Launcher image");
        assert_eq!(pull.features, vec!["Kubernetes operator".to_owned()]);
        let pull = image_pull(
            "Container registries",
            "The environment you deploy Spacelift into (for example a Kubernetes or ECS cluster) needs to be able to pull the backend image",
        )
        .unwrap();
        assert_eq!(pull.name, "Backend image");
        assert!(pull.features.is_empty());
        assert_eq!(
            image_pull("Image registry", "Your nodes must be able to pull images.")
                .unwrap()
                .name,
            "Images"
        );
        // Not a registry section, not an image, not a pull, or a condition
        // the rule cannot place: left to the warning.
        assert!(image_pull(
            "Server",
            "The server must be able to pull the backend image"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "Nodes must be able to pull updates from the mirror"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "Nodes must be able to reach the registry image store"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "When scanning is on, nodes must be able to pull the scanner image"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "If you like nodes must be able to pull the scanner image"
        )
        .is_none());
        assert!(image_pull(
            "Registries",
            "Nodes must be able to pull the charts, then the image"
        )
        .is_none());
    }

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

    #[test]
    fn corners() {
        assert!(rows_are_from("to →\n↓ from"));
        assert!(rows_are_from("from \\ to"));
        assert!(!rows_are_from("to \\ from"));
        assert!(!rows_are_from("from →\n↓ to"));
        assert!(rows_are_from(""));
    }

    #[test]
    fn definitions() {
        let (id, name, d) =
            feature_definition("`sqs` (SQS message queue): Use Amazon SQS.").unwrap();
        assert_eq!(
            (id.as_str(), name.as_deref(), d.as_deref()),
            ("sqs", Some("SQS message queue"), Some("Use Amazon SQS."))
        );
        let p = parameter_definition(
            "`$postgres-port`, default 5432, shown as \"User-defined\": Port of the database.",
        )
        .unwrap();
        assert_eq!(
            (p.id.as_str(), p.default, p.shown_as.as_str()),
            ("postgres-port", Some(5432), "User-defined")
        );
        let p = parameter_definition(
            "`$x-port`, no default: every deployment sets it, shown as \"443 or user-defined\"",
        )
        .unwrap();
        assert_eq!(
            (p.default, p.shown_as.as_str()),
            (None, "443 or user-defined")
        );
    }
}
