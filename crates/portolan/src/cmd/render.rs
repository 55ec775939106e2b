//! `portolan render`.

use crate::cli::{RenderArgs, RenderFormat};
use crate::output::write_output;

pub fn run(args: &RenderArgs) -> anyhow::Result<u8> {
    let spec = super::load_spec_or_report(&args.spec)?;
    let text = match args.format {
        RenderFormat::Json => {
            let mut json = serde_json::to_string_pretty(&spec)?;
            json.push('\n');
            json
        }
        other => anyhow::bail!("render format {other:?} is not built yet"),
    };
    write_output(args.output.as_deref(), &text)?;
    Ok(crate::EXIT_OK)
}
