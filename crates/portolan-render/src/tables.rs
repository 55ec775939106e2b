//! Per-component Ingress and Egress tables, in the style of vendor
//! networking pages.

use std::fmt::Write as _;

use portolan_spec::{Component, ComponentId, ComponentKind, Condition, Destination, Flow, Spec};

use crate::markdown::{code, escape, table, text};
use crate::matrix::{external_item, features_and_parameters, title};
use crate::token::{condition_words, ports_for_table, protocol_word};

const HEADER: [&str; 5] = [
    "Name",
    "Port",
    "Protocol",
    "Optional/Required",
    "Description",
];
/// Ingress of a dependency: who connects to it.
const FROM_HEADER: [&str; 5] = [
    "From",
    "Port",
    "Protocol",
    "Optional/Required",
    "Description",
];

/// Renders the tables page.
pub(crate) fn render(spec: &Spec) -> String {
    let mut out = String::new();
    title(spec, &mut out);
    out.push_str(
        "Each component's section lists the connections it accepts (Ingress) \
         and the connections it makes (Egress).\n",
    );
    for (i, component) in spec.components.iter().enumerate() {
        let id = ComponentId(i);
        let shown = match component.kind {
            ComponentKind::System => true,
            // A dependency is the operator's to run, so it only gets a section
            // when some flow touches it (its firewall needs the rules too).
            ComponentKind::Dependency => spec
                .flows
                .iter()
                .any(|f| f.from == id || f.to == Destination::Component(id)),
            ComponentKind::External => false,
        };
        if shown {
            section(spec, id, component, &mut out);
        }
    }
    features_and_parameters(spec, &mut out);
    out
}

fn section(spec: &Spec, id: ComponentId, component: &Component, out: &mut String) {
    heading(out, &format!("## {}", escape(&component.name)));
    if component.kind == ComponentKind::Dependency {
        out.push_str("A dependency: provided and run by the operator.\n\n");
    }
    if let Some(description) = &component.description {
        let _ = writeln!(out, "{}\n", text(description.trim()));
    }
    let lowercase = escape(&component.name.to_lowercase());
    // The spec says what the system needs from a dependency, not what else
    // the dependency does: an empty table there is "not stated", not "none".
    let dependency = component.kind == ComponentKind::Dependency;

    let ingress_flows = spec
        .flows
        .iter()
        .filter(|f| f.to == Destination::Component(id));
    // A flow's name labels the service reached, which for a dependency is the
    // section itself; who connects is what its operator needs to know.
    let ingress = rows(spec, ingress_flows, dependency, |f| {
        spec.component(f.from).name.clone()
    });
    if !ingress.is_empty() {
        heading(out, "### Ingress");
        let header = if dependency { FROM_HEADER } else { HEADER };
        out.push_str(&table(&header, &ingress));
    } else if !dependency {
        heading(out, "### Ingress");
        let _ = writeln!(out, "No inbound access to the {lowercase} is required.");
    }

    let egress = rows(
        spec,
        spec.flows.iter().filter(|f| f.from == id),
        false,
        |f| spec.destination_name(f.to).to_owned(),
    );
    if !egress.is_empty() {
        heading(out, "### Egress");
        out.push_str(&table(&HEADER, &egress));
    } else if !dependency {
        heading(out, "### Egress");
        let _ = writeln!(out, "No outbound access from the {lowercase} is required.");
    }

    let external: Vec<&Flow> = spec
        .flows
        .iter()
        .filter(|f| f.from == id && matches!(f.to, Destination::External(_)))
        .collect();
    if !external.is_empty() {
        heading(out, "### External access");
        for flow in external {
            let _ = writeln!(out, "- {}", external_item(spec, flow));
        }
    }
}

/// Starts a heading after exactly one blank line.
fn heading(out: &mut String, heading: &str) {
    while out.ends_with('\n') {
        out.pop();
    }
    out.push_str("\n\n");
    out.push_str(heading);
    out.push_str("\n\n");
}

/// Table rows of some flows, in spec order; a row equal to an earlier one is
/// left out, because vendor tables list a service once however many peers use it.
/// The first column is the flow's name (or the peer's name when it has
/// none), or always the peer's name when `by_peer`.
fn rows<'s>(
    spec: &'s Spec,
    flows: impl Iterator<Item = &'s Flow>,
    by_peer: bool,
    peer_name: impl Fn(&Flow) -> String,
) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for flow in flows {
        let name = match (&flow.name, by_peer) {
            (Some(name), false) => name.clone(),
            _ => peer_name(flow),
        };
        let row = row(spec, flow, name);
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    rows
}

fn row(spec: &Spec, flow: &Flow, name: String) -> Vec<String> {
    let mut port = escape(&ports_for_table(spec, flow));
    if !flow.source_ports.is_all() {
        let _ = write!(
            port,
            " (source {})",
            code(&spec.ports_text(&flow.source_ports))
        );
    }
    let mut protocol = protocol_word(flow.protocol).to_owned();
    if let Some(group) = flow.multicast {
        let _ = write!(protocol, " (multicast {group})");
    }
    let required = if flow.required {
        "Required"
    } else {
        "Optional"
    };
    let description = match (&flow.purpose, &flow.when) {
        (Some(purpose), Some(condition)) if !states_condition(purpose, spec, condition) => {
            let purpose = text(purpose.trim());
            let stop = if purpose.ends_with(['.', '!', '?']) {
                ""
            } else {
                "."
            };
            format!(
                "{purpose}{stop} Only when {}.",
                condition_words(spec, condition)
            )
        }
        (Some(purpose), _) => text(purpose.trim()),
        (None, Some(condition)) => format!("Only when {}.", condition_words(spec, condition)),
        (None, None) => String::new(),
    };
    vec![
        escape(&name),
        port,
        protocol,
        required.to_owned(),
        description,
    ]
}

/// Whether a description already names every feature of the flow's
/// condition (by display name or id, in any case), as vendor tables do
/// ("Only required when using SQS"). Otherwise the table row states the
/// condition itself, so that it is not lost to the reader, nor to an import
/// of the rendered page.
fn states_condition(description: &str, spec: &Spec, condition: &Condition) -> bool {
    let description = description.to_lowercase();
    condition.features().iter().all(|id| {
        let feature = &spec.features[id.0];
        let spaced = feature.id.replace('-', " ");
        [feature.name.to_lowercase(), feature.id.clone(), spaced]
            .iter()
            .any(|word| description.contains(word.as_str()))
    })
}

#[cfg(test)]
mod condition_tests {
    use super::*;

    fn spec() -> Spec {
        let text = "portolan: 1\nsystem: {name: T}\ncomponents: [{id: a}, {id: b}]\n\
                    features:\n  - {id: sqs, name: SQS message queue}\n  - {id: kubernetes-workers, name: Kubernetes workers}\n\
                    flows:\n  - {from: a, to: b, protocol: tcp, port: 1, when: sqs}\n  - {from: a, to: b, protocol: tcp, port: 2, when: kubernetes-workers}\n";
        portolan_spec::load_spec(portolan_spec::SourceFile::new("t.yaml", text))
            .expect("valid")
            .value
    }

    #[test]
    fn a_description_naming_the_feature_states_the_condition() {
        let spec = spec();
        let sqs = spec.flows[0].when.clone().expect("condition");
        let k8s = spec.flows[1].when.clone().expect("condition");
        assert!(states_condition(
            "Only required when using [SQS](./mq.md#sqs)",
            &spec,
            &sqs
        ));
        assert!(states_condition(
            "Needed for Kubernetes workers.",
            &spec,
            &k8s
        ));
        assert!(!states_condition("Pull the launcher image.", &spec, &k8s));
    }
}
