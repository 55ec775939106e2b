//! The YAML the importer writes, from the typed draft spec through serde.
//!
//! A general YAML serialiser (serde-saphyr) would write a valid spec, but
//! not the spec users and tests have known since the importer was first
//! written: a header comment, blank lines between sections, short lists
//! and conditions in flow style (`from: [a, b]`, `when: {any: [x, y]}`),
//! plain scalars wherever that is unambiguous and double quotes otherwise,
//! and `$parameter` ports unquoted. So the [`DraftSpec`] goes through
//! serde into a small tree of YAML nodes (with each scalar already written
//! as YAML), and the tree is laid out in that style here: the header
//! comment and the layout are this module's, every value is serde's.

use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

use crate::draft::DraftSpec;

/// The spec as YAML, after a comment naming the page.
pub fn write(spec: &DraftSpec, file: &str) -> Result<String, Error> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported by `portolan import` from {}.\n# Review every `guess:`; `origin:` gives the page line of each flow.",
        file.replace('\n', " ")
    );
    let Node::Map(entries) = spec.serialize(NodeSerializer { plain: false })? else {
        return Err(Error("the draft spec is not a mapping".to_owned()));
    };
    for (key, value) in &entries {
        match value {
            Node::Scalar(s) => {
                let _ = writeln!(out, "{key}: {s}");
            }
            Node::Map(inner) => {
                let _ = writeln!(out, "{key}:");
                for (k, v) in inner {
                    let _ = writeln!(out, "  {k}: {}", flow(v));
                }
            }
            Node::Seq(items) => {
                let _ = writeln!(out, "\n{key}:");
                for item in items {
                    block_item(&mut out, item);
                }
            }
        }
    }
    Ok(out)
}

/// A list item at the second level: a mapping, one key a line.
fn block_item(out: &mut String, item: &Node) {
    match item {
        Node::Map(entries) => {
            for (i, (k, v)) in entries.iter().enumerate() {
                let lead = if i == 0 { "  - " } else { "    " };
                let _ = writeln!(out, "{lead}{k}: {}", flow(v));
            }
        }
        other => {
            let _ = writeln!(out, "  - {}", flow(other));
        }
    }
}

/// A node in flow style.
fn flow(node: &Node) -> String {
    match node {
        Node::Scalar(s) => s.clone(),
        Node::Seq(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Node::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// A string written as it is, not quoted: a `$parameter` port, whose
/// characters (letters, digits, `-` after the `$`) need no quotes.
pub struct Plain<'a>(pub &'a str);

/// The newtype name that marks a [`Plain`] scalar.
const PLAIN: &str = "portolan-import::plain";

impl Serialize for Plain<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(PLAIN, self.0)
    }
}

/// A YAML value with its scalars already written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// A value the draft spec cannot hold (a bug of the importer, not of the page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn unsupported(what: &str) -> Error {
    Error(format!("{what} has no place in a draft spec"))
}

/// Serialises a value into a [`Node`]; `plain` writes a string unquoted.
#[derive(Clone, Copy)]
struct NodeSerializer {
    plain: bool,
}

/// Collects the items of a sequence.
struct SeqNodes(Vec<Node>);

/// Collects the entries of a mapping or struct.
struct MapNodes {
    entries: Vec<(String, Node)>,
    key: Option<String>,
}

impl ser::Serializer for NodeSerializer {
    type Ok = Node;
    type Error = Error;
    type SerializeSeq = SeqNodes;
    type SerializeTuple = SeqNodes;
    type SerializeTupleStruct = ser::Impossible<Node, Error>;
    type SerializeTupleVariant = ser::Impossible<Node, Error>;
    type SerializeMap = MapNodes;
    type SerializeStruct = MapNodes;
    type SerializeStructVariant = ser::Impossible<Node, Error>;

    fn serialize_bool(self, v: bool) -> Result<Node, Error> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn serialize_i8(self, v: i8) -> Result<Node, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Node, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Node, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Node, Error> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn serialize_u8(self, v: u8) -> Result<Node, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Node, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Node, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Node, Error> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn serialize_f32(self, _: f32) -> Result<Node, Error> {
        Err(unsupported("a float"))
    }
    fn serialize_f64(self, _: f64) -> Result<Node, Error> {
        Err(unsupported("a float"))
    }
    fn serialize_char(self, v: char) -> Result<Node, Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Node, Error> {
        Ok(Node::Scalar(if self.plain { v.to_owned() } else { q(v) }))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Node, Error> {
        Err(unsupported("bytes"))
    }
    fn serialize_none(self) -> Result<Node, Error> {
        Ok(Node::Scalar("null".to_owned()))
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Node, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Node, Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Node, Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Node, Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Node, Error> {
        value.serialize(NodeSerializer {
            plain: name == PLAIN,
        })
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Node, Error> {
        Ok(Node::Map(vec![(q(variant), value.serialize(self)?)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqNodes, Error> {
        Ok(SeqNodes(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqNodes, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(unsupported("a tuple struct"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("a tuple variant"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapNodes, Error> {
        Ok(MapNodes {
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<MapNodes, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("a struct variant"))
    }
}

impl ser::SerializeSeq for SeqNodes {
    type Ok = Node;
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.0
            .push(value.serialize(NodeSerializer { plain: false })?);
        Ok(())
    }
    fn end(self) -> Result<Node, Error> {
        Ok(Node::Seq(self.0))
    }
}

impl ser::SerializeTuple for SeqNodes {
    type Ok = Node;
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Node, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for MapNodes {
    type Ok = Node;
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        match key.serialize(NodeSerializer { plain: false })? {
            Node::Scalar(k) => {
                self.key = Some(k);
                Ok(())
            }
            _ => Err(unsupported("a key that is not a scalar")),
        }
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| unsupported("a value without a key"))?;
        let value = value.serialize(NodeSerializer { plain: false })?;
        self.entries.push((key, value));
        Ok(())
    }
    fn end(self) -> Result<Node, Error> {
        Ok(Node::Map(self.entries))
    }
}

impl ser::SerializeStruct for MapNodes {
    type Ok = Node;
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeMap::serialize_entry(self, key, value)
    }
    fn end(self) -> Result<Node, Error> {
        ser::SerializeMap::end(self)
    }
}

/// A YAML scalar: plain when that is unambiguous, else double-quoted.
pub fn q(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_alphabetic())
        && s.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '/' | '(' | ')' | ',')
        })
        && !s.ends_with(' ')
        && !matches!(
            s.to_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "null" | "on" | "off" | "y" | "n" | "~"
        );
    if plain_ok {
        return s.to_owned();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if matches!(c as u32, 0x80..=0x9f | 0xfeff | 0x2028 | 0x2029) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(q("API"), "API");
        assert_eq!(q("Long-tail Store"), "Long-tail Store");
        assert_eq!(q("yes"), "\"yes\"");
        assert_eq!(q("a: b"), "\"a: b\"");
        assert_eq!(q("443 or user-defined"), "\"443 or user-defined\"");
        assert_eq!(q("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(q("*.x"), "\"*.x\"");
    }

    #[test]
    fn values_take_the_importer_style() {
        #[derive(serde::Serialize)]
        struct Item {
            id: &'static str,
            list: Vec<&'static str>,
            port: Plain<'static>,
            enabled: bool,
        }
        let node = Item {
            id: "a: b",
            list: vec!["x", "1"],
            port: Plain("$p"),
            enabled: false,
        }
        .serialize(NodeSerializer { plain: false })
        .unwrap();
        let mut out = String::new();
        block_item(&mut out, &node);
        assert_eq!(
            out,
            "  - id: \"a: b\"\n    list: [x, \"1\"]\n    port: $p\n    enabled: false\n"
        );
        assert!(1.5f64.serialize(NodeSerializer { plain: false }).is_err());
    }
}
