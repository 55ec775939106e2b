//! One test per rule of the NetworkPolicy semantics (R1..R9 of the module
//! documentation), on the fixtures in `fixtures/kubernetes`. Each case
//! states the right answer and why.

#![allow(clippy::unwrap_used)]

use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};

use super::*;

const SPEC: &str = include_str!("../../fixtures/shop.portolan.yaml");
const DEPLOYMENT: &str = include_str!("../../fixtures/shop.k8s.deployment.yaml");

fn shop() -> Plan {
    let spec = load_spec(SourceFile::new("shop.portolan.yaml", SPEC))
        .unwrap()
        .value;
    let deployment = load_deployment(SourceFile::new("d.yaml", DEPLOYMENT), &spec)
        .unwrap()
        .value;
    plan(&spec, &deployment)
}

fn run(files: &[(&str, &str)]) -> Section {
    let mut m = Manifests::default();
    for (name, text) in files {
        m.read(name, text).unwrap();
    }
    verify(&shop(), &m, "fixtures").unwrap()
}

fn verdict<'a>(section: &'a Section, flow: &str) -> &'a FlowCheck {
    section
        .checks
        .iter()
        .find(|c| c.flow == flow)
        .unwrap_or_else(|| {
            panic!(
                "no flow {flow} in {:?}",
                section.checks.iter().map(|c| &c.flow).collect::<Vec<_>>()
            )
        })
}

const DEFAULT_DENY: (&str, &str) = (
    "default-deny.yaml",
    include_str!("../../fixtures/kubernetes/default-deny.yaml"),
);
const SAME_NS: (&str, &str) = (
    "allow-same-namespace.yaml",
    include_str!("../../fixtures/kubernetes/allow-same-namespace.yaml"),
);
const AND_OR: (&str, &str) = (
    "and-vs-or.yaml",
    include_str!("../../fixtures/kubernetes/and-vs-or.yaml"),
);
const IPBLOCK: (&str, &str) = (
    "ipblock-except.yaml",
    include_str!("../../fixtures/kubernetes/ipblock-except.yaml"),
);
const ENDPORT: (&str, &str) = (
    "endport.yaml",
    include_str!("../../fixtures/kubernetes/endport.yaml"),
);
const NAMED: (&str, &str) = (
    "named-port.yaml",
    include_str!("../../fixtures/kubernetes/named-port.yaml"),
);

use Verdict::{Admitted, Blocked};

/// (rule, fixtures, flow, right answer, why).
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    Verdict,
    &'static str,
);

const CASES: &[Case] = &[
    ("R1", &[], "web->api/tcp/8080", Admitted,
     "no policy selects any pod: nothing is isolated, everything is allowed"),
    ("R2", &[DEFAULT_DENY], "web->api/tcp/8080", Blocked,
     "default-deny selects every pod of shop for both directions and has no rule"),
    ("R2", &[DEFAULT_DENY], "outside->web/tcp/443", Blocked,
     "web is isolated for ingress by default-deny"),
    ("R2", &[SAME_NS], "api->db/tcp/5432", Admitted,
     "no policy selects db (namespace data), and api is not isolated for egress"),
    ("R3", &[SAME_NS, IPBLOCK], "web->api/tcp/8080", Admitted,
     "api is selected by allow-same-namespace and metrics: the union admits web (same namespace) although metrics alone does not"),
    ("R4", &[DEFAULT_DENY, SAME_NS], "web->api/tcp/8080", Blocked,
     "api's ingress admits web (same namespace), but web's egress is isolated by default-deny with no egress rule: both sides must allow"),
    ("R5", &[SAME_NS], "web->api/tcp/8080", Admitted,
     "allow-same-namespace names no policyTypes and no egress rule: it isolates ingress only, and web is in api's namespace"),
    ("R5", &[SAME_NS], "outside->web/tcp/443", Blocked,
     "policyTypes default to Ingress: web admits only pods of shop, not the outside world"),
    ("R6", &[AND_OR], "api->db/tcp/5432", Admitted,
     "db-and: one peer item with namespaceSelector (shop) AND podSelector (app=api): api is in shop with app=api"),
    ("R6", &[AND_OR], "api->db/tcp/8000-8100", Admitted,
     "db-or: two items, OR: api is a pod of namespace shop"),
    ("R7", &[IPBLOCK], "monitor->api/tcp/9100", Blocked,
     "192.0.2.10 is inside the except 192.0.2.0/28 of the ipBlock 192.0.2.0/24"),
    ("R8", &[ENDPORT], "api->db/tcp/8000-8100", Blocked,
     "port 8000 endPort 8049 covers half of 8000-8100: 8050-8100 is not admitted"),
    ("R8", &[ENDPORT], "api->db/tcp/5432", Admitted,
     "a port item without protocol is TCP; namespaceSelector {} AND app=api matches api"),
    ("R8", &[NAMED], "web->api/tcp/8080", Admitted,
     "the named port http is 8080 in api's Deployment, whose template labels (tier=backend) the policy selects"),
    ("R9", &[AND_OR], "api->db/tcp/5432", Admitted,
     "namespace shop carries kubernetes.io/metadata.name=shop without a Namespace manifest"),
];

#[test]
fn every_rule_gives_the_documented_answer() {
    for (rule, files, flow, expected, why) in CASES {
        let section = run(files);
        let check = verdict(&section, flow);
        assert_eq!(
            check.verdict, *expected,
            "{rule}: {flow}: {why}\n{check:#?}"
        );
    }
}

#[test]
fn a_block_names_the_side_and_the_isolating_policy() {
    let section = run(&[DEFAULT_DENY, SAME_NS]);
    let check = verdict(&section, "web->api/tcp/8080");
    assert_eq!(
        check.detail,
        "web egress: nothing admits tcp 8080 with api; api ingress: admitted"
    );
    assert!(check.rules[0]
        .text
        .contains("NetworkPolicy shop/default-deny (selects web for egress)"));
    assert_eq!(
        check.rules[0].location.as_deref(),
        Some("default-deny.yaml:3:7")
    );
}

#[test]
fn the_gap_of_a_partial_range_is_exact_and_its_fix_uses_end_port() {
    let section = run(&[ENDPORT]);
    let check = verdict(&section, "api->db/tcp/8000-8100");
    assert!(
        check.detail.contains("tcp 8050-8100 with api"),
        "{}",
        check.detail
    );
    let fix = section.fixes.iter().find(|f| f.flow == check.flow).unwrap();
    assert!(
        fix.text.contains("port: 8050\n") && fix.text.contains("endPort: 8100"),
        "{}",
        fix.text
    );
    assert!(fix.text.contains("namespace: data"), "{}", fix.text);
    // The fix, added to the input, admits the flow.
    let mut m = Manifests::default();
    m.read(ENDPORT.0, ENDPORT.1).unwrap();
    m.read("fix.yaml", &fix.text).unwrap();
    let fixed = verify(&shop(), &m, "fixed").unwrap();
    assert_eq!(verdict(&fixed, &check.flow).verdict, Admitted);
}

#[test]
fn the_or_pitfall_shows_as_excess_to_web() {
    // db-or admits every pod of shop on 8000-8100: web needs none of it.
    let section = run(&[AND_OR]);
    let web: Vec<&Excess> = section
        .excess
        .iter()
        .filter(|e| e.peer.as_deref() == Some("web"))
        .collect();
    assert_eq!(web.len(), 1, "{:#?}", section.excess);
    assert_eq!(web[0].traffic, "tcp 8000-8100");
    assert!(web[0].rule.text.contains("data/db-or"));
    // db-and (one item, AND) opens nothing to web.
    assert!(!section
        .excess
        .iter()
        .any(|e| e.rule.text.contains("db-and") && e.peer.is_some()));
    // The namespace-wide item is said to reach pods beyond the components.
    assert!(section
        .excess
        .iter()
        .any(|e| e.peers.starts_with("every pod of the namespaces labelled")));
}

#[test]
fn ipblock_excess_is_the_block_minus_what_is_needed() {
    let section = run(&[IPBLOCK]);
    let e: Vec<&Excess> = section
        .excess
        .iter()
        .filter(|e| e.rule.text.contains("shop/metrics"))
        .collect();
    assert_eq!(e.len(), 1, "{:#?}", section.excess);
    assert_eq!(
        e[0].peers,
        "192.0.2.16/28, 192.0.2.32/27, 192.0.2.64/26, 192.0.2.128/25"
    );
    assert_eq!(e[0].traffic, "tcp 9100");
    assert!(!e[0].any);
}

#[test]
fn a_pod_no_policy_selects_is_an_any_excess() {
    let section = run(&[]);
    let any: Vec<String> = section
        .excess
        .iter()
        .filter(|e| e.any)
        .map(|e| format!("{} {}", e.subject, e.direction.as_str()))
        .collect();
    assert_eq!(
        any,
        [
            "web ingress",
            "web egress",
            "api ingress",
            "api egress",
            "db ingress",
            "db egress"
        ]
    );
}

#[test]
fn a_policy_in_a_namespace_without_components_is_an_error_with_its_position() {
    let mut m = Manifests::default();
    m.read(
        "p.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: billing}\nspec: {podSelector: {}}\n",
    )
    .unwrap();
    let e = verify(&shop(), &m, "p.yaml").unwrap_err().to_string();
    assert!(
        e.starts_with("p.yaml:2:7: error[verify::unknown-namespace]: NetworkPolicy billing/x is in namespace `billing`"),
        "{e}"
    );
    assert!(e.contains("`data`, `shop`"), "{e}");
}

#[test]
fn a_bad_cidr_and_a_bad_operator_are_errors_with_position() {
    for (body, words) in [
        (
            "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]",
            "is not a CIDR",
        ),
        (
            "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]",
            "outside its cidr",
        ),
        (
            "ingress: [{from: [{podSelector: {matchExpressions: [{key: a, operator: Is}]}}]}]",
            "unknown label selector operator",
        ),
        (
            "ingress: [{ports: [{protocol: ICMP}]}]",
            "unknown protocol `ICMP`",
        ),
    ] {
        let mut m = Manifests::default();
        let text = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: x, namespace: shop}}\nspec:\n  podSelector: {{}}\n  {body}\n"
        );
        m.read("p.yaml", &text).unwrap();
        let e = verify(&shop(), &m, "p.yaml").unwrap_err().to_string();
        assert!(e.starts_with("p.yaml:2:7: ") && e.contains(words), "{e}");
    }
}
