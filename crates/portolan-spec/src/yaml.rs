//! Reading YAML into the unchecked types: serde-saphyr with a budget
//! against hostile input, its errors turned into diagnostics, and, after a
//! structural error, every structural problem of the document (see
//! [`crate::structure`]).

use crate::diag::{did_you_mean, Code, Diagnostic, SourceFile, Span};

/// A YAML file format Portolan reads: what messages call a document of it,
/// the line it starts with, and the reference its hints point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// The document's name in messages (`spec`, `deployment`).
    pub name: &'static str,
    /// The first line of a document (`portolan: 1`).
    pub header: &'static str,
    /// The format's reference, which hints point to.
    pub reference: &'static str,
}

impl Format {
    /// The spec format.
    pub const SPEC: Format = Format {
        name: "spec",
        header: "portolan: 1",
        reference: "docs/spec-format.md",
    };
    /// The deployment format.
    pub const DEPLOYMENT: Format = Format {
        name: "deployment",
        header: "deployment: 1",
        reference: "docs/deployment-format.md",
    };
}

/// Deserialises YAML of `format` into `T`. On failure, every structural
/// problem (unknown key, missing key, wrong type) of the document when the
/// YAML parses (a second reading, against the type's JSON Schema), else the
/// one problem found, each as a diagnostic with a location and a hint that
/// points to the format's reference.
pub fn parse_yaml<T: serde::de::DeserializeOwned + schemars::JsonSchema>(
    source: &SourceFile,
    format: &Format,
) -> Result<T, Vec<Diagnostic>> {
    let Format {
        name: what,
        reference,
        ..
    } = *format;
    if source.text.trim().is_empty() {
        return Err(vec![Diagnostic::new(Code::YamlSyntax, "the file is empty")
            .with_label(Span::new(0, 0), "nothing here")
            .with_help(format!(
                "a {what} starts with `{}`; see {reference}",
                format.header
            ))]);
    }
    let error = match serde_saphyr::from_str_with_options(&source.text, yaml_options()) {
        Ok(value) => return Ok(value),
        Err(error) => yaml_error_to_diagnostic(&error, source, reference),
    };
    if !matches!(
        error.code,
        Code::UnknownKey | Code::MissingKey | Code::WrongType
    ) {
        return Err(vec![error]);
    }
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    match crate::structure::check(source, &schema, what, reference) {
        Ok(all) if !all.is_empty() => Err(all),
        Ok(_) => Err(vec![error]),
        // serde reads as it parses: the structural error came before a
        // syntax error further on, often a mis-indented key. Both are
        // reported, the first with a hint when the key is there.
        Err(syntax) => {
            let mut error = error;
            if let (Code::MissingKey, Some(field)) = (error.code, missing_field(&error.message)) {
                let at = error.labels.first().map_or(0, |l| l.span.offset);
                if let Some(hint) = crate::structure::stray_key_hint(source, at, field) {
                    error.help = Some(hint);
                }
            }
            Err(vec![
                error,
                yaml_error_to_diagnostic(&syntax, source, reference),
            ])
        }
    }
}

/// The key named by a "missing required key `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing required key `")?
        .strip_suffix('`')
}

/// Largest number of YAML nodes (mappings, sequences, scalars) a file may
/// hold: room for a system of 100,000 flows (about ten nodes each).
pub const MAX_YAML_NODES: usize = 2_000_000;

/// serde-saphyr's options: its budget bounds nesting, aliases, events and
/// nodes, so that hostile input (alias bombs, deep nesting) fails cleanly
/// instead of exhausting memory. The node and event limits are raised from
/// the defaults (250,000 nodes), which a spec of 20,000 flows exceeds.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_events = 4 * MAX_YAML_NODES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Converts a serde-saphyr error into a diagnostic; hints point to the
/// format's `reference` document.
pub fn yaml_error_to_diagnostic(
    error: &serde_saphyr::Error,
    source: &SourceFile,
    reference: &str,
) -> Diagnostic {
    use serde_saphyr::Error as E;
    let span = error
        .location()
        .map(|l| Span::from_location(&l, source))
        .unwrap_or_default();
    let inner = error.without_snippet();
    let (code, message, label, help) = match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let help = match did_you_mean(field, expected.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("known keys here: {}", expected.join(", ")),
            };
            (
                Code::UnknownKey,
                format!("unknown key `{field}`"),
                "not a key of this section".to_owned(),
                help,
            )
        }
        E::SerdeMissingField { field, .. } => (
            Code::MissingKey,
            format!("missing required key `{field}`"),
            format!("`{field}` is required in this mapping"),
            format!("add `{field}:`; see {reference}"),
        ),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let help = match did_you_mean(variant, expected.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("expected one of: {}", expected.join(", ")),
            };
            (
                Code::WrongType,
                format!("unknown value `{variant}`"),
                "not one of the allowed words".to_owned(),
                help,
            )
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => (
            Code::WrongType,
            format!("expected {expected}, found {unexpected}"),
            format!("expected {expected}"),
            format!("see {reference} for the shape of this value"),
        ),
        E::DuplicateMappingKey { key, .. } => (
            Code::DuplicateKey,
            match key {
                Some(k) => format!("key `{k}` appears twice in the same mapping"),
                None => "a key appears twice in the same mapping".to_owned(),
            },
            "second occurrence".to_owned(),
            "keep one of the two".to_owned(),
        ),
        other => other_problem(&other.to_string()),
    };
    Diagnostic::new(code, message)
        .with_label(span, label)
        .with_help(help)
}

/// Code, message, label and hint of a problem serde-saphyr reports only
/// as text: a value of the wrong shape for an untagged type, else a YAML
/// syntax error.
fn other_problem(text: &str) -> (Code, String, String, String) {
    if let Some(help) = untagged_help(text) {
        (
            Code::WrongType,
            "this value has the wrong shape".to_owned(),
            "unexpected shape".to_owned(),
            help.to_owned(),
        )
    } else {
        let message = strip_location_prefix(text);
        (
            Code::YamlSyntax,
            format!("malformed YAML: {message}"),
            "here".to_owned(),
            "check indentation, quoting and brackets around this point".to_owned(),
        )
    }
}

fn strip_location_prefix(text: &str) -> &str {
    // serde-saphyr prefixes messages with "line N column M: ", which our own
    // location rendering already shows.
    match text.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") || head.starts_with("error: line ") => rest,
        _ => text,
    }
}

fn untagged_help(text: &str) -> Option<&'static str> {
    if text.contains("RawPorts") || text.contains("RawPortItem") {
        Some("a port is a number (443), a range (\"8000-8010\"), a parameter (\"$postgres-port\") or a list of them")
    } else if text.contains("RawCondition") {
        Some("a condition is a feature id, {any: [...]}, {all: [...]} or {not: ...}")
    } else {
        None
    }
}
