//! Negative probes on live hosts (`--negative`): traffic no flow grants,
//! which a firewall that follows the spec must block.
//!
//! Between every two placed components A and B (not on one machine), A
//! probes B on ports no flow grants: for every B, sampled ports that no
//! flow to B names (two TCP, one UDP, each with a listener on B's hosts),
//! and up to two ports that B accepts from other components but not from A
//! (B's own listeners serve them). They are written as a spec of their own
//! (the same components and addresses, one flow per negative probe) that
//! the unchanged `listen` and `check` run from; a probe that is answered
//! (open) or that reaches the host (refused: a reset or port unreachable
//! came back) is **admitted**: an excess opening of the live network.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use portolan_preflight::{sha256_hex, CheckRecord};
use portolan_probe::OutcomeClass;
use portolan_spec::plan::{net_text, EndpointKind, Plan};
use portolan_spec::Protocol;

/// The range sampled ports come from: unprivileged, above the usual
/// service ports, below the usual ephemeral range.
const SAMPLE_FIRST: u16 = 20_000;
const SAMPLE_LAST: u16 = 30_999;

/// The negative probes as a spec and deployment of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegativeSet {
    /// The spec's text.
    pub spec: String,
    /// The deployment's text.
    pub deployment: String,
    /// Negative flows in all.
    pub flows: usize,
    /// Components that listen for negative probes (on sampled ports).
    pub listeners: BTreeSet<String>,
    /// Components that send negative probes.
    pub senders: BTreeSet<String>,
}

fn granted(plan: &Plan, to: &str, from: Option<&str>, protocol: Protocol, port: u16) -> bool {
    plan.flows_to(to).any(|f| {
        from.is_none_or(|from| f.from.id == from)
            && (f.protocol == protocol || f.protocol == Protocol::Any)
            && (f.ports.is_empty() || f.ports.iter().any(|r| r.start <= port && port <= r.end))
    })
}

/// Ports for `to` that no flow to it names, chosen from the spec's hash and
/// the component's id (the same spec gives the same ports).
fn sampled(plan: &Plan, to: &str, seed: &str) -> Vec<(Protocol, u16)> {
    let mut out = Vec::new();
    let span = u64::from(SAMPLE_LAST - SAMPLE_FIRST) + 1;
    for (i, protocol) in [Protocol::Tcp, Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .enumerate()
    {
        for attempt in 0..64u64 {
            let digest = sha256_hex(format!("{seed}/{to}/{i}/{attempt}").as_bytes());
            let n = u64::from_str_radix(&digest[..12], 16).unwrap_or(attempt);
            let port = SAMPLE_FIRST + (n % span) as u16;
            if !granted(plan, to, None, protocol, port) && !out.contains(&(protocol, port)) {
                out.push((protocol, port));
                break;
            }
        }
    }
    out
}

/// Whether two components share one machine (their flows stay on it).
fn same_machine(plan: &Plan, a: &str, b: &str) -> bool {
    plan.host_of(a).is_some_and(|h| h.one_machine && h.runs(b))
}

/// The negative probes of a plan, or `None` when there is no pair of
/// placed components to probe between.
pub fn negative_set(plan: &Plan, spec_sha256: &str) -> Option<NegativeSet> {
    let placed: Vec<&portolan_spec::plan::Endpoint> = plan
        .components
        .iter()
        .filter(|c| {
            c.kind != EndpointKind::Outside
                && c.nets.iter().any(|n| n.prefix_len() == n.max_prefix_len())
        })
        .collect();
    let mut flows = String::new();
    let mut set = NegativeSet {
        spec: String::new(),
        deployment: String::new(),
        flows: 0,
        listeners: BTreeSet::new(),
        senders: BTreeSet::new(),
    };
    for to in &placed {
        let samples = sampled(plan, &to.id, spec_sha256);
        // Ports `to` accepts from someone: candidates for the other sources.
        let accepted: BTreeSet<(Protocol, u16)> = plan
            .flows_to(&to.id)
            .filter(|f| {
                matches!(f.protocol, Protocol::Tcp | Protocol::Udp) && f.multicast.is_none()
            })
            .flat_map(|f| {
                f.ports
                    .iter()
                    .flat_map(move |r| (r.start..=r.end).map(move |p| (f.protocol, p)))
            })
            .take(4096)
            .collect();
        for from in &placed {
            if from.id == to.id || same_machine(plan, &from.id, &to.id) {
                continue;
            }
            let others = accepted
                .iter()
                .filter(|(protocol, port)| !granted(plan, &to.id, Some(&from.id), *protocol, *port))
                .take(2);
            for (protocol, port) in samples.iter().chain(others) {
                let name = if *protocol == Protocol::Tcp {
                    "tcp"
                } else {
                    "udp"
                };
                let _ = writeln!(
                    flows,
                    "  - {{from: {}, to: {}, protocol: {name}, port: {port}}}",
                    from.id, to.id
                );
                set.flows += 1;
                set.senders.insert(from.id.clone());
                if samples.contains(&(*protocol, *port)) {
                    set.listeners.insert(to.id.clone());
                }
            }
        }
    }
    if set.flows == 0 {
        return None;
    }
    let mut spec = format!(
        "portolan: 1\nsystem: {{name: {}}}\ncomponents:\n",
        yaml_string(&format!("{} (negative probes)", plan.system))
    );
    let mut deployment = String::from("deployment: 1\ncomponents:\n");
    for c in &placed {
        let kind = if c.kind == EndpointKind::Dependency {
            "dependency"
        } else {
            "system"
        };
        let _ = writeln!(spec, "  - {{id: {}, kind: {kind}}}", c.id);
        let addresses: Vec<String> = c
            .nets
            .iter()
            .map(|n| yaml_string(&net_text(n)))
            .chain(c.hosts.iter().map(|h| yaml_string(h)))
            .collect();
        let _ = writeln!(
            deployment,
            "  {}: {{addresses: [{}]}}",
            c.id,
            addresses.join(", ")
        );
    }
    spec.push_str("flows:\n");
    spec.push_str(&flows);
    set.spec = spec;
    set.deployment = deployment;
    Some(set)
}

/// A YAML double-quoted string.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Whether a negative probe got through: answered, or reached the host
/// (a reset, or port unreachable).
pub fn admitted(check: &CheckRecord) -> bool {
    matches!(
        check.result.outcome.class,
        OutcomeClass::Open | OutcomeClass::Refused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(spec: &str, deployment: &str) -> Plan {
        let spec = portolan_spec::load_spec(portolan_spec::SourceFile::new("s.yaml", spec))
            .expect("spec")
            .value;
        let d = portolan_spec::deployment::load_deployment(
            portolan_spec::SourceFile::new("d.yaml", deployment),
            &spec,
        )
        .expect("deployment")
        .value;
        portolan_spec::plan::plan(&spec, &d)
    }

    #[test]
    fn negative_flows_avoid_every_granted_port_and_one_machine() {
        let p = plan(
            "portolan: 1\nsystem: {name: Demo}\ncomponents:\n  - {id: api}\n  - {id: db, kind: dependency}\n  - {id: web}\n  - {id: ui}\n\
             flows:\n  - {from: api, to: db, protocol: tcp, port: 5432}\n  - {from: web, to: db, protocol: tcp, port: 6432}\n  - {from: ui, to: web, protocol: tcp, port: '20000-30999'}\n",
            "deployment: 1\ncomponents:\n  api: {addresses: [198.18.0.2]}\n  db: {addresses: [198.18.0.3]}\n  web: {addresses: [198.18.0.4]}\n  ui: {addresses: [198.18.0.4]}\n",
        );
        let set = negative_set(&p, "ab").expect("flows");
        let again = negative_set(&p, "ab").expect("flows");
        assert_eq!(set, again, "deterministic");
        // api may not use web's port to db, and the other way round.
        assert!(
            set.spec
                .contains("{from: api, to: db, protocol: tcp, port: 6432}"),
            "{}",
            set.spec
        );
        assert!(
            set.spec
                .contains("{from: web, to: db, protocol: tcp, port: 5432}"),
            "{}",
            set.spec
        );
        assert!(!set
            .spec
            .contains("{from: api, to: db, protocol: tcp, port: 5432}"));
        // web and ui share a machine: no probe between them; web's whole
        // TCP sample range is granted, so only UDP is sampled for it.
        assert!(!set.spec.contains("from: ui, to: web"));
        assert!(!set.spec.contains("from: web, to: ui"));
        assert!(set
            .spec
            .contains("{from: api, to: web, protocol: tcp, port: 20000}"));
        assert!(set.spec.contains("to: web, protocol: udp"));
        assert!(set.listeners.contains("db"));
        // The result loads as a spec and deployment of its own.
        let negative = plan(&set.spec, &set.deployment);
        assert_eq!(negative.flows.len(), set.flows);
        assert!(set
            .spec
            .starts_with("portolan: 1\nsystem: {name: \"Demo (negative probes)\"}"));
    }
}
