//! Integration tests of the spec reader: every invalid fixture produces the
//! diagnostics it is named for (snapshots of the rendered text), the shipped
//! examples are valid, and every diagnostic code is documented.

use std::path::{Path, PathBuf};

use portolan_spec::{load_spec, render_diagnostics, Code, RenderStyle, SourceFile};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn diagnostics_text(path: &Path) -> (String, Vec<Code>, bool) {
    let name = format!(
        "invalid/{}",
        path.file_name().expect("file name").to_string_lossy()
    );
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    match load_spec(SourceFile::new(name, text)) {
        Ok(loaded) => (
            render_diagnostics(&loaded.warnings, RenderStyle::Plain),
            loaded.warnings.items.iter().map(|d| d.code).collect(),
            true,
        ),
        Err(diagnostics) => (
            render_diagnostics(&diagnostics, RenderStyle::Plain),
            diagnostics.items.iter().map(|d| d.code).collect(),
            false,
        ),
    }
}

#[test]
fn invalid_fixtures_render_their_diagnostics() {
    for path in fixtures() {
        let stem = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .to_string();
        let (text, codes, valid) = diagnostics_text(&path);
        assert!(
            !codes.is_empty(),
            "{stem}: expected at least one diagnostic"
        );
        // Only the warnings fixture may load; every other one must be rejected.
        assert_eq!(valid, stem == "warnings", "{stem}: validity");
        insta::assert_snapshot!(stem, text);
    }
}

#[test]
fn each_fixture_reports_its_codes() {
    let expect: &[(&str, &[Code])] = &[
        ("yaml-syntax", &[Code::YamlSyntax]),
        ("empty-file", &[Code::YamlSyntax]),
        ("unknown-key", &[Code::UnknownKey]),
        ("missing-key", &[Code::MissingKey]),
        ("wrong-type", &[Code::WrongType]),
        ("wrong-port-shape", &[Code::WrongType]),
        ("duplicate-key", &[Code::DuplicateKey]),
        ("unsupported-version", &[Code::UnsupportedVersion]),
        (
            "invalid-and-duplicate-id",
            &[Code::InvalidId, Code::DuplicateId],
        ),
        (
            "unknown-references",
            &[
                Code::UnknownReference,
                Code::UnknownReference,
                Code::UnknownFeature,
                Code::UnknownParameter,
            ],
        ),
        (
            "ports",
            &[
                Code::PortOutOfRange,
                Code::InvertedRange,
                Code::InvalidPort,
                Code::PortNotAllowed,
                Code::EmptyList,
            ],
        ),
        ("duplicate-flow", &[Code::DuplicateFlow]),
        (
            "many-structural",
            &[
                Code::UnknownKey,
                Code::WrongType,
                Code::WrongType,
                Code::UnknownKey,
                Code::WrongType,
                Code::WrongType,
                Code::MissingKey,
                Code::MissingKey,
            ],
        ),
        ("mis-indented", &[Code::MissingKey, Code::YamlSyntax]),
        ("mis-indented-top", &[Code::MissingKey, Code::UnknownKey]),
        (
            "positions",
            &[
                Code::UnknownReference,
                Code::UnknownReference,
                Code::DuplicateFlow,
            ],
        ),
        (
            "empty-values",
            &[
                Code::EmptyValue,
                Code::EmptyValue,
                Code::EmptyValue,
                Code::EmptyValue,
            ],
        ),
        (
            "control-characters",
            &[
                Code::ControlCharacter,
                Code::ControlCharacter,
                Code::ControlCharacter,
                Code::InvalidId,
                Code::ControlCharacter,
                Code::ControlCharacter,
            ],
        ),
        (
            "multicast",
            &[
                Code::InvalidMulticast,
                Code::MulticastProtocol,
                Code::InvalidMulticast,
            ],
        ),
        (
            "invalid-source-and-address",
            &[
                Code::InvalidAddress,
                Code::InvalidAddress,
                Code::InvalidAddress,
                Code::InvalidSource,
            ],
        ),
        (
            "warnings",
            &[
                Code::ParameterNeedsValue,
                Code::BroadFlow,
                Code::OptionalWithoutCondition,
                Code::UnusedFeature,
                Code::UnusedParameter,
            ],
        ),
    ];
    for (stem, codes) in expect {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/invalid/{stem}.yaml"));
        let (_, found, _) = diagnostics_text(&path);
        let mut found_sorted = found.clone();
        found_sorted.sort();
        let mut expected_sorted = codes.to_vec();
        expected_sorted.sort();
        assert_eq!(found_sorted, expected_sorted, "{stem}: {found:?}");
    }
}

/// The source text under each label of each diagnostic of a fixture.
fn underlined(stem: &str) -> Vec<Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/invalid/{stem}.yaml"));
    let text = std::fs::read_to_string(path).expect("fixture");
    let diagnostics = load_spec(SourceFile::new(stem, text.clone())).expect_err("invalid");
    diagnostics
        .items
        .iter()
        .map(|d| {
            d.labels
                .iter()
                .map(|l| text[l.span.offset..l.span.offset + l.span.len].to_owned())
                .collect()
        })
        .collect()
}

/// Regression (issue 9, row 14): an id inside a list (`[lb, app]`) was
/// underlined at the `[`, and a duplicate flow at its `from` list.
#[test]
fn labels_underline_the_item_they_are_about() {
    assert_eq!(
        underlined("positions"),
        [vec!["ap"], vec!["dbb"], vec!["app", "app"]]
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid/positions.yaml");
    let (rendered, _, _) = diagnostics_text(&path);
    let duplicate = &rendered[rendered.find("spec::duplicate-flow").expect("duplicate")..];
    // Two excerpts, the first flow's and the duplicate's, not the lines between.
    assert_eq!(duplicate.matches("╭─[").count(), 2, "{duplicate}");
    assert!(!duplicate.contains("port: 8080"), "{duplicate}");
    assert!(
        duplicate.contains("duplicate of the flow at line 9"),
        "{duplicate}"
    );
}

/// Regression (issue 9, row 13): `validate` stopped at the first
/// structural error; a user fixed six mistakes in six runs.
#[test]
fn every_structural_error_is_reported_in_one_run() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid/many-structural.yaml");
    let (_, codes, _) = diagnostics_text(&path);
    assert_eq!(codes.len(), 8, "{codes:?}");
    // `TCP` and `Dependency` (any case) are read, not reported.
    assert_eq!(
        underlined("many-structural")
            .iter()
            .map(|labels| labels[0].as_str())
            .collect::<Vec<_>>(),
        [
            "vendr",
            "sytem",
            "[",
            "purpse",
            "tcpp",
            "{",
            "{from: web, port: 443, protocol: udp}",
            "{from: web, to: db, port: 5432}",
        ]
    );
}

/// Regression (issue 9, row 13): protocols and kinds are read in any
/// case (operators paste `TCP` from vendor pages) and written lower case.
#[test]
fn protocol_and_kind_are_read_in_any_case() {
    let text = "portolan: 1\nsystem: {name: X}\ncomponents: [{id: a}, {id: b, kind: Dependency}]\nflows: [{from: a, to: b, protocol: UDP, port: 53}, {from: a, to: b, protocol: Tcp, port: 443}]\n";
    let spec = load_spec(SourceFile::new("x.yaml", text))
        .expect("any case is read")
        .value;
    let ids: Vec<&str> = spec.flows.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["a->b/udp/53", "a->b/tcp/443"]);
    assert_eq!(
        spec.components[1].kind,
        portolan_spec::ComponentKind::Dependency
    );
}

/// Regression (issue 9, row 14 c/d): a missing key was underlined at the
/// mapping's last key, and a mis-indented `to:` got no hint.
#[test]
fn a_missing_key_points_at_its_mapping_and_a_stray_key() {
    assert_eq!(
        underlined("missing-key"),
        [vec!["{from: web, protocol: tcp, port: 5432}"]]
    );
    for (stem, at) in [
        ("mis-indented", "`to:` at line 10, column 3"),
        ("mis-indented-top", "`to:` at line 10, column 1"),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/invalid/{stem}.yaml"));
        let text = std::fs::read_to_string(path).expect("fixture");
        let diagnostics = load_spec(SourceFile::new(stem, text)).expect_err("invalid");
        let missing = &diagnostics.items[0];
        assert_eq!(missing.code, Code::MissingKey, "{stem}");
        let help = missing.help.as_deref().unwrap_or_default();
        assert!(
            help.contains(at) && help.contains("indentation"),
            "{stem}: {help}"
        );
    }
}

/// Whether text holds a character that a terminal would act on.
fn has_raw_controls(text: &str) -> bool {
    text.chars()
        .any(|c| c != '\n' && portolan_spec::text::is_control(c))
}

#[test]
fn diagnostics_never_print_raw_control_characters() {
    // Quoted escapes become characters in the spec's values (rejected by
    // `spec::control-character`); raw ones are YAML syntax errors. Neither
    // reaches the output raw: not in the message, not in the excerpt.
    let cases = [
        "portolan: 1\nsystem: {name: \"Demo\\e]0;pwned\\a\"}\ncomponents:\n  - {id: \"x\\e[2J\\0\"}\n",
        "portolan: 1\nsystem: {name: Raw \u{1b}]0;x\u{7} name}\ncomponents:\n  - {id: web}\n",
        "portolan: 1\r\nsystem: {name: Demo}\r\ncomponents:\r\n  - {id: \"a\u{202e}b\"}\r\n",
    ];
    for text in cases {
        let diagnostics = load_spec(SourceFile::new("x.yaml", text)).expect_err("invalid");
        let rendered = render_diagnostics(&diagnostics, RenderStyle::Plain);
        assert!(!has_raw_controls(&rendered), "{rendered:?}");
    }
}

#[test]
fn a_megabyte_line_gives_a_short_diagnostic() {
    let text = format!(
        "portolan: 1\nsystem: {{name: Demo, description: \"{}\"}}\ncomponents:\n  - {{id: web, name: \"{}\", nope: 1}}\n",
        "x".repeat(1_000_000),
        "y".repeat(500_000)
    );
    let diagnostics = load_spec(SourceFile::new("x.yaml", text)).expect_err("invalid");
    let rendered = render_diagnostics(&diagnostics, RenderStyle::Plain);
    assert!(rendered.len() < 2_000, "{} bytes", rendered.len());
    // The underline still sits under the key it is about.
    let lines: Vec<&str> = rendered.lines().collect();
    let quoted = lines
        .iter()
        .position(|l| l.contains("nope: 1"))
        .expect("excerpt");
    let chars_before = |line: &str, byte: usize| line[..byte].chars().count();
    let column = chars_before(lines[quoted], lines[quoted].find("nope").expect("key"));
    let under = lines[quoted + 1];
    let underline = under.find('─').map(|b| chars_before(under, b));
    assert_eq!(underline, Some(column), "{rendered}");
    let json = diagnostics.to_json().to_string();
    assert!(json.len() < 2_000, "{} bytes of JSON", json.len());
}

#[test]
fn every_code_is_documented() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/diagnostics.md"))
        .expect("docs/diagnostics.md exists");
    for code in Code::ALL {
        assert!(
            doc.contains(&format!("`{}`", code.as_str())),
            "{} is missing from docs/diagnostics.md",
            code.as_str()
        );
    }
}

#[test]
fn shipped_examples_are_valid() {
    let examples = workspace_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/ exists") {
        let spec = entry.expect("entry").path().join("portolan.yaml");
        if !spec.exists() {
            continue;
        }
        let source = SourceFile::read(&spec).expect("readable");
        if let Err(diagnostics) = load_spec(source) {
            panic!(
                "{} is invalid:\n{}",
                spec.display(),
                render_diagnostics(&diagnostics, RenderStyle::Plain)
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "expected both seed examples, found {checked}");
}

#[test]
fn schema_describes_the_top_level_keys() {
    let schema: serde_json::Value =
        serde_json::from_str(&portolan_spec::schema::spec_schema()).expect("schema is JSON");
    let properties = schema["properties"].as_object().expect("properties");
    for key in [
        "portolan",
        "system",
        "components",
        "externals",
        "features",
        "parameters",
        "flows",
    ] {
        assert!(properties.contains_key(key), "schema lacks {key}");
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
}
