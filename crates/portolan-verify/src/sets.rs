//! Exact set arithmetic on ports, protocols and addresses.
//!
//! Policies (NetworkPolicy rules, security-group permissions) grant
//! rectangles of traffic: a set of peers' addresses × a set of protocols ×
//! a set of ports. The verifier asks whether a required flow's rectangle is
//! covered by the union of the grants, and what the grants cover beyond
//! the required flows. Both answers are exact: sets are sorted lists of
//! disjoint inclusive ranges, and addresses are turned back into CIDRs for
//! people.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A set of integers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet(Vec<(u128, u128)>);

impl RangeSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(Vec::new())
    }

    /// The set `start..=end`.
    pub fn range(start: u128, end: u128) -> Self {
        debug_assert!(start <= end);
        Self(vec![(start, end)])
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u128, u128)] {
        &self.0
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `start..=end`.
    pub fn insert(&mut self, start: u128, end: u128) {
        self.0.push((start.min(end), start.max(end)));
        self.normalise();
    }

    fn normalise(&mut self) {
        self.0.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(self.0.len());
        for &(s, e) in &self.0 {
            match out.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        self.0 = out;
    }

    /// The union.
    pub fn union(&self, other: &Self) -> Self {
        let mut all = Self([self.0.as_slice(), other.0.as_slice()].concat());
        all.normalise();
        all
    }

    /// The intersection.
    pub fn intersection(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (s, e) = (a.0.max(b.0), a.1.min(b.1));
            if s <= e {
                out.push((s, e));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self(out)
    }

    /// What is in `self` and not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        for &(s, e) in &self.0 {
            let mut start = s;
            let mut done = false;
            for &(os, oe) in &other.0 {
                if oe < start || os > e {
                    continue;
                }
                if os > start {
                    out.push((start, os - 1));
                }
                if oe >= e {
                    done = true;
                    break;
                }
                start = oe + 1;
            }
            if !done {
                out.push((start, e));
            }
        }
        Self(out)
    }

    /// Whether every member of `other` is in `self`.
    pub fn contains_all(&self, other: &Self) -> bool {
        other.difference(self).is_empty()
    }

    /// Whether they share a member.
    pub fn intersects(&self, other: &Self) -> bool {
        !self.intersection(other).is_empty()
    }

    /// Whether `start..=end` lies wholly in the set, without allocating: the
    /// ranges are sorted, disjoint and never adjacent, so a contiguous range
    /// is covered only from inside one of them.
    pub fn covers(&self, start: u128, end: u128) -> bool {
        let i = self.0.partition_point(|r| r.1 < start);
        self.0.get(i).is_some_and(|r| r.0 <= start && end <= r.1)
    }
}

/// A set of IPv4 and IPv6 addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NetSet {
    /// IPv4 addresses as integers.
    pub v4: RangeSet,
    /// IPv6 addresses as integers.
    pub v6: RangeSet,
}

impl NetSet {
    /// No address.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every address of both families.
    pub fn all() -> Self {
        Self {
            v4: RangeSet::range(0, u32::MAX as u128),
            v6: RangeSet::range(0, u128::MAX),
        }
    }

    /// The addresses of some blocks.
    pub fn of<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let mut set = Self::empty();
        for net in nets {
            set.add(net);
        }
        set
    }

    /// Adds a block.
    pub fn add(&mut self, net: &IpNet) {
        match net {
            IpNet::V4(n) => self.v4.insert(
                u32::from(n.network()) as u128,
                u32::from(n.broadcast()) as u128,
            ),
            IpNet::V6(n) => self
                .v6
                .insert(u128::from(n.network()), u128::from(n.broadcast())),
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether it is every address of both families.
    pub fn is_all(&self) -> bool {
        *self == Self::all()
    }

    /// The union.
    pub fn union(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
        }
    }

    /// The intersection.
    pub fn intersection(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.intersection(&other.v4),
            v6: self.v6.intersection(&other.v6),
        }
    }

    /// What is in `self` and not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.difference(&other.v4),
            v6: self.v6.difference(&other.v6),
        }
    }

    /// Whether every address of `other` is in `self`.
    pub fn contains_all(&self, other: &Self) -> bool {
        other.difference(self).is_empty()
    }

    /// The fewest CIDR blocks that hold exactly this set.
    pub fn cidrs(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        for &(s, e) in self.v4.ranges() {
            for (addr, len) in range_cidrs(s, e, 32) {
                let net = Ipv4Net::new(Ipv4Addr::from(addr as u32), len).expect("prefix <= 32");
                out.push(IpNet::V4(net));
            }
        }
        for &(s, e) in self.v6.ranges() {
            for (addr, len) in range_cidrs(s, e, 128) {
                let net = Ipv6Net::new(Ipv6Addr::from(addr), len).expect("prefix <= 128");
                out.push(IpNet::V6(net));
            }
        }
        out
    }
}

impl fmt::Display for NetSet {
    /// `any` for every address, else the CIDRs (an address alone without `/32`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("any (0.0.0.0/0, ::/0)");
        }
        let parts: Vec<String> = self
            .cidrs()
            .iter()
            .map(portolan_spec::plan::net_text)
            .collect();
        if parts.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Splits `start..=end` of a `bits`-wide address space into CIDR blocks.
fn range_cidrs(mut start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    // The last offset of a block of 2^size addresses.
    let span = |size: u32| {
        if size >= 128 {
            u128::MAX
        } else {
            (1u128 << size) - 1
        }
    };
    let mut out = Vec::new();
    loop {
        // The largest block aligned at `start` that does not pass `end`.
        let mut size = start.trailing_zeros().min(u32::from(bits));
        while size > 0 && start.checked_add(span(size)).is_none_or(|last| last > end) {
            size -= 1;
        }
        out.push((start, bits - size as u8));
        let last = start + span(size);
        if last >= end {
            return out;
        }
        start = last + 1;
    }
}

/// Port ranges for a person: `22`, `8000-8100`, `80, 443`, `every port`.
pub fn ports_text(set: &RangeSet) -> String {
    if *set == RangeSet::range(0, 65535) || *set == RangeSet::range(1, 65535) {
        return "every port".to_owned();
    }
    // Port 0 is no port a service can use: grants that include it are
    // shown from 1.
    set.ranges()
        .iter()
        .filter(|&&(_, e)| e > 0)
        .map(|&(s, e)| (s.max(1), e))
        .map(|(s, e)| {
            if s == e {
                s.to_string()
            } else {
                format!("{s}-{e}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn difference_splits_and_trims() {
        let a = RangeSet::range(0, 100);
        let b = RangeSet::range(10, 20).union(&RangeSet::range(90, 200));
        assert_eq!(a.difference(&b).ranges(), &[(0, 9), (21, 89)]);
        assert!(a.difference(&RangeSet::range(0, 100)).is_empty());
        assert_eq!(a.difference(&RangeSet::range(0, 0)).ranges(), &[(1, 100)]);
    }

    #[test]
    fn union_merges_adjacent() {
        let a = RangeSet::range(1, 5).union(&RangeSet::range(6, 9));
        assert_eq!(a.ranges(), &[(1, 9)]);
    }

    #[test]
    fn cidrs_of_a_block_minus_an_exception() {
        // 10.0.0.0/8 except 10.1.0.0/16: the exact remainder in CIDRs.
        let set = NetSet::of(&[net("10.0.0.0/8")]).difference(&NetSet::of(&[net("10.1.0.0/16")]));
        let text: Vec<String> = set.cidrs().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            text,
            [
                "10.0.0.0/16",
                "10.2.0.0/15",
                "10.4.0.0/14",
                "10.8.0.0/13",
                "10.16.0.0/12",
                "10.32.0.0/11",
                "10.64.0.0/10",
                "10.128.0.0/9"
            ]
        );
    }

    #[test]
    fn every_address_is_two_default_routes() {
        let all = NetSet::all();
        let text: Vec<String> = all.cidrs().iter().map(|n| n.to_string()).collect();
        assert_eq!(text, ["0.0.0.0/0", "::/0"]);
        assert_eq!(all.to_string(), "any (0.0.0.0/0, ::/0)");
    }

    #[test]
    fn contains_all_is_subset() {
        let big = NetSet::of(&[net("192.0.2.0/24")]);
        assert!(big.contains_all(&NetSet::of(&[net("192.0.2.7/32")])));
        assert!(!big.contains_all(&NetSet::of(&[net("192.0.3.7/32")])));
        assert!(!big.contains_all(&NetSet::of(&[net("2001:db8::1/128")])));
    }
}
