//! The import report: what was read, imported, merged, skipped and guessed.

use serde::Serialize;

/// What an import did, line by line. Serialises to the JSON of `--report json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The page, as named in the source.
    pub file: String,
    /// The system name used.
    pub system: String,
    /// Table body rows and list items read.
    pub rows_read: usize,
    /// Flows in the spec, one per (source, destination) pair.
    pub flows_imported: usize,
    /// Components, external endpoints, features and parameters in the spec.
    pub components: usize,
    /// External endpoints in the spec.
    pub externals: usize,
    /// Features in the spec.
    pub features: usize,
    /// Parameters in the spec.
    pub parameters: usize,
    /// Rows or items that restate a flow already imported (e.g. the ingress
    /// side of an egress row): no new flow, the line joins the flow's origin.
    pub rows_merged: Vec<Merged>,
    /// Rows or items (or parts of them) not imported, each with the reason.
    pub rows_skipped: Vec<Skipped>,
    /// Lines read as definitions rather than flows: feature and parameter
    /// lists, numbered conditions, list items naming the subject of nested items.
    pub definitions: Vec<usize>,
    /// Ambiguities, with the line; the flow's `guess:` says what was chosen.
    pub warnings: Vec<Warning>,
    /// Every value inferred rather than stated.
    pub guesses: Vec<Guess>,
    /// Per line that gave a flow, was merged, skipped or read as a
    /// definition: what became of it, in line order.
    pub rows: Vec<RowOutcome>,
}

/// What became of one line of the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RowOutcome {
    /// The line.
    pub line: usize,
    /// Flows whose origin is this line (including those it restates).
    pub flows: usize,
    /// Whether it restates a flow of another line.
    pub merged: bool,
    /// Whether it was read as a definition (feature, parameter, condition, subject).
    pub definition: bool,
    /// Why (parts of) it were skipped.
    pub skipped: Vec<String>,
    /// What was guessed for its flows.
    pub guessed: Vec<String>,
}

impl ImportReport {
    /// Fills [`ImportReport::rows`] from the other lists and the lines of
    /// the flows (each flow's line and the lines that restate it).
    pub(crate) fn fill_rows(&mut self, flow_lines: impl Iterator<Item = usize>) {
        let mut rows: std::collections::BTreeMap<usize, RowOutcome> =
            std::collections::BTreeMap::new();
        fn at(
            rows: &mut std::collections::BTreeMap<usize, RowOutcome>,
            line: usize,
        ) -> &mut RowOutcome {
            rows.entry(line).or_insert_with(|| RowOutcome {
                line,
                ..RowOutcome::default()
            })
        }
        for line in flow_lines {
            at(&mut rows, line).flows += 1;
        }
        for m in &self.rows_merged {
            at(&mut rows, m.line).merged = true;
        }
        for &d in &self.definitions {
            at(&mut rows, d).definition = true;
        }
        for s in &self.rows_skipped {
            at(&mut rows, s.line).skipped.push(s.reason.clone());
        }
        for g in &self.guesses {
            let row = at(&mut rows, g.line);
            if !row.guessed.contains(&g.guess) {
                row.guessed.push(g.guess.clone());
            }
        }
        self.rows = rows.into_values().collect();
    }
}

/// A row that says the same as an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merged {
    /// Its line.
    pub line: usize,
    /// The line of the flow it was merged into.
    pub with_line: usize,
}

/// A row, item or cell that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its line.
    pub line: usize,
    /// What it says (the row, item or cell token).
    pub text: String,
    /// Why it was not imported.
    pub reason: String,
}

/// An ambiguity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The line it is about.
    pub line: usize,
    /// What was ambiguous and what was done.
    pub message: String,
}

/// A value that was inferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guess {
    /// The line of the flow.
    pub line: usize,
    /// What was guessed.
    pub guess: String,
}
