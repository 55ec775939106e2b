//! Decoding of nftables trace events (`NFT_MSG_TRACE` on the netfilter
//! netlink group `NFNLGRP_NFTRACE`), as `nft monitor trace` reads them.
//!
//! The netlink framing and attribute layout are read with
//! `netlink-packet-core`; the meaning of a trace message's attributes
//! (`enum nft_trace_attributes` of the kernel's
//! `include/uapi/linux/netfilter/nf_tables.h`) is decoded here, because no
//! maintained crate decodes them (`netlink-packet-netfilter` 0.4 recognises
//! `NFT_MSG_TRACE` but hands the attributes over raw, copying each).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::{NetlinkBuffer, NlasIterator};

use super::{PacketKey, Transport};

/// The netfilter netlink multicast group of trace events.
pub(crate) const NFNLGRP_NFTRACE: u32 = 9;

// enum nft_trace_attributes
const NFTA_TRACE_TABLE: u16 = 1;
const NFTA_TRACE_CHAIN: u16 = 2;
const NFTA_TRACE_RULE_HANDLE: u16 = 3;
const NFTA_TRACE_TYPE: u16 = 4;
const NFTA_TRACE_VERDICT: u16 = 5;
const NFTA_TRACE_ID: u16 = 6;
const NFTA_TRACE_NETWORK_HEADER: u16 = 8;
const NFTA_TRACE_TRANSPORT_HEADER: u16 = 9;
const NFTA_TRACE_POLICY: u16 = 16;
// enum nft_verdict_attributes
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
// enum nft_trace_types
const NFT_TRACETYPE_POLICY: u32 = 1;
const NFT_TRACETYPE_RETURN: u32 = 2;
const NFT_TRACETYPE_RULE: u32 = 3;
/// Attribute type bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER) masked off.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// What kind of step of the ruleset an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// A rule whose verdict is not "continue" (or that set the trace bit).
    Rule,
    /// The end of a chain that was jumped to.
    Return,
    /// The policy of a base chain.
    Policy,
    /// Anything else (a newer kernel's type).
    Other,
}

/// One decoded trace event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEvent {
    /// The packet's trace id: the same for every event of one pass of the
    /// packet through one hook.
    pub id: u32,
    /// The table's family (`inet`, `ip`, …).
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub handle: Option<u64>,
    pub kind: EventKind,
    /// The verdict code (`NF_DROP` 0, `NF_ACCEPT` 1, `NFT_JUMP` -3, …) of a
    /// rule or return event, or the policy of a policy event.
    pub verdict: Option<i32>,
    /// The chain a jump or goto goes to.
    pub target: Option<String>,
    /// The packet, when the event carries its headers (the first event of
    /// each chain traversal does).
    pub packet: Option<PacketKey>,
}

/// `NF_DROP`: the packet is dropped (`reject` ends with it too).
pub(crate) const NF_DROP: i32 = 0;
/// `NF_ACCEPT`.
pub(crate) const NF_ACCEPT: i32 = 1;

/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_TRACE`: a trace event.
const TRACE_MESSAGE_TYPE: u16 = (10 << 8) | 17;
/// `struct nfgenmsg` after the netlink header: family, version, resource id.
const NFGENMSG_LEN: usize = 4;

/// Decodes every trace event of one datagram read from the socket (other
/// messages are skipped; a malformed message ends the datagram). The
/// netlink framing and attributes are read in place with
/// `netlink-packet-core` (no copy: a lab reads tens of thousands of events
/// a second).
pub(crate) fn decode_datagram(mut bytes: &[u8]) -> Vec<RawEvent> {
    let mut events = Vec::new();
    while !bytes.is_empty() {
        let Ok(buffer) = NetlinkBuffer::new_checked(bytes) else {
            break;
        };
        let length = buffer.length() as usize;
        if length < 16 + NFGENMSG_LEN || length > bytes.len() {
            break;
        }
        if buffer.message_type() == TRACE_MESSAGE_TYPE {
            let payload = &bytes[16..length];
            let family = family_name(payload[0]);
            if let Some(event) = decode_trace(family, &payload[NFGENMSG_LEN..]) {
                events.push(event);
            }
        }
        // Messages are 4-byte aligned.
        let advance = (length + 3) & !3;
        bytes = bytes.get(advance..).unwrap_or_default();
    }
    events
}

fn family_name(family: u8) -> &'static str {
    match family {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "unknown",
    }
}

/// Decodes one trace message's attributes; `None` when it lacks its id.
fn decode_trace(family: &'static str, attributes: &[u8]) -> Option<RawEvent> {
    let mut event = RawEvent {
        id: 0,
        family,
        table: String::new(),
        chain: String::new(),
        handle: None,
        kind: EventKind::Other,
        verdict: None,
        target: None,
        packet: None,
    };
    let mut has_id = false;
    let mut network: Option<&[u8]> = None;
    let mut transport: Option<&[u8]> = None;
    for nla in NlasIterator::new(attributes).flatten() {
        let (kind, length) = (nla.kind(), usize::from(nla.length()));
        // The attribute's value, borrowed from the datagram itself.
        let value: &[u8] = nla.into_inner().get(4..length).unwrap_or_default();
        match kind & NLA_TYPE_MASK {
            NFTA_TRACE_TABLE => event.table = c_string(value),
            NFTA_TRACE_CHAIN => event.chain = c_string(value),
            NFTA_TRACE_RULE_HANDLE => event.handle = be_u64(value),
            NFTA_TRACE_TYPE => {
                event.kind = match be_u32(value) {
                    Some(NFT_TRACETYPE_RULE) => EventKind::Rule,
                    Some(NFT_TRACETYPE_RETURN) => EventKind::Return,
                    Some(NFT_TRACETYPE_POLICY) => EventKind::Policy,
                    _ => EventKind::Other,
                }
            }
            NFTA_TRACE_VERDICT => {
                for inner in NlasIterator::new(value).flatten() {
                    match inner.kind() & NLA_TYPE_MASK {
                        NFTA_VERDICT_CODE => {
                            event.verdict = be_u32(inner.value()).map(|v| v as i32);
                        }
                        NFTA_VERDICT_CHAIN => event.target = Some(c_string(inner.value())),
                        _ => {}
                    }
                }
            }
            NFTA_TRACE_ID => {
                if let Some(id) = be_u32(value) {
                    event.id = id;
                    has_id = true;
                }
            }
            NFTA_TRACE_NETWORK_HEADER => network = Some(value),
            NFTA_TRACE_TRANSPORT_HEADER => transport = Some(value),
            NFTA_TRACE_POLICY if event.verdict.is_none() => {
                event.verdict = be_u32(value).map(|v| v as i32);
            }
            _ => {}
        }
    }
    if let (Some(network), Some(transport)) = (network, transport) {
        event.packet = packet_key(network, transport);
    }
    has_id.then_some(event)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;

/// The packet a trace event is about, from its network and transport
/// headers: TCP and UDP by addresses and ports, ICMP echo requests by
/// addresses and identifier (as the source port; destination port 0).
/// Other packets have no key.
pub(crate) fn packet_key(network: &[u8], transport: &[u8]) -> Option<PacketKey> {
    let version = network.first()? >> 4;
    let (protocol, source, destination) = match version {
        4 => {
            let protocol = *network.get(9)?;
            let source: [u8; 4] = network.get(12..16)?.try_into().ok()?;
            let destination: [u8; 4] = network.get(16..20)?.try_into().ok()?;
            (
                protocol,
                IpAddr::V4(Ipv4Addr::from(source)),
                IpAddr::V4(Ipv4Addr::from(destination)),
            )
        }
        6 => {
            let protocol = *network.get(6)?;
            let source: [u8; 16] = network.get(8..24)?.try_into().ok()?;
            let destination: [u8; 16] = network.get(24..40)?.try_into().ok()?;
            (
                protocol,
                IpAddr::V6(Ipv6Addr::from(source)),
                IpAddr::V6(Ipv6Addr::from(destination)),
            )
        }
        _ => return None,
    };
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            transport.get(at..at + 2)?.try_into().ok()?,
        ))
    };
    let (transport_kind, source_port, destination_port) = match protocol {
        IPPROTO_TCP => (Transport::Tcp, port(0)?, port(2)?),
        IPPROTO_UDP => (Transport::Udp, port(0)?, port(2)?),
        IPPROTO_ICMP if version == 4 && *transport.first()? == ICMP_ECHO_REQUEST => {
            (Transport::IcmpEcho, port(4)?, 0)
        }
        IPPROTO_ICMPV6 if version == 6 && *transport.first()? == ICMPV6_ECHO_REQUEST => {
            (Transport::IcmpEcho, port(4)?, 0)
        }
        _ => return None,
    };
    Some(PacketKey {
        transport: transport_kind,
        source: SocketAddr::new(source, source_port),
        destination: SocketAddr::new(destination, destination_port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One netlink attribute, padded.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    /// A whole NFT_MSG_TRACE netlink message of family inet.
    fn message(attributes: &[Vec<u8>]) -> Vec<u8> {
        let payload: Vec<u8> = attributes.concat();
        let len = 16 + 4 + payload.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_TRACE
        out.extend_from_slice(&((10u16 << 8) | 17).to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&[1, 0, 0, 0]);
        out.extend_from_slice(&payload);
        out
    }

    fn ipv4_tcp_syn() -> (Vec<u8>, Vec<u8>) {
        let mut ip = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, IPPROTO_TCP, 0, 0];
        ip.extend_from_slice(&[198, 18, 0, 2]);
        ip.extend_from_slice(&[198, 18, 0, 3]);
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&40000u16.to_be_bytes());
        tcp.extend_from_slice(&9000u16.to_be_bytes());
        tcp.extend_from_slice(&[0; 9]);
        tcp.push(0x02);
        (ip, tcp)
    }

    #[test]
    fn a_rule_drop_event_is_decoded_with_its_packet() {
        let (ip, tcp) = ipv4_tcp_syn();
        let verdict = nla(NFTA_VERDICT_CODE, &0u32.to_be_bytes());
        let bytes = message(&[
            nla(NFTA_TRACE_ID, &0xcafe_f00du32.to_be_bytes()),
            nla(NFTA_TRACE_TABLE, b"portolan\0"),
            nla(NFTA_TRACE_CHAIN, b"input\0"),
            nla(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RULE.to_be_bytes()),
            nla(NFTA_TRACE_RULE_HANDLE, &17u64.to_be_bytes()),
            nla(NFTA_TRACE_VERDICT | 0x8000, &verdict),
            nla(NFTA_TRACE_NETWORK_HEADER, &ip),
            nla(NFTA_TRACE_TRANSPORT_HEADER, &tcp),
        ]);
        let events = decode_datagram(&bytes);
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.id, 0xcafe_f00d);
        assert_eq!(event.family, "inet");
        assert_eq!(
            (event.table.as_str(), event.chain.as_str()),
            ("portolan", "input")
        );
        assert_eq!(event.handle, Some(17));
        assert_eq!(event.kind, EventKind::Rule);
        assert_eq!(event.verdict, Some(NF_DROP));
        let key = event.packet.expect("packet key");
        assert_eq!(key.transport, Transport::Tcp);
        assert_eq!(key.source, "198.18.0.2:40000".parse().expect("addr"));
        assert_eq!(key.destination, "198.18.0.3:9000".parse().expect("addr"));
    }

    #[test]
    fn a_policy_event_carries_the_policy_and_two_messages_both_decode() {
        let one = message(&[
            nla(NFTA_TRACE_ID, &1u32.to_be_bytes()),
            nla(NFTA_TRACE_TABLE, b"t\0"),
            nla(NFTA_TRACE_CHAIN, b"input\0"),
            nla(NFTA_TRACE_TYPE, &NFT_TRACETYPE_POLICY.to_be_bytes()),
            nla(NFTA_TRACE_POLICY, &0u32.to_be_bytes()),
        ]);
        let jump = nla(NFTA_VERDICT_CODE, &(-3i32 as u32).to_be_bytes());
        let target = nla(NFTA_VERDICT_CHAIN, b"from_api\0");
        let two = message(&[
            nla(NFTA_TRACE_ID, &2u32.to_be_bytes()),
            nla(NFTA_TRACE_TYPE, &NFT_TRACETYPE_RULE.to_be_bytes()),
            nla(NFTA_TRACE_VERDICT | 0x8000, &[jump, target].concat()),
        ]);
        let events = decode_datagram(&[one, two].concat());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, EventKind::Policy);
        assert_eq!(events[0].verdict, Some(NF_DROP));
        assert_eq!(events[0].packet, None);
        assert_eq!(events[1].verdict, Some(-3));
        assert_eq!(events[1].target.as_deref(), Some("from_api"));
    }

    #[test]
    fn echo_requests_are_keyed_by_identifier_and_other_packets_have_no_key() {
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 16, IPPROTO_ICMPV6, 64];
        let a: Ipv6Addr = "fd00::2".parse().expect("v6");
        let b: Ipv6Addr = "fd00::3".parse().expect("v6");
        ip6.extend_from_slice(&a.octets());
        ip6.extend_from_slice(&b.octets());
        let echo = [ICMPV6_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1];
        let key = packet_key(&ip6, &echo).expect("echo key");
        assert_eq!(key.transport, Transport::IcmpEcho);
        assert_eq!(key.source, SocketAddr::new(IpAddr::V6(a), 0x1234));
        assert_eq!(key.destination, SocketAddr::new(IpAddr::V6(b), 0));
        // An echo reply, a neighbour solicitation: not probes.
        assert_eq!(packet_key(&ip6, &[129, 0, 0, 0, 0x12, 0x34, 0, 1]), None);
        assert_eq!(packet_key(&ip6, &[135, 0, 0, 0, 0, 0, 0, 0]), None);
        // Truncated headers never panic.
        assert_eq!(packet_key(&ip6[..10], &echo), None);
        assert_eq!(packet_key(&[], &[]), None);
        assert!(decode_datagram(&[1, 2, 3]).is_empty());
    }
}
