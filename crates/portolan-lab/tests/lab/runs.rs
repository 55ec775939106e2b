//! `run_lab` end to end: both examples in real namespaces with their
//! generated firewalls, the lab catching a deleted rule and an extra accept
//! (TCP and ICMP), an error midway leaving nothing behind, and a user's
//! deployment proven at its own addresses.
//!
//! They need root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and `nft`; without them
//! each test skips loudly, or fails under `PORTOLAN_REQUIRE_LAB=1`. Traffic
//! only flows between the namespaces the lab creates, on lab-only addresses.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use portolan_lab::design::{Family, Transport};
use portolan_lab::{
    run_lab, CheckKind, Expect, FeatureChoice, LabOptions, LabReport, RunId, Verdict,
};
use portolan_spec::deployment::load_deployment;
use portolan_spec::{load_spec, SourceFile, Spec};
use portolan_test_support::{example_spec, workspace_root};

use super::lab_with_nft as lab_available;

fn spec(name: &str) -> Spec {
    let path = example_spec(name);
    let source = SourceFile::read(&path).expect("example readable");
    load_spec(source).expect("example valid").value
}

fn options(features: FeatureChoice, replicas: usize) -> LabOptions {
    LabOptions {
        features,
        replicas,
        ..LabOptions::default()
    }
}

fn features(list: &[&str]) -> FeatureChoice {
    FeatureChoice::Listed(list.iter().map(|f| (*f).to_owned()).collect())
}

fn run(spec: &Spec, options: &LabOptions) -> LabReport {
    run_lab(spec, options).expect("the lab runs").0
}

fn assert_holds(report: &LabReport) {
    let failures: Vec<String> = report.failures().map(|f| f.line()).collect();
    assert!(
        report.holds(),
        "{} failure(s):\n{}\nlisteners: {:?}",
        failures.len(),
        failures.join("\n"),
        report.listener_failures
    );
}

#[test]
fn circonus_with_every_feature_and_two_replicas_holds() {
    if !lab_available("circonus_with_every_feature_and_two_replicas_holds") {
        return;
    }
    let report = run(&spec("circonus-inside"), &options(FeatureChoice::All, 2));
    assert_holds(&report);
    assert!(report.features_off.is_empty());
    let flows = |id: &str| -> Vec<&portolan_lab::report::CheckResult> {
        report
            .results
            .iter()
            .filter(|r| r.check.flow.as_deref() == Some(id) && r.check.kind == CheckKind::Flow)
            .collect()
    };
    // Multicast from each Fault Detection instance reaches both instances.
    let multicast = flows("fault-detection->fault-detection@225.0.1.9/udp/8082");
    assert_eq!(multicast.len(), 2);
    for m in &multicast {
        assert_eq!(m.verdict, Verdict::Passed);
        assert_eq!(m.received_by, ["fault-detection-1", "fault-detection-2"]);
    }
    // U:8112:8112 between Data Storage instances, from the fixed port.
    let fixed = flows("data-storage->data-storage/udp/8112:8112");
    assert_eq!(fixed.len(), 8, "2×2 instance pairs × 2 families");
    assert!(fixed
        .iter()
        .all(|r| r.check.source_port == Some(8112) && r.verdict == Verdict::Passed));
    // Names go through the lab DNS, patterns included.
    let cloudwatch = flows("web-frontend->cloudwatch/tcp/443");
    assert!(!cloudwatch.is_empty());
    assert!(cloudwatch.iter().all(|r| {
        r.check.name.as_deref() == Some("monitoring.lab.amazonaws.com") && !r.resolved.is_empty()
    }));
    // `*:*:*:*` to the outside world is sampled, TCP and UDP.
    let any = flows("enterprise-broker->outside/any");
    let transports: BTreeSet<Transport> = any.iter().map(|r| r.check.protocol).collect();
    assert_eq!(
        transports,
        [Transport::Tcp, Transport::Udp].into_iter().collect()
    );
    assert!(report
        .samples
        .iter()
        .any(|s| s.starts_with("enterprise-broker->outside/any")));
    // Every ordered pair was probed negatively somewhere, and nothing leaked.
    assert!(report.summary.blocked > 1000, "{:?}", report.summary);
    assert_eq!(report.summary.not_blocked, 0);
    // Every host's firewall and listeners were really there.
    assert!(report
        .hosts
        .iter()
        .filter(|h| h.firewall)
        .all(|h| !h.listening.is_empty()));
    assert!(namespaces_of(&report.run_id).is_empty(), "torn down");
}

#[test]
fn circonus_without_features_blocks_every_feature_flow() {
    if !lab_available("circonus_without_features_blocks_every_feature_flow") {
        return;
    }
    let report = run(&spec("circonus-inside"), &options(features(&[]), 1));
    assert_holds(&report);
    let off: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.check.kind == CheckKind::FeatureOff)
        .collect();
    assert!(!off.is_empty());
    assert!(off.iter().all(|r| r.verdict == Verdict::Blocked));
    // Slack alerts are off: Notification must not reach slack.com.
    assert!(off.iter().any(|r| {
        r.check.flow.as_deref() == Some("notification->slack/tcp/443")
            && r.check.name.as_deref() == Some("slack.com")
    }));
    // No optional flow of a feature that is off was probed as a flow.
    assert!(!report.results.iter().any(|r| {
        r.check.kind == CheckKind::Flow
            && r.check.flow.as_deref() == Some("notification->slack/tcp/443")
    }));
}

#[test]
fn spacelift_with_and_without_the_builtin_mqtt_broker() {
    if !lab_available("spacelift_with_and_without_the_builtin_mqtt_broker") {
        return;
    }
    let spacelift = spec("spacelift-self-hosted");
    let mqtt = "clients->server/tcp/1984";
    let on = run(&spacelift, &options(features(&["builtin-mqtt-broker"]), 1));
    assert_holds(&on);
    assert!(on
        .results
        .iter()
        .any(|r| r.check.flow.as_deref() == Some(mqtt)
            && r.check.kind == CheckKind::Flow
            && r.verdict == Verdict::Passed));
    // The parameter without default was given a lab value and probed on it.
    assert_eq!(on.lab_parameters.len(), 1, "{:?}", on.lab_parameters);
    let infra = on.lab_parameters[0].value;
    assert!(on.results.iter().any(|r| r.check.flow.as_deref()
        == Some("workers->infrastructure/tcp/$infrastructure-port")
        && r.check.target.port() == infra
        && r.verdict == Verdict::Passed));

    let off = run(&spacelift, &options(features(&[]), 1));
    assert_holds(&off);
    let blocked: Vec<_> = off
        .results
        .iter()
        .filter(|r| r.check.flow.as_deref() == Some(mqtt))
        .collect();
    assert!(!blocked.is_empty());
    assert!(blocked
        .iter()
        .all(|r| r.check.kind == CheckKind::FeatureOff && r.verdict == Verdict::Blocked));

    let all = run(&spacelift, &options(FeatureChoice::All, 2));
    assert_holds(&all);
}

/// Adds `rule` to `component`'s input chain, right after its loopback
/// accept.
fn with_rule(component: &'static str, rule: &'static str) -> portolan_lab::RulesetTransform {
    std::sync::Arc::new(move |c: &str, text: &str| {
        if c != component {
            return text.to_owned();
        }
        text.replacen(
            "\t\tiif \"lo\" accept\n",
            &format!("\t\tiif \"lo\" accept\n\t\t{rule}\n"),
            1,
        )
    })
}

/// Removes the lines of `component`'s ruleset that satisfy `drop`.
fn without_lines(
    component: &'static str,
    drop: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> portolan_lab::RulesetTransform {
    std::sync::Arc::new(move |c: &str, text: &str| {
        if c != component {
            return text.to_owned();
        }
        text.lines()
            .filter(|l| !drop(l))
            .map(|l| format!("{l}\n"))
            .collect()
    })
}

#[test]
fn a_deleted_rule_fails_exactly_its_flow() {
    if !lab_available("a_deleted_rule_fails_exactly_its_flow") {
        return;
    }
    let flow = "api->data-storage/tcp/8112";
    let comment = format!("comment \"{flow}\"");
    let needle = comment.clone();
    let mut opts = options(features(&[]), 1);
    // The IPv4 rule of the flow in Data Storage's input chain.
    opts.mutate_ruleset = Some(without_lines("data-storage", move |l| {
        l.trim_start().starts_with("ip saddr") && l.contains(&needle)
    }));
    let report = run(&spec("circonus-inside"), &opts);
    let failures: Vec<_> = report.failures().collect();
    assert!(!failures.is_empty(), "the deleted rule went unnoticed");
    for f in &failures {
        assert_eq!(f.check.flow.as_deref(), Some(flow), "{}", f.line());
        assert_eq!(f.check.family, Family::Ipv4, "{}", f.line());
        assert_eq!(f.verdict, Verdict::Failed);
        // The kernel's trace names what dropped it: the input chain's
        // policy, the accept being gone.
        assert_eq!(
            f.reason.as_deref(),
            Some("dropped by policy drop of chain input of table inet portolan on host data-storage-1"),
            "{}",
            f.line()
        );
        let decided = f.decided_by.as_ref().expect("the deciding rule");
        assert_eq!(decided.hop.decider, portolan_lab::trace::Decider::Policy);
        assert_eq!(decided.hop.verdict, portolan_lab::trace::HopVerdict::Drop);
    }
    assert!(report.render_text().contains(
        "dropped by policy drop of chain input of table inet portolan on host data-storage-1"
    ));
    // Its IPv6 twin still passes, and so does everything else.
    assert!(report
        .results
        .iter()
        .any(|r| r.check.flow.as_deref() == Some(flow)
            && r.check.family == Family::Ipv6
            && r.verdict == Verdict::Passed));
    assert_eq!(
        report.results.iter().filter(|r| !r.verdict.holds()).count(),
        failures.len()
    );
    assert!(report.listener_failures.is_empty());
    assert!(!report.holds());
}

#[test]
fn an_extra_accept_is_caught_by_a_negative_probe() {
    if !lab_available("an_extra_accept_is_caught_by_a_negative_probe") {
        return;
    }
    let mut opts = options(features(&[]), 1);
    // Data Storage admits TCP 8112 from anywhere: the spec grants it to a
    // few components only.
    opts.mutate_ruleset = Some(with_rule(
        "data-storage",
        "tcp dport 8112 accept comment \"extra\"",
    ));
    let report = run(&spec("circonus-inside"), &opts);
    let failures: Vec<_> = report.failures().collect();
    assert!(!failures.is_empty(), "the extra accept went unnoticed");
    for f in &failures {
        assert_eq!(f.verdict, Verdict::NotBlocked, "{}", f.line());
        assert_eq!(f.check.expect, Expect::Blocked);
        assert_eq!(f.check.to, "data-storage", "{}", f.line());
        assert_eq!(f.check.protocol, Transport::Tcp);
        assert_eq!(f.check.target.port(), 8112);
        // The trace names the extra rule, with its text and comment.
        let decided = f.decided_by.as_ref().expect("the deciding rule");
        assert_eq!(decided.hop.host, "data-storage-1", "{}", f.line());
        assert_eq!(decided.hop.chain, "input");
        assert_eq!(decided.hop.verdict, portolan_lab::trace::HopVerdict::Accept);
        assert_eq!(decided.rule.as_deref(), Some("tcp dport 8112 accept"));
        assert_eq!(decided.comment.as_deref(), Some("extra"));
        let reason = f.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("accepted by rule ")
                && reason.contains("`tcp dport 8112 accept` (comment \"extra\") in chain input"),
            "{}",
            f.line()
        );
    }
    // The outside world has no firewall of its own: its probe shows it.
    assert!(failures.iter().any(|f| f.check.from_host == "outside"));
}

/// Two components that may ping one way, and a dependency no one may ping.
const PING_SPEC: &str = "portolan: 1
system: {name: Ping}
components:
  - {id: monitor}
  - {id: node}
  - {id: db, kind: dependency}
flows:
  - {from: monitor, to: node, protocol: icmp}
  - {from: monitor, to: node, protocol: tcp, port: 9100}
  - {from: node, to: db, protocol: tcp, port: 5432}
";

fn ping_spec() -> Spec {
    load_spec(SourceFile::new("ping.yaml", PING_SPEC))
        .expect("valid spec")
        .value
}

fn icmp_flow_checks(report: &LabReport) -> Vec<&portolan_lab::report::CheckResult> {
    report
        .results
        .iter()
        .filter(|r| r.check.kind == CheckKind::Flow && r.check.protocol == Transport::Icmp)
        .collect()
}

fn echo_negatives(report: &LabReport) -> Vec<&portolan_lab::report::CheckResult> {
    report
        .results
        .iter()
        .filter(|r| r.check.kind == CheckKind::EchoNotGranted)
        .collect()
}

#[test]
fn icmp_flows_pass_and_echo_no_flow_grants_is_blocked() {
    if !lab_available("icmp_flows_pass_and_echo_no_flow_grants_is_blocked") {
        return;
    }
    let report = run(&ping_spec(), &options(features(&[]), 2));
    assert_holds(&report);
    // monitor-1/2 to node-1/2, both families, by echo.
    let flows = icmp_flow_checks(&report);
    assert_eq!(flows.len(), 8);
    for f in &flows {
        assert_eq!(f.check.flow.as_deref(), Some("monitor->node/icmp"));
        assert_eq!((f.verdict, f.outcome.as_str()), (Verdict::Passed, "open"));
    }
    let families: BTreeSet<Family> = flows.iter().map(|f| f.check.family).collect();
    assert_eq!(families.len(), 2);
    // Echo between every other ordered pair, and from and to the outside
    // world, is blocked by the generated firewalls (which admit ICMP
    // errors, not echo).
    let negatives = echo_negatives(&report);
    let pairs: BTreeSet<(&str, &str)> = negatives
        .iter()
        .map(|r| (r.check.from.as_str(), r.check.to.as_str()))
        .collect();
    for pair in [
        ("node", "monitor"),
        ("node", "db"),
        ("monitor", "db"),
        ("db", "node"),
        ("node", "node"),
        ("monitor", "monitor"),
        ("world", "node"),
        ("node", "world"),
    ] {
        assert!(pairs.contains(&pair), "no echo probe {pair:?}: {pairs:?}");
    }
    assert!(!pairs.contains(&("monitor", "node")), "granted by the flow");
    assert!(negatives.iter().all(|r| r.verdict == Verdict::Blocked));
    assert_eq!(report.summary.icmp_negative, negatives.len());
    assert!(report
        .not_checked
        .iter()
        .all(|n| !n.reason.contains("ICMP")));
    assert!(report
        .render_text()
        .contains(&format!("({} of them ICMP echo)", negatives.len())));
}

#[test]
fn a_deleted_icmp_rule_fails_exactly_its_check() {
    if !lab_available("a_deleted_icmp_rule_fails_exactly_its_check") {
        return;
    }
    let comment = "comment \"monitor->node/icmp\"";
    let mut opts = options(features(&[]), 1);
    // The IPv4 rule of the flow in node's input chain.
    opts.mutate_ruleset = Some(without_lines("node", move |l| {
        l.trim_start().starts_with("ip saddr") && l.contains(comment)
    }));
    let report = run(&ping_spec(), &opts);
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(
        failures.len(),
        1,
        "{:#?}",
        failures.iter().map(|f| f.line()).collect::<Vec<_>>()
    );
    let f = failures[0];
    assert_eq!(f.check.flow.as_deref(), Some("monitor->node/icmp"));
    assert_eq!(f.check.family, Family::Ipv4);
    assert_eq!(f.check.protocol, Transport::Icmp);
    assert_eq!(f.verdict, Verdict::Failed);
    assert_eq!(
        f.reason.as_deref(),
        Some("dropped by policy drop of chain input of table inet portolan on host node-1"),
        "{}",
        f.line()
    );
    // Its IPv6 twin still passes; negative echoes are still blocked.
    assert!(icmp_flow_checks(&report)
        .iter()
        .any(|r| r.check.family == Family::Ipv6 && r.verdict == Verdict::Passed));
    assert!(echo_negatives(&report)
        .iter()
        .all(|r| r.verdict == Verdict::Blocked));
    assert!(!report.holds());
}

#[test]
fn an_extra_icmp_accept_is_caught_by_a_negative_echo() {
    if !lab_available("an_extra_icmp_accept_is_caught_by_a_negative_echo") {
        return;
    }
    let mut opts = options(features(&[]), 1);
    // db admits every ICMP message: no flow grants echo to it.
    opts.mutate_ruleset = Some(with_rule(
        "db",
        "meta l4proto { icmp, ipv6-icmp } accept comment \"extra\"",
    ));
    let report = run(&ping_spec(), &opts);
    let failures: Vec<_> = report.failures().collect();
    assert!(!failures.is_empty(), "the extra accept went unnoticed");
    for f in &failures {
        assert_eq!(f.verdict, Verdict::NotBlocked, "{}", f.line());
        assert_eq!(f.check.kind, CheckKind::EchoNotGranted, "{}", f.line());
        assert_eq!(f.check.to, "db", "{}", f.line());
        assert!(
            f.reason
                .as_deref()
                .unwrap_or_default()
                .contains("echo reply came back"),
            "{}",
            f.line()
        );
        let decided = f.decided_by.as_ref().expect("the deciding rule");
        assert_eq!(
            (decided.hop.host.as_str(), decided.hop.chain.as_str()),
            ("db-1", "input")
        );
        assert_eq!(decided.comment.as_deref(), Some("extra"), "{}", f.line());
    }
    // The outside world has no firewall of its own: its echo shows it, in
    // both families.
    let outside: BTreeSet<Family> = failures
        .iter()
        .filter(|f| f.check.from_host == "outside")
        .map(|f| f.check.family)
        .collect();
    assert_eq!(outside.len(), 2, "{outside:?}");
}

#[test]
fn an_error_midway_leaves_nothing_behind() {
    if !lab_available("an_error_midway_leaves_nothing_behind") {
        return;
    }
    let run = format!("ptl-err{}", std::process::id() % 100_000);
    let mut opts = options(features(&[]), 1);
    opts.run_id = Some(RunId::new(run.clone()).expect("run id"));
    // nft rejects this ruleset: the run fails after the namespaces exist.
    opts.mutate_ruleset = Some(std::sync::Arc::new(|c: &str, text: &str| {
        if c == "mq" {
            "table inet portolan { chain input { this is not nft } }\n".to_owned()
        } else {
            text.to_owned()
        }
    }));
    let err = run_lab(&spec("circonus-inside"), &opts).expect_err("nft rejects the ruleset");
    let message = err.to_string();
    assert!(message.contains("nft rejected the ruleset"), "{message}");
    assert!(message.contains("mq-1"), "{message}");
    assert!(
        namespaces_of(&run).is_empty(),
        "left: {:?}",
        namespaces_of(&run)
    );
    assert!(!super::lock_file(&run).exists());
}

/// The namespaces of lab run `run` that exist now.
fn namespaces_of(run: &str) -> Vec<String> {
    portolan_lab::netns::list_named(&format!("{run}-")).expect("list /run/netns")
}

fn circonus_deployment(file: &str) -> portolan_spec::deployment::Deployment {
    let spec = spec("circonus-inside");
    let path = workspace_root().join("examples/circonus-inside").join(file);
    let source = SourceFile::read(&path).expect("deployment readable");
    load_deployment(source, &spec)
        .expect("deployment valid")
        .value
}

#[test]
fn circonus_deployment_holds_at_its_own_addresses() {
    if !lab_available("circonus_deployment_holds_at_its_own_addresses") {
        return;
    }
    let spec = spec("circonus-inside");
    let options = LabOptions {
        deployment: Some(circonus_deployment("deployment.yaml")),
        ..LabOptions::default()
    };
    let (report, artifacts) = run_lab(&spec, &options).expect("the lab runs");
    assert_holds(&report);
    // The deployment's machines, at its addresses: three data-storage
    // nodes, two IPv4-only fault-detection nodes.
    let addresses = |party: &str| -> Vec<IpAddr> {
        report
            .hosts
            .iter()
            .filter(|h| h.party == party)
            .flat_map(|h| h.addresses.clone())
            .collect()
    };
    assert_eq!(
        addresses("data-storage"),
        [
            "192.0.2.21",
            "2001:db8:c::21",
            "192.0.2.22",
            "2001:db8:c::22",
            "192.0.2.23",
            "2001:db8:c::23"
        ]
        .map(|a| a.parse::<IpAddr>().unwrap())
    );
    assert_eq!(
        addresses("fault-detection"),
        ["192.0.2.31", "192.0.2.32"].map(|a| a.parse::<IpAddr>().unwrap())
    );
    let from_fd: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.check.from == "fault-detection" && r.check.protocol != Transport::Multicast)
        .collect();
    assert!(!from_fd.is_empty());
    assert!(
        from_fd.iter().all(|r| r.check.family == Family::Ipv4),
        "an IPv4-only machine is probed over IPv4 only"
    );
    // Package updates go through the proxy at its address and port.
    let proxied: Vec<_> = report
        .results
        .iter()
        .filter(|r| {
            r.check
                .flow
                .as_deref()
                .is_some_and(|f| f.contains("updates-circonus"))
        })
        .filter(|r| r.check.expect == Expect::Open)
        .collect();
    assert!(!proxied.is_empty(), "the proxied flow is probed");
    for r in &proxied {
        assert_eq!(r.check.target.to_string(), "192.0.2.60:3128");
        assert_eq!(r.verdict, Verdict::Passed);
    }
    // The rulesets are named as `generate` names them, by host.
    assert!(artifacts
        .rulesets
        .iter()
        .any(|(file, _)| file == "data-storage.nft"));
    assert_eq!(
        artifacts.deployment,
        std::fs::read_to_string(workspace_root().join("examples/circonus-inside/deployment.yaml"))
            .unwrap()
    );
}
