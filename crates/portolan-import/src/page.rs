//! Reading a page: its structure (headings, pseudo-headings, sections), the
//! definitions it states (legend, features, parameters, conditions, kinds),
//! then its matrices, port tables and host lists, in that order, so that
//! later shapes can name the components earlier ones introduced.

use std::collections::{HashMap, HashSet};

use portolan_spec::SourceFile;

use crate::blocks::{blocks, Block};
use crate::build::{kind_of, Addr, Builder, Kind};
use crate::conditions::CondText;
use crate::ports::Legend;
use crate::report::WarningCode;
use crate::structure::{strip_generic, Doc};
use crate::text::{contains_words, find_ci, plain, squash};
use crate::{ImportError, ImportOptions, Imported};

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
    let read = reader.prose_flows();
    reader.prose_warnings(&read);
    b.report.system = system.clone();
    b.report.flows_imported = b.flows.len();
    if b.flows.is_empty() {
        return Err(ImportError::NothingImported {
            file: source.name.clone(),
            report: Box::new(std::mem::take(&mut b.report)),
        });
    }
    let draft = b.draft(&system);
    let yaml = crate::yaml::write(&draft, &b.file).map_err(|e| ImportError::Internal {
        file: source.name.clone(),
        message: e.to_string(),
    })?;
    let flow_lines: Vec<usize> = b
        .flows
        .iter()
        .flat_map(|f| std::iter::once(f.line).chain(f.also.iter().copied()))
        .collect();
    b.report.fill_rows(flow_lines.into_iter());
    b.report.flows_imported = draft.flows.iter().map(|f| f.from.len()).sum();
    b.report.components = draft.components.len();
    b.report.externals = draft.externals.len();
    b.report.features = draft.features.len();
    b.report.parameters = draft.parameters.len();
    Ok(Imported {
        yaml,
        report: b.report,
    })
}

/// Endings of a title that say what the page is about, not what the
/// product is called ("Vault network requirements", "Ceph firewall ports").
const TITLE_SUFFIXES: &[&str] = &[
    ": networking requirements",
    " networking requirements",
    ": network requirements",
    " network requirements",
    ": networking",
    " networking",
    ": ports and connections",
    ": ports to open",
    ": ports",
    " ports and protocols",
    " ports reference",
    " port requirements",
    " network ports",
    " firewall ports",
    " firewall rules",
    ": firewall configuration",
    " firewall configuration",
    " installation prerequisites",
    " prerequisites",
];

/// First words of a title that say how the product is run.
const TITLE_PREFIXES: &[&str] = &[
    "self-hosted ",
    "self-managed ",
    "on-premises ",
    "managed ",
    "hosted ",
];

/// Last words of a title that name a deployment of the product, not the
/// product: "Nextcloud server" is Nextcloud.
const ROLE_NOUNS: &[&str] = &["server", "instance", "cluster", "deployment"];

/// The run of capitalised words in a title that is not only its first
/// word: "Configuring firewall port access for Cassandra" gives
/// "Cassandra", "Security group rules for a managed GitLab instance" gives
/// "GitLab", "Elastic Stack" stays whole. `None` when only the first word
/// is capitalised (sentence case: "Billing database host" is the name).
fn proper_run(title: &str) -> Option<String> {
    let words: Vec<&str> = title.split_whitespace().collect();
    let capital = |w: &str| w.chars().any(char::is_uppercase);
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < words.len() {
        if !capital(words[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < words.len() && capital(words[i]) {
            i += 1;
        }
        if i - start > 1 || start > 0 {
            best.get_or_insert((start, i));
        }
    }
    let (a, b) = best?;
    if a == 0 && b == words.len() {
        return None;
    }
    Some(
        words[a..b]
            .join(" ")
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_owned(),
    )
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
    if let Some(name) = title.as_deref().and_then(name_in_title) {
        return name;
    }
    if let Some(name) = most_repeated_proper_noun(doc) {
        return name;
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

/// The product a page's title names, less what the title says about it
/// ("Self-hosted Sentry", "Nextcloud server"); `None` when it names a
/// topic ("Network ports and outbound proxy").
fn name_in_title(title: &str) -> Option<String> {
    let cut = TITLE_SUFFIXES.iter().find_map(|s| find_ci(title, s));
    let mut name = match cut {
        Some(p) => title[..p].trim().to_owned(),
        None => title.to_owned(),
    };
    // "Self-hosted Sentry", "Managed GitLab": how it is run, not its name.
    while let Some(rest) = TITLE_PREFIXES.iter().find_map(|p| {
        (name.len() > p.len() && name[..p.len()].eq_ignore_ascii_case(p))
            .then(|| name[p.len()..].to_owned())
    }) {
        name = rest;
    }
    // A title with no capital letter beyond generic words names a topic,
    // not the product.
    if !strip_generic(&name).chars().any(char::is_uppercase) {
        return None;
    }
    let name = proper_run(&name).unwrap_or(name);
    // "Nextcloud server", "GitLab instance": the product is the name.
    Some(match name.rsplit_once(' ') {
        Some((head, last))
            if ROLE_NOUNS.contains(&last) && head.chars().any(char::is_uppercase) =>
        {
            head.to_owned()
        }
        _ => name,
    })
}

/// The proper noun the page's prose and lists repeat most, three times at
/// least ("Spacelift", "Circonus").
fn most_repeated_proper_noun(doc: &Doc<'_>) -> Option<String> {
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
    // Ties go to the alphabetically first word, so the result is stable.
    let (w, n) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    (*n >= 3).then(|| w.clone())
}

pub(crate) struct Reader<'d, 'b> {
    pub(crate) doc: &'d Doc<'d>,
    pub(crate) b: &'b mut Builder,
    pub(crate) system: String,
    pub(crate) legend: Legend,
    /// Numbered conditions of a rendered matrix page.
    pub(crate) conditions: Vec<CondText>,
    /// Blocks read as definitions.
    pub(crate) consumed: HashSet<usize>,
    /// Sections that held a table or list that was read.
    pub(crate) used_sections: HashSet<usize>,
    /// Names the page says are the outside world.
    pub(crate) external_names: Vec<String>,
    /// Sections that say their subject is a dependency.
    pub(crate) dependency_sections: HashSet<usize>,
    /// External endpoints the page's host lists name: (name, address).
    pub(crate) external_names_of_hosts: Vec<(String, Addr)>,
}

impl Reader<'_, '_> {
    pub(crate) fn kind_for(&self, name: &str, default: Kind) -> Kind {
        if self
            .external_names
            .iter()
            .any(|n| squash(n) == squash(name))
        {
            return Kind::External;
        }
        kind_of(name, default)
    }

    pub(crate) fn section_component(&mut self, name: &str, section: usize) -> usize {
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

    pub(crate) fn system_component(&mut self, line: usize) -> usize {
        let system = self.system.clone();
        self.b.warn(
            line,
            WarningCode::NoSubject,
            format!("no heading names the component of this table or list; its flows were attached to \"{system}\""),
        );
        self.b.component(&system, Kind::System)
    }

    /// Warns when a new component's name contains an existing one's
    /// ("Spacelift Server" and "Server"): they were kept apart.
    pub(crate) fn near_miss(&mut self, name: &str, line: usize) {
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
                WarningCode::SimilarNames,
                format!("\"{name}\" was kept apart from component \"{other}\" (a different name on the page); merge them by hand if they are one"),
            );
        }
    }
}
