//! `portolan import`.

use std::sync::Arc;

use anyhow::Context;
use portolan_import::{
    import_markdown, source_from_bytes, ImportError, ImportOptions, ImportReport,
};
use portolan_spec::SourceFile;

use crate::cli::{ImportArgs, ImportReportFormat};
use crate::output::{write_file, write_output, write_stdout};
use crate::status::{CmdError, CmdResult, ExitStatus};

/// Reads the page, imports it, checks the spec it gives, and writes the
/// spec and the report.
pub fn run(args: &ImportArgs) -> CmdResult {
    let report_to_stdout =
        args.report == Some(ImportReportFormat::Json) && args.report_file.is_none();
    if report_to_stdout && is_stdout(args.output.as_deref()) {
        return Err(anyhow::anyhow!(
            "--report json needs --output (the spec then goes to the file and the report to standard output) or --report-file PATH"
        )
        .into());
    }
    let name = args.page.display().to_string();
    let bytes = std::fs::read(&args.page)
        .map_err(|e| CmdError::input(format!("cannot read {name}: {e}")))?;
    let source = source_from_bytes(&name, &bytes)?;
    let options = ImportOptions {
        system_name: args.system_name.clone(),
    };
    let imported = match import_markdown(&source, &options) {
        Ok(imported) => imported,
        Err(ImportError::NothingImported { file, report }) => {
            print_report_lines(&report);
            return Err(CmdError::input(format!(
                "{file}: {} rows and items read, none gave a flow; nothing was written",
                report.rows_read
            )));
        }
        Err(e) => return Err(e.into()),
    };
    print_report_lines(&imported.report);
    // The importer's output must be a valid spec: check it before writing.
    let spec_source: Arc<SourceFile> = SourceFile::new(
        args.output
            .as_deref()
            .map_or_else(|| "imported.yaml".to_owned(), |p| p.display().to_string()),
        imported.yaml.clone(),
    );
    if let Err(diagnostics) = portolan_spec::load_spec(spec_source) {
        super::print_diagnostics(&diagnostics);
        return Err(anyhow::anyhow!("internal error: the imported spec does not validate; nothing was written (please report this with the page)").into());
    }
    write_output(args.output.as_deref(), &imported.yaml)?;
    let json =
        serde_json::to_string_pretty(&imported.report).context("cannot serialise the report")?;
    if let Some(path) = &args.report_file {
        write_file(path, format!("{json}\n").as_bytes())?;
    } else if report_to_stdout {
        write_stdout(&format!("{json}\n"))?;
    }
    Ok(ExitStatus::Success)
}

fn is_stdout(output: Option<&std::path::Path>) -> bool {
    output.is_none_or(|p| p.as_os_str() == "-")
}

/// Warnings and skipped rows as `file:line: ...`, then a summary line.
#[allow(clippy::print_stderr)]
fn print_report_lines(report: &ImportReport) {
    for w in &report.warnings {
        eprintln!(
            "{}:{}: warning[{}]: {}",
            report.file, w.line, w.code, w.message
        );
    }
    for s in &report.rows_skipped {
        eprintln!(
            "{}:{}: skipped: {} ({})",
            report.file, s.line, s.reason, s.text
        );
    }
    eprintln!(
        "{}: {} rows and items read; {} flows imported; {} merged, {} skipped, {} warnings, {} guesses",
        report.file,
        report.rows_read,
        report.flows_imported,
        report.rows_merged.len(),
        report.rows_skipped.len(),
        report.warnings.len(),
        report.guesses.len()
    );
}
