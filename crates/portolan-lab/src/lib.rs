//! Portolan's lab: a throwaway network on this machine, built from Linux
//! network namespaces, in which generated firewalls are loaded and probed.
//!
//! This crate is the foundation of `portolan lab`: a [`Topology`] (hosts with
//! lab-only addresses, joined by one bridge) becomes a live [`Lab`] of named
//! network namespaces (compatible with `ip netns`), created and wired through
//! netlink. Code runs inside a host with [`Lab::run_in`] (a thread that
//! entered the host's namespace), programs with [`Lab::exec`] and
//! [`Lab::spawn`], and firewalls are loaded with [`Lab::load_nft`].
//!
//! ```no_run
//! use portolan_lab::{Lab, Topology};
//!
//! # fn main() -> Result<(), portolan_lab::LabError> {
//! let mut topology = Topology::new();
//! topology.add_host("api")?;
//! topology.add_host("db")?;
//! let lab = Lab::create(topology)?;
//! let db = lab.host("db")?.ipv4();
//! lab.load_nft(
//!     "db",
//!     "table inet portolan {\n  chain input {\n    type filter hook input priority filter; policy drop;\n  }\n}\n",
//! )?;
//! let probe = lab.run_in("api", move || std::net::TcpStream::connect((db, 5432)).is_ok())?;
//! let _reached = probe.join()?;
//! drop(lab); // deletes every namespace and link it created
//! # Ok(()) }
//! ```
//!
//! # Addresses
//! Hosts get addresses in 198.18.0.0/16 (inside the benchmarking range
//! 198.18.0.0/15) and fd00:706f:7274::/64 (inside a unique local /48 kept
//! for Portolan labs), on one L2 segment. These ranges are lab-only: every
//! lab lives in namespaces of its own and nothing is configured in the
//! caller's namespace, so labs neither collide with the machine's networks
//! nor with each other.
//!
//! # Names and cleanup
//! Every resource is named with the prefix `ptl-`: a run id such as
//! `ptl-k3x9q2` prefixes the namespaces `ptl-k3x9q2-<host>` and
//! `ptl-k3x9q2-bridge`; interfaces are `ptl-eth0` (hosts), `ptl-br0` and
//! `ptl-p<N>` (bridge). A lab deletes its namespaces when dropped (their
//! links go with them). [`cleanup_registered`] tears down the labs of this
//! process from a Ctrl-C handler, and [`cleanup_stale`] removes what killed
//! processes left behind, sparing live labs (each holds a lock on its run).
//!
//! # Privileges
//! Root, or `CAP_SYS_ADMIN` and `CAP_NET_ADMIN`: see [`check_privileges`]
//! and the [`privileges`] module for the user-namespace alternative.

mod agent;
mod cleanup;
pub mod design;
pub mod dns;
mod error;
mod lab;
mod load;
mod netlink;
pub mod netns;
mod pair_sample;
mod placed;
pub mod privileges;
mod probes;
pub mod report;
pub mod rules;
mod run;
mod topology;
pub mod trace;

pub use cleanup::{cleanup_stale, CleanupReport, LOCK_DIR};
pub use design::{
    design, Check, CheckKind, DesignError, Expect, FeatureChoice, LabDesign, LabEvent, LabOptions,
    Phase, ProgressFn, RulesetTransform,
};
pub use error::LabError;
pub use lab::{cleanup_registered, CleanupHandle, CreateTimings, Lab};
pub use netns::{NsThread, NETNS_DIR};
pub use privileges::{check_privileges, has_privileges};
pub use report::{LabReport, Verdict};
pub use run::{run_lab, LabArtifacts, RunError};
pub use topology::{
    Host, RunId, Topology, BRIDGE_INTERFACE, BRIDGE_SUFFIX, HOST_INTERFACE, LAB_IPV4_NET,
    LAB_IPV4_PREFIX_LEN, LAB_IPV6_NET, LAB_IPV6_PREFIX_LEN, MAX_HOSTS, MAX_HOST_NAME_LEN,
    RESOURCE_PREFIX,
};
