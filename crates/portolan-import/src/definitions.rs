//! Definitions a page states before its flows: the legend of a matrix, kinds
//! said in prose, names of host-list endpoints, and Features, Parameters and
//! Conditions lists.

use crate::blocks::Block;
use crate::build::Addr;
use crate::conditions::{condition_in, CondText};
use crate::hosts::{host_entry, meta_of, next_token};
use crate::page::Reader;
use crate::ports::{legend_letters, legend_pattern, Legend};
use crate::text::{contains_words, find_ci, inline, plain, slug, squash};

impl Reader<'_, '_> {
    /// Legend, kinds, and the Features, Parameters and Conditions lists.
    pub(crate) fn definitions(&mut self) {
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
