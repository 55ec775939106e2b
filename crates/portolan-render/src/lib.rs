//! Portolan render stage: a checked [`Spec`] as documents and diagrams.
//!
//! Every output is a pure function of the spec, so the same spec always
//! renders to the same bytes (the snapshot tests rely on it):
//!
//! - [`Format::Matrix`]: a markdown connection-matrix page whose cells use the
//!   `IP:protocol:source_port:destination_port` notation of vendor pages;
//! - [`Format::Tables`]: per-component markdown Ingress and Egress tables;
//! - [`Format::Mermaid`]: a Mermaid flowchart;
//! - [`Format::Dot`]: a Graphviz digraph;
//! - [`Format::Json`]: the checked spec as JSON.
//!
//! ```
//! use portolan_spec::{load_spec, SourceFile};
//! use portolan_render::{render, Format};
//!
//! let source = SourceFile::new("portolan.yaml", "portolan: 1
//! system: {name: Demo}
//! components:
//!   - {id: web, name: Web}
//!   - {id: db, name: DB, kind: dependency}
//! flows:
//!   - {from: web, to: db, protocol: tcp, port: 5432}
//! ");
//! let spec = load_spec(source).unwrap().value;
//! let page = render(&spec, Format::Matrix).unwrap();
//! assert!(page.contains("| Web | N/A | T::5432 |"));
//! ```

mod dot;
mod graph;
mod markdown;
mod matrix;
mod mermaid;
mod operator;
pub mod results;
mod tables;
mod token;

use std::fmt;
use std::str::FromStr;

use portolan_spec::Spec;

pub use operator::render_operator_tables;
pub use token::{flow_tokens, ConditionNotes};

/// Escaping for every page that shows text from input (shared with other
/// stages' reports).
pub mod escape {
    pub use crate::markdown::escape as markdown;
    pub use crate::results::html;
}

/// What [`render`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The connection-matrix page (markdown).
    Matrix,
    /// Per-component Ingress and Egress tables (markdown).
    Tables,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz DOT digraph.
    Dot,
    /// The checked spec as pretty-printed JSON.
    Json,
}

impl Format {
    /// Every format, in documentation order.
    pub const ALL: [Format; 5] = [
        Format::Matrix,
        Format::Tables,
        Format::Mermaid,
        Format::Dot,
        Format::Json,
    ];

    /// The name used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Matrix => "matrix",
            Format::Tables => "tables",
            Format::Mermaid => "mermaid",
            Format::Dot => "dot",
            Format::Json => "json",
        }
    }

    /// The usual file extension of the output.
    pub const fn extension(self) -> &'static str {
        match self {
            Format::Matrix | Format::Tables => "md",
            Format::Mermaid => "mmd",
            Format::Dot => "dot",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that [`Format::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown render format `{0}` (expected matrix, tables, mermaid, dot or json)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Why a spec could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// JSON serialisation failed (it cannot for a checked spec, but serde's API is fallible).
    #[error("cannot serialise the spec as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl RenderError {
    /// Rendering a checked spec cannot fail but for a bug.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        portolan_spec::ErrorKind::Internal
    }
}

/// Renders a checked spec in one format. The text ends with a newline.
pub fn render(spec: &Spec, format: Format) -> Result<String, RenderError> {
    Ok(match format {
        Format::Matrix => matrix::render(spec),
        Format::Tables => tables::render(spec),
        Format::Mermaid => mermaid::render(spec),
        Format::Dot => dot::render(spec),
        Format::Json => {
            let mut json = serde_json::to_string_pretty(spec)?;
            json.push('\n');
            json
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.as_str().parse::<Format>(), Ok(format));
        }
        assert_eq!(
            "html".parse::<Format>(),
            Err(UnknownFormat("html".to_owned()))
        );
    }
}
