//! `portolan plan`.

use std::path::Path;

use comfy_table::{presets, ColumnConstraint, ContentArrangement, Table};
use portolan_spec::deployment::{load_deployment, Deployment};
use portolan_spec::plan::{Endpoint, LeftOutReason, Plan, PlannedFlow};
use portolan_spec::text::{for_line, for_message};
use portolan_spec::{ranges_text, Loaded, SourceFile, Spec};

use crate::cli::{PlanArgs, PlanFormat};
use crate::output::write_output;
use crate::status::{CmdError, CmdResult, ExitStatus};

pub fn run(args: &PlanArgs) -> CmdResult {
    let spec = super::load_spec_for_deployment(&args.spec)?;
    let deployment = load_deployment_or_report(&args.deployment, &spec)?;
    let plan = portolan_spec::plan::plan(&spec, &deployment);
    let text = match args.format {
        PlanFormat::Json => format!("{}\n", serde_json::to_string_pretty(&plan)?),
        PlanFormat::Table => table(&plan),
    };
    write_output(args.output.as_deref(), &text)?;
    Ok(ExitStatus::Success)
}

/// Reads and checks a deployment against a spec; prints its warnings;
/// an invalid deployment is an input error.
pub fn load_deployment_or_report(path: &Path, spec: &Spec) -> Result<Deployment, CmdError> {
    let source = SourceFile::read(path)?;
    match load_deployment(source, spec) {
        Ok(Loaded { value, warnings }) => {
            super::print_diagnostics(&warnings);
            Ok(value)
        }
        Err(diagnostics) => {
            super::print_diagnostics(&diagnostics);
            let (errors, _) = diagnostics.counts();
            Err(CmdError::input(format!(
                "{}: {errors} error(s); nothing was written",
                path.display()
            )))
        }
    }
}

fn end(endpoint: &Endpoint) -> String {
    if endpoint.any {
        return format!("{}\nany address\n(0.0.0.0/0, ::/0)", endpoint.id);
    }
    format!(
        "{}\n{}",
        endpoint.id,
        endpoint.addresses_text().replace(", ", "\n")
    )
}

fn destination(flow: &PlannedFlow) -> String {
    if let Some(via) = &flow.via_proxy {
        return format!(
            "{}\nvia proxy {}\nto {}\nport {}",
            flow.to.id,
            via.proxy,
            via.destination.addresses_text().replace(", ", "\n"),
            ranges_text(&via.ports)
        );
    }
    let mut text = end(&flow.to);
    if let Some(group) = flow.multicast {
        text = format!("group {group}\nreceivers: {text}");
    }
    text
}

/// `tcp 443`, `udp 8112 → 8112` (fixed source port), `icmp`, `any`; a
/// second line for flows that stay on one host.
fn traffic(flow: &PlannedFlow) -> String {
    let text = traffic_only(flow);
    if flow.local {
        format!("{text}\nlocal: same host")
    } else {
        text
    }
}

fn traffic_only(flow: &PlannedFlow) -> String {
    if !flow.protocol.has_ports() {
        return flow.protocol.to_string();
    }
    if flow.source_ports.is_empty() {
        format!("{} {}", flow.protocol, ranges_text(&flow.ports))
    } else {
        format!(
            "{} {} → {}",
            flow.protocol,
            ranges_text(&flow.source_ports),
            ranges_text(&flow.ports)
        )
    }
}

/// The table width: `COLUMNS` when set (terminals export it, tests pin
/// it), else 120, so that output does not depend on where it goes.
fn width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c >= 60)
        .unwrap_or(120)
}

fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let heading = match &plan.deployment {
        Some(d) => format!("{}, deployment {d}", plan.system),
        None => plan.system.clone(),
    };
    // Names from the spec and the deployment: escaped and clipped, as every cell.
    let heading = for_line(&heading);
    let local = plan.flows.iter().filter(|f| f.local).count();
    out.push_str(&format!(
        "{heading}: {} concrete flow(s){}{}\n",
        plan.flows.len(),
        if local > 0 {
            format!(", {local} of them between components of one host (local: no network rule)")
        } else {
            String::new()
        },
        if plan.site_flows.is_empty() {
            String::new()
        } else {
            format!(
                "; and {} site flow(s) of the deployment (`site:`, the operator's own, not the vendor's)",
                plan.site_flows.len()
            )
        }
    ));
    // Hosts are worth a table only when one runs several components or has its own name.
    if plan
        .hosts
        .iter()
        .any(|h| h.components.len() > 1 || h.components[..] != [h.name.clone()])
    {
        let mut hosts = Table::new();
        hosts
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(["host", "components", "addresses"]);
        for host in &plan.hosts {
            hosts.add_row(
                [
                    host.name.clone(),
                    host.components.join("\n"),
                    host.addresses_text().replace(", ", "\n"),
                ]
                .map(|c| for_message(&c)),
            );
        }
        out.push_str(&format!("{} host(s):\n{hosts}\n", plan.hosts.len()));
    }
    let mut flows = Table::new();
    flows
        .load_preset(presets::UTF8_FULL_CONDENSED)
        // Cells are already one address per line: no wrapping needed.
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(["flow", "from", "to", "traffic", "required"]);
    for flow in plan.all_flows() {
        flows.add_row(
            [
                flow.id.clone(),
                end(&flow.from),
                destination(flow),
                traffic(flow),
                match (flow.site, flow.required) {
                    (true, _) => "site",
                    (false, true) => "yes",
                    (false, false) => "optional",
                }
                .to_owned(),
            ]
            .map(|c| for_message(&c)),
        );
    }
    out.push_str(&flows.to_string());
    out.push('\n');
    let count =
        |f: fn(&LeftOutReason) -> bool| plan.left_out.iter().filter(|l| f(&l.reason)).count();
    out.push_str(&format!(
        "\n{} flow(s) left out: {} feature off, {} could not be placed, {} missing parameter\n",
        plan.left_out.len(),
        count(|r| matches!(r, LeftOutReason::FeatureOff { .. })),
        count(|r| matches!(r, LeftOutReason::Unplaced { .. })),
        count(|r| matches!(r, LeftOutReason::MissingParameter { .. })),
    ));
    if !plan.left_out.is_empty() {
        let mut left = Table::new();
        left.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width())
            .set_header(["flow", "required", "reason"]);
        if let Some(column) = left.column_mut(0) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
        for l in &plan.left_out {
            left.add_row(
                [
                    l.id.clone(),
                    if l.required { "yes" } else { "optional" }.to_owned(),
                    l.reason.to_string(),
                ]
                .map(|c| for_message(&c)),
            );
        }
        out.push_str(&left.to_string());
        out.push('\n');
    }
    out
}
