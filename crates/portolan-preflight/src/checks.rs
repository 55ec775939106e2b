//! The probes a component originates, derived from the plan, and the
//! assertion that nothing else is ever probed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use portolan_probe::{run_probes, ProbeOptions, ProbeSpec, Protocol, Proxy, Target, UdpMode};
use portolan_spec::plan::{net_text, Endpoint, EndpointKind, Plan, PlannedFlow};
use portolan_spec::{ExternalAddress, PortRange, Spec};
use serde::{Deserialize, Serialize};

use crate::document::CheckRecord;
use crate::PreflightError;

/// Ports on which a TCP flow to an external endpoint (or to a dependency
/// placed by host name) is checked with a TLS handshake (HTTPS, SMTPS, LDAPS,
/// DNS over TLS, IMAPS, POP3S, SIPS, AMQPS, IRC over TLS, alternative HTTPS,
/// MQTT over TLS); other ports get a TCP connect.
pub const DEFAULT_TLS_PORTS: [u16; 11] =
    [443, 465, 636, 853, 993, 995, 5061, 5671, 6697, 8443, 8883];

/// Who answers UDP probes to components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UdpAgainst {
    /// `portolan listen` runs on the destination: a token echo is definitive,
    /// silence means dropped.
    Listener,
    /// The real services run: a reply is open, ICMP port unreachable is
    /// refused, silence is open|filtered (never a pass).
    Service,
}

/// How the probes of a host are derived.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The address this host sends from (one of the component's addresses).
    pub from: Option<IpAddr>,
    /// The token of the listeners.
    pub token: String,
    /// Who answers UDP probes to components (external endpoints are always real services).
    pub udp: UdpAgainst,
    /// TCP ports of external endpoints checked with a TLS handshake.
    pub tls_ports: Vec<u16>,
    /// Flows with more destination ports than this are not probed (a port
    /// range is probed port by port).
    pub max_ports_per_flow: u32,
    /// Why this host cannot send ICMP echo requests, as
    /// [`portolan_probe::icmp_echo_permitted`] says (ping sockets refused):
    /// ICMP flows are then listed as untested with the reason. `None`: they
    /// are probed by echo.
    pub icmp_unavailable: Option<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            from: None,
            token: String::new(),
            udp: UdpAgainst::Listener,
            tls_ports: DEFAULT_TLS_PORTS.to_vec(),
            max_ports_per_flow: 1024,
            icmp_unavailable: None,
        }
    }
}

/// One probe, and the flow it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedProbe {
    /// The flow id.
    pub flow: String,
    /// The destination's id (component or external endpoint).
    pub to: String,
    /// Whether the flow is required.
    pub required: bool,
    /// The deployment's proxy the TLS handshake tunnels through (`address:port`).
    pub proxy: Option<String>,
    /// The probe.
    pub probe: ProbeSpec,
}

/// A flow, or part of one, that is not probed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Untested {
    /// The flow id.
    pub flow: String,
    /// The destination's id.
    pub to: String,
    /// Whether the flow is required.
    pub required: bool,
    /// Why it is not probed.
    pub reason: String,
    /// The limit of the request that left it out, if that is why: the
    /// caller may name the option that sets it (libraries never name
    /// command-line flags). Not part of the results document.
    #[serde(skip)]
    pub limit: Option<Limit>,
}

/// A limit of a request (see [`Untested::limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// More ports in one flow than the limit per flow.
    PortsPerFlow,
}

/// What a host checks as a component.
#[derive(Debug, Clone)]
pub struct CheckSet {
    /// The component id.
    pub component: String,
    /// The probes, in plan order.
    pub probes: Vec<PlannedProbe>,
    /// What is not probed.
    pub untested: Vec<Untested>,
}

/// Finds a component of the plan by id, or says which one was meant.
pub(crate) fn find_component<'a>(plan: &'a Plan, id: &str) -> Result<&'a Endpoint, PreflightError> {
    plan.component(id).ok_or_else(|| {
        let known: Vec<String> = plan.components.iter().map(|c| c.id.clone()).collect();
        let suggestion = portolan_spec::diag::did_you_mean(id, known.iter().map(String::as_str))
            .map(str::to_owned)
            .or_else(|| {
                known
                    .iter()
                    .find(|k| strsim::damerau_levenshtein(id, k) <= 1.max(id.len() / 4))
                    .cloned()
            });
        PreflightError::UnknownComponent {
            name: id.to_owned(),
            suggestion,
            known,
        }
    })
}

/// The single addresses of an endpoint (blocks are not addresses of a host).
pub(crate) fn single_addresses(endpoint: &Endpoint) -> Vec<IpAddr> {
    endpoint
        .nets
        .iter()
        .filter(|n| n.prefix_len() == n.max_prefix_len())
        .map(IpNet::addr)
        .collect()
}

/// Checks that `address` is one of the component's addresses in the deployment.
pub(crate) fn ensure_own_address(
    endpoint: &Endpoint,
    address: IpAddr,
) -> Result<(), PreflightError> {
    if endpoint
        .nets
        .iter()
        .any(|n| n.prefix_len() == n.max_prefix_len() && n.addr() == address)
    {
        Ok(())
    } else {
        Err(PreflightError::AddressOutsideDeployment {
            address,
            component: endpoint.id.clone(),
            addresses: endpoint.addresses_text(),
        })
    }
}

fn port_count(ranges: &[PortRange]) -> u32 {
    ranges.iter().map(|r| r.len()).sum()
}

fn ports(ranges: &[PortRange]) -> impl Iterator<Item = u16> + '_ {
    ranges.iter().flat_map(|r| r.start..=r.end)
}

/// The probes of every flow `component` originates in the plan (ICMP flows
/// by echo request), and every flow (or part of one) that cannot be probed,
/// with the reason: `any` flows, ICMP flows when the host cannot send echo
/// ([`CheckOptions::icmp_unavailable`]), flows to every port, flows with
/// more ports than [`CheckOptions::max_ports_per_flow`], destinations that
/// are "any address",
/// CIDR blocks (no host in them is probed), wildcard patterns, endpoints
/// placed only by a Kubernetes selector or AWS group, and addresses of a
/// family the source does not have.
///
/// Errors: an unknown component, or a `from` address that is not one of the
/// component's addresses in the deployment.
pub fn derive_checks(
    spec: &Spec,
    plan: &Plan,
    component: &str,
    options: &CheckOptions,
) -> Result<CheckSet, PreflightError> {
    let source = find_component(plan, component)?;
    if let Some(from) = options.from {
        ensure_own_address(source, from)?;
    }
    // Families this host can send from: the `from` address's, else those of
    // the component's addresses, else both.
    let own = single_addresses(source);
    let families: Vec<bool> = match options.from {
        Some(from) => vec![from.is_ipv4()],
        None if own.is_empty() => vec![true, false],
        None => {
            let mut f: Vec<bool> = own.iter().map(IpAddr::is_ipv4).collect();
            f.dedup();
            f
        }
    };
    let mut set = CheckSet {
        component: component.to_owned(),
        probes: Vec::new(),
        untested: Vec::new(),
    };
    for flow in plan.flows_from(component) {
        derive_flow(spec, flow, options, &families, &mut set);
    }
    Ok(set)
}

fn derive_flow(
    spec: &Spec,
    flow: &PlannedFlow,
    options: &CheckOptions,
    families: &[bool],
    set: &mut CheckSet,
) {
    let mut untested = |reason: String, limit: Option<Limit>| {
        set.untested.push(Untested {
            flow: flow.id.clone(),
            to: flow.to.id.clone(),
            required: flow.required,
            reason,
            limit,
        });
    };
    let icmp = flow.protocol == portolan_spec::Protocol::Icmp;
    if !flow.protocol.has_ports() && !icmp {
        return untested(
            format!(
                "{} flows are not probed: only TCP and UDP flows have ports to probe",
                flow.protocol
            ),
            None,
        );
    }
    if let (true, Some(reason)) = (icmp, &options.icmp_unavailable) {
        return untested(
            format!("ICMP echo cannot be sent from this host: {reason}"),
            None,
        );
    }
    let (destination, dest_ports, proxy) = match &flow.via_proxy {
        Some(via) => (
            &via.destination,
            via.ports.as_slice(),
            Some(via.proxy.clone()),
        ),
        None => (&flow.to, flow.ports.as_slice(), None),
    };
    if dest_ports.is_empty() && !icmp {
        return untested(
            "every port: there is no single port to probe".to_owned(),
            None,
        );
    }
    let count = port_count(dest_ports);
    if count > options.max_ports_per_flow {
        return untested(
            format!(
                "{count} ports: more than the limit of {} per flow",
                options.max_ports_per_flow
            ),
            Some(Limit::PortsPerFlow),
        );
    }
    let source_port = flow.source_ports.first().map(|r| r.start);
    let family_ok = |ip: &IpAddr| families.contains(&ip.is_ipv4());
    let family_name = |ip: &IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let mut probes = Vec::new();
    let mut push = |target: Target, protocol: Protocol, proxy: Option<String>| {
        let mut probe = ProbeSpec::new(String::new(), target, protocol);
        probe.id = format!("{} @ {}", flow.id, probe.target_text());
        probe.source_port = source_port;
        probe.source_ip = options.from;
        probes.push(PlannedProbe {
            flow: flow.id.clone(),
            to: flow.to.id.clone(),
            required: flow.required,
            proxy,
            probe,
        });
    };

    if let Some(group) = flow.multicast {
        if !family_ok(&group) {
            untested(
                format!(
                    "multicast group {group} is {}, which this host does not send from",
                    family_name(&group)
                ),
                None,
            );
        } else {
            for port in ports(dest_ports) {
                push(
                    Target::Addr(SocketAddr::new(group, port)),
                    Protocol::Multicast {
                        token: options.token.clone(),
                    },
                    None,
                );
            }
        }
        set.probes.append(&mut probes);
        return;
    }
    if destination.any {
        return untested(
            "the destination is any address: there is no host to probe".to_owned(),
            None,
        );
    }
    let external = destination.kind == EndpointKind::External;
    // The name a TLS server is asked for when the deployment pins an external
    // endpoint to addresses: the spec's host name.
    let spec_host = spec
        .externals
        .iter()
        .find(|e| e.id == destination.id)
        .and_then(|e| match &e.address {
            ExternalAddress::Host(h) => Some(h.clone()),
            _ => None,
        });
    // A dependency the deployment names by host name (object storage, a
    // managed queue) is a service of someone else's, like an external endpoint.
    let named_dependency = destination.kind == EndpointKind::Dependency;
    let tcp_protocol = |port: u16, target: &Target| {
        let by_name = matches!(target, Target::Host { .. });
        if (external || (named_dependency && by_name)) && options.tls_ports.contains(&port) {
            let sni = match target {
                Target::Addr(_) => spec_host.clone(),
                Target::Host { .. } => None,
            };
            Protocol::Tls { sni }
        } else {
            Protocol::Tcp
        }
    };
    let udp_protocol = || Protocol::Udp {
        mode: if external || options.udp == UdpAgainst::Service {
            UdpMode::RealService {
                payload: Vec::new(),
            }
        } else {
            UdpMode::PortolanListener {
                token: options.token.clone(),
            }
        },
    };
    // Through a deployment proxy only a TLS handshake can reach the
    // destination; otherwise the flow is the connection to the proxy itself.
    let through_proxy = proxy.is_some()
        && flow.protocol == portolan_spec::Protocol::Tcp
        && ports(dest_ports).all(|p| options.tls_ports.contains(&p));
    let (destination, dest_ports, proxy) = if proxy.is_some() && !through_proxy {
        (&flow.to, flow.ports.as_slice(), None)
    } else {
        (destination, dest_ports, proxy)
    };
    // An echo request has no port: one probe per address, on port 0.
    let probe_ports: Vec<u16> = if icmp {
        vec![0]
    } else {
        ports(dest_ports).collect()
    };
    let mut targets: Vec<(String, u16)> = Vec::new();
    let mut blocks = Vec::new();
    let mut other_family = Vec::new();
    for net in &destination.nets {
        if net.prefix_len() != net.max_prefix_len() {
            blocks.push(net.to_string());
        } else if !family_ok(&net.addr()) {
            other_family.push(net_text(net));
        } else {
            for &port in &probe_ports {
                targets.push((net.addr().to_string(), port));
            }
        }
    }
    for host in &destination.hosts {
        for &port in &probe_ports {
            targets.push((host.clone(), port));
        }
    }
    for (host, port) in targets {
        let target = match host.parse::<IpAddr>() {
            Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
            Err(_) => Target::host(host, port),
        };
        let protocol = match flow.protocol {
            portolan_spec::Protocol::Udp => udp_protocol(),
            portolan_spec::Protocol::Icmp => Protocol::IcmpEcho {
                token: options.token.clone(),
            },
            _ if proxy.is_some() => Protocol::Tls {
                sni: match &target {
                    Target::Addr(_) => spec_host.clone(),
                    Target::Host { .. } => None,
                },
            },
            _ => tcp_protocol(port, &target),
        };
        push(target, protocol, proxy.clone());
    }
    let probed = !probes.is_empty();
    set.probes.append(&mut probes);
    if !blocks.is_empty() {
        untested(
            format!(
                "address block {}: no address inside a block is probed",
                blocks.join(", ")
            ),
            None,
        );
    }
    if !destination.patterns.is_empty() {
        untested(
            format!(
                "wildcard pattern {}: there is no single name to probe",
                destination.patterns.join(", ")
            ),
            None,
        );
    }
    if !other_family.is_empty() {
        untested(
            format!(
                "{}: not the address family this host sends from",
                other_family.join(", ")
            ),
            None,
        );
    }
    if !probed && blocks.is_empty() && destination.patterns.is_empty() && other_family.is_empty() {
        untested(format!(
            "`{}` has no address or host name in the deployment (only a Kubernetes or AWS placement)",
            destination.id
        ), None);
    }
}

/// Every probe target a component may send to, built from the plan alone,
/// independently of [`derive_checks`]: [`run_checks`] refuses to send
/// anything it does not permit.
#[derive(Debug)]
pub struct Allowlist<'a> {
    component: &'a Endpoint,
    flows: BTreeMap<&'a str, &'a PlannedFlow>,
}

impl<'a> Allowlist<'a> {
    /// The flows `component` originates in the plan.
    pub fn new(plan: &'a Plan, component: &str) -> Result<Self, PreflightError> {
        let source = find_component(plan, component)?;
        Ok(Self {
            component: source,
            flows: plan
                .flows_from(&source.id)
                .map(|f| (f.id.as_str(), f))
                .collect(),
        })
    }

    /// Whether the plan contains this probe: its flow starts at the
    /// component, its source address is the component's, its source port is
    /// the flow's, and its target is one of the flow's destination addresses
    /// or names (or its multicast group), on one of the flow's ports.
    pub fn check(&self, planned: &PlannedProbe) -> Result<(), PreflightError> {
        let refuse = |reason: String| PreflightError::TargetOutsidePlan {
            probe: planned.probe.id.clone(),
            reason,
        };
        let probe = &planned.probe;
        let flow = self.flows.get(planned.flow.as_str()).ok_or_else(|| {
            refuse(format!(
                "no flow `{}` from `{}` in the plan",
                planned.flow, self.component.id
            ))
        })?;
        if let Some(ip) = probe.source_ip {
            ensure_own_address(self.component, ip)
                .map_err(|_| refuse(format!("source {ip} is not an address of the component")))?;
        }
        if let Some(port) = probe.source_port {
            if !flow.source_ports.iter().any(|r| r.contains(port)) {
                return Err(refuse(format!("source port {port} is not the flow's")));
            }
        }
        let protocol_ok = match (&probe.protocol, flow.protocol) {
            (Protocol::Tcp | Protocol::Tls { .. }, portolan_spec::Protocol::Tcp) => {
                flow.multicast.is_none()
            }
            (Protocol::Udp { .. }, portolan_spec::Protocol::Udp) => flow.multicast.is_none(),
            (Protocol::Multicast { .. }, portolan_spec::Protocol::Udp) => flow.multicast.is_some(),
            (Protocol::IcmpEcho { .. }, portolan_spec::Protocol::Icmp) => flow.multicast.is_none(),
            _ => false,
        };
        if !protocol_ok {
            return Err(refuse(format!(
                "a {} probe for a {} flow",
                probe.protocol.name(),
                flow.protocol
            )));
        }
        let port = probe.target.port();
        let in_ports = |ranges: &[PortRange]| ranges.iter().any(|r| r.contains(port));
        let names = |endpoint: &Endpoint| match &probe.target {
            Target::Addr(addr) => endpoint
                .nets
                .iter()
                .any(|n| n.prefix_len() == n.max_prefix_len() && n.addr() == addr.ip()),
            Target::Host { name, .. } => endpoint.hosts.iter().any(|h| h == name),
        };
        let allowed = if let Protocol::IcmpEcho { .. } = probe.protocol {
            // An echo request has no port: the target's is 0.
            port == 0 && !flow.to.any && names(&flow.to)
        } else if let Protocol::Multicast { .. } = probe.protocol {
            matches!(&probe.target, Target::Addr(a) if Some(a.ip()) == flow.multicast)
                && in_ports(&flow.ports)
        } else if let Some(proxy) = &planned.proxy {
            let via = flow
                .via_proxy
                .as_ref()
                .ok_or_else(|| refuse("a proxy for a flow without one".to_owned()))?;
            *proxy == via.proxy
                && matches!(probe.protocol, Protocol::Tls { .. })
                && names(&via.destination)
                && in_ports(&via.ports)
        } else {
            !flow.to.any && names(&flow.to) && in_ports(&flow.ports)
        };
        if allowed {
            Ok(())
        } else {
            Err(refuse(format!(
                "{} is not a destination of flow `{}`",
                probe.target_text(),
                flow.id
            )))
        }
    }
}

/// Runs the probes: first asserts that [`Allowlist`] permits every one
/// (else nothing is sent and [`PreflightError::TargetOutsidePlan`] is
/// returned), then probes, with `base`'s concurrency, timeout, retries and
/// roots. TLS probes through a deployment proxy run in a batch per proxy;
/// the others use `base.proxy` (from `HTTPS_PROXY`/`NO_PROXY`).
///
/// Results come back in the order of `set.probes`.
pub async fn run_checks(
    allowlist: &Allowlist<'_>,
    set: &CheckSet,
    base: &ProbeOptions,
) -> Result<Vec<CheckRecord>, PreflightError> {
    for planned in &set.probes {
        allowlist.check(planned)?;
    }
    // Batches by proxy, keeping each probe's index.
    let mut batches: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, planned) in set.probes.iter().enumerate() {
        batches.entry(planned.proxy.as_deref()).or_default().push(i);
    }
    let mut records: Vec<Option<CheckRecord>> = vec![None; set.probes.len()];
    for (proxy, indices) in batches {
        let mut options = base.clone();
        if let Some(proxy) = proxy {
            options.proxy = Some(Proxy::new(proxy)?);
        }
        let specs = indices
            .iter()
            .map(|&i| set.probes[i].probe.clone())
            .collect();
        let results = run_probes(specs, &options).await;
        for (&i, result) in indices.iter().zip(results) {
            let planned = &set.probes[i];
            records[i] = Some(CheckRecord {
                flow: planned.flow.clone(),
                to: planned.to.clone(),
                required: planned.required,
                proxy: planned
                    .proxy
                    .clone()
                    .or_else(|| result.details.tls.as_ref().and_then(|t| t.proxy.clone())),
                result,
            });
        }
    }
    Ok(records.into_iter().flatten().collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use portolan_spec::deployment::load_deployment;
    use portolan_spec::{load_spec, SourceFile};

    pub(crate) const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: cache}
  - {id: users, kind: external}
  - {id: kube}
  - {id: s3, kind: dependency}
externals:
  - {id: slack, host: slack.com}
  - {id: aws, host: 'monitoring.*.amazonaws.com'}
  - {id: partner, cidr: 203.0.113.0/24}
  - {id: sms, host: sms.example.net}
flows:
  - {from: web, to: db, protocol: tcp, port: 5432}
  - {from: web, to: cache, protocol: udp, port: [11211, '7000-7001'], source_port: 8112}
  - {from: web, to: cache, protocol: udp, port: 8082, multicast: 225.0.1.9}
  - {from: web, to: slack, protocol: tcp, port: 443}
  - {from: web, to: sms, protocol: tcp, port: 5567}
  - {from: web, to: aws, protocol: tcp, port: 443}
  - {from: web, to: partner, protocol: tcp, port: 22}
  - {from: web, to: users, protocol: tcp, port: 8080}
  - {from: web, to: db, protocol: icmp}
  - {from: web, to: db, protocol: udp}
  - {from: web, to: db, protocol: tcp, port: '1-2000'}
  - {from: web, to: kube, protocol: tcp, port: 80}
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: s3, protocol: tcp, port: [443, 80]}
";

    pub(crate) const DEPLOYMENT: &str = "deployment: 1
components:
  web: {addresses: [198.18.0.2, 198.18.0.12]}
  db: {addresses: [198.18.0.3, 'fd00:706f:7274::3']}
  cache: {addresses: [198.18.0.4]}
  kube: {kubernetes: {namespace: demo, pod_selector: {app: kube}}}
  s3: {addresses: [s3.example.com]}
externals:
  sms: {addresses: [198.51.100.7]}
";

    pub(crate) fn loaded(deployment: &str) -> (Spec, Plan) {
        let spec = load_spec(SourceFile::new("portolan.yaml", SPEC))
            .expect("valid spec")
            .value;
        let d = load_deployment(SourceFile::new("deployment.yaml", deployment), &spec)
            .expect("valid deployment")
            .value;
        let plan = portolan_spec::plan::plan(&spec, &d);
        (spec, plan)
    }

    fn options() -> CheckOptions {
        CheckOptions {
            token: "t".into(),
            ..CheckOptions::default()
        }
    }

    fn targets(set: &CheckSet) -> Vec<String> {
        set.probes
            .iter()
            .map(|p| format!("{} {}", p.probe.protocol.name(), p.probe.target_text()))
            .collect()
    }

    #[test]
    fn every_flow_is_probed_or_said_untested() {
        let (spec, plan) = loaded(DEPLOYMENT);
        let set = derive_checks(&spec, &plan, "web", &options()).expect("derives");
        assert_eq!(
            targets(&set),
            [
                "tcp 198.18.0.3:5432",
                "udp 198.18.0.4:7000",
                "udp 198.18.0.4:7001",
                "udp 198.18.0.4:11211",
                "multicast 225.0.1.9:8082",
                "tls slack.com:443",
                "tcp 198.51.100.7:5567",
                "icmp 198.18.0.3",
                "tcp s3.example.com:80",
                "tls s3.example.com:443",
            ]
        );
        assert!(set.probes[1..4]
            .iter()
            .all(|p| p.probe.source_port == Some(8112)));
        assert_eq!(set.probes[0].probe.source_port, None);
        let reasons: Vec<String> = set
            .untested
            .iter()
            .map(|u| format!("{}: {}", u.flow, u.reason))
            .collect();
        let expect = [
            "web->db/tcp/5432: fd00:706f:7274::3: not the address family this host sends from",
            "web->aws/tcp/443: wildcard pattern monitoring.*.amazonaws.com: there is no single name to probe",
            "web->partner/tcp/22: address block 203.0.113.0/24: no address inside a block is probed",
            "web->users/tcp/8080: the destination is any address: there is no host to probe",
            "web->db/icmp: fd00:706f:7274::3: not the address family this host sends from",
            "web->db/udp/*: every port: there is no single port to probe",
            "web->db/tcp/1-2000: 2000 ports: more than the limit of 1024 per flow",
            "web->kube/tcp/80: `kube` has no address or host name in the deployment (only a Kubernetes or AWS placement)",
        ];
        assert_eq!(reasons, expect);
        // Every probe passes the independent allowlist.
        let allow = Allowlist::new(&plan, "web").expect("web");
        for p in &set.probes {
            allow.check(p).expect("derived from the plan");
        }
    }

    #[test]
    fn icmp_flows_are_echoed_unless_the_host_cannot_send_echo() {
        let (spec, plan) = loaded(DEPLOYMENT);
        let set = derive_checks(&spec, &plan, "web", &options()).expect("derives");
        let echo = set
            .probes
            .iter()
            .find(|p| p.flow == "web->db/icmp")
            .expect("probed");
        assert_eq!(
            echo.probe.protocol,
            Protocol::IcmpEcho { token: "t".into() }
        );
        assert_eq!(echo.probe.target.to_string(), "198.18.0.3:0");
        assert_eq!(echo.probe.id, "web->db/icmp @ 198.18.0.3");
        let allow = Allowlist::new(&plan, "web").expect("web");
        allow.check(echo).expect("derived from the plan");
        // Anything else an echo could be aimed at is refused.
        let mut port = echo.clone();
        port.probe.target = Target::Addr("198.18.0.3:7".parse().expect("addr"));
        let mut other = echo.clone();
        other.probe.target = Target::Addr("198.18.0.4:0".parse().expect("addr"));
        let mut tcp_flow = echo.clone();
        tcp_flow.flow = "web->db/tcp/5432".into();
        for bad in [port, other, tcp_flow] {
            let err = allow.check(&bad).expect_err("refused");
            assert!(
                matches!(err, PreflightError::TargetOutsidePlan { .. }),
                "{err}"
            );
        }
        // Ping sockets refused here: said untested, with the reason.
        let o = CheckOptions {
            icmp_unavailable: Some("ping sockets are refused (ping_group_range)".into()),
            ..options()
        };
        let set = derive_checks(&spec, &plan, "web", &o).expect("derives");
        assert!(set.probes.iter().all(|p| p.flow != "web->db/icmp"));
        let untested: Vec<&Untested> = set
            .untested
            .iter()
            .filter(|u| u.flow == "web->db/icmp")
            .collect();
        assert_eq!(untested.len(), 1);
        assert_eq!(
            untested[0].reason,
            "ICMP echo cannot be sent from this host: ping sockets are refused (ping_group_range)"
        );
    }

    #[test]
    fn from_must_be_the_components_and_selects_the_family() {
        let (spec, plan) = loaded(DEPLOYMENT);
        let mut o = options();
        o.from = Some("198.18.0.3".parse().expect("ip"));
        let err = derive_checks(&spec, &plan, "web", &o).expect_err("db's address");
        assert_eq!(
            err.to_string(),
            "198.18.0.3 is not an address of `web` in the deployment (its addresses: 198.18.0.2, 198.18.0.12); nothing was probed"
        );
        o.from = Some("198.18.0.12".parse().expect("ip"));
        let set = derive_checks(&spec, &plan, "web", &o).expect("derives");
        assert!(set.probes.iter().all(|p| p.probe.source_ip == o.from));
        let err = derive_checks(&spec, &plan, "wbe", &o).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "`wbe` is not a component of the spec; did you mean `web`?"
        );
    }

    #[test]
    fn udp_against_services_and_tls_sni_for_pinned_externals() {
        let (spec, plan) = loaded(&format!(
            "{DEPLOYMENT}  slack: {{addresses: [198.51.100.20]}}\n"
        ));
        let mut o = options();
        o.udp = UdpAgainst::Service;
        let set = derive_checks(&spec, &plan, "web", &o).expect("derives");
        let slack = set.probes.iter().find(|p| p.to == "slack").expect("slack");
        assert_eq!(
            slack.probe.protocol,
            Protocol::Tls {
                sni: Some("slack.com".into())
            }
        );
        assert_eq!(slack.probe.target.to_string(), "198.51.100.20:443");
        let udp = set.probes.iter().find(|p| p.to == "cache").expect("cache");
        assert!(matches!(
            udp.probe.protocol,
            Protocol::Udp {
                mode: UdpMode::RealService { .. }
            }
        ));
    }

    #[test]
    fn a_deployment_proxy_carries_tls_and_is_itself_the_target_otherwise() {
        let (spec, plan) = loaded(&format!(
            "{DEPLOYMENT}  slack: {{proxy: '198.18.0.60:3128'}}\n"
        ));
        let set = derive_checks(&spec, &plan, "web", &options()).expect("derives");
        let slack = set.probes.iter().find(|p| p.to == "slack").expect("slack");
        assert_eq!(slack.proxy.as_deref(), Some("198.18.0.60:3128"));
        assert_eq!(slack.probe.target.to_string(), "slack.com:443");
        Allowlist::new(&plan, "web")
            .expect("web")
            .check(slack)
            .expect("allowed");
    }

    #[test]
    fn the_allowlist_refuses_what_the_plan_does_not_contain() {
        let (spec, plan) = loaded(DEPLOYMENT);
        let set = derive_checks(&spec, &plan, "web", &options()).expect("derives");
        let allow = Allowlist::new(&plan, "web").expect("web");
        let db = set.probes[0].clone();
        let mut other = db.clone();
        other.probe.target = Target::Addr("198.18.0.99:5432".parse().expect("addr"));
        let mut port = db.clone();
        port.probe.target = Target::Addr("198.18.0.3:5433".parse().expect("addr"));
        let mut name = db.clone();
        name.probe.target = Target::host("example.com", 5432);
        let mut sport = db.clone();
        sport.probe.source_port = Some(1234);
        let mut from = db.clone();
        from.probe.source_ip = Some("198.18.0.3".parse().expect("ip"));
        let mut udp = db.clone();
        udp.probe.protocol = Protocol::Udp {
            mode: UdpMode::RealService { payload: vec![] },
        };
        let mut flow = db.clone();
        flow.flow = "users->web/tcp/443".into();
        let mut block = db;
        block.flow = "web->partner/tcp/22".into();
        block.probe.target = Target::Addr("203.0.113.5:22".parse().expect("addr"));
        for bad in [other, port, name, sport, from, udp, flow, block] {
            let err = allow.check(&bad).expect_err("refused");
            assert!(
                matches!(err, PreflightError::TargetOutsidePlan { .. }),
                "{err}"
            );
        }
        let mut tampered = set.clone();
        tampered.probes[0].probe.target = Target::Addr("10.0.0.1:5432".parse().expect("addr"));
        let rt = tokio_rt();
        let err = rt
            .block_on(run_checks(&allow, &tampered, &ProbeOptions::default()))
            .expect_err("nothing probed");
        assert!(
            err.to_string().starts_with("internal error: probe"),
            "{err}"
        );
    }

    fn tokio_rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }
}
