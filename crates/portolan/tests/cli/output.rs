//! `-o PATH` by what is at PATH (issue 9, row 1; the rules are in
//! docs/exit-codes.md): a regular file is replaced atomically, a character
//! device or FIFO is written through, a symlink is followed and never
//! replaced, a directory or a dangling symlink is refused (exit 1).
//! And `generate -o DIR` (row 16): missing parents are created, errors name
//! the user's path, a read-only mount says so.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{deployment_of, example, generate, portolan, portolan_lab_runs_here, stderr, stdout};

fn render_to(path: &Path) -> std::process::Output {
    portolan(&[
        "render",
        &example("circonus-inside"),
        "-o",
        path.to_str().expect("utf-8 path"),
    ])
}

fn rendered() -> String {
    let output = portolan(&["render", &example("circonus-inside")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output)
}

/// Root may create a device node: a private copy of `/dev/null` (1, 3), so
/// that a regression replaces the copy, not the machine's. Without root,
/// `/dev/null` itself, which a user cannot replace anyway.
#[test]
fn a_character_device_is_written_through_not_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = if portolan_lab_runs_here() {
        let node = dir.path().join("null");
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod as root");
        node
    } else {
        Path::new("/dev/null").to_path_buf()
    };
    let output = render_to(&device);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let meta = std::fs::symlink_metadata(&device).expect("still there");
    assert!(
        meta.file_type().is_char_device(),
        "{} was replaced by {:?}",
        device.display(),
        meta.file_type()
    );
    // Through a symlink (as `/dev/stdout` is one): the link stays a link.
    let link = dir.path().join("link-to-device");
    std::os::unix::fs::symlink(&device, &link).expect("symlink");
    let output = render_to(&link);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert!(std::fs::symlink_metadata(&device)
        .expect("device")
        .file_type()
        .is_char_device());
}

/// The bytes go down the FIFO to its reader. The reader never blocks: it
/// opens the FIFO non-blocking and polls until the writer is done, within a
/// bound (the old code renamed a file over the FIFO, and a blocking reader
/// waited for ever).
#[test]
fn a_fifo_gets_the_bytes() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo)
        .expect("open the FIFO for reading");
    let mut child = super::portolan_command()
        .args(["render", &example("circonus-inside"), "-o"])
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portolan runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    let status = loop {
        let exited = child.try_wait().expect("wait");
        // Read what is there; 0 means no writer (yet, or any more).
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading the FIFO: {e}"),
            }
        }
        if let Some(status) = exited {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("portolan did not finish writing to the FIFO within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    assert!(status.success(), "{err}");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .expect("still there")
            .file_type()
            .is_fifo(),
        "the FIFO was replaced"
    );
    assert_eq!(String::from_utf8_lossy(&received), rendered());
}

/// A symlink to a file is followed: the file it leads to gets the output
/// (atomically, keeping its mode), the link stays.
#[test]
fn a_symlink_is_followed_not_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let file = elsewhere.path().join("page.md");
    std::fs::write(&file, "old\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let link = dir.path().join("page.md");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    let output = render_to(&link);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the symlink was replaced"
    );
    assert_eq!(std::fs::read_to_string(&file).expect("file"), rendered());
    let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let names: Vec<_> = std::fs::read_dir(elsewhere.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
}

/// A directory, a symlink to a directory and a symlink to nothing are
/// refused with exit 1 and a message; nothing is written or created.
#[test]
fn a_directory_or_dangling_symlink_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("out");
    std::fs::create_dir(&target).expect("mkdir");
    let to_dir = dir.path().join("to-dir");
    std::os::unix::fs::symlink(&target, &to_dir).expect("symlink");
    let dangling = dir.path().join("dangling");
    let missing = dir.path().join("missing.md");
    std::os::unix::fs::symlink(&missing, &dangling).expect("symlink");
    for (path, says) in [
        (&target, "is a directory"),
        (&to_dir, "is a directory (through a symlink)"),
        (&dangling, "is a symlink to a file that does not exist"),
    ] {
        let spec = example("circonus-inside");
        let deployment = deployment_of("circonus-inside");
        let p = path.to_str().expect("utf-8");
        for args in [
            vec!["render", spec.as_str(), "-o", p],
            vec!["plan", spec.as_str(), "-d", deployment.as_str(), "-o", p],
        ] {
            let output = portolan(&args);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{args:?}: {}",
                stderr(&output)
            );
            assert!(stderr(&output).contains(says), "{}", stderr(&output));
            assert!(stderr(&output).contains("nothing was written"));
        }
    }
    assert_eq!(std::fs::read_dir(&target).expect("dir").count(), 0);
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 3);
}

/// `portolan import page.md -o spec.yaml FLAGS` in a new directory, the
/// page holding `page`.
fn import(page: &str, flags: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("page.md");
    std::fs::write(&path, page).expect("write");
    let spec = dir.path().join("spec.yaml");
    let mut args = vec![
        "import",
        path.to_str().expect("utf-8"),
        "-o",
        spec.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(flags);
    let output = portolan(&args);
    (dir, output)
}

/// `import --report-file -` is standard output, as `-` is everywhere.
#[test]
fn import_report_file_dash_is_standard_output() {
    let (dir, output) = import(
        "# Acme\n\n| Source | Destination | Port |\n|---|---|---|\n| Web | DB | TCP 5432 |\n",
        &["--report-file", "-"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report on stdout");
    assert!(report["rows_read"].as_u64().is_some(), "{report}");
    assert!(!dir.path().join("-").exists());
}

/// Import warnings carry their stable code, on standard error and in the
/// JSON report alike.
#[test]
fn import_warnings_carry_their_code() {
    let (_dir, output) = import(
        "# Acme\n\n## Web\n\n| Port | Protocol |\n|---|---|\n| 8443 | TCP |\n",
        &["--report", "json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report on stdout");
    let warning = &report["warnings"][0];
    let code = warning["code"].as_str().expect("a code");
    assert!(code.starts_with("import::"), "{report}");
    let line = format!(
        "page.md:{}: warning[{code}]: {}",
        warning["line"],
        warning["message"].as_str().expect("a message")
    );
    assert!(
        stderr(&output).contains(&line),
        "{line} not in {}",
        stderr(&output)
    );
}

fn generate_to(out: &Path) -> std::process::Output {
    generate(
        &example("circonus-inside"),
        &deployment_of("circonus-inside"),
        &["-t", "nftables", "-o", out.to_str().expect("utf-8")],
    )
}

/// Row 16: `-o a/b/rules` creates `a/b` as the help says.
#[test]
fn generate_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("a/b/rules");
    let output = generate_to(&out);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.join("api.nft").is_file());
}

/// A file of the output directory that is a symlink is never replaced:
/// refused before anything is written.
#[test]
fn generate_refuses_to_replace_a_symlink_in_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("rules");
    std::fs::create_dir(&out).expect("mkdir");
    let elsewhere = dir.path().join("elsewhere.nft");
    std::fs::write(&elsewhere, "keep\n").expect("write");
    std::os::unix::fs::symlink(&elsewhere, out.join("api.nft")).expect("symlink");
    let output = generate_to(&out);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("api.nft exists and is not a regular file"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_dir(&out).expect("dir").count(), 1);
    assert_eq!(std::fs::read_to_string(&elsewhere).expect("kept"), "keep\n");
}

/// Row 16: a read-only output directory is said plainly, about the user's
/// path, never the temporary `.portolan-generate-*` one and never
/// "Invalid cross-device link". As root, a read-only bind mount in a private
/// mount namespace (`unshare -m`; gone with the process); otherwise a
/// directory without write permission.
#[test]
fn generate_into_a_read_only_directory_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("rules");
    std::fs::create_dir(&out).expect("mkdir");
    let out_text = out.to_str().expect("utf-8");
    let (output, says) = if portolan_lab_runs_here() {
        let output = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && \
                 exec \"$0\" generate \"$2\" -d \"$3\" -t nftables -o \"$1\"",
            )
            .arg(super::PORTOLAN)
            .arg(out_text)
            .arg(example("circonus-inside"))
            .arg(deployment_of("circonus-inside"))
            .env("NO_COLOR", "1")
            .output()
            .expect("unshare runs");
        (output, "is on a read-only file system")
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        (generate_to(&out), "is not writable by this user")
    };
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{out_text} {says}")), "{err}");
    assert!(!err.contains(".portolan-generate"), "{err}");
    assert!(!err.contains("cross-device"), "{err}");
    assert_eq!(std::fs::read_dir(&out).expect("dir").count(), 0);
}
