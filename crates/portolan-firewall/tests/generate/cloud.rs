//! The cloud targets (kubernetes, cilium, aws) on both examples: snapshots
//! of every output, and proof with real tools:
//! - every NetworkPolicy passes `kubernetes-validate --strict` (offline
//!   schemas of Kubernetes 1.33, the version k8s-openapi is built for) and
//!   reads back into k8s-openapi's `NetworkPolicy` unchanged;
//! - every CiliumNetworkPolicy passes the cilium.io/v2 CRD schema and the
//!   TypeScript interfaces generated from the CRD, both shipped by the npm
//!   package `@kubernetes-models/cilium` (see `tests/cilium-schema/`);
//! - every Terraform file uses only resource types and arguments the AWS
//!   provider documents, with the right JSON types (a table check, not
//!   `terraform validate`: no provider can be downloaded here).
//!
//! Each checker is also run on a broken input, to show that it can fail.
//! When a tool is missing, the test says so loudly and skips, unless
//! `PORTOLAN_REQUIRE_LAB=1` (CI), where it fails.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use portolan_firewall::cilium::{cilium_policies, CiliumNetworkPolicy};
use portolan_firewall::kubernetes::network_policies;
use portolan_firewall::{GenerateError, Generated, Options, TargetKind};
use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, render_diagnostics, Diagnostics, RenderStyle, SourceFile};
use serde_json::Value;

/// One target on one example deployment.
struct Case {
    name: &'static str,
    example: &'static str,
    deployment: &'static str,
    target: TargetKind,
}

const CASES: &[Case] = &[
    Case {
        name: "spacelift_kubernetes",
        example: "spacelift-self-hosted",
        deployment: "deployment.yaml",
        target: TargetKind::Kubernetes,
    },
    Case {
        name: "spacelift_cilium",
        example: "spacelift-self-hosted",
        deployment: "deployment.yaml",
        target: TargetKind::Cilium,
    },
    Case {
        name: "spacelift_aws",
        example: "spacelift-self-hosted",
        deployment: "deployment.yaml",
        target: TargetKind::Aws,
    },
    Case {
        name: "circonus_kubernetes",
        example: "circonus-inside",
        deployment: "deployment-k8s.yaml",
        target: TargetKind::Kubernetes,
    },
    Case {
        name: "circonus_cilium",
        example: "circonus-inside",
        deployment: "deployment-k8s.yaml",
        target: TargetKind::Cilium,
    },
    Case {
        name: "circonus_aws",
        example: "circonus-inside",
        deployment: "deployment-aws.yaml",
        target: TargetKind::Aws,
    },
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The plan of an example spec against one of its deployment files, and the deployment's source.
pub(crate) fn example_plan(example: &str, deployment: &str) -> (Plan, Diagnostics) {
    let dir = workspace().join("examples").join(example);
    let read = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        SourceFile::new(format!("examples/{example}/{name}"), text)
    };
    let spec = load_spec(read("portolan.yaml"))
        .unwrap_or_else(|d| panic!("{}", render_diagnostics(&d, RenderStyle::Plain)))
        .value;
    let source = read(deployment);
    let deployment = load_deployment(source.clone(), &spec)
        .unwrap_or_else(|d| panic!("{}", render_diagnostics(&d, RenderStyle::Plain)))
        .value;
    let empty = Diagnostics {
        source,
        items: Vec::new(),
    };
    (plan(&spec, &deployment), empty)
}

fn generate(case: &Case) -> Generated {
    let (plan, _) = example_plan(case.example, case.deployment);
    case.target
        .target()
        .generate(&plan, &Options::default())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

fn cases(target: TargetKind) -> impl Iterator<Item = &'static Case> {
    CASES.iter().filter(move |c| c.target == target)
}

/// Whether a missing tool fails the test (CI) or skips it (a developer's machine).
fn tool_missing(tool: &str, install: &str) {
    portolan_test_support::skip(
        "a check by a real tool",
        &format!("{tool} is missing ({install}); this check did not run"),
    );
}

#[test]
fn snapshots_of_every_cloud_target_on_both_examples() {
    for case in CASES {
        let generated = generate(case);
        let mut text = String::new();
        text.push_str(&format!("{} warning(s)\n", generated.warnings.len()));
        for warning in &generated.warnings {
            text.push_str(&format!("{warning}\n"));
        }
        for (path, contents) in &generated.files {
            text.push_str(&format!("\n===== {} =====\n{contents}", path.display()));
        }
        insta::assert_snapshot!(case.name, text);
    }
}

#[test]
fn targets_that_cannot_serve_a_deployment_say_where() {
    let mut text = String::new();
    for target in [TargetKind::Kubernetes, TargetKind::Cilium, TargetKind::Aws] {
        let (plan, mut diagnostics) = example_plan("circonus-inside", "deployment.yaml");
        let Err(GenerateError::CannotServe {
            target: name,
            diagnostics: items,
        }) = target.target().generate(&plan, &Options::default())
        else {
            panic!("{target} must refuse an address-only deployment");
        };
        assert_eq!(name, target.as_str());
        assert!(items.iter().all(|d| !d.labels.is_empty()));
        diagnostics.items = items;
        text.push_str(&format!("===== {target} =====\n"));
        text.push_str(&render_diagnostics(&diagnostics, RenderStyle::Plain));
    }
    // --component naming a component the target has no placement for.
    let (plan, mut diagnostics) = example_plan("spacelift-self-hosted", "deployment.yaml");
    let options = Options {
        component: Some("postgres".to_owned()),
        ..Options::default()
    };
    let Err(GenerateError::CannotServe {
        diagnostics: items, ..
    }) = TargetKind::Kubernetes.target().generate(&plan, &options)
    else {
        panic!("postgres has no Kubernetes placement");
    };
    diagnostics.items = items;
    text.push_str("===== kubernetes --component postgres =====\n");
    text.push_str(&render_diagnostics(&diagnostics, RenderStyle::Plain));
    insta::assert_snapshot!(text);
}

#[test]
fn one_component_is_one_policy() {
    let (plan, _) = example_plan("spacelift-self-hosted", "deployment.yaml");
    let options = Options {
        component: Some("drain".to_owned()),
        ..Options::default()
    };
    let k8s = TargetKind::Kubernetes
        .target()
        .generate(&plan, &options)
        .unwrap();
    assert_eq!(k8s.files.len(), 1);
    assert_eq!(k8s.files[0].0, PathBuf::from("drain.networkpolicy.yaml"));
    assert!(k8s.warnings.iter().all(|w| w.component == "drain"));
    let aws = TargetKind::Aws.target().generate(&plan, &options).unwrap();
    let file: Value = serde_json::from_str(&aws.files[0].1).unwrap();
    // The drain receives nothing: its rules are all egress.
    assert!(file["resource"]["aws_vpc_security_group_ingress_rule"].is_null());
    let egress = file["resource"]["aws_vpc_security_group_egress_rule"]
        .as_object()
        .unwrap();
    assert!(!egress.is_empty());
    for rule in egress.values() {
        assert_eq!(rule["security_group_id"], "${aws_security_group.drain.id}");
    }
}

// ---------------------------------------------------------------- Kubernetes

/// Runs kubernetes-validate on files; `None` when it is not installed.
fn kubernetes_validate(files: &[PathBuf]) -> Option<(bool, String)> {
    let output = Command::new("python3")
        .args(["-m", "kubernetes_validate", "-k", "1.33.0", "--strict"])
        .args(files)
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if text.contains("No module named kubernetes_validate") {
        return None;
    }
    Some((output.status.success(), text))
}

#[test]
fn every_network_policy_passes_kubernetes_validate() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut objects = 0;
    for case in cases(TargetKind::Kubernetes) {
        for (name, text) in generate(case).files {
            let path = dir.path().join(format!("{}-{}", case.name, name.display()));
            std::fs::write(&path, text).unwrap();
            files.push(path);
            objects += 1;
        }
    }
    assert!(objects >= 10, "both examples give policies: {objects}");
    let Some((ok, report)) = kubernetes_validate(&files) else {
        tool_missing(
            "kubernetes-validate",
            "pip install kubernetes-validate (it ships the schemas, no network needed)",
        );
        return;
    };
    assert!(ok, "kubernetes-validate failed:\n{report}");
    let passed = report
        .lines()
        .filter(|l| l.contains(" passed for resource networkpolicy/"))
        .count();
    assert_eq!(passed, objects, "one pass per object:\n{report}");

    // The validator rejects what the API server would: a field NetworkPolicy
    // does not have, and a port of the wrong type.
    let good = std::fs::read_to_string(&files[0]).unwrap();
    for (what, broken) in [
        (
            "unknown field",
            good.replacen("policyTypes:", "policyType:", 1),
        ),
        ("port as a list", good.replacen("port: 53", "port: [53]", 1)),
    ] {
        assert_ne!(broken, good, "{what}: the mutation must apply");
        let path = dir.path().join("broken.yaml");
        std::fs::write(&path, broken).unwrap();
        let (ok, report) = kubernetes_validate(&[path]).unwrap();
        assert!(!ok, "{what} must fail validation:\n{report}");
    }
}

#[test]
fn every_network_policy_round_trips_through_k8s_openapi() {
    for case in cases(TargetKind::Kubernetes) {
        let (plan, _) = example_plan(case.example, case.deployment);
        let built = network_policies(&plan, &Options::default()).unwrap();
        let generated = generate(case);
        assert_eq!(built.policies.len(), generated.files.len());
        for ((component, policy), (path, text)) in built.policies.iter().zip(&generated.files) {
            let back: NetworkPolicy =
                serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(&back, policy, "{component}");
            let spec = back.spec.unwrap();
            assert_eq!(
                spec.policy_types.unwrap(),
                ["Ingress", "Egress"],
                "deny by default both ways"
            );
            let egress = spec.egress.unwrap();
            assert_eq!(
                egress.last(),
                Some(&portolan_firewall::kubernetes::dns_rule()),
                "{component}: DNS to kube-dns allowed"
            );
            for warning in built.warnings.iter().filter(|w| &w.component == component) {
                assert!(
                    text.contains(&format!("# {warning}")),
                    "{component}: warning {} written as a comment",
                    warning.code()
                );
            }
        }
    }
}

// ---------------------------------------------------------------- Cilium

fn cilium_schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cilium-schema")
}

/// Runs tests/cilium-schema/validate.mjs on JSON objects; `None` when node
/// or the package is not installed.
fn cilium_validate(objects: &[(String, Value)]) -> Option<(bool, String)> {
    let schema = cilium_schema_dir();
    if !schema
        .join("node_modules/@kubernetes-models/cilium")
        .is_dir()
        || !schema.join("node_modules/typescript").is_dir()
    {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("check-")
        .tempdir_in(&schema)
        .unwrap();
    for (name, object) in objects {
        let path = dir.path().join(format!("{name}.cnp.json"));
        std::fs::write(path, serde_json::to_string_pretty(object).unwrap()).unwrap();
    }
    let output = Command::new("node")
        .arg(schema.join("validate.mjs"))
        .arg(dir.path())
        .output()
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), text))
}

#[test]
fn every_cilium_policy_passes_the_crd_schema() {
    let mut objects = Vec::new();
    for case in cases(TargetKind::Cilium) {
        let (plan, _) = example_plan(case.example, case.deployment);
        let built = cilium_policies(&plan, &Options::default()).unwrap();
        let generated = generate(case);
        for ((component, policy), (path, text)) in built.policies.iter().zip(&generated.files) {
            // The YAML reads back into the typed model, which refuses unknown fields.
            let back: CiliumNetworkPolicy =
                serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(&back, policy);
            let as_yaml: Value = serde_saphyr::from_str(text).unwrap();
            assert_eq!(as_yaml, serde_json::to_value(policy).unwrap());
            objects.push((format!("{}-{component}", case.name), as_yaml));
        }
    }
    assert!(objects.len() >= 10, "both examples give policies");
    let Some((ok, report)) = cilium_validate(&objects) else {
        tool_missing(
            "the Cilium CRD schema checker",
            "npm ci --prefix crates/portolan-firewall/tests/cilium-schema (needs node)",
        );
        return;
    };
    assert!(ok, "CiliumNetworkPolicy check failed:\n{report}");
    let passed = report
        .lines()
        .filter(|l| l.starts_with("schema ok "))
        .count();
    assert_eq!(passed, objects.len(), "{report}");
    assert!(
        report.contains(&format!("types ok {} file(s)", objects.len())),
        "{report}"
    );

    // The checker can fail: a misspelt field (only the types catch it, since
    // the CRD schema lets unknown fields through), a protocol Cilium does not
    // know and a DNS pattern with a character it forbids (the schema).
    let (name, good) = objects
        .iter()
        .find(|(_, o)| o.to_string().contains("toFQDNs"))
        .cloned()
        .unwrap();
    let text = good.to_string();
    let broken: Vec<(String, Value)> = [
        ("misspelt", text.replacen("\"toFQDNs\"", "\"toFQDN\"", 1)),
        ("protocol", text.replacen("\"TCP\"", "\"TCPX\"", 1)),
        (
            "pattern",
            text.replacen("\"matchPattern\":\"*\"", "\"matchPattern\":\"*/x\"", 1),
        ),
    ]
    .into_iter()
    .map(|(what, t)| {
        assert_ne!(t, text, "{what}: the mutation must apply");
        (format!("{name}-{what}"), serde_json::from_str(&t).unwrap())
    })
    .collect();
    let (ok, report) = cilium_validate(&broken).unwrap();
    assert!(!ok, "broken policies must fail:\n{report}");
    assert!(
        report.contains("schema FAIL") && report.contains("-protocol.cnp.json"),
        "{report}"
    );
    assert!(report.contains("-pattern.cnp.json: "), "{report}");
    assert!(
        report.contains("types FAIL") && report.contains("toFQDN"),
        "{report}"
    );
}

// ---------------------------------------------------------------- AWS

/// A JSON type an argument takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    Str,
    Int,
    Bool,
    StrMap,
    Blocks,
}

/// Arguments of the three resource types, as the AWS provider documents them
/// (terraform-provider-aws, website/docs/r/security_group.html.markdown,
/// vpc_security_group_ingress_rule.html.markdown and
/// vpc_security_group_egress_rule.html.markdown; `region` is the per-resource
/// region argument of provider 6). The bool says whether it is required.
fn provider_arguments() -> BTreeMap<&'static str, BTreeMap<&'static str, (Arg, bool)>> {
    let rule = BTreeMap::from([
        ("cidr_ipv4", (Arg::Str, false)),
        ("cidr_ipv6", (Arg::Str, false)),
        ("description", (Arg::Str, false)),
        ("from_port", (Arg::Int, false)),
        ("ip_protocol", (Arg::Str, true)),
        ("prefix_list_id", (Arg::Str, false)),
        ("referenced_security_group_id", (Arg::Str, false)),
        ("region", (Arg::Str, false)),
        ("security_group_id", (Arg::Str, true)),
        ("tags", (Arg::StrMap, false)),
        ("to_port", (Arg::Int, false)),
    ]);
    BTreeMap::from([
        (
            "aws_security_group",
            BTreeMap::from([
                ("description", (Arg::Str, false)),
                ("egress", (Arg::Blocks, false)),
                ("ingress", (Arg::Blocks, false)),
                ("name", (Arg::Str, false)),
                ("name_prefix", (Arg::Str, false)),
                ("region", (Arg::Str, false)),
                ("revoke_rules_on_delete", (Arg::Bool, false)),
                ("tags", (Arg::StrMap, false)),
                ("vpc_id", (Arg::Str, false)),
            ]),
        ),
        ("aws_vpc_security_group_ingress_rule", rule.clone()),
        ("aws_vpc_security_group_egress_rule", rule),
    ])
}

fn arg_type_ok(arg: Arg, value: &Value) -> bool {
    match arg {
        Arg::Str => value.is_string(),
        Arg::Int => value.is_i64(),
        Arg::Bool => value.is_boolean(),
        Arg::StrMap => value
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)),
        Arg::Blocks => value.is_array(),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every problem the table finds in a Terraform JSON file.
fn terraform_problems(file: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let table = provider_arguments();
    let Some(top) = file.as_object() else {
        return vec!["not a JSON object".to_owned()];
    };
    for key in top.keys() {
        if !["//", "variable", "resource"].contains(&key.as_str()) {
            problems.push(format!("unexpected top-level key {key}"));
        }
    }
    let variables: BTreeSet<&str> = top
        .get("variable")
        .and_then(Value::as_object)
        .map(|v| v.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let Some(resources) = top.get("resource").and_then(Value::as_object) else {
        return vec!["no resource block".to_owned()];
    };
    let groups: BTreeSet<String> = resources
        .get("aws_security_group")
        .and_then(Value::as_object)
        .map(|g| g.keys().cloned().collect())
        .unwrap_or_default();
    let description_ok = |d: &str| {
        d.len() <= 255
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c))
    };
    for (kind, instances) in resources {
        let Some(arguments) = table.get(kind.as_str()) else {
            problems.push(format!("resource type {kind} is not one of the three"));
            continue;
        };
        for (name, body) in instances.as_object().into_iter().flatten() {
            let at = format!("{kind}.{name}");
            if !is_identifier(name) {
                problems.push(format!("{at}: not a Terraform identifier"));
            }
            let Some(body) = body.as_object() else {
                problems.push(format!("{at}: body is not an object"));
                continue;
            };
            for (arg, value) in body {
                match arguments.get(arg.as_str()) {
                    None => problems.push(format!("{at}: unknown argument {arg}")),
                    Some((ty, _)) if !arg_type_ok(*ty, value) => {
                        problems.push(format!("{at}: {arg} should be {ty:?}, is {value}"));
                    }
                    Some(_) => {}
                }
            }
            for (arg, (_, required)) in arguments {
                if *required && !body.contains_key(*arg) {
                    problems.push(format!("{at}: required argument {arg} missing"));
                }
            }
            if let Some(d) = body.get("description").and_then(Value::as_str) {
                if !description_ok(d) {
                    problems.push(format!("{at}: description has characters AWS refuses: {d}"));
                }
            }
            if let Some(vpc) = body.get("vpc_id").and_then(Value::as_str) {
                let var = vpc.strip_prefix("${var.").and_then(|v| v.strip_suffix('}'));
                if !var.is_some_and(|v| variables.contains(v)) {
                    problems.push(format!("{at}: vpc_id {vpc} is not a declared variable"));
                }
            }
            if kind == "aws_security_group" {
                continue;
            }
            // A rule: one peer, a known protocol, ports that fit it, references that resolve.
            let peers: Vec<&str> = [
                "cidr_ipv4",
                "cidr_ipv6",
                "prefix_list_id",
                "referenced_security_group_id",
            ]
            .into_iter()
            .filter(|p| body.contains_key(*p))
            .collect();
            if peers.len() != 1 {
                problems.push(format!("{at}: {} peer arguments {peers:?}", peers.len()));
            }
            for reference in ["security_group_id", "referenced_security_group_id"] {
                if let Some(r) = body.get(reference).and_then(Value::as_str) {
                    let group = r
                        .strip_prefix("${aws_security_group.")
                        .and_then(|g| g.strip_suffix(".id}"));
                    if !group.is_some_and(|g| groups.contains(g)) {
                        problems.push(format!("{at}: {reference} {r} names no declared group"));
                    }
                }
            }
            for cidr in ["cidr_ipv4", "cidr_ipv6"] {
                if let Some(c) = body.get(cidr).and_then(Value::as_str) {
                    let parsed: Result<ipnet::IpNet, _> = c.parse();
                    let family_ok = match parsed {
                        Ok(ipnet::IpNet::V4(n)) => cidr == "cidr_ipv4" && n.trunc() == n,
                        Ok(ipnet::IpNet::V6(n)) => cidr == "cidr_ipv6" && n.trunc() == n,
                        Err(_) => false,
                    };
                    if !family_ok {
                        problems.push(format!(
                            "{at}: {cidr} {c} is not a canonical block of its family"
                        ));
                    }
                }
            }
            let protocol = body
                .get("ip_protocol")
                .and_then(Value::as_str)
                .unwrap_or("");
            let from = body.get("from_port").and_then(Value::as_i64);
            let to = body.get("to_port").and_then(Value::as_i64);
            match protocol {
                "-1" => {
                    if from.is_some() || to.is_some() {
                        problems.push(format!("{at}: -1 takes no ports"));
                    }
                }
                "tcp" | "udp" => match (from, to) {
                    (Some(f), Some(t)) if 0 <= f && f <= t && t <= 65535 => {}
                    _ => problems.push(format!(
                        "{at}: {protocol} needs 0 <= from_port <= to_port <= 65535"
                    )),
                },
                "icmp" | "icmpv6" => match (from, to) {
                    (Some(f), Some(t)) if (-1..=255).contains(&f) && (-1..=255).contains(&t) => {}
                    _ => problems.push(format!("{at}: {protocol} needs an ICMP type and code")),
                },
                other => problems.push(format!(
                    "{at}: ip_protocol {other} is not tcp, udp, icmp, icmpv6 or -1"
                )),
            }
        }
    }
    problems
}

#[test]
fn terraform_uses_only_arguments_the_aws_provider_defines() {
    for case in cases(TargetKind::Aws) {
        let generated = generate(case);
        assert_eq!(generated.files.len(), 1);
        let file: Value = serde_json::from_str(&generated.files[0].1).unwrap();
        let problems = terraform_problems(&file);
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            case.name,
            problems.join("\n")
        );
        let resources = &file["resource"];
        assert!(!resources["aws_security_group"]
            .as_object()
            .unwrap()
            .is_empty());
        assert!(!resources["aws_vpc_security_group_ingress_rule"]
            .as_object()
            .unwrap()
            .is_empty());
        assert!(!resources["aws_vpc_security_group_egress_rule"]
            .as_object()
            .unwrap()
            .is_empty());
        for warning in &generated.warnings {
            assert!(
                file["//"].as_str().unwrap().contains(&warning.to_string()),
                "warning {} in the file's comment",
                warning.code()
            );
        }
    }

    // The table check can fail.
    let good: Value = serde_json::from_str(&generate(&CASES[2]).files[0].1).unwrap();
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        terraform_problems(&v)
    };
    let first_rule = |v: &mut Value| -> Value {
        v["resource"]["aws_vpc_security_group_ingress_rule"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone()
    };
    let rule_name = good["resource"]["aws_vpc_security_group_ingress_rule"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let broken: Vec<(&str, Vec<String>)> = vec![
        (
            "inline-rule argument",
            mutate(&|v| {
                let mut rule = first_rule(v);
                rule["cidr_blocks"] = Value::from(vec!["10.0.0.0/8"]);
                v["resource"]["aws_vpc_security_group_ingress_rule"][&rule_name] = rule;
            }),
        ),
        (
            "port as a string",
            mutate(&|v| {
                let mut rule = first_rule(v);
                rule["from_port"] = Value::from("443");
                v["resource"]["aws_vpc_security_group_ingress_rule"][&rule_name] = rule;
            }),
        ),
        (
            "two peers",
            mutate(&|v| {
                let mut rule = first_rule(v);
                rule["cidr_ipv4"] = Value::from("10.0.0.0/8");
                rule["prefix_list_id"] = Value::from("pl-1");
                v["resource"]["aws_vpc_security_group_ingress_rule"][&rule_name] = rule;
            }),
        ),
        (
            "unknown resource type",
            mutate(&|v| {
                v["resource"]["aws_security_group_rule"] = serde_json::json!({"x": {}});
            }),
        ),
    ];
    for (what, problems) in broken {
        assert!(!problems.is_empty(), "{what} must be found");
    }
}
