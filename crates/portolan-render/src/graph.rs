//! What the two diagram formats share: nodes grouped by kind and one edge
//! per (source, destination) pair.

use portolan_spec::{ComponentKind, Destination, External, ExternalAddress, Flow, Spec};

use crate::token::{flow_tokens, is_optional};

/// A group of nodes drawn together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Components of kind system.
    System,
    /// Components of kind dependency.
    Dependency,
    /// Components of kind external.
    Outside,
    /// Named external endpoints.
    Endpoints,
}

impl Group {
    pub(crate) const ALL: [Group; 4] = [
        Group::System,
        Group::Dependency,
        Group::Outside,
        Group::Endpoints,
    ];

    /// A name usable as an identifier in both languages.
    pub(crate) const fn key(self) -> &'static str {
        match self {
            Group::System => "system",
            Group::Dependency => "dependency",
            Group::Outside => "outside",
            Group::Endpoints => "endpoints",
        }
    }

    /// The group's title.
    pub(crate) fn title(self, spec: &Spec) -> String {
        match self {
            Group::System => spec.system.name.clone(),
            Group::Dependency => "Dependencies".to_owned(),
            Group::Outside => "Outside world".to_owned(),
            Group::Endpoints => "External endpoints".to_owned(),
        }
    }
}

/// A node: a component or an external endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The spec id (unique across components and externals).
    pub(crate) id: String,
    /// The label lines.
    pub(crate) lines: Vec<String>,
    /// Where it is drawn.
    pub(crate) group: Group,
}

/// The nodes in spec order: components, then external endpoints.
pub(crate) fn nodes(spec: &Spec) -> Vec<Node> {
    let components = spec.components.iter().map(|c| Node {
        id: c.id.clone(),
        lines: vec![c.name.clone()],
        group: match c.kind {
            ComponentKind::System => Group::System,
            ComponentKind::Dependency => Group::Dependency,
            ComponentKind::External => Group::Outside,
        },
    });
    let externals = spec.externals.iter().map(|e| Node {
        id: e.id.clone(),
        lines: external_lines(e),
        group: Group::Endpoints,
    });
    components.chain(externals).collect()
}

/// An endpoint's name, then its address when the name is not just the address.
fn external_lines(external: &External) -> Vec<String> {
    let bare = match &external.address {
        ExternalAddress::Host(h)
        | ExternalAddress::Pattern(h)
        | ExternalAddress::Placeholder(h) => h.clone(),
        ExternalAddress::Cidr(c) => c.to_string(),
    };
    let address = external.address.to_string();
    if external.name == bare {
        vec![address]
    } else {
        vec![external.name.clone(), address]
    }
}

/// All flows from one node to another.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    /// Source id.
    pub(crate) from: String,
    /// Destination id.
    pub(crate) to: String,
    /// One label line per flow, in spec order.
    pub(crate) lines: Vec<String>,
    /// Every flow on the edge is optional or conditional.
    pub(crate) optional: bool,
}

/// One edge per (source, destination) pair, in order of the pair's first flow.
pub(crate) fn edges(spec: &Spec) -> Vec<Edge> {
    let mut pairs: Vec<((usize, Destination), Vec<&Flow>)> = Vec::new();
    for flow in &spec.flows {
        let key = (flow.from.0, flow.to);
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, flows)) => flows.push(flow),
            None => pairs.push((key, vec![flow])),
        }
    }
    pairs
        .into_iter()
        .map(|((from, to), flows)| Edge {
            from: spec.components[from].id.clone(),
            to: spec.destination_id(to).to_owned(),
            lines: flows.iter().map(|f| flow_label(spec, f)).collect(),
            optional: flows.iter().all(|f| is_optional(f)),
        })
        .collect()
}

/// A flow's tokens with `?` on optional ones and its condition spelled out,
/// since a diagram has no room for a numbered list of conditions.
fn flow_label(spec: &Spec, flow: &Flow) -> String {
    let marker = if flow.required { "" } else { "?" };
    let mut label = flow_tokens(spec, flow)
        .into_iter()
        .map(|t| t + marker)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(condition) = &flow.when {
        label.push_str(&format!(" when {}", condition.display(spec)));
    }
    label
}
