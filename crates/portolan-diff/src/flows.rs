//! Flows of two versions, matched (see the crate documentation) into added,
//! removed and changed.

use portolan_spec::plan::{net_text, Endpoint, PlannedFlow};
use portolan_spec::{ranges_text, Flow, PortItem, SourceFile, Spec};
use serde::Serialize;

use crate::{Changed, Field, FlowSide, PlanVersion};

/// The flows added, removed and changed between two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowDiff {
    /// Flows only the new version has, in its order.
    pub added: Vec<FlowSide>,
    /// Flows only the old version has, in its order.
    pub removed: Vec<FlowSide>,
    /// Flows of both that differ, in the new version's order.
    pub changed: Vec<Changed>,
}

impl FlowDiff {
    /// Whether no flow changes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares two checked specs flow by flow. Ports given by a parameter
/// compare by the parameter's default (a moved default is a change).
pub fn compare_specs(old: &Spec, new: &Spec) -> FlowDiff {
    let sides = |spec: &Spec| -> Vec<FlowSide> {
        spec.flows
            .iter()
            .map(|flow| spec_side(spec, flow))
            .collect()
    };
    diff(sides(old), sides(new))
}

/// Compares the flows of two plans: concrete addresses and ports, site
/// flows included.
pub fn compare_plans_flows(old: PlanVersion<'_>, new: PlanVersion<'_>) -> FlowDiff {
    let sides = |v: PlanVersion<'_>| -> Vec<FlowSide> {
        v.plan
            .all_flows()
            .map(|flow| plan_side(v.spec, v.deployment, flow))
            .collect()
    };
    diff(sides(old), sides(new))
}

fn at(source: &SourceFile, offset: usize) -> String {
    format!("{}:{}", source.name, source.line_col(offset).0)
}

fn spec_side(spec: &Spec, flow: &Flow) -> FlowSide {
    let ports = if flow.ports.is_all() {
        "*".to_owned()
    } else {
        flow.ports
            .0
            .iter()
            .map(|item| match item {
                PortItem::Range(r) => r.to_string(),
                PortItem::Parameter(p) => {
                    let parameter = &spec.parameters[p.0];
                    match parameter.default {
                        Some(d) => format!("{d} (${})", parameter.id),
                        None => format!("${}", parameter.id),
                    }
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    FlowSide {
        id: flow.id.clone(),
        from: spec.component(flow.from).id.clone(),
        to: spec.destination_id(flow.to).to_owned(),
        source: Vec::new(),
        destination: Vec::new(),
        protocol: flow.protocol.as_str().to_owned(),
        ports,
        source_ports: if flow.source_ports.is_all() {
            String::new()
        } else {
            spec.ports_text(&flow.source_ports)
        },
        multicast: flow.multicast.map(|g| g.to_string()),
        condition: flow.when.as_ref().map(|c| c.display(spec).to_string()),
        required: flow.required,
        site: false,
        name: flow.name.clone(),
        purpose: flow.purpose.clone(),
        origin: flow.origin.clone(),
        at: at(&spec.source, flow.span.offset),
    }
}

fn addresses(endpoint: &Endpoint) -> Vec<String> {
    if endpoint.any {
        return vec!["any".to_owned()];
    }
    let mut out: Vec<String> = endpoint.nets.iter().map(net_text).collect();
    out.extend(endpoint.hosts.iter().cloned());
    out.extend(endpoint.patterns.iter().cloned());
    out
}

fn plan_side(spec: &Spec, deployment: &SourceFile, flow: &PlannedFlow) -> FlowSide {
    let written = (!flow.site).then(|| spec.flows.get(flow.flow)).flatten();
    let source = if flow.site { deployment } else { &spec.source };
    FlowSide {
        id: flow.id.clone(),
        from: flow.from.id.clone(),
        to: flow.to.id.clone(),
        source: addresses(&flow.from),
        destination: addresses(&flow.to),
        protocol: flow.protocol.as_str().to_owned(),
        ports: ranges_text(&flow.ports),
        source_ports: if flow.source_ports.is_empty() {
            String::new()
        } else {
            ranges_text(&flow.source_ports)
        },
        multicast: flow.multicast.map(|g| g.to_string()),
        condition: written
            .and_then(|f| f.when.as_ref())
            .map(|c| c.display(spec).to_string()),
        required: flow.required,
        site: flow.site,
        name: flow.name.clone(),
        purpose: flow.purpose.clone(),
        origin: written.and_then(|f| f.origin.clone()),
        at: at(source, flow.span.offset),
    }
}

/// What differs between two versions of a flow (ends and text aside).
fn fields(old: &FlowSide, new: &FlowSide) -> Vec<Field> {
    let checks = [
        (Field::Protocol, old.protocol != new.protocol),
        (Field::Ports, old.ports != new.ports),
        (Field::SourcePorts, old.source_ports != new.source_ports),
        (Field::Multicast, old.multicast != new.multicast),
        (Field::Condition, old.condition != new.condition),
        (Field::Required, old.required != new.required),
        (Field::Source, old.source != new.source),
        (Field::Destination, old.destination != new.destination),
    ];
    checks
        .into_iter()
        .filter_map(|(field, differs)| differs.then_some(field))
        .collect()
}

fn label(side: &FlowSide) -> Option<&str> {
    side.name.as_deref().or(side.purpose.as_deref())
}

fn same_ends(a: &FlowSide, b: &FlowSide) -> bool {
    a.from == b.from && a.to == b.to && a.site == b.site
}

/// Whether an old and a new flow are one, given the flows left unmatched
/// on each side.
type Pass = fn(&FlowSide, &FlowSide, &[FlowSide], &[FlowSide]) -> bool;

/// The ways two versions of one flow are recognised, strongest first.
fn passes() -> [Pass; 4] {
    [
        // Equal in everything that matters, and in its label.
        |a, b, _, _| same_ends(a, b) && fields(a, b).is_empty() && label(a) == label(b),
        // Same ends and label: the same requirement, traffic changed.
        |a, b, _, _| same_ends(a, b) && label(a).is_some() && label(a) == label(b),
        // Equal traffic, text changed.
        |a, b, _, _| same_ends(a, b) && fields(a, b).is_empty(),
        // The one flow left between the same two ends on each side.
        |a, b, olds, news| {
            same_ends(a, b)
                && olds.iter().filter(|o| same_ends(o, a)).count() == 1
                && news.iter().filter(|n| same_ends(n, b)).count() == 1
        },
    ]
}

fn diff(old: Vec<FlowSide>, new: Vec<FlowSide>) -> FlowDiff {
    let mut old_left: Vec<Option<FlowSide>> = old.into_iter().map(Some).collect();
    let mut new_left: Vec<Option<FlowSide>> = new.into_iter().map(Some).collect();
    // (new index, old) of every matched pair.
    let mut pairs: Vec<(usize, FlowSide, FlowSide)> = Vec::new();
    for pass in passes() {
        let olds: Vec<FlowSide> = old_left.iter().flatten().cloned().collect();
        let news: Vec<FlowSide> = new_left.iter().flatten().cloned().collect();
        for (n, slot) in new_left.iter_mut().enumerate() {
            let Some(b) = slot.as_ref() else { continue };
            let found = old_left
                .iter()
                .position(|o| o.as_ref().is_some_and(|a| pass(a, b, &olds, &news)));
            if let Some(o) = found {
                if let (Some(a), Some(b)) = (old_left[o].take(), slot.take()) {
                    pairs.push((n, a, b));
                }
            }
        }
    }
    pairs.sort_by_key(|(n, _, _)| *n);
    let changed = pairs
        .into_iter()
        .filter_map(|(_, old, new)| {
            let fields = fields(&old, &new);
            (!fields.is_empty()).then_some(Changed { old, new, fields })
        })
        .collect();
    FlowDiff {
        added: new_left.into_iter().flatten().collect(),
        removed: old_left.into_iter().flatten().collect(),
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(from: &str, to: &str, ports: &str, name: Option<&str>) -> FlowSide {
        FlowSide {
            id: format!("{from}->{to}/tcp/{ports}"),
            from: from.to_owned(),
            to: to.to_owned(),
            source: Vec::new(),
            destination: Vec::new(),
            protocol: "tcp".to_owned(),
            ports: ports.to_owned(),
            source_ports: String::new(),
            multicast: None,
            condition: None,
            required: true,
            site: false,
            name: name.map(str::to_owned),
            purpose: None,
            origin: None,
            at: "spec.yaml:1".to_owned(),
        }
    }

    #[test]
    fn a_label_match_wins_over_a_same_traffic_match() {
        // Old: "one" on 443. New: "two" on 443 and "one" on 8443. "one" moved
        // its port; "two" is new, though its traffic equals old "one"'s.
        let old = vec![side("a", "b", "443", Some("one"))];
        let new = vec![
            side("a", "b", "443", Some("two")),
            side("a", "b", "8443", Some("one")),
        ];
        let d = diff(old, new);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].new.ports, "8443");
        assert_eq!(d.changed[0].fields, [Field::Ports]);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].name.as_deref(), Some("two"));
        assert!(d.removed.is_empty());
    }

    #[test]
    fn text_alone_is_no_change_and_unnamed_flows_pair_when_alone() {
        let mut renamed = side("a", "b", "443", Some("new text"));
        renamed.purpose = Some("other".to_owned());
        let d = diff(vec![side("a", "b", "443", Some("old text"))], vec![renamed]);
        assert!(d.is_empty(), "{d:?}");
        let d = diff(
            vec![side("a", "b", "80", None), side("c", "d", "1", None)],
            vec![side("a", "b", "8080", None)],
        );
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].from, "c");
    }

    #[test]
    fn two_unnamed_flows_between_the_same_ends_are_not_guessed() {
        // One left on each side once the equal ones are matched: changed.
        let d = diff(
            vec![side("a", "b", "80", None), side("a", "b", "81", None)],
            vec![side("a", "b", "90", None), side("a", "b", "81", None)],
        );
        assert_eq!(d.changed.len(), 1);
        assert_eq!(
            (
                d.changed[0].old.ports.as_str(),
                d.changed[0].new.ports.as_str()
            ),
            ("80", "90")
        );
        // Two left on each side: which became which is unknown.
        let d = diff(
            vec![side("a", "b", "80", None), side("a", "b", "81", None)],
            vec![side("a", "b", "90", None), side("a", "b", "91", None)],
        );
        assert_eq!(d.removed.len(), 2);
        assert_eq!(d.added.len(), 2);
        assert!(d.changed.is_empty());
    }
}
