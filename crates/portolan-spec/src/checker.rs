//! The shell that checking a spec, a deployment and its site flows share.
//!
//! Each file is read in two steps, as cargo-deny reads its configuration
//! (`UnvalidatedConfig` → `ValidConfig`): YAML becomes the unchecked form
//! (`raw` types, exactly as written, with positions), then a check turns it
//! into the checked form (the model), collecting every problem as a
//! [`Diagnostic`] with a stable code instead of stopping at the first. The
//! parts that do not depend on what is checked live here: reading, the
//! diagnostics and their error count, positions, free text, empty values,
//! and the verdict ([`load`]).

use std::sync::Arc;

use serde_saphyr::Spanned;

use crate::check::check_text;
use crate::diag::{Code, Diagnostic, Diagnostics, SourceFile, Span};
use crate::given::{self, Given};
use crate::yaml::{parse_yaml, Format};

/// A value read from a file together with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The checked value.
    pub value: T,
    /// Warnings (never errors: with errors there is no value).
    pub warnings: Diagnostics,
}

/// The diagnostics of one file being checked.
#[derive(Debug)]
pub(crate) struct Checker {
    /// The file.
    pub(crate) source: Arc<SourceFile>,
    diagnostics: Vec<Diagnostic>,
    /// How many of `diagnostics` are errors.
    errors: usize,
}

impl Checker {
    /// A checker of `source`, with nothing found yet.
    pub(crate) fn new(source: Arc<SourceFile>) -> Self {
        Self {
            source,
            diagnostics: Vec::new(),
            errors: 0,
        }
    }

    /// Where a value is written.
    pub(crate) fn span<T>(&self, spanned: &Spanned<T>) -> Span {
        Span::from_location(&spanned.referenced, &self.source)
    }

    /// Records a problem.
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.errors += usize::from(diagnostic.is_error());
        self.diagnostics.push(diagnostic);
    }

    /// How many errors were found so far (a check compares it before and
    /// after a part, to know whether the part had a problem of its own).
    pub(crate) fn error_count(&self) -> usize {
        self.errors
    }

    /// The format version a document starts with: only 1 exists.
    pub(crate) fn version(&mut self, format: &Format, version: &Spanned<i64>) {
        if version.value != 1 {
            let span = self.span(version);
            self.push(
                Diagnostic::new(
                    Code::UnsupportedVersion,
                    format!(
                        "unsupported {} format version {}",
                        format.name, version.value
                    ),
                )
                .with_label(span, "this build reads version 1")
                .with_help(format!("write `{}`", format.header)),
            );
        }
    }

    /// Free text: a control character in it is an error with `code` (see
    /// [`check_text`]).
    pub(crate) fn printable(
        &mut self,
        code: Code,
        field: &str,
        value: &Spanned<String>,
        multiline: bool,
    ) {
        let span = self.span(value);
        if let Some(d) = check_text(&self.source, code, field, &value.value, span, multiline) {
            self.push(d);
        }
    }

    /// The value of an optional key: `Some(None)` when absent, `None` (after
    /// a diagnostic) when written without a value (see [`crate::given`]).
    pub(crate) fn given<T>(
        &mut self,
        key: &str,
        value: Given<T>,
        help: &str,
    ) -> Option<Option<Spanned<T>>> {
        match given::take(&self.source, key, value, help) {
            Ok(value) => Some(value),
            Err(diagnostic) => {
                self.push(diagnostic);
                None
            }
        }
    }

    /// The verdict: the value with its warnings, or every problem found.
    fn finish<T>(self, value: T) -> Result<Loaded<T>, Diagnostics> {
        let diagnostics = Diagnostics {
            source: self.source,
            items: self.diagnostics,
        };
        if diagnostics.has_errors() {
            return Err(diagnostics);
        }
        Ok(Loaded {
            value,
            warnings: diagnostics,
        })
    }
}

/// Reads `source` as a document of `format` into its unchecked form `R`,
/// then `check`s that into the checked form. On success the value comes
/// with its warnings; otherwise every error and warning found.
pub(crate) fn load<R, T>(
    source: Arc<SourceFile>,
    format: &Format,
    check: impl FnOnce(&mut Checker, R) -> T,
) -> Result<Loaded<T>, Diagnostics>
where
    R: serde::de::DeserializeOwned + schemars::JsonSchema,
{
    let raw: R = match parse_yaml(&source, format) {
        Ok(raw) => raw,
        Err(items) => return Err(Diagnostics { source, items }),
    };
    let mut checker = Checker::new(source);
    let value = check(&mut checker, raw);
    checker.finish(value)
}
