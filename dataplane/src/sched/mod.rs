//! Schedulers with IPVS's semantics: `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh` (Maglev).
//!
//! A scheduler decides only for new flows. Weight 0 means drained: no new flows.
//! State shared between workers is small and lock-free: a per-service cursor
//! (rr/wrr, one CAS per new flow, carried across snapshots so a change does not restart
//! the rotation) and per-backend connection counters (lc/wlc, maintained on flow
//! create/state change/expiry, indexed by the backend's stable id).
#![forbid(unsafe_code)]
pub mod maglev;

pub use maglev::Maglev;

use crate::flow::FlowState;
use crate::slots::{thread_slot, THREAD_SLOTS};
use crate::snapshot::MAX_BACKENDS;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

crate::named_enum! {
    /// The configured scheduler of a service (`services[].scheduler`).
    pub enum SchedulerKind {
        /// Round robin.
        Rr = "rr",
        /// Weighted round robin (IPVS's interleaved sequence).
        Wrr = "wrr",
        /// Least connections.
        Lc = "lc",
        /// Weighted least connections.
        Wlc = "wlc",
        /// Source hashing.
        Sh = "sh",
        /// Maglev hashing.
        Mh = "mh",
    }
}

/// Active (established) and inactive (other) connection counts per backend id.
pub struct ConnCounters {
    active: Box<[AtomicU32]>,
    inactive: Box<[AtomicU32]>,
}

impl Default for ConnCounters {
    fn default() -> Self {
        ConnCounters {
            // One slot past the backends: flows that have none (snat).
            active: (0..=MAX_BACKENDS).map(|_| AtomicU32::new(0)).collect(),
            inactive: (0..=MAX_BACKENDS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl ConnCounters {
    fn slot(&self, s: FlowState) -> &[AtomicU32] {
        if s.is_active() {
            &self.active
        } else {
            &self.inactive
        }
    }
    /// A flow in state `s` was created for backend `id`.
    #[inline]
    pub fn on_create(&self, id: u32, s: FlowState) {
        self.slot(s)[(id as usize).min(MAX_BACKENDS)].fetch_add(1, Relaxed);
    }
    /// A flow of backend `id` moved from `old` to `new`.
    #[inline]
    pub fn on_change(&self, id: u32, old: FlowState, new: FlowState) {
        if old.is_active() != new.is_active() {
            self.on_end(id, old);
            self.on_create(id, new);
        }
    }
    /// A flow of backend `id` in state `s` ended.
    #[inline]
    pub fn on_end(&self, id: u32, s: FlowState) {
        let c = &self.slot(s)[(id as usize).min(MAX_BACKENDS)];
        let _ = c.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
    }
    pub fn active(&self, id: u32) -> u32 {
        self.active[(id as usize).min(MAX_BACKENDS)].load(Relaxed)
    }
    pub fn inactive(&self, id: u32) -> u32 {
        self.inactive[(id as usize).min(MAX_BACKENDS)].load(Relaxed)
    }
    /// IPVS's overhead: active * 256 + inactive.
    pub fn overhead(&self, id: u32) -> u64 {
        (self.active(id) as u64) << 8 | self.inactive(id) as u64
    }
    /// Zeroes a backend id's counters (before the id is given to a new backend).
    pub fn reset(&self, id: u32) {
        self.active[(id as usize).min(MAX_BACKENDS)].store(0, Relaxed);
        self.inactive[(id as usize).min(MAX_BACKENDS)].store(0, Relaxed);
    }
}

/// Per-service scheduler position, kept across snapshots: one per worker thread (as DPVS
/// keeps its schedulers per lcore), each on a cache line of its own, so a choice takes
/// no locked instruction and no line another core writes; each worker goes round its
/// own sequence. Each packs `index:32 | current_weight:32` (wrr) or `index:32` (rr).
#[derive(Debug)]
pub struct Cursor(Box<[CursorSlot; THREAD_SLOTS]>);

#[repr(align(64))]
#[derive(Debug, Default)]
struct CursorSlot(AtomicU64);

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor(Box::new(core::array::from_fn(|_| CursorSlot::default())))
    }
}

/// Precomputed per-snapshot scheduler data.
#[derive(Debug, Clone)]
pub enum Sched {
    Rr,
    Wrr {
        gcd: u32,
        max: u32,
    },
    Lc,
    Wlc,
    /// 256 source-hash buckets -> backend index (u16::MAX: none).
    Sh(Box<[u16; 256]>),
    Mh,
}

impl Sched {
    pub fn new(kind: SchedulerKind, weights: &[u32]) -> Sched {
        match kind {
            SchedulerKind::Rr => Sched::Rr,
            SchedulerKind::Wrr => {
                let gcd = weights
                    .iter()
                    .filter(|&&w| w > 0)
                    .fold(0, |g, &w| gcd(g, w));
                Sched::Wrr {
                    gcd: gcd.max(1),
                    max: weights.iter().copied().max().unwrap_or(0),
                }
            }
            SchedulerKind::Lc => Sched::Lc,
            SchedulerKind::Wlc => Sched::Wlc,
            SchedulerKind::Sh => Sched::Sh(Box::new(sh_table(weights))),
            SchedulerKind::Mh => Sched::Mh,
        }
    }

    /// Picks a backend index for a new flow; None when every backend is drained.
    /// `ids` and `weights` are the service's backends; `src_hash` hashes the client
    /// address (sh), `flow_hash` the 5-tuple (mh).
    // The inputs are the service's parallel slices plus shared state; a struct would
    // only be rebuilt per call on the hot path.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn pick(
        &self,
        ids: &[u32],
        weights: &[u32],
        cursor: &Cursor,
        counters: &ConnCounters,
        maglev: &Maglev,
        src_hash: u64,
        flow_hash: u64,
    ) -> Option<u16> {
        let n = weights.len();
        if n == 0 {
            return None;
        }
        match self {
            Sched::Rr => {
                // This thread's own position: a plain load and store, no division but
                // for a position a smaller backend list left behind.
                let slot = cursor.mine();
                let c = slot.load(Relaxed) as u32 as usize;
                let mut i = if c < n { c } else { c % n };
                for _ in 0..n {
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                    if weights[i] > 0 {
                        slot.store(i as u64, Relaxed);
                        return Some(i as u16);
                    }
                }
                None
            }
            Sched::Wrr { gcd, max } => {
                if *max == 0 {
                    return None;
                }
                // IPVS's ip_vs_wrr_schedule: walk the list; on wrapping, lower the
                // current weight by gcd (back to max below zero); pick the first backend
                // whose weight >= current weight. The position holds (index + 1): 0 is
                // "before the head", as IPVS starts.
                let slot = cursor.mine();
                let c = slot.load(Relaxed);
                let pos = (c >> 32) as usize;
                let mut i = if pos == 0 {
                    n - 1
                } else {
                    (pos - 1).min(n - 1)
                };
                let mut cw = c as u32 as i64;
                for _ in 0..(n + 1) * 2 {
                    i += 1;
                    if i == n {
                        i = 0;
                        cw -= *gcd as i64;
                        if cw <= 0 {
                            cw = *max as i64;
                        }
                    }
                    if weights[i] as i64 >= cw && weights[i] > 0 {
                        slot.store((((i + 1) as u64) << 32) | cw as u64, Relaxed);
                        return Some(i as u16);
                    }
                }
                None
            }
            Sched::Lc | Sched::Wlc => {
                let weighted = matches!(self, Sched::Wlc);
                let mut best: Option<(usize, u64)> = None;
                for i in 0..n {
                    let w = weights[i] as u64;
                    if w == 0 {
                        continue;
                    }
                    let oh = counters.overhead(ids[i]);
                    best = match best {
                        None => Some((i, oh)),
                        Some((b, boh)) => {
                            let better = if weighted {
                                // oh / w < boh / wb  <=>  oh * wb < boh * w
                                (oh as u128) * (weights[b] as u128) < (boh as u128) * (w as u128)
                            } else {
                                oh < boh
                            };
                            if better {
                                Some((i, oh))
                            } else {
                                Some((b, boh))
                            }
                        }
                    };
                }
                best.map(|(i, _)| i as u16)
            }
            Sched::Sh(t) => {
                let b = t[(src_hash & 0xff) as usize];
                (b != u16::MAX).then_some(b)
            }
            Sched::Mh => maglev.lookup(flow_hash),
        }
    }
}

impl Cursor {
    #[inline(always)]
    fn mine(&self) -> &AtomicU64 {
        // A slot index is below THREAD_SLOTS: indexing the array needs no division.
        &self.0[thread_slot()].0
    }
    /// Carries the positions over to a new backend list of `n` backends (rr/wrr keep
    /// going from where they were instead of restarting at the first backend).
    pub fn clamp(&self, n: usize) {
        for s in self.0.iter() {
            let _ = s.0.fetch_update(Relaxed, Relaxed, |c| {
                let pos = (c >> 32) as usize;
                (pos > n).then_some(((n as u64) << 32) | (c & 0xffff_ffff))
            });
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// IPVS sh: buckets are assigned to backends in turn, each backend taking as many
/// consecutive turns as its weight; drained backends take none.
fn sh_table(weights: &[u32]) -> [u16; 256] {
    let mut t = [u16::MAX; 256];
    let live: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0).collect();
    if live.is_empty() {
        return t;
    }
    let (mut k, mut used) = (0usize, 0u32);
    for slot in t.iter_mut() {
        let i = live[k % live.len()];
        *slot = i as u16;
        used += 1;
        if used >= weights[i] {
            used = 0;
            k += 1;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: SchedulerKind, weights: &[u32], n: usize) -> Vec<u16> {
        let ids: Vec<u32> = (0..weights.len() as u32).collect();
        let s = Sched::new(kind, weights);
        let (cur, cnt) = (Cursor::default(), ConnCounters::default());
        let mg = Maglev::build(
            &ids.iter()
                .zip(weights)
                .map(|(&i, &w)| (i as u64, w))
                .collect::<Vec<_>>(),
            1009,
        );
        (0..n)
            .map(|k| {
                s.pick(&ids, weights, &cur, &cnt, &mg, k as u64, k as u64 * 7919)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn rr_cycles_and_skips_drained() {
        assert_eq!(
            run(SchedulerKind::Rr, &[1, 1, 1], 6),
            vec![1, 2, 0, 1, 2, 0]
        );
        assert_eq!(run(SchedulerKind::Rr, &[1, 0, 5], 4), vec![2, 0, 2, 0]);
        let s = Sched::new(SchedulerKind::Rr, &[0, 0]);
        assert!(s
            .pick(
                &[0, 1],
                &[0, 0],
                &Cursor::default(),
                &ConnCounters::default(),
                &Maglev::build(&[], 7),
                0,
                0
            )
            .is_none());
    }

    #[test]
    fn wrr_is_ipvs_interleaving() {
        // IPVS wrr with weights 4,3,2: a A A B A B C A B C  (one full cycle = 9)
        let seq = run(SchedulerKind::Wrr, &[4, 3, 2], 9);
        assert_eq!(seq, vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
        // Exact proportions over full cycles, drained backend never chosen.
        let seq = run(SchedulerKind::Wrr, &[1, 2, 0, 3], 600);
        let mut c = [0; 4];
        for i in seq {
            c[i as usize] += 1;
        }
        assert_eq!(c, [100, 200, 0, 300]);
    }

    #[test]
    fn lc_and_wlc_pick_least_loaded() {
        let ids = [10u32, 11, 12];
        let cnt = ConnCounters::default();
        let (cur, mg) = (Cursor::default(), Maglev::build(&[], 7));
        for _ in 0..3 {
            cnt.on_create(10, FlowState::Established);
        }
        cnt.on_create(11, FlowState::Established);
        for _ in 0..2 {
            cnt.on_create(12, FlowState::Established);
        }
        let lc = Sched::new(SchedulerKind::Lc, &[1, 1, 1]);
        assert_eq!(lc.pick(&ids, &[1, 1, 1], &cur, &cnt, &mg, 0, 0), Some(1));
        // wlc: 3/4 < 1/1 and < 2/1
        let w = [4, 1, 1];
        let wlc = Sched::new(SchedulerKind::Wlc, &w);
        assert_eq!(wlc.pick(&ids, &w, &cur, &cnt, &mg, 0, 0), Some(0));
        // Inactive connections weigh 1/256 of an active one.
        cnt.on_create(11, FlowState::SynSent);
        assert_eq!(lc.pick(&ids, &[1, 1, 1], &cur, &cnt, &mg, 0, 0), Some(1));
        cnt.on_change(11, FlowState::SynSent, FlowState::Established);
        assert_eq!((cnt.active(11), cnt.inactive(11)), (2, 0));
        assert_eq!(
            lc.pick(&ids, &[1, 1, 1], &cur, &cnt, &mg, 0, 0),
            Some(1),
            "tie goes to the first"
        );
        cnt.on_end(11, FlowState::Established);
        cnt.on_end(11, FlowState::Established);
        cnt.on_end(11, FlowState::Established); // never below zero
        assert_eq!(cnt.active(11), 0);
        // Drained backends are skipped even when idle.
        assert_eq!(lc.pick(&ids, &[1, 0, 1], &cur, &cnt, &mg, 0, 0), Some(2));
    }

    #[test]
    fn sh_is_stable_per_source_and_weighted() {
        let w = [1, 3];
        let s = Sched::new(SchedulerKind::Sh, &w);
        let (cur, cnt, mg) = (
            Cursor::default(),
            ConnCounters::default(),
            Maglev::build(&[], 7),
        );
        for src in 0..1000u64 {
            let a = s.pick(&[0, 1], &w, &cur, &cnt, &mg, src, 1).unwrap();
            let b = s.pick(&[0, 1], &w, &cur, &cnt, &mg, src, 2).unwrap();
            assert_eq!(a, b);
        }
        let Sched::Sh(t) = &s else { unreachable!() };
        assert_eq!(t.iter().filter(|&&b| b == 1).count(), 192);
        let t0 = sh_table(&[0, 2]);
        assert!(t0.iter().all(|&b| b == 1));
    }

    #[test]
    fn mh_uses_the_maglev_table() {
        let seq = run(SchedulerKind::Mh, &[1, 1, 1], 3000);
        let mut c = [0; 3];
        for i in seq {
            c[i as usize] += 1;
        }
        assert!(c.iter().all(|&x| x > 800), "{c:?}");
    }

    #[test]
    fn cursor_survives_shrinking() {
        let cur = Cursor::default();
        cur.mine().store(5 << 32 | 3, Relaxed);
        cur.0[cur.0.len() - 1].0.store(9 << 32 | 1, Relaxed);
        cur.clamp(3);
        assert_eq!(cur.mine().load(Relaxed), 3 << 32 | 3);
        assert_eq!(
            cur.0[cur.0.len() - 1].0.load(Relaxed),
            3 << 32 | 1,
            "every worker's"
        );
    }

    /// Each thread goes round its own sequence: two threads picking from one service
    /// each see the whole rotation, and neither's picks disturb the other's.
    #[test]
    fn each_thread_has_its_own_rotation() {
        let weights = [1u32, 1, 1];
        let ids = [0u32, 1, 2];
        let s = Sched::new(SchedulerKind::Rr, &weights);
        let (cur, cnt, mg) = (
            Cursor::default(),
            ConnCounters::default(),
            Maglev::build(&[], 7),
        );
        let picks = |n: usize| -> Vec<u16> {
            (0..n)
                .map(|_| s.pick(&ids, &weights, &cur, &cnt, &mg, 0, 0).unwrap())
                .collect()
        };
        let here = picks(2);
        let there = std::thread::scope(|sc| sc.spawn(|| picks(3)).join().unwrap());
        assert_eq!(
            there,
            vec![1, 2, 0],
            "a thread of its own starts its own rotation"
        );
        assert_eq!(here, vec![1, 2]);
        assert_eq!(picks(1), vec![0], "and this one's goes on where it was");
    }
}
