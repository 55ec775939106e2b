//! Run locks, the record of what each run created, and the removal of the
//! leftovers of dead runs.
//!
//! Every live lab holds an exclusive `flock` on `/run/portolan-lab/<run>.lock`.
//! The kernel releases it when the process dies, however it dies (even
//! `SIGKILL`), so [`cleanup_stale`] can tell live labs, which it leaves
//! alone, from dead ones.
//!
//! The lock file is also the run's record of what it owns: as soon as the
//! mount point `/run/netns/NAME` is created, a line `file NAME DEV INO`, and
//! as soon as the namespace is mounted on it, before anything else happens
//! in it, `netns NAME DEV INO` (identities as `stat` gives them). Cleanup
//! removes only what a dead run recorded and that still has the recorded
//! identity (a namespace only with no process in it): never a namespace
//! merely named like a lab's (`ip netns add ptl-mine`).
//! Links need no record: a lab creates every link inside its namespaces,
//! and they go with them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::LabError;
use crate::netns;
use crate::privileges::check_privileges;
use crate::topology::RunId;

/// Directory of the run lock files of live labs.
pub const LOCK_DIR: &str = "/run/portolan-lab";

/// How many times a lock is retried when its file is replaced under it.
const LOCK_ATTEMPTS: usize = 5;

/// The exclusive lock a live lab holds on its run, and its record.
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
                // A dead run of the same id (`--run-id`) may have left its
                // recorded namespaces: they are this id's, so remove them
                // first; then start a fresh record.
                let mut earlier = String::new();
                let _ = lock.read_to_string(&mut earlier);
                let mut report = CleanupReport::default();
                let (kept, mut errors) = remove_recorded(&earlier, &mut report);
                if let Some(error) = errors.pop() {
                    return Err(error);
                }
                if kept {
                    return Err(LabError::NamespaceExists(report.in_use.join(", ")));
                }
                let file: &mut File = &mut lock;
                file.set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)))
                    .and_then(|_| writeln!(file, "pid {}", std::process::id()))
                    .map_err(|e| LabError::io("write the run lock file", &path, e))?;
                return Ok(RunLock { path, lock });
            }
        }
        Err(LabError::RunInUse(run.to_string()))
    }

    /// Appends a line to the run's record (see [`netns::RecordFn`]).
    pub(crate) fn record(&mut self, line: &str) -> Result<(), LabError> {
        let file: &mut File = &mut self.lock;
        file.seek(SeekFrom::End(0))
            .and_then(|_| file.write_all(format!("{line}\n").as_bytes()))
            .map_err(|e| LabError::io("record a namespace in", &self.path, e))
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

/// What a run recorded as its own: a namespace, or the mount point it
/// created for one (left as a plain file when the run was killed before
/// mounting), with its name and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    /// True for a mounted namespace, false for a bare mount point.
    mounted: bool,
    name: String,
    dev: u64,
    ino: u64,
}

/// What a lock file's text records (other lines ignored), namespaces first.
fn parse_record(text: &str) -> Vec<Recorded> {
    let mut found: Vec<Recorded> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let mounted = match words.next()? {
                "netns" => true,
                "file" => false,
                _ => return None,
            };
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some(name), Some(dev), Some(ino), None) => Some(Recorded {
                    mounted,
                    name: name.to_owned(),
                    dev: dev.parse().ok()?,
                    ino: ino.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect();
    found.sort_by_key(|r| !r.mounted);
    found
}

/// What [`cleanup_stale`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Named namespaces of dead runs removed from `/run/netns`.
    pub namespaces: Vec<String>,
    /// Lock files of dead runs removed.
    pub lock_files: Vec<PathBuf>,
    /// Runs matching the prefix that are live (their process still holds
    /// the lock) and whose resources were left alone.
    pub live_runs: Vec<String>,
    /// Namespaces of dead runs left alone because a process is still inside
    /// (their run's lock file stays, so a later cleanup tries again).
    pub in_use: Vec<String>,
    /// Namespaces named like a lab's that no run recorded as its own (made
    /// by hand, by another tool, or by a version of Portolan before the
    /// record): never touched.
    pub not_ours: Vec<String>,
}

impl CleanupReport {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.lock_files.is_empty()
    }
}

/// Removes the leftovers of dead lab runs whose run id starts with `prefix`
/// (`ptl-` for all runs, or a run id such as `ptl-k3x9q2` for one): the
/// namespaces each recorded as its own in its lock file, then the lock file.
///
/// Nothing else is touched, whatever its name: namespaces of live labs (in
/// this process or another; see the module documentation), namespaces no
/// run recorded ([`CleanupReport::not_ours`]), a recorded name that now
/// names another namespace, and recorded namespaces with a process inside
/// ([`CleanupReport::in_use`]).
///
/// The prefix must start with `ptl`. Every leftover is attempted; when some
/// could not be removed, the error lists them all.
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
    let runs = lock_files()?;
    for (run, path) in runs.iter().filter(|(run, _)| run.starts_with(prefix)) {
        if let Err(e) = clean_run(run, path, &mut report) {
            errors.push(e);
        }
    }
    // Named like a lab's, and no run (live or dead) owns it: say so, touch nothing.
    let owned = |name: &str| {
        runs.iter()
            .any(|(run, _)| name == run || name.starts_with(&format!("{run}-")))
    };
    for name in netns::list_named(prefix)? {
        let removed = report.namespaces.contains(&name);
        if !removed && !report.in_use.contains(&name) && !owned(&name) {
            report.not_ours.push(name);
        }
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(LabError::Teardown(errors))
    }
}

/// Cleans one run: nothing if it is live, else its recorded namespaces and,
/// when none is left, its lock file.
fn clean_run(run: &str, path: &Path, report: &mut CleanupReport) -> Result<(), LabError> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(LabError::io("open the run lock file", path, e)),
    };
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Err((_, Errno::EWOULDBLOCK)) => {
            report.live_runs.push(run.to_owned());
            return Ok(());
        }
        Err((_, e)) => return Err(LabError::io("lock the run lock file", path, e)),
        Ok(lock) => lock,
    };
    if !same_file(&lock, path) {
        // Removed or replaced meanwhile: another cleanup's or run's business.
        return Ok(());
    }
    let mut text = String::new();
    lock.read_to_string(&mut text)
        .map_err(|e| LabError::io("read the run lock file", path, e))?;
    let (mut kept, mut errors) = remove_recorded(&text, report);
    let (gaps_kept, gap_errors) = remove_unrecorded(&text, report);
    kept |= gaps_kept;
    errors.extend(gap_errors);
    if !kept {
        match std::fs::remove_file(path) {
            Ok(()) => report.lock_files.push(path.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(LabError::io("remove the run lock file", path, e)),
        }
    }
    drop(lock);
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(LabError::Teardown(errors)),
    }
}

/// Removes the namespaces of a record (the text of a dead run's lock file)
/// that still have their recorded identity and no process inside. Returns
/// whether any of them is left, and the errors.
fn remove_recorded(text: &str, report: &mut CleanupReport) -> (bool, Vec<LabError>) {
    let mut errors = Vec::new();
    let mut kept = false;
    for recorded in parse_record(text) {
        let mount = netns::netns_path(&recorded.name);
        match std::fs::metadata(&mount) {
            // Gone, or the name now belongs to another namespace.
            Err(_) => continue,
            Ok(meta) if meta.dev() != recorded.dev || meta.ino() != recorded.ino => continue,
            Ok(_) => {}
        }
        if !recorded.mounted {
            // Still the bare file this run created: it never held a namespace.
            match std::fs::remove_file(&mount) {
                Ok(()) => report.namespaces.push(recorded.name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    errors.push(LabError::io("remove the mount point", &mount, e));
                    kept = true;
                }
            }
            continue;
        }
        if has_process_inside(recorded.dev, recorded.ino) {
            report.in_use.push(recorded.name);
            kept = true;
            continue;
        }
        match netns::delete_named(&recorded.name) {
            Ok(()) => report.namespaces.push(recorded.name),
            Err(e) => {
                errors.push(e);
                kept = true;
            }
        }
    }
    (kept, errors)
}

/// What a run killed in the middle of making a namespace left without its
/// identity recorded: the name was recorded first (`intent NAME`), and the
/// mount point is made with O_EXCL, so nothing else can sit at that path
/// unless someone removed the run's own file first. Two gaps:
/// - killed before the mount point's identity was recorded: an empty,
///   read-only regular file, never a namespace;
/// - killed after mounting, before the namespace's identity was recorded:
///   a namespace (nsfs) mounted on the file this run recorded.
///
/// Anything else at the path is left alone.
fn remove_unrecorded(text: &str, report: &mut CleanupReport) -> (bool, Vec<LabError>) {
    let recorded = parse_record(text);
    let mut errors = Vec::new();
    let mut kept = false;
    for name in intended(text) {
        let of_name: Vec<&Recorded> = recorded.iter().filter(|r| r.name == name).collect();
        if of_name.iter().any(|r| r.mounted) {
            continue; // known by its identity: remove_recorded's business
        }
        let mount = netns::netns_path(&name);
        let Ok(meta) = std::fs::symlink_metadata(&mount) else {
            continue;
        };
        let is_nsfs = nix::sys::statfs::statfs(&mount)
            .map(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
            .unwrap_or(false);
        if of_name.is_empty() {
            let bare = meta.file_type().is_file()
                && meta.len() == 0
                && meta.mode() & 0o777 == 0o444
                && !is_nsfs;
            if bare {
                match std::fs::remove_file(&mount) {
                    Ok(()) => report.namespaces.push(name),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        errors.push(LabError::io("remove the mount point", &mount, e));
                        kept = true;
                    }
                }
            }
            continue;
        }
        // Only a bare file was recorded, and a namespace is mounted there now.
        if !is_nsfs {
            continue;
        }
        if has_process_inside(meta.dev(), meta.ino()) {
            report.in_use.push(name);
            kept = true;
            continue;
        }
        match netns::delete_named(&name) {
            Ok(()) => report.namespaces.push(name),
            Err(e) => {
                errors.push(e);
                kept = true;
            }
        }
    }
    (kept, errors)
}

/// The names a record says the run was about to make (`intent NAME`).
fn intended(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| match line.split(' ').collect::<Vec<_>>()[..] {
            ["intent", name] => Some(name.to_owned()),
            _ => None,
        })
        .collect()
}

/// Whether any thread of any process is in the network namespace with this
/// identity (`/proc/PID/task/TID/ns/net`).
fn has_process_inside(dev: u64, ino: u64) -> bool {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        // Cannot tell: assume someone is inside.
        return true;
    };
    for process in processes.flatten() {
        let is_pid = process
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(process.path().join("task")) else {
            continue; // exited meanwhile
        };
        for task in tasks.flatten() {
            if let Ok(meta) = std::fs::metadata(task.path().join("ns/net")) {
                if meta.dev() == dev && meta.ino() == ino {
                    return true;
                }
            }
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_lists_only_well_formed_lines_namespaces_first() {
        let text = "pid 42\nfile ptl-a-x 27 310\nnetns ptl-a-x 4 4026532000\nnetns ptl-a-y 4\nnetns ptl-a-z 4 nine\nlink x 1 2\nnetns a b 1 2 3\n";
        assert_eq!(
            parse_record(text),
            vec![
                Recorded {
                    mounted: true,
                    name: "ptl-a-x".into(),
                    dev: 4,
                    ino: 4026532000
                },
                Recorded {
                    mounted: false,
                    name: "ptl-a-x".into(),
                    dev: 27,
                    ino: 310
                }
            ]
        );
        assert!(
            parse_record("1234\n").is_empty(),
            "an old-format lock file owns nothing"
        );
    }

    #[test]
    fn intents_are_names_alone() {
        let text =
            "pid 42\nintent ptl-a-x\nfile ptl-a-x 27 310\nintent\nintent a b\nintent ptl-a-y\n";
        assert_eq!(intended(text), vec!["ptl-a-x", "ptl-a-y"]);
    }
}
