//! Portolan fleet: the live preflight of a whole deployment, driven over
//! the system's OpenSSH client.
//!
//! [`run_fleet`] logs in to every host (the deployment's hosts, or an
//! Ansible inventory's, see [`hosts_from_plan`] and
//! [`hosts_from_inventory`]) through one multiplexed `ssh` master
//! connection each, puts this `portolan` binary (unless the same one is
//! installed), the spec and the deployment in a private directory there,
//! starts `portolan listen` for every component the host runs, waits until
//! each is ready, runs `portolan check` for every component that sends
//! flows, collects the results documents, stops every listener and removes
//! the directory: always, also when interrupted or when a host fails.
//! [`FleetReport`] holds every host (checked or not, and why) and merges
//! the results into the connection matrix that `portolan report` draws.
//!
//! The library never prints: it reports [`Progress`] through a callback.

mod error;
mod hosts;
pub mod inventory;
mod negative;
mod remote;
mod report;
mod run;
mod ssh;

use std::time::Duration;

use serde::Serialize;

pub use error::FleetError;
pub use hosts::{
    hosts_from_inventory, hosts_from_plan, Fleet, FleetHost, Remedy, Unreachable, COMPONENTS_VAR,
};
pub use negative::{admitted, negative_set, NegativeSet};
pub use report::{
    FleetReport, HostOutcome, HostStatus, ListenerReport, NegativeReport, PhaseTiming, FLEET_FORMAT,
};
pub use run::{check_options, run_fleet, FleetOptions, MAX_CONCURRENCY};
pub use ssh::{parse_ssh_option, SshSettings};

/// A phase of the preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Logging in (one master connection per host).
    Connect,
    /// The private directory, the binary, the spec and the deployment; sudo.
    Prepare,
    /// Starting the listeners and waiting until they are ready.
    Listen,
    /// Running the checks and collecting their results.
    Check,
    /// Stopping the listeners and removing the directories.
    Cleanup,
}

impl Phase {
    /// Its name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Prepare => "prepare",
            Phase::Listen => "listen",
            Phase::Check => "check",
            Phase::Cleanup => "cleanup",
        }
    }
}

/// What the preflight is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A phase starts on this many hosts.
    PhaseStarted {
        /// The phase.
        phase: Phase,
        /// Hosts it runs on.
        hosts: usize,
    },
    /// A host is through a phase.
    HostFinished {
        /// The phase.
        phase: Phase,
        /// The host's name.
        host: String,
        /// Why it is out, if it failed.
        problem: Option<String>,
        /// Something worth saying (where its files are, what was removed).
        note: Option<String>,
    },
    /// A phase ended.
    PhaseFinished {
        /// The phase.
        phase: Phase,
        /// How long it took.
        elapsed: Duration,
        /// Hosts still in the running after it.
        ok: usize,
    },
}
