//! The Portolan spec: the model of a system's networking requirements, its
//! YAML reader with source positions, validation diagnostics and JSON Schema.
//!
//! A spec is read in two steps. [`raw`] holds the unchecked form, exactly as
//! the YAML says it; [`load_spec`] checks it into the [`model`] form, where
//! every reference is resolved, or returns every problem it found as
//! [`Diagnostics`].
//!
//! ```
//! use portolan_spec::{load_spec, SourceFile};
//!
//! let source = SourceFile::new("portolan.yaml", "portolan: 1
//! system: {name: Demo}
//! components:
//!   - {id: web}
//!   - {id: db, kind: dependency}
//! flows:
//!   - {from: web, to: db, protocol: tcp, port: 5432}
//! ");
//! let spec = load_spec(source).unwrap().value;
//! assert_eq!(spec.flows[0].id, "web->db/tcp/5432");
//! ```

pub mod check;
mod checker;
pub mod deployment;
pub mod diag;
mod excerpt;
pub mod given;
pub mod kind;
pub mod model;
pub mod plan;
pub mod raw;
pub mod schema;
pub mod site;
mod structure;
pub mod text;
mod yaml;

pub use check::{load_spec, parse_yaml, Loaded, MAX_ID_LEN};
pub use diag::{
    render_diagnostics, Code, Diagnostic, Diagnostics, ReadError, RenderStyle, Severity,
    SourceFile, Span,
};
pub use kind::ErrorKind;
pub use model::*;
