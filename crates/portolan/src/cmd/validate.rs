//! `portolan validate`.

use portolan_spec::{Diagnostics, SourceFile};

use crate::cli::{DiagnosticFormat, ValidateArgs};
use crate::output::write_stdout;
use crate::status::{CmdError, CmdResult, ExitStatus};

pub fn run(args: &ValidateArgs) -> CmdResult {
    let source = SourceFile::read(&args.spec)?;
    let (diagnostics, summary) = match portolan_spec::load_spec(source) {
        Ok(loaded) => {
            let spec = &loaded.value;
            let summary = format!(
                "{}: valid: {} components, {} externals, {} features, {} parameters, {} flows",
                args.spec.display(),
                spec.components.len(),
                spec.externals.len(),
                spec.features.len(),
                spec.parameters.len(),
                spec.flows.len()
            );
            (loaded.warnings, Some(summary))
        }
        Err(diagnostics) => (diagnostics, None),
    };
    report(args, &diagnostics)?;
    let (errors, warnings) = diagnostics.counts();
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);
    if args.format == DiagnosticFormat::Human {
        #[allow(clippy::print_stderr)]
        match (&summary, failed) {
            (Some(s), false) => eprintln!("{s}"),
            _ => eprintln!(
                "{}: invalid: {errors} error(s), {warnings} warning(s)",
                args.spec.display()
            ),
        }
    }
    Ok(ExitStatus::from_check(!failed))
}

fn report(args: &ValidateArgs, diagnostics: &Diagnostics) -> Result<(), CmdError> {
    match args.format {
        DiagnosticFormat::Human => {
            super::print_diagnostics(diagnostics);
            Ok(())
        }
        DiagnosticFormat::Json => {
            let text = serde_json::to_string_pretty(&diagnostics.to_json())?;
            write_stdout(&format!("{text}\n"))
        }
    }
}
