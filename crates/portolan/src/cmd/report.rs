//! `portolan report`: many hosts' results as one connection matrix.

use portolan_preflight::{merge, read_results, sha256_hex, ResultsInput};
use portolan_render::results::{results_html, results_markdown, CellStatus};
use portolan_spec::SourceFile;

use crate::cli::{ReportArgs, ReportFormat};
use crate::output::write_output;
use crate::status::{CmdError, CmdResult, ExitStatus};

pub fn run(args: &ReportArgs) -> CmdResult {
    let expected = match &args.spec {
        Some(path) => {
            let source = SourceFile::read(path)?;
            Some((
                path.display().to_string(),
                sha256_hex(source.text.as_bytes()),
            ))
        }
        None => None,
    };
    let mut inputs = Vec::with_capacity(args.results.len());
    for path in &args.results {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CmdError::input(format!("cannot read {file}: {e}")))?;
        let results = read_results(&file, &text)?;
        inputs.push(ResultsInput { file, results });
    }
    let matrix = merge(
        &inputs,
        expected.as_ref().map(|(f, sha)| (f.as_str(), sha.as_str())),
    )
    .map_err(|e| CmdError::input(format!("{e}; nothing was written")))?;
    let text = match args.format {
        ReportFormat::Markdown => results_markdown(&matrix),
        ReportFormat::Html => results_html(&matrix),
    };
    write_output(args.output.as_deref(), &text)?;
    // A required flow failed on some host: the answer is "no", as for check.
    let failed = matrix
        .cells
        .iter()
        .any(|cell| cell.status() == CellStatus::Fail);
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
