//! What can stop a fleet preflight before any host is reached.

/// A problem with the request, or with this machine.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// An `--ssh-option` that cannot be used.
    #[error("ssh option `{option}`: {reason}")]
    SshOption {
        /// The option as given.
        option: String,
        /// Why.
        reason: String,
    },
    /// The inventory cannot be used.
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    /// How many hosts to preflight at once is out of its bounds.
    #[error("concurrency {given} is out of bounds: 1 to {max} hosts at once")]
    Concurrency {
        /// The number given.
        given: usize,
        /// The largest allowed.
        max: usize,
    },
    /// Something on this machine failed (reading the binary, a temp dir).
    #[error("{0}")]
    Local(String),
    /// No host to preflight.
    #[error("no host to preflight: {0}")]
    NoHosts(String),
}

impl FleetError {
    /// This machine's failures are the environment's; everything else is
    /// the request (options, inventory, hosts).
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        match self {
            FleetError::Local(_) => portolan_spec::ErrorKind::Environment,
            _ => portolan_spec::ErrorKind::Input,
        }
    }
}
