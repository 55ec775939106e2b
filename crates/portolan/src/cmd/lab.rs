//! `portolan lab`: builds a throwaway network of namespaces on this machine,
//! loads the generated firewall in each component and proves it flow by flow.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use portolan_lab::{DesignError, FeatureChoice, LabEvent, LabOptions, RunError, RunId};

use crate::cli::{LabArgs, LabFormat};
use crate::output::{write_file, write_output, write_stdout};
use crate::status::{CmdError, CmdResult, ExitStatus};

#[allow(clippy::print_stderr)]
pub fn run(args: &LabArgs) -> CmdResult {
    // First, while the process has one thread: the kernel creates a user
    // namespace for single-threaded processes only.
    if !args.no_user_namespace && !portolan_lab::has_privileges() {
        portolan_lab::privileges::enter_user_namespace()
            .map_err(|e| anyhow::Error::new(e).context("the lab cannot run on this machine"))?;
        eprintln!("note: not root: the lab runs in a private user and network namespace");
    }
    let spec = super::load_spec_for_deployment(&args.spec)?;
    let features = if args.all_features {
        FeatureChoice::All
    } else {
        FeatureChoice::Listed(
            args.features
                .iter()
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect(),
        )
    };
    let run_id = match &args.run_id {
        Some(id) => Some(RunId::new(id.clone())?),
        None => None,
    };
    let deployment = match &args.deployment {
        Some(path) => Some(super::plan::load_deployment_or_report(path, &spec)?),
        None => None,
    };
    let rules = match &args.rules {
        Some(dir) => Some(portolan_lab::rules::read_rules_dir(dir)?),
        None => None,
    };
    let bar = progress_bar();
    let mut options = LabOptions {
        features,
        replicas: args.replicas,
        seed: args.seed,
        run_id,
        deployment,
        rules,
        ..LabOptions::default()
    };
    if let Some(bar) = &bar {
        options.progress = Some(progress_callback(bar.clone()));
    }
    let signals = install_signal_handler(bar.clone());

    let outcome = portolan_lab::run_lab(&spec, &options);
    if INTERRUPTED.load(Ordering::SeqCst) {
        // The handler is tearing the lab down and then exits with 130: the
        // error the teardown caused here (a lab destroyed mid-creation) is
        // not the run's, and must not win the race to exit (as 2).
        if let Some(handler) = signals {
            let _ = handler.join();
        }
        return Ok(ExitStatus::Interrupted);
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let (report, artifacts) = match outcome {
        Ok(done) => done,
        // The library says what is wrong with the value; the flag is ours to name.
        Err(RunError::Design(DesignError::Replicas { given, max })) => {
            return Err(CmdError::input(format!(
                "--replicas must be between 1 and {max}, not {given}"
            )))
        }
        Err(RunError::Lab(e)) => {
            return Err(anyhow::Error::new(e)
                .context("the lab cannot run on this machine")
                .into())
        }
        Err(e) => return Err(e.into()),
    };

    for name in &report.stale_removed {
        eprintln!("note: removed a leftover of an earlier lab run: {name}");
    }
    for name in &report.stale_kept {
        eprintln!("note: left alone: network namespace {name}");
    }
    let text = report.render_text();
    let rendered = match args.format {
        LabFormat::Table => text.clone(),
        LabFormat::Json => {
            let mut json = report.to_json();
            json.push('\n');
            json
        }
        LabFormat::Junit => report
            .junit_xml()
            .context("cannot write the JUnit report")?,
    };
    match &args.output {
        Some(path) if path.as_os_str() != "-" => {
            write_output(Some(path), &rendered)?;
            if args.format != LabFormat::Table {
                write_stdout(&text)?;
            }
            eprintln!(
                "{}: wrote the {} report",
                path.display(),
                args.format.name()
            );
        }
        _ => write_stdout(&rendered)?,
    }
    if args.keep || args.keep_dir.is_some() {
        let dir = args
            .keep_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("portolan-lab-{}", report.run_id)));
        keep(&dir, &report, &artifacts)?;
        eprintln!(
            "{}: lab deployment, the {} rulesets as loaded, and the JSON report",
            dir.display(),
            artifacts.rulesets.len()
        );
    }
    Ok(ExitStatus::from_check(report.holds()))
}

/// Writes what a run built, to reproduce or inspect it.
fn keep(
    dir: &Path,
    report: &portolan_lab::LabReport,
    artifacts: &portolan_lab::LabArtifacts,
) -> Result<(), CmdError> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_file(
        &dir.join("lab-deployment.yaml"),
        artifacts.deployment.as_bytes(),
    )?;
    for (file, ruleset) in &artifacts.rulesets {
        write_file(&dir.join(file), ruleset.as_bytes())?;
    }
    let mut json = report.to_json();
    json.push('\n');
    write_file(&dir.join("lab-report.json"), json.as_bytes())
}

/// A progress bar on standard error, only when it is a terminal.
fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} lab: {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

fn progress_callback(bar: ProgressBar) -> portolan_lab::ProgressFn {
    let counting = Arc::new(Mutex::new(false));
    Arc::new(move |event| match event {
        LabEvent::Phase(phase) => bar.set_message(phase.as_str().to_owned()),
        LabEvent::Checks { done, total } => {
            let mut started = counting.lock().unwrap_or_else(PoisonError::into_inner);
            if !*started {
                *started = true;
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} lab: probes [{bar:30}] {pos}/{len} checks",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_length(total as u64);
            }
            bar.set_position(done as u64);
        }
        _ => {}
    })
}

/// Set by the signal handler before it tears the lab down.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C and SIGTERM tear the lab down before the process exits (code 130).
/// Returns once the signals are caught, so that no signal in between kills
/// the process with its lab.
fn install_signal_handler(bar: Option<ProgressBar>) -> Option<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let handle = std::thread::Builder::new()
        .name("portolan-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                let _ = ready_tx.send(());
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                INTERRUPTED.store(true, Ordering::SeqCst);
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                let torn = portolan_lab::cleanup_registered();
                #[allow(clippy::print_stderr)]
                match torn {
                    Ok(n) => eprintln!("interrupted: {n} lab(s) torn down"),
                    Err(e) => eprintln!(
                        "interrupted: teardown incomplete ({e}); the next run removes the leftovers"
                    ),
                }
                std::process::exit(130);
            });
        })
        .ok()?;
    let _ = ready_rx.recv_timeout(Duration::from_secs(5));
    Some(handle)
}
