//! Diagnostics: problems found in an input file, each with a stable code, a
//! location, the offending text underlined and a hint.
//!
//! Libraries collect [`Diagnostic`]s instead of failing at the first problem;
//! the binary turns them into text with [`render_diagnostics`] (miette's
//! graphical handler) or JSON.

use std::fmt;
use std::sync::Arc;

use crate::excerpt::{line_starts, Excerpt};
use crate::text;

/// A text file read as input, kept whole so that diagnostics can quote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The name shown in diagnostics: usually the path as the user gave it.
    pub name: String,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// A source from a name and its text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            text: text.into(),
        })
    }

    /// Reads a file; the error names the path.
    pub fn read(path: &std::path::Path) -> Result<Arc<Self>, ReadError> {
        let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8 {
            path: path.display().to_string(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        Ok(Self::new(path.display().to_string(), text))
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// The byte offset of a 1-based line and column, clamped to the text.
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        let mut offset = 0;
        for (index, text_line) in self.text.split_inclusive('\n').enumerate() {
            if index + 1 == line {
                let within: usize = text_line
                    .chars()
                    .take(column.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                return offset + within;
            }
            offset += text_line.len();
        }
        self.text.len()
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Why an input file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The operating system refused.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not text.
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The path as given.
        path: String,
        /// Where the first invalid byte is.
        offset: usize,
    },
}

impl ReadError {
    /// An input file that cannot be read is the user's to fix.
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::Input
    }
}

/// A byte range of a [`SourceFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (0 for a point).
    pub len: usize,
}

impl Span {
    /// A span from an offset and a length.
    pub const fn new(offset: usize, len: usize) -> Self {
        Self { offset, len }
    }

    /// The span of a serde-saphyr location (its character span, converted to bytes).
    pub fn from_location(location: &serde_saphyr::Location, source: &SourceFile) -> Self {
        let span = location.span();
        if let (Some(offset), Some(len)) = (span.byte_offset(), span.byte_len()) {
            return Self::new(offset as usize, len as usize);
        }
        let offset = source.offset_of(location.line() as usize, location.column() as usize);
        Self::new(offset, 0)
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is unusable as it stands.
    Error,
    /// The input is usable, but something is likely wrong or was guessed.
    Warning,
}

/// Declares [`Code`] from one table: each variant with its doc, its stable
/// string and its severity, so that the enum, [`Code::ALL`],
/// [`Code::as_str`] and [`Code::severity`] cannot drift apart.
macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $text:literal, $severity:ident;)+) => {
        /// A stable diagnostic code. The string form (`as_str`) never changes once
        /// released; every code is documented in `docs/diagnostics.md`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The stable string form, e.g. `spec::unknown-reference`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)+
                }
            }

            /// The severity this code always has.
            pub const fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)+
                }
            }
        }
    };
}

codes! {
    /// The YAML itself is malformed.
    YamlSyntax = "spec::yaml-syntax", Error;
    /// A key that the format does not define.
    UnknownKey = "spec::unknown-key", Error;
    /// A key the format requires is missing.
    MissingKey = "spec::missing-key", Error;
    /// A value of the wrong type (a list where a string belongs, ...).
    WrongType = "spec::wrong-type", Error;
    /// The same key twice in one mapping.
    DuplicateKey = "spec::duplicate-key", Error;
    /// `portolan:` names a format version this build does not read.
    UnsupportedVersion = "spec::unsupported-version", Error;
    /// An id that is not lowercase letters, digits and dashes.
    InvalidId = "spec::invalid-id", Error;
    /// Two items share an id.
    DuplicateId = "spec::duplicate-id", Error;
    /// A flow names a component or external endpoint that does not exist.
    UnknownReference = "spec::unknown-reference", Error;
    /// A condition names a feature that does not exist.
    UnknownFeature = "spec::unknown-feature", Error;
    /// A port names a parameter that does not exist.
    UnknownParameter = "spec::unknown-parameter", Error;
    /// A port that is not a number, range or parameter.
    InvalidPort = "spec::invalid-port", Error;
    /// A port outside 1..=65535.
    PortOutOfRange = "spec::port-out-of-range", Error;
    /// A range whose start is above its end.
    InvertedRange = "spec::inverted-range", Error;
    /// A port on a protocol that has none (icmp, any).
    PortNotAllowed = "spec::port-not-allowed", Error;
    /// Two flows say the same thing.
    DuplicateFlow = "spec::duplicate-flow", Error;
    /// A multicast address outside 224.0.0.0/4 and ff00::/8.
    InvalidMulticast = "spec::invalid-multicast", Error;
    /// Multicast over a protocol other than UDP.
    MulticastProtocol = "spec::multicast-protocol", Error;
    /// A flow's `from` names an external endpoint: endpoints only receive.
    InvalidSource = "spec::invalid-source", Error;
    /// An external endpoint with a malformed host or CIDR, or not exactly one address kind.
    InvalidAddress = "spec::invalid-address", Error;
    /// A parameter used by a flow has no default: the deployment must give it.
    ParameterNeedsValue = "spec::parameter-needs-value", Warning;
    /// An optional flow without a `when`: nothing can switch it on or off.
    OptionalWithoutCondition = "spec::optional-without-condition", Warning;
    /// A flow allowing every protocol and port to something that is not the outside world.
    BroadFlow = "spec::broad-flow", Warning;
    /// A feature no flow uses.
    UnusedFeature = "spec::unused-feature", Warning;
    /// A parameter no flow uses.
    UnusedParameter = "spec::unused-parameter", Warning;
    /// An empty list where at least one item is needed.
    EmptyList = "spec::empty-list", Error;
    /// A key written without a value (`port:`, `when:`), which would read
    /// as its widest meaning (every port, unconditional).
    EmptyValue = "spec::empty-value", Error;
    /// A control character (escape, NUL, bidirectional override, ...) in a
    /// name or description; a line break in a one-line text.
    ControlCharacter = "spec::control-character", Error;
    /// A deployment places a component the spec does not define.
    DeploymentUnknownComponent = "deployment::unknown-component", Error;
    /// A deployment binds an external endpoint the spec does not define.
    DeploymentUnknownExternal = "deployment::unknown-external", Error;
    /// A deployment enables a feature the spec does not define.
    DeploymentUnknownFeature = "deployment::unknown-feature", Error;
    /// A deployment sets a parameter the spec does not define.
    DeploymentUnknownParameter = "deployment::unknown-parameter", Error;
    /// A deployment address that is not an IP address, CIDR or DNS name.
    DeploymentInvalidAddress = "deployment::invalid-address", Error;
    /// A deployment parameter value outside 1..=65535.
    DeploymentInvalidPort = "deployment::invalid-port", Error;
    /// A malformed Kubernetes selector or AWS placement.
    DeploymentInvalidPlacement = "deployment::invalid-placement", Error;
    /// Addresses of different components overlap, so a rule about one matches the other.
    DeploymentOverlappingAddresses = "deployment::overlapping-addresses", Error;
    /// A required flow whose source or destination has no placement.
    DeploymentUnplacedFlow = "deployment::unplaced-flow", Error;
    /// An enabled optional flow whose source or destination has no placement.
    DeploymentUnplacedOptionalFlow = "deployment::unplaced-optional-flow", Warning;
    /// A parameter used by an enabled flow has neither a default nor a value.
    DeploymentMissingParameter = "deployment::missing-parameter", Error;
    /// A control character in the deployment's name or description.
    DeploymentControlCharacter = "deployment::control-character", Error;
    /// The chosen target cannot serve the deployment (e.g. nftables without addresses).
    DeploymentUnsupportedByTarget = "deployment::unsupported-by-target", Error;
    /// Host names that contradict each other (two names for one host, one name for two hosts).
    DeploymentHostConflict = "deployment::host-conflict", Error;
    /// A malformed site flow (no end given, both ends addresses, a mixed list, an unplaced component).
    DeploymentInvalidSiteFlow = "deployment::invalid-site-flow", Error;
    /// A component reaches an external endpoint by DNS name and no flow allows it DNS.
    DeploymentNoDnsFlow = "deployment::no-dns-flow", Warning;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An underlined piece of the source with a short message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Label {
    /// What is underlined.
    pub span: Span,
    /// What to say under it.
    pub message: String,
}

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error or warning (fixed by the code).
    pub severity: Severity,
    /// One sentence saying what is wrong.
    pub message: String,
    /// The primary label first, then secondary ones (e.g. the first definition of a duplicate).
    pub labels: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
    /// A fact about the problem for the caller to word for its own
    /// interface: libraries never name command-line flags, the binary adds
    /// which of its options is concerned.
    #[serde(skip)]
    pub context: Option<Context>,
}

/// A fact about a problem that only the caller can put in its own words
/// (see [`Diagnostic::context`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Context {
    /// The value is also the id of a component: where component ids and
    /// host names are taken alike, the two cannot be told apart.
    AlsoAComponentId,
}

impl Diagnostic {
    /// A diagnostic with the code's severity and no label yet.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            message: message.into(),
            labels: Vec::new(),
            help: None,
            context: None,
        }
    }

    /// Adds a label.
    #[must_use]
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Sets the hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the context (see [`Diagnostic::context`]).
    #[must_use]
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// Whether this diagnostic makes the input unusable.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column` of the primary label, or the file name alone.
    pub fn location(&self, source: &SourceFile) -> String {
        match self.labels.first() {
            Some(label) => {
                let (line, column) = source.line_col(label.span.offset);
                format!("{}:{line}:{column}", source.name)
            }
            None => source.name.clone(),
        }
    }
}

/// Diagnostics about one source file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file they are about.
    pub source: Arc<SourceFile>,
    /// Errors and warnings, in the order found.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Whether any item is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// How many errors and warnings there are.
    pub fn counts(&self) -> (usize, usize) {
        let errors = self.items.iter().filter(|d| d.is_error()).count();
        (errors, self.items.len() - errors)
    }

    /// The diagnostics as JSON values with resolved line and column.
    pub fn to_json(&self) -> serde_json::Value {
        let items: Vec<_> = self
            .items
            .iter()
            .map(|d| {
                let (line, column) = d
                    .labels
                    .first()
                    .map_or((0, 0), |l| self.source.line_col(l.span.offset));
                serde_json::json!({
                    "code": d.code,
                    "severity": d.severity,
                    // JSON escapes control characters itself; only length is bounded.
                    "message": text::clip(&d.message, 4 * text::CLIP_WIDTH),
                    "file": self.source.name,
                    "line": line,
                    "column": column,
                    "labels": d.labels.iter().map(|l| serde_json::json!({
                        "span": l.span,
                        "message": text::clip(&l.message, text::CLIP_WIDTH),
                    })).collect::<Vec<_>>(),
                    "help": d.help.as_deref().map(|h| text::clip(h, 4 * text::CLIP_WIDTH)),
                })
            })
            .collect();
        serde_json::Value::Array(items)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (errors, warnings) = self.counts();
        write!(
            f,
            "{}: {errors} error(s), {warnings} warning(s)",
            self.source.name
        )
    }
}

impl std::error::Error for Diagnostics {}

/// One diagnostic bound to the excerpt of its source, in the shape miette
/// renders: every text from the input escaped and clipped.
#[derive(Debug)]
struct Sourced {
    code: Code,
    severity: Severity,
    message: String,
    help: Option<String>,
    labels: Vec<Label>,
    source: Excerpt,
}

impl Sourced {
    fn new(diagnostic: &Diagnostic, source: &SourceFile, starts: &[usize]) -> Self {
        let spans: Vec<Span> = diagnostic.labels.iter().map(|l| l.span).collect();
        let (excerpt, spans) = Excerpt::new(source, starts, &spans);
        Self {
            code: diagnostic.code,
            severity: diagnostic.severity,
            message: text::for_message(&diagnostic.message),
            help: diagnostic.help.as_deref().map(text::for_message),
            labels: diagnostic
                .labels
                .iter()
                .zip(spans)
                .map(|(l, span)| Label {
                    span,
                    message: text::for_line(&l.message).into_owned(),
                })
                .collect(),
            source: excerpt,
        }
    }
}

impl fmt::Display for Sourced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Sourced {}

impl miette::Diagnostic for Sourced {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let labels = self.labels.iter().enumerate().map(|(i, l)| {
            let span = miette::SourceSpan::new(l.span.offset.into(), l.span.len);
            if i == 0 {
                miette::LabeledSpan::new_primary_with_span(Some(l.message.clone()), span)
            } else {
                miette::LabeledSpan::new_with_span(Some(l.message.clone()), span)
            }
        });
        Some(Box::new(labels))
    }
}

/// How diagnostics are turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderStyle {
    /// Colours and Unicode box drawing, for a terminal.
    Fancy,
    /// Unicode box drawing without colours: logs, files and snapshot tests.
    Plain,
}

/// Renders diagnostics as text: the location as `file:line:column`, the
/// source excerpt with the offending text underlined, and the hint.
pub fn render_diagnostics(diagnostics: &Diagnostics, style: RenderStyle) -> String {
    let theme = match style {
        RenderStyle::Fancy => miette::GraphicalTheme::unicode(),
        RenderStyle::Plain => miette::GraphicalTheme::unicode_nocolor(),
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    let starts = line_starts(&diagnostics.source.text);
    for diagnostic in &diagnostics.items {
        let sourced = Sourced::new(diagnostic, &diagnostics.source, &starts);
        out.push_str(&text::for_line(&diagnostic.location(&diagnostics.source)));
        out.push('\n');
        if handler.render_report(&mut out, &sourced).is_err() {
            out.push_str(&sourced.message);
            out.push('\n');
        }
    }
    out
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let source = SourceFile::new("x", "a: 1\nné: 2\n");
        assert_eq!(source.line_col(0), (1, 1));
        assert_eq!(source.line_col(5), (2, 1));
        // "né: " is 5 bytes, 4 characters.
        assert_eq!(source.line_col(10), (2, 5));
        assert_eq!(source.offset_of(2, 5), 10);
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let keys = ["protocol", "port", "purpose"];
        assert_eq!(did_you_mean("protcol", keys), Some("protocol"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }

    #[test]
    fn every_code_is_namespaced_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(
                code.as_str().starts_with("spec::") || code.as_str().starts_with("deployment::"),
                "{code} has no known prefix"
            );
            assert!(seen.insert(code.as_str()), "duplicate {code}");
        }
    }
}
