//! End-to-end tests of the `portolan` binary: help texts (snapshots), exit
//! codes, and that failures leave no partial output behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn portolan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portolan"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .expect("the portolan binary runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> String {
    root()
        .join("examples")
        .join(name)
        .join("portolan.yaml")
        .display()
        .to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_texts() {
    for args in [
        &["--help"][..],
        &["validate", "--help"],
        &["schema", "--help"],
        &["completions", "--help"],
    ] {
        let output = portolan(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let name = format!("help_{}", args[..args.len() - 1].join("_"));
        let name = if name == "help_" {
            "help".to_owned()
        } else {
            name
        };
        insta::assert_snapshot!(name, stdout(&output));
    }
}

#[test]
fn validate_accepts_the_examples() {
    for name in ["circonus-inside", "spacelift-self-hosted"] {
        let output = portolan(&["validate", &example(name)]);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        assert!(stderr(&output).contains("valid:"), "{}", stderr(&output));
    }
}

#[test]
fn validate_rejects_an_invalid_spec_with_location_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("bad.yaml");
    std::fs::write(
        &spec,
        "portolan: 1\nsystem: {name: X}\ncomponents: [{id: a}]\nflows:\n  - {from: a, to: b, protocol: tcp, port: 1}\n",
    )
    .expect("write");
    let output = portolan(&["validate", spec.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("bad.yaml:5:19"), "{err}");
    assert!(err.contains("spec::unknown-reference"), "{err}");

    let json = portolan(&[
        "validate",
        "--format",
        "json",
        spec.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(json.status.code(), Some(1));
    let items: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON diagnostics");
    assert_eq!(items[0]["code"], "spec::unknown-reference");
    assert_eq!(items[0]["line"], 5);
    assert_eq!(items[0]["column"], 19);
}

#[test]
fn missing_file_and_bad_flags() {
    let output = portolan(&["validate", "/nonexistent/portolan.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("/nonexistent/portolan.yaml"));

    let output = portolan(&["validate", "--frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--frobnicate"));
}

#[test]
fn binary_input_is_rejected_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("binary.yaml");
    std::fs::write(&spec, [0xff, 0xfe, 0x00, 0x01, 0x80]).expect("write");
    let output = portolan(&["validate", spec.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("not UTF-8"), "{}", stderr(&output));
}

#[test]
fn failed_render_leaves_no_output_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("bad.yaml");
    std::fs::write(&spec, "portolan: 1\nsystem: {name: X}\ncomponents: []\n").expect("write");
    let out = dir.path().join("out.md");
    let output = portolan(&[
        "render",
        spec.to_str().expect("utf-8 path"),
        "--format",
        "json",
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        !out.exists(),
        "a failed render must not leave {}",
        out.display()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "only the spec remains: {leftovers:?}");
}

#[test]
fn schema_is_json_and_completions_are_generated() {
    let output = portolan(&["schema"]);
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(schema["title"], "Portolan spec");

    let output = portolan(&["completions", "bash"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("_portolan()"));
}

#[test]
fn render_help() {
    let output = portolan(&["render", "--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!("help_render", stdout(&output));
}

/// Every format renders both examples, to standard output and to a file
/// (`-o`), with the same bytes.
#[test]
fn render_every_format_to_stdout_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["circonus-inside", "spacelift-self-hosted"] {
        for (format, marker) in [
            ("matrix", "| To →<br>↓ From |"),
            ("tables", "### Egress"),
            ("mermaid", "flowchart LR"),
            ("dot", "digraph "),
            ("json", "\"components\""),
        ] {
            let spec = example(name);
            let output = portolan(&["render", &spec, "--format", format]);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{name} {format}: {}",
                stderr(&output)
            );
            assert!(stdout(&output).contains(marker), "{name} {format}");

            let out = dir.path().join(format!("{name}.{format}"));
            let to_file = portolan(&[
                "render",
                &spec,
                "-f",
                format,
                "-o",
                out.to_str().expect("utf-8 path"),
            ]);
            assert_eq!(
                to_file.status.code(),
                Some(0),
                "{name} {format}: {}",
                stderr(&to_file)
            );
            assert!(to_file.stdout.is_empty(), "nothing on stdout with -o");
            let written = std::fs::read(&out).expect("the output file exists");
            assert_eq!(
                written, output.stdout,
                "{name} {format}: file and stdout differ"
            );
        }
    }
}
