//! `portolan verify`: the plan's flows against the firewall already in place.

use anyhow::anyhow;
use portolan_spec::ErrorKind;
use portolan_verify::host::HostRuleset;
use portolan_verify::kubernetes::Manifests;
use portolan_verify::{
    aws, host, kubernetes, read_text, render, Hint, InputKind, Verification, VerifyError,
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
        ErrorKind::Input => CmdError::input(format!("{}\nnothing was written", in_our_words(e))),
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

/// The error with its hint in our words: the library says which kind of
/// input a file is or should be; the flag that gives it is ours to name.
fn in_our_words(error: VerifyError) -> VerifyError {
    let flag = |input: InputKind| match input {
        InputKind::Kubernetes => "--kubernetes",
        InputKind::Aws => "--aws",
        InputKind::Nftables => "--nftables",
        InputKind::Iptables => "--iptables",
    };
    match error {
        VerifyError::Input {
            code,
            at,
            message,
            hint: Some(hint),
        } => {
            let hint = match *hint {
                Hint::Holds { input, what } => Hint::Text(format!("{} takes {what}", flag(input))),
                Hint::GiveAs { input, host, file } => {
                    Hint::Text(format!("give it as {} {host}={file}", flag(input)))
                }
                other => other,
            };
            VerifyError::Input {
                code,
                at,
                message,
                hint: Some(Box::new(hint)),
            }
        }
        other => other,
    }
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
