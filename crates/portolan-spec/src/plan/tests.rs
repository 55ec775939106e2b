use super::*;
use crate::deployment::load_deployment;
use crate::{load_spec, Code, SourceFile};

const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: users, kind: external}
externals:
  - {id: irc, placeholder: X IRC network}
  - {id: slack, host: slack.com}
features:
  - {id: irc-alerts}
  - {id: slack-alerts}
parameters:
  - {id: db-port, default: 5432}
  - {id: infra-port}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: $db-port}
  - {from: web, to: irc, protocol: tcp, port: 6697, required: false, when: irc-alerts}
  - {from: web, to: slack, protocol: tcp, port: 443, required: false, when: slack-alerts}
  - {from: web, to: users, protocol: tcp, port: $infra-port, required: false, when: {not: slack-alerts}}
";

fn spec() -> Spec {
    load_spec(SourceFile::new("portolan.yaml", SPEC))
        .expect("valid spec")
        .value
}

fn deploy(spec: &Spec, text: &str) -> Result<Deployment, crate::Diagnostics> {
    load_deployment(SourceFile::new("deployment.yaml", text), spec).map(|l| l.value)
}

/// The plan for a deployment that checks.
fn plan_for(spec: &Spec, text: &str) -> Plan {
    plan(spec, &deploy(spec, text).expect("valid deployment"))
}

/// The planned flow that `found` picks (`what` says which, if none does).
fn flow<'p>(p: &'p Plan, what: &str, found: impl Fn(&PlannedFlow) -> bool) -> &'p PlannedFlow {
    p.flows.iter().find(|f| found(f)).expect(what)
}

#[test]
fn feature_off_is_left_out_with_the_feature_named() {
    let spec = spec();
    let plan = plan_for(&spec, "deployment: 1\nparameters: {infra-port: 8443}\nfeatures: [slack-alerts]\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n");
    let irc = plan
        .left_out
        .iter()
        .find(|l| l.to == "irc")
        .expect("irc flow left out");
    assert_eq!(
        irc.reason,
        LeftOutReason::FeatureOff {
            condition: "irc-alerts".into(),
            off: vec!["irc-alerts".into()],
            on: vec![]
        }
    );
    assert_eq!(irc.reason.to_string(), "feature off: irc-alerts");
    let not = plan
        .left_out
        .iter()
        .find(|l| l.to == "users")
        .expect("`not` flow left out");
    assert!(matches!(&not.reason, LeftOutReason::FeatureOff { on, .. } if on == &["slack-alerts"]));
    // slack stays a host name: nothing resolves it here.
    let slack = flow(&plan, "slack flow planned", |f| f.to.id == "slack");
    assert_eq!(slack.to.hosts, ["slack.com"]);
    assert!(slack.to.nets.is_empty());
}

#[test]
fn flows_of_features_off_are_planned_apart_and_never_in_flows() {
    let spec = spec();
    let plan = plan_for(&spec, "deployment: 1\nparameters: {infra-port: 8443}\nfeatures: [slack-alerts]\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n");
    let off: Vec<(&str, &str)> = plan
        .off_flows
        .iter()
        .map(|o| (o.flow.id.as_str(), o.condition.as_str()))
        .collect();
    // Both are left out too, with their reason; neither opens anything.
    assert_eq!(
        off,
        [
            ("web->irc/tcp/6697", "irc-alerts"),
            ("web->users/tcp/$infra-port", "not slack-alerts")
        ]
    );
    assert!(plan.flows.iter().all(|f| f.to.id != "irc"));
    assert_eq!(plan.left_out.len(), 2);
    // Resolved as though the feature were on: ports from the deployment,
    // an unplaced end (the IRC placeholder) without any address.
    let irc = &plan.off_flows[0];
    assert_eq!(irc.off, ["irc-alerts"]);
    assert!(irc.flow.to.is_unplaced());
    let infra = &plan.off_flows[1];
    assert_eq!(infra.on, ["slack-alerts"]);
    assert_eq!(infra.flow.ports, [PortRange::single(8443)]);
    assert!(infra.flow.to.any);
    // Without a value for its port, an off flow cannot be planned.
    let plan = plan_for(&spec, "deployment: 1\nfeatures: [slack-alerts]\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n");
    assert_eq!(plan.off_flows.len(), 1);
    assert_eq!(plan.left_out.len(), 2);
}

#[test]
fn written_ports_are_resolved_but_not_merged() {
    let spec = load_spec(SourceFile::new(
        "portolan.yaml",
        "portolan: 1\nsystem: {name: Demo}\ncomponents:\n  - {id: a}\n  - {id: b}\nflows:\n  - {from: a, to: b, protocol: udp, port: [9000, \"81-90\", 80], source_port: [7001, 7000]}\n",
    ))
    .expect("valid spec")
    .value;
    let p = plan_for(&spec, "deployment: 1\ncomponents:\n  a: {addresses: [192.0.2.1]}\n  b: {addresses: [192.0.2.2]}\n");
    let flow = &p.flows[0];
    let r = |a, b| PortRange { start: a, end: b };
    assert_eq!(flow.ports, [r(80, 90), r(9000, 9000)]);
    assert_eq!(flow.written_ports, [r(80, 80), r(81, 90), r(9000, 9000)]);
    assert_eq!(flow.source_ports, [r(7000, 7001)]);
    assert_eq!(flow.written_source_ports, [r(7000, 7000), r(7001, 7001)]);
}

#[test]
fn parameters_take_the_deployment_value_over_the_default() {
    let spec = spec();
    let base = "deployment: 1\nparameters: {infra-port: 8443}\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n";
    let p = plan_for(&spec, base);
    let db = flow(&p, "db flow", |f| f.to.id == "db");
    assert_eq!(db.ports, [PortRange::single(5432)]);

    let p = plan_for(
        &spec,
        &base.replace("{infra-port: 8443}", "{infra-port: 8443, db-port: 6543}"),
    );
    let db = flow(&p, "db flow", |f| f.to.id == "db");
    assert_eq!(db.ports, [PortRange::single(6543)]);
    assert_eq!(
        db.from.nets,
        ["192.0.2.10/32".parse::<IpNet>().expect("net")]
    );
}

#[test]
fn outside_without_address_is_explicitly_any_and_nothing_else_is_widened() {
    let spec = spec();
    let p = plan_for(&spec, "deployment: 1\nparameters: {infra-port: 8443}\ncomponents:\n  web: {addresses: [192.0.2.10, \"2001:db8::10\"]}\n  db: {addresses: [192.0.2.20]}\n");
    let inbound = flow(&p, "users flow", |f| f.from.id == "users");
    assert!(inbound.from.any);
    assert_eq!(
        inbound.from.nets,
        [
            "0.0.0.0/0".parse::<IpNet>().expect("v4"),
            "::/0".parse().expect("v6")
        ]
    );
    assert_eq!(inbound.to.nets.len(), 2);
    let outbound = flow(&p, "to users", |f| f.to.id == "users");
    assert!(outbound.to.any && !outbound.from.any);
    for flow in &p.flows {
        if flow.from.id != "users" && flow.to.id != "users" {
            assert!(!flow.from.any && !flow.to.any, "{} widened", flow.id);
            assert!(
                flow.from.nets.iter().all(|n| n.prefix_len() > 0),
                "{}",
                flow.id
            );
            assert!(
                flow.to.nets.iter().all(|n| n.prefix_len() > 0),
                "{}",
                flow.id
            );
        }
    }

    // With addresses, the outside is exactly those.
    let p = plan_for(&spec, "deployment: 1\nparameters: {infra-port: 8443}\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n  users: {addresses: [203.0.113.0/24]}\n");
    let inbound = flow(&p, "users flow", |f| f.from.id == "users");
    assert!(!inbound.from.any);
    assert_eq!(
        inbound.from.nets,
        ["203.0.113.0/24".parse::<IpNet>().expect("net")]
    );
}

#[test]
fn placeholder_without_address_is_a_diagnostic_and_left_out() {
    let spec = spec();
    let text = "deployment: 1\nparameters: {infra-port: 8443}\nfeatures: [irc-alerts]\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n";
    // The IRC flow is optional: a warning, and the plan leaves it out.
    let loaded = load_deployment(SourceFile::new("d.yaml", text), &spec).expect("loads");
    let codes: Vec<Code> = loaded.warnings.items.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::DeploymentUnplacedOptionalFlow]);
    let p = plan(&spec, &loaded.value);
    let irc = p.left_out.iter().find(|l| l.to == "irc").expect("left out");
    assert_eq!(
        irc.reason,
        LeftOutReason::Unplaced {
            peers: vec!["irc".into()]
        }
    );
    // Given an address, it is planned.
    let p = plan_for(
        &spec,
        &format!("{text}externals:\n  irc: {{addresses: [198.51.100.7]}}\n"),
    );
    let irc = flow(&p, "planned", |f| f.to.id == "irc");
    assert_eq!(
        irc.to.nets,
        ["198.51.100.7/32".parse::<IpNet>().expect("net")]
    );
}

#[test]
fn required_flow_without_placement_is_an_error() {
    let spec = spec();
    let err = deploy(&spec, "deployment: 1\nparameters: {infra-port: 8443}\ncomponents:\n  web: {addresses: [192.0.2.10]}\n")
        .expect_err("db is unplaced");
    let codes: Vec<Code> = err.items.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::DeploymentUnplacedFlow]);
    assert!(
        err.items[0].message.contains("web->db/tcp/$db-port"),
        "{}",
        err.items[0].message
    );
}

#[test]
fn missing_parameter_is_an_error_only_when_an_enabled_flow_uses_it() {
    let spec = spec();
    let base = "deployment: 1\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n";
    // `not slack-alerts` holds without features: infra-port is needed.
    let err = deploy(&spec, base).expect_err("infra-port has no value");
    assert!(err
        .items
        .iter()
        .any(|d| d.code == Code::DeploymentMissingParameter));
    // With slack-alerts on, the flow is off and nothing is missing.
    let d = deploy(&spec, &format!("{base}features: [slack-alerts]\n")).expect("valid");
    assert!(plan(&spec, &d)
        .left_out
        .iter()
        .all(|l| !matches!(l.reason, LeftOutReason::MissingParameter { .. })));
}

#[test]
fn proxy_replaces_the_destination_of_tcp_flows() {
    let spec = spec();
    let p = plan_for(&spec, "deployment: 1\nparameters: {infra-port: 8443}\nfeatures: [slack-alerts]\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\nexternals:\n  slack: {proxy: \"192.0.2.50:3128\"}\n");
    let slack = flow(&p, "planned", |f| f.to.id == "slack");
    assert_eq!(
        slack.to.nets,
        ["192.0.2.50/32".parse::<IpNet>().expect("net")]
    );
    assert!(slack.to.hosts.is_empty());
    assert_eq!(slack.ports, [PortRange::single(3128)]);
    let via = slack.via_proxy.as_ref().expect("proxied");
    assert_eq!(via.destination.hosts, ["slack.com"]);
    assert_eq!(via.ports, [PortRange::single(443)]);
}

const HOSTS_SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: api}
  - {id: db, kind: dependency}
  - {id: users, kind: external}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: api, protocol: tcp, port: 8080}
  - {from: api, to: db, protocol: tcp, port: 5432}
  - {from: api, to: api, protocol: udp, port: 7000}
  - {from: web, to: api, protocol: udp, port: 9000, multicast: 239.1.1.1}
";

#[test]
fn components_of_one_machine_are_one_host_and_their_flows_are_local() {
    let spec = load_spec(SourceFile::new("portolan.yaml", HOSTS_SPEC))
        .expect("valid spec")
        .value;
    let d = deploy(
        &spec,
        "deployment: 1\ncomponents:\n  api: {addresses: [\"2001:db8::10\", 192.0.2.10]}\n  web: {addresses: [192.0.2.10, \"2001:db8::10\"]}\n  db: {addresses: [192.0.2.20]}\n",
    )
    .expect("equal address sets are one host");
    let p = plan(&spec, &d);
    let names: Vec<(&str, &[String])> = p
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.components.as_slice()))
        .collect();
    assert_eq!(
        names,
        [
            ("web+api", &["web".to_owned(), "api".to_owned()][..]),
            ("db", &["db".to_owned()][..])
        ]
    );
    let host = p.host_of("api").expect("api's host");
    assert!(host.one_machine);
    assert_eq!(host.nets.len(), 2);
    assert_eq!(p.host("web+api"), Some(host));
    assert!(p.host_of("users").is_none());
    let local: Vec<&str> = p
        .flows
        .iter()
        .filter(|f| f.local)
        .map(|f| f.id.as_str())
        .collect();
    // Only web->api between two components of one machine: not the
    // self flow, not multicast (it also leaves the machine), not api->db.
    assert_eq!(local, ["web->api/tcp/8080"]);
    assert_eq!(p.network_flows().count(), p.flows.len() - 1);
    // Kept in the plan, with addresses, so that reports show it.
    let flow = flow(&p, "local flow", |f| f.local);
    let sorted = |nets: &[IpNet]| {
        let mut nets = nets.to_vec();
        nets.sort();
        nets
    };
    assert_eq!(sorted(&flow.from.nets), sorted(&flow.to.nets));
    let json = serde_json::to_value(&p).expect("plan JSON");
    assert_eq!(json["hosts"][0]["name"], "web+api");
    assert_eq!(json["flows"][1]["local"], true);

    // Two machines each running web and api: traffic between the roles
    // may cross the network, so the flow is not local.
    let p = plan_for(
        &spec,
        "deployment: 1\ncomponents:\n  api: {addresses: [192.0.2.10, 192.0.2.11], host: app}\n  web: {addresses: [192.0.2.11, 192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n",
    );
    assert_eq!(p.hosts[0].name, "app");
    assert!(!p.hosts[0].one_machine);
    assert!(p.flows.iter().all(|f| !f.local));
}

#[test]
fn a_partial_overlap_is_not_a_host() {
    let spec = load_spec(SourceFile::new("portolan.yaml", HOSTS_SPEC))
        .expect("valid spec")
        .value;
    let err = deploy(
        &spec,
        "deployment: 1\ncomponents:\n  api: {addresses: [192.0.2.10, 192.0.2.11]}\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n",
    )
    .expect_err("partial overlap");
    let codes: Vec<Code> = err.items.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::DeploymentOverlappingAddresses]);
}

#[test]
fn normalise_merges_ranges() {
    let r = |a, b| PortRange { start: a, end: b };
    assert_eq!(
        normalise(vec![r(443, 443), r(80, 80), r(81, 90), r(80, 80)]),
        [r(80, 90), r(443, 443)]
    );
}
