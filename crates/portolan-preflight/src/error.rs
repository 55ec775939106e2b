//! What can go wrong before probing, and when reading results.

use std::net::IpAddr;

/// A problem with the request to listen or check, or an internal fault.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// `--as` names no component of the spec.
    #[error("`{name}` is not a component of the spec{}", suggestion_text(.suggestion, .known))]
    UnknownComponent {
        /// The name given.
        name: String,
        /// A likely typo's correction.
        suggestion: Option<String>,
        /// Every component id, for the message.
        known: Vec<String>,
    },
    /// `--from` or `--address` is not one of the component's addresses in the deployment.
    #[error(
        "{address} is not an address of `{component}` in the deployment (its addresses: {addresses}); nothing was probed"
    )]
    AddressOutsideDeployment {
        /// The address given.
        address: IpAddr,
        /// The component.
        component: String,
        /// The component's addresses, for the message.
        addresses: String,
    },
    /// This host holds none of the component's addresses: it is not one of
    /// the component's hosts.
    #[error(
        "this host holds none of the addresses of `{component}` in the deployment (looked for {looked_for}; this host has {present}); run it on a host of `{component}`; nothing was done"
    )]
    NotThisHost {
        /// The component.
        component: String,
        /// Its addresses and blocks in the deployment.
        looked_for: String,
        /// This host's addresses.
        present: String,
    },
    /// The address to send from or bind on is one of the component's, but
    /// not on this host.
    #[error(
        "{address} is not an address of this host (this host has {present}); nothing was done"
    )]
    AddressNotOnThisHost {
        /// The address given.
        address: IpAddr,
        /// This host's addresses.
        present: String,
    },
    /// This host's interface addresses cannot be read.
    #[error("cannot list this host's addresses: {reason}")]
    Interfaces {
        /// The OS error.
        reason: String,
    },
    /// A probe whose target the plan does not contain: a bug, never sent.
    #[error("internal error: probe `{probe}` is not derived from the plan ({reason}); nothing was probed")]
    TargetOutsidePlan {
        /// The probe's id.
        probe: String,
        /// What does not match.
        reason: String,
    },
    /// The extra CA file cannot be used.
    #[error("{file}: {reason}")]
    CaFile {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A proxy address of the deployment could not be used.
    #[error("proxy: {0}")]
    Proxy(#[from] portolan_probe::Error),
    /// Results could not be serialised.
    #[error("results JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl PreflightError {
    /// Names, addresses, CA files and proxies are the user's; a probe
    /// outside the plan or a serialiser failure is a bug.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        match self {
            PreflightError::TargetOutsidePlan { .. } | PreflightError::Json(_) => {
                portolan_spec::ErrorKind::Internal
            }
            _ => portolan_spec::ErrorKind::Input,
        }
    }
}

fn suggestion_text(suggestion: &Option<String>, known: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None if known.is_empty() => String::new(),
        None => format!(" (components: {})", known.join(", ")),
    }
}

/// A results file that cannot be used by `portolan report`; the message
/// names the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("{file}: broken JSON: {message}")]
    Json {
        /// The file.
        file: String,
        /// serde_json's message, with line and column.
        message: String,
    },
    /// JSON, but not a Portolan results document.
    #[error("{file}: not a Portolan results file (expected \"format\": \"{expected}\"{found})")]
    NotResults {
        /// The file.
        file: String,
        /// The format expected.
        expected: &'static str,
        /// What was found instead, for the message.
        found: String,
    },
    /// Results of another spec (or another version of it).
    #[error(
        "{file}: results of another spec: it was checked against `{found_system}` with spec sha256 {found}, but {expected_from} has sha256 {expected}"
    )]
    SpecMismatch {
        /// The file.
        file: String,
        /// The system name in the file.
        found_system: String,
        /// The spec hash in the file.
        found: String,
        /// The expected hash.
        expected: String,
        /// Where the expected hash comes from (the spec file, or the first results file).
        expected_from: String,
    },
    /// Results of another deployment of the same spec.
    #[error(
        "{file}: results of another deployment: deployment sha256 {found}, but {expected_from} has {expected}"
    )]
    DeploymentMismatch {
        /// The file.
        file: String,
        /// The deployment hash in the file.
        found: String,
        /// The expected hash.
        expected: String,
        /// Where the expected hash comes from.
        expected_from: String,
    },
    /// A check or flow that the file's own list of flows (or of
    /// components) does not hold: the file was edited or is broken, and the
    /// check would be left out of the matrix without a word.
    #[error(
        "{file}: flow `{flow}` is not among the file's flows and components; the file is broken or was edited"
    )]
    UnknownFlow {
        /// The file.
        file: String,
        /// The flow id.
        flow: String,
    },
    /// No results file was given.
    #[error("no results file given")]
    NoInput,
}

impl ResultsError {
    /// A results file that cannot be used is the user's input.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        portolan_spec::ErrorKind::Input
    }
}
