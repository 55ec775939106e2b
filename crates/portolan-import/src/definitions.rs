//! Definitions a page states before its flows: the legend of a matrix, kinds
//! said in prose, names of host-list endpoints, and Features, Parameters and
//! Conditions lists.

use crate::blocks::Block;
use crate::build::Addr;
use crate::conditions::{condition_in, CondText};
use crate::hosts::{host_entry, meta_of, next_token};
use crate::page::Reader;
use crate::ports::{legend_letters, legend_pattern, Legend, Proto};
use crate::structure::{Ctx, Doc};
use crate::text::{contains_words, find_ci, inline, plain, slug, squash};

/// Words of a paragraph that say its code span is the cells' notation.
const LEGEND_WORDS: &[&str] = &[
    "shown as",
    "format",
    "notation",
    "legend",
    "each cell",
    "cells",
    "written as",
];

/// Phrases of a paragraph that say its section's subject is a dependency.
const DEPENDENCY_PHRASES: &[&str] = &[
    "provided and run by the operator",
    "provided by the operator",
];

/// What a definition list defines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Definitions {
    Features,
    Parameters,
    Conditions,
}

impl Definitions {
    /// What is said of an item that is not such a definition.
    fn skip_reason(self) -> &'static str {
        match self {
            Self::Features => "not a feature definition (`id` (name): description)",
            Self::Parameters => "not a parameter definition (`$id`, default N, shown as \"…\")",
            Self::Conditions => "numbered condition that could not be read",
        }
    }
}

impl Reader<'_, '_> {
    /// Legend, kinds, and the Features, Parameters and Conditions lists.
    pub(crate) fn definitions(&mut self) {
        self.read_legend();
        self.kinds_in_prose();
        self.names_of_host_endpoints();
        let lists = definition_lists(self.doc);
        // Every Features list, then every Parameters list, then every
        // Conditions list: the order of their rows in the report.
        for kind in [
            Definitions::Features,
            Definitions::Parameters,
            Definitions::Conditions,
        ] {
            for &(i, _) in lists.iter().filter(|(_, k)| *k == kind) {
                self.read_definition_list(i, kind);
            }
        }
    }

    /// The legend: the first code span that reads as a cell notation.
    fn read_legend(&mut self) {
        let doc = self.doc;
        for (_, block, ctx) in doc.iter() {
            let Some((line, text)) = legend_candidate(block) else {
                continue;
            };
            if let Some(legend) = legend_in(doc, ctx, line, &text) {
                self.legend = legend;
                return;
            }
        }
    }

    /// Kinds stated in prose: a dependency, the outside world.
    fn kinds_in_prose(&mut self) {
        for (_, block, ctx) in self.doc.iter() {
            let Block::Paragraph { text, .. } = block else {
                continue;
            };
            let p = plain(text);
            let lower = p.to_lowercase();
            if lower.starts_with("a dependency")
                || DEPENDENCY_PHRASES.iter().any(|w| lower.contains(w))
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

    /// Names that host lists give their endpoints ("`host:443` (Amazon
    /// CloudWatch) TCP …"), so that a table row naming the endpoint by
    /// that name reaches the endpoint, not a new component.
    fn names_of_host_endpoints(&mut self) {
        for (_, block, _) in self.doc.iter() {
            let Block::List(items) = block else { continue };
            for entry in items.iter().filter_map(|item| host_entry(&item.text)) {
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

    /// Reads every item of list `i` as a definition of `kind`; the list
    /// is consumed.
    fn read_definition_list(&mut self, i: usize, kind: Definitions) {
        let Block::List(items) = &self.doc.blocks[i] else {
            return;
        };
        for item in items {
            self.b.report.rows_read += 1;
            if self.define(kind, &item.text) {
                self.b.definition(item.line);
            } else {
                self.b.skip(item.line, &item.text, kind.skip_reason());
            }
        }
        self.consumed.insert(i);
    }

    /// Records the definition `text` of `kind`; whether it was one.
    fn define(&mut self, kind: Definitions, text: &str) -> bool {
        match kind {
            Definitions::Features => match feature_definition(text) {
                Some((id, name, description)) => {
                    self.b
                        .define_feature(&id, name.as_deref(), description.as_deref());
                    true
                }
                None => false,
            },
            Definitions::Parameters => match parameter_definition(text) {
                Some(p) => {
                    self.b.param_defs.push(p);
                    true
                }
                None => false,
            },
            Definitions::Conditions => {
                let condition = condition_in(text);
                let read = condition.is_some();
                // An unread condition keeps its number.
                self.conditions
                    .push(condition.unwrap_or(CondText::Phrases(Vec::new())));
                read
            }
        }
    }
}

/// A paragraph, or a list as one text, that may hold a legend: its line
/// and text.
fn legend_candidate(block: &Block) -> Option<(usize, String)> {
    match block {
        Block::Paragraph { line, text } => Some((*line, text.clone())),
        Block::List(items) => {
            let first = items.first()?;
            let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
            Some((first.line, texts.join("\n")))
        }
        _ => None,
    }
}

/// The legend `text` states in a code span: three fields or more, or two
/// in a legend section or a paragraph that says it is one; with the
/// letters its section explains.
fn legend_in(doc: &Doc, ctx: &Ctx, line: usize, text: &str) -> Option<Legend> {
    let lower = text.to_lowercase();
    let in_legend = ctx
        .path
        .last()
        .is_some_and(|h| contains_words(&h.text, "legend") || contains_words(&h.text, "notation"));
    let described = in_legend || LEGEND_WORDS.iter().any(|w| lower.contains(w));
    let (fields, separator) = inline(text)
        .code
        .iter()
        .filter_map(|code| legend_pattern(code))
        .find(|(fields, _)| fields.len() >= 3 || (fields.len() >= 2 && described))?;
    let mut letters = section_letters(doc, ctx, text);
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
    Some(legend)
}

/// The letters that the prose and lists of `ctx`'s section (and `text`)
/// explain.
fn section_letters(doc: &Doc, ctx: &Ctx, text: &str) -> Vec<(String, Proto)> {
    let section_text: Vec<String> = doc.prose[ctx.section]
        .iter()
        .map(|(_, t)| t.clone())
        .chain(std::iter::once(text.to_owned()))
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
    letters
}

/// The Features, Parameters and Conditions lists of a page, by their
/// heading (or the short paragraph above) and the shape of every item.
fn definition_lists(doc: &Doc) -> Vec<(usize, Definitions)> {
    let mut lists = Vec::new();
    for (i, block, ctx) in doc.iter() {
        let Block::List(items) = block else { continue };
        let heading = ctx.path.last().map(|h| squash(&h.text)).unwrap_or_default();
        let pseudo = ctx
            .pseudo
            .as_ref()
            .map(|(p, _)| squash(p))
            .unwrap_or_default();
        if heading == "features" && items.iter().all(|it| it.text.starts_with('`')) {
            lists.push((i, Definitions::Features));
        } else if heading == "parameters" && items.iter().all(|it| it.text.starts_with("`$")) {
            lists.push((i, Definitions::Parameters));
        } else if (pseudo == "conditions" || heading == "conditions")
            && items.iter().all(|it| find_ci(&it.text, "when").is_some())
        {
            lists.push((i, Definitions::Conditions));
        }
    }
    lists
}

/// `` `sqs` (SQS message queue): Use Amazon SQS as the message queue. ``
pub(crate) fn feature_definition(raw: &str) -> Option<(String, Option<String>, Option<String>)> {
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
pub(crate) fn parameter_definition(raw: &str) -> Option<crate::build::Param> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
