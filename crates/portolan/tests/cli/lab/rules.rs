//! `portolan lab -d DEPLOYMENT --rules DIR`: a person's rulesets (here:
//! generated, then edited) proven in the lab; bad directories refused
//! before anything is loaded.

use std::path::Path;
use std::process::Output;

use super::{lab_available, namespaces_of, portolan, root};

const SPEC: &str = "examples/circonus-inside/portolan.yaml";
const DEPLOYMENT: &str = "examples/circonus-inside/deployment.yaml";

/// `portolan generate -t TARGET` for the Circonus deployment into `dir`.
fn generate(target: &str, dir: &Path) {
    let out = portolan()
        .arg("generate")
        .arg(root().join(SPEC))
        .arg("-d")
        .arg(root().join(DEPLOYMENT))
        .args(["-t", target, "-o"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The run id of one of this file's runs, unique to this test process: two
/// test suites on one machine (two checkouts) ran the same fixed ids at
/// once and one of them failed with "in use by a live lab".
fn run_id(name: &str) -> String {
    format!("{name}-{}", std::process::id() % 100_000)
}

fn lab_with_rules(dir: &Path, run: &str) -> Output {
    let run = run_id(run);
    portolan()
        .arg("lab")
        .arg(root().join(SPEC))
        .arg("-d")
        .arg(root().join(DEPLOYMENT))
        .arg("--rules")
        .arg(dir)
        .args(["--run-id", run.as_str()])
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_edited_ruleset_fails_on_the_flow_whose_accept_was_deleted() {
    if !lab_available("an_edited_ruleset_fails_on_the_flow_whose_accept_was_deleted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    generate("nftables", dir.path());
    // As generated: every check holds.
    let out = lab_with_rules(dir.path(), "ptl-rules1");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // Without the accept of api->web-db: exactly that flow fails, decided
    // by the input policy of the web-db hosts.
    let file = dir.path().join("web-db.nft");
    let edited: String = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("comment \"api->web-db/tcp/5432\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, edited).unwrap();
    let out = lab_with_rules(dir.path(), "ptl-rules2");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  ✗ ")).collect();
    assert_eq!(
        failures.len(),
        4,
        "two web-db machines, two families:\n{stdout}"
    );
    for line in failures {
        assert!(line.contains("api->web-db/tcp/5432"), "{line}");
        assert!(
            line.contains("dropped by policy drop of chain input of table inet portolan"),
            "{line}"
        );
    }
}

#[test]
fn iptables_files_and_a_ruleset_that_drops_everything() {
    if !lab_available("iptables_files_and_a_ruleset_that_drops_everything") {
        return;
    }
    if portolan_test_support::which("iptables-restore").is_none() {
        panic!("iptables-restore is missing (Debian package iptables; .ci/run installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    generate("iptables", dir.path());
    // A host that drops all its traffic both ways, the lab's probes and
    // their answers included: the run ends (bounded) and names the drops.
    let wall = "table inet wall {\n  chain i { type filter hook input priority 0; policy drop; }\n  chain o { type filter hook output priority 0; policy drop; }\n}\n";
    std::fs::remove_file(dir.path().join("mq.rules.v4")).unwrap();
    std::fs::remove_file(dir.path().join("mq.rules.v6")).unwrap();
    std::fs::write(dir.path().join("mq.nft"), wall).unwrap();
    let out = lab_with_rules(dir.path(), "ptl-rules3");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  ✗ ")).collect();
    assert!(!failures.is_empty(), "{stdout}");
    for line in &failures {
        assert!(line.contains("mq"), "only mq's flows fail: {line}");
        assert!(
            line.contains("of table inet wall on host mq-"),
            "the wall is named: {line}"
        );
    }
}

#[test]
fn bad_directories_are_refused_and_nothing_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    generate("nftables", dir.path());
    // A file for a host the deployment does not have, and a host without one.
    std::fs::rename(dir.path().join("api.nft"), dir.path().join("apx.nft")).unwrap();
    let out = lab_with_rules(dir.path(), "ptl-rules4");
    let (_, stderr) = text(&out);
    if out.status.code() == Some(2) {
        assert!(!lab_available(
            "bad_directories_are_refused_and_nothing_is_loaded"
        ));
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("files for hosts the deployment does not have: apx.nft"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hosts without a ruleset: api (expected api.nft"),
        "{stderr}"
    );
    std::fs::rename(dir.path().join("apx.nft"), dir.path().join("api.nft")).unwrap();

    // A file nft rejects: exit 1 naming the file and nft's message.
    let bad = dir.path().join("ca.nft");
    let mut content = std::fs::read_to_string(&bad).unwrap();
    content.push_str("table inet typo {\n  chain c {\n    tcp dport 80 acccept\n  }\n}\n");
    std::fs::write(&bad, content).unwrap();
    let out = lab_with_rules(dir.path(), "ptl-rules5");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: nft refuses it", bad.display())),
        "{stderr}"
    );
    assert!(stderr.contains("Error: syntax error"), "{stderr}");
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    assert!(
        namespaces_of(&run_id("ptl-rules5")).is_empty(),
        "the lab is gone"
    );

    // Other files are no rulesets.
    std::fs::write(dir.path().join("notes.txt"), "").unwrap();
    let out = lab_with_rules(dir.path(), "ptl-rules6");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("notes.txt: not a ruleset file name"),
        "{stderr}"
    );
}
