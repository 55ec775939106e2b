//! `portolan verify`: the plan's flows against the firewall already in place.

use anyhow::anyhow;
use portolan_spec::ErrorKind;
use portolan_verify::host::HostRuleset;
use portolan_verify::kubernetes::Manifests;
use portolan_verify::{
    aws, host, kubernetes, read_text, render, InputKind, Verification, VerifyError,
};

use crate::cli::{VerifyArgs, VerifyFormat};
use crate::output::write_output;
use crate::status::{CmdError, CmdResult, ExitStatus};

pub fn run(args: &VerifyArgs) -> CmdResult {
    if args.kubernetes.is_empty()
        && args.aws.is_empty()
        && args.nftables.is_empty()
        && args.iptables.is_empty()
    {
        return Err(anyhow!("nothing to verify: give --nftables HOST=FILE, --iptables HOST=FILE, --kubernetes FILE… or --aws FILE").into());
    }
    for value in args.nftables.iter().chain(&args.iptables) {
        if !value.contains('=') {
            return Err(anyhow!("`{value}`: give a host ruleset as HOST=FILE").into());
        }
    }
    let spec = super::load_spec_for_deployment(&args.spec)?;
    let deployment = super::plan::load_deployment_or_report(&args.deployment, &spec)?;
    let plan = portolan_spec::plan::plan(&spec, &deployment);
    let verification = verify(&plan, args).map_err(|e| match e.kind() {
        ErrorKind::Input => CmdError::input(format!("{e}\nnothing was written")),
        _ => CmdError::from(e),
    })?;
    let text = match args.format {
        VerifyFormat::Table => render::table(&verification),
        VerifyFormat::Json => render::json(&verification),
        VerifyFormat::Junit => render::junit(&verification, args.strict)?,
        VerifyFormat::Markdown => render::markdown_page(&verification),
        VerifyFormat::Html => render::html_page(&verification),
    };
    write_output(args.output.as_deref(), &text)?;
    Ok(ExitStatus::from_check(verification.passes(args.strict)))
}

fn verify(
    plan: &portolan_spec::plan::Plan,
    args: &VerifyArgs,
) -> Result<Verification, VerifyError> {
    let mut verification = portolan_verify::verification(plan);
    // Every input is read and checked before the first twin is built.
    let mut rulesets = Vec::new();
    for (kind, values) in [
        (InputKind::Nftables, &args.nftables),
        (InputKind::Iptables, &args.iptables),
    ] {
        for value in values {
            let (host, file) = value.split_once('=').unwrap_or((value, ""));
            let path = std::path::Path::new(file);
            rulesets.push(HostRuleset::read(kind, host, file, read_text(path)?, plan)?);
        }
    }
    if !args.kubernetes.is_empty() {
        let mut manifests = Manifests::default();
        let mut names = Vec::new();
        for path in &args.kubernetes {
            let name = path.display().to_string();
            manifests.read(&name, &read_text(path)?)?;
            names.push(name);
        }
        verification
            .sections
            .push(kubernetes::verify(plan, &manifests, &names.join(", "))?);
    }
    let mut groups = Vec::new();
    for path in &args.aws {
        groups.push(aws::Groups::read(
            &path.display().to_string(),
            &read_text(path)?,
        )?);
    }
    for g in &groups {
        verification.sections.push(aws::verify(plan, g)?);
    }
    if !rulesets.is_empty() {
        verification.sections.extend(host::verify(plan, &rulesets)?);
    }
    Ok(verification)
}
