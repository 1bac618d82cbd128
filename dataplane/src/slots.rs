//! Per-thread slots: state that every worker would otherwise update on one shared cache
//! line (the flow table's free-entry stacks, a service's scheduler position) is split
//! into `THREAD_SLOTS` copies, and each thread works on its own.
#![forbid(unsafe_code)]
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How many slots such state is split into.
pub const THREAD_SLOTS: usize = 64;

/// The calling thread's slot: threads get slots round-robin, on first use (past 64
/// threads two share one; the state that uses slots stays correct, only less spread).
#[inline(always)]
pub fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: usize = NEXT.fetch_add(1, Relaxed) % THREAD_SLOTS);
    SLOT.with(|s| *s)
}
