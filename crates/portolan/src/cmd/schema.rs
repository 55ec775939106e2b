//! `portolan schema`.

use crate::cli::SchemaArgs;
use crate::output::write_output;
use crate::status::{CmdResult, ExitStatus};

pub fn run(args: &SchemaArgs) -> CmdResult {
    let mut schema = if args.deployment {
        portolan_spec::deployment::deployment_schema()
    } else {
        portolan_spec::schema::spec_schema()
    };
    schema.push('\n');
    write_output(args.output.as_deref(), &schema)?;
    Ok(ExitStatus::Success)
}
