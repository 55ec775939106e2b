//! `portolan completions`.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::status::{CmdResult, ExitStatus};

pub fn run(args: &CompletionsArgs) -> CmdResult {
    let mut buffer = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "portolan", &mut buffer);
    crate::output::write_stdout(&String::from_utf8_lossy(&buffer))?;
    Ok(ExitStatus::Success)
}
