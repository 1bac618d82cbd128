//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted.
//!
//! Each backend has a permutation of the table's M slots (`offset = h1 % M`,
//! `skip = h2 % (M - 1) + 1`, from two hashes of its address:port). Backends take turns
//! claiming their next preferred free slot until the table is full. Weights decide whose
//! turn it is: the backend with the smallest `(claimed + 1) / weight` claims next, so
//! each backend ends with the floor or ceiling of its weight share of M. Weight 0 takes
//! no slots. Permutations depend only on the backend's identity, and ties are broken by
//! identity too, never by position: a table built again after a change moves few slots
//! (measured in the tests), and boxes that list the same backends in another order build
//! the same table (what keeps a flow's backend when ECMP moves it between boxes).
use crate::hash::identity_hash;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The default table size (prime), as the paper's.
pub const DEFAULT_M: usize = 65537;

/// A built lookup table: slot -> backend index (u16::MAX when no backend has weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    table: Box<[u16]>,
}

impl Maglev {
    /// Builds a table of size `m` (a prime) for backends given as (identity, weight).
    pub fn build(backends: &[(u64, u32)], m: usize) -> Maglev {
        let mut table = vec![u16::MAX; m].into_boxed_slice();
        let live: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].1 > 0).collect();
        if live.is_empty() || m == 0 {
            return Maglev { table };
        }
        let m64 = m as u64;
        let perm: Vec<(u64, u64)> = backends
            .iter()
            .map(|&(id, _)| {
                (
                    identity_hash(id, 1) % m64,
                    identity_hash(id, 2) % (m64 - 1).max(1) + 1,
                )
            })
            .collect();
        let mut next = vec![0u64; backends.len()];
        let mut claimed = vec![0u64; backends.len()];
        // Min-heap on (claimed + 1) / weight, compared exactly as a fraction; ties by
        // identity.
        #[derive(PartialEq, Eq)]
        struct Turn {
            num: u64,
            w: u64,
            id: u64,
            i: usize,
        }
        impl Ord for Turn {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                ((self.num as u128) * (o.w as u128))
                    .cmp(&((o.num as u128) * (self.w as u128)))
                    .then(self.id.cmp(&o.id))
                    .then(self.i.cmp(&o.i))
            }
        }
        impl PartialOrd for Turn {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        let mut heap: BinaryHeap<Reverse<Turn>> = live
            .iter()
            .map(|&i| {
                Reverse(Turn {
                    num: 1,
                    w: backends[i].1 as u64,
                    id: backends[i].0,
                    i,
                })
            })
            .collect();
        let mut filled = 0;
        while filled < m {
            let Reverse(t) = heap.pop().expect("live backends");
            let i = t.i;
            let (off, skip) = perm[i];
            loop {
                let slot = ((off + next[i] * skip) % m64) as usize;
                next[i] += 1;
                if table[slot] == u16::MAX {
                    table[slot] = i as u16;
                    break;
                }
            }
            claimed[i] += 1;
            filled += 1;
            heap.push(Reverse(Turn {
                num: claimed[i] + 1,
                w: t.w,
                id: t.id,
                i,
            }));
        }
        Maglev { table }
    }

    /// The backend index for a flow hash, None when no backend has weight.
    #[inline(always)]
    pub fn lookup(&self, hash: u64) -> Option<u16> {
        let n = self.table.len();
        if n == 0 {
            return None;
        }
        let b = self.table[(hash % n as u64) as usize];
        (b != u16::MAX).then_some(b)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
    pub fn slots(&self) -> &[u16] {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<u64> {
        (0..n as u64)
            .map(|i| (0x0a01_0000 + i) << 16 | 8080)
            .collect()
    }

    fn shares(t: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &s in t.slots() {
            c[s as usize] += 1;
        }
        c
    }

    #[test]
    fn balance_within_one_percent() {
        for n in [10usize, 100, 1000] {
            let bs: Vec<(u64, u32)> = ids(n).into_iter().map(|i| (i, 1)).collect();
            let t = Maglev::build(&bs, DEFAULT_M);
            let want = DEFAULT_M as f64 / n as f64;
            for (i, c) in shares(&t, n).into_iter().enumerate() {
                let err = (c as f64 - want).abs() / want;
                assert!(err < 0.01, "n={n} backend {i}: {c} slots vs {want:.1}");
            }
        }
    }

    /// Each backend gets the floor or ceiling of its exact share (never more than one
    /// slot off), which is within 1% wherever the share is 100 slots or more; smaller
    /// shares cannot be closer than one whole slot.
    #[test]
    fn weighted_balance_within_one_slot() {
        for n in [10usize, 100, 1000] {
            let bs: Vec<(u64, u32)> = ids(n)
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, 1 + (i % 3) as u32))
                .collect();
            let total: u32 = bs.iter().map(|b| b.1).sum();
            let t = Maglev::build(&bs, DEFAULT_M);
            for (i, c) in shares(&t, n).into_iter().enumerate() {
                let want = DEFAULT_M as f64 * bs[i].1 as f64 / total as f64;
                assert!(
                    (c as f64 - want).abs() < 1.0,
                    "n={n} backend {i} w={}: {c} vs {want:.2}",
                    bs[i].1
                );
                if want >= 100.0 {
                    assert!((c as f64 - want).abs() / want < 0.01);
                }
            }
        }
    }

    #[test]
    fn zero_weight_takes_nothing() {
        let t = Maglev::build(&[(1, 1), (2, 0), (3, 2)], 101);
        let c = shares(&t, 3);
        assert_eq!(c[1], 0);
        assert_eq!(c[0] + c[2], 101);
        assert!(Maglev::build(&[(1, 0)], 101).lookup(5).is_none());
        assert!(Maglev::build(&[], 101).lookup(5).is_none());
    }

    /// Disruption when one of N backends is removed: the removed backend's slots must
    /// move; we measure how many *other* slots move too. The paper (fig. 11) reports a
    /// few percent at M=65537; we require under 10% and print the figure.
    #[test]
    fn disruption_on_removal() {
        for n in [10usize, 100, 1000] {
            let all = ids(n);
            let before = Maglev::build(&all.iter().map(|&i| (i, 1)).collect::<Vec<_>>(), DEFAULT_M);
            let removed = n / 2;
            let rest: Vec<(u64, u32)> = all
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != removed)
                .map(|(_, &id)| (id, 1))
                .collect();
            let after = Maglev::build(&rest, DEFAULT_M);
            let map_back = |j: u16| if (j as usize) < removed { j } else { j + 1 };
            let mut moved_other = 0;
            for (a, b) in before.slots().iter().zip(after.slots()) {
                if *a as usize != removed && map_back(*b) != *a {
                    moved_other += 1;
                }
            }
            let frac = moved_other as f64 / DEFAULT_M as f64;
            eprintln!(
                "maglev M=65537 N={n}: removing one backend moved {:.2}% of other slots",
                frac * 100.0
            );
            assert!(frac < 0.10, "n={n}: {frac}");
        }
    }

    /// Two boxes listing the same backends in other orders send every slot to the same
    /// backend.
    #[test]
    fn order_does_not_matter() {
        let bs: Vec<(u64, u32)> = ids(30)
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, 1 + (i % 2) as u32))
            .collect();
        let mut other = bs.clone();
        other.reverse();
        other.rotate_left(7);
        let (a, b) = (Maglev::build(&bs, 1009), Maglev::build(&other, 1009));
        for (x, y) in a.slots().iter().zip(b.slots()) {
            assert_eq!(bs[*x as usize].0, other[*y as usize].0);
        }
    }

    #[test]
    fn deterministic() {
        let bs: Vec<(u64, u32)> = ids(50).into_iter().map(|i| (i, 1)).collect();
        assert_eq!(Maglev::build(&bs, 1009), Maglev::build(&bs, 1009));
    }
}
