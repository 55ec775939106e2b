//! Writing results: to standard output, or to a file or a directory of
//! files. Every command writes its files through here.
//!
//! What is at an output path decides how it is written (the convention of
//! `sort -o`, with atomic replacement added for regular files):
//! - nothing, or a regular file: written beside it and renamed into place,
//!   so it appears whole or not at all;
//! - `-`: standard output;
//! - a character device (`/dev/null`, a terminal) or a FIFO: written straight
//!   through, never replaced;
//! - a symlink: followed and never replaced; its target is written by these
//!   same rules (`/dev/stdout`, a link to a file of another directory);
//! - a directory, a symlink to nothing, a socket or a block device: refused
//!   (exit 1), nothing written.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::status::CmdError;

/// Writes `text` to `path` (see the module documentation for what each kind
/// of path gets), or to standard output when `path` is `None` or `-`.
pub fn write_output(path: Option<&Path>, text: &str) -> Result<(), CmdError> {
    match path {
        None => write_stdout(text),
        Some(p) => write_file(p, text.as_bytes()),
    }
}

/// Writes to standard output, treating a closed pipe (`| head`) as success.
pub fn write_stdout(text: &str) -> Result<(), CmdError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("cannot write to standard output")?),
    }
}

/// How an output path is written.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A new path or a regular file (the path given, or a symlink's target):
    /// replaced atomically.
    Replace(PathBuf),
    /// A character device or a FIFO: opened and written through.
    Stream,
}

/// What is at `path`, and so how it is written; refusals are exit 1.
fn target(path: &Path) -> Result<Target, CmdError> {
    let shown = path.display();
    let link = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Target::Replace(path.to_path_buf()))
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot write {shown}"))
                .into())
        }
    };
    let is_link = link.file_type().is_symlink();
    // Follows every link, `/proc/self/fd/N` included.
    let meta = if is_link {
        match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CmdError::input(format!(
                    "{shown} is a symlink to a file that does not exist; \
                     nothing was written (give the target's path to create it)"
                )))
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot write {shown}"))
                    .into())
            }
        }
    } else {
        link
    };
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_file() {
        if !is_link {
            return Ok(Target::Replace(path.to_path_buf()));
        }
        // The link stays; the file it leads to is the one replaced.
        let resolved =
            std::fs::canonicalize(path).with_context(|| format!("cannot write {shown}"))?;
        return Ok(Target::Replace(resolved));
    }
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(Target::Stream);
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    let via = if is_link { " (through a symlink)" } else { "" };
    Err(CmdError::input(format!(
        "{shown} is {what}{via}: an output must be a file, a character device, a FIFO or `-`; nothing was written"
    )))
}

/// Writes `bytes` to `path` by the rules of the module documentation:
/// standard output for `-`, straight through to a character device or FIFO,
/// atomically to a new path or a regular file (through a symlink, its target),
/// and refusing anything else.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CmdError> {
    if path.as_os_str() == "-" {
        return write_stdout(&String::from_utf8_lossy(bytes));
    }
    match target(path)? {
        Target::Replace(file) => write_file_atomic(&file, path, bytes),
        Target::Stream => {
            let written = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|mut stream| stream.write_all(bytes).and_then(|()| stream.flush()));
            match written {
                // The reader went away, as with `| head`.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other.with_context(|| format!("cannot write {}", path.display()))?),
            }
        }
    }
}

/// Writes a file through a temporary sibling and a rename, so that readers
/// never see a partial file and a failure leaves nothing behind. `shown` is
/// the path the user gave, named in errors.
fn write_file_atomic(path: &Path, shown: &Path, bytes: &[u8]) -> Result<(), CmdError> {
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
    let cannot = || format!("cannot write {}", shown.display());
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| plain_io(e, dir))
        .with_context(cannot)?;
    tmp.as_file_mut().write_all(bytes).with_context(cannot)?;
    // On disk before the rename makes it visible: after a crash the file is
    // the old one or the whole new one, never an empty one.
    tmp.as_file().sync_all().with_context(cannot)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(cannot)?;
    Ok(())
}

/// An I/O error said about the directory the user gave, in plain words for
/// the usual reasons (a read-only mount, no permission, a missing
/// directory), and never naming the temporary path it happened on.
fn plain_io(error: std::io::Error, dir: &Path) -> anyhow::Error {
    use std::io::ErrorKind;
    let shown = dir.display();
    let reason = match error.kind() {
        ErrorKind::ReadOnlyFilesystem => "is on a read-only file system".to_owned(),
        ErrorKind::PermissionDenied => "is not writable by this user".to_owned(),
        ErrorKind::NotFound => "does not exist".to_owned(),
        ErrorKind::NotADirectory => "is not a directory".to_owned(),
        // tempfile adds its temporary path to the errors it wraps: say the
        // error itself, about the user's directory.
        kind => match error.raw_os_error() {
            Some(code) => format!(
                "cannot be written: {}",
                std::io::Error::from_raw_os_error(code)
            ),
            None => format!("cannot be written: {kind}"),
        },
    };
    anyhow::anyhow!("{shown} {reason}")
}

/// Writes every file into `dir`, all or nothing, creating `dir` and its
/// missing parents as needed. A new directory is built beside its
/// destination and renamed into place. Into an existing one, the files are
/// written into a temporary directory inside it (the same file system, so
/// the moves cannot fail across mounts), then moved into place; if a move
/// fails, the files already moved are taken back and the ones they replaced
/// restored. A file of the same name that is not a regular file (a symlink,
/// a FIFO, a directory) is refused before anything is written.
pub fn write_dir_atomic(dir: &Path, files: &[(PathBuf, String)]) -> Result<(), CmdError> {
    for (name, _) in files {
        if name.components().count() != 1 {
            return Err(anyhow::anyhow!(
                "internal error: generated file name {} is not a plain name",
                name.display()
            )
            .into());
        }
    }
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => write_into_existing(dir, files),
        Ok(_) => Err(CmdError::input(format!(
            "{} exists and is not a directory; nothing was written",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_new_dir(dir, files),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("cannot write {}", dir.display()))
            .into()),
    }
}

/// Writes `files` into `staging`; errors name them as files of `shown`.
fn stage(staging: &Path, shown: &Path, files: &[(PathBuf, String)]) -> Result<(), CmdError> {
    for (name, text) in files {
        let written = std::fs::File::create(staging.join(name)).and_then(|mut file| {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
        });
        written.with_context(|| format!("cannot write {}", shown.join(name).display()))?;
    }
    Ok(())
}

fn write_new_dir(dir: &Path, files: &[(PathBuf, String)]) -> Result<(), CmdError> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cannot = || format!("cannot create {}", dir.display());
    std::fs::create_dir_all(&parent)
        .map_err(|e| plain_io(e, &parent))
        .with_context(cannot)?;
    let staging = tempfile::Builder::new()
        .prefix(".portolan-generate-")
        .tempdir_in(&parent)
        .map_err(|e| plain_io(e, &parent))
        .with_context(cannot)?;
    stage(staging.path(), dir, files)?;
    // One rename: the directory appears with every file, or not at all.
    let staged = staging.keep();
    std::fs::rename(&staged, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        anyhow::Error::new(e).context(cannot()).into()
    })
}

fn write_into_existing(dir: &Path, files: &[(PathBuf, String)]) -> Result<(), CmdError> {
    for (name, _) in files {
        let target = dir.join(name);
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(CmdError::input(format!(
                    "{} exists and is not a regular file (a symlink, directory, FIFO or device is never replaced); nothing was written",
                    target.display()
                )));
            }
            _ => {}
        }
    }
    let staging = tempfile::Builder::new()
        .prefix(".portolan-generate-")
        .tempdir_in(dir)
        .map_err(|e| plain_io(e, dir))
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    stage(staging.path(), dir, files)?;
    let backup = staging.path().join(".replaced");
    std::fs::create_dir(&backup).with_context(|| format!("cannot write into {}", dir.display()))?;
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
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot write {}", target.display()))
                    .into());
            }
        }
    }
    Ok(())
}
