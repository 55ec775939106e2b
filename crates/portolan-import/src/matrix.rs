//! Connection matrices: one row and one column per component, each cell in
//! the notation the page's legend explains.

use std::collections::HashSet;

use crate::blocks::{Block, Row, Table};
use crate::build::{Dest, Draft, Kind};
use crate::page::Reader;
use crate::ports::{PortItem, Token};
use crate::report::WarningCode;
use crate::roles::{roles, Role};
use crate::text::{contains_words, inline, plain, squash};

impl Reader<'_, '_> {
    pub(crate) fn is_matrix(&self, table: &Table) -> bool {
        let roles: Vec<Role> = roles(&table.header);
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

    pub(crate) fn matrices(&mut self) {
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

    pub(crate) fn matrix(&mut self, table: &Table) {
        let width = table.header.len();
        if table.delimiter_cells != width && table.delimiter_cells != 0 {
            self.b.warn(
                table.line,
                WarningCode::MalformedTable,
                format!(
                    "the header row has {width} cells but the delimiter row {}; the header's {width} columns were used",
                    table.delimiter_cells
                ),
            );
        }
        let corner = inline(&table.header[0]).text.to_lowercase();
        let rows_are_from = rows_are_from(&corner);
        let columns = self.matrix_columns(table);
        if columns.iter().any(Option::is_none) {
            self.b.warn(
                table.line,
                WarningCode::UnnamedColumn,
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
            let (flows, failures) = self.matrix_row(row, me, &columns, rows_are_from);
            if flows == 0 && failures == 0 {
                self.b.skip(
                    row.line,
                    &name,
                    "matrix row lists no connection (every cell empty or N/A)",
                );
            }
        }
    }

    /// The component of each column after the corner (`None` for a column
    /// without a name), found by its link's anchor or its name.
    fn matrix_columns(&mut self, table: &Table) -> Vec<Option<usize>> {
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
        columns
    }

    /// The flows of the cells of row component `me`; returns (flows,
    /// skipped cells and tokens).
    fn matrix_row(
        &mut self,
        row: &Row,
        me: usize,
        columns: &[Option<usize>],
        rows_are_from: bool,
    ) -> (usize, usize) {
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
                    format!("cell beyond the header's {} columns", columns.len()),
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
        (flows, failures)
    }

    pub(crate) fn row_component(
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
                WarningCode::NameVariant,
                format!("row \"{name}\" has no column of its own; taken as another spelling of column \"{canonical}\""),
            );
            return c;
        }
        let kind = self.matrix_kind(name);
        self.b.component(name, kind)
    }

    /// A matrix lists the product's own components, so only the outside
    /// world ("Outside", "Internet") is told apart.
    pub(crate) fn matrix_kind(&self, name: &str) -> Kind {
        match self.kind_for(name, Kind::System) {
            Kind::External => Kind::External,
            _ => Kind::System,
        }
    }

    /// The flows of one matrix cell; returns (flows, skipped tokens).
    pub(crate) fn matrix_cell(
        &mut self,
        text: &str,
        from: usize,
        to: usize,
        line: usize,
    ) -> (usize, usize) {
        let names = (
            self.b.components[from].name.clone(),
            self.b.components[to].name.clone(),
        );
        let (groups, failures) = self.cell_tokens(text, line, &names);
        let n = groups.len();
        for (token, ports) in groups {
            self.matrix_flow(&token, &ports, (from, to), line, &names);
        }
        (n, failures)
    }

    /// The tokens of a cell, those that differ only in their ports
    /// grouped; and how many could not be read (each skipped).
    fn cell_tokens(
        &mut self,
        text: &str,
        line: usize,
        (from_name, to_name): &(String, String),
    ) -> (Vec<(Token, Vec<PortItem>)>, usize) {
        let mut groups: Vec<(Token, Vec<PortItem>)> = Vec::new();
        let mut failures = 0;
        let spaced = if self.legend.separator == ',' {
            text.replace(';', " ")
        } else {
            text.replace(", ", " ").replace(';', " ")
        };
        for raw in spaced.split_whitespace() {
            if NO_CONNECTION.contains(&raw.to_lowercase().as_str()) {
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
        (groups, failures)
    }

    /// The flow of one group of tokens of a cell, with its numbered
    /// condition.
    fn matrix_flow(
        &mut self,
        token: &Token,
        ports: &[PortItem],
        (from, to): (usize, usize),
        line: usize,
        (from_name, to_name): &(String, String),
    ) {
        let mut draft = Draft::new(from, Dest::Comp(to), token.proto, line);
        let mut guesses = Vec::new();
        draft.ports = self.b.port_items(ports, to_name, "", line, &mut guesses);
        draft.source_ports =
            self.b
                .port_items(&token.source_ports, from_name, "", line, &mut guesses);
        draft.multicast = token.multicast;
        draft.guesses = guesses;
        draft.required = !token.optional;
        if let Some(k) = token.condition {
            match self.conditions.get(k.wrapping_sub(1)).cloned() {
                Some(c) => draft.when = self.b.condition(&c),
                None => self.b.warn(
                    line,
                    WarningCode::UnknownCondition,
                    format!("condition [{k}] of cell {from_name} → {to_name} is not listed on the page; the flow was imported without it"),
                ),
            }
        }
        if !draft.required && draft.when.is_none() {
            self.b.warn(
                line,
                WarningCode::OptionalWithoutCondition,
                format!("optional flow {from_name} → {to_name} names no condition"),
            );
        }
        self.b.add(draft);
    }
}

/// Matrix cell tokens that say there is no connection.
const NO_CONNECTION: &[&str] = &["n/a", "na", "-", "—", "–", "none", "n.a."];

pub(crate) fn rows_are_from(corner: &str) -> bool {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn corners() {
        assert!(rows_are_from("to →\n↓ from"));
        assert!(rows_are_from("from \\ to"));
        assert!(!rows_are_from("to \\ from"));
        assert!(!rows_are_from("from →\n↓ to"));
        assert!(rows_are_from(""));
    }
}
