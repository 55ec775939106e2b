//! One agent per lab host: a thread inside the host's namespace that runs a
//! current-thread tokio runtime, so that every socket it opens belongs to
//! the host. It binds the host's listeners, then runs the probes it is sent
//! until the orchestrator drops its command channel.
//!
//! Listeners: TCP and UDP through [`portolan_probe::Listener`] (TCP accept;
//! UDP echo of token datagrams only, never larger than the question); UDP
//! ports that the host also uses as a fixed source port through a small echo
//! of our own that shares the port (see [`shared_udp`]); multicast receivers
//! that join their group, record which probe reached them and answer by
//! unicast; and, in the outside world, the lab's DNS server.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portolan_probe::{
    run_probes, Endpoint, ListenProtocol, Listener, ListenerConfig, ProbeOptions, ProbeResult,
    ProbeSpec,
};
use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::dns::{self, carries_token, NameTable, DNS_PORT};
use crate::error::LabError;
use crate::lab::Lab;
use crate::netns::NsThread;

/// Which probes reached which multicast receiver: probe id → hosts.
#[derive(Debug, Default)]
pub(crate) struct Receipts(Mutex<BTreeMap<String, BTreeSet<String>>>);

impl Receipts {
    fn record(&self, probe: &str, host: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(probe.to_owned())
            .or_default()
            .insert(host.to_owned());
    }

    /// The hosts that received `probe` so far.
    pub(crate) fn receivers(&self, probe: &str) -> BTreeSet<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(probe)
            .cloned()
            .unwrap_or_default()
    }
}

/// What an agent listens on.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgentConfig {
    /// The host's name.
    pub host: String,
    /// The host's addresses (listeners bind each).
    pub addrs: Vec<IpAddr>,
    /// The host's IPv4 address (multicast interface).
    pub v4: Option<Ipv4Addr>,
    /// TCP ports.
    pub tcp: BTreeSet<u16>,
    /// UDP ports answered by the probe crate's listener.
    pub udp: BTreeSet<u16>,
    /// UDP ports shared with probes sent from them (fixed source ports).
    pub udp_shared: BTreeSet<u16>,
    /// Multicast groups and ports joined.
    pub multicast: BTreeSet<(IpAddr, u16)>,
    /// The name table, when the host serves the lab's DNS.
    pub dns: Option<Arc<NameTable>>,
    /// The run's token.
    pub token: String,
}

/// What an agent could and could not bind.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bound {
    /// `tcp/80`, `udp/8112`, `udp 225.0.1.9:8082`, `dns/53`, per address.
    pub endpoints: Vec<String>,
    /// What failed, with the system's reason.
    pub failures: Vec<String>,
}

/// What listeners did during the run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AgentStats {
    pub tcp_accepted: u64,
    pub udp_answered: u64,
    pub udp_ignored: u64,
    pub multicast_received: u64,
}

/// Requests an agent serves.
pub(crate) enum Command {
    /// Runs probes with these options.
    Probe {
        probes: Vec<ProbeSpec>,
        options: ProbeOptions,
        reply: oneshot::Sender<Vec<ProbeResult>>,
    },
    /// Sends one token datagram to a multicast group from the host's IPv4
    /// address (the receivers' records tell where it arrived).
    Multicast {
        probe: String,
        group: SocketAddr,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Resolves a name through a DNS server.
    Resolve {
        server: SocketAddr,
        name: String,
        timeout: Duration,
        reply: oneshot::Sender<Result<Vec<IpAddr>, String>>,
    },
}

/// A running agent.
pub(crate) struct Agent {
    pub host: String,
    commands: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<NsThread<Result<AgentStats, String>>>,
}

impl Agent {
    /// Starts the agent of `config.host` and waits until its listeners are
    /// bound (or failed to bind).
    pub(crate) fn start(
        lab: &Lab,
        config: AgentConfig,
        receipts: Arc<Receipts>,
    ) -> Result<(Agent, oneshot::Receiver<Bound>), LabError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let host = config.host.clone();
        let thread = lab.run_in(&host, move || -> Result<AgentStats, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
            let local = tokio::task::LocalSet::new();
            Ok(local.block_on(&rt, main(config, receipts, rx, ready_tx)))
        })?;
        Ok((
            Agent {
                host,
                commands: Some(tx),
                thread: Some(thread),
            },
            ready_rx,
        ))
    }

    /// Sends a command; false when the agent is gone.
    pub(crate) fn send(&self, command: Command) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|c| c.send(command).is_ok())
    }

    /// Stops the agent (its listeners close) and waits for its thread.
    pub(crate) fn stop(mut self) -> Result<AgentStats, LabError> {
        self.commands.take();
        match self.thread.take() {
            Some(thread) => thread.join()?.map_err(|message| LabError::Agent {
                host: self.host.clone(),
                message,
            }),
            None => Ok(AgentStats::default()),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Closing the channel ends the agent; joining keeps its sockets from
        // outliving the lab's namespaces.
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn main(
    config: AgentConfig,
    receipts: Arc<Receipts>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Bound>,
) -> AgentStats {
    let mut bound = Bound::default();
    let token = config.token.as_bytes().to_vec();
    let counters = Arc::new(Counters::default());

    let endpoints: Vec<Endpoint> = config
        .tcp
        .iter()
        .map(|&port| Endpoint {
            protocol: ListenProtocol::Tcp,
            port,
        })
        .chain(config.udp.iter().map(|&port| Endpoint {
            protocol: ListenProtocol::Udp,
            port,
        }))
        .collect();
    let mut listener_stats = None;
    if !endpoints.is_empty() {
        let listener_config = ListenerConfig {
            addrs: config.addrs.clone(),
            endpoints,
            token: config.token.clone(),
        };
        match Listener::bind(&listener_config).await {
            Ok(listener) => {
                for b in listener.bound() {
                    bound.endpoints.push(format!(
                        "{}/{} on {}",
                        protocol_name(b.endpoint.protocol),
                        b.endpoint.port,
                        b.local.ip()
                    ));
                }
                for f in listener.failures() {
                    bound.failures.push(format!(
                        "{}/{} on {}: {}",
                        protocol_name(f.endpoint.protocol),
                        f.endpoint.port,
                        f.addr.ip(),
                        f.os_error
                    ));
                }
                listener_stats = Some(listener.stats());
                tokio::task::spawn_local(listener.serve(futures::future::pending()));
            }
            Err(e) => bound.failures.push(format!("listener: {e}")),
        }
    }
    for &port in &config.udp_shared {
        for &ip in &config.addrs {
            let addr = SocketAddr::new(ip, port);
            match shared_udp(addr) {
                Ok(socket) => {
                    bound.endpoints.push(format!("udp/{port} on {ip} (shared)"));
                    tokio::task::spawn_local(echo(socket, token.clone(), counters.clone()));
                }
                Err(e) => bound
                    .failures
                    .push(format!("udp/{port} on {ip} (shared): {e}")),
            }
        }
    }
    for &(group, port) in &config.multicast {
        match multicast_receiver(group, port, config.v4) {
            Ok(socket) => {
                bound
                    .endpoints
                    .push(format!("multicast {group}:{port} (udp)"));
                tokio::task::spawn_local(receive_multicast(
                    socket,
                    token.clone(),
                    config.host.clone(),
                    receipts.clone(),
                    counters.clone(),
                ));
            }
            Err(e) => bound
                .failures
                .push(format!("multicast {group}:{port}: {e}")),
        }
    }
    if let Some(table) = &config.dns {
        for &ip in &config.addrs {
            let addr = SocketAddr::new(ip, DNS_PORT);
            match shared_udp(addr) {
                Ok(socket) => {
                    bound.endpoints.push(format!("dns/{DNS_PORT} on {ip}"));
                    tokio::task::spawn_local(dns::serve(socket, table.clone(), token.clone()));
                }
                Err(e) => bound.failures.push(format!("dns/{DNS_PORT} on {ip}: {e}")),
            }
        }
    }
    let _ = ready.send(bound);

    while let Some(command) = commands.recv().await {
        match command {
            Command::Probe {
                probes,
                options,
                reply,
            } => {
                tokio::task::spawn_local(async move {
                    let results = run_probes(probes, &options).await;
                    let _ = reply.send(results);
                });
            }
            Command::Multicast {
                probe,
                group,
                reply,
            } => {
                let result = send_multicast(&probe, group, config.v4, &config.token).await;
                let _ = reply.send(result.map_err(|e| e.to_string()));
            }
            Command::Resolve {
                server,
                name,
                timeout,
                reply,
            } => {
                tokio::task::spawn_local(async move {
                    let result = dns::resolve(server, &name, timeout).await;
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                });
            }
        }
    }
    let listener = listener_stats.map(|s| s.get()).unwrap_or_default();
    AgentStats {
        tcp_accepted: listener.tcp_accepted,
        udp_answered: listener.udp_answered
            + counters
                .udp_answered
                .load(std::sync::atomic::Ordering::Relaxed),
        udp_ignored: listener.udp_ignored
            + counters
                .udp_ignored
                .load(std::sync::atomic::Ordering::Relaxed),
        multicast_received: counters
            .multicast_received
            .load(std::sync::atomic::Ordering::Relaxed),
    }
}

#[derive(Debug, Default)]
struct Counters {
    udp_answered: std::sync::atomic::AtomicU64,
    udp_ignored: std::sync::atomic::AtomicU64,
    multicast_received: std::sync::atomic::AtomicU64,
}

fn protocol_name(protocol: ListenProtocol) -> &'static str {
    match protocol {
        ListenProtocol::Tcp => "tcp",
        ListenProtocol::Udp => "udp",
        ListenProtocol::Multicast { .. } => "multicast",
    }
}

/// A UDP socket bound with `SO_REUSEADDR`, so that a probe sent from the same
/// fixed source port (also with `SO_REUSEADDR`, as the probe engine does)
/// can bind it too. The probe's socket is connected to its peer, so the
/// kernel hands it the echo it waits for (a connected socket matches more
/// closely than this one); every other datagram comes here.
fn shared_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Echoes token datagrams as they are (never larger than the question).
async fn echo(socket: UdpSocket, token: Vec<u8>, counters: Arc<Counters>) {
    use std::sync::atomic::Ordering;
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if carries_token(&buf[..n], &token) {
            if socket.send_to(&buf[..n], from).await.is_ok() {
                counters.udp_answered.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            counters.udp_ignored.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A socket bound to the group and port, joined on the host's interface.
fn multicast_receiver(group: IpAddr, port: u16, v4: Option<Ipv4Addr>) -> io::Result<UdpSocket> {
    let addr = SocketAddr::new(group, port);
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    match group {
        IpAddr::V4(g) => {
            socket.bind(&addr.into())?;
            socket.join_multicast_v4(&g, &v4.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
        }
        IpAddr::V6(g) => {
            socket.set_only_v6(true)?;
            socket.bind(&addr.into())?;
            socket.join_multicast_v6(&g, 0)?;
        }
    }
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Records each token datagram's probe id, then answers by unicast (best
/// effort: the spec's firewall may rightly drop the answer, which is not a
/// flow of the spec; the record is what proves delivery).
async fn receive_multicast(
    socket: UdpSocket,
    token: Vec<u8>,
    host: String,
    receipts: Arc<Receipts>,
    counters: Arc<Counters>,
) {
    use std::sync::atomic::Ordering;
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let datagram = &buf[..n];
        if !carries_token(datagram, &token) {
            counters.udp_ignored.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        counters.multicast_received.fetch_add(1, Ordering::Relaxed);
        // `PORTOLAN1 <token> <probe id>`.
        let probe = datagram
            .get(b"PORTOLAN1 ".len() + token.len() + 1..)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        receipts.record(&probe, &host);
        let _ = socket.send_to(datagram, from).await;
    }
}

/// Sends one token datagram to `group` from the host's IPv4 address.
async fn send_multicast(
    probe: &str,
    group: SocketAddr,
    v4: Option<Ipv4Addr>,
    token: &str,
) -> io::Result<()> {
    let local = SocketAddr::new(
        match (group, v4) {
            (SocketAddr::V4(_), Some(v4)) => IpAddr::V4(v4),
            (SocketAddr::V4(_), None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (SocketAddr::V6(_), _) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        },
        0,
    );
    let socket = Socket::new(
        Domain::for_address(group),
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    match (group, v4) {
        (SocketAddr::V4(_), v4) => {
            socket.set_multicast_ttl_v4(1)?;
            socket.set_multicast_loop_v4(true)?;
            if let Some(v4) = v4 {
                socket.set_multicast_if_v4(&v4)?;
            }
        }
        (SocketAddr::V6(_), _) => {
            socket.set_multicast_hops_v6(1)?;
            socket.set_multicast_loop_v6(true)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    let socket = UdpSocket::from_std(socket.into())?;
    let datagram = format!("PORTOLAN1 {token} {probe}");
    socket.send_to(datagram.as_bytes(), group).await.map(|_| ())
}
