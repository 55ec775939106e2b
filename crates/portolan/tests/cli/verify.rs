//! `portolan verify` end to end: exit codes (0 all admitted, 1 blocked or
//! invalid input, 2 usage), every format, `--strict`, nothing partial
//! written on bad input.

use std::path::PathBuf;

use super::{dir_with, portolan, root, stderr, stdout};

fn fixture(name: &str) -> String {
    root()
        .join("crates/portolan-verify/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn spec() -> String {
    fixture("shop.portolan.yaml")
}

#[test]
fn help() {
    let output = portolan(&["verify", "--help"]);
    assert!(output.status.success());
    insta::assert_snapshot!("help_verify", stdout(&output));
}

#[test]
fn a_blocked_required_flow_exits_1_and_the_table_says_why() {
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &fixture("shop.k8s.deployment.yaml"),
        "--kubernetes",
        &fixture("kubernetes/endport.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output).replace(&fixture(""), "fixtures/");
    insta::assert_snapshot!("verify_endport_table", text);
}

#[test]
fn every_format_and_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The groups block api->db/tcp/8000-8100: exit 1, and the report is
    // written whole in every format.
    for format in ["table", "json", "junit", "markdown", "html"] {
        let out: PathBuf = dir.path().join(format!("report.{format}"));
        let output = portolan(&[
            "verify",
            &spec(),
            "-d",
            &fixture("shop.aws.deployment.yaml"),
            "--aws",
            &fixture("aws/shop-groups.json"),
            "-f",
            format,
            "-o",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{format}: {}",
            stderr(&output)
        );
        let text = std::fs::read_to_string(&out).expect("written");
        assert!(text.contains("db/tcp/8000-8100"), "{format}: {text}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("json"),
    )
    .expect("valid JSON");
    assert_eq!(json["sections"][0]["kind"], "aws");
}

#[test]
fn all_admitted_exits_0_and_strict_fails_on_excess() {
    // Without any policy nothing is isolated: every flow passes, and every
    // pod is open to everything (excess).
    let (_dir, empty) = dir_with(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    );
    let args = [
        "verify",
        &spec(),
        "-d",
        &fixture("shop.k8s.deployment.yaml"),
        "--kubernetes",
        empty.to_str().expect("utf-8"),
    ];
    let output = portolan(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut strict = args.to_vec();
    strict.push("--strict");
    assert_eq!(portolan(&strict).status.code(), Some(1));
}

#[test]
fn bad_input_exits_1_with_position_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report.md");
    let ruleset = dir.path().join("host.nft");
    std::fs::write(&ruleset, "table inet filter {\n  chain input {\n  }\n}\n").expect("write");
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &fixture("shop.k8s.deployment.yaml"),
        "--kubernetes",
        ruleset.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("host.nft:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!out.exists());
    // A policy in a namespace no component has.
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: billing}\nspec: {podSelector: {}}\n",
    )
    .expect("write");
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &fixture("shop.k8s.deployment.yaml"),
        "--kubernetes",
        policy.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("p.yaml:2:7: error[verify::unknown-namespace]: NetworkPolicy billing/x"),
        "{}",
        stderr(&output)
    );
}

/// The verify library says which kind of input a file is or should be; the
/// binary names the flag that gives it (moved here from the library's
/// `a_ruleset_is_not_a_manifest`, which checks the library's own words).
#[test]
fn input_hints_name_the_flag_of_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ruleset = dir.path().join("host.nft");
    std::fs::write(&ruleset, "table inet filter {\n  chain input {\n  }\n}\n").expect("write");
    let not_json = dir.path().join("groups.json");
    std::fs::write(&not_json, "{ not json").expect("write");
    let not_iptables = dir.path().join("host.rules.v4");
    std::fs::write(&not_iptables, "table inet filter {\n}\n").expect("write");
    let api_iptables = format!("api={}", not_iptables.display());
    let cases = [
        (
            "shop.k8s.deployment.yaml",
            vec!["--kubernetes", ruleset.to_str().expect("utf-8")],
            "hint: --kubernetes takes NetworkPolicy manifests: YAML documents, or a `List` of them",
        ),
        (
            "shop.aws.deployment.yaml",
            vec!["--aws", not_json.to_str().expect("utf-8")],
            "hint: --aws takes the JSON of `aws ec2 describe-security-groups --output json`",
        ),
        (
            "shop.hosts.deployment.yaml",
            vec!["--iptables", api_iptables.as_str()],
            "hint: --iptables takes the output of `iptables-save` or `ip6tables-save`",
        ),
    ];
    for (deployment, args, hint) in &cases {
        let mut all = vec![
            "verify".to_owned(),
            spec(),
            "-d".to_owned(),
            fixture(deployment),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let output = portolan(&all);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(stderr(&output).contains(hint), "{}", stderr(&output));
    }
    // iptables-save output given as nftables.
    let rules = fixture("hosts/api-docker.rules.v4");
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &fixture("shop.hosts.deployment.yaml"),
        "--nftables",
        &format!("api={rules}"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("hint: give it as --iptables api={rules}")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn no_input_is_a_usage_error() {
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &fixture("shop.k8s.deployment.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("nothing to verify"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unknown_host_and_a_ruleset_of_the_wrong_kind_exit_1() {
    let deployment = fixture("shop.hosts.deployment.yaml");
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &deployment,
        "--nftables",
        &format!("apii={}", fixture("hosts/api-inet-and-ip.nft")),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("`apii` is not a host of the deployment"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("`api`"), "{}", stderr(&output));
    // iptables-save output given as nftables.
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &deployment,
        "--nftables",
        &format!("api={}", fixture("hosts/api-docker.rules.v4")),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("this is iptables-save output"),
        "{}",
        stderr(&output)
    );
    // Not HOST=FILE.
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &deployment,
        "--iptables",
        "rules.v4",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_host_ruleset_in_the_twin() {
    if !portolan_test_support::lab_available_with(
        "a_host_ruleset_in_the_twin",
        portolan_lab::check_privileges(),
        &[],
    ) {
        return;
    }
    let output = portolan(&[
        "verify",
        &spec(),
        "-d",
        &fixture("shop.hosts.deployment.yaml"),
        "--nftables",
        &format!("db={}", fixture("hosts/db-sets-maps.nft")),
        "-f",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let checks = json["sections"][0]["checks"].as_array().expect("checks");
    let blocked: Vec<&str> = checks
        .iter()
        .filter(|c| c["verdict"] == "blocked")
        .map(|c| c["flow"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(blocked, ["api->db/tcp/8000-8100"]);
}
