//! `portolan apply`: thin over `portolan_apply`.

use portolan_apply::{ApplyError, Backend, Outcome, Request, Settings, SshSession};

use crate::cli::{ApplyArgs, ApplyTarget};
use crate::{InputError, EXIT_INVALID, EXIT_OK};

#[allow(clippy::print_stderr)]
fn say(line: &str) {
    eprintln!("apply: {line}");
}

pub fn run(args: &ApplyArgs) -> anyhow::Result<u8> {
    if args.guard {
        portolan_apply::run_guard(&args.state_dir)?;
        return Ok(EXIT_OK);
    }
    if args.confirm {
        return match portolan_apply::confirm(&args.state_dir, &mut |l| say(l)) {
            Ok(_) => Ok(EXIT_OK),
            Err(e @ ApplyError::NothingToConfirm(_)) => Err(InputError(e.to_string()).into()),
            Err(e) => Err(e.into()),
        };
    }
    let (Some(spec), Some(deployment), Some(component)) =
        (&args.spec, &args.deployment, &args.component)
    else {
        anyhow::bail!("apply needs SPEC, -d DEPLOYMENT and --as COMPONENT (or --confirm)");
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
    let prepared = match portolan_apply::prepare(&plan, &request) {
        Ok(p) => p,
        Err(e @ (ApplyError::Lockout { .. } | ApplyError::Render(_))) => {
            return Err(InputError(format!("{e}; nothing was changed")).into())
        }
        Err(e) => return Err(e.into()),
    };
    let settings = Settings {
        state_dir: args.state_dir.clone(),
        confirm_within: args.confirm_within,
        guard_command: vec![
            std::env::current_exe()?.into_os_string(),
            "apply".into(),
            "--guard".into(),
            "--state-dir".into(),
            args.state_dir.clone().into_os_string(),
        ],
    };
    let applied = match portolan_apply::apply(&prepared, &settings, &mut |l| say(l)) {
        Ok(a) => a,
        Err(e @ ApplyError::Rejected { .. }) => return Err(InputError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    say(&format!(
        "confirm within {} s from another session: portolan apply --confirm --state-dir {}",
        args.confirm_within.as_secs(),
        args.state_dir.display()
    ));
    match portolan_apply::wait(&args.state_dir, &applied.journal.id)? {
        Outcome::Confirmed => {
            say("confirmed: the new rules stay");
            Ok(EXIT_OK)
        }
        Outcome::RolledBack => {
            say("not confirmed in time: the saved ruleset was restored (see apply.log)");
            Ok(EXIT_INVALID)
        }
    }
}
