//! Logging in through the system's OpenSSH client: one multiplexed master
//! connection per host (`ControlMaster`), every command a channel of it.
//!
//! The operator's configuration applies as it is: `~/.ssh/config` (or the
//! file given), `/etc/ssh/ssh_config`, `ProxyJump`, agents, keys and
//! `known_hosts`. Options given on the command line come first, as `ssh -o`
//! would put them: they are written to a private configuration file that
//! then includes the operator's files.

use std::path::PathBuf;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder};

use crate::hosts::FleetHost;
use crate::FleetError;

/// Options the preflight itself manages, which `--ssh-option` may not set.
const MANAGED: [&str; 4] = [
    "controlmaster",
    "controlpath",
    "controlpersist",
    "batchmode",
];

/// How to run `ssh`.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// A configuration file instead of `~/.ssh/config` (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// `Key=Value` options, ahead of every configuration file (`ssh -o`).
    pub options: Vec<(String, String)>,
    /// Time allowed to connect and log in.
    pub connect_timeout: Duration,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            config_file: None,
            options: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Parses one `Key=Value` option (`ssh -o` syntax; `Key Value` also works).
pub fn parse_ssh_option(text: &str) -> Result<(String, String), FleetError> {
    let bad = |reason: &str| FleetError::SshOption {
        option: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (key, value) = text
        .split_once('=')
        .or_else(|| text.split_once(char::is_whitespace))
        .ok_or_else(|| bad("expected Key=Value, e.g. ProxyJump=bastion"))?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad("the key is an ssh_config keyword: letters and digits"));
    }
    if value.is_empty() || value.contains(['\n', '\r', '\0']) {
        return Err(bad("the value is one non-empty line"));
    }
    if MANAGED.contains(&key.to_ascii_lowercase().as_str()) {
        return Err(bad(
            "the preflight runs its own multiplexed connection; this option is not yours to set here",
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl SshSettings {
    /// The host key policy: `StrictHostKeyChecking` from the options if
    /// given, else strict (an unknown host is refused; the operator's
    /// `known_hosts` decides).
    fn known_hosts(&self) -> KnownHosts {
        let value = self
            .options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("StrictHostKeyChecking"))
            .map(|(_, v)| v.to_ascii_lowercase());
        match value.as_deref() {
            Some("accept-new") => KnownHosts::Add,
            Some("no" | "off") => KnownHosts::Accept,
            _ => KnownHosts::Strict,
        }
    }

    /// The private configuration file's text when options were given: the
    /// options, then the operator's file (or `~/.ssh/config`), then the
    /// system's, in the order ssh itself reads them.
    pub fn config_text(&self) -> Option<String> {
        if self.options.is_empty() {
            return None;
        }
        let mut text = String::from("# written by portolan preflight for --ssh-option\n");
        for (key, value) in &self.options {
            if !key.eq_ignore_ascii_case("StrictHostKeyChecking") {
                text.push_str(&format!("{key} {value}\n"));
            }
        }
        let user = match &self.config_file {
            Some(path) => path.display().to_string(),
            None => "~/.ssh/config".to_owned(),
        };
        text.push_str(&format!("Include \"{user}\"\n"));
        if self.config_file.is_none() {
            text.push_str("Include /etc/ssh/ssh_config\n");
        }
        Some(text)
    }
}

/// A private directory for control sockets and the generated configuration;
/// removed when dropped.
#[derive(Debug)]
pub struct SshContext {
    dir: tempfile::TempDir,
    config: Option<PathBuf>,
    settings: SshSettings,
}

impl SshContext {
    /// Makes the directory and writes the configuration file if needed.
    pub fn new(settings: SshSettings) -> Result<Self, FleetError> {
        let dir = tempfile::Builder::new()
            .prefix("portolan-ssh.")
            .tempdir()
            .map_err(|e| FleetError::Local(format!("cannot make a private directory: {e}")))?;
        let config = match settings.config_text() {
            Some(text) => {
                let path = dir.path().join("config");
                std::fs::write(&path, text).map_err(|e| {
                    FleetError::Local(format!("cannot write {}: {e}", path.display()))
                })?;
                Some(path)
            }
            None => settings.config_file.clone(),
        };
        Ok(Self {
            dir,
            config,
            settings,
        })
    }

    /// Starts the master connection to `host` and returns the session; the
    /// error is ssh's own message.
    pub async fn connect(&self, host: &FleetHost) -> Result<Session, String> {
        let mut builder = SessionBuilder::default();
        builder
            .control_directory(self.dir.path())
            .known_hosts_check(self.settings.known_hosts())
            .connect_timeout(self.settings.connect_timeout)
            .server_alive_interval(Duration::from_secs(5));
        if let Some(config) = &self.config {
            builder.config_file(config);
        }
        if let Some(user) = &host.user {
            builder.user(user.clone());
        }
        if let Some(port) = host.port {
            builder.port(port);
        }
        if let Some(key) = &host.keyfile {
            builder.keyfile(key);
        }
        builder
            .connect_mux(&host.destination)
            .await
            .map_err(|e| error_text(&e))
    }
}

/// An openssh error with its causes, on one line.
pub fn error_text(error: &openssh::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(cause_text.trim());
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_and_come_first() {
        assert_eq!(
            parse_ssh_option("ProxyJump=bastion").expect("ok"),
            ("ProxyJump".into(), "bastion".into())
        );
        assert!(parse_ssh_option("ControlPath=/tmp/x").is_err());
        assert!(parse_ssh_option("nothing").is_err());
        assert!(parse_ssh_option("Bad-Key=1").is_err());
        let settings = SshSettings {
            config_file: Some(PathBuf::from("/etc/lab/ssh_config")),
            options: vec![
                ("User".into(), "ops".into()),
                ("StrictHostKeyChecking".into(), "accept-new".into()),
            ],
            ..SshSettings::default()
        };
        assert_eq!(
            settings.config_text().expect("text"),
            "# written by portolan preflight for --ssh-option\nUser ops\nInclude \"/etc/lab/ssh_config\"\n"
        );
        assert!(matches!(settings.known_hosts(), KnownHosts::Add));
        assert!(SshSettings::default().config_text().is_none());
        assert!(matches!(
            SshSettings::default().known_hosts(),
            KnownHosts::Strict
        ));
    }
}
