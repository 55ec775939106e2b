//! Loading the hosts' rulesets (generated, or a person's from a directory)
//! into the lab, with the lab's trace table.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError as P};

use crate::design::LabDesign;
use crate::error::LabError;
use crate::lab::{find_program, Lab};
use crate::rules::{RulesFile, RulesFormat};

/// Each ruleset name (a host of the deployment) with its files.
pub(crate) type Rulesets = BTreeMap<String, Vec<RulesFile>>;

/// (lab host, files) of every host that gets a firewall.
pub(crate) fn firewalled_hosts<'a>(
    design: &'a LabDesign,
    rulesets: &'a Rulesets,
) -> Vec<(&'a str, &'a [RulesFile])> {
    design
        .nodes
        .iter()
        .filter_map(|n| {
            n.ruleset
                .as_ref()
                .and_then(|name| rulesets.get(name))
                .map(|files| (n.host.as_str(), files.as_slice()))
        })
        .collect()
}

/// Runs `program args` in a host with `input` on its standard input.
fn pipe(
    lab: &Lab,
    host: &str,
    program: &str,
    args: &[&str],
    input: &str,
) -> Result<Output, LabError> {
    let path = find_program(program).ok_or_else(|| match program {
        "nft" => LabError::NftMissing,
        _ => LabError::io(
            "find the program",
            program,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ),
    })?;
    let mut command = Command::new(&path);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let text = input.to_owned();
    lab.run_in(host, move || -> std::io::Result<Output> {
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A write error (the program exited early) shows in its status
            // and standard error.
            let _ = stdin.write_all(text.as_bytes());
        }
        child.wait_with_output()
    })?
    .join()?
    .map_err(|e| LabError::io("run the program", path, e))
}

/// A ruleset file its loader refuses: the file and the loader's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The file.
    pub file: String,
    /// The loader (`nft`, `iptables-restore`, `ip6tables-restore`).
    pub program: &'static str,
    /// The loader's standard error, naming the file instead of stdin.
    pub message: String,
}

/// Checks every file with its loader's dry run (`nft -c`,
/// `iptables-restore --test`) in a host it is for, loading nothing.
pub(crate) fn check_rulesets(
    lab: &Lab,
    jobs: &[(&str, &[RulesFile])],
) -> Result<Vec<Refused>, LabError> {
    // One check per file, in the first host that loads it.
    let mut seen = std::collections::BTreeSet::new();
    let files: Vec<(&str, &RulesFile)> = jobs
        .iter()
        .flat_map(|(host, files)| files.iter().map(move |f| (*host, f)))
        .filter(|(_, f)| seen.insert(f.file_name()))
        .collect();
    let refused = Mutex::new(Vec::new());
    let result = in_parallel(files.len(), |i| {
        let (host, file) = files[i];
        let (program, args) = file.format.checker();
        let out = pipe(lab, host, program, args, &file.text)?;
        if !out.status.success() {
            let shown = file.path.display().to_string();
            let message = String::from_utf8_lossy(&out.stderr)
                .replace("/dev/stdin", &shown)
                .trim()
                .to_owned();
            refused.lock().unwrap_or_else(P::into_inner).push(Refused {
                file: shown,
                program,
                message,
            });
        }
        Ok(())
    });
    result?;
    let mut refused = refused.into_inner().unwrap_or_else(P::into_inner);
    refused.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(refused)
}

/// Loads the rulesets into every firewalled host, several at a time; with
/// `trace`, each with the lab's trace table (a host that refuses the trace
/// table gets its ruleset alone and is returned).
pub(crate) fn load_rulesets(
    lab: &Lab,
    jobs: &[(&str, &[RulesFile])],
    trace: bool,
) -> Result<Vec<String>, LabError> {
    let table = crate::trace::trace_table();
    let untraced: Mutex<Vec<String>> = Mutex::new(Vec::new());
    in_parallel(jobs.len(), |i| {
        let (host, files) = jobs[i];
        let mut traced = false;
        for file in files {
            if file.format == RulesFormat::Nft {
                if trace
                    && !traced
                    && lab
                        .load_nft(host, &format!("{}\n{table}", file.text))
                        .is_ok()
                {
                    traced = true;
                    continue;
                }
                lab.load_nft(host, &file.text)?;
            } else {
                let (program, args) = file.format.loader();
                let out = pipe(lab, host, program, args, &file.text)?;
                if !out.status.success() {
                    return Err(LabError::NftFailed {
                        host: host.to_owned(),
                        status: out.status,
                        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    });
                }
            }
        }
        if trace && !traced {
            traced = lab.load_nft(host, &table).is_ok();
        }
        if trace && !traced {
            untraced
                .lock()
                .unwrap_or_else(P::into_inner)
                .push(host.to_owned());
        }
        Ok(())
    })?;
    Ok(untraced.into_inner().unwrap_or_else(P::into_inner))
}

/// Runs `job(0..n)` on a few threads; the first errors are returned.
fn in_parallel(
    n: usize,
    job: impl Fn(usize) -> Result<(), LabError> + Sync,
) -> Result<(), LabError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .clamp(2, 16);
    let next = AtomicUsize::new(0);
    let errors: Mutex<Vec<LabError>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(n) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Err(e) = job(i) {
                    errors.lock().unwrap_or_else(P::into_inner).push(e);
                }
            });
        }
    });
    let mut errors = errors.into_inner().unwrap_or_else(P::into_inner);
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(LabError::Teardown(errors)),
    }
}
