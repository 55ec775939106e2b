//! The probe engine: bounded concurrency on the caller's task, timeouts, retries.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{lookup_host, TcpSocket, TcpStream, UdpSocket};
use tokio::time::{timeout, timeout_at, Instant};

use crate::proxy::Proxy;
use crate::tls::TlsContext;
use crate::types::{
    OutcomeClass, ProbeDetails, ProbeOutcome, ProbeResult, ProbeSpec, Protocol, Target, UdpMode,
};

/// The packet an attempt is about to send, for an [`EarlyVerdictFn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptFlow {
    /// What is sent.
    pub kind: FlowKind,
    /// The local address (for an ICMP echo, its port is the echo identifier).
    /// Its IP is unspecified for a TCP probe without a source address (the
    /// kernel picks it at connect).
    pub local: SocketAddr,
    /// The address sent to (port 0 for an ICMP echo).
    pub peer: SocketAddr,
}

/// What an attempt sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// A TCP connection attempt.
    Tcp,
    /// A UDP datagram.
    Udp,
    /// An ICMP or ICMPv6 echo request.
    IcmpEcho,
}

/// Asked once per TCP, UDP or ICMP echo attempt, once its local address is
/// known and before it sends, for a future that ends the attempt early: when
/// the future completes before the attempt does, the attempt is filtered
/// (not timed out, so not retried) and its output becomes
/// [`ProbeDetails::settled_early`]. Meant for a firewall that can say it
/// dropped the packet (the lab's nftables trace) instead of a wait.
pub type EarlyVerdictFn = Arc<
    dyn Fn(&ProbeSpec, &AttemptFlow) -> Option<futures::future::BoxFuture<'static, String>>
        + Send
        + Sync,
>;

/// Called after each probe completes, on the caller's task.
pub type ProgressFn = Arc<dyn Fn(Progress<'_>) + Send + Sync>;

/// How far a run has got, passed to the [`ProgressFn`].
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Probes completed so far, this one included.
    pub done: usize,
    /// Probes in the run.
    pub total: usize,
    /// The probe that just completed.
    pub result: &'a ProbeResult,
}

/// How a run of probes behaves.
#[derive(Clone)]
pub struct ProbeOptions {
    /// Probes in flight at once (at least 1).
    pub concurrency: usize,
    /// Time allowed for one attempt (and for the DNS resolution).
    pub timeout: Duration,
    /// Further attempts after an attempt timed out; other failures are final.
    pub retries: u32,
    /// HTTP proxy for TLS probes; none by default, see [`Proxy::from_env`].
    pub proxy: Option<Proxy>,
    /// Trusted roots for TLS verification; the system's if absent.
    pub tls_roots: Option<Arc<rustls::RootCertStore>>,
    /// Whether a TLS handshake with an untrusted certificate fails the probe
    /// (it is always reported in [`crate::TlsDetails::verified`]).
    pub tls_require_verified: bool,
    /// Called after each probe.
    pub progress: Option<ProgressFn>,
    /// Ends attempts early; see [`EarlyVerdictFn`]. None by default.
    pub early_verdict: Option<EarlyVerdictFn>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            concurrency: 512,
            timeout: Duration::from_secs(3),
            retries: 1,
            proxy: None,
            tls_roots: None,
            tls_require_verified: true,
            progress: None,
            early_verdict: None,
        }
    }
}

impl fmt::Debug for ProbeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeOptions")
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("proxy", &self.proxy)
            .field("tls_roots", &self.tls_roots.as_ref().map(|r| r.len()))
            .field("tls_require_verified", &self.tls_require_verified)
            .field("progress", &self.progress.is_some())
            .field("early_verdict", &self.early_verdict.is_some())
            .finish()
    }
}

/// Runs the probes, at most `options.concurrency` at a time, and returns their
/// results in the order of `probes`.
///
/// All probes are polled on the caller's task (no spawning), so every socket is
/// created on the calling thread; this works on a current-thread runtime.
pub async fn run_probes(probes: Vec<ProbeSpec>, options: &ProbeOptions) -> Vec<ProbeResult> {
    let needs_tls = probes
        .iter()
        .any(|p| matches!(p.protocol, Protocol::Tls { .. }));
    let ctx = Context {
        options,
        tls: needs_tls.then(|| TlsContext::new(options.tls_roots.clone())),
    };
    let total = probes.len();
    let mut results: Vec<Option<ProbeResult>> = vec![None; total];
    let mut stream = futures::stream::iter(probes.into_iter().enumerate())
        .map(|(index, spec)| {
            let ctx = &ctx;
            async move { (index, probe(spec, ctx).await) }
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut done = 0;
    while let Some((index, result)) = stream.next().await {
        done += 1;
        if let Some(progress) = &options.progress {
            progress(Progress {
                done,
                total,
                result: &result,
            });
        }
        results[index] = Some(result);
    }
    results.into_iter().flatten().collect()
}

/// What a run shares between its probes.
pub(crate) struct Context<'a> {
    options: &'a ProbeOptions,
    /// Built once, if any probe needs TLS.
    tls: Option<Result<TlsContext, String>>,
}

/// The outcome of one attempt.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub class: OutcomeClass,
    pub os_error: Option<String>,
    /// Timed out: worth another attempt.
    pub timed_out: bool,
    /// Ended by the early verdict, with its output.
    pub settled_early: Option<String>,
}

impl Attempt {
    pub(crate) fn open() -> Self {
        Self::new(OutcomeClass::Open, None)
    }

    pub(crate) fn new(class: OutcomeClass, os_error: Option<String>) -> Self {
        Self {
            class,
            os_error,
            timed_out: false,
            settled_early: None,
        }
    }

    pub(crate) fn timed_out(class: OutcomeClass) -> Self {
        Self {
            class,
            os_error: None,
            timed_out: true,
            settled_early: None,
        }
    }

    /// Ended by an [`EarlyVerdictFn`]: filtered, final.
    pub(crate) fn early(reason: String) -> Self {
        Self {
            class: OutcomeClass::Filtered,
            os_error: None,
            timed_out: false,
            settled_early: Some(reason),
        }
    }

    /// A failure on the way to the target, classified.
    pub(crate) fn io(err: &io::Error) -> Self {
        Self::new(classify(err), Some(err.to_string()))
    }

    /// A failure before anything was sent.
    pub(crate) fn local(message: impl Into<String>) -> Self {
        Self::new(OutcomeClass::LocalError, Some(message.into()))
    }
}

/// Classifies an error of connect, send or receive.
pub(crate) fn classify(err: &io::Error) -> OutcomeClass {
    use io::ErrorKind::*;
    match err.kind() {
        // A reset while connecting comes from the host or a device in front of it.
        ConnectionRefused | ConnectionReset => OutcomeClass::Refused,
        HostUnreachable | NetworkUnreachable | NetworkDown => OutcomeClass::Unreachable,
        // EPERM: dropped by a local firewall rule; ETIMEDOUT: the kernel gave up.
        TimedOut | PermissionDenied => OutcomeClass::Filtered,
        _ => OutcomeClass::LocalError,
    }
}

async fn probe(spec: ProbeSpec, ctx: &Context<'_>) -> ProbeResult {
    let start = Instant::now();
    let mut details = ProbeDetails::default();
    let (attempt, attempts) = attempts(&spec, ctx, &mut details).await;
    ProbeResult {
        outcome: ProbeOutcome {
            class: attempt.class,
            os_error: attempt.os_error,
            elapsed: start.elapsed(),
            attempts,
        },
        spec,
        details,
    }
}

/// Resolves the target, then attempts until an attempt does not time out or
/// the retries are spent.
async fn attempts(
    spec: &ProbeSpec,
    ctx: &Context<'_>,
    details: &mut ProbeDetails,
) -> (Attempt, u32) {
    let options = ctx.options;
    let proxy = match (&spec.protocol, &options.proxy) {
        (Protocol::Tls { .. }, Some(proxy)) if proxy.applies_to(&spec.target.host_str()) => {
            Some(proxy)
        }
        _ => None,
    };
    // Through a proxy, the proxy resolves the name.
    let addrs = match proxy {
        Some(_) => Vec::new(),
        None => match resolve(&spec.target, options.timeout, details).await {
            Ok(addrs) => addrs,
            Err(attempt) => return (attempt, 0),
        },
    };
    let early = options.early_verdict.as_ref();
    let mut used = 0;
    loop {
        used += 1;
        let deadline = Instant::now() + options.timeout;
        let attempt = match &spec.protocol {
            Protocol::Tcp => tcp(spec, &addrs, deadline, early, details).await,
            Protocol::Udp { mode } => udp(spec, mode, &addrs, deadline, early, details).await,
            Protocol::Multicast { token } => {
                multicast(spec, token, &addrs, deadline, details).await
            }
            Protocol::IcmpEcho { token } => {
                // The sequence number tells the attempts apart.
                let sequence = u16::try_from(used).unwrap_or(u16::MAX);
                crate::icmp::attempt(spec, token, &addrs, sequence, deadline, early, details).await
            }
            Protocol::Tls { sni } => match &ctx.tls {
                Some(Ok(tls)) => {
                    let sni = sni.clone().unwrap_or_else(|| spec.target.host_str());
                    tls.attempt(spec, &sni, &addrs, proxy, options, deadline, details)
                        .await
                }
                Some(Err(e)) => Attempt::local(e.clone()),
                None => Attempt::local("TLS was not set up"),
            },
        };
        details.settled_early.clone_from(&attempt.settled_early);
        if !attempt.timed_out || used > options.retries {
            return (attempt, used);
        }
    }
}

/// Resolves a host name with the system resolver, timed.
async fn resolve(
    target: &Target,
    limit: Duration,
    details: &mut ProbeDetails,
) -> Result<Vec<SocketAddr>, Attempt> {
    let (name, port) = match target {
        Target::Addr(addr) => return Ok(vec![*addr]),
        Target::Host { name, port } => (name.as_str(), *port),
    };
    let literal = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
    if let Ok(ip) = literal.unwrap_or(name).parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let start = Instant::now();
    let answer = timeout(limit, lookup_host((name, port))).await;
    details.dns_time = Some(start.elapsed());
    let dns_failed = |message: String| Attempt::new(OutcomeClass::DnsFailed, Some(message));
    match answer {
        Err(_) => Err(dns_failed(format!("no answer within {limit:?}"))),
        Ok(Err(e)) => Err(dns_failed(e.to_string())),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            for addr in &addrs {
                if !details.resolved.contains(&addr.ip()) {
                    details.resolved.push(addr.ip());
                }
            }
            if addrs.is_empty() {
                Err(dns_failed(format!("{name} has no address")))
            } else {
                Ok(addrs)
            }
        }
    }
}

/// The local address to bind: the spec's source, or the unspecified address
/// of the peer's family.
fn local_addr(spec: &ProbeSpec, peer: SocketAddr) -> SocketAddr {
    let ip = spec.source_ip.unwrap_or(match peer {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    });
    SocketAddr::new(ip, spec.source_port.unwrap_or(0))
}

async fn tcp(
    spec: &ProbeSpec,
    addrs: &[SocketAddr],
    deadline: Instant,
    early: Option<&EarlyVerdictFn>,
    details: &mut ProbeDetails,
) -> Attempt {
    match connect_with(spec, addrs, deadline, early, details).await {
        Ok(stream) => {
            // Reset rather than close: no TIME_WAIT, so a fixed source port can
            // be used again at once and long runs do not exhaust ports.
            let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            Attempt::open()
        }
        Err(attempt) => attempt,
    }
}

/// Connects to the first address that accepts, within the deadline.
pub(crate) async fn connect(
    spec: &ProbeSpec,
    addrs: &[SocketAddr],
    deadline: Instant,
    details: &mut ProbeDetails,
) -> Result<TcpStream, Attempt> {
    connect_with(spec, addrs, deadline, None, details).await
}

/// [`connect`], each connection attempt raced with its early verdict.
async fn connect_with(
    spec: &ProbeSpec,
    addrs: &[SocketAddr],
    deadline: Instant,
    early: Option<&EarlyVerdictFn>,
    details: &mut ProbeDetails,
) -> Result<TcpStream, Attempt> {
    let mut last = Attempt::local("no address to connect to");
    for &peer in addrs {
        details.peer = Some(peer);
        match connect_one(spec, peer, deadline, early, &mut details.local).await {
            Ok(stream) => {
                details.local = stream.local_addr().ok();
                return Ok(stream);
            }
            Err(attempt) if attempt.timed_out || attempt.settled_early.is_some() => {
                return Err(attempt)
            }
            Err(attempt) => last = attempt,
        }
    }
    Err(last)
}

async fn connect_one(
    spec: &ProbeSpec,
    peer: SocketAddr,
    deadline: Instant,
    early: Option<&EarlyVerdictFn>,
    bound: &mut Option<SocketAddr>,
) -> Result<TcpStream, Attempt> {
    let local = |e: io::Error| Attempt::local(e.to_string());
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(local)?;
    // An early verdict needs the local port before the SYN: bind first.
    if spec.source_ip.is_some() || spec.source_port.is_some() || early.is_some() {
        if spec.source_port.is_some() {
            socket.set_reuseaddr(true).map_err(local)?;
        }
        socket.bind(local_addr(spec, peer)).map_err(local)?;
    }
    let verdict = match early {
        Some(early) => {
            let here = socket.local_addr().map_err(local)?;
            *bound = Some(here);
            early(
                spec,
                &AttemptFlow {
                    kind: FlowKind::Tcp,
                    local: here,
                    peer,
                },
            )
        }
        None => None,
    };
    match race_early(verdict, timeout_at(deadline, socket.connect(peer))).await {
        Err(reason) => Err(Attempt::early(reason)),
        Ok(Err(_)) => Err(Attempt::timed_out(OutcomeClass::Filtered)),
        Ok(Ok(Err(e))) => Err(Attempt::io(&e)),
        Ok(Ok(Ok(stream))) => Ok(stream),
    }
}

/// Runs `work`, unless the early verdict completes first (then its output
/// is the error). When both are ready, the work's result wins.
pub(crate) async fn race_early<T>(
    verdict: Option<futures::future::BoxFuture<'static, String>>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    let Some(verdict) = verdict else {
        return Ok(work.await);
    };
    tokio::pin!(work);
    tokio::select! {
        biased;
        done = &mut work => Ok(done),
        reason = verdict => Err(reason),
    }
}

/// A non-blocking UDP socket bound to `local`, configured before the bind.
fn udp_socket(
    local: SocketAddr,
    reuse: bool,
    configure: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(local),
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if reuse {
        socket.set_reuse_address(true)?;
    }
    configure(&socket)?;
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    UdpSocket::from_std(socket.into())
}

async fn udp(
    spec: &ProbeSpec,
    mode: &UdpMode,
    addrs: &[SocketAddr],
    deadline: Instant,
    early: Option<&EarlyVerdictFn>,
    details: &mut ProbeDetails,
) -> Attempt {
    let Some(&peer) = addrs.first() else {
        return Attempt::local("no address to send to");
    };
    details.peer = Some(peer);
    let reuse = spec.source_port.is_some();
    let socket = match udp_socket(local_addr(spec, peer), reuse, |_| Ok(())) {
        Ok(socket) => socket,
        Err(e) => return Attempt::local(e.to_string()),
    };
    // Connected, so that ICMP errors come back as errors of recv().
    if let Err(e) = socket.connect(peer).await {
        return Attempt::io(&e);
    }
    details.local = socket.local_addr().ok();
    let (request, silence) = match mode {
        UdpMode::PortolanListener { token } => (
            crate::token_datagram(token, &spec.id),
            OutcomeClass::Filtered,
        ),
        UdpMode::RealService { payload } => (payload.clone(), OutcomeClass::OpenOrFiltered),
    };
    let verdict = match (early, details.local) {
        (Some(early), Some(local)) => early(
            spec,
            &AttemptFlow {
                kind: FlowKind::Udp,
                local,
                peer,
            },
        ),
        _ => None,
    };
    let exchange = async {
        if let Err(e) = socket.send(&request).await {
            return Attempt::io(&e);
        }
        // One byte more than the request, to tell a longer reply from an echo.
        let mut buf = vec![0; request.len() + 1];
        loop {
            match timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => return Attempt::timed_out(silence),
                Ok(Err(e)) => return Attempt::io(&e),
                Ok(Ok(n)) => {
                    if matches!(mode, UdpMode::RealService { .. }) || buf[..n] == request[..] {
                        return Attempt::open();
                    }
                }
            }
        }
    };
    race_early(verdict, exchange)
        .await
        .unwrap_or_else(Attempt::early)
}

async fn multicast(
    spec: &ProbeSpec,
    token: &str,
    addrs: &[SocketAddr],
    deadline: Instant,
    details: &mut ProbeDetails,
) -> Attempt {
    let Some(&group) = addrs.first() else {
        return Attempt::local("no group to send to");
    };
    if !group.ip().is_multicast() {
        return Attempt::local(format!("{} is not a multicast group", group.ip()));
    }
    details.peer = Some(group);
    let source = spec.source_ip;
    let configure = |socket: &Socket| match group.ip() {
        IpAddr::V4(_) => {
            socket.set_multicast_ttl_v4(1)?;
            socket.set_multicast_loop_v4(true)?;
            match source {
                Some(IpAddr::V4(interface)) => socket.set_multicast_if_v4(&interface),
                _ => Ok(()),
            }
        }
        IpAddr::V6(_) => {
            socket.set_multicast_hops_v6(1)?;
            socket.set_multicast_loop_v6(true)
        }
    };
    let reuse = spec.source_port.is_some();
    let socket = match udp_socket(local_addr(spec, group), reuse, configure) {
        Ok(socket) => socket,
        Err(e) => return Attempt::local(e.to_string()),
    };
    let request = crate::token_datagram(token, &spec.id);
    if let Err(e) = socket.send_to(&request, group).await {
        return Attempt::io(&e);
    }
    details.local = socket.local_addr().ok();
    let mut buf = vec![0; request.len() + 1];
    loop {
        match timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => return Attempt::timed_out(OutcomeClass::Filtered),
            // An unconnected socket: errors are not about the group.
            Ok(Err(_)) => continue,
            Ok(Ok((n, from))) => {
                if buf[..n] == request[..] {
                    details.responders.push(from);
                    return Attempt::open();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let class = |kind: io::ErrorKind| classify(&io::Error::from(kind));
        assert_eq!(
            class(io::ErrorKind::ConnectionRefused),
            OutcomeClass::Refused
        );
        assert_eq!(
            class(io::ErrorKind::HostUnreachable),
            OutcomeClass::Unreachable
        );
        assert_eq!(
            class(io::ErrorKind::NetworkUnreachable),
            OutcomeClass::Unreachable
        );
        assert_eq!(class(io::ErrorKind::TimedOut), OutcomeClass::Filtered);
        assert_eq!(
            class(io::ErrorKind::PermissionDenied),
            OutcomeClass::Filtered
        );
        assert_eq!(class(io::ErrorKind::AddrInUse), OutcomeClass::LocalError);
    }

    #[test]
    fn local_address_follows_the_peer_family() {
        let spec = ProbeSpec::new(
            "x",
            "[::1]:80".parse::<SocketAddr>().expect("addr"),
            Protocol::Tcp,
        )
        .with_source_port(4000);
        let peer = "[::1]:80".parse().expect("addr");
        assert_eq!(local_addr(&spec, peer), "[::]:4000".parse().expect("addr"));
        let spec = spec.with_source_ip("127.0.0.2".parse().expect("ip"));
        assert_eq!(
            local_addr(&spec, peer),
            "127.0.0.2:4000".parse().expect("addr")
        );
    }
}
