//! `portolan diff`: exit codes as diff(1), `-o` written whole, invalid
//! input refused with its diagnostics and nothing written, flag misuse
//! exit 2.

use super::{dir_with, portolan, root, stderr, stdout};

fn path(relative: &str) -> String {
    root().join(relative).display().to_string()
}

const V1: &str = "examples/spacelift-self-hosted/portolan.yaml";
const V1_DEPLOYMENT: &str = "examples/spacelift-self-hosted/deployment.yaml";
const V2: &str = "crates/portolan-diff/tests/fixtures/spacelift-v2/portolan.yaml";
const V2_DEPLOYMENT: &str = "crates/portolan-diff/tests/fixtures/spacelift-v2/deployment.yaml";

#[test]
fn exit_0_when_nothing_changes_and_1_when_something_does() {
    let same = portolan(&["diff", &path(V1), &path(V1)]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert!(stdout(&same).contains("0 flow(s) added, 0 removed, 0 changed"));

    let changed = portolan(&["diff", &path(V1), &path(V2), "-f", "json"]);
    assert_eq!(changed.status.code(), Some(1), "{}", stderr(&changed));
    let json: serde_json::Value = serde_json::from_slice(&changed.stdout).expect("JSON");
    assert_eq!(json["flows"]["added"][0]["id"], "clients->server/tcp/9090");
    assert_eq!(json["flows"]["changed"].as_array().map(Vec::len), Some(3));
}

#[test]
fn with_deployments_the_commands_are_written_to_the_output_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("change.csv");
    let output = portolan(&[
        "diff",
        &path(V1),
        &path(V2),
        "-d",
        &path(V1_DEPLOYMENT),
        "-d",
        &path(V2_DEPLOYMENT),
        "--target",
        "iptables",
        "-f",
        "csv",
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
    let csv = std::fs::read_to_string(&out).expect("written");
    assert!(csv.starts_with("change,flow,"), "{csv}");
    assert!(
        csv.contains("iptables -A INPUT -s 192.0.2.10/32 -p tcp -m tcp --dport 6432"),
        "{csv}"
    );
    // The same deployment for both: OLD's postgres-port (5433) holds in
    // both, so only the metrics flow would differ, and it is off in it.
    let same = portolan(&["diff", &path(V1), &path(V2), "-d", &path(V1_DEPLOYMENT)]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    // Its warning (no DNS flow) is the same against both versions: once.
    assert_eq!(
        stderr(&same).matches("deployment::no-dns-flow").count(),
        1,
        "{}",
        stderr(&same)
    );
}

#[test]
fn invalid_input_is_exit_1_with_diagnostics_and_nothing_written() {
    let (dir, bad) = dir_with(
        "bad.yaml",
        "portolan: 1\nsystem: {name: X}\ncomponents: [{id: A}]\n",
    );
    let out = dir.path().join("out.md");
    let output = portolan(&[
        "diff",
        &path(V1),
        bad.to_str().expect("utf-8"),
        "-f",
        "markdown",
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("bad.yaml:3:19"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists(), "nothing written");
    // The v2 deployment enables `metrics`, which v1 does not know.
    let output = portolan(&["diff", &path(V1), &path(V2), "-d", &path(V2_DEPLOYMENT)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("metrics"), "{}", stderr(&output));
}

#[test]
fn flag_misuse_is_exit_2() {
    let d = path(V1_DEPLOYMENT);
    for args in [
        vec!["diff", V1, V2, "-d", &d, "-d", &d, "-d", &d],
        vec!["diff", V1, V2, "--target", "iptables"],
        vec!["diff", V1, V2, "--mode", "chain"],
        vec!["diff", V1, V2, "-f", "pdf"],
        vec!["diff", V1],
    ] {
        let output = portolan(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}
