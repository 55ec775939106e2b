//! Operator tables: the per-component Ingress and Egress tables of
//! [`tables`](crate::tables), made from a plan so that every row can be
//! turned into a rule: ingress rows say who connects (From, with its
//! concrete addresses), egress rows where to (To), and the site flows of
//! the deployment are rows of their own, marked as such.

use std::fmt::Write as _;

use portolan_spec::plan::{Endpoint, Plan, PlannedFlow};
use portolan_spec::ranges_text;

use crate::markdown::{escape, table, text};
use crate::token::protocol_word;

const INGRESS: [&str; 6] = [
    "From",
    "Port",
    "Protocol",
    "Optional/Required",
    "Flow",
    "Description",
];
const EGRESS: [&str; 6] = [
    "To",
    "Port",
    "Protocol",
    "Optional/Required",
    "Flow",
    "Description",
];

/// The operator tables of a plan (markdown).
pub fn render_operator_tables(plan: &Plan) -> String {
    let mut out = format!("# {}: networking requirements\n\n", escape(&plan.system));
    let deployment = plan
        .deployment
        .as_deref()
        .map(|d| format!(" in deployment {}", escape(d)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Concrete flows{deployment}: each component's connections in (Ingress, with who connects) and out (Egress, with where to), with the addresses of the deployment. Site flows are the deployment's own (`site:`), not the vendor's.",
    );
    for component in &plan.components {
        let ingress: Vec<&PlannedFlow> = plan
            .all_flows()
            .filter(|f| f.to.is_component() && f.to.id == component.id && !f.local)
            .collect();
        let egress: Vec<&PlannedFlow> = plan
            .all_flows()
            .filter(|f| f.from.id == component.id && !f.local)
            .collect();
        if ingress.is_empty() && egress.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n## {} ({})\n\nAddresses: {}.\n",
            escape(&component.name),
            escape(&component.id),
            escape(&component.addresses_text())
        );
        for (heading, header, flows, inbound) in [
            ("Ingress", INGRESS, &ingress, true),
            ("Egress", EGRESS, &egress, false),
        ] {
            if flows.is_empty() {
                continue;
            }
            let mut rows: Vec<Vec<String>> = Vec::new();
            for flow in flows {
                let row = row(flow, if inbound { &flow.from } else { &flow.to }, inbound);
                if !rows.contains(&row) {
                    rows.push(row);
                }
            }
            let _ = write!(out, "\n### {heading}\n\n{}", table(&header, &rows));
        }
    }
    out
}

fn peer(endpoint: &Endpoint, flow: &PlannedFlow, inbound: bool) -> String {
    let mut cell = format!("{}: {}", endpoint.id, endpoint.addresses_text());
    if let (false, Some(via)) = (inbound, &flow.via_proxy) {
        let _ = write!(
            cell,
            " (proxy for {}: {})",
            via.destination.id,
            via.destination.addresses_text()
        );
    }
    if let (false, Some(group)) = (inbound, flow.multicast) {
        cell = format!("multicast group {group}");
    }
    escape(&cell)
}

fn row(flow: &PlannedFlow, end: &Endpoint, inbound: bool) -> Vec<String> {
    let mut port = if flow.protocol.has_ports() {
        if flow.ports.is_empty() {
            "any".to_owned()
        } else {
            ranges_text(&flow.ports)
        }
    } else {
        String::new()
    };
    if !flow.source_ports.is_empty() {
        let _ = write!(port, " (source {})", ranges_text(&flow.source_ports));
    }
    let required = match (flow.site, flow.required) {
        (true, _) => "Site",
        (false, true) => "Required",
        (false, false) => "Optional",
    };
    let purpose = flow
        .purpose
        .as_deref()
        .map(|p| text(p.trim()))
        .unwrap_or_default();
    let description = if flow.site {
        format!("Site flow: {purpose}")
    } else {
        purpose
    };
    vec![
        peer(end, flow, inbound),
        escape(&port),
        protocol_word(flow.protocol).to_owned(),
        required.to_owned(),
        escape(&flow.id),
        description,
    ]
}
