//! One test per rule of the security-group semantics (A1..A5 of the module
//! documentation), on `fixtures/aws/shop-groups.json` (the shape of the real
//! `aws ec2 describe-security-groups` output). Each case states the right
//! answer and why.

#![allow(clippy::unwrap_used)]

use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};

use super::*;

const SPEC: &str = include_str!("../../fixtures/shop.portolan.yaml");
const DEPLOYMENT: &str = include_str!("../../fixtures/shop.aws.deployment.yaml");
const GROUPS: &str = include_str!("../../fixtures/aws/shop-groups.json");

fn shop() -> Plan {
    let spec = load_spec(SourceFile::new("shop.portolan.yaml", SPEC))
        .unwrap()
        .value;
    let deployment = load_deployment(SourceFile::new("d.yaml", DEPLOYMENT), &spec)
        .unwrap()
        .value;
    plan(&spec, &deployment)
}

fn run(text: &str) -> Section {
    verify(&shop(), &Groups::read("groups.json", text).unwrap()).unwrap()
}

fn check<'a>(s: &'a Section, flow: &str) -> &'a FlowCheck {
    s.checks.iter().find(|c| c.flow == flow).unwrap()
}

use Verdict::{Admitted, Blocked, NotGoverned};

#[test]
fn every_rule_gives_the_documented_answer() {
    let s = run(GROUPS);
    let cases: &[(&str, &str, Verdict, &str)] = &[
        ("A1", "outside->web/tcp/443", Admitted,
         "the outside has no group (not governed on its side); shop-web admits tcp 443 from 0.0.0.0/0 and ::/0"),
        ("A3", "web->api/tcp/8080", Admitted,
         "web's egress admits all traffic to 0.0.0.0/0 (which holds api's private address); shop-api admits 8080 from the group shop-web"),
        ("A3", "api->db/tcp/5432", Admitted,
         "shop-db admits 5432 from the group shop-api, api's group"),
        ("A4", "api->db/tcp/8000-8100", Blocked,
         "shop-db admits FromPort 8000 ToPort 8049 only: 8050-8100 is not admitted"),
        ("A3", "monitor->api/tcp/9100", Admitted,
         "192.0.2.10 is inside 192.0.2.0/24 of shop-api's rule 2"),
    ];
    for (rule, flow, expected, why) in cases {
        let c = check(&s, flow);
        assert_eq!(c.verdict, *expected, "{rule}: {flow}: {why}\n{c:#?}");
    }
}

#[test]
fn a2_a_group_without_egress_rules_blocks_everything_it_sends() {
    // shop-db has no egress rule: were db to send, nothing would pass.
    let text = GROUPS.replace(
        "\"GroupName\": \"shop-web\"",
        "\"GroupName\": \"shop-web-old\"",
    );
    let err = verify(&shop(), &Groups::read("g.json", &text).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "the deployment gives web the security group `shop-web`, which this file does not hold"
        ),
        "{err}"
    );
    // An egress list emptied: web (the sender of web->api) is blocked.
    let start = GROUPS.find("\"IpPermissionsEgress\": [").unwrap();
    let end = start + GROUPS[start..].find("\"VpcId\"").unwrap();
    let text = format!(
        "{}\"IpPermissionsEgress\": [],\n            {}",
        &GROUPS[..start],
        &GROUPS[end..]
    );
    let s = run(&text);
    let c = check(&s, "web->api/tcp/8080");
    assert_eq!(c.verdict, Blocked, "{c:#?}");
    assert!(
        c.detail
            .starts_with("web egress (shop-web): no rule admits tcp 8080 with api"),
        "{}",
        c.detail
    );
}

#[test]
fn a1_only_the_initiating_direction_is_checked() {
    // shop-web admits nothing but 443 in, and api's answers to web are not
    // rules of shop-web's ingress: the stateful group admits them anyway.
    let s = run(GROUPS);
    let c = check(&s, "web->api/tcp/8080");
    assert!(
        c.detail.contains("web egress (shop-web): admitted"),
        "{}",
        c.detail
    );
    assert!(
        c.detail.contains("api ingress (shop-api): admitted"),
        "{}",
        c.detail
    );
    assert!(!c.detail.contains("web ingress"));
}

#[test]
fn a4_icmp_type_and_protocol_numbers() {
    let perm = |proto: &str, from: Option<i64>, to: Option<i64>| Permission {
        ip_protocol: proto.into(),
        from_port: from,
        to_port: to,
        ip_ranges: Vec::new(),
        ipv6_ranges: Vec::new(),
        prefix_list_ids: Vec::new(),
        user_id_group_pairs: Vec::new(),
    };
    let at = Position::file("x");
    assert_eq!(
        protocol_traffic(&perm("-1", None, None), &at).unwrap(),
        Traffic::all()
    );
    assert_eq!(
        protocol_traffic(&perm("icmp", Some(8), Some(-1)), &at).unwrap(),
        Traffic::of(proto::ICMP, RangeSet::range(8, 8))
    );
    assert_eq!(
        protocol_traffic(&perm("6", Some(80), Some(81)), &at).unwrap(),
        Traffic::of(proto::TCP, RangeSet::range(80, 81))
    );
    assert_eq!(
        protocol_traffic(&perm("50", None, None), &at).unwrap(),
        Traffic::of(50, RangeSet::range(0, MAX_PORT))
    );
    assert!(protocol_traffic(&perm("tcpp", None, None), &at).is_err());
}

#[test]
fn excess_calls_out_any_and_is_exact_for_blocks() {
    let s = run(GROUPS);
    let ssh: Vec<&Excess> = s.excess.iter().filter(|e| e.traffic == "tcp 22").collect();
    assert_eq!(ssh.len(), 1, "{:#?}", s.excess);
    assert!(ssh[0].any && ssh[0].subject == "api" && ssh[0].direction == Direction::Ingress);
    assert!(ssh[0].rule.text.contains("ssh") || ssh[0].rule.text.contains("tcp 22"));
    let metrics: Vec<&Excess> = s
        .excess
        .iter()
        .filter(|e| e.traffic == "tcp 9100")
        .collect();
    assert_eq!(metrics.len(), 1);
    assert_eq!(
        metrics[0].peers,
        "192.0.2.0/29, 192.0.2.8/31, 192.0.2.11, 192.0.2.12/30, 192.0.2.16/28, 192.0.2.32/27, 192.0.2.64/26, 192.0.2.128/25"
    );
    // A5: the default egress rule opens every port to any address.
    assert!(s
        .excess
        .iter()
        .any(|e| e.subject == "web" && e.direction == Direction::Egress && e.any));
    // 443 from anywhere is what outside->web needs: not excess.
    assert!(!s
        .excess
        .iter()
        .any(|e| e.subject == "web" && e.traffic == "tcp 443"));
}

#[test]
fn a_fix_is_an_authorize_command_that_admits_the_flow() {
    let s = run(GROUPS);
    let fix = &s
        .fixes
        .iter()
        .find(|f| f.flow == "api->db/tcp/8000-8100")
        .unwrap()
        .text;
    assert!(fix.starts_with("aws ec2 authorize-security-group-ingress --group-id sg-0a1b2c3d4e5f60003 --ip-permissions '"), "{fix}");
    assert!(fix.contains("\"FromPort\":8050,\"ToPort\":8100"), "{fix}");
    assert!(
        fix.contains("\"GroupId\":\"sg-0a1b2c3d4e5f60002\""),
        "{fix}"
    );
}

#[test]
fn a_flow_between_ends_without_groups_is_not_governed() {
    let s = run(GROUPS);
    assert!(s.checks.iter().all(|c| c.verdict != NotGoverned));
}

#[test]
fn bad_files_are_errors_with_position() {
    let e = Groups::read("g.json", "{\"SecurityGroups\": [}")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("g.json:1:21: error[verify::not-security-groups]: not JSON"),
        "{e}"
    );
    let e = Groups::read("g.json", "{\"Reservations\": []}")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("g.json:") && e.contains("describe-security-groups"),
        "{e}"
    );
    let bad = GROUPS.replacen("192.0.2.0/24", "192.0.2.0/33", 1);
    let e = verify(&shop(), &Groups::read("g.json", &bad).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`192.0.2.0/33` is not a CIDR block"), "{e}");
    assert!(e.starts_with("g.json:"), "{e}");
}
