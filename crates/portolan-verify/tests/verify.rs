//! Host rulesets in the kernel twin, on the fixtures of `fixtures/hosts`
//! (see its README for how each was produced). Each case states the right
//! answer and why. Needs root (network namespaces, nft, iptables-restore):
//! without it the tests say so loudly and pass, unless
//! `PORTOLAN_REQUIRE_LAB=1`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};
use portolan_verify::host::{self, HostRuleset};
use portolan_verify::{FlowCheck, InputKind, Section, Verdict};

/// Whether the kernel twin can run here: root, `nft` and `iptables-restore`.
fn twin_available(test: &str) -> bool {
    portolan_test_support::lab_available_with(
        test,
        portolan_lab::check_privileges(),
        &[portolan_test_support::NFT, ("iptables-restore", "iptables")],
    )
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn shop(deployment: &str) -> Plan {
    let text = std::fs::read_to_string(fixtures().join("shop.portolan.yaml")).unwrap();
    let spec = load_spec(SourceFile::new("shop.portolan.yaml", text))
        .unwrap()
        .value;
    let text = std::fs::read_to_string(fixtures().join(deployment)).unwrap();
    let deployment = load_deployment(SourceFile::new(deployment, text), &spec)
        .unwrap()
        .value;
    plan(&spec, &deployment)
}

fn ruleset(plan: &Plan, kind: InputKind, host: &str, file: &str) -> HostRuleset {
    let text = std::fs::read_to_string(fixtures().join("hosts").join(file)).unwrap();
    HostRuleset::read(kind, host, file, text, plan).unwrap()
}

fn run(plan: &Plan, rulesets: &[HostRuleset]) -> Vec<Section> {
    host::verify(plan, rulesets).unwrap()
}

/// The shop's hosts (`shop.hosts.deployment.yaml`) verified against the
/// fixture rulesets `(kind, host, file)` in the kernel twin: the sections;
/// `None` after the loud skip where the twin cannot run.
fn twin(test: &str, files: &[(InputKind, &str, &str)]) -> Option<Vec<Section>> {
    if !twin_available(test) {
        return None;
    }
    let plan = shop("shop.hosts.deployment.yaml");
    let rulesets: Vec<HostRuleset> = files
        .iter()
        .map(|(kind, host, file)| ruleset(&plan, *kind, host, file))
        .collect();
    Some(run(&plan, &rulesets))
}

/// Asserts that some rule opens ssh (TCP 22) to any address, `why`.
fn assert_ssh_from_anywhere(section: &Section, why: &str) {
    assert!(
        section
            .excess
            .iter()
            .any(|e| e.any && e.traffic.starts_with("tcp 22")),
        "{why}: {:#?}",
        section.excess
    );
}

fn check<'a>(section: &'a Section, flow: &str) -> &'a FlowCheck {
    section
        .checks
        .iter()
        .find(|c| c.flow == flow)
        .unwrap_or_else(|| panic!("no {flow} in {:#?}", section.checks))
}

/// (flow, right answer, a piece of the deciding rule, why).
type Case = (&'static str, Verdict, &'static str, &'static str);

fn assert_cases(section: &Section, cases: &[Case]) {
    for (flow, verdict, rule, why) in cases {
        let c = check(section, flow);
        assert_eq!(c.verdict, *verdict, "{flow}: {why}\n{c:#?}");
        assert!(
            c.rules
                .iter()
                .any(|r| r.text.contains(rule)
                    || r.comment.as_deref().is_some_and(|k| k.contains(rule))),
            "{flow}: the deciding rule should mention `{rule}` ({why})\n{c:#?}"
        );
    }
}

const API_NFT: &[Case] = &[
    ("web->api/tcp/8080", Verdict::Admitted, "web to api",
     "inet filter input accepts web's IPv4 address (in set @web) and IPv6 address on 8080; the ip table's chain accepts by policy"),
    ("api->db/tcp/5432", Verdict::Admitted, "api to db",
     "output jumps to out_filter, where 5432 to 192.0.2.22 is accepted"),
    ("api->db/tcp/8000-8100", Verdict::Blocked, "no high ports",
     "the accept for 8000-8100 is shadowed by the earlier drop of 8000-8200 in out_filter"),
    ("monitor->api/tcp/9100", Verdict::Blocked, "metrics only from the old collector",
     "inet filter accepts 9100, but the ip table's input chain (a second base chain on the hook) drops it: both must accept"),
];

#[test]
fn nft_text_inet_and_ip_tables_jump_chains_and_shadowed_rules() {
    let Some(sections) = twin(
        "nft_text_inet_and_ip_tables_jump_chains_and_shadowed_rules",
        &[(InputKind::Nftables, "api", "api-inet-and-ip.nft")],
    ) else {
        return;
    };
    let s = &sections[0];
    assert_cases(s, API_NFT);
    // The blocked flow's rule names table, chain and handle.
    let blocked = check(s, "api->db/tcp/8000-8100");
    assert!(
        blocked.rules[0]
            .text
            .starts_with("inet filter out_filter handle "),
        "{blocked:#?}"
    );
    // Over-broad: ssh from any address, by the inet rule that accepts it.
    let ssh: Vec<_> = s
        .excess
        .iter()
        .filter(|e| e.any && e.traffic.starts_with("tcp 22"))
        .collect();
    assert_eq!(ssh.len(), 1, "{:#?}", s.excess);
    assert_eq!(ssh[0].rule.comment.as_deref(), Some("ssh from anywhere"));
    // The fix is inserted before the shadowing drop, in nft syntax.
    let fix = s
        .fixes
        .iter()
        .find(|f| f.flow == "api->db/tcp/8000-8100")
        .unwrap();
    assert_eq!(
        fix.text,
        "insert rule inet filter out_filter ip daddr { 192.0.2.22 } tcp dport { 8000-8100 } accept comment \"api->db/tcp/8000-8100\""
    );
}

#[test]
fn nft_json_gives_the_same_answers() {
    let Some(sections) = twin(
        "nft_json_gives_the_same_answers",
        &[(InputKind::Nftables, "api", "api-inet-and-ip.json")],
    ) else {
        return;
    };
    assert_cases(&sections[0], API_NFT);
}

#[test]
fn sets_and_verdict_maps() {
    let Some(sections) = twin(
        "sets_and_verdict_maps",
        &[(InputKind::Nftables, "db", "db-sets-maps.nft")],
    ) else {
        return;
    };
    let s = &sections[0];
    assert_cases(
        s,
        &[
            ("api->db/tcp/5432", Verdict::Admitted, "postgres from the app servers",
             "the verdict map sends 5432 to chain from_apps, whose set holds api's 192.0.2.21"),
            ("api->db/tcp/8000-8100", Verdict::Blocked, "policy drop",
             "8000-8049 is accepted, 8050-8100 falls to the input policy drop (8050 and 8100 are probed)"),
        ],
    );
    // web (192.0.2.20) is in the set too: it reaches postgres without a flow.
    assert!(
        s.excess
            .iter()
            .any(|e| e.peer.as_deref() == Some("web") && e.traffic.starts_with("tcp 5432")),
        "{:#?}",
        s.excess
    );
}

#[test]
fn ufw_rulesets_written_by_ufw() {
    let Some(sections) = twin(
        "ufw_rulesets_written_by_ufw",
        &[
            (InputKind::Iptables, "api", "api-ufw.rules.v4"),
            (InputKind::Iptables, "api", "api-ufw.rules.v6"),
        ],
    ) else {
        return;
    };
    let s = &sections[0];
    assert_cases(
        s,
        &[
            ("web->api/tcp/8080", Verdict::Blocked, "policy drop",
             "`ufw allow from 192.0.2.20` admits web's IPv4 address only: its IPv6 probe meets ufw's default deny (the ip6 INPUT policy)"),
            ("monitor->api/tcp/9100", Verdict::Blocked, "ufw-user-input",
             "`ufw deny 9100/tcp` drops it in chain ufw-user-input"),
            ("api->db/tcp/5432", Verdict::Admitted, "ufw",
             "ufw's default allow outgoing: ufw-user-output/ufw-after-output, then the OUTPUT policy accept"),
        ],
    );
    assert_ssh_from_anywhere(s, "ufw allow 22/tcp opens ssh to any address");
}

#[test]
fn firewalld_ruleset_written_by_firewalld() {
    let Some(sections) = twin(
        "firewalld_ruleset_written_by_firewalld",
        &[(InputKind::Nftables, "api", "api-firewalld.nft")],
    ) else {
        return;
    };
    let s = &sections[0];
    assert_cases(
        s,
        &[
            ("web->api/tcp/8080", Verdict::Admitted, "tcp dport 8080 accept",
             "`--add-port=8080/tcp` in the public zone (eth0) admits it from any address, both families"),
            ("monitor->api/tcp/9100", Verdict::Blocked, "reject with icmpx admin-prohibited",
             "the rich rule admits 9100 from 192.0.2.99 only; monitor (192.0.2.10) falls to the zone's final reject"),
            ("api->db/tcp/5432", Verdict::Admitted, "filter_OUTPUT",
             "firewalld does not filter output by default: chain filter_OUTPUT's policy accept"),
        ],
    );
    assert_ssh_from_anywhere(
        s,
        "the public zone's default ssh service opens 22 to any address",
    );
}

#[test]
fn docker_style_iptables_with_jump_chains() {
    let Some(sections) = twin(
        "docker_style_iptables_with_jump_chains",
        &[(InputKind::Iptables, "api", "api-docker.rules.v4")],
    ) else {
        return;
    };
    let s = &sections[0];
    let web = check(s, "web->api/tcp/8080");
    // IPv4 is admitted by the `services` chain; the host has no ip6tables
    // rules at all, so IPv6 passes unfiltered too.
    assert_eq!(web.verdict, Verdict::Admitted, "{web:#?}");
    assert!(
        web.rules
            .iter()
            .any(|r| r.comment.as_deref() == Some("web to api")),
        "{web:#?}"
    );
    assert_cases(
        s,
        &[(
            "monitor->api/tcp/9100",
            Verdict::Blocked,
            "services",
            "the accept of 9100 in `services` comes after `-s 192.0.2.0/24 -j DROP`, which holds monitor",
        )],
    );
    let fix = s
        .fixes
        .iter()
        .find(|f| f.flow == "monitor->api/tcp/9100")
        .unwrap();
    assert_eq!(
        fix.text,
        "-I services -s 192.0.2.10 -p tcp --dport 9100 -m comment --comment \"monitor->api/tcp/9100\" -j ACCEPT"
    );
    // Too broad: 1-1024 from any address.
    assert!(
        s.excess
            .iter()
            .any(|e| e.any
                && e.rule.comment.as_deref() == Some("low ports from anywhere (too broad)")),
        "{:#?}",
        s.excess
    );
    // docker0 is named by the rules but carries none of the host's traffic.
    assert!(
        s.assumptions.iter().any(|a| a.contains("`docker0`")),
        "{:#?}",
        s.assumptions
    );
}

#[test]
fn a_ruleset_the_kernel_refuses_is_an_input_error_with_its_line() {
    if !twin_available("a_ruleset_the_kernel_refuses_is_an_input_error_with_its_line") {
        return;
    }
    let plan = shop("shop.hosts.deployment.yaml");
    let bad = HostRuleset::read(
        InputKind::Nftables,
        "api",
        "bad.nft",
        "table inet filter {\n  chain input {\n    tcp dport 22 acept\n  }\n}\n".into(),
        &plan,
    )
    .unwrap();
    let e = host::verify(&plan, &[bad]).expect_err("refused");
    assert!(!e.is_environment(), "{e}");
    assert!(e.to_string().starts_with("bad.nft:3:"), "{e}");
}

// Round trip: what `portolan generate` writes verifies clean against its
// own spec (every flow admitted, nothing open beyond the plan), for every
// target verify reads. (The cilium target writes CiliumNetworkPolicies,
// which verify does not read.)

use portolan_firewall::aws::terraform;
use portolan_firewall::{Options, TargetKind};
use portolan_verify::{aws, kubernetes};

fn generated(plan: &Plan, target: TargetKind) -> Vec<(String, String)> {
    target
        .target()
        .generate(plan, &Options::default())
        .unwrap()
        .files
        .into_iter()
        .map(|(p, t)| (p.display().to_string(), t))
        .collect()
}

fn assert_clean(sections: &[Section]) {
    for s in sections {
        for c in &s.checks {
            assert!(
                matches!(c.verdict, Verdict::Admitted | Verdict::NotGoverned),
                "{} {:?}: {c:#?}",
                s.source,
                s.host
            );
        }
        assert!(
            s.excess.is_empty(),
            "{} {:?}: {:#?}",
            s.source,
            s.host,
            s.excess
        );
    }
}

#[test]
fn round_trip_nftables_and_iptables() {
    if !twin_available("round_trip_nftables_and_iptables") {
        return;
    }
    let plan = shop("shop.hosts.deployment.yaml");
    for (target, kind) in [
        (TargetKind::Nftables, InputKind::Nftables),
        (TargetKind::Iptables, InputKind::Iptables),
    ] {
        let rulesets: Vec<HostRuleset> = generated(&plan, target)
            .into_iter()
            .map(|(file, text)| {
                let host = file.split('.').next().unwrap().to_owned();
                HostRuleset::read(kind, &host, &file, text, &plan).unwrap()
            })
            .collect();
        assert!(rulesets.len() >= 4, "{target:?}: {}", rulesets.len());
        assert_clean(&run(&plan, &rulesets));
    }
}

#[test]
fn round_trip_kubernetes() {
    let plan = shop("shop.k8s.deployment.yaml");
    let mut manifests = kubernetes::Manifests::default();
    for (file, text) in generated(&plan, TargetKind::Kubernetes) {
        manifests.read(&file, &text).unwrap();
    }
    assert_clean(&[kubernetes::verify(&plan, &manifests, "generated").unwrap()]);
}

#[test]
fn round_trip_kubernetes_with_long_names() {
    // A 200-character system name and ids (which only a typed plan can
    // carry) give cut, hashed names and labels (issue 9 row 10); the pod
    // selectors are the deployment's, so verify still finds every flow.
    let mut plan = shop("shop.k8s.deployment.yaml");
    plan.system = "A Shop With A Very Long Name ".repeat(7);
    let long = |id: &str| format!("{id}-{}", "x".repeat(196));
    for c in &mut plan.components {
        c.id = long(&c.id);
    }
    for f in &mut plan.flows {
        f.from.id = long(&f.from.id);
        f.to.id = long(&f.to.id);
    }
    let files = generated(&plan, TargetKind::Kubernetes);
    assert_eq!(files.len(), 3);
    let mut manifests = kubernetes::Manifests::default();
    for (file, text) in &files {
        let object: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        let metadata = &object["metadata"];
        let labels = metadata["labels"].as_object().unwrap().values();
        for value in labels.chain([&metadata["name"]]) {
            assert!(value.as_str().unwrap().len() <= 63, "{file}: {value}");
        }
        manifests.read(file, text).unwrap();
    }
    assert_clean(&[kubernetes::verify(&plan, &manifests, "generated").unwrap()]);
}

#[test]
fn round_trip_aws() {
    // The Terraform groups and rules, as describe-security-groups would
    // list them once applied (Terraform removes a new group's default
    // egress rule, so only the generated rules are there).
    let plan = shop("shop.aws.deployment.yaml");
    let (file, _) = terraform(&plan, &Options::default()).unwrap();
    let id = |reference: &str| {
        let name = reference
            .trim_start_matches("${aws_security_group.")
            .trim_end_matches(".id}");
        format!("sg-{}", name.replace('_', "-"))
    };
    let mut groups = Vec::new();
    for (resource, group) in &file.resource.aws_security_group {
        let reference = format!("${{aws_security_group.{resource}.id}}");
        let permissions = |rules: &indexmap::IndexMap<
            String,
            portolan_firewall::aws::SecurityGroupRule,
        >| {
            rules
                .values()
                .filter(|r| r.security_group_id == reference)
                .map(|r| {
                    serde_json::json!({
                        "IpProtocol": r.ip_protocol,
                        "FromPort": r.from_port,
                        "ToPort": r.to_port,
                        "IpRanges": r.cidr_ipv4.iter().map(|c| serde_json::json!({"CidrIp": c, "Description": r.description})).collect::<Vec<_>>(),
                        "Ipv6Ranges": r.cidr_ipv6.iter().map(|c| serde_json::json!({"CidrIpv6": c})).collect::<Vec<_>>(),
                        "PrefixListIds": r.prefix_list_id.iter().map(|p| serde_json::json!({"PrefixListId": p})).collect::<Vec<_>>(),
                        "UserIdGroupPairs": r.referenced_security_group_id.iter().map(|g| serde_json::json!({"GroupId": id(g), "UserId": "123456789012"})).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>()
        };
        groups.push(serde_json::json!({
            "GroupName": group.name,
            "GroupId": id(&reference),
            "Description": group.description,
            "VpcId": "vpc-0123456789abcdef0",
            "OwnerId": "123456789012",
            "IpPermissions": permissions(&file.resource.aws_vpc_security_group_ingress_rule),
            "IpPermissionsEgress": permissions(&file.resource.aws_vpc_security_group_egress_rule),
        }));
    }
    let text =
        serde_json::to_string_pretty(&serde_json::json!({ "SecurityGroups": groups })).unwrap();
    let groups = aws::Groups::read("described.json", &text).unwrap();
    assert_clean(&[aws::verify(&plan, &groups).unwrap()]);
}

/// ICMP echo, multicast, a group of machines, two components of one
/// machine and a flow of every protocol: probed in the twin, not left
/// untested.
const CLUSTER_SPEC: &str = "portolan: 1
system: {name: Cluster}
components:
  - {id: outside, kind: external}
  - {id: node}
  - {id: app}
  - {id: cache}
  - {id: mon, kind: dependency}
flows:
  - {from: mon, to: node, protocol: icmp}
  - {from: node, to: node, protocol: tcp, port: 7000}
  - {from: node, to: node, protocol: udp, source_port: 7003, port: 7003}
  - {from: node, to: node, protocol: udp, port: 7001, multicast: 239.1.1.1}
  - {from: mon, to: node, protocol: udp, port: 7002, multicast: 239.1.1.2}
  - {from: node, to: outside, protocol: any}
  - {from: app, to: cache, protocol: tcp, port: 6379}
  - {from: mon, to: app, protocol: icmp}
";

const CLUSTER_DEPLOYMENT: &str = "deployment: 1
components:
  node: {addresses: [192.0.2.31, 192.0.2.32]}
  app: {host: apphost, addresses: [192.0.2.40]}
  cache: {addresses: [192.0.2.40]}
  mon: {addresses: [192.0.2.10]}
";

/// The node's ruleset: echo from mon, the cluster port between members,
/// the discovery group both ways, anything outside the site out.
const NODE_NFT: &str = r#"table inet filter {
  set members { type ipv4_addr; elements = { 192.0.2.31, 192.0.2.32 } }
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ip saddr 192.0.2.10 icmp type echo-request accept comment "ping from mon"
    ip saddr @members tcp dport 7000 accept comment "cluster in"
    ip saddr @members udp sport 7003 udp dport 7003 accept comment "gossip in"
    ip daddr 239.1.1.1 udp dport 7001 accept comment "discovery in"
  }
  chain output {
    type filter hook output priority filter; policy drop;
    ct state established,related accept
    ip daddr @members tcp dport 7000 accept comment "cluster out"
    ip daddr @members udp sport 7003 udp dport 7003 accept comment "gossip out"
    ip daddr 239.1.1.1 udp dport 7001 accept comment "discovery out"
    ip daddr != 192.0.2.0/24 accept comment "beyond the site"
  }
}
"#;

/// The app host's: loopback and ssh only.
const APP_NFT: &str = r#"table inet filter {
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iif "lo" accept comment "loopback"
    tcp dport 22 accept comment "ssh"
  }
}
"#;

const CLUSTER_CASES: &[Case] = &[
    ("mon->node/icmp", Verdict::Admitted, "ping from mon",
     "a real echo request from mon's address is accepted by the echo rule; the kernel answers"),
    ("node->node/tcp/7000", Verdict::Admitted, "cluster",
     "node is two machines: a connect from the other member (192.0.2.32) in, and to it out, both by the @members rules"),
    ("node->node/udp/7003:7003", Verdict::Admitted, "gossip",
     "regression: a fixed source port equal to the port, between two members: each side is probed with its own listeners (the sender once bound where the other side's listener was: `Address already in use`)"),
    ("node->node@239.1.1.1/udp/7001", Verdict::Admitted, "discovery",
     "the datagram to 239.1.1.1 leaves by `discovery out` and one from the other member arrives by `discovery in`"),
    ("mon->node@239.1.1.2/udp/7002", Verdict::Blocked, "policy drop",
     "no rule admits 239.1.1.2: the datagram from mon never reaches the group's member, dropped by the input policy"),
    ("node->outside/any", Verdict::Admitted, "beyond the site",
     "TCP, UDP and echo to an outside address all leave by `beyond the site` (answers come back as established)"),
    ("app->cache/tcp/6379", Verdict::Admitted, "loopback",
     "app and cache share one machine: the connect goes over lo and `iif lo accept` admits it"),
    ("mon->app/icmp", Verdict::Blocked, "policy drop",
     "the app host admits only ssh from outside: the echo request is dropped by the input policy"),
];

#[test]
fn icmp_multicast_groups_and_loopback_are_probed() {
    if !twin_available("icmp_multicast_groups_and_loopback_are_probed") {
        return;
    }
    let spec = load_spec(SourceFile::new("cluster.yaml", CLUSTER_SPEC))
        .unwrap()
        .value;
    let deployment = load_deployment(SourceFile::new("d.yaml", CLUSTER_DEPLOYMENT), &spec)
        .unwrap()
        .value;
    let plan = plan(&spec, &deployment);
    let read = |host: &str, text: &str| {
        HostRuleset::read(InputKind::Nftables, host, "x.nft", text.to_owned(), &plan).unwrap()
    };
    let sections = run(&plan, &[read("node", NODE_NFT), read("apphost", APP_NFT)]);
    let mut all = sections[0].clone();
    all.checks.extend(sections[1].checks.clone());
    let ids: Vec<&str> = all.checks.iter().map(|c| c.flow.as_str()).collect();
    for (flow, ..) in CLUSTER_CASES {
        assert!(ids.contains(flow), "{flow} not checked: {ids:?}");
    }
    assert_cases(&all, CLUSTER_CASES);
    assert!(
        all.checks.iter().all(|c| c.verdict != Verdict::Untested),
        "{:#?}",
        all.checks
    );
    // The fix for the blocked group names the group as destination.
    let fix = sections[0]
        .fixes
        .iter()
        .find(|f| f.flow == "mon->node@239.1.1.2/udp/7002")
        .unwrap();
    assert_eq!(
        fix.text,
        "add rule inet filter input ip saddr { 192.0.2.10 } ip daddr { 239.1.1.2 } udp dport { 7002 } accept comment \"mon->node@239.1.1.2/udp/7002\""
    );
    let fix = sections[1]
        .fixes
        .iter()
        .find(|f| f.flow == "mon->app/icmp")
        .unwrap();
    assert_eq!(
        fix.text,
        "add rule inet filter input ip saddr { 192.0.2.10 } icmp type echo-request accept comment \"mon->app/icmp\""
    );
}
