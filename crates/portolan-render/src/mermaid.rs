//! A Mermaid flowchart.

use std::fmt::Write as _;

use crate::graph::{edges, nodes, Group};
use portolan_spec::Spec;

/// Renders the flowchart.
pub(crate) fn render(spec: &Spec) -> String {
    let mut out = String::from("flowchart LR\n");
    let nodes = nodes(spec);
    for group in Group::ALL {
        let members: Vec<_> = nodes.iter().filter(|n| n.group == group).collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "  subgraph group_{}[\"{}\"]",
            group.key(),
            text(&group.title(spec))
        );
        for node in members {
            let label = node
                .lines
                .iter()
                .map(|l| text(l))
                .collect::<Vec<_>>()
                .join("<br>");
            let (open, close) = match group {
                Group::System => ("[\"", "\"]"),
                Group::Dependency => ("[(\"", "\")]"),
                Group::Outside => ("((\"", "\"))"),
                Group::Endpoints => ("{{\"", "\"}}"),
            };
            let _ = writeln!(out, "    {}{open}{label}{close}", node_id(&node.id));
        }
        out.push_str("  end\n");
    }
    for edge in edges(spec) {
        let arrow = if edge.optional { "-.->" } else { "-->" };
        let label = edge
            .lines
            .iter()
            .map(|l| text(l))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = writeln!(
            out,
            "  {} {arrow}|\"{label}\"| {}",
            node_id(&edge.from),
            node_id(&edge.to)
        );
    }
    out
}

/// A node id: spec ids are lowercase letters, digits and `-`; Mermaid reads
/// `-` as part of an arrow and some words (`end`, ids starting with `o` or
/// `x` after `--`) as syntax, so ids get a prefix and `_` for `-`. The
/// mapping is one-to-one because spec ids never contain `_`.
pub(crate) fn node_id(id: &str) -> String {
    format!("n_{}", id.replace('-', "_"))
}

/// Text inside a quoted Mermaid string: the characters that end the string
/// or start markup become Mermaid's numeric entity codes (`#34;`);
/// control characters are shown escaped (`\e` becomes `#92;e`).
pub(crate) fn text(s: &str) -> String {
    let s = portolan_spec::text::escape_controls_multiline(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' | '"' | '<' | '>' | '&' | '|' | '`' | '\\' => {
                let _ = write!(out, "#{};", u32::from(c));
            }
            '\n' | '\r' => out.push_str("<br>"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(text(r#"a "b" <c> #1"#), "a #34;b#34; #60;c#62; #35;1");
        assert_eq!(node_id("data-storage"), "n_data_storage");
        assert_eq!(text("a\u{1b}]0;x\0"), "a#92;e]0;x#92;0");
    }
}
