//! Host-firewall targets on both examples: snapshots of every file, and
//! proof with the real tools: every nftables ruleset passes `nft -c -f` and
//! is loaded for real with `nft -f` (twice, to prove the atomic replace) in
//! a network namespace the test creates and lists back; every iptables file
//! passes `iptables-restore --test` / `ip6tables-restore --test` in a
//! throwaway namespace and is loaded there and read back with
//! `iptables-save`. The host's own firewall is never touched.
//!
//! The real-tool tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN for `ip
//! netns`) and the tools; without them they skip loudly, unless
//! `PORTOLAN_REQUIRE_LAB=1`, where they fail.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use portolan_firewall::{GenerateError, Generated, Options, Policy, TargetKind, WarningKind};
use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};

const EXAMPLES: [&str; 2] = ["circonus-inside", "spacelift-self-hosted"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_plan(name: &str) -> Plan {
    let dir = root().join("examples").join(name);
    let spec_text = std::fs::read_to_string(dir.join("portolan.yaml")).expect("example spec");
    let spec = load_spec(SourceFile::new(format!("{name}/portolan.yaml"), spec_text))
        .expect("example spec is valid")
        .value;
    let text = std::fs::read_to_string(dir.join("deployment.yaml")).expect("example deployment");
    let deployment = load_deployment(
        SourceFile::new(format!("{name}/deployment.yaml"), text),
        &spec,
    )
    .unwrap_or_else(|d| {
        panic!(
            "{name}/deployment.yaml is invalid:\n{}",
            portolan_spec::render_diagnostics(&d, portolan_spec::RenderStyle::Plain)
        )
    })
    .value;
    plan(&spec, &deployment)
}

fn generate(plan: &Plan, target: TargetKind, options: &Options) -> Generated {
    target
        .target()
        .generate(plan, options)
        .unwrap_or_else(|e| panic!("{target}: {e:?}"))
}

/// Every file of a target, concatenated with headers, then the warnings.
fn snapshot_text(generated: &Generated) -> String {
    let mut out = String::new();
    for (name, text) in &generated.files {
        out.push_str(&format!("=== {} ===\n{text}\n", name.display()));
    }
    out.push_str("=== warnings ===\n");
    for w in &generated.warnings {
        out.push_str(&format!("{w}\n"));
    }
    out
}

#[test]
fn snapshots_of_both_targets_on_both_examples() {
    for example in EXAMPLES {
        let plan = example_plan(example);
        for target in [TargetKind::Nftables, TargetKind::Iptables] {
            let generated = generate(&plan, target, &Options::default());
            insta::assert_snapshot!(format!("{example}__{target}"), snapshot_text(&generated));
        }
    }
}

#[test]
fn one_file_per_component_host_and_every_flow_is_in_it() {
    for example in EXAMPLES {
        let plan = example_plan(example);
        let nft = generate(&plan, TargetKind::Nftables, &Options::default());
        let ipt = generate(&plan, TargetKind::Iptables, &Options::default());
        let hosts: Vec<&str> = plan
            .components
            .iter()
            .filter(|c| !c.any && (!c.nets.is_empty() || !c.hosts.is_empty()))
            .map(|c| c.id.as_str())
            .collect();
        assert!(!hosts.is_empty());
        let names: Vec<String> = nft
            .files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        let expected: Vec<String> = hosts.iter().map(|h| format!("{h}.nft")).collect();
        assert_eq!(names, expected, "{example}");
        assert_eq!(ipt.files.len(), 2 * hosts.len(), "{example}");
        // Every planned flow appears in the files of both its ends that are
        // hosts: as a rule, or as a disabled rule with its warning.
        for flow in &plan.flows {
            for (end, placed) in [(&flow.from.id, true), (&flow.to.id, flow.to.is_component())] {
                if !placed || !hosts.contains(&end.as_str()) {
                    continue;
                }
                let (_, text) = nft
                    .files
                    .iter()
                    .find(|(p, _)| p.display().to_string() == format!("{end}.nft"))
                    .expect("file of the host");
                assert!(
                    text.contains(&format!("comment \"{}\"", flow.id)),
                    "{example}: {} missing from {end}.nft",
                    flow.id
                );
            }
        }
    }
}

#[test]
fn host_names_are_warnings_and_never_accept_all() {
    let plan = example_plan("circonus-inside");
    let nft = generate(&plan, TargetKind::Nftables, &Options::default());
    let kinds: Vec<WarningKind> = nft.warnings.iter().map(|w| w.kind).collect();
    assert!(kinds.contains(&WarningKind::HostName), "{kinds:?}");
    assert!(kinds.contains(&WarningKind::WildcardHost), "{kinds:?}");
    let cloudwatch = nft
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::WildcardHost)
        .expect("cloudwatch pattern warned");
    assert_eq!(cloudwatch.flow, "web-frontend->cloudwatch/tcp/443");
    assert_eq!(cloudwatch.target, "nftables");
    assert_eq!(cloudwatch.code(), "nftables::wildcard-host");
    let (_, web) = nft
        .files
        .iter()
        .find(|(p, _)| p == Path::new("web-frontend.nft"))
        .expect("web-frontend.nft");
    // The rule is there only as a comment, after its warning.
    assert!(web.contains("\t\t# WARNING: flow web-frontend->cloudwatch/tcp/443: destination is the wildcard pattern monitoring.*.amazonaws.com"));
    assert!(web.contains(
        "\t\t# daddr monitoring.*.amazonaws.com tcp dport 443 accept comment \"web-frontend->cloudwatch/tcp/443\""
    ));
    // Only the outside world is "any address": /0 appears only in its sets
    // (nftables) or in rules of flows to or from it (iptables).
    let any_flows: Vec<&str> = plan
        .flows
        .iter()
        .filter(|f| f.from.any || f.to.any)
        .map(|f| f.id.as_str())
        .collect();
    assert!(!any_flows.is_empty());
    let ipt = generate(&plan, TargetKind::Iptables, &Options::default());
    for (generated, is_nft) in [(&nft, true), (&ipt, false)] {
        for (name, text) in &generated.files {
            for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
                if !(line.contains("0.0.0.0/0") || line.contains("::/0")) {
                    continue;
                }
                let allowed = if is_nft {
                    line.trim_start().starts_with("elements = { 0.0.0.0/0 }")
                        || line.trim_start().starts_with("elements = { ::/0 }")
                } else {
                    any_flows
                        .iter()
                        .any(|id| line.contains(&format!("--comment \"{id}\"")))
                };
                assert!(
                    allowed,
                    "{}: unexpected any-address rule: {line}",
                    name.display()
                );
            }
        }
    }
    let (_, broker) = nft
        .files
        .iter()
        .find(|(p, _)| p == Path::new("enterprise-broker.nft"))
        .expect("enterprise-broker.nft");
    assert!(broker.contains("# Outside (outside): any address, the outside world has no address in the deployment\n\tset outside_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 0.0.0.0/0 }"));
}

#[test]
fn resolving_host_names_writes_their_addresses_and_never_patterns() {
    let plan = example_plan("circonus-inside");
    let resolver: portolan_firewall::Resolver = Arc::new(|host: &str| match host {
        "slack.com" => Ok(vec!["198.51.100.20".parse::<IpAddr>().expect("addr")]),
        "events.pagerduty.com" => Ok(vec![
            "198.51.100.30".parse::<IpAddr>().expect("addr"),
            "2001:db8:100::30".parse::<IpAddr>().expect("addr"),
        ]),
        other => Err(format!("{other}: not in the test resolver")),
    });
    let options = Options {
        component: Some("notification".into()),
        resolver: Some(resolver),
        ..Options::default()
    };
    let nft = generate(&plan, TargetKind::Nftables, &options);
    assert_eq!(nft.files.len(), 1);
    let text = &nft.files[0].1;
    assert!(text.contains("elements = { 198.51.100.20 }"), "{text}");
    assert!(text.contains(
        "ip daddr @slack_v4 tcp dport 443 accept comment \"notification->slack/tcp/443\""
    ));
    assert!(text.contains("ip6 daddr @events_pagerduty_v6 tcp dport 443 accept"));
    assert!(text.contains("resolved at generation time"));
    assert!(nft.warnings.is_empty(), "{:?}", nft.warnings);

    let web = Options {
        component: Some("web-frontend".into()),
        resolver: options.resolver.clone(),
        ..Options::default()
    };
    let nft = generate(&plan, TargetKind::Nftables, &web);
    assert!(nft
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::WildcardHost));
}

#[test]
fn components_without_addresses_cannot_be_served() {
    let plan = example_plan("circonus-inside");
    for (component, fragment) in [
        ("outside", "outside world"),
        ("nope", "no component `nope`"),
    ] {
        let options = Options {
            component: Some(component.into()),
            ..Options::default()
        };
        match TargetKind::Nftables.target().generate(&plan, &options) {
            Err(GenerateError::CannotServe { diagnostics, .. }) => {
                assert_eq!(
                    diagnostics[0].code,
                    portolan_spec::Code::DeploymentUnsupportedByTarget
                );
                assert!(
                    diagnostics[0].message.contains(fragment),
                    "{}",
                    diagnostics[0].message
                );
            }
            other => panic!("{component}: expected CannotServe, got {other:?}"),
        }
    }
}

#[test]
fn accept_policy_logs_instead_of_dropping() {
    let plan = example_plan("spacelift-self-hosted");
    let options = Options {
        component: Some("server".into()),
        policy: Policy::Accept,
        ..Options::default()
    };
    let nft = generate(&plan, TargetKind::Nftables, &options);
    let text = &nft.files[0].1;
    assert!(text.contains("policy accept;"));
    assert!(!text.contains("policy drop;"));
    assert!(text.contains("log prefix \"portolan-audit input: \""));
    let ipt = generate(&plan, TargetKind::Iptables, &options);
    assert!(ipt.files[0].1.contains(":INPUT ACCEPT [0:0]"));
    assert!(ipt.files[0]
        .1
        .contains("-j LOG --log-prefix \"portolan-audit input: \""));
}

// ---------------------------------------------------------------------------
// Real tools
// ---------------------------------------------------------------------------

fn lab_required() -> bool {
    std::env::var("PORTOLAN_REQUIRE_LAB").is_ok_and(|v| v == "1")
}

fn run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(program).args(args).output()
}

/// A network namespace the test owns; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Result<Self, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "portolan-fw-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let out = run("ip", &["netns", "add", &name]).map_err(|e| format!("ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip netns add failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { name })
    }

    fn exec(&self, program: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all).unwrap_or_else(|e| panic!("ip netns exec {program}: {e}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A namespace if the environment allows one and the tools exist; else
/// `None` after a loud message (or a failure when the lab is required).
fn lab(tools: &[&str]) -> Option<Netns> {
    let skip = |why: String| {
        if lab_required() {
            panic!("PORTOLAN_REQUIRE_LAB=1 but the real-tool test cannot run: {why}");
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIPPED real-tool firewall test: {why} (needs root and {tools:?}; set PORTOLAN_REQUIRE_LAB=1 to make this a failure)");
        }
        None
    };
    for tool in tools {
        if run(tool, &["--version"]).is_err() {
            return skip(format!("`{tool}` is not installed"));
        }
    }
    match Netns::create() {
        Ok(ns) => Some(ns),
        Err(why) => skip(why),
    }
}

fn write_files(dir: &Path, generated: &Generated) -> Vec<PathBuf> {
    generated
        .files
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write generated file");
            path
        })
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_nftables_ruleset_passes_nft_check_and_loads_in_a_namespace() {
    let Some(ns) = lab(&["nft", "ip"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for example in EXAMPLES {
        let plan = example_plan(example);
        for policy in [Policy::Drop, Policy::Accept] {
            let options = Options {
                policy,
                ..Options::default()
            };
            let generated = generate(&plan, TargetKind::Nftables, &options);
            for path in write_files(dir.path(), &generated) {
                let file = path.to_str().expect("utf-8 path");
                let check = ns.exec("nft", &["-c", "-f", file]);
                assert!(
                    check.status.success(),
                    "nft -c -f {file} ({example}) failed:\n{}\n{}",
                    stderr(&check),
                    std::fs::read_to_string(&path).unwrap_or_default()
                );
                // Loaded twice: the second load must replace the table, not add to it.
                for _ in 0..2 {
                    let load = ns.exec("nft", &["-f", file]);
                    assert!(
                        load.status.success(),
                        "nft -f {file} failed: {}",
                        stderr(&load)
                    );
                }
                let listed = ns.exec("nft", &["list", "table", "inet", "portolan"]);
                assert!(listed.status.success(), "{}", stderr(&listed));
                let listed = String::from_utf8_lossy(&listed.stdout);
                let text = std::fs::read_to_string(&path).expect("read back");
                // Every active rule's comment is in the kernel, once per line written.
                for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
                    if let Some(start) = line.find("comment \"") {
                        let comment = &line[start..];
                        let written = text
                            .lines()
                            .filter(|l| !l.trim_start().starts_with('#') && l.contains(comment))
                            .count();
                        let loaded = listed.lines().filter(|l| l.contains(comment)).count();
                        assert_eq!(
                            written, loaded,
                            "{file}: {comment} written {written}x, loaded {loaded}x"
                        );
                    }
                }
                let expected_policy = format!("policy {};", policy.as_str());
                assert_eq!(
                    listed.matches(&expected_policy).count(),
                    2,
                    "{file}: both chains have {expected_policy}"
                );
                checked += 1;
            }
        }
        // Leave the namespace clean for the next example.
        let flush = ns.exec("nft", &["delete", "table", "inet", "portolan"]);
        assert!(flush.status.success(), "{}", stderr(&flush));
    }
    // 14 hosts in each example, two policies.
    assert_eq!(checked, 2 * (14 + 14), "rulesets checked");
}

#[test]
fn every_iptables_file_passes_restore_test_and_loads_in_a_namespace() {
    let Some(ns) = lab(&["iptables-restore", "ip6tables-restore", "ip"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for example in EXAMPLES {
        let plan = example_plan(example);
        for policy in [Policy::Drop, Policy::Accept] {
            let options = Options {
                policy,
                ..Options::default()
            };
            let generated = generate(&plan, TargetKind::Iptables, &options);
            for path in write_files(dir.path(), &generated) {
                let file = path.to_str().expect("utf-8 path");
                let (restore, save) = if file.ends_with(".v6") {
                    ("ip6tables-restore", "ip6tables-save")
                } else {
                    ("iptables-restore", "iptables-save")
                };
                let test = ns.exec(restore, &["--test", file]);
                assert!(
                    test.status.success(),
                    "{restore} --test {file} ({example}) failed:\n{}",
                    stderr(&test)
                );
                let load = ns.exec(restore, &[file]);
                assert!(load.status.success(), "{restore} {file}: {}", stderr(&load));
                let saved = ns.exec(save, &["-t", "filter"]);
                assert!(saved.status.success(), "{}", stderr(&saved));
                let saved = String::from_utf8_lossy(&saved.stdout);
                let text = std::fs::read_to_string(&path).expect("read back");
                let rules = |s: &str| s.lines().filter(|l| l.starts_with("-A ")).count();
                assert_eq!(
                    rules(&text),
                    rules(&saved),
                    "{file}: every rule is loaded, once"
                );
                let p = match policy {
                    Policy::Drop => "DROP",
                    Policy::Accept => "ACCEPT",
                };
                assert!(saved.contains(&format!(":INPUT {p}")), "{file}: {saved}");
                assert!(saved.contains(&format!(":OUTPUT {p}")), "{file}: {saved}");
                checked += 1;
            }
        }
    }
    // 14 hosts in each example, an IPv4 and an IPv6 file, two policies.
    assert_eq!(checked, 2 * 2 * (14 + 14), "files checked");
}
