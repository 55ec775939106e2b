//! `portolan lab` end to end as a user runs it: the reports it writes and
//! its exit codes, without root, the user's own rulesets (`--rules`), and
//! cleanup after Ctrl-C and SIGKILL. (What `run_lab` itself proves is
//! tested beside the lab crate, in `crates/portolan-lab/tests/lab/`.)
//!
//! They need root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and `nft`. Without them
//! each test prints a loud SKIPPED banner and passes, unless
//! `PORTOLAN_REQUIRE_LAB=1`, where it fails. Traffic only flows between the
//! namespaces the lab creates, on lab-only addresses.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portolan_lab::RunId;
use portolan_test_support::{example_spec as example, loud, which};

mod cleanup;
mod deployment;
mod rules;

use super::{lab_available, portolan_command as portolan, root};

/// The namespaces of lab run `run` that exist now.
fn namespaces_of(run: &str) -> Vec<String> {
    portolan_lab::netns::list_named(&format!("{run}-")).expect("list /run/netns")
}

/// A spec of two components and one flow, written into `dir`.
fn tiny_spec(dir: &Path) -> PathBuf {
    let tiny = dir.join("tiny.yaml");
    std::fs::write(
        &tiny,
        "portolan: 1\nsystem: {name: Tiny}\ncomponents: [{id: a}, {id: b}]\nflows: [{from: a, to: b, protocol: tcp, port: 80}]\n",
    )
    .expect("write spec");
    tiny
}

#[test]
fn cli_reports_json_and_junit_and_exits_by_verdict() {
    if !lab_available("cli_reports_json_and_junit_and_exits_by_verdict") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("lab.xml");
    let out = portolan()
        .arg("lab")
        .arg(example("spacelift-self-hosted"))
        .args(["--features", "sqs,kms", "--format", "junit", "-o"])
        .arg(&junit)
        .arg("--keep-dir")
        .arg(dir.path().join("kept"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Connection matrix"), "{stdout}");
    assert!(stdout.contains("Result: every check holds."), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains("<testsuite name=\"portolan lab: from server\""),
        "{xml}"
    );
    assert!(xml.contains("failures=\"0\""));
    let kept = dir.path().join("kept");
    let deployment =
        std::fs::read_to_string(kept.join("lab-deployment.yaml")).expect("deployment kept");
    assert!(
        deployment.contains("features:\n  - \"sqs\"\n  - \"kms\"\n"),
        "{deployment}"
    );
    assert!(kept.join("server.nft").exists());
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(kept.join("lab-report.json")).expect("report kept"),
    )
    .expect("json");
    assert_eq!(json["summary"]["failed"], 0);

    // An unknown feature is invalid input: exit 1, with a suggestion.
    let out = portolan()
        .arg("lab")
        .arg(example("spacelift-self-hosted"))
        .args(["--features", "sq"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean `sqs`?"), "{stderr}");
}

#[test]
fn cli_without_root_runs_in_a_user_namespace_or_says_what_is_missing() {
    if !lab_available("cli_without_root_runs_in_a_user_namespace_or_says_what_is_missing") {
        return;
    }
    let Some(setpriv) = which("setpriv") else {
        loud("SKIPPED cli_without_root…: setpriv (util-linux) is not installed");
        return;
    };
    let as_nobody = |extra: &[&str]| {
        Command::new(&setpriv)
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(super::PORTOLAN)
            .arg("lab")
            .arg(example("spacelift-self-hosted"))
            .args(extra)
            .output()
            .expect("runs")
    };
    // Refusing the user namespace: the message names what is missing.
    let out = as_nobody(&["--no-user-namespace"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_ADMIN") && stderr.contains("root"),
        "{stderr}"
    );
    // By default an unprivileged user gets a private user namespace, where
    // the machine allows it.
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .is_ok_and(|n| n.trim() != "0");
    if !userns {
        loud("SKIPPED the user-namespace half: user.max_user_namespaces is 0");
        return;
    }
    let out = as_nobody(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && stderr.contains("refuses") {
        loud(&format!("SKIPPED the user-namespace half: {stderr}"));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("private user and network namespace"),
        "{stderr}"
    );
    assert!(stdout.contains("Result: every check holds."), "{stdout}");
}

/// Starts `portolan lab` on Circonus with a known run id and waits until its
/// namespaces exist.
fn start_run(run: &str) -> std::process::Child {
    let child = portolan()
        .arg("lab")
        .arg(example("circonus-inside"))
        .args(["--all-features", "--replicas", "2", "--run-id", run])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let started = Instant::now();
    while namespaces_of(run).len() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never created its namespaces"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn a_killed_run_leaves_nothing_after_the_next_run() {
    if !lab_available("a_killed_run_leaves_nothing_after_the_next_run") {
        return;
    }
    let run = format!("ptl-kill{}", std::process::id() % 100_000);
    let mut child = start_run(&run);
    // SIGKILL: no handler runs, the namespaces stay behind.
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reaped");
    assert!(!status.success());
    let left = namespaces_of(&run);
    assert!(!left.is_empty(), "SIGKILL came too late to leave anything");

    // The next run (any spec) removes them first.
    let dir = tempfile::tempdir().expect("tempdir");
    let tiny = tiny_spec(dir.path());
    let out = portolan().arg("lab").arg(&tiny).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("removed a leftover of an earlier lab run: {run}-")),
        "{stderr}"
    );
    assert_torn_down(&run);
}

#[test]
fn ctrl_c_tears_the_lab_down() {
    if !lab_available("ctrl_c_tears_the_lab_down") {
        return;
    }
    let run = format!("ptl-int{}", std::process::id() % 100_000);
    let child = start_run(&run);
    nix_kill(child.id(), "INT");
    let out = child.wait_with_output().expect("reaped");
    assert_eq!(out.status.code(), Some(130));
    assert_torn_down(&run);
    let _ = RunId::new(run).expect("valid run id");
}

/// Nothing of lab run `run` is left: no namespace, no lock file.
fn assert_torn_down(run: &str) {
    assert!(
        namespaces_of(run).is_empty(),
        "left: {:?}",
        namespaces_of(run)
    );
    assert!(!Path::new(portolan_lab::LOCK_DIR)
        .join(format!("{run}.lock"))
        .exists());
}

fn nix_kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Regression: the lab holds about 60 descriptors per host, and under the
/// soft limit of an ordinary shell (1,024) a spec of some 16 hosts ended
/// with "Too many open files" although the hard limit allowed far more.
/// The lab now raises its soft limit to the hard one. Circonus (14 hosts,
/// about 850 descriptors) under a soft limit of 256 must hold.
#[test]
fn a_low_soft_limit_of_open_files_is_raised() {
    if !lab_available("a_low_soft_limit_of_open_files_is_raised") {
        return;
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -Sn 256 && exec "$0" lab "$1""#)
        .arg(env!("CARGO_BIN_EXE_portolan"))
        .arg(example("circonus-inside"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("every check holds"), "{stdout}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
}
