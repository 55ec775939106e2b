//! What a lab run will build and check, computed from a spec before anything
//! is created: the hosts, the lab deployment and its plan, the names the lab
//! DNS serves, what every host listens on, and every check with its expected
//! verdict.
//!
//! The expected verdicts come from the plan alone (an oracle of what each
//! host's firewall must admit), never from the generated ruleset: the lab
//! checks the generator, it does not trust it.
//!
//! # Hosts
//! - one per component instance (`--replicas N` instances of each `system`
//!   component, one of each `dependency`), named `<component>-<n>`, with a
//!   firewall;
//! - `outside`: the outside world (every component of kind `external`), the
//!   lab's DNS server, and a source of probes that no firewall of its own
//!   stops, so that it tests the components' input chains directly;
//! - `ext-<external>`: one per external endpoint a flow names.
//!
//! # Checks
//! - every flow that exists with the chosen features (required, or optional
//!   and on) from every instance of its source to every instance of its
//!   destination, on IPv4 and IPv6 (ICMP flows with an echo request): must
//!   pass;
//! - negative probes, for each ordered pair of parties (one instance of
//!   each): every port the destination listens on that no flow grants to
//!   that source, including a few sampled ports nothing grants; an ICMP
//!   echo request, in each family, where no flow grants ICMP (every host's
//!   kernel answers echo, and the generated firewalls admit no echo of
//!   their own); and every flow whose feature is off: must be blocked;
//! - multicast flows: every receiver must get the sender's datagram; other
//!   senders' datagrams must reach no receiver.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portolan_spec::deployment::{load_deployment, Deployment};
use portolan_spec::diag::did_you_mean;
use portolan_spec::plan::{plan, Endpoint, Plan, PlannedFlow};
use portolan_spec::{
    render_diagnostics, ComponentKind, Destination, ErrorKind, ExternalAddress, PortRange,
    Protocol, RenderStyle, SourceFile, Spec,
};
use serde::Serialize;

use crate::dns::NameTable;
use crate::topology::{RunId, Topology, MAX_HOSTS, MAX_HOST_NAME_LEN};

/// Rewrites the ruleset generated for a component before it is loaded:
/// `(component id, ruleset) -> ruleset`. Meant for tests that prove the lab
/// catches a missing or an extra rule.
pub type RulesetTransform = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// What the lab reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabEvent {
    /// A phase starts.
    Phase(Phase),
    /// Checks completed so far, of all the run's checks.
    Checks {
        /// Completed.
        done: usize,
        /// In the run.
        total: usize,
    },
}

/// Called with each [`LabEvent`], from any thread.
pub type ProgressFn = Arc<dyn Fn(LabEvent) + Send + Sync>;

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Removing leftovers of killed runs.
    Cleanup,
    /// Hosts, lab deployment, plan, checks.
    Plan,
    /// Namespaces, bridge, veth pairs, addresses.
    Namespaces,
    /// Generating and loading the firewalls.
    Rules,
    /// Binding listeners and the DNS server.
    Listeners,
    /// Resolving names through the lab DNS.
    Dns,
    /// Probing.
    Probes,
    /// Deleting the lab.
    Teardown,
}

impl Phase {
    /// A word for a person.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Cleanup => "cleanup",
            Phase::Plan => "plan",
            Phase::Namespaces => "namespaces",
            Phase::Rules => "rules",
            Phase::Listeners => "listeners",
            Phase::Dns => "dns",
            Phase::Probes => "probes",
            Phase::Teardown => "teardown",
        }
    }
}

/// Which features the lab enables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureChoice {
    /// These feature ids (none: every flow with a condition on a feature is off).
    Listed(Vec<String>),
    /// Every feature of the spec.
    All,
}

impl Default for FeatureChoice {
    /// No feature, as without `--features`.
    fn default() -> Self {
        FeatureChoice::Listed(Vec::new())
    }
}

/// How a lab run is set up.
#[derive(Clone)]
pub struct LabOptions {
    /// Features enabled.
    pub features: FeatureChoice,
    /// Instances of each `system` component (dependencies have one).
    pub replicas: usize,
    /// Seed of every sampling choice: the same seed gives the same checks.
    pub seed: u64,
    /// The run id; a random one if `None`.
    pub run_id: Option<RunId>,
    /// Ports sampled per destination host that no flow names (two thirds
    /// TCP, the rest UDP); each gets a listener and must be blocked.
    pub other_ports: usize,
    /// Most negative probes per ordered pair of parties (both families
    /// counted); beyond it a deterministic sample is probed and the rest is
    /// reported as not checked.
    pub max_negative_per_pair: usize,
    /// Negative probes in all, about: above it the per-pair bound shrinks
    /// (to no fewer than 4 per pair).
    pub max_negative_total: usize,
    /// Time allowed for one attempt of a probe that must pass.
    pub positive_timeout: Duration,
    /// Further attempts of a probe that must pass, after a time-out.
    pub positive_retries: u32,
    /// Time a probe that must be blocked waits when no trace event settles
    /// it (see `trace`); no retry.
    pub negative_timeout: Duration,
    /// Probes in flight at once per host.
    pub concurrency: usize,
    /// Rewrites each generated ruleset before it is loaded.
    pub mutate_ruleset: Option<RulesetTransform>,
    /// Called with progress events.
    pub progress: Option<ProgressFn>,
    /// Decide probes by nftables trace events (see [`crate::trace`]) where
    /// the kernel allows it (true by default); false: by answers and
    /// timeouts only.
    pub trace: bool,
    /// Prove this deployment of the spec (checked against it) instead of
    /// one the lab makes up: its addresses (inside the lab's namespaces
    /// only), features, parameter values and proxies; its machines are the
    /// replicas (addresses paired in order, IPv4 with IPv6; a block stands
    /// for one machine at its first host address). `features` and
    /// `replicas` are then not used.
    pub deployment: Option<Deployment>,
    /// Load these rulesets (one per host of the deployment) instead of
    /// generating them; each is first checked by its loader's dry run.
    pub rules: Option<crate::rules::UserRules>,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            features: FeatureChoice::default(),
            replicas: 1,
            seed: 0,
            run_id: None,
            other_ports: 3,
            max_negative_per_pair: 48,
            max_negative_total: 20_000,
            positive_timeout: Duration::from_millis(1000),
            positive_retries: 2,
            negative_timeout: Duration::from_millis(400),
            concurrency: 256,
            mutate_ruleset: None,
            progress: None,
            trace: true,
            deployment: None,
            rules: None,
        }
    }
}

impl fmt::Debug for LabOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabOptions")
            .field("features", &self.features)
            .field("replicas", &self.replicas)
            .field("seed", &self.seed)
            .field("run_id", &self.run_id)
            .field("other_ports", &self.other_ports)
            .field("max_negative_per_pair", &self.max_negative_per_pair)
            .field("max_negative_total", &self.max_negative_total)
            .field("trace", &self.trace)
            .field("positive_timeout", &self.positive_timeout)
            .field("positive_retries", &self.positive_retries)
            .field("negative_timeout", &self.negative_timeout)
            .field("concurrency", &self.concurrency)
            .field("mutate_ruleset", &self.mutate_ruleset.is_some())
            .field("progress", &self.progress.is_some())
            .field(
                "deployment",
                &self.deployment.as_ref().map(|d| d.source.name.clone()),
            )
            .field("rules", &self.rules.as_ref().map(|r| r.dir.clone()))
            .finish()
    }
}

/// Why a lab cannot be designed from a spec and options.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DesignError {
    /// A feature id the spec does not define.
    #[error("the spec has no feature `{name}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownFeature {
        /// The id given.
        name: String,
        /// The closest id of the spec.
        suggestion: Option<String>,
    },
    /// Replicas out of range.
    #[error("the number of replicas must be between 1 and {max}, not {given}")]
    Replicas {
        /// The value given.
        given: usize,
        /// The largest accepted.
        max: usize,
    },
    /// More hosts than the lab's address range holds.
    #[error("the lab would need {0} hosts, more than its address range holds")]
    TooManyHosts(usize),
    /// The user's deployment cannot be built as a lab (addresses the lab
    /// cannot give a host, components sharing a host).
    #[error("the lab cannot build this deployment: {0}")]
    Placement(String),
    /// The generated lab deployment was rejected (a bug).
    #[error("internal error: the lab deployment does not check against the spec:\n{0}")]
    Deployment(String),
}

impl DesignError {
    /// An unknown feature, a replica count out of range or a deployment the
    /// lab cannot build is the user's choice; a lab too large for its
    /// address range is this lab's limit; a lab deployment that does not
    /// check is a bug.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DesignError::UnknownFeature { .. }
            | DesignError::Replicas { .. }
            | DesignError::Placement(_) => ErrorKind::Input,
            DesignError::TooManyHosts(_) => ErrorKind::Environment,
            DesignError::Deployment(_) => ErrorKind::Internal,
        }
    }
}

/// A negative probe not yet made into a check.
type Candidate = (Transport, u16, Family);

/// Fewest negative probes per pair of parties when the total is bounded.
const MIN_NEGATIVE_PER_PAIR: usize = 4;

/// Most replicas accepted.
pub const MAX_REPLICAS: usize = 64;

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

const FAMILIES: [Family; 2] = [Family::Ipv4, Family::Ipv6];

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

    fn component(&self) -> Option<&str> {
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

/// Everything a run builds and checks, decided before anything is created.
#[derive(Debug, Clone)]
pub struct LabDesign {
    /// The system's name.
    pub system: String,
    /// Hosts, addresses and run id.
    pub topology: Topology,
    /// Hosts, in topology order.
    pub nodes: Vec<Node>,
    /// The party of the outside world.
    pub outside_party: String,
    /// Features enabled (ids).
    pub features: Vec<String>,
    /// Replicas of system components.
    pub replicas: usize,
    /// The seed.
    pub seed: u64,
    /// Parameters given a lab value.
    pub lab_parameters: Vec<LabParameter>,
    /// The lab deployment, as a deployment file.
    pub deployment_yaml: String,
    /// The lab deployment, checked.
    pub deployment: Deployment,
    /// The plan of the spec for the lab deployment.
    pub plan: Plan,
    /// Names the lab DNS serves.
    pub names: NameTable,
    /// Where the lab DNS listens (the outside world's IPv4 address).
    pub dns_server: SocketAddr,
    /// What each host listens on, by host index.
    pub listens: Vec<Listens>,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// What could not be checked.
    pub not_checked: Vec<NotChecked>,
    /// How ports were sampled, one line per flow that was sampled.
    pub samples: Vec<String>,
}

impl LabDesign {
    /// The host with this name.
    pub fn node(&self, host: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.host == host)
    }
}

// ---------------------------------------------------------------------------
// Deterministic sampling
// ---------------------------------------------------------------------------

/// FNV-1a: a stable hash of text (std's hashers are not stable across releases).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64, seeded by the run's seed and a context string.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, context: &str) -> Self {
        Rng(seed ^ fnv(context))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// A port in 1024..=32767 (below the usual ephemeral range, so that no
    /// probe's own source port collides with it) not in `avoid`.
    fn port(&mut self, avoid: impl Fn(u16) -> bool) -> u16 {
        for _ in 0..1000 {
            let port = 1024 + self.below(32768 - 1024) as u16;
            if !avoid(port) {
                return port;
            }
        }
        32767
    }
}

// ---------------------------------------------------------------------------
// Design
// ---------------------------------------------------------------------------

/// A flow of the spec in lab terms.
#[derive(Debug, Clone)]
struct LabFlow {
    id: String,
    enabled: bool,
    required: bool,
    condition: Option<String>,
    from: Vec<usize>,
    to_party: String,
    to: Vec<usize>,
    name: Option<String>,
    source_port: Option<u16>,
    multicast: Option<IpAddr>,
    /// Sampled (transport, port) pairs.
    sample: Vec<(Transport, u16)>,
    /// Why no check can be made, if so.
    unusable: Option<String>,
}

/// Designs a lab run for `spec`.
pub fn design(spec: &Spec, options: &LabOptions) -> Result<LabDesign, DesignError> {
    if options.replicas == 0 || options.replicas > MAX_REPLICAS {
        return Err(DesignError::Replicas {
            given: options.replicas,
            max: MAX_REPLICAS,
        });
    }
    let run = options.run_id.clone().unwrap_or_else(RunId::random);
    let (features, lab_parameters, topology, nodes, outside_party, deployment_yaml, deployment) =
        match &options.deployment {
            Some(deployment) => {
                let placed = crate::placed::placed_hosts(spec, deployment, run)?;
                let features = spec
                    .features
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| deployment.features.iter().any(|f| f.0 == *i))
                    .map(|(_, f)| f.id.clone())
                    .collect();
                (
                    features,
                    Vec::new(),
                    placed.topology,
                    placed.nodes,
                    placed.outside_party,
                    deployment.source.text.clone(),
                    deployment.clone(),
                )
            }
            None => {
                let features = chosen_features(spec, &options.features)?;
                let lab_parameters = lab_parameter_values(spec);
                let (topology, nodes, outside_party) = hosts(spec, options.replicas, run)?;
                let deployment_yaml =
                    deployment_text(spec, &nodes, &features, &lab_parameters, &topology);
                let deployment = load_deployment(
                    SourceFile::new("lab-deployment.yaml", deployment_yaml.clone()),
                    spec,
                )
                .map_err(|d| DesignError::Deployment(render_diagnostics(&d, RenderStyle::Plain)))?
                .value;
                (
                    features,
                    lab_parameters,
                    topology,
                    nodes,
                    outside_party,
                    deployment_yaml,
                    deployment,
                )
            }
        };
    let plan = plan(spec, &deployment);

    let mut names = NameTable::new();
    let mut probe_names: BTreeMap<String, String> = BTreeMap::new();
    for node in &nodes {
        if let Role::External { external } = &node.role {
            let Some(ext) = spec.externals.iter().find(|e| &e.id == external) else {
                continue;
            };
            let addresses = [IpAddr::V4(node.ipv4), IpAddr::V6(node.ipv6)];
            match &ext.address {
                ExternalAddress::Host(h) => {
                    names.insert(h, addresses);
                    probe_names.insert(external.clone(), h.to_ascii_lowercase());
                }
                ExternalAddress::Pattern(p) => {
                    names.insert_pattern(p, addresses);
                    let concrete = p.replace('*', "lab").to_ascii_lowercase();
                    probe_names.insert(external.clone(), concrete);
                }
                ExternalAddress::Cidr(_) | ExternalAddress::Placeholder(_) => {}
            }
        }
    }
    let outside = nodes
        .iter()
        .position(|n| n.role == Role::Outside)
        .unwrap_or(0);
    let dns_server = SocketAddr::new(IpAddr::V4(nodes[outside].ipv4), crate::dns::DNS_PORT);

    let mut builder = Builder {
        spec,
        options,
        nodes: &nodes,
        plan: &plan,
        oracle: Oracle::new(&plan, &nodes),
        listens: vec![Listens::default(); nodes.len()],
        checks: Vec::new(),
        not_checked: Vec::new(),
        samples: Vec::new(),
        outside,
        other_samples: vec![BTreeSet::new(); nodes.len()],
    };
    let flows = builder.lab_flows(&deployment, &probe_names);
    builder.add_listens(&flows);
    builder.flow_checks(&flows, &probe_names);
    let explicit = builder.feature_off_checks(&flows, &probe_names);
    builder.negative_checks(&explicit);
    builder.multicast_negative_checks(&flows);
    let Builder {
        listens,
        checks,
        not_checked,
        samples,
        ..
    } = builder;

    Ok(LabDesign {
        system: spec.system.name.clone(),
        topology,
        nodes,
        outside_party,
        features: features.clone(),
        replicas: options.replicas,
        seed: options.seed,
        lab_parameters,
        deployment_yaml,
        deployment,
        plan,
        names,
        dns_server,
        listens,
        checks,
        not_checked,
        samples,
    })
}

fn chosen_features(spec: &Spec, choice: &FeatureChoice) -> Result<Vec<String>, DesignError> {
    match choice {
        FeatureChoice::All => Ok(spec.features.iter().map(|f| f.id.clone()).collect()),
        FeatureChoice::Listed(list) => {
            let mut out: Vec<String> = Vec::new();
            for name in list {
                if spec.feature_by_id(name).is_none() {
                    return Err(DesignError::UnknownFeature {
                        name: name.clone(),
                        suggestion: did_you_mean(name, spec.features.iter().map(|f| f.id.as_str()))
                            .map(str::to_owned),
                    });
                }
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            // Spec order, so that the lab deployment reads like the spec.
            out.sort_by_key(|f| spec.feature_by_id(f).map(|f| f.0));
            Ok(out)
        }
    }
}

/// Values for parameters without default: ports from 20000 up that no flow
/// of the spec names, so that they cannot be confused with another flow.
fn lab_parameter_values(spec: &Spec) -> Vec<LabParameter> {
    let used = |port: u16| {
        spec.flows.iter().any(|f| {
            f.ports
                .0
                .iter()
                .chain(&f.source_ports.0)
                .any(|item| match item {
                    portolan_spec::PortItem::Range(r) => r.contains(port),
                    portolan_spec::PortItem::Parameter(p) => {
                        spec.parameters[p.0].default == Some(port)
                    }
                })
        })
    };
    let mut next = 20000u16;
    let mut out = Vec::new();
    for parameter in &spec.parameters {
        if parameter.default.is_some() {
            continue;
        }
        while used(next) || out.iter().any(|p: &LabParameter| p.value == next) {
            next += 1;
        }
        out.push(LabParameter {
            id: parameter.id.clone(),
            value: next,
        });
        next += 1;
    }
    out
}

/// A host name from an id: lowercase, `[a-z0-9-]`, at most 40 characters,
/// unique among `taken`.
pub(crate) fn host_name(base: &str, suffix: &str, taken: &mut BTreeSet<String>) -> String {
    let clean: String = base
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "host" } else { clean };
    let room = MAX_HOST_NAME_LEN - suffix.len() - 4;
    let mut stem: String = clean.chars().take(room).collect();
    while stem.ends_with('-') {
        stem.pop();
    }
    let mut name = format!("{stem}{suffix}");
    let mut n = 2;
    while taken.contains(&name) || name == crate::topology::BRIDGE_SUFFIX {
        name = format!("{stem}{suffix}-{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

fn hosts(
    spec: &Spec,
    replicas: usize,
    run: RunId,
) -> Result<(Topology, Vec<Node>, String), DesignError> {
    let mut taken = BTreeSet::new();
    let mut planned: Vec<(String, Role, String)> = Vec::new();
    for component in &spec.components {
        let count = match component.kind {
            ComponentKind::System => replicas,
            ComponentKind::Dependency => 1,
            ComponentKind::External => 0,
        };
        for index in 1..=count {
            let host = host_name(&component.id, &format!("-{index}"), &mut taken);
            planned.push((
                host,
                Role::Instance {
                    component: component.id.clone(),
                    index,
                },
                component.id.clone(),
            ));
        }
    }
    let outside_party = spec
        .components
        .iter()
        .find(|c| c.kind == ComponentKind::External)
        .map_or_else(|| "world".to_owned(), |c| c.id.clone());
    planned.push((
        host_name("outside", "", &mut taken),
        Role::Outside,
        outside_party.clone(),
    ));
    let named: BTreeSet<usize> = spec
        .flows
        .iter()
        .filter_map(|f| match f.to {
            Destination::External(e) => Some(e.0),
            Destination::Component(_) => None,
        })
        .collect();
    for index in named {
        let external = &spec.externals[index];
        planned.push((
            host_name(&format!("ext-{}", external.id), "", &mut taken),
            Role::External {
                external: external.id.clone(),
            },
            external.id.clone(),
        ));
    }
    if planned.len() > MAX_HOSTS {
        return Err(DesignError::TooManyHosts(planned.len()));
    }
    let mut topology = Topology::with_run_id(run);
    let mut nodes = Vec::with_capacity(planned.len());
    for (host, role, party) in planned {
        let added = topology
            .add_host(&host)
            .map_err(|_| DesignError::TooManyHosts(nodes.len() + 1))?;
        let ruleset = match &role {
            Role::Instance { component, .. } => Some(component.clone()),
            _ => None,
        };
        nodes.push(Node {
            ipv4: added.ipv4(),
            ipv6: added.ipv6(),
            has_ipv4: true,
            has_ipv6: true,
            ruleset,
            host,
            role,
            party,
        });
    }
    Ok((topology, nodes, outside_party))
}

/// A YAML scalar in double quotes.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

fn deployment_text(
    spec: &Spec,
    nodes: &[Node],
    features: &[String],
    parameters: &[LabParameter],
    topology: &Topology,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Lab deployment of {} generated by portolan lab (run {}).\n\
         # Every host is a network namespace of this machine; addresses are lab-only\n\
         # (198.18.0.0/16, fd00:706f:7274::/64). The outside world has no address:\n\
         # it is any address (0.0.0.0/0, ::/0), as in a real deployment.\n",
        spec.system.name,
        topology.run_id()
    ));
    out.push_str("deployment: 1\n");
    out.push_str(&format!("name: {}\n", quoted(topology.run_id().as_str())));
    if features.is_empty() {
        out.push_str("features: []\n");
    } else {
        out.push_str("features:\n");
        for f in features {
            out.push_str(&format!("  - {}\n", quoted(f)));
        }
    }
    if !parameters.is_empty() {
        out.push_str("# Parameters without default, given a lab value:\nparameters:\n");
        for p in parameters {
            out.push_str(&format!("  {}: {}\n", quoted(&p.id), p.value));
        }
    }
    out.push_str("components:\n");
    for component in &spec.components {
        let addresses: Vec<String> = nodes
            .iter()
            .filter(|n| n.component() == Some(component.id.as_str()))
            .flat_map(|n| [quoted(&n.ipv4.to_string()), quoted(&n.ipv6.to_string())])
            .collect();
        if addresses.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "  {}:\n    addresses: [{}]\n",
            quoted(&component.id),
            addresses.join(", ")
        ));
    }
    let externals: Vec<&Node> = nodes
        .iter()
        .filter(|n| matches!(n.role, Role::External { .. }))
        .collect();
    if !externals.is_empty() {
        out.push_str("externals:\n");
        for node in externals {
            out.push_str(&format!(
                "  {}:\n    addresses: [{}, {}]\n",
                quoted(&node.party),
                quoted(&node.ipv4.to_string()),
                quoted(&node.ipv6.to_string())
            ));
        }
    }
    out
}

struct Builder<'a> {
    spec: &'a Spec,
    options: &'a LabOptions,
    nodes: &'a [Node],
    plan: &'a Plan,
    oracle: Oracle<'a>,
    listens: Vec<Listens>,
    checks: Vec<Check>,
    not_checked: Vec<NotChecked>,
    samples: Vec<String>,
    outside: usize,
    /// Per host: sampled ports no flow names.
    other_samples: Vec<BTreeSet<(Transport, u16)>>,
}

/// A check being built, before its id.
struct Draft {
    kind: CheckKind,
    expect: Expect,
    flow: Option<String>,
    required: Option<bool>,
    condition: Option<String>,
    from: usize,
    to: usize,
    to_party: String,
    protocol: Transport,
    family: Family,
    port: u16,
    name: Option<String>,
    source_port: Option<u16>,
    note: Option<String>,
}

impl Builder<'_> {
    fn nodes_of_component(&self, id: &str) -> Vec<usize> {
        let kind = self
            .spec
            .components
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.kind);
        if kind == Some(ComponentKind::External) {
            return vec![self.outside];
        }
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].component() == Some(id))
            .collect()
    }

    fn node_of_external(&self, id: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(
                |&i| matches!(&self.nodes[i].role, Role::External { external } if external == id),
            )
            .collect()
    }

    fn lab_flows(
        &mut self,
        deployment: &Deployment,
        probe_names: &BTreeMap<String, String>,
    ) -> Vec<LabFlow> {
        let spec = self.spec;
        let mut flows = Vec::with_capacity(spec.flows.len());
        for (index, flow) in spec.flows.iter().enumerate() {
            let from_component = spec.component(flow.from).id.clone();
            let from = self.nodes_of_component(&from_component);
            let (to_party, to, name) = match flow.to {
                Destination::Component(c) => {
                    let id = spec.component(c).id.clone();
                    let to = self.nodes_of_component(&id);
                    let party = if spec.component(c).kind == ComponentKind::External {
                        self.nodes[self.outside].party.clone()
                    } else {
                        id
                    };
                    (party, to, None)
                }
                Destination::External(e) => {
                    let id = spec.external(e).id.clone();
                    let name = probe_names.get(&id).cloned();
                    (id.clone(), self.node_of_external(&id), name)
                }
            };

            let value_of = |p| deployment.parameter_value(spec, p);
            let ports = flow.ports.resolve(value_of);
            let source_ports = flow.source_ports.resolve(value_of);
            let mut unusable = None;
            let (mut ports, source_port) = match (ports, source_ports) {
                (Ok(p), Ok(s)) => (p, s.first().map(|r| r.start)),
                _ => {
                    unusable = Some("a port parameter has no value".to_owned());
                    (Vec::new(), None)
                }
            };
            let (mut to, mut name) = (to, name);
            if self.options.deployment.is_some() {
                match self.placed_destination(flow, deployment) {
                    Ok(Some((proxy, port))) => {
                        to = vec![proxy];
                        name = None;
                        ports = vec![PortRange::single(port)];
                    }
                    Ok(None) => {}
                    // A flow that must be blocked is probed to the
                    // endpoint's lab host all the same.
                    Err(reason) if deployment.flow_enabled(flow) => unusable = Some(reason),
                    Err(_) => {}
                }
                if let Some(reason) = self.outside_misplaced(flow, deployment) {
                    unusable = Some(reason);
                }
            }
            let enabled = deployment.flow_enabled(flow);
            let left_out = self.plan.left_out.iter().find(|l| l.flow == index);
            if enabled {
                if let Some(l) = left_out {
                    unusable = Some(l.reason.to_string());
                }
            }
            if from.is_empty() || to.is_empty() {
                unusable = Some("an end of the flow has no host in the lab".to_owned());
            }
            let mut rng = Rng::new(self.options.seed, &flow.id);
            let (sample, note) = sample_ports(flow.protocol, &ports, &mut rng);
            if let Some(note) = note {
                self.samples.push(format!("{}: {note}", flow.id));
            }
            flows.push(LabFlow {
                id: flow.id.clone(),
                enabled,
                required: flow.required,
                condition: flow.when.as_ref().map(|c| c.display(spec).to_string()),
                from,
                to_party,
                to,
                name,
                source_port,
                multicast: flow.multicast,
                sample,
                unusable,
            });
        }
        flows
    }

    /// In a lab of the user's deployment, where a flow to an external
    /// endpoint goes: `Some((proxy host, port))` when the deployment sends
    /// it through a proxy (TCP), `None` to the endpoint itself; an error
    /// when the lab cannot probe it.
    fn placed_destination(
        &self,
        flow: &portolan_spec::Flow,
        deployment: &Deployment,
    ) -> Result<Option<(usize, u16)>, String> {
        let Destination::External(e) = flow.to else {
            return Ok(None);
        };
        let external = &self.spec.external(e).id;
        let placement = deployment.externals.get(&e);
        if let (Some(proxy), Protocol::Tcp) =
            (placement.and_then(|p| p.proxy.as_ref()), flow.protocol)
        {
            let portolan_spec::deployment::Address::Net(net) = &proxy.address else {
                return Err(format!(
                    "the deployment's proxy of `{external}` is a name ({proxy}); the lab proves proxies given by address"
                ));
            };
            let address = net.addr().to_string();
            return match self
                .nodes
                .iter()
                .position(|n| matches!(&n.role, Role::Proxy { address: a } if *a == address))
            {
                Some(node) => Ok(Some((node, proxy.port))),
                None => Err(format!("no lab host for the proxy {proxy}")),
            };
        }
        let has_address = placement.is_some_and(|p| {
            p.addresses
                .iter()
                .any(|a| matches!(a, portolan_spec::deployment::Address::Net(_)))
        });
        if !has_address {
            return Err(format!(
                "the deployment gives `{external}` no address; host firewalls cannot match names, so the lab proves flows to addresses"
            ));
        }
        Ok(None)
    }

    /// In a lab of the user's deployment, why a flow of an outside-world
    /// component cannot be probed: the deployment places that component
    /// elsewhere than the lab's outside host stands.
    fn outside_misplaced(
        &self,
        flow: &portolan_spec::Flow,
        deployment: &Deployment,
    ) -> Option<String> {
        let outside = &self.nodes[self.outside];
        let ends = [
            Some(flow.from),
            match flow.to {
                Destination::Component(c) => Some(c),
                Destination::External(_) => None,
            },
        ];
        for c in ends.into_iter().flatten() {
            if self.spec.component(c).kind != ComponentKind::External {
                continue;
            }
            let Some(placement) = deployment.components.get(&c) else {
                continue;
            };
            let nets: Vec<&ipnet::IpNet> = placement
                .addresses
                .iter()
                .filter_map(|a| match a {
                    portolan_spec::deployment::Address::Net(n) => Some(n),
                    portolan_spec::deployment::Address::Host(_) => None,
                })
                .collect();
            if nets.is_empty() {
                continue;
            }
            if !outside
                .addresses()
                .iter()
                .any(|ip| nets.iter().any(|n| n.contains(ip)))
            {
                return Some(format!(
                    "the lab's outside world stands at {}, not among the addresses the deployment gives `{}`",
                    outside
                        .addresses()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.spec.component(c).id
                ));
            }
        }
        None
    }

    fn add_listens(&mut self, flows: &[LabFlow]) {
        for flow in flows.iter().filter(|f| f.unusable.is_none()) {
            for &d in &flow.to {
                for &(transport, port) in &flow.sample {
                    let listens = &mut self.listens[d];
                    match (flow.multicast, transport) {
                        (Some(group), _) => {
                            listens.multicast.insert((group, port));
                        }
                        (None, Transport::Tcp) => {
                            listens.tcp.insert(port);
                        }
                        // The destination's kernel answers echo requests.
                        (None, Transport::Icmp) => {}
                        (None, _) => {
                            listens.udp.insert(port);
                        }
                    }
                }
            }
        }
        // Sampled ports nothing names, per host.
        let k = self.options.other_ports;
        let tcp_count = (k * 2).div_ceil(3);
        for (i, node) in self.nodes.iter().enumerate() {
            let mut rng = Rng::new(self.options.seed, &format!("other-ports/{}", node.party));
            for n in 0..k {
                let transport = if n < tcp_count {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                let listens = &self.listens[i];
                let port =
                    rng.port(|p| listens.tcp.contains(&p) || listens.udp.contains(&p) || p == 53);
                self.other_samples[i].insert((transport, port));
                match transport {
                    Transport::Tcp => self.listens[i].tcp.insert(port),
                    _ => self.listens[i].udp.insert(port),
                };
            }
        }
        // UDP ports a host also sends from share the port with its probes.
        for flow in flows.iter().filter(|f| f.unusable.is_none()) {
            let Some(sport) = flow.source_port else {
                continue;
            };
            if flow.multicast.is_some() {
                continue;
            }
            for &s in &flow.from {
                let listens = &mut self.listens[s];
                if listens.udp.remove(&sport) {
                    listens.udp_shared.insert(sport);
                }
            }
        }
        let outside = &mut self.listens[self.outside];
        outside.dns = true;
        outside.udp.remove(&crate::dns::DNS_PORT);
        outside.udp_shared.remove(&crate::dns::DNS_PORT);
    }

    fn push(&mut self, draft: Draft) {
        let from = &self.nodes[draft.from];
        let to = &self.nodes[draft.to];
        let probe = format!("c{}", self.checks.len() + 1);
        self.checks.push(Check {
            probe,
            kind: draft.kind,
            expect: draft.expect,
            flow: draft.flow,
            required: draft.required,
            condition: draft.condition,
            from: from.party.clone(),
            to: draft.to_party,
            from_host: from.host.clone(),
            to_host: to.host.clone(),
            protocol: draft.protocol,
            family: draft.family,
            target: SocketAddr::new(to.ip(draft.family), draft.port),
            name: draft.name,
            source_port: draft.source_port,
            receivers: Vec::new(),
            note: draft.note,
        });
    }

    /// The families both hosts have an address of their own in.
    fn common_families(&self, s: usize, d: usize) -> Vec<Family> {
        FAMILIES
            .into_iter()
            .filter(|&f| self.nodes[s].has(f) && self.nodes[d].has(f))
            .collect()
    }

    fn oracle(&self) -> &Oracle<'_> {
        &self.oracle
    }

    fn flow_checks(&mut self, flows: &[LabFlow], _names: &BTreeMap<String, String>) {
        for flow in flows.iter().filter(|f| f.enabled) {
            if let Some(reason) = &flow.unusable {
                self.not_checked.push(NotChecked {
                    flow: Some(flow.id.clone()),
                    what: "the flow".to_owned(),
                    reason: reason.clone(),
                });
                continue;
            }
            if let Some(group) = flow.multicast {
                for &s in &flow.from {
                    for &(_, port) in &flow.sample {
                        self.push_multicast(
                            s,
                            group,
                            port,
                            flow.to.clone(),
                            CheckKind::Flow,
                            Some(flow),
                            &flow.to_party,
                        );
                    }
                }
                continue;
            }
            for &s in &flow.from {
                for &d in &flow.to {
                    for &(transport, port) in &flow.sample {
                        for family in self.common_families(s, d) {
                            let note = (s == d).then(|| {
                                "same host: travels over loopback, which every firewall admits"
                                    .to_owned()
                            });
                            self.push(Draft {
                                kind: CheckKind::Flow,
                                expect: Expect::Open,
                                flow: Some(flow.id.clone()),
                                required: Some(flow.required),
                                condition: None,
                                from: s,
                                to: d,
                                to_party: flow.to_party.clone(),
                                protocol: transport,
                                family,
                                port,
                                name: flow.name.clone(),
                                source_port: flow.source_port,
                                note,
                            });
                        }
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_multicast(
        &mut self,
        s: usize,
        group: IpAddr,
        port: u16,
        receivers: Vec<usize>,
        kind: CheckKind,
        flow: Option<&LabFlow>,
        to_party: &str,
    ) {
        let family = if group.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        };
        let from = &self.nodes[s];
        if !from.has(family) {
            // A machine without an address of the group's family.
            return;
        }
        let probe = format!("c{}", self.checks.len() + 1);
        let mut receivers: Vec<String> = receivers
            .iter()
            .filter(|&&r| self.nodes[r].has(family))
            .map(|&r| self.nodes[r].host.clone())
            .collect();
        receivers.sort();
        let expect = if receivers.is_empty() {
            Expect::Blocked
        } else {
            Expect::Open
        };
        self.checks.push(Check {
            probe,
            kind,
            expect,
            flow: flow.map(|f| f.id.clone()),
            required: flow.filter(|f| f.enabled).map(|f| f.required),
            condition: flow
                .filter(|f| !f.enabled)
                .and_then(|f| f.condition.clone()),
            from: from.party.clone(),
            to: to_party.to_owned(),
            from_host: from.host.clone(),
            to_host: SocketAddr::new(group, port).to_string(),
            protocol: Transport::Multicast,
            family,
            target: SocketAddr::new(group, port),
            name: None,
            source_port: flow.and_then(|f| f.source_port),
            receivers,
            note: None,
        });
    }

    /// Checks of flows whose feature is off; returns their keys so that the
    /// pair-wise negative probes do not repeat them.
    fn feature_off_checks(
        &mut self,
        flows: &[LabFlow],
        _names: &BTreeMap<String, String>,
    ) -> HashSet<(usize, usize, Transport, u16, Family)> {
        let mut keys = HashSet::new();
        for flow in flows.iter().filter(|f| !f.enabled) {
            if let Some(reason) = &flow.unusable {
                self.not_checked.push(NotChecked {
                    flow: Some(flow.id.clone()),
                    what: "blocking of the flow (its feature is off)".to_owned(),
                    reason: reason.clone(),
                });
                continue;
            }
            let s = flow.from[0];
            if let Some(group) = flow.multicast {
                for &(_, port) in &flow.sample {
                    let receivers: Vec<usize> = (0..self.nodes.len())
                        .filter(|&r| self.listens[r].multicast.contains(&(group, port)))
                        .filter(|&r| self.oracle().multicast_receives(s, r, group, port))
                        .collect();
                    if !receivers.is_empty() {
                        self.not_checked.push(NotChecked {
                            flow: Some(flow.id.clone()),
                            what: format!(
                                "blocking of multicast {group}:{port} from {}",
                                self.nodes[s].host
                            ),
                            reason: "an enabled flow grants it".to_owned(),
                        });
                        continue;
                    }
                    self.push_multicast(
                        s,
                        group,
                        port,
                        Vec::new(),
                        CheckKind::FeatureOff,
                        Some(flow),
                        &flow.to_party,
                    );
                }
                continue;
            }
            let d = match flow.to.iter().copied().find(|&d| d != s) {
                Some(d) => d,
                None => {
                    self.not_checked.push(NotChecked {
                        flow: Some(flow.id.clone()),
                        what: "blocking of the flow (its feature is off)".to_owned(),
                        reason: "its only source and destination are the same host, and loopback passes every firewall (use --replicas 2)".to_owned(),
                    });
                    continue;
                }
            };
            for &(transport, port) in &flow.sample {
                for family in self.common_families(s, d) {
                    if let Some(granting) =
                        self.oracle()
                            .granting(s, d, transport, flow.source_port, port, family)
                    {
                        self.not_checked.push(NotChecked {
                            flow: Some(flow.id.clone()),
                            what: format!(
                                "blocking of {}/{port} {family} from {} to {} (its feature is off)",
                                transport.as_str(),
                                self.nodes[s].host,
                                self.nodes[d].host
                            ),
                            reason: format!("allowed by enabled flow(s) {granting}"),
                        });
                        continue;
                    }
                    keys.insert((s, d, transport, port, family));
                    self.push(Draft {
                        kind: CheckKind::FeatureOff,
                        expect: Expect::Blocked,
                        flow: Some(flow.id.clone()),
                        required: None,
                        condition: flow.condition.clone(),
                        from: s,
                        to: d,
                        to_party: flow.to_party.clone(),
                        protocol: transport,
                        family,
                        port,
                        name: flow.name.clone(),
                        source_port: flow.source_port,
                        note: None,
                    });
                }
            }
        }
        keys
    }

    /// The parties that send (components, the outside world) and receive
    /// (those and the external endpoints), each with its hosts.
    fn parties(&self) -> Vec<(String, Vec<usize>, bool)> {
        let mut out: Vec<(String, Vec<usize>, bool)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let sends = !matches!(node.role, Role::External { .. } | Role::Proxy { .. });
            match out.iter_mut().find(|(p, _, _)| *p == node.party) {
                Some((_, hosts, _)) => hosts.push(i),
                None => out.push((node.party.clone(), vec![i], sends)),
            }
        }
        out
    }

    fn negative_checks(&mut self, explicit: &HashSet<(usize, usize, Transport, u16, Family)>) {
        let parties = self.parties();
        // Every probe no flow admits, per ordered pair of parties.
        let mut pairs: Vec<(usize, usize, String, Vec<Candidate>)> = Vec::new();
        for (source, source_hosts, sends) in &parties {
            if !sends {
                continue;
            }
            for (dest, dest_hosts, _) in &parties {
                let s = source_hosts[(fnv(dest) % source_hosts.len() as u64) as usize];
                let mut d = dest_hosts[(fnv(source) % dest_hosts.len() as u64) as usize];
                if s == d {
                    match dest_hosts.iter().copied().find(|&h| h != s) {
                        Some(other) => d = other,
                        // One host: loopback passes every firewall.
                        None => continue,
                    }
                }
                if !self.nodes[s].firewalled() && !self.nodes[d].firewalled() {
                    continue;
                }
                let listens = &self.listens[d];
                let ports: Vec<(Transport, u16)> = listens
                    .tcp
                    .iter()
                    .map(|&p| (Transport::Tcp, p))
                    .chain(
                        listens
                            .udp
                            .iter()
                            .chain(&listens.udp_shared)
                            .map(|&p| (Transport::Udp, p)),
                    )
                    .chain(
                        listens
                            .dns
                            .then_some((Transport::Udp, crate::dns::DNS_PORT)),
                    )
                    .collect();
                // Every host's kernel answers ICMP echo: no listener needed.
                let ports = ports.into_iter().chain([(Transport::Icmp, 0)]);
                let mut candidates = Vec::new();
                let families = self.common_families(s, d);
                for (transport, port) in ports {
                    for &family in &families {
                        if explicit.contains(&(s, d, transport, port, family))
                            || self.oracle.allowed(s, d, transport, None, port, family)
                        {
                            continue;
                        }
                        candidates.push((transport, port, family));
                    }
                }
                if !candidates.is_empty() {
                    pairs.push((s, d, dest.clone(), candidates));
                }
            }
        }
        // Bounded: per pair, and in total (large specs get a thinner, still
        // deterministic, sample on every pair rather than none on some).
        let total: usize = pairs.iter().map(|p| p.3.len()).sum();
        let mut cap = self.options.max_negative_per_pair.max(1);
        if total > self.options.max_negative_total && !pairs.is_empty() {
            cap =
                cap.min((self.options.max_negative_total / pairs.len()).max(MIN_NEGATIVE_PER_PAIR));
        }
        let seed = self.options.seed;
        let (mut skipped, mut thinned) = (0usize, 0usize);
        for (s, d, dest, mut candidates) in pairs {
            if candidates.len() > cap {
                skipped += candidates.len() - cap;
                thinned += 1;
                let key = format!("{seed}/{}/{}", self.nodes[s].host, self.nodes[d].host);
                // ICMP echo first (two probes at most, and the only check of
                // a pair's ICMP rules), then a deterministic sample of ports.
                candidates.sort_by_cached_key(|(t, p, f)| {
                    (
                        *t != Transport::Icmp,
                        fnv(&format!("{key}/{}/{p}/{f}", t.as_str())),
                    )
                });
                candidates.truncate(cap);
                candidates.sort();
            }
            for (transport, port, family) in candidates {
                let sampled = self.other_samples[d].contains(&(transport, port))
                    || (self.listens[d].dns && port == crate::dns::DNS_PORT);
                self.push(Draft {
                    kind: if transport == Transport::Icmp {
                        CheckKind::EchoNotGranted
                    } else if sampled {
                        CheckKind::SampledPort
                    } else {
                        CheckKind::NotGranted
                    },
                    expect: Expect::Blocked,
                    flow: None,
                    required: None,
                    condition: None,
                    from: s,
                    to: d,
                    to_party: dest.clone(),
                    protocol: transport,
                    family,
                    port,
                    name: None,
                    source_port: None,
                    note: None,
                });
            }
        }
        if skipped > 0 {
            self.not_checked.push(NotChecked {
                flow: None,
                what: format!(
                    "{skipped} of {total} negative probes, on {thinned} pairs of hosts"
                ),
                reason: format!(
                    "at most {cap} negative probes per pair of parties (at most {} per pair, about {} in all); a deterministic sample (seed {seed}) was probed on every pair",
                    self.options.max_negative_per_pair, self.options.max_negative_total
                ),
            });
        }
    }

    fn multicast_negative_checks(&mut self, flows: &[LabFlow]) {
        let groups: BTreeSet<(IpAddr, u16)> = flows
            .iter()
            .filter(|f| f.enabled && f.unusable.is_none())
            .filter_map(|f| f.multicast.map(|g| (g, f)))
            .flat_map(|(g, f)| f.sample.iter().map(move |&(_, p)| (g, p)))
            .collect();
        let parties = self.parties();
        for (group, port) in groups {
            let receivers: Vec<usize> = (0..self.nodes.len())
                .filter(|&r| self.listens[r].multicast.contains(&(group, port)))
                .collect();
            let to_party = receivers
                .first()
                .map(|&r| self.nodes[r].party.clone())
                .unwrap_or_default();
            for (_, hosts, sends) in &parties {
                if !sends {
                    continue;
                }
                let granted = flows.iter().any(|f| {
                    f.enabled
                        && f.multicast == Some(group)
                        && f.sample.iter().any(|&(_, p)| p == port)
                        && f.from.iter().any(|s| hosts.contains(s))
                });
                if granted {
                    continue;
                }
                let s = hosts[0];
                let expected: Vec<usize> = receivers
                    .iter()
                    .copied()
                    .filter(|&r| self.oracle().multicast_receives(s, r, group, port))
                    .collect();
                if !expected.is_empty() {
                    continue;
                }
                self.push_multicast(
                    s,
                    group,
                    port,
                    Vec::new(),
                    CheckKind::MulticastNotGranted,
                    None,
                    &to_party,
                );
            }
        }
    }
}

/// How ports of a flow are probed: every port of short lists and ranges,
/// otherwise a sample (both ends and one inside of a long range; two random
/// ports for "every port"; TCP and UDP for "every protocol"); ICMP flows
/// with one echo request (port 0).
fn sample_ports(
    protocol: Protocol,
    ports: &[PortRange],
    rng: &mut Rng,
) -> (Vec<(Transport, u16)>, Option<String>) {
    const MAX_PER_FLOW: usize = 16;
    let transports: &[Transport] = match protocol {
        Protocol::Tcp => &[Transport::Tcp],
        Protocol::Udp => &[Transport::Udp],
        Protocol::Any => &[Transport::Tcp, Transport::Udp],
        Protocol::Icmp => return (vec![(Transport::Icmp, 0)], None),
    };
    let mut out = Vec::new();
    let mut note = None;
    if ports.is_empty() {
        for &t in transports {
            let count = if t == Transport::Tcp { 2 } else { 1 };
            for _ in 0..count {
                let port = rng.port(|p| out.contains(&(t, p)) || p == 53);
                out.push((t, port));
            }
        }
        let what = if protocol == Protocol::Any {
            "every protocol and port"
        } else {
            "every port"
        };
        note = Some(format!("{what}: sampled {}", sample_text(&out)));
        return (out, note);
    }
    let mut sampled = false;
    for range in ports {
        let chosen: Vec<u16> = if range.len() <= 3 {
            (range.start..=range.end).collect()
        } else {
            sampled = true;
            let inside = range.start + 1 + rng.below(u64::from(range.end - range.start - 1)) as u16;
            vec![range.start, inside, range.end]
        };
        for &t in transports {
            out.extend(chosen.iter().map(|&p| (t, p)));
        }
    }
    if out.len() > MAX_PER_FLOW {
        sampled = true;
        let mut keep: Vec<(Transport, u16)> = Vec::new();
        while keep.len() < MAX_PER_FLOW {
            let pick = out[rng.below(out.len() as u64) as usize];
            if !keep.contains(&pick) {
                keep.push(pick);
            }
        }
        keep.sort();
        out = keep;
    }
    if sampled {
        note = Some(format!(
            "ports {}: sampled {}",
            portolan_spec::ranges_text(ports),
            sample_text(&out)
        ));
    }
    (out, note)
}

fn sample_text(sample: &[(Transport, u16)]) -> String {
    sample
        .iter()
        .map(|(t, p)| format!("{}/{p}", t.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Oracle
// ---------------------------------------------------------------------------

/// What the firewalls must admit, from the plan: traffic passes when the
/// sender's output and the receiver's input each have a flow that admits it
/// (hosts without a firewall admit everything; a host talking to itself
/// uses loopback, which every ruleset admits).
struct Oracle<'a> {
    nodes: &'a [Node],
    /// Unicast flows by source component: the output rules of its hosts.
    outputs: HashMap<&'a str, Vec<&'a PlannedFlow>>,
    /// Unicast flows by destination component: the input rules of its hosts.
    inputs: HashMap<&'a str, Vec<&'a PlannedFlow>>,
    /// Multicast flows.
    multicast: Vec<&'a PlannedFlow>,
}

impl<'a> Oracle<'a> {
    fn new(plan: &'a Plan, nodes: &'a [Node]) -> Self {
        let mut outputs: HashMap<&str, Vec<&PlannedFlow>> = HashMap::new();
        let mut inputs: HashMap<&str, Vec<&PlannedFlow>> = HashMap::new();
        let mut multicast = Vec::new();
        for flow in &plan.flows {
            if flow.multicast.is_some() {
                multicast.push(flow);
                continue;
            }
            outputs.entry(flow.from.id.as_str()).or_default().push(flow);
            if flow.to.is_component() {
                inputs.entry(flow.to.id.as_str()).or_default().push(flow);
            }
        }
        Oracle {
            nodes,
            outputs,
            inputs,
            multicast,
        }
    }
}

fn contains(endpoint: &Endpoint, ip: IpAddr) -> bool {
    endpoint.nets.iter().any(|n| n.contains(&ip))
}

fn ports_admit(ports: &[PortRange], port: Option<u16>) -> bool {
    match port {
        _ if ports.is_empty() => true,
        Some(p) => ports.iter().any(|r| r.contains(p)),
        None => false,
    }
}

fn protocol_admits(protocol: Protocol, transport: Transport) -> bool {
    match protocol {
        Protocol::Any => true,
        Protocol::Tcp => transport == Transport::Tcp,
        Protocol::Udp => matches!(transport, Transport::Udp | Transport::Multicast),
        Protocol::Icmp => transport == Transport::Icmp,
    }
}

impl Oracle<'_> {
    /// The flows that admit the traffic on each side (`None` for a side
    /// without firewall), or why not.
    fn sides(
        &self,
        s: usize,
        d: usize,
        transport: Transport,
        sport: Option<u16>,
        port: u16,
        family: Family,
    ) -> (Option<Vec<&str>>, Option<Vec<&str>>) {
        let (src, dst) = (&self.nodes[s], &self.nodes[d]);
        let (sip, dip) = (src.ip(family), dst.ip(family));
        let admits = |f: &&&PlannedFlow| {
            protocol_admits(f.protocol, transport)
                && ports_admit(&f.ports, Some(port))
                && ports_admit(&f.source_ports, sport)
        };
        let none = Vec::new();
        let output = src.component().map(|c| {
            self.outputs
                .get(c)
                .unwrap_or(&none)
                .iter()
                .filter(admits)
                .filter(|f| contains(&f.to, dip))
                .map(|f| f.id.as_str())
                .collect()
        });
        let input = dst.component().map(|c| {
            self.inputs
                .get(c)
                .unwrap_or(&none)
                .iter()
                .filter(admits)
                .filter(|f| contains(&f.from, sip))
                .map(|f| f.id.as_str())
                .collect()
        });
        (output, input)
    }

    fn allowed(
        &self,
        s: usize,
        d: usize,
        transport: Transport,
        sport: Option<u16>,
        port: u16,
        family: Family,
    ) -> bool {
        if s == d {
            return true;
        }
        // The same as `granting(..).is_some()`, without building the text:
        // this runs for every candidate negative probe.
        let (src, dst) = (&self.nodes[s], &self.nodes[d]);
        let (sip, dip) = (src.ip(family), dst.ip(family));
        let admits = |f: &&&PlannedFlow| {
            protocol_admits(f.protocol, transport)
                && ports_admit(&f.ports, Some(port))
                && ports_admit(&f.source_ports, sport)
        };
        let output = src.component().is_none_or(|c| {
            self.outputs
                .get(c)
                .is_some_and(|flows| flows.iter().filter(admits).any(|f| contains(&f.to, dip)))
        });
        output
            && dst.component().is_none_or(|c| {
                self.inputs.get(c).is_some_and(|flows| {
                    flows.iter().filter(admits).any(|f| contains(&f.from, sip))
                })
            })
    }

    /// When allowed, the flows that allow it, as text.
    fn granting(
        &self,
        s: usize,
        d: usize,
        transport: Transport,
        sport: Option<u16>,
        port: u16,
        family: Family,
    ) -> Option<String> {
        if s == d {
            return Some("(loopback)".to_owned());
        }
        let (output, input) = self.sides(s, d, transport, sport, port, family);
        fn side(flows: Option<Vec<&str>>) -> Option<Vec<&str>> {
            match flows {
                None => Some(Vec::new()),
                Some(f) if f.is_empty() => None,
                Some(f) => Some(f),
            }
        }
        let mut all = side(output)?;
        for f in side(input)? {
            if !all.contains(&f) {
                all.push(f);
            }
        }
        Some(if all.is_empty() {
            "(no firewall on either side)".to_owned()
        } else {
            all.join(", ")
        })
    }

    /// Whether a datagram from `s` to the group reaches receiver `r`.
    fn multicast_receives(&self, s: usize, r: usize, group: IpAddr, port: u16) -> bool {
        let (src, rcv) = (&self.nodes[s], &self.nodes[r]);
        let sip = match group {
            IpAddr::V4(_) => IpAddr::V4(src.ipv4),
            IpAddr::V6(_) => IpAddr::V6(src.ipv6),
        };
        let admits = |f: &&&PlannedFlow| {
            f.multicast == Some(group)
                && protocol_admits(f.protocol, Transport::Multicast)
                && ports_admit(&f.ports, Some(port))
                && f.source_ports.is_empty()
        };
        let output = src
            .component()
            .is_none_or(|c| self.multicast.iter().filter(admits).any(|f| f.from.id == c));
        let input = rcv.component().is_none_or(|c| {
            self.multicast
                .iter()
                .filter(admits)
                .any(|f| f.to.id == c && contains(&f.from, sip))
        });
        output && input
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_spec::plan::LeftOutReason;

    const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: peer}
  - {id: users, kind: external}
externals:
  - {id: slack, host: slack.com}
  - {id: cw, host: monitoring.*.amazonaws.com}
features:
  - {id: slack-alerts}
parameters:
  - {id: db-port, default: 5432}
  - {id: infra-port}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: $db-port}
  - {from: web, to: slack, protocol: tcp, port: 443, required: false, when: slack-alerts}
  - {from: web, to: cw, protocol: tcp, port: 443}
  - {from: peer, to: peer, protocol: udp, port: 8112, source_port: 8112}
  - {from: peer, to: peer, protocol: udp, port: 8082, multicast: 225.0.1.9}
  - {from: db, to: users, protocol: any}
  - {from: web, to: db, protocol: tcp, port: $infra-port}
";

    fn spec() -> Spec {
        portolan_spec::load_spec(SourceFile::new("portolan.yaml", SPEC))
            .expect("valid spec")
            .value
    }

    fn options(features: &[&str], replicas: usize) -> LabOptions {
        LabOptions {
            features: FeatureChoice::Listed(features.iter().map(|f| (*f).to_owned()).collect()),
            replicas,
            run_id: Some(RunId::new("ptl-design").expect("run id")),
            ..LabOptions::default()
        }
    }

    #[test]
    fn hosts_deployment_and_names() {
        let spec = spec();
        let d = design(&spec, &options(&[], 2)).expect("designed");
        let hosts: Vec<&str> = d.nodes.iter().map(|n| n.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "web-1",
                "web-2",
                "db-1",
                "peer-1",
                "peer-2",
                "outside",
                "ext-slack",
                "ext-cw"
            ]
        );
        assert!(
            d.deployment_yaml.contains("\"infra-port\": 20000"),
            "{}",
            d.deployment_yaml
        );
        assert_eq!(
            d.lab_parameters,
            [LabParameter {
                id: "infra-port".into(),
                value: 20000
            }]
        );
        let slack = d.node("ext-slack").expect("slack host");
        assert_eq!(
            d.names.lookup("slack.com"),
            Some([IpAddr::V4(slack.ipv4), IpAddr::V6(slack.ipv6)].as_slice())
        );
        assert!(d.names.lookup("monitoring.lab.amazonaws.com").is_some());
        assert!(d.features.is_empty());
        // The plan places everything: nothing is left out but the feature-off flow.
        assert_eq!(d.plan.left_out.len(), 1);
        assert!(matches!(
            d.plan.left_out[0].reason,
            LeftOutReason::FeatureOff { .. }
        ));
    }

    #[test]
    fn unknown_features_and_replicas_are_errors() {
        let spec = spec();
        let err = design(&spec, &options(&["slack-alert"], 1)).expect_err("unknown");
        assert!(
            err.to_string().contains("did you mean `slack-alerts`"),
            "{err}"
        );
        assert!(matches!(
            design(&spec, &options(&[], 0)),
            Err(DesignError::Replicas { .. })
        ));
    }

    #[test]
    fn every_enabled_flow_is_checked_both_families_between_every_instance_pair() {
        let spec = spec();
        let d = design(&spec, &options(&[], 2)).expect("designed");
        let of = |flow: &str| -> Vec<&Check> {
            d.checks
                .iter()
                .filter(|c| c.flow.as_deref() == Some(flow) && c.kind == CheckKind::Flow)
                .collect()
        };
        // users -> web: outside to 2 instances × 2 families.
        let inbound = of("users->web/tcp/443");
        assert_eq!(inbound.len(), 4);
        assert!(inbound
            .iter()
            .all(|c| c.from_host == "outside" && c.expect == Expect::Open));
        // peer <-> peer with a fixed source port: 4 pairs × 2 families.
        let fixed = of("peer->peer/udp/8112:8112");
        assert_eq!(fixed.len(), 8);
        assert!(fixed.iter().all(|c| c.source_port == Some(8112)));
        assert_eq!(
            fixed.iter().filter(|c| c.note.is_some()).count(),
            4,
            "loopback pairs"
        );
        // The port is shared between the listener and the probes.
        let peer = d
            .nodes
            .iter()
            .position(|n| n.host == "peer-1")
            .expect("peer-1");
        assert!(d.listens[peer].udp_shared.contains(&8112));
        assert!(!d.listens[peer].udp.contains(&8112));
        // Multicast: one check per sender, both instances must receive.
        let mc = of("peer->peer@225.0.1.9/udp/8082");
        assert_eq!(mc.len(), 2);
        assert!(mc.iter().all(|c| c.receivers == ["peer-1", "peer-2"]));
        // Names go through the lab DNS.
        let cw = of("web->cw/tcp/443");
        assert!(cw
            .iter()
            .all(|c| c.name.as_deref() == Some("monitoring.lab.amazonaws.com")));
        // Protocol any to the outside world: sampled.
        let any = of("db->users/any");
        assert_eq!(any.len(), 6, "2 tcp + 1 udp, both families");
        assert!(d
            .samples
            .iter()
            .any(|s| s.starts_with("db->users/any: every protocol")));
        // The parameter without default is probed on its lab value.
        assert!(of("web->db/tcp/$infra-port")
            .iter()
            .all(|c| c.target.port() == 20000));
    }

    #[test]
    fn negative_checks_are_exactly_what_no_flow_admits() {
        let spec = spec();
        let d = design(&spec, &options(&[], 1)).expect("designed");
        let oracle = Oracle::new(&d.plan, &d.nodes);
        let index = |h: &str| d.nodes.iter().position(|n| n.host == h).expect("host");
        let negatives: Vec<&Check> = d
            .checks
            .iter()
            .filter(|c| c.expect == Expect::Blocked && c.protocol != Transport::Multicast)
            .collect();
        assert!(!negatives.is_empty());
        for c in &negatives {
            assert!(
                !oracle.allowed(
                    index(&c.from_host),
                    index(&c.to_host),
                    c.protocol,
                    c.source_port,
                    c.target.port(),
                    c.family
                ),
                "{c:?}"
            );
            if c.protocol == Transport::Icmp {
                // The kernel answers echo: no listener.
                assert_eq!(c.kind, CheckKind::EchoNotGranted, "{c:?}");
                assert_eq!(c.target.port(), 0);
                continue;
            }
            // A negative probe counts only where a listener is.
            let l = &d.listens[index(&c.to_host)];
            let port = c.target.port();
            assert!(
                l.tcp.contains(&port)
                    || l.udp.contains(&port)
                    || l.udp_shared.contains(&port)
                    || (l.dns && port == 53),
                "{c:?}"
            );
        }
        // The outside world may reach web on 443 only: 5432 on db is not granted to it.
        assert!(negatives.iter().any(|c| c.from_host == "outside"
            && c.to_host == "db-1"
            && c.target.port() == 5432
            && c.kind == CheckKind::NotGranted));
        assert!(!negatives
            .iter()
            .any(|c| c.from_host == "outside" && c.to_host == "web-1" && c.target.port() == 443));
        // db sends anything to the outside world: no negative from db to outside.
        assert!(!negatives
            .iter()
            .any(|c| c.from_host == "db-1" && c.to_host == "outside"));
        // The flow of the feature that is off must be blocked, with its condition.
        let off: Vec<&&Check> = negatives
            .iter()
            .filter(|c| c.kind == CheckKind::FeatureOff)
            .collect();
        assert_eq!(off.len(), 2, "{off:?}");
        assert!(off
            .iter()
            .all(|c| c.flow.as_deref() == Some("web->slack/tcp/443")
                && c.condition.as_deref() == Some("slack-alerts")
                && c.name.as_deref() == Some("slack.com")));
        // Sampled ports: each host has three, and they are probed.
        assert!(negatives.iter().any(|c| c.kind == CheckKind::SampledPort));
        // Multicast from web (not granted) reaches no receiver.
        assert!(d
            .checks
            .iter()
            .any(|c| c.kind == CheckKind::MulticastNotGranted
                && c.from_host == "web-1"
                && c.receivers.is_empty()));
    }

    #[test]
    fn all_features_turn_negative_into_positive_and_seed_changes_samples() {
        let spec = spec();
        let all = LabOptions {
            features: FeatureChoice::All,
            run_id: Some(RunId::new("ptl-design").expect("run id")),
            ..LabOptions::default()
        };
        let d = design(&spec, &all).expect("designed");
        assert_eq!(d.features, ["slack-alerts"]);
        assert!(!d.checks.iter().any(|c| c.kind == CheckKind::FeatureOff));
        assert!(d
            .checks
            .iter()
            .any(|c| c.flow.as_deref() == Some("web->slack/tcp/443") && c.expect == Expect::Open));
        let again = design(&spec, &all).expect("designed");
        assert_eq!(d.checks, again.checks, "deterministic");
        let other = design(
            &spec,
            &LabOptions {
                seed: 7,
                ..all.clone()
            },
        )
        .expect("designed");
        assert_ne!(
            d.listens, other.listens,
            "the seed picks other sampled ports"
        );
    }

    #[test]
    fn negative_probes_are_bounded_per_pair_and_in_total() {
        let spec = spec();
        let full = design(&spec, &options(&[], 1)).expect("designed");
        let negatives = |d: &LabDesign| {
            d.checks
                .iter()
                .filter(|c| matches!(c.kind, CheckKind::NotGranted | CheckKind::SampledPort))
                .count()
        };
        let all = negatives(&full);
        assert!(full
            .not_checked
            .iter()
            .all(|n| !n.what.contains("negative probes")));
        let bounded = LabOptions {
            max_negative_total: 10,
            ..options(&[], 1)
        };
        let thin = design(&spec, &bounded).expect("designed");
        let pairs: BTreeSet<(&str, &str)> = full
            .checks
            .iter()
            .filter(|c| matches!(c.kind, CheckKind::NotGranted | CheckKind::SampledPort))
            .map(|c| (c.from_host.as_str(), c.to_host.as_str()))
            .collect();
        assert!(negatives(&thin) <= pairs.len() * MIN_NEGATIVE_PER_PAIR);
        assert!(negatives(&thin) < all);
        // Every pair keeps some, and what was left out is said.
        let thin_pairs: BTreeSet<(&str, &str)> = thin
            .checks
            .iter()
            .filter(|c| matches!(c.kind, CheckKind::NotGranted | CheckKind::SampledPort))
            .map(|c| (c.from_host.as_str(), c.to_host.as_str()))
            .collect();
        assert_eq!(thin_pairs, pairs);
        let note = thin
            .not_checked
            .iter()
            .find(|n| n.what.contains("negative probes"))
            .expect("the thinning is reported");
        assert!(note.reason.contains("deterministic sample"), "{note:?}");
        // Flows and features off are never thinned.
        let flows = |d: &LabDesign| {
            d.checks
                .iter()
                .filter(|c| c.kind != CheckKind::NotGranted && c.kind != CheckKind::SampledPort)
                .count()
        };
        assert_eq!(flows(&full), flows(&thin));
    }

    const PING: &str = "portolan: 1
system: {name: Ping}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: users, kind: external}
features:
  - {id: diag}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: icmp}
  - {from: db, to: web, protocol: icmp, required: false, when: diag}
";

    #[test]
    fn icmp_flows_are_echoed_and_echo_elsewhere_must_be_blocked() {
        let spec = portolan_spec::load_spec(SourceFile::new("portolan.yaml", PING))
            .expect("valid spec")
            .value;
        let d = design(&spec, &options(&[], 2)).expect("designed");
        assert!(d.not_checked.is_empty(), "{:?}", d.not_checked);
        let flow: Vec<&Check> = d
            .checks
            .iter()
            .filter(|c| c.kind == CheckKind::Flow && c.protocol == Transport::Icmp)
            .collect();
        // Each web instance to db, both families.
        assert_eq!(flow.len(), 4, "{flow:?}");
        assert!(flow
            .iter()
            .all(|c| c.flow.as_deref() == Some("web->db/icmp")
                && c.expect == Expect::Open
                && c.to_host == "db-1"
                && c.target.port() == 0));
        let v6 = flow
            .iter()
            .find(|c| c.family == Family::Ipv6)
            .expect("IPv6");
        assert_eq!(v6.target_text(), v6.target.ip().to_string(), "no port");
        // The feature's flow is off: its echo must be blocked.
        let off: Vec<&Check> = d
            .checks
            .iter()
            .filter(|c| c.kind == CheckKind::FeatureOff)
            .collect();
        assert_eq!(off.len(), 2, "{off:?}");
        assert!(off.iter().all(|c| c.protocol == Transport::Icmp
            && c.condition.as_deref() == Some("diag")
            && c.from_host == "db-1"));
        // Echo no flow grants, per ordered pair, both families; none where
        // a flow grants it.
        let echo = |from: &str, to: &str| {
            d.checks
                .iter()
                .filter(|c| {
                    c.kind == CheckKind::EchoNotGranted
                        && c.from_host.starts_with(from)
                        && c.to_host.starts_with(to)
                })
                .map(|c| c.family)
                .collect::<Vec<_>>()
        };
        assert_eq!(echo("outside", "web-"), [Family::Ipv4, Family::Ipv6]);
        assert_eq!(echo("outside", "db-"), [Family::Ipv4, Family::Ipv6]);
        assert_eq!(echo("web-", "outside"), [Family::Ipv4, Family::Ipv6]);
        assert_eq!(echo("web-", "web-"), [Family::Ipv4, Family::Ipv6]);
        assert!(echo("web-", "db-").is_empty(), "granted by web->db/icmp");
        assert!(d
            .checks
            .iter()
            .all(|c| c.protocol != Transport::Icmp
                || (c.target.port() == 0 && c.source_port.is_none())));
        // Echo needs no listener.
        assert!(d
            .listens
            .iter()
            .all(|l| !l.tcp.contains(&0) && !l.udp.contains(&0)));

        // The feature on: its flow passes, and db's echo to web is granted.
        let on = design(&spec, &options(&["diag"], 2)).expect("designed");
        assert_eq!(
            on.checks
                .iter()
                .filter(|c| c.flow.as_deref() == Some("db->web/icmp") && c.expect == Expect::Open)
                .count(),
            4
        );
        assert!(
            !on.checks.iter().any(|c| c.kind == CheckKind::EchoNotGranted
                && c.from_host == "db-1"
                && c.to_host.starts_with("web-"))
        );

        // Thinned to two probes a pair, the echo requests are what stays.
        let thin = design(
            &spec,
            &LabOptions {
                max_negative_per_pair: 2,
                ..options(&[], 1)
            },
        )
        .expect("designed");
        let echo_pairs: BTreeSet<(&str, &str)> = thin
            .checks
            .iter()
            .filter(|c| c.kind == CheckKind::EchoNotGranted)
            .map(|c| (c.from_host.as_str(), c.to_host.as_str()))
            .collect();
        assert!(echo_pairs.contains(&("outside", "web-1")), "{echo_pairs:?}");
        let ports_there: Vec<&Check> = thin
            .checks
            .iter()
            .filter(|c| matches!(c.kind, CheckKind::NotGranted | CheckKind::SampledPort))
            .filter(|c| echo_pairs.contains(&(c.from_host.as_str(), c.to_host.as_str())))
            .collect();
        assert!(ports_there.is_empty(), "{ports_there:?}");
        assert!(thin
            .not_checked
            .iter()
            .any(|n| n.what.contains("negative probes")));
    }

    #[test]
    fn port_sampling() {
        let mut rng = Rng::new(1, "t");
        let r = |a, b| PortRange { start: a, end: b };
        let (s, note) = sample_ports(Protocol::Tcp, &[r(80, 80), r(443, 443)], &mut rng);
        assert_eq!(s, [(Transport::Tcp, 80), (Transport::Tcp, 443)]);
        assert!(note.is_none());
        let (s, note) = sample_ports(Protocol::Udp, &[r(8000, 8010)], &mut rng);
        assert_eq!(s.len(), 3);
        assert!(s[1].1 > 8000 && s[1].1 < 8010);
        assert!(note.expect("noted").contains("8000-8010"));
        let (s, _) = sample_ports(Protocol::Any, &[], &mut rng);
        assert_eq!(
            s.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            [Transport::Tcp, Transport::Tcp, Transport::Udp]
        );
        assert_eq!(
            sample_ports(Protocol::Icmp, &[], &mut rng),
            (vec![(Transport::Icmp, 0)], None)
        );
    }

    #[test]
    fn host_names_are_valid_and_unique() {
        let mut taken = BTreeSet::new();
        let a = host_name("Web_Front", "-1", &mut taken);
        let b = host_name("web-front", "-1", &mut taken);
        assert_eq!(a, "web-front-1");
        assert_eq!(b, "web-front-1-2");
        let long = host_name(&"x".repeat(80), "-12", &mut taken);
        assert!(long.len() <= MAX_HOST_NAME_LEN);
        assert_eq!(host_name("bridge", "", &mut taken), "bridge-2");
    }
}
