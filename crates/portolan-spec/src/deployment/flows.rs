//! What the spec's flows need of a deployment: both ends of every enabled
//! flow placed, and every parameter they use valued.

use std::collections::BTreeSet;

use super::check::DeploymentChecker;
use super::model::*;
use crate::diag::{Code, Diagnostic, Span};
use crate::model::*;

impl DeploymentChecker<'_, '_> {
    /// Flows whose condition holds must have both ends placed and every
    /// parameter valued.
    pub(super) fn check_flows(&mut self, deployment: &Deployment) {
        let mut reported_unplaced: BTreeSet<(String, bool)> = BTreeSet::new();
        let mut reported_parameters = BTreeSet::new();
        for flow in &self.spec.flows {
            if !deployment.flow_enabled(flow) {
                continue;
            }
            for p in flow
                .ports
                .parameters()
                .chain(flow.source_ports.parameters())
            {
                if deployment.parameter_value(self.spec, p).is_none()
                    && reported_parameters.insert(p)
                    && !self
                        .already_reported
                        .contains(&format!("${}", self.spec.parameters[p.0].id))
                {
                    let d = self.missing_parameter(flow, p);
                    self.c.push(d);
                }
            }
            let mut unplaced = Vec::new();
            if !is_placed(self.spec, deployment, Destination::Component(flow.from)) {
                unplaced.push(Destination::Component(flow.from));
            }
            if !is_placed(self.spec, deployment, flow.to) && !unplaced.contains(&flow.to) {
                unplaced.push(flow.to);
            }
            for peer in unplaced {
                let id = self.spec.destination_id(peer).to_owned();
                if self.already_reported.contains(&id) {
                    continue;
                }
                // One diagnostic per peer and severity; the message names the first flow.
                if !reported_unplaced.insert((id, flow.required)) {
                    continue;
                }
                let d = self.unplaced(deployment, flow, peer);
                self.c.push(d);
            }
        }
    }

    /// Parameter `p` of `flow` has no value.
    fn missing_parameter(&self, flow: &Flow, p: ParameterId) -> Diagnostic {
        let id = &self.spec.parameters[p.0].id;
        let (span, label) = match top_level_key(&self.c.source.text, "parameters") {
            Some(span) => (span, format!("`{id}` is not among these parameters")),
            None => (
                top_level_key(&self.c.source.text, "deployment").unwrap_or_default(),
                "this deployment has no `parameters:` section".to_owned(),
            ),
        };
        Diagnostic::new(
            Code::DeploymentMissingParameter,
            format!(
                "parameter `{id}` has no default and no value, and flow {} uses it",
                flow.id
            ),
        )
        .with_label(span, label)
        .with_help(format!("add `{id}: <port>` under `parameters:`"))
    }

    /// `peer`, an end of `flow`, is not placed.
    fn unplaced(&self, deployment: &Deployment, flow: &Flow, peer: Destination) -> Diagnostic {
        let id = self.spec.destination_id(peer);
        let (section, span, example) = match peer {
            Destination::Component(_) => (
                "components",
                deployment.components_span,
                format!("{id}: {{addresses: [192.0.2.10]}}"),
            ),
            Destination::External(_) => (
                "externals",
                deployment.externals_span,
                format!("{id}: {{addresses: [198.51.100.7]}}"),
            ),
        };
        let (code, what) = if flow.required {
            (Code::DeploymentUnplacedFlow, "required")
        } else {
            (Code::DeploymentUnplacedOptionalFlow, "enabled optional")
        };
        let existing = match peer {
            Destination::Component(c) => deployment.components.get(&c).map(|p| p.span),
            Destination::External(e) => deployment.externals.get(&e).map(|p| p.span),
        };
        let switch_off = match &flow.when {
            Some(c) => format!(
                ", or switch off the features of `when: {}`",
                c.display(self.spec)
            ),
            None => String::new(),
        };
        Diagnostic::new(
            code,
            format!(
                "`{id}` has no address, and the {what} flow {} needs one",
                flow.id
            ),
        )
        .with_label(
            existing.unwrap_or(span),
            match existing {
                Some(_) => "placed here without an address".to_owned(),
                None => format!("`{id}` is not placed under `{section}:`"),
            },
        )
        .with_help(format!(
            "add `{example}` (or a Kubernetes/AWS placement) under `{section}:`{switch_off}"
        ))
    }
}

/// Whether a flow end has anything that says where it is. Components of kind
/// `external` without a placement are "any address" and count as placed.
pub fn is_placed(spec: &Spec, deployment: &Deployment, end: Destination) -> bool {
    match end {
        Destination::Component(c) => {
            spec.component(c).kind == ComponentKind::External
                || deployment.components.get(&c).is_some_and(|p| !p.is_empty())
        }
        Destination::External(e) => {
            deployment.externals.get(&e).is_some_and(|p| !p.is_empty())
                || !matches!(spec.external(e).address, ExternalAddress::Placeholder(_))
        }
    }
}

/// The span of a top-level `key:` (at the start of a line), if present.
pub(super) fn top_level_key(text: &str, key: &str) -> Option<Span> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
        {
            return Some(Span::new(offset, key.len()));
        }
        offset += line.len();
    }
    None
}
