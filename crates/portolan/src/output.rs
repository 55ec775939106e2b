//! Writing results: to standard output, or to a file or a directory of
//! files that appears whole or not at all (written beside its destination,
//! then renamed into place). Every command writes its files through here.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Writes `text` to `path` atomically, or to standard output when `path` is `None` or `-`.
pub fn write_output(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        None => write_stdout(text),
        Some(p) if p.as_os_str() == "-" => write_stdout(text),
        Some(p) => write_file_atomic(p, text.as_bytes()),
    }
}

/// Writes to standard output, treating a closed pipe (`| head`) as success.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to standard output"),
    }
}

/// Writes a file through a temporary sibling and a rename, so that readers
/// never see a partial file and a failure leaves nothing behind.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    // A temporary file is private (0600), and the rename would hand that
    // mode to the result: a rendered page or a report nobody else can read.
    // Give it the mode a plain write gives: an existing file keeps its own,
    // a new one gets 0666 less the umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o666, |m| m.permissions().mode() & 0o7777);
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // On disk before the rename makes it visible: after a crash the file is
    // the old one or the whole new one, never an empty one.
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes every file into `dir`, all or nothing: the files are written into
/// a temporary directory beside `dir`, then moved into place; if a move
/// fails, the files already moved are taken back and the ones they replaced
/// restored.
pub fn write_dir_atomic(dir: &Path, files: &[(PathBuf, String)]) -> anyhow::Result<()> {
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
