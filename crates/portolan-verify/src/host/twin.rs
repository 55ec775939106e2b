//! The kernel twin of one host: a lab of two network namespaces, `twin`
//! (the host: its interface name, the deployment's addresses, the user's
//! ruleset loaded as it is, traced) and `peers` (every address the host
//! talks to, no firewall), joined by the lab's bridge. Neighbours are
//! permanent entries, so no ARP or neighbour discovery depends on the
//! ruleset; routes are on-link.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use portolan_lab::trace::Tracer;
use portolan_lab::{Lab, Topology, HOST_INTERFACE};

use super::ruleset::{concrete_interface, interfaces, HostRuleset, RulesetFormat};
use crate::error::{Code, Position, VerifyError};

/// The namespace standing for the host.
pub(crate) const TWIN: &str = "twin";
/// The namespace holding every peer's addresses.
pub(crate) const PEERS: &str = "peers";

/// A built twin, deleted when dropped (the lab deletes its namespaces).
pub(crate) struct Twin {
    /// Declared before `lab`: stops reading before the namespaces go
    /// (shared with the probes' early verdicts while they run).
    pub tracer: Arc<Tracer>,
    pub lab: Lab,
    /// Assumptions made while building it.
    pub assumptions: Vec<String>,
    /// Whether a ruleset was loaded with iptables-restore (its tables are
    /// iptables-nft's: rules are reported and fixed in iptables syntax).
    pub iptables: bool,
    /// Listings of iptables-nft chains, by (family, table, chain): `nft -a
    /// list chain` and `iptables -S`, run once per chain, not per rule.
    pub chains: Mutex<HashMap<ChainId, Option<(String, String)>>>,
}

/// A chain: (family, table, chain).
pub(crate) type ChainId = (String, String, String);

fn env(what: &str, e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Environment(format!("kernel twin: {what}: {e}"))
}

/// Runs a program in a namespace of the lab with `input` on its standard input.
fn pipe(
    lab: &Lab,
    host: &str,
    program: &str,
    args: &[&str],
    input: &str,
) -> Result<Output, VerifyError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let text = input.to_owned();
    let output = lab
        .run_in(host, move || -> std::io::Result<Output> {
            let mut child = command.spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                // A write error (the program exited early) shows in its
                // status and standard error.
                let _ = stdin.write_all(text.as_bytes());
            }
            child.wait_with_output()
        })
        .map_err(|e| env("enter a namespace", e))?
        .join()
        .map_err(|e| env("enter a namespace", e))?
        .map_err(|e| env(&format!("run {program}"), e))?;
    Ok(output)
}

/// `ip -batch -` with `commands`, one per line.
fn ip_batch(lab: &Lab, host: &str, commands: &[String]) -> Result<(), VerifyError> {
    if commands.is_empty() {
        return Ok(());
    }
    let out = pipe(
        lab,
        host,
        "ip",
        &["-batch", "-"],
        &(commands.join("\n") + "\n"),
    )?;
    if !out.status.success() {
        return Err(env(
            &format!("ip in {host}"),
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(())
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn host_prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Prefixes of a host's own network interfaces, in order of preference.
const HOST_PREFIXES: &[&str] = &["eth", "en", "em", "bond", "wl", "ib"];
/// Prefixes of interfaces of containers, bridges and tunnels.
const VIRTUAL_PREFIXES: &[&str] = &[
    "docker", "br-", "veth", "virbr", "cni", "flannel", "cali", "vxlan", "tun", "tap", "wg",
    "kube", "lxc", "podman", "cilium",
];

/// The interface the host's traffic uses in the twin: the first named one
/// that looks like a host's own network card, else the first that is no
/// container or tunnel interface, else `eth0`.
fn main_interface(named: &[String]) -> String {
    named
        .iter()
        .find(|n| HOST_PREFIXES.iter().any(|p| n.starts_with(p)))
        .or_else(|| {
            named
                .iter()
                .find(|n| !VIRTUAL_PREFIXES.iter().any(|p| n.starts_with(p)))
        })
        .cloned()
        .unwrap_or_else(|| "eth0".to_owned())
}

/// Interface names Linux accepts.
fn valid_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

impl Twin {
    /// Builds the twin: `host_addrs` on the host's interface, `peer_addrs`
    /// in the peers' namespace, every ruleset of the host loaded as it is,
    /// and the tracer reading the twin's verdicts.
    pub fn build(
        rulesets: &[&HostRuleset],
        host_addrs: &[IpAddr],
        peer_addrs: &[IpAddr],
    ) -> Result<Twin, VerifyError> {
        portolan_lab::check_privileges().map_err(|e| env("privileges", e))?;
        let mut topology = Topology::new();
        topology.add_host(TWIN).map_err(|e| env("topology", e))?;
        topology.add_host(PEERS).map_err(|e| env("topology", e))?;
        let lab = Lab::create(topology).map_err(|e| env("create the namespaces", e))?;
        let twin_mac = mac_text(lab.host(TWIN).map_err(|e| env("host", e))?.mac());
        let peers_mac = mac_text(lab.host(PEERS).map_err(|e| env("host", e))?.mac());
        let mut assumptions = Vec::new();

        // The host's interface carries the name its rules use; other names
        // they use are empty bridges (the dummy driver may be missing), so that the ruleset loads.
        let all_text: String = rulesets
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let named: Vec<String> = interfaces(&all_text)
            .into_iter()
            .map(|n| concrete_interface(&n))
            .filter(|n| valid_interface(n))
            .collect();
        let main = main_interface(&named);
        let mut commands = vec![
            format!("link set dev {HOST_INTERFACE} down"),
            format!("link set dev {HOST_INTERFACE} name {main}"),
            format!("link set dev {main} up"),
        ];
        let mut others: Vec<&String> = named.iter().filter(|n| **n != main).collect();
        others.dedup();
        for other in &others {
            commands.push(format!("link add {other} type bridge"));
            commands.push(format!("link set dev {other} up"));
        }
        if !others.is_empty() {
            assumptions.push(format!(
                "the host's traffic arrives and leaves on `{main}`; rules about {} (an empty bridge here) never match a probe",
                others.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        for ip in host_addrs {
            let nodad = if ip.is_ipv6() { " nodad" } else { "" };
            commands.push(format!(
                "address add {ip}/{} dev {main}{nodad}",
                host_prefix(ip)
            ));
        }
        commands.push(format!("route add default dev {main}"));
        commands.push(format!("route add ::/0 dev {main}"));
        for ip in peer_addrs {
            commands.push(format!(
                "neigh replace {ip} lladdr {peers_mac} dev {main} nud permanent"
            ));
        }
        ip_batch(&lab, TWIN, &commands)?;

        let mut commands = Vec::new();
        for ip in peer_addrs {
            let nodad = if ip.is_ipv6() { " nodad" } else { "" };
            commands.push(format!(
                "address add {ip}/{} dev {HOST_INTERFACE}{nodad}",
                host_prefix(ip)
            ));
        }
        for ip in host_addrs {
            commands.push(format!(
                "route add {ip}/{} dev {HOST_INTERFACE}",
                host_prefix(ip)
            ));
            commands.push(format!(
                "neigh replace {ip} lladdr {twin_mac} dev {HOST_INTERFACE} nud permanent"
            ));
        }
        ip_batch(&lab, PEERS, &commands)?;
        for ns in [TWIN, PEERS] {
            // Source addresses of other subnets must not be dropped by
            // reverse-path filtering: the twin's routes are not the host's.
            let out = pipe(
                &lab,
                ns,
                "sysctl",
                &[
                    "-q",
                    "-w",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
                "",
            )?;
            if !out.status.success() {
                return Err(env("sysctl", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        for ruleset in rulesets {
            load(&lab, ruleset)?;
        }
        let tracer =
            Arc::new(Tracer::start(&lab, &[TWIN]).map_err(|e| env("nftables tracing", e))?);
        let iptables = rulesets
            .iter()
            .any(|r| matches!(r.format, RulesetFormat::Iptables | RulesetFormat::Ip6tables));
        Ok(Twin {
            tracer,
            lab,
            assumptions,
            iptables,
            chains: Mutex::default(),
        })
    }
}

/// Loads a ruleset as it is; the loader's complaint, with the user's file
/// and line, is an input error.
fn load(lab: &Lab, ruleset: &HostRuleset) -> Result<(), VerifyError> {
    let (program, args): (&str, &[&str]) = match ruleset.format {
        RulesetFormat::NftText => ("nft", &["-f", "-"]),
        RulesetFormat::NftJson => ("nft", &["-j", "-f", "-"]),
        RulesetFormat::Iptables => ("iptables-restore", &[]),
        RulesetFormat::Ip6tables => ("ip6tables-restore", &[]),
    };
    let out = pipe(lab, TWIN, program, args, &ruleset.text)?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).replace("/dev/stdin", &ruleset.file);
    let stderr = stderr.trim();
    Err(VerifyError::input_hint(
        Code::RulesetRefused,
        error_position(&ruleset.file, stderr),
        format!(
            "{program} refuses the ruleset: {}",
            stderr.lines().next().unwrap_or("")
        ),
        format!("the full message:\n{stderr}"),
    ))
}

/// The position in a loader's message: nft's `FILE:LINE:COL-COL:`,
/// iptables-restore's `line N failed`.
fn error_position(file: &str, stderr: &str) -> Position {
    let prefix = format!("{file}:");
    if let Some(rest) = stderr.find(&prefix).map(|i| &stderr[i + prefix.len()..]) {
        let mut parts = rest.split([':', '-']);
        if let (Some(Ok(line)), Some(Ok(col))) = (
            parts.next().map(str::parse::<u64>),
            parts.next().map(str::parse::<u64>),
        ) {
            return Position::new(file, line, col);
        }
    }
    if let Some(i) = stderr.find("line ") {
        let digits: String = stderr[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(line) = digits.parse() {
            return Position::new(file, line, 0);
        }
    }
    Position::file(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_host_interface_is_chosen_over_docker_s() {
        let named = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(main_interface(&named(&["docker0", "eth0"])), "eth0");
        assert_eq!(main_interface(&named(&["docker0", "uplink"])), "uplink");
        assert_eq!(main_interface(&named(&["docker0"])), "eth0");
        assert_eq!(main_interface(&[]), "eth0");
    }

    #[test]
    fn loader_positions() {
        assert_eq!(
            error_position("h.nft", "h.nft:3:5-9: Error: syntax error").to_string(),
            "h.nft:3:5"
        );
        assert_eq!(
            error_position("h.v4", "iptables-restore: line 4 failed").to_string(),
            "h.v4:4"
        );
    }
}
