//! Traced verdicts: the kernel says which rule decided a packet's fate.
//!
//! nftables traces a packet whose `nftrace` bit is set: for every rule that
//! gives it a verdict, and for the policy of every base chain it ends in, the
//! kernel sends an event (`NFT_MSG_TRACE`) to the netfilter netlink group
//! `NFNLGRP_NFTRACE` of the packet's network namespace, as `nft monitor
//! trace` prints them. A [`Tracer`] uses this for lab hosts without touching
//! the ruleset under test:
//!
//! - a table of its own, [`TRACE_TABLE`] (`inet portolan_trace`, text from
//!   [`trace_table`]), sets the bit on probe-like packets (TCP SYN, UDP, ICMP
//!   echo requests) in `prerouting` and `output`, at priority
//!   [`TRACE_PRIORITY`], before any chain a ruleset normally registers; it
//!   has no other rule and accepts everything;
//! - a netlink socket per host namespace, joined to `NFNLGRP_NFTRACE`, is
//!   read by one thread; events are decoded (framing by the
//!   `netlink-packet-netfilter` crate, trace attributes here) and filed by
//!   packet ([`PacketKey`]: protocol, addresses, ports);
//! - [`Tracer::settle`] waits for the event that drops a packet;
//!   [`Tracer::hops`] tells every verdict given to it so far, each with its
//!   deciding rule ([`Hop`]), and [`Tracer::rule_text`] the rule's text and
//!   comment (from `nft -a list table`, by handle).
//!
//! A netlink socket that overflows loses events; the kernel says so with
//! `ENOBUFS`, counted in [`TraceStats::overruns`]. A packet whose drop event
//! was lost is never settled: the caller's timeout decides it, as without
//! tracing.
//!
//! ```no_run
//! # fn demo(lab: &portolan_lab::Lab) -> Result<(), portolan_lab::LabError> {
//! use portolan_lab::trace::{PacketKey, Tracer};
//! let tracer = Tracer::start(lab, &["api", "db"])?;
//! // … send a TCP SYN from api 198.18.0.2:40000 to db 198.18.0.3:5432 …
//! let key = PacketKey::tcp("198.18.0.2:40000".parse().unwrap(), "198.18.0.3:5432".parse().unwrap());
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! if let Some(drop) = rt.block_on(tracer.settle(key)) {
//!     println!("dropped by {}", tracer.describe(&drop));
//! }
//! # Ok(()) }
//! ```

mod decode;
mod rules;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use netlink_sys::{
    protocols::NETLINK_NETFILTER, AsyncSocket as _, AsyncSocketExt as _, TokioSocket,
};
use tokio::sync::oneshot;

use crate::error::LabError;
use crate::lab::{find_program, Lab};
use crate::netns::{self, NsThread};

pub use rules::RuleText;

use decode::{EventKind, RawEvent, NF_ACCEPT, NF_DROP};

/// Name of the lab's trace table (family `inet`) in every traced host.
pub const TRACE_TABLE: &str = "portolan_trace";

/// Hook priority of the trace table's chains: before `raw` (-300),
/// conntrack (-200) and `filter` (0), so that every chain of the ruleset
/// under test sees the packet already marked.
pub const TRACE_PRIORITY: i32 = -1000;

/// Receive buffer asked for each trace socket (the kernel may grant less;
/// an overflow is counted, see [`TraceStats::overruns`]).
const RECEIVE_BUFFER: usize = 32 << 20;

/// Packets remembered without anyone waiting for them; beyond this the
/// oldest are forgotten (a long run traces far more packets than it asks
/// about: answers, DNS).
const MAX_REMEMBERED: usize = 1 << 20;

/// Verdicts remembered per packet.
const MAX_HOPS: usize = 32;

/// The text of the trace table: sets `nftrace` on TCP SYNs, UDP datagrams
/// and ICMP echo requests in `prerouting` and `output`, and does nothing
/// else. Its rules accept (ending only this chain: every other base chain
/// of the hook still decides), so that the kernel reports one event of its
/// own per packet rather than two (the rule, then the policy). Created with `create table`, so that
/// loading it fails rather than reuses a table of that name.
pub fn trace_table() -> String {
    let chain = |name: &str, hook: &str| {
        format!(
            "  chain {name} {{\n    type filter hook {hook} priority {TRACE_PRIORITY}; policy accept;\n\
             \x20   tcp flags & (syn | ack) == syn meta nftrace set 1 accept\n\
             \x20   meta l4proto udp meta nftrace set 1 accept\n\
             \x20   icmp type echo-request meta nftrace set 1 accept\n\
             \x20   icmpv6 type echo-request meta nftrace set 1 accept\n  }}\n"
        )
    };
    format!(
        "create table inet {TRACE_TABLE}\ntable inet {TRACE_TABLE} {{\n{}{}}}\n",
        chain("prerouting", "prerouting"),
        chain("output", "output")
    )
}

/// The protocol of a traced packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP (a connection's first SYN).
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6 echo request.
    IcmpEcho,
}

/// A packet, as trace events name it: protocol, source and destination.
/// For an ICMP echo request, the source port is the echo identifier (what a
/// ping socket's local address shows) and the destination port is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PacketKey {
    /// The protocol.
    pub transport: Transport,
    /// Source address and port (or echo identifier).
    pub source: SocketAddr,
    /// Destination address and port (0 for echo).
    pub destination: SocketAddr,
}

impl PacketKey {
    /// A TCP connection attempt from `local` to `peer`.
    pub fn tcp(local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            transport: Transport::Tcp,
            source: local,
            destination: peer,
        }
    }

    /// A UDP datagram from `local` to `peer`.
    pub fn udp(local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            transport: Transport::Udp,
            source: local,
            destination: peer,
        }
    }

    /// An echo request from a ping socket whose local address is `local`
    /// (its port is the echo identifier) to `peer`'s address.
    pub fn icmp_echo(local: SocketAddr, peer: SocketAddr) -> Self {
        Self {
            transport: Transport::IcmpEcho,
            source: local,
            destination: SocketAddr::new(peer.ip(), 0),
        }
    }
}

impl fmt::Display for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::Tcp => write!(f, "tcp {} -> {}", self.source, self.destination),
            Transport::Udp => write!(f, "udp {} -> {}", self.source, self.destination),
            Transport::IcmpEcho => write!(
                f,
                "echo request {} -> {} (id {})",
                self.source.ip(),
                self.destination.ip(),
                self.source.port()
            ),
        }
    }
}

/// The verdict a hop gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HopVerdict {
    /// Accepted by this chain (later base chains of the hook still see it).
    Accept,
    /// Dropped (or rejected: `reject` drops and answers).
    Drop,
}

/// What gave a verdict: a rule (by handle) or the chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Decider {
    /// The rule with this handle.
    Rule {
        /// The rule's handle (`nft -a list` shows it).
        handle: u64,
    },
    /// The base chain's policy.
    Policy,
}

/// One verdict of the ruleset under test for a packet, and what gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hop {
    /// The host (as named to [`Tracer::start`]) whose ruleset gave it.
    pub host: String,
    /// The table's family, e.g. `inet`.
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule or policy that gave the verdict.
    pub decider: Decider,
    /// The verdict.
    pub verdict: HopVerdict,
}

/// What a tracer saw so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TraceStats {
    /// Trace events decoded.
    pub events: u64,
    /// Times a trace socket overflowed (`ENOBUFS`): events were lost, so
    /// some packets may never be settled by an event.
    pub overruns: u64,
    /// Packets forgotten unasked to bound memory.
    pub forgotten: u64,
}

/// Reads the trace events of a set of lab hosts; see the module
/// documentation. Stops reading when dropped.
pub struct Tracer {
    shared: Arc<Shared>,
    /// host → namespace name.
    namespaces: HashMap<String, String>,
    /// Drives the sockets (one worker thread); dropped to stop reading.
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("hosts", &self.namespaces.len())
            .field("stats", &self.stats())
            .finish()
    }
}

#[derive(Default)]
struct Shared {
    packets: Mutex<Packets>,
    /// Flush markers awaited: (host, marker packet) → who waits.
    markers: Mutex<HashMap<(String, PacketKey), oneshot::Sender<()>>>,
    events: AtomicU64,
    overruns: AtomicU64,
    forgotten: AtomicU64,
    /// (host, family, table) → its rules, listed once.
    rules: Mutex<HashMap<(String, String, String), Arc<rules::TableRules>>>,
}

#[derive(Default)]
struct Packets {
    by_key: HashMap<PacketKey, Entry>,
    /// Keys in the order they were first seen, for forgetting the oldest.
    order: VecDeque<PacketKey>,
}

#[derive(Default)]
struct Entry {
    hops: Vec<Hop>,
    waiters: Vec<oneshot::Sender<Hop>>,
}

impl Shared {
    fn packets(&self) -> MutexGuard<'_, Packets> {
        self.packets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, key: PacketKey, hop: Hop) {
        let mut packets = self.packets();
        if !packets.by_key.contains_key(&key) {
            packets.order.push_back(key);
            while packets.order.len() > MAX_REMEMBERED {
                let Some(old) = packets.order.pop_front() else {
                    break;
                };
                match packets.by_key.get(&old) {
                    Some(entry) if entry.waiters.iter().any(|w| !w.is_closed()) => {
                        packets.order.push_back(old)
                    }
                    _ => {
                        packets.by_key.remove(&old);
                        self.forgotten.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        let entry = packets.by_key.entry(key).or_default();
        if hop.verdict == HopVerdict::Drop {
            for waiter in entry.waiters.drain(..) {
                let _ = waiter.send(hop.clone());
            }
        }
        if entry.hops.len() < MAX_HOPS {
            entry.hops.push(hop);
        }
    }
}

impl Tracer {
    /// Loads the trace table ([`trace_table`]) into each of `hosts` and
    /// starts reading their trace events ([`Tracer::listen`]).
    pub fn start(lab: &Lab, hosts: &[&str]) -> Result<Tracer, LabError> {
        let tracer = Tracer::listen(lab, hosts)?;
        let table = trace_table();
        for host in hosts {
            lab.load_nft(host, &table)?;
        }
        Ok(tracer)
    }

    /// Starts reading the trace events of `hosts` whose trace table is
    /// loaded by the caller (e.g. in the same `nft -f` run as their
    /// ruleset): opens one netlink socket per host namespace, joined to
    /// `NFNLGRP_NFTRACE`, and a thread that reads them all.
    ///
    /// Fails when the kernel has no nftables tracing (no `nfnetlink`) or
    /// refuses the socket.
    pub fn listen(lab: &Lab, hosts: &[&str]) -> Result<Tracer, LabError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ptl-trace")
            .enable_io()
            .build()
            .map_err(|e| LabError::io("start a tokio runtime", "trace reader", e))?;
        let shared = Arc::new(Shared::default());
        let mut namespaces = HashMap::new();
        for host in hosts {
            let namespace = lab.netns_name(host)?;
            let ns = namespace.clone();
            let handle = runtime.handle().clone();
            // Created inside the namespace (a socket belongs to the
            // namespace of the thread that opens it), registered with the
            // reader's runtime.
            let socket = lab
                .run_in(host, move || {
                    let _entered = handle.enter();
                    open_socket(&ns)
                })?
                .join()??;
            runtime.spawn(read_one(host.to_string(), socket, Arc::clone(&shared)));
            namespaces.insert(host.to_string(), namespace);
        }
        Ok(Tracer {
            shared,
            namespaces,
            runtime: Some(runtime),
        })
    }

    /// Waits until a traced ruleset drops the packet and returns that drop.
    ///
    /// Returns at once when the drop was already seen; `None` when the
    /// tracer stops first. Never times out: race it with the probe (a
    /// packet that is accepted, or whose event was lost, is never settled).
    pub fn settle(
        &self,
        key: PacketKey,
    ) -> impl std::future::Future<Output = Option<Hop>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        {
            let mut packets = self.shared.packets();
            let entry = packets.by_key.entry(key).or_default();
            match entry.hops.iter().find(|h| h.verdict == HopVerdict::Drop) {
                Some(drop) => {
                    let _ = tx.send(drop.clone());
                }
                None => entry.waiters.push(tx),
            }
        }
        async move { rx.await.ok() }
    }

    /// Every verdict given to the packet so far, in the order seen.
    pub fn hops(&self, key: &PacketKey) -> Vec<Hop> {
        self.shared
            .packets()
            .by_key
            .get(key)
            .map(|e| e.hops.clone())
            .unwrap_or_default()
    }

    /// Forgets the packet (once its probe is decided), returning its hops.
    pub fn take(&self, key: &PacketKey) -> Vec<Hop> {
        self.shared
            .packets()
            .by_key
            .remove(key)
            .map(|e| e.hops)
            .unwrap_or_default()
    }

    /// Waits (at most `limit`) until the events of every packet already
    /// sent in the traced hosts have been read: the kernel emits an event
    /// while it handles the packet, but the reader files it a little later.
    /// Sends one marker datagram on loopback in each host (traced by the
    /// trace table like any UDP datagram) and waits for its event: a
    /// socket delivers events in order. Returns whether every marker came.
    pub async fn flush(&self, limit: std::time::Duration) -> bool {
        let mut receivers = Vec::new();
        for (host, namespace) in &self.namespaces {
            let bound = netns::spawn_in(namespace, || {
                std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            })
            .and_then(NsThread::join);
            let Ok(Ok(socket)) = bound else {
                return false;
            };
            let Ok(local) = socket.local_addr() else {
                return false;
            };
            let peer = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 9));
            let (tx, rx) = oneshot::channel();
            self.shared
                .markers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((host.clone(), PacketKey::udp(local, peer)), tx);
            // Dropped or not by the ruleset under test, the trace table
            // (first in the hook) reports it. The socket stays in its
            // namespace whatever thread sends.
            let _ = socket.send_to(b"portolan trace flush", peer);
            receivers.push(rx);
        }
        let all = futures::future::join_all(receivers);
        let arrived = matches!(
            tokio::time::timeout(limit, all).await,
            Ok(results) if results.iter().all(Result::is_ok)
        );
        self.shared
            .markers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        arrived
    }

    /// What the tracer saw so far.
    pub fn stats(&self) -> TraceStats {
        TraceStats {
            events: self.shared.events.load(Ordering::Relaxed),
            overruns: self.shared.overruns.load(Ordering::Relaxed),
            forgotten: self.shared.forgotten.load(Ordering::Relaxed),
        }
    }

    /// The text and comment of the rule that gave a hop's verdict (`None`
    /// for a policy, or when the rule is not found), from `nft -a list
    /// table` in the host's namespace, listed once per table and cached.
    pub fn rule_text(&self, hop: &Hop) -> Option<RuleText> {
        let Decider::Rule { handle } = hop.decider else {
            return None;
        };
        let id = (hop.host.clone(), hop.family.clone(), hop.table.clone());
        let cached = self
            .shared
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        let table = match cached {
            Some(table) => table,
            None => {
                let namespace = self.namespaces.get(&hop.host)?;
                let listing = list_table(namespace, &hop.family, &hop.table).unwrap_or_default();
                let table = Arc::new(rules::parse_listing(&listing));
                self.shared
                    .rules
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, Arc::clone(&table));
                table
            }
        };
        table.get(&(hop.chain.clone(), handle)).cloned()
    }

    /// Lists, in parallel, the tables of these hops that are not listed yet,
    /// so that [`Tracer::rule_text`] finds them cached.
    pub fn prefetch_rules<'a>(&self, hops: impl IntoIterator<Item = &'a Hop>) {
        let mut wanted: Vec<&Hop> = Vec::new();
        {
            let cached = self
                .shared
                .rules
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for hop in hops {
                let listed =
                    cached.contains_key(&(hop.host.clone(), hop.family.clone(), hop.table.clone()));
                let queued = wanted
                    .iter()
                    .any(|w| w.host == hop.host && w.family == hop.family && w.table == hop.table);
                if !listed && !queued && matches!(hop.decider, Decider::Rule { .. }) {
                    wanted.push(hop);
                }
            }
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get() * 2)
            .unwrap_or(4)
            .clamp(2, 16)
            .min(wanted.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(hop) = wanted.get(i) else { break };
                    let _ = self.rule_text(hop);
                });
            }
        });
    }

    /// A hop in words: ``rule 17 `tcp dport 9000 accept` (comment "…") in
    /// chain input of table inet portolan on host db`` or `policy drop of
    /// chain input of table inet portolan on host db`.
    pub fn describe(&self, hop: &Hop) -> String {
        describe(hop, self.rule_text(hop).as_ref())
    }

    /// Stops reading events (also done on drop). The trace tables stay
    /// (they go with the namespaces; [`Tracer::remove_tables`] removes them
    /// from namespaces that outlive the tracer).
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Deletes the trace table from every traced host (only the table this
    /// tracer's [`trace_table`] created: it was made with `create table`).
    pub fn remove_tables(&self) -> Result<(), LabError> {
        for namespace in self.namespaces.values() {
            nft_in(namespace, &format!("delete table inet {TRACE_TABLE}\n"))?;
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Aborts the reading tasks and closes the sockets.
            runtime.shutdown_background();
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The early verdict of traced probes (portolan-probe's
/// [`EarlyVerdictFn`](portolan_probe::EarlyVerdictFn)): an attempt ends when
/// the trace shows its packet dropped. Only probes with a source address
/// are known before they are sent; others end by themselves.
pub fn early_verdict(tracer: Arc<Tracer>) -> portolan_probe::EarlyVerdictFn {
    Arc::new(move |_spec, flow| {
        if flow.local.ip().is_unspecified() {
            return None;
        }
        let settled = tracer.settle(packet_key(flow.kind, flow.local, flow.peer));
        Some(Box::pin(async move {
            match settled.await {
                Some(_) => "trace".to_owned(),
                // The tracer stopped: let the attempt end by itself.
                None => futures::future::pending().await,
            }
        }))
    })
}

/// The traced packet of a probe's attempt (portolan-probe's flow kinds).
pub fn packet_key(
    kind: portolan_probe::FlowKind,
    local: SocketAddr,
    peer: SocketAddr,
) -> PacketKey {
    match kind {
        portolan_probe::FlowKind::Tcp => PacketKey::tcp(local, peer),
        portolan_probe::FlowKind::Udp => PacketKey::udp(local, peer),
        portolan_probe::FlowKind::IcmpEcho => PacketKey::icmp_echo(local, peer),
    }
}

/// A hop in words, given its rule's text when known.
pub fn describe(hop: &Hop, rule: Option<&RuleText>) -> String {
    let verdict = match hop.verdict {
        HopVerdict::Accept => "accept",
        HopVerdict::Drop => "drop",
    };
    let place = format!(
        "chain {} of table {} {} on host {}",
        hop.chain, hop.family, hop.table, hop.host
    );
    match (hop.decider, rule) {
        (Decider::Policy, _) => format!("policy {verdict} of {place}"),
        (Decider::Rule { handle }, Some(rule)) => {
            let comment = rule
                .comment
                .as_ref()
                .map(|c| format!(" (comment {c:?})"))
                .unwrap_or_default();
            format!("rule {handle} `{}`{comment} in {place}", rule.text)
        }
        (Decider::Rule { handle }, None) => format!("rule {handle} ({verdict}) in {place}"),
    }
}

/// Opens a trace socket in the calling thread's namespace, registered with
/// the tokio runtime the thread entered.
fn open_socket(namespace: &str) -> Result<TokioSocket, LabError> {
    let fail = |action: &str, e: std::io::Error| LabError::namespace(namespace, action, e);
    let mut socket = TokioSocket::new(NETLINK_NETFILTER)
        .map_err(|e| fail("open a netfilter netlink socket", e))?;
    let raw = socket.socket_mut();
    raw.bind_auto()
        .map_err(|e| fail("bind the trace socket", e))?;
    raw.add_membership(decode::NFNLGRP_NFTRACE)
        .map_err(|e| fail("join the nftables trace group", e))?;
    // As root the buffer may exceed net.core.rmem_max; otherwise take what
    // is allowed.
    if nix::sys::socket::setsockopt(
        &*raw,
        nix::sys::socket::sockopt::RcvBufForce,
        &RECEIVE_BUFFER,
    )
    .is_err()
    {
        let _ = raw.set_rx_buf_sz(RECEIVE_BUFFER);
    }
    Ok(socket)
}

/// Trace ids seen recently in one namespace, with their packet: only the
/// first event of a chain traversal carries the packet's headers. Two
/// generations bound the memory.
#[derive(Default)]
struct RecentIds {
    current: HashMap<u32, PacketKey>,
    previous: HashMap<u32, PacketKey>,
}

/// Trace ids remembered per generation.
const IDS_PER_GENERATION: usize = 1 << 16;

impl RecentIds {
    fn insert(&mut self, id: u32, key: PacketKey) {
        if self.current.len() >= IDS_PER_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(id, key);
    }

    fn get(&self, id: u32) -> Option<PacketKey> {
        self.current
            .get(&id)
            .or_else(|| self.previous.get(&id))
            .copied()
    }
}

/// Reads one namespace's trace socket until the runtime stops or the
/// socket fails.
async fn read_one(host: String, socket: TokioSocket, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut ids = RecentIds::default();
    loop {
        buf.clear();
        match socket.recv(&mut buf).await {
            Ok(()) => {
                for event in decode::decode_datagram(&buf) {
                    shared.events.fetch_add(1, Ordering::Relaxed);
                    file_event(&host, event, &mut ids, &shared);
                }
            }
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                shared.overruns.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

/// Files an event's verdict under its packet. Events of the trace table
/// itself, and rule events that do not end the chain's say (continue, jump,
/// goto, return), are not verdicts.
fn file_event(host: &str, event: RawEvent, ids: &mut RecentIds, shared: &Shared) {
    if let Some(key) = event.packet {
        ids.insert(event.id, key);
    }
    if event.table == TRACE_TABLE && event.family == "inet" {
        if let Some(key) = event.packet {
            let waiting = shared
                .markers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&(host.to_string(), key));
            if let Some(waiting) = waiting {
                let _ = waiting.send(());
            }
        }
        return;
    }
    let Some(key) = event.packet.or_else(|| ids.get(event.id)) else {
        return;
    };
    let decider = match (event.kind, event.handle) {
        (EventKind::Rule, Some(handle)) => Decider::Rule { handle },
        (EventKind::Policy, _) => Decider::Policy,
        _ => return,
    };
    let verdict = match event.verdict {
        // NF_DROP_ERR(e) keeps NF_DROP in the low byte.
        Some(code) if code >= 0 && code & 0xff == NF_DROP => HopVerdict::Drop,
        Some(code) if code >= 0 && code & 0xff == NF_ACCEPT => HopVerdict::Accept,
        _ => return,
    };
    shared.record(
        key,
        Hop {
            host: host.to_string(),
            family: event.family.to_string(),
            table: event.table,
            chain: event.chain,
            decider,
            verdict,
        },
    );
}

/// Runs `nft -f -` with `input` in the named namespace; returns its output.
fn nft_in(namespace: &str, input: &str) -> Result<String, LabError> {
    let nft = find_program("nft").ok_or(LabError::NftMissing)?;
    let text = input.to_string();
    let program = nft.clone();
    let output = netns::spawn_in(
        namespace,
        move || -> std::io::Result<std::process::Output> {
            let mut child = Command::new(&program)
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                // A write error shows in nft's status and standard error.
                let _ = stdin.write_all(text.as_bytes());
            }
            child.wait_with_output()
        },
    )?
    .join()?
    .map_err(|e| LabError::io("run nft -f -", &nft, e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::NftFailed {
            host: namespace.to_string(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// `nft -a list table FAMILY NAME` in the named namespace (`-f` input
/// does not print handles, so the listing is asked with arguments).
fn list_table(namespace: &str, family: &str, table: &str) -> Result<String, LabError> {
    let nft = find_program("nft").ok_or(LabError::NftMissing)?;
    let args = ["-a", "list", "table", family, table].map(str::to_string);
    let program = nft.clone();
    let output = netns::spawn_in(namespace, move || {
        Command::new(&program).args(&args).output()
    })?
    .join()?
    .map_err(|e| LabError::io("run nft -a list table", &nft, e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::NftFailed {
            host: namespace.to_string(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}
