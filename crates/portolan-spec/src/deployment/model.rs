//! The checked form of a deployment: placements by component and external
//! id, the hosts they make, and the values of features and parameters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::diag::{SourceFile, Span};
use crate::model::*;
use crate::plan::net_text;

/// A checked deployment, bound to the spec it was checked against.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// A name for this deployment.
    pub name: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// Features enabled.
    pub features: BTreeSet<FeatureId>,
    /// Parameter values given by the deployment (defaults are not copied here).
    pub parameters: BTreeMap<ParameterId, u16>,
    /// Placement of the components the deployment names.
    pub components: BTreeMap<ComponentId, Placement>,
    /// Placement of the external endpoints the deployment names.
    pub externals: BTreeMap<ExternalId, Placement>,
    /// Site flows (the `site:` section), in file order.
    pub site: Vec<crate::site::SiteFlow>,
    /// Where the `components:` section is (for diagnostics about what is missing).
    #[serde(skip)]
    pub components_span: Span,
    /// Where the `externals:` section is, or the `components:` section when absent.
    #[serde(skip)]
    pub externals_span: Span,
    /// The file the deployment was read from.
    #[serde(skip)]
    pub source: Arc<SourceFile>,
}

impl Deployment {
    /// An empty deployment (no feature, no placement), e.g. to build one in code.
    pub fn empty(source: Arc<SourceFile>) -> Self {
        Self {
            name: None,
            description: None,
            features: BTreeSet::new(),
            parameters: BTreeMap::new(),
            components: BTreeMap::new(),
            externals: BTreeMap::new(),
            site: Vec::new(),
            components_span: Span::default(),
            externals_span: Span::default(),
            source,
        }
    }

    /// The value of a parameter: the deployment's, else the spec's default.
    pub fn parameter_value(&self, spec: &Spec, parameter: ParameterId) -> Option<u16> {
        self.parameters
            .get(&parameter)
            .copied()
            .or(spec.parameters[parameter.0].default)
    }

    /// Whether a flow's condition holds (flows without `when` always exist).
    pub fn flow_enabled(&self, flow: &Flow) -> bool {
        flow.when.as_ref().is_none_or(|c| c.holds(&self.features))
    }
}

/// One address of a placement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Address {
    /// An address or address block (a single address is a /32 or /128).
    Net(IpNet),
    /// A DNS name.
    Host(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Net(net) => f.write_str(&net_text(net)),
            Address::Host(host) => f.write_str(host),
        }
    }
}

/// Where a component or external endpoint is.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Placement {
    /// Addresses, blocks and DNS names.
    pub addresses: Vec<Address>,
    /// The pods, in Kubernetes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSelector>,
    /// The security group or prefix list, in AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsPlacement>,
    /// The proxy carrying TCP flows to an external endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,
    /// The host name the deployment gives a component's addresses (`host:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where the placement is written (its id key).
    #[serde(skip)]
    pub span: Span,
}

impl Placement {
    /// Whether nothing at all says where it is.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
            && self.kubernetes.is_none()
            && self.aws.is_none()
            && self.proxy.is_none()
    }
}

/// Components that run on the same host (or the same group of hosts): those
/// whose address sets are equal. A host firewall ruleset is per host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The deployment's `host:` name, else the components' ids joined with
    /// `+` (`api+web-frontend`); one component alone gives its own id.
    pub name: String,
    /// Whether the name is the deployment's `host:`.
    pub named: bool,
    /// The components it runs, in spec order.
    pub components: Vec<ComponentId>,
    /// Its addresses, as the first component lists them.
    pub addresses: Vec<Address>,
    /// Where its first component is placed.
    #[serde(skip)]
    pub span: Span,
}

impl Host {
    /// Whether the addresses are one machine's: at most one IPv4 address,
    /// one IPv6 address and one DNS name, and no block. Traffic between
    /// two components of one machine stays on it (loopback); between
    /// components of a group of machines it may cross the network.
    pub fn is_one_machine(&self) -> bool {
        let count = |f: fn(&Address) -> bool| self.addresses.iter().filter(|a| f(a)).count();
        let blocks =
            count(|a| matches!(a, Address::Net(n) if n.prefix_len() != n.max_prefix_len()));
        blocks == 0
            && count(|a| matches!(a, Address::Net(IpNet::V4(_)))) <= 1
            && count(|a| matches!(a, Address::Net(IpNet::V6(_)))) <= 1
            && count(|a| matches!(a, Address::Host(_))) <= 1
    }
}

impl Deployment {
    /// The hosts of the deployment, in spec order of their first component:
    /// every component with addresses that is not of kind `external`,
    /// grouped by equal address sets (in any order). Names contradicting
    /// each other are a diagnostic of [`load_deployment`](super::load_deployment); here the first
    /// `host:` of a group wins.
    pub fn hosts(&self, spec: &Spec) -> Vec<Host> {
        let mut hosts: Vec<Host> = Vec::new();
        // Address set → index in `hosts`.
        let mut keys: HashMap<BTreeSet<&Address>, usize> = HashMap::new();
        for (&id, placement) in &self.components {
            if placement.addresses.is_empty() || spec.component(id).kind == ComponentKind::External
            {
                continue;
            }
            let key: BTreeSet<&Address> = placement.addresses.iter().collect();
            match keys.get(&key).copied() {
                Some(i) => {
                    let host = &mut hosts[i];
                    host.components.push(id);
                    if let (false, Some(name)) = (host.named, &placement.host) {
                        host.name.clone_from(name);
                        host.named = true;
                    }
                }
                None => {
                    keys.insert(key, hosts.len());
                    hosts.push(Host {
                        name: placement.host.clone().unwrap_or_default(),
                        named: placement.host.is_some(),
                        components: vec![id],
                        addresses: placement.addresses.clone(),
                        span: placement.span,
                    });
                }
            }
        }
        for host in &mut hosts {
            if !host.named {
                host.name = host
                    .components
                    .iter()
                    .map(|c| spec.component(*c).id.as_str())
                    .collect::<Vec<_>>()
                    .join("+");
            }
        }
        hosts
    }

    /// The host a component runs on, if it has addresses.
    pub fn host_of(&self, spec: &Spec, component: ComponentId) -> Option<Host> {
        self.hosts(spec)
            .into_iter()
            .find(|h| h.components.contains(&component))
    }
}

/// A Kubernetes namespace and pod selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubernetesSelector {
    /// Namespace.
    pub namespace: String,
    /// matchLabels; empty selects every pod of the namespace.
    pub pod_selector: BTreeMap<String, String>,
}

/// An AWS placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsPlacement {
    /// Security group name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
    /// Managed prefix list id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_list: Option<String>,
}

/// An HTTP(S) proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proxy {
    /// Its address or name.
    pub address: Address,
    /// Its TCP port.
    pub port: u16,
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Address::Net(IpNet::V6(net)) => write!(f, "[{}]:{}", net.addr(), self.port),
            other => write!(f, "{other}:{}", self.port),
        }
    }
}
