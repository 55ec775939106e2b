//! `portolan generate`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use portolan_firewall::{GenerateError, Options, Policy, TargetKind};
use portolan_spec::Diagnostics;

use crate::cli::{GenerateArgs, GenerateTarget, PolicyArg};
use crate::output::write_stdout;
use crate::{InputError, EXIT_OK};

#[allow(clippy::print_stderr)]
pub fn run(args: &GenerateArgs) -> anyhow::Result<u8> {
    let spec = super::load_spec_for_deployment(&args.spec)?;
    let deployment = super::plan::load_deployment_or_report(&args.deployment, &spec)?;
    let plan = portolan_spec::plan::plan(&spec, &deployment);
    let kind = match args.target {
        GenerateTarget::Nftables => TargetKind::Nftables,
        GenerateTarget::Iptables => TargetKind::Iptables,
        GenerateTarget::Kubernetes => TargetKind::Kubernetes,
        GenerateTarget::Cilium => TargetKind::Cilium,
        GenerateTarget::Aws => TargetKind::Aws,
    };
    let options = Options {
        component: args.component.clone(),
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
            return Err(InputError(format!(
                "the {target} target cannot serve {}; nothing was written",
                args.deployment.display()
            ))
            .into());
        }
        Err(e @ GenerateError::Internal { .. }) => return Err(e.into()),
    };
    for warning in &generated.warnings {
        eprintln!("{warning}");
    }
    if args.strict && !generated.warnings.is_empty() {
        return Err(InputError(format!(
            "--strict: {} flow(s) cannot be expressed by the {kind} target; nothing was written",
            generated.warnings.len()
        ))
        .into());
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
            files => bail!(
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
            ),
        },
    }
    Ok(EXIT_OK)
}

/// Writes every file into `dir`, all or nothing: the files are written into
/// a temporary directory beside `dir`, then moved into place; if a move
/// fails, the files already moved are taken back and the ones they replaced
/// restored.
fn write_dir_atomic(dir: &Path, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.exists() && !dir.is_dir() {
        bail!("{} exists and is not a directory", dir.display());
    }
    let staging = tempfile::Builder::new()
        .prefix(".portolan-generate-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    for (name, text) in files {
        if name.components().count() != 1 {
            bail!(
                "internal error: generated file name {} is not a plain name",
                name.display()
            );
        }
        let path = staging.path().join(name);
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !dir.exists() {
        // One rename: the directory appears with every file, or not at all.
        let staged = staging.keep();
        return std::fs::rename(&staged, dir).or_else(|e| {
            let _ = std::fs::remove_dir_all(&staged);
            Err(e).with_context(|| format!("cannot create {}", dir.display()))
        });
    }
    let backup = staging.path().join(".replaced");
    std::fs::create_dir(&backup).context("cannot create a backup directory")?;
    let mut moved: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for (name, _) in files {
        let target = dir.join(name);
        let result = (|| -> std::io::Result<Option<PathBuf>> {
            let saved = if target.exists() {
                let saved = backup.join(name);
                std::fs::rename(&target, &saved)?;
                Some(saved)
            } else {
                None
            };
            if let Err(e) = std::fs::rename(staging.path().join(name), &target) {
                if let Some(saved) = &saved {
                    let _ = std::fs::rename(saved, &target);
                }
                return Err(e);
            }
            Ok(saved)
        })();
        match result {
            Ok(saved) => moved.push((target, saved)),
            Err(e) => {
                for (target, saved) in moved.into_iter().rev() {
                    let _ = std::fs::remove_file(&target);
                    if let Some(saved) = saved {
                        let _ = std::fs::rename(saved, &target);
                    }
                }
                return Err(e).with_context(|| format!("cannot write {}", target.display()));
            }
        }
    }
    Ok(())
}
