//! The `portolan` command line: parses arguments, runs one subcommand, and
//! maps its outcome to the documented exit codes (docs/exit-codes.md).

mod cli;
mod cmd;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// Exit code: success (valid input, every check passed).
pub const EXIT_OK: u8 = 0;
/// Exit code: the input is invalid, or a check found a problem.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: usage error, missing privilege or tool, or an internal error.
pub const EXIT_INTERNAL: u8 = 2;

/// An error caused by the user's input (spec, deployment, page, flags): exit 1.
/// Everything else that goes wrong is exit 2.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = if error.downcast_ref::<InputError>().is_some() {
                EXIT_INVALID
            } else {
                EXIT_INTERNAL
            };
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(code)
        }
    }
}
