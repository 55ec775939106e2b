//! Helpers the integration tests of every crate share, so that they cannot
//! drift apart: how a test that needs root, network namespaces or a tool
//! skips (loudly) or fails (under `PORTOLAN_REQUIRE_LAB=1`, as CI runs),
//! where the workspace's examples are, and a network namespace the test
//! owns.
//!
//! A dev-dependency only: nothing here is part of Portolan.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The variable that turns every skip into a failure (CI sets it to `1`).
pub const REQUIRE_ENV: &str = "PORTOLAN_REQUIRE_LAB";

/// Where a system tool may be installed.
const TOOL_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// `nft` and its Debian package: what a lab that loads rules needs.
pub const NFT: (&str, &str) = ("nft", "nftables");

/// Whether skips are failures (`PORTOLAN_REQUIRE_LAB=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).as_deref() == Ok("1")
}

/// A banner straight to the process's standard error, which the test
/// harness does not capture (unlike `eprintln!`), so that a skip is seen.
pub fn loud(message: &str) {
    let bar = "!".repeat(78);
    let _ = writeln!(std::io::stderr(), "\n{bar}\n!!! {message}\n{bar}\n");
}

/// `test` cannot run here because of `why`: a loud banner, or a panic under
/// `PORTOLAN_REQUIRE_LAB=1`.
pub fn skip(test: &str, why: &str) {
    assert!(
        !required(),
        "{test}: {REQUIRE_ENV}=1 but the test cannot run: {why}"
    );
    loud(&format!(
        "SKIPPED {test}: {why}\n!!! Set {REQUIRE_ENV}=1 to make this a failure instead of a skip."
    ));
}

/// Where `program` is installed among the system's tool directories.
pub fn which(program: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.exists())
}

/// Whether `program` is installed in one of the system's tool directories.
pub fn installed(program: &str) -> bool {
    which(program).is_some()
}

/// Whether the lab can run here: the privileges (the caller passes
/// `portolan_lab::check_privileges()`, which this crate does not depend on)
/// and `nft`. Otherwise [`skip`] and `false`.
pub fn lab_available(test: &str, privileges: Result<(), impl Display>) -> bool {
    lab_available_with(test, privileges, &[NFT])
}

/// Whether namespaces can be made here (`privileges`, as for
/// [`lab_available`]) and every one of `tools` (a program and the Debian
/// package that installs it) is installed. Otherwise [`skip`] and `false`.
pub fn lab_available_with(
    test: &str,
    privileges: Result<(), impl Display>,
    tools: &[(&str, &str)],
) -> bool {
    let why = match privileges {
        Err(e) => format!("network-namespace tests need root: {e}"),
        Ok(()) => match tools.iter().find(|(program, _)| !installed(program)) {
            None => return true,
            Some((program, package)) => {
                format!("`{program}` is not installed (Debian package {package})")
            }
        },
    };
    skip(test, &why);
    false
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The spec of the example `name` (`examples/NAME/portolan.yaml`).
pub fn example_spec(name: &str) -> PathBuf {
    workspace_root()
        .join("examples")
        .join(name)
        .join("portolan.yaml")
}

/// A command's standard output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A network namespace the test made; deleted (by its own name, which no
/// one else uses) on drop, panics included.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace `portolan-TAG-PID-N` (N counts this process's
    /// namespaces), its loopback down as the kernel makes it; or why `ip
    /// netns add` could not make it.
    pub fn create(tag: &str) -> Result<Self, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "portolan-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run `ip`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`ip netns add` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { name })
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME PROGRAM`, still to be configured.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `program ARGS` in the namespace to its end.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {program}: {e}"))
    }

    /// Runs `program ARGS` in the namespace with `input` on its standard
    /// input.
    pub fn exec_with_input(&self, program: &str, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("ip netns exec {program}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Runs `f` on a thread that has entered the namespace (the sockets it
    /// opens live there); its panic is the caller's.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(&path).expect("open the namespace");
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .expect("enter the namespace");
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_does_not_exist_is_not_installed() {
        assert!(!installed("portolan-no-such-tool"));
        assert!(installed("sh"));
        assert!(which("sh").is_some_and(|p| p.ends_with("sh")));
    }

    /// `check` skips (returns `false`), or fails under
    /// `PORTOLAN_REQUIRE_LAB=1`.
    fn assert_skips_or_fails(check: impl FnOnce() -> bool + std::panic::UnwindSafe) {
        match std::panic::catch_unwind(check) {
            Ok(available) => {
                assert!(!required());
                assert!(!available);
            }
            Err(_) => assert!(required()),
        }
    }

    #[test]
    fn missing_privileges_skip_or_fail_by_the_variable() {
        assert_skips_or_fails(|| lab_available_with("t", Err("not root"), &[]));
    }

    #[test]
    fn a_missing_tool_skips_or_fails_by_the_variable() {
        assert_skips_or_fails(|| {
            lab_available_with(
                "t",
                Ok::<(), &str>(()),
                &[("portolan-no-such-tool", "none")],
            )
        });
    }

    #[test]
    fn privileges_and_tools_present_is_available() {
        assert!(lab_available_with(
            "t",
            Ok::<(), &str>(()),
            &[("sh", "dash")]
        ));
    }

    #[test]
    fn the_examples_are_found() {
        assert!(example_spec("circonus-inside").is_file());
    }
}
