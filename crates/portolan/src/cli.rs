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
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Arguments of `portolan completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
