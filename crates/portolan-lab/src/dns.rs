//! The lab's DNS: a minimal authoritative responder for the A and AAAA
//! records of the lab's name table, and the client that queries it.
//!
//! External endpoints of a spec are host names (`slack.com`) or wildcard
//! patterns (`monitoring.*.amazonaws.com`). In the lab they live in
//! namespaces of their own, and the lab answers for their names from the
//! outside world's namespace, so that a probe towards `slack.com` goes where
//! the lab put it and never leaves the machine. Only the two record types a
//! probe needs are served; everything else gets an empty answer, unknown
//! names get NXDOMAIN, and answers always fit in one 512-byte datagram.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// The port DNS is served on.
pub const DNS_PORT: u16 = 53;

/// Largest DNS message over UDP without EDNS.
const MAX_UDP: usize = 512;
/// Time to live of the answers, in seconds (the lab lives for seconds).
const TTL: u32 = 60;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_RD: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;
const RCODE_FORMERR: u16 = 1;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_NOTIMP: u16 = 4;

/// The record types the lab serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => TYPE_A,
            RecordType::Aaaa => TYPE_AAAA,
        }
    }
}

/// Why a name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name cannot be written in a DNS message.
    #[error("invalid DNS name {0:?}")]
    InvalidName(String),
    /// The server does not know the name.
    #[error("{0} does not exist (NXDOMAIN)")]
    NxDomain(String),
    /// The server answered with another error code.
    #[error("the DNS server answered with error code {0}")]
    ServerError(u16),
    /// The answer could not be read.
    #[error("malformed DNS answer: {0}")]
    Malformed(&'static str),
    /// No answer in time.
    #[error("no DNS answer from {server} within {timeout:?}")]
    Timeout {
        /// The server queried.
        server: SocketAddr,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The query could not be sent or the answer received.
    #[error("DNS query to {server}: {message}")]
    Io {
        /// The server queried.
        server: SocketAddr,
        /// The system error.
        message: String,
    },
}

/// The names the lab answers for, with their addresses.
///
/// Names are matched without regard to case or a trailing dot. A pattern
/// holds `*` labels, each matching exactly one label
/// (`monitoring.*.amazonaws.com` matches `monitoring.eu-west-1.amazonaws.com`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameTable {
    names: BTreeMap<String, Vec<IpAddr>>,
    patterns: Vec<(Vec<String>, Vec<IpAddr>)>,
}

impl NameTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds addresses to a name (a name may be given several times).
    pub fn insert(&mut self, name: &str, addresses: impl IntoIterator<Item = IpAddr>) {
        let entry = self.names.entry(normalise(name)).or_default();
        for address in addresses {
            if !entry.contains(&address) {
                entry.push(address);
            }
        }
    }

    /// Adds a wildcard pattern and its addresses.
    pub fn insert_pattern(&mut self, pattern: &str, addresses: impl IntoIterator<Item = IpAddr>) {
        let labels = normalise(pattern).split('.').map(str::to_owned).collect();
        self.patterns
            .push((labels, addresses.into_iter().collect::<Vec<_>>()));
    }

    /// The addresses of a name: an exact name first, else the first pattern
    /// that matches.
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        let name = normalise(name);
        if let Some(addresses) = self.names.get(&name) {
            return Some(addresses);
        }
        let labels: Vec<&str> = name.split('.').collect();
        self.patterns
            .iter()
            .find(|(pattern, _)| {
                pattern.len() == labels.len()
                    && pattern.iter().zip(&labels).all(|(p, l)| p == "*" || p == l)
            })
            .map(|(_, addresses)| addresses.as_slice())
    }

    /// The exact names, sorted, with their addresses.
    pub fn names(&self) -> impl Iterator<Item = (&str, &[IpAddr])> {
        self.names.iter().map(|(n, a)| (n.as_str(), a.as_slice()))
    }

    /// Whether the table holds neither a name nor a pattern.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.patterns.is_empty()
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Writes `name` as DNS labels.
fn write_name(out: &mut Vec<u8>, name: &str) -> Result<(), DnsError> {
    let trimmed = name.trim_end_matches('.');
    let invalid = || DnsError::InvalidName(name.to_owned());
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(invalid());
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid());
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// Reads a name at `pos` (following compression pointers); returns the name
/// and the position after it in the original message.
fn read_name(message: &[u8], mut pos: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    // Bounded so that pointer loops end.
    for _ in 0..128 {
        let len = *message
            .get(pos)
            .ok_or(DnsError::Malformed("name runs past the end"))?;
        match len {
            0 => {
                let name = labels.join(".");
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let low = *message
                    .get(pos + 1)
                    .ok_or(DnsError::Malformed("truncated pointer"))?;
                end.get_or_insert(pos + 2);
                pos = usize::from(l & 0x3f) << 8 | usize::from(low);
            }
            l if l & 0xc0 != 0 => return Err(DnsError::Malformed("unknown label type")),
            l => {
                let start = pos + 1;
                let label = message
                    .get(start..start + usize::from(l))
                    .ok_or(DnsError::Malformed("label runs past the end"))?;
                labels.push(String::from_utf8_lossy(label).into_owned());
                pos = start + usize::from(l);
            }
        }
    }
    Err(DnsError::Malformed("too many labels or a pointer loop"))
}

fn u16_at(message: &[u8], pos: usize) -> Result<u16, DnsError> {
    message
        .get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Malformed("truncated message"))
}

/// A query for one name and record type, recursion desired.
pub fn build_query(id: u16, name: &str, record: RecordType) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    write_name(&mut out, name)?;
    out.extend_from_slice(&record.code().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// The answer to a query from `table`, or `None` when the datagram is not a
/// DNS query worth answering (too short, or itself a response).
pub fn answer(table: &NameTable, query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    if flags & FLAG_QR != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(MAX_UDP);
    out.extend_from_slice(&query[..2]);
    let reply = |out: &mut Vec<u8>, rcode: u16, question: &[u8], answers: u16| {
        let flags = FLAG_QR | FLAG_AA | (flags & FLAG_RD) | (flags & OPCODE_MASK) | rcode;
        out.extend_from_slice(&flags.to_be_bytes());
        let qdcount = u16::from(!question.is_empty());
        out.extend_from_slice(&qdcount.to_be_bytes());
        out.extend_from_slice(&answers.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(question);
    };
    if flags & OPCODE_MASK != 0 {
        reply(&mut out, RCODE_NOTIMP, &[], 0);
        return Some(out);
    }
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    let parsed = (qdcount == 1)
        .then(|| read_name(query, 12).ok())
        .flatten()
        .and_then(|(name, pos)| {
            let qtype = u16_at(query, pos).ok()?;
            let qclass = u16_at(query, pos + 2).ok()?;
            Some((name, qtype, qclass, pos + 4))
        });
    let Some((name, qtype, qclass, end)) = parsed else {
        reply(&mut out, RCODE_FORMERR, &[], 0);
        return Some(out);
    };
    let question = &query[12..end];
    let Some(addresses) = table.lookup(&name) else {
        reply(&mut out, RCODE_NXDOMAIN, question, 0);
        return Some(out);
    };
    let records: Vec<Vec<u8>> = addresses
        .iter()
        .filter_map(|address| match (address, qtype, qclass) {
            (IpAddr::V4(v4), TYPE_A, CLASS_IN) => Some(v4.octets().to_vec()),
            (IpAddr::V6(v6), TYPE_AAAA, CLASS_IN) => Some(v6.octets().to_vec()),
            _ => None,
        })
        .collect();
    // Each answer: pointer to the question's name, type, class, TTL, length, data.
    let room = MAX_UDP.saturating_sub(12 + question.len());
    let fitting: Vec<&Vec<u8>> = records
        .iter()
        .scan(0usize, |used, data| {
            *used += 12 + data.len();
            (*used <= room).then_some(data)
        })
        .collect();
    reply(&mut out, 0, question, fitting.len() as u16);
    for data in fitting {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    Some(out)
}

/// The addresses in a response to the query `id` for `name`.
pub fn parse_response(id: u16, name: &str, response: &[u8]) -> Result<Vec<IpAddr>, DnsError> {
    if response.len() < 12 {
        return Err(DnsError::Malformed("shorter than a header"));
    }
    if u16_at(response, 0)? != id {
        return Err(DnsError::Malformed("answer to another query"));
    }
    let flags = u16_at(response, 2)?;
    if flags & FLAG_QR == 0 {
        return Err(DnsError::Malformed("not a response"));
    }
    match flags & RCODE_MASK {
        0 => {}
        RCODE_NXDOMAIN => return Err(DnsError::NxDomain(name.to_owned())),
        code => return Err(DnsError::ServerError(code)),
    }
    let qdcount = u16_at(response, 4)?;
    let ancount = u16_at(response, 6)?;
    let mut pos = 12;
    for _ in 0..qdcount {
        let (_, after) = read_name(response, pos)?;
        pos = after + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..ancount {
        let (_, after) = read_name(response, pos)?;
        let rtype = u16_at(response, after)?;
        let rdlength = usize::from(u16_at(response, after + 8)?);
        let start = after + 10;
        let data = response
            .get(start..start + rdlength)
            .ok_or(DnsError::Malformed("record data runs past the end"))?;
        match (rtype, data.len()) {
            (TYPE_A, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, 16) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(data);
                addresses.push(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            _ => {}
        }
        pos = start + rdlength;
    }
    Ok(addresses)
}

/// Whether a datagram is a Portolan token datagram for `token`
/// (`PORTOLAN1 <token>` followed by a space or the end).
pub(crate) fn carries_token(datagram: &[u8], token: &[u8]) -> bool {
    !token.is_empty()
        && datagram
            .strip_prefix(b"PORTOLAN1 ".as_slice())
            .and_then(|rest| rest.strip_prefix(token))
            .is_some_and(|rest| rest.is_empty() || rest[0] == b' ')
}

/// Serves `table` on `socket` until the future is dropped. Token datagrams
/// of the run (`token`) are echoed as they are, so that a flow of the spec
/// towards this port can be proven like any other UDP flow.
pub(crate) async fn serve(socket: UdpSocket, table: Arc<NameTable>, token: Vec<u8>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let datagram = &buf[..n];
        let reply = if carries_token(datagram, &token) {
            Some(datagram.to_vec())
        } else {
            answer(&table, datagram)
        };
        if let Some(reply) = reply {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// Resolves `name` to its A and AAAA records by asking `server` directly
/// (two queries, sent together), within `timeout`.
pub async fn resolve(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        server,
        message: e.to_string(),
    };
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let base = query_id(name);
    let ids = [base, base.wrapping_add(1)];
    let types = [RecordType::A, RecordType::Aaaa];
    for (id, record) in ids.iter().zip(types) {
        socket
            .send(&build_query(*id, name, record)?)
            .await
            .map_err(io)?;
    }
    let mut answered = [false, false];
    let mut addresses = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    while !answered.iter().all(|a| *a) {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => return Err(DnsError::Timeout { server, timeout }),
            Ok(Err(e)) => return Err(io(e)),
            Ok(Ok(n)) => n,
        };
        let response = &buf[..n];
        let Ok(id) = u16_at(response, 0) else {
            continue;
        };
        let Some(slot) = ids.iter().position(|i| *i == id) else {
            continue;
        };
        addresses.extend(parse_response(id, name, response)?);
        answered[slot] = true;
    }
    Ok(addresses)
}

/// A query id that differs between names (not a security measure: the
/// lab's DNS traffic never leaves the lab).
fn query_id(name: &str) -> u16 {
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash >> 16) as u16 ^ (hash as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NameTable {
        let mut t = NameTable::new();
        t.insert(
            "Slack.com.",
            [
                "198.18.0.20".parse().expect("ip"),
                "fd00::20".parse().expect("ip"),
            ],
        );
        t.insert_pattern(
            "monitoring.*.amazonaws.com",
            ["198.18.0.21".parse().expect("ip")],
        );
        t
    }

    #[test]
    fn names_match_exactly_or_by_one_label_wildcards() {
        let t = table();
        assert_eq!(t.lookup("slack.com").map(<[_]>::len), Some(2));
        assert_eq!(t.lookup("SLACK.COM.").map(<[_]>::len), Some(2));
        assert!(t.lookup("monitoring.eu-west-1.amazonaws.com").is_some());
        assert!(t.lookup("monitoring.a.b.amazonaws.com").is_none());
        assert!(t.lookup("www.slack.com").is_none());
    }

    #[test]
    fn queries_get_their_records_and_unknown_names_nxdomain() {
        let t = table();
        let q = build_query(7, "slack.com", RecordType::A).expect("query");
        let r = answer(&t, &q).expect("answered");
        assert_eq!(
            parse_response(7, "slack.com", &r).expect("parsed"),
            ["198.18.0.20".parse::<IpAddr>().expect("ip")]
        );
        let q = build_query(8, "slack.com", RecordType::Aaaa).expect("query");
        let r = answer(&t, &q).expect("answered");
        assert_eq!(
            parse_response(8, "slack.com", &r).expect("parsed"),
            ["fd00::20".parse::<IpAddr>().expect("ip")]
        );
        // A name with only an A record: AAAA is empty, not an error.
        let q = build_query(9, "monitoring.x.amazonaws.com", RecordType::Aaaa).expect("query");
        let r = answer(&t, &q).expect("answered");
        assert!(parse_response(9, "m", &r).expect("parsed").is_empty());
        let q = build_query(10, "example.org", RecordType::A).expect("query");
        let r = answer(&t, &q).expect("answered");
        assert_eq!(
            parse_response(10, "example.org", &r),
            Err(DnsError::NxDomain("example.org".into()))
        );
        // The wrong id is not taken for the answer.
        assert!(parse_response(11, "example.org", &r).is_err());
    }

    #[test]
    fn junk_and_responses_are_not_answered_and_bad_queries_are_formerr() {
        let t = table();
        assert!(answer(&t, b"short").is_none());
        let q = build_query(1, "slack.com", RecordType::A).expect("query");
        let r = answer(&t, &q).expect("answered");
        assert!(answer(&t, &r).is_none(), "a response is never answered");
        let mut bad = q.clone();
        bad[5] = 2; // two questions announced, one present
        let r = answer(&t, &bad).expect("answered");
        assert_eq!(u16_at(&r, 2).expect("flags") & RCODE_MASK, RCODE_FORMERR);
        assert!(build_query(1, "a..b", RecordType::A).is_err());
        assert!(build_query(1, &"x".repeat(64), RecordType::A).is_err());
    }

    #[test]
    fn answers_fit_in_one_datagram() {
        let mut t = NameTable::new();
        t.insert(
            "many.example",
            (0..100u8).map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i))),
        );
        let q = build_query(3, "many.example", RecordType::A).expect("query");
        let r = answer(&t, &q).expect("answered");
        assert!(r.len() <= MAX_UDP);
        let got = parse_response(3, "many.example", &r).expect("parsed");
        assert!(!got.is_empty() && got.len() < 100);
    }

    #[test]
    fn tokens_are_recognised_exactly() {
        assert!(carries_token(b"PORTOLAN1 tok c1", b"tok"));
        assert!(carries_token(b"PORTOLAN1 tok", b"tok"));
        assert!(!carries_token(b"PORTOLAN1 tokx c1", b"tok"));
        assert!(!carries_token(b"PORTOLAN1 tok c1", b""));
    }

    #[test]
    fn resolves_over_loopback() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let server = socket.local_addr().expect("addr");
            let serving = tokio::spawn(serve(socket, Arc::new(table()), b"tok".to_vec()));
            let mut got = resolve(server, "slack.com", Duration::from_secs(2))
                .await
                .expect("resolved");
            got.sort();
            assert_eq!(got.len(), 2, "{got:?}");
            let missing = resolve(server, "nowhere.example", Duration::from_secs(2)).await;
            assert!(matches!(missing, Err(DnsError::NxDomain(_))), "{missing:?}");
            // Token datagrams are echoed as they are.
            let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            client.connect(server).await.expect("connect");
            client.send(b"PORTOLAN1 tok probe").await.expect("send");
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf))
                .await
                .expect("in time")
                .expect("recv");
            assert_eq!(&buf[..n], b"PORTOLAN1 tok probe");
            serving.abort();
        });
    }
}
