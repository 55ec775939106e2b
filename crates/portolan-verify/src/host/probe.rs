//! Probes through the twin: listeners on the receiving side (portolan-probe's
//! [`Listener`]), and TCP connects, UDP token datagrams and ICMP echo
//! requests from the sending side (portolan-probe's engine), all at once,
//! each from a bound local address so that its traced verdicts can be found
//! by packet ([`PacketKey`]), and each ended at the trace of its drop
//! rather than a timeout. Multicast datagrams are checked by their arrival
//! at a socket that joined the group ([`multicast`]).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portolan_lab::trace::{early_verdict, packet_key, PacketKey, Tracer};
use portolan_lab::Lab;
use portolan_probe::{
    Endpoint, FlowKind, ListenProtocol, Listener, ListenerConfig, OutcomeClass, ProbeOptions,
    ProbeSpec, Protocol, UdpMode,
};

use crate::error::VerifyError;

/// How long a probe waits for its answer. Inside one machine an answer
/// takes microseconds; the rest is slack for a loaded machine.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Probes in flight at once.
const CONCURRENCY: usize = 1024;

/// TCP, UDP or ICMP echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Transport {
    Tcp,
    Udp,
    /// An echo request (the destination's port is 0); the kernel answers.
    Icmp,
}

impl Transport {
    /// The word in reports.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Icmp => "icmp",
        }
    }
}

/// One packet to send: from `source` (port 0: any) to `destination`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub transport: Transport,
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

/// What came of it.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Answered.
    pub open: bool,
    /// The packet, as the tracer names it (`None`: not even sent).
    pub key: Option<PacketKey>,
    /// Why it was not sent, or how it failed (`connection refused`).
    pub error: Option<String>,
}

fn env(what: &str, e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Environment(format!("kernel twin: {what}: {e}"))
}

/// A listener answering in a namespace until dropped.
pub(crate) struct Listening {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<portolan_lab::NsThread<()>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a listener in `host` on every address × endpoint the probes aim at.
pub(crate) fn listen(
    lab: &Lab,
    host: &str,
    probes: &[&Probe],
    token: &str,
) -> Result<Listening, VerifyError> {
    let addrs: BTreeSet<IpAddr> = probes.iter().map(|p| p.destination.ip()).collect();
    let endpoints: BTreeSet<(Transport, u16)> = probes
        .iter()
        .filter(|p| p.transport != Transport::Icmp)
        .map(|p| (p.transport, p.destination.port()))
        .collect();
    let config = ListenerConfig {
        addrs: addrs.into_iter().collect(),
        endpoints: endpoints
            .into_iter()
            .map(|(t, port)| Endpoint {
                protocol: match t {
                    Transport::Udp => ListenProtocol::Udp,
                    _ => ListenProtocol::Tcp,
                },
                port,
            })
            .collect(),
        token: token.to_owned(),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Vec<String>, String>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = lab
        .run_in(host, move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                match Listener::bind(&config).await {
                    Ok(listener) => {
                        let failures = listener
                            .failures()
                            .iter()
                            .map(|f| format!("{f:?}"))
                            .collect();
                        let _ = ready_tx.send(Ok(failures));
                        listener
                            .serve(async {
                                let _ = stop_rx.await;
                            })
                            .await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            });
        })
        .map_err(|e| env("start a listener", e))?;
    let listening = Listening {
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    match ready_rx.recv() {
        Ok(Ok(failures)) if failures.is_empty() => Ok(listening),
        Ok(Ok(failures)) => Err(env("bind the listeners", failures.join("; "))),
        Ok(Err(e)) => Err(env("bind the listeners", e)),
        Err(e) => Err(env("bind the listeners", e)),
    }
}

/// Sends every probe from `host`, all at once (portolan-probe's engine, no
/// retry), and returns their outcomes in order. An attempt whose packet the
/// trace shows dropped ends at once; others end at their answer or after
/// [`PROBE_TIMEOUT`].
pub(crate) fn send(
    lab: &Lab,
    host: &str,
    probes: Vec<Probe>,
    token: &str,
    tracer: &Arc<Tracer>,
) -> Result<Vec<Outcome>, VerifyError> {
    let specs: Vec<ProbeSpec> = probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let protocol = match p.transport {
                Transport::Tcp => Protocol::Tcp,
                Transport::Udp => Protocol::Udp {
                    mode: UdpMode::PortolanListener {
                        token: token.to_owned(),
                    },
                },
                Transport::Icmp => Protocol::IcmpEcho {
                    token: token.to_owned(),
                },
            };
            let spec = ProbeSpec::new(format!("p{i}"), p.destination, protocol)
                .with_source_ip(p.source.ip());
            match p.source.port() {
                0 => spec,
                port => spec.with_source_port(port),
            }
        })
        .collect();
    let options = ProbeOptions {
        concurrency: CONCURRENCY,
        timeout: PROBE_TIMEOUT,
        retries: 0,
        early_verdict: Some(early_verdict(Arc::clone(tracer))),
        ..ProbeOptions::default()
    };
    let results = lab
        .run_in(
            host,
            move || -> Result<Vec<portolan_probe::ProbeResult>, String> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(runtime.block_on(portolan_probe::run_probes(specs, &options)))
            },
        )
        .map_err(|e| env("start the probes", e))?
        .join()
        .map_err(|e| env("run the probes", e))?
        .map_err(|e| env("run the probes", e))?;
    Ok(probes
        .iter()
        .zip(results)
        .map(|(probe, result)| {
            let kind = match probe.transport {
                Transport::Tcp => FlowKind::Tcp,
                Transport::Udp => FlowKind::Udp,
                Transport::Icmp => FlowKind::IcmpEcho,
            };
            let key = result.details.local.map(|local| {
                packet_key(
                    kind,
                    local,
                    result.details.peer.unwrap_or(probe.destination),
                )
            });
            let open = result.outcome.class == OutcomeClass::Open;
            let error =
                (!open).then(
                    || match (&result.details.settled_early, &result.outcome.os_error) {
                        (Some(_), _) => "dropped (traced)".to_owned(),
                        (None, Some(e)) => e.clone(),
                        (None, None) => result.outcome.class.to_string(),
                    },
                );
            Outcome { open, key, error }
        })
        .collect())
}

/// A multicast datagram: from `source` (the twin's address when
/// `outbound`, else a sender's in the peers' namespace) to `group`, which
/// a socket on the other side has joined.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MulticastProbe {
    pub outbound: bool,
    pub source: IpAddr,
    pub group: SocketAddr,
}

/// A receiver joined to groups in a namespace, collecting the datagrams
/// that arrive until dropped.
struct Receiving {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<portolan_lab::NsThread<()>>,
}

/// Datagrams that arrived at the receivers.
type Arrived = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

fn arrived_lock(arrived: &Arrived) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
    arrived
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Joins every group of `groups` (IPv4) on the interface holding
/// `interface` in `host`, and collects what arrives.
fn receive(
    lab: &Lab,
    host: &str,
    groups: Vec<SocketAddr>,
    interface: std::net::Ipv4Addr,
    arrived: &Arrived,
) -> Result<Receiving, VerifyError> {
    use socket2::{Domain, Socket, Type};
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let flag = Arc::clone(&stop);
    let arrived = Arc::clone(arrived);
    let thread = lab
        .run_in(host, move || {
            let mut sockets = Vec::new();
            for group in groups {
                let IpAddr::V4(g) = group.ip() else { continue };
                let opened = (|| -> std::io::Result<Socket> {
                    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
                    socket.set_reuse_address(true)?;
                    socket.bind(&group.into())?;
                    socket.join_multicast_v4(&g, &interface)?;
                    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
                    Ok(socket)
                })();
                match opened {
                    Ok(socket) => sockets.push(std::net::UdpSocket::from(socket)),
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("join {group}: {e}")));
                        return;
                    }
                }
            }
            let _ = ready_tx.send(Ok(()));
            if sockets.is_empty() {
                return;
            }
            let mut buffer = [0u8; 512];
            // Bounded: the caller stops it within a few timeouts.
            let deadline = std::time::Instant::now() + PROBE_TIMEOUT * 8;
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < deadline
            {
                for socket in &sockets {
                    if let Ok((n, _)) = socket.recv_from(&mut buffer) {
                        arrived_lock(&arrived).push(buffer[..n].to_vec());
                    }
                }
            }
        })
        .map_err(|e| env("start a multicast receiver", e))?;
    let receiving = Receiving {
        stop,
        thread: Some(thread),
    };
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(receiving),
        Ok(Err(e)) => Err(env("join the multicast groups", e)),
        Err(e) => Err(env("join the multicast groups", e)),
    }
}

/// Sends each multicast probe from its side and tells, in order, whether
/// its datagram arrived at the other side's member of the group (a real
/// delivery, so an answer's way back plays no part), with its packet for
/// the trace. Waits until every datagram arrived or its drop was traced,
/// at most [`PROBE_TIMEOUT`].
pub(crate) fn multicast(
    lab: &Lab,
    tracer: &Tracer,
    (twin, peers): (&str, &str),
    twin_address: std::net::Ipv4Addr,
    probes: &[MulticastProbe],
    token: &str,
) -> Result<Vec<Outcome>, VerifyError> {
    let groups = |outbound: bool| -> Vec<SocketAddr> {
        let set: BTreeSet<SocketAddr> = probes
            .iter()
            .filter(|p| p.outbound == outbound)
            .map(|p| p.group)
            .collect();
        set.into_iter().collect()
    };
    // The twin's receiver joins on the host's interface; the peers' on the
    // interface their route to the group names (their only one).
    let arrived = Arrived::default();
    let _at_twin = receive(lab, twin, groups(false), twin_address, &arrived)?;
    let _at_peers = receive(
        lab,
        peers,
        groups(true),
        std::net::Ipv4Addr::UNSPECIFIED,
        &arrived,
    )?;
    let mut sent: Vec<(Option<PacketKey>, Vec<u8>, Option<String>)> = Vec::new();
    for (i, probe) in probes.iter().enumerate() {
        let payload = format!("PORTOLAN1 {token} multicast-{i}").into_bytes();
        let from = if probe.outbound { twin } else { peers };
        let (source, group, data) = (probe.source, probe.group, payload.clone());
        let result = lab
            .run_in(from, move || -> std::io::Result<SocketAddr> {
                let socket = std::net::UdpSocket::bind(SocketAddr::new(source, 0))?;
                if let IpAddr::V4(interface) = source {
                    socket2::SockRef::from(&socket).set_multicast_if_v4(&interface)?;
                }
                socket.set_multicast_ttl_v4(1)?;
                socket.set_multicast_loop_v4(false)?;
                socket.send_to(&data, group)?;
                socket.local_addr()
            })
            .map_err(|e| env("send a multicast datagram", e))?
            .join()
            .map_err(|e| env("send a multicast datagram", e))?;
        match result {
            Ok(local) => sent.push((Some(PacketKey::udp(local, probe.group)), payload, None)),
            Err(e) => sent.push((None, payload, Some(e.to_string()))),
        }
    }
    // Arrival or a traced drop, whichever comes first, for every datagram.
    let start = std::time::Instant::now();
    let dropped = |key: &Option<PacketKey>| {
        key.is_some_and(|k| {
            tracer
                .hops(&k)
                .iter()
                .any(|h| h.verdict == portolan_lab::trace::HopVerdict::Drop)
        })
    };
    let pending = |s: &(Option<PacketKey>, Vec<u8>, Option<String>)| {
        s.2.is_none() && !dropped(&s.0) && !arrived_lock(&arrived).contains(&s.1)
    };
    while start.elapsed() < PROBE_TIMEOUT && sent.iter().any(pending) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let arrived = arrived_lock(&arrived).clone();
    Ok(sent
        .into_iter()
        .map(|(key, payload, error)| {
            let open = error.is_none() && arrived.contains(&payload);
            Outcome {
                open,
                key,
                error: match (open, error) {
                    (true, _) => None,
                    (false, Some(e)) => Some(e),
                    (false, None) => Some("did not arrive at the group's member".into()),
                },
            }
        })
        .collect())
}
