//! Every structural problem of a document in one run.
//!
//! serde stops at the first unknown key, missing key or wrong type. When it
//! does, the file is read again as a tree of YAML nodes with positions
//! ([`Node`]) and checked against the JSON Schema of the type it should have
//! been (the one `portolan schema` prints, derived from the same types), so
//! that one run reports every such problem: six mistakes, six diagnostics.
//! The happy path never pays for this: it runs only after serde failed.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use serde_saphyr::Spanned;

use crate::diag::{did_you_mean, Code, Diagnostic, SourceFile, Span};

/// A YAML value as written, without any meaning yet.
#[derive(Debug)]
enum Value {
    Null,
    Bool,
    Int,
    Float,
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML node and where it is written.
#[derive(Debug)]
struct Node {
    value: Value,
    span: Span,
}

/// A node as serde-saphyr delivers it, before its position is resolved.
struct RawNode(Spanned<Tree>);

/// The value part of [`RawNode`].
enum Tree {
    Scalar(Value),
    Seq(Vec<RawNode>),
    Map(Vec<(RawNode, RawNode)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Spanned::<Tree>::deserialize(deserializer).map(RawNode)
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
                Tree::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Bool))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Int))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Int))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Float))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Str(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<RawNode>()? {
                    items.push(item);
                }
                Ok(Tree::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<RawNode, RawNode>()? {
                    entries.push(entry);
                }
                Ok(Tree::Map(entries))
            }
        }
        deserializer.deserialize_any(Any)
    }
}

impl RawNode {
    fn resolve(self, source: &SourceFile) -> Node {
        let span = Span::from_location(&self.0.referenced, source);
        let value = match self.0.value {
            Tree::Scalar(value) => value,
            Tree::Seq(items) => Value::Seq(items.into_iter().map(|n| n.resolve(source)).collect()),
            Tree::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.resolve(source), v.resolve(source)))
                    .collect(),
            ),
        };
        Node { value, span }
    }
}

impl Node {
    fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool => "a boolean",
            Value::Int => "an integer",
            Value::Float => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Whether the node has the JSON Schema type `ty`. Plain scalars read as
    /// strings too (serde-saphyr reads `web` and `8080` both as a string
    /// where one is expected).
    fn has_type(&self, ty: &str) -> bool {
        matches!(
            (&self.value, ty),
            (Value::Null, "null")
                | (Value::Bool, "boolean")
                | (Value::Int, "integer")
                | (Value::Int | Value::Float, "number")
                | (
                    Value::Str(_) | Value::Int | Value::Float | Value::Bool,
                    "string"
                )
                | (Value::Seq(_), "array")
                | (Value::Map(_), "object")
        )
    }

    /// A mapping key's text as the name of its value.
    fn key_name(&self) -> &str {
        match &self.value {
            Value::Str(s) => s,
            _ => "value",
        }
    }

    fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            _ => String::new(),
        }
    }
}

/// Every structural problem of `source` as `schema` (a JSON Schema from
/// schemars) sees it (none found: empty); the YAML error when it does not
/// parse. Hints point to the format's `reference`.
pub(crate) fn check(
    source: &SourceFile,
    schema: &Json,
    what: &str,
    reference: &'static str,
) -> Result<Vec<Diagnostic>, serde_saphyr::Error> {
    let root = serde_saphyr::from_str::<RawNode>(&source.text)?;
    let root = root.resolve(source);
    let mut keys = Vec::new();
    collect_keys(&root, &mut keys);
    let mut checker = Checker {
        source,
        defs: schema.get("$defs").and_then(Json::as_object),
        keys,
        out: Vec::new(),
        reference,
    };
    checker.node(&root, schema, what);
    checker
        .out
        .sort_by_key(|d| d.labels.first().map(|l| l.span.offset));
    Ok(checker.out)
}

/// A mapping key anywhere in the document: its text, where it is written,
/// and the mapping it belongs to (by the mapping's offset).
struct Key {
    name: String,
    span: Span,
    owner: usize,
}

fn collect_keys(node: &Node, out: &mut Vec<Key>) {
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|n| collect_keys(n, out)),
        Value::Map(entries) => {
            for (k, v) in entries {
                out.push(Key {
                    name: k.key_text(),
                    span: k.span,
                    owner: node.span.offset,
                });
                collect_keys(v, out);
            }
        }
        _ => {}
    }
}

/// The largest offset of a node or anything in it: where a mapping ends.
fn last_offset(node: &Node) -> usize {
    let inner = match &node.value {
        Value::Seq(items) => items.iter().map(last_offset).max(),
        Value::Map(entries) => entries.iter().map(|(_, v)| last_offset(v)).max(),
        _ => None,
    };
    inner.unwrap_or(0).max(node.span.offset + node.span.len)
}

struct Checker<'a> {
    source: &'a SourceFile,
    defs: Option<&'a Map<String, Json>>,
    keys: Vec<Key>,
    out: Vec<Diagnostic>,
    /// The format's reference, which hints point to.
    reference: &'static str,
}

impl<'a> Checker<'a> {
    /// The schema behind a `$ref`, and the name of its definition.
    fn resolve(&self, mut schema: &'a Json, name: &str) -> (&'a Json, String) {
        let mut name = name.to_owned();
        while let Some(target) = schema.get("$ref").and_then(Json::as_str) {
            let def = target.rsplit('/').next().unwrap_or(target);
            match self.defs.and_then(|d| d.get(def)) {
                Some(found) => (schema, name) = (found, def.to_owned()),
                None => break,
            }
        }
        (schema, name)
    }

    /// Checks `node` against `schema`; `what` names the value for messages
    /// (a definition or a key).
    fn node(&mut self, node: &Node, schema: &'a Json, what: &str) {
        let (schema, what) = self.resolve(schema, what);
        let what = what.as_str();
        if let Some(alternatives) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            return self.alternatives(node, alternatives, what);
        }
        if let Some(word) = schema.get("const").and_then(Json::as_str) {
            return self.words(node, &[word]);
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Json::String(t) => vec![t.as_str()],
                Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.iter().any(|t| node.has_type(t)) {
                let named: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
                let expected = if named.is_empty() {
                    "nothing".to_owned()
                } else {
                    named.join(" or ")
                };
                self.out.push(
                    Diagnostic::new(
                        Code::WrongType,
                        format!("expected {expected}, found {}", node.kind()),
                    )
                    .with_label(node.span, format!("expected {expected}"))
                    .with_help(shape_help(what, self.reference)),
                );
                return;
            }
        }
        match &node.value {
            Value::Map(entries) => self.mapping(node, entries, schema, what),
            Value::Seq(items) => {
                if let Some(item) = schema.get("items") {
                    for n in items {
                        self.node(n, item, what);
                    }
                }
            }
            _ => {}
        }
    }

    /// An untagged value: the alternative that fits without a problem, else
    /// the problems of the one of the node's shape, else a wrong shape.
    fn alternatives(&mut self, node: &Node, alternatives: &'a [Json], what: &str) {
        let resolved: Vec<(&'a Json, String)> =
            alternatives.iter().map(|a| self.resolve(a, what)).collect();
        let words: Vec<&str> = resolved
            .iter()
            .filter_map(|(a, _)| a.get("const").and_then(Json::as_str))
            .collect();
        if !words.is_empty() && words.len() == resolved.len() {
            return self.words(node, &words);
        }
        let mut best: Option<Vec<Diagnostic>> = None;
        for (alternative, name) in &resolved {
            let before = std::mem::take(&mut self.out);
            self.node(node, alternative, name);
            let found = std::mem::replace(&mut self.out, before);
            if found.is_empty() {
                return;
            }
            // Only "wrong type" at the node itself: not the node's shape.
            let other_shape = found.len() == 1
                && found[0].code == Code::WrongType
                && found[0].labels.first().map(|l| l.span) == Some(node.span);
            if !other_shape && best.is_none() {
                best = Some(found);
            }
        }
        match best {
            Some(found) => self.out.extend(found),
            None => self.out.push(
                Diagnostic::new(Code::WrongType, "this value has the wrong shape")
                    .with_label(node.span, format!("{} does not fit here", node.kind()))
                    .with_help(shape_help(what, self.reference)),
            ),
        }
    }

    /// A word from a fixed list (any case: `TCP` is read as `tcp`).
    fn words(&mut self, node: &Node, words: &[&str]) {
        let Value::Str(text) = &node.value else {
            let expected = words.join(", ");
            self.out.push(
                Diagnostic::new(
                    Code::WrongType,
                    format!("expected one of {expected}, found {}", node.kind()),
                )
                .with_label(node.span, "not one of the allowed words")
                .with_help(format!("expected one of: {expected}")),
            );
            return;
        };
        if words.iter().any(|w| w.eq_ignore_ascii_case(text)) {
            return;
        }
        let help = match did_you_mean(&text.to_ascii_lowercase(), words.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("expected one of: {}", words.join(", ")),
        };
        self.out.push(
            Diagnostic::new(Code::WrongType, format!("unknown value `{text}`"))
                .with_label(node.span, "not one of the allowed words")
                .with_help(help),
        );
    }

    fn mapping(&mut self, node: &Node, entries: &[(Node, Node)], schema: &'a Json, what: &str) {
        let properties = schema.get("properties").and_then(Json::as_object);
        let closed = schema.get("additionalProperties") == Some(&Json::Bool(false));
        let others = schema.get("additionalProperties").filter(|a| a.is_object());
        for (key, value) in entries {
            let name = key.key_text();
            match properties.and_then(|p| p.get(&name)) {
                Some(property) => {
                    if !matches!(value.value, Value::Null) {
                        self.node(value, property, key.key_name());
                    }
                }
                None if closed => self.unknown_key(key, &name, properties),
                None => {
                    if let Some(other) = others {
                        if !matches!(value.value, Value::Null) {
                            self.node(value, other, "value");
                        }
                    }
                }
            }
        }
        let required = schema.get("required").and_then(Json::as_array);
        for field in required.into_iter().flatten().filter_map(Json::as_str) {
            match entries.iter().find(|(k, _)| k.key_text() == field) {
                None => self.missing_key(node, field, what),
                Some((_, value)) if matches!(value.value, Value::Null) => {
                    self.out.push(
                        Diagnostic::new(Code::WrongType, format!("`{field}` has no value"))
                            .with_label(value.span, "a value is required here")
                            .with_help(format!("give `{field}` a value; see {}", self.reference)),
                    );
                }
                Some(_) => {}
            }
        }
    }

    fn unknown_key(&mut self, key: &Node, name: &str, properties: Option<&Map<String, Json>>) {
        let known: Vec<&str> = properties
            .into_iter()
            .flat_map(|p| p.keys().map(String::as_str))
            .collect();
        let help = match did_you_mean(name, known.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("known keys here: {}", known.join(", ")),
        };
        self.out.push(
            Diagnostic::new(Code::UnknownKey, format!("unknown key `{name}`"))
                .with_label(key.span, "not a key of this section")
                .with_help(help),
        );
    }

    /// A missing key, underlined at the start of its mapping; when a key of
    /// that name is written nearby in another mapping, the hint says where
    /// (a mis-indented `to:` becomes a key of the enclosing mapping).
    fn missing_key(&mut self, node: &Node, field: &str, what: &str) {
        let what = human(what);
        let (first_line, _) = self.source.line_col(node.span.offset);
        let (last_line, _) = self.source.line_col(last_offset(node));
        let (_, indent) = self.source.line_col(node.span.offset);
        let stray = self.keys.iter().find(|k| {
            let (line, column) = self.source.line_col(k.span.offset);
            k.name == field
                && k.owner != node.span.offset
                && column != indent
                && starts_line(&self.source.text, k.span.offset)
                && line + 1 >= first_line
                && line <= last_line + 2
        });
        let help = match stray {
            Some(k) => stray_help(self.source, k.span.offset, field, &what),
            None => format!("add `{field}:`; see {}", self.reference),
        };
        self.out.push(
            Diagnostic::new(Code::MissingKey, format!("missing required key `{field}`"))
                .with_label(
                    self.start_line(node),
                    format!("this {what} has no `{field}`"),
                )
                .with_help(help),
        );
    }

    /// From a node's start to the end of its first line.
    fn start_line(&self, node: &Node) -> Span {
        let text = &self.source.text;
        let start = node.span.offset.min(text.len());
        let end = text[start..]
            .find(['\n', '\r'])
            .map_or(text.len(), |i| start + i);
        Span::new(start, end - start)
    }
}

/// Whether only indentation (and list dashes) precede `offset` on its line.
fn starts_line(text: &str, offset: usize) -> bool {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    text[start..offset].chars().all(|c| c == ' ' || c == '-')
}

fn stray_help(source: &SourceFile, offset: usize, field: &str, what: &str) -> String {
    let (line, column) = source.line_col(offset);
    format!(
        "`{field}:` at line {line}, column {column} is not part of this {what}: check its indentation (indent it like the {what}'s other keys)"
    )
}

/// The indentation hint for a missing `field` that serde reported at
/// `offset` (a key of the mapping) when the YAML breaks further on: a line
/// nearby that starts with `field:` at another indentation.
pub(crate) fn stray_key_hint(source: &SourceFile, offset: usize, field: &str) -> Option<String> {
    let text = &source.text;
    let (line, column) = source.line_col(offset);
    let lines: Vec<&str> = text.lines().collect();
    let from = line.saturating_sub(20).max(1);
    (from..=(line + 3).min(lines.len())).find_map(|n| {
        let content = lines[n - 1];
        let body = content.trim_start_matches([' ', '-']);
        let rest = body.strip_prefix(field)?.trim_start();
        let at = content.len() - body.len();
        let key_column = content[..at].chars().count() + 1;
        (rest.starts_with(':') && key_column != column).then(|| {
            let key_offset = source.offset_of(n, key_column);
            stray_help(source, key_offset, field, "mapping")
        })
    })
}

/// The human name of a definition (`RawSiteFlow` → `site flow`); other
/// names (keys) as they are.
fn human(what: &str) -> String {
    let Some(name) = what.strip_prefix("Raw") else {
        return what.to_owned();
    };
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The hint for a value of the wrong shape, by what it is; else a pointer
/// to the format's `reference`.
fn shape_help(what: &str, reference: &str) -> String {
    match what {
        "RawPorts" | "RawPortItem" | "port" | "source_port" => "a port is a number (443), a range (\"8000-8010\"), a parameter (\"$postgres-port\") or a list of them".to_owned(),
        "RawCondition" | "when" => "a condition is a feature id, {any: [...]}, {all: [...]} or {not: ...}".to_owned(),
        "RawIds" | "from" | "to" => "expected an id or a list of ids".to_owned(),
        _ => format!("see {reference} for the shape of this value"),
    }
}
