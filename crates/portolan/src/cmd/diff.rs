//! `portolan diff`: reads the two versions (and deployments), calls
//! `portolan-diff`, writes the change request and exits as diff(1) does.

use anyhow::anyhow;
use portolan_diff::render::{render, Format};
use portolan_diff::{compare_plans, spec_change_request, PlanVersion};
use portolan_firewall::{Options, TargetKind};
use std::path::Path;

use portolan_spec::deployment::Deployment;
use portolan_spec::plan::plan;
use portolan_spec::{Code, SourceFile, Spec};

use crate::cli::{DiffArgs, DiffFormat, DiffTarget, ModeArg};
use crate::output::write_output;
use crate::status::{CmdError, CmdResult, ExitStatus};

/// Whatever `-d` gives: one deployment for both versions, or one each.
const MAX_DEPLOYMENTS: usize = 2;

pub fn run(args: &DiffArgs) -> CmdResult {
    if args.deployment.len() > MAX_DEPLOYMENTS {
        return Err(anyhow!(
            "-d is given {} times; give it once (both versions) or twice (OLD's, then NEW's)",
            args.deployment.len()
        )
        .into());
    }
    if args.deployment.is_empty() && (args.target.is_some() || args.mode.is_some()) {
        return Err(anyhow!("--target and --mode choose the firewall commands, which need a deployment: add -d DEPLOYMENT").into());
    }
    // Both versions are read and checked before anything is written. A
    // parameter without a default compares as itself (`$port`), so the
    // spec's reminder to set it in a deployment is left out.
    let old = super::load_spec_for_deployment(&args.old)?;
    let new = super::load_spec_for_deployment(&args.new)?;
    let request = match args.deployment.as_slice() {
        [] => spec_change_request(&old, &new),
        [first, rest @ ..] => {
            let second = rest.first().unwrap_or(first);
            let mut printed = Vec::new();
            let old_deployment = load_deployment(first, &old, &mut printed)?;
            let new_deployment = load_deployment(second, &new, &mut printed)?;
            let old_plan = plan(&old, &old_deployment);
            let new_plan = plan(&new, &new_deployment);
            let target = match args.target.unwrap_or(DiffTarget::Nftables) {
                DiffTarget::Nftables => TargetKind::Nftables,
                DiffTarget::Iptables => TargetKind::Iptables,
            };
            let options = Options {
                mode: super::generate::mode_of(args.mode.unwrap_or(ModeArg::Standalone)),
                ..Options::default()
            };
            compare_plans(
                PlanVersion {
                    spec: &old,
                    deployment: &old_deployment.source,
                    plan: &old_plan,
                },
                PlanVersion {
                    spec: &new,
                    deployment: &new_deployment.source,
                    plan: &new_plan,
                },
                target,
                &options,
            )
            // The firewall's rules of a checked plan: exit 2 whatever the
            // generator's kind, as diff(1) exits 2 for trouble.
            .map_err(|e| CmdError::from(anyhow::Error::new(e)))?
        }
    };
    let format = match args.format {
        DiffFormat::Table => Format::Table,
        DiffFormat::Markdown => Format::Markdown,
        DiffFormat::Csv => Format::Csv,
        DiffFormat::Json => Format::Json,
    };
    write_output(args.output.as_deref(), &render(&request, format))?;
    Ok(ExitStatus::from_check(request.is_empty()))
}

/// Reads and checks a deployment against a spec, printing its diagnostics;
/// a warning already printed (the same file checked against the other
/// version) is not printed again.
fn load_deployment(
    path: &Path,
    spec: &Spec,
    printed: &mut Vec<(Code, String)>,
) -> Result<Deployment, CmdError> {
    let source = SourceFile::read(path)?;
    match portolan_spec::deployment::load_deployment(source, spec) {
        Ok(loaded) => {
            let mut warnings = loaded.warnings;
            warnings.items.retain(|d| {
                let key = (d.code, d.message.clone());
                let new = !printed.contains(&key);
                printed.push(key);
                new
            });
            super::print_diagnostics(&warnings);
            Ok(loaded.value)
        }
        Err(diagnostics) => {
            super::print_diagnostics(&diagnostics);
            let (errors, _) = diagnostics.counts();
            Err(CmdError::input(format!(
                "{}: {errors} error(s); nothing was written",
                path.display()
            )))
        }
    }
}
