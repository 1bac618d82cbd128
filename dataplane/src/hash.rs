//! Every hash the packet path uses, in one place: the flow table's bucket hash (seeded
//! per table), and the unseeded, process-stable hashes that all workers (and all ferrovs
//! boxes) must agree on: backend identities for Maglev, a flow's 5-tuple for `mh` and
//! the stateless fallback, a client address for `sh`.
#![forbid(unsafe_code)]
use crate::flow::FlowKey;
use crate::wire::IpAddress;

/// splitmix64 of `id` with a seed: backend identities (Maglev permutations) and the
/// stable flow and source hashes below.
#[inline(always)]
pub fn identity_hash(id: u64, seed: u64) -> u64 {
    let mut z = id ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fast 128-bit multiply mix of two words (the flow table's bucket hash).
#[inline(always)]
pub fn mix(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul((b ^ 0xe703_7ed1_a0b4_28db) as u128);
    let h = (m as u64) ^ ((m >> 64) as u64);
    let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

/// Hash of a flow's 5-tuple for the stateless (Maglev) decision and `mh`: no seed, so
/// every worker and every box agrees; not symmetric (neither needs it).
#[inline(always)]
pub fn flow_hash<A: IpAddress>(k: &FlowKey<A>) -> u64 {
    // IPv4: exactly the source and destination side by side.
    let a = (k.src.fold() << 32) ^ k.dst.fold();
    let b = ((k.src_port as u64) << 24) | ((k.dst_port as u64) << 8) | k.protocol as u64;
    identity_hash(a ^ b.rotate_left(17), 3)
}

/// Hash of a client address (`sh`).
#[inline(always)]
pub fn src_hash<A: IpAddress>(a: A) -> u64 {
    identity_hash(a.fold(), 4)
}

/// A random 64-bit secret per process (std's `RandomState` keys come from the OS's
/// random source): the SYN cookies' key.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x05ee_dc00_c1e5);
    h.finish()
}
