//! Site flows and the three modes of the host targets, proved in the
//! kernel: a host namespace already has its own firewall (a hand-written
//! nftables table, or an iptables ruleset laid out as ufw writes it), the
//! generated chain or audit file is loaded beside it, and TCP connections
//! from a peer namespace, from chosen source addresses, show that the
//! host's own rules still work, that the spec's and the site's flows pass
//! (chain mode), and that audit mode blocks and opens nothing but counts.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::Path;
use std::time::Duration;

use portolan_firewall::{Mode, Options, TargetKind};
use portolan_spec::deployment::load_deployment;
use portolan_spec::plan::{plan, Plan};
use portolan_spec::{load_spec, SourceFile};

use portolan_test_support::Netns;

use super::{generate, lab, stderr};

const SPEC: &str = "portolan: 1
system: {name: Shop}
components:
  - {id: app}
  - {id: db, kind: dependency}
flows:
  - {from: app, to: db, protocol: tcp, port: 5432}
";

/// Addresses inside the namespaces only (198.18.0.0/15, no route out).
const DEPLOYMENT: &str = "deployment: 1
name: lab
components:
  app: {addresses: [198.18.0.2]}
  db: {addresses: [198.18.0.1]}
site:
  - {from: 198.18.0.3, protocol: tcp, port: 22, purpose: admin SSH}
";

fn site_plan() -> Plan {
    let spec = load_spec(SourceFile::new("portolan.yaml", SPEC))
        .expect("spec")
        .value;
    let deployment = load_deployment(SourceFile::new("deployment.yaml", DEPLOYMENT), &spec)
        .expect("deployment")
        .value;
    plan(&spec, &deployment)
}

fn file(target: TargetKind, mode: Mode, name: &str) -> String {
    let options = Options {
        component: Some("db".into()),
        mode,
        ..Options::default()
    };
    let generated = generate(&site_plan(), target, &options);
    generated
        .files
        .iter()
        .find(|(path, _)| path.to_str() == Some(name))
        .map(|(_, text)| text.clone())
        .unwrap_or_else(|| panic!("{name} generated"))
}

#[test]
fn site_flows_are_labelled_in_every_mode_and_target() {
    for mode in [Mode::Standalone, Mode::Chain, Mode::Audit] {
        let nft = file(TargetKind::Nftables, mode, "db.nft");
        let ipt = file(TargetKind::Iptables, mode, "db.rules.v4");
        for text in [&nft, &ipt] {
            assert!(
                text.contains("# Site flows (the deployment's `site:`"),
                "{text}"
            );
            assert!(text.contains("comment \"site:admin-ssh@db\""), "{text}");
            assert!(text.contains("Site flows (1 rule(s)"), "{text}");
            // The site flow comes after the spec's.
            let spec_at = text.find("app->db/tcp/5432").expect("spec flow");
            let site_at = text.rfind("site:admin-ssh").expect("site flow");
            assert!(spec_at < site_at, "{text}");
        }
        insta::assert_snapshot!(format!("modes_{}_nft", mode.as_str()), nft);
        insta::assert_snapshot!(format!("modes_{}_iptables", mode.as_str()), ipt);
    }
    let chain = file(TargetKind::Nftables, Mode::Chain, "db.nft");
    assert!(
        !chain.contains("type filter hook"),
        "no base chain in chain mode:\n{chain}"
    );
    assert!(!chain.contains("; policy "), "{chain}");
    let chain = file(TargetKind::Iptables, Mode::Chain, "db.rules.v4");
    assert!(
        !chain.contains(":INPUT"),
        "the filter table is not replaced:\n{chain}"
    );
    let audit = file(TargetKind::Iptables, Mode::Audit, "db.rules.v4");
    assert!(
        !audit.contains("-j ACCEPT") && !audit.contains("-j DROP"),
        "{audit}"
    );
}

/// The two namespaces: `host` (198.18.0.1, runs db) and `peer`
/// (198.18.0.2 = app, 198.18.0.3 = the admin network), joined by a veth
/// pair created inside them.
struct Pair {
    host: Netns,
    peer: Netns,
}

fn pair(tools: &[&str]) -> Option<Pair> {
    let host = lab(tools)?;
    let peer = lab(tools)?;
    let link = host.exec(
        "ip",
        &[
            "link",
            "add",
            "veth-h",
            "type",
            "veth",
            "peer",
            "name",
            "veth-p",
            "netns",
            peer.name(),
        ],
    );
    assert!(link.status.success(), "{}", stderr(&link));
    for (ns, dev, addresses) in [
        (&host, "veth-h", &["198.18.0.1/24"][..]),
        (&peer, "veth-p", &["198.18.0.2/24", "198.18.0.3/24"][..]),
    ] {
        for address in addresses {
            let out = ns.exec("ip", &["addr", "add", address, "dev", dev]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        for dev in [dev, "lo"] {
            let out = ns.exec("ip", &["link", "set", dev, "up"]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
    Some(Pair { host, peer })
}

/// The ports the host listens on: the spec's flow, the site's, the
/// host's own service and one nothing allows.
const PORTS: [u16; 4] = [5432, 22, 9100, 7777];

/// Which of the probes connect: (source address, port) from the peer to
/// the host. A dropped SYN ends at the timeout; a refusal would mean no
/// listener, which cannot happen here (every port listens).
fn probe(pair: &Pair, probes: &[(Ipv4Addr, u16)]) -> Vec<bool> {
    let _listeners: Vec<TcpListener> = pair.host.run(|| {
        PORTS
            .iter()
            .map(|p| TcpListener::bind(("198.18.0.1", *p)).expect("listen in the host namespace"))
            .collect()
    });
    pair.peer.run(|| {
        probes
            .iter()
            .map(|(source, port)| {
                let socket = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::STREAM,
                    Some(socket2::Protocol::TCP),
                )
                .expect("socket");
                socket
                    .bind(&SocketAddr::V4(SocketAddrV4::new(*source, 0)).into())
                    .expect("bind the source address");
                let to = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), *port));
                socket
                    .connect_timeout(&to.into(), Duration::from_millis(1500))
                    .is_ok()
            })
            .collect()
    })
}

const APP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const ADMIN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// spec flow, site flow, host's own rule, nothing, site flow from the
/// wrong source, spec flow from the wrong source.
const PROBES: [(Ipv4Addr, u16); 6] = [
    (APP, 5432),
    (ADMIN, 22),
    (APP, 9100),
    (APP, 7777),
    (APP, 22),
    (ADMIN, 5432),
];

fn load(ns: &Netns, program: &str, args: &[&str], text: &str, dir: &Path, name: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    let mut all: Vec<&str> = args.to_vec();
    let path = path.to_str().expect("utf-8").to_owned();
    all.push(&path);
    let out = ns.exec(program, &all);
    assert!(
        out.status.success(),
        "{program} {all:?}: {}\n{text}",
        stderr(&out)
    );
}

/// A firewall written by hand, as on a plain nftables host: policy drop,
/// established and loopback accepted, the host's own node exporter open.
const HAND_WRITTEN: &str = "table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t\tiif \"lo\" accept
\t\ttcp dport 9100 accept comment \"host's own: node exporter\"
\t}
}
";

#[test]
fn nftables_chain_and_audit_modes_beside_a_hand_written_ruleset() {
    let Some(pair) = pair(&["nft", "ip"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    load(
        &pair.host,
        "nft",
        &["-f"],
        HAND_WRITTEN,
        dir.path(),
        "own.nft",
    );
    let before = probe(&pair, &PROBES);
    assert_eq!(
        before,
        [false, false, true, false, false, false],
        "the host's own firewall alone"
    );

    // Audit: nothing changes, the spec's flow is counted, the rest logged and counted.
    let audit = file(TargetKind::Nftables, Mode::Audit, "db.nft");
    load(
        &pair.host,
        "nft",
        &["-c", "-f"],
        &audit,
        dir.path(),
        "audit.nft",
    );
    for _ in 0..2 {
        load(&pair.host, "nft", &["-f"], &audit, dir.path(), "audit.nft");
    }
    assert_eq!(
        probe(&pair, &PROBES),
        before,
        "audit mode blocks and opens nothing"
    );
    let listed = pair
        .host
        .exec("nft", &["list", "table", "inet", "portolan"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let packets = |comment: &str| -> u64 {
        let line = listed
            .lines()
            .find(|l| l.contains(comment))
            .unwrap_or_else(|| panic!("{comment} in\n{listed}"));
        let after = line.split("counter packets ").nth(1).expect("counter");
        after
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count")
    };
    assert!(packets("comment \"app->db/tcp/5432\"") >= 1, "{listed}");
    assert!(packets("comment \"site:admin-ssh@db\"") >= 1, "{listed}");
    assert!(
        packets("comment \"would drop: not in spec\"") >= 3,
        "{listed}"
    );
    let out = pair
        .host
        .exec("nft", &["delete", "table", "inet", "portolan"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Chain: loaded (twice: a reload refills, never duplicates), then jumped to.
    let chain = file(TargetKind::Nftables, Mode::Chain, "db.nft");
    load(
        &pair.host,
        "nft",
        &["-c", "-f"],
        &chain,
        dir.path(),
        "chain.nft",
    );
    load(&pair.host, "nft", &["-f"], &chain, dir.path(), "chain.nft");
    assert_eq!(
        probe(&pair, &PROBES),
        before,
        "loaded but not jumped to: no change"
    );
    let out = pair.host.exec(
        "nft",
        &[
            "insert",
            "rule",
            "inet",
            "filter",
            "input",
            "jump",
            "portolan_input",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    load(&pair.host, "nft", &["-f"], &chain, dir.path(), "chain.nft");
    let listed = pair.host.exec(
        "nft",
        &["list", "chain", "inet", "filter", "portolan_input"],
    );
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(
        listed.matches("comment \"site:admin-ssh@db\"").count(),
        1,
        "{listed}"
    );
    assert_eq!(
        probe(&pair, &PROBES),
        [true, true, true, false, false, false],
        "spec and site flows pass, from their sources only; the host's own rule still works"
    );
}

/// A ruleset laid out as ufw writes it (before, user and after chains,
/// policy drop), with the host's own node exporter open.
const UFW_LIKE: &str = "*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-before-input - [0:0]
:ufw-user-input - [0:0]
:ufw-after-input - [0:0]
-A INPUT -j ufw-before-input
-A INPUT -j ufw-user-input
-A INPUT -j ufw-after-input
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw-user-input -p tcp -m tcp --dport 9100 -j ACCEPT
COMMIT
";

#[test]
fn iptables_chain_and_audit_modes_beside_a_ufw_like_ruleset() {
    let Some(pair) = pair(&["iptables-restore", "iptables", "ip"]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    load(
        &pair.host,
        "iptables-restore",
        &[],
        UFW_LIKE,
        dir.path(),
        "ufw.rules",
    );
    let before = probe(&pair, &PROBES);
    assert_eq!(
        before,
        [false, false, true, false, false, false],
        "ufw alone"
    );

    let audit = file(TargetKind::Iptables, Mode::Audit, "db.rules.v4");
    load(
        &pair.host,
        "iptables-restore",
        &["--test", "--noflush"],
        &audit,
        dir.path(),
        "audit.v4",
    );
    load(
        &pair.host,
        "iptables-restore",
        &["--noflush"],
        &audit,
        dir.path(),
        "audit.v4",
    );
    let out = pair
        .host
        .exec("iptables", &["-I", "INPUT", "-j", "PORTOLAN-INPUT"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        probe(&pair, &PROBES),
        before,
        "audit mode blocks and opens nothing"
    );
    let listed = pair
        .host
        .exec("iptables", &["-L", "PORTOLAN-INPUT", "-v", "-n", "-x"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let packets = |needle: &str| -> u64 {
        let line = listed
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in\n{listed}"));
        line.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count")
    };
    assert!(packets("/* app->db/tcp/5432 */") >= 1, "{listed}");
    assert!(packets("/* site:admin-ssh@db */") >= 1, "{listed}");
    assert!(packets("portolan not in spec in") >= 3, "{listed}");

    // Chain mode refills the same chains: the jump stays, the verdicts change.
    let chain = file(TargetKind::Iptables, Mode::Chain, "db.rules.v4");
    load(
        &pair.host,
        "iptables-restore",
        &["--noflush"],
        &chain,
        dir.path(),
        "chain.v4",
    );
    load(
        &pair.host,
        "iptables-restore",
        &["--noflush"],
        &chain,
        dir.path(),
        "chain.v4",
    );
    let saved = pair.host.exec("iptables-save", &["-t", "filter"]);
    let saved = String::from_utf8_lossy(&saved.stdout).into_owned();
    assert_eq!(saved.matches("-j PORTOLAN-INPUT").count(), 1, "{saved}");
    assert_eq!(saved.matches("site:admin-ssh@db").count(), 1, "{saved}");
    assert!(
        saved.contains("-A ufw-user-input -p tcp -m tcp --dport 9100 -j ACCEPT"),
        "{saved}"
    );
    assert_eq!(
        probe(&pair, &PROBES),
        [true, true, true, false, false, false],
        "spec and site flows pass, from their sources only; ufw's own rule still works"
    );
}

/// Site flows reach the cloud targets too, named in their comments.
#[test]
fn site_flows_reach_kubernetes_cilium_and_aws() {
    let spec = load_spec(SourceFile::new("portolan.yaml", SPEC))
        .expect("spec")
        .value;
    let deployment = load_deployment(
        SourceFile::new(
            "deployment.yaml",
            "deployment: 1
components:
  app: {kubernetes: {namespace: shop, pod_selector: {app: app}}, aws: {security_group: app}}
  db: {kubernetes: {namespace: shop, pod_selector: {app: db}}, aws: {security_group: db}}
site:
  - {from: 198.51.100.0/24, to: [db], protocol: tcp, port: 9187, purpose: postgres exporter scrape}
",
        ),
        &spec,
    )
    .expect("deployment")
    .value;
    let plan = plan(&spec, &deployment);
    let options = Options::default();
    let k8s = generate(&plan, TargetKind::Kubernetes, &options);
    let db = &k8s
        .files
        .iter()
        .find(|(p, _)| p.to_str() == Some("db.networkpolicy.yaml"))
        .expect("db")
        .1;
    assert!(
        db.contains("#   site:postgres-exporter-scrape (postgres exporter scrape)"),
        "{db}"
    );
    assert!(db.contains("cidr: 198.51.100.0/24"), "{db}");
    assert!(db.contains("port: 9187"), "{db}");
    let app = &k8s
        .files
        .iter()
        .find(|(p, _)| p.to_str() == Some("app.networkpolicy.yaml"))
        .expect("app")
        .1;
    assert!(!app.contains("site:"), "{app}");
    let cilium = generate(&plan, TargetKind::Cilium, &options);
    let db = &cilium
        .files
        .iter()
        .find(|(p, _)| p.to_str() == Some("db.ciliumnetworkpolicy.yaml"))
        .expect("db")
        .1;
    assert!(
        db.contains("site:postgres-exporter-scrape") && db.contains("198.51.100.0/24"),
        "{db}"
    );
    let aws = generate(&plan, TargetKind::Aws, &options);
    let text = &aws.files[0].1;
    assert!(
        text.contains("site:postgres-exporter-scrape (site flow: postgres exporter scrape)"),
        "{text}"
    );
    assert!(text.contains("198.51.100.0/24"), "{text}");
}
