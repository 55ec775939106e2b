//! A Graphviz DOT digraph.

use std::fmt::Write as _;

use crate::graph::{edges, nodes, Group};
use portolan_spec::Spec;

/// Renders the digraph.
pub(crate) fn render(spec: &Spec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&spec.system.name));
    let _ = writeln!(
        out,
        "  graph [rankdir=LR, label={}, labelloc=t, fontname=\"Helvetica\"];",
        quote(&format!("{}: networking requirements", spec.system.name))
    );
    out.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let nodes = nodes(spec);
    for group in Group::ALL {
        let members: Vec<_> = nodes.iter().filter(|n| n.group == group).collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  subgraph cluster_{} {{", group.key());
        let _ = writeln!(
            out,
            "    graph [label={}, style=rounded];",
            quote(&group.title(spec))
        );
        let shape = match group {
            Group::System => "box",
            Group::Dependency => "cylinder",
            Group::Outside => "ellipse",
            Group::Endpoints => "hexagon",
        };
        for node in members {
            let _ = writeln!(
                out,
                "    {} [label={}, shape={shape}];",
                quote(&node_id(&node.id)),
                quote(&node.lines.join("\n"))
            );
        }
        out.push_str("  }\n");
    }
    for edge in edges(spec) {
        let style = if edge.optional { ", style=dashed" } else { "" };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}{style}];",
            quote(&node_id(&edge.from)),
            quote(&node_id(&edge.to)),
            quote(&edge.lines.join("\n"))
        );
    }
    out.push_str("}\n");
    out
}

/// A node id, prefixed so that no id is a DOT keyword (`node`, `edge`, ...).
fn node_id(id: &str) -> String {
    format!("n-{id}")
}

/// A DOT double-quoted string. Backslashes are doubled so that label escapes
/// such as `\N` or `\l` never come from the spec's text; line breaks become `\n`.
fn quote(s: &str) -> String {
    // Control characters are shown escaped: `dot` refuses a NUL, and the
    // others would reach whoever reads the file or the rendered labels.
    let s = portolan_spec::text::escape_controls_multiline(s);
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a "b" \N"#), r#""a \"b\" \\N""#);
        assert_eq!(quote("x\ny"), r#""x\ny""#);
        assert_eq!(quote("a\0b\u{1b}"), r#""a\\0b\\e""#);
    }
}
