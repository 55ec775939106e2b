//! Errors of verification: bad input files (with their position) and
//! problems of the environment.

use std::fmt;
use std::path::Path;

/// Where in an input file something is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// The file, as given.
    pub file: String,
    /// 1-based line (0: the whole file).
    pub line: u64,
    /// 1-based column (0: the whole line).
    pub column: u64,
}

impl Position {
    /// A position in `file`.
    pub fn new(file: impl Into<String>, line: u64, column: u64) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }

    /// The whole file.
    pub fn file(file: impl Into<String>) -> Self {
        Self::new(file, 0, 0)
    }

    /// A YAML parser's location in `file`.
    pub fn of_yaml(file: &str, location: &serde_saphyr::Location) -> Self {
        Self::new(file, location.line(), location.column())
    }
}

impl fmt::Display for Position {
    /// `file:line:column`, `file:line` or `file`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.file),
            (l, 0) => write!(f, "{}:{l}", self.file),
            (l, c) => write!(f, "{}:{l}:{c}", self.file),
        }
    }
}

/// Why verification could not be done.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// An input file is not what it was declared to be, or is invalid.
    #[error("{at}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Input {
        /// Where.
        at: Position,
        /// What is wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// An input file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The machine cannot host the kernel twin (privileges, tools).
    #[error("{0}")]
    Environment(String),
}

impl VerifyError {
    /// An input error without hint.
    pub fn input(at: Position, message: impl Into<String>) -> Self {
        Self::Input {
            at,
            message: message.into(),
            hint: None,
        }
    }

    /// An input error with a hint.
    pub fn input_hint(at: Position, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Input {
            at,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// Whether it is the environment's fault (exit 2) rather than the input's (exit 1).
    pub fn is_environment(&self) -> bool {
        matches!(self, Self::Environment(_))
    }
}

/// Reads a text file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, VerifyError> {
    std::fs::read_to_string(path).map_err(|source| VerifyError::Read {
        path: path.display().to_string(),
        source,
    })
}
