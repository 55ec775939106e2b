//! The exit-status contract (docs/exit-codes.md), in one place: a command
//! returns an [`ExitStatus`] or a [`CmdError`], and a `CmdError` knows its
//! [`ErrorKind`] from the library error it was made of (each library error
//! has a `kind()`), never from its text.

use std::fmt;
use std::process::ExitCode;

use portolan_apply::ApplyError;
use portolan_firewall::GenerateError;
use portolan_fleet::inventory::InventoryError;
use portolan_fleet::FleetError;
use portolan_import::ImportError;
use portolan_lab::{DesignError, LabError, RunError};
use portolan_preflight::{PreflightError, ResultsError};
use portolan_render::RenderError;
use portolan_spec::{ErrorKind, ReadError};
use portolan_verify::VerifyError;

/// How `portolan` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the input is valid, the output was written, every check passed.
    Success,
    /// 1: the answer is "no": invalid input, or a check found a problem.
    Failure,
    /// 2: Portolan could not do the job: usage, environment, internal error.
    Error,
    /// 130: stopped by Ctrl-C or SIGTERM, after cleaning up.
    Interrupted,
}

impl ExitStatus {
    /// [`Success`](Self::Success) when `ok`, else [`Failure`](Self::Failure).
    pub fn from_check(ok: bool) -> Self {
        if ok {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
            ExitStatus::Interrupted => 130,
        })
    }
}

/// What a command returns.
pub type CmdResult = Result<ExitStatus, CmdError>;

/// Why a command stopped: the message for standard error and whose fault it
/// is. It is deliberately not a `std::error::Error`, so that `?` cannot
/// turn it into an `anyhow::Error` and lose its kind.
#[derive(Debug)]
pub struct CmdError {
    kind: ErrorKind,
    error: anyhow::Error,
}

impl CmdError {
    /// The user's input is wrong (exit 1): a file, a name or a value given.
    pub fn input(message: impl fmt::Display) -> Self {
        Self {
            kind: ErrorKind::Input,
            error: anyhow::Error::msg(message.to_string()),
        }
    }

    /// The exit status this error ends the command with.
    pub fn status(&self) -> ExitStatus {
        match self.kind {
            ErrorKind::Input => ExitStatus::Failure,
            ErrorKind::Environment | ErrorKind::Internal => ExitStatus::Error,
        }
    }

    /// A library error of a known kind. An input error's message is whole
    /// (the library writes its cause into it), so it is kept as text; other
    /// errors keep their chain of causes.
    fn of<E: std::error::Error + Send + Sync + 'static>(kind: ErrorKind, error: E) -> Self {
        let error = match kind {
            ErrorKind::Input => anyhow::Error::msg(error.to_string()),
            ErrorKind::Environment | ErrorKind::Internal => anyhow::Error::new(error),
        };
        Self { kind, error }
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// What the binary itself could not do (write a file, start a runtime, a
/// usage error found after parsing): exit 2.
impl From<anyhow::Error> for CmdError {
    fn from(error: anyhow::Error) -> Self {
        Self {
            kind: ErrorKind::Environment,
            error,
        }
    }
}

/// Library errors become a `CmdError` of their own kind.
macro_rules! from_library_errors {
    ($($error:ty),+ $(,)?) => {$(
        impl From<$error> for CmdError {
            fn from(error: $error) -> Self {
                Self::of(error.kind(), error)
            }
        }
    )+};
}

from_library_errors!(
    ReadError,
    ImportError,
    RenderError,
    GenerateError,
    PreflightError,
    ResultsError,
    RunError,
    DesignError,
    LabError,
    portolan_lab::rules::RulesError,
    VerifyError,
    FleetError,
    InventoryError,
    ApplyError,
);

/// Serialising our own values, or the probe engine refusing its own
/// configuration: Portolan's fault (exit 2), with the chain of causes.
macro_rules! internal_errors {
    ($($error:ty),+ $(,)?) => {$(
        impl From<$error> for CmdError {
            fn from(error: $error) -> Self {
                Self::of(ErrorKind::Internal, error)
            }
        }
    )+};
}

internal_errors!(
    serde_json::Error,
    portolan_probe::Error,
    portolan_probe::quick_junit::SerializeError,
);
