//! Run locks and the removal of leftovers of earlier runs.
//!
//! Every live lab holds an exclusive `flock` on `/run/portolan-lab/<run>.lock`.
//! The kernel releases it when the process dies, however it dies (even
//! `SIGKILL`), so [`cleanup_stale`] can tell the resources of live labs,
//! which it leaves alone, from leftovers, which it removes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::LabError;
use crate::netlink::NsNetlink;
use crate::netns;
use crate::privileges::check_privileges;
use crate::topology::RunId;

/// Directory of the run lock files of live labs.
pub const LOCK_DIR: &str = "/run/portolan-lab";

/// How many times a lock is retried when its file is replaced under it.
const LOCK_ATTEMPTS: usize = 5;

/// The exclusive lock a live lab holds on its run.
#[derive(Debug)]
pub(crate) struct RunLock {
    path: PathBuf,
    lock: Flock<File>,
}

impl RunLock {
    /// Takes the lock of `run`, creating its lock file.
    pub(crate) fn acquire(run: &RunId) -> Result<Self, LabError> {
        let dir = Path::new(LOCK_DIR);
        std::fs::create_dir_all(dir).map_err(|e| LabError::io("create the directory", dir, e))?;
        let path = lock_path(run.as_str());
        for _ in 0..LOCK_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| LabError::io("open the run lock file", &path, e))?;
            let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(LabError::RunInUse(run.to_string()));
                }
                Err((_, e)) => return Err(LabError::io("lock the run lock file", &path, e)),
            };
            // A concurrent cleanup may have removed the file between open and
            // lock; the lock only counts if it is on the file at the path.
            if same_file(&lock, &path) {
                // Informational only: who holds the run.
                let _ = lock.set_len(0);
                let _ = writeln!(lock, "{}", std::process::id());
                return Ok(RunLock { path, lock });
            }
        }
        Err(LabError::RunInUse(run.to_string()))
    }

    /// Removes the lock file, then releases the lock.
    pub(crate) fn release(self) -> Result<(), LabError> {
        let removed = match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LabError::io("remove the run lock file", &self.path, e)),
        };
        drop(self.lock);
        removed
    }
}

fn lock_path(run: &str) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{run}.lock"))
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What [`cleanup_stale`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Named namespaces removed from `/run/netns`.
    pub namespaces: Vec<String>,
    /// Links removed from the caller's network namespace.
    pub links: Vec<String>,
    /// Lock files of dead runs removed.
    pub lock_files: Vec<PathBuf>,
    /// Runs matching the prefix that are live (their process still holds
    /// the lock) and whose resources were left alone.
    pub live_runs: Vec<String>,
}

impl CleanupReport {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.links.is_empty() && self.lock_files.is_empty()
    }
}

/// Removes the leftovers of earlier lab runs whose names start with `prefix`
/// (`ptl-` for all runs, or a run id such as `ptl-k3x9q2` for one): named
/// namespaces under `/run/netns` (their links go with them), links of the
/// caller's network namespace, and run lock files.
///
/// Resources of live labs, in this process or another, are never touched: a
/// run is live while its lock is held (see the module documentation), and
/// such runs are listed in [`CleanupReport::live_runs`].
///
/// The prefix must start with `ptl`, so that nothing else can be removed.
/// Every leftover is attempted; when some could not be removed, the error
/// lists them all.
pub fn cleanup_stale(prefix: &str) -> Result<CleanupReport, LabError> {
    if !prefix.starts_with("ptl") {
        return Err(LabError::InvalidName {
            name: prefix.to_string(),
            reason: "cleanup only removes resources whose names start with `ptl`".into(),
        });
    }
    check_privileges()?;
    let mut report = CleanupReport::default();
    let mut errors = Vec::new();

    // 1. Which runs are live; remove the lock files of dead ones.
    let mut live = Vec::new();
    for (run, path) in lock_files()? {
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(LabError::io("open the run lock file", &path, e));
                continue;
            }
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Err((_, Errno::EWOULDBLOCK)) => live.push(run),
            Err((_, e)) => errors.push(LabError::io("lock the run lock file", &path, e)),
            Ok(lock) => {
                if run.starts_with(prefix) && same_file(&lock, &path) {
                    match std::fs::remove_file(&path) {
                        Ok(()) => report.lock_files.push(path),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => errors.push(LabError::io("remove the run lock file", &path, e)),
                    }
                }
                drop(lock);
            }
        }
    }
    let is_live = |name: &str| {
        live.iter()
            .find(|run| name == run.as_str() || name.starts_with(&format!("{run}-")))
            .cloned()
    };

    // 2. Named namespaces.
    for name in netns::list_named(prefix)? {
        if let Some(run) = is_live(&name) {
            if !report.live_runs.contains(&run) {
                report.live_runs.push(run);
            }
            continue;
        }
        match netns::delete_named(&name) {
            Ok(()) => report.namespaces.push(name),
            Err(e) => errors.push(e),
        }
    }

    // 3. Links of the caller's namespace (a lab never leaves any there, but
    //    an interrupted run of another tool version might have).
    match stale_links(prefix, &is_live) {
        Ok((removed, link_errors)) => {
            report.links = removed;
            errors.extend(link_errors);
        }
        Err(e) => errors.push(e),
    }

    if errors.is_empty() {
        Ok(report)
    } else {
        Err(LabError::Teardown(errors))
    }
}

type LinkCleanup = (Vec<String>, Vec<LabError>);

fn stale_links(
    prefix: &str,
    is_live: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<LinkCleanup, LabError> {
    // A thread of its own so that this works whether or not the caller runs
    // a tokio runtime. It inherits the caller thread's network namespace.
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| -> Result<LinkCleanup, LabError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| LabError::io("start a tokio runtime", "netlink", e))?;
            let namespace = "(caller's namespace)";
            let nl = NsNetlink::connect_here(namespace, rt.handle())?;
            rt.block_on(async {
                let mut removed = Vec::new();
                let mut errors = Vec::new();
                for (name, index) in nl.links_with_prefix(prefix).await? {
                    if is_live(&name).is_some() {
                        continue;
                    }
                    match nl.delete_link(index, &name).await {
                        Ok(()) => removed.push(name),
                        Err(e) => errors.push(e),
                    }
                }
                Ok((removed, errors))
            })
        });
        worker.join().map_err(|p| LabError::ThreadPanicked {
            namespace: "(caller's namespace)".into(),
            message: crate::error::panic_message(&*p),
        })?
    })
}

/// `(run id, path)` of every lock file.
fn lock_files() -> Result<Vec<(String, PathBuf)>, LabError> {
    let entries = match std::fs::read_dir(LOCK_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("list the directory", LOCK_DIR, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LabError::io("list the directory", LOCK_DIR, e))?;
        let name = entry.file_name();
        if let Some(run) = name.to_str().and_then(|n| n.strip_suffix(".lock")) {
            found.push((run.to_string(), entry.path()));
        }
    }
    found.sort();
    Ok(found)
}
