//! The hosts a lab of the spec builds and the lab deployment that places
//! the spec's components on them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use portolan_spec::deployment::{Address, Deployment, Placement};
use portolan_spec::diag::did_you_mean;
use portolan_spec::{ComponentId, ComponentKind, Destination, ExternalId, SourceFile, Spec};

use super::model::{LabParameter, Node, Role};
use super::options::FeatureChoice;
use super::DesignError;
use crate::topology::{RunId, Topology, MAX_HOSTS, MAX_HOST_NAME_LEN};

pub(super) fn chosen_features(
    spec: &Spec,
    choice: &FeatureChoice,
) -> Result<Vec<String>, DesignError> {
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
pub(super) fn lab_parameter_values(spec: &Spec) -> Vec<LabParameter> {
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

/// The party of the outside world: the first component of kind `external`,
/// else `world`.
pub(crate) fn outside_party(spec: &Spec) -> String {
    spec.components
        .iter()
        .find(|c| c.kind == ComponentKind::External)
        .map_or_else(|| "world".to_owned(), |c| c.id.clone())
}

/// The external endpoints flows go to, in spec order: each gets a host.
pub(crate) fn named_externals(spec: &Spec) -> BTreeSet<usize> {
    spec.flows
        .iter()
        .filter_map(|f| match f.to {
            Destination::External(e) => Some(e.0),
            Destination::Component(_) => None,
        })
        .collect()
}

/// The hosts of a lab of the spec: `replicas` instances of each system
/// component, one of each dependency, the outside world, one per external
/// endpoint a flow names; with the party of the outside world.
pub(super) fn hosts(
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
    let outside_party = outside_party(spec);
    planned.push((
        host_name("outside", "", &mut taken),
        Role::Outside,
        outside_party.clone(),
    ));
    for index in named_externals(spec) {
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

/// The lab deployment: every component instance at its host's two
/// addresses, every external endpoint a flow names at its host's, the
/// outside world at no address (any address), the features chosen and a lab
/// value for every parameter without default. Its source is its text
/// ([`deployment_text`]), which the report and `--keep` show.
pub(super) fn lab_deployment(
    spec: &Spec,
    nodes: &[Node],
    features: &[String],
    parameters: &[LabParameter],
    topology: &Topology,
) -> Deployment {
    let mut deployment = Deployment::empty(SourceFile::new(LAB_DEPLOYMENT_FILE, String::new()));
    deployment.name = Some(topology.run_id().as_str().to_owned());
    deployment.features = features
        .iter()
        .filter_map(|f| spec.feature_by_id(f))
        .collect();
    deployment.parameters = parameters
        .iter()
        .filter_map(|p| Some((spec.parameter_by_id(&p.id)?, p.value)))
        .collect();
    let placement = |nodes: Vec<&Node>| Placement {
        addresses: nodes
            .iter()
            .flat_map(|n| [IpAddr::V4(n.ipv4), IpAddr::V6(n.ipv6)])
            .map(|ip| Address::Net(IpNet::from(ip)))
            .collect(),
        ..Placement::default()
    };
    for (index, component) in spec.components.iter().enumerate() {
        let hosts: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.component() == Some(component.id.as_str()))
            .collect();
        if !hosts.is_empty() {
            deployment
                .components
                .insert(ComponentId(index), placement(hosts));
        }
    }
    for node in nodes {
        let Role::External { external } = &node.role else {
            continue;
        };
        if let Some(index) = spec.externals.iter().position(|e| e.id == *external) {
            deployment
                .externals
                .insert(ExternalId(index), placement(vec![node]));
        }
    }
    let text = deployment_text(spec, &deployment, topology);
    deployment.source = SourceFile::new(LAB_DEPLOYMENT_FILE, text);
    deployment
}

/// The name of the lab deployment's file.
const LAB_DEPLOYMENT_FILE: &str = "lab-deployment.yaml";

/// A YAML scalar in double quotes.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// The lab deployment as a deployment file: what the lab places (features,
/// parameter values, addresses), under a comment that says what it is.
fn deployment_text(spec: &Spec, deployment: &Deployment, topology: &Topology) -> String {
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
    if deployment.features.is_empty() {
        out.push_str("features: []\n");
    } else {
        out.push_str("features:\n");
        for f in &deployment.features {
            out.push_str(&format!("  - {}\n", quoted(&spec.features[f.0].id)));
        }
    }
    if !deployment.parameters.is_empty() {
        out.push_str("# Parameters without default, given a lab value:\nparameters:\n");
        for (p, value) in &deployment.parameters {
            out.push_str(&format!(
                "  {}: {value}\n",
                quoted(&spec.parameters[p.0].id)
            ));
        }
    }
    out.push_str("components:\n");
    for (c, placement) in &deployment.components {
        out.push_str(&placement_text(&spec.component(*c).id, placement));
    }
    if !deployment.externals.is_empty() {
        out.push_str("externals:\n");
        for (e, placement) in &deployment.externals {
            out.push_str(&placement_text(&spec.external(*e).id, placement));
        }
    }
    out
}

/// One entry of `components:` or `externals:`: its addresses.
fn placement_text(id: &str, placement: &Placement) -> String {
    let addresses: Vec<String> = placement
        .addresses
        .iter()
        .map(|a| quoted(&a.to_string()))
        .collect();
    format!(
        "  {}:\n    addresses: [{}]\n",
        quoted(id),
        addresses.join(", ")
    )
}
