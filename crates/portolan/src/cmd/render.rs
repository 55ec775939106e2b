//! `portolan render`.

use portolan_render::Format;

use crate::cli::{RenderArgs, RenderFormat};
use crate::output::write_output;
use crate::status::{CmdResult, ExitStatus};

/// Reads and checks the spec, renders it, and writes the result whole.
pub fn run(args: &RenderArgs) -> CmdResult {
    if let Some(deployment) = &args.deployment {
        if args.format != RenderFormat::Tables {
            return Err(anyhow::anyhow!(
                "-d/--deployment is for --format tables (operator tables)"
            )
            .into());
        }
        let spec = super::load_spec_for_deployment(&args.spec)?;
        let deployment = super::plan::load_deployment_or_report(deployment, &spec)?;
        let plan = portolan_spec::plan::plan(&spec, &deployment);
        let text = portolan_render::render_operator_tables(&plan);
        write_output(args.output.as_deref(), &text)?;
        return Ok(ExitStatus::Success);
    }
    let spec = super::load_spec_or_report(&args.spec)?;
    let text = portolan_render::render(&spec, format(args.format))?;
    write_output(args.output.as_deref(), &text)?;
    Ok(ExitStatus::Success)
}

/// The library's format for the command-line choice.
fn format(format: RenderFormat) -> Format {
    match format {
        RenderFormat::Matrix => Format::Matrix,
        RenderFormat::Tables => Format::Tables,
        RenderFormat::Mermaid => Format::Mermaid,
        RenderFormat::Dot => Format::Dot,
        RenderFormat::Json => Format::Json,
    }
}
