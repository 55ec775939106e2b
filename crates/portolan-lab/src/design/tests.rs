use std::collections::BTreeSet;
use std::net::IpAddr;

use portolan_spec::{PortRange, Protocol, SourceFile, Spec};

use super::lab_deployment::host_name;
use super::negative::MIN_NEGATIVE_PER_PAIR;
use super::oracle::Oracle;
use super::sample::{sample_ports, Rng};
use super::*;
use crate::topology::{RunId, MAX_HOST_NAME_LEN};
use portolan_spec::plan::LeftOutReason;

const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: peer}
  - {id: users, kind: external}
externals:
  - {id: slack, host: slack.com}
  - {id: cw, host: monitoring.*.amazonaws.com}
features:
  - {id: slack-alerts}
parameters:
  - {id: db-port, default: 5432}
  - {id: infra-port}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: $db-port}
  - {from: web, to: slack, protocol: tcp, port: 443, required: false, when: slack-alerts}
  - {from: web, to: cw, protocol: tcp, port: 443}
  - {from: peer, to: peer, protocol: udp, port: 8112, source_port: 8112}
  - {from: peer, to: peer, protocol: udp, port: 8082, multicast: 225.0.1.9}
  - {from: db, to: users, protocol: any}
  - {from: web, to: db, protocol: tcp, port: $infra-port}
";

fn spec() -> Spec {
    portolan_spec::load_spec(SourceFile::new("portolan.yaml", SPEC))
        .expect("valid spec")
        .value
}

fn options(features: &[&str], replicas: usize) -> LabOptions {
    LabOptions {
        features: FeatureChoice::Listed(features.iter().map(|f| (*f).to_owned()).collect()),
        replicas,
        run_id: Some(RunId::new("ptl-design").expect("run id")),
        ..LabOptions::default()
    }
}

#[test]
fn hosts_deployment_and_names() {
    let spec = spec();
    let d = design(&spec, &options(&[], 2)).expect("designed");
    let hosts: Vec<&str> = d.nodes.iter().map(|n| n.host.as_str()).collect();
    assert_eq!(
        hosts,
        [
            "web-1",
            "web-2",
            "db-1",
            "peer-1",
            "peer-2",
            "outside",
            "ext-slack",
            "ext-cw"
        ]
    );
    assert!(
        d.deployment_yaml.contains("\"infra-port\": 20000"),
        "{}",
        d.deployment_yaml
    );
    assert_eq!(
        d.lab_parameters,
        [LabParameter {
            id: "infra-port".into(),
            value: 20000
        }]
    );
    let slack = d.node("ext-slack").expect("slack host");
    assert_eq!(
        d.names.lookup("slack.com"),
        Some([IpAddr::V4(slack.ipv4), IpAddr::V6(slack.ipv6)].as_slice())
    );
    assert!(d.names.lookup("monitoring.lab.amazonaws.com").is_some());
    assert!(d.features.is_empty());
    // The plan places everything: nothing is left out but the feature-off flow.
    assert_eq!(d.plan.left_out.len(), 1);
    assert!(matches!(
        d.plan.left_out[0].reason,
        LeftOutReason::FeatureOff { .. }
    ));
}

#[test]
fn unknown_features_and_replicas_are_errors() {
    let spec = spec();
    let err = design(&spec, &options(&["slack-alert"], 1)).expect_err("unknown");
    assert!(
        err.to_string().contains("did you mean `slack-alerts`"),
        "{err}"
    );
    assert!(matches!(
        design(&spec, &options(&[], 0)),
        Err(DesignError::Replicas { .. })
    ));
}

#[test]
fn every_enabled_flow_is_checked_both_families_between_every_instance_pair() {
    let spec = spec();
    let d = design(&spec, &options(&[], 2)).expect("designed");
    let of = |flow: &str| -> Vec<&Check> {
        d.checks
            .iter()
            .filter(|c| c.flow.as_deref() == Some(flow) && c.kind == CheckKind::Flow)
            .collect()
    };
    // users -> web: outside to 2 instances × 2 families.
    let inbound = of("users->web/tcp/443");
    assert_eq!(inbound.len(), 4);
    assert!(inbound
        .iter()
        .all(|c| c.from_host == "outside" && c.expect == Expect::Open));
    // peer <-> peer with a fixed source port: 4 pairs × 2 families.
    let fixed = of("peer->peer/udp/8112:8112");
    assert_eq!(fixed.len(), 8);
    assert!(fixed.iter().all(|c| c.source_port == Some(8112)));
    assert_eq!(
        fixed.iter().filter(|c| c.note.is_some()).count(),
        4,
        "loopback pairs"
    );
    // The port is shared between the listener and the probes.
    let peer = d
        .nodes
        .iter()
        .position(|n| n.host == "peer-1")
        .expect("peer-1");
    assert!(d.listens[peer].udp_shared.contains(&8112));
    assert!(!d.listens[peer].udp.contains(&8112));
    // Multicast: one check per sender, both instances must receive.
    let mc = of("peer->peer@225.0.1.9/udp/8082");
    assert_eq!(mc.len(), 2);
    assert!(mc.iter().all(|c| c.receivers == ["peer-1", "peer-2"]));
    // Names go through the lab DNS.
    let cw = of("web->cw/tcp/443");
    assert!(cw
        .iter()
        .all(|c| c.name.as_deref() == Some("monitoring.lab.amazonaws.com")));
    // Protocol any to the outside world: sampled.
    let any = of("db->users/any");
    assert_eq!(any.len(), 6, "2 tcp + 1 udp, both families");
    assert!(d
        .samples
        .iter()
        .any(|s| s.starts_with("db->users/any: every protocol")));
    // The parameter without default is probed on its lab value.
    assert!(of("web->db/tcp/$infra-port")
        .iter()
        .all(|c| c.target.port() == 20000));
}

#[test]
fn negative_checks_are_exactly_what_no_flow_admits() {
    let spec = spec();
    let d = design(&spec, &options(&[], 1)).expect("designed");
    let oracle = Oracle::new(&d.plan, &d.nodes);
    let index = |h: &str| d.nodes.iter().position(|n| n.host == h).expect("host");
    let negatives: Vec<&Check> = d
        .checks
        .iter()
        .filter(|c| c.expect == Expect::Blocked && c.protocol != Transport::Multicast)
        .collect();
    assert!(!negatives.is_empty());
    for c in &negatives {
        assert!(
            !oracle.allowed(
                index(&c.from_host),
                index(&c.to_host),
                c.protocol,
                c.source_port,
                c.target.port(),
                c.family
            ),
            "{c:?}"
        );
        if c.protocol == Transport::Icmp {
            // The kernel answers echo: no listener.
            assert_eq!(c.kind, CheckKind::EchoNotGranted, "{c:?}");
            assert_eq!(c.target.port(), 0);
            continue;
        }
        // A negative probe counts only where a listener is.
        let l = &d.listens[index(&c.to_host)];
        let port = c.target.port();
        assert!(
            l.tcp.contains(&port)
                || l.udp.contains(&port)
                || l.udp_shared.contains(&port)
                || (l.dns && port == 53),
            "{c:?}"
        );
    }
    // The outside world may reach web on 443 only: 5432 on db is not granted to it.
    assert!(negatives.iter().any(|c| c.from_host == "outside"
        && c.to_host == "db-1"
        && c.target.port() == 5432
        && c.kind == CheckKind::NotGranted));
    assert!(!negatives
        .iter()
        .any(|c| c.from_host == "outside" && c.to_host == "web-1" && c.target.port() == 443));
    // db sends anything to the outside world: no negative from db to outside.
    assert!(!negatives
        .iter()
        .any(|c| c.from_host == "db-1" && c.to_host == "outside"));
    // The flow of the feature that is off must be blocked, with its condition.
    let off: Vec<&&Check> = negatives
        .iter()
        .filter(|c| c.kind == CheckKind::FeatureOff)
        .collect();
    assert_eq!(off.len(), 2, "{off:?}");
    assert!(off
        .iter()
        .all(|c| c.flow.as_deref() == Some("web->slack/tcp/443")
            && c.condition.as_deref() == Some("slack-alerts")
            && c.name.as_deref() == Some("slack.com")));
    // Sampled ports: each host has three, and they are probed.
    assert!(negatives.iter().any(|c| c.kind == CheckKind::SampledPort));
    // Multicast from web (not granted) reaches no receiver.
    assert!(d
        .checks
        .iter()
        .any(|c| c.kind == CheckKind::MulticastNotGranted
            && c.from_host == "web-1"
            && c.receivers.is_empty()));
}

#[test]
fn all_features_turn_negative_into_positive_and_seed_changes_samples() {
    let spec = spec();
    let all = LabOptions {
        features: FeatureChoice::All,
        run_id: Some(RunId::new("ptl-design").expect("run id")),
        ..LabOptions::default()
    };
    let d = design(&spec, &all).expect("designed");
    assert_eq!(d.features, ["slack-alerts"]);
    assert!(!d.checks.iter().any(|c| c.kind == CheckKind::FeatureOff));
    assert!(d
        .checks
        .iter()
        .any(|c| c.flow.as_deref() == Some("web->slack/tcp/443") && c.expect == Expect::Open));
    let again = design(&spec, &all).expect("designed");
    assert_eq!(d.checks, again.checks, "deterministic");
    let other = design(
        &spec,
        &LabOptions {
            seed: 7,
            ..all.clone()
        },
    )
    .expect("designed");
    assert_ne!(
        d.listens, other.listens,
        "the seed picks other sampled ports"
    );
}

#[test]
fn negative_probes_are_bounded_per_pair_and_in_total() {
    let spec = spec();
    let full = design(&spec, &options(&[], 1)).expect("designed");
    let negatives = |d: &LabDesign| {
        d.checks
            .iter()
            .filter(|c| matches!(c.kind, CheckKind::NotGranted | CheckKind::SampledPort))
            .count()
    };
    let host_pairs = |d: &LabDesign| -> BTreeSet<(String, String)> {
        d.checks
            .iter()
            .filter(|c| matches!(c.kind, CheckKind::NotGranted | CheckKind::SampledPort))
            .map(|c| (c.from_host.clone(), c.to_host.clone()))
            .collect()
    };
    // Flows and features off are never thinned.
    let flows = |d: &LabDesign| {
        d.checks
            .iter()
            .filter(|c| c.expect == Expect::Open || c.kind == CheckKind::FeatureOff)
            .count()
    };
    let all = negatives(&full);
    let pairs = host_pairs(&full);
    assert!(full
        .not_checked
        .iter()
        .all(|n| !n.what.contains("negative probe")));
    // Ordered pairs of parties, senders first: what the bound compares.
    let mut parties: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for n in &full.nodes {
        let sends = !matches!(n.role, Role::External { .. } | Role::Proxy { .. });
        *parties.entry(n.party.as_str()).or_default() |= sends;
    }
    let party_pairs = parties.values().filter(|s| **s).count() * parties.len();

    // A total that every pair of parties fits at 4 probes: fewer per pair,
    // but every pair keeps some, and what was left out is said.
    let total = party_pairs * MIN_NEGATIVE_PER_PAIR;
    assert!(
        all > total,
        "the spec must have more negatives ({all}) than {total}"
    );
    let thin = design(
        &spec,
        &LabOptions {
            max_negative_total: total,
            ..options(&[], 1)
        },
    )
    .expect("designed");
    assert!(negatives(&thin) < all);
    assert!(negatives(&thin) <= pairs.len() * MIN_NEGATIVE_PER_PAIR);
    assert_eq!(host_pairs(&thin), pairs);
    let note = thin
        .not_checked
        .iter()
        .find(|n| n.what.contains("negative probes, on"))
        .expect("the thinning is reported");
    assert!(note.reason.contains("deterministic sample"), "{note:?}");
    assert!(!thin
        .not_checked
        .iter()
        .any(|n| n.what.contains("pairs of parties")));
    assert_eq!(flows(&full), flows(&thin));

    // A total too small for 4 on every pair: a sample of the pairs, in which
    // no host is left out on either side, and the pairs left out are said.
    let sampled = design(
        &spec,
        &LabOptions {
            max_negative_total: 10,
            ..options(&[], 1)
        },
    )
    .expect("designed");
    let kept = host_pairs(&sampled);
    assert!(
        kept.is_subset(&pairs) && kept.len() < pairs.len(),
        "{kept:?}"
    );
    let sources = |p: &BTreeSet<(String, String)>| -> BTreeSet<String> {
        p.iter().map(|x| x.0.clone()).collect()
    };
    let dests = |p: &BTreeSet<(String, String)>| -> BTreeSet<String> {
        p.iter().map(|x| x.1.clone()).collect()
    };
    assert_eq!(sources(&kept), sources(&pairs));
    assert_eq!(dests(&kept), dests(&pairs));
    let note = sampled
        .not_checked
        .iter()
        .find(|n| n.what.contains("ordered pairs of parties"))
        .expect("the pairs left out are reported");
    assert!(note.reason.contains("deterministic sample"), "{note:?}");
    assert_eq!(flows(&full), flows(&sampled));
}

const PING: &str = "portolan: 1
system: {name: Ping}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: users, kind: external}
features:
  - {id: diag}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: icmp}
  - {from: db, to: web, protocol: icmp, required: false, when: diag}
";

#[test]
fn icmp_flows_are_echoed_and_echo_elsewhere_must_be_blocked() {
    let spec = portolan_spec::load_spec(SourceFile::new("portolan.yaml", PING))
        .expect("valid spec")
        .value;
    let d = design(&spec, &options(&[], 2)).expect("designed");
    assert!(d.not_checked.is_empty(), "{:?}", d.not_checked);
    let flow: Vec<&Check> = d
        .checks
        .iter()
        .filter(|c| c.kind == CheckKind::Flow && c.protocol == Transport::Icmp)
        .collect();
    // Each web instance to db, both families.
    assert_eq!(flow.len(), 4, "{flow:?}");
    assert!(flow
        .iter()
        .all(|c| c.flow.as_deref() == Some("web->db/icmp")
            && c.expect == Expect::Open
            && c.to_host == "db-1"
            && c.target.port() == 0));
    let v6 = flow
        .iter()
        .find(|c| c.family == Family::Ipv6)
        .expect("IPv6");
    assert_eq!(v6.target_text(), v6.target.ip().to_string(), "no port");
    // The feature's flow is off: its echo must be blocked.
    let off: Vec<&Check> = d
        .checks
        .iter()
        .filter(|c| c.kind == CheckKind::FeatureOff)
        .collect();
    assert_eq!(off.len(), 2, "{off:?}");
    assert!(off.iter().all(|c| c.protocol == Transport::Icmp
        && c.condition.as_deref() == Some("diag")
        && c.from_host == "db-1"));
    // Echo no flow grants, per ordered pair, both families; none where
    // a flow grants it.
    let echo = |from: &str, to: &str| {
        d.checks
            .iter()
            .filter(|c| {
                c.kind == CheckKind::EchoNotGranted
                    && c.from_host.starts_with(from)
                    && c.to_host.starts_with(to)
            })
            .map(|c| c.family)
            .collect::<Vec<_>>()
    };
    assert_eq!(echo("outside", "web-"), [Family::Ipv4, Family::Ipv6]);
    assert_eq!(echo("outside", "db-"), [Family::Ipv4, Family::Ipv6]);
    assert_eq!(echo("web-", "outside"), [Family::Ipv4, Family::Ipv6]);
    assert_eq!(echo("web-", "web-"), [Family::Ipv4, Family::Ipv6]);
    assert!(echo("web-", "db-").is_empty(), "granted by web->db/icmp");
    assert!(d.checks.iter().all(
        |c| c.protocol != Transport::Icmp || (c.target.port() == 0 && c.source_port.is_none())
    ));
    // Echo needs no listener.
    assert!(d
        .listens
        .iter()
        .all(|l| !l.tcp.contains(&0) && !l.udp.contains(&0)));

    // The feature on: its flow passes, and db's echo to web is granted.
    let on = design(&spec, &options(&["diag"], 2)).expect("designed");
    assert_eq!(
        on.checks
            .iter()
            .filter(|c| c.flow.as_deref() == Some("db->web/icmp") && c.expect == Expect::Open)
            .count(),
        4
    );
    assert!(
        !on.checks.iter().any(|c| c.kind == CheckKind::EchoNotGranted
            && c.from_host == "db-1"
            && c.to_host.starts_with("web-"))
    );

    // Thinned to two probes a pair, the echo requests are what stays.
    let thin = design(
        &spec,
        &LabOptions {
            max_negative_per_pair: 2,
            ..options(&[], 1)
        },
    )
    .expect("designed");
    let echo_pairs: BTreeSet<(&str, &str)> = thin
        .checks
        .iter()
        .filter(|c| c.kind == CheckKind::EchoNotGranted)
        .map(|c| (c.from_host.as_str(), c.to_host.as_str()))
        .collect();
    assert!(echo_pairs.contains(&("outside", "web-1")), "{echo_pairs:?}");
    let ports_there: Vec<&Check> = thin
        .checks
        .iter()
        .filter(|c| matches!(c.kind, CheckKind::NotGranted | CheckKind::SampledPort))
        .filter(|c| echo_pairs.contains(&(c.from_host.as_str(), c.to_host.as_str())))
        .collect();
    assert!(ports_there.is_empty(), "{ports_there:?}");
    assert!(thin
        .not_checked
        .iter()
        .any(|n| n.what.contains("negative probes")));
}

#[test]
fn port_sampling() {
    let mut rng = Rng::new(1, "t");
    let r = |a, b| PortRange { start: a, end: b };
    let (s, note) = sample_ports(Protocol::Tcp, &[r(80, 80), r(443, 443)], &mut rng);
    assert_eq!(s, [(Transport::Tcp, 80), (Transport::Tcp, 443)]);
    assert!(note.is_none());
    let (s, note) = sample_ports(Protocol::Udp, &[r(8000, 8010)], &mut rng);
    assert_eq!(s.len(), 3);
    assert!(s[1].1 > 8000 && s[1].1 < 8010);
    assert!(note.expect("noted").contains("8000-8010"));
    let (s, _) = sample_ports(Protocol::Any, &[], &mut rng);
    assert_eq!(
        s.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [Transport::Tcp, Transport::Tcp, Transport::Udp]
    );
    assert_eq!(
        sample_ports(Protocol::Icmp, &[], &mut rng),
        (vec![(Transport::Icmp, 0)], None)
    );
}

#[test]
fn host_names_are_valid_and_unique() {
    let mut taken = BTreeSet::new();
    let a = host_name("Web_Front", "-1", &mut taken);
    let b = host_name("web-front", "-1", &mut taken);
    assert_eq!(a, "web-front-1");
    assert_eq!(b, "web-front-1-2");
    let long = host_name(&"x".repeat(80), "-12", &mut taken);
    assert!(long.len() <= MAX_HOST_NAME_LEN);
    assert_eq!(host_name("bridge", "", &mut taken), "bridge-2");
}

#[test]
fn a_flow_the_plan_leaves_out_is_not_checked_and_gets_no_sampling_note() {
    // Regression: the lab sampled the ports of a flow it could not probe
    // and reported how it had sampled them.
    let spec = portolan_spec::load_spec(SourceFile::new(
        "portolan.yaml",
        "portolan: 1\nsystem: {name: Demo}\ncomponents:\n  - {id: web}\nexternals:\n  - {id: irc, placeholder: X IRC network}\nflows:\n  - {from: web, to: irc, protocol: tcp, port: \"6000-7000\", required: false}\n",
    ))
    .expect("valid spec")
    .value;
    let deployment = portolan_spec::deployment::load_deployment(
        SourceFile::new(
            "d.yaml",
            "deployment: 1\ncomponents:\n  web: {addresses: [192.0.2.10]}\n",
        ),
        &spec,
    )
    .expect("valid deployment")
    .value;
    let options = LabOptions {
        deployment: Some(deployment),
        run_id: Some(RunId::new("ptl-design").expect("run id")),
        ..LabOptions::default()
    };
    let d = design(&spec, &options).expect("designed");
    assert!(d.samples.is_empty(), "{:?}", d.samples);
    let not: Vec<(&str, &str)> = d
        .not_checked
        .iter()
        .map(|n| (n.what.as_str(), n.reason.as_str()))
        .collect();
    assert_eq!(
        not,
        [(
            "the flow",
            "could not be placed: `irc` has no address in the deployment"
        )]
    );
    assert!(d.checks.iter().all(|c| c.flow.is_none()));
}
