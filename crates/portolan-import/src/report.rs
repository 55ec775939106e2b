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
    /// What kind of ambiguity: a stable code, documented in `docs/diagnostics.md`.
    pub code: WarningCode,
    /// What was ambiguous and what was done.
    pub message: String,
}

/// Declares [`WarningCode`] from one table: each variant with its doc and
/// its stable string, so that the enum, [`WarningCode::ALL`] and
/// [`WarningCode::as_str`] cannot drift apart.
macro_rules! warning_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $text:literal;)+) => {
        /// A stable import warning code. The string form (`as_str`) never
        /// changes once released; every code is documented in `docs/diagnostics.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum WarningCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl WarningCode {
            /// Every code, in documentation order.
            pub const ALL: &'static [WarningCode] = &[$(WarningCode::$variant),+];

            /// The stable string form, e.g. `import::port-assumed`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(WarningCode::$variant => $text,)+
                }
            }
        }
    };
}

warning_codes! {
    /// A table whose header and delimiter rows disagree, or that has no delimiter row.
    MalformedTable = "import::malformed-table";
    /// A matrix column without a name: its cells were skipped.
    UnnamedColumn = "import::unnamed-column";
    /// Columns whose meaning is not known were not read.
    UnreadColumn = "import::unread-column";
    /// Part of a protocol or port cell could not be read and was left out.
    UnreadCellText = "import::unread-cell-text";
    /// Prose states a network requirement that was not imported.
    ProseNotImported = "import::prose-not-imported";
    /// No heading names the component of a table or list: the system was used.
    NoSubject = "import::no-subject";
    /// A matrix row name taken as another spelling of a column name.
    NameVariant = "import::name-variant";
    /// Two similar names kept as two components.
    SimilarNames = "import::similar-names";
    /// A source not named on the page, taken as outside clients because the page says what the port serves.
    PeerAssumed = "import::peer-assumed";
    /// A source or destination not named on the page: the unspecified party the user must place.
    UnspecifiedPeer = "import::unspecified-peer";
    /// A peer implicit in the table ("this node", "itself").
    ImplicitPeer = "import::implicit-peer";
    /// A name for a group of machines kept as one component.
    GroupComponent = "import::group-component";
    /// The direction of a row was not stated and was assumed.
    DirectionAssumed = "import::direction-assumed";
    /// An ingress row without a source, merged into the flow that reaches the same port.
    IngressMerged = "import::ingress-merged";
    /// The port was not stated and was assumed.
    PortAssumed = "import::port-assumed";
    /// The protocol was not stated; TCP was assumed.
    ProtocolAssumed = "import::protocol-assumed";
    /// Ports given for a protocol that has none (ICMP); left out.
    PortsLeftOut = "import::ports-left-out";
    /// An optional flow whose condition the page does not name.
    OptionalWithoutCondition = "import::optional-without-condition";
    /// A matrix condition marker that the page's legend does not list.
    UnknownCondition = "import::unknown-condition";
    /// The same flow stated as required in one place and optional in another.
    RequiredAndOptional = "import::required-and-optional";
    /// A `$parameter` port that the page does not define.
    ParameterNotDefined = "import::parameter-not-defined";
    /// A port named by the page without a number: a parameter the deployment must set.
    ParameterWithoutDefault = "import::parameter-without-default";
}

impl std::fmt::Display for WarningCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WarningCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A value that was inferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guess {
    /// The line of the flow.
    pub line: usize,
    /// What was guessed.
    pub guess: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_warning_code_is_namespaced_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in WarningCode::ALL {
            assert!(code.as_str().starts_with("import::"), "{code}");
            assert!(seen.insert(code.as_str()), "duplicate {code}");
        }
    }
}
