//! Whether this host is one of a component's hosts: which of the
//! component's addresses in the deployment are on this host's interfaces.
//! `listen` and `check` both refuse to run as a component this host is not
//! (a check "from lb" run on the app host would otherwise probe from the
//! app's address, and could record a false pass).

use std::net::IpAddr;

use ipnet::IpNet;
use portolan_spec::plan::{Endpoint, Plan};

use crate::checks::find_component;
use crate::PreflightError;

/// An address of one of this host's interfaces, with its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The address.
    pub address: IpAddr,
    /// Its network (address and prefix length).
    pub net: Option<IpNet>,
    /// Whether the interface is a loopback (its whole network is local:
    /// `127.0.0.5` is this host's, as `127.0.0.1/8` is on `lo`).
    pub loopback: bool,
}

/// Every IPv4 and IPv6 address of this host's interfaces (in the calling
/// thread's network namespace).
pub fn interface_addresses() -> Result<Vec<InterfaceAddress>, PreflightError> {
    let addresses = nix::ifaddrs::getifaddrs().map_err(|e| PreflightError::Interfaces {
        reason: e.to_string(),
    })?;
    let mut found = Vec::new();
    for interface in addresses {
        let Some(address) = interface.address.as_ref().and_then(ip_of) else {
            continue;
        };
        let prefix = interface
            .netmask
            .as_ref()
            .and_then(ip_of)
            .and_then(|mask| ipnet::ip_mask_to_prefix(mask).ok());
        let loopback = interface
            .flags
            .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK);
        found.push(InterfaceAddress {
            address,
            net: prefix.and_then(|p| IpNet::new(address, p).ok()),
            loopback,
        });
    }
    found.sort_by_key(|a| a.address);
    found.dedup_by_key(|a| a.address);
    Ok(found)
}

fn ip_of(address: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// Which of a component's addresses this host holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMatch {
    /// The component id.
    pub component: String,
    /// The component's addresses and blocks in the deployment, as text.
    pub looked_for: String,
    /// Its single addresses that are on this host; for a component placed
    /// by blocks, this host's addresses inside them.
    pub held: Vec<IpAddr>,
    /// Every address of this host, for messages.
    pub present: Vec<IpAddr>,
    /// False when the deployment places the component by names, a
    /// Kubernetes selector or an AWS group only: nothing to compare with.
    pub verifiable: bool,
}

impl HostMatch {
    /// Whether `address` is on this host.
    pub fn has(&self, address: IpAddr) -> bool {
        self.present.contains(&address) || self.held.contains(&address)
    }

    /// The error for a host that holds none of the component's addresses.
    pub fn not_this_host(&self) -> PreflightError {
        PreflightError::NotThisHost {
            component: self.component.clone(),
            looked_for: self.looked_for.clone(),
            present: list(&self.present),
        }
    }

    /// The error for a source or bind address that is not on this host.
    pub fn address_not_here(&self, address: IpAddr) -> PreflightError {
        PreflightError::AddressNotOnThisHost {
            address,
            present: list(&self.present),
        }
    }
}

fn list(addresses: &[IpAddr]) -> String {
    if addresses.is_empty() {
        return "none".to_owned();
    }
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of `component`'s addresses in the plan this host holds, among
/// `interfaces` (see [`interface_addresses`]).
pub fn match_host(
    plan: &Plan,
    component: &str,
    interfaces: &[InterfaceAddress],
) -> Result<HostMatch, PreflightError> {
    let endpoint = find_component(plan, component)?;
    Ok(match_endpoint(endpoint, interfaces))
}

/// Refuses to act as `component` on a host that holds none of its
/// addresses ([`PreflightError::NotThisHost`]), or to send from or bind on
/// `address` when it is not on this host
/// ([`PreflightError::AddressNotOnThisHost`]). A component the deployment
/// places without addresses (names, selector, group) cannot be compared:
/// the match comes back with [`HostMatch::verifiable`] false, for the caller
/// to say so.
pub fn ensure_this_host(
    plan: &Plan,
    component: &str,
    address: Option<IpAddr>,
) -> Result<HostMatch, PreflightError> {
    let here = match_host(plan, component, &interface_addresses()?)?;
    if let Some(address) = address {
        if !here.has(address) {
            return Err(here.address_not_here(address));
        }
    }
    if here.verifiable && here.held.is_empty() {
        return Err(here.not_this_host());
    }
    Ok(here)
}

fn match_endpoint(endpoint: &Endpoint, interfaces: &[InterfaceAddress]) -> HostMatch {
    let local = |ip: IpAddr| {
        interfaces
            .iter()
            .any(|i| i.address == ip || (i.loopback && i.net.is_some_and(|net| net.contains(&ip))))
    };
    let mut held = Vec::new();
    for net in &endpoint.nets {
        if net.prefix_len() == net.max_prefix_len() {
            if local(net.addr()) && !held.contains(&net.addr()) {
                held.push(net.addr());
            }
        } else {
            for i in interfaces.iter().filter(|i| net.contains(&i.address)) {
                if !held.contains(&i.address) {
                    held.push(i.address);
                }
            }
        }
    }
    HostMatch {
        component: endpoint.id.clone(),
        looked_for: endpoint.addresses_text(),
        held,
        present: interfaces.iter().map(|i| i.address).collect(),
        verifiable: !endpoint.nets.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::tests::{loaded, DEPLOYMENT};

    fn interface(address: &str, prefix: u8, loopback: bool) -> InterfaceAddress {
        let address: IpAddr = address.parse().expect("ip");
        InterfaceAddress {
            address,
            net: IpNet::new(address, prefix).ok(),
            loopback,
        }
    }

    #[test]
    fn a_component_s_addresses_are_held_by_interface_or_loopback_network() {
        let (_, plan) = loaded(DEPLOYMENT);
        let web = plan.component("web").expect("web");
        let own = web.nets[0].addr();
        let here = [
            interface("127.0.0.1", 8, true),
            interface(&own.to_string(), 16, false),
        ];
        let matched = match_host(&plan, "web", &here).expect("web");
        assert_eq!(matched.held, vec![own]);
        assert!(matched.verifiable);
        let elsewhere = [
            interface("127.0.0.1", 8, true),
            interface("10.9.9.9", 24, false),
        ];
        let matched = match_host(&plan, "web", &elsewhere).expect("web");
        assert!(matched.held.is_empty());
        let message = matched.not_this_host().to_string();
        assert!(message.contains(&format!("looked for {own}")), "{message}");
        assert!(
            message.contains("this host has 127.0.0.1, 10.9.9.9"),
            "{message}"
        );
        // A loopback network holds all of its addresses.
        let lo = [interface("127.0.0.1", 8, true)];
        let endpoint = Endpoint {
            nets: vec!["127.0.0.5/32".parse().expect("net")],
            ..web.clone()
        };
        assert_eq!(
            match_endpoint(&endpoint, &lo).held,
            vec!["127.0.0.5".parse::<IpAddr>().expect("ip")]
        );
        // A block holds the host's addresses inside it.
        let block = Endpoint {
            nets: vec!["10.9.9.0/24".parse().expect("net")],
            ..web.clone()
        };
        assert_eq!(
            match_endpoint(&block, &elsewhere).held,
            vec!["10.9.9.9".parse::<IpAddr>().expect("ip")]
        );
    }

    #[test]
    fn this_host_s_interfaces_include_loopback() {
        let all = interface_addresses().expect("getifaddrs");
        assert!(
            all.iter()
                .any(|i| i.loopback && i.address == IpAddr::from([127, 0, 0, 1])),
            "{all:?}"
        );
    }
}
