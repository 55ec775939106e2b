//! Benchmarks of `portolan verify` (BENCHMARKS.md):
//! - 1,000 NetworkPolicies against 100 components (goal ≤ 2 s);
//! - a 10,000-rule nftables host ruleset against a 2,000-flow plan, in the
//!   kernel twin (goal ≤ 5 s; needs root).
//!
//! `cargo run --release -p portolan-verify --example verify_bench`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::Instant;

use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};
use portolan_verify::host::{self, HostRuleset};
use portolan_verify::kubernetes::{self, Manifests};
use portolan_verify::InputKind;

fn planned(spec: &str, deployment: &str) -> Plan {
    let spec = load_spec(SourceFile::new("bench.yaml", spec))
        .unwrap()
        .value;
    let deployment = load_deployment(SourceFile::new("d.yaml", deployment), &spec)
        .unwrap()
        .value;
    plan(&spec, &deployment)
}

fn kubernetes_bench() {
    // 100 components in 10 namespaces, 20 flows each (2,000 flows);
    // 10 policies per component: one isolating both ways, 9 with rules.
    let mut spec = String::from("portolan: 1\nsystem: {name: Bench}\ncomponents:\n");
    let mut deployment = String::from("deployment: 1\ncomponents:\n");
    for c in 0..100 {
        let _ = writeln!(spec, "  - {{id: c{c}}}");
        let _ = writeln!(
            deployment,
            "  c{c}:\n    kubernetes: {{namespace: ns{}, pod_selector: {{app: c{c}}}}}",
            c % 10
        );
    }
    spec.push_str("flows:\n");
    for c in 0..100 {
        for k in 1..=20 {
            let _ = writeln!(
                spec,
                "  - {{from: c{c}, to: c{}, protocol: tcp, port: {}}}",
                (c + k) % 100,
                1000 + k
            );
        }
    }
    let plan = planned(&spec, &deployment);
    let mut policies = String::new();
    for c in 0..100 {
        let ns = c % 10;
        let _ = write!(
            policies,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny-c{c}, namespace: ns{ns}}}\n\
             spec: {{podSelector: {{matchLabels: {{app: c{c}}}}}, policyTypes: [Ingress, Egress]}}\n"
        );
        for p in 0..9 {
            let from = (c + 100 - 1 - p) % 100;
            let _ = write!(
                policies,
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: c{c}-{p}, namespace: ns{ns}}}\n\
                 spec:\n  podSelector: {{matchLabels: {{app: c{c}}}}}\n  ingress:\n  - from:\n    - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: ns{}}}}}\n      podSelector: {{matchLabels: {{app: c{from}}}}}\n    ports: [{{port: {}, endPort: {}}}]\n  egress:\n  - to: [{{namespaceSelector: {{}}}}]\n    ports: [{{port: 1000, endPort: 1030}}]\n",
                from % 10,
                1000,
                1000 + 2 * p + 2
            );
        }
    }
    let start = Instant::now();
    let mut m = Manifests::default();
    m.read("bench.yaml", &policies).unwrap();
    let read = start.elapsed();
    let section = kubernetes::verify(&plan, &m, "bench").unwrap();
    let total = start.elapsed();
    let admitted = section
        .checks
        .iter()
        .filter(|c| c.verdict == portolan_verify::Verdict::Admitted)
        .count();
    println!(
        "kubernetes: {} policies, 100 components, {} flows: {:.2} s (read {:.2} s); {admitted} admitted, {} excess lines",
        m.policies.len(),
        plan.flows.len(),
        total.as_secs_f64(),
        read.as_secs_f64(),
        section.excess.len()
    );
}

fn host_bench() {
    if portolan_lab::check_privileges().is_err() {
        println!("host: skipped (the kernel twin needs root)");
        return;
    }
    // srv at 10.0.0.1; 100 peers, 20 flows each (2,000 flows) to srv.
    let mut spec = String::from("portolan: 1\nsystem: {name: Bench}\ncomponents:\n  - {id: srv}\n");
    let mut deployment =
        String::from("deployment: 1\ncomponents:\n  srv: {addresses: [10.0.0.1]}\n");
    for c in 0..100 {
        let _ = writeln!(spec, "  - {{id: p{c}}}");
        let _ = writeln!(
            deployment,
            "  p{c}: {{addresses: [10.1.{}.{}]}}",
            c / 200,
            c % 200 + 1
        );
    }
    spec.push_str("flows:\n");
    for c in 0..100 {
        for k in 0..20 {
            let _ = writeln!(
                spec,
                "  - {{from: p{c}, to: srv, protocol: tcp, port: {}}}",
                2000 + c * 20 + k
            );
        }
    }
    let plan = planned(&spec, &deployment);
    // 10,000 rules: 8,000 that match nothing of the plan, in front of the
    // 2,000 accepts (each probe walks through them), in a jump chain.
    let mut ruleset = String::from("table inet filter {\n  chain input {\n    type filter hook input priority filter; policy drop;\n    ct state established,related accept\n    jump rules\n  }\n  chain rules {\n");
    for i in 0..7_998 {
        let _ = writeln!(
            ruleset,
            "    ip saddr 10.9.{}.{} tcp dport {} accept",
            i / 250,
            i % 250 + 1,
            40000 + i % 1000
        );
    }
    for c in 0..100 {
        for k in 0..20 {
            let _ = writeln!(
                ruleset,
                "    ip saddr 10.1.{}.{} tcp dport {} accept comment \"p{c}\"",
                c / 200,
                c % 200 + 1,
                2000 + c * 20 + k
            );
        }
    }
    ruleset.push_str("  }\n}\n");
    let rules = ruleset.lines().filter(|l| l.contains(" accept")).count();
    let start = Instant::now();
    let r = HostRuleset::read(InputKind::Nftables, "srv", "srv.nft", ruleset, &plan).unwrap();
    let sections = host::verify(&plan, &[r]).unwrap();
    let total = start.elapsed();
    let s = &sections[0];
    let admitted = s
        .checks
        .iter()
        .filter(|c| c.verdict == portolan_verify::Verdict::Admitted)
        .count();
    println!(
        "host: {rules} rules, {} flows: {:.2} s; {admitted} admitted, {} excess",
        plan.flows.len(),
        total.as_secs_f64(),
        s.excess.len()
    );
}

fn main() {
    kubernetes_bench();
    host_bench();
}
