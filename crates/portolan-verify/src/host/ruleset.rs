//! Host rulesets as given: which kind they are, whether they are of the
//! kind declared, and what in them a twin cannot reproduce.

use portolan_spec::plan::Plan;

use crate::error::{Code, Hint, Position, VerifyError};
use crate::model::InputKind;

/// How a ruleset is written, hence how it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesetFormat {
    /// `nft list ruleset` text: `nft -f`.
    NftText,
    /// `nft -j list ruleset` JSON: `nft -j -f`.
    NftJson,
    /// `iptables-save` output: `iptables-restore`.
    Iptables,
    /// `ip6tables-save` output: `ip6tables-restore`.
    Ip6tables,
}

/// A host's ruleset, read and checked to be of the declared kind.
#[derive(Debug, Clone)]
pub struct HostRuleset {
    /// The deployment's host name.
    pub host: String,
    /// The file, as given.
    pub file: String,
    /// How it is written.
    pub format: RulesetFormat,
    /// Its text.
    pub text: String,
}

/// The JSON schema version of `nft -j` this verifier reads.
pub const NFT_JSON_SCHEMA_VERSION: u64 = 1;

fn first_statement(text: &str) -> Option<(usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .find(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn looks_like_iptables_save(text: &str) -> bool {
    matches!(first_statement(text), Some((_, l)) if l.starts_with('*'))
        && text.lines().any(|l| l.trim() == "COMMIT")
}

/// Words an `nft` ruleset text starts with.
const NFT_STARTS: &[&str] = &[
    "table ", "flush ", "add ", "define ", "include ", "create ", "delete ", "destroy ",
];

fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |n| before.len() - n - 1)
        + 1;
    (line as u64, column as u64)
}

impl HostRuleset {
    /// Checks that `host` is a host of the plan and that `text` is a
    /// ruleset of the declared `kind` (nftables or iptables).
    pub fn read(
        kind: InputKind,
        host: &str,
        file: &str,
        text: String,
        plan: &Plan,
    ) -> Result<Self, VerifyError> {
        if plan.host(host).is_none() {
            let hosts: Vec<String> = plan.hosts.iter().map(|h| format!("`{}`", h.name)).collect();
            return Err(VerifyError::input_hint(
                Code::UnknownHost,
                Position::file(file),
                format!("`{host}` is not a host of the deployment"),
                if hosts.is_empty() {
                    "the deployment gives no component addresses, so it has no hosts".to_owned()
                } else {
                    format!("its hosts are {}", hosts.join(", "))
                },
            ));
        }
        let first = first_statement(&text);
        let format = match kind {
            InputKind::Nftables => {
                if matches!(first, Some((_, l)) if l.starts_with('{')) {
                    check_nft_json(file, &text)?;
                    RulesetFormat::NftJson
                } else if looks_like_iptables_save(&text) {
                    return Err(VerifyError::input_hint(
                        Code::NotARuleset,
                        Position::new(file, first.map_or(1, |f| f.0 as u64), 1),
                        "this is iptables-save output, not an nftables ruleset",
                        Hint::GiveAs {
                            input: InputKind::Iptables,
                            host: host.to_owned(),
                            file: file.to_owned(),
                        },
                    ));
                } else {
                    match first {
                        Some((_, l)) if NFT_STARTS.iter().any(|w| l.starts_with(w)) => {}
                        Some((line, l)) => {
                            return Err(VerifyError::input_hint(
                                Code::NotARuleset,
                                Position::new(file, line as u64, 1),
                                format!(
                                    "not an nftables ruleset: `{}`",
                                    l.chars().take(40).collect::<String>()
                                ),
                                Hint::Holds {
                                    input: InputKind::Nftables,
                                    what:
                                        "the output of `nft list ruleset` or `nft -j list ruleset`"
                                            .to_owned(),
                                },
                            ))
                        }
                        None => {
                            return Err(VerifyError::input(
                                Code::NotARuleset,
                                Position::file(file),
                                "the ruleset is empty",
                            ))
                        }
                    }
                    RulesetFormat::NftText
                }
            }
            _ => {
                if !looks_like_iptables_save(&text) {
                    let line = first.map_or(1, |f| f.0 as u64);
                    return Err(VerifyError::input_hint(
                        Code::NotARuleset,
                        Position::new(file, line, 1),
                        "not iptables-save output (no `*table` … `COMMIT`)",
                        Hint::Holds {
                            input: InputKind::Iptables,
                            what: "the output of `iptables-save` or `ip6tables-save`".to_owned(),
                        },
                    ));
                }
                if is_ipv6(&text) {
                    RulesetFormat::Ip6tables
                } else {
                    RulesetFormat::Iptables
                }
            }
        };
        Ok(Self {
            host: host.to_owned(),
            file: file.to_owned(),
            format,
            text,
        })
    }
}

/// Whether an iptables-save file is ip6tables-save's: an IPv6 address in a
/// rule, or the header ip6tables-save writes.
fn is_ipv6(text: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with("# Generated by ip6tables")
            || (l.starts_with("-A ")
                && l.split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| {
                        matches!(w[0], "-s" | "-d" | "--source" | "--destination")
                            && w[1].contains(':')
                    }))
    })
}

/// What an `nftables` input in JSON holds.
fn nft_json_hint() -> Hint {
    Hint::Holds {
        input: InputKind::Nftables,
        what: "`nft -j list ruleset` output".to_owned(),
    }
}

fn check_nft_json(file: &str, text: &str) -> Result<(), VerifyError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        VerifyError::input_hint(
            Code::NotARuleset,
            Position::new(file, e.line() as u64, e.column() as u64),
            format!("not JSON: {e}"),
            nft_json_hint(),
        )
    })?;
    let Some(items) = value.get("nftables").and_then(|v| v.as_array()) else {
        return Err(VerifyError::input_hint(
            Code::NotARuleset,
            Position::new(file, 1, 1),
            "JSON without an `nftables` array is not an nft ruleset",
            nft_json_hint(),
        ));
    };
    let version = items
        .iter()
        .find_map(|i| i.get("metainfo"))
        .and_then(|m| m.get("json_schema_version"))
        .and_then(|v| v.as_u64());
    match version {
        Some(NFT_JSON_SCHEMA_VERSION) => Ok(()),
        other => {
            let offset = text.find("json_schema_version").unwrap_or(0);
            let (line, column) = line_col(text, offset);
            Err(VerifyError::input_hint(Code::NftJsonVersion,
                Position::new(file, line, column),
                match other {
                    Some(v) => format!("nft JSON schema version {v}: this verifier reads version {NFT_JSON_SCHEMA_VERSION}"),
                    None => "nft JSON without metainfo.json_schema_version".to_owned(),
                },
                "list the ruleset with an nft that writes JSON schema version 1 (nft 0.9.1 and later), or give the text of `nft list ruleset`",
            ))
        }
    }
}

/// A kind of rule a twin cannot reproduce: what to look for (as written in
/// nft text and iptables-save output), and what the report says.
pub struct Unreproducible {
    /// Substrings that show it.
    pub needles: &'static [&'static str],
    /// The assumption reported.
    pub assumption: &'static str,
}

/// Rules whose match depends on state the twin does not have.
pub const UNREPRODUCIBLE: &[Unreproducible] = &[
    Unreproducible {
        needles: &["meta mark", "ct mark", " mark ", "-m mark", "--mark", "-m connmark", "MARK"],
        assumption: "rules match packet or connection marks, set by something outside this ruleset (policy routing, a proxy, another tool): in the twin no packet carries a mark",
    },
    Unreproducible {
        needles: &["skuid", "skgid", "-m owner", "--uid-owner", "--gid-owner"],
        assumption: "rules match the sending socket's user or group: the twin's probes are sent by root",
    },
    Unreproducible {
        needles: &["ct helper", "-m helper", "--helper", "CT --helper"],
        assumption: "rules depend on conntrack helpers (FTP, SIP…), which the twin's probes never trigger",
    },
    Unreproducible {
        needles: &["-m set", "--match-set"],
        assumption: "rules match ipsets, whose members are not in an iptables-save file: in the twin the sets are as `ipset` has them (absent sets make the load fail)",
    },
    Unreproducible {
        needles: &["meta cgroup", "socket cgroupv2", "-m cgroup"],
        assumption: "rules match control groups of local processes: the twin's probes run in none of them",
    },
];

/// The assumptions a ruleset's text calls for.
pub fn assumptions(text: &str) -> Vec<String> {
    UNREPRODUCIBLE
        .iter()
        .filter(|u| u.needles.iter().any(|n| text.contains(n)))
        .map(|u| u.assumption.to_owned())
        .collect()
}

/// Interface names a ruleset matches on (`iifname "eth0"`, `oif eth1`,
/// `-i docker0`, `-o eth+`), in order of first appearance, without `lo`.
pub fn interfaces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    for w in words.windows(2) {
        if matches!(
            w[0],
            "iifname"
                | "oifname"
                | "iif"
                | "oif"
                | "-i"
                | "-o"
                | "--in-interface"
                | "--out-interface"
        ) {
            let name = w[1].trim_matches(|c| c == '"' || c == '{' || c == '}' || c == ',');
            if name.is_empty()
                || name == "lo"
                || name == "!="
                || name.starts_with('$')
                || name.starts_with('@')
            {
                continue;
            }
            if !out.iter().any(|n| n == name) {
                out.push(name.to_owned());
            }
        }
    }
    out
}

/// A concrete interface name for a name or pattern (`eth+`, `eth*` → `eth0`).
pub fn concrete_interface(name: &str) -> String {
    match name.strip_suffix('+').or_else(|| name.strip_suffix('*')) {
        Some(prefix) => format!("{prefix}0"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_of_both_syntaxes() {
        let nft = "iifname \"eth0\" tcp dport 22 accept\noifname eth1 accept\niif lo accept\n";
        assert_eq!(interfaces(nft), ["eth0", "eth1"]);
        let ipt = "-A FORWARD -i docker0 -o eth+ -j ACCEPT\n";
        assert_eq!(interfaces(ipt), ["docker0", "eth+"]);
        assert_eq!(concrete_interface("eth+"), "eth0");
    }

    #[test]
    fn unreproducible_matches_are_assumptions() {
        let a = assumptions("meta skuid 1000 accept\n");
        assert_eq!(a.len(), 1);
        assert!(a[0].contains("user or group"));
        assert!(assumptions("tcp dport 22 accept\n").is_empty());
    }

    #[test]
    fn ip6tables_save_is_told_apart() {
        assert!(is_ipv6(
            "*filter\n-A INPUT -s 2001:db8::/32 -j ACCEPT\nCOMMIT\n"
        ));
        assert!(!is_ipv6(
            "*filter\n-A INPUT -s 192.0.2.0/24 -j ACCEPT\nCOMMIT\n"
        ));
    }

    #[test]
    fn a_json_version_we_cannot_read_is_an_error_at_its_position() {
        let text = "{\"nftables\": [\n  {\"metainfo\": {\"version\": \"9.9\", \"json_schema_version\": 7}}\n]}\n";
        let e = check_nft_json("r.json", text).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "r.json:2:36: error[verify::nft-json-version]: nft JSON schema version 7"
            ),
            "{e}"
        );
    }
}
