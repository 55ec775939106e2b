//! End-to-end tests of the `portolan` binary: help texts (snapshots), exit
//! codes, and that failures leave no partial output behind.

// One integration-test binary for the whole command line: each module
// drives `portolan` as a user would, for one area.
mod apply;
mod diff;
mod fleet;
mod lab;
mod output;
mod preflight;
mod verify;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary under test.
const PORTOLAN: &str = env!("CARGO_BIN_EXE_portolan");

/// `portolan` as a command still to be configured (environment, standard
/// input, spawn).
fn portolan_command() -> Command {
    Command::new(PORTOLAN)
}

/// Whether the lab can run here (root and `nft`); a loud skip, or a failure
/// under `PORTOLAN_REQUIRE_LAB=1`, when it cannot.
fn lab_available(test: &str) -> bool {
    portolan_test_support::lab_available(test, portolan_lab::check_privileges())
}

/// `portolan ARGS` run to its end, without colours and 100 columns wide (as
/// the snapshots are).
fn portolan(args: &[&str]) -> Output {
    portolan_command()
        .args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .expect("the portolan binary runs")
}

fn root() -> PathBuf {
    portolan_test_support::workspace_root()
}

/// The example's spec path, as an argument.
fn example(name: &str) -> String {
    portolan_test_support::example_spec(name)
        .display()
        .to_string()
}

/// A new directory holding the file `name` with `content`: the directory
/// (removed when dropped) and the file's path.
fn dir_with(name: &str, content: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write");
    (dir, path)
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
        &["import", "--help"],
        &["lab", "--help"],
        &["listen", "--help"],
        &["check", "--help"],
        &["report", "--help"],
        &["preflight", "--help"],
        &["diff", "--help"],
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
    let (_dir, spec) = dir_with("bad.yaml", "portolan: 1\nsystem: {name: X}\ncomponents: [{id: a}]\nflows:\n  - {from: a, to: b, protocol: tcp, port: 1}\n");
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
    // `-f` as in render, plan, check, report and lab.
    let short = portolan(&["validate", "-f", "json", spec.to_str().expect("utf-8 path")]);
    assert_eq!(short.status.code(), Some(1), "{}", stderr(&short));
    assert_eq!(short.stdout, json.stdout);
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

/// `portolan generate SPEC -d DEPLOYMENT ARGS`, as [`portolan`] runs it.
fn generate(spec: &str, deployment: &str, args: &[&str]) -> Output {
    let mut all = vec!["generate", spec, "-d", deployment];
    all.extend_from_slice(args);
    portolan(&all)
}

fn deployment_of(name: &str) -> String {
    root()
        .join("examples")
        .join(name)
        .join("deployment.yaml")
        .display()
        .to_string()
}

#[test]
fn help_texts_of_plan_and_generate() {
    for command in ["plan", "generate", "apply"] {
        let output = portolan(&[command, "--help"]);
        assert!(output.status.success(), "{command}: {}", stderr(&output));
        insta::assert_snapshot!(format!("help_{command}"), stdout(&output));
    }
}

#[test]
fn plan_lists_concrete_flows_and_flows_left_out() {
    for name in ["circonus-inside", "spacelift-self-hosted"] {
        let table = portolan(&["plan", &example(name), "-d", &deployment_of(name)]);
        assert_eq!(table.status.code(), Some(0), "{name}: {}", stderr(&table));
        let text = stdout(&table);
        assert!(text.contains("concrete flow(s)"), "{text}");
        assert!(text.contains("left out"), "{text}");

        let json = portolan(&[
            "plan",
            &example(name),
            "-d",
            &deployment_of(name),
            "--format",
            "json",
        ]);
        assert_eq!(json.status.code(), Some(0), "{name}: {}", stderr(&json));
        let plan: serde_json::Value = serde_json::from_slice(&json.stdout).expect("plan JSON");
        let flows = plan["flows"].as_array().expect("flows");
        assert!(!flows.is_empty());
        assert!(flows[0]["from"]["nets"].is_array());
        for left in plan["left_out"].as_array().expect("left_out") {
            assert!(left["reason"]["kind"].is_string(), "{left}");
            assert!(left["message"].is_string(), "{left}");
        }
    }
    // The outside world is explicit "any address" in the plan.
    let json = portolan(&[
        "plan",
        &example("circonus-inside"),
        "-d",
        &deployment_of("circonus-inside"),
        "-f",
        "json",
    ]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).expect("plan JSON");
    let outside = plan["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["id"] == "outside")
        .expect("outside");
    assert_eq!(outside["any"], true);
    assert_eq!(outside["nets"], serde_json::json!(["0.0.0.0/0", "::/0"]));
}

#[test]
fn invalid_deployment_is_located_and_exits_1() {
    let (dir, deployment) = dir_with("deployment.yaml", "deployment: 1\ncomponents:\n  server: {addresses: [192.0.2.300]}\n  drian: {addresses: [192.0.2.11]}\n");
    let out = dir.path().join("out");
    for args in [
        vec!["plan"],
        vec![
            "generate",
            "--target",
            "nftables",
            "-o",
            out.to_str().expect("utf-8"),
        ],
    ] {
        let mut all = args.clone();
        let spec = example("spacelift-self-hosted");
        all.extend([spec.as_str(), "-d", deployment.to_str().expect("utf-8")]);
        let output = portolan(&all);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        let err = stderr(&output);
        assert!(err.contains("deployment.yaml:3:24"), "{err}");
        assert!(err.contains("deployment::invalid-address"), "{err}");
        assert!(err.contains("deployment::unknown-component"), "{err}");
        assert!(err.contains("did you mean `drain`?"), "{err}");
    }
    assert!(!out.exists(), "nothing is written on invalid input");
}

/// The spec library says that a host name is another component's id; the
/// binary adds which of its flags takes both (libraries never name flags).
#[test]
fn a_host_named_like_another_component_names_the_flag_that_takes_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deployment = dir.path().join("deployment.yaml");
    let text =
        std::fs::read_to_string(root().join("examples/spacelift-self-hosted/deployment.yaml"))
            .expect("example deployment")
            .replace(
                "    aws: {security_group: spacelift-server}\n",
                "    aws: {security_group: spacelift-server}\n    host: drain\n",
            )
            .replacen("  drain:\n", "  drain:\n    host: drain-box\n", 1);
    std::fs::write(&deployment, text).expect("write");
    let spec = example("spacelift-self-hosted");
    let output = portolan(&["plan", &spec, "-d", deployment.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("deployment::host-conflict"), "{err}");
    assert!(
        err.contains("host name `drain` is the id of a component that does not run on this host"),
        "{err}"
    );
    assert!(
        err.contains(
            "help: choose a name that is not the id of another component (`--component` takes both)"
        ),
        "{err}"
    );
}

/// The preflight library says that a flow has more ports than the limit
/// per flow; the binary names the flag that sets the limit.
#[test]
fn a_flow_over_the_port_limit_names_the_max_ports_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("portolan.yaml");
    std::fs::write(
        &spec,
        "portolan: 1\nsystem: {name: X}\ncomponents: [{id: web}, {id: db}]\nflows: [{from: web, to: db, protocol: tcp, port: \"1-2000\"}]\n",
    )
    .expect("write");
    let deployment = dir.path().join("deployment.yaml");
    std::fs::write(
        &deployment,
        "deployment: 1\ncomponents:\n  web: {addresses: [198.18.0.2]}\n  db: {addresses: [127.0.0.1]}\n",
    )
    .expect("write");
    let output = portolan(&[
        "listen",
        spec.to_str().expect("utf-8"),
        "-d",
        deployment.to_str().expect("utf-8"),
        "--as",
        "db",
        "--max-ports",
        "1024",
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "not listened: web->db/tcp/1-2000: 2000 ports: more than the limit of 1024 per flow (--max-ports)"
        ),
        "{err}"
    );
}

/// The fleet library says what would let a host placed by name only be
/// checked; the binary names the flag (no host is reached: nothing to log
/// in to).
#[test]
fn a_host_placed_by_name_only_names_the_inventory_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("portolan.yaml");
    std::fs::write(
        &spec,
        "portolan: 1\nsystem: {name: X}\ncomponents: [{id: web}, {id: db}]\nflows: [{from: web, to: db, protocol: tcp, port: 5432}]\n",
    )
    .expect("write");
    let deployment = dir.path().join("deployment.yaml");
    std::fs::write(
        &deployment,
        "deployment: 1\ncomponents:\n  web: {addresses: [web.example.net]}\n  db: {addresses: [db.example.net]}\n",
    )
    .expect("write");
    let output = portolan(&[
        "preflight",
        spec.to_str().expect("utf-8"),
        "-d",
        deployment.to_str().expect("utf-8"),
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not logged in (flows to it are probed from its peers); list it in an inventory (--inventory) to check it from inside"),
        "{err}"
    );
}

/// Regression (issue 9): a system name with an escape sequence, a NUL or a
/// line break validated, reached the terminal raw in `plan`, and made
/// `lab` fail with an internal error. It is now refused up front, with its
/// position, and no raw control character is printed.
#[test]
fn control_characters_in_names_are_refused_by_every_command() {
    let (dir, spec) = dir_with("spec.yaml", "portolan: 1\nsystem: {name: \"Demo\\e]0;pwned\\a\\0\\nX\"}\ncomponents:\n  - {id: web}\n  - {id: db, kind: dependency}\nflows:\n  - {from: web, to: db, protocol: tcp, port: 5432}\n");
    let deployment = dir.path().join("deployment.yaml");
    std::fs::write(
        &deployment,
        "deployment: 1\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.11]}\n",
    )
    .expect("write");
    let (spec, deployment) = (
        spec.to_str().expect("utf-8"),
        deployment.to_str().expect("utf-8"),
    );
    for args in [
        vec!["validate", spec],
        vec!["plan", spec, "-d", deployment],
        vec!["render", "--format", "matrix", spec],
    ] {
        let output = portolan(&args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("spec.yaml:2:16"), "{args:?}: {err}");
        assert!(err.contains("spec::control-character"), "{args:?}: {err}");
        let raw = |text: &str| text.chars().any(|c| c != '\n' && c.is_control());
        assert!(!raw(&err) && !raw(&stdout(&output)), "{args:?}: {err:?}");
    }
}

#[test]
fn generate_writes_all_files_or_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("rules");
    let spec = example("circonus-inside");
    let deployment = deployment_of("circonus-inside");
    let args = |extra: &[&str]| {
        let mut all = vec![
            "generate",
            spec.as_str(),
            "-d",
            deployment.as_str(),
            "--target",
            "nftables",
            "-o",
            out.to_str().expect("utf-8"),
        ];
        all.extend_from_slice(extra);
        portolan(&all)
    };
    // Circonus names hosts nftables cannot match: --strict fails and writes nothing.
    let strict = args(&["--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(stderr(&strict)
        .contains("warning[nftables::wildcard-host]: flow web-frontend->cloudwatch/tcp/443"));
    assert!(stderr(&strict).contains("nothing was written"));
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("readable").collect();
    assert!(
        leftovers.is_empty(),
        "no temporary directory is left behind"
    );

    let ok = args(&[]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .expect("out exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written.len(), 14, "{written:?}");
    assert!(written.contains(&"fault-detection.nft".to_owned()));
    // Writing again into the existing directory replaces the files.
    let again = args(&["--policy", "accept"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let api = std::fs::read_to_string(out.join("api.nft")).expect("api.nft");
    assert!(api.contains("policy accept;"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("readable").collect();
    assert_eq!(leftovers.len(), 1, "only the output directory remains");

    // One file goes to stdout; several without -o is a usage error.
    let one = generate(&spec, &deployment, &["-t", "nftables", "-c", "api"]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert!(stdout(&one).starts_with("#!/usr/sbin/nft -f\n"));
    let many = generate(&spec, &deployment, &["-t", "iptables", "-c", "api"]);
    assert_eq!(many.status.code(), Some(2), "{}", stderr(&many));
    assert!(stderr(&many).contains("-o DIR"), "{}", stderr(&many));
    // A component the target cannot serve is a located input error.
    let outside = generate(&spec, &deployment, &["-t", "nftables", "-c", "outside"]);
    assert_eq!(outside.status.code(), Some(1), "{}", stderr(&outside));
    assert!(stderr(&outside).contains("deployment::unsupported-by-target"));
}

/// `-o -` is standard output for `generate` as for every other command, not
/// a directory named `-`.
#[test]
fn generate_to_dash_prints_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = example("circonus-inside");
    let deployment = deployment_of("circonus-inside");
    let out = portolan_command()
        .args([
            "generate",
            &spec,
            "-d",
            &deployment,
            "-t",
            "nftables",
            "-c",
            "api",
            "-o",
            "-",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("the portolan binary runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("#!/usr/sbin/nft -f\n"));
    let created: Vec<_> = std::fs::read_dir(dir.path()).expect("readable").collect();
    assert!(created.is_empty(), "nothing written: {created:?}");
}

/// A mistyped `--component` is said as `check --as` says it, with a
/// suggestion, for every target; not blamed on the deployment.
#[test]
fn generate_unknown_component_is_a_flag_error() {
    let spec = example("circonus-inside");
    let deployment = deployment_of("circonus-inside");
    for target in ["nftables", "aws"] {
        let out = generate(&spec, &deployment, &["-t", target, "-c", "apu"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        // The deployment's warnings (no DNS flow) come first; the error is
        // the flag's, not the deployment's.
        let err = stderr(&out);
        assert!(
            err.ends_with("\nerror: `apu` is not a component of the spec; did you mean `api`?\n"),
            "{err}"
        );
        assert!(!err.contains("unsupported-by-target"), "{err}");
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn schema_of_the_deployment_format() {
    let output = portolan(&["schema", "--deployment"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(schema["title"], "Portolan deployment");
    assert!(schema["properties"]["components"].is_object());
}

/// Regression: commands that read a deployment used to repeat the spec's
/// "parameter has no default" warning although the deployment sets it.
#[test]
fn plan_does_not_warn_about_parameters_the_deployment_sets() {
    let spec = example("spacelift-self-hosted");
    let deployment = root()
        .join("examples/spacelift-self-hosted/deployment.yaml")
        .display()
        .to_string();
    let output = portolan(&["plan", &spec, "-d", &deployment]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("spec::parameter-needs-value"),
        "{}",
        stderr(&output)
    );
    // Nor does the lab, which gives such a parameter a lab value and says so.
    if lab_available("plan_does_not_warn_about_parameters_the_deployment_sets (its lab half)") {
        let output = portolan(&["lab", &spec]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(
            !stderr(&output).contains("spec::parameter-needs-value"),
            "{}",
            stderr(&output)
        );
    }
    // validate still reminds the spec's author.
    let output = portolan(&["validate", &spec]);
    assert!(stderr(&output).contains("spec::parameter-needs-value"));
}

/// Several components per host: the plan shows the hosts and marks the
/// flows that stay on one, and nftables writes one file per host.
#[test]
fn co_located_components_plan_and_generate_per_host() {
    let spec = example("circonus-inside");
    let deployment = root()
        .join("examples/circonus-inside/deployment-small.yaml")
        .display()
        .to_string();
    let table = portolan(&["plan", &spec, "-d", &deployment]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(
        text.contains("81 concrete flow(s), 11 of them between components of one host"),
        "{text}"
    );
    assert!(text.contains("4 host(s):"), "{text}");
    assert!(text.contains("local: same host"), "{text}");
    let json = portolan(&["plan", &spec, "-d", &deployment, "-f", "json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).expect("plan JSON");
    let hosts: Vec<&str> = plan["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        hosts,
        ["app", "broker", "data-storage+long-tail-store", "data"]
    );
    let local = plan["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .filter(|f| f["local"] == true)
        .count();
    assert_eq!(local, 11);

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("rules");
    let all = generate(
        &spec,
        &deployment,
        &["-t", "nftables", "-o", out.to_str().expect("utf-8")],
    );
    assert_eq!(all.status.code(), Some(0), "{}", stderr(&all));
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .expect("out exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "app.nft",
            "broker.nft",
            "data-storage+long-tail-store.nft",
            "data.nft"
        ]
    );
    // --component gives the file of the component's host.
    let one = generate(&spec, &deployment, &["-t", "nftables", "-c", "web-stream"]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    let app = std::fs::read_to_string(out.join("app.nft")).expect("app.nft");
    assert_eq!(stdout(&one), app);
}

/// Whether this process runs as root (as in CI).
fn portolan_lab_runs_here() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Output files get the mode a plain write gives them (0666 less the umask;
/// an existing file keeps its mode), not the private mode of the temporary
/// file they are written through.
#[cfg(unix)]
#[test]
fn output_files_get_the_usual_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("page.md");
    let render = || {
        Command::new("sh")
            .arg("-c")
            .arg("umask 022 && exec \"$0\" render \"$1\" -o \"$2\"")
            .arg(PORTOLAN)
            .arg(example("circonus-inside"))
            .arg(&page)
            .output()
            .expect("sh runs")
    };
    let mode = || {
        std::fs::metadata(&page)
            .expect("written")
            .permissions()
            .mode()
            & 0o777
    };
    let out = render();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode(), 0o644);
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = render();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode(), 0o640, "an existing file keeps its mode");
}

/// Regression: out-of-range flag values used to exit 1 (as if the input
/// were invalid) while malformed ones exited 2; both are usage errors. And
/// (issue 9, row 6) every count and duration flag has an upper bound, shown
/// in its help: `--timeout 18446744073709551615` or `--retries 4294967295`
/// used to be accepted, and a check against a dropping peer ran for ever.
#[test]
fn out_of_range_flag_values_are_usage_errors() {
    let spec = example("circonus-inside");
    let check = |flag: &'static str, value: &'static str| {
        vec!["check", "S", "-d", "d.yaml", "--as", "api", flag, value]
    };
    let listen = |flag: &'static str, value: &'static str| {
        vec!["listen", "S", "-d", "d.yaml", "--as", "api", flag, value]
    };
    for (args, says) in [
        (vec!["lab", "S", "--replicas", "0"], "from 1 to 64"),
        (vec!["lab", "S", "--replicas", "65"], "from 1 to 64"),
        (check("--concurrency", "0"), "from 1 to 4096"),
        (check("--concurrency", "4097"), "from 1 to 4096"),
        (check("--timeout", "0"), "from 1 to 60000"),
        (check("--timeout", "soon"), "from 1 to 60000"),
        (
            check("--timeout", "18446744073709551615"),
            "from 1 to 60000",
        ),
        (check("--timeout", "60001"), "from 1 to 60000"),
        (check("--retries", "4294967295"), "from 0 to 10"),
        (check("--retries", "11"), "from 0 to 10"),
        (check("--max-ports", "65537"), "from 0 to 65536"),
        (listen("--max-ports", "65537"), "from 0 to 65536"),
        (listen("--duration", "169h"), "168h (7 days)"),
        (
            listen("--duration", "18446744073709551615"),
            "168h (7 days)",
        ),
        (listen("--duration", "5 weeks"), "not a duration"),
        (
            vec!["preflight", "S", "-d", "d.yaml", "--timeout", "600000"],
            "from 1 to 60000",
        ),
        (
            vec!["preflight", "S", "-d", "d.yaml", "--retries", "11"],
            "from 0 to 10",
        ),
        (
            vec!["preflight", "S", "-d", "d.yaml", "--connect-timeout", "11m"],
            "from 1s to 10m",
        ),
    ] {
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| if a == "S" { spec.as_str() } else { a })
            .collect();
        let output = portolan(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains(says), "{}", stderr(&output));
    }
    // The bounds are in the help.
    for (command, bounds) in [
        (
            "check",
            &["(1 to 60000)", "(0 to 10)", "(1 to 4096)", "(0 to 65536;"][..],
        ),
        ("listen", &["at most 7 days", "(0 to 65536)"]),
        ("lab", &["1 to 64)"]),
    ] {
        let help = stdout(&portolan(&[command, "--help"]));
        for bound in bounds {
            assert!(
                help.contains(bound),
                "{command} --help lacks {bound}:\n{help}"
            );
        }
    }
}

/// Regression: `report` and `check --ca-file` said "FILE: cannot read: …"
/// where every other command says "cannot read FILE: …".
#[test]
fn unreadable_inputs_read_the_same_in_every_command() {
    let missing = "/nonexistent/results.json";
    let output = portolan(&["report", missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("cannot read {missing}")),
        "{}",
        stderr(&output)
    );
    let output = portolan(&["validate", missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("cannot read {missing}")),
        "{}",
        stderr(&output)
    );
}

/// `render --format tables -d`: operator tables with the peer column;
/// `-d` with another format is a usage error (exit 2).
#[test]
fn render_tables_with_a_deployment_adds_the_peer() {
    let spec = example("spacelift-self-hosted");
    let deployment = deployment_of("spacelift-self-hosted");
    let out = portolan(&["render", &spec, "-f", "tables", "-d", &deployment]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("| From ") && text.contains("| To "), "{text}");
    assert!(text.contains("postgres: 192.0.2.20"), "{text}");
    let plain = portolan(&["render", &spec, "-f", "tables"]);
    assert!(
        !stdout(&plain).contains("| To ") && !stdout(&plain).contains("192.0.2.20"),
        "unchanged without -d"
    );
    let out = portolan(&["render", &spec, "-f", "matrix", "-d", &deployment]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("-d/--deployment is for --format tables"));
}
