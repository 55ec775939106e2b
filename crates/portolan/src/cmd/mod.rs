//! One module per subcommand; each turns its arguments into a checked
//! configuration, calls the libraries, and prints.

mod apply;
mod check;
mod completions;
mod diff;
mod generate;
mod import;
mod lab;
mod listen;
mod plan;
mod preflight;
mod render;
mod report;
mod schema;
mod validate;
mod verify;

use std::io::IsTerminal;
use std::path::Path;

use portolan_spec::{render_diagnostics, Diagnostics, Loaded, RenderStyle, SourceFile, Spec};

use crate::cli::{Cli, Command};
use crate::status::{CmdError, CmdResult};

/// Runs the subcommand and returns the exit code.
pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Lab(args) => lab::run(&args),
        Command::Listen(args) => listen::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Preflight(args) => preflight::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Completions(args) => completions::run(&args),
    }
}

/// The diagnostics style for standard error.
pub fn stderr_style() -> RenderStyle {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        RenderStyle::Fancy
    } else {
        RenderStyle::Plain
    }
}

/// Prints diagnostics (if any) to standard error.
#[allow(clippy::print_stderr)]
pub fn print_diagnostics(diagnostics: &Diagnostics) {
    if !diagnostics.items.is_empty() {
        eprint!("{}", render_diagnostics(diagnostics, stderr_style()));
    }
}

/// Reads and checks a spec; prints its warnings; invalid specs are an input error.
pub fn load_spec_or_report(path: &Path) -> Result<Spec, CmdError> {
    load_spec_filtered(path, &[])
}

/// Like [`load_spec_or_report`], for commands that read or make a deployment:
/// a parameter without a default is the deployment's to set (and the
/// deployment reader makes a missing value an error), so the spec's
/// reminder about it is left out.
pub fn load_spec_for_deployment(path: &Path) -> Result<Spec, CmdError> {
    load_spec_filtered(path, &[portolan_spec::Code::ParameterNeedsValue])
}

fn load_spec_filtered(path: &Path, quiet: &[portolan_spec::Code]) -> Result<Spec, CmdError> {
    let source = SourceFile::read(path)?;
    match portolan_spec::load_spec(source) {
        Ok(Loaded {
            value,
            mut warnings,
        }) => {
            warnings.items.retain(|d| !quiet.contains(&d.code));
            print_diagnostics(&warnings);
            Ok(value)
        }
        Err(diagnostics) => {
            print_diagnostics(&diagnostics);
            let (errors, _) = diagnostics.counts();
            Err(CmdError::input(format!(
                "{}: {errors} error(s); nothing was written",
                path.display()
            )))
        }
    }
}
