//! The description of a lab: a run prefix, hosts with their addresses, and
//! the single bridge that joins them.
//!
//! A [`Topology`] is plain data; nothing is created until it is handed to
//! [`Lab::create`](crate::Lab::create).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::LabError;

/// Prefix of every resource a lab creates (namespaces, links, lock files), so
/// that leftovers of earlier runs can be found by name.
pub const RESOURCE_PREFIX: &str = "ptl-";

/// The lab's IPv4 segment: the first /16 of the benchmarking range
/// 198.18.0.0/15 (RFC 2544), which is never routed on the Internet nor used by
/// real networks. Every host gets one address in it.
pub const LAB_IPV4_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Prefix length of [`LAB_IPV4_NET`].
pub const LAB_IPV4_PREFIX_LEN: u8 = 16;

/// The lab's IPv6 segment: the first /64 of the unique local prefix
/// `fd00:706f:7274::/48` (`706f:7274` spells "port"), reserved for Portolan's
/// labs. Every host gets one address in it.
pub const LAB_IPV6_NET: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x706f, 0x7274, 0, 0, 0, 0, 0);
/// Prefix length of [`LAB_IPV6_NET`].
pub const LAB_IPV6_PREFIX_LEN: u8 = 64;

/// Name of the interface every host has on the lab segment (the host's end of
/// its veth pair).
pub const HOST_INTERFACE: &str = "ptl-eth0";

/// Name of the bridge, inside the bridge namespace.
pub const BRIDGE_INTERFACE: &str = "ptl-br0";

/// Suffix of the bridge namespace's name: `<run>-bridge`. A host cannot be
/// called `bridge`.
pub const BRIDGE_SUFFIX: &str = "bridge";

/// Longest host name accepted.
pub const MAX_HOST_NAME_LEN: usize = 40;

/// Most hosts a topology can hold (one per address of the IPv4 /16, minus
/// network and broadcast addresses; bridge ports are also numbered up to
/// this).
pub const MAX_HOSTS: usize = 65_534;

/// Length of the random part of generated run ids.
const RANDOM_ID_LEN: usize = 6;

/// The name of one lab run, e.g. `ptl-k3x9q2`. It prefixes every namespace of
/// the run (`ptl-k3x9q2-api`, `ptl-k3x9q2-bridge`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// A fresh run id: `ptl-` followed by six random lowercase letters and
    /// digits.
    pub fn random() -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut seed = random_seed();
        let mut id = String::from(RESOURCE_PREFIX);
        for _ in 0..RANDOM_ID_LEN {
            // xorshift64*: good enough to pick six characters.
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            let r = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
            id.push(char::from(ALPHABET[(r >> 58) as usize % ALPHABET.len()]));
        }
        RunId(id)
    }

    /// A run id chosen by the caller. It must start with `ptl-`, be at most 20
    /// characters long and hold only lowercase letters, digits and `-`.
    pub fn new(id: impl Into<String>) -> Result<Self, LabError> {
        let id = id.into();
        let invalid = |reason: &str| LabError::InvalidName {
            name: id.clone(),
            reason: reason.to_string(),
        };
        if !id.starts_with(RESOURCE_PREFIX) || id.len() <= RESOURCE_PREFIX.len() {
            return Err(invalid("a run id starts with `ptl-` followed by a name"));
        }
        if id.len() > 20 {
            return Err(invalid("a run id is at most 20 characters long"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || id.ends_with('-')
        {
            return Err(invalid(
                "a run id holds only lowercase letters, digits and `-`, and does not end with `-`",
            ));
        }
        Ok(RunId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn random_seed() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    let mut seed = if from_urandom {
        u64::from_le_bytes(bytes)
    } else {
        0
    };
    // Mix in time and pid so that a missing /dev/urandom still varies.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    seed ^= nanos.rotate_left(17) ^ u64::from(std::process::id()).rotate_left(40);
    if seed == 0 {
        seed = 0x9e37_79b9_7f4a_7c15;
    }
    seed
}

/// One host of the lab: a network namespace with one interface
/// ([`HOST_INTERFACE`]) on the lab segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    name: String,
    index: usize,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
}

impl Host {
    /// The host's name, unique in its topology.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Position of the host in its topology (0-based); also numbers its
    /// bridge port.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The host's IPv4 address (prefix length [`LAB_IPV4_PREFIX_LEN`]).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    /// The host's IPv6 address (prefix length [`LAB_IPV6_PREFIX_LEN`]).
    pub fn ipv6(&self) -> Ipv6Addr {
        self.ipv6
    }

    /// The host's interface on the lab segment.
    pub fn interface(&self) -> &'static str {
        HOST_INTERFACE
    }

    /// Name of the host's bridge port (the peer of its interface, inside the
    /// bridge namespace): `ptl-p<index>`.
    pub fn bridge_port(&self) -> String {
        format!("ptl-p{}", self.index)
    }

    /// The MAC address of the host's interface: locally administered,
    /// `02:70:74:6c:HH:LL` (`ptl`, then the host's index), so that every host
    /// can know every other host's address without asking (see
    /// [`Lab::create`](crate::Lab::create)).
    pub fn mac(&self) -> [u8; 6] {
        let [hi, lo] = (self.index as u16).to_be_bytes();
        [0x02, 0x70, 0x74, 0x6c, hi, lo]
    }
}

/// The description of a lab: a run id, hosts, and one bridge (in its own
/// namespace) that joins every host by a veth pair on a single L2 segment
/// carrying [`LAB_IPV4_NET`]/16 and [`LAB_IPV6_NET`]/64.
///
/// ```
/// use portolan_lab::Topology;
/// let mut topo = Topology::new();
/// topo.add_host("api").unwrap();
/// topo.add_host("db").unwrap();
/// assert_eq!(topo.host("db").unwrap().ipv4().to_string(), "198.18.0.2");
/// assert!(topo.netns_name("api").starts_with("ptl-"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    run: RunId,
    hosts: Vec<Host>,
    /// Hosts may carry any unicast address (see [`Topology::placed`]).
    placed: bool,
    /// The pairs of hosts (indices, smaller first) that exchange packets,
    /// when known: in a lab too large to give every host an entry for
    /// every other one, only these get permanent neighbour entries.
    talking: Option<BTreeSet<(usize, usize)>>,
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Topology {
    /// An empty topology with a fresh random run id.
    pub fn new() -> Self {
        Self::with_run_id(RunId::random())
    }

    /// An empty topology with the given run id.
    pub fn with_run_id(run: RunId) -> Self {
        Topology {
            run,
            hosts: Vec::new(),
            placed: false,
            talking: None,
        }
    }

    /// An empty topology whose hosts may carry the addresses of a real
    /// deployment (any unicast address, not only the lab's segments):
    /// each address is configured as a /32 or /128 with on-link default
    /// routes (IPv4 and IPv6) through the host's lab interface. The lab's
    /// namespaces have no other link, so these routes lead only to the lab's
    /// bridge: nothing is ever routed to the real network, and nothing is
    /// configured outside the lab's namespaces.
    pub fn placed(run: RunId) -> Self {
        Topology {
            run,
            hosts: Vec::new(),
            placed: true,
            talking: None,
        }
    }

    /// Says which hosts exchange packets (by name; a name that is no host
    /// is ignored). Up to 512 hosts every host gets a permanent neighbour
    /// entry for every other one; a larger lab gives them only to these
    /// pairs (both ways), since hosts² entries would be too many, and
    /// without an entry the kernel's ARP table, whose limit all namespaces
    /// share (`gc_thresh3`), would overflow and drop packets.
    pub fn set_talking<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let index: std::collections::HashMap<&str, usize> =
            self.hosts.iter().map(|h| (h.name(), h.index())).collect();
        let talking = pairs
            .into_iter()
            .filter_map(|(a, b)| Some((*index.get(a)?, *index.get(b)?)))
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        self.talking = Some(talking);
    }

    /// The pairs given by [`Topology::set_talking`] (host indices, smaller
    /// first).
    pub fn talking(&self) -> Option<&BTreeSet<(usize, usize)>> {
        self.talking.as_ref()
    }

    /// Whether hosts may carry any unicast address ([`Topology::placed`]).
    pub fn is_placed(&self) -> bool {
        self.placed
    }

    /// The run id that prefixes every resource of this lab.
    pub fn run_id(&self) -> &RunId {
        &self.run
    }

    /// Adds a host with the next free addresses of the lab segments
    /// (198.18.0.1, 198.18.0.2, …; fd00:706f:7274::1, ::2, …).
    ///
    /// Host names are 1 to 40 lowercase letters, digits and `-`, start with a
    /// letter or digit, and `bridge` is reserved.
    pub fn add_host(&mut self, name: &str) -> Result<&Host, LabError> {
        let (ipv4, ipv6) = self.next_free_addresses()?;
        self.add_host_with_addresses(name, ipv4, ipv6)
    }

    /// Adds a host with chosen addresses, which must lie in the lab segments
    /// ([`LAB_IPV4_NET`]/16, [`LAB_IPV6_NET`]/64), not be their network or
    /// broadcast address, and not be used by another host.
    pub fn add_host_with_addresses(
        &mut self,
        name: &str,
        ipv4: Ipv4Addr,
        ipv6: Ipv6Addr,
    ) -> Result<&Host, LabError> {
        validate_host_name(name)?;
        if self.hosts.iter().any(|h| h.name == name) {
            return Err(LabError::DuplicateHost(name.to_string()));
        }
        if self.hosts.len() >= MAX_HOSTS {
            return Err(LabError::TopologyFull(MAX_HOSTS));
        }
        let bad = |address: std::net::IpAddr, reason: &str| LabError::InvalidAddress {
            host: name.to_string(),
            address,
            reason: reason.to_string(),
        };
        if self.placed {
            placed_address_ok(ipv4.into()).map_err(|r| bad(ipv4.into(), r))?;
            placed_address_ok(ipv6.into()).map_err(|r| bad(ipv6.into(), r))?;
        } else {
            lab_addresses_ok(ipv4, ipv6).map_err(|(a, r)| bad(a, &r))?;
        }
        if let Some(other) = self.hosts.iter().find(|h| h.ipv4 == ipv4) {
            return Err(bad(
                ipv4.into(),
                &format!("already used by host {:?}", other.name),
            ));
        }
        if let Some(other) = self.hosts.iter().find(|h| h.ipv6 == ipv6) {
            return Err(bad(
                ipv6.into(),
                &format!("already used by host {:?}", other.name),
            ));
        }
        let index = self.hosts.len();
        self.hosts.push(Host {
            name: name.to_string(),
            index,
            ipv4,
            ipv6,
        });
        Ok(&self.hosts[index])
    }

    fn next_free_addresses(&self) -> Result<(Ipv4Addr, Ipv6Addr), LabError> {
        let net4 = u32::from(LAB_IPV4_NET);
        let net6 = u128::from(LAB_IPV6_NET);
        // Host offsets 1 ..= MAX_HOSTS; the first one used by neither family.
        for offset in 1..=MAX_HOSTS as u32 {
            let v4 = Ipv4Addr::from(net4 + offset);
            let v6 = Ipv6Addr::from(net6 + u128::from(offset));
            if !self.hosts.iter().any(|h| h.ipv4 == v4 || h.ipv6 == v6) {
                return Ok((v4, v6));
            }
        }
        Err(LabError::TopologyFull(MAX_HOSTS))
    }

    /// The hosts, in the order they were added.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host with this name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Name of a host's network namespace: `<run>-<host>`. Usable with
    /// `ip netns exec NAME …` while the lab lives.
    pub fn netns_name(&self, host: &str) -> String {
        format!("{}-{}", self.run, host)
    }

    /// Name of the bridge's network namespace: `<run>-bridge`.
    pub fn bridge_netns_name(&self) -> String {
        format!("{}-{}", self.run, BRIDGE_SUFFIX)
    }
}

/// Whether a pair of addresses lies in the lab's own segments.
fn lab_addresses_ok(ipv4: Ipv4Addr, ipv6: Ipv6Addr) -> Result<(), (IpAddr, String)> {
    let v4 = u32::from(ipv4);
    let net4 = u32::from(LAB_IPV4_NET);
    let mask4 = u32::MAX << (32 - LAB_IPV4_PREFIX_LEN);
    if v4 & mask4 != net4 {
        return Err((
            ipv4.into(),
            "lab hosts use addresses in 198.18.0.0/16 (benchmarking range, lab-only)".to_owned(),
        ));
    }
    if v4 == net4 || v4 == net4 | !mask4 {
        return Err((
            ipv4.into(),
            "the network and broadcast addresses cannot be given to a host".to_owned(),
        ));
    }
    let v6 = u128::from(ipv6);
    let net6 = u128::from(LAB_IPV6_NET);
    let mask6 = u128::MAX << (128 - LAB_IPV6_PREFIX_LEN);
    if v6 & mask6 != net6 {
        return Err((
            ipv6.into(),
            "lab hosts use addresses in fd00:706f:7274::/64 (unique local, lab-only)".to_owned(),
        ));
    }
    if v6 == net6 {
        return Err((
            ipv6.into(),
            "the subnet-router anycast address cannot be given to a host".to_owned(),
        ));
    }
    Ok(())
}

/// Whether an address can be given to a host of a placed topology: a
/// unicast address that is not loopback, unspecified, link-local or
/// broadcast (those cannot stand for a host of a deployment).
fn placed_address_ok(address: IpAddr) -> Result<(), &'static str> {
    let refused = match address {
        IpAddr::V4(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local()
        }
        IpAddr::V6(a) => {
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    if refused {
        Err("a host's address must be unicast, not loopback, unspecified, link-local or broadcast")
    } else {
        Ok(())
    }
}

fn validate_host_name(name: &str) -> Result<(), LabError> {
    let invalid = |reason: &str| LabError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name.len() > MAX_HOST_NAME_LEN {
        return Err(invalid("a host name is 1 to 40 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "a host name holds only lowercase letters, digits and `-`",
        ));
    }
    if name.starts_with('-') {
        return Err(invalid("a host name starts with a letter or digit"));
    }
    if name == BRIDGE_SUFFIX {
        return Err(invalid(
            "`bridge` is reserved for the namespace of the lab's bridge",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_run_ids_have_the_prefix_and_differ() {
        let a = RunId::random();
        let b = RunId::random();
        assert!(a.as_str().starts_with("ptl-"));
        assert_eq!(a.as_str().len(), 4 + RANDOM_ID_LEN);
        assert!(RunId::new(a.as_str()).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn run_ids_are_validated() {
        assert!(RunId::new("ptl-abc").is_ok());
        assert!(RunId::new("abc").is_err());
        assert!(RunId::new("ptl-").is_err());
        assert!(RunId::new("ptl-ABC").is_err());
        assert!(RunId::new("ptl-abc-").is_err());
        assert!(RunId::new("ptl-abcdefghijklmnopq").is_err());
    }

    #[test]
    fn hosts_get_sequential_lab_addresses() {
        let mut t = Topology::with_run_id(RunId::new("ptl-t1").expect("valid"));
        for name in ["a", "b", "c"] {
            t.add_host(name).expect("host");
        }
        let c = t.host("c").expect("c");
        assert_eq!(c.ipv4(), Ipv4Addr::new(198, 18, 0, 3));
        assert_eq!(c.ipv6().to_string(), "fd00:706f:7274::3");
        assert_eq!(c.index(), 2);
        assert_eq!(c.bridge_port(), "ptl-p2");
        assert_eq!(t.netns_name("c"), "ptl-t1-c");
        assert_eq!(t.bridge_netns_name(), "ptl-t1-bridge");
    }

    #[test]
    fn explicit_addresses_must_be_lab_only_and_unique() {
        let mut t = Topology::new();
        let v6 = |last: u16| Ipv6Addr::new(0xfd00, 0x706f, 0x7274, 0, 0, 0, 0, last);
        t.add_host_with_addresses("a", Ipv4Addr::new(198, 18, 7, 7), v6(7))
            .expect("in range");
        assert!(matches!(
            t.add_host_with_addresses("b", Ipv4Addr::new(10, 0, 0, 1), v6(8)),
            Err(LabError::InvalidAddress { .. })
        ));
        assert!(matches!(
            t.add_host_with_addresses(
                "b",
                Ipv4Addr::new(198, 18, 0, 9),
                "fd00::1".parse().expect("v6")
            ),
            Err(LabError::InvalidAddress { .. })
        ));
        assert!(matches!(
            t.add_host_with_addresses("b", Ipv4Addr::new(198, 18, 7, 7), v6(9)),
            Err(LabError::InvalidAddress { .. })
        ));
        assert!(matches!(
            t.add_host_with_addresses("b", Ipv4Addr::new(198, 18, 255, 255), v6(9)),
            Err(LabError::InvalidAddress { .. })
        ));
        // Automatic allocation skips addresses taken explicitly.
        let mut t = Topology::new();
        t.add_host_with_addresses("a", Ipv4Addr::new(198, 18, 0, 1), v6(2))
            .expect("in range");
        let b = t.add_host("b").expect("b");
        assert_eq!(b.ipv4(), Ipv4Addr::new(198, 18, 0, 3));
        assert_eq!(b.ipv6(), v6(3));
    }

    #[test]
    fn host_names_are_validated() {
        let mut t = Topology::new();
        assert!(t.add_host("web-1").is_ok());
        assert!(matches!(
            t.add_host("web-1"),
            Err(LabError::DuplicateHost(_))
        ));
        for bad in ["", "Web", "a b", "-a", "bridge", "a/b", &"x".repeat(41)] {
            assert!(
                matches!(t.add_host(bad), Err(LabError::InvalidName { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn macs_are_local_unicast_and_distinct() {
        let mut t = Topology::new();
        for i in 0..300 {
            t.add_host(&format!("h{i}")).expect("host");
        }
        let macs: std::collections::BTreeSet<[u8; 6]> = t.hosts().iter().map(Host::mac).collect();
        assert_eq!(macs.len(), 300);
        // Locally administered (bit 1), unicast (bit 0 clear).
        assert!(macs.iter().all(|m| m[0] & 0b11 == 0b10));
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        let mut t = Topology::new();
        t.add_host("a").expect("a");
        let port = Host {
            index: MAX_HOSTS - 1,
            ..t.hosts()[0].clone()
        }
        .bridge_port();
        for name in [HOST_INTERFACE, BRIDGE_INTERFACE, port.as_str()] {
            assert!(name.len() <= 15, "{name} is longer than IFNAMSIZ-1");
            assert!(name.starts_with(RESOURCE_PREFIX));
        }
    }
}
