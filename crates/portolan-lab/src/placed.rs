//! The hosts of a lab that proves the user's own deployment (`portolan lab
//! -d`): one host per machine of the deployment, carrying the deployment's
//! addresses, instead of hosts with invented lab addresses.
//!
//! # Machines
//! A deployment host (components with equal address sets, see
//! [`Deployment::hosts`]) has IPv4 and IPv6 addresses, blocks and names.
//! Its machines are its addresses paired in order: the first IPv4 with the
//! first IPv6 address, the second with the second, and so on (a host with
//! two IPv4 and two IPv6 addresses is two dual-stack machines; one with two
//! IPv4 addresses only is two IPv4-only machines). A block stands for one
//! machine at its first host address. Names give no machine. A family a
//! machine lacks gets a lab-only placeholder address that no check uses.
//!
//! # Other hosts
//! - the outside world at the addresses of the first component of kind
//!   `external` the deployment places, else at lab-only addresses (it is
//!   any address);
//! - each external endpoint a flow names, at its deployment addresses, else
//!   at lab-only addresses;
//! - each proxy (given by address) at its address, listening on its port:
//!   TCP flows to an external endpoint with a proxy are probed to the
//!   proxy, as the plan sends them.
//!
//! Every address lives only inside the lab's namespaces, whose one link ends
//! at the lab's bridge: a lab with real addresses never routes to the real
//! network (see [`Topology::placed`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use portolan_spec::deployment::{Address, Deployment};
use portolan_spec::{ComponentKind, Spec};

use crate::design::{host_name, named_externals, outside_party, DesignError, Node, Role};
use crate::topology::{RunId, Topology, LAB_IPV4_NET, LAB_IPV6_NET, MAX_HOSTS};

/// The hosts of a placed lab.
pub(crate) struct Placed {
    pub topology: Topology,
    pub nodes: Vec<Node>,
    pub outside_party: String,
}

/// The address a net stands for: itself, or the first host address of a
/// block.
fn stand_in(net: &IpNet) -> IpAddr {
    if net.prefix_len() + 1 >= net.max_prefix_len() {
        return net.network();
    }
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + 1)),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + 1)),
    }
}

/// The IPv4 and IPv6 stand-ins of a placement's addresses, in order.
fn stand_ins(addresses: &[Address]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for address in addresses {
        match address {
            Address::Net(net) => match stand_in(net) {
                IpAddr::V4(a) => v4.push(a),
                IpAddr::V6(a) => v6.push(a),
            },
            Address::Host(_) => {}
        }
    }
    (v4, v6)
}

/// Lab-only addresses (198.18.0.0/16, fd00:706f:7274::/64) not used by the
/// deployment, in order.
struct LabAddresses {
    next: u32,
    used: HashSet<IpAddr>,
}

impl LabAddresses {
    fn take(&mut self) -> Result<(Ipv4Addr, Ipv6Addr), DesignError> {
        while (self.next as usize) <= MAX_HOSTS {
            let offset = self.next;
            self.next += 1;
            let v4 = Ipv4Addr::from(u32::from(LAB_IPV4_NET) + offset);
            let v6 = Ipv6Addr::from(u128::from(LAB_IPV6_NET) + u128::from(offset));
            if !self.used.contains(&IpAddr::V4(v4)) && !self.used.contains(&IpAddr::V6(v6)) {
                return Ok((v4, v6));
            }
        }
        Err(DesignError::TooManyHosts(MAX_HOSTS + 1))
    }
}

/// A host being placed: name, role, party, addresses (none: lab-only).
struct Planned {
    host: String,
    role: Role,
    party: String,
    ruleset: Option<String>,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
}

/// The hosts of a lab for the user's deployment.
pub(crate) fn placed_hosts(
    spec: &Spec,
    deployment: &Deployment,
    run: RunId,
) -> Result<Placed, DesignError> {
    let mut taken = BTreeSet::new();
    let mut planned = instance_hosts(spec, deployment, &mut taken)?;
    planned.push(outside_host(spec, deployment, &mut taken));
    planned.extend(external_hosts(spec, deployment, &mut taken));
    if planned.len() > MAX_HOSTS {
        return Err(DesignError::TooManyHosts(planned.len()));
    }
    let (topology, nodes) = into_nodes(planned, run)?;
    Ok(Placed {
        topology,
        nodes,
        outside_party: outside_party(spec),
    })
}

/// One host per machine of each deployment host (one component each).
fn instance_hosts(
    spec: &Spec,
    deployment: &Deployment,
    taken: &mut BTreeSet<String>,
) -> Result<Vec<Planned>, DesignError> {
    let mut planned = Vec::new();
    for host in deployment.hosts(spec) {
        if host.components.len() > 1 {
            let ids: Vec<&str> = host
                .components
                .iter()
                .map(|c| spec.component(*c).id.as_str())
                .collect();
            return Err(DesignError::Placement(format!(
                "components {} share host `{}` (equal addresses); the lab proves deployments with one component per host",
                ids.join(", "),
                host.name
            )));
        }
        let component = spec.component(host.components[0]);
        let (v4, v6) = stand_ins(&host.addresses);
        let machines = v4.len().max(v6.len());
        if machines > crate::design::MAX_REPLICAS {
            return Err(DesignError::Placement(format!(
                "component `{}` has {machines} machines; the lab builds at most {}",
                component.id,
                crate::design::MAX_REPLICAS
            )));
        }
        for index in 1..=machines {
            planned.push(Planned {
                host: host_name(&host.name, &format!("-{index}"), taken),
                role: Role::Instance {
                    component: component.id.clone(),
                    index,
                },
                party: component.id.clone(),
                ruleset: Some(host.name.clone()),
                ipv4: v4.get(index - 1).copied(),
                ipv6: v6.get(index - 1).copied(),
            });
        }
    }
    Ok(planned)
}

/// The outside world: at the first placed outside component's addresses.
fn outside_host(spec: &Spec, deployment: &Deployment, taken: &mut BTreeSet<String>) -> Planned {
    let (mut ipv4, mut ipv6) = (None, None);
    let outside = (0..spec.components.len())
        .filter(|&i| spec.components[i].kind == ComponentKind::External)
        .filter_map(|i| deployment.components.get(&portolan_spec::ComponentId(i)));
    for placement in outside {
        let (v4, v6) = stand_ins(&placement.addresses);
        if !v4.is_empty() || !v6.is_empty() {
            ipv4 = v4.first().copied();
            ipv6 = v6.first().copied();
            break;
        }
    }
    Planned {
        host: host_name("outside", "", taken),
        role: Role::Outside,
        party: outside_party(spec),
        ruleset: None,
        ipv4,
        ipv6,
    }
}

/// External endpoints that flows name, at their addresses, then each proxy
/// given by address, at its address.
fn external_hosts(
    spec: &Spec,
    deployment: &Deployment,
    taken: &mut BTreeSet<String>,
) -> Vec<Planned> {
    let mut planned = Vec::new();
    // By their text: the order of their hosts.
    let mut proxies: BTreeMap<String, IpAddr> = BTreeMap::new();
    for index in named_externals(spec) {
        let external = &spec.externals[index];
        let placement = deployment.externals.get(&portolan_spec::ExternalId(index));
        let (v4, v6) = placement
            .map(|p| stand_ins(&p.addresses))
            .unwrap_or_default();
        planned.push(Planned {
            host: host_name(&format!("ext-{}", external.id), "", taken),
            role: Role::External {
                external: external.id.clone(),
            },
            party: external.id.clone(),
            ruleset: None,
            ipv4: v4.first().copied(),
            ipv6: v6.first().copied(),
        });
        if let Some(Address::Net(net)) =
            placement.and_then(|p| p.proxy.as_ref()).map(|p| &p.address)
        {
            proxies.insert(net.addr().to_string(), net.addr());
        }
    }
    planned.extend(proxies.into_iter().map(|(text, address)| Planned {
        host: host_name(&format!("proxy-{text}"), "", taken),
        role: Role::Proxy {
            address: text.clone(),
        },
        party: format!("proxy {text}"),
        ruleset: None,
        ipv4: match address {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        },
        ipv6: match address {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        },
    }));
    planned
}

/// The hosts with their addresses, lab-only ones where the deployment gives
/// a machine none in a family.
fn into_nodes(planned: Vec<Planned>, run: RunId) -> Result<(Topology, Vec<Node>), DesignError> {
    let used: HashSet<IpAddr> = planned
        .iter()
        .flat_map(|p| {
            [p.ipv4.map(IpAddr::V4), p.ipv6.map(IpAddr::V6)]
                .into_iter()
                .flatten()
        })
        .collect();
    let mut lab = LabAddresses { next: 1, used };
    let mut topology = Topology::placed(run);
    let mut nodes = Vec::with_capacity(planned.len());
    for p in planned {
        let (lab4, lab6) = if p.ipv4.is_none() || p.ipv6.is_none() {
            lab.take()?
        } else {
            (Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED)
        };
        let ipv4 = p.ipv4.unwrap_or(lab4);
        let ipv6 = p.ipv6.unwrap_or(lab6);
        // Hosts standing for the world or an endpoint without addresses are
        // any address: both lab-only addresses are theirs to use.
        let anywhere = !matches!(p.role, Role::Instance { .. } | Role::Proxy { .. })
            && p.ipv4.is_none()
            && p.ipv6.is_none();
        topology
            .add_host_with_addresses(&p.host, ipv4, ipv6)
            .map_err(|e| DesignError::Placement(format!("host `{}`: {e}", p.party)))?;
        nodes.push(Node {
            host: p.host,
            role: p.role,
            party: p.party,
            ipv4,
            ipv6,
            has_ipv4: anywhere || p.ipv4.is_some(),
            has_ipv6: anywhere || p.ipv6.is_some(),
            ruleset: p.ruleset,
        });
    }
    Ok((topology, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stand_for_their_first_host_address() {
        let net = |s: &str| s.parse::<IpNet>().expect("net");
        assert_eq!(stand_in(&net("192.0.2.7/32")).to_string(), "192.0.2.7");
        assert_eq!(
            stand_in(&net("198.51.100.0/26")).to_string(),
            "198.51.100.1"
        );
        assert_eq!(
            stand_in(&net("2001:db8:51::/64")).to_string(),
            "2001:db8:51::1"
        );
    }

    /// Web, a database, the outside world and one external endpoint by
    /// name (the spec crate's fixture, which its site tests share).
    const SPEC: &str =
        include_str!("../../portolan-spec/tests/fixtures/web-db-updates.portolan.yaml");

    fn design_of(deployment: &str) -> Result<crate::LabDesign, DesignError> {
        let spec = portolan_spec::load_spec(portolan_spec::SourceFile::new("s.yaml", SPEC))
            .expect("spec")
            .value;
        let deployment = portolan_spec::deployment::load_deployment(
            portolan_spec::SourceFile::new("d.yaml", deployment),
            &spec,
        )
        .expect("deployment")
        .value;
        let options = crate::LabOptions {
            deployment: Some(deployment),
            run_id: Some(RunId::new("ptl-placed").expect("id")),
            ..crate::LabOptions::default()
        };
        crate::design(&spec, &options)
    }

    #[test]
    fn machines_proxies_and_families_come_from_the_deployment() {
        let d = design_of(
            "deployment: 1\ncomponents:\n  web: {addresses: [192.0.2.10, 192.0.2.11, \"2001:db8::10\"]}\n  db: {addresses: [198.51.100.0/24]}\nexternals:\n  updates: {proxy: \"192.0.2.60:3128\"}\n",
        )
        .expect("designed");
        let web: Vec<_> = d.nodes.iter().filter(|n| n.party == "web").collect();
        assert_eq!(web.len(), 2, "two machines");
        assert_eq!(
            web[0].addresses(),
            [
                "192.0.2.10".parse::<IpAddr>().expect("ip"),
                "2001:db8::10".parse().expect("ip")
            ]
        );
        assert_eq!(
            web[1].addresses(),
            ["192.0.2.11".parse::<IpAddr>().expect("ip")]
        );
        let db = d.nodes.iter().find(|n| n.party == "db").expect("db");
        assert_eq!(
            db.addresses(),
            ["198.51.100.1".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(db.ruleset.as_deref(), Some("db"));
        // The proxied flow goes to the proxy's host and port.
        let proxied: Vec<_> = d
            .checks
            .iter()
            .filter(|c| c.flow.as_deref() == Some("web->updates/tcp/443"))
            .collect();
        assert!(!proxied.is_empty());
        assert!(proxied
            .iter()
            .all(|c| c.target.to_string() == "192.0.2.60:3128"));
        // No check uses a family a machine lacks.
        for c in &d.checks {
            let from = d.node(&c.from_host).expect("host");
            assert!(from.has(c.family), "{c:?}");
        }
        assert!(d.topology.is_placed());
    }

    #[test]
    fn shared_hosts_and_unusable_addresses_are_refused() {
        let err = design_of(
            "deployment: 1\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.10]}\n",
        )
        .expect_err("shared host");
        assert!(err.to_string().contains("share host `web+db`"), "{err}");
        let err = design_of("deployment: 1\ncomponents:\n  web: {addresses: [127.0.0.1]}\n  db: {addresses: [192.0.2.20]}\n")
            .expect_err("loopback");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    }
}
