//! `portolan apply` for real, in a network namespace the test creates
//! (never the host's own firewall): without confirmation the saved
//! ruleset comes back byte for byte (`nft list ruleset` before and after),
//! also when the applying process is SIGKILLed; `--confirm` keeps the new
//! rules; the lockout guard refuses rules that drop the session's own SSH
//! flow. The same rollback and confirmation on the iptables path
//! (`iptables-save`/`ip6tables-save` before and after). Needs root and nft
//! (and iptables for its tests); skips loudly unless PORTOLAN_REQUIRE_LAB=1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use portolan_test_support::Netns;

const SPEC: &str = "portolan: 1
system: {name: Shop}
components:
  - {id: app}
  - {id: db, kind: dependency}
flows:
  - {from: app, to: db, protocol: tcp, port: 5432}
";

const DEPLOYMENT: &str = "deployment: 1
components:
  app: {addresses: [198.18.0.2]}
  db: {addresses: [198.18.0.1]}
site:
  - {from: 198.18.0.3, protocol: tcp, port: 22, purpose: admin SSH}
";

/// The host's own firewall, written by hand.
const OWN: &str = "table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 9100 accept comment \"host's own: node exporter\"
\t}
}
";

/// A session the new rules admit (from the admin address), and one they drop.
const ADMITTED: &str = "198.18.0.3 40000 198.18.0.1 22";
const CUT: &str = "198.18.0.9 40000 198.18.0.1 22";

struct Ns {
    netns: Netns,
    dir: tempfile::TempDir,
}

impl Ns {
    fn exec(&self, program: &str, args: &[&str]) -> Output {
        self.netns.exec(program, args)
    }

    fn ruleset(&self) -> String {
        let out = self.exec("nft", &["list", "ruleset"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `portolan apply` in the namespace, under an SSH session.
    fn apply(&self, session: &str, extra: &[&str]) -> Command {
        let dir = self.dir.path();
        let mut command = self.netns.command(super::PORTOLAN);
        command
            .arg("apply")
            .arg(dir.join("portolan.yaml"))
            .arg("-d")
            .arg(dir.join("deployment.yaml"))
            .args(["--as", "db", "--confirm-within", "5s", "--state-dir"])
            .arg(self.state())
            .args(extra)
            .env("SSH_CONNECTION", session)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn journal(&self) -> String {
        std::fs::read_to_string(self.state().join("journal.json")).unwrap_or_default()
    }

    /// Waits (bounded) until the journal says `status`.
    fn wait_status(&self, status: &str) {
        let started = Instant::now();
        while !self
            .journal()
            .contains(&format!("\"status\": \"{status}\""))
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never {status}: {}",
                self.journal()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `portolan apply --confirm` for this namespace's state directory.
    fn confirm(&self) -> Output {
        super::portolan_command()
            .args(["apply", "--confirm", "--state-dir"])
            .arg(self.state())
            .output()
            .expect("confirm runs")
    }

    /// Confirms the pending apply `child` (both exit 0), then waits past
    /// its deadline.
    fn confirm_past_deadline(&self, child: Child) {
        let confirm = self.confirm();
        assert_eq!(
            confirm.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&confirm.stderr)
        );
        let out = finish(child);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(6));
    }

    /// Waits (bounded) until `listing` shows `needle`: the new rules are in
    /// force.
    fn wait_in_force(&self, listing: fn(&Self) -> String, needle: &str) {
        let started = Instant::now();
        while !listing(self).contains(needle) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{}",
                listing(self)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn setup(test: &str) -> Option<Ns> {
    if !super::lab_available(test) {
        return None;
    }
    let netns = Netns::create("apply").expect("a namespace");
    let ns = Ns {
        netns,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    std::fs::write(ns.dir.path().join("portolan.yaml"), SPEC).expect("write");
    std::fs::write(ns.dir.path().join("deployment.yaml"), DEPLOYMENT).expect("write");
    let own = ns.dir.path().join("own.nft");
    std::fs::write(&own, OWN).expect("write");
    let out = ns.exec("nft", &["-f", own.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(ns)
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("reaped")
}

#[test]
fn unconfirmed_apply_is_rolled_back_byte_for_byte() {
    let Some(ns) = setup("rollback") else { return };
    let before = ns.ruleset();
    let child = ns.apply(ADMITTED, &[]).spawn().expect("starts");
    ns.wait_status("pending");
    // While pending, the new rules are in force.
    ns.wait_in_force(Ns::ruleset, "table inet portolan");
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("admitted by site:admin-ssh@db"), "{stderr}");
    assert!(stderr.contains("not confirmed in time"), "{stderr}");
    assert_eq!(ns.ruleset(), before, "the saved ruleset, byte for byte");
    let log = std::fs::read_to_string(ns.state().join("apply.log")).expect("log");
    assert!(
        log.contains("listing identical to the saved one: true"),
        "{log}"
    );
}

#[test]
fn a_killed_apply_is_still_rolled_back() {
    let Some(ns) = setup("killed") else { return };
    let before = ns.ruleset();
    let mut child = ns.apply(ADMITTED, &[]).spawn().expect("starts");
    ns.wait_status("pending");
    ns.wait_in_force(Ns::ruleset, "table inet portolan");
    // SIGKILL the applying process (`ip netns exec` execs it, so the pid
    // is portolan's): no handler runs; only the detached guard is left.
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(
        ns.journal().contains("\"status\": \"pending\""),
        "killed before the deadline"
    );
    ns.wait_status("rolled-back");
    assert_eq!(ns.ruleset(), before, "the saved ruleset, byte for byte");
}

#[test]
fn confirmed_apply_keeps_the_rules() {
    let Some(ns) = setup("confirm") else { return };
    let child = ns.apply(ADMITTED, &[]).spawn().expect("starts");
    ns.wait_status("pending");
    ns.confirm_past_deadline(child);
    // Past the deadline, the guard has left the rules alone.
    let ruleset = ns.ruleset();
    assert!(ruleset.contains("table inet portolan"), "{ruleset}");
    assert!(ruleset.contains("host's own: node exporter"), "{ruleset}");
    assert!(ns.journal().contains("\"status\": \"confirmed\""));
    // A second confirm has nothing to confirm: exit 1.
    let again = ns.confirm();
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn the_lockout_guard_refuses_rules_dropping_this_ssh_session() {
    let Some(ns) = setup("lockout") else { return };
    let before = ns.ruleset();
    let out = ns.apply(CUT, &[]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("would cut this SSH session (198.18.0.9 port 40000 -> 198.18.0.1 port 22)"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(ns.ruleset(), before);
    assert!(!Path::new(&ns.state().join("journal.json")).exists());
    // Chain mode drops nothing itself: the same session is not at risk.
    let out = ns.apply(CUT, &["--mode", "chain"]).spawn().expect("starts");
    ns.wait_status("pending");
    let out = finish(out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("chain mode drops nothing itself"),
        "{stderr}"
    );
    assert_eq!(ns.ruleset(), before, "rolled back");
}

/// The apply library says that the rules cut the session, and, forced,
/// that they are applied anyway; the binary names `--force` in both.
#[test]
fn the_lockout_messages_name_the_force_flag() {
    let Some(ns) = setup("force") else { return };
    let out = ns.apply(CUT, &[]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("purpose: admin SSH}`) or use --force; nothing was changed"),
        "{stderr}"
    );
    let child = ns.apply(CUT, &["--force"]).spawn().expect("starts");
    ns.wait_status("pending");
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NO rule admits a new connection; applied anyway (--force)"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- iptables

/// The host's own iptables rules, written by hand (IPv4 and IPv6).
const OWN_V4: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 9100 -m comment --comment \"host own: node exporter\" -j ACCEPT
COMMIT
";
const OWN_V6: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 9100 -j ACCEPT
COMMIT
";

/// The namespace with the host's own iptables rules loaded; `None` (after
/// the loud skip) without iptables.
fn setup_iptables(test: &str) -> Option<Ns> {
    let ns = setup(test)?;
    for (tool, rules, file) in [
        ("iptables-restore", OWN_V4, "own.v4"),
        ("ip6tables-restore", OWN_V6, "own.v6"),
    ] {
        let path = ns.dir.path().join(file);
        std::fs::write(&path, rules).expect("write");
        // `iptables-restore FILE` reads the file itself: no shell needed.
        let out = ns.exec(tool, &[path.to_str().expect("utf-8")]);
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(ns)
}

impl Ns {
    /// `iptables-save` and `ip6tables-save` of the filter table, without
    /// the dated comment lines.
    fn iptables(&self) -> String {
        let mut text = String::new();
        for tool in ["iptables-save", "ip6tables-save"] {
            let out = self.exec(tool, &["-t", "filter"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if !line.starts_with('#') {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

#[test]
fn unconfirmed_iptables_apply_is_rolled_back_byte_for_byte() {
    let Some(ns) = setup_iptables("ipt-rollback") else {
        return;
    };
    let before = ns.iptables();
    assert!(before.contains("host own: node exporter"), "{before}");
    let child = ns
        .apply(ADMITTED, &["--target", "iptables"])
        .spawn()
        .expect("starts");
    ns.wait_status("pending");
    // While pending, the new rules are in force.
    ns.wait_in_force(Ns::iptables, "app->db/tcp/5432");
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not confirmed in time"), "{stderr}");
    assert_eq!(ns.iptables(), before, "the saved rules, byte for byte");
}

#[test]
fn confirmed_iptables_apply_keeps_the_rules() {
    let Some(ns) = setup_iptables("ipt-confirm") else {
        return;
    };
    let before = ns.iptables();
    let child = ns
        .apply(ADMITTED, &["--target", "iptables"])
        .spawn()
        .expect("starts");
    ns.wait_status("pending");
    ns.confirm_past_deadline(child);
    // Past the deadline, the guard has left the rules alone.
    let rules = ns.iptables();
    assert!(rules.contains("app->db/tcp/5432"), "{rules}");
    assert_ne!(rules, before);
    assert!(ns.journal().contains("\"status\": \"confirmed\""));
}
