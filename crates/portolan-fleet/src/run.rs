//! The phases of a fleet preflight: connect, prepare, listen, check, stop,
//! clean up. A host that fails a phase is left out of the later ones (and
//! reported); the stop and clean-up phases always run, for every host that
//! got that far, also after an interruption.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use portolan_preflight::{read_results, ResultsInput};
use portolan_spec::plan::Plan;
use portolan_spec::Protocol;

use crate::hosts::{Fleet, FleetHost};
use crate::negative::{negative_set, NegativeSet};
use crate::remote::{Readiness, Remote};
use crate::report::{FleetReport, HostOutcome, HostStatus, ListenerReport, PhaseTiming};
use crate::ssh::SshContext;
use crate::{FleetError, Phase, Progress, SshSettings};

/// Most hosts handled at once.
pub const MAX_CONCURRENCY: usize = 256;

/// What to preflight and how.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The `portolan` executable to run on every host (this one).
    pub binary: PathBuf,
    /// The spec file, as given (its name goes into the report).
    pub spec_file: String,
    /// The spec's text.
    pub spec_text: String,
    /// The deployment file, as given.
    pub deployment_file: String,
    /// The deployment's text.
    pub deployment_text: String,
    /// How to run ssh.
    pub ssh: SshSettings,
    /// Run `listen` and `check` through `sudo -n` (when not logged in as root).
    pub sudo: bool,
    /// Hosts handled at once in each phase (1 to [`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// Leave the private directories on the hosts.
    pub keep: bool,
    /// `check --timeout`, in milliseconds.
    pub timeout_ms: u64,
    /// `check --retries`.
    pub retries: u32,
    /// How long a listener may wait to say it is ready.
    pub ready_timeout: Duration,
    /// Also probe what no flow grants, between placed components
    /// (see [`negative_set`](crate::negative_set)).
    pub negative: bool,
    /// The listeners' own limit (`listen --duration`): they stop by
    /// themselves after it, whatever happens to this process.
    pub listen_limit: Duration,
}

struct HostRun {
    host: FleetHost,
    status: HostStatus,
    reason: Option<String>,
    remote: Option<Remote>,
    paths: Option<(String, String, String)>,
    binary: Option<String>,
    listeners: Vec<(String, crate::remote::ListenerProcess)>,
    listen_reports: Vec<ListenerReport>,
    results: Vec<ResultsInput>,
    negative: Vec<ResultsInput>,
    cleanup: Option<String>,
}

impl HostRun {
    fn active(&self) -> bool {
        self.status == HostStatus::Checked
    }

    fn fail(&mut self, status: HostStatus, reason: String) {
        self.status = status;
        self.reason = Some(reason);
    }
}

fn sha256(bytes: &[u8]) -> String {
    portolan_preflight::sha256_hex(bytes)
}

/// Checks the options' bounds.
pub fn check_options(options: &FleetOptions) -> Result<(), FleetError> {
    if options.concurrency == 0 || options.concurrency > MAX_CONCURRENCY {
        return Err(FleetError::Concurrency {
            given: options.concurrency,
            max: MAX_CONCURRENCY,
        });
    }
    Ok(())
}

/// Runs the preflight of `fleet` and returns the report. `cancel` resolves
/// when the operator interrupts (Ctrl-C): the phase in progress stops (a
/// login in progress finishes), then listeners are stopped and directories
/// removed as always. `progress` hears about every phase and host.
pub async fn run_fleet(
    plan: &Plan,
    fleet: Fleet,
    options: &FleetOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
    cancel: impl Future<Output = ()>,
) -> Result<FleetReport, FleetError> {
    check_options(options)?;
    if fleet.hosts.is_empty() {
        return Err(FleetError::NoHosts(
            fleet
                .unreachable
                .iter()
                .map(|u| format!("{}: {}", u.name, u.reason))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let binary = std::fs::read(&options.binary)
        .map_err(|e| FleetError::Local(format!("cannot read {}: {e}", options.binary.display())))?;
    let context = SshContext::new(options.ssh.clone())?;
    let negative = if options.negative {
        negative_set(plan, &sha256(options.spec_text.as_bytes()))
    } else {
        None
    };
    let mut runs: Vec<HostRun> = fleet
        .hosts
        .into_iter()
        .map(|host| HostRun {
            host,
            status: HostStatus::Checked,
            reason: None,
            remote: None,
            paths: None,
            binary: None,
            listeners: Vec::new(),
            listen_reports: Vec::new(),
            results: Vec::new(),
            negative: Vec::new(),
            cleanup: None,
        })
        .collect();
    let mut timings = Vec::new();
    let mut interrupted = false;
    tokio::pin!(cancel);
    let n = options.concurrency;

    // Connect: never abandoned half-way (a master connection being set up
    // would be left behind), but no new login starts after an interrupt.
    let started = phase_start(progress, Phase::Connect, &runs);
    {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let work = futures::stream::iter(runs.iter_mut()).for_each_concurrent(n, |run| {
            let (context, stop) = (&context, &stop);
            async move {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    run.fail(HostStatus::Interrupted, "interrupted before login".into());
                    return;
                }
                match context.connect(&run.host).await {
                    Ok(session) => {
                        match Remote::open(session, options.keep, Duration::from_secs(30)).await {
                            Ok(remote) => run.remote = Some(remote),
                            Err(e) => run.fail(HostStatus::Failed, format!("prepare: {e}")),
                        }
                    }
                    Err(e) => {
                        let status = if e.contains("Permission denied")
                            || e.contains("Host key verification failed")
                            || e.contains("Too many authentication failures")
                        {
                            HostStatus::LoginFailed
                        } else {
                            HostStatus::Unreachable
                        };
                        run.fail(status, e);
                    }
                }
                host_done(progress, Phase::Connect, run);
            }
        });
        tokio::pin!(work);
        tokio::select! {
            () = &mut work => {}
            () = &mut cancel => {
                interrupted = true;
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                work.await;
            }
        }
    }
    phase_end(progress, Phase::Connect, started, &runs, &mut timings);

    // Prepare: the binary (unless the same one is installed), the spec and
    // the deployment into the private directory; sudo if asked.
    if !interrupted {
        let spec_hash = sha256(options.spec_text.as_bytes());
        let deployment_hash = sha256(options.deployment_text.as_bytes());
        let binary_hash = sha256(&binary);
        let local_system = local_system();
        let started = phase_start(progress, Phase::Prepare, &runs);
        let work = futures::stream::iter(runs.iter_mut().filter(|r| r.active()))
            .for_each_concurrent(n, |run| {
                let (binary, binary_hash, spec_hash, deployment_hash, local_system, negative) = (
                    &binary,
                    &binary_hash,
                    &spec_hash,
                    &deployment_hash,
                    &local_system,
                    &negative,
                );
                async move {
                    let mut result = prepare(
                        run,
                        options,
                        binary,
                        binary_hash,
                        spec_hash,
                        deployment_hash,
                        local_system,
                    )
                    .await;
                    if let (Ok(()), Some(set)) = (&result, negative) {
                        result = upload_negative(run, set).await;
                    }
                    if let Err((status, e)) = result {
                        run.fail(status, e);
                    }
                    host_done(progress, Phase::Prepare, run);
                }
            });
        interrupted = !race(work, &mut cancel).await;
        phase_end(progress, Phase::Prepare, started, &runs, &mut timings);
    }

    // Listen: every component a host runs that must accept flows, one after
    // the other on a host (so that a port two of its components share is
    // known to be ours), hosts at once.
    let token = portolan_preflight::default_token(&sha256(options.spec_text.as_bytes()));
    if !interrupted {
        let started = phase_start(progress, Phase::Listen, &runs);
        let work = futures::stream::iter(runs.iter_mut().filter(|r| r.active()))
            .for_each_concurrent(n, |run| {
                let (token, negative) = (&token, &negative);
                async move {
                    start_listeners(run, plan, options, token).await;
                    if let Some(set) = negative {
                        if run.active() {
                            start_negative_listeners(run, set, options, token).await;
                        }
                    }
                    host_done(progress, Phase::Listen, run);
                }
            });
        interrupted = !race(work, &mut cancel).await;
        phase_end(progress, Phase::Listen, started, &runs, &mut timings);
    }

    // Check: every component a host runs that originates flows.
    if !interrupted {
        let held_udp: Vec<(IpAddr, u16)> = runs
            .iter()
            .flat_map(|r| r.listen_reports.iter())
            .flat_map(|l| l.held_udp.iter().copied())
            .collect();
        let started = phase_start(progress, Phase::Check, &runs);
        let work = futures::stream::iter(runs.iter_mut().filter(|r| r.active()))
            .for_each_concurrent(n, |run| {
                let (token, held_udp, negative) = (&token, &held_udp, &negative);
                async move {
                    run_checks(run, plan, options, token, held_udp).await;
                    if let Some(set) = negative {
                        if run.active() {
                            run_negative_checks(run, plan, set, options, token).await;
                        }
                    }
                    host_done(progress, Phase::Check, run);
                }
            });
        interrupted = !race(work, &mut cancel).await;
        phase_end(progress, Phase::Check, started, &runs, &mut timings);
    }
    if interrupted {
        for run in runs.iter_mut().filter(|r| r.active()) {
            run.fail(HostStatus::Interrupted, "interrupted (Ctrl-C)".into());
        }
    }

    // Stop and clean up: always, for every host with a connection.
    let started = phase_start(progress, Phase::Cleanup, &runs);
    futures::stream::iter(runs.iter_mut().filter(|r| r.remote.is_some()))
        .for_each_concurrent(n, |run| async move {
            cleanup(run).await;
            host_done(progress, Phase::Cleanup, run);
        })
        .await;
    phase_end(progress, Phase::Cleanup, started, &runs, &mut timings);

    let mut hosts: Vec<HostOutcome> = Vec::new();
    let mut results = Vec::new();
    let mut negative_results = Vec::new();
    for run in runs {
        results.extend(run.results.iter().cloned());
        negative_results.extend(run.negative.iter().cloned());
        hosts.push(HostOutcome {
            reached: run.host.reached(),
            name: run.host.name,
            destination: run.host.destination,
            origin: run.host.origin,
            components: run.host.components,
            status: run.status,
            reason: run.reason,
            dir: run.paths.as_ref().map(|p| p.0.clone()),
            binary: run.binary,
            listeners: run.listen_reports,
            checked: run
                .results
                .iter()
                .map(|r| r.results.component.clone())
                .collect(),
            cleanup: run.cleanup,
        });
    }
    for u in fleet.unreachable {
        hosts.push(HostOutcome::not_placed(u));
    }
    Ok(FleetReport {
        system: plan.system.clone(),
        spec_file: options.spec_file.clone(),
        spec_sha256: sha256(options.spec_text.as_bytes()),
        hosts,
        idle: fleet.idle,
        results,
        negative: negative.map(|set| crate::report::NegativeReport {
            flows: set.flows,
            results: negative_results,
        }),
        phases: timings,
        interrupted,
    })
}

/// Runs a phase until it ends (true) or the operator interrupts (false);
/// an interrupted phase's unfinished work is dropped, which closes its SSH
/// channels and so stops its remote processes.
async fn race<F: Future<Output = ()>, C: Future<Output = ()> + Unpin>(
    work: F,
    cancel: &mut C,
) -> bool {
    tokio::select! {
        () = work => true,
        () = cancel => false,
    }
}

fn phase_start(
    progress: &(dyn Fn(Progress) + Send + Sync),
    phase: Phase,
    runs: &[HostRun],
) -> Instant {
    let hosts = match phase {
        Phase::Cleanup => runs.iter().filter(|r| r.remote.is_some()).count(),
        _ => runs.iter().filter(|r| r.active()).count(),
    };
    progress(Progress::PhaseStarted { phase, hosts });
    Instant::now()
}

fn phase_end(
    progress: &(dyn Fn(Progress) + Send + Sync),
    phase: Phase,
    started: Instant,
    runs: &[HostRun],
    timings: &mut Vec<PhaseTiming>,
) {
    let elapsed = started.elapsed();
    timings.push(PhaseTiming {
        phase,
        seconds: elapsed.as_secs_f64(),
    });
    progress(Progress::PhaseFinished {
        phase,
        elapsed,
        ok: runs.iter().filter(|r| r.active()).count(),
    });
}

fn host_done(progress: &(dyn Fn(Progress) + Send + Sync), phase: Phase, run: &HostRun) {
    let note = match phase {
        Phase::Prepare => run.paths.as_ref().map(|p| format!("files in {}", p.0)),
        Phase::Cleanup => run.cleanup.clone(),
        _ => None,
    };
    progress(Progress::HostFinished {
        phase,
        host: run.host.name.clone(),
        problem: if run.active() || phase == Phase::Cleanup {
            None
        } else {
            run.reason.clone()
        },
        note,
    });
}

/// `uname -sm` of this machine, as the keeper prints it on a host.
fn local_system() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "aarch64" if os == "Darwin" => "arm64",
        other => other,
    };
    format!("{os} {arch}")
}

async fn prepare(
    run: &mut HostRun,
    options: &FleetOptions,
    binary: &[u8],
    binary_hash: &str,
    spec_hash: &str,
    deployment_hash: &str,
    local_system: &str,
) -> Result<(), (HostStatus, String)> {
    let failed = |e: String| (HostStatus::Failed, format!("prepare: {e}"));
    let Some(remote) = run.remote.as_mut() else {
        return Err(failed("not connected".into()));
    };
    if remote.system != local_system {
        return Err((
            HostStatus::Unsupported,
            format!(
                "the host is {}, this portolan is built for {local_system}",
                remote.system
            ),
        ));
    }
    if options.sudo {
        remote
            .enable_sudo()
            .await
            .map_err(|e| (HostStatus::SudoRefused, e))?;
    }
    let binary_path = match &remote.installed {
        Some((hash, path)) if hash == binary_hash => {
            run.binary = Some(format!("installed {path} (same SHA-256)"));
            path.clone()
        }
        _ => {
            let path = remote
                .upload("portolan", binary, "0700", binary_hash)
                .await
                .map_err(failed)?;
            run.binary = Some(format!("copied to {path}"));
            path
        }
    };
    let spec = remote
        .upload(
            "portolan.yaml",
            options.spec_text.as_bytes(),
            "0600",
            spec_hash,
        )
        .await
        .map_err(failed)?;
    let deployment = remote
        .upload(
            "deployment.yaml",
            options.deployment_text.as_bytes(),
            "0600",
            deployment_hash,
        )
        .await
        .map_err(failed)?;
    run.paths = Some((remote.dir.clone(), binary_path, spec.clone()));
    // The deployment path is derived from the directory.
    let _ = deployment;
    Ok(())
}

fn remote_paths(run: &HostRun) -> Option<(String, String, String)> {
    run.paths.as_ref().map(|(dir, binary, spec)| {
        (
            binary.clone(),
            spec.clone(),
            format!("{dir}/deployment.yaml"),
        )
    })
}

async fn start_listeners(run: &mut HostRun, plan: &Plan, options: &FleetOptions, token: &str) {
    let Some((binary, spec, deployment)) = remote_paths(run) else {
        return;
    };
    let limit = format!("{}s", options.listen_limit.as_secs().max(1));
    let components = run.host.components.clone();
    for component in components {
        let receives = plan
            .flows_to(&component)
            .any(|f| matches!(f.protocol, Protocol::Tcp | Protocol::Udp) && !f.ports.is_empty());
        if !receives {
            continue;
        }
        let Some(remote) = run.remote.as_ref() else {
            return;
        };
        let argv = [
            binary.as_str(),
            "listen",
            spec.as_str(),
            "-d",
            deployment.as_str(),
            "--as",
            component.as_str(),
            "--token",
            token,
            "--duration",
            limit.as_str(),
        ];
        let mut listener = match remote.listen(&argv).await {
            Ok(l) => l,
            Err(e) => {
                run.fail(HostStatus::Failed, format!("listen as {component}: {e}"));
                return;
            }
        };
        let readiness = listener.wait_ready(options.ready_timeout).await;
        let ours: Vec<String> = run
            .listen_reports
            .iter()
            .flat_map(|l| l.bound.iter().cloned())
            .collect();
        let report = ListenerReport::from_lines(&component, &listener.lines, &ours);
        match readiness {
            Readiness::Ready => {
                run.listen_reports.push(report);
                run.listeners.push((component, listener));
            }
            // Every port taken (by the product, or by this host's other
            // listeners): nothing to serve, nothing wrong.
            Readiness::Exited(_) if report.all_taken() => run.listen_reports.push(report),
            Readiness::Exited(code) => {
                let why = report
                    .errors
                    .last()
                    .cloned()
                    .unwrap_or_else(|| format!("listen ended with status {code:?}"));
                run.listen_reports.push(report);
                run.fail(HostStatus::Failed, format!("listen as {component}: {why}"));
                return;
            }
            Readiness::Silent(why) => {
                run.listen_reports.push(report);
                run.listeners.push((component.clone(), listener));
                run.fail(HostStatus::Failed, format!("listen as {component}: {why}"));
                return;
            }
        }
    }
}

/// The address a component's checks go out from on this host: the
/// address logged in to when it is one of the component's, else the
/// component's only address; else the system chooses.
fn from_address(plan: &Plan, host: &FleetHost, component: &str) -> Option<IpAddr> {
    let endpoint = plan.component(component)?;
    let singles: Vec<IpAddr> = endpoint
        .nets
        .iter()
        .filter(|n| n.prefix_len() == n.max_prefix_len())
        .map(|n| n.addr())
        .collect();
    if let Ok(ip) = host.destination.parse::<IpAddr>() {
        if singles.contains(&ip) && singles.iter().all(|a| a.is_ipv4() == ip.is_ipv4()) {
            return Some(ip);
        }
    }
    match singles.as_slice() {
        [only] => Some(*only),
        _ => None,
    }
}

async fn run_checks(
    run: &mut HostRun,
    plan: &Plan,
    options: &FleetOptions,
    token: &str,
    held_udp: &[(IpAddr, u16)],
) {
    let Some((binary, spec, deployment)) = remote_paths(run) else {
        return;
    };
    let components = run.host.components.clone();
    for component in components {
        if plan.flows_from(&component).next().is_none() {
            continue;
        }
        // A UDP port held by the product's own service answers like the
        // service, not like a listener.
        let against_service = plan.flows_from(&component).any(|f| {
            f.protocol == Protocol::Udp
                && held_udp.iter().any(|(ip, port)| {
                    f.to.nets.iter().any(|n| n.contains(ip))
                        && f.ports.iter().any(|r| r.start <= *port && *port <= r.end)
                })
        });
        let timeout = options.timeout_ms.to_string();
        let retries = options.retries.to_string();
        let from = from_address(plan, &run.host, &component).map(|a| a.to_string());
        let mut argv = vec![
            binary.as_str(),
            "check",
            spec.as_str(),
            "-d",
            deployment.as_str(),
            "--as",
            component.as_str(),
            "--token",
            token,
            "--timeout",
            timeout.as_str(),
            "--retries",
            retries.as_str(),
            "-f",
            "json",
        ];
        if let Some(from) = &from {
            argv.extend(["--from", from.as_str()]);
        }
        if against_service {
            argv.extend(["--udp", "service"]);
        }
        let Some(remote) = run.remote.as_ref() else {
            return;
        };
        let output = match remote.check(&argv).await {
            Ok(o) => o,
            Err(e) => {
                run.fail(HostStatus::Failed, format!("check as {component}: {e}"));
                return;
            }
        };
        if !matches!(output.status, Some(0 | 1)) {
            run.fail(
                HostStatus::Failed,
                format!(
                    "check as {component} ended with status {:?}: {}",
                    output.status,
                    output.stderr.lines().last().unwrap_or("no message")
                ),
            );
            return;
        }
        let file = format!("{} ({})", run.host.reached(), component);
        match read_results(&file, &String::from_utf8_lossy(&output.stdout)) {
            Ok(mut results) => {
                // The host's own name may be shared (containers, namespaces):
                // the fleet's name says which machine it was.
                results.host = run.host.name.clone();
                results.spec.file = options.spec_file.clone();
                results.deployment.file = options.deployment_file.clone();
                run.results.push(ResultsInput { file, results });
            }
            Err(e) => {
                run.fail(HostStatus::Failed, format!("check as {component}: {e}"));
                return;
            }
        }
    }
}

async fn cleanup(run: &mut HostRun) {
    let limit = Duration::from_secs(10);
    let listeners = std::mem::take(&mut run.listeners);
    for (component, listener) in listeners {
        let last = listener.stop(limit).await;
        if let Some(report) = run
            .listen_reports
            .iter_mut()
            .find(|l| l.component == component)
        {
            report.stopped = last
                .iter()
                .find(|l| l.starts_with("stopped:"))
                .cloned()
                .or_else(|| last.last().cloned());
        }
    }
    if let Some(remote) = run.remote.take() {
        run.cleanup = Some(match remote.close(limit).await {
            Ok(text) => text,
            Err(e) => format!("NOT CONFIRMED: {e}"),
        });
    }
}

async fn upload_negative(run: &mut HostRun, set: &NegativeSet) -> Result<(), (HostStatus, String)> {
    let Some(remote) = run.remote.as_ref() else {
        return Ok(());
    };
    let failed = |e: String| (HostStatus::Failed, format!("prepare: {e}"));
    remote
        .upload(
            "negative.yaml",
            set.spec.as_bytes(),
            "0600",
            &sha256(set.spec.as_bytes()),
        )
        .await
        .map_err(failed)?;
    remote
        .upload(
            "negative-deployment.yaml",
            set.deployment.as_bytes(),
            "0600",
            &sha256(set.deployment.as_bytes()),
        )
        .await
        .map_err(failed)?;
    Ok(())
}

/// Listeners on the sampled ports: a failure to bind is reported, never
/// fatal (whatever holds the port answers the probe, which then counts
/// as admitted, rightly: the port is open).
async fn start_negative_listeners(
    run: &mut HostRun,
    set: &NegativeSet,
    options: &FleetOptions,
    token: &str,
) {
    let Some((binary, dir)) = run.paths.as_ref().map(|p| (p.1.clone(), p.0.clone())) else {
        return;
    };
    let (spec, deployment) = (
        format!("{dir}/negative.yaml"),
        format!("{dir}/negative-deployment.yaml"),
    );
    let limit = format!("{}s", options.listen_limit.as_secs().max(1));
    for component in run.host.components.clone() {
        if !set.listeners.contains(&component) {
            continue;
        }
        let Some(remote) = run.remote.as_ref() else {
            return;
        };
        let argv = [
            binary.as_str(),
            "listen",
            spec.as_str(),
            "-d",
            deployment.as_str(),
            "--as",
            component.as_str(),
            "--token",
            token,
            "--duration",
            limit.as_str(),
        ];
        let label = format!("{component} (negative)");
        let mut listener = match remote.listen(&argv).await {
            Ok(l) => l,
            Err(e) => {
                run.fail(HostStatus::Failed, format!("listen as {label}: {e}"));
                return;
            }
        };
        let readiness = listener.wait_ready(options.ready_timeout).await;
        let ours: Vec<String> = run
            .listen_reports
            .iter()
            .flat_map(|l| l.bound.iter().cloned())
            .collect();
        let mut report = ListenerReport::from_lines(&label, &listener.lines, &ours);
        if let Readiness::Silent(why) = &readiness {
            report.errors.push(why.clone());
        }
        run.listen_reports.push(report);
        if matches!(readiness, Readiness::Ready | Readiness::Silent(_)) {
            run.listeners.push((label, listener));
        }
    }
}

async fn run_negative_checks(
    run: &mut HostRun,
    plan: &Plan,
    set: &NegativeSet,
    options: &FleetOptions,
    token: &str,
) {
    let Some((binary, dir)) = run.paths.as_ref().map(|p| (p.1.clone(), p.0.clone())) else {
        return;
    };
    let (spec, deployment) = (
        format!("{dir}/negative.yaml"),
        format!("{dir}/negative-deployment.yaml"),
    );
    let timeout = options.timeout_ms.to_string();
    for component in run.host.components.clone() {
        if !set.senders.contains(&component) {
            continue;
        }
        let from = from_address(plan, &run.host, &component).map(|a| a.to_string());
        let mut argv = vec![
            binary.as_str(),
            "check",
            spec.as_str(),
            "-d",
            deployment.as_str(),
            "--as",
            component.as_str(),
            "--token",
            token,
            "--timeout",
            timeout.as_str(),
            "--retries",
            "0",
            "-f",
            "json",
        ];
        if let Some(from) = &from {
            argv.extend(["--from", from.as_str()]);
        }
        let Some(remote) = run.remote.as_ref() else {
            return;
        };
        let file = format!("{} ({component}, negative)", run.host.reached());
        let outcome = match remote.check(&argv).await {
            Ok(o) if matches!(o.status, Some(0 | 1)) => {
                read_results(&file, &String::from_utf8_lossy(&o.stdout)).map_err(|e| e.to_string())
            }
            Ok(o) => Err(format!(
                "ended with status {:?}: {}",
                o.status,
                o.stderr.lines().last().unwrap_or("no message")
            )),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(mut results) => {
                results.host = run.host.name.clone();
                run.negative.push(ResultsInput { file, results });
            }
            Err(e) => {
                run.fail(
                    HostStatus::Failed,
                    format!("negative check as {component}: {e}"),
                );
                return;
            }
        }
    }
}
