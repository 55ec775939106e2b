//! ICMP echo ("ping") through unprivileged ICMP sockets.
//!
//! Linux offers `socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)` (and its IPv6
//! twin) to processes whose group lies within `net.ipv4.ping_group_range`,
//! a setting of each network namespace that governs both families: no raw
//! socket and no privilege are needed. The kernel sets the echo identifier
//! to the socket's own (its "port"), computes the checksum, and hands the
//! socket only the replies that carry its identifier, so concurrent probes
//! never see each other's replies.
//!
//! The socket is connected to the target, so that the ICMP errors the kernel
//! treats as hard (administratively prohibited, port or protocol
//! unreachable: what a `reject` rule sends) come back as errors of `recv`;
//! soft ones (host or network unreachable) are not reported on such a
//! socket and the probe then times out, as a UDP probe does.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::engine::{race_early, Attempt, AttemptFlow, EarlyVerdictFn, FlowKind};
use crate::types::{OutcomeClass, ProbeDetails, ProbeSpec};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Type, code, checksum, identifier, sequence.
const HEADER_LEN: usize = 8;

/// The sysctl that decides who may open ICMP sockets, for both families.
const PING_GROUP_RANGE: &str = "net.ipv4.ping_group_range";

/// An echo request: the header, then `payload`. The checksum is filled in
/// for IPv4 (the kernel recomputes it anyway on Linux); for IPv6 it covers
/// a pseudo-header only the kernel knows, and is left at zero for it.
pub(crate) fn echo_request(v6: bool, identifier: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(HEADER_LEN + payload.len());
    packet.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    packet.push(0);
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// Whether `packet` is the echo reply to our request: type, code, sequence
/// and payload. The identifier is not compared: the kernel replaced ours
/// with the socket's, and delivers only replies that carry it.
pub(crate) fn is_echo_reply(v6: bool, packet: &[u8], sequence: u16, payload: &[u8]) -> bool {
    let packet = if v6 {
        packet
    } else {
        strip_ipv4_header(packet)
    };
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    packet.len() == HEADER_LEN + payload.len()
        && packet[0] == reply
        && packet[1] == 0
        && packet[6..8] == sequence.to_be_bytes()
        && &packet[HEADER_LEN..] == payload
}

/// Linux hands an ICMP socket the ICMP message alone; some systems (macOS)
/// prepend the IPv4 header. An ICMP message starts with its type (0 for a
/// reply), never with 0x4_, the version nibble of an IPv4 header.
fn strip_ipv4_header(packet: &[u8]) -> &[u8] {
    match packet.first() {
        Some(&first) if first >> 4 == 4 => {
            let len = usize::from(first & 0x0f) * 4;
            packet.get(len..).unwrap_or_default()
        }
        _ => packet,
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An unprivileged ICMP socket of the family of `ip`.
fn open(ip: IpAddr) -> io::Result<Socket> {
    let (domain, protocol) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, socket2::Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, socket2::Protocol::ICMPV6),
    };
    Socket::new(domain, Type::DGRAM, Some(protocol))
}

/// Why an ICMP socket could not be opened, and for a refusal (`EACCES`:
/// the process's groups are outside `net.ipv4.ping_group_range`), how to
/// allow it.
fn open_error(err: &io::Error) -> String {
    if err.kind() != io::ErrorKind::PermissionDenied {
        return format!("cannot open an ICMP socket: {err}");
    }
    // Read from the calling thread: the setting belongs to the network
    // namespace of the thread that opens the file.
    let current = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|range| {
            format!(
                " (here: \"{}\")",
                range.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_default();
    format!(
        "ICMP echo is not permitted to this process: unprivileged ICMP (\"ping\") sockets are \
         open only to the groups in {PING_GROUP_RANGE}{current}, and Portolan uses no raw \
         socket; allow them with `sysctl -w {PING_GROUP_RANGE}=\"0 2147483647\"` (or a range \
         that holds this process's group) ({err})"
    )
}

/// Whether this thread can send ICMP echo requests of a family: `Ok` when
/// an unprivileged ICMP socket opens, else why not and, when the system
/// refuses it (`net.ipv4.ping_group_range`), how to allow it.
///
/// The answer belongs to the network namespace of the calling thread.
pub fn icmp_echo_permitted(ipv6: bool) -> Result<(), String> {
    let ip = if ipv6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    open(ip).map(drop).map_err(|e| open_error(&e))
}

/// An error of `recv` on the connected ICMP socket: the kernel sets one only
/// when an ICMP error about our request came back, so the request was
/// stopped on the way.
fn recv_error(err: &io::Error) -> Attempt {
    let class = if err.kind() == io::ErrorKind::TimedOut {
        OutcomeClass::Filtered
    } else {
        OutcomeClass::Unreachable
    };
    Attempt::new(class, Some(err.to_string()))
}

/// A stable identifier for systems that keep the one we send (Linux
/// replaces it): FNV-1a of the probe id, folded to 16 bits.
fn identifier(probe_id: &str) -> u16 {
    let hash = probe_id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash ^ (hash >> 16)) as u16
}

/// One echo request carrying `PORTOLAN1 <token> <probe id>` and the wait
/// for its reply.
pub(crate) async fn attempt(
    spec: &ProbeSpec,
    token: &str,
    addrs: &[SocketAddr],
    sequence: u16,
    deadline: Instant,
    early: Option<&EarlyVerdictFn>,
    details: &mut ProbeDetails,
) -> Attempt {
    let Some(&peer) = addrs.first() else {
        return Attempt::local("no address to send to");
    };
    if spec.source_port.is_some() {
        return Attempt::local("an ICMP echo has no source port to send from");
    }
    let peer = SocketAddr::new(peer.ip(), 0);
    details.peer = Some(peer);
    let v6 = peer.is_ipv6();
    let socket = match open(peer.ip()) {
        Ok(socket) => socket,
        Err(e) => return Attempt::local(open_error(&e)),
    };
    let local = |e: io::Error| Attempt::local(e.to_string());
    if let Some(ip) = spec.source_ip {
        if ip.is_ipv6() != v6 {
            return Attempt::local(format!("source {ip} is not of the family of {}", peer.ip()));
        }
        if let Err(e) = socket.bind(&SocketAddr::new(ip, 0).into()) {
            return local(e);
        }
    }
    // Connected, so that hard ICMP errors come back as errors of recv().
    if let Err(e) = socket.connect(&peer.into()) {
        return Attempt::io(&e);
    }
    if let Err(e) = socket.set_nonblocking(true) {
        return local(e);
    }
    // tokio has no ICMP socket type; its UDP socket only issues send and
    // recv on the descriptor, which is what a datagram ICMP socket takes.
    let socket = match UdpSocket::from_std(std::net::UdpSocket::from(socket)) {
        Ok(socket) => socket,
        Err(e) => return local(e),
    };
    details.local = socket.local_addr().ok();
    let payload = crate::token_datagram(token, &spec.id);
    let request = echo_request(v6, identifier(&spec.id), sequence, &payload);
    // The local port of a ping socket is the echo identifier.
    let verdict = match (early, details.local) {
        (Some(early), Some(local)) => early(
            spec,
            &AttemptFlow {
                kind: FlowKind::IcmpEcho,
                local,
                peer,
            },
        ),
        _ => None,
    };
    let exchange = async {
        // EPERM here is the local firewall; no route is unreachable.
        if let Err(e) = socket.send(&request).await {
            return Attempt::io(&e);
        }
        // Room for an IPv4 header some systems prepend, and one byte more than
        // the reply, to tell a longer packet from ours.
        let mut buf = vec![0; request.len() + 61];
        loop {
            match timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => return Attempt::timed_out(OutcomeClass::Filtered),
                Ok(Err(e)) => return recv_error(&e),
                Ok(Ok(n)) => {
                    if is_echo_reply(v6, &buf[..n], sequence, &payload) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_well_formed() {
        let request = echo_request(false, 0x1234, 7, b"PORTOLAN1 t c1");
        assert_eq!(&request[..2], [ECHO_REQUEST_V4, 0]);
        assert_eq!(&request[4..8], [0x12, 0x34, 0, 7]);
        assert_eq!(&request[HEADER_LEN..], b"PORTOLAN1 t c1");
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&request), 0);
        let v6 = echo_request(true, 1, 2, b"x");
        assert_eq!(v6[0], ECHO_REQUEST_V6);
        assert_eq!(&v6[2..4], [0, 0], "the kernel computes ICMPv6 checksums");
    }

    #[test]
    fn the_checksum_is_rfc_1071s() {
        // The example of RFC 1071, section 3: the sum is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // An odd length is padded with a zero byte.
        assert_eq!(checksum(&[0xab]), !0xab00);
    }

    #[test]
    fn only_our_reply_matches() {
        let payload = b"PORTOLAN1 tok c9";
        let mut reply = echo_request(false, 99, 3, payload);
        reply[0] = ECHO_REPLY_V4;
        assert!(is_echo_reply(false, &reply, 3, payload));
        assert!(
            !is_echo_reply(false, &reply, 4, payload),
            "another sequence"
        );
        assert!(
            !is_echo_reply(false, &reply, 3, b"PORTOLAN1 tok c8"),
            "another payload"
        );
        let mut longer = reply.clone();
        longer.push(b'!');
        assert!(!is_echo_reply(false, &longer, 3, payload));
        let request = echo_request(false, 99, 3, payload);
        assert!(
            !is_echo_reply(false, &request, 3, payload),
            "our own request looped back"
        );
        // With the IPv4 header some systems prepend.
        let mut with_header = vec![0x45; 20];
        with_header.extend_from_slice(&reply);
        assert!(is_echo_reply(false, &with_header, 3, payload));
        let mut v6 = echo_request(true, 1, 3, payload);
        v6[0] = ECHO_REPLY_V6;
        assert!(is_echo_reply(true, &v6, 3, payload));
        assert!(!is_echo_reply(false, &v6, 3, payload));
    }

    #[test]
    fn a_refusal_says_how_to_allow_ping_sockets() {
        let refused = open_error(&io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(refused.contains("net.ipv4.ping_group_range"), "{refused}");
        assert!(
            refused.contains("sysctl -w net.ipv4.ping_group_range=\"0 2147483647\""),
            "{refused}"
        );
        let other = open_error(&io::Error::from(io::ErrorKind::Unsupported));
        assert!(other.starts_with("cannot open an ICMP socket"), "{other}");
    }

    #[test]
    fn errors_after_the_send_are_icmp_errors() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::PermissionDenied,
        ] {
            assert_eq!(
                recv_error(&io::Error::from(kind)).class,
                OutcomeClass::Unreachable,
                "{kind:?}"
            );
        }
    }
}
