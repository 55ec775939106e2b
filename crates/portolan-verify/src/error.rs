//! Errors of verification: bad input files (with their position) and
//! problems of the environment.

use std::fmt;
use std::path::Path;

use crate::model::InputKind;

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

/// Declares [`Code`] from one table, so that the enum, [`Code::ALL`] and
/// [`Code::as_str`] cannot drift apart (as `portolan_spec::Code`).
macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $text:literal;)+) => {
        /// A stable code of an input error. The string form (`as_str`)
        /// never changes once released; every code is documented in
        /// `docs/diagnostics.md` ("Verify").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The stable string form, e.g. `verify::not-a-ruleset`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)+
                }
            }
        }
    };
}

codes! {
    /// `--nftables`/`--iptables` HOST is not a host of the deployment.
    UnknownHost = "verify::unknown-host";
    /// A host ruleset file is not a ruleset of the declared kind (or is empty).
    NotARuleset = "verify::not-a-ruleset";
    /// nft JSON of a schema version this verifier cannot read.
    NftJsonVersion = "verify::nft-json-version";
    /// The kernel (nft, iptables-restore) refuses the ruleset in the twin.
    RulesetRefused = "verify::ruleset-refused";
    /// A `--kubernetes` file is not Kubernetes manifests holding a NetworkPolicy.
    NotAManifest = "verify::not-a-manifest";
    /// A NetworkPolicy that Kubernetes would reject.
    InvalidPolicy = "verify::invalid-policy";
    /// A NetworkPolicy in a namespace where the deployment places no component.
    UnknownNamespace = "verify::unknown-namespace";
    /// An `--aws` file is not the JSON of `aws ec2 describe-security-groups`.
    NotSecurityGroups = "verify::not-security-groups";
    /// A security-group permission the API would not return (protocol, ports, CIDR).
    InvalidSecurityGroup = "verify::invalid-security-group";
    /// The deployment names a security group the file does not hold.
    UnknownSecurityGroup = "verify::unknown-security-group";
    /// Several security groups of the file carry the name the deployment gives.
    AmbiguousSecurityGroup = "verify::ambiguous-security-group";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do about an input error. Libraries never name command-line
/// flags: a hint about how a file is given says which kind of input it is,
/// and the caller words it with its own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Advice in words.
    Text(String),
    /// What a file given as an input of this kind holds (`what`, e.g. "the
    /// output of `iptables-save`"): the caller says "OPTION takes WHAT".
    Holds {
        /// The kind of input the file was given as.
        input: InputKind,
        /// What such a file holds.
        what: String,
    },
    /// The file is a ruleset of another kind, to give as that for `host`:
    /// the caller says how.
    GiveAs {
        /// The kind it is.
        input: InputKind,
        /// The host it was given for.
        host: String,
        /// The file.
        file: String,
    },
}

impl From<String> for Hint {
    fn from(text: String) -> Self {
        Hint::Text(text)
    }
}

impl From<&str> for Hint {
    fn from(text: &str) -> Self {
        Hint::Text(text.to_owned())
    }
}

impl fmt::Display for Hint {
    /// The advice, with a kind of input named by its word (the caller puts
    /// its own option in instead).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hint::Text(text) => f.write_str(text),
            Hint::Holds { input, what } => write!(f, "the {} input takes {what}", input.as_str()),
            Hint::GiveAs { input, host, file } => {
                write!(f, "give {file} as the {} ruleset of {host}", input.as_str())
            }
        }
    }
}

/// Why verification could not be done.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// An input file is not what it was declared to be, or is invalid.
    #[error("{at}: error[{code}]: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Input {
        /// Its stable code.
        code: Code,
        /// Where.
        at: Position,
        /// What is wrong.
        message: String,
        /// What to do about it (boxed: errors stay small).
        hint: Option<Box<Hint>>,
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
    /// Input files are the user's; the kernel twin needs this machine.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        match self {
            VerifyError::Input { .. } | VerifyError::Read { .. } => portolan_spec::ErrorKind::Input,
            VerifyError::Environment(_) => portolan_spec::ErrorKind::Environment,
        }
    }

    /// An input error without hint.
    pub fn input(code: Code, at: Position, message: impl Into<String>) -> Self {
        Self::Input {
            code,
            at,
            message: message.into(),
            hint: None,
        }
    }

    /// An input error with a hint.
    pub fn input_hint(
        code: Code,
        at: Position,
        message: impl Into<String>,
        hint: impl Into<Hint>,
    ) -> Self {
        Self::Input {
            code,
            at,
            message: message.into(),
            hint: Some(Box::new(hint.into())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_namespaced_unique_and_documented() {
        let docs = include_str!("../../../docs/diagnostics.md");
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(code.as_str().starts_with("verify::"), "{code}");
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(
                docs.contains(&format!("`{code}`")),
                "{code} is not in docs/diagnostics.md"
            );
        }
    }

    #[test]
    fn an_input_error_says_its_code() {
        let e = VerifyError::input_hint(
            Code::UnknownHost,
            Position::file("h.nft"),
            "`x` is not a host of the deployment",
            "hosts are a, b",
        );
        assert_eq!(
            e.to_string(),
            "h.nft: error[verify::unknown-host]: `x` is not a host of the deployment\n  hint: hosts are a, b"
        );
    }
}
