//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Portolan makes the networking requirements of multi-component systems
/// executable: one spec of who talks to whom, on which ports, and from it
/// documents, firewall policy and proofs.
#[derive(Debug, Parser)]
#[command(name = "portolan", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success; 1 invalid input or a failed check; \
2 usage error, missing privilege or tool, or internal error.\n\
Spec format: docs/spec-format.md. Diagnostics: docs/diagnostics.md."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a spec and report every problem with its location.
    Validate(ValidateArgs),
    /// Render a spec as a connection matrix, tables, a diagram or JSON.
    Render(RenderArgs),
    /// Import a vendor's networking page (markdown) into a spec.
    Import(ImportArgs),
    /// Resolve a spec against a deployment: the concrete flows, and every flow left out and why.
    Plan(PlanArgs),
    /// Generate firewall policy for a deployment (nftables, iptables, Kubernetes, Cilium, AWS).
    Generate(GenerateArgs),
    /// Prove the generated firewall flow by flow, in throwaway network namespaces on this machine.
    Lab(LabArgs),
    /// On a host, listen on every port a component must accept, until stopped.
    Listen(ListenArgs),
    /// From a host, probe every flow a component must originate.
    Check(CheckArgs),
    /// Merge the JSON results of many hosts into the connection matrix (markdown, HTML).
    Report(ReportArgs),
    /// Verify an existing firewall (host rulesets, Kubernetes NetworkPolicies, AWS security groups) against the spec.
    Verify(VerifyArgs),
    /// Preflight every host of a deployment over SSH: listen, check, one report.
    Preflight(PreflightArgs),
    /// Apply a host's rules on this host, rolled back unless confirmed in time (docs/rollout.md).
    Apply(ApplyArgs),
    /// The flows added, removed and changed between two versions of a spec, and per host the firewall commands: a change request.
    Diff(DiffArgs),
    /// Print the JSON Schema of the spec format (for editor completion).
    Schema(SchemaArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnosticFormat {
    /// Source excerpts with the problem underlined.
    Human,
    /// One JSON array of diagnostics with file, line and column.
    Json,
}

/// Arguments of `portolan validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// How to print diagnostics.
    #[arg(long, short, value_enum, default_value_t = DiagnosticFormat::Human)]
    pub format: DiagnosticFormat,
    /// Treat warnings as errors (exit 1 when there is any).
    #[arg(long)]
    pub deny_warnings: bool,
}

/// Output formats of `portolan render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// The connection-matrix page, cells as IP:protocol:source_port:destination_port.
    Matrix,
    /// Per-component Ingress and Egress tables and external-access lists.
    Tables,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz DOT graph.
    Dot,
    /// The checked spec as JSON.
    Json,
}

/// Arguments of `portolan render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// What to produce.
    #[arg(long, short, value_enum, default_value_t = RenderFormat::Matrix)]
    pub format: RenderFormat,
    /// Write here instead of standard output (written whole or not at all).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// With `--format tables`: operator tables of this deployment, with
    /// the peer of every row (From on ingress, To on egress) and its addresses.
    #[arg(long, short)]
    pub deployment: Option<PathBuf>,
}

/// Arguments of `portolan schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print the schema of the deployment file instead of the spec's.
    #[arg(long)]
    pub deployment: bool,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Output formats of `portolan plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Tables of concrete flows and of flows left out.
    Table,
    /// The plan as JSON.
    Json,
}

/// Arguments of `portolan plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// The deployment file (YAML): addresses, features, parameter values.
    #[arg(long, short)]
    pub deployment: PathBuf,
    /// What to print.
    #[arg(long, short, value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
    /// Write here instead of standard output (written whole or not at all).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Targets of `portolan generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateTarget {
    /// One nftables ruleset per host (`<host>.nft`: a component, or the components at equal addresses), loaded atomically with `nft -f`.
    Nftables,
    /// iptables-restore and ip6tables-restore files per host (`<host>.rules.v4`, `.rules.v6`).
    Iptables,
    /// Kubernetes NetworkPolicy per component with a Kubernetes placement (`<component>.networkpolicy.yaml`).
    Kubernetes,
    /// CiliumNetworkPolicy per component with a Kubernetes placement, with toFQDNs for host names (`<component>.ciliumnetworkpolicy.yaml`).
    Cilium,
    /// AWS security groups and rules as Terraform JSON (`security-groups.tf.json`).
    Aws,
}

/// Default policy of generated chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Drop what the spec does not allow.
    Drop,
    /// Audit mode: accept everything, log what the spec does not allow.
    Accept,
}

/// How host firewall rules are written (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The host's whole firewall: own table (nftables) or whole filter table (iptables), policy drop.
    Standalone,
    /// Beside the host's firewall: chains holding only the flows' accepts, which the host's firewall jumps to.
    Chain,
    /// Nothing blocked: flows counted, what the spec does not allow counted and logged.
    Audit,
}

/// Arguments of `portolan generate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Without -o, the output is printed when it is a single file \
(e.g. `--target nftables --component api`). Files are written all or nothing. \
What a target cannot express (a host name or wildcard pattern in nftables) is \
a warning naming the flow, also written as a comment in the file; never a wider rule."
)]
pub struct GenerateArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// The deployment file (YAML).
    #[arg(long, short)]
    pub deployment: PathBuf,
    /// What to generate.
    #[arg(long, short, value_enum)]
    pub target: GenerateTarget,
    /// Only the files of this component (by id; for nftables and iptables, its host's files, also chosen by host name).
    #[arg(long, short)]
    pub component: Option<String>,
    /// Directory to write the files into (created if needed); `-` prints, as without -o.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Fail (exit 1, nothing written) if the target cannot express every flow.
    #[arg(long)]
    pub strict: bool,
    /// Default policy of the input and output chains.
    #[arg(long, value_enum, default_value_t = PolicyArg::Drop)]
    pub policy: PolicyArg,
    /// How nftables and iptables rules are written (docs/rollout.md); the
    /// other targets take only `standalone`.
    #[arg(long, value_enum, default_value_t = ModeArg::Standalone)]
    pub mode: ModeArg,
    /// Resolve host names with the system resolver now, and write their
    /// current addresses into the rules (regenerate when they move). Without
    /// it, rules to host names are written commented out, with a warning.
    /// Wildcard patterns are never resolved.
    #[arg(long)]
    pub resolve: bool,
}

/// Arguments of `portolan completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Report formats of `portolan import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportReportFormat {
    /// Rows read, flows imported, rows merged and skipped (with line and reason), warnings, guesses.
    Json,
}

/// Arguments of `portolan import`.
#[derive(Debug, Args)]
#[command(
    after_help = "Output: the spec goes to standard output, or to --output (written whole \
or not at all). Warnings go to standard error as FILE:LINE: warning[CODE]: MESSAGE (codes: docs/diagnostics.md), with a summary line.\n\
Report: --report json prints the JSON report to standard output when the spec goes to --output; \
when the spec goes to standard output, name a file with --report-file (which alone also writes \
the JSON report).\n\
Exit codes: 0 imported (check the warnings); 1 the page cannot be imported (binary, empty, \
larger than 8 MiB, not markdown, no table or list, or nothing readable); 2 usage or internal error."
)]
pub struct ImportArgs {
    /// The page (markdown).
    pub page: PathBuf,
    /// Write the spec here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Also print the import report in this format (see below for where it goes).
    #[arg(long, value_enum)]
    pub report: Option<ImportReportFormat>,
    /// Write the JSON import report to this file.
    #[arg(long, value_name = "PATH")]
    pub report_file: Option<PathBuf>,
    /// The system's name (default: the page's title, else its most frequent proper noun, else the file name).
    #[arg(long, value_name = "NAME")]
    pub system_name: Option<String>,
}

/// Arguments of `portolan listen`.
#[derive(Debug, Args)]
#[command(
    after_help = "Binds a TCP listener per TCP port and a UDP socket per UDP port of every \
flow the component receives, and joins its multicast groups. UDP sockets answer only datagrams \
carrying the token (by default derived from the spec file, so that `check` with the same spec \
matches), with the datagram itself: never larger than the question. Ports that cannot be bound \
(in use, privileged) are printed with the OS error; the others are served until Ctrl-C, SIGTERM \
or --duration. Exit 1 if a port could not be bound."
)]
pub struct ListenArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// The deployment file (YAML).
    #[arg(long, short)]
    pub deployment: PathBuf,
    /// The component this host runs (by id).
    #[arg(long = "as", value_name = "COMPONENT")]
    pub component: String,
    /// Bind on this address only (one of the component's addresses in the
    /// deployment); by default, on every address of the component that is on this host.
    #[arg(long, value_name = "ADDR")]
    pub address: Option<std::net::IpAddr>,
    /// Stop after this long (`30s`, `5m`, `500ms`, `2h`; a bare number is
    /// seconds; at most 7 days, 168h).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// The token probes must carry (default: derived from the spec file).
    #[arg(long)]
    pub token: Option<String>,
    /// Flows with more ports than this are not listened on (0 to 65536).
    #[arg(long, default_value_t = 1024, value_name = "N",
          value_parser = ranged::<u32, 0, 65536>)]
    pub max_ports: u32,
}

/// Output formats of `portolan check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// A table for the terminal.
    Table,
    /// The results document that `portolan report` merges.
    Json,
    /// JUnit XML, one test case per probe.
    Junit,
}

/// Who answers UDP probes to components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UdpAgainstArg {
    /// `portolan listen` runs on the destinations: a token echo is definitive.
    Listener,
    /// The real services run: a reply is open, ICMP port unreachable is
    /// refused, silence is open|filtered (never a pass).
    Service,
}

/// Arguments of `portolan check`.
#[derive(Debug, Args)]
#[command(
    after_help = "Probes only the deployment's addresses and the spec's external \
endpoints, on the flows' ports: TCP connect (open, refused, filtered, unreachable, with the \
OS error); UDP with a token against `portolan listen`, or against the real service \
(--udp service); multicast; external endpoints with DNS timed on its own, TCP and, on TLS \
ports, a TLS handshake with SNI verified against the system roots (issuer reported), \
through HTTPS_PROXY unless NO_PROXY matches; ICMP with an echo request (an unprivileged ping \
socket). Flows that cannot be probed (`any`, every port, address blocks, wildcard patterns, \
ICMP where net.ipv4.ping_group_range refuses ping sockets) are listed as untested.\n\
Exit codes: 0 every probe of a required flow passed; 1 one did not (or, with --strict, a \
required flow was not probed), or invalid input; 2 usage or internal error."
)]
pub struct CheckArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// The deployment file (YAML).
    #[arg(long, short)]
    pub deployment: PathBuf,
    /// The component this host runs (by id).
    #[arg(long = "as", value_name = "COMPONENT")]
    pub component: String,
    /// Send from this address (one of the component's addresses in the deployment).
    #[arg(long, value_name = "ADDR")]
    pub from: Option<std::net::IpAddr>,
    /// Time allowed for one attempt, in milliseconds (1 to 60000).
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = ranged::<u64, 1, MAX_TIMEOUT_MS>)]
    pub timeout: u64,
    /// Further attempts after an attempt timed out (0 to 10).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = ranged::<u32, 0, MAX_RETRIES>)]
    pub retries: u32,
    /// Probes in flight at once (1 to 4096).
    #[arg(long, default_value_t = 512, value_name = "N",
          value_parser = ranged::<usize, 1, MAX_CONCURRENCY>)]
    pub concurrency: usize,
    /// What to print.
    #[arg(long, short, value_enum, default_value_t = CheckFormat::Table)]
    pub format: CheckFormat,
    /// Write the output here (written whole or not at all); with json or
    /// junit, the table is still printed.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The token of the listeners (default: derived from the spec file).
    #[arg(long)]
    pub token: Option<String>,
    /// Who answers UDP probes to components.
    #[arg(long, value_enum, default_value_t = UdpAgainstArg::Listener)]
    pub udp: UdpAgainstArg,
    /// Extra trusted root certificates (PEM) for TLS checks, besides the system's.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// TCP ports of external endpoints checked with a TLS handshake
    /// (default: 443, 465, 636, 853, 993, 995, 5061, 5671, 6697, 8443, 8883).
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub tls_ports: Option<Vec<u16>>,
    /// Flows with more ports than this are not probed (0 to 65536; ranges
    /// are probed port by port).
    #[arg(long, default_value_t = 1024, value_name = "N",
          value_parser = ranged::<u32, 0, 65536>)]
    pub max_ports: u32,
    /// Fail (exit 1) when a required flow could not be probed.
    #[arg(long)]
    pub strict: bool,
}

/// Output formats of `portolan report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A markdown page: the matrix, the hosts, every cell's details.
    Markdown,
    /// One self-contained HTML page (no network fetches); click a cell for details.
    Html,
}

/// Arguments of `portolan report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Every results file must come from the same spec (by SHA-256; the \
spec given with --spec, else the first file's) and the same deployment. A broken file, or one \
from another spec, is an error naming the file and the reason (exit 1); nothing is written.\n\
A component with several addresses shows \"N of M hosts\" in its row; a host that sent no \
results is listed with its address, and the cells of its flows are partial.\n\
Exit codes: 0 the page was written and no probe of a required flow failed; 1 one did (the page \
is still written), or invalid input; 2 usage or internal error."
)]
pub struct ReportArgs {
    /// Results files written by `portolan check --format json`.
    #[arg(required = true, value_name = "RESULTS.json")]
    pub results: Vec<PathBuf>,
    /// The spec the results must come from.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// What to produce.
    #[arg(long, short, value_enum, default_value_t = ReportFormat::Markdown)]
    pub format: ReportFormat,
    /// Write here instead of standard output (written whole or not at all).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Most milliseconds `check --timeout` accepts: one attempt waits a minute at most.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// Most `check --retries`: with the longest timeout, a probe takes 11 minutes at most.
pub const MAX_RETRIES: u64 = 10;
/// Most `check --concurrency`: probes in flight, each an open socket.
pub const MAX_CONCURRENCY: u64 = 4096;
/// Longest `listen --duration`: 7 days (without it, until stopped).
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A whole number from `MIN` to `MAX`: a flag error (exit 2) otherwise, like
/// any other value clap cannot take. Every count flag has its bounds here
/// and in its help.
fn ranged<T, const MIN: u64, const MAX: u64>(text: &str) -> Result<T, String>
where
    T: TryFrom<u64>,
{
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|value| (MIN..=MAX).contains(value))
        .and_then(|value| T::try_from(value).ok())
        .ok_or_else(|| format!("`{text}` is not a whole number from {MIN} to {MAX}"))
}

/// Host firewall of `portolan apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyTarget {
    /// `nft`.
    Nftables,
    /// `iptables-restore` and `ip6tables-restore`.
    Iptables,
}

/// Arguments of `portolan apply`.
#[derive(Debug, Args)]
#[command(
    after_help = "Checks the rules (nft -c / iptables-restore --test), saves the current \
ruleset in the state directory, starts a detached rollback guard, loads the rules atomically, and \
waits: `portolan apply --confirm` from another session keeps them (exit 0); without it the guard \
restores the saved ruleset at the deadline, even if this process is killed (exit 1). Refuses rules \
that would cut the SSH session it runs under (SSH_CONNECTION) unless --force. Everything is logged \
to apply.log in the state directory and to standard error."
)]
pub struct ApplyArgs {
    /// The spec file (YAML).
    #[arg(required_unless_present_any = ["confirm", "guard"])]
    pub spec: Option<PathBuf>,
    /// The deployment file (YAML).
    #[arg(long, short, required_unless_present_any = ["confirm", "guard"])]
    pub deployment: Option<PathBuf>,
    /// The component this host carries (its host's rules are applied).
    #[arg(long = "as", value_name = "COMPONENT", required_unless_present_any = ["confirm", "guard"])]
    pub component: Option<String>,
    /// The packet filter.
    #[arg(long, short, value_enum, default_value_t = ApplyTarget::Nftables)]
    pub target: ApplyTarget,
    /// How the rules are written (see `generate --mode`).
    #[arg(long, value_enum, default_value_t = ModeArg::Standalone)]
    pub mode: ModeArg,
    /// Roll back unless confirmed within this time (5s to 1h).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = confirm_window)]
    pub confirm_within: std::time::Duration,
    /// Where the saved ruleset, journal and log are kept.
    #[arg(long, default_value = "/var/lib/portolan/apply")]
    pub state_dir: PathBuf,
    /// Apply even if the rules would cut this SSH session.
    #[arg(long)]
    pub force: bool,
    /// Keep the rules of the pending apply (run from another session).
    #[arg(long, conflicts_with_all = ["spec", "deployment", "component", "force"])]
    pub confirm: bool,
    /// Internal: run the rollback guard.
    #[arg(long, hide = true, conflicts_with_all = ["spec", "deployment", "component", "confirm"])]
    pub guard: bool,
}

fn confirm_window(text: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(text)?;
    if d < std::time::Duration::from_secs(5) || d > std::time::Duration::from_secs(3600) {
        return Err(format!("`{text}` is not between 5s and 1h"));
    }
    Ok(d)
}

/// `30s`, `5m`, `500ms`, `1h`; a bare number is seconds; at most [`MAX_DURATION`].
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 30s, 5m, 500ms)"))?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("`{text}` is not a duration (e.g. 30s, 5m, 500ms)")),
    };
    match ms.map(std::time::Duration::from_millis) {
        Some(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!(
            "`{text}` is longer than the most allowed, 168h (7 days)"
        )),
    }
}

/// `preflight --connect-timeout`: a duration from 1 s to 10 min.
fn parse_connect_timeout(text: &str) -> Result<std::time::Duration, String> {
    let duration = parse_duration(text)?;
    if (std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(600)).contains(&duration)
    {
        Ok(duration)
    } else {
        Err(format!("`{text}` is not a duration from 1s to 10m"))
    }
}

/// Report formats of `portolan lab`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabFormat {
    /// The connection matrix, the failures with their reasons, counts and times.
    Table,
    /// Every check with its verdict, the hosts, the lab deployment and the timings.
    Json,
    /// JUnit XML: one test suite per sending component, one test case per check.
    Junit,
}

impl LabFormat {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LabFormat::Table => "table",
            LabFormat::Json => "json",
            LabFormat::Junit => "junit",
        }
    }
}

/// Arguments of `portolan lab`.
#[derive(Debug, Args)]
#[command(
    after_help = "Builds one Linux network namespace per component instance, one for \
the outside world and one per external endpoint, joined by a bridge; loads the nftables ruleset \
generated for each component (default policy drop); listens on every port a component must \
accept; probes every flow that must pass and, for each pair of components, the ports that must \
be blocked (flows of features that are off included). Nothing leaves the machine: addresses \
are lab-only and external host names resolve through a DNS server of the lab.\n\
Needs `nft` (Debian package `nftables`), and root or CAP_NET_ADMIN and CAP_SYS_ADMIN: \
without them it runs in a private user and network namespace where the machine allows it.\n\
Exit codes: 0 every check holds; 1 a check fails (or invalid input); 2 the lab cannot run here."
)]
pub struct LabArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// Prove this deployment (its addresses, features, parameter values, proxies and
    /// machines) instead of one the lab makes up; its addresses live only inside the
    /// lab's namespaces, which never route to the real network.
    #[arg(long, short, value_name = "FILE",
          conflicts_with_all = ["features", "all_features", "replicas"])]
    pub deployment: Option<PathBuf>,
    /// Load the rulesets of this directory (one per host, named as `generate` writes them:
    /// HOST.nft, or HOST.rules.v4/HOST.rules.v6) instead of generating them; each is first
    /// checked by `nft -c` / `iptables-restore --test`.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Features to enable, comma-separated (default: none; flows of features off must be blocked).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "FEATURES",
        conflicts_with = "all_features"
    )]
    pub features: Vec<String>,
    /// Enable every feature of the spec.
    #[arg(long)]
    pub all_features: bool,
    /// Instances of each system component (dependencies have one; 1 to 64).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = ranged::<usize, 1, { portolan_lab::design::MAX_REPLICAS as u64 }>)]
    pub replicas: usize,
    /// Report format.
    #[arg(long, short, value_enum, default_value_t = LabFormat::Table)]
    pub format: LabFormat,
    /// Write the report here (the table still goes to standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Keep what the run built: the lab deployment, the rulesets as loaded and the JSON report,
    /// in ./portolan-lab-RUN_ID (or --keep-dir).
    #[arg(long)]
    pub keep: bool,
    /// Directory for --keep.
    #[arg(long, value_name = "DIR")]
    pub keep_dir: Option<PathBuf>,
    /// Seed of the sampled ports: the same seed probes the same ports.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Run id (prefix of every namespace), e.g. ptl-ci1; random by default.
    #[arg(long, hide = true)]
    pub run_id: Option<String>,
    /// Without root, fail instead of running in a private user namespace.
    #[arg(long, hide = true)]
    pub no_user_namespace: bool,
}

/// Output formats of `portolan verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// Summary, matrix, and per input every flow with its deciding rules.
    Table,
    /// The verification as JSON.
    Json,
    /// JUnit XML: a suite per input, a case per flow.
    Junit,
    /// A markdown page.
    Markdown,
    /// One self-contained HTML page.
    Html,
}

/// Arguments of `portolan verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// The deployment file (YAML).
    #[arg(long, short)]
    pub deployment: PathBuf,
    /// NetworkPolicy manifests (multi-document YAML or a `List`); repeatable.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub kubernetes: Vec<PathBuf>,
    /// The JSON of `aws ec2 describe-security-groups`; repeatable.
    #[arg(long, value_name = "FILE")]
    pub aws: Vec<PathBuf>,
    /// A host's ruleset, `nft list ruleset` text or `nft -j list ruleset` JSON, checked in a kernel twin (HOST=FILE; repeatable).
    #[arg(long, value_name = "HOST=FILE")]
    pub nftables: Vec<String>,
    /// A host's `iptables-save` or `ip6tables-save` output, checked in a kernel twin (HOST=FILE; repeatable).
    #[arg(long, value_name = "HOST=FILE")]
    pub iptables: Vec<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = VerifyFormat::Table)]
    pub format: VerifyFormat,
    /// Write here instead of standard output (written whole or not at all).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Exit 1 also when an input opens more than the plan needs.
    #[arg(long)]
    pub strict: bool,
}

/// Output formats of `portolan preflight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreflightFormat {
    /// Tables for the terminal: hosts, components, failures.
    Table,
    /// Every host and every host's results document.
    Json,
    /// JUnit XML: one case per host, then every probe.
    Junit,
    /// The connection matrix as a markdown page.
    Markdown,
    /// The connection matrix as one self-contained HTML page.
    Html,
}

/// Arguments of `portolan preflight`.
#[derive(Debug, Args)]
#[command(
    after_help = "Logs in to every host with the system's ssh (one multiplexed connection \
each; ~/.ssh/config, ProxyJump, agents, keys and known_hosts apply), puts this portolan binary \
(unless the same one is on the host's PATH), the spec and the deployment in a private \
directory (mktemp -d), starts `listen` for every component of the host, waits until each is \
ready, runs `check` for every component that sends flows, stops every listener and removes \
the directory: always, also on Ctrl-C, a failing host or a lost connection. Hosts come from \
the deployment, or from an Ansible inventory (groups named after components or deployment \
hosts, or the host variable portolan_components). See docs/preflight.md.\n\
Exit codes: 0 every host checked and every required flow passed; 1 a required flow failed, \
a host could not be checked, or invalid input; 2 usage or internal error; 130 interrupted."
)]
pub struct PreflightArgs {
    /// The spec file (YAML).
    pub spec: PathBuf,
    /// The deployment file (YAML).
    #[arg(long, short)]
    pub deployment: PathBuf,
    /// An Ansible inventory (YAML or INI) naming the hosts to log in to.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// An ssh configuration file instead of ~/.ssh/config (ssh -F).
    #[arg(long = "ssh-config", short = 'F', value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// An ssh option, ahead of every configuration file (ssh -o); repeatable.
    #[arg(long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// Run listen and check through `sudo -n` (privileged ports); hosts where it is refused are reported.
    #[arg(long)]
    pub sudo: bool,
    /// Hosts handled at once in each phase (1 to 256).
    #[arg(long, default_value_t = 32, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Leave the private directories (binary, spec, deployment) on the hosts.
    #[arg(long)]
    pub keep: bool,
    /// Also probe, between placed components, ports no flow grants (listeners
    /// bind sampled ones): an admitted probe is an excess opening (exit 1).
    #[arg(long)]
    pub negative: bool,
    /// Time allowed for one probe attempt, in milliseconds (check --timeout, 1 to 60000).
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = ranged::<u64, 1, MAX_TIMEOUT_MS>)]
    pub timeout: u64,
    /// Further attempts after a probe timed out (check --retries, 0 to 10).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = ranged::<u32, 0, MAX_RETRIES>)]
    pub retries: u32,
    /// Time allowed to connect and log in to a host (1s to 10m).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_connect_timeout)]
    pub connect_timeout: std::time::Duration,
    /// What to print.
    #[arg(long, short, value_enum, default_value_t = PreflightFormat::Table)]
    pub format: PreflightFormat,
    /// Write the output here (written whole or not at all); the table is still printed.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Output formats of `portolan diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// A table for the terminal, then each host's commands.
    Table,
    /// Markdown for a ticket or merge request: flow tables, then each host's commands.
    Markdown,
    /// CSV for a spreadsheet: one row per flow change and host command.
    Csv,
    /// JSON: every flow's two versions and every command.
    Json,
}

/// Host firewalls `portolan diff` writes commands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffTarget {
    /// `nft` commands against the rules `generate --target nftables` writes.
    Nftables,
    /// `iptables`/`ip6tables` commands against the rules `generate --target iptables` writes.
    Iptables,
}

/// Arguments of `portolan diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes as diff(1): 0 nothing changes, 1 something changes (or OLD, NEW or a \
deployment is invalid: diagnostics, nothing written), 2 usage or environment error. \
With -d, both specs are planned against the deployment (-d twice: the first for OLD, \
the second for NEW) and the change request has addresses and, per host, the commands."
)]
pub struct DiffArgs {
    /// The old spec file (YAML).
    pub old: PathBuf,
    /// The new spec file (YAML).
    pub new: PathBuf,
    /// The deployment: once for both versions, or twice (OLD's, then NEW's).
    #[arg(long, short, action = clap::ArgAction::Append)]
    pub deployment: Vec<PathBuf>,
    /// The host firewall of the commands (with -d) [default: nftables].
    #[arg(long, short, value_enum)]
    pub target: Option<DiffTarget>,
    /// How the rules are written, as for `generate --mode` (with -d) [default: standalone].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
    /// Write here instead of standard output (written whole or not at all).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}
