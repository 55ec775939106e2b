//! Portolan apply stage: the rules `generate` writes for the host carrying
//! one component, loaded on the local host the safe way, as `iptables-apply`
//! and Junos `commit confirmed` do:
//!
//! 1. [`prepare`]: render the host's rules from the plan (typed values of
//!    the firewall crate) and refuse a ruleset that would cut the SSH
//!    session the command runs under ([`SshSession`]), unless forced;
//! 2. [`apply`]: check the rules (`nft -c`, `iptables-restore --test`),
//!    save the current ruleset into the state directory, start a detached
//!    rollback guard, load the new rules atomically, and journal it all;
//! 3. [`wait`] until [`confirm`] (run from another session) keeps the rules,
//!    or the guard ([`run_guard`]) restores the saved ruleset at the
//!    deadline, even when the applying process was killed.
//!
//! Everything done is appended to `apply.log` in the state directory and
//! handed to the caller's log function. The library never prints.

mod backend;
mod journal;

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portolan_firewall::{admitting_flows, Mode, Options, TargetKind};
use portolan_spec::plan::Plan;
use portolan_spec::Protocol;

pub use backend::Backend;
pub use journal::{Journal, Status};

/// Why apply, confirm or the guard failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan cannot give the rules (unknown component, no addresses).
    #[error("cannot render the rules: {0}")]
    Render(String),
    /// The new rules would drop the SSH session this runs under (unless
    /// forced: [`Request::force`]).
    #[error("the new rules would cut this SSH session ({session}): no rule admits a new connection from {client} to port {port}; add a site flow for it (e.g. `- {{from: {client}, protocol: tcp, port: {port}, purpose: admin SSH}}`)")]
    Lockout {
        /// The session, as `client:port -> server:port`.
        session: String,
        /// The client address.
        client: IpAddr,
        /// The server port.
        port: u16,
    },
    /// The tool rejected the new rules (nothing was changed).
    #[error("{tool} rejected the new rules (nothing was changed): {message}")]
    Rejected {
        /// The tool.
        tool: String,
        /// Its error output.
        message: String,
    },
    /// A tool could not be run, or failed.
    #[error("{tool}: {message}")]
    Tool {
        /// The tool.
        tool: String,
        /// What went wrong.
        message: String,
    },
    /// The state directory could not be used.
    #[error("state directory {path}: {message}")]
    State {
        /// The directory or file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Another apply is waiting for its confirmation.
    #[error("another apply (pid {pid}) is waiting for confirmation until {deadline}; confirm it or let it roll back first")]
    Busy {
        /// The applying process.
        pid: u32,
        /// When it rolls back (seconds since the epoch).
        deadline: u64,
    },
    /// Nothing waits for a confirmation.
    #[error("nothing to confirm: {0}")]
    NothingToConfirm(String),
}

impl ApplyError {
    /// Rules that cannot be rendered, would lock the session out or are
    /// rejected, and a confirmation with nothing to confirm, are the
    /// request's; tools, the state directory and a busy host are the
    /// machine's.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        match self {
            ApplyError::Render(_)
            | ApplyError::Lockout { .. }
            | ApplyError::Rejected { .. }
            | ApplyError::NothingToConfirm(_) => portolan_spec::ErrorKind::Input,
            ApplyError::Tool { .. } | ApplyError::State { .. } | ApplyError::Busy { .. } => {
                portolan_spec::ErrorKind::Environment
            }
        }
    }
}

/// The SSH session the command runs under, from `SSH_CONNECTION`
/// (`client-address client-port server-address server-port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshSession {
    /// Client address.
    pub client: IpAddr,
    /// Client port.
    pub client_port: u16,
    /// This host's address.
    pub server: IpAddr,
    /// This host's SSH port.
    pub server_port: u16,
}

impl SshSession {
    /// Parses the value of `SSH_CONNECTION`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        let client = parts.next()?.parse().ok()?;
        let client_port = parts.next()?.parse().ok()?;
        let server = parts.next()?.parse().ok()?;
        let server_port = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            client,
            client_port,
            server,
            server_port,
        })
    }
}

impl std::fmt::Display for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} port {} -> {} port {}",
            self.client, self.client_port, self.server, self.server_port
        )
    }
}

/// What to apply.
#[derive(Debug, Clone)]
pub struct Request {
    /// The component whose host this is.
    pub component: String,
    /// nftables or iptables.
    pub backend: Backend,
    /// How the rules are written.
    pub mode: Mode,
    /// The SSH session to keep, if the command runs under one.
    pub ssh: Option<SshSession>,
    /// Apply even when the SSH session would be cut.
    pub force: bool,
}

/// The rules ready to load, and what the lockout guard found.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// nftables or iptables.
    pub backend: Backend,
    /// How the rules are written.
    pub mode: Mode,
    /// The host's file names and texts, as `generate` writes them.
    pub files: Vec<(PathBuf, String)>,
    /// What the lockout guard concluded, for the log.
    pub ssh_check: String,
    /// Whether the rules cut the SSH session and are applied anyway
    /// ([`Request::force`]); the caller may say how it was forced.
    pub forced: bool,
}

/// Renders the rules of the host carrying `request.component` and runs the
/// lockout guard.
pub fn prepare(plan: &Plan, request: &Request) -> Result<Prepared, ApplyError> {
    let kind = match request.backend {
        Backend::Nftables => TargetKind::Nftables,
        Backend::Iptables => TargetKind::Iptables,
    };
    let options = Options {
        component: Some(request.component.clone()),
        mode: request.mode,
        ..Options::default()
    };
    let generated = kind
        .target()
        .generate(plan, &options)
        .map_err(|e| ApplyError::Render(render_error(&e)))?;
    let mut forced = false;
    let ssh_check = match (request.ssh, request.mode) {
        (None, _) => "no SSH session (SSH_CONNECTION is not set): nothing to keep".to_owned(),
        (Some(s), Mode::Chain | Mode::Audit) => format!(
            "SSH session {s}: {} mode drops nothing itself; the host's own firewall keeps deciding",
            request.mode.as_str()
        ),
        (Some(s), Mode::Standalone) => {
            let flows = admitting_flows(
                plan,
                &options,
                kind.as_str(),
                s.client,
                s.client_port,
                Protocol::Tcp,
                s.server_port,
            )
            .map_err(|e| ApplyError::Render(render_error(&e)))?;
            if flows.is_empty() {
                if !request.force {
                    return Err(ApplyError::Lockout {
                        session: s.to_string(),
                        client: s.client,
                        port: s.server_port,
                    });
                }
                forced = true;
                format!("SSH session {s}: NO rule admits a new connection; applied anyway")
            } else {
                format!(
                    "SSH session {s}: new connections admitted by {}",
                    flows.join(", ")
                )
            }
        }
    };
    Ok(Prepared {
        backend: request.backend,
        mode: request.mode,
        files: generated.files,
        ssh_check,
        forced,
    })
}

fn render_error(e: &portolan_firewall::GenerateError) -> String {
    match e {
        portolan_firewall::GenerateError::CannotServe { diagnostics, .. } => diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// Where and how long.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The state directory (saved ruleset, journal, log).
    pub state_dir: PathBuf,
    /// How long a confirmation may take before the guard rolls back.
    pub confirm_within: Duration,
    /// The command that runs [`run_guard`] on `state_dir` (program, then
    /// arguments): the caller's own binary, detached.
    pub guard_command: Vec<OsString>,
}

/// What [`apply`] did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The journal as left: status [`Status::Pending`].
    pub journal: Journal,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks, saves, arms the guard, loads. On any failure before loading,
/// nothing is changed; a failure while loading restores the saved ruleset.
pub fn apply(
    prepared: &Prepared,
    settings: &Settings,
    log: &mut dyn FnMut(&str),
) -> Result<Applied, ApplyError> {
    let state = journal::State::open(&settings.state_dir)?;
    let mut say = |line: &str| {
        state.log(line);
        log(line);
    };
    {
        let _lock = state.lock()?;
        if let Some(previous) = state.read()? {
            if previous.status == Status::Pending {
                if journal::alive(previous.guard_pid) {
                    return Err(ApplyError::Busy {
                        pid: previous.apply_pid,
                        deadline: previous.deadline_ms / 1000,
                    });
                }
                say(&format!(
                    "apply {} was left pending and its guard (pid {}) is gone: restoring its saved ruleset first",
                    previous.id, previous.guard_pid
                ));
                let identical = backend::restore(&state, &previous)?;
                let mut previous = previous;
                previous.status = Status::RolledBack;
                state.write(&previous)?;
                say(&format!(
                    "restored (listing identical to the saved one: {identical})"
                ));
            }
        }
    }
    say(&format!(
        "rules: {} {} mode, files {}",
        prepared.backend.as_str(),
        prepared.mode.as_str(),
        prepared
            .files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    say(&prepared.ssh_check);
    let new_files = state.write_new(&prepared.files)?;
    backend::check(prepared.backend, prepared.mode, &new_files)?;
    say("check: the new rules pass the tool's own check");
    let saved = backend::save(prepared.backend, &state)?;
    say(&format!(
        "saved the current ruleset: {}",
        saved
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let confirm_ms = u64::try_from(settings.confirm_within.as_millis()).unwrap_or(u64::MAX);
    let mut journal = Journal {
        id: format!("{}-{}", now_ms(), std::process::id()),
        status: Status::Pending,
        backend: prepared.backend,
        mode: prepared.mode.as_str().to_owned(),
        apply_pid: std::process::id(),
        guard_pid: 0,
        deadline_ms: now_ms().saturating_add(confirm_ms),
        saved,
        new_files: new_files.clone(),
    };
    {
        let _lock = state.lock()?;
        state.write(&journal)?;
    }
    // The guard starts before anything changes, so that a kill of this
    // process at any later point still ends in a rollback.
    let guard = journal::spawn_guard(&settings.guard_command)?;
    journal.guard_pid = guard;
    {
        let _lock = state.lock()?;
        state.write(&journal)?;
    }
    say(&format!(
        "rollback guard started (pid {guard}): restores the saved ruleset in {} s unless confirmed",
        settings.confirm_within.as_secs()
    ));
    if let Err(e) = backend::load(prepared.backend, prepared.mode, &new_files) {
        say(&format!("loading failed: {e}; restoring the saved ruleset"));
        let _lock = state.lock()?;
        let identical = backend::restore(&state, &journal)?;
        journal.status = Status::RolledBack;
        state.write(&journal)?;
        say(&format!(
            "restored (listing identical to the saved one: {identical})"
        ));
        return Err(e);
    }
    say("applied: the new rules are loaded, atomically");
    Ok(Applied { journal })
}

/// The end of a confirmation wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Kept by `confirm`.
    Confirmed,
    /// Restored by the guard.
    RolledBack,
}

/// Waits (in the foreground) until the apply `id` is confirmed or rolled back.
pub fn wait(state_dir: &Path, id: &str) -> Result<Outcome, ApplyError> {
    let state = journal::State::open(state_dir)?;
    loop {
        match state.read()? {
            Some(j) if j.id == id && j.status == Status::Confirmed => {
                return Ok(Outcome::Confirmed)
            }
            Some(j) if j.id == id && j.status == Status::Pending => {}
            _ => return Ok(Outcome::RolledBack),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Keeps the rules of the pending apply: the guard then leaves them.
pub fn confirm(state_dir: &Path, log: &mut dyn FnMut(&str)) -> Result<Journal, ApplyError> {
    let state = journal::State::open(state_dir)?;
    let _lock = state.lock()?;
    let Some(mut journal) = state.read()? else {
        return Err(ApplyError::NothingToConfirm(format!(
            "no apply journal in {}",
            state_dir.display()
        )));
    };
    match journal.status {
        Status::Pending if now_ms() < journal.deadline_ms => {}
        Status::Pending => {
            return Err(ApplyError::NothingToConfirm(
                "the deadline has passed; the guard is restoring the saved ruleset".to_owned(),
            ))
        }
        other => {
            return Err(ApplyError::NothingToConfirm(format!(
                "the last apply ({}) is {}",
                journal.id,
                other.as_str()
            )))
        }
    }
    journal.status = Status::Confirmed;
    state.write(&journal)?;
    let line = format!("confirmed apply {}: the new rules stay", journal.id);
    state.log(&line);
    log(&line);
    Ok(journal)
}

/// The rollback guard (run detached by [`apply`] through
/// [`Settings::guard_command`]): waits for the deadline of the pending
/// apply, and restores the saved ruleset unless it was confirmed.
pub fn run_guard(state_dir: &Path) -> Result<(), ApplyError> {
    let state = journal::State::open(state_dir)?;
    // The journal may not carry our pid yet: wait for the pending apply.
    let id = loop {
        let _lock = state.lock()?;
        match state.read()? {
            Some(j) if j.status == Status::Pending => break j.id,
            Some(_) | None => {}
        }
        drop(_lock);
        std::thread::sleep(Duration::from_millis(50));
    };
    loop {
        {
            let _lock = state.lock()?;
            let Some(mut journal) = state.read()? else {
                return Ok(());
            };
            if journal.id != id || journal.status != Status::Pending {
                return Ok(());
            }
            if now_ms() >= journal.deadline_ms {
                state.log(&format!(
                    "guard: apply {id} not confirmed in time; restoring the saved ruleset"
                ));
                let identical = backend::restore(&state, &journal)?;
                journal.status = Status::RolledBack;
                state.write(&journal)?;
                state.log(&format!(
                    "guard: rolled back (listing identical to the saved one: {identical})"
                ));
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_connection_is_parsed_or_refused() {
        let s = SshSession::parse("198.51.100.7 51234 192.0.2.10 22").expect("session");
        assert_eq!(s.client, "198.51.100.7".parse::<IpAddr>().expect("addr"));
        assert_eq!((s.client_port, s.server_port), (51234, 22));
        let v6 = SshSession::parse("2001:db8::7 1 2001:db8::10 2222").expect("v6");
        assert_eq!(v6.server_port, 2222);
        for bad in [
            "",
            "198.51.100.7 51234 192.0.2.10",
            "a b c d",
            "1.2.3.4 1 1.2.3.5 70000",
            "1.2.3.4 1 1.2.3.5 22 x",
        ] {
            assert_eq!(SshSession::parse(bad), None, "{bad}");
        }
    }
}
