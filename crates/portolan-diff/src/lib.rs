//! Portolan diff stage: what changes between two versions of a spec, or of
//! the plan of a deployment, written as a change request a network team can
//! act on.
//!
//! [`compare_specs`] compares two checked specs flow by flow;
//! [`compare_plans`] compares two plans (concrete addresses and ports) and
//! adds, per host, the nftables or iptables commands that turn the old
//! firewall into the new one, in the rule text `generate` writes
//! ([`portolan_firewall::rules`]). [`render`] writes the result as
//! markdown, CSV, a terminal table or JSON.
//!
//! A flow is matched across versions by what it is, not by its id (which
//! holds the ports and so changes with them): first a flow equal in every
//! respect, then one with the same ends and the same name (or, without a
//! name, purpose), then one with the same ends and traffic whose text
//! changed, then the one flow left between the same two ends;
//! a matched pair that differs is *changed*, what is left is *added* or
//! *removed*.

mod commands;
mod flows;
pub mod render;

use serde::Serialize;

pub use commands::{Action, Command, HostChange};
pub use flows::{compare_plans_flows, compare_specs, FlowDiff};

use portolan_firewall::{GenerateError, Options, TargetKind};
use portolan_spec::plan::Plan;
use portolan_spec::{SourceFile, Spec};

/// One version of a flow, as a change request shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowSide {
    /// The flow's id in its version (`server->postgres/tcp/5432`).
    pub id: String,
    /// Source component (or endpoint) id.
    pub from: String,
    /// Destination component or external endpoint id.
    pub to: String,
    /// Source addresses (plans only; empty for a spec).
    pub source: Vec<String>,
    /// Destination addresses (plans only; empty for a spec).
    pub destination: Vec<String>,
    /// `tcp`, `udp`, `icmp` or `any`.
    pub protocol: String,
    /// Destination ports (`5432`, `8000-8010,9000`, `*`); a parameter with
    /// a default shows both (`6432 ($postgres-port)`).
    pub ports: String,
    /// Fixed source ports; empty: any.
    pub source_ports: String,
    /// Multicast group.
    pub multicast: Option<String>,
    /// The condition over features (`when:`), as written.
    pub condition: Option<String>,
    /// Required or optional.
    pub required: bool,
    /// Whether it is a site flow (the deployment's, not the vendor's).
    pub site: bool,
    /// Short label.
    pub name: Option<String>,
    /// Why it exists.
    pub purpose: Option<String>,
    /// Where the requirement came from (the vendor page's section).
    pub origin: Option<String>,
    /// Where the flow is written: `file:line`.
    pub at: String,
}

/// What differs between the two versions of a changed flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    /// The protocol.
    Protocol,
    /// The destination ports.
    Ports,
    /// The fixed source ports.
    SourcePorts,
    /// The multicast group.
    Multicast,
    /// The condition over features.
    Condition,
    /// Required or optional.
    Required,
    /// The source addresses.
    Source,
    /// The destination addresses.
    Destination,
}

impl Field {
    /// The field's name, as the outputs write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::Protocol => "protocol",
            Field::Ports => "ports",
            Field::SourcePorts => "source ports",
            Field::Multicast => "multicast",
            Field::Condition => "condition",
            Field::Required => "required",
            Field::Source => "source",
            Field::Destination => "destination",
        }
    }
}

/// A flow in both versions that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The old version.
    pub old: FlowSide,
    /// The new version.
    pub new: FlowSide,
    /// What differs, in [`Field`] order.
    pub fields: Vec<Field>,
}

/// The whole change: flows, and with a plan the commands per host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRequest {
    /// The system, as the new version names it.
    pub system: String,
    /// What is compared: the two spec files, and the deployments if any.
    pub compared: Vec<String>,
    /// The flows added, removed and changed.
    pub flows: FlowDiff,
    /// The firewall the commands are for (`nftables`, `iptables`), with a plan.
    pub target: Option<String>,
    /// Per host, the commands; only hosts with something to do.
    pub hosts: Vec<HostChange>,
}

impl ChangeRequest {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.hosts.iter().all(|h| h.commands.is_empty())
    }
}

/// One version of a plan with what it came from, for [`compare_plans`].
#[derive(Debug, Clone, Copy)]
pub struct PlanVersion<'a> {
    /// The spec the plan was made from.
    pub spec: &'a Spec,
    /// The deployment file's source (where site flows are written).
    pub deployment: &'a SourceFile,
    /// The plan.
    pub plan: &'a Plan,
}

/// Compares two plans: the flows, and per host the commands of `target`
/// (nftables or iptables, in `options.mode`) that turn the old rules into
/// the new.
pub fn compare_plans(
    old: PlanVersion<'_>,
    new: PlanVersion<'_>,
    target: TargetKind,
    options: &Options,
) -> Result<ChangeRequest, GenerateError> {
    let flows = compare_plans_flows(old, new);
    let hosts = commands::host_changes(old.plan, new.plan, target, options)?;
    Ok(ChangeRequest {
        system: new.plan.system.clone(),
        compared: vec![
            old.spec.source.name.clone(),
            old.deployment.name.clone(),
            new.spec.source.name.clone(),
            new.deployment.name.clone(),
        ],
        flows,
        target: Some(target.as_str().to_owned()),
        hosts,
    })
}

/// A change request of two specs alone: flows, no commands.
pub fn spec_change_request(old: &Spec, new: &Spec) -> ChangeRequest {
    ChangeRequest {
        system: new.system.name.clone(),
        compared: vec![old.source.name.clone(), new.source.name.clone()],
        flows: compare_specs(old, new),
        target: None,
        hosts: Vec::new(),
    }
}
