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

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use portolan_spec::deployment::Deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{ErrorKind, ExternalAddress, Spec};

use crate::dns::NameTable;
use crate::topology::{RunId, Topology};

mod checks;
mod flows;
mod lab_deployment;
mod model;
mod negative;
mod options;
mod oracle;
mod sample;
#[cfg(test)]
mod tests;

use checks::Builder;
use lab_deployment::{chosen_features, hosts, lab_deployment, lab_parameter_values};
pub(crate) use lab_deployment::{host_name, named_externals, outside_party};
pub use model::{
    Check, CheckKind, Expect, Family, LabParameter, Listens, Node, NotChecked, Role, Transport,
};
pub use options::{FeatureChoice, LabEvent, LabOptions, Phase, ProgressFn, RulesetTransform};

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
}

impl DesignError {
    /// An unknown feature, a replica count out of range or a deployment the
    /// lab cannot build is the user's choice; a lab too large for its
    /// address range is this lab's limit.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DesignError::UnknownFeature { .. }
            | DesignError::Replicas { .. }
            | DesignError::Placement(_) => ErrorKind::Input,
            DesignError::TooManyHosts(_) => ErrorKind::Environment,
        }
    }
}

/// Most replicas accepted.
pub const MAX_REPLICAS: usize = 64;

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
    /// The lab deployment, as a deployment file (the user's own file for a
    /// lab of the user's deployment).
    pub deployment_yaml: String,
    /// The lab deployment.
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

/// Designs a lab run for `spec`.
pub fn design(spec: &Spec, options: &LabOptions) -> Result<LabDesign, DesignError> {
    if options.replicas == 0 || options.replicas > MAX_REPLICAS {
        return Err(DesignError::Replicas {
            given: options.replicas,
            max: MAX_REPLICAS,
        });
    }
    let run = options.run_id.clone().unwrap_or_else(RunId::random);
    let setup = match &options.deployment {
        Some(deployment) => Setup::placed(spec, deployment, run)?,
        None => Setup::lab(spec, options, run)?,
    };
    let plan = plan(spec, &setup.deployment);
    let (names, probe_names) = lab_names(spec, &setup.nodes);
    let nodes = &setup.nodes;
    let outside = nodes
        .iter()
        .position(|n| n.role == Role::Outside)
        .unwrap_or(0);
    let dns_server = SocketAddr::new(IpAddr::V4(nodes[outside].ipv4), crate::dns::DNS_PORT);
    let mut builder = Builder::new(spec, options, nodes, &plan, outside);
    builder.build(&probe_names);
    let Builder {
        listens,
        checks,
        not_checked,
        samples,
        ..
    } = builder;
    Ok(LabDesign {
        system: spec.system.name.clone(),
        topology: setup.topology,
        nodes: setup.nodes,
        outside_party: setup.outside_party,
        features: setup.features,
        replicas: options.replicas,
        seed: options.seed,
        lab_parameters: setup.lab_parameters,
        deployment_yaml: setup.deployment_yaml,
        deployment: setup.deployment,
        plan,
        names,
        dns_server,
        listens,
        checks,
        not_checked,
        samples,
    })
}

/// The hosts and the deployment of a run, before its plan.
struct Setup {
    features: Vec<String>,
    lab_parameters: Vec<LabParameter>,
    topology: Topology,
    nodes: Vec<Node>,
    outside_party: String,
    deployment_yaml: String,
    deployment: Deployment,
}

impl Setup {
    /// The user's deployment, on hosts at its addresses.
    fn placed(spec: &Spec, deployment: &Deployment, run: RunId) -> Result<Self, DesignError> {
        let placed = crate::placed::placed_hosts(spec, deployment, run)?;
        let features = spec
            .features
            .iter()
            .enumerate()
            .filter(|(i, _)| deployment.features.iter().any(|f| f.0 == *i))
            .map(|(_, f)| f.id.clone())
            .collect();
        Ok(Setup {
            features,
            lab_parameters: Vec::new(),
            topology: placed.topology,
            nodes: placed.nodes,
            outside_party: placed.outside_party,
            deployment_yaml: deployment.source.text.clone(),
            deployment: deployment.clone(),
        })
    }

    /// A deployment the lab makes up, on hosts at lab-only addresses.
    fn lab(spec: &Spec, options: &LabOptions, run: RunId) -> Result<Self, DesignError> {
        let features = chosen_features(spec, &options.features)?;
        let lab_parameters = lab_parameter_values(spec);
        let (topology, nodes, outside_party) = hosts(spec, options.replicas, run)?;
        let deployment = lab_deployment(spec, &nodes, &features, &lab_parameters, &topology);
        Ok(Setup {
            features,
            lab_parameters,
            topology,
            nodes,
            outside_party,
            deployment_yaml: deployment.source.text.clone(),
            deployment,
        })
    }
}

/// The names the lab DNS serves (each external endpoint's host name or
/// pattern, at its host), and the name each external endpoint is probed by.
fn lab_names(spec: &Spec, nodes: &[Node]) -> (NameTable, BTreeMap<String, String>) {
    let mut names = NameTable::new();
    let mut probe_names: BTreeMap<String, String> = BTreeMap::new();
    for node in nodes {
        let Role::External { external } = &node.role else {
            continue;
        };
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
    (names, probe_names)
}
