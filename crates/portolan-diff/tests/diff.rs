//! `portolan diff` on two real versions of a spec: the Spacelift example and
//! its fixture "v2" (tests/fixtures/spacelift-v2: the Postgres port moved
//! from 5432 to 6432, and a new optional feature `metrics` with one flow).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use portolan_diff::render::{render, Format};
use portolan_diff::{compare_plans, spec_change_request, Action, Field, PlanVersion};
use portolan_firewall::{Mode, Options, TargetKind};
use portolan_spec::deployment::{load_deployment, Deployment};
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile, Spec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads a file under the workspace, named as the user would give it.
fn read(path: &str) -> std::sync::Arc<SourceFile> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    SourceFile::new(path, text)
}

fn spec(path: &str) -> Spec {
    load_spec(read(path)).unwrap().value
}

const V1: &str = "examples/spacelift-self-hosted/portolan.yaml";
const V1_DEPLOYMENT: &str = "examples/spacelift-self-hosted/deployment.yaml";
const V2: &str = "crates/portolan-diff/tests/fixtures/spacelift-v2/portolan.yaml";
const V2_DEPLOYMENT: &str = "crates/portolan-diff/tests/fixtures/spacelift-v2/deployment.yaml";

struct Version {
    spec: Spec,
    deployment: Deployment,
    plan: Plan,
}

impl Version {
    fn load(spec_path: &str, deployment_path: &str) -> Self {
        let spec = spec(spec_path);
        let deployment = load_deployment(read(deployment_path), &spec).unwrap().value;
        let plan = plan(&spec, &deployment);
        Self {
            spec,
            deployment,
            plan,
        }
    }

    fn version(&self) -> PlanVersion<'_> {
        PlanVersion {
            spec: &self.spec,
            deployment: &self.deployment.source,
            plan: &self.plan,
        }
    }
}

fn ids(sides: &[portolan_diff::FlowSide]) -> Vec<&str> {
    sides.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn spec_versions_added_removed_changed() {
    let request = spec_change_request(&spec(V1), &spec(V2));
    let flows = &request.flows;
    assert_eq!(ids(&flows.added), ["clients->server/tcp/9090"]);
    assert_eq!(flows.added[0].condition.as_deref(), Some("metrics"));
    assert!(!flows.added[0].required);
    assert!(flows.removed.is_empty(), "{:?}", ids(&flows.removed));
    let changed: Vec<(&str, &str, &str, &[Field])> = flows
        .changed
        .iter()
        .map(|c| {
            (
                c.new.id.as_str(),
                c.old.ports.as_str(),
                c.new.ports.as_str(),
                c.fields.as_slice(),
            )
        })
        .collect();
    let postgres = |from| {
        (
            from,
            "5432 ($postgres-port)",
            "6432 ($postgres-port)",
            &[Field::Ports][..],
        )
    };
    assert_eq!(
        changed,
        [
            postgres("server->postgres/tcp/$postgres-port"),
            postgres("drain->postgres/tcp/$postgres-port"),
            postgres("scheduler->postgres/tcp/$postgres-port"),
        ]
    );
    assert!(!request.is_empty());
    insta::assert_snapshot!("spec_markdown", render(&request, Format::Markdown));
    insta::assert_snapshot!("spec_csv", render(&request, Format::Csv));
}

#[test]
fn a_version_against_itself_changes_nothing() {
    let request = spec_change_request(&spec(V1), &spec(V1));
    assert!(request.is_empty());
    let v1 = Version::load(V1, V1_DEPLOYMENT);
    for target in [TargetKind::Nftables, TargetKind::Iptables] {
        let request =
            compare_plans(v1.version(), v1.version(), target, &Options::default()).unwrap();
        assert!(request.is_empty(), "{target}: {request:?}");
    }
}

/// The generated files of a plan, concatenated.
fn generated(plan: &Plan, target: TargetKind) -> String {
    target
        .target()
        .generate(plan, &Options::default())
        .unwrap()
        .files
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

#[test]
fn plan_versions_with_commands_per_host() {
    let (v1, v2) = (
        Version::load(V1, V1_DEPLOYMENT),
        Version::load(V2, V2_DEPLOYMENT),
    );
    for target in [TargetKind::Nftables, TargetKind::Iptables] {
        let request =
            compare_plans(v1.version(), v2.version(), target, &Options::default()).unwrap();
        let flows = &request.flows;
        assert_eq!(ids(&flows.added), ["clients->server/tcp/9090"]);
        assert_eq!(flows.added[0].source, ["any"]);
        assert_eq!(flows.added[0].destination, ["192.0.2.10", "2001:db8:5::10"]);
        assert!(flows.removed.is_empty());
        let changed: Vec<(&str, &str, &str)> = flows
            .changed
            .iter()
            .map(|c| {
                (
                    c.old.id.as_str(),
                    c.old.ports.as_str(),
                    c.new.ports.as_str(),
                )
            })
            .collect();
        assert_eq!(
            changed,
            [
                ("server->postgres/tcp/$postgres-port", "5433", "6432"),
                ("drain->postgres/tcp/$postgres-port", "5433", "6432"),
                ("scheduler->postgres/tcp/$postgres-port", "5433", "6432"),
            ]
        );
        let hosts: Vec<&str> = request.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(
            hosts,
            ["server", "drain", "scheduler", "postgres"],
            "{target}"
        );

        // Every rule added is one `generate` writes for v2, every rule
        // removed one it writes for v1, as written.
        let (old, new) = (generated(&v1.plan, target), generated(&v2.plan, target));
        for command in request.hosts.iter().flat_map(|h| &h.commands) {
            if command.action == Action::AddRule {
                assert!(new.contains(&command.text), "{}", command.text);
                assert!(!old.contains(&command.text), "{}", command.text);
            }
            if command.action == Action::DeleteRule {
                assert!(old.contains(&command.text), "{}", command.text);
                assert!(!new.contains(&command.text), "{}", command.text);
            }
        }
        let name = target.as_str();
        insta::assert_snapshot!(
            format!("plan_{name}_markdown"),
            render(&request, Format::Markdown)
        );
        insta::assert_snapshot!(format!("plan_{name}_csv"), render(&request, Format::Csv));
    }
}

// ------------------------------------------------ the commands, for real

/// Whether the kernel test can run here: root, `unshare` and the tools. A
/// skip is loud, and a failure under `PORTOLAN_REQUIRE_LAB=1` (CI).
fn kernel_available(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .chain(["unshare"])
        .filter(|t| !portolan_test_support::installed(t))
        .collect();
    let root = nix_is_root();
    if missing.is_empty() && root {
        return true;
    }
    portolan_test_support::skip(
        "the diff kernel test",
        &format!("it needs root and {tools:?} (root: {root}, missing: {missing:?})"),
    );
    false
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a shell script in a new, empty network namespace (`unshare -n`:
/// it and its rules vanish with the process; nothing of the host's is
/// touched) and returns its standard output, its lines sorted.
fn in_namespace(dir: &Path, script: &str) -> Vec<String> {
    let output = std::process::Command::new("unshare")
        .args(["-n", "sh", "-e", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "script failed:\n{script}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        // iptables-save's dated comments.
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Writes the generated files of a plan into `dir/prefix-NAME`.
fn write_files(dir: &Path, prefix: &str, plan: &Plan, target: TargetKind, options: &Options) {
    for (path, text) in target.target().generate(plan, options).unwrap().files {
        std::fs::write(dir.join(format!("{prefix}-{}", path.display())), text).unwrap();
    }
}

#[test]
fn the_commands_turn_the_old_ruleset_into_the_new_in_a_kernel() {
    let (v1, v2) = (
        Version::load(V1, V1_DEPLOYMENT),
        Version::load(V2, V2_DEPLOYMENT),
    );
    for (target, tools) in [
        (TargetKind::Nftables, &["nft"][..]),
        (
            TargetKind::Iptables,
            &["iptables-restore", "ip6tables-restore", "iptables-save"][..],
        ),
    ] {
        if !kernel_available(tools) {
            return;
        }
        for mode in [Mode::Standalone, Mode::Chain, Mode::Audit] {
            let options = Options {
                mode,
                ..Options::default()
            };
            old_plus_commands_is_new(&v1, &v2, target, &options);
        }
    }
}

/// Loads the old rules of each host that changes into a fresh namespace,
/// runs the host's commands, and compares the ruleset with the new rules
/// loaded into another.
fn old_plus_commands_is_new(v1: &Version, v2: &Version, target: TargetKind, options: &Options) {
    let mode = options.mode;
    let request = compare_plans(v1.version(), v2.version(), target, options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), "old", &v1.plan, target, options);
    write_files(dir.path(), "new", &v2.plan, target, options);
    assert!(!request.hosts.is_empty());
    // Chain and audit files fill user chains (`--noflush`).
    let noflush = if mode == Mode::Standalone {
        ""
    } else {
        " --noflush"
    };
    let list = match target {
        TargetKind::Nftables => "nft list ruleset\n",
        // Counters aside.
        _ => "iptables-save -t filter | sed 's/\\[[0-9]*:[0-9]*\\]//'\nip6tables-save -t filter | sed 's/\\[[0-9]*:[0-9]*\\]//'\n",
    };
    for host in &request.hosts {
        let name = &host.host;
        let load = |v: &str| {
            match target {
            TargetKind::Nftables => format!("nft -f {v}-{name}.nft\n"),
            _ => format!(
                "iptables-restore{noflush} < {v}-{name}.rules.v4\nip6tables-restore{noflush} < {v}-{name}.rules.v6\n"
            ),
        }
        };
        let commands: String = host
            .commands
            .iter()
            .flat_map(|c| &c.shell)
            .map(|line| format!("{line}\n"))
            .collect();
        let changed = in_namespace(dir.path(), &format!("{}{commands}{list}", load("old")));
        let fresh = in_namespace(dir.path(), &format!("{}{list}", load("new")));
        let before = in_namespace(dir.path(), &format!("{}{list}", load("old")));
        assert_ne!(
            before, fresh,
            "{target} {mode:?} {name}: the versions differ"
        );
        assert_eq!(
            changed, fresh,
            "{target} {mode:?} {name}: old + commands = new"
        );
    }
}
