//! What a probe asks and what it found: the types written to JSON result files.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One probe to run: where to, over what, from which source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// An identifier chosen by the caller (for example the flow it checks).
    pub id: String,
    /// Where the probe goes. For [`Protocol::Multicast`] this is the group and port.
    pub target: Target,
    /// How the probe talks to the target.
    pub protocol: Protocol,
    /// Local address to send from; for multicast also the outgoing interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<IpAddr>,
    /// A fixed source port (`U:8112:8112` in vendor matrices); ephemeral if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
}

impl ProbeSpec {
    /// A probe with an ephemeral source port and the default source address.
    pub fn new(id: impl Into<String>, target: impl Into<Target>, protocol: Protocol) -> Self {
        Self {
            id: id.into(),
            target: target.into(),
            protocol,
            source_ip: None,
            source_port: None,
        }
    }

    /// The same probe sent from a fixed source port.
    #[must_use]
    pub fn with_source_port(mut self, port: u16) -> Self {
        self.source_port = Some(port);
        self
    }

    /// The same probe sent from a given local address.
    #[must_use]
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// The target as a person reads it: `host:port`, or the host alone for
    /// an ICMP echo, which has no port.
    pub fn target_text(&self) -> String {
        match self.protocol {
            Protocol::IcmpEcho { .. } => self.target.host_str(),
            _ => self.target.to_string(),
        }
    }
}

/// The destination of a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A literal socket address: no DNS resolution.
    Addr(SocketAddr),
    /// A host name (or an address literal) and a port; names are resolved.
    Host {
        /// The host name.
        name: String,
        /// The destination port.
        port: u16,
    },
}

impl Target {
    /// A host name and port.
    pub fn host(name: impl Into<String>, port: u16) -> Self {
        Self::Host {
            name: name.into(),
            port,
        }
    }

    /// The destination port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Addr(addr) => addr.port(),
            Self::Host { port, .. } => *port,
        }
    }

    /// The host part as text: the name, or the address (without brackets).
    pub fn host_str(&self) -> String {
        match self {
            Self::Addr(addr) => addr.ip().to_string(),
            Self::Host { name, .. } => name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .unwrap_or(name)
                .to_owned(),
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Self::Addr(addr)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => addr.fmt(f),
            Self::Host { name, port } if name.contains(':') && !name.starts_with('[') => {
                write!(f, "[{name}]:{port}")
            }
            Self::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// How a probe talks to its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Protocol {
    /// A TCP connect; the connection is reset right after it is established.
    Tcp,
    /// One UDP datagram and a wait for the answer.
    Udp {
        /// Who is expected to answer.
        mode: UdpMode,
    },
    /// A TCP connect and a TLS handshake, possibly through an HTTP CONNECT proxy.
    Tls {
        /// The server name to send and verify; the target's host name if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
    },
    /// A token datagram sent to a multicast group (the target), answered by
    /// unicast from Portolan listeners that joined it.
    Multicast {
        /// The run's token, which the listeners check.
        token: String,
    },
    /// An ICMP echo request ("ping") through an unprivileged ICMP socket,
    /// carrying the token in its payload; the target's port is ignored (use
    /// 0). The target's kernel answers: open when the reply with our payload
    /// comes back, filtered on silence, unreachable on an ICMP error, and a
    /// local error, saying how to allow them, where the system refuses ICMP
    /// sockets to this process (`net.ipv4.ping_group_range`).
    IcmpEcho {
        /// The run's token, carried in the payload so that the reply is ours.
        token: String,
    },
}

impl Protocol {
    /// A short lowercase name: `tcp`, `udp`, `tls`, `multicast`, `icmp`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp { .. } => "udp",
            Self::Tls { .. } => "tls",
            Self::Multicast { .. } => "multicast",
            Self::IcmpEcho { .. } => "icmp",
        }
    }
}

/// Who answers a UDP probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UdpMode {
    /// A Portolan listener, which echoes datagrams carrying the run's token:
    /// silence means the datagram was dropped.
    PortolanListener {
        /// The run's token.
        token: String,
    },
    /// The real service: any answer means open, silence proves nothing.
    RealService {
        /// The datagram to send (for example a DNS query); empty if absent.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        payload: Vec<u8>,
    },
}

/// The class of a probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum OutcomeClass {
    /// The target answered: connection established, datagram echoed, handshake done.
    Open,
    /// Closed but reachable: TCP reset or ICMP port unreachable.
    Refused,
    /// No answer in time, or dropped by a local firewall rule (`EPERM`).
    Filtered,
    /// No route: host or network unreachable, or administratively prohibited;
    /// for an ICMP echo, any ICMP error about the request.
    Unreachable,
    /// A real UDP service stayed silent: open or filtered, never a pass.
    OpenOrFiltered,
    /// The target's host name did not resolve.
    DnsFailed,
    /// The TCP connection was made but TLS failed or was not trusted.
    TlsFailed {
        /// What went wrong.
        reason: String,
    },
    /// The HTTP proxy could not be reached or declined the CONNECT request.
    ProxyFailed {
        /// What went wrong.
        reason: String,
    },
    /// The probe could not be sent from here (source port in use, bad spec, …).
    LocalError,
}

impl OutcomeClass {
    /// Whether this outcome proves the flow works.
    pub fn is_pass(&self) -> bool {
        matches!(self, Self::Open)
    }

    /// A short lowercase name, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Refused => "refused",
            Self::Filtered => "filtered",
            Self::Unreachable => "unreachable",
            Self::OpenOrFiltered => "open_or_filtered",
            Self::DnsFailed => "dns_failed",
            Self::TlsFailed { .. } => "tls_failed",
            Self::ProxyFailed { .. } => "proxy_failed",
            Self::LocalError => "local_error",
        }
    }
}

impl fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TlsFailed { reason } | Self::ProxyFailed { reason } => {
                write!(f, "{}: {reason}", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// What a probe found, how long it took and how many attempts it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// The class of the outcome.
    #[serde(flatten)]
    pub class: OutcomeClass,
    /// The operating system's (or library's) error message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_error: Option<String>,
    /// Time from the start of the probe to its outcome, DNS and retries included.
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
    /// Attempts used (retries happen on timeouts only); 0 if the host name did not resolve.
    pub attempts: u32,
}

impl ProbeOutcome {
    /// Whether this outcome proves the flow works.
    pub fn is_pass(&self) -> bool {
        self.class.is_pass()
    }
}

/// Facts gathered on the way to the outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeDetails {
    /// Addresses the target's host name resolved to (empty for literals and proxied TLS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<IpAddr>,
    /// Time the DNS resolution took.
    #[serde(
        default,
        rename = "dns_ms",
        with = "opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_time: Option<Duration>,
    /// The address last probed (the proxy's, when TLS went through one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<SocketAddr>,
    /// The local address the probe used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// Multicast: the listeners whose echo arrived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<SocketAddr>,
    /// TLS: what the handshake showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsDetails>,
    /// What ended the last attempt early, when an
    /// [`EarlyVerdictFn`](crate::EarlyVerdictFn) did (e.g. a firewall's
    /// trace of the drop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_early: Option<String>,
}

/// What a TLS handshake showed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsDetails {
    /// The HTTP proxy the connection went through, as `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// The negotiated protocol version, such as `TLSv1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The negotiated cipher suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// The leaf certificate's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The leaf certificate's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Whether the chain verified against the trusted roots for the server name.
    pub verified: bool,
    /// Why verification failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
}

/// A probe, its outcome and what was learnt on the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The probe as asked.
    pub spec: ProbeSpec,
    /// What it found.
    pub outcome: ProbeOutcome,
    /// Facts gathered on the way.
    pub details: ProbeDetails,
}

impl ProbeResult {
    /// Whether the probe proves the flow works.
    pub fn is_pass(&self) -> bool {
        self.outcome.is_pass()
    }

    /// One line saying what was probed and what came of it, e.g.
    /// `tcp 192.0.2.10:5432: refused after 1 attempt(s) (Connection refused (os error 111))`:
    /// the message of a JUnit failure, wherever results are reported.
    pub fn summary(&self) -> String {
        let outcome = &self.outcome;
        let mut line = format!(
            "{} {}: {} after {} attempt(s)",
            self.spec.protocol.name(),
            self.spec.target_text(),
            outcome.class,
            outcome.attempts
        );
        if let Some(os_error) = &outcome.os_error {
            line.push_str(&format!(" ({os_error})"));
        }
        line
    }
}

/// Durations as fractional milliseconds in JSON.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_ms(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    /// Rounds to the nanosecond, so that a serialized duration reads back equal.
    pub fn from_ms(ms: f64) -> Result<Duration, &'static str> {
        let nanos = (ms * 1e6).round();
        if nanos.is_finite() && nanos >= 0.0 && nanos < u64::MAX as f64 {
            Ok(Duration::from_nanos(nanos as u64))
        } else {
            Err("a duration must be a non-negative number of milliseconds")
        }
    }
}

/// Optional durations as fractional milliseconds in JSON.
mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::millis::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|ms| super::millis::from_ms(ms).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_print_as_host_and_port() {
        let v6: SocketAddr = "[::1]:443".parse().expect("addr");
        assert_eq!(Target::Addr(v6).to_string(), "[::1]:443");
        assert_eq!(Target::host("::1", 443).to_string(), "[::1]:443");
        assert_eq!(Target::host("[::1]", 443).to_string(), "[::1]:443");
        assert_eq!(Target::host("[::1]", 443).host_str(), "::1");
        assert_eq!(
            Target::host("db.example", 5432).to_string(),
            "db.example:5432"
        );
        assert_eq!(Target::Addr(v6).port(), 443);
    }
}
