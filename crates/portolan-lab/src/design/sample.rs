//! Deterministic sampling: a stable hash, a seeded generator and the ports
//! of a flow to probe.

use portolan_spec::{PortRange, Protocol};

use super::model::Transport;

/// FNV-1a: a stable hash of text (std's hashers are not stable across releases).
pub(super) fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64, seeded by the run's seed and a context string.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64, context: &str) -> Self {
        Rng(seed ^ fnv(context))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// A port in 1024..=32767 (below the usual ephemeral range, so that no
    /// probe's own source port collides with it) not in `avoid`.
    pub(super) fn port(&mut self, avoid: impl Fn(u16) -> bool) -> u16 {
        for _ in 0..1000 {
            let port = 1024 + self.below(32768 - 1024) as u16;
            if !avoid(port) {
                return port;
            }
        }
        32767
    }
}

/// How ports of a flow are probed: every port of short lists and ranges,
/// otherwise a sample (both ends and one inside of a long range; two random
/// ports for "every port"; TCP and UDP for "every protocol"); ICMP flows
/// with one echo request (port 0).
pub(super) fn sample_ports(
    protocol: Protocol,
    ports: &[PortRange],
    rng: &mut Rng,
) -> (Vec<(Transport, u16)>, Option<String>) {
    const MAX_PER_FLOW: usize = 16;
    let transports: &[Transport] = match protocol {
        Protocol::Tcp => &[Transport::Tcp],
        Protocol::Udp => &[Transport::Udp],
        Protocol::Any => &[Transport::Tcp, Transport::Udp],
        Protocol::Icmp => return (vec![(Transport::Icmp, 0)], None),
    };
    let mut out = Vec::new();
    let mut note = None;
    if ports.is_empty() {
        for &t in transports {
            let count = if t == Transport::Tcp { 2 } else { 1 };
            for _ in 0..count {
                let port = rng.port(|p| out.contains(&(t, p)) || p == 53);
                out.push((t, port));
            }
        }
        let what = if protocol == Protocol::Any {
            "every protocol and port"
        } else {
            "every port"
        };
        note = Some(format!("{what}: sampled {}", sample_text(&out)));
        return (out, note);
    }
    let mut sampled = false;
    for range in ports {
        let chosen: Vec<u16> = if range.len() <= 3 {
            (range.start..=range.end).collect()
        } else {
            sampled = true;
            let inside = range.start + 1 + rng.below(u64::from(range.end - range.start - 1)) as u16;
            vec![range.start, inside, range.end]
        };
        for &t in transports {
            out.extend(chosen.iter().map(|&p| (t, p)));
        }
    }
    if out.len() > MAX_PER_FLOW {
        sampled = true;
        let mut keep: Vec<(Transport, u16)> = Vec::new();
        while keep.len() < MAX_PER_FLOW {
            let pick = out[rng.below(out.len() as u64) as usize];
            if !keep.contains(&pick) {
                keep.push(pick);
            }
        }
        keep.sort();
        out = keep;
    }
    if sampled {
        note = Some(format!(
            "ports {}: sampled {}",
            portolan_spec::ranges_text(ports),
            sample_text(&out)
        ));
    }
    (out, note)
}

pub(super) fn sample_text(sample: &[(Transport, u16)]) -> String {
    sample
        .iter()
        .map(|(t, p)| format!("{}/{p}", t.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
