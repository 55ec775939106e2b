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

// One integration-test binary for the crate: the cloud targets are a module.
mod cloud;
mod labels;
mod modes;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use portolan_firewall::{GenerateError, Generated, Options, Policy, TargetKind, WarningKind};
use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};
use portolan_test_support::Netns;

const EXAMPLES: [&str; 2] = ["circonus-inside", "spacelift-self-hosted"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_plan(name: &str) -> Plan {
    example_plan_with(name, "deployment.yaml")
}

/// The plan of an example with one of its deployment files.
fn example_plan_with(name: &str, deployment_file: &str) -> Plan {
    let dir = root().join("examples").join(name);
    let spec_text = std::fs::read_to_string(dir.join("portolan.yaml")).expect("example spec");
    let spec = load_spec(SourceFile::new(format!("{name}/portolan.yaml"), spec_text))
        .expect("example spec is valid")
        .value;
    let text = std::fs::read_to_string(dir.join(deployment_file)).expect("example deployment");
    let deployment = load_deployment(
        SourceFile::new(format!("{name}/{deployment_file}"), text),
        &spec,
    )
    .unwrap_or_else(|d| {
        panic!(
            "{name}/{deployment_file} is invalid:\n{}",
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

/// Circonus with fourteen roles on four hosts.
fn small_plan() -> Plan {
    example_plan_with("circonus-inside", "deployment-small.yaml")
}

#[test]
fn snapshots_of_both_targets_on_the_co_located_deployment() {
    let plan = small_plan();
    for target in [TargetKind::Nftables, TargetKind::Iptables] {
        let generated = generate(&plan, target, &Options::default());
        insta::assert_snapshot!(
            format!("circonus-inside-small__{target}"),
            snapshot_text(&generated)
        );
    }
}

/// Active rule lines of a file (comment lines and blank lines left out).
fn active(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

#[test]
fn co_located_components_get_one_ruleset_per_host_with_all_their_rules() {
    let plan = small_plan();
    let hosts: Vec<&str> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        hosts,
        ["app", "broker", "data-storage+long-tail-store", "data"]
    );
    let nft = generate(&plan, TargetKind::Nftables, &Options::default());
    let ipt = generate(&plan, TargetKind::Iptables, &Options::default());
    let names: Vec<String> = nft
        .files
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(
        names,
        hosts.iter().map(|h| format!("{h}.nft")).collect::<Vec<_>>()
    );
    let ipt_names: Vec<String> = ipt
        .files
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(
        ipt_names,
        hosts
            .iter()
            .flat_map(|h| [format!("{h}.rules.v4"), format!("{h}.rules.v6")])
            .collect::<Vec<_>>()
    );
    let file = |host: &str| -> &str {
        &nft.files
            .iter()
            .find(|(p, _)| p.display().to_string() == format!("{host}.nft"))
            .expect("file of the host")
            .1
    };
    let local: Vec<&str> = plan
        .flows
        .iter()
        .filter(|f| f.local)
        .map(|f| f.id.as_str())
        .collect();
    assert!(
        local.contains(&"web-frontend->web-stream/tcp/8126"),
        "{local:?}"
    );
    assert!(
        local.contains(&"fault-detection->web-db/tcp/5432"),
        "{local:?}"
    );
    for flow in &plan.flows {
        let ends = [Some(&flow.from), flow.to.is_component().then_some(&flow.to)];
        for end in ends.into_iter().flatten() {
            let Some(host) = plan.host_of(&end.id) else {
                continue;
            };
            let text = file(&host.name);
            if flow.local {
                // Listed in the header, and in no rule: loopback carries it.
                assert!(
                    text.contains(&format!("#   local: {}\n", flow.id)),
                    "{}: local flow {} not listed",
                    host.name,
                    flow.id
                );
                assert!(
                    !text.contains(&format!("{}\"", flow.id))
                        && !text.contains(&format!("{},", flow.id)),
                    "{}: local flow {} has a rule",
                    host.name,
                    flow.id
                );
                continue;
            }
            // A rule naming it (in the comment, or in the full list above a
            // rule whose comment is too short for every id), or a disabled
            // rule with its warning.
            let in_rule = active(text).any(|l| {
                l.split_once("comment \"")
                    .is_some_and(|(_, c)| c.split(['"', ',']).any(|id| id.trim() == flow.id))
            });
            let in_list = text.lines().any(|l| {
                l.trim()
                    .strip_prefix("# flows: ")
                    .is_some_and(|ids| ids.split(", ").any(|id| id == flow.id))
            });
            let disabled = text.contains(&format!("# WARNING: flow {}:", flow.id));
            assert!(
                in_rule || in_list || disabled,
                "{}: flow {} is missing",
                host.name,
                flow.id
            );
        }
    }
    // Merged, not repeated: no two active rules of a chain match the same traffic.
    for (name, text) in &nft.files {
        for chain in text.split("\tchain ").skip(1) {
            let mut seen = std::collections::BTreeSet::new();
            for line in active(chain).filter(|l| l.contains(" accept comment ")) {
                let (matches, _) = line.split_once(" comment ").expect("comment");
                assert!(
                    seen.insert(matches.to_owned()),
                    "{}: `{matches}` twice",
                    name.display()
                );
            }
        }
    }
    let app = file("app");
    assert!(app.contains(
        "ip saddr @outside_v4 tcp dport 80 accept comment \"outside->web-frontend/tcp/80, outside->web-stream/tcp/80\""
    ));
    // Peer sets are per host: the broker host is one set, not four.
    assert!(app.contains(
        "# host broker (CAQL Broker, Enterprise Broker, Hub, Stratcon)\n\tset broker_v4 {"
    ));
    assert!(!app.contains("set hub_v4"));
    // No address widened: /0 only in the outside world's sets.
    for (name, text) in &nft.files {
        for line in active(text) {
            if line.contains("0.0.0.0/0") || line.contains("::/0") {
                assert!(
                    line.starts_with("elements = { 0.0.0.0/0 }")
                        || line.starts_with("elements = { ::/0 }"),
                    "{}: {line}",
                    name.display()
                );
            }
        }
    }

    // --component picks the host file, by component or by host name.
    for pick in ["web-stream", "api", "app"] {
        let options = Options {
            component: Some(pick.into()),
            ..Options::default()
        };
        let one = generate(&plan, TargetKind::Nftables, &options);
        assert_eq!(one.files.len(), 1, "{pick}");
        assert_eq!(one.files[0].0, Path::new("app.nft"), "{pick}");
        assert_eq!(one.files[0].1, app, "{pick}");
    }
}

#[test]
fn co_located_rulesets_load_and_loopback_carries_the_local_flows() {
    let Some(ns) = lab(&["nft", "ip", "iptables-restore", "ip6tables-restore"]) else {
        return;
    };
    let plan = small_plan();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for policy in [Policy::Drop, Policy::Accept] {
        let options = Options {
            policy,
            ..Options::default()
        };
        for target in [TargetKind::Nftables, TargetKind::Iptables] {
            let generated = generate(&plan, target, &options);
            for path in write_files(dir.path(), &generated) {
                match target {
                    TargetKind::Nftables => assert_nft_loads(&ns, &path, policy, "small"),
                    _ => assert_iptables_loads(&ns, &path, policy, "small"),
                }
                checked += 1;
            }
        }
    }
    // Four hosts: one nft file and two iptables files each, two policies.
    assert_eq!(checked, 2 * (4 + 2 * 4));
    // The iptables filter table is left empty again for the loopback check.
    for restore in ["iptables-restore", "ip6tables-restore"] {
        let empty = dir.path().join("empty.rules");
        std::fs::write(
            &empty,
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        )
        .expect("write");
        let out = ns.exec(restore, &[empty.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // The app host, with its addresses, runs its ruleset (policy drop).
    // web-frontend->web-stream/tcp/8126 is local: no rule opens 8126 from
    // or to the host itself, and yet it passes, over loopback.
    let flow = "web-frontend->web-stream/tcp/8126";
    assert!(plan.flows.iter().any(|f| f.id == flow && f.local));
    // The addresses sit on lo: no interface module needed, and traffic
    // to a local address takes lo wherever the address is.
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", "192.0.2.11/32", "dev", "lo"],
        &[
            "-6",
            "addr",
            "add",
            "2001:db8:c::11/128",
            "dev",
            "lo",
            "nodad",
        ],
    ] {
        let out = ns.exec("ip", args);
        assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
    }
    let app = generate(
        &plan,
        TargetKind::Nftables,
        &Options {
            component: Some("web-stream".into()),
            ..Options::default()
        },
    );
    let text = &app.files[0].1;
    assert!(
        !text.contains("dport 8126 accept comment \"web-frontend"),
        "{text}"
    );
    let path = dir.path().join("app.nft");
    std::fs::write(&path, text).expect("write");
    // Without the loopback rules the same connection is refused by the
    // ruleset: the check below can fail, and it is the firewall that decides.
    let without_lo: String = text
        .lines()
        .filter(|l| !l.contains("\"lo\" accept"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(text.lines().count() - without_lo.lines().count(), 2);
    let blocked = dir.path().join("app-without-lo.nft");
    std::fs::write(&blocked, &without_lo).expect("write");
    let connects = |file: &Path| -> Vec<bool> {
        let load = ns.exec("nft", &["-f", file.to_str().expect("utf-8")]);
        assert!(load.status.success(), "{}", stderr(&load));
        ns.run(|| {
            ["192.0.2.11:8126", "[2001:db8:c::11]:8126"]
                .iter()
                .map(|a| loopback_connects(a.parse().expect("socket address")))
                .collect()
        })
    };
    assert_eq!(connects(&path), [true, true], "local flow over loopback");
    assert_eq!(
        connects(&blocked),
        [false, false],
        "control: loopback rules removed"
    );
    assert_eq!(
        connects(&path),
        [true, true],
        "local flow over loopback again"
    );
}

/// Listens on `address` and connects to it from the same namespace. A
/// dropped SYN is retried, not refused: a blocked connection ends at the
/// timeout (no duration is asserted; loopback answers at once when open).
fn loopback_connects(address: std::net::SocketAddr) -> bool {
    let listener = std::net::TcpListener::bind(address).expect("bind the host's address");
    let connected =
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(3));
    match connected {
        Ok(_stream) => listener.accept().is_ok(),
        Err(_) => false,
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

fn run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(program).args(args).output()
}

/// A namespace if the environment allows one and the tools exist; else
/// `None` after a loud message (or a failure when the lab is required).
fn lab(tools: &[&str]) -> Option<Netns> {
    let skip = |why: String| {
        portolan_test_support::skip(
            "real-tool firewall test",
            &format!("{why} (needs root and {tools:?})"),
        );
        None
    };
    for tool in tools {
        if run(tool, &["--version"]).is_err() {
            return skip(format!("`{tool}` is not installed"));
        }
    }
    match Netns::create("fw") {
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

/// Checks one nftables file with `nft -c -f`, loads it twice in `ns` (the
/// second load must replace the table, not add to it) and compares what
/// the kernel lists with what the file says: every active rule's comment,
/// as often as it is written, and the policy of both chains.
fn assert_nft_loads(ns: &Netns, path: &Path, policy: Policy, what: &str) {
    let file = path.to_str().expect("utf-8 path");
    let check = ns.exec("nft", &["-c", "-f", file]);
    assert!(
        check.status.success(),
        "nft -c -f {file} ({what}) failed:\n{}\n{}",
        stderr(&check),
        std::fs::read_to_string(path).unwrap_or_default()
    );
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
    let text = std::fs::read_to_string(path).expect("read back");
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
}

/// `iptables-restore --test`, a real restore in `ns`, and `iptables-save`
/// lists every rule once, with the policy.
fn assert_iptables_loads(ns: &Netns, path: &Path, policy: Policy, what: &str) {
    let file = path.to_str().expect("utf-8 path");
    let (restore, save) = if file.ends_with(".v6") {
        ("ip6tables-restore", "ip6tables-save")
    } else {
        ("iptables-restore", "iptables-save")
    };
    let test = ns.exec(restore, &["--test", file]);
    assert!(
        test.status.success(),
        "{restore} --test {file} ({what}) failed:\n{}",
        stderr(&test)
    );
    let load = ns.exec(restore, &[file]);
    assert!(load.status.success(), "{restore} {file}: {}", stderr(&load));
    let saved = ns.exec(save, &["-t", "filter"]);
    assert!(saved.status.success(), "{}", stderr(&saved));
    let saved = String::from_utf8_lossy(&saved.stdout);
    let text = std::fs::read_to_string(path).expect("read back");
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
                assert_nft_loads(&ns, &path, policy, example);
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
                assert_iptables_loads(&ns, &path, policy, example);
                checked += 1;
            }
        }
    }
    // 14 hosts in each example, an IPv4 and an IPv6 file, two policies.
    assert_eq!(checked, 2 * 2 * (14 + 14), "files checked");
}

/// Names are free text and may hold line breaks; every target writes them
/// in `#` comments, where a line break would turn the rest of a name into
/// an active rule. The injected text stays inside comments, on every target.
#[test]
fn line_breaks_in_names_stay_inside_comments() {
    // Since issue 9 (row 4) such names never reach a target: the spec and
    // the deployment refuse control characters in names where they come in
    // (spec::control-character, deployment::control-character), so no
    // generator can write one into a `#` comment.
    for name in [
        "Shop\\nflush ruleset",
        "Web\\r\\nflush ruleset",
        "DB\\u2028flush ruleset",
    ] {
        let text = format!(
            "portolan: 1\nsystem: {{name: \"{name}\"}}\ncomponents:\n  - {{id: web}}\n  - {{id: db, kind: dependency}}\nflows:\n  - {{from: web, to: db, protocol: tcp, port: 5432}}\n"
        );
        let err = load_spec(SourceFile::new("portolan.yaml", text)).expect_err(name);
        assert!(
            format!("{err:?}").contains("ControlCharacter"),
            "{name}: {err:?}"
        );
    }
    let spec = load_spec(SourceFile::new(
        "portolan.yaml",
        "portolan: 1\nsystem: {name: Shop}\ncomponents:\n  - {id: web}\n  - {id: db, kind: dependency}\nflows:\n  - {from: web, to: db, protocol: tcp, port: 5432}\n",
    ))
    .expect("valid spec")
    .value;
    let err = load_deployment(
        SourceFile::new(
            "deployment.yaml",
            "deployment: 1\nname: \"prod\\nflush ruleset\"\ncomponents:\n  web: {addresses: [192.0.2.10]}\n  db: {addresses: [192.0.2.20]}\n",
        ),
        &spec,
    )
    .expect_err("a line break in the deployment name is refused");
    assert!(format!("{err:?}").contains("ControlCharacter"), "{err:?}");
}
