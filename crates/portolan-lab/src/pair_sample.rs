//! Which ordered pairs of parties get negative probes when there are too
//! many pairs to probe them all.
//!
//! Negative probes go between every ordered pair of parties, so their number
//! grows with the square of the parties: 300 parties make 90,000 pairs, and
//! even the fewest probes per pair (4) would be 360,000 probes. Above the
//! lab's bound a deterministic sample of pairs is probed instead, chosen so
//! that no party is left out on either side: every sending party probes at
//! least `k` destinations and every party is probed by at least `k` senders
//! (all of them when there are fewer). What is left out is reported.

use std::collections::BTreeSet;

/// The pairs `(source, destination)` (indices into the parties) to keep
/// when at most about `budget` pairs may be probed; `None` when every pair
/// fits. `sends[i]` says whether party `i` sends at all (only senders are
/// sources); `rank(s, d)` orders a party's pairs (a seeded hash, so the
/// sample is deterministic and differs between seeds); `useful(s, d)` says
/// whether a pair has anything to probe (asked in rank order, only until a
/// party has its `k`), so that no party's share goes to empty pairs.
pub(crate) fn pairs(
    sends: &[bool],
    budget: usize,
    rank: impl Fn(usize, usize) -> u64,
    mut useful: impl FnMut(usize, usize) -> bool,
) -> Option<BTreeSet<(usize, usize)>> {
    let parties = sends.len();
    let senders: Vec<usize> = (0..parties).filter(|&s| sends[s]).collect();
    if senders.len() * parties <= budget {
        return None;
    }
    // Each party picks k pairs as a source and k as a destination: at most
    // 2·k·parties pairs in all.
    let k = (budget / (2 * parties.max(1))).max(1);
    let mut keep = BTreeSet::new();
    for &s in &senders {
        let mut dests: Vec<usize> = (0..parties).collect();
        dests.sort_by_key(|&d| (rank(s, d), d));
        keep.extend(
            dests
                .into_iter()
                .filter(|&d| useful(s, d))
                .take(k)
                .map(|d| (s, d)),
        );
    }
    for d in 0..parties {
        let mut sources = senders.clone();
        sources.sort_by_key(|&s| (rank(s, d), s));
        keep.extend(
            sources
                .into_iter()
                .filter(|&s| useful(s, d))
                .take(k)
                .map(|s| (s, d)),
        );
    }
    Some(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(s: usize, d: usize) -> u64 {
        (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (d as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
    }

    #[test]
    fn every_pair_when_they_fit() {
        assert_eq!(pairs(&[true; 10], 100, rank, |_, _| true), None);
        assert_eq!(pairs(&[true; 10], 1000, rank, |_, _| true), None);
    }

    #[test]
    fn a_bounded_sample_that_leaves_no_party_out() {
        let mut sends = vec![true; 300];
        sends[7] = false; // a party that only receives (an external endpoint)
        let budget = 5_000;
        let keep =
            pairs(&sends, budget, rank, |_, _| true).expect("too many pairs to keep them all");
        assert!(keep.len() <= budget, "{} pairs kept", keep.len());
        let k = budget / 600;
        for (p, &sends_p) in sends.iter().enumerate() {
            let out = keep.iter().filter(|(s, _)| *s == p).count();
            let into = keep.iter().filter(|(_, d)| *d == p).count();
            if sends_p {
                assert!(out >= k, "party {p} probes {out} others");
            } else {
                assert_eq!(out, 0, "party {p} sends nothing");
            }
            assert!(into >= k, "party {p} is probed by {into} others");
        }
        // Deterministic.
        assert_eq!(pairs(&sends, budget, rank, |_, _| true), Some(keep));
    }

    #[test]
    fn pairs_with_nothing_to_probe_take_no_party_s_share() {
        // A party's pairs with itself have nothing to probe (one host).
        let keep = pairs(&[true; 40], 40, rank, |s, d| s != d).expect("sampled");
        assert!(keep.iter().all(|(s, d)| s != d));
        for p in 0..40 {
            assert!(keep.iter().any(|(s, _)| *s == p), "party {p} probes none");
            assert!(
                keep.iter().any(|(_, d)| *d == p),
                "party {p} is probed by none"
            );
        }
    }

    #[test]
    fn a_tiny_budget_still_probes_every_party() {
        let keep = pairs(&[true; 50], 1, rank, |_, _| true).expect("sampled");
        for p in 0..50 {
            assert!(keep.iter().any(|(s, _)| *s == p));
            assert!(keep.iter().any(|(_, d)| *d == p));
        }
    }
}
