//! The state directory: the journal of the last apply (JSON, replaced
//! atomically), the saved and new rulesets, the log, and the lock that
//! orders the applying process, the guard and `confirm`.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::{ApplyError, Backend};

/// Where an apply stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Loaded (or loading), waiting for a confirmation.
    Pending,
    /// Kept.
    Confirmed,
    /// The saved ruleset was restored.
    RolledBack,
}

impl Status {
    /// `pending`, `confirmed`, `rolled back`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::RolledBack => "rolled back",
        }
    }
}

/// The journal of the last apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// Unique id (`<ms since epoch>-<pid>`).
    pub id: String,
    /// Where it stands.
    pub status: Status,
    /// nftables or iptables.
    pub backend: Backend,
    /// standalone, chain or audit.
    pub mode: String,
    /// The applying process.
    pub apply_pid: u32,
    /// The rollback guard (0 before it starts).
    pub guard_pid: u32,
    /// When the guard rolls back, in ms since the epoch.
    pub deadline_ms: u64,
    /// The saved ruleset files (nftables: one; iptables: v4 and v6).
    pub saved: Vec<PathBuf>,
    /// The new ruleset files.
    pub new_files: Vec<PathBuf>,
}

/// An open state directory.
pub(crate) struct State {
    pub dir: PathBuf,
}

fn state_error(path: &Path, e: impl std::fmt::Display) -> ApplyError {
    ApplyError::State {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl State {
    /// Creates the directory (mode 0700) if needed. A symlink is refused:
    /// the saved ruleset is restored from here as root.
    pub fn open(dir: &Path) -> Result<Self, ApplyError> {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(state_error(
                    dir,
                    "exists and is not a directory (symlinks are refused)",
                ))
            }
            Ok(_) => {}
            Err(_) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| state_error(dir, e))?,
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// An exclusive lock on `lock` in the directory, released on drop.
    pub fn lock(&self) -> Result<Flock<File>, ApplyError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| state_error(&path, e))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| state_error(&path, e))
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.json")
    }

    /// The journal, if any.
    pub fn read(&self) -> Result<Option<Journal>, ApplyError> {
        let path = self.journal_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| state_error(&path, format!("unreadable journal: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(state_error(&path, e)),
        }
    }

    /// Replaces the journal atomically (write, fsync, rename).
    pub fn write(&self, journal: &Journal) -> Result<(), ApplyError> {
        let text = serde_json::to_string_pretty(journal)
            .map_err(|e| state_error(&self.journal_path(), e))?;
        self.write_file("journal.json", &text).map(|_| ())
    }

    /// Writes a file of the directory atomically; returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf, ApplyError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| state_error(&tmp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| state_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| state_error(&path, e))?;
        Ok(path)
    }

    /// Writes the new rules as `new-<name>`.
    pub fn write_new(&self, files: &[(PathBuf, String)]) -> Result<Vec<PathBuf>, ApplyError> {
        files
            .iter()
            .map(|(name, text)| {
                let name = name
                    .file_name()
                    .map_or_else(|| "rules".to_owned(), |n| n.to_string_lossy().into_owned());
                self.write_file(&format!("new-{name}"), text)
            })
            .collect()
    }

    /// Appends a line to `apply.log` (with the time); a log that cannot be
    /// written must not stop a rollback.
    pub fn log(&self, line: &str) {
        let path = self.dir.join("apply.log");
        if let Ok(mut file) = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
        {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let _ = writeln!(file, "{secs} pid {}: {line}", std::process::id());
        }
    }
}

/// Whether a process is alive (signal 0).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Starts the guard detached: its own process group (a kill of the
/// applying process or its group, or a hang-up of the SSH session, does
/// not reach it), no terminal, standard streams to /dev/null.
pub(crate) fn spawn_guard(command: &[OsString]) -> Result<u32, ApplyError> {
    let Some((program, args)) = command.split_first() else {
        return Err(ApplyError::Tool {
            tool: "guard".to_owned(),
            message: "no guard command".to_owned(),
        });
    };
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| ApplyError::Tool {
            tool: program.to_string_lossy().into_owned(),
            message: format!("cannot start the rollback guard: {e}"),
        })?;
    Ok(child.id())
}
