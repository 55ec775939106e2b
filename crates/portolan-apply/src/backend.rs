//! The tools: check, save, load and restore a ruleset with nft or
//! iptables-restore / ip6tables-restore.

use std::path::{Path, PathBuf};
use std::process::Command;

use portolan_firewall::Mode;
use serde::{Deserialize, Serialize};

use crate::journal::{Journal, State};
use crate::ApplyError;

/// The packet filter to apply with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `nft`.
    Nftables,
    /// `iptables-restore` and `ip6tables-restore`.
    Iptables,
}

impl Backend {
    /// `nftables` or `iptables`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        }
    }
}

fn run(program: &str, args: &[&str]) -> Result<String, ApplyError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ApplyError::Tool {
            tool: program.to_owned(),
            message: format!("cannot run it: {e}"),
        })?;
    if !out.status.success() {
        return Err(ApplyError::Tool {
            tool: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// The restore tool of an iptables file, by its name (`.v6`: ip6tables).
fn restore_tool(path: &Path) -> &'static str {
    if text(path).ends_with("v6") {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    }
}

/// Chain and audit files fill their own chains and leave the rest.
fn restore_args(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Standalone => &[],
        Mode::Chain | Mode::Audit => &["--noflush"],
    }
}

/// The tool's own check of the new files; nothing changes.
pub(crate) fn check(backend: Backend, mode: Mode, files: &[PathBuf]) -> Result<(), ApplyError> {
    for file in files {
        let result = match backend {
            Backend::Nftables => run("nft", &["-c", "-f", text(file)]),
            Backend::Iptables => {
                let mut args = vec!["--test"];
                args.extend_from_slice(restore_args(mode));
                args.push(text(file));
                run(restore_tool(file), &args)
            }
        };
        if let Err(ApplyError::Tool { tool, message }) = result {
            return Err(ApplyError::Rejected { tool, message });
        }
    }
    Ok(())
}

/// The current ruleset, as the tool lists it.
fn listing(backend: Backend) -> Result<Vec<(&'static str, String)>, ApplyError> {
    Ok(match backend {
        Backend::Nftables => vec![("saved.nft", run("nft", &["list", "ruleset"])?)],
        Backend::Iptables => vec![
            ("saved.rules.v4", run("iptables-save", &[])?),
            ("saved.rules.v6", run("ip6tables-save", &[])?),
        ],
    })
}

/// Saves the current ruleset into the state directory.
pub(crate) fn save(backend: Backend, state: &State) -> Result<Vec<PathBuf>, ApplyError> {
    listing(backend)?
        .into_iter()
        .map(|(name, text)| state.write_file(name, &text))
        .collect()
}

/// iptables-save's own comment lines carry the time: not part of the ruleset.
fn comparable(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Restores the saved ruleset of `journal` (nftables: flush and reload in
/// one transaction; iptables: each saved family restored whole). Returns
/// whether the listing afterwards equals the saved one.
pub(crate) fn restore(state: &State, journal: &Journal) -> Result<bool, ApplyError> {
    match journal.backend {
        Backend::Nftables => {
            let saved = journal.saved.first().ok_or_else(|| ApplyError::State {
                path: state.dir.display().to_string(),
                message: "the journal names no saved ruleset".to_owned(),
            })?;
            let text = std::fs::read_to_string(saved).map_err(|e| ApplyError::State {
                path: saved.display().to_string(),
                message: e.to_string(),
            })?;
            let restore = state.write_file("restore.nft", &format!("flush ruleset\n{text}"))?;
            run("nft", &["-f", self::text(&restore)])?;
        }
        Backend::Iptables => {
            for saved in &journal.saved {
                run(restore_tool(saved), &[text(saved)])?;
            }
        }
    }
    let now = listing(journal.backend)?;
    let mut identical = true;
    for ((_, after), saved) in now.iter().zip(&journal.saved) {
        let before = std::fs::read_to_string(saved).unwrap_or_default();
        identical &= comparable(&before) == comparable(after);
    }
    Ok(identical)
}

/// Loads the new files, atomically per file (one nft transaction; one
/// iptables-restore commit per family).
pub(crate) fn load(backend: Backend, mode: Mode, files: &[PathBuf]) -> Result<(), ApplyError> {
    for file in files {
        match backend {
            Backend::Nftables => run("nft", &["-f", text(file)])?,
            Backend::Iptables => {
                let mut args: Vec<&str> = restore_args(mode).to_vec();
                args.push(text(file));
                run(restore_tool(file), &args)?
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_comments_do_not_count() {
        assert_eq!(
            comparable(
                "# Generated by iptables-save on Mon\n*filter\nCOMMIT\n# Completed on Mon\n"
            ),
            "*filter\nCOMMIT\n"
        );
        assert_eq!(
            restore_tool(Path::new("/x/saved.rules.v6")),
            "ip6tables-restore"
        );
        assert_eq!(
            restore_tool(Path::new("/x/new-db.rules.v4")),
            "iptables-restore"
        );
    }
}
