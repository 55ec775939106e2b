//! Every name, label key and label value the kubernetes and cilium targets
//! write is one the Kubernetes API server accepts (issue 9 row 10:
//! `kubernetes-validate` does not check label syntax, so it is checked here,
//! with a checker written from the Kubernetes rules rather than with the
//! crate's own functions).
//!
//! The rules (Kubernetes docs, "Labels and Selectors" → "Syntax and
//! character set", and "Object Names and IDs"; apimachinery
//! `validation.IsQualifiedName`, `IsValidLabelValue`, `IsDNS1123Label`):
//! - a label value is empty or at most 63 characters, beginning and ending
//!   with `[a-z0-9A-Z]`, with `-`, `_`, `.` and alphanumerics between;
//! - a label key is an optional prefix and `/`, then a name; the name is at
//!   most 63 characters of the value alphabet, beginning and ending with an
//!   alphanumeric (not empty); the prefix is a DNS subdomain: at most 253
//!   characters, dot-separated DNS-1123 labels;
//! - a DNS-1123 label is at most 63 characters of `[a-z0-9-]`, beginning
//!   and ending with an alphanumeric. This crate writes object names as
//!   DNS-1123 labels (stricter than the subdomain NetworkPolicy names may
//!   be), so that a name can also be a label value.
//!
//! Cilium's selectors name a label's source before its key
//! (`k8s:io.kubernetes.pod.namespace`); the `k8s:` source prefix is removed
//! before the key is checked.

#![allow(clippy::unwrap_used)]

use portolan_firewall::labels::stable_hash;
use portolan_firewall::{Options, TargetKind};
use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};
use serde_json::Value;

use crate::cloud::example_plan;

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn edges_alnum(text: &str) -> bool {
    text.starts_with(alnum) && text.ends_with(alnum)
}

fn label_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && edges_alnum(name)
        && name
            .chars()
            .all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn label_value_ok(value: &str) -> bool {
    value.is_empty() || label_name_ok(value)
}

fn dns_label_ok(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && edges_alnum(text)
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn label_key_ok(key: &str) -> bool {
    let key = key.strip_prefix("k8s:").unwrap_or(key);
    match key.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253 && prefix.split('.').all(dns_label_ok) && label_name_ok(name)
        }
        None => label_name_ok(key),
    }
}

/// Every label-syntax problem of one manifest: its name, its namespace, and
/// every `labels` / `matchLabels` map anywhere in it.
fn problems(manifest: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let metadata = &manifest["metadata"];
    for field in ["name", "namespace"] {
        let text = metadata[field].as_str().unwrap_or("");
        if !dns_label_ok(text) {
            found.push(format!("metadata.{field} `{text}` is not a DNS-1123 label"));
        }
    }
    walk(manifest, "", &mut found);
    found
}

fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let here = format!("{path}.{key}");
                if key == "labels" || key == "matchLabels" {
                    let Some(labels) = inner.as_object() else {
                        found.push(format!("{here} is not a map"));
                        continue;
                    };
                    for (k, v) in labels {
                        if !label_key_ok(k) {
                            found.push(format!("{here}: key `{k}` is not a label key"));
                        }
                        match v.as_str() {
                            Some(v) if label_value_ok(v) => {}
                            _ => found.push(format!("{here}.{k}: value {v} is not a label value")),
                        }
                    }
                } else {
                    walk(inner, &here, found);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Every manifest the two Kubernetes targets write for a plan, parsed from
/// the files as written.
fn manifests(plan: &Plan) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for target in [TargetKind::Kubernetes, TargetKind::Cilium] {
        let generated = target.target().generate(plan, &Options::default()).unwrap();
        for (path, text) in generated.files {
            let value: Value = serde_saphyr::from_str(&text).unwrap();
            out.push((format!("{target} {}", path.display()), value));
        }
    }
    out
}

fn all_problems(plan: &Plan) -> Vec<String> {
    manifests(plan)
        .iter()
        .flat_map(|(file, m)| problems(m).into_iter().map(move |p| format!("{file}: {p}")))
        .collect()
}

const LONG_NAME_WORDS: &str = "The Very Long System Name of a Vendor (Self-Hosted) ";

fn long_system() -> String {
    let name = LONG_NAME_WORDS.repeat(4);
    name[..200].to_owned()
}

/// Component ids as long as the spec allows (63), differing only at the end.
fn long_id(last: char) -> String {
    format!("{}{last}", "component-".repeat(7)[..62].to_owned())
}

/// A valid spec whose system name has 200 characters and whose ids have 63,
/// placed on Kubernetes.
fn long_plan() -> Plan {
    let (a, b) = (long_id('a'), long_id('b'));
    let spec = format!(
        "portolan: 1
system: {{name: \"{}\"}}
components:
  - {{id: {a}}}
  - {{id: {b}, kind: dependency}}
  - {{id: users, kind: external}}
flows:
  - {{from: users, to: {a}, protocol: tcp, port: 443}}
  - {{from: {a}, to: {b}, protocol: tcp, port: 5432}}
",
        long_system()
    );
    let spec = load_spec(SourceFile::new("long.yaml", spec))
        .unwrap_or_else(|d| panic!("{:?}", d.items))
        .value;
    let deployment = format!(
        "deployment: 1
components:
  {a}: {{kubernetes: {{namespace: shop, pod_selector: {{app: web}}}}}}
  {b}: {{kubernetes: {{namespace: data, pod_selector: {{app.kubernetes.io/name: db}}}}}}
"
    );
    let deployment = load_deployment(SourceFile::new("long.deployment.yaml", deployment), &spec)
        .unwrap_or_else(|d| panic!("{:?}", d.items))
        .value;
    plan(&spec, &deployment)
}

/// The plan with every component id `from` renamed to `to`: a typed plan
/// may carry ids the spec reader would refuse (200 characters), and the
/// targets must still write valid manifests for it.
fn renamed(mut plan: Plan, from: &str, to: &str) -> Plan {
    let fix = |id: &mut String| {
        if id == from {
            *id = to.to_owned();
        }
    };
    plan.components.iter_mut().for_each(|c| fix(&mut c.id));
    for flow in plan.flows.iter_mut().chain(plan.site_flows.iter_mut()) {
        fix(&mut flow.from.id);
        fix(&mut flow.to.id);
    }
    plan
}

#[test]
fn every_manifest_of_both_examples_has_valid_names_and_labels() {
    let mut count = 0;
    for (example, deployment) in [
        ("spacelift-self-hosted", "deployment.yaml"),
        ("circonus-inside", "deployment-k8s.yaml"),
    ] {
        let (plan, _) = example_plan(example, deployment);
        count += manifests(&plan).len();
        assert_eq!(all_problems(&plan), Vec::<String>::new(), "{example}");
    }
    assert!(count >= 20, "both targets on both examples: {count}");
}

#[test]
fn a_200_character_system_name_and_long_ids_give_valid_labels() {
    // Regression (issue 9 row 10): the system's slug (200 characters) was
    // written as `app.kubernetes.io/part-of` and in every object name.
    let plan = long_plan();
    let found = manifests(&plan);
    assert_eq!(found.len(), 4, "two components, two targets");
    assert_eq!(all_problems(&plan), Vec::<String>::new());

    // 200-character ids, which only a typed plan can carry.
    let (a, b) = (long_id('a'), long_id('b'));
    let (a200, b200) = ("a".repeat(199) + "x", "a".repeat(199) + "y");
    let plan = renamed(renamed(plan, &a, &a200), &b, &b200);
    assert_eq!(all_problems(&plan), Vec::<String>::new());

    // Long values are cut and hashed, the hash telling apart the values
    // that share their first characters; the same plan gives the same text.
    let found = manifests(&plan);
    let slug = portolan_firewall::cloud::slug(&long_system());
    assert!(slug.len() > 190, "{slug}");
    let part_of = format!(
        "{}-{}",
        slug[..54].trim_end_matches('-'),
        stable_hash(&slug)
    );
    // The value docs/cloud-targets.md shows.
    assert_eq!(
        part_of,
        "the-very-long-system-name-of-a-vendor-self-hosted-the-aaee2e4e"
    );
    for (file, m) in &found {
        assert_eq!(
            m["metadata"]["labels"]["app.kubernetes.io/part-of"], part_of,
            "{file}"
        );
    }
    let component = |m: &Value| m["metadata"]["labels"]["app.kubernetes.io/component"].clone();
    assert_eq!(
        component(&found[0].1),
        format!("{}-{}", "a".repeat(54), stable_hash(&a200))
    );
    assert_ne!(component(&found[0].1), component(&found[1].1));
    let names: Vec<&str> = found
        .iter()
        .map(|(_, m)| m["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_ne!(names[0], names[1], "two components, two names");
    assert_eq!(names[0], names[2], "both targets name a component alike");
    assert_eq!(manifests(&plan), found, "deterministic");
    // A literal, so that a change of hash (which would rename every
    // deployed object) cannot pass unnoticed on any platform.
    assert_eq!(stable_hash(&a200), "3547ddd2");
}

#[test]
fn the_checker_can_fail() {
    let good = serde_json::json!({
        "metadata": {"name": "shop-web", "namespace": "shop",
                     "labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {"endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "shop", "app": ""}}}
    });
    assert_eq!(problems(&good), Vec::<String>::new());
    let bad = |path: &[&str], value: Value| {
        let mut m = good.clone();
        let mut at = &mut m;
        for p in path {
            at = &mut at[*p];
        }
        *at = value;
        problems(&m)
    };
    let long = "a".repeat(64);
    for (path, value) in [
        (&["metadata", "name"][..], Value::from(long.as_str())),
        (&["metadata", "name"], Value::from("Shop")),
        (
            &["metadata", "labels", "app.kubernetes.io/part-of"],
            Value::from(long.as_str()),
        ),
        (
            &["metadata", "labels", "app.kubernetes.io/part-of"],
            Value::from("web-"),
        ),
        (
            &["metadata", "labels", "app.kubernetes.io/part-of"],
            Value::from("a b"),
        ),
        (&["metadata", "labels", "bad key!"], Value::from("x")),
        (&["metadata", "labels", "-x.io/name"], Value::from("x")),
        (
            &["spec", "endpointSelector", "matchLabels", "app"],
            Value::from("_x"),
        ),
    ] {
        assert_eq!(bad(path, value.clone()).len(), 1, "{path:?} = {value}");
    }
}
