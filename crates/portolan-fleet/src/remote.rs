//! What runs on a host, over the multiplexed SSH connection.
//!
//! Every remote process is tied to its SSH channel: a small `sh` wrapper
//! starts it in the background and waits on its own standard input; when
//! the channel closes (the preflight stops it, is interrupted, or the
//! connection is lost), `cat` sees the end of input and the wrapper stops
//! the process. The *keeper* channel owns the host's private directory the
//! same way: it creates it (`mktemp -d`, mode 0700) and removes it when its
//! channel closes, unless the files are to be kept.

use std::sync::Arc;
use std::time::Duration;

use openssh::{ChildStdin, ChildStdout, Session, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};

use crate::ssh::error_text;

/// Owns the private directory: prints what it found, waits for the end of
/// its input, then removes the directory (unless `$1` is `keep`).
const KEEPER: &str = r#"umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/portolan-preflight.XXXXXXXX") || exit 1
echo "dir $d"
echo "uid $(id -u)"
echo "system $(uname -sm)"
p=$(command -v portolan 2>/dev/null) && echo "installed $(sha256sum "$p" 2>/dev/null)"
echo "end"
cat >/dev/null
if [ "$1" = keep ]; then echo "kept $d"; else rm -rf -- "$d" && echo "removed $d"; fi
"#;

/// Writes standard input to `$1` with mode `$2` and prints its SHA-256.
const UPLOAD: &str = r#"umask 077
cat > "$1" && chmod "$2" "$1" && sha256sum "$1""#;

/// Runs `"$@"` (standard error merged for listeners when `$1` is `merge`)
/// until it ends or this channel's input ends, then prints its status.
///
/// The channel's input goes to the watcher through descriptor 3: a
/// background list's own standard input is /dev/null in `sh`.
const WRAPPER: &str = r#"merge=$1; shift
exec 3<&0
if [ "$merge" = merge ]; then "$@" </dev/null 2>&1 3<&- & else "$@" </dev/null 3<&- & fi
pid=$!
{ cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null; } >/dev/null 2>&1 &
exec 3<&-
wait "$pid"; status=$?
echo "portolan-exit $status"
"#;

/// A host logged in to, with its private directory.
pub struct Remote {
    session: Arc<Session>,
    keeper: Option<Channel>,
    /// The private directory.
    pub dir: String,
    /// The login's user id.
    pub uid: String,
    /// `uname -sm`.
    pub system: String,
    /// An installed `portolan` on the PATH: (sha256, path).
    pub installed: Option<(String, String)>,
    /// Whether commands that bind or probe run through `sudo -n`.
    pub sudo: bool,
}

/// A remote process and its channel.
pub struct Channel {
    child: openssh::Child<Arc<Session>>,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Channel {
    async fn spawn(session: &Arc<Session>, program: &str, args: &[&str]) -> Result<Self, String> {
        let mut command = Session::to_command(Arc::clone(session), program.to_owned());
        command
            .args(args.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().await.map_err(|e| error_text(&e))?;
        let stdin = child.stdin().take();
        let stdout = child
            .stdout()
            .take()
            .ok_or_else(|| "no standard output from the remote command".to_owned())?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next line, or `None` at the end of output (or on an error).
    pub async fn next_line(&mut self) -> Option<String> {
        self.lines.next_line().await.ok().flatten()
    }

    /// Closes the channel's input (the wrapper then stops its process),
    /// reads the rest of the output for at most `limit`, and waits for it.
    pub async fn finish(mut self, limit: Duration) -> (Vec<String>, Option<i32>) {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        let read = async {
            while let Some(line) = self.next_line().await {
                rest.push(line);
            }
        };
        if tokio::time::timeout(limit, read).await.is_err() {
            rest.push(format!("(no end of output within {} s)", limit.as_secs()));
            return (rest, None);
        }
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|s| s.code());
        (rest, status)
    }
}

/// What a listener did before it was ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// It printed `ready:`.
    Ready,
    /// It ended first, with this status.
    Exited(Option<i32>),
    /// Neither within the time allowed, or the channel broke.
    Silent(String),
}

/// A `portolan listen` running on a host.
pub struct ListenerProcess {
    channel: Channel,
    /// Every line it printed so far.
    pub lines: Vec<String>,
}

impl ListenerProcess {
    /// Reads until `ready:`, the end of the process, or `limit`.
    pub async fn wait_ready(&mut self, limit: Duration) -> Readiness {
        let read = async {
            loop {
                let Some(line) = self.channel.next_line().await else {
                    return Readiness::Silent("the connection closed".to_owned());
                };
                if let Some(code) = line.strip_prefix("portolan-exit ") {
                    return Readiness::Exited(code.trim().parse().ok());
                }
                let ready = line.starts_with("ready:");
                self.lines.push(line);
                if ready {
                    return Readiness::Ready;
                }
            }
        };
        match tokio::time::timeout(limit, read).await {
            Ok(r) => r,
            Err(_) => Readiness::Silent(format!("no `ready:` within {} s", limit.as_secs())),
        }
    }

    /// Stops it and returns its last lines (`stopped: …`).
    pub async fn stop(self, limit: Duration) -> Vec<String> {
        let (lines, _) = self.channel.finish(limit).await;
        lines
            .into_iter()
            .filter(|l| !l.starts_with("portolan-exit "))
            .collect()
    }
}

/// What `portolan check` printed.
#[derive(Debug, Clone)]
pub struct CheckOutput {
    /// Its standard output (the results JSON).
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: String,
    /// Its exit status.
    pub status: Option<i32>,
}

impl Remote {
    /// Opens the keeper channel: makes the private directory and reads what
    /// the host is.
    pub async fn open(session: Session, keep: bool, limit: Duration) -> Result<Self, String> {
        let session = Arc::new(session);
        let mode = if keep { "keep" } else { "remove" };
        let mut keeper = Channel::spawn(&session, "sh", &["-c", KEEPER, "sh", mode]).await?;
        let mut remote = Remote {
            session,
            keeper: None,
            dir: String::new(),
            uid: String::new(),
            system: String::new(),
            installed: None,
            sudo: false,
        };
        let read = async {
            while let Some(line) = keeper.next_line().await {
                match line.split_once(' ') {
                    Some(("dir", d)) => remote.dir = d.to_owned(),
                    Some(("uid", u)) => remote.uid = u.to_owned(),
                    Some(("system", s)) => remote.system = s.to_owned(),
                    Some(("installed", rest)) => {
                        if let Some((hash, path)) = rest.split_once(char::is_whitespace) {
                            remote.installed = Some((hash.to_owned(), path.trim().to_owned()));
                        }
                    }
                    _ if line == "end" => return true,
                    _ => {}
                }
            }
            false
        };
        let complete = tokio::time::timeout(limit, read).await.unwrap_or(false);
        if !complete || remote.dir.is_empty() {
            let (rest, _) = keeper.finish(Duration::from_secs(2)).await;
            return Err(format!(
                "could not make a private directory with mktemp{}",
                if rest.is_empty() {
                    String::new()
                } else {
                    format!(": {}", rest.join("; "))
                }
            ));
        }
        remote.keeper = Some(keeper);
        Ok(remote)
    }

    /// The keeper's last words: `removed DIR` or `kept DIR`, once the
    /// directory is gone (or kept).
    pub async fn close(mut self, limit: Duration) -> Result<String, String> {
        let outcome = match self.keeper.take() {
            Some(keeper) => {
                let (lines, _) = keeper.finish(limit).await;
                lines
                    .into_iter()
                    .find(|l| l.starts_with("removed ") || l.starts_with("kept "))
                    .ok_or_else(|| format!("{} was not confirmed removed", self.dir))
            }
            None => Err("no keeper".to_owned()),
        };
        if let Ok(session) = Arc::try_unwrap(self.session) {
            let _ = session.close().await;
        }
        outcome
    }

    /// Runs a short command and returns (status, stdout, stderr).
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<(Option<i32>, String, String), String> {
        let mut command = Session::to_command(Arc::clone(&self.session), program.to_owned());
        command
            .args(args.iter().copied())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().await.map_err(|e| error_text(&e))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin().take()) {
            stdin
                .write_all(bytes)
                .await
                .map_err(|e| format!("sending the file: {e}"))?;
            stdin
                .shutdown()
                .await
                .map_err(|e| format!("sending the file: {e}"))?;
            drop(stdin);
        }
        let output = child.wait_with_output().await.map_err(|e| error_text(&e))?;
        Ok((
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }

    /// Writes `bytes` to `name` in the private directory with `mode` and
    /// returns its path once the remote SHA-256 equals `sha256`.
    pub async fn upload(
        &self,
        name: &str,
        bytes: &[u8],
        mode: &str,
        sha256: &str,
    ) -> Result<String, String> {
        let path = format!("{}/{name}", self.dir);
        let (status, stdout, stderr) = self
            .run("sh", &["-c", UPLOAD, "sh", &path, mode], Some(bytes))
            .await?;
        let remote_hash = stdout.split_whitespace().next().unwrap_or_default();
        if status != Some(0) {
            return Err(format!("copying {name} failed: {stderr}"));
        }
        if remote_hash != sha256 {
            return Err(format!(
                "{path} has SHA-256 {remote_hash} on the host, not {sha256}: the copy is damaged"
            ));
        }
        Ok(path)
    }

    /// Whether `sudo -n` works (always, as root: then it is not used).
    pub async fn enable_sudo(&mut self) -> Result<(), String> {
        if self.uid == "0" {
            return Ok(());
        }
        let (status, _, stderr) = self
            .run(
                "sh",
                &["-c", "command -v sudo >/dev/null || exit 3; sudo -n true"],
                None,
            )
            .await?;
        if status == Some(0) {
            self.sudo = true;
            Ok(())
        } else if status == Some(3) {
            Err("sudo is not installed on the host".to_owned())
        } else {
            Err(format!(
                "sudo -n refused: {}",
                if stderr.is_empty() {
                    "no reason given"
                } else {
                    &stderr
                }
            ))
        }
    }

    fn wrapped<'a>(&self, merge: bool, argv: &[&'a str]) -> (&'static str, Vec<&'a str>) {
        let mut args: Vec<&str> = Vec::new();
        if self.sudo {
            args.extend(["-n", "sh"]);
        }
        args.extend(["-c", WRAPPER, "sh", if merge { "merge" } else { "plain" }]);
        args.extend_from_slice(argv);
        (if self.sudo { "sudo" } else { "sh" }, args)
    }

    /// Starts `portolan listen` with `argv` (the binary first).
    pub async fn listen(&self, argv: &[&str]) -> Result<ListenerProcess, String> {
        let (program, args) = self.wrapped(true, argv);
        Ok(ListenerProcess {
            channel: Channel::spawn(&self.session, program, &args).await?,
            lines: Vec::new(),
        })
    }

    /// Runs `portolan check` with `argv` (the binary first) to its end. If
    /// the future is dropped, the channel closes and the check is stopped.
    pub async fn check(&self, argv: &[&str]) -> Result<CheckOutput, String> {
        let (program, args) = self.wrapped(false, argv);
        let mut command = Session::to_command(Arc::clone(&self.session), program.to_owned());
        command
            .args(args.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().await.map_err(|e| error_text(&e))?;
        // Held open until the end: closing it would stop the check.
        let stdin = child.stdin().take();
        let mut stdout = child.stdout().take().ok_or("no standard output")?;
        let mut stderr = child.stderr().take().ok_or("no standard error")?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.and(b)
            .map_err(|e| format!("reading the check's output: {e}"))?;
        let status = child.wait().await.map_err(|e| error_text(&e))?;
        drop(stdin);
        // The wrapper's last line carries the check's own status.
        let text = String::from_utf8_lossy(&out);
        let (json, code) = match text.rfind("portolan-exit ") {
            Some(at) => (
                out[..at].to_vec(),
                text[at + "portolan-exit ".len()..].trim().parse().ok(),
            ),
            None => (out, status.code()),
        };
        Ok(CheckOutput {
            stdout: json,
            stderr: String::from_utf8_lossy(&err).trim().to_owned(),
            status: code,
        })
    }
}
