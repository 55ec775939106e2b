//! `portolan generate`.

use anyhow::anyhow;
use portolan_firewall::{GenerateError, Mode, Options, Policy, TargetKind};
use portolan_spec::diag::did_you_mean;
use portolan_spec::plan::Plan;
use portolan_spec::Diagnostics;

use crate::cli::{GenerateArgs, GenerateTarget, ModeArg, PolicyArg};
use crate::output::{write_dir_atomic, write_stdout};
use crate::status::{CmdError, CmdResult, ExitStatus};

#[allow(clippy::print_stderr)]
pub fn run(args: &GenerateArgs) -> CmdResult {
    let spec = super::load_spec_for_deployment(&args.spec)?;
    let deployment = super::plan::load_deployment_or_report(&args.deployment, &spec)?;
    let plan = portolan_spec::plan::plan(&spec, &deployment);
    if let Some(id) = &args.component {
        check_component(&plan, id)?;
    }
    let kind = match args.target {
        GenerateTarget::Nftables => TargetKind::Nftables,
        GenerateTarget::Iptables => TargetKind::Iptables,
        GenerateTarget::Kubernetes => TargetKind::Kubernetes,
        GenerateTarget::Cilium => TargetKind::Cilium,
        GenerateTarget::Aws => TargetKind::Aws,
    };
    let mode = mode_of(args.mode);
    if mode != Mode::Standalone && !matches!(kind, TargetKind::Nftables | TargetKind::Iptables) {
        return Err(anyhow!(
            "--mode {} is for the nftables and iptables targets; {kind} has one form",
            mode.as_str()
        )
        .into());
    }
    if mode != Mode::Standalone && args.policy != PolicyArg::Drop {
        return Err(anyhow!(
            "--policy is for --mode standalone; --mode {} has no policy of its own",
            mode.as_str()
        )
        .into());
    }
    let options = Options {
        component: args.component.clone(),
        mode,
        policy: match args.policy {
            PolicyArg::Drop => Policy::Drop,
            PolicyArg::Accept => Policy::Accept,
        },
        resolver: args.resolve.then(portolan_firewall::system_resolver),
    };
    let generated = match kind.target().generate(&plan, &options) {
        Ok(g) => g,
        Err(GenerateError::CannotServe {
            target,
            diagnostics,
        }) => {
            super::print_diagnostics(&Diagnostics {
                source: deployment.source.clone(),
                items: diagnostics,
            });
            return Err(CmdError::input(format!(
                "the {target} target cannot serve {}; nothing was written",
                args.deployment.display()
            )));
        }
        Err(e @ GenerateError::Internal { .. }) => return Err(e.into()),
    };
    for warning in &generated.warnings {
        eprintln!("{warning}");
    }
    if args.strict && !generated.warnings.is_empty() {
        return Err(CmdError::input(format!(
            "--strict: {} flow(s) cannot be expressed by the {kind} target; nothing was written",
            generated.warnings.len()
        )));
    }
    let left_out = plan.left_out.len();
    // `-o -` means standard output, as it does for every other command.
    match args.output.as_deref().filter(|dir| dir.as_os_str() != "-") {
        Some(dir) => {
            write_dir_atomic(dir, &generated.files)?;
            eprintln!(
                "{}: wrote {} file(s), {} warning(s); {left_out} flow(s) of the spec are not in this deployment (see `portolan plan`)",
                dir.display(),
                generated.files.len(),
                generated.warnings.len()
            );
        }
        None => match generated.files.as_slice() {
            [(_, text)] => write_stdout(text)?,
            files if kind.concatenates() => write_stdout(
                &files
                    .iter()
                    .map(|(_, text)| text.as_str())
                    .collect::<String>(),
            )?,
            files => return Err(anyhow!(
                "the {kind} target produced {} files ({}); give -o DIR, or --component to pick one component{}",
                files.len(),
                files
                    .iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if kind == TargetKind::Iptables {
                    " (iptables writes an IPv4 and an IPv6 file, so it always needs -o)"
                } else {
                    ""
                }
            )
            .into()),
        },
    }
    Ok(ExitStatus::Success)
}

/// A `--component` that names nothing is a mistyped flag, said as `listen`
/// and `check` say it of `--as`, not a deployment the target cannot serve.
/// Host names count too: the host firewall targets pick a host by name.
pub fn check_component(plan: &Plan, id: &str) -> Result<(), CmdError> {
    if plan.component(id).is_some() || plan.host(id).is_some() {
        return Ok(());
    }
    let ids = plan.components.iter().map(|c| c.id.as_str());
    let hint = match did_you_mean(id, ids.clone()) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => format!(" (components: {})", ids.collect::<Vec<_>>().join(", ")),
    };
    Err(CmdError::input(format!(
        "`{id}` is not a component of the spec{hint}"
    )))
}

/// The firewall crate's mode for `--mode`.
pub fn mode_of(arg: ModeArg) -> Mode {
    match arg {
        ModeArg::Standalone => Mode::Standalone,
        ModeArg::Chain => Mode::Chain,
        ModeArg::Audit => Mode::Audit,
    }
}
