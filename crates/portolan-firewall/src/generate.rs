//! What every target shares: the [`Target`] trait, its [`Options`], its
//! output ([`Generated`]) and the warnings it gives for what it cannot
//! express ([`GenerateWarning`]).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use portolan_spec::plan::Plan;
use portolan_spec::Diagnostic;
use serde::Serialize;

/// A firewall target: turns a plan into files.
pub trait Target {
    /// The name used on the command line and in warning codes (`nftables`).
    fn name(&self) -> &'static str;

    /// Generates the files. Never opens more than the plan says; whatever it
    /// cannot express is a [`GenerateWarning`] (also written as a comment in
    /// the files), never a wider rule.
    fn generate(&self, plan: &Plan, options: &Options) -> Result<Generated, GenerateError>;
}

/// The targets this crate knows, for command lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// nftables rulesets, one per host (`<host>.nft`; see [`Plan::hosts`]).
    Nftables,
    /// iptables-restore and ip6tables-restore files, two per host.
    Iptables,
    /// Kubernetes NetworkPolicy, one per component with a Kubernetes placement.
    Kubernetes,
    /// CiliumNetworkPolicy, one per component with a Kubernetes placement.
    Cilium,
    /// AWS security groups and their rules, as one Terraform JSON file.
    Aws,
}

impl TargetKind {
    /// The name used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::Nftables => "nftables",
            TargetKind::Iptables => "iptables",
            TargetKind::Kubernetes => "kubernetes",
            TargetKind::Cilium => "cilium",
            TargetKind::Aws => "aws",
        }
    }

    /// Whether the target's files, concatenated, are one valid stream
    /// (multi-document YAML), so that they can be printed together.
    pub const fn concatenates(self) -> bool {
        matches!(self, TargetKind::Kubernetes | TargetKind::Cilium)
    }

    /// The target.
    pub fn target(self) -> Box<dyn Target> {
        match self {
            TargetKind::Nftables => Box::new(crate::nftables::Nftables),
            TargetKind::Iptables => Box::new(crate::iptables::Iptables),
            TargetKind::Kubernetes => Box::new(crate::kubernetes::Kubernetes),
            TargetKind::Cilium => Box::new(crate::cilium::Cilium),
            TargetKind::Aws => Box::new(crate::aws::Aws),
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a chain does with a packet no rule accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Drop it (the default).
    #[default]
    Drop,
    /// Accept it but log it first: an audit mode that shows what `drop`
    /// would block, without blocking anything.
    Accept,
}

impl Policy {
    /// `drop` or `accept`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Policy::Drop => "drop",
            Policy::Accept => "accept",
        }
    }
}

/// How a host firewall target writes its rules (nftables, iptables; the
/// other targets have one form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The complete firewall of the host: its own table (nftables) or the
    /// whole filter table (iptables), base chains with the chosen policy.
    #[default]
    Standalone,
    /// Beside the host's own firewall: regular chains (nftables, in the
    /// operator's table) or user chains (iptables) holding only the accepts
    /// of the spec's and the site's flows, no base chain, no policy; the
    /// operator adds one jump line to them.
    Chain,
    /// Nothing is blocked: every flow's rule counts its packets, and what
    /// would be dropped is counted and logged (rate-limited, "not in spec").
    Audit,
}

impl Mode {
    /// `standalone`, `chain` or `audit`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Chain => "chain",
            Mode::Audit => "audit",
        }
    }
}

/// Resolves a host name to addresses (used with `--resolve`).
pub type Resolver = Arc<dyn Fn(&str) -> Result<Vec<IpAddr>, String> + Send + Sync>;

/// How to generate.
#[derive(Clone, Default)]
pub struct Options {
    /// Only this component's files (by id; host targets write its host's
    /// files, and also take a host name); `None` for every component (or
    /// host) the target can serve.
    pub component: Option<String>,
    /// Default policy of the chains (standalone mode).
    pub policy: Policy,
    /// How host firewalls write their rules.
    pub mode: Mode,
    /// Resolve host names at generation time with this resolver (host
    /// firewalls cannot match names). `None`: rules to host names are written
    /// commented out, with a warning.
    pub resolver: Option<Resolver>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("component", &self.component)
            .field("policy", &self.policy)
            .field("mode", &self.mode)
            .field("resolve", &self.resolver.is_some())
            .finish()
    }
}

/// Free text of the spec or deployment (a system, component or deployment
/// name) made fit for one comment line. Every target comments with `#` to
/// the end of the line: a line break in a name would end the comment and
/// turn the rest of the name into rules of the generated file.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            // U+2028 and U+2029 are line breaks to some YAML readers.
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The system resolver (getaddrinfo), for [`Options::resolver`].
pub fn system_resolver() -> Resolver {
    Arc::new(|host: &str| {
        use std::net::ToSocketAddrs;
        let mut addresses: Vec<IpAddr> = (host, 0)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .map(|a| a.ip())
            .collect();
        addresses.sort();
        addresses.dedup();
        if addresses.is_empty() {
            Err("no addresses".to_owned())
        } else {
            Ok(addresses)
        }
    })
}

/// What a target produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Generated {
    /// File names (relative to the output directory) and their text, in component order.
    pub files: Vec<(PathBuf, String)>,
    /// What could not be expressed, in component then flow order.
    pub warnings: Vec<GenerateWarning>,
}

/// Why a target could not express (part of) a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// A peer is a DNS name.
    HostName,
    /// A peer is a wildcard DNS pattern.
    WildcardHost,
    /// A peer has no placement this target can use (no addresses).
    UnplacedPeer,
    /// A fixed source port the target cannot match.
    SourcePort,
    /// Multicast the target cannot express.
    Multicast,
    /// ICMP the target cannot match as the spec says.
    Icmp,
}

impl WarningKind {
    /// The stable short name, e.g. `host-name`.
    pub const fn as_str(self) -> &'static str {
        match self {
            WarningKind::HostName => "host-name",
            WarningKind::WildcardHost => "wildcard-host",
            WarningKind::UnplacedPeer => "unplaced-peer",
            WarningKind::SourcePort => "source-port",
            WarningKind::Multicast => "multicast",
            WarningKind::Icmp => "icmp",
        }
    }
}

/// A flow, or part of one, that a target left out rather than widen it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GenerateWarning {
    /// The target (`nftables`).
    pub target: &'static str,
    /// Why.
    pub kind: WarningKind,
    /// The flow's id.
    pub flow: String,
    /// The component the rule would have been for (host targets: one of
    /// the components of the file's host).
    pub component: String,
    /// One sentence for a person.
    pub message: String,
}

impl GenerateWarning {
    /// The stable code, e.g. `nftables::host-name`.
    pub fn code(&self) -> String {
        format!("{}::{}", self.target, self.kind.as_str())
    }
}

impl fmt::Display for GenerateWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warning[{}]: flow {} (rules of {}): {}",
            self.code(),
            self.flow,
            self.component,
            self.message
        )
    }
}

/// Why a target produced nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GenerateError {
    /// The target cannot serve the deployment: diagnostics about the
    /// deployment file (code `deployment::unsupported-by-target`).
    #[error("the {target} target cannot serve this deployment")]
    CannotServe {
        /// The target.
        target: &'static str,
        /// What is wrong, located in the deployment file.
        diagnostics: Vec<Diagnostic>,
    },
    /// A bug: the target could not write what it built (a serialiser failed).
    #[error("internal error in the {target} target: {message}")]
    Internal {
        /// The target.
        target: &'static str,
        /// What failed.
        message: String,
    },
}

/// `# ` comment lines naming the site flows of a component (the
/// deployment's `site:`, not the vendor's), for targets whose rules carry no
/// comment of their own; empty without site flows.
pub(crate) fn site_flow_lines(plan: &Plan, component: &str, prefix: &str) -> String {
    let ids: Vec<String> = plan
        .site_flows
        .iter()
        .filter(|f| f.from.id == component || f.to.id == component)
        .map(|f| {
            format!(
                "{} ({})",
                one_line(&f.id),
                one_line(f.purpose.as_deref().unwrap_or_default())
            )
        })
        .collect();
    if ids.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "{prefix}Site flows (the deployment's `site:`, the operator's own, not the vendor's), in the rules below:\n"
    );
    for id in ids {
        out.push_str(&format!("{prefix}  {id}\n"));
    }
    out
}

impl GenerateError {
    /// A deployment the target cannot serve is the user's to change; a
    /// serialiser failure is a bug.
    pub fn kind(&self) -> portolan_spec::ErrorKind {
        match self {
            GenerateError::CannotServe { .. } => portolan_spec::ErrorKind::Input,
            GenerateError::Internal { .. } => portolan_spec::ErrorKind::Internal,
        }
    }
}
