//! Portolan import stage: vendor networking pages (markdown) into a spec.
//!
//! Vendors publish their networking requirements as pages in a few shapes:
//! a connection matrix whose cells use a notation that a legend explains,
//! per-component Ingress and Egress tables, generic port tables under a
//! heading, and lists of external host names. [`import_markdown`] reads all
//! of them from one page and writes a spec that `portolan_spec::load_spec`
//! accepts, together with an [`ImportReport`] that accounts for every table
//! row and list item: imported into a flow (whose `origin:` is
//! `file:line`), merged into a flow stated elsewhere on the page, read as a
//! definition, or skipped with a reason. What was inferred rather than
//! stated is a warning with its line, and the flow's `guess:` says it.
//!
//! ```
//! use portolan_import::{import_markdown, ImportOptions};
//! use portolan_spec::SourceFile;
//!
//! let page = SourceFile::new("page.md", "\
//! ## Database
//!
//! | Port | Protocol | Source | Description |
//! |------|----------|--------|-------------|
//! | 5432 | TCP      | App    | PostgreSQL  |
//! ");
//! let imported = import_markdown(&page, &ImportOptions::default()).unwrap();
//! assert!(imported.yaml.contains("port: 5432"));
//! assert_eq!(imported.report.flows_imported, 1);
//! let spec = portolan_spec::load_spec(SourceFile::new("spec.yaml", imported.yaml)).unwrap();
//! assert_eq!(spec.value.flows[0].id, "app->database/tcp/5432");
//! ```

mod blocks;
mod build;
mod bullets;
mod clauses;
mod conditions;
mod context;
mod definitions;
mod draft;
mod hosts;
mod kinds;
mod matrix;
mod page;
mod peers;
mod port_rows;
mod port_table;
mod ports;
mod prose;
mod report;
mod roles;
mod row_peers;
mod structure;
mod text;
mod yaml;

use std::sync::Arc;

use portolan_spec::SourceFile;

pub use report::{Guess, ImportReport, Merged, RowOutcome, Skipped, Warning, WarningCode};

/// The largest page read: 8 MiB. Networking pages are a few kilobytes; a
/// larger input is almost certainly not one.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// Choices the page cannot make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// The system's name; without it, the page's title (less words such as
    /// "networking requirements"), else its most frequent proper noun, else
    /// the file name.
    pub system_name: Option<String>,
}

/// A page read into a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The spec, as YAML text that `portolan_spec::load_spec` accepts.
    pub yaml: String,
    /// What was read, imported, merged, skipped and guessed.
    pub report: ImportReport,
}

/// Why a page could not be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Nothing but whitespace.
    #[error("{file} is empty")]
    Empty {
        /// The page.
        file: String,
    },
    /// Larger than [`MAX_BYTES`].
    #[error(
        "{file} is {size} bytes, more than the 8 MiB ({limit} bytes) a networking page may be"
    )]
    TooLarge {
        /// The page.
        file: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Binary data (NUL bytes or mostly control characters).
    #[error("{file} is binary data, not a markdown page (control byte at offset {offset})")]
    Binary {
        /// The page.
        file: String,
        /// The first NUL or control byte.
        offset: usize,
    },
    /// Not valid UTF-8.
    #[error("{file} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The page.
        file: String,
        /// The first invalid byte.
        offset: usize,
    },
    /// Text, but another format (HTML document, JSON, a Portolan spec, PDF).
    #[error("{file} is not markdown: it looks like {what}")]
    NotMarkdown {
        /// The page.
        file: String,
        /// What it looks like.
        what: String,
    },
    /// Markdown without a table or list to read.
    #[error("{file} has no table and no list: nothing to import (the importer reads connection matrices, port tables and lists of host names)")]
    NoTable {
        /// The page.
        file: String,
    },
    /// A bug of the importer: the spec it drafted could not be written.
    #[error(
        "{file}: internal error of the importer: {message} (please report this with the page)"
    )]
    Internal {
        /// The page.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// Tables or lists were read, but none gave a flow.
    #[error("{file}: {} table rows and list items read, none gave a flow ({} skipped)", .report.rows_read, .report.rows_skipped.len())]
    NothingImported {
        /// The page.
        file: String,
        /// What was read and why each row was skipped.
        report: Box<ImportReport>,
    },
}

impl ImportError {
    /// A draft that cannot be written is a bug of the importer; every other
    /// import error is about the page given.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        match self {
            ImportError::Internal { .. } => portolan_spec::ErrorKind::Internal,
            _ => portolan_spec::ErrorKind::Input,
        }
    }
}

/// Checks raw bytes and makes a source of them: size, emptiness, binary
/// content and UTF-8 are checked before any parsing.
pub fn source_from_bytes(name: &str, bytes: &[u8]) -> Result<Arc<SourceFile>, ImportError> {
    let file = name.to_owned();
    if bytes.len() > MAX_BYTES {
        return Err(ImportError::TooLarge {
            file,
            size: bytes.len(),
            limit: MAX_BYTES,
        });
    }
    if let Some(offset) = binary_offset(bytes) {
        return Err(ImportError::Binary { file, offset });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ImportError::NotUtf8 {
        file: file.clone(),
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Ok(SourceFile::new(name, text))
}

/// The offset of the byte that makes the data binary: a NUL, or the first
/// control byte when more than a tenth of the first 8 KiB are control bytes.
fn binary_offset(bytes: &[u8]) -> Option<usize> {
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        return Some(i);
    }
    let head = &bytes[..bytes.len().min(8192)];
    let control = |b: u8| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c);
    let n = head.iter().filter(|&&b| control(b)).count();
    if n * 10 > head.len() {
        return head.iter().position(|&b| control(b));
    }
    None
}

fn not_markdown(text: &str) -> Option<&'static str> {
    let t = text.trim_start();
    let lower: String = t.chars().take(64).collect::<String>().to_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        return Some("an HTML document (save the page as markdown, or copy its tables)");
    }
    if lower.starts_with("%pdf") {
        return Some("a PDF document");
    }
    if (t.starts_with('{') && t.trim_end().ends_with('}'))
        || (t.starts_with('[') && t.trim_end().ends_with(']') && !t.contains('\n'))
    {
        return Some("JSON");
    }
    if t.lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .is_some_and(|l| l.trim() == "portolan: 1")
    {
        return Some("a Portolan spec already (check it with `portolan validate`)");
    }
    None
}

/// Reads a markdown page into a spec.
///
/// Errors only when there is nothing to import (see [`ImportError`]); every
/// problem with a single row or item is in the report instead.
pub fn import_markdown(
    source: &SourceFile,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let file = source.name.clone();
    if source.text.len() > MAX_BYTES {
        return Err(ImportError::TooLarge {
            file,
            size: source.text.len(),
            limit: MAX_BYTES,
        });
    }
    if let Some(offset) = binary_offset(source.text.as_bytes()) {
        return Err(ImportError::Binary { file, offset });
    }
    if source.text.trim().is_empty() {
        return Err(ImportError::Empty { file });
    }
    if let Some(what) = not_markdown(&source.text) {
        return Err(ImportError::NotMarkdown {
            file,
            what: what.to_owned(),
        });
    }
    page::import(source, options)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn binary_detection() {
        assert_eq!(binary_offset(b"ab\0c"), Some(2));
        assert_eq!(binary_offset(b"# Title\n\ttext\r\n"), None);
        assert_eq!(binary_offset(&[1, 2, 3, b'a']), Some(0));
    }

    #[test]
    fn other_formats() {
        assert!(not_markdown("<!DOCTYPE html><html>").is_some());
        assert!(not_markdown("{\"a\": 1}").is_some());
        assert!(not_markdown("# spec\nportolan: 1\nsystem: {}").is_some());
        assert!(not_markdown("# Networking\n\n| a | b |").is_none());
    }
}
