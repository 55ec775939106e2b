//! `portolan preflight` over real SSH: Debian's `sshd` in network
//! namespaces made by the test (lab addresses in 198.18.0.0/16, no route
//! out), throwaway host and user keys, a throwaway `known_hosts` and ssh
//! configuration, and `portolan preflight` itself run from a client
//! namespace (never the root namespace). The namespaces share this
//! machine's filesystem, so each host's private directory is distinct by
//! `mktemp`, and cleanup is verified by path and by process.
//!
//! Needs root, `nft`, `sshd` and `ssh-keygen`; skips loudly otherwise,
//! unless `PORTOLAN_REQUIRE_LAB=1`.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portolan_lab::{Lab, Topology};
use serde_json::Value;

const SSHD: &str = "/usr/sbin/sshd";

/// Whether the SSH lab can run here: root, `sshd` and `nft`.
fn available(test: &str) -> bool {
    portolan_test_support::lab_available_with(
        test,
        portolan_lab::check_privileges(),
        &[("sshd", "openssh-server"), portolan_test_support::NFT],
    )
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A throwaway login without sudo rights, removed on drop.
struct User {
    name: String,
    made: bool,
}

impl User {
    fn create(home: &Path) -> Self {
        let name = format!("ptl-nosudo{}", std::process::id() % 100_000);
        let _ = Command::new("userdel").arg(&name).output();
        run(
            "useradd",
            &[
                "-M",
                "-N",
                "-s",
                "/bin/sh",
                "-d",
                home.to_str().unwrap(),
                "-p",
                "*",
                &name,
            ],
        );
        Self { name, made: true }
    }

    /// No user (the lab has no `nosudo` host).
    fn none() -> Self {
        Self {
            name: "nobody".to_owned(),
            made: false,
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        if self.made {
            // Its sessions first: sshd's per-connection processes can
            // outlive the daemons and the namespaces, and userdel refuses a
            // user that still has processes (the user then stayed behind).
            let _ = Command::new("pkill").args(["-u", &self.name]).output();
            for _ in 0..50 {
                let busy = Command::new("pgrep")
                    .args(["-u", &self.name])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !busy {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = Command::new("pkill")
                .args(["-KILL", "-u", &self.name])
                .output();
            let _ = Command::new("userdel").arg(&self.name).output();
        }
    }
}

/// Makes sure `/run/sshd` (sshd's privilege separation directory) exists.
///
/// It is the system's own directory (Debian's ssh service makes it at
/// boot; `.ci/run` makes it too), not this test's, so it is never removed:
/// every sshd on the machine needs it while it accepts connections, and
/// removing it at the end of one run made the children of every other
/// sshd then running (another test binary, the fleet benchmark) exit at
/// once, which clients saw as "kex_exchange_identification: Connection
/// reset by peer" on every host.
fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.is_dir() {
        // Another run may make it at the same moment: only its absence
        // afterwards is an error.
        let _ = std::fs::create_dir(dir);
        assert!(dir.is_dir(), "could not make /run/sshd");
    }
}

/// sshd daemons in lab hosts, killed on drop (before the lab goes).
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The lab: hosts, keys, sshd everywhere but `down`, the ssh config.
struct SshLab {
    daemons: Daemons,
    lab: Lab,
    dir: tempfile::TempDir,
    _user: User,
}

impl SshLab {
    /// A client namespace and `hosts`, each running sshd but `down`; the
    /// login on `nosudo` is a throwaway user without sudo, root elsewhere.
    fn start(hosts: &[&str]) -> Self {
        let hosts: Vec<&str> = std::iter::once("client")
            .chain(hosts.iter().copied())
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut permissions = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(dir.path(), permissions).unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        for key in ["host_key", "user_key"] {
            run(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", &path(key)],
            );
        }
        std::fs::copy(path("user_key.pub"), path("authorized_keys")).unwrap();
        let user = if hosts.contains(&"nosudo") {
            User::create(dir.path())
        } else {
            User::none()
        };
        ensure_privsep_dir();
        let mut topology = Topology::new();
        for host in &hosts {
            topology.add_host(host).expect("host");
        }
        let lab = Lab::create(topology).expect("lab");
        let host_key = std::fs::read_to_string(path("host_key.pub")).unwrap();
        let mut known = String::new();
        let mut daemons = Daemons(Vec::new());
        for host in &hosts[1..] {
            let ip = lab.host(host).unwrap().ipv4();
            known.push_str(&format!("{ip} {}\n", host_key.trim()));
            if *host == "down" {
                continue;
            }
            let config = path(&format!("sshd_{host}"));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress {ip}\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     MaxSessions 64\nMaxStartups 100\nLogLevel ERROR\n",
                    path("host_key"),
                    path("authorized_keys")
                ),
            )
            .unwrap();
            let mut command = Command::new(SSHD);
            command
                .args(["-D", "-e", "-f", &config])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            daemons.0.push(lab.spawn(host, command).expect("sshd"));
        }
        std::fs::write(path("known_hosts"), known).unwrap();
        let nosudo = lab
            .host("nosudo")
            .map_or_else(|_| "nosudo".to_owned(), |h| h.ipv4().to_string());
        std::fs::write(
            path("ssh_config"),
            format!(
                "Host {nosudo}\n  User {}\nHost *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                user.name,
                path("user_key"),
                path("known_hosts")
            ),
        )
        .unwrap();
        let this = Self {
            daemons,
            lab,
            dir,
            _user: user,
        };
        // Each sshd accepts connections before the test goes on.
        for host in hosts.iter().filter(|h| !["client", "down"].contains(h)) {
            let target = SocketAddr::from((this.ip(host), 22));
            let up = this
                .lab
                .run_in("client", move || {
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while Instant::now() < deadline {
                        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                            return true;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    false
                })
                .unwrap()
                .join()
                .unwrap();
            assert!(up, "sshd on {host} never accepted a connection");
        }
        this
    }

    fn ip(&self, host: &str) -> Ipv4Addr {
        self.lab.host(host).unwrap().ipv4()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn command(&self, spec: &str, deployment: &str, extra: &[&str]) -> Command {
        let mut command = super::portolan_command();
        command.args([
            "preflight",
            spec,
            "-d",
            deployment,
            "-F",
            &self.path("ssh_config"),
        ]);
        // Generous: the machine may be busy, and a late answer is a failure.
        if !extra.contains(&"--timeout") {
            command.args(["--timeout", "3000", "--retries", "1"]);
        }
        command
            .args(extra)
            .env("COLUMNS", "200")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("HTTPS_PROXY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `portolan preflight` in the client namespace, to its end.
    fn preflight(&self, spec: &str, deployment: &str, extra: &[&str]) -> Output {
        self.lab
            .exec("client", self.command(spec, deployment, extra))
            .expect("preflight runs")
    }
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every private directory is gone and no process runs from one.
fn assert_clean(dirs: &[String]) {
    assert!(!dirs.is_empty(), "no directory was reported");
    for dir in dirs {
        assert!(dir.contains("/portolan-preflight."), "{dir}");
        assert!(!Path::new(dir).exists(), "{dir} was left behind");
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        for dir in dirs {
            assert!(
                !cmdline.contains(dir.as_str()),
                "a process still runs from {dir}: {cmdline}"
            );
        }
    }
}

fn report(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("JSON")
}

fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {report:#}"))
}

fn dirs(report: &Value) -> Vec<String> {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["dir"].as_str().map(str::to_owned))
        .collect()
}

fn class(report: &Value, flow: &str) -> String {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["checks"].as_array().unwrap())
        .find(|c| c["flow"] == flow)
        .unwrap_or_else(|| panic!("no check of {flow}"))["result"]["outcome"]["class"]
        .as_str()
        .unwrap()
        .to_owned()
}

const SPEC: &str = "portolan: 1
system: {name: Fleet Lab}
components:
  - {id: api, name: API}
  - {id: db, name: Database, kind: dependency}
  - {id: cache, name: Cache}
flows:
  - {from: api, to: db, protocol: tcp, port: 5432}
  - {from: api, to: db, protocol: tcp, port: 6000}
  - {from: api, to: cache, protocol: udp, port: 11211}
  - {from: cache, to: db, protocol: tcp, port: 5432}
";

const SPEC_MORE: &str = "portolan: 1
system: {name: Fleet Lab}
components:
  - {id: api, name: API}
  - {id: db, name: Database, kind: dependency}
  - {id: idle, name: Idle}
  - {id: worker, name: Worker}
flows:
  - {from: api, to: db, protocol: tcp, port: 5432}
  - {from: api, to: idle, protocol: tcp, port: 7000}
  - {from: worker, to: db, protocol: tcp, port: 5432}
";

/// One SSH lab at a time (see the tests).
static SSH_LABS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn preflight_over_real_ssh() {
    // The SSH labs share the machine's sshd run-time state (/run/sshd, the
    // throwaway users): run them one at a time, never side by side.
    let _serial = SSH_LABS.lock().unwrap_or_else(|e| e.into_inner());
    if !available("preflight_over_real_ssh") {
        return;
    }
    let lab = SshLab::start(&["api", "db", "cache", "down", "nosudo"]);
    let spec = lab.write("portolan.yaml", SPEC);
    let deployment = lab.write(
        "deployment.yaml",
        &format!(
            "deployment: 1\nname: fleet-lab\ncomponents:\n  api: {{addresses: [{}]}}\n  db: {{addresses: [{}]}}\n  cache: {{addresses: [{}]}}\n",
            lab.ip("api"),
            lab.ip("db"),
            lab.ip("cache")
        ),
    );

    // 1. Every host reached, every flow open: exit 0.
    let json = lab.path("all-pass.json");
    let out = lab.preflight(&spec, &deployment, &["-f", "json", "-o", &json]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = report(&json);
    assert_eq!(r["format"], "portolan-fleet-results/1");
    assert_eq!(r["passed"], true);
    for name in ["api", "db", "cache"] {
        let h = host(&r, name);
        assert_eq!(h["status"], "checked", "{h:#}");
        assert_eq!(h["reached"], format!("ssh {}", lab.ip(name)));
        assert!(
            h["binary"].as_str().unwrap().starts_with("copied to "),
            "{h:#}"
        );
        assert!(
            h["cleanup"].as_str().unwrap().starts_with("removed "),
            "{h:#}"
        );
    }
    assert_eq!(class(&r, "api->db/tcp/5432"), "open");
    assert_eq!(class(&r, "api->db/tcp/6000"), "open");
    assert_eq!(class(&r, "api->cache/udp/11211"), "open");
    assert_eq!(class(&r, "cache->db/tcp/5432"), "open");
    let stopped = host(&r, "db")["listeners"][0]["stopped"].as_str().unwrap();
    assert!(
        stopped.starts_with("stopped: 3 TCP connection(s) accepted"),
        "{stopped}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Fleet Lab: 3 of 3 host(s) checked"),
        "{table}"
    );
    assert_clean(&dirs(&r));

    // 2. A port dropped on db: exit 1, the flow filtered; markdown says so.
    lab.lab
        .load_nft(
            "db",
            "table inet fleet_test {\n  chain input {\n    type filter hook input priority filter; policy accept;\n    tcp dport 6000 drop\n  }\n}\n",
        )
        .unwrap();
    let md = lab.path("dropped.md");
    let out = lab.preflight(&spec, &deployment, &["-f", "markdown", "-o", &md]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("api->db/tcp/6000"), "{table}");
    assert!(table.contains("FAIL: a required flow failed."), "{table}");
    let page = std::fs::read_to_string(&md).unwrap();
    assert!(page.contains("| API (1 of 1 hosts) "), "{page}");
    assert!(
        page.contains("| db "),
        "the listening host has its row: {page}"
    );
    assert!(page.contains("- Hosts: 3 of 3 checked over SSH"), "{page}");
    assert!(page.contains("filtered"), "{page}");
    lab.lab
        .load_nft("db", "delete table inet fleet_test\n")
        .unwrap();

    // 3. A port already held by a real service on db: probed against it, said so.
    let db = lab.ip("db");
    let service = lab
        .lab
        .run_in("db", move || {
            TcpListener::bind((db, 5432)).expect("service binds")
        })
        .unwrap()
        .join()
        .unwrap();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    service.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let mut accepted = 0;
        while stop_rx.try_recv().is_err() {
            if service.accept().is_ok() {
                accepted += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        accepted
    });
    let json = lab.path("held.json");
    let out = lab.preflight(&spec, &deployment, &["-f", "json", "-o", &json]);
    stop_tx.send(()).unwrap();
    let accepted = server.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = report(&json);
    assert_eq!(
        host(&r, "db")["listeners"][0]["held"],
        serde_json::json!([format!("tcp {db}:5432")])
    );
    assert_eq!(class(&r, "api->db/tcp/5432"), "open");
    assert!(
        accepted >= 2,
        "the service answered the probes ({accepted})"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!(
            "tcp {db}:5432 already in use: probed against the service holding it"
        )),
        "{table}"
    );
    assert_clean(&dirs(&r));

    // 4. --negative: without firewalls every probe of what no flow grants
    // gets through (exit 1); with firewalls that follow the spec, none does.
    let json = lab.path("negative-open.json");
    let out = lab.preflight(
        &spec,
        &deployment,
        &["--negative", "-f", "json", "-o", &json],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(" of 20 ADMITTED (excess openings)"),
        "{table}"
    );
    assert!(
        table.contains("FAIL: negative probes were admitted (excess openings)."),
        "{table}"
    );
    let r = report(&json);
    assert!(
        r["negative"]["flows"].as_u64().unwrap() >= 10,
        "{:#}",
        r["negative"]
    );
    assert_clean(&dirs(&r));
    let (api, cache) = (lab.ip("api"), lab.ip("cache"));
    let firewall = |rules: &str| {
        format!(
            "table inet fleet_negative {{\n  chain input {{\n    type filter hook input priority filter; policy drop;\n    \
             ct state established,related accept\n    iif lo accept\n    tcp dport 22 accept\n{rules}  }}\n}}\n"
        )
    };
    let rules = [
        ("api", String::new()),
        (
            "db",
            format!("    ip saddr {{ {api}, {cache} }} tcp dport 5432 accept\n    ip saddr {api} tcp dport 6000 accept\n"),
        ),
        ("cache", format!("    ip saddr {api} udp dport 11211 accept\n")),
    ];
    for (name, rules) in &rules {
        lab.lab.load_nft(name, &firewall(rules)).unwrap();
    }
    let json = lab.path("negative-blocked.json");
    let out = lab.preflight(
        &spec,
        &deployment,
        &["--negative", "-f", "json", "-o", &json],
    );
    for (name, _) in &rules {
        lab.lab
            .load_nft(name, "delete table inet fleet_negative\n")
            .unwrap();
    }
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let sent = r["negative"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["checks"].as_array().unwrap().len())
        .sum::<usize>();
    assert!(
        table.contains(&format!("Negative probes: {sent} of {sent} blocked")),
        "{table}"
    );
    assert_clean(&dirs(&report(&json)));

    // 5. sshd down on one host, no sudo on another (--sudo): their own rows, exit 1.
    let spec_more = lab.write("more.yaml", SPEC_MORE);
    let deployment_more = lab.write(
        "more-deployment.yaml",
        &format!(
            "deployment: 1\ncomponents:\n  api: {{addresses: [{}]}}\n  db: {{addresses: [{}]}}\n  idle: {{addresses: [{}]}}\n  worker: {{addresses: [{}]}}\n",
            lab.ip("api"),
            lab.ip("db"),
            lab.ip("down"),
            lab.ip("nosudo")
        ),
    );
    let json = lab.path("hosts.json");
    let out = lab.preflight(
        &spec_more,
        &deployment_more,
        &[
            "--sudo",
            "--connect-timeout",
            "3s",
            "-f",
            "json",
            "-o",
            &json,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = report(&json);
    assert_eq!(r["passed"], false);
    assert_eq!(host(&r, "api")["status"], "checked");
    assert_eq!(host(&r, "db")["status"], "checked");
    let down = host(&r, "idle");
    assert_eq!(down["status"], "unreachable", "{down:#}");
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{down:#}"
    );
    let nosudo = host(&r, "worker");
    assert_eq!(nosudo["status"], "sudo_refused", "{nosudo:#}");
    assert!(
        nosudo["reason"].as_str().unwrap().contains("sudo"),
        "{nosudo:#}"
    );
    assert!(
        nosudo["cleanup"].as_str().unwrap().starts_with("removed "),
        "{nosudo:#}"
    );
    assert_eq!(class(&r, "api->idle/tcp/7000"), "refused");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("UNREACHABLE"), "{table}");
    assert!(table.contains("SUDO REFUSED"), "{table}");
    assert_clean(&dirs(&r));

    // 6. Ctrl-C while the checks wait on a dropped port: exit 130, nothing left.
    lab.lab
        .load_nft(
            "db",
            "table inet fleet_test {\n  chain input {\n    type filter hook input priority filter; policy accept;\n    tcp dport 6000 drop\n  }\n}\n",
        )
        .unwrap();
    let command = lab.command(&spec, &deployment, &["--timeout", "30000"]);
    let mut child = lab.lab.spawn("client", command).expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut dirs_seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("no check phase ({e}): {seen:#?}"));
        if let Some((_, dir)) = line.split_once(": files in ") {
            dirs_seen.push(dir.to_owned());
        }
        let checking = line.starts_with("preflight: check:");
        seen.push(line);
        if checking {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    run("kill", &["-INT", &child.id().to_string()]);
    let status = child.wait().unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        seen.push(line);
    }
    assert_eq!(status.code(), Some(130), "{seen:#?}");
    assert_eq!(dirs_seen.len(), 3, "{seen:#?}");
    assert!(
        seen.iter().filter(|l| l.contains(": removed /")).count() == 3,
        "{seen:#?}"
    );
    assert_clean(&dirs_seen);
    drop(lab.daemons);
}

/// The example's deployment with every host's addresses replaced by a lab
/// host's (IPv4 for IPv4, IPv6 for IPv6; an address block becomes the lab
/// host's single address). External endpoints keep theirs: nothing in the
/// lab routes to them, so their probes fail without a packet leaving.
fn lab_deployment(spec: &Path, deployment: &Path) -> (String, Vec<(String, Vec<String>)>) {
    let spec = portolan_spec::load_spec(portolan_spec::SourceFile::read(spec).unwrap())
        .unwrap()
        .value;
    let source = portolan_spec::SourceFile::read(deployment).unwrap();
    let text = source.text.clone();
    let d = portolan_spec::deployment::load_deployment(source, &spec)
        .unwrap()
        .value;
    let plan = portolan_spec::plan::plan(&spec, &d);
    let hosts: Vec<(String, Vec<String>)> = plan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let nets = h.nets.iter().map(portolan_spec::plan::net_text).collect();
            (format!("h{i}"), nets)
        })
        .collect();
    (text, hosts)
}

#[test]
fn both_examples_over_real_ssh() {
    // The SSH labs share the machine's sshd run-time state (/run/sshd, the
    // throwaway users): run them one at a time, never side by side.
    let _serial = SSH_LABS.lock().unwrap_or_else(|e| e.into_inner());
    if !available("both_examples_over_real_ssh") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (example, deployment) in [
        ("circonus-inside", "deployment-small.yaml"),
        ("spacelift-self-hosted", "deployment.yaml"),
    ] {
        let spec = root.join(example).join("portolan.yaml");
        let (mut text, hosts) = lab_deployment(&spec, &root.join(example).join(deployment));
        let names: Vec<&str> = hosts.iter().map(|(n, _)| n.as_str()).collect();
        let lab = SshLab::start(&names);
        for (name, nets) in &hosts {
            let host = lab.lab.host(name).unwrap();
            for net in nets {
                let lab_address = if net.contains(':') {
                    host.ipv6().to_string()
                } else {
                    host.ipv4().to_string()
                };
                // Whole tokens only: `192.0.2.1` must not match `192.0.2.11`.
                for (before, after) in
                    [("[", ","), ("[", "]"), (" ", ","), (" ", "]"), ("\"", "\"")]
                {
                    text = text.replace(
                        &format!("{before}{net}{after}"),
                        &format!("{before}{lab_address}{after}"),
                    );
                }
            }
        }
        let deployment = lab.write("deployment.yaml", &text);
        let json = lab.path("report.json");
        let out = lab.preflight(
            spec.to_str().unwrap(),
            &deployment,
            &["--concurrency", "8", "-f", "json", "-o", &json],
        );
        let r = report(&json);
        let statuses: Vec<(String, String)> = r["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["name"].as_str().unwrap().to_owned(),
                    h["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            statuses
                .iter()
                .all(|(_, s)| s == "checked" || s == "name_only"),
            "{example}: every host of the deployment is checked: {statuses:?}\n{}",
            show(&out)
        );
        assert_eq!(statuses.len(), hosts.len(), "{example}: {statuses:?}");
        // Every probe between components passes; external endpoints have no
        // route from the lab, so those fail and the exit code says so.
        // Components on the lab's hosts (not those placed by a name only,
        // such as a cloud service: like external endpoints, unreachable here).
        let components: Vec<&str> = r["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["status"] == "checked")
            .flat_map(|h| h["components"].as_array().unwrap())
            .map(|c| c.as_str().unwrap())
            .collect();
        let mut internal = 0;
        let mut failed = Vec::new();
        for results in r["results"].as_array().unwrap() {
            for check in results["checks"].as_array().unwrap() {
                let to = check["to"].as_str().unwrap();
                if !components.contains(&to) {
                    continue;
                }
                internal += 1;
                let class = check["result"]["outcome"]["class"].as_str().unwrap();
                // A component's flow to itself from a fixed source port
                // cannot be sent from a host whose own listener holds that
                // port (Circonus data-storage, UDP 8112 to 8112): the probe
                // says so (local_error); nothing else may fail.
                let flow = check["flow"].as_str().unwrap();
                let self_fixed = check["result"]["spec"]["source_port"].is_u64()
                    && flow.starts_with(&format!("{to}->{to}/"));
                if class != "open" && !(self_fixed && class == "local_error") {
                    failed.push(format!("{flow} from {}: {class}", results["host"]));
                }
            }
        }
        assert!(failed.is_empty(), "{example}: {failed:#?}");
        assert!(
            internal >= 10,
            "{example}: {internal} probes between components"
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{example}: externals fail: {}",
            show(&out)
        );
        assert_clean(&dirs(&r));
        drop(lab);
    }
}
