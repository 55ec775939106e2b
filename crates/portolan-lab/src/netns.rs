//! Named network namespaces, compatible with `ip netns`.
//!
//! A named namespace is a file `/run/netns/NAME` on which the namespace
//! (`/proc/thread-self/ns/net` of a thread that unshared it) is bind-mounted,
//! exactly as `ip netns add NAME` does; `ip netns exec NAME …` and `nft` run
//! through it work as usual. The namespace lives as long as that mount, an
//! open file of it, or a thread or process inside it exists.
//!
//! Everything here is done from short-lived OS threads: a network namespace
//! is a per-thread attribute, so a thread that calls `unshare(CLONE_NEWNET)`
//! or `setns` moves alone and the rest of the process stays where it was.
//! No `fork` of the (multi-threaded) process is involved.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{panic_message, LabError};

/// Directory of named network namespaces, as used by iproute2.
pub const NETNS_DIR: &str = "/run/netns";

/// Path of the named namespace `name`: `/run/netns/NAME`.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Makes sure `/run/netns` exists and is a shared mount point, as
/// `ip netns add` does (so that namespaces mounted later are seen in other
/// mount namespaces that share it).
fn prepare_netns_dir() -> Result<(), LabError> {
    let dir = Path::new(NETNS_DIR);
    std::fs::create_dir_all(dir).map_err(|e| LabError::io("create the directory", dir, e))?;
    let shared = || {
        nix::mount::mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then make it shared.
            nix::mount::mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| LabError::io("bind-mount onto itself", dir, e))?;
            shared().map_err(|e| LabError::io("make it a shared mount", dir, e))
        }
        Err(e) => Err(LabError::io("make it a shared mount", dir, e)),
    }
}

/// What [`create_named`] made, for the run's record: `file NAME DEV INO`
/// (the mount point it created) or `netns NAME DEV INO` (the namespace
/// mounted on it), each with its identity as `stat` gives it.
pub(crate) type RecordFn<'a> = &'a (dyn Fn(String) -> Result<(), LabError> + Sync);

fn record_line(kind: &str, name: &str, meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{kind} {name} {} {}", meta.dev(), meta.ino())
}

/// Creates the named network namespace `name`, then runs `setup` in a thread
/// that is inside it (for per-namespace sysctls, netlink sockets, …).
/// `record` is told of the mount point as soon as it is created and of the
/// namespace as soon as it is mounted: a process killed at any moment
/// leaves nothing that its record does not name.
///
/// On success the namespace exists and `setup`'s result is returned. On any
/// failure, including one of `setup`, nothing is left behind. When
/// `/run/netns/NAME` already exists, [`LabError::NamespaceExists`] is returned
/// and the existing namespace is not touched.
pub(crate) fn create_named<R, F>(name: &str, record: RecordFn<'_>, setup: F) -> Result<R, LabError>
where
    F: FnOnce() -> Result<R, LabError> + Send,
    R: Send,
{
    prepare_netns_dir()?;
    let path = netns_path(name);
    // The name first: a run killed between making the mount point and
    // recording its identity still owns a name only it could have made.
    record(format!("intent {name}"))?;
    // The mount point; O_EXCL so that an existing namespace is never reused.
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
    {
        Ok(file) => {
            let recorded = file
                .metadata()
                .map_err(|e| LabError::namespace(name, format!("stat {}", path.display()), e))
                .and_then(|meta| record(record_line("file", name, &meta)));
            drop(file);
            if let Err(e) = recorded {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(LabError::NamespaceExists(name.to_string()));
        }
        Err(e) => {
            return Err(LabError::namespace(
                name,
                format!("create its mount point {}", path.display()),
                e,
            ))
        }
    }
    let result = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("ptl-netns-add".into())
            .spawn_scoped(scope, || {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| LabError::namespace(name, "unshare a new network namespace", e))?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    Some("none"),
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| {
                    LabError::namespace(name, format!("bind-mount it on {}", path.display()), e)
                })?;
                let mounted = std::fs::metadata(&path).map_err(|e| {
                    LabError::namespace(name, format!("stat {}", path.display()), e)
                })?;
                record(record_line("netns", name, &mounted))?;
                setup()
            })
            .map_err(|e| LabError::namespace(name, "spawn a thread to create it", e))?;
        worker.join().map_err(|p| LabError::ThreadPanicked {
            namespace: name.to_string(),
            message: panic_message(&*p),
        })?
    });
    if result.is_err() {
        // Best effort: the error being returned is the interesting one.
        let _ = delete_named(name);
    }
    result
}

/// Deletes the named namespace `name` (unmounts and removes
/// `/run/netns/NAME`, like `ip netns delete`). The kernel frees the namespace,
/// and the links inside it, once no thread, process or open file refers to it
/// any more. A namespace that does not exist is not an error.
pub fn delete_named(name: &str) -> Result<(), LabError> {
    let path = netns_path(name);
    match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a leftover of an interrupted creation).
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(LabError::namespace(name, "unmount it", e)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::namespace(
            name,
            format!("remove {}", path.display()),
            e,
        )),
    }
}

/// Names of the named namespaces under `/run/netns` that start with
/// `prefix`, sorted.
pub fn list_named(prefix: &str) -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("list the directory", NETNS_DIR, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LabError::io("list the directory", NETNS_DIR, e))?;
        if let Some(name) = entry.file_name().to_str() {
            if name.starts_with(prefix) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Opens the named namespace, for [`enter`].
pub(crate) fn open_named(name: &str) -> Result<File, LabError> {
    let path = netns_path(name);
    File::open(&path).map_err(|e| LabError::namespace(name, format!("open {}", path.display()), e))
}

/// Moves the calling thread (only) into the namespace opened as `ns`.
pub(crate) fn enter(name: &str, ns: &File) -> Result<(), LabError> {
    nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| LabError::namespace(name, "enter it (setns)", e))
}

/// Spawns an OS thread that enters the named namespace and then runs `f`.
///
/// Returns once the thread is inside the namespace (or failed to get there),
/// so that an error in entering it is reported here rather than in `f`.
pub(crate) fn spawn_in<R, F>(name: &str, f: F) -> Result<NsThread<R>, LabError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ns = open_named(name)?;
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), LabError>>(1);
    let owned_name = name.to_string();
    let handle = std::thread::Builder::new()
        .name(thread_name(name))
        .spawn(move || {
            let entered = enter(&owned_name, &ns);
            drop(ns);
            let ok = entered.is_ok();
            // The receiver waits for this message; it cannot be gone.
            let _ = ready_tx.send(entered);
            if ok {
                Some(f())
            } else {
                None
            }
        })
        .map_err(|e| LabError::namespace(name, "spawn a thread to enter it", e))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(NsThread {
            namespace: name.to_string(),
            handle,
        }),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(match handle.join() {
            Err(p) => LabError::ThreadPanicked {
                namespace: name.to_string(),
                message: panic_message(&*p),
            },
            Ok(_) => LabError::ThreadPanicked {
                namespace: name.to_string(),
                message: "the thread ended before entering the namespace".into(),
            },
        }),
    }
}

/// An OS thread running a closure inside a lab namespace; see
/// [`Lab::run_in`](crate::Lab::run_in).
///
/// Dropping it detaches the thread (it keeps running); [`NsThread::join`]
/// waits for its result.
#[derive(Debug)]
pub struct NsThread<R> {
    namespace: String,
    handle: JoinHandle<Option<R>>,
}

impl<R> NsThread<R> {
    /// Waits for the closure to return and gives back its result; a panic of
    /// the closure becomes [`LabError::ThreadPanicked`].
    pub fn join(self) -> Result<R, LabError> {
        match self.handle.join() {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(LabError::ThreadPanicked {
                namespace: self.namespace,
                message: "the thread could not enter the namespace".into(),
            }),
            Err(p) => Err(LabError::ThreadPanicked {
                namespace: self.namespace,
                message: panic_message(&*p),
            }),
        }
    }

    /// Whether the closure has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Name of the namespace the thread runs in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

fn thread_name(namespace: &str) -> String {
    // Linux truncates thread names to 15 bytes; keep the distinctive end.
    let tail: String = namespace
        .chars()
        .rev()
        .take(11)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("ns:{tail}")
}

/// Writes a sysctl of the calling thread's network namespace, e.g.
/// `net/ipv6/conf/default/accept_dad`. `/proc/sys/net` shows the namespace of
/// the thread that opens it.
pub(crate) fn write_sysctl(namespace: &str, key: &str, value: &str) -> Result<(), LabError> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::write(&path, value)
        .map_err(|e| LabError::namespace(namespace, format!("set sysctl {key} = {value}"), e))
}
