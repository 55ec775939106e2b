//! Verification of an operator's existing firewall against a spec.
//!
//! The input is a [`Plan`] (a spec resolved against a deployment) and the
//! policies already in place: Kubernetes NetworkPolicies ([`kubernetes`]),
//! AWS security groups ([`aws`]) and host rulesets. Each input gives a
//! [`Section`]: every planned flow admitted or blocked, with the rules that
//! decide; what the input opens beyond the plan ([`Excess`]); what the
//! verifier had to assume; and the smallest additions, in the input's own
//! syntax, that would admit the blocked flows ([`Fix`]).
//!
//! NetworkPolicies and security groups are evaluated by their documented
//! semantics, exactly, with set arithmetic on addresses, protocols and
//! ports ([`space`]); see `docs/verify.md` for the rules and their sources.

pub mod aws;
mod error;
pub mod host;
pub mod kubernetes;
mod model;
pub mod render;
pub mod sets;
pub mod space;

pub use error::{read_text, Code, Hint, Position, VerifyError};
pub use model::{
    Direction, Excess, Fix, FlowCheck, InputKind, RuleRef, Section, Verdict, Verification,
};

use portolan_spec::plan::{Plan, PlannedFlow};
use portolan_spec::{ranges_text, Protocol};

use crate::sets::{ports_text, RangeSet};
use crate::space::{proto, Peers, Traffic, MAX_PORT};

/// An empty verification of `plan`, to which sections are added.
pub fn verification(plan: &Plan) -> Verification {
    Verification {
        system: plan.system.clone(),
        deployment: plan.deployment.clone(),
        sections: Vec::new(),
    }
}

/// A flow's protocol and ports for a person: `tcp 5432`, `udp 8112 → 8112`, `icmp`.
pub fn flow_traffic_text(flow: &PlannedFlow) -> String {
    if !flow.protocol.has_ports() {
        return flow.protocol.to_string();
    }
    let ports = if flow.ports.is_empty() {
        "every port".to_owned()
    } else {
        ranges_text(&flow.ports)
    };
    if flow.source_ports.is_empty() {
        format!("{} {ports}", flow.protocol)
    } else {
        format!(
            "{} {} → {ports}",
            flow.protocol,
            ranges_text(&flow.source_ports)
        )
    }
}

/// The traffic a flow needs: its protocol and destination ports (every
/// port when it names none); ICMP as echo over both ICMP versions'
/// protocol numbers, every type (policies that filter by port cannot
/// admit it); `any` as every protocol.
pub(crate) fn request_traffic(flow: &PlannedFlow) -> Vec<Traffic> {
    let ports = if flow.ports.is_empty() {
        RangeSet::range(1, MAX_PORT)
    } else {
        let mut set = RangeSet::empty();
        for r in &flow.ports {
            set.insert(r.start as u128, r.end as u128);
        }
        set
    };
    match flow.protocol {
        Protocol::Tcp => vec![Traffic::of(proto::TCP, ports)],
        Protocol::Udp => vec![Traffic::of(proto::UDP, ports)],
        Protocol::Icmp => vec![
            Traffic::of(proto::ICMP, RangeSet::range(0, MAX_PORT)),
            Traffic::of(proto::ICMPV6, RangeSet::range(0, MAX_PORT)),
        ],
        Protocol::Any => vec![Traffic::all()],
    }
}

fn protocol_name(number: u128) -> String {
    match number {
        proto::ICMP => "icmp".into(),
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::ICMPV6 => "icmpv6".into(),
        proto::SCTP => "sctp".into(),
        n => format!("protocol {n}"),
    }
}

/// Protocols and ports for a person: `tcp 22, 80`, `every protocol`.
pub fn traffic_text(traffic: &Traffic) -> String {
    cells_text(std::slice::from_ref(traffic))
}

/// Several protocol × port rectangles for a person, compactly: `every
/// protocol and port`, `every protocol and port except tcp 8080`,
/// `tcp 1-21, 23-65535; udp every port`, `… and 250 other protocols`.
pub fn cells_text(cells: &[Traffic]) -> String {
    let full = RangeSet::range(0, MAX_PORT);
    let mut by_protocol: std::collections::BTreeMap<u128, RangeSet> = Default::default();
    for t in cells {
        for &(s, e) in t.protocols.ranges() {
            for p in s..=e {
                let entry = by_protocol.entry(p).or_default();
                *entry = entry.union(&t.ports);
            }
        }
    }
    let named = |p: u128| {
        matches!(
            p,
            proto::ICMP | proto::TCP | proto::UDP | proto::ICMPV6 | proto::SCTP
        )
    };
    let has_ports = |p: u128| matches!(p, proto::TCP | proto::UDP | proto::SCTP);
    let describe = |p: u128, ports: &RangeSet| {
        if !has_ports(p) || *ports == full {
            if has_ports(p) {
                format!("{} every port", protocol_name(p))
            } else {
                protocol_name(p)
            }
        } else {
            format!("{} {}", protocol_name(p), ports_text(ports))
        }
    };
    if by_protocol.len() as u128 > proto::MAX / 2 {
        let missing: Vec<String> = (0..=proto::MAX)
            .filter_map(|p| {
                let rest = full.difference(by_protocol.get(&p).unwrap_or(&RangeSet::empty()));
                let rest = rest.difference(&RangeSet::range(0, 0));
                (!rest.is_empty()).then(|| describe(p, &rest))
            })
            .collect();
        return if missing.is_empty() {
            "every protocol and port".into()
        } else {
            format!("every protocol and port except {}", missing.join(", "))
        };
    }
    let mut parts: Vec<String> = by_protocol
        .iter()
        .filter(|(p, _)| named(**p))
        .map(|(p, ports)| describe(*p, ports))
        .collect();
    let others = by_protocol.keys().filter(|p| !named(**p)).count();
    if others > 0 {
        parts.push(format!("{others} other protocol(s)"));
    }
    parts.join(", ")
}

/// Peers for a person: `any peer`, component ids, CIDRs.
pub fn peers_text(peers: &Peers) -> String {
    if peers.everyone {
        return "any peer".into();
    }
    let mut parts: Vec<String> = peers.ids.iter().cloned().collect();
    if !peers.nets.is_empty() {
        parts.push(peers.nets.to_string());
    }
    parts.join(", ")
}
