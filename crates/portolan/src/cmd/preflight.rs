//! `portolan preflight`: listen and check on every host over SSH, one report.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use comfy_table::{presets, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};
use portolan_fleet::{
    hosts_from_inventory, hosts_from_plan, inventory::read_inventory, parse_ssh_option, run_fleet,
    FleetError, FleetOptions, FleetReport, HostStatus, Phase, Progress, Remedy, SshSettings,
};
use portolan_preflight::{
    rfc3339, DeploymentIdentity, HostResults, Settings, SpecIdentity, Summary, UdpAgainst,
    RESULTS_FORMAT,
};
use portolan_render::results::{results_html, results_markdown};

use super::check::{runtime, Loaded};
use crate::cli::{PreflightArgs, PreflightFormat};
use crate::output::{write_output, write_stdout};
use crate::status::{CmdError, CmdResult, ExitStatus};

#[allow(clippy::print_stderr)]
fn say_err(line: &str) {
    eprintln!("{line}");
}

pub fn run(args: &PreflightArgs) -> CmdResult {
    let loaded = Loaded::read(&args.spec, &args.deployment)?;
    let options: Vec<(String, String)> = args
        .ssh_options
        .iter()
        .map(|o| parse_ssh_option(o))
        .collect::<Result<_, _>>()?;
    let mut fleet = match &args.inventory {
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| CmdError::input(format!("cannot read {file}: {e}")))?;
            let inventory = read_inventory(&file, &text)?;
            hosts_from_inventory(&inventory, &loaded.plan)?
        }
        None => hosts_from_plan(&loaded.plan),
    };
    // The library says what would let a host be checked; the flag is ours.
    for u in &mut fleet.unreachable {
        match u.remedy {
            Some(Remedy::ListInInventory) => {
                u.reason
                    .push_str("; list it in an inventory (--inventory) to check it from inside");
            }
            Some(Remedy::ListMachinesInInventory) => {
                u.reason
                    .push_str("; list the machines in an inventory (--inventory)");
            }
            _ => {}
        }
    }
    let binary = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this portolan executable: {e}"))?;
    let options = FleetOptions {
        binary,
        spec_file: args.spec.display().to_string(),
        spec_text: loaded.spec.source.text.clone(),
        deployment_file: args.deployment.display().to_string(),
        deployment_text: loaded.deployment.source.text.clone(),
        ssh: SshSettings {
            config_file: args.ssh_config.clone(),
            options,
            connect_timeout: args.connect_timeout,
        },
        sudo: args.sudo,
        concurrency: usize::from(args.concurrency),
        keep: args.keep,
        negative: args.negative,
        timeout_ms: args.timeout,
        retries: args.retries,
        ready_timeout: Duration::from_secs(30),
        listen_limit: Duration::from_secs(15 * 60),
    };
    let bar = progress_bar();
    let callback = progress_callback(bar.clone());
    let report = runtime()?.block_on(async {
        let cancel = async {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term => {}
            }
        };
        run_fleet(&loaded.plan, fleet, &options, &callback, cancel).await
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = match report {
        Ok(report) => report,
        // The library says what is wrong with the value; the flag is ours to name.
        Err(FleetError::Concurrency { given, max }) => {
            return Err(CmdError::input(format!(
                "--concurrency {given} is out of bounds: 1 to {max} hosts at once"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let table = table(&report);
    if report.interrupted {
        // No report of a run cut short: what was cleaned up, and the exit.
        say_err(&table);
        say_err("interrupted: every listener was stopped and every directory removed (see above); no report written");
        return Ok(ExitStatus::Interrupted);
    }
    let text = match args.format {
        PreflightFormat::Table => table.clone(),
        PreflightFormat::Json => report.to_json()?,
        PreflightFormat::Junit => report.junit()?,
        PreflightFormat::Markdown | PreflightFormat::Html => {
            let matrix = report
                .matrix(&template(&loaded, args))
                .map_err(|e| anyhow::anyhow!("internal error: {e}"))?;
            if args.format == PreflightFormat::Markdown {
                results_markdown(&matrix)
            } else {
                results_html(&matrix)
            }
        }
    };
    write_output(args.output.as_deref(), &text)?;
    if args.output.is_some() && args.format != PreflightFormat::Table {
        write_stdout(&table)?;
    }
    Ok(ExitStatus::from_check(report.passed()))
}

/// An empty results document of the plan: the matrix's axes and flows
/// when no host could send results.
fn template(loaded: &Loaded, args: &PreflightArgs) -> HostResults {
    let (components, externals, flows) = HostResults::matrix_records(&loaded.spec, &loaded.plan);
    let now = rfc3339(SystemTime::now());
    HostResults {
        format: RESULTS_FORMAT.to_owned(),
        spec: SpecIdentity {
            system: loaded.spec.system.name.clone(),
            file: args.spec.display().to_string(),
            sha256: loaded.spec_sha256.clone(),
        },
        deployment: DeploymentIdentity {
            name: loaded.deployment.name.clone(),
            file: args.deployment.display().to_string(),
            sha256: loaded.deployment_sha256.clone(),
        },
        component: String::new(),
        host: String::new(),
        from: None,
        addresses: Vec::new(),
        started_at: now.clone(),
        finished_at: now,
        settings: Settings {
            timeout_ms: args.timeout,
            retries: args.retries,
            concurrency: 0,
            udp: UdpAgainst::Listener,
            https_proxy: None,
        },
        components,
        externals,
        flows,
        checks: Vec::new(),
        untested: Vec::new(),
        summary: Summary::default(),
    }
}

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} preflight: {msg} [{bar:30}] {pos}/{len} hosts")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Connect => "hosts connected",
        Phase::Prepare => "hosts prepared",
        Phase::Listen => "listeners ready",
        Phase::Check => "checks done",
        Phase::Cleanup => "hosts cleaned up",
    }
}

/// Progress on a terminal as a bar; otherwise one line per phase and per
/// host that fails or has something to say, on standard error.
fn progress_callback(bar: Option<ProgressBar>) -> impl Fn(Progress) + Send + Sync {
    move |event| match (&bar, event) {
        (Some(bar), Progress::PhaseStarted { phase, hosts }) => {
            bar.set_length(hosts as u64);
            bar.set_position(0);
            bar.set_message(phase_label(phase));
        }
        (
            Some(bar),
            Progress::HostFinished {
                phase,
                host,
                problem,
                ..
            },
        ) => {
            bar.inc(1);
            if let Some(problem) = problem {
                bar.println(format!("{}: {host}: {problem}", phase.as_str()));
            }
        }
        (Some(_), Progress::PhaseFinished { .. }) => {}
        (None, Progress::PhaseStarted { phase, hosts }) => {
            say_err(&format!("preflight: {}: {hosts} host(s)", phase.as_str()));
        }
        (
            None,
            Progress::HostFinished {
                phase,
                host,
                problem,
                note,
            },
        ) => {
            if let Some(problem) = problem {
                say_err(&format!("preflight: {}: {host}: {problem}", phase.as_str()));
            } else if let Some(note) = note {
                say_err(&format!("preflight: {}: {host}: {note}", phase.as_str()));
            }
        }
        (None, Progress::PhaseFinished { phase, elapsed, ok }) => {
            say_err(&format!(
                "preflight: {} done in {:.2} s, {ok} host(s) still in",
                phase.as_str(),
                elapsed.as_secs_f64()
            ));
        }
    }
}

fn width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| *c >= 60)
        .unwrap_or(120)
}

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width())
        .set_header(header.to_vec());
    t
}

fn table(report: &FleetReport) -> String {
    let (checked, all) = report.coverage();
    let mut out = format!("{}: {checked} of {all} host(s) checked\n", report.system);
    let mut hosts = new_table(&["host", "reached", "components", "status", "details"]);
    for h in &report.hosts {
        let mut details = Vec::new();
        if let Some(reason) = &h.reason {
            details.push(reason.clone());
        }
        for l in &h.listeners {
            for e in &l.held {
                details.push(format!(
                    "{e} already in use: probed against the service holding it"
                ));
            }
            details.extend(l.errors.iter().cloned());
        }
        if h.status == HostStatus::Checked {
            if let Some(binary) = &h.binary {
                details.push(binary.clone());
            }
        }
        if let Some(cleanup) = &h.cleanup {
            details.push(cleanup.clone());
        }
        hosts.add_row([
            h.name.clone(),
            h.reached.clone(),
            h.components.join(", "),
            h.status.as_str().to_owned(),
            details.join("\n"),
        ]);
    }
    out.push_str(&hosts.to_string());
    out.push('\n');
    let mut failures = new_table(&["flow", "from", "probe", "outcome"]);
    let mut count = 0;
    for input in &report.results {
        let r = &input.results;
        for c in r
            .checks
            .iter()
            .filter(|c| c.required && !c.result.is_pass())
        {
            count += 1;
            failures.add_row([
                c.flow.clone(),
                format!("{} on {}", r.component, r.host),
                portolan_preflight::probe_text(c),
                c.result.summary(),
            ]);
        }
    }
    if count > 0 {
        out.push_str(&format!(
            "\nRequired flows that failed ({count}):\n{failures}\n"
        ));
    }
    let (probes, passed): (usize, usize) = report.results.iter().fold((0, 0), |(p, ok), i| {
        (p + i.results.summary.probes, ok + i.results.summary.passed)
    });
    if let Some(negative) = &report.negative {
        out.push_str(&format!("\nNegative probes: {}\n", negative.text()));
    }
    let excess = report
        .negative
        .as_ref()
        .is_some_and(|n| !n.admitted().1.is_empty());
    out.push_str(&format!(
        "\nProbes: {passed} of {probes} passed. Time: {}\nResult: {}\n",
        report.phases_text(),
        if report.passed() {
            "every host checked, every required flow passes."
        } else if checked < all {
            "FAIL: not every host could be checked."
        } else if excess && report.results.iter().all(|r| r.results.passed(false)) {
            "FAIL: negative probes were admitted (excess openings)."
        } else {
            "FAIL: a required flow failed."
        }
    ));
    out
}
