//! A [`ChangeRequest`] written out: markdown (for a ticket or a merge
//! request), CSV (for a spreadsheet), a terminal table, or JSON.
//!
//! Text from the spec and the deployment is escaped for each: markdown
//! backslash escapes (no HTML, no broken table cells), CSV quoting with a
//! `'` before a cell a spreadsheet would read as a formula (`=`, `+`, `-`,
//! `@`, tab, carriage return), control characters shown escaped on a
//! terminal.

use comfy_table::{presets, ContentArrangement, Table};
use portolan_render::escape::markdown;
use portolan_spec::text::escape_controls;

use crate::{ChangeRequest, Changed, FlowSide, HostChange};

/// An output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Markdown: tables of flows, then each host's commands.
    Markdown,
    /// CSV: one row per flow change and host.
    Csv,
    /// A table for a terminal.
    Table,
    /// JSON: the [`ChangeRequest`] as it is.
    Json,
}

/// Writes the change request in `format`.
pub fn render(request: &ChangeRequest, format: Format) -> String {
    match format {
        Format::Markdown => to_markdown(request),
        Format::Csv => to_csv(request),
        Format::Table => to_table(request),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(request)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            text.push('\n');
            text
        }
    }
}

/// An end of a flow: its id, with its addresses when known.
fn end(id: &str, addresses: &[String]) -> String {
    if addresses.is_empty() {
        id.to_owned()
    } else {
        format!("{id} ({})", addresses.join(", "))
    }
}

fn traffic(side: &FlowSide) -> String {
    let mut text = format!("{} {}", side.protocol, side.ports);
    if !side.source_ports.is_empty() {
        text.push_str(&format!(" from port {}", side.source_ports));
    }
    if let Some(group) = &side.multicast {
        text.push_str(&format!(" to group {group}"));
    }
    text
}

fn condition(side: &FlowSide) -> String {
    let required = if side.required {
        "required"
    } else {
        "optional"
    };
    match &side.condition {
        Some(c) => format!("{required}, when {c}"),
        None => required.to_owned(),
    }
}

fn reason(side: &FlowSide) -> String {
    let mut parts = Vec::new();
    if side.site {
        parts.push("site flow".to_owned());
    }
    if let Some(name) = &side.name {
        parts.push(name.clone());
    }
    if let Some(purpose) = &side.purpose {
        parts.push(purpose.clone());
    }
    parts.join(": ")
}

fn reference(side: &FlowSide) -> String {
    match &side.origin {
        Some(origin) => format!("{origin} ({})", side.at),
        None => side.at.clone(),
    }
}

/// What a changed flow was and is, field by field.
fn before_after(change: &Changed) -> (String, String) {
    let (old, new) = (&change.old, &change.new);
    let mut before = Vec::new();
    let mut after = Vec::new();
    for field in &change.fields {
        let (b, a) = match field {
            crate::Field::Protocol
            | crate::Field::Ports
            | crate::Field::SourcePorts
            | crate::Field::Multicast => (traffic(old), traffic(new)),
            crate::Field::Condition | crate::Field::Required => (condition(old), condition(new)),
            crate::Field::Source => (old.source.join(", "), new.source.join(", ")),
            crate::Field::Destination => (old.destination.join(", "), new.destination.join(", ")),
        };
        if !before.contains(&b) || !after.contains(&a) {
            before.push(b);
            after.push(a);
        }
    }
    (before.join("; "), after.join("; "))
}

fn what(change: &Changed) -> String {
    change
        .fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(request: &ChangeRequest) -> String {
    let f = &request.flows;
    let commands: usize = request.hosts.iter().map(|h| h.commands.len()).sum();
    let mut text = format!(
        "{} flow(s) added, {} removed, {} changed",
        f.added.len(),
        f.removed.len(),
        f.changed.len()
    );
    if let Some(target) = &request.target {
        text.push_str(&format!(
            "; {commands} {target} command(s) on {} host(s)",
            request.hosts.len()
        ));
    }
    text
}

// ---------------------------------------------------------------- markdown

fn md_row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| markdown(c)).collect();
    format!("| {} |\n", cells.join(" | "))
}

fn md_flows(out: &mut String, heading: &str, sides: &[FlowSide]) {
    if sides.is_empty() {
        return;
    }
    out.push_str(&format!("\n## {heading}\n\n"));
    out.push_str(
        "| Flow | Source | Destination | Protocol and ports | Condition | Reason | Reference |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for s in sides {
        out.push_str(&md_row(&[
            s.id.clone(),
            end(&s.from, &s.source),
            end(&s.to, &s.destination),
            traffic(s),
            condition(s),
            reason(s),
            reference(s),
        ]));
    }
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn md_host(out: &mut String, host: &HostChange) {
    out.push_str(&format!("\n### Host {}\n\n", markdown(&host.host)));
    if host.new_host {
        out.push_str("A new host: load its whole generated file (`portolan generate`); the commands below are its rules.\n\n");
    }
    if host.gone {
        out.push_str("The new version has no rules for this host.\n\n");
    }
    let body: String = host
        .commands
        .iter()
        .flat_map(|c| c.shell.iter())
        .map(|line| format!("{}\n", escape_controls(line)))
        .collect();
    let fence = fence(&body);
    out.push_str(&format!("{fence}sh\n{body}{fence}\n"));
}

fn to_markdown(request: &ChangeRequest) -> String {
    let mut out = format!("# Change request: {}\n\n", markdown(&request.system));
    let compared: Vec<String> = request.compared.iter().map(|c| markdown(c)).collect();
    out.push_str(&format!("Compared: {}.\n\n", compared.join(", ")));
    out.push_str(&format!("{}.\n", summary(request)));
    md_flows(&mut out, "Flows added", &request.flows.added);
    md_flows(&mut out, "Flows removed", &request.flows.removed);
    if !request.flows.changed.is_empty() {
        out.push_str("\n## Flows changed\n\n");
        out.push_str(
            "| Flow | Source | Destination | What | Before | After | Reason | Reference |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for c in &request.flows.changed {
            let (before, after) = before_after(c);
            let id = if c.old.id == c.new.id {
                c.new.id.clone()
            } else {
                format!("{} (was {})", c.new.id, c.old.id)
            };
            out.push_str(&md_row(&[
                id,
                end(&c.new.from, &c.new.source),
                end(&c.new.to, &c.new.destination),
                what(c),
                before,
                after,
                reason(&c.new),
                reference(&c.new),
            ]));
        }
    }
    if let Some(target) = &request.target {
        if !request.hosts.is_empty() {
            out.push_str(&format!("\n## Commands per host ({})\n\nRun each host's commands in order: what the new rules need, the new rules, then the removal of the old ones, so that no allowed flow is cut in between.\n", markdown(target)));
        }
        for host in &request.hosts {
            md_host(&mut out, host);
        }
    }
    out
}

// ---------------------------------------------------------------- CSV

/// One CSV cell: a formula-leading character gets a `'` first (so that a
/// spreadsheet shows it as text), and a cell with a comma, quote or line
/// break is quoted with its quotes doubled.
pub fn csv_cell(text: &str) -> String {
    let mut cell = String::new();
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.push('\'');
    }
    cell.push_str(text);
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

const CSV_HEADER: [&str; 14] = [
    "change",
    "flow",
    "was",
    "source",
    "destination",
    "protocol and ports",
    "condition",
    "changed fields",
    "before",
    "reason",
    "reference",
    "host",
    "action",
    "commands",
];

fn csv_rows(out: &mut Vec<Vec<String>>, request: &ChangeRequest, base: Vec<String>, ids: &[&str]) {
    let mut any = false;
    for host in &request.hosts {
        for command in &host.commands {
            if !command.flows.iter().any(|f| ids.contains(&f.as_str())) {
                continue;
            }
            any = true;
            let mut row = base.clone();
            row.push(host.host.clone());
            row.push(command.action.as_str().to_owned());
            row.push(command.shell.join("\n"));
            out.push(row);
        }
    }
    if !any {
        let mut row = base;
        row.extend([String::new(), String::new(), String::new()]);
        out.push(row);
    }
}

fn to_csv(request: &ChangeRequest) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let side_row = |change: &str, s: &FlowSide| {
        vec![
            change.to_owned(),
            s.id.clone(),
            String::new(),
            end(&s.from, &s.source),
            end(&s.to, &s.destination),
            traffic(s),
            condition(s),
            String::new(),
            String::new(),
            reason(s),
            reference(s),
        ]
    };
    for s in &request.flows.added {
        csv_rows(&mut rows, request, side_row("added", s), &[&s.id]);
    }
    for s in &request.flows.removed {
        csv_rows(&mut rows, request, side_row("removed", s), &[&s.id]);
    }
    for c in &request.flows.changed {
        let (before, _) = before_after(c);
        let mut row = side_row("changed", &c.new);
        row[2] = if c.old.id == c.new.id {
            String::new()
        } else {
            c.old.id.clone()
        };
        row[7] = what(c);
        row[8] = before;
        csv_rows(&mut rows, request, row, &[&c.old.id, &c.new.id]);
    }
    let mut out = String::new();
    for row in std::iter::once(CSV_HEADER.iter().map(|h| (*h).to_owned()).collect()).chain(rows) {
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

// ---------------------------------------------------------------- table

fn to_table(request: &ChangeRequest) -> String {
    let mut out = format!(
        "{}: {}\n",
        escape_controls(&request.system),
        summary(request)
    );
    let f = &request.flows;
    if !f.is_empty() {
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header([
                "change",
                "flow",
                "source",
                "destination",
                "traffic",
                "before",
            ]);
        let mut row = |change: &str, s: &FlowSide, before: String| {
            table.add_row([
                change.to_owned(),
                escape_controls(&s.id).into_owned(),
                escape_controls(&end(&s.from, &s.source)).into_owned(),
                escape_controls(&end(&s.to, &s.destination)).into_owned(),
                escape_controls(&traffic(s)).into_owned(),
                escape_controls(&before).into_owned(),
            ]);
        };
        for s in &f.added {
            row("added", s, String::new());
        }
        for s in &f.removed {
            row("removed", s, String::new());
        }
        for c in &f.changed {
            row("changed", &c.new, before_after(c).0);
        }
        out.push_str(&format!("{table}\n"));
    }
    for host in &request.hosts {
        out.push_str(&format!("\nhost {}:\n", escape_controls(&host.host)));
        for command in &host.commands {
            for line in &command.shell {
                out.push_str(&format!("  {}\n", escape_controls(line)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn spec_text_is_escaped_in_markdown_and_csv() {
        let side = FlowSide {
            id: "a->b/tcp/1".to_owned(),
            from: "a".to_owned(),
            to: "b".to_owned(),
            source: Vec::new(),
            destination: Vec::new(),
            protocol: "tcp".to_owned(),
            ports: "1".to_owned(),
            source_ports: String::new(),
            multicast: None,
            condition: None,
            required: true,
            site: false,
            name: None,
            purpose: Some("=HYPERLINK(\"http://x\") | <script>alert(1)</script>".to_owned()),
            origin: Some("@table, \"quoted\"".to_owned()),
            at: "spec.yaml:3".to_owned(),
        };
        let request = ChangeRequest {
            system: "Shop | <b>".to_owned(),
            compared: vec!["old.yaml".to_owned(), "new.yaml".to_owned()],
            flows: crate::FlowDiff {
                added: vec![side],
                ..crate::FlowDiff::default()
            },
            target: None,
            hosts: Vec::new(),
        };
        let md = render(&request, Format::Markdown);
        assert!(!md.contains("<script>") && !md.contains("<b>"), "{md}");
        assert!(
            md.contains("\\<script\\>") && md.contains("Shop \\| \\<b\\>"),
            "{md}"
        );
        let row = md
            .lines()
            .find(|l| l.starts_with("| a-"))
            .unwrap_or_default();
        // Seven cells: no pipe from the text ends one.
        assert_eq!(row.matches(" | ").count(), 6, "{row}");
        let csv = render(&request, Format::Csv);
        let line = csv.lines().nth(1).unwrap_or_default();
        assert!(
            line.contains(",\"'=HYPERLINK(\"\"http://x\"\") | <script>alert(1)</script>\","),
            "{line}"
        );
        assert!(
            line.contains("\"'@table, \"\"quoted\"\" (spec.yaml:3)\""),
            "{line}"
        );
    }

    #[test]
    fn fences_outgrow_backticks() {
        assert_eq!(fence("plain"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }

    #[test]
    fn actions_sort_adds_first() {
        assert!(crate::Action::AddRule < crate::Action::DeleteRule);
    }
}
