//! The Internet checksum (RFC 1071): full computation, the IPv4 and IPv6 pseudo-headers,
//! and incremental update (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`) for the rewrites
//! ferrovs does (addresses, ports, TTL).
use core::net::{Ipv4Addr, Ipv6Addr};

/// Ones'-complement sum of `data` folded to 16 bits (not yet complemented). Folding
/// keeps the ones'-complement value, and keeps sums of a few of these (with a pseudo-
/// header) far from overflowing `u32`.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (v >> 32) + (v & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [b] = rest.remainder() {
        acc += (*b as u64) << 8;
    }
    fold64(acc)
}

#[inline]
fn fold64(mut acc: u64) -> u32 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds a 32-bit sum to 16 bits and complements it: the checksum field value. Two
/// folds always suffice (the first leaves at most 0x1fffe, the second at most 0xffff),
/// so there is no loop and no branch.
#[inline(always)]
pub fn finish(s: u32) -> u16 {
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// The checksum of `data` (for the IPv4 header or ICMP).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Sum of the IPv4 pseudo-header for TCP/UDP.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let s = src.to_bits();
    let d = dst.to_bits();
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + protocol as u32 + len as u32
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1) for TCP, UDP and ICMPv6.
#[inline]
pub fn pseudo_header6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    sum(&src.octets()) + sum(&dst.octets()) + (len >> 16) + (len & 0xffff) + next_header as u32
}

/// What a change of a 128-bit value (an IPv6 address) adds to a checksum's sum: the
/// `~m + m'` of RFC 1624's equation 3, unfolded (at most 16 x 0xffff), so several
/// changes of one header fold once.
#[inline]
pub fn delta128(old: Ipv6Addr, new: Ipv6Addr) -> u32 {
    let (o, n) = (old.segments(), new.segments());
    (0..8).map(|i| (!o[i] as u32 & 0xffff) + n[i] as u32).sum()
}

/// What a change of a 32-bit value (an address) adds to a checksum's sum (see
/// [`delta128`]).
#[inline(always)]
pub fn delta32(old: u32, new: u32) -> u32 {
    (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff)
}

/// What a change of a 16-bit word adds to a checksum's sum (see [`delta128`]).
#[inline(always)]
pub fn delta16(old: u16, new: u16) -> u32 {
    (!old as u32 & 0xffff) + new as u32
}

/// Checksum `hc` after changes whose deltas sum to `delta` (RFC 1624, eqn. 3).
#[inline(always)]
pub fn update(hc: u16, delta: u32) -> u16 {
    finish((!hc as u32) + delta)
}

/// Updates checksum `hc` for a 128-bit value (an IPv6 address) that changes.
#[inline]
pub fn update128(hc: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    update(hc, delta128(old, new))
}

/// Updates checksum `hc` for a 16-bit word that changes from `old` to `new`.
#[inline(always)]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    update(hc, delta16(old, new))
}

/// Updates checksum `hc` for a 32-bit value (an address) that changes from `old` to `new`.
#[inline(always)]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    update(hc, delta32(old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: sum of 0001 f203 f4f5 f6f7 = ddf2 (folded).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&d)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0xab]), 0x1234 + 0xab00);
    }

    /// Regression (found by the fuzzer): a sum folded only to 32 bits could overflow
    /// when the pseudo-header was added (a panic in debug, a lost carry in release).
    #[test]
    fn sums_stay_small_enough_to_add() {
        let ones = [0xffu8; 64];
        assert!(sum(&ones) <= 0xffff);
        let a = Ipv4Addr::new(255, 255, 255, 255);
        let total = pseudo_header(a, a, 255, 0xffff) + sum(&ones);
        assert_eq!(
            finish(total),
            finish(sum(&[0xff; 12]) + sum(&[0, 255, 0xff, 0xff]) + sum(&ones))
        );
    }

    #[test]
    fn incremental_matches_full() {
        let mut d = [
            0x45u8, 0, 0, 40, 1, 2, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&d);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&d), 0);
        let new = 0xcb00_710au32;
        let c2 = update32(c, 0x0a00_0002, new);
        d[16..20].copy_from_slice(&new.to_be_bytes());
        d[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(c2, checksum(&d));
    }
}
