//! The lab's vocabulary: families, transports, hosts, checks and what hosts listen on.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// `ipv4` or `ipv6`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) const FAMILIES: [Family; 2] = [Family::Ipv4, Family::Ipv6];

/// A transport protocol a probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP connect.
    Tcp,
    /// UDP token datagram and its echo.
    Udp,
    /// UDP token datagram to a multicast group.
    Multicast,
    /// ICMP echo request carrying the token, answered by the target's
    /// kernel (no listener); its checks have port 0.
    Icmp,
}

impl Transport {
    /// `tcp`, `udp`, `multicast`, `icmp`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Multicast => "multicast",
            Transport::Icmp => "icmp",
        }
    }
}

/// What a lab host stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Role {
    /// An instance of a component (system or dependency): has a firewall.
    Instance {
        /// Component id.
        component: String,
        /// 1-based instance number.
        index: usize,
    },
    /// The outside world: components of kind `external`, and the lab DNS.
    Outside,
    /// A named external endpoint.
    External {
        /// External id.
        external: String,
    },
    /// A proxy of the deployment, listening on its port (a lab of the
    /// user's deployment only).
    Proxy {
        /// Its address.
        address: String,
    },
}

/// A host of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Host name (its namespace is `<run>-<host>`).
    pub host: String,
    /// What it stands for.
    pub role: Role,
    /// Row/column of the connection matrix it belongs to: a component id, an
    /// external id, or the outside world's id.
    pub party: String,
    /// IPv4 address.
    pub ipv4: Ipv4Addr,
    /// IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Whether the IPv4 address is the host's (false: a lab-only
    /// placeholder of a machine without IPv4, which no check uses).
    #[serde(skip)]
    pub has_ipv4: bool,
    /// Whether the IPv6 address is the host's.
    #[serde(skip)]
    pub has_ipv6: bool,
    /// The ruleset the host loads: the name of its host in the deployment
    /// (the stem of the file `generate` writes for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<String>,
}

impl Node {
    /// Whether the host has an address of its own in the family.
    pub fn has(&self, family: Family) -> bool {
        match family {
            Family::Ipv4 => self.has_ipv4,
            Family::Ipv6 => self.has_ipv6,
        }
    }

    /// Its addresses (placeholders left out).
    pub fn addresses(&self) -> Vec<IpAddr> {
        FAMILIES
            .into_iter()
            .filter(|&f| self.has(f))
            .map(|f| self.ip(f))
            .collect()
    }

    /// Whether the host runs a generated firewall.
    pub fn firewalled(&self) -> bool {
        matches!(self.role, Role::Instance { .. })
    }

    /// Its address in a family.
    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::Ipv4 => IpAddr::V4(self.ipv4),
            Family::Ipv6 => IpAddr::V6(self.ipv6),
        }
    }

    pub(super) fn component(&self) -> Option<&str> {
        match &self.role {
            Role::Instance { component, .. } => Some(component),
            _ => None,
        }
    }
}

/// Whether a check must get through or be stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Must get through.
    Open,
    /// Must be blocked.
    Blocked,
}

/// Why a check exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// A flow of the spec that exists with the features chosen.
    Flow,
    /// A port the destination listens on for others, not granted to this source.
    NotGranted,
    /// A sampled port no flow names.
    SampledPort,
    /// A flow whose feature is off.
    FeatureOff,
    /// A multicast group this source has no flow to.
    MulticastNotGranted,
    /// An ICMP echo request from a source that no flow grants ICMP to the
    /// destination.
    EchoNotGranted,
}

impl CheckKind {
    /// A phrase for a person.
    pub const fn describe(self) -> &'static str {
        match self {
            CheckKind::Flow => "flow of the spec",
            CheckKind::NotGranted => "port not granted to this source",
            CheckKind::SampledPort => "sampled port no flow names",
            CheckKind::FeatureOff => "flow of a feature that is off",
            CheckKind::MulticastNotGranted => "multicast group not granted to this source",
            CheckKind::EchoNotGranted => "ICMP echo not granted to this source",
        }
    }
}

/// One probe and what it must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Unique id in the run; also the probe's id on the wire.
    pub probe: String,
    /// Why the check exists.
    pub kind: CheckKind,
    /// What it must show.
    pub expect: Expect,
    /// The flow checked (flows, features off, multicast).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// Whether the flow is required (flows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The feature condition that is off (features off only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Sending party (matrix row).
    pub from: String,
    /// Receiving party (matrix column); the group's receivers' party for multicast.
    pub to: String,
    /// Sending host.
    pub from_host: String,
    /// Receiving host (multicast: the group, e.g. `225.0.1.9:8082`).
    pub to_host: String,
    /// How it probes.
    pub protocol: Transport,
    /// Address family.
    pub family: Family,
    /// Where it goes (for names: the address the lab gave the name; port 0
    /// for ICMP).
    pub target: SocketAddr,
    /// The DNS name probed, resolved through the lab DNS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fixed source port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
    /// Multicast: the hosts that must receive it (empty: none may).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
    /// Anything a reader should know (sampling, loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Check {
    /// Where it goes, as a person reads it: `address:port`, or the address
    /// alone for ICMP, which has no port.
    pub fn target_text(&self) -> String {
        match self.protocol {
            Transport::Icmp => self.target.ip().to_string(),
            _ => self.target.to_string(),
        }
    }
}

/// What the lab could not check, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotChecked {
    /// The flow concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// What was not checked.
    pub what: String,
    /// Why.
    pub reason: String,
}

/// What one host listens on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listens {
    /// TCP ports.
    pub tcp: BTreeSet<u16>,
    /// UDP ports.
    pub udp: BTreeSet<u16>,
    /// UDP ports the host also sends from (fixed source ports): served by
    /// an echo that shares the port with the probes.
    pub udp_shared: BTreeSet<u16>,
    /// Multicast groups and ports.
    pub multicast: BTreeSet<(IpAddr, u16)>,
    /// Serves the lab DNS (UDP 53).
    pub dns: bool,
}

/// A parameter without default, given a value for the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabParameter {
    /// Parameter id.
    pub id: String,
    /// The value the lab uses.
    pub value: u16,
}
