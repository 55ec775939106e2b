//! Portolan preflight: live checks of a plan's flows from real hosts.
//!
//! Before and after a product is installed, each host answers one question:
//! which of the flows the spec requires work from here? This crate turns a
//! [`Plan`](portolan_spec::plan::Plan) into that answer and back into one
//! picture:
//!
//! - [`derive_listeners`]: the ports a component must accept (TCP, UDP,
//!   multicast groups), for `portolan listen`;
//! - [`derive_checks`]: the probes a component must originate, one per
//!   destination address and port, and every flow that cannot be probed with
//!   the reason ([`Untested`]);
//! - [`run_checks`]: runs them with the probe engine, after asserting that
//!   every target comes from the plan ([`Allowlist`]): an address outside the
//!   deployment, or a name outside the spec's external endpoints, is never
//!   probed;
//! - [`HostResults`]: the JSON document a host writes (the spec's identity,
//!   the component, the host, timestamps, every probe), and its JUnit form;
//! - [`merge`]: many hosts' documents into a
//!   [`ResultsMatrix`](portolan_render::results::ResultsMatrix), which
//!   `portolan-render` lays out as markdown or HTML.

mod checks;
mod document;
mod error;
mod host;
mod identity;
mod listen;
mod merge;
mod time;

pub use checks::{
    derive_checks, run_checks, Allowlist, CheckOptions, CheckSet, Limit, PlannedProbe, UdpAgainst,
    Untested, DEFAULT_TLS_PORTS,
};
pub use document::{
    detail_text, junit_suite, junit_xml, probe_text, read_results, AxisRecord, CheckRecord,
    DeploymentIdentity, FlowRecord, HostResults, Settings, SpecIdentity, Summary, RESULTS_FORMAT,
};
pub use error::{PreflightError, ResultsError};
pub use host::{ensure_this_host, interface_addresses, match_host, HostMatch, InterfaceAddress};
pub use identity::{default_token, hostname, roots_with_pem, sha256_hex};
pub use listen::{derive_listeners, local_addresses, ListenEntry, ListenSet};
pub use merge::{merge, ResultsInput};
pub use time::rfc3339;
