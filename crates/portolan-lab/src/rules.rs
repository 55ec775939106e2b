//! Rulesets a person wrote or edited, read from a directory and proven in
//! the lab instead of generated ones: the first way to test hand-made
//! changes before they go live.
//!
//! The directory holds one file per host of the deployment, named as
//! `portolan generate` names them: `<host>.nft` (loaded with `nft -f`), or
//! `<host>.rules.v4` and/or `<host>.rules.v6` (loaded with
//! `iptables-restore` and `ip6tables-restore`). Hidden files (`.name`) are
//! skipped; any other file is an error, so that a typo in a name never
//! leaves a host without its rules unnoticed.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// How a ruleset file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RulesFormat {
    /// nftables text: `nft -f`.
    Nft,
    /// `iptables-restore` input.
    Iptables,
    /// `ip6tables-restore` input.
    Ip6tables,
}

impl RulesFormat {
    /// The program that loads it, and its arguments reading standard input.
    pub(crate) fn loader(self) -> (&'static str, &'static [&'static str]) {
        match self {
            RulesFormat::Nft => ("nft", &["-f", "-"]),
            RulesFormat::Iptables => ("iptables-restore", &[]),
            RulesFormat::Ip6tables => ("ip6tables-restore", &[]),
        }
    }

    /// The program and arguments that only check it, loading nothing.
    pub(crate) fn checker(self) -> (&'static str, &'static [&'static str]) {
        match self {
            RulesFormat::Nft => ("nft", &["-c", "-f", "-"]),
            RulesFormat::Iptables => ("iptables-restore", &["--test"]),
            RulesFormat::Ip6tables => ("ip6tables-restore", &["--test"]),
        }
    }

    /// The file name ending `generate` writes for it.
    pub fn suffix(self) -> &'static str {
        match self {
            RulesFormat::Nft => ".nft",
            RulesFormat::Iptables => ".rules.v4",
            RulesFormat::Ip6tables => ".rules.v6",
        }
    }
}

/// One host's ruleset file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesFile {
    /// The host it is for (the file name without its ending).
    pub host: String,
    /// Where it was read (for generated rulesets, the name `generate` would
    /// give it).
    pub path: PathBuf,
    /// How it is loaded.
    pub format: RulesFormat,
    /// Its text.
    pub text: String,
}

impl RulesFile {
    /// The file name, e.g. `api.nft`.
    pub fn file_name(&self) -> String {
        format!("{}{}", self.host, self.format.suffix())
    }
}

/// The rulesets of a directory, sorted by host and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRules {
    /// The directory.
    pub dir: PathBuf,
    /// Its ruleset files.
    pub files: Vec<RulesFile>,
}

impl UserRules {
    /// The hosts the directory has rulesets for.
    pub fn hosts(&self) -> BTreeSet<&str> {
        self.files.iter().map(|f| f.host.as_str()).collect()
    }
}

/// Why a directory of rulesets cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The directory or a file cannot be read.
    #[error("{path}: cannot read: {message}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A file whose name is no ruleset's.
    #[error("{0}: not a ruleset file name (expected HOST.nft, HOST.rules.v4 or HOST.rules.v6, as `portolan generate` writes them)")]
    NotARuleset(PathBuf),
    /// No ruleset at all.
    #[error("{0}: no ruleset files (HOST.nft, HOST.rules.v4, HOST.rules.v6)")]
    Empty(PathBuf),
    /// nftables and iptables files for one host.
    #[error("{dir}: host `{host}` has both an nftables and an iptables ruleset; keep one")]
    Mixed {
        /// The directory.
        dir: PathBuf,
        /// The host.
        host: String,
    },
}

impl RulesError {
    /// A directory of rulesets that cannot be used is the user's input.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        portolan_spec::ErrorKind::Input
    }
}

/// Reads the rulesets of a directory.
pub fn read_rules_dir(dir: &Path) -> Result<UserRules, RulesError> {
    let read_error = |path: &Path, e: std::io::Error| RulesError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read_error(dir, e))? {
        let entry = entry.map_err(|e| read_error(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let parsed = [
            RulesFormat::Nft,
            RulesFormat::Iptables,
            RulesFormat::Ip6tables,
        ]
        .into_iter()
        .find_map(|format| {
            name.strip_suffix(format.suffix())
                .filter(|host| !host.is_empty())
                .map(|host| (host.to_owned(), format))
        });
        let Some((host, format)) = parsed else {
            return Err(RulesError::NotARuleset(path));
        };
        if path.is_dir() {
            return Err(RulesError::NotARuleset(path));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
        files.push(RulesFile {
            host,
            path,
            format,
            text,
        });
    }
    if files.is_empty() {
        return Err(RulesError::Empty(dir.to_owned()));
    }
    files.sort_by(|a, b| (&a.host, a.format).cmp(&(&b.host, b.format)));
    for pair in files.windows(2) {
        if pair[0].host == pair[1].host
            && (pair[0].format == RulesFormat::Nft) != (pair[1].format == RulesFormat::Nft)
        {
            return Err(RulesError::Mixed {
                dir: dir.to_owned(),
                host: pair[0].host.clone(),
            });
        }
    }
    Ok(UserRules {
        dir: dir.to_owned(),
        files,
    })
}

/// Files for hosts the lab does not have, and hosts without a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The directory.
    pub dir: PathBuf,
    /// Files whose host the deployment does not have.
    pub extra: Vec<String>,
    /// Hosts of the deployment without a file.
    pub missing: Vec<String>,
    /// The deployment's hosts.
    pub hosts: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the rulesets do not match the deployment's hosts",
            self.dir.display()
        )?;
        if !self.extra.is_empty() {
            write!(
                f,
                "\n  files for hosts the deployment does not have: {}",
                self.extra.join(", ")
            )?;
        }
        if !self.missing.is_empty() {
            let expected: Vec<String> = self.missing.iter().map(|h| format!("{h}.nft")).collect();
            write!(
                f,
                "\n  hosts without a ruleset: {} (expected {}, or HOST.rules.v4/HOST.rules.v6)",
                self.missing.join(", "),
                expected.join(", ")
            )?;
        }
        write!(
            f,
            "\n  hint: the deployment's hosts are {}; `portolan generate -t nftables -o DIR` writes one file per host",
            self.hosts.join(", ")
        )
    }
}

/// Compares the directory's hosts with the lab's.
pub(crate) fn match_hosts(rules: &UserRules, hosts: &[String]) -> Result<(), Mismatch> {
    let given = rules.hosts();
    let extra: Vec<String> = rules
        .files
        .iter()
        .filter(|f| !hosts.contains(&f.host))
        .map(RulesFile::file_name)
        .collect();
    let missing: Vec<String> = hosts
        .iter()
        .filter(|h| !given.contains(h.as_str()))
        .cloned()
        .collect();
    if extra.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(Mismatch {
            dir: rules.dir.clone(),
            extra,
            missing,
            hosts: hosts.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn reads_files_named_as_generate_writes_them() {
        let dir = dir_with(&[
            ("api.nft", "table inet t {}\n"),
            ("db.rules.v4", "*filter\nCOMMIT\n"),
            ("db.rules.v6", "*filter\nCOMMIT\n"),
            (".swp", "x"),
        ]);
        let rules = read_rules_dir(dir.path()).expect("read");
        let names: Vec<String> = rules.files.iter().map(RulesFile::file_name).collect();
        assert_eq!(names, ["api.nft", "db.rules.v4", "db.rules.v6"]);
        assert_eq!(rules.files[1].format, RulesFormat::Iptables);
        let hosts = ["api".to_owned(), "db".to_owned()];
        assert!(match_hosts(&rules, &hosts).is_ok());
        let err = match_hosts(&rules, &["api".to_owned(), "web".to_owned()]).expect_err("mismatch");
        let text = err.to_string();
        assert!(
            text.contains("files for hosts the deployment does not have: db.rules.v4, db.rules.v6"),
            "{text}"
        );
        assert!(
            text.contains("hosts without a ruleset: web (expected web.nft"),
            "{text}"
        );
    }

    #[test]
    fn other_files_mixed_formats_and_empty_directories_are_errors() {
        let dir = dir_with(&[("api.nft", ""), ("README.md", "")]);
        assert!(
            matches!(read_rules_dir(dir.path()), Err(RulesError::NotARuleset(p)) if p.ends_with("README.md"))
        );
        let dir = dir_with(&[("api.nft", ""), ("api.rules.v4", "")]);
        assert!(
            matches!(read_rules_dir(dir.path()), Err(RulesError::Mixed { host, .. }) if host == "api")
        );
        let dir = dir_with(&[]);
        assert!(matches!(
            read_rules_dir(dir.path()),
            Err(RulesError::Empty(_))
        ));
        assert!(matches!(
            read_rules_dir(&dir.path().join("absent")),
            Err(RulesError::Read { .. })
        ));
    }
}
