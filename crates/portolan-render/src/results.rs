//! Live results as a connection matrix: which required flows work, seen from
//! every host that reported, as markdown and as one self-contained HTML page.
//!
//! The input is a [`ResultsMatrix`], a plain view model: rows are sources,
//! columns destinations, and each [`ResultCell`] holds one [`CellEntry`] per
//! probe (or per flow that was not probed). Whoever gathers results
//! (`portolan report`, the lab) fills it; this module only lays it out. The
//! cell's status is derived from its entries by [`ResultCell::status`], so
//! that a cell can never say more than its entries prove.
//!
//! The HTML page fetches nothing: styles and script are inline and its
//! Content-Security-Policy forbids every other source. Each cell shows
//! pass / fail / partial / untested, its details in the `title` (hover) and,
//! on click (or with `#cell-FROM--TO` in the address), in a panel below.

use std::fmt::Write as _;

use crate::markdown::{escape, table};

/// The status of one entry, and of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellStatus {
    /// Every flow of the cell was probed and every probe passed.
    Pass,
    /// A probe of a required flow failed.
    Fail,
    /// Some probes passed, but some flows were not probed, or only optional
    /// flows failed: nothing proves the cell fails, nothing proves it all works.
    Partial,
    /// Nothing was probed.
    Untested,
}

impl CellStatus {
    /// The lowercase word shown in cells and used as CSS class.
    pub const fn as_str(self) -> &'static str {
        match self {
            CellStatus::Pass => "pass",
            CellStatus::Fail => "fail",
            CellStatus::Partial => "partial",
            CellStatus::Untested => "untested",
        }
    }

    /// A symbol for markdown cells, where colour is not available.
    const fn symbol(self) -> &'static str {
        match self {
            CellStatus::Pass => "✅",
            CellStatus::Fail => "❌",
            CellStatus::Partial => "◐",
            CellStatus::Untested => "○",
        }
    }
}

/// A row or column of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    /// Component or external id (used in anchors and `data-` attributes).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// One probe, or one flow that was not probed, inside a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellEntry {
    /// The flow id.
    pub flow: String,
    /// Whether the flow is required.
    pub required: bool,
    /// [`CellStatus::Pass`], [`CellStatus::Fail`] or [`CellStatus::Untested`].
    pub status: CellStatus,
    /// The host that probed (`component on host (address)`), if one did.
    pub host: Option<String>,
    /// What was probed: `tcp 198.18.0.3:5432`.
    pub target: Option<String>,
    /// The outcome (`open`, `refused`, `filtered`…) or why it was not probed.
    pub outcome: String,
    /// Further facts: the OS error, time and attempts, DNS time, TLS issuer.
    pub detail: String,
}

/// One non-empty cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCell {
    /// Index into [`ResultsMatrix::rows`].
    pub row: usize,
    /// Index into [`ResultsMatrix::columns`].
    pub column: usize,
    /// The flows of the cell in matrix notation (`T::5432`), for the label.
    pub tokens: Vec<String>,
    /// What was found.
    pub entries: Vec<CellEntry>,
}

impl ResultCell {
    /// What the entries prove together: [`CellStatus::Fail`] if a required
    /// entry failed; [`CellStatus::Pass`] if every entry passed;
    /// [`CellStatus::Untested`] if no entry was probed (or there is none);
    /// otherwise [`CellStatus::Partial`].
    pub fn status(&self) -> CellStatus {
        if self
            .entries
            .iter()
            .any(|e| e.required && e.status == CellStatus::Fail)
        {
            CellStatus::Fail
        } else if self.entries.is_empty()
            || self
                .entries
                .iter()
                .all(|e| e.status == CellStatus::Untested)
        {
            CellStatus::Untested
        } else if self.entries.iter().all(|e| e.status == CellStatus::Pass) {
            CellStatus::Pass
        } else {
            CellStatus::Partial
        }
    }

    /// The entries as plain text, one per line, for a tooltip.
    pub fn summary(&self) -> String {
        self.entries
            .iter()
            .map(|e| {
                let mut line = format!("{}: {}", e.status.as_str(), e.flow);
                if let Some(target) = &e.target {
                    let _ = write!(line, " → {target}");
                }
                let _ = write!(line, ": {}", e.outcome);
                if let Some(host) = &e.host {
                    let _ = write!(line, " (from {host})");
                }
                if !e.required {
                    line.push_str(" [optional]");
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One host that reported results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSummary {
    /// The component the host checked as.
    pub component: String,
    /// The host's name and address.
    pub host: String,
    /// The results file it came from.
    pub file: String,
    /// When the check finished (RFC 3339).
    pub finished_at: String,
    /// Probes that passed.
    pub passed: usize,
    /// Probes that failed.
    pub failed: usize,
    /// Flows not probed.
    pub untested: usize,
}

/// Results of many hosts as a connection matrix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultsMatrix {
    /// The page's title (the system's name).
    pub title: String,
    /// Facts shown under the title: spec hash, deployment, …
    pub facts: Vec<(String, String)>,
    /// Sources, in matrix order.
    pub rows: Vec<Axis>,
    /// Destinations, in matrix order.
    pub columns: Vec<Axis>,
    /// Non-empty cells, in row then column order.
    pub cells: Vec<ResultCell>,
    /// The hosts that reported.
    pub hosts: Vec<HostSummary>,
}

impl ResultsMatrix {
    /// The cell at a row and column, if the matrix has flows there.
    pub fn cell(&self, row: usize, column: usize) -> Option<&ResultCell> {
        self.cells
            .iter()
            .find(|c| c.row == row && c.column == column)
    }

    /// How many cells have each status: pass, fail, partial, untested.
    pub fn counts(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for cell in &self.cells {
            counts[match cell.status() {
                CellStatus::Pass => 0,
                CellStatus::Fail => 1,
                CellStatus::Partial => 2,
                CellStatus::Untested => 3,
            }] += 1;
        }
        counts
    }

    fn anchor(&self, cell: &ResultCell) -> String {
        format!(
            "cell-{}--{}",
            self.rows[cell.row].id, self.columns[cell.column].id
        )
    }
}

/// The matrix as a markdown page: the matrix (status and flows per cell),
/// a legend, the hosts that reported and every cell's entries.
pub fn results_markdown(matrix: &ResultsMatrix) -> String {
    let mut out = format!("# {} — preflight results\n\n", escape(&matrix.title));
    for (key, value) in &matrix.facts {
        let _ = writeln!(out, "- {}: {}", escape(key), escape(value));
    }
    if !matrix.facts.is_empty() {
        out.push('\n');
    }
    let [pass, fail, partial, untested] = matrix.counts();
    let _ = writeln!(
        out,
        "{pass} pass, {fail} fail, {partial} partial, {untested} untested (cells of the matrix).\n"
    );
    let mut header = vec!["From \\ To".to_owned()];
    header.extend(matrix.columns.iter().map(|c| escape(&c.name)));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = matrix
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let mut cells = vec![escape(&row.name)];
            cells.extend((0..matrix.columns.len()).map(|c| match matrix.cell(r, c) {
                None => String::new(),
                Some(cell) => {
                    let status = cell.status();
                    format!(
                        "{} {} {}",
                        status.symbol(),
                        status.as_str(),
                        escape(&cell.tokens.join(" "))
                    )
                }
            }));
            cells
        })
        .collect();
    out.push_str(&table(&header, &rows));
    out.push_str(
        "\n✅ pass: every flow probed and open. ❌ fail: a required flow failed. \
◐ partial: some flows passed, others were not probed or only optional ones failed. \
○ untested: nothing probed. An empty cell has no flow.\n",
    );
    if !matrix.hosts.is_empty() {
        out.push_str("\n## Hosts\n\n");
        let rows: Vec<Vec<String>> = matrix
            .hosts
            .iter()
            .map(|h| {
                vec![
                    escape(&h.component),
                    escape(&h.host),
                    escape(&h.finished_at),
                    h.passed.to_string(),
                    h.failed.to_string(),
                    h.untested.to_string(),
                    escape(&h.file),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "Component",
                "Host",
                "Finished",
                "Passed",
                "Failed",
                "Untested",
                "File",
            ],
            &rows,
        ));
    }
    out.push_str("\n## Details\n");
    for cell in &matrix.cells {
        let status = cell.status();
        let _ = writeln!(
            out,
            "\n### {} → {}: {} {}\n",
            escape(&matrix.rows[cell.row].name),
            escape(&matrix.columns[cell.column].name),
            status.symbol(),
            status.as_str()
        );
        for e in &cell.entries {
            let mut line = format!(
                "- {} {} `{}`",
                e.status.symbol(),
                e.status.as_str(),
                e.flow.replace('`', "'")
            );
            if !e.required {
                line.push_str(" (optional)");
            }
            if let Some(target) = &e.target {
                let _ = write!(line, " → {}", escape(target));
            }
            let _ = write!(line, ": {}", escape(&e.outcome));
            if let Some(host) = &e.host {
                let _ = write!(line, ", from {}", escape(host));
            }
            if !e.detail.is_empty() {
                let _ = write!(line, "; {}", escape(&e.detail));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r##"
:root { --pass: #1a7f37; --fail: #cf222e; --partial: #9a6700; --untested: #6e7781; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; margin: 0 0 1rem; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; font-family: ui-monospace, monospace; }
#summary span { display: inline-block; margin-right: 1rem; font-weight: 600; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .45rem; text-align: center; vertical-align: middle; }
thead th { background: #f6f8fa; font-size: .85rem; }
tbody th { background: #f6f8fa; text-align: left; white-space: nowrap; }
td.cell { cursor: pointer; min-width: 5.5rem; color: #fff; }
td.cell .status { display: block; font-weight: 700; text-transform: uppercase; font-size: .8rem; }
td.cell .tokens { display: block; font-family: ui-monospace, monospace; font-size: .75rem; }
td.pass { background: var(--pass); } td.fail { background: var(--fail); }
td.partial { background: var(--partial); } td.untested { background: var(--untested); }
td.none { background: #fff; }
td.cell.selected { outline: 3px solid #0969da; outline-offset: -3px; }
.legend span { display: inline-block; padding: .1rem .5rem; margin-right: .4rem; color: #fff; border-radius: 3px; }
#details { border: 1px solid #d0d7de; padding: .6rem 1rem; min-height: 2rem; }
#details table { width: 100%; } #details td { text-align: left; color: inherit; }
#details td.st { font-weight: 700; }
.entry-pass td.st { color: var(--pass); } .entry-fail td.st { color: var(--fail); } .entry-untested td.st { color: var(--untested); }
.cell-details { display: none; }
"##;

const SCRIPT: &str = r##"
(function () {
  var cells = document.querySelectorAll("td.cell");
  var counts = { pass: 0, fail: 0, partial: 0, untested: 0 };
  cells.forEach(function (td) { counts[td.dataset.status] += 1; });
  var summary = document.getElementById("summary");
  Object.keys(counts).forEach(function (k) {
    summary.dataset[k] = String(counts[k]);
    var span = document.createElement("span");
    span.className = "count-" + k;
    span.textContent = counts[k] + " " + k;
    summary.appendChild(span);
  });
  var panel = document.getElementById("details");
  function show(id) {
    var source = document.getElementById("details-" + id);
    var td = document.getElementById(id);
    if (!source || !td) { return; }
    cells.forEach(function (c) { c.classList.remove("selected"); });
    td.classList.add("selected");
    panel.innerHTML = source.innerHTML;
    panel.dataset.cell = id;
  }
  cells.forEach(function (td) {
    td.addEventListener("click", function () { show(td.id); history.replaceState(null, "", "#" + td.id); });
    td.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show(td.id); } });
  });
  if (location.hash.length > 1) { show(decodeURIComponent(location.hash.slice(1))); }
  document.documentElement.dataset.ready = "1";
})();
"##;

/// The matrix as one self-contained HTML page: inline style and script, no
/// fetch of any kind (its Content-Security-Policy forbids them).
///
/// Every non-empty cell is a `td.cell` with `id="cell-FROM--TO"`,
/// `data-status`, `data-from`, `data-to` and a `title` listing its entries;
/// its details are in a hidden `#details-cell-FROM--TO` block that a click
/// copies into `#details`. The script also writes the status counts into
/// `#summary` and sets `data-ready` on the root element.
pub fn results_html(matrix: &ResultsMatrix) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{} — preflight results</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        html(&matrix.title)
    );
    let _ = writeln!(out, "<h1>{} — preflight results</h1>", html(&matrix.title));
    if !matrix.facts.is_empty() {
        out.push_str("<dl class=\"facts\">\n");
        for (key, value) in &matrix.facts {
            let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", html(key), html(value));
        }
        out.push_str("</dl>\n");
    }
    let [pass, fail, partial, untested] = matrix.counts();
    // The static counts are for readers without script; the script adds its own.
    let _ = writeln!(
        out,
        "<p id=\"summary\"><noscript>{pass} pass, {fail} fail, {partial} partial, {untested} untested</noscript></p>"
    );
    out.push_str(
        "<p class=\"legend\"><span class=\"l-pass\" style=\"background:var(--pass)\">pass</span>\
<span style=\"background:var(--fail)\">fail</span>\
<span style=\"background:var(--partial)\">partial</span>\
<span style=\"background:var(--untested)\">untested</span> \
rows are sources, columns destinations; click a cell for its details.</p>\n",
    );
    out.push_str("<table class=\"matrix\">\n<thead><tr><th>From \\ To</th>");
    for column in &matrix.columns {
        let _ = write!(
            out,
            "<th scope=\"col\" data-id=\"{}\">{}</th>",
            html(&column.id),
            html(&column.name)
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (r, row) in matrix.rows.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><th scope=\"row\" data-id=\"{}\">{}</th>",
            html(&row.id),
            html(&row.name)
        );
        for c in 0..matrix.columns.len() {
            match matrix.cell(r, c) {
                None => out.push_str("<td class=\"none\"></td>"),
                Some(cell) => {
                    let status = cell.status().as_str();
                    let _ = write!(
                        out,
                        "<td class=\"cell {status}\" id=\"{}\" tabindex=\"0\" data-status=\"{status}\" data-from=\"{}\" data-to=\"{}\" title=\"{}\">\
<span class=\"status\">{status}</span><span class=\"tokens\">{}</span></td>",
                        html(&matrix.anchor(cell)),
                        html(&row.id),
                        html(&matrix.columns[c].id),
                        html(&cell.summary()),
                        html(&cell.tokens.join(" "))
                    );
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out.push_str(
        "<h2>Details</h2>\n<div id=\"details\" aria-live=\"polite\">Click a cell.</div>\n",
    );
    for cell in &matrix.cells {
        let _ = write!(
            out,
            "<div class=\"cell-details\" id=\"details-{}\"><p><strong>{} → {}</strong>: {}</p>\
<table><thead><tr><th>status</th><th>flow</th><th>target</th><th>outcome</th><th>from host</th><th>details</th></tr></thead><tbody>",
            html(&matrix.anchor(cell)),
            html(&matrix.rows[cell.row].name),
            html(&matrix.columns[cell.column].name),
            cell.status().as_str()
        );
        for e in &cell.entries {
            let flow = if e.required {
                html(&e.flow)
            } else {
                format!("{} (optional)", html(&e.flow))
            };
            let _ = write!(
                out,
                "<tr class=\"entry entry-{}\"><td class=\"st\">{}</td><td>{flow}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.status.as_str(),
                e.status.as_str(),
                html(e.target.as_deref().unwrap_or("")),
                html(&e.outcome),
                html(e.host.as_deref().unwrap_or("")),
                html(&e.detail)
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    if !matrix.hosts.is_empty() {
        out.push_str("<h2>Hosts</h2>\n<table class=\"hosts\"><thead><tr><th>component</th><th>host</th><th>finished</th><th>passed</th><th>failed</th><th>untested</th><th>file</th></tr></thead><tbody>\n");
        for h in &matrix.hosts {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html(&h.component),
                html(&h.host),
                html(&h.finished_at),
                h.passed,
                h.failed,
                h.untested,
                html(&h.file)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(flow: &str, required: bool, status: CellStatus) -> CellEntry {
        CellEntry {
            flow: flow.into(),
            required,
            status,
            host: Some("api on h1 (198.18.0.2)".into()),
            target: Some("tcp 198.18.0.3:5432".into()),
            outcome: status.as_str().into(),
            detail: String::new(),
        }
    }

    fn cell(entries: Vec<CellEntry>) -> ResultCell {
        ResultCell {
            row: 0,
            column: 1,
            tokens: vec!["T::5432".into()],
            entries,
        }
    }

    #[test]
    fn cell_status_never_says_more_than_its_entries() {
        use CellStatus::*;
        assert_eq!(cell(vec![]).status(), Untested);
        assert_eq!(cell(vec![entry("a", true, Pass)]).status(), Pass);
        assert_eq!(
            cell(vec![entry("a", true, Pass), entry("b", true, Fail)]).status(),
            Fail
        );
        assert_eq!(
            cell(vec![entry("a", true, Pass), entry("b", true, Untested)]).status(),
            Partial
        );
        assert_eq!(
            cell(vec![entry("a", true, Pass), entry("b", false, Fail)]).status(),
            Partial,
            "an optional failure is not a pass"
        );
        assert_eq!(cell(vec![entry("b", false, Fail)]).status(), Partial);
        assert_eq!(cell(vec![entry("a", true, Untested)]).status(), Untested);
    }

    fn matrix() -> ResultsMatrix {
        let mut failing = entry("api->db/tcp/5432", true, CellStatus::Fail);
        failing.outcome = "filtered".into();
        failing.detail = "timed out <after> 1000 ms & 2 attempts".into();
        ResultsMatrix {
            title: "Demo <&>".into(),
            facts: vec![("spec sha256".into(), "abc".into())],
            rows: vec![
                Axis {
                    id: "api".into(),
                    name: "API".into(),
                },
                Axis {
                    id: "db".into(),
                    name: "DB".into(),
                },
            ],
            columns: vec![
                Axis {
                    id: "api".into(),
                    name: "API".into(),
                },
                Axis {
                    id: "db".into(),
                    name: "DB".into(),
                },
            ],
            cells: vec![
                ResultCell {
                    row: 0,
                    column: 1,
                    tokens: vec!["T::5432".into()],
                    entries: vec![failing],
                },
                ResultCell {
                    row: 1,
                    column: 0,
                    tokens: vec!["U:8112:8112".into()],
                    entries: vec![entry("db->api/udp/8112", true, CellStatus::Pass)],
                },
            ],
            hosts: vec![],
        }
    }

    #[test]
    fn markdown_has_the_matrix_and_the_details() {
        let md = results_markdown(&matrix());
        assert!(
            md.starts_with("# Demo \\<\\&\\> — preflight results\n"),
            "{md}"
        );
        assert!(
            md.contains("| API       |                    | ❌ fail T::5432 |\n"),
            "{md}"
        );
        assert!(
            md.contains("| DB        | ✅ pass U:8112:8112 |                |\n"),
            "{md}"
        );
        assert!(md.contains("1 pass, 1 fail, 0 partial, 0 untested"), "{md}");
        assert!(md.contains("### API → DB: ❌ fail"), "{md}");
        assert!(
            md.contains("timed out \\<after\\> 1000 ms \\& 2 attempts"),
            "{md}"
        );
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let page = results_html(&matrix());
        assert!(page.contains("<title>Demo &lt;&amp;&gt; — preflight results</title>"));
        assert!(page.contains("default-src 'none'"));
        for fetch in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(",
            "<link",
            "src=",
        ] {
            assert!(!page.contains(fetch), "{fetch} in the page");
        }
        assert!(page.contains(
            "<td class=\"cell fail\" id=\"cell-api--db\" tabindex=\"0\" data-status=\"fail\" data-from=\"api\" data-to=\"db\""
        ));
        assert!(page.contains("timed out &lt;after&gt; 1000 ms &amp; 2 attempts"));
        assert!(page.contains("id=\"details-cell-db--api\""));
        assert_eq!(page.matches("<td class=\"cell ").count(), 2);
    }
}
