//! What the lab removes before a run (issue 9, rows 2 and 3): only the
//! namespaces a dead run recorded as its own and with no process inside;
//! never a namespace merely named `ptl-*`; and a Ctrl-C in the first
//! milliseconds leaves no lock file.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{example, lab_available, namespaces_of, nix_kill, portolan, start_run, tiny_spec};

/// A named namespace made by hand (`ip netns add`), deleted on drop.
struct HandMade(String);

impl HandMade {
    fn add(name: &str) -> Self {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip runs");
        assert!(status.success(), "ip netns add {name}");
        HandMade(name.to_owned())
    }
}

impl Drop for HandMade {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Kills (SIGKILL) and reaps the process on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep 60` inside the named namespace: a process that keeps it in use.
fn process_inside(namespace: &str) -> Reaped {
    Reaped(
        Command::new("ip")
            .args(["netns", "exec", namespace, "sleep", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ip netns exec runs"),
    )
}

fn exists(namespace: &str) -> bool {
    Path::new(portolan_lab::NETNS_DIR).join(namespace).exists()
}

fn lab_run(spec: &Path) -> std::process::Output {
    portolan().arg("lab").arg(spec).output().expect("runs")
}

/// Row 2: a namespace named like a lab's but made by hand, and one with a
/// process inside, survive a lab run; the run says it left them alone.
#[test]
fn a_namespace_only_named_like_a_lab_s_survives_a_run() {
    if !lab_available("a_namespace_only_named_like_a_lab_s_survives_a_run") {
        return;
    }
    let id = std::process::id() % 100_000;
    let mine = HandMade::add(&format!("ptl-mine{id}"));
    let busy = HandMade::add(&format!("ptl-inuse{id}"));
    let _inside = process_inside(&busy.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lab_run(&tiny_spec(dir.path()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(exists(&mine.0), "{} was deleted: {stderr}", mine.0);
    assert!(exists(&busy.0), "{} was deleted: {stderr}", busy.0);
    assert!(
        stderr.contains(&format!(
            "note: left alone: network namespace {} (no lab recorded it as its own)",
            mine.0
        )),
        "{stderr}"
    );
}

/// Row 2: of a killed run, the namespace someone still has a process in is
/// left (and its run's record kept); the others go. Once the process is
/// gone, the next run removes it.
#[test]
fn a_dead_run_s_namespace_with_a_process_inside_survives_until_it_is_free() {
    if !lab_available("a_dead_run_s_namespace_with_a_process_inside_survives_until_it_is_free") {
        return;
    }
    let run = format!("ptl-busy{}", std::process::id() % 100_000);
    let mut lab = start_run(&run);
    let namespaces = namespaces_of(&run);
    let busy = namespaces
        .iter()
        .find(|n| !n.ends_with("-bridge"))
        .expect("a host namespace")
        .clone();
    let inside = process_inside(&busy);
    lab.kill().expect("SIGKILL");
    lab.wait().expect("reaped");

    let dir = tempfile::tempdir().expect("tempdir");
    let tiny = tiny_spec(dir.path());
    let out = lab_run(&tiny);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(namespaces_of(&run), vec![busy.clone()], "{stderr}");
    assert!(
        stderr.contains(&format!(
            "left alone: network namespace {busy} (an earlier run's, with a process still inside)"
        )),
        "{stderr}"
    );
    let lock = Path::new(portolan_lab::LOCK_DIR).join(format!("{run}.lock"));
    assert!(lock.exists(), "the record is kept while the namespace is");

    drop(inside);
    let out = lab_run(&tiny);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(namespaces_of(&run).is_empty(), "{:?}", namespaces_of(&run));
    assert!(!lock.exists());
}

/// Row 3: SIGINT at many moments of a run's first milliseconds (40 runs,
/// each bounded): every run leaves neither its lock file nor a namespace.
#[test]
fn an_early_ctrl_c_leaves_no_lock_file() {
    if !lab_available("an_early_ctrl_c_leaves_no_lock_file") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = example("circonus-inside");
    let id = std::process::id() % 100_000;
    let mut leaks = Vec::new();
    for attempt in 0..40u64 {
        let run = format!("ptl-e{id}x{attempt}");
        let child = portolan()
            .arg("lab")
            .arg(&spec)
            .args(["--run-id", &run])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let mut child = Reaped(child);
        // 0 to 78 ms: before, during and after the lock is taken.
        std::thread::sleep(Duration::from_micros(attempt * 2000));
        nix_kill(child.0.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.0.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "run {run} did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let lock = Path::new(portolan_lab::LOCK_DIR).join(format!("{run}.lock"));
        if lock.exists() || !namespaces_of(&run).is_empty() {
            leaks.push(format!(
                "{run} (after {} ms): lock file {}, namespaces {:?}",
                attempt * 2,
                lock.exists(),
                namespaces_of(&run)
            ));
            // Leave nothing behind for the next test.
            let _ = portolan_lab::cleanup_stale(&run);
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}
