//! Which machines to log in to, and which components each one runs: from
//! the deployment's hosts, or from an Ansible inventory.

use std::collections::BTreeSet;
use std::path::PathBuf;

use portolan_spec::plan::{net_text, EndpointKind, Plan};
use serde::Serialize;

use crate::inventory::{Inventory, InventoryError, InventoryHost};

/// The inventory variable that lists a host's components.
pub const COMPONENTS_VAR: &str = "portolan_components";

/// One machine to preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetHost {
    /// Its name in reports: the deployment's host name (with the address
    /// when a host is several machines), or the inventory name.
    pub name: String,
    /// What `ssh` is given: an address or a host name (which the
    /// operator's ssh configuration may map further).
    pub destination: String,
    /// The login name, when the inventory gives one (else ssh's config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The SSH port, when the inventory gives one (else ssh's config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The private key, when the inventory gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<PathBuf>,
    /// The components it runs, in spec order.
    pub components: Vec<String>,
    /// Where it comes from: `deployment host \`app\`` or `inventory hosts.ini:12`.
    pub origin: String,
}

impl FleetHost {
    /// How it is reached, for reports: `ssh admin@192.0.2.1 -p 2222`.
    pub fn reached(&self) -> String {
        let mut text = String::from("ssh ");
        if let Some(user) = &self.user {
            text.push_str(user);
            text.push('@');
        }
        text.push_str(&self.destination);
        if let Some(port) = self.port {
            text.push_str(&format!(" -p {port}"));
        }
        text
    }
}

/// Machines that cannot be preflighted, and components no machine runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    /// The host's (or component's) name.
    pub name: String,
    /// The components concerned.
    pub components: Vec<String>,
    /// Why nothing can log in there.
    pub reason: String,
    /// Placed by DNS names only (often a managed service): not logged in,
    /// which does not fail the preflight (flows to it are still probed).
    pub name_only: bool,
    /// What would let it be checked, for the caller to word with its own
    /// options (libraries never name command-line flags); not in reports.
    #[serde(skip)]
    pub remedy: Option<Remedy>,
}

/// What would let an [`Unreachable`] host be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// List the host in an inventory, to check it from inside.
    ListInInventory,
    /// List the machines of an address block in an inventory.
    ListMachinesInInventory,
}

/// The machines to preflight.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Hosts to log in to.
    pub hosts: Vec<FleetHost>,
    /// Hosts (or components) that cannot be logged in to, with the reason.
    pub unreachable: Vec<Unreachable>,
    /// Inventory hosts that run no component (reported, not contacted).
    pub idle: Vec<String>,
}

/// Components that a preflight can place on machines: every component
/// with addresses or host names, but the outside world.
fn placed_components(plan: &Plan) -> Vec<&str> {
    plan.components
        .iter()
        .filter(|c| c.kind != EndpointKind::Outside && (!c.nets.is_empty() || !c.hosts.is_empty()))
        .map(|c| c.id.as_str())
        .collect()
}

/// The machines of the deployment: a host that is one machine is logged in
/// to by its DNS name if it has one, else its IPv4, else its IPv6 address;
/// a host that is a group of machines (several addresses of a family) is
/// one machine per address and name, each running every component of the
/// host. Address blocks name no machine: they are returned as
/// [`Unreachable`], with the hint to use an inventory.
pub fn hosts_from_plan(plan: &Plan) -> Fleet {
    let placed = placed_components(plan);
    let mut hosts = Vec::new();
    let mut unreachable = Vec::new();
    for host in &plan.hosts {
        let components: Vec<String> = host
            .components
            .iter()
            .filter(|c| placed.contains(&c.as_str()))
            .cloned()
            .collect();
        if components.is_empty() {
            continue;
        }
        let origin = format!("deployment host `{}`", host.name);
        let singles: Vec<String> = host
            .nets
            .iter()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(net_text)
            .collect();
        let blocks: Vec<String> = host
            .nets
            .iter()
            .filter(|n| n.prefix_len() != n.max_prefix_len())
            .map(net_text)
            .collect();
        let make = |name: String, destination: String| FleetHost {
            name,
            destination,
            user: None,
            port: None,
            keyfile: None,
            components: components.clone(),
            origin: origin.clone(),
        };
        if singles.is_empty() && blocks.is_empty() {
            unreachable.push(Unreachable {
                name: host.name.clone(),
                components: components.clone(),
                reason: format!(
                    "placed by name only ({}), often a managed service: not logged in (flows to it are probed from its peers)",
                    host.names.join(", ")
                ),
                name_only: true,
                remedy: Some(Remedy::ListInInventory),
            });
            continue;
        }
        if host.one_machine {
            let v4 = host.nets.iter().find(|n| n.addr().is_ipv4()).map(net_text);
            let destination = host
                .names
                .first()
                .cloned()
                .or(v4)
                .or(singles.first().cloned());
            if let Some(destination) = destination {
                hosts.push(make(host.name.clone(), destination));
            }
            continue;
        }
        for destination in host.names.iter().chain(&singles) {
            hosts.push(make(
                format!("{} {destination}", host.name),
                destination.clone(),
            ));
        }
        if !blocks.is_empty() {
            unreachable.push(Unreachable {
                name: host.name.clone(),
                components: components.clone(),
                reason: format!(
                    "address block {} names no machine to log in to",
                    blocks.join(", ")
                ),
                name_only: false,
                remedy: Some(Remedy::ListMachinesInInventory),
            });
        }
    }
    Fleet {
        hosts,
        unreachable,
        idle: Vec::new(),
    }
}

/// Whether an inventory group names a component or a deployment host:
/// equal, or equal once `_` is read as `-` (Ansible group names cannot
/// hold `-`).
fn group_matches(group: &str, id: &str) -> bool {
    group == id || group.replace('_', "-") == id
}

fn inventory_error(
    inv: &Inventory,
    host: &InventoryHost,
    message: String,
    hint: &str,
) -> InventoryError {
    InventoryError {
        file: inv.file.clone(),
        line: host.line,
        column: host.column,
        message,
        hint: hint.to_owned(),
    }
}

/// The machines of an inventory, and what each runs: the components listed
/// in its `portolan_components` variable (host or group variable), else
/// the components and deployment hosts its groups are named after (a group
/// `broker` runs every component of the deployment host `broker`; `_` in a
/// group name matches `-`). Hosts that run nothing are left out and
/// returned by name. Components placed in the deployment that no host runs
/// are [`Unreachable`].
///
/// Errors: a `portolan_components` entry that is not a placed component,
/// an `ansible_port` that is not a port; each with file, line and column.
pub fn hosts_from_inventory(inv: &Inventory, plan: &Plan) -> Result<Fleet, InventoryError> {
    let placed = placed_components(plan);
    let mut hosts = Vec::new();
    let mut idle = Vec::new();
    for host in &inv.hosts {
        let mut components: BTreeSet<&str> = BTreeSet::new();
        if let Some(listed) = host.vars.get(COMPONENTS_VAR) {
            for item in listed.items() {
                let Some(id) = placed.iter().find(|c| **c == item) else {
                    let known = placed.join(", ");
                    return Err(inventory_error(
                        inv,
                        host,
                        format!(
                            "host `{}`: `{item}` in {COMPONENTS_VAR} is not a component placed in the deployment",
                            host.name
                        ),
                        &format!("placed components: {known}"),
                    ));
                };
                components.insert(id);
            }
        } else {
            for group in &host.groups {
                for c in &placed {
                    if group_matches(group, c) {
                        components.insert(c);
                    }
                }
                for planned in &plan.hosts {
                    if group_matches(group, &planned.name) {
                        components.extend(
                            planned
                                .components
                                .iter()
                                .filter(|c| placed.contains(&c.as_str()))
                                .map(String::as_str),
                        );
                    }
                }
            }
        }
        if components.is_empty() {
            idle.push(host.name.clone());
            continue;
        }
        let port =
            match host.vars.get("ansible_port") {
                None => None,
                Some(v) => Some(v.text().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(
                    || {
                        inventory_error(
                            inv,
                            host,
                            format!(
                                "host `{}`: ansible_port `{}` is not a port",
                                host.name,
                                v.text()
                            ),
                            "a port is a number from 1 to 65535",
                        )
                    },
                )?),
            };
        let text = |key: &str| {
            host.vars
                .get(key)
                .map(|v| v.text())
                .filter(|t| !t.is_empty())
        };
        hosts.push(FleetHost {
            name: host.name.clone(),
            destination: text("ansible_host").unwrap_or_else(|| host.name.clone()),
            user: text("ansible_user"),
            port,
            keyfile: text("ansible_ssh_private_key_file").map(PathBuf::from),
            // Spec order, as everywhere else.
            components: placed
                .iter()
                .filter(|c| components.contains(*c))
                .map(|c| (*c).to_owned())
                .collect(),
            origin: format!("inventory {}:{}", inv.file, host.line),
        });
    }
    let unreachable = placed
        .iter()
        .filter(|c| !hosts.iter().any(|h| h.components.iter().any(|x| x == *c)))
        .map(|c| Unreachable {
            name: (*c).to_owned(),
            components: vec![(*c).to_owned()],
            reason: format!(
                "no host of {} runs `{c}` (a group named after it, or {COMPONENTS_VAR})",
                inv.file
            ),
            name_only: false,
            remedy: None,
        })
        .collect();
    Ok(Fleet {
        hosts,
        unreachable,
        idle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::read_inventory;

    const SPEC: &str = "portolan: 1
system: {name: Demo}
components:
  - {id: web}
  - {id: web-stream}
  - {id: db, kind: dependency}
  - {id: workers}
  - {id: outside, kind: external}
flows:
  - {from: outside, to: web, protocol: tcp, port: 443}
  - {from: web, to: db, protocol: tcp, port: 5432}
  - {from: web-stream, to: db, protocol: tcp, port: 5432}
  - {from: workers, to: web, protocol: tcp, port: 443}
";
    const DEPLOYMENT: &str = "deployment: 1
components:
  web: {host: app, addresses: [198.18.0.2, \"fd00::2\"]}
  web-stream: {addresses: [198.18.0.2, \"fd00::2\"]}
  db: {addresses: [198.18.0.3, 198.18.0.4]}
  workers: {addresses: [198.18.1.0/24]}
";

    fn plan() -> Plan {
        let spec = portolan_spec::load_spec(portolan_spec::SourceFile::new("s.yaml", SPEC))
            .expect("spec")
            .value;
        let deployment = portolan_spec::deployment::load_deployment(
            portolan_spec::SourceFile::new("d.yaml", DEPLOYMENT),
            &spec,
        )
        .expect("deployment")
        .value;
        portolan_spec::plan::plan(&spec, &deployment)
    }

    #[test]
    fn deployment_hosts_become_machines_and_blocks_are_said() {
        let Fleet {
            hosts, unreachable, ..
        } = hosts_from_plan(&plan());
        let view: Vec<(String, String, Vec<String>)> = hosts
            .iter()
            .map(|h| (h.name.clone(), h.destination.clone(), h.components.clone()))
            .collect();
        assert_eq!(
            view,
            [
                (
                    "app".into(),
                    "198.18.0.2".into(),
                    vec!["web".into(), "web-stream".into()]
                ),
                (
                    "db 198.18.0.3".into(),
                    "198.18.0.3".into(),
                    vec!["db".into()]
                ),
                (
                    "db 198.18.0.4".into(),
                    "198.18.0.4".into(),
                    vec!["db".into()]
                ),
            ]
        );
        assert_eq!(unreachable.len(), 1);
        assert_eq!(unreachable[0].components, ["workers"]);
        assert!(
            unreachable[0].reason.contains("198.18.1.0/24"),
            "{unreachable:?}"
        );
    }

    #[test]
    fn inventory_groups_and_variables_map_to_components() {
        let inv = read_inventory(
            "hosts.ini",
            "[app]\napp1 ansible_host=198.18.0.2 ansible_user=ops ansible_port=2222\n\
             [db]\ndb1\n[misc]\nlonely\nwork1 portolan_components=workers\n",
        )
        .expect("inventory");
        let Fleet {
            hosts,
            unreachable,
            idle,
        } = hosts_from_inventory(&inv, &plan()).expect("maps");
        assert_eq!(
            hosts[0].components,
            ["web", "web-stream"],
            "group = deployment host"
        );
        assert_eq!(hosts[0].reached(), "ssh ops@198.18.0.2 -p 2222");
        assert_eq!(hosts[1].components, ["db"]);
        assert_eq!(hosts[1].destination, "db1");
        assert_eq!(hosts[2].components, ["workers"]);
        assert_eq!(idle, ["lonely"]);
        assert!(unreachable.is_empty());

        let inv = read_inventory(
            "hosts.ini",
            "[web_stream]\nx1\n[misc]\nx2 portolan_components=wbe\n",
        )
        .expect("inventory");
        let err = hosts_from_inventory(&inv, &plan()).expect_err("typo");
        assert!(
            err.to_string()
                .starts_with("hosts.ini:4:1: host `x2`: `wbe` in portolan_components"),
            "{err}"
        );
        let inv = read_inventory("hosts.ini", "[web_stream]\nx1\n").expect("inventory");
        let Fleet {
            hosts, unreachable, ..
        } = hosts_from_inventory(&inv, &plan()).expect("maps");
        assert_eq!(hosts[0].components, ["web-stream"]);
        let missing: Vec<&str> = unreachable.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(missing, ["web", "db", "workers"]);
    }
}
