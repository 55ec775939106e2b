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

use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::Path;

use portolan_spec::diag::Context;
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
        let worded = in_our_words(diagnostics);
        eprint!("{}", render_diagnostics(&worded, stderr_style()));
    }
}

/// The diagnostics with the hints the libraries leave to us: which of our
/// flags a problem concerns (libraries never name flags; a diagnostic's
/// `context` says what the flag hint is about).
fn in_our_words(diagnostics: &Diagnostics) -> Cow<'_, Diagnostics> {
    if diagnostics.items.iter().all(|d| d.context.is_none()) {
        return Cow::Borrowed(diagnostics);
    }
    let mut worded = diagnostics.clone();
    for d in &mut worded.items {
        let flag_hint = match d.context {
            Some(Context::AlsoAComponentId) => " (`--component` takes both)",
            _ => continue,
        };
        if let Some(help) = &mut d.help {
            help.push_str(flag_hint);
        }
    }
    Cow::Owned(worded)
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
