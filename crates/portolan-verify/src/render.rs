//! A [`Verification`] as a terminal table, JSON, JUnit XML, markdown or
//! one self-contained HTML page. Every text that comes from input (ids,
//! rule text, comments, file names) is escaped for the format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use portolan_render::escape::{html, markdown};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::model::{Direction, Excess, FlowCheck, Verdict, Verification};

/// The column of excess to or from addresses that are no component.
const OTHER: &str = "(other addresses)";

/// Counts of one matrix cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Flows admitted by every input that governs them.
    pub admitted: usize,
    /// Flows some input blocks.
    pub blocked: usize,
    /// Openings beyond the plan.
    pub excess: usize,
}

/// The connection matrix: rows sources, columns destinations.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    /// Party ids, in order of first appearance.
    pub parties: Vec<String>,
    /// Cells by (from, to).
    pub cells: BTreeMap<(String, String), Cell>,
}

/// Each flow's overall verdict: blocked if an input blocks it, admitted if
/// some input governs it and none blocks it.
pub fn overall(v: &Verification) -> Vec<(&FlowCheck, Verdict)> {
    let mut order: Vec<&FlowCheck> = Vec::new();
    let mut verdicts: BTreeMap<&str, Verdict> = BTreeMap::new();
    for check in v.sections.iter().flat_map(|s| &s.checks) {
        let entry = verdicts.entry(&check.flow).or_insert_with(|| {
            order.push(check);
            Verdict::NotGoverned
        });
        *entry = match (*entry, check.verdict) {
            (Verdict::Blocked, _) | (_, Verdict::Blocked) => Verdict::Blocked,
            (Verdict::Untested, _) | (_, Verdict::Untested) => Verdict::Untested,
            (Verdict::Admitted, _) | (_, Verdict::Admitted) => Verdict::Admitted,
            _ => Verdict::NotGoverned,
        };
    }
    order
        .into_iter()
        .map(|c| (c, verdicts[c.flow.as_str()]))
        .collect()
}

fn excess_ends(e: &Excess) -> (String, String) {
    let peer = e.peer.clone().unwrap_or_else(|| OTHER.to_owned());
    match e.direction {
        Direction::Ingress => (peer, e.subject.clone()),
        Direction::Egress => (e.subject.clone(), peer),
    }
}

/// Builds the matrix.
pub fn matrix(v: &Verification) -> Matrix {
    let mut m = Matrix::default();
    let party = |m: &mut Matrix, id: &str| {
        if !m.parties.iter().any(|p| p == id) {
            m.parties.push(id.to_owned());
        }
    };
    for (check, verdict) in overall(v) {
        party(&mut m, &check.from);
        party(&mut m, &check.to);
        let cell = m
            .cells
            .entry((check.from.clone(), check.to.clone()))
            .or_default();
        match verdict {
            Verdict::Admitted => cell.admitted += 1,
            Verdict::Blocked | Verdict::Untested => cell.blocked += 1,
            Verdict::NotGoverned => {}
        }
    }
    for e in v.sections.iter().flat_map(|s| &s.excess) {
        let (from, to) = excess_ends(e);
        party(&mut m, &from);
        party(&mut m, &to);
        m.cells.entry((from, to)).or_default().excess += 1;
    }
    m
}

fn cell_text(cell: Option<&Cell>) -> String {
    let Some(c) = cell else { return String::new() };
    let mut parts = Vec::new();
    if c.admitted > 0 {
        parts.push(format!("✓{}", c.admitted));
    }
    if c.blocked > 0 {
        parts.push(format!("✗{}", c.blocked));
    }
    if c.excess > 0 {
        parts.push(format!("+{}", c.excess));
    }
    parts.join(" ")
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Admitted => "admitted",
        Verdict::Blocked => "BLOCKED",
        Verdict::NotGoverned => "not governed",
        Verdict::Untested => "UNTESTED",
    }
}

/// Control characters out of text for a terminal.
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

fn summary(v: &Verification) -> String {
    let flows = overall(v);
    let admitted = flows
        .iter()
        .filter(|(_, x)| *x == Verdict::Admitted)
        .count();
    let blocked = flows.iter().filter(|(_, x)| *x == Verdict::Blocked).count();
    let required = flows
        .iter()
        .filter(|(c, x)| *x == Verdict::Blocked && c.required)
        .count();
    format!(
        "{} flow(s) against {} input(s): {admitted} admitted, {blocked} blocked ({required} required), {} excess opening(s)",
        flows.len(),
        v.sections.len(),
        v.excess()
    )
}

fn title(v: &Verification) -> String {
    match &v.deployment {
        Some(d) => format!("{}, deployment {d}", v.system),
        None => v.system.clone(),
    }
}

/// For a terminal: summary, matrix, then per input every flow with its
/// deciding rules, the excess, the assumptions and the fixes.
pub fn table(v: &Verification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", plain(&title(v)), summary(v));
    let m = matrix(v);
    let _ = writeln!(
        out,
        "\nmatrix (rows: from, columns: to; ✓ admitted, ✗ blocked, + excess):"
    );
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    let mut header = vec!["from \\ to".to_owned()];
    header.extend(m.parties.iter().map(|p| plain(p)));
    t.set_header(header);
    for from in &m.parties {
        let mut row = vec![plain(from)];
        for to in &m.parties {
            row.push(cell_text(m.cells.get(&(from.clone(), to.clone()))));
        }
        t.add_row(row);
    }
    let _ = writeln!(out, "{t}");
    for s in &v.sections {
        let host = s
            .host
            .as_ref()
            .map(|h| format!(" (host {})", plain(h)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n== {} {}{host} ==",
            s.kind.as_str(),
            plain(&s.source)
        );
        for c in &s.checks {
            let optional = if c.required { "" } else { " (optional)" };
            let _ = writeln!(
                out,
                "{} {}{optional}: {}: {}",
                verdict_word(c.verdict),
                plain(&c.flow),
                plain(&c.traffic),
                plain(&c.detail)
            );
            for r in &c.rules {
                let at = r
                    .location
                    .as_ref()
                    .map(|l| format!(" ({})", plain(l)))
                    .unwrap_or_default();
                let comment = r
                    .comment
                    .as_ref()
                    .map(|k| format!(" comment {:?}", plain(k)))
                    .unwrap_or_default();
                let _ = writeln!(out, "    by {}{comment}{at}", plain(&r.text));
            }
        }
        if !s.excess.is_empty() {
            let _ = writeln!(out, "excess (open beyond the plan):");
            for e in &s.excess {
                let any = if e.any { " [ANY]" } else { "" };
                let _ = writeln!(
                    out,
                    "  {} {}: {} with {}{any}\n    by {}{}",
                    plain(&e.subject),
                    e.direction.as_str(),
                    plain(&e.traffic),
                    plain(&e.peers),
                    plain(&e.rule.text),
                    e.rule
                        .location
                        .as_ref()
                        .map(|l| format!(" ({})", plain(l)))
                        .unwrap_or_default()
                );
            }
        }
        if !s.assumptions.is_empty() {
            let _ = writeln!(out, "assumptions:");
            for a in &s.assumptions {
                let _ = writeln!(out, "  - {}", plain(a));
            }
        }
        if !s.fixes.is_empty() {
            let _ = writeln!(out, "fix (add to {}):", plain(&s.source));
            for f in &s.fixes {
                let _ = writeln!(out, "  # admits {}", plain(&f.flow));
                for line in f.text.lines() {
                    let _ = writeln!(out, "  {}", plain(line));
                }
            }
        }
    }
    out
}

/// The verification as pretty JSON (the [`Verification`] type).
pub fn json(v: &Verification) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("\"{e}\""));
    text.push('\n');
    text
}

/// JUnit XML: a suite per input, a case per flow (failing when blocked),
/// and with `strict`, a failing case per excess opening.
pub fn junit(v: &Verification, strict: bool) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("portolan verify");
    for s in &v.sections {
        let mut suite = TestSuite::new(format!("{} {}", s.kind.as_str(), s.source));
        for c in &s.checks {
            let status = match c.verdict {
                Verdict::Blocked | Verdict::Untested => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(c.detail.clone());
                    st
                }
                Verdict::Admitted => TestCaseStatus::success(),
                Verdict::NotGoverned => TestCaseStatus::skipped(),
            };
            let mut case = TestCase::new(format!("{} {}", c.flow, c.traffic), status);
            let rules: Vec<String> = c.rules.iter().map(|r| r.text.clone()).collect();
            case.set_system_out(rules.join("\n"));
            suite.add_test_case(case);
        }
        for e in &s.excess {
            let status = if strict {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("open beyond the plan: {}", e.rule.text));
                st
            } else {
                TestCaseStatus::success()
            };
            suite.add_test_case(TestCase::new(
                format!(
                    "excess {} {} {} with {}",
                    e.subject,
                    e.direction.as_str(),
                    e.traffic,
                    e.peers
                ),
                status,
            ));
        }
        report.add_test_suite(suite);
    }
    report.to_string()
}

/// Markdown: summary, matrix, per input a table of flows, excess, assumptions, fixes.
pub fn markdown_page(v: &Verification) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Verification: {}\n\n{}\n",
        markdown(&title(v)),
        summary(v)
    );
    let m = matrix(v);
    out.push_str("## Matrix\n\nRows are sources, columns destinations: ✓ admitted, ✗ blocked, + excess.\n\n| from \\\\ to |");
    for p in &m.parties {
        let _ = write!(out, " {} |", markdown(p));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(m.parties.len()));
    out.push('\n');
    for from in &m.parties {
        let _ = write!(out, "| {} |", markdown(from));
        for to in &m.parties {
            let _ = write!(
                out,
                " {} |",
                cell_text(m.cells.get(&(from.clone(), to.clone())))
            );
        }
        out.push('\n');
    }
    for s in &v.sections {
        let host = s
            .host
            .as_ref()
            .map(|h| format!(" (host {})", markdown(h)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n## {} {}{host}\n",
            s.kind.as_str(),
            markdown(&s.source)
        );
        out.push_str(
            "| flow | traffic | verdict | detail | deciding rules |\n|---|---|---|---|---|\n",
        );
        for c in &s.checks {
            let rules: Vec<String> = c
                .rules
                .iter()
                .map(|r| {
                    let at = r
                        .location
                        .as_ref()
                        .map(|l| format!(" ({})", markdown(l)))
                        .unwrap_or_default();
                    format!("{}{at}", markdown(&r.text))
                })
                .collect();
            let _ = writeln!(
                out,
                "| {}{} | {} | {} | {} | {} |",
                markdown(&c.flow),
                if c.required { "" } else { " (optional)" },
                markdown(&c.traffic),
                verdict_word(c.verdict),
                markdown(&c.detail),
                rules.join("<br>")
            );
        }
        if !s.excess.is_empty() {
            out.push_str("\n### Excess\n\n");
            for e in &s.excess {
                let _ = writeln!(
                    out,
                    "- {}{} {}: {} with {} — {}",
                    if e.any { "**any** " } else { "" },
                    markdown(&e.subject),
                    e.direction.as_str(),
                    markdown(&e.traffic),
                    markdown(&e.peers),
                    markdown(&e.rule.text)
                );
            }
        }
        if !s.assumptions.is_empty() {
            out.push_str("\n### Assumptions\n\n");
            for a in &s.assumptions {
                let _ = writeln!(out, "- {}", markdown(a));
            }
        }
        if !s.fixes.is_empty() {
            out.push_str("\n### Fix\n\n");
            for f in &s.fixes {
                let fence = "`".repeat(3.max(longest_backticks(&f.text) + 1));
                let _ = writeln!(
                    out,
                    "Admits {}:\n\n{fence}\n{}\n{fence}\n",
                    markdown(&f.flow),
                    f.text.trim_end()
                );
            }
        }
    }
    out
}

fn longest_backticks(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// One self-contained HTML page (no script, no fetch).
pub fn html_page(v: &Verification) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
<title>{t} — verification</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t} — verification</h1>\n<p>{s}</p>\n",
        t = html(&title(v)),
        s = html(&summary(v))
    );
    let m = matrix(v);
    out.push_str("<table class=\"matrix\"><thead><tr><th>from \\ to</th>");
    for p in &m.parties {
        let _ = write!(out, "<th>{}</th>", html(p));
    }
    out.push_str("</tr></thead><tbody>\n");
    for from in &m.parties {
        let _ = write!(out, "<tr><th>{}</th>", html(from));
        for to in &m.parties {
            let cell = m.cells.get(&(from.clone(), to.clone()));
            let class = match cell {
                Some(c) if c.blocked > 0 => "blocked",
                Some(c) if c.excess > 0 => "excess",
                Some(c) if c.admitted > 0 => "admitted",
                _ => "none",
            };
            let _ = write!(out, "<td class=\"{class}\">{}</td>", html(&cell_text(cell)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    for s in &v.sections {
        let host = s
            .host
            .as_ref()
            .map(|h| format!(" (host {})", html(h)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<h2>{} {}{host}</h2>",
            s.kind.as_str(),
            html(&s.source)
        );
        out.push_str("<table><thead><tr><th>flow</th><th>traffic</th><th>verdict</th><th>detail</th><th>deciding rules</th></tr></thead><tbody>\n");
        for c in &s.checks {
            let rules: Vec<String> = c
                .rules
                .iter()
                .map(|r| {
                    format!(
                        "{}{}",
                        html(&r.text),
                        r.location
                            .as_ref()
                            .map(|l| format!(" ({})", html(l)))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                match c.verdict {
                    Verdict::Blocked | Verdict::Untested => "blocked",
                    Verdict::Admitted => "admitted",
                    Verdict::NotGoverned => "none",
                },
                html(&c.flow),
                html(&c.traffic),
                verdict_word(c.verdict),
                html(&c.detail),
                rules.join("<br>")
            );
        }
        out.push_str("</tbody></table>\n");
        if !s.excess.is_empty() {
            out.push_str("<h3>Excess</h3>\n<ul>\n");
            for e in &s.excess {
                let _ = writeln!(
                    out,
                    "<li{}>{} {}: {} with {} — {}</li>",
                    if e.any { " class=\"any\"" } else { "" },
                    html(&e.subject),
                    e.direction.as_str(),
                    html(&e.traffic),
                    html(&e.peers),
                    html(&e.rule.text)
                );
            }
            out.push_str("</ul>\n");
        }
        if !s.assumptions.is_empty() {
            out.push_str("<h3>Assumptions</h3>\n<ul>\n");
            for a in &s.assumptions {
                let _ = writeln!(out, "<li>{}</li>", html(a));
            }
            out.push_str("</ul>\n");
        }
        if !s.fixes.is_empty() {
            out.push_str("<h3>Fix</h3>\n");
            for f in &s.fixes {
                let _ = writeln!(
                    out,
                    "<p>Admits {}:</p>\n<pre>{}</pre>",
                    html(&f.flow),
                    html(&f.text)
                );
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1f2328}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;vertical-align:top}\
.blocked{background:#ffebe9}.admitted{background:#dafbe1}.excess{background:#fff8c5}.any{font-weight:bold}\
pre{background:#f6f8fa;padding:.5rem}";
