//! IPv4 and IPv6 fragments follow their datagram's first fragment (VPP's "shallow virtual
//! reassembly"): nothing is reassembled or buffered.
//!
//! The first fragment carries the transport header, so it takes the flow path like any
//! packet; its datagram's identity (source, destination, protocol, identification) is
//! remembered here with its ports for [`FRAG_TTL_S`] seconds. A later fragment has no
//! ports: they are found here, and with them the flow, which the fragment follows (its
//! addresses rewritten as the flow's, its payload untouched). A fragment that arrives
//! before its first one, or after the entry expired or was overwritten, is dropped
//! (`fragment`): the sender's reassembly times out as if it were lost.
//!
//! The table is shared by the workers (RSS may spread one datagram's fragments), fixed in
//! size and lock-free: a slot is written with a seqlock-like protocol (identity word
//! cleared, fields written, identity word stored with Release) and carries a check of its
//! own words, so a reader racing a writer misses rather than matches a torn slot. A new
//! datagram overwrites whatever its slot held: a flood of fragments evicts, never grows.
#![forbid(unsafe_code)]
use crate::hash::mix;
use core::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{fence, AtomicU64, Ordering::*};

/// How long a datagram's later fragments are matched after its first one.
pub const FRAG_TTL_S: u16 = 2;
/// Slots of the table (a power of two): datagrams in flight at once.
pub const FRAG_SLOTS: usize = 4096;

/// A datagram's identity: what its fragments share (source, destination, protocol,
/// identification), as the table's two key words. IPv4's is exact; IPv6's addresses are
/// folded into 64 bits (a false match would need two datagrams in flight whose folds
/// collide, and would still need the same ports to find a flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramId {
    addrs: u64,
    ident: u64,
}

impl DatagramId {
    #[inline(always)]
    pub fn v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, ident: u16) -> DatagramId {
        DatagramId {
            addrs: ((src.to_bits() as u64) << 32) | dst.to_bits() as u64,
            ident: ((ident as u64) << 16) | ((protocol as u64) << 8) | 1,
        }
    }
    #[inline(always)]
    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: u8, ident: u32) -> DatagramId {
        let (s, d) = (src.to_bits(), dst.to_bits());
        DatagramId {
            addrs: mix(s as u64 ^ (d >> 64) as u64, (s >> 64) as u64 ^ d as u64),
            // Bit 1 marks IPv6: the families never match each other.
            ident: ((ident as u64) << 16) | ((protocol as u64) << 8) | 3,
        }
    }
    #[inline(always)]
    fn words(&self) -> (u64, u64) {
        (self.addrs, self.ident)
    }
}

#[derive(Default)]
#[repr(align(32))]
struct Slot {
    /// src:32 | dst:32
    addrs: AtomicU64,
    /// ident:16 | protocol:8 | 1 (0: empty or being written)
    ident: AtomicU64,
    /// src_port:16 | dst_port:16 | time:16 | check:16
    ports: AtomicU64,
}

pub struct FragTable {
    slots: Box<[Slot]>,
}

impl Default for FragTable {
    fn default() -> FragTable {
        FragTable::new()
    }
}

/// 16 bits that tie a slot's words together.
#[inline(always)]
fn check(a: u64, i: u64, ports: u32) -> u16 {
    (mix(a, i ^ ((ports as u64) << 24)) >> 48) as u16
}

impl FragTable {
    pub fn new() -> FragTable {
        FragTable {
            slots: (0..FRAG_SLOTS).map(|_| Slot::default()).collect(),
        }
    }

    #[inline(always)]
    fn slot(&self, a: u64, i: u64) -> &Slot {
        &self.slots[(mix(a, i) as usize) & (FRAG_SLOTS - 1)]
    }

    /// Remembers a first fragment's ports for its datagram, at time `now` (seconds).
    #[inline]
    pub fn remember(&self, d: &DatagramId, src_port: u16, dst_port: u16, now: u32) {
        let (a, i) = d.words();
        let s = self.slot(a, i);
        let ports = ((src_port as u32) << 16) | dst_port as u32;
        s.ident.store(0, Relaxed);
        fence(Release);
        s.addrs.store(a, Relaxed);
        s.ports.store(
            ((ports as u64) << 32) | ((now as u16 as u64) << 16) | check(a, i, ports) as u64,
            Relaxed,
        );
        s.ident.store(i, Release);
    }

    /// The ports of a datagram whose first fragment was seen less than [`FRAG_TTL_S`]
    /// seconds before `now`: (source port, destination port).
    #[inline]
    pub fn ports(&self, d: &DatagramId, now: u32) -> Option<(u16, u16)> {
        let (a, i) = d.words();
        let s = self.slot(a, i);
        if s.ident.load(Acquire) != i {
            return None;
        }
        let (addrs, w) = (s.addrs.load(Relaxed), s.ports.load(Relaxed));
        fence(Acquire);
        if s.ident.load(Relaxed) != i || addrs != a {
            return None;
        }
        let ports = (w >> 32) as u32;
        let age = (now as u16).wrapping_sub((w >> 16) as u16);
        if w as u16 != check(a, i, ports) || age > FRAG_TTL_S {
            return None;
        }
        Some(((ports >> 16) as u16, ports as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ident: u16) -> DatagramId {
        DatagramId::v4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(203, 0, 113, 10),
            17,
            ident,
        )
    }

    #[test]
    fn later_fragments_find_the_first_ones_ports_until_it_expires() {
        let t = FragTable::new();
        assert_eq!(t.ports(&id(7), 100), None);
        t.remember(&id(7), 5000, 53, 100);
        assert_eq!(t.ports(&id(7), 100), Some((5000, 53)));
        assert_eq!(t.ports(&id(7), 102), Some((5000, 53)));
        assert_eq!(t.ports(&id(7), 103), None, "expired");
        assert_eq!(t.ports(&id(8), 100), None, "another datagram");
        let other_dst = DatagramId::v4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(203, 0, 113, 11),
            17,
            7,
        );
        assert_eq!(t.ports(&other_dst, 100), None);
        let tcp = DatagramId::v4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(203, 0, 113, 10),
            6,
            7,
        );
        assert_eq!(t.ports(&tcp, 100), None);
        let (a, b) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        t.remember(&DatagramId::v6(a, b, 17, 7), 4000, 53, 100);
        assert_eq!(t.ports(&DatagramId::v6(a, b, 17, 7), 100), Some((4000, 53)));
        assert_eq!(t.ports(&DatagramId::v6(b, a, 17, 7), 100), None);
        assert_eq!(t.ports(&id(7), 100), Some((5000, 53)), "IPv4's entry stays");
    }

    #[test]
    fn a_flood_overwrites_and_stays_bounded() {
        let t = FragTable::new();
        for n in 0..(4 * FRAG_SLOTS) as u16 {
            t.remember(&id(n), n, 80, 5);
        }
        // Every answer is right or absent: never another datagram's ports.
        let mut found = 0;
        for n in 0..(4 * FRAG_SLOTS) as u16 {
            if let Some(p) = t.ports(&id(n), 5) {
                assert_eq!(p, (n, 80));
                found += 1;
            }
        }
        assert!(found > 0 && found <= FRAG_SLOTS);
        assert_eq!(t.slots.len(), FRAG_SLOTS);
    }
}
