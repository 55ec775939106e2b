//! Portolan's probe and listener engine.
//!
//! [`run_probes`] sends TCP connects, UDP datagrams, multicast datagrams,
//! TLS handshakes and ICMP echo requests, and classifies what comes back
//! ([`OutcomeClass`]). ICMP echo uses unprivileged ICMP ("ping") sockets,
//! never raw ones: see [`icmp_echo_permitted`].
//! [`Listener`] answers them on the other side: it accepts TCP connections
//! and echoes UDP datagrams that carry the run's token, and nothing else.
//!
//! Everything runs on the caller's task: no thread is spawned and every socket
//! is created on the thread that polls the future. This matters to the lab,
//! which runs a current-thread runtime inside a thread that entered a network
//! namespace with `setns(2)`: sockets belong to the namespace of the thread
//! that creates them.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use portolan_probe::{run_probes, ProbeOptions, ProbeSpec, Protocol, UdpMode};
//!
//! # async fn example() {
//! let db: SocketAddr = ([10, 0, 0, 5], 5432).into();
//! let syslog: SocketAddr = ([10, 0, 0, 9], 514).into();
//! let probes = vec![
//!     ProbeSpec::new("api-to-db", db, Protocol::Tcp),
//!     ProbeSpec::new("api-to-syslog", syslog, Protocol::Udp {
//!         mode: UdpMode::PortolanListener { token: "run-1".into() },
//!     })
//!     .with_source_port(8112),
//! ];
//! for result in run_probes(probes, &ProbeOptions::default()).await {
//!     let verdict = if result.is_pass() { "ok" } else { result.outcome.class.name() };
//!     let _ = (result.spec.id, verdict);
//! }
//! # }
//! ```
//!
//! Host names are resolved with the system resolver ([`tokio::net::lookup_host`],
//! timed), which runs on tokio's blocking pool: inside a namespace, use
//! literal addresses.

mod engine;
mod icmp;
pub mod junit;
mod listener;
mod proxy;
mod report;
mod tls;
mod types;

pub use engine::{
    run_probes, AttemptFlow, EarlyVerdictFn, FlowKind, ProbeOptions, Progress, ProgressFn,
};
pub use icmp::icmp_echo_permitted;
pub use listener::{
    BindFailure, BindFailureReason, BoundEndpoint, Endpoint, ListenProtocol, Listener,
    ListenerConfig, ListenerStats, StatsHandle,
};
pub use proxy::Proxy;
pub use quick_junit;
pub use report::{from_json, junit_report, junit_xml, to_json};
pub use rustls::RootCertStore;
pub use types::{
    OutcomeClass, ProbeDetails, ProbeOutcome, ProbeResult, ProbeSpec, Protocol, Target, TlsDetails,
    UdpMode,
};

/// Errors of the few fallible operations; probe failures are outcomes, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Results could not be written or read as JSON.
    #[error("probe results JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Results could not be written as JUnit XML.
    #[error("JUnit XML: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    /// A proxy URL could not be understood.
    #[error("invalid proxy URL {url:?}: {reason}")]
    InvalidProxy {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A listener was given an empty token, which would match anything.
    #[error("the listener token must not be empty")]
    EmptyToken,
}

/// The first bytes of every Portolan token datagram.
const MAGIC: &[u8] = b"PORTOLAN1 ";

/// The datagram a probe sends to a Portolan listener: `PORTOLAN1 <token> <probe id>`.
pub(crate) fn token_datagram(token: &str, probe_id: &str) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(MAGIC.len() + token.len() + 1 + probe_id.len());
    datagram.extend_from_slice(MAGIC);
    datagram.extend_from_slice(token.as_bytes());
    datagram.push(b' ');
    datagram.extend_from_slice(probe_id.as_bytes());
    datagram
}

/// Whether a datagram carries this token (`PORTOLAN1 <token>` then a space or the end).
pub(crate) fn carries_token(datagram: &[u8], token: &[u8]) -> bool {
    !token.is_empty()
        && datagram
            .strip_prefix(MAGIC)
            .and_then(|rest| rest.strip_prefix(token))
            .is_some_and(|rest| rest.is_empty() || rest[0] == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_datagrams_are_recognised_exactly() {
        let datagram = token_datagram("s3cret", "flow-1");
        assert_eq!(datagram, b"PORTOLAN1 s3cret flow-1");
        assert!(carries_token(&datagram, b"s3cret"));
        assert!(carries_token(b"PORTOLAN1 s3cret", b"s3cret"));
        assert!(!carries_token(&datagram, b"s3cre"), "a prefix of the token");
        assert!(!carries_token(&datagram, b"s3cret2"));
        assert!(!carries_token(b"PORTOLAN1 s3cretX y", b"s3cret"));
        assert!(!carries_token(b"PORTOLAN2 s3cret y", b"s3cret"));
        assert!(!carries_token(b"", b"s3cret"));
        assert!(!carries_token(b"PORTOLAN1  x", b""), "empty token");
    }
}
