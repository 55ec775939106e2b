//! The importer end to end: the seed pages against the hand-written
//! examples, render-then-import, the project's own fixture pages against
//! hand-checked expected flows, accounting for every row and item, bad
//! input, and robustness on truncated and garbled pages.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "support/score.rs"]
mod score;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use portolan_import::{import_markdown, source_from_bytes, ImportError, ImportOptions, Imported};
use portolan_spec::{
    load_spec, Condition, Destination, ExternalAddress, PortItem, Ports, Protocol, SourceFile, Spec,
};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn root() -> PathBuf {
    crate_dir().join("../..")
}

fn fixture(rel: &str) -> PathBuf {
    crate_dir().join("tests/fixtures").join(rel)
}

/// The file name as the importer sees it: relative, so that origins are stable.
fn import_path(path: &Path) -> Imported {
    let bytes = std::fs::read(path).unwrap();
    let name = path
        .strip_prefix(crate_dir())
        .unwrap_or(path)
        .display()
        .to_string();
    let source = source_from_bytes(&name, &bytes).unwrap();
    import_markdown(&source, &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(name: &str, yaml: &str) -> Spec {
    match load_spec(SourceFile::new(name, yaml)) {
        Ok(loaded) => loaded.value,
        Err(d) => panic!(
            "{name} does not validate:\n{}\n{yaml}",
            portolan_spec::render_diagnostics(&d, portolan_spec::RenderStyle::Plain)
        ),
    }
}

fn load_example(name: &str) -> Spec {
    let path = root().join("examples").join(name).join("portolan.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    load(&path.display().to_string(), &text)
}

/// One flow of a spec, reduced to what the network must allow: names
/// instead of ids, one destination port item per entry, parameters resolved
/// to their defaults, the condition as its set of feature ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    from: String,
    to: String,
    protocol: String,
    port: String,
    source_ports: String,
    multicast: String,
    required: bool,
    when: BTreeSet<String>,
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} {}", self.from, self.to, self.protocol)?;
        if !self.port.is_empty() {
            write!(f, "/{}", self.port)?;
        }
        if !self.source_ports.is_empty() {
            write!(f, " from {}", self.source_ports)?;
        }
        if !self.multicast.is_empty() {
            write!(f, " multicast {}", self.multicast)?;
        }
        f.write_str(if self.required {
            " required"
        } else {
            " optional"
        })?;
        if !self.when.is_empty() {
            let when: Vec<&str> = self.when.iter().map(String::as_str).collect();
            write!(f, " when {}", when.join(","))?;
        }
        Ok(())
    }
}

fn port_texts(spec: &Spec, ports: &Ports) -> Vec<String> {
    ports
        .0
        .iter()
        .map(|p| match p {
            PortItem::Range(r) => r.to_string(),
            PortItem::Parameter(id) => {
                let param = &spec.parameters[id.0];
                match param.default {
                    Some(d) => d.to_string(),
                    None => format!("${}", param.id),
                }
            }
        })
        .collect()
}

fn features(spec: &Spec, c: &Condition) -> BTreeSet<String> {
    c.features()
        .into_iter()
        .map(|f| spec.features[f.0].id.clone())
        .collect()
}

fn items(spec: &Spec) -> BTreeSet<Item> {
    let mut out = BTreeSet::new();
    for flow in &spec.flows {
        let to = match flow.to {
            Destination::Component(c) => spec.component(c).name.clone(),
            Destination::External(e) => match &spec.external(e).address {
                ExternalAddress::Host(h) | ExternalAddress::Pattern(h) => h.clone(),
                ExternalAddress::Cidr(c) => c.to_string(),
                ExternalAddress::Placeholder(p) => format!("<{p}>"),
            },
        };
        let mut sources = port_texts(spec, &flow.source_ports);
        sources.sort();
        let ports = if !flow.protocol.has_ports() {
            vec![String::new()]
        } else if flow.ports.is_all() {
            vec!["*".to_owned()]
        } else {
            port_texts(spec, &flow.ports)
        };
        for port in ports {
            out.insert(Item {
                from: spec.component(flow.from).name.clone(),
                to: to.clone(),
                protocol: match flow.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                    Protocol::Icmp => "icmp",
                    Protocol::Any => "any",
                }
                .to_owned(),
                port,
                source_ports: sources.join(","),
                multicast: flow.multicast.map(|m| m.to_string()).unwrap_or_default(),
                required: flow.required,
                when: flow
                    .when
                    .as_ref()
                    .map(|c| features(spec, c))
                    .unwrap_or_default(),
            });
        }
    }
    out
}

fn diff(left: &BTreeSet<Item>, right: &BTreeSet<Item>) -> String {
    let mut out = String::new();
    for i in left.difference(right) {
        out.push_str(&format!("  only imported: {i}\n"));
    }
    for i in right.difference(left) {
        out.push_str(&format!("  only expected: {i}\n"));
    }
    out
}

/// Renames the imported feature ids to the example's where the flows
/// otherwise agree: a consistent one-to-one renaming, or a panic.
fn align_features(
    imported: &BTreeSet<Item>,
    example: &BTreeSet<Item>,
) -> (BTreeMap<String, String>, BTreeSet<Item>) {
    let strip = |i: &Item| Item {
        when: BTreeSet::new(),
        ..i.clone()
    };
    type Sides<'a> = (Vec<&'a BTreeSet<String>>, Vec<&'a BTreeSet<String>>);
    let mut by_key: BTreeMap<Item, Sides<'_>> = BTreeMap::new();
    for i in imported {
        by_key.entry(strip(i)).or_default().0.push(&i.when);
    }
    for e in example {
        by_key.entry(strip(e)).or_default().1.push(&e.when);
    }
    let mut mapping: BTreeMap<String, String> = BTreeMap::new();
    for (key, (mine, theirs)) in &by_key {
        if mine.len() != 1 || theirs.len() != 1 || mine[0].len() != theirs[0].len() {
            continue;
        }
        for (a, b) in mine[0].iter().zip(theirs[0].iter()) {
            let a = if mine[0] == theirs[0] { b } else { a };
            if let Some(previous) = mapping.insert(a.clone(), b.clone()) {
                assert_eq!(
                    &previous, b,
                    "feature `{a}` would map to both `{previous}` and `{b}` (flow {key})"
                );
            }
        }
    }
    let targets: BTreeSet<&String> = mapping.values().collect();
    assert_eq!(
        targets.len(),
        mapping.len(),
        "feature renaming is not one-to-one: {mapping:?}"
    );
    let renamed = imported
        .iter()
        .map(|i| Item {
            when: i
                .when
                .iter()
                .map(|f| mapping.get(f).cloned().unwrap_or_else(|| f.clone()))
                .collect(),
            ..i.clone()
        })
        .collect();
    mapping.retain(|a, b| a != b);
    (mapping, renamed)
}

fn compare_seed(page: &Path, example: &str) -> (usize, BTreeMap<String, String>) {
    let imported = import_path(page);
    let spec = load(&page.display().to_string(), &imported.yaml);
    let expected = items(&load_example(example));
    let (mapping, mine) = align_features(&items(&spec), &expected);
    assert!(
        mine == expected,
        "{}: flow sets differ\n{}",
        page.display(),
        diff(&mine, &expected)
    );
    eprintln!(
        "{}: {} of {} flow items equal the example's; features renamed: {mapping:?}",
        page.display(),
        mine.len(),
        expected.len()
    );
    (mine.len(), mapping)
}

#[test]
fn seed_fixtures_match_the_examples() {
    let (n, mapping) = compare_seed(&fixture("seeds/circonus-inside.md"), "circonus-inside");
    assert_eq!(n, 108);
    // The importer names features after the page's words; two of the
    // example's were chosen by hand.
    assert_eq!(
        mapping,
        BTreeMap::from([
            (
                "backtrace-crash-reporting".to_owned(),
                "crash-reporting".to_owned()
            ),
            (
                "circonus-package-repositories".to_owned(),
                "package-updates".to_owned()
            ),
        ])
    );
    let (n, mapping) = compare_seed(
        &fixture("seeds/spacelift-self-hosted.md"),
        "spacelift-self-hosted",
    );
    // Every flow, the two the "Container registries" prose states included.
    assert_eq!(n, 24);
    // The launcher-image feature is named after the page's "If you deploy
    // your workers using our Kubernetes operator".
    assert_eq!(
        mapping,
        BTreeMap::from([
            (
                "built-in-mqtt-broker".to_owned(),
                "builtin-mqtt-broker".to_owned()
            ),
            (
                "kubernetes-operator".to_owned(),
                "kubernetes-workers".to_owned()
            ),
        ])
    );
}

#[test]
fn shared_seed_pages_match_the_examples() {
    let dir = root().join("../shared/seeds");
    if !dir.is_dir() {
        portolan_test_support::loud(&format!("SKIPPED: {} is not present", dir.display()));
        return;
    }
    compare_seed(&dir.join("000_681580ba699051e2.txt"), "circonus-inside");
    compare_seed(
        &dir.join("004_90f2a28039fc8bd0.txt"),
        "spacelift-self-hosted",
    );
}

fn render_and_import(
    example: &str,
    format: portolan_render::Format,
) -> (BTreeSet<Item>, BTreeSet<Item>, Imported) {
    let spec = load_example(example);
    let page = portolan_render::render(&spec, format).unwrap();
    let imported = import_markdown(
        &SourceFile::new(format!("{example}.{format}.md"), page),
        &ImportOptions::default(),
    )
    .unwrap();
    let again = load(example, &imported.yaml);
    (items(&again), items(&spec), imported)
}

#[test]
fn render_then_import_is_the_identity() {
    let (mine, theirs, imported) =
        render_and_import("circonus-inside", portolan_render::Format::Matrix);
    assert!(mine == theirs, "circonus matrix:\n{}", diff(&mine, &theirs));
    assert!(
        imported.report.warnings.is_empty(),
        "{:#?}",
        imported.report.warnings
    );

    let (mine, theirs, _) =
        render_and_import("spacelift-self-hosted", portolan_render::Format::Tables);
    // Regression: the tables page used to show a row's purpose *or* its
    // condition, so the launcher-image flow (purpose and
    // `when: kubernetes-workers`) came back without its condition.
    assert!(
        mine == theirs,
        "spacelift tables:\n{}",
        diff(&mine, &theirs)
    );
}

/// A spec that uses every notation the renderer has: conditions (numbered
/// in the matrix), a parameter, a range, multicast, a fixed source port,
/// ICMP, `any`, a CIDR, a placeholder and a wildcard endpoint, a flow from
/// two components. (A matrix page does not say which components are
/// dependencies, so every component here is a system component or external,
/// or "every system component" could not be read back.)
const EVERY_NOTATION: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web, name: Web}
  - {id: db, name: DB}
  - {id: cache, name: Cache}
  - {id: users, name: Users, kind: external}
externals:
  - {id: partner, cidr: 203.0.113.0/24}
  - {id: irc, placeholder: X IRC network, name: IRC network}
  - {id: cdn, host: '*.cdn.example.com'}
features:
  - {id: tls, name: TLS}
  - {id: replicas, name: Read replicas}
parameters:
  - {id: pg, default: 5432}
flows:
  - {from: users, to: web, protocol: tcp, port: [80, 443]}
  - {from: web, to: db, protocol: tcp, port: $pg}
  - {from: web, to: db, protocol: tcp, port: 6432, required: false, when: replicas}
  - {from: web, to: cache, protocol: udp, port: 8082, multicast: 239.1.2.3}
  - {from: cache, to: cache, protocol: tcp, port: '7000-7005', when: {not: tls}}
  - {from: web, to: users, protocol: any}
  - {from: cache, to: web, protocol: icmp}
  - {from: web, to: partner, protocol: tcp, port: 8443, required: false, when: {any: [tls, replicas]}}
  - {from: web, to: irc, protocol: tcp, port: 6697}
  - {from: [web, cache], to: cdn, protocol: tcp, port: 443}
  - {from: db, to: db, protocol: udp, port: 5000, source_port: 5000}
";

#[test]
fn render_then_import_keeps_every_notation() {
    let spec = load("every-notation.yaml", EVERY_NOTATION);
    for format in [
        portolan_render::Format::Matrix,
        portolan_render::Format::Tables,
    ] {
        let page = portolan_render::render(&spec, format).unwrap();
        let imported = import_markdown(
            &SourceFile::new(format!("every-notation.{format}.md"), page.clone()),
            &ImportOptions::default(),
        )
        .unwrap();
        let again = load("again", &imported.yaml);
        let (mine, theirs) = (items(&again), items(&spec));
        assert!(
            mine == theirs,
            "{format}:\n{}\n{page}\n{}",
            diff(&mine, &theirs),
            imported.yaml
        );
        assert_accounted(&format!("every notation as {format}"), &page, &imported);
    }
}

/// The flows of each fixture page, one per line, as `Item` displays them,
/// then the skipped lines: an insta snapshot a page
/// (`tests/snapshots/import__fixture_page_NAME.snap`; review every change
/// with `cargo insta review`, or `INSTA_UPDATE=always` and `git diff`).
#[test]
fn fixture_pages_import_to_the_expected_flows() {
    let dir = fixture("pages");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    assert!(pages.len() >= 8, "{} fixture pages", pages.len());
    for page in &pages {
        let imported = import_path(page);
        let spec = load(&page.display().to_string(), &imported.yaml);
        let mut text = String::from("# flows\n");
        for item in items(&spec) {
            text.push_str(&format!("{item}\n"));
        }
        text.push_str("# skipped\n");
        for s in &imported.report.rows_skipped {
            text.push_str(&format!("{}: {}\n", s.line, s.reason));
        }
        let name = page.file_stem().unwrap().to_string_lossy();
        insta::assert_snapshot!(format!("fixture_page_{name}"), text);
    }
}

/// The image-pull prose rule, worded differently from Spacelift's page:
/// what it makes of each sentence, and that it leaves the rest of the
/// section's prose a warning.
#[test]
fn image_pull_prose_becomes_flows() {
    let imported = import_path(&fixture("pages/image-registry.md"));
    let spec = load("image-registry", &imported.yaml);
    let runtime = spec
        .components
        .iter()
        .find(|c| c.name == "Container runtime")
        .unwrap();
    assert!(runtime.description.is_some());
    let pulls: Vec<_> = spec
        .flows
        .iter()
        .filter(|f| spec.component(f.from).name == "Container runtime")
        .collect();
    assert_eq!(pulls.len(), 2, "{}", imported.yaml);
    let agent = pulls
        .iter()
        .find(|f| f.name.as_deref() == Some("Agent image"))
        .unwrap();
    assert!(agent.required && agent.when.is_none());
    assert_eq!(
        agent.purpose.as_deref(),
        Some("Your nodes must be able to pull the agent image from the registry.")
    );
    assert_eq!(
        agent.origin.as_deref(),
        Some("tests/fixtures/pages/image-registry.md:7")
    );
    assert!(agent.guess.as_deref().unwrap().contains("443"));
    let scanner = pulls
        .iter()
        .find(|f| f.name.as_deref() == Some("Scanner images"))
        .unwrap();
    assert!(!scanner.required);
    assert_eq!(
        features(&spec, scanner.when.as_ref().unwrap()),
        BTreeSet::from(["vulnerability-scanner".to_owned()])
    );
    // Prose the rule does not match stays a warning.
    let warnings: Vec<&str> = imported
        .report
        .warnings
        .iter()
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("must be able to reach your object storage bucket"));
}

/// Lines that start a table body row or a list item, found without the
/// importer's reader: what "every row and item" means.
fn row_and_item_lines(text: &str) -> BTreeSet<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeSet::new();
    let mut in_table = false;
    let mut in_fence = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            in_fence = !in_fence;
        }
        if in_fence {
            continue;
        }
        let is_delimiter = t.contains('|')
            && t.contains('-')
            && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '));
        if is_delimiter {
            in_table = true;
            continue;
        }
        if in_table && t.contains('|') {
            out.insert(i + 1);
            continue;
        }
        in_table = in_table && t.is_empty() && lines.get(i + 1).is_some_and(|l| l.contains('|'));
        let item = t.starts_with("- ") || t.starts_with("* ") || t.starts_with("+ ");
        let numbered = t
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if item || numbered {
            out.insert(i + 1);
        }
    }
    out
}

fn origin_lines(origin: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let (head, also) = match origin.split_once(" (also line ") {
        Some((h, a)) => (h, Some(a)),
        None => (origin, None),
    };
    if let Some((_, n)) = head.rsplit_once(':') {
        out.extend(n.trim().parse::<usize>().ok());
    }
    if let Some(also) = also {
        out.extend(
            also.trim_end_matches(')')
                .split(", ")
                .filter_map(|n| n.parse::<usize>().ok()),
        );
    }
    out
}

fn assert_accounted(name: &str, text: &str, imported: &Imported) {
    let spec = load(name, &imported.yaml);
    let mut seen: BTreeSet<usize> = spec
        .flows
        .iter()
        .filter_map(|f| f.origin.as_deref())
        .flat_map(origin_lines)
        .collect();
    seen.extend(imported.report.rows_skipped.iter().map(|s| s.line));
    seen.extend(imported.report.rows_merged.iter().map(|m| m.line));
    seen.extend(imported.report.definitions.iter().copied());
    let missing: Vec<usize> = row_and_item_lines(text)
        .difference(&seen)
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: rows or items neither imported, merged, defined nor skipped: lines {missing:?}"
    );
    assert_eq!(
        imported.report.flows_imported,
        spec.flows.len(),
        "{name}: the report counts every (source, destination) flow"
    );
}

#[test]
fn every_row_and_item_is_accounted_for() {
    let mut pages: Vec<PathBuf> = ["seeds/circonus-inside.md", "seeds/spacelift-self-hosted.md"]
        .iter()
        .map(|p| fixture(p))
        .collect();
    for e in std::fs::read_dir(fixture("pages")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            pages.push(p);
        }
    }
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        assert_accounted(&page.display().to_string(), &text, &import_path(&page));
    }
    for (example, format) in [
        ("circonus-inside", portolan_render::Format::Matrix),
        ("spacelift-self-hosted", portolan_render::Format::Tables),
        ("circonus-inside", portolan_render::Format::Tables),
        ("spacelift-self-hosted", portolan_render::Format::Matrix),
    ] {
        let page = portolan_render::render(&load_example(example), format).unwrap();
        let imported = import_markdown(
            &SourceFile::new(format!("{example}.md"), page.clone()),
            &ImportOptions::default(),
        )
        .unwrap();
        assert_accounted(&format!("{example} rendered as {format}"), &page, &imported);
    }
}

#[test]
fn seed_import_reports_what_it_guessed() {
    let imported = import_path(&fixture("seeds/circonus-inside.md"));
    let r = &imported.report;
    // The 16-cell header over a 14-cell delimiter row is read, and said.
    assert!(r
        .warnings
        .iter()
        .any(|w| w.line == 19 && w.message.contains("16 cells")));
    // Bare host names: port 443 assumed, with the line.
    assert!(r
        .warnings
        .iter()
        .any(|w| w.line == 50 && w.message.contains("slack.com") && w.message.contains("443")));
    assert!(imported
        .yaml
        .contains("guess: \"port not stated on the page; HTTPS (443) assumed\""));
    // The empty Long-tail Storage row is reported, not dropped.
    assert!(r.rows_skipped.iter().any(|s| s.line == 28));
    assert!(imported.yaml.contains("aliases: [Long-tail Storage]"));

    let imported = import_path(&fixture("seeds/spacelift-self-hosted.md"));
    let r = &imported.report;
    assert!(r
        .warnings
        .iter()
        .any(|w| w.line == 21 && w.message.contains("Clients")));
    // The image pulls the "Container registries" prose states are flows
    // now, with their guessed port said, not warnings.
    assert!(!r
        .warnings
        .iter()
        .any(|w| w.line == 11 && w.message.contains("pull the")));
    assert_eq!(r.guesses.iter().filter(|g| g.line == 11).count(), 2);
    assert!(imported.yaml.contains("name: Backend image"));
    assert!(imported.yaml.contains("name: Launcher image"));
    assert!(imported
        .yaml
        .contains("origin: \"tests/fixtures/seeds/spacelift-self-hosted.md:11\""));
    assert!(imported.yaml.contains("shown_as: \"443 or user-defined\""));
    assert!(
        imported
            .yaml
            .contains("origin: \"seeds/spacelift-self-hosted.md:28\"")
            || imported.yaml.contains("spacelift-self-hosted.md:28")
    );
    let json = serde_json::to_value(r).unwrap();
    for key in [
        "rows_read",
        "flows_imported",
        "rows_skipped",
        "warnings",
        "guesses",
    ] {
        assert!(json.get(key).is_some(), "report lacks {key}");
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    let import = |bytes: &[u8]| -> Result<Imported, ImportError> {
        let source = source_from_bytes("page.md", bytes)?;
        import_markdown(&source, &ImportOptions::default())
    };
    let err = import(b"\x7fELF\x02\x01\x01\0\0\0").unwrap_err();
    assert!(
        matches!(err, ImportError::Binary { offset: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("binary"));
    assert!(matches!(
        import(b"").unwrap_err(),
        ImportError::Empty { .. }
    ));
    assert!(matches!(
        import(b" \n\n\t\n").unwrap_err(),
        ImportError::Empty { .. }
    ));
    let huge = vec![b'a'; portolan_import::MAX_BYTES + 1];
    let err = import(&huge).unwrap_err();
    assert!(err.to_string().contains("8 MiB"), "{err}");
    let err = import(b"\xff\xfe# x").unwrap_err();
    assert!(
        matches!(err, ImportError::NotUtf8 { offset: 0, .. }),
        "{err}"
    );
    let err = import(b"# Networking\n\nThe server listens on port 443.\n").unwrap_err();
    assert!(matches!(err, ImportError::NoTable { .. }), "{err}");
    assert!(err.to_string().contains("no table"));
    let err = import(b"<!DOCTYPE html>\n<html><body><table></table></body></html>").unwrap_err();
    assert!(matches!(err, ImportError::NotMarkdown { .. }), "{err}");
    let err = import(b"# Team\n\n| Name | Role |\n|---|---|\n| Ann | Lead |\n").unwrap_err();
    let ImportError::NothingImported { report, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(report.rows_skipped[0].line, 5);
    assert!(report.rows_skipped[0].reason.contains("no port column"));
    // SourceFile built directly is checked too.
    let err =
        import_markdown(&SourceFile::new("x.md", "a\0b"), &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Binary { .. }));
}

/// Inputs the fuzz target found: each must import to a valid spec or fail
/// cleanly.
#[test]
fn fuzz_findings_stay_fixed() {
    let mut n = 0;
    for e in std::fs::read_dir(fixture("fuzz")).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let Ok(source) = source_from_bytes("fuzz.md", &bytes) else {
            continue;
        };
        if let Ok(imported) = import_markdown(&source, &ImportOptions::default()) {
            load(&path.display().to_string(), &imported.yaml);
        }
        n += 1;
    }
    assert!(n >= 1);
}

/// A small deterministic generator, so that failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Every prefix of every seed and fixture page (at most ~300 per page) and
/// garbled copies: the importer returns a spec that validates or an error,
/// and never panics.
#[test]
fn truncated_and_garbled_pages_never_panic() {
    let mut pages = vec![
        fixture("seeds/circonus-inside.md"),
        fixture("seeds/spacelift-self-hosted.md"),
    ];
    for e in std::fs::read_dir(fixture("pages")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            pages.push(p);
        }
    }
    let mut rng = Lcg(0x5eed);
    let mut imported = 0;
    let mut runs = 0;
    let check = |text: &str, what: &str, imported: &mut usize| match import_markdown(
        &SourceFile::new("fuzz.md", text),
        &ImportOptions::default(),
    ) {
        Ok(i) => {
            *imported += 1;
            if let Err(d) = load_spec(SourceFile::new("fuzz.yaml", i.yaml.clone())) {
                panic!(
                    "{what}: the importer wrote an invalid spec:\n{}\n{}",
                    portolan_spec::render_diagnostics(&d, portolan_spec::RenderStyle::Plain),
                    i.yaml
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    };
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let step = (text.len() / 300).max(1);
        let mut cut = 0;
        while cut <= text.len() {
            if text.is_char_boundary(cut) {
                check(
                    &text[..cut],
                    &format!("{} prefix {cut}", page.display()),
                    &mut imported,
                );
                runs += 1;
            }
            cut += step;
        }
        for round in 0..40 {
            let mut bytes = text.clone().into_bytes();
            for _ in 0..(1 + rng.next() % 12) {
                if bytes.is_empty() {
                    break;
                }
                let at = (rng.next() as usize) % bytes.len();
                match rng.next() % 4 {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => {
                        let alphabet = b"|-*:`[]()<>\\\n #0123456789T";
                        bytes[at] = alphabet[(rng.next() as usize) % alphabet.len()];
                    }
                    2 => {
                        let len = (rng.next() as usize % 40).min(bytes.len() - at);
                        let chunk: Vec<u8> = bytes[at..at + len].to_vec();
                        let to = (rng.next() as usize) % bytes.len();
                        for (k, b) in chunk.into_iter().enumerate() {
                            bytes.insert((to + k).min(bytes.len()), b);
                        }
                    }
                    _ => bytes.insert(at, b'|'),
                }
            }
            let garbled = String::from_utf8_lossy(&bytes).into_owned();
            check(
                &garbled,
                &format!("{} garbled round {round}", page.display()),
                &mut imported,
            );
            runs += 1;
        }
    }
    eprintln!("{runs} truncated or garbled pages, {imported} imported to valid specs");
    assert!(
        imported > runs / 2,
        "most damaged pages still import ({imported}/{runs})"
    );
}

/// The floor the corpus's overall flow-level F1 must not fall below; raise
/// it with the importer (docs/import-corpus.md).
const CORPUS_F1_FLOOR: f64 = 0.89;

#[test]
fn corpus_scores_hold() {
    let pages = score::corpus_pages(&crate_dir().join("tests/corpus"));
    assert!(pages.len() >= 20, "the corpus has {} pages", pages.len());
    let scores: Vec<score::PageScore> = pages
        .iter()
        .map(|p| score::score_page(p).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let (flows, ports) = score::overall(&scores);
    eprintln!("{}", score::table(&scores));
    assert!(
        flows.f1() >= CORPUS_F1_FLOOR,
        "corpus flow-level F1 {:.3} is below the floor {CORPUS_F1_FLOOR}",
        flows.f1()
    );
    assert!(ports.f1() > flows.f1() - 1e-9 || ports.f1() >= 0.8);
}

#[test]
fn scorer_counts_parties_protocols_and_ports() {
    let key = score::key_atoms(
        &score::parse_key(
            "# comment\nA|Alpha -> B tcp,udp/53\n? -> B tcp/80,443 optional\nAlpha -> x.example.com icmp\n",
        )
        .unwrap(),
    );
    assert_eq!(key.len(), 5);
    let spec = load(
        "s.yaml",
        "portolan: 1\nsystem: {name: S}\ncomponents:\n  - {id: alpha, name: Alpha}\n  - {id: b, name: B}\n  - {id: unspecified-source, name: Unspecified source, kind: external}\n  - {id: clients, name: Clients, kind: external}\nexternals:\n  - {id: x, host: x.example.com}\nflows:\n  - {from: alpha, to: b, protocol: tcp, port: 53}\n  - {from: alpha, to: b, protocol: udp, port: 53}\n  - {from: unspecified-source, to: b, protocol: tcp, port: 80, required: false}\n  - {from: clients, to: b, protocol: tcp, port: 443}\n  - {from: alpha, to: x, protocol: icmp}\n  - {from: b, to: alpha, protocol: tcp, port: 8080}\n",
    );
    let imported = score::spec_atoms(&spec);
    let s = score::score("t", &key, &imported);
    // Clients is not the unspecified party; b -> alpha is not in the key.
    assert_eq!(
        (s.flows.hits, s.flows.given, s.flows.expected),
        (4, 6, 5),
        "{s:?}"
    );
    assert_eq!(s.optional_agree, (4, 4));
    assert_eq!(s.missed, vec!["line 3: ? -> b tcp/443".to_owned()]);
    // Port level: 53/tcp, 53/udp, 80, 443, icmp are all in both; 8080 is extra.
    assert_eq!((s.ports.hits, s.ports.given, s.ports.expected), (5, 6, 5));
    assert!(score::parse_key("A -> B xyz/1").is_err());
    assert!(score::parse_key("A B tcp/1").is_err());
}

/// Issue 9, row 17: extra text in a protocol cell is reported as in a port
/// cell, and columns the importer cannot read are reported, however many.
#[test]
fn protocol_cell_extra_text_and_unknown_columns_are_reported() {
    let page = "# Shop\n\n## Web\n\n| Port | Protocol | Source |\n|---|---|---|\n| 443 | TCP<br>-A INPUT -j ACCEPT | LB |\n| 80 | TCP -A INPUT -j ACCEPT | LB |\n";
    let imported =
        import_markdown(&SourceFile::new("p.md", page), &ImportOptions::default()).unwrap();
    for line in [7, 8] {
        assert!(
            imported.report.warnings.iter().any(|w| w.line == line
                && w.code == portolan_import::WarningCode::UnreadCellText
                && w.message.contains("protocol cell")
                && w.message.contains("-A INPUT -j ACCEPT")),
            "line {line}: {:?}",
            imported.report.warnings
        );
    }
    assert!(imported.yaml.contains("port: 443"));

    let extra: Vec<String> = (0..300).map(|i| format!("Extra {i}")).collect();
    let page = format!(
        "# Shop\n\n## Web\n\n| Port | Protocol | Source | {} |\n|---|---|---|{}\n| 443 | TCP | LB |{}\n",
        extra.join(" | "),
        "---|".repeat(300),
        " x |".repeat(300)
    );
    let imported =
        import_markdown(&SourceFile::new("p.md", page), &ImportOptions::default()).unwrap();
    let said: Vec<_> = imported
        .report
        .warnings
        .iter()
        .filter(|w| w.message.contains("not read"))
        .collect();
    assert_eq!(said.len(), 1, "{:?}", imported.report.warnings);
    assert_eq!(said[0].code.as_str(), "import::unread-column");
    assert!(
        said[0].message.starts_with("300 column(s)"),
        "{}",
        said[0].message
    );
    assert!(said[0].message.contains("and 295 more"));
    assert!(said[0].message.len() < 400);
}

/// Issue 15: a port stated beside a host, or above the list, is read, and
/// "(HTTPS)" is how a host is reached, not its name.
#[test]
fn host_lists_read_stated_ports_and_schemes() {
    let page = "# Ledgerly\n\n## Outbound\n\nThe application servers must be able to reach the following hosts:\n\n- `sentry.io`, port 8443 – error reports\n- `mirror.example.io` (HTTPS) – packages\n\nThe workers connect on port 9418:\n\n- `git.example.org` – sources\n";
    let imported =
        import_markdown(&SourceFile::new("p.md", page), &ImportOptions::default()).unwrap();
    let spec = load("p.yaml", &imported.yaml);
    let flows: BTreeSet<String> = items(&spec).iter().map(ToString::to_string).collect();
    for f in [
        "Application servers -> sentry.io tcp/8443 required",
        "Application servers -> mirror.example.io tcp/443 required",
        "Workers -> git.example.org tcp/9418 required",
    ] {
        assert!(flows.contains(f), "{f} not in {flows:?}");
    }
    assert!(!imported.yaml.contains("name: HTTPS"), "{}", imported.yaml);
    assert!(
        !imported
            .report
            .warnings
            .iter()
            .any(|w| w.message.contains("no port")),
        "{:?}",
        imported.report.warnings
    );
    // Nothing is named after the title.
    assert!(
        !imported.yaml.contains("- id: ledgerly"),
        "{}",
        imported.yaml
    );
}

/// Issue 15: the report says, per line, what was read, guessed or skipped.
#[test]
fn report_lists_each_row() {
    let page = "# Shop\n\n## Web\n\n| Port | Protocol | Source |\n|---|---|---|\n| 443 | TCP | LB |\n| 80 | | |\n| x | TCP | LB |\n";
    let imported =
        import_markdown(&SourceFile::new("p.md", page), &ImportOptions::default()).unwrap();
    let row = |line: usize| {
        imported
            .report
            .rows
            .iter()
            .find(|r| r.line == line)
            .cloned()
    };
    assert_eq!(row(7).map(|r| r.flows), Some(1));
    let guessed = row(8).unwrap();
    assert_eq!(guessed.flows, 1);
    assert!(
        guessed
            .guessed
            .iter()
            .any(|g| g.contains("direction not stated")),
        "{guessed:?}"
    );
    assert!(
        guessed.guessed.iter().any(|g| g.contains("unspecified")),
        "{guessed:?}"
    );
    assert!(!row(9).unwrap().skipped.is_empty());
    let json = serde_json::to_value(&imported.report).unwrap();
    assert!(json["rows"].as_array().is_some_and(|r| r.len() == 3));
}

#[test]
fn every_warning_code_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/diagnostics.md")).unwrap();
    for code in portolan_import::WarningCode::ALL {
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "{code} is missing from docs/diagnostics.md"
        );
    }
}

/// The spec text of both seed pages, byte for byte: the draft spec goes
/// through serde (`yaml.rs`), and this pins the layout users know.
#[test]
fn seed_specs_keep_their_text() {
    for seed in ["circonus-inside", "spacelift-self-hosted"] {
        let imported = import_path(&fixture(&format!("seeds/{seed}.md")));
        insta::assert_snapshot!(format!("seed_spec_{seed}"), imported.yaml);
    }
}

/// Headings that say "traffic to/from each X" are about X, a heading that
/// says "inbound traffic from Y" names the source, and a direction cell
/// that names its peer ("Allow inbound from Y") is read as the peer.
#[test]
fn directed_headings_and_direction_cells_name_parties() {
    let page = "# Shop\n\n## Outbound traffic from every worker\n\n| Port | Protocol | To | Purpose |\n|---|---|---|---|\n| 6379 | TCP | Cache | Jobs |\n\n## Inbound traffic from the load balancer\n\n### Web server\n\n| Port | Protocol | Purpose |\n|---|---|---|\n| 8080 | TCP | Pages |\n\n## Queue\n\n| Port | Protocol | Ingress | Egress |\n|---|---|---|---|\n| 5672 | TCP | Allow inbound from workers | |\n";
    let imported =
        import_markdown(&SourceFile::new("p.md", page), &ImportOptions::default()).unwrap();
    let spec = load("p.yaml", &imported.yaml);
    let flows: BTreeSet<String> = items(&spec).iter().map(ToString::to_string).collect();
    for f in [
        "Worker -> Cache tcp/6379 required",
        "Load balancer -> Web server tcp/8080 required",
        "Workers -> Queue tcp/5672 required",
    ] {
        assert!(flows.contains(f), "{f} not in {flows:?}\n{}", imported.yaml);
    }
    assert!(
        !imported
            .report
            .warnings
            .iter()
            .any(|w| w.code == portolan_import::WarningCode::UnreadColumn),
        "{:?}",
        imported.report.warnings
    );
}
