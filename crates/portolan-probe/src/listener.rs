//! The listener engine: what probes talk to on the other side.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

use crate::Error;

/// What to listen on, on every local address of a [`ListenerConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// How to listen.
    pub protocol: ListenProtocol,
    /// The port; 0 for one chosen by the system (see [`Listener::bound`]).
    pub port: u16,
}

/// How a listener endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ListenProtocol {
    /// Accepts TCP connections and closes them at once.
    Tcp,
    /// Echoes UDP datagrams that carry the token.
    Udp,
    /// Joins a multicast group and echoes token datagrams by unicast.
    Multicast {
        /// The group to join.
        group: IpAddr,
    },
}

/// What a [`Listener`] binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerConfig {
    /// Local addresses to bind TCP and UDP endpoints on; the IPv4 ones are also
    /// the interfaces multicast groups are joined on (any interface if none).
    pub addrs: Vec<IpAddr>,
    /// What to listen on.
    pub endpoints: Vec<Endpoint>,
    /// The run's token: datagrams without it get no answer.
    pub token: String,
}

/// An endpoint that is listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundEndpoint {
    /// The endpoint, with the port actually bound.
    pub endpoint: Endpoint,
    /// The local address (the group and port, for multicast).
    pub local: SocketAddr,
}

/// An endpoint that could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindFailure {
    /// The endpoint as asked.
    pub endpoint: Endpoint,
    /// The address it was to be bound on.
    pub addr: SocketAddr,
    /// Why, in short.
    pub reason: BindFailureReason,
    /// The operating system's error message.
    pub os_error: String,
}

/// Why an endpoint could not be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindFailureReason {
    /// Something else listens there.
    InUse,
    /// Not allowed (a privileged port without the capability).
    PermissionDenied,
    /// The address is not local.
    AddressNotAvailable,
    /// Another error, such as joining a multicast group.
    Other,
}

impl From<&io::Error> for BindFailureReason {
    fn from(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::AddrInUse => Self::InUse,
            io::ErrorKind::PermissionDenied => Self::PermissionDenied,
            io::ErrorKind::AddrNotAvailable => Self::AddressNotAvailable,
            _ => Self::Other,
        }
    }
}

/// What a listener did while it served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStats {
    /// TCP connections accepted.
    pub tcp_accepted: u64,
    /// Token datagrams echoed (UDP and multicast).
    pub udp_answered: u64,
    /// Datagrams ignored for want of the token.
    pub udp_ignored: u64,
}

/// A live view of a listener's counters, usable while it serves.
#[derive(Debug, Clone)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> ListenerStats {
        let counters = &self.0;
        ListenerStats {
            tcp_accepted: counters.tcp_accepted.load(Ordering::Relaxed),
            udp_answered: counters.udp_answered.load(Ordering::Relaxed),
            udp_ignored: counters.udp_ignored.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    tcp_accepted: AtomicU64,
    udp_answered: AtomicU64,
    udp_ignored: AtomicU64,
}

/// A bound socket, ready to serve.
enum Serving {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Bound sockets that answer Portolan probes until told to stop.
pub struct Listener {
    token: Vec<u8>,
    sockets: Vec<Serving>,
    bound: Vec<BoundEndpoint>,
    failures: Vec<BindFailure>,
    counters: Arc<Counters>,
}

impl Listener {
    /// Binds every endpoint on every address (multicast endpoints once, on
    /// the group). An endpoint that cannot be bound is reported in
    /// [`Listener::failures`]; only an empty token is an error.
    ///
    /// Sockets are created on the thread that polls this future.
    pub async fn bind(config: &ListenerConfig) -> Result<Self, Error> {
        if config.token.is_empty() {
            return Err(Error::EmptyToken);
        }
        let mut listener = Self {
            token: config.token.as_bytes().to_vec(),
            sockets: Vec::new(),
            bound: Vec::new(),
            failures: Vec::new(),
            counters: Arc::default(),
        };
        for &endpoint in &config.endpoints {
            match endpoint.protocol {
                ListenProtocol::Tcp | ListenProtocol::Udp => {
                    for &ip in &config.addrs {
                        listener.add(endpoint, SocketAddr::new(ip, endpoint.port), &[]);
                    }
                }
                ListenProtocol::Multicast { group } => {
                    let addr = SocketAddr::new(group, endpoint.port);
                    listener.add(endpoint, addr, &config.addrs);
                }
            }
        }
        Ok(listener)
    }

    fn add(&mut self, endpoint: Endpoint, addr: SocketAddr, interfaces: &[IpAddr]) {
        match open(endpoint.protocol, addr, interfaces) {
            Ok((socket, local)) => {
                self.sockets.push(socket);
                let endpoint = Endpoint {
                    port: local.port(),
                    ..endpoint
                };
                self.bound.push(BoundEndpoint { endpoint, local });
            }
            Err(e) => self.failures.push(BindFailure {
                endpoint,
                addr,
                reason: BindFailureReason::from(&e),
                os_error: e.to_string(),
            }),
        }
    }

    /// The endpoints that are listening.
    pub fn bound(&self) -> &[BoundEndpoint] {
        &self.bound
    }

    /// The endpoints that could not be bound, and why.
    pub fn failures(&self) -> &[BindFailure] {
        &self.failures
    }

    /// A live view of what the listener has done, for use while it serves.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.counters.clone())
    }

    /// Answers probes until `shutdown` resolves, then closes every socket.
    ///
    /// Everything runs on the caller's task; this works on a current-thread runtime.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> ListenerStats {
        let loops = futures::future::join_all(
            self.sockets
                .iter()
                .map(|socket| serve_one(socket, &self.token, &self.counters)),
        );
        tokio::select! {
            _ = loops => {}
            () = shutdown => {}
        }
        self.stats().get()
    }
}

/// Creates, configures and binds one socket.
fn open(
    protocol: ListenProtocol,
    addr: SocketAddr,
    interfaces: &[IpAddr],
) -> io::Result<(Serving, SocketAddr)> {
    let (kind, proto) = match protocol {
        ListenProtocol::Tcp => (Type::STREAM, socket2::Protocol::TCP),
        _ => (Type::DGRAM, socket2::Protocol::UDP),
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(proto))?;
    // TCP: rebind despite old connections in TIME_WAIT. Multicast: several
    // receivers may share a group. Never for unicast UDP, where the last
    // socket bound would silently take the datagrams of another.
    if !matches!(protocol, ListenProtocol::Udp) {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    if let ListenProtocol::Multicast { group } = protocol {
        join(&socket, group, interfaces)?;
    }
    let port = socket
        .local_addr()?
        .as_socket()
        .map_or(addr.port(), |a| a.port());
    let local = SocketAddr::new(addr.ip(), port);
    let socket = match protocol {
        ListenProtocol::Tcp => {
            socket.listen(1024)?;
            Serving::Tcp(TcpListener::from_std(socket.into())?)
        }
        _ => Serving::Udp(UdpSocket::from_std(socket.into())?),
    };
    Ok((socket, local))
}

/// Joins a group on the IPv4 interfaces given (any if none), or on the
/// default IPv6 interface.
fn join(socket: &Socket, group: IpAddr, interfaces: &[IpAddr]) -> io::Result<()> {
    match group {
        IpAddr::V4(group) => {
            let mut v4: Vec<Ipv4Addr> = interfaces
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(ip) => Some(*ip),
                    IpAddr::V6(_) => None,
                })
                .collect();
            if v4.is_empty() {
                v4.push(Ipv4Addr::UNSPECIFIED);
            }
            v4.iter()
                .try_for_each(|interface| socket.join_multicast_v4(&group, interface))
        }
        IpAddr::V6(group) => socket.join_multicast_v6(&group, 0),
    }
}

async fn serve_one(socket: &Serving, token: &[u8], counters: &Counters) {
    match socket {
        Serving::Tcp(listener) => loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    counters.tcp_accepted.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                }
                // Out of descriptors, or a connection reset before accept: breathe.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        },
        Serving::Udp(socket) => {
            // Large enough for any UDP datagram: echoes are never truncated.
            let mut buf = vec![0; 65536];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                // The answer is the request itself: never larger, never an amplifier.
                if crate::carries_token(&buf[..n], token) {
                    if socket.send_to(&buf[..n], from).await.is_ok() {
                        counters.udp_answered.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    counters.udp_ignored.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
