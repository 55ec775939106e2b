//! Which host checks as which component, and what `report` makes of it
//! (issue 9, rows 11, 12 and the report half of 17), in namespaces of a lab:
//! `check --as C` on a host that holds none of C's addresses is refused,
//! naming the addresses looked for and present (as `listen` does); `--from`
//! not on this host is one error up front; `report` says "N of M hosts",
//! lists the silent host with its address, marks its cells partial, exits 1
//! when a required flow failed, and refuses a check of a flow it does not
//! know instead of dropping it.

use std::path::Path;

use portolan_lab::{Lab, Topology};

use super::{lab_available, run_report, show, text, Checks, Files, Listening};

const SPEC: &str = "portolan: 1
system: {name: Hosts}
components:
  - {id: lb, name: LB}
  - {id: app, name: App}
flows:
  - {from: lb, to: app, protocol: tcp, port: 8080}
  - {from: app, to: lb, protocol: tcp, port: 9090}
";

#[test]
fn check_runs_only_on_a_host_of_the_component_and_report_counts_hosts() {
    if !lab_available("check_runs_only_on_a_host_of_the_component_and_report_counts_hosts") {
        return;
    }
    let mut topology = Topology::new();
    for host in ["lb", "app", "app2"] {
        topology.add_host(host).expect("host");
    }
    let lab = Lab::create(topology).expect("lab");
    let ip = |h: &str| lab.host(h).expect("host").ipv4().to_string();
    let files = Files::new();
    let spec = files.write("portolan.yaml", SPEC);
    let deployment = files.write(
        "deployment.yaml",
        &format!(
            "deployment: 1\ncomponents:\n  lb: {{addresses: [{}]}}\n  app: {{addresses: [{}, {}]}}\n",
            ip("lb"),
            ip("app"),
            ip("app2")
        ),
    );
    let checks = Checks::new(&lab, &spec, &deployment);
    let (spec_s, dep_s) = (checks.spec, checks.deployment);

    // Row 11: `check --as lb` on the app host: refused before any probe.
    let wrong = checks.on("app", "lb", &[]);
    assert_eq!(wrong.status.code(), Some(1), "{}", show(&wrong));
    let err = text(&wrong.stderr);
    assert!(
        err.contains(&format!(
            "this host holds none of the addresses of `lb` in the deployment (looked for {}; this host has ",
            ip("lb")
        )),
        "{err}"
    );
    assert!(err.contains(&ip("app")), "the addresses present: {err}");
    assert!(
        text(&wrong.stdout).is_empty(),
        "nothing probed: {}",
        show(&wrong)
    );
    // `--from` lb's address on the app host: one error, not one per probe.
    let from = checks.on("app", "lb", &["--from", &ip("lb")]);
    assert_eq!(from.status.code(), Some(1), "{}", show(&from));
    let err = text(&from.stderr);
    assert!(
        err.contains(&format!("{} is not an address of this host", ip("lb"))),
        "{err}"
    );
    assert!(!err.contains("os error 99"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // `listen` says it the same way (shared code).
    let mut command = crate::portolan_command();
    command.args([
        "listen",
        spec_s,
        "-d",
        dep_s,
        "--as",
        "lb",
        "--duration",
        "1s",
    ]);
    let listen = lab.exec("app", command).expect("listen");
    assert_eq!(listen.status.code(), Some(1), "{}", show(&listen));
    assert!(
        text(&listen.stderr).contains(&format!(
            "this host holds none of the addresses of `lb` in the deployment (looked for {}; this host has ",
            ip("lb")
        )),
        "{}",
        show(&listen)
    );

    // Row 12: lb listens on 9090; app (one of app's two hosts) checks and
    // passes; app2 sends nothing.
    let mut lb = Listening::start(
        &lab,
        "lb",
        &[spec_s, "-d", dep_s, "--as", "lb", "--duration", "60s"],
    );
    lb.wait_for("ready:");
    let app_json = files.path("app.json");
    let app = checks.run(
        "app",
        &["-f", "json", "-o", app_json.to_str().expect("utf-8")],
    );
    assert_eq!(app.status.code(), Some(0), "{}", show(&app));
    let report = run_report(&[app_json.to_str().expect("utf-8")]);
    assert_eq!(report.status.code(), Some(0), "{}", show(&report));
    let md = text(&report.stdout);
    let app_row = md
        .lines()
        .find(|l| l.starts_with("| App (1 of 2 hosts) "))
        .unwrap_or_else(|| panic!("no row `App (1 of 2 hosts)`: {md}"));
    assert!(app_row.contains("◐ partial T::9090"), "{app_row}");
    let host_row = |needle: &str| {
        md.lines()
            .any(|l| l.starts_with("| app ") && l.contains(needle))
    };
    assert!(
        host_row(&format!("| {} (no results) ", ip("app2"))),
        "the silent host, with its address: {md}"
    );
    assert!(
        host_row(&format!(" ({}) ", ip("app"))),
        "the reporting host, with its address: {md}"
    );
    assert!(
        md.contains(&format!("no results, from app at {}", ip("app2"))),
        "the cell's entry for the silent host: {md}"
    );

    // A required flow failed (lb -> app 8080: nobody listens): exit 1, the
    // page still written.
    let lb_json = files.path("lb.json");
    let lb_check = checks.run(
        "lb",
        &["-f", "json", "-o", lb_json.to_str().expect("utf-8")],
    );
    assert_eq!(lb_check.status.code(), Some(1), "{}", show(&lb_check));
    let both = run_report(&[
        app_json.to_str().expect("utf-8"),
        lb_json.to_str().expect("utf-8"),
    ]);
    assert_eq!(both.status.code(), Some(1), "{}", show(&both));
    assert!(
        text(&both.stdout).contains("❌ fail T::8080"),
        "{}",
        show(&both)
    );
    let (_, code, seen) = lb.stop();
    assert_eq!(code, Some(0), "{seen:#?}");

    // Row 17: a check of a flow the file does not list is refused, not dropped.
    unknown_flow_is_refused(&files, &app_json);
}

fn unknown_flow_is_refused(files: &Files, good: &Path) {
    let mut results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good).expect("read")).expect("JSON");
    let mut ghost = results["checks"][0].clone();
    ghost["flow"] = "app->ghost/tcp/1".into();
    results["checks"]
        .as_array_mut()
        .expect("checks")
        .push(ghost);
    let edited = files.write(
        "edited.json",
        &serde_json::to_string_pretty(&results).expect("JSON"),
    );
    let out = files.path("out.md");
    let report = run_report(&[
        edited.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(report.status.code(), Some(1), "{}", show(&report));
    assert!(
        text(&report.stderr).contains("flow `app->ghost/tcp/1` is not among the file's flows"),
        "{}",
        show(&report)
    );
    assert!(!out.exists(), "nothing written");
}
