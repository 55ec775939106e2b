//! `portolan apply`: thin over `portolan_apply`.

use portolan_apply::{ApplyError, Backend, Outcome, Request, Settings, SshSession};

use crate::cli::{ApplyArgs, ApplyTarget};
use crate::status::{CmdError, CmdResult, ExitStatus};

#[allow(clippy::print_stderr)]
fn say(line: &str) {
    eprintln!("apply: {line}");
}

pub fn run(args: &ApplyArgs) -> CmdResult {
    if args.guard {
        portolan_apply::run_guard(&args.state_dir)?;
        return Ok(ExitStatus::Success);
    }
    if args.confirm {
        portolan_apply::confirm(&args.state_dir, &mut |l| say(l))?;
        return Ok(ExitStatus::Success);
    }
    let (Some(spec), Some(deployment), Some(component)) =
        (&args.spec, &args.deployment, &args.component)
    else {
        return Err(anyhow::anyhow!(
            "apply needs SPEC, -d DEPLOYMENT and --as COMPONENT (or --confirm)"
        )
        .into());
    };
    let spec = super::load_spec_for_deployment(spec)?;
    let deployment = super::plan::load_deployment_or_report(deployment, &spec)?;
    let plan = portolan_spec::plan::plan(&spec, &deployment);
    super::generate::check_component(&plan, component)?;
    let ssh = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| SshSession::parse(&v));
    let request = Request {
        component: component.clone(),
        backend: match args.target {
            ApplyTarget::Nftables => Backend::Nftables,
            ApplyTarget::Iptables => Backend::Iptables,
        },
        mode: super::generate::mode_of(args.mode),
        ssh,
        force: args.force,
    };
    let mut prepared = match portolan_apply::prepare(&plan, &request) {
        Ok(p) => p,
        // The library says what is wrong; the flag is ours to name.
        Err(e @ ApplyError::Lockout { .. }) => {
            return Err(CmdError::input(format!(
                "{e} or use --force; nothing was changed"
            )))
        }
        Err(e @ ApplyError::Render(_)) => {
            return Err(CmdError::input(format!("{e}; nothing was changed")))
        }
        Err(e) => return Err(e.into()),
    };
    if prepared.forced {
        prepared.ssh_check.push_str(" (--force)");
    }
    let settings = Settings {
        state_dir: args.state_dir.clone(),
        confirm_within: args.confirm_within,
        guard_command: vec![
            std::env::current_exe()
                .map_err(anyhow::Error::from)?
                .into_os_string(),
            "apply".into(),
            "--guard".into(),
            "--state-dir".into(),
            args.state_dir.clone().into_os_string(),
        ],
    };
    let applied = portolan_apply::apply(&prepared, &settings, &mut |l| say(l))?;
    say(&format!(
        "confirm within {} s from another session: portolan apply --confirm --state-dir {}",
        args.confirm_within.as_secs(),
        args.state_dir.display()
    ));
    match portolan_apply::wait(&args.state_dir, &applied.journal.id)? {
        Outcome::Confirmed => {
            say("confirmed: the new rules stay");
            Ok(ExitStatus::Success)
        }
        Outcome::RolledBack => {
            say("not confirmed in time: the saved ruleset was restored (see apply.log)");
            Ok(ExitStatus::Failure)
        }
    }
}
