//! Reading NetworkPolicy manifests: multi-document YAML, `List`s, with the
//! position of every policy; Namespace manifests (for their labels) and
//! workloads (for named container ports) are read too.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use crate::error::{Code, Hint, Position, VerifyError};
use crate::model::InputKind;

/// A NetworkPolicy and where it is written.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The policy, in k8s-openapi's type.
    pub policy: NetworkPolicy,
    /// Where its `kind:` is.
    pub at: Position,
}

/// A container port with a name, of the pods of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// Its number.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// Pods of a workload manifest: their namespace, labels and named ports.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Namespace (`default` when the manifest names none).
    pub namespace: String,
    /// The pod template's labels.
    pub labels: BTreeMap<String, String>,
    /// Named container ports.
    pub ports: Vec<NamedPort>,
}

/// Everything read from the `--kubernetes` files.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// NetworkPolicies, in file order.
    pub policies: Vec<LoadedPolicy>,
    /// Labels of Namespace manifests, by namespace name.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Pods and pod templates.
    pub workloads: Vec<Workload>,
    /// Kinds of documents that were skipped, with how many.
    pub skipped: BTreeMap<String, usize>,
}

/// One YAML document: its kind (with position) and the rest.
#[derive(Deserialize)]
struct Document {
    kind: Option<Spanned<String>>,
    #[serde(default)]
    items: Option<Vec<Spanned<Value>>>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Workload kinds whose `spec.template` holds a pod template.
const TEMPLATE_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
];

impl Manifests {
    /// Reads one file's text (`file` names it in errors).
    pub fn read(&mut self, file: &str, text: &str) -> Result<(), VerifyError> {
        let documents: Vec<Document> = serde_saphyr::from_multiple(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| Position::of_yaml(file, &l))
                .unwrap_or_else(|| Position::file(file));
            VerifyError::input_hint(
                Code::NotAManifest,
                at,
                format!(
                    "not a Kubernetes manifest (YAML): {}",
                    first_line(&e.to_string())
                ),
                Hint::Holds {
                    input: InputKind::Kubernetes,
                    what: "NetworkPolicy manifests: YAML documents, or a `List` of them".to_owned(),
                },
            )
        })?;
        let before = self.policies.len();
        for document in documents {
            let Some(kind) = document.kind else {
                return Err(VerifyError::input_hint(
                    Code::NotAManifest,
                    Position::file(file),
                    "a YAML document without `kind:` is not a Kubernetes manifest",
                    manifests_hint(),
                ));
            };
            let at = Position::of_yaml(file, &kind.referenced);
            if kind.value.ends_with("List") {
                for item in document.items.unwrap_or_default() {
                    let at = Position::of_yaml(file, &item.referenced);
                    let Value::Object(map) = item.value else {
                        return Err(VerifyError::input(
                            Code::NotAManifest,
                            at,
                            "a List item is not a mapping",
                        ));
                    };
                    let kind = map
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    self.add(&kind, map, at)?;
                }
            } else {
                let mut map = document.rest;
                map.insert("kind".into(), Value::String(kind.value.clone()));
                if let Some(items) = document.items {
                    map.insert(
                        "items".into(),
                        Value::Array(items.into_iter().map(|i| i.value).collect()),
                    );
                }
                self.add(&kind.value, map, at)?;
            }
        }
        if self.policies.len() == before && !text.trim().is_empty() && self.only_skipped(file) {
            return Err(VerifyError::input_hint(
                Code::NotAManifest,
                Position::file(file),
                "holds no NetworkPolicy",
                manifests_hint(),
            ));
        }
        Ok(())
    }

    /// Whether the file gave only skipped kinds (no Namespace or workload either).
    fn only_skipped(&self, _file: &str) -> bool {
        self.namespaces.is_empty() && self.workloads.is_empty()
    }

    fn add(
        &mut self,
        kind: &str,
        map: Map<String, Value>,
        at: Position,
    ) -> Result<(), VerifyError> {
        match kind {
            "NetworkPolicy" => {
                let policy: NetworkPolicy =
                    serde_json::from_value(Value::Object(map)).map_err(|e| {
                        VerifyError::input(
                            Code::InvalidPolicy,
                            at.clone(),
                            format!("invalid NetworkPolicy: {e}"),
                        )
                    })?;
                self.policies.push(LoadedPolicy { policy, at });
            }
            "Namespace" => {
                let name = str_at(&map, &["metadata", "name"]).ok_or_else(|| {
                    VerifyError::input(
                        Code::NotAManifest,
                        at.clone(),
                        "a Namespace without metadata.name",
                    )
                })?;
                let labels = labels_at(&map, &["metadata", "labels"]);
                self.namespaces.insert(name.to_owned(), labels);
            }
            "Pod" => self.workload(&map, &map, &["spec"]),
            k if TEMPLATE_KINDS.contains(&k) => {
                self.workload(&map, &map, &["spec", "template", "spec"])
            }
            other => *self.skipped.entry(other.to_owned()).or_default() += 1,
        }
        Ok(())
    }

    fn workload(&mut self, map: &Map<String, Value>, _doc: &Map<String, Value>, spec: &[&str]) {
        let namespace = str_at(map, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_owned();
        let labels = if spec.len() == 1 {
            labels_at(map, &["metadata", "labels"])
        } else {
            labels_at(map, &["spec", "template", "metadata", "labels"])
        };
        let mut ports = Vec::new();
        let containers = at_path(map, spec)
            .and_then(|s| s.get("containers"))
            .and_then(Value::as_array);
        for container in containers.into_iter().flatten() {
            for port in container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(name), Some(number)) = (
                    port.get("name").and_then(Value::as_str),
                    port.get("containerPort").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                let Ok(number) = u16::try_from(number) else {
                    continue;
                };
                ports.push(NamedPort {
                    name: name.to_owned(),
                    port: number,
                    protocol: port
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_owned(),
                });
            }
        }
        self.workloads.push(Workload {
            namespace,
            labels,
            ports,
        });
    }
}

fn at_path<'a>(map: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = map.get(*first)?;
    for key in rest {
        value = value.get(*key)?;
    }
    Some(value)
}

fn str_at<'a>(map: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    at_path(map, path).and_then(Value::as_str)
}

fn labels_at(map: &Map<String, Value>, path: &[&str]) -> BTreeMap<String, String> {
    at_path(map, path)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// What a `kubernetes` input holds.
fn manifests_hint() -> Hint {
    Hint::Holds {
        input: InputKind::Kubernetes,
        what: "NetworkPolicy manifests (kubectl get networkpolicy -A -o yaml)".to_owned(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_documents_and_lists_with_positions() {
        let text = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: v1
kind: List
items:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: b, namespace: shop}
    spec: {podSelector: {}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: red}}
";
        let mut m = Manifests::default();
        m.read("p.yaml", text).unwrap();
        assert_eq!(m.policies.len(), 2);
        assert_eq!(m.policies[0].at.to_string(), "p.yaml:2:7");
        assert_eq!(m.policies[1].at.line, 9);
        assert_eq!(m.namespaces["shop"]["team"], "red");
    }

    #[test]
    fn a_ruleset_is_not_a_manifest() {
        let mut m = Manifests::default();
        let e = m
            .read("host.nft", "table inet filter {\n  chain input {\n  }\n}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("host.nft"), "{e}");
        assert!(
            e.contains("the kubernetes input takes NetworkPolicy"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_field_type_names_the_document() {
        let mut m = Manifests::default();
        let e = m
            .read(
                "p.yaml",
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: {podSelector: 7}\n",
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.yaml:3:7: error[verify::invalid-policy]: invalid NetworkPolicy"),
            "{e}"
        );
    }
}
