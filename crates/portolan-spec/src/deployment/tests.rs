use ipnet::IpNet;

use super::hosts::overlapping_pairs;
use super::*;
use crate::checker::Loaded;
use crate::diag::{render_diagnostics, Code, Diagnostics, RenderStyle, SourceFile};
use crate::load_spec;
use crate::model::*;

const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: db, kind: dependency}
  - {id: cache, kind: dependency}
  - {id: users, kind: external}
externals:
  - {id: partner, cidr: 203.0.113.0/24}
  - {id: irc, placeholder: X IRC network}
  - {id: slack, host: slack.com}
features:
  - {id: slack-alerts}
  - {id: irc-alerts}
parameters:
  - {id: db-port, default: 5432}
  - {id: cache-port}
flows:
  - {from: users, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: $db-port}
  - {from: web, to: cache, protocol: tcp, port: $cache-port}
  - {from: web, to: partner, protocol: tcp, port: 443}
  - {from: web, to: slack, protocol: tcp, port: 443, required: false, when: slack-alerts}
  - {from: web, to: irc, protocol: tcp, port: 6697, required: false, when: irc-alerts}
";

fn spec() -> Spec {
    load_spec(SourceFile::new("portolan.yaml", SPEC))
        .expect("valid spec")
        .value
}

fn load(text: &str) -> Result<Loaded<Deployment>, Diagnostics> {
    load_deployment(SourceFile::new("deployment.yaml", text), &spec())
}

fn codes(text: &str) -> Vec<Code> {
    match load(text) {
        Ok(l) => l.warnings.items.iter().map(|d| d.code).collect(),
        Err(d) => d.items.iter().map(|d| d.code).collect(),
    }
}

/// Each diagnostic's message and help, unwrapped.
fn messages(text: &str) -> String {
    let diagnostics = match load(text) {
        Ok(l) => l.warnings,
        Err(d) => d,
    };
    diagnostics
        .items
        .iter()
        .map(|d| format!("{} / {}\n", d.message, d.help.as_deref().unwrap_or("")))
        .collect()
}

fn rendered(text: &str) -> String {
    let diagnostics = match load(text) {
        Ok(l) => l.warnings,
        Err(d) => d,
    };
    render_diagnostics(&diagnostics, RenderStyle::Plain)
}

const GOOD: &str = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.10, \"2001:db8::10\"]}
  db: {addresses: [db.example.net]}
  cache: {addresses: [192.0.2.20]}
";

#[test]
fn a_valid_deployment_loads_without_diagnostics() {
    let loaded = load(GOOD).expect("valid");
    // db is placed by name and no flow allows DNS: the only warning.
    let codes: Vec<Code> = loaded.warnings.items.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::DeploymentNoDnsFlow]);
    let d = loaded.value;
    let spec = spec();
    let web = spec.component_by_id("web").expect("web");
    assert_eq!(
        d.components[&web].addresses,
        [
            Address::Net("192.0.2.10/32".parse().expect("net")),
            Address::Net("2001:db8::10/128".parse().expect("net"))
        ]
    );
    let db = spec.component_by_id("db").expect("db");
    assert_eq!(
        d.components[&db].addresses,
        [Address::Host("db.example.net".into())]
    );
    let cache_port = spec.parameter_by_id("cache-port").expect("param");
    assert_eq!(d.parameters[&cache_port], 6379);
}

/// Regression (issue 9, row 13): only the first structural problem of
/// a deployment was reported.
#[test]
fn every_structural_problem_is_reported_at_once() {
    let text = "deployment: 1
nme: lab
components:
  web: {adresses: [192.0.2.10]}
  db: {addresses: 192.0.2.20, kubernetes: {namespace: [x]}}
site:
  - {to: [192.0.2.53], protocol: UDP, port: 53}
";
    assert_eq!(
        codes(text),
        [
            Code::UnknownKey,
            Code::UnknownKey,
            Code::WrongType,
            Code::WrongType,
            Code::MissingKey,
        ]
    );
    let out = rendered(text);
    assert!(out.contains("see docs/deployment-format.md"), "{out}");
    assert!(out.contains("this site flow has no `purpose`"), "{out}");
}

#[test]
fn unknown_names_get_did_you_mean() {
    let text = "deployment: 1
features: [slak-alerts]
parameters: {cache-prt: 6379, db-port: 70000}
components:
  wbe: {addresses: [192.0.2.10]}
  slack: {addresses: [192.0.2.11]}
  db: {addresses: [192.0.2.20]}
  cache: {addresses: [192.0.2.21]}
externals:
  irk: {addresses: [198.51.100.7]}
";
    let out = rendered(text);
    assert_eq!(
        codes(text),
        [
            Code::DeploymentUnknownFeature,
            Code::DeploymentUnknownParameter,
            Code::DeploymentInvalidPort,
            Code::DeploymentUnknownComponent,
            Code::DeploymentUnknownComponent,
            Code::DeploymentUnknownExternal,
        ]
    );
    assert!(out.contains("did you mean `slack-alerts`?"), "{out}");
    assert!(out.contains("did you mean `cache-port`?"), "{out}");
    assert!(out.contains("did you mean `web`?"), "{out}");
    assert!(
        out.contains("`slack` is an external endpoint: put it under `externals:`"),
        "{out}"
    );
    assert!(out.contains("did you mean `irc`?"), "{out}");
    assert!(out.contains("deployment.yaml:2:12"), "{out}");
    insta::assert_snapshot!("unknown_names", out);
}

#[test]
fn invalid_addresses_are_located() {
    let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.300, 192.0.2.5/24, not an address, \"2001:db8::1::2\"]}
  db: {addresses: [192.0.2.20]}
  cache: {addresses: [192.0.2.21]}
externals:
  slack: {proxy: 192.0.2.50}
";
    assert_eq!(
        codes(text),
        [Code::DeploymentInvalidAddress; 5],
        "{}",
        rendered(text)
    );
    let out = rendered(text);
    assert!(
        out.contains("host bits set: the block is 192.0.2.0/24"),
        "{out}"
    );
    assert!(out.contains("deployment.yaml:4:21"), "{out}");
    insta::assert_snapshot!("invalid_addresses", out);
}

#[test]
fn overlapping_addresses_between_components_are_errors() {
    let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.0/24]}
  db: {addresses: [192.0.2.10]}
  cache: {addresses: [203.0.113.5]}
  users: {addresses: [192.0.2.0/24]}
";
    // users is the outside world: overlapping it is its point.
    assert_eq!(
        codes(text),
        [
            Code::DeploymentOverlappingAddresses,
            Code::DeploymentOverlappingAddresses
        ],
        "{}",
        rendered(text)
    );
    insta::assert_snapshot!("overlapping_addresses", rendered(text));
    // The same address twice within one component is not an overlap.
    assert_eq!(
        codes(&GOOD.replace("192.0.2.20]", "192.0.2.20, 192.0.2.20/32]")),
        [Code::DeploymentNoDnsFlow]
    );
}

#[test]
fn components_with_equal_address_sets_share_one_host() {
    let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  db: {addresses: [\"2001:db8::10\", 192.0.2.10/32]}
  web: {addresses: [192.0.2.10, \"2001:db8::10\"]}
  cache: {addresses: [192.0.2.20]}
";
    let loaded = load(text).expect("equal sets are one host, not an overlap");
    assert!(loaded.warnings.items.is_empty(), "{}", rendered(text));
    let spec = spec();
    let hosts = loaded.value.hosts(&spec);
    let id = |name| spec.component_by_id(name).expect("component");
    assert_eq!(hosts.len(), 2);
    // Spec order names the host, whatever order the deployment uses.
    assert_eq!(hosts[0].name, "web+db");
    assert!(!hosts[0].named);
    assert_eq!(hosts[0].components, [id("web"), id("db")]);
    assert!(hosts[0].is_one_machine());
    assert_eq!(hosts[1].name, "cache");
    assert_eq!(hosts[1].components, [id("cache")]);
    assert_eq!(
        loaded.value.host_of(&spec, id("db")).map(|h| h.name),
        Some("web+db".to_owned())
    );
    // The outside world and components without addresses are on no host.
    assert!(loaded.value.host_of(&spec, id("users")).is_none());

    // Several machines running the same roles are one host group, not one machine.
    let group = load(&text.replace("\"2001:db8::10\"", "192.0.2.11"))
        .expect("valid")
        .value;
    let hosts = group.hosts(&spec);
    assert_eq!(hosts[0].components.len(), 2);
    assert!(!hosts[0].is_one_machine());
}

#[test]
fn a_partial_overlap_with_a_shared_host_is_still_an_error_once() {
    let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.10, 192.0.2.11]}
  db: {addresses: [192.0.2.11, 192.0.2.10]}
  cache: {addresses: [192.0.2.10]}
";
    // web and db share a host; cache is on one of its addresses only:
    // a rule about cache would match web and db. Reported once, not
    // once per component of the host.
    assert_eq!(
        codes(text),
        [Code::DeploymentOverlappingAddresses],
        "{}",
        rendered(text)
    );
    let out = messages(text);
    assert!(
        out.contains("component `web` and component `cache` share the address 192.0.2.10"),
        "{out}"
    );
    assert!(
        out.contains("give them exactly the same addresses"),
        "{out}"
    );
    assert!(rendered(text).contains("deployment.yaml:6:23"));
    // A block and an address inside it are a partial overlap too.
    let block = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.0/24]}
  db: {addresses: [192.0.2.0/24]}
  cache: {addresses: [192.0.2.0/25]}
";
    assert_eq!(codes(block), [Code::DeploymentOverlappingAddresses]);
}

#[test]
fn host_names_are_checked() {
    let named = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {addresses: [192.0.2.10], host: app1}
  db: {addresses: [192.0.2.10]}
  cache: {addresses: [192.0.2.20]}
";
    let loaded = load(named).expect("valid");
    let spec = spec();
    let hosts = loaded.value.hosts(&spec);
    assert_eq!(hosts[0].name, "app1");
    assert!(hosts[0].named);
    assert_eq!(hosts[0].components.len(), 2);
    // The same name on both components of a host is fine.
    assert!(load(&named.replace(
        "[192.0.2.10]}\n  cache",
        "[192.0.2.10], host: app1}\n  cache"
    ))
    .is_ok());

    let cases = [
        // Two names for one host.
        (
            named.replace(
                "[192.0.2.10]}\n  cache",
                "[192.0.2.10], host: app2}\n  cache",
            ),
            Code::DeploymentHostConflict,
            "name it `app1` and `app2`",
        ),
        // One name for two hosts.
        (
            named.replace("[192.0.2.20]}", "[192.0.2.20], host: app1}"),
            Code::DeploymentHostConflict,
            "host name `app1` is also the name of the host of `web`, `db`",
        ),
        // The default name of another host.
        (
            named.replace("host: app1", "host: cache"),
            Code::DeploymentHostConflict,
            "`cache` is also the name of the host of `cache`",
        ),
        // The id of a component elsewhere, without addresses of its own.
        (
            named.replace("host: app1", "host: users"),
            Code::DeploymentHostConflict,
            "is the id of a component that does not run on this host",
        ),
        // Not a usable file name.
        (
            named.replace("host: app1", "host: ../etc"),
            Code::DeploymentInvalidPlacement,
            "`../etc` is not a host name",
        ),
        // A name without addresses names nothing.
        (
            named.replace(
                "cache: {addresses: [192.0.2.20]}",
                "cache: {addresses: [192.0.2.20]}\n  users: {host: world}",
            ),
            Code::DeploymentInvalidPlacement,
            "`users` is the outside world",
        ),
    ];
    for (text, code, fragment) in cases {
        let out = rendered(&text);
        assert_eq!(codes(&text), [code], "{out}");
        assert!(messages(&text).contains(fragment), "{fragment}: {out}");
        // Located at the `host:` value.
        assert!(out.contains("host: ") && out.contains("──┬"), "{out}");
    }
    insta::assert_snapshot!(
        "host_conflict",
        rendered(&named.replace(
            "[192.0.2.10]}\n  cache",
            "[192.0.2.10], host: app2}\n  cache"
        ))
    );
}

#[test]
fn required_flows_need_placed_ends_and_parameter_values() {
    let text = "deployment: 1
features: [irc-alerts]
components:
  web: {addresses: [192.0.2.10]}
  cache:
";
    let found = codes(text);
    assert_eq!(
        found,
        [
            Code::DeploymentUnplacedFlow,
            Code::DeploymentMissingParameter,
            Code::DeploymentUnplacedFlow,
            Code::DeploymentUnplacedOptionalFlow,
        ],
        "{}",
        rendered(text)
    );
    insta::assert_snapshot!("unplaced", rendered(text));
}

#[test]
fn kubernetes_and_aws_placements_are_checked() {
    let text = "deployment: 1
parameters: {cache-port: 6379}
components:
  web:
    addresses: [192.0.2.10]
    kubernetes: {namespace: Web_NS, pod_selector: {app: web, \"bad key!\": x}}
    aws: {security_group: sg-123}
  db:
    aws: {security_group: demo-db}
  cache:
    kubernetes: {namespace: demo, pod_selector: {app.kubernetes.io/name: cache}}
externals:
  slack: {aws: {security_group: nope}}
  partner: {aws: {prefix_list: pl-zz}}
";
    assert_eq!(
        codes(text),
        [Code::DeploymentInvalidPlacement; 5],
        "{}",
        rendered(text)
    );
    // A valid selector and security group place a component.
    let ok = "deployment: 1
parameters: {cache-port: 6379}
components:
  web: {kubernetes: {namespace: demo, pod_selector: {app: web}}}
  db: {aws: {security_group: demo-db}}
  cache: {aws: {prefix_list: pl-6da54004}}
";
    let loaded = load(ok).expect("valid");
    let spec = spec();
    let web = spec.component_by_id("web").expect("web");
    let k = loaded.value.components[&web]
        .kubernetes
        .clone()
        .expect("selector");
    assert_eq!(k.namespace, "demo");
    assert_eq!(k.pod_selector["app"], "web");
}

#[test]
fn structural_errors_point_at_the_deployment_format() {
    let text = "deployment: 1\ncomponents:\n  web: {adresses: [192.0.2.10]}\n";
    let err = load(text).expect_err("unknown key");
    assert_eq!(err.items[0].code, Code::UnknownKey);
    assert_eq!(
        err.items[0].help.as_deref(),
        Some("did you mean `addresses`?")
    );
    let err = load("deployment: 2\ncomponents: {}\n").expect_err("version");
    assert_eq!(err.items[0].code, Code::UnsupportedVersion);
    let err = load("  \n").expect_err("empty");
    assert!(err.items[0]
        .help
        .as_deref()
        .is_some_and(|h| h.contains("deployment-format.md")));
    let err = load("deployment: 1\ncomponents: [web]\n").expect_err("list");
    assert_eq!(err.items[0].code, Code::YamlSyntax);
    assert!(
        err.items[0].message.contains("mapping"),
        "{}",
        err.items[0].message
    );
}

#[test]
fn the_overlap_sweep_finds_every_pair_the_pairwise_scan_finds() {
    let nets: Vec<IpNet> = [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.2.3/32",
        "10.1.2.3/32",
        "10.2.0.0/16",
        "192.0.2.0/24",
        "192.0.2.128/25",
        "198.51.100.7/32",
        "2001:db8::/32",
        "2001:db8::10/128",
        "0.0.0.0/0",
        "10.1.2.3/32",
    ]
    .iter()
    .map(|n| n.parse().expect("net"))
    .collect();
    let mut pairwise = Vec::new();
    for i in 0..nets.len() {
        for j in i + 1..nets.len() {
            if nets[i].contains(&nets[j].network()) || nets[j].contains(&nets[i].network()) {
                pairwise.push((i, j));
            }
        }
    }
    assert_eq!(overlapping_pairs(&nets, |_, _| true), pairwise);
    let odd = |i: usize, j: usize| (i + j) % 2 == 1;
    let kept: Vec<_> = pairwise.into_iter().filter(|&(i, j)| odd(i, j)).collect();
    assert_eq!(overlapping_pairs(&nets, odd), kept);
}

#[test]
fn addresses_and_proxies_parse() {
    assert_eq!(
        parse_address("192.0.2.0/24"),
        Ok(Address::Net("192.0.2.0/24".parse().expect("net")))
    );
    assert_eq!(
        parse_address("DB.Example.NET"),
        Ok(Address::Host("db.example.net".into()))
    );
    assert!(parse_address("10.0.0.256").is_err());
    assert!(parse_address("*.example.net").is_err());
    assert!(parse_address("2001:db8::1/129").is_err());
    let p = parse_proxy("[2001:db8::50]:3128").expect("v6 proxy");
    assert_eq!(p.to_string(), "[2001:db8::50]:3128");
    assert_eq!(
        parse_proxy("proxy.example.net:8080").expect("named").port,
        8080
    );
    assert!(parse_proxy("192.0.2.50:0").is_err());
    assert!(parse_proxy("192.0.2.0/24:3128").is_err());
}

#[test]
fn schema_describes_the_top_level_keys() {
    let schema: serde_json::Value =
        serde_json::from_str(&deployment_schema()).expect("schema is JSON");
    assert_eq!(schema["title"], "Portolan deployment");
    assert!(
        schema.to_string().contains("\"host\""),
        "schema lacks components' host"
    );
    for key in [
        "deployment",
        "features",
        "parameters",
        "components",
        "externals",
    ] {
        assert!(
            schema["properties"].get(key).is_some(),
            "schema lacks {key}"
        );
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
}
