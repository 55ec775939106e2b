//! A live lab: the namespaces and links of a [`Topology`], and the ways to run
//! code, programs and firewalls inside its hosts.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::cleanup::RunLock;
use crate::error::{panic_message, LabError};
use crate::netlink::NsNetlink;
use crate::netns::{self, NsThread};
use crate::privileges::check_privileges;
use crate::topology::{
    Host, RunId, Topology, BRIDGE_INTERFACE, HOST_INTERFACE, LAB_IPV4_PREFIX_LEN,
    LAB_IPV6_PREFIX_LEN,
};

/// How long the phases of [`Lab::create`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateTimings {
    /// Creating and mounting the namespaces (with their sysctls and netlink
    /// sockets).
    pub namespaces: Duration,
    /// Creating the bridge and veth pairs, addresses, routes, links up.
    pub links: Duration,
    /// The whole of [`Lab::create`], privilege check and run lock included.
    pub total: Duration,
}

/// A lab on this machine: one named network namespace per host of its
/// [`Topology`] plus one for the bridge that joins them, built through
/// netlink.
///
/// Each host namespace holds `lo` and [`HOST_INTERFACE`] with the host's
/// IPv4/16 and IPv6/64 addresses (usable at once: no duplicate address
/// detection), multicast enabled and a route for 224.0.0.0/4; no default
/// route (the lab is one L2 segment). Unprivileged ICMP echo sockets are
/// allowed in host namespaces where the kernel accepts it
/// (`net.ipv4.ping_group_range`). The bridge floods
/// multicast to every port (multicast snooping off). Nothing is created in the
/// caller's own namespace.
///
/// Dropping the lab deletes everything it created; so do [`Lab::destroy`],
/// which reports errors, a [`CleanupHandle`], and [`cleanup_registered`]
/// (meant for a Ctrl-C handler). Namespaces of a process that was killed are
/// removed by [`cleanup_stale`](crate::cleanup_stale).
///
/// All methods block the calling thread; from async code call them through
/// `tokio::task::spawn_blocking` (or accept the short block).
#[derive(Debug)]
pub struct Lab {
    inner: Arc<LabInner>,
    timings: CreateTimings,
}

#[derive(Debug)]
struct LabInner {
    topology: Topology,
    state: Mutex<LabState>,
    /// Held while one namespace is being created and recorded, and by a
    /// teardown: a teardown (Ctrl-C) never runs in the middle of a creation,
    /// so no namespace appears after it that nobody will delete.
    creating: Mutex<()>,
}

#[derive(Debug)]
struct LabState {
    /// Namespaces created so far, in creation order.
    namespaces: Vec<String>,
    lock: Option<RunLock>,
    destroyed: bool,
}

impl LabInner {
    fn state(&self) -> MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a namespace just created; when the lab was torn down in the
    /// meantime (Ctrl-C during creation), deletes it at once instead.
    fn record(&self, namespace: String) -> Result<(), LabError> {
        let mut state = self.state();
        if state.destroyed {
            drop(state);
            netns::delete_named(&namespace)?;
            return Err(LabError::Destroyed(self.topology.run_id().to_string()));
        }
        state.namespaces.push(namespace);
        Ok(())
    }

    /// Creates and records one namespace, unless the lab was torn down.
    fn create_namespace<R, F>(&self, name: &str, setup: F) -> Result<R, LabError>
    where
        F: FnOnce() -> Result<R, LabError> + Send,
        R: Send,
    {
        let _creating = self.creating.lock().unwrap_or_else(PoisonError::into_inner);
        if self.state().destroyed {
            return Err(LabError::Destroyed(self.topology.run_id().to_string()));
        }
        // Recorded in the run's lock file as soon as its mount point exists
        // and again once it is mounted, before its setup: a run killed at
        // any moment leaves nothing that cleanup does not know as its own.
        let made = netns::create_named(name, &|line| self.record_in_lock(&line), setup)?;
        self.record(name.to_string())?;
        Ok(made)
    }

    /// Appends a line to the run's record (its lock file).
    fn record_in_lock(&self, line: &str) -> Result<(), LabError> {
        match self.state().lock.as_mut() {
            Some(lock) => lock.record(line),
            None => Err(LabError::Destroyed(self.topology.run_id().to_string())),
        }
    }

    /// Deletes every namespace of the lab and its run lock. Idempotent.
    fn teardown(&self) -> Result<(), LabError> {
        let _no_creation = self.creating.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.state();
        if state.destroyed {
            return Ok(());
        }
        state.destroyed = true;
        let mut errors = Vec::new();
        // Hosts first, the bridge namespace (created first) last.
        while let Some(namespace) = state.namespaces.pop() {
            if let Err(e) = netns::delete_named(&namespace) {
                errors.push(e);
            }
        }
        if let Some(lock) = state.lock.take() {
            if errors.is_empty() {
                if let Err(e) = lock.release() {
                    errors.push(e);
                }
            } else {
                // Keep the lock file so that `cleanup_stale` finds the run
                // once this process is gone; the lock itself is released.
                drop(lock);
            }
        }
        drop(state);
        unregister(self);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown(errors))
        }
    }
}

impl Lab {
    /// Builds the lab described by `topology`: checks privileges, takes the
    /// run lock, creates the namespaces (bridge first), the bridge, one veth
    /// pair per host (its host end created directly inside the host's
    /// namespace), addresses and routes, and brings every link up.
    ///
    /// On failure everything created so far is deleted before the error is
    /// returned. The lab is registered for [`cleanup_registered`] as soon as
    /// its first resource exists.
    pub fn create(topology: Topology) -> Result<Lab, LabError> {
        let started = Instant::now();
        check_privileges()?;
        // The lock file is created and the lab registered under the
        // registry's mutex, which `cleanup_registered` takes too: a Ctrl-C
        // at any moment finds either no lock file or a registered lab that
        // removes it.
        let inner = {
            let mut labs = registry();
            let lock = RunLock::acquire(topology.run_id())?;
            let inner = Arc::new(LabInner {
                topology,
                state: Mutex::new(LabState {
                    namespaces: Vec::new(),
                    lock: Some(lock),
                    destroyed: false,
                }),
                creating: Mutex::new(()),
            });
            labs.retain(|weak| weak.strong_count() > 0);
            labs.push(Arc::downgrade(&inner));
            inner
        };
        // A thread of its own, so that the tokio runtime that drives the
        // netlink sockets never nests in a runtime of the caller.
        let built = std::thread::scope(|scope| {
            let builder = std::thread::Builder::new()
                .name("ptl-lab-create".into())
                .spawn_scoped(scope, || build(&inner))
                .map_err(|e| LabError::io("spawn a thread", "lab creation", e))?;
            builder.join().map_err(|p| LabError::ThreadPanicked {
                namespace: inner.topology.run_id().to_string(),
                message: panic_message(&*p),
            })?
        });
        match built {
            Ok((namespaces, links)) => Ok(Lab {
                inner,
                timings: CreateTimings {
                    namespaces,
                    links,
                    total: started.elapsed(),
                },
            }),
            Err(e) => {
                // The creation error is the one worth reporting.
                let _ = inner.teardown();
                Err(e)
            }
        }
    }

    /// The topology the lab was built from.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// The run id that prefixes every resource of the lab.
    pub fn run_id(&self) -> &RunId {
        self.inner.topology.run_id()
    }

    /// How long the phases of [`Lab::create`] took.
    pub fn timings(&self) -> CreateTimings {
        self.timings
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host, LabError> {
        self.inner
            .topology
            .host(name)
            .ok_or_else(|| LabError::UnknownHost(name.to_string()))
    }

    /// Name of the host's namespace (for `ip netns exec NAME …`).
    pub fn netns_name(&self, host: &str) -> Result<String, LabError> {
        self.host(host)?;
        Ok(self.inner.topology.netns_name(host))
    }

    /// Path of the host's namespace, `/run/netns/NAME`.
    pub fn netns_path(&self, host: &str) -> Result<PathBuf, LabError> {
        Ok(netns::netns_path(&self.netns_name(host)?))
    }

    /// Name of the bridge's namespace.
    pub fn bridge_netns_name(&self) -> String {
        self.inner.topology.bridge_netns_name()
    }

    /// Namespace name of a host of a lab that is still alive.
    fn live_netns(&self, host: &str) -> Result<String, LabError> {
        let name = self.netns_name(host)?;
        if self.inner.state().destroyed {
            return Err(LabError::Destroyed(self.run_id().to_string()));
        }
        Ok(name)
    }

    /// Runs `f` on a new OS thread that has entered the host's network
    /// namespace: every socket `f` creates (directly, or through a tokio
    /// `current_thread` runtime it builds and runs on that thread) belongs to
    /// the host. Threads `f` spawns inherit the namespace too.
    ///
    /// Returns once the thread is inside the namespace; [`NsThread::join`]
    /// waits for `f`'s result.
    ///
    /// ```no_run
    /// # fn demo(lab: &portolan_lab::Lab) -> Result<(), portolan_lab::LabError> {
    /// let listener = lab.run_in("db", || std::net::TcpListener::bind("0.0.0.0:5432"))?;
    /// let listener = listener.join()?.expect("bind");
    /// # Ok(()) }
    /// ```
    pub fn run_in<R, F>(&self, host: &str, f: F) -> Result<NsThread<R>, LabError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        netns::spawn_in(&self.live_netns(host)?, f)
    }

    /// Runs `f` on a new OS thread inside the bridge's namespace, where every
    /// frame of the lab segment passes (e.g. to capture traffic on
    /// [`BRIDGE_INTERFACE`], or to inspect the ports `ptl-p<N>`). Otherwise
    /// like [`Lab::run_in`].
    pub fn run_in_bridge<R, F>(&self, f: F) -> Result<NsThread<R>, LabError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.inner.state().destroyed {
            return Err(LabError::Destroyed(self.run_id().to_string()));
        }
        netns::spawn_in(&self.bridge_netns_name(), f)
    }

    /// Runs an external program in the host's namespace and waits for it,
    /// capturing its output (as [`Command::output`] does). The program is
    /// started from a thread inside the namespace, which it inherits.
    pub fn exec(&self, host: &str, mut command: Command) -> Result<Output, LabError> {
        let program = PathBuf::from(command.get_program());
        self.run_in(host, move || command.output())?
            .join()?
            .map_err(|e| LabError::io("run the program", program, e))
    }

    /// Starts an external program in the host's namespace without waiting
    /// for it (as [`Command::spawn`] does). The caller owns the child: kill
    /// and wait for it before the lab is dropped, or it keeps the namespace
    /// alive (unnamed) until it exits.
    pub fn spawn(&self, host: &str, mut command: Command) -> Result<Child, LabError> {
        let program = PathBuf::from(command.get_program());
        self.run_in(host, move || command.spawn())?
            .join()?
            .map_err(|e| LabError::io("start the program", program, e))
    }

    /// Loads an nftables ruleset into the host's namespace with `nft -f -`.
    ///
    /// The ruleset is added to what the namespace already has; start it
    /// with `flush ruleset` to replace everything. Fails with
    /// [`LabError::NftMissing`] when `nft` is not installed, and with
    /// [`LabError::NftFailed`], carrying nft's standard error, when nft
    /// rejects the ruleset.
    pub fn load_nft(&self, host: &str, ruleset: &str) -> Result<(), LabError> {
        let nft = find_program("nft").ok_or(LabError::NftMissing)?;
        let text = ruleset.to_string();
        let program = nft.clone();
        let output = self
            .run_in(host, move || -> std::io::Result<Output> {
                let mut child = Command::new(&program)
                    .args(["-f", "-"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()?;
                if let Some(mut stdin) = child.stdin.take() {
                    // A write error (nft exited early) shows in its status
                    // and standard error, which are reported below.
                    let _ = stdin.write_all(text.as_bytes());
                }
                child.wait_with_output()
            })?
            .join()?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => LabError::NftMissing,
                _ => LabError::io("run nft -f -", &nft, e),
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(LabError::NftFailed {
                host: host.to_string(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// A handle that tears this lab down from elsewhere (e.g. a Ctrl-C
    /// task), while the [`Lab`] itself stays where it is used.
    pub fn cleanup_handle(&self) -> CleanupHandle {
        CleanupHandle {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Deletes every namespace (and so every link) of the lab and its run
    /// lock, reporting what could not be deleted. Dropping the lab does the
    /// same but can only ignore errors.
    pub fn destroy(self) -> Result<(), LabError> {
        self.inner.teardown()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `destroy` reports them.
        let _ = self.inner.teardown();
    }
}

/// Tears one lab down from another thread or task; see
/// [`Lab::cleanup_handle`]. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct CleanupHandle {
    inner: Arc<LabInner>,
}

impl CleanupHandle {
    /// Deletes the lab's namespaces and run lock (idempotent: the lab, its
    /// other handles and its drop then find nothing left to do). Code still
    /// using the lab gets [`LabError::Destroyed`] from then on.
    pub fn cleanup(&self) -> Result<(), LabError> {
        self.inner.teardown()
    }

    /// The run id of the lab.
    pub fn run_id(&self) -> &RunId {
        self.inner.topology.run_id()
    }
}

/// Live labs of this process, for [`cleanup_registered`].
static REGISTRY: Mutex<Vec<Weak<LabInner>>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Weak<LabInner>>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unregister(inner: &LabInner) {
    registry().retain(|weak| weak.strong_count() > 0 && !std::ptr::eq(weak.as_ptr(), inner));
}

/// Tears down every lab of this process that is still alive and returns how
/// many there were. Meant for the caller's Ctrl-C handling, e.g. a task
/// `tokio::signal::ctrl_c().await; portolan_lab::cleanup_registered();` that
/// then exits. Every lab is registered when [`Lab::create`] starts and
/// unregistered when it is torn down. (Not async-signal-safe: call it from a
/// task or thread, not from a raw signal handler.)
pub fn cleanup_registered() -> Result<usize, LabError> {
    let labs: Vec<Arc<LabInner>> = registry().iter().filter_map(Weak::upgrade).collect();
    let mut errors = Vec::new();
    for lab in &labs {
        if let Err(e) = lab.teardown() {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(labs.len())
    } else {
        Err(LabError::Teardown(errors))
    }
}

/// Up to this many hosts, [`Lab::create`] gives every host a permanent
/// neighbour entry for every other host (hosts² entries in all); beyond,
/// only for the hosts it talks with.
const STATIC_NEIGHBOURS_MAX_HOSTS: usize = 512;

/// Per host (by index), the hosts it gets a permanent neighbour entry for:
/// every other host up to [`STATIC_NEIGHBOURS_MAX_HOSTS`], beyond it the
/// hosts it talks with ([`Topology::set_talking`]), or none when unknown.
fn neighbour_peers(topology: &Topology) -> Vec<Vec<usize>> {
    let n = topology.hosts().len();
    let mut peers = vec![Vec::new(); n];
    if n <= STATIC_NEIGHBOURS_MAX_HOSTS {
        for (i, list) in peers.iter_mut().enumerate() {
            list.extend((0..n).filter(|&o| o != i));
        }
    } else if let Some(talking) = topology.talking() {
        for &(a, b) in talking {
            peers[a].push(b);
            peers[b].push(a);
        }
    }
    peers
}

/// How long [`Lab::create`] waits at most for the links to be operationally up.
const LINKS_UP_WITHIN: Duration = Duration::from_secs(3);

/// Builds the namespaces and links; returns the durations of the two phases.
fn build(inner: &LabInner) -> Result<(Duration, Duration), LabError> {
    let topology = &inner.topology;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::io("start a tokio runtime", "netlink", e))?;
    let handle = rt.handle().clone();

    let started = Instant::now();
    let bridge_ns = topology.bridge_netns_name();
    let bridge = inner.create_namespace(&bridge_ns, || {
        namespace_sysctls(&bridge_ns, false)?;
        NsNetlink::connect_here(&bridge_ns, &handle)
    })?;

    let mut hosts: Vec<(&Host, NsNetlink, File)> = Vec::with_capacity(topology.hosts().len());
    for host in topology.hosts() {
        let ns = topology.netns_name(host.name());
        let netlink = inner.create_namespace(&ns, || {
            namespace_sysctls(&ns, true)?;
            NsNetlink::connect_here(&ns, &handle)
        })?;
        let file = netns::open_named(&ns)?;
        hosts.push((host, netlink, file));
    }
    let namespaces = started.elapsed();

    let started = Instant::now();
    // A placed topology carries a deployment's addresses: host routes and
    // on-link default routes (into the lab's bridge, its only link).
    let placed = topology.is_placed();
    let (prefix4, prefix6) = if placed {
        (32, 128)
    } else {
        (LAB_IPV4_PREFIX_LEN, LAB_IPV6_PREFIX_LEN)
    };
    rt.block_on(async {
        bridge.loopback_up().await?;
        let bridge_index = bridge.add_bridge(BRIDGE_INTERFACE).await?;
        let bridge = &bridge;
        let indices =
            futures::future::try_join_all(hosts.iter().map(|(host, netlink, file)| async move {
                bridge
                    .add_veth_port(
                        &host.bridge_port(),
                        HOST_INTERFACE,
                        host.mac(),
                        file,
                        bridge_index,
                    )
                    .await?;
                netlink.loopback_up().await?;
                let index = netlink.link_index(HOST_INTERFACE).await?;
                netlink
                    .add_address(index, host.ipv4().into(), prefix4, HOST_INTERFACE)
                    .await?;
                netlink
                    .add_address(index, host.ipv6().into(), prefix6, HOST_INTERFACE)
                    .await?;
                netlink.set_up(index, HOST_INTERFACE).await?;
                netlink
                    .add_ipv4_multicast_route(index, HOST_INTERFACE)
                    .await?;
                if placed {
                    netlink.add_default_routes(index, HOST_INTERFACE).await?;
                }
                Ok::<u32, LabError>(index)
            }))
            .await?;
        // Every host knows the MAC address of every host it talks with: no
        // ARP or neighbour discovery delays the first packets, and the
        // kernel's machine-wide neighbour-table limit does not apply.
        let all: Vec<&Host> = hosts.iter().map(|(h, _, _)| *h).collect();
        let peers = neighbour_peers(topology);
        let (all, peers) = (&all, &peers);
        futures::future::try_join_all(hosts.iter().zip(&indices).map(
            |((host, netlink, _), &index)| async move {
                for &other in &peers[host.index()] {
                    let other = all[other];
                    netlink
                        .add_neighbour(index, other.ipv4().into(), other.mac())
                        .await?;
                    netlink
                        .add_neighbour(index, other.ipv6().into(), other.mac())
                        .await?;
                }
                Ok::<(), LabError>(())
            },
        ))
        .await?;
        // Wait (bounded) until every veth end is operationally up: before
        // that, frames sent on it are dropped, and the first probes of a run
        // would see timeouts that have nothing to do with any firewall.
        let deadline = Instant::now() + LINKS_UP_WITHIN;
        loop {
            let mut all = bridge.all_oper_up("ptl-p").await?;
            for (_, netlink, _) in &hosts {
                if !all {
                    break;
                }
                all = netlink.all_oper_up(HOST_INTERFACE).await?;
            }
            if all || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok::<(), LabError>(())
    })?;
    let links = started.elapsed();
    // Dropping the runtime closes the netlink sockets, which would otherwise
    // keep the namespaces alive after teardown.
    drop(hosts);
    drop(rt);
    Ok((namespaces, links))
}

/// Sysctls of a fresh namespace, written from a thread inside it before any
/// interface is added (new interfaces copy the `default` values).
fn namespace_sysctls(namespace: &str, host: bool) -> Result<(), LabError> {
    for scope in ["all", "default"] {
        // Addresses usable at once: no duplicate address detection, which
        // would leave them (link-local ones included) tentative for a while.
        netns::write_sysctl(namespace, &format!("net/ipv6/conf/{scope}/accept_dad"), "0")?;
    }
    if host {
        // Let probes send ICMP echo through unprivileged ICMP ("ping")
        // sockets, never raw ones: every group. Inside a user namespace only
        // groups mapped into it are accepted (EINVAL), so there the range
        // falls back to our own group. Should both fail, the ICMP probes say
        // so themselves (a probe that cannot be made is an error of the lab).
        const KEY: &str = "net/ipv4/ping_group_range";
        if netns::write_sysctl(namespace, KEY, "0 2147483647").is_err() {
            let gid = nix::unistd::getegid();
            let _ = netns::write_sysctl(namespace, KEY, &format!("{gid} {gid}"));
        }
    } else {
        // The bridge and its ports need no IP of their own: keep them quiet.
        netns::write_sysctl(namespace, "net/ipv6/conf/default/disable_ipv6", "1")?;
    }
    Ok(())
}

/// Finds a program in PATH, then in the sbin directories (which a non-login
/// root PATH may lack).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_handles_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Lab>();
        assert_send_sync::<CleanupHandle>();
        assert_send_sync::<LabError>();
        fn assert_send<T: Send>() {}
        assert_send::<NsThread<()>>();
    }

    #[test]
    fn finds_programs_in_sbin_even_without_path() {
        // `sh` is everywhere; a made-up name nowhere.
        assert!(find_program("sh").is_some());
        assert!(find_program("ptl-no-such-program").is_none());
    }
}
