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
    #[arg(long, value_enum, default_value_t = DiagnosticFormat::Human)]
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
    /// One nftables ruleset per component host (`<component>.nft`), loaded atomically with `nft -f`.
    Nftables,
    /// iptables-restore and ip6tables-restore files per component host (`<component>.rules.v4`, `.rules.v6`).
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
    /// Only the files of this component (by id).
    #[arg(long, short)]
    pub component: Option<String>,
    /// Directory to write the files into (created if needed).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Fail (exit 1, nothing written) if the target cannot express every flow.
    #[arg(long)]
    pub strict: bool,
    /// Default policy of the input and output chains.
    #[arg(long, value_enum, default_value_t = PolicyArg::Drop)]
    pub policy: PolicyArg,
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
or not at all). Warnings go to standard error as FILE:LINE: warning: MESSAGE, with a summary line.\n\
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
