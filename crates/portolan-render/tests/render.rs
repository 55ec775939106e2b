//! Renderer tests: fidelity to the vendor pages the examples were taken from,
//! snapshots of every format, and the diagram outputs checked by their own
//! tools (Graphviz always; Mermaid's CLI when one is configured).

// A skipped check says so loudly on standard error.
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use portolan_render::{render, Format};
use portolan_spec::{load_spec, ComponentKind, SourceFile, Spec};

const CIRCONUS: &str = "circonus-inside";
const SPACELIFT: &str = "spacelift-self-hosted";
const EDGE_CASES: &str = "edge-cases";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec_path(name: &str) -> PathBuf {
    if name == EDGE_CASES {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/edge-cases.yaml")
    } else {
        root().join("examples").join(name).join("portolan.yaml")
    }
}

fn load(name: &str) -> Spec {
    let path = spec_path(name);
    let source = SourceFile::read(&path).expect("the spec is readable");
    match load_spec(source) {
        Ok(loaded) => loaded.value,
        Err(diagnostics) => panic!("{} does not load: {diagnostics:?}", path.display()),
    }
}

fn rendered(name: &str, format: Format) -> String {
    render(&load(name), format).expect("renders")
}

fn fixture(name: &str) -> Vec<Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path)
        .expect("the fixture is readable")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

// ---- a small markdown reader, independent of the renderer's code ----

/// The cells of a table line: split on `|` not preceded by a backslash, then
/// CommonMark backslash escapes of ASCII punctuation undone.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').expect("a table line starts with |");
    let inner = inner.strip_suffix('|').expect("a table line ends with |");
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) if next.is_ascii_punctuation() => cell.push(next),
                Some(next) => {
                    cell.push('\\');
                    cell.push(next);
                }
                None => cell.push('\\'),
            },
            '|' => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

fn is_delimiter_row(cells: &[String]) -> bool {
    cells
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
}

/// A markdown table: header, delimiter row checked, body rows.
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The tables of a page, each with the `##` and `###` headings above it.
fn tables(page: &str) -> Vec<(String, String, Table)> {
    let mut out = Vec::new();
    let (mut h2, mut h3) = (String::new(), String::new());
    let mut lines = page.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(h) = line.strip_prefix("## ") {
            h2 = unescape(h);
            h3.clear();
        } else if let Some(h) = line.strip_prefix("### ") {
            h3 = unescape(h);
        } else if line.starts_with('|') {
            let header = cells(line);
            let delimiter = cells(lines.next().expect("a delimiter row follows the header"));
            assert!(
                is_delimiter_row(&delimiter),
                "bad delimiter row under {header:?}"
            );
            assert_eq!(
                delimiter.len(),
                header.len(),
                "delimiter row width under {header:?}"
            );
            let mut rows = Vec::new();
            while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
                let row = cells(row);
                assert_eq!(row.len(), header.len(), "row width: {row:?}");
                rows.push(row);
            }
            out.push((h2.clone(), h3.clone(), Table { header, rows }));
        }
    }
    out
}

fn unescape(text: &str) -> String {
    cells(&format!("|{text}|")).remove(0)
}

// ---- fidelity ----

/// The Circonus connection matrix: every cell of the seed page's matrix
/// (fixture: From, To, tokens) comes out exactly, and no other cell holds
/// anything but `N/A`.
#[test]
fn circonus_matrix_reproduces_every_seed_cell() {
    let spec = load(CIRCONUS);
    let page = rendered(CIRCONUS, Format::Matrix);
    let tables = tables(&page);
    let matrix: Vec<&Table> = tables
        .iter()
        .filter(|(h2, _, _)| h2 == "Connection matrix")
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(matrix.len(), 1, "one matrix table");
    let matrix = matrix[0];

    let names: Vec<String> = spec.components.iter().map(|c| c.name.clone()).collect();
    assert_eq!(matrix.header[0], "To →<br>↓ From");
    assert_eq!(matrix.header[1..], names[..], "columns in spec order");
    let row_names: Vec<String> = matrix.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(row_names, names, "rows in spec order");

    let mut expected: BTreeMap<(String, String), String> = BTreeMap::new();
    for line in fixture("circonus-matrix-cells.tsv") {
        assert_eq!(line.len(), 3, "fixture line {line:?}");
        let previous = expected.insert((line[0].clone(), line[1].clone()), line[2].clone());
        assert!(previous.is_none(), "fixture cell given twice: {line:?}");
    }
    assert!(expected.len() >= 40, "the fixture holds the whole matrix");

    let mut seen = BTreeSet::new();
    for row in &matrix.rows {
        for (column, cell) in matrix.header[1..].iter().zip(&row[1..]) {
            let key = (row[0].clone(), column.clone());
            match expected.get(&key) {
                Some(tokens) => {
                    assert_eq!(cell, tokens, "cell {} → {}", key.0, key.1);
                    seen.insert(key);
                }
                None => assert!(
                    cell.is_empty() || (cell == "N/A" && key.0 == key.1),
                    "cell {} → {} should be empty, is {cell:?}",
                    key.0,
                    key.1
                ),
            }
        }
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "fixture cells not in the matrix: {missing:?}"
    );
}

/// The Spacelift tables: the multiset of rows under the seed page's sections
/// equals the fixture exactly; rows elsewhere (dependency sections such as
/// the container runtime) are allowed.
#[test]
fn spacelift_tables_reproduce_every_seed_row() {
    const SEED_SECTIONS: [&str; 4] = ["Server", "Drain", "Scheduler", "Workers"];
    let page = rendered(SPACELIFT, Format::Tables);
    let mut actual: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    let mut seed_tables = 0;
    for (section, direction, table) in tables(&page) {
        if !SEED_SECTIONS.contains(&section.as_str()) {
            continue;
        }
        assert!(
            direction == "Ingress" || direction == "Egress",
            "table under {section} / {direction}"
        );
        assert_eq!(
            table.header,
            [
                "Name",
                "Port",
                "Protocol",
                "Optional/Required",
                "Description"
            ]
        );
        seed_tables += 1;
        for row in table.rows {
            let mut key = vec![section.clone(), direction.clone()];
            key.extend(row);
            *actual.entry(key).or_default() += 1;
        }
    }
    assert_eq!(seed_tables, 5, "Server has two tables, the others one each");

    let mut expected: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for line in fixture("spacelift-tables.tsv") {
        assert_eq!(line.len(), 7, "fixture line {line:?}");
        *expected.entry(line).or_default() += 1;
    }
    assert_eq!(
        expected.values().sum::<usize>(),
        22,
        "the fixture holds every seed row"
    );
    let extra: Vec<_> = actual
        .iter()
        .filter(|(k, n)| expected.get(*k) != Some(n))
        .collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, n)| actual.get(*k) != Some(n))
        .collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "rendered but not in the seed: {extra:#?}\nin the seed but not rendered: {missing:#?}"
    );
    for section in ["drain", "scheduler"] {
        let sentence = format!("No inbound access to the {section} is required.");
        assert!(page.contains(&sentence), "missing: {sentence}");
    }
}

/// Optional and conditional flows carry markers in the matrix, and the
/// numbered conditions are listed.
#[test]
fn matrix_marks_optional_and_conditional_flows() {
    let page = rendered(SPACELIFT, Format::Matrix);
    let tables = tables(&page);
    let (_, _, matrix) = tables
        .iter()
        .find(|(h2, _, _)| h2 == "Connection matrix")
        .expect("a matrix");
    let server = matrix
        .rows
        .iter()
        .find(|r| r[0] == "Server")
        .expect("a Server row");
    let column = |name: &str| {
        matrix
            .header
            .iter()
            .position(|h| h == name)
            .expect("the column")
    };
    assert_eq!(server[column("Postgres")], "T::$postgres-port");
    assert_eq!(server[column("Message Queue")], "T::443?[1]");
    assert!(
        page.contains("1. only when `sqs` (SQS message queue)"),
        "{page}"
    );

    let edge = rendered(EDGE_CASES, Format::Matrix);
    let tables = self::tables(&edge);
    let (_, _, matrix) = tables
        .iter()
        .find(|(h2, _, _)| h2 == "Connection matrix")
        .expect("a matrix");
    let api = &matrix.rows[0];
    assert_eq!(api[0], "API");
    assert_eq!(api[2], "T::80 T::11211 T::8000-8010?[1]");
    assert_eq!(api[3], "T::8112 U:8112:8112 I:: T::*[2]");
    assert_eq!(matrix.rows[1][2], "225.0.1.9:U::8082");
    assert_eq!(matrix.rows[2][6], "*:*:*:*");
    assert!(
        edge.contains("2. only when `(google-oauth or sqs)`"),
        "{edge}"
    );
}

// ---- snapshots ----

#[test]
fn snapshots_of_every_format() {
    for name in [CIRCONUS, SPACELIFT, EDGE_CASES] {
        for format in Format::ALL {
            let text = rendered(name, format);
            assert!(text.ends_with('\n'), "{name} {format} ends with a newline");
            insta::assert_snapshot!(format!("{name}-{format}"), text);
        }
    }
}

// ---- diagrams ----

fn dot_available() -> bool {
    match Command::new("dot").arg("-V").output() {
        Ok(output) => output.status.success(),
        Err(_) => false,
    }
}

/// Graphviz accepts the DOT output, and its layout holds every node and
/// every (source, destination) pair of the spec.
#[test]
fn dot_is_accepted_by_graphviz() {
    if !dot_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Graphviz `dot` is required in CI (apt-get install graphviz)"
        );
        portolan_test_support::loud(
            "SKIPPED dot_is_accepted_by_graphviz: Graphviz `dot` is not installed",
        );
        return;
    }
    for name in [CIRCONUS, SPACELIFT, EDGE_CASES] {
        let spec = load(name);
        let dot = rendered(name, Format::Dot);
        let svg = run_with_stdin(Command::new("dot").arg("-Tsvg"), &dot)
            .unwrap_or_else(|e| panic!("{name}: dot -Tsvg failed: {e}\n{dot}"));
        assert!(svg.contains("<svg"), "{name}: no SVG");
        // Graphviz writes each node's and edge's name as its SVG <title>.
        let titles: BTreeSet<String> = svg
            .lines()
            .filter_map(|l| l.trim().strip_prefix("<title>"))
            .filter_map(|l| l.strip_suffix("</title>"))
            .map(|t| t.replace("&#45;", "-").replace("&gt;", ">"))
            .collect();
        for id in node_ids(&spec) {
            assert!(
                titles.contains(&format!("n-{id}")),
                "{name}: node {id} missing"
            );
        }
        let pairs = pairs(&spec);
        for (from, to) in &pairs {
            assert!(
                titles.contains(&format!("n-{from}->n-{to}")),
                "{name}: edge {from} -> {to} missing"
            );
        }
        let edges = titles.iter().filter(|t| t.contains("->")).count();
        assert_eq!(edges, pairs.len(), "{name}: one edge per pair");
    }
}

fn run_with_stdin(command: &mut Command, input: &str) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn node_ids(spec: &Spec) -> Vec<String> {
    spec.components
        .iter()
        .map(|c| c.id.clone())
        .chain(spec.externals.iter().map(|e| e.id.clone()))
        .collect()
}

/// Every (source id, destination id) pair with at least one flow.
fn pairs(spec: &Spec) -> BTreeSet<(String, String)> {
    spec.flows
        .iter()
        .map(|f| {
            (
                spec.component(f.from).id.clone(),
                spec.destination_id(f.to).to_owned(),
            )
        })
        .collect()
}

/// The Mermaid flowchart, read back: subgraphs balanced, every component and
/// endpoint declared once with the shape of its kind, one edge per pair,
/// labelled with the flows' tokens, dashed exactly when every flow on it is
/// optional or conditional.
#[test]
fn mermaid_has_every_node_and_edge() {
    for name in [CIRCONUS, SPACELIFT, EDGE_CASES] {
        let spec = load(name);
        let chart = rendered(name, Format::Mermaid);
        let mut lines = chart.lines();
        assert_eq!(lines.next(), Some("flowchart LR"));
        let mut depth = 0;
        let mut declared: BTreeMap<String, String> = BTreeMap::new();
        let mut edges: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
        for line in lines {
            let line = line.trim();
            if line.starts_with("subgraph ") {
                depth += 1;
            } else if line == "end" {
                depth -= 1;
                assert!(depth >= 0, "{name}: unbalanced end");
            } else if line.contains(" -->|\"") || line.contains(" -.->|\"") {
                let (from, rest) = line.split_once(' ').expect("source and arrow");
                let (arrow, rest) = rest.split_once("|\"").expect("arrow and label");
                let label = rest.split_once("\"| ").expect("a quoted label");
                assert!(arrow == "-->" || arrow == "-.->", "{name}: arrow {arrow}");
                let key = (from.to_owned(), label.1.to_owned());
                let value = (arrow.to_owned(), label.0.to_owned());
                assert!(
                    edges.insert(key, value).is_none(),
                    "{name}: two edges for one pair"
                );
            } else {
                let id_end = line
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .expect("a node declaration");
                let (id, shape) = line.split_at(id_end);
                assert!(!shape.contains('\n'));
                assert!(
                    declared.insert(id.to_owned(), shape.to_owned()).is_none(),
                    "{name}: {id} declared twice"
                );
            }
        }
        assert_eq!(depth, 0, "{name}: unbalanced subgraphs");

        let mermaid_id = |id: &str| format!("n_{}", id.replace('-', "_"));
        for component in &spec.components {
            let shape = &declared[&mermaid_id(&component.id)];
            let (open, close) = match component.kind {
                ComponentKind::System => ("[\"", "\"]"),
                ComponentKind::Dependency => ("[(\"", "\")]"),
                ComponentKind::External => ("((\"", "\"))"),
            };
            assert!(
                shape.starts_with(open) && shape.ends_with(close),
                "{name}: {} drawn as {shape}",
                component.id
            );
        }
        for external in &spec.externals {
            let shape = &declared[&mermaid_id(&external.id)];
            assert!(shape.starts_with("{{\"") && shape.ends_with("\"}}"));
        }
        assert_eq!(declared.len(), spec.components.len() + spec.externals.len());

        let pairs = pairs(&spec);
        assert_eq!(edges.len(), pairs.len(), "{name}: one edge per pair");
        for (from, to) in &pairs {
            let (arrow, label) = &edges[&(mermaid_id(from), mermaid_id(to))];
            let flows: Vec<_> = spec
                .flows
                .iter()
                .filter(|f| spec.component(f.from).id == *from && spec.destination_id(f.to) == to)
                .collect();
            let dashed = flows.iter().all(|f| !f.required || f.when.is_some());
            assert_eq!(arrow == "-.->", dashed, "{name}: {from} -> {to} style");
            let label_lines: Vec<&str> = label.split("<br>").collect();
            assert_eq!(
                label_lines.len(),
                flows.len(),
                "{name}: {from} -> {to}: {label}"
            );
            for (flow, line) in flows.iter().zip(label_lines) {
                for token in portolan_render::flow_tokens(&spec, flow) {
                    assert!(line.contains(&token), "{name}: {token} not in {line}");
                }
            }
        }
        // Multicast and self flows are drawn as loops, not dropped.
        if name == CIRCONUS {
            assert!(edges.contains_key(&(
                "n_fault_detection".to_owned(),
                "n_fault_detection".to_owned()
            )));
        }
    }
}

/// Mermaid's own parser and renderer, when `PORTOLAN_MMDC` names a
/// mermaid-cli (`mmdc`) executable. It drives a browser: Chromium from
/// `PORTOLAN_CHROMIUM` or /usr/bin/chromium.
#[test]
fn mermaid_is_accepted_by_mermaid_cli() {
    let Some(mmdc) = std::env::var_os("PORTOLAN_MMDC") else {
        portolan_test_support::loud(
            "SKIPPED mermaid_is_accepted_by_mermaid_cli: set PORTOLAN_MMDC to a mermaid-cli \
             `mmdc` (npm @mermaid-js/mermaid-cli, installed with PUPPETEER_SKIP_DOWNLOAD=1) to run it",
        );
        return;
    };
    let chromium =
        std::env::var("PORTOLAN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path();
    let config = dir.join("puppeteer.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"executablePath": {chromium:?}, "args": ["--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run"]}}"#
        ),
    )
    .expect("write the puppeteer config");
    for name in [CIRCONUS, SPACELIFT, EDGE_CASES] {
        let input = dir.join(format!("{name}.mmd"));
        let output = dir.join(format!("{name}.svg"));
        std::fs::write(&input, rendered(name, Format::Mermaid)).expect("write the chart");
        let result = Command::new(&mmdc)
            .arg("-p")
            .arg(&config)
            .arg("-i")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .output()
            .expect("mmdc runs");
        assert!(
            result.status.success(),
            "{name}: mmdc rejected the chart:\n{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        let svg = std::fs::read_to_string(&output).expect("mmdc wrote an SVG");
        assert!(svg.contains("<svg"), "{name}: no SVG");
    }
}

/// Operator tables (`render --format tables -d`): every row names its peer
/// with concrete addresses (From on ingress, To on egress), site flows are
/// marked, and free text is escaped.
#[test]
fn operator_tables_name_the_peer_with_its_addresses() {
    let dir = root().join("examples").join(SPACELIFT);
    let spec = load(SPACELIFT);
    let text = std::fs::read_to_string(dir.join("deployment-site.yaml")).expect("deployment");
    let deployment = portolan_spec::deployment::load_deployment(
        SourceFile::new("deployment-site.yaml", text),
        &spec,
    )
    .expect("valid deployment")
    .value;
    let plan = portolan_spec::plan::plan(&spec, &deployment);
    let page = portolan_render::render_operator_tables(&plan);
    let rows: Vec<Vec<String>> = page
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| -"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    let has = |cells: &[&str]| {
        rows.iter()
            .any(|r| r.iter().take(cells.len()).eq(cells.iter()))
    };
    assert!(
        has(&["From", "Port", "Protocol", "Optional/Required", "Flow"]),
        "{page}"
    );
    assert!(
        has(&["To", "Port", "Protocol", "Optional/Required", "Flow"]),
        "{page}"
    );
    assert!(
        has(&[
            "postgres: 192.0.2.20, sg spacelift-postgres",
            "5433",
            "TCP",
            "Required"
        ]),
        "{page}"
    );
    assert!(
        has(&[
            "site:admin-ssh: 198.51.100.0/24",
            "22",
            "TCP",
            "Site",
            "site:admin-ssh@server",
            "Site flow: admin SSH"
        ]),
        "{page}"
    );
    assert!(
        rows.iter().all(|r| r.len() == 6),
        "six cells in every row:\n{page}"
    );
    insta::assert_snapshot!("operator_tables_spacelift_site", page);
}

/// Regression (issue 9): descriptions and purposes came out raw in the
/// markdown pages, so a `<script>` in a spec was HTML on the page.
#[test]
fn no_html_from_the_spec_reaches_the_markdown_pages() {
    let text = r#"portolan: 1
system: {name: "Demo <b>", vendor: "<i>Vendor</i>", description: "<script>alert(1)</script> and `<code>`"}
components:
  - {id: web, name: "Web <img src=x onerror=alert(2)>", description: "<!-- hidden -->"}
  - {id: db, kind: dependency}
features:
  - {id: sqs, name: "<u>SQS</u>", description: "<iframe src=x>"}
parameters:
  - {id: pg, default: 5432, description: "<svg onload=alert(3)>", shown_as: "<s>pg</s>"}
flows:
  - {from: web, to: db, protocol: tcp, port: $pg, name: "<em>Postgres</em>", purpose: "<script>alert(4)</script>"}
  - {from: web, to: db, protocol: tcp, port: 443, when: sqs, purpose: "<a href=x>sqs</a>"}
"#;
    let spec = load_spec(SourceFile::new("x.yaml", text))
        .expect("valid")
        .value;
    for format in [Format::Matrix, Format::Tables] {
        let page = render(&spec, format).expect("renders");
        // Every `<` is escaped, except inside the code span the spec wrote
        // and the page's own `<br>` in the matrix's corner cell.
        let outside_code: String = page.replace("<br>", "").split('`').step_by(2).collect();
        let raw = outside_code
            .match_indices('<')
            .filter(|(i, _)| !outside_code[..*i].ends_with('\\'))
            .count();
        assert_eq!(raw, 0, "{format:?}:\n{page}");
        assert!(
            page.contains("`<code>`"),
            "{format:?}: code span kept:\n{page}"
        );
    }
}
