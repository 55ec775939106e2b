//! The cell notation of connection matrices: `IP:protocol:source_port:destination_port`.

use std::net::IpAddr;

use crate::markdown::escape;
use portolan_spec::{Condition, Flow, PortItem, Ports, Protocol, Spec};

/// The matrix tokens of one flow, one per destination port item, without the
/// optional/conditional markers (see [`ConditionNotes::marker`]).
///
/// Blank leading fields are elided, as on vendor pages: a TCP flow to port
/// 8112 from an ephemeral port is `T::8112`; a fixed source port gives
/// `U:8112:8112`; a multicast group leads (`225.0.1.9:U::8082`, IPv6 groups
/// in brackets); every port is `*` (`T::*`); ICMP has no ports (`I::`); and
/// protocol `any` is `*:*:*:*`. A port list gives one token per item
/// (`T::11211 T::80`), a range stays one token (`T::8000-8010`) and a
/// parameter is written `T::$postgres-port`.
pub fn flow_tokens(spec: &Spec, flow: &Flow) -> Vec<String> {
    let letter = match flow.protocol {
        Protocol::Any => return vec!["*:*:*:*".to_owned()],
        Protocol::Icmp => "I",
        Protocol::Tcp => "T",
        Protocol::Udp => "U",
    };
    let ip = match flow.multicast {
        Some(IpAddr::V4(group)) => format!("{group}:"),
        Some(IpAddr::V6(group)) => format!("[{group}]:"),
        None => String::new(),
    };
    if flow.protocol == Protocol::Icmp {
        return vec![format!("{ip}{letter}::")];
    }
    let source = if flow.source_ports.is_all() {
        String::new()
    } else {
        port_items(spec, &flow.source_ports).join(",")
    };
    let destinations = if flow.ports.is_all() {
        vec!["*".to_owned()]
    } else {
        port_items(spec, &flow.ports)
    };
    destinations
        .into_iter()
        .map(|port| format!("{ip}{letter}:{source}:{port}"))
        .collect()
}

fn port_items(spec: &Spec, ports: &Ports) -> Vec<String> {
    ports
        .0
        .iter()
        .map(|item| match item {
            PortItem::Range(range) => range.to_string(),
            PortItem::Parameter(p) => format!("${}", spec.parameters[p.0].id),
        })
        .collect()
}

/// Numbers the distinct conditions of the flows shown, in order of first
/// use, so that a cell can carry a short `[n]` marker and the page a list.
#[derive(Debug, Clone, Default)]
pub struct ConditionNotes {
    conditions: Vec<Condition>,
}

impl ConditionNotes {
    /// No condition numbered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The 1-based number of a condition, numbering it if it is new.
    pub fn number(&mut self, condition: &Condition) -> usize {
        match self.conditions.iter().position(|c| c == condition) {
            Some(i) => i + 1,
            None => {
                self.conditions.push(condition.clone());
                self.conditions.len()
            }
        }
    }

    /// The suffix of a flow's tokens: `?` when the flow is optional, then
    /// `[n]` when it exists only under condition `n`; empty for a flow that
    /// is required and unconditional.
    pub fn marker(&mut self, flow: &Flow) -> String {
        let mut marker = String::new();
        if !flow.required {
            marker.push('?');
        }
        if let Some(condition) = &flow.when {
            marker.push_str(&format!("[{}]", self.number(condition)));
        }
        marker
    }

    /// The numbered conditions, in number order.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether no condition was numbered.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }
}

/// Whether a flow is drawn as optional: it is not required, or it exists only
/// under a condition.
pub(crate) fn is_optional(flow: &Flow) -> bool {
    !flow.required || flow.when.is_some()
}

/// A flow's tokens with its marker appended to each.
pub(crate) fn marked_tokens(spec: &Spec, flow: &Flow, notes: &mut ConditionNotes) -> Vec<String> {
    let marker = notes.marker(flow);
    flow_tokens(spec, flow)
        .into_iter()
        .map(|token| token + &marker)
        .collect()
}

/// A condition in words: `` `sqs` (SQS message queue) `` for one feature
/// with a display name, the expression over feature ids otherwise (the
/// features are listed with their names on the page).
pub(crate) fn condition_words(spec: &Spec, condition: &Condition) -> String {
    let words = format!("`{}`", condition.display(spec));
    match condition {
        Condition::Feature(id) if spec.features[id.0].name != spec.features[id.0].id => {
            format!("{words} ({})", escape(&spec.features[id.0].name))
        }
        _ => words,
    }
}

/// Ports written for a reader who may not know the spec's parameters:
/// `8112`, `8000-8010`, the parameter's `shown_as` text, `All` for every
/// port (protocol `any` included), `N/A` for ICMP, which has no ports.
pub(crate) fn ports_for_table(spec: &Spec, flow: &Flow) -> String {
    if flow.protocol == Protocol::Icmp {
        return "N/A".to_owned();
    }
    if flow.ports.is_all() {
        return "All".to_owned();
    }
    flow.ports
        .0
        .iter()
        .map(|item| match item {
            PortItem::Range(range) => range.to_string(),
            PortItem::Parameter(p) => spec.parameters[p.0].shown_as.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The protocol as vendor tables write it.
pub(crate) fn protocol_word(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Icmp => "ICMP",
        Protocol::Any => "Any",
    }
}

/// Where a flow to an external endpoint goes: `host:port`, always with the
/// port (`*` for every port), or the address alone for ICMP and `any`.
pub(crate) fn endpoint_text(spec: &Spec, flow: &Flow, address: &str) -> String {
    if flow.protocol.has_ports() {
        format!("{address}:{}", spec.ports_text(&flow.ports))
    } else {
        address.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_spec::{load_spec, SourceFile};

    fn spec(flows: &str) -> Spec {
        let text = format!(
            "portolan: 1
system: {{name: T}}
components:
  - {{id: a}}
  - {{id: b}}
  - {{id: out, kind: external}}
features:
  - {{id: f}}
parameters:
  - {{id: pg, default: 5432}}
flows:
{flows}"
        );
        match load_spec(SourceFile::new("t.yaml", text)) {
            Ok(loaded) => loaded.value,
            Err(d) => panic!("{d:?}"),
        }
    }

    fn tokens(flow: &str) -> Vec<String> {
        let spec = spec(&format!(
            "  - {flow}\n  - {{from: a, to: b, protocol: tcp, port: $pg, when: f}}\n"
        ));
        flow_tokens(&spec, &spec.flows[0])
    }

    #[test]
    fn notation() {
        assert_eq!(
            tokens("{from: a, to: b, protocol: tcp, port: 8112}"),
            ["T::8112"]
        );
        assert_eq!(
            tokens("{from: a, to: b, protocol: udp, port: 8112, source_port: 8112}"),
            ["U:8112:8112"]
        );
        assert_eq!(
            tokens("{from: a, to: b, protocol: udp, port: 8082, multicast: 225.0.1.9}"),
            ["225.0.1.9:U::8082"]
        );
        assert_eq!(
            tokens("{from: a, to: b, protocol: udp, port: 8082, multicast: 'ff02::fb'}"),
            ["[ff02::fb]:U::8082"]
        );
        assert_eq!(tokens("{from: a, to: out, protocol: any}"), ["*:*:*:*"]);
        assert_eq!(tokens("{from: a, to: b, protocol: icmp}"), ["I::"]);
        assert_eq!(tokens("{from: a, to: b, protocol: tcp}"), ["T::*"]);
        assert_eq!(
            tokens("{from: a, to: b, protocol: tcp, port: 8000-8010}"),
            ["T::8000-8010"]
        );
        // The checker sorts a port list, so the tokens come in port order.
        assert_eq!(
            tokens("{from: a, to: b, protocol: tcp, port: [11211, 80, $pg]}"),
            ["T::80", "T::11211", "T::$pg"]
        );
    }

    #[test]
    fn markers() {
        let spec = spec(
            "  - {from: a, to: b, protocol: tcp, port: 1}
  - {from: a, to: b, protocol: tcp, port: 2, required: false, when: f}
  - {from: a, to: b, protocol: tcp, port: 3, when: {not: f}}
  - {from: a, to: b, protocol: tcp, port: 4, when: f}
",
        );
        let mut notes = ConditionNotes::new();
        let marks: Vec<String> = spec.flows.iter().map(|f| notes.marker(f)).collect();
        assert_eq!(marks, ["", "?[1]", "[2]", "[1]"]);
        assert_eq!(notes.conditions().len(), 2);
        assert_eq!(condition_words(&spec, &notes.conditions()[1]), "`not f`");
        assert_eq!(condition_words(&spec, &notes.conditions()[0]), "`f`");
    }
}
