//! The ports a component must accept, derived from the plan.

use std::net::IpAddr;

use portolan_probe::{Endpoint, ListenProtocol};
use portolan_spec::plan::Plan;
use portolan_spec::Protocol;

use crate::checks::{ensure_own_address, find_component, single_addresses};
use crate::host::{interface_addresses, match_host};
use crate::{Limit, PreflightError, Untested};

/// One endpoint to listen on, and the flows that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenEntry {
    /// What to bind.
    pub endpoint: Endpoint,
    /// The flows arriving there.
    pub flows: Vec<String>,
}

/// What a component listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSet {
    /// The component id.
    pub component: String,
    /// Endpoints, each once, in plan order.
    pub endpoints: Vec<ListenEntry>,
    /// Flows to the component that no listener can answer, with the reason.
    pub skipped: Vec<Untested>,
}

/// The endpoints `component` must accept for every flow it receives in the
/// plan: a TCP listener per TCP port, a token-echoing UDP socket per UDP
/// port, a group membership per multicast group and port. ICMP, `any`,
/// every-port flows and flows with more than `max_ports_per_flow` ports are
/// listed in [`ListenSet::skipped`].
pub fn derive_listeners(
    plan: &Plan,
    component: &str,
    max_ports_per_flow: u32,
) -> Result<ListenSet, PreflightError> {
    let target = find_component(plan, component)?;
    let mut set = ListenSet {
        component: target.id.clone(),
        endpoints: Vec::new(),
        skipped: Vec::new(),
    };
    for flow in plan.flows_to(&target.id) {
        let skip = |reason: String| Untested {
            flow: flow.id.clone(),
            to: flow.to.id.clone(),
            required: flow.required,
            reason,
            limit: None,
        };
        let protocol = match (flow.protocol, flow.multicast) {
            (Protocol::Tcp, None) => ListenProtocol::Tcp,
            (Protocol::Udp, None) => ListenProtocol::Udp,
            (Protocol::Udp, Some(group)) => ListenProtocol::Multicast { group },
            (Protocol::Icmp, _) => {
                set.skipped.push(skip(
                    "icmp flows need no listener: the host's kernel answers ICMP echo".to_owned(),
                ));
                continue;
            }
            (p, _) if !p.has_ports() => {
                set.skipped.push(skip(format!(
                    "{p} flows need no listener: only TCP and UDP ports are bound"
                )));
                continue;
            }
            (p, group) => {
                let group = group.map(|g| g.to_string()).unwrap_or_default();
                set.skipped.push(skip(format!(
                    "{p} to multicast group {group}: only UDP is sent to groups"
                )));
                continue;
            }
        };
        if flow.ports.is_empty() {
            set.skipped.push(skip(
                "every port: there is no single port to bind".to_owned(),
            ));
            continue;
        }
        let count: u32 = flow.ports.iter().map(|r| r.len()).sum();
        if count > max_ports_per_flow {
            set.skipped.push(Untested {
                limit: Some(Limit::PortsPerFlow),
                ..skip(format!(
                    "{count} ports: more than the limit of {max_ports_per_flow} per flow"
                ))
            });
            continue;
        }
        for port in flow.ports.iter().flat_map(|r| r.start..=r.end) {
            let endpoint = Endpoint { protocol, port };
            match set.endpoints.iter_mut().find(|e| e.endpoint == endpoint) {
                Some(entry) => {
                    if !entry.flows.contains(&flow.id) {
                        entry.flows.push(flow.id.clone());
                    }
                }
                None => set.endpoints.push(ListenEntry {
                    endpoint,
                    flows: vec![flow.id.clone()],
                }),
            }
        }
    }
    Ok(set)
}

/// The addresses a component's listener binds on this host: `explicit` if
/// given (it must be one of the component's addresses, and on this host),
/// otherwise those of the component's single addresses that are on this
/// host (see [`match_host`]).
pub fn local_addresses(
    plan: &Plan,
    component: &str,
    explicit: Option<IpAddr>,
) -> Result<Vec<IpAddr>, PreflightError> {
    let endpoint = find_component(plan, component)?;
    let here = match_host(plan, component, &interface_addresses()?)?;
    if let Some(address) = explicit {
        ensure_own_address(endpoint, address)?;
        if !here.has(address) {
            return Err(here.address_not_here(address));
        }
        return Ok(vec![address]);
    }
    let local: Vec<IpAddr> = single_addresses(endpoint)
        .into_iter()
        .filter(|ip| here.held.contains(ip))
        .collect();
    if local.is_empty() {
        return Err(here.not_this_host());
    }
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::tests::{loaded, DEPLOYMENT};

    #[test]
    fn cache_listens_on_each_port_and_joins_the_group() {
        let (_, plan) = loaded(DEPLOYMENT);
        let set = derive_listeners(&plan, "cache", 1024).expect("derives");
        let endpoints: Vec<String> = set
            .endpoints
            .iter()
            .map(|e| format!("{:?}/{}", e.endpoint.protocol, e.endpoint.port))
            .collect();
        assert_eq!(
            endpoints,
            [
                "Udp/7000",
                "Udp/7001",
                "Udp/11211",
                "Multicast { group: 225.0.1.9 }/8082"
            ]
        );
        assert!(set.skipped.is_empty());
        let db = derive_listeners(&plan, "db", 1024).expect("derives");
        let skipped: Vec<&str> = db.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            skipped,
            [
                "icmp flows need no listener: the host's kernel answers ICMP echo",
                "every port: there is no single port to bind",
                "2000 ports: more than the limit of 1024 per flow"
            ]
        );
        assert_eq!(db.endpoints.len(), 1);
    }

    #[test]
    fn addresses_must_be_the_components_and_local() {
        let (_, plan) = loaded(DEPLOYMENT);
        let err = local_addresses(&plan, "cache", Some("198.18.0.3".parse().expect("ip")))
            .expect_err("db's");
        assert!(matches!(
            err,
            PreflightError::AddressOutsideDeployment { .. }
        ));
        // The lab range is never configured on a test machine: cache's
        // address is refused up front, not bound and failed port by port.
        let err = local_addresses(&plan, "cache", Some("198.18.0.4".parse().expect("ip")))
            .expect_err("cache's, but not here");
        assert!(
            matches!(err, PreflightError::AddressNotOnThisHost { .. }),
            "{err}"
        );
        let err = local_addresses(&plan, "cache", None).expect_err("not local");
        assert!(matches!(err, PreflightError::NotThisHost { .. }), "{err}");
        assert!(err.to_string().contains("looked for 198.18.0.4"), "{err}");
    }
}
