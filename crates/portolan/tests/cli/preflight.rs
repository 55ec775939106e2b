//! `portolan listen`, `check` and `report` as real processes.
//!
//! The lab tests run several hosts in network namespaces they create
//! (portolan-lab), with an nftables firewall that drops or rejects some
//! flows, and assert each outcome class. They need root: without it they
//! print a loud SKIPPED banner and pass, unless `PORTOLAN_REQUIRE_LAB=1`.
//! The HTML report is opened in headless Chromium (Debian's `chromium`);
//! without it that part is skipped loudly, unless `CI=true`.
//! The TLS tests stay on this machine's loopback, with a test CA.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use portolan_lab::{Lab, Topology};
use serde_json::Value;

mod hosts;

use portolan_test_support::loud;

use super::{lab_available, portolan_command, PORTOLAN};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

const SPEC: &str = "portolan: 1
system: {name: Preflight Lab}
components:
  - {id: api, name: API}
  - {id: db, name: Database, kind: dependency}
  - {id: cache, name: Cache}
  - {id: idle, name: Idle}
flows:
  - {from: api, to: db, protocol: tcp, port: 5432, name: open}
  - {from: api, to: db, protocol: tcp, port: 80, name: privileged port}
  - {from: api, to: db, protocol: tcp, port: 6000, name: dropped}
  - {from: api, to: db, protocol: tcp, port: 6001, name: rejected admin-prohibited}
  - {from: api, to: idle, protocol: tcp, port: 7000, name: nobody listens}
  - {from: api, to: cache, protocol: udp, port: 11211, name: token echo}
  - {from: api, to: cache, protocol: udp, port: 11212, name: dropped}
  - {from: api, to: cache, protocol: udp, port: 8112, source_port: 8112, name: fixed source port}
  - {from: api, to: cache, protocol: udp, port: 8082, multicast: 239.255.0.9, name: multicast}
  - {from: api, to: idle, protocol: udp, port: 7001, name: port unreachable}
  - {from: api, to: db, protocol: icmp, name: ping}
  - {from: api, to: cache, protocol: icmp, name: ping dropped}
  - {from: api, to: idle, protocol: icmp, name: ping rejected}
  - {from: cache, to: db, protocol: tcp, port: 5432}
";

/// db drops TCP 6000 and rejects TCP 6001 as administratively prohibited;
/// cache drops UDP 11212 and ICMP echo; idle rejects ICMP echo as
/// administratively prohibited.
const DB_FIREWALL: &str = "table inet preflight_test {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 6000 drop
    tcp dport 6001 reject with icmpx type admin-prohibited
  }
}
";
const CACHE_FIREWALL: &str = "table inet preflight_test {
  chain input {
    type filter hook input priority filter; policy accept;
    udp dport 11212 drop
    icmp type echo-request drop
  }
}
";
const IDLE_FIREWALL: &str = "table inet preflight_test {
  chain input {
    type filter hook input priority filter; policy accept;
    icmp type echo-request reject with icmp type admin-prohibited
  }
}
";

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A `portolan listen` running in a lab host, ready when it said so.
struct Listening {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Listening {
    fn start(lab: &Lab, host: &str, args: &[&str]) -> Self {
        let mut command = portolan_command();
        command
            .arg("listen")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = lab.spawn(host, command).expect("spawn listen");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 30 s) for a line starting with `prefix`.
    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => panic!("no `{prefix}` line ({e}); so far: {:#?}", self.seen),
            }
        }
    }

    /// SIGTERM, then the `stopped:` line and the exit status.
    fn stop(mut self) -> (String, Option<i32>, Vec<String>) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let stopped = self.wait_for("stopped:");
        let code = self.child.wait().expect("wait").code();
        (stopped, code, self.seen)
    }
}

/// `portolan check` of one spec and deployment on the hosts of a lab.
struct Checks<'a> {
    lab: &'a Lab,
    spec: &'a str,
    deployment: &'a str,
}

impl<'a> Checks<'a> {
    fn new(lab: &'a Lab, spec: &'a Path, deployment: &'a Path) -> Self {
        Self {
            lab,
            spec: spec.to_str().expect("utf-8"),
            deployment: deployment.to_str().expect("utf-8"),
        }
    }

    /// `portolan check SPEC -d DEPLOYMENT --as COMPONENT EXTRA` on the
    /// lab's `host`, 200 columns wide and without a proxy.
    fn on(&self, host: &str, component: &str, extra: &[&str]) -> Output {
        let mut command = portolan_command();
        command
            .arg("check")
            .args([self.spec, "-d", self.deployment, "--as", component])
            .args(extra)
            .env("COLUMNS", "200");
        command.env_remove("HTTPS_PROXY").env_remove("https_proxy");
        self.lab.exec(host, command).expect("run check")
    }

    /// As [`Checks::on`], on the host named as the component.
    fn run(&self, component: &str, extra: &[&str]) -> Output {
        self.on(component, component, extra)
    }
}

fn results(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("results file")).expect("JSON")
}

/// The check of one flow, by flow id (one probe per flow in this spec).
fn probe<'a>(results: &'a Value, flow: &str) -> &'a Value {
    results["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["flow"] == flow)
        .unwrap_or_else(|| panic!("no check of {flow} in {results:#}"))
}

fn class(results: &Value, flow: &str) -> String {
    probe(results, flow)["result"]["outcome"]["class"]
        .as_str()
        .expect("class")
        .to_owned()
}

#[test]
fn lab_hosts_listen_check_and_report() {
    if !lab_available("lab_hosts_listen_check_and_report") {
        return;
    }
    let mut topology = Topology::new();
    for host in ["api", "db", "cache", "idle"] {
        topology.add_host(host).expect("host");
    }
    let lab = Lab::create(topology).expect("lab");
    let ip = |h: &str| lab.host(h).expect("host").ipv4();
    let files = Files::new();
    let spec = files.write("portolan.yaml", SPEC);
    let deployment = files.write(
        "deployment.yaml",
        &format!(
            "deployment: 1\nname: preflight-lab\ncomponents:\n  api: {{addresses: [{}]}}\n  db: {{addresses: [{}]}}\n  cache: {{addresses: [{}]}}\n  idle: {{addresses: [{}]}}\n",
            ip("api"),
            ip("db"),
            ip("cache"),
            ip("idle")
        ),
    );
    lab.load_nft("db", DB_FIREWALL).expect("db firewall");
    lab.load_nft("cache", CACHE_FIREWALL)
        .expect("cache firewall");
    lab.load_nft("idle", IDLE_FIREWALL).expect("idle firewall");
    let checks = Checks::new(&lab, &spec, &deployment);
    let (spec_s, dep_s) = (checks.spec, checks.deployment);

    // Listeners on db and cache (idle runs none: it refuses).
    let mut db = Listening::start(&lab, "db", &[spec_s, "-d", dep_s, "--as", "db"]);
    let ready = db.wait_for("ready:");
    assert!(
        ready.contains("4 endpoint(s) of `db` bound, 0 failed"),
        "{ready}"
    );
    let mut cache = Listening::start(&lab, "cache", &[spec_s, "-d", dep_s, "--as", "cache"]);
    let ready = cache.wait_for("ready:");
    assert!(
        ready.contains("4 endpoint(s) of `cache` bound, 0 failed"),
        "{ready}"
    );
    assert!(
        cache.seen.contains(
            &"listening multicast 239.255.0.9:8082 (api->cache@239.255.0.9/udp/8082)".to_owned()
        ),
        "{:#?}",
        cache.seen
    );

    // A second listener for db, unprivileged: the ports root's listener
    // holds are in use, port 80 is privileged. Nothing bound: exit 1.
    let mut permissions = std::fs::metadata(files.dir.path())
        .expect("dir")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(files.dir.path(), permissions).expect("chmod");
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            PORTOLAN,
        ])
        .args([
            "listen",
            spec_s,
            "-d",
            dep_s,
            "--as",
            "db",
            "--duration",
            "1s",
        ]);
    let busy = lab.exec("db", command).expect("second listen");
    assert_eq!(busy.status.code(), Some(1), "{}", show(&busy));
    let stderr = text(&busy.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot bind tcp {}:5432: in use: Address already in use (os error 98) (api->db/tcp/5432, cache->db/tcp/5432)",
            ip("db")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot bind tcp {}:80: not permitted (a privileged port?): Permission denied (os error 13) (api->db/tcp/80)",
            ip("db")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: no port of `db` could be bound"),
        "{stderr}"
    );

    // api checks against the listeners.
    let api_json = files.path("api.json");
    let from = ip("api").to_string();
    let out = checks.run(
        "api",
        &[
            "--from",
            &from,
            "--timeout",
            "1000",
            "--retries",
            "1",
            "-f",
            "json",
            "-o",
            api_json.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a required flow fails: {}",
        show(&out)
    );
    let table = text(&out.stdout);
    assert!(table.contains("│ ok "), "{table}");
    assert!(table.contains("│ FAIL "), "{table}");
    let api = results(&api_json);
    assert_eq!(api["format"], "portolan-preflight-results/1");
    assert_eq!(api["component"], "api");
    assert_eq!(api["from"], from);
    assert_eq!(api["spec"]["system"], "Preflight Lab");
    assert_eq!(api["deployment"]["name"], "preflight-lab");
    assert_eq!(api["spec"]["sha256"].as_str().expect("hash").len(), 64);
    assert!(api["started_at"].as_str().expect("time").ends_with('Z'));
    // TCP: open, filtered (dropped: the timeout, retried), unreachable (ICMP
    // admin-prohibited, with the OS error), refused (RST).
    assert_eq!(class(&api, "api->db/tcp/5432"), "open");
    assert_eq!(class(&api, "api->db/tcp/80"), "open");
    assert_eq!(class(&api, "api->db/tcp/6000"), "filtered");
    assert_eq!(
        probe(&api, "api->db/tcp/6000")["result"]["outcome"]["attempts"],
        2
    );
    assert_eq!(class(&api, "api->db/tcp/6001"), "unreachable");
    assert_eq!(
        probe(&api, "api->db/tcp/6001")["result"]["outcome"]["os_error"],
        "No route to host (os error 113)"
    );
    assert_eq!(class(&api, "api->idle/tcp/7000"), "refused");
    assert_eq!(
        probe(&api, "api->idle/tcp/7000")["result"]["outcome"]["os_error"],
        "Connection refused (os error 111)"
    );
    // UDP against the listener: the token echo is definitive; a dropped
    // datagram is filtered; ICMP port unreachable is refused.
    assert_eq!(class(&api, "api->cache/udp/11211"), "open");
    assert_eq!(class(&api, "api->cache/udp/11212"), "filtered");
    assert_eq!(class(&api, "api->idle/udp/7001"), "refused");
    let fixed = probe(&api, "api->cache/udp/8112:8112");
    assert_eq!(fixed["result"]["outcome"]["class"], "open", "{fixed:#}");
    assert_eq!(fixed["result"]["details"]["local"], format!("{from}:8112"));
    // Multicast: answered by cache, by unicast.
    let multicast = probe(&api, "api->cache@239.255.0.9/udp/8082");
    assert_eq!(
        multicast["result"]["outcome"]["class"], "open",
        "{multicast:#}"
    );
    assert_eq!(
        multicast["result"]["details"]["responders"][0]
            .as_str()
            .expect("responder")
            .split(':')
            .next(),
        Some(ip("cache").to_string().as_str())
    );
    // ICMP by echo (the lab allows ping sockets in its namespaces): the
    // reply with our payload is open, a dropped request filtered, an
    // administratively prohibited one unreachable. No port is shown.
    assert_eq!(class(&api, "api->db/icmp"), "open");
    let ping = probe(&api, "api->db/icmp");
    assert_eq!(ping["result"]["spec"]["protocol"]["kind"], "icmp_echo");
    assert_eq!(
        ping["result"]["spec"]["id"],
        format!("api->db/icmp @ {}", ip("db"))
    );
    assert!(table.contains(&format!("icmp {} ", ip("db"))), "{table}");
    assert_eq!(class(&api, "api->cache/icmp"), "filtered");
    assert_eq!(class(&api, "api->idle/icmp"), "unreachable");
    assert!(
        probe(&api, "api->idle/icmp")["result"]["outcome"]["os_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(api["untested"].as_array().map(Vec::len), Some(0));
    assert_eq!(api["summary"]["required_failed"], 7);
    assert_eq!(api["summary"]["passed"], 6);

    // The same against real services: silence is open|filtered, never a
    // pass (the listener ignores datagrams without the token); ICMP port
    // unreachable is still refused. JUnit output.
    let junit = files.path("api.xml");
    let out = checks.run(
        "api",
        &[
            "--from",
            &from,
            "--timeout",
            "500",
            "--retries",
            "0",
            "--udp",
            "service",
            "-f",
            "junit",
            "-o",
            junit.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let table = text(&out.stdout);
    assert!(table.contains("open_or_filtered"), "{table}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains("<testsuite name=\"portolan check api on "),
        "{xml}"
    );
    assert!(xml.contains("tests=\"13\""), "{xml}");
    assert!(
        xml.contains("udp ") && xml.contains(":11212: open_or_filtered after 1 attempt(s)"),
        "{xml}"
    );
    assert!(
        xml.contains(&format!(
            "icmp {}: filtered after 1 attempt(s)",
            ip("cache")
        )),
        "{xml}"
    );

    // cache checks its one flow: every required flow passes, exit 0.
    let cache_json = files.path("cache.json");
    let out = checks.run(
        "cache",
        &[
            "--timeout",
            "1000",
            "-f",
            "json",
            "-o",
            cache_json.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(class(&results(&cache_json), "cache->db/tcp/5432"), "open");

    // An address outside the deployment, or a component the spec lacks:
    // an error, exit 1, nothing probed.
    let before = db.child.id();
    let out = checks.run("api", &["--from", &ip("db").to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains(&format!(
        "error: {} is not an address of `api` in the deployment",
        ip("db")
    )));
    assert!(text(&out.stdout).is_empty(), "{}", show(&out));
    let out = checks.on("api", "apii", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("`apii` is not a component of the spec; did you mean `api`?")
    );
    assert_eq!(before, db.child.id());

    // Listeners stop on SIGTERM and say what they served.
    let (stopped, code, _) = db.stop();
    assert_eq!(code, Some(0));
    // api: 5432 and 80 twice (two checks); cache: 5432 once.
    assert!(
        stopped.starts_with("stopped: 5 TCP connection(s) accepted"),
        "{stopped}"
    );
    let (stopped, code, _) = cache.stop();
    assert_eq!(code, Some(0));
    // Echoed: 11211, 8112 and the multicast probe of the first check, and
    // the multicast probe of the second (group probes always carry the
    // token); the second check's token-less datagrams are ignored.
    assert!(stopped.contains(" 4 datagram(s) echoed"), "{stopped}");
    assert!(!stopped.contains(" 0 ignored"), "{stopped}");

    // Where this host refuses ping sockets (no group in
    // net.ipv4.ping_group_range), ICMP flows are said untested, with the
    // reason and the way to allow them (the listeners are gone: the other
    // flows fail).
    let mut command = Command::new("sh");
    command.args(["-c", "echo 1 0 > /proc/sys/net/ipv4/ping_group_range"]);
    let set = lab.exec("api", command).expect("set the range");
    assert!(set.status.success(), "{}", show(&set));
    let refused_json = files.path("api-refused.json");
    let out = checks.run(
        "api",
        &[
            "--timeout",
            "300",
            "--retries",
            "0",
            "-f",
            "json",
            "-o",
            refused_json.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let refused = results(&refused_json);
    let untested = refused["untested"].as_array().expect("untested");
    let flows: Vec<&str> = untested
        .iter()
        .map(|u| u["flow"].as_str().expect("flow"))
        .collect();
    assert_eq!(flows, ["api->db/icmp", "api->cache/icmp", "api->idle/icmp"]);
    for u in untested {
        let reason = u["reason"].as_str().expect("reason");
        assert!(
            reason.starts_with("ICMP echo cannot be sent from this host: ")
                && reason.contains("net.ipv4.ping_group_range (here: \"1 0\")")
                && reason.contains("sysctl -w net.ipv4.ping_group_range=\"0 2147483647\""),
            "{reason}"
        );
    }
    assert!(refused["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .all(|c| c["result"]["spec"]["protocol"]["kind"] != "icmp_echo"));
    drop(lab);

    report_of(&files, &spec, &[api_json, cache_json]);
}

/// `portolan report` over api's and cache's results: markdown, HTML in
/// Chromium, and bad input.
fn report_of(files: &Files, spec: &Path, inputs: &[PathBuf]) {
    let run = run_report;
    let names: Vec<&str> = inputs.iter().map(|p| p.to_str().expect("utf-8")).collect();
    let spec_s = spec.to_str().expect("utf-8");
    let mut args = names.clone();
    args.extend(["--spec", spec_s]);
    let out = run(&args);
    // Required flows failed: exit 1, the page still written.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let md = text(&out.stdout);
    assert!(
        md.starts_with("# Preflight Lab — preflight results\n"),
        "{md}"
    );
    let row = |name: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {name} ")))
            .unwrap_or_else(|| panic!("no row {name} in {md}"))
            .to_owned()
    };
    let api_row = row("API");
    assert!(
        api_row.contains("❌ fail T::5432 T::80 T::6000 T::6001 I::"),
        "{api_row}"
    );
    assert!(api_row.contains("❌ fail T::7000 U::7001"), "{api_row}");
    let cache_row = row("Cache");
    assert!(cache_row.contains("✅ pass T::5432"), "{cache_row}");
    assert!(md.contains("3 fail"), "{md}");

    let html = files.path("report.html");
    let mut args = names.clone();
    args.extend(["-f", "html", "-o", html.to_str().expect("utf-8")]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    chromium_checks(files, &html);
}

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but /usr/bin/chromium is missing (Debian package chromium)");
    }
    loud("SKIPPED the HTML report in Chromium: /usr/bin/chromium is missing (Debian package chromium)");
    None
}

fn chromium_run(files: &Files, extra: &[&str], url: &str) -> Output {
    let profile = tempfile::tempdir_in(files.dir.path()).expect("profile dir");
    Command::new(chromium().expect("checked"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

/// Renders the page in headless Chromium: a screenshot, and the DOM after
/// the page's script ran, with a cell selected through the address.
fn chromium_checks(files: &Files, html: &Path) {
    if chromium().is_none() {
        return;
    }
    let url = format!("file://{}", html.display());
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("preflight-report.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium_run(files, &[&format!("--screenshot={}", shot.display())], &url);
    assert!(out.status.success(), "{}", show(&out));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot of the report: {}", shot.display());

    let out = chromium_run(files, &["--dump-dom"], &format!("{url}#cell-api--cache"));
    assert!(out.status.success(), "{}", show(&out));
    let dom = text(&out.stdout);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's script ran: {dom}"
    );
    let cells: Vec<(String, String, String)> = dom
        .split("<td class=\"cell ")
        .skip(1)
        .map(|cell| {
            let attr = |name: &str| {
                let start = cell.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
                cell[start..start + cell[start..].find('"').expect("quote")].to_owned()
            };
            (attr("data-from"), attr("data-to"), attr("data-status"))
        })
        .collect();
    let expect =
        |from: &str, to: &str, status: &str| (from.to_owned(), to.to_owned(), status.to_owned());
    assert_eq!(
        cells,
        [
            expect("api", "db", "fail"),
            expect("api", "cache", "fail"),
            expect("api", "idle", "fail"),
            expect("cache", "db", "pass"),
        ]
    );
    // The script counted the cells and showed the selected cell's details.
    assert!(
        dom.contains("data-pass=\"1\" data-fail=\"3\" data-partial=\"0\" data-untested=\"0\""),
        "{dom}"
    );
    let details = &dom[dom.find("<div id=\"details\"").expect("details panel")..];
    let details = &details[..details.find("</div>").expect("end of panel")];
    assert!(
        details.contains("data-cell=\"cell-api--cache\""),
        "{details}"
    );
    assert!(details.contains("api-&gt;cache/udp/11212"), "{details}");
    assert!(details.contains("filtered"), "{details}");
    assert!(
        details.contains("api-&gt;cache@239.255.0.9/udp/8082"),
        "{details}"
    );
}

fn run_report(args: &[&str]) -> Output {
    portolan_command()
        .arg("report")
        .args(args)
        .output()
        .expect("run report")
}

/// `portolan report` refuses, by name and reason, broken JSON, results of
/// another spec and JSON that is not results, and writes nothing.
fn bad_report_inputs(files: &Files, spec: &Path, good: &Path, system: &str) {
    let run = run_report;
    let names = [good.to_str().expect("utf-8")];
    // Bad input: broken JSON, another spec, a file that is not results.
    let broken = files.write(
        "broken.json",
        "{\"format\": \"portolan-preflight-results/1\",",
    );
    let out = run(&[names[0], broken.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains(&format!("error: {}: broken JSON: ", broken.display())),
        "{}",
        show(&out)
    );
    let other_spec = files.write(
        "other.yaml",
        &std::fs::read_to_string(spec)
            .expect("spec")
            .replace("name: ", "name: Another "),
    );
    let out = run(&[names[0], "--spec", other_spec.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains(&format!(
            "error: {}: results of another spec: it was checked against `{system}`",
            names[0]
        )),
        "{}",
        show(&out)
    );
    let plan = files.write("plan.json", "{\"system\": \"x\"}");
    let out = run(&[plan.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("not a Portolan results file"),
        "{}",
        show(&out)
    );
    let out_file = files.path("never.md");
    let out = run(&[
        names[0],
        broken.to_str().expect("utf-8"),
        "-o",
        out_file.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out_file.exists(), "no output on bad input");
}

// ---------------------------------------------------------------------------
// External endpoints: TLS on loopback, with a test CA and a CONNECT proxy.

struct TestPki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn test_pki(ca_name: &str) -> TestPki {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = params.self_signed(&key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(params, key);
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf = params.signed_by(&key, &issuer).expect("leaf");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key.into())
        .expect("server config");
    TestPki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// A TLS server on 127.0.0.1 that completes handshakes, on its own thread.
fn tls_server(config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                while conn.is_handshaking() {
                    if conn.complete_io(&mut stream).is_err() {
                        return;
                    }
                }
                conn.send_close_notify();
                let _ = conn.complete_io(&mut stream);
            });
        }
    });
    port
}

/// An HTTP CONNECT proxy on 127.0.0.1 that records the requested authorities.
fn connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().expect("clone"));
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let authority = first
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                log.lock().expect("log").push(authority.clone());
                let mut client = client;
                let Ok(upstream) = TcpStream::connect(&authority) else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut up_read, mut up_write) = (upstream.try_clone().expect("clone"), upstream);
                let mut client_write = client.try_clone().expect("clone");
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut up_write);
                });
                let _ = std::io::copy(&mut up_read, &mut client_write);
            });
        }
    });
    (port, seen)
}

fn tls_files(files: &Files, port: u16) -> (PathBuf, PathBuf) {
    let spec = files.write(
        "tls.yaml",
        "portolan: 1
system: {name: TLS check}
components:
  - {id: app}
externals:
  - {id: vendor-api, host: localhost}
parameters:
  - {id: vendor-port}
flows:
  - {from: app, to: vendor-api, protocol: tcp, port: $vendor-port}
",
    );
    let deployment = files.write(
        "tls-deployment.yaml",
        &format!(
            "deployment: 1\nparameters: {{vendor-port: {port}}}\ncomponents:\n  app: {{addresses: [127.0.0.1]}}\n"
        ),
    );
    (spec, deployment)
}

fn check_tls(
    spec: &Path,
    deployment: &Path,
    port: u16,
    extra: &[&str],
    proxy: Option<u16>,
) -> (Output, Value) {
    let mut command = portolan_command();
    command
        .args(["check"])
        .arg(spec)
        .arg("-d")
        .arg(deployment)
        .args([
            "--as",
            "app",
            "--timeout",
            "3000",
            "-f",
            "json",
            "--tls-ports",
        ])
        .arg(port.to_string())
        .args(extra)
        .env_remove("https_proxy")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY");
    match proxy {
        Some(p) => command.env("HTTPS_PROXY", format!("http://127.0.0.1:{p}")),
        None => command.env_remove("HTTPS_PROXY"),
    };
    let out = command.output().expect("run check");
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    (out, json)
}

#[test]
fn external_endpoint_tls_on_loopback() {
    let pki = test_pki("Portolan Test CA");
    let port = tls_server(pki.server.clone());
    let files = Files::new();
    let ca = files.write("ca.pem", &pki.ca_pem);
    let (spec, deployment) = tls_files(&files, port);
    let ca_arg = ["--ca-file", ca.to_str().expect("utf-8")];

    // Trusted through the injected root: DNS timed on its own, TLS with SNI,
    // the issuer reported.
    let (out, json) = check_tls(&spec, &deployment, port, &ca_arg, None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let check = &json["checks"][0]["result"];
    assert_eq!(check["spec"]["protocol"]["kind"], "tls", "{check:#}");
    assert_eq!(check["spec"]["target"]["host"]["name"], "localhost");
    assert_eq!(check["outcome"]["class"], "open", "{check:#}");
    assert!(check["details"]["dns_ms"].as_f64().is_some(), "{check:#}");
    assert!(
        check["details"]["resolved"]
            .as_array()
            .expect("resolved")
            .contains(&Value::from("127.0.0.1")),
        "{check:#}"
    );
    let tls = &check["details"]["tls"];
    assert_eq!(tls["issuer"], "CN=Portolan Test CA", "{tls:#}");
    assert_eq!(tls["verified"], true);

    // Its results make a one-cell report, which also shows how bad input is refused.
    let good = files.path("app.json");
    std::fs::write(&good, &out.stdout).expect("write results");
    let report = run_report(&[
        good.to_str().expect("utf-8"),
        "--spec",
        spec.to_str().expect("utf-8"),
    ]);
    assert_eq!(report.status.code(), Some(0), "{}", show(&report));
    let md = text(&report.stdout);
    assert!(
        md.contains("| app       | ✅ pass T::\\$vendor-port |"),
        "{md}"
    );
    assert!(
        md.contains("issuer CN=Portolan Test CA, chain verified"),
        "{md}"
    );
    bad_report_inputs(&files, &spec, &good, "TLS check");

    // Without the root (a proxy that re-signs TLS looks like this): the
    // handshake completes, the chain does not verify, the issuer is shown.
    let (out, json) = check_tls(&spec, &deployment, port, &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let check = &json["checks"][0]["result"];
    assert_eq!(check["outcome"]["class"], "tls_failed", "{check:#}");
    assert!(
        check["outcome"]["reason"]
            .as_str()
            .expect("reason")
            .starts_with("certificate not trusted"),
        "{check:#}"
    );
    assert_eq!(check["details"]["tls"]["issuer"], "CN=Portolan Test CA");

    // Through HTTPS_PROXY: the proxy is asked for the spec's host name.
    let (proxy_port, seen) = connect_proxy();
    let (out, json) = check_tls(&spec, &deployment, port, &ca_arg, Some(proxy_port));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let record = &json["checks"][0];
    assert_eq!(record["result"]["outcome"]["class"], "open", "{record:#}");
    assert_eq!(record["proxy"], format!("127.0.0.1:{proxy_port}"));
    assert_eq!(
        json["settings"]["https_proxy"],
        format!("127.0.0.1:{proxy_port}")
    );
    assert_eq!(*seen.lock().expect("log"), [format!("localhost:{port}")]);

    // A CA file that holds no certificate is an input error.
    let empty = files.write("empty.pem", "not a certificate\n");
    let (out, _) = (
        portolan_command()
            .arg("check")
            .arg(&spec)
            .arg("-d")
            .arg(&deployment)
            .args(["--as", "app", "--ca-file"])
            .arg(&empty)
            .output()
            .expect("run"),
        (),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("empty.pem: no certificate in it"),
        "{}",
        show(&out)
    );
}
