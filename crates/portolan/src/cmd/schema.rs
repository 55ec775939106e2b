//! `portolan schema`.

use crate::cli::SchemaArgs;
use crate::output::write_output;

pub fn run(args: &SchemaArgs) -> anyhow::Result<u8> {
    let mut schema = if args.deployment {
        portolan_spec::deployment::deployment_schema()
    } else {
        portolan_spec::schema::spec_schema()
    };
    schema.push('\n');
    write_output(args.output.as_deref(), &schema)?;
    Ok(crate::EXIT_OK)
}
