//! The `portolan` command line: parses arguments, runs one subcommand, and
//! maps its outcome to the documented exit codes (docs/exit-codes.md).

mod cli;
mod cmd;
mod output;
mod status;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(status) => status.into(),
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {error}");
            }
            error.status().into()
        }
    }
}
