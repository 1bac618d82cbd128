//! The in-place rewrites of the forwarding modes, with incremental checksums.
//!
//! Functions take the IPv4 packet as a byte slice starting at the IP header, already
//! validated by [`Ipv4Packet::new_checked`](super::Ipv4Packet::new_checked) and, for the port
//! rewrites, by the transport view (`l4` is the IP header length). Checksums are updated
//! with RFC 1624 arithmetic, never recomputed: cost is independent of packet size.
use super::checksum::{update16, update32};
use super::{get_u16, get_u32, set_u16, set_u32, IpProtocol};
use core::net::Ipv4Addr;

const IP_CSUM: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;

/// Offset of the transport checksum inside the transport header, if it has one we keep.
#[inline]
fn l4_csum_offset(protocol: u8) -> Option<usize> {
    match protocol {
        IpProtocol::TCP => Some(16),
        IpProtocol::UDP => Some(6),
        _ => None,
    }
}

#[inline]
fn rewrite_addr_port(
    ip: &mut [u8],
    l4: usize,
    addr_at: usize,
    port_at: usize,
    addr: Ipv4Addr,
    port: u16,
) {
    let protocol = ip[9];
    let old_addr = get_u32(ip, addr_at);
    let new_addr = addr.to_bits();
    set_u32(ip, addr_at, new_addr);
    let c = update32(get_u16(ip, IP_CSUM), old_addr, new_addr);
    set_u16(ip, IP_CSUM, c);
    if let Some(off) = l4_csum_offset(protocol) {
        let at = l4 + off;
        let old_port = get_u16(ip, l4 + port_at);
        set_u16(ip, l4 + port_at, port);
        let hc = get_u16(ip, at);
        if protocol == IpProtocol::UDP && hc == 0 {
            return; // no checksum was computed by the sender: leave it absent
        }
        let mut c = update32(hc, old_addr, new_addr);
        c = update16(c, old_port, port);
        if protocol == IpProtocol::UDP && c == 0 {
            c = 0xffff;
        }
        set_u16(ip, at, c);
    }
}

/// NAT, client -> backend: destination address and port become the backend's.
#[inline]
pub fn nat_dst(ip: &mut [u8], l4: usize, addr: Ipv4Addr, port: u16) {
    rewrite_addr_port(ip, l4, IP_DST, 2, addr, port);
}

/// NAT, backend -> client: source address and port become the VIP's.
#[inline]
pub fn nat_src(ip: &mut [u8], l4: usize, addr: Ipv4Addr, port: u16) {
    rewrite_addr_port(ip, l4, IP_SRC, 0, addr, port);
}

/// Decrements the TTL and updates the header checksum. Returns false (and changes
/// nothing) when the TTL is 1 or 0: the packet must not be forwarded.
#[inline]
pub fn decrement_ttl(ip: &mut [u8]) -> bool {
    let ttl = ip[8];
    if ttl <= 1 {
        return false;
    }
    let old = get_u16(ip, 8);
    ip[8] = ttl - 1;
    let c = update16(get_u16(ip, IP_CSUM), old, get_u16(ip, 8));
    set_u16(ip, IP_CSUM, c);
    true
}

/// Writes source and destination MAC of an Ethernet header.
#[inline]
pub fn set_macs(eth: &mut [u8], src: super::MacAddr, dst: super::MacAddr) {
    eth[0..6].copy_from_slice(&dst.0);
    eth[6..12].copy_from_slice(&src.0);
}

/// Writes the outer IPv4 header of IP-in-IP (protocol 4) into `outer` (20 bytes), taken
/// from the inner header: TOS, DF, TTL and identification copied, total length = inner
/// total length + 20, a full (20-byte) checksum.
#[inline]
pub fn ipip_outer(outer: &mut [u8], inner: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let inner_len = get_u16(inner, 2);
    outer[0] = 0x45;
    outer[1] = inner[1];
    set_u16(outer, 2, inner_len.wrapping_add(20));
    outer[4] = inner[4];
    outer[5] = inner[5];
    set_u16(outer, 6, get_u16(inner, 6) & 0x4000); // DF only, never fragment fields
    outer[8] = inner[8];
    outer[9] = IpProtocol::IPIP;
    set_u16(outer, IP_CSUM, 0);
    set_u32(outer, IP_SRC, src.to_bits());
    set_u32(outer, IP_DST, dst.to_bits());
    let c = super::checksum::checksum(&outer[..20]);
    set_u16(outer, IP_CSUM, c);
}

#[cfg(test)]
mod tests {
    use super::super::builder::{tcp_frame, udp_frame, FrameSpec};
    use super::super::{Ipv4Packet, TcpPacket, UdpPacket};
    use super::*;
    use proptest::prelude::*;

    fn verify_all(frame: &[u8]) {
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum(), "ip checksum");
        match ip.protocol() {
            IpProtocol::TCP => {
                assert!(TcpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(ip.src(), ip.dst()))
            }
            IpProtocol::UDP => {
                assert!(UdpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(ip.src(), ip.dst()))
            }
            _ => {}
        }
    }

    #[test]
    fn nat_both_ways_keeps_checksums() {
        let spec = FrameSpec::default();
        let mut f = tcp_frame(&spec, 0x12, b"hello");
        let be = Ipv4Addr::new(10, 1, 0, 10);
        nat_dst(&mut f[14..], 20, be, 8080);
        verify_all(&f);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.dst(), be);
        assert_eq!(
            TcpPacket::new_checked(ip.payload()).unwrap().dst_port(),
            8080
        );
        nat_src(&mut f[14..], 20, spec.dst_ip, spec.dst_port);
        verify_all(&f);
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut f = udp_frame(&FrameSpec::default(), b"x");
        f[14 + 20 + 6..14 + 20 + 8].fill(0);
        nat_dst(&mut f[14..], 20, Ipv4Addr::new(10, 1, 0, 10), 53);
        assert_eq!(&f[40..42], &[0, 0]);
    }

    #[test]
    fn ttl() {
        let mut f = tcp_frame(
            &FrameSpec {
                ttl: 2,
                ..Default::default()
            },
            0x10,
            b"",
        );
        assert!(decrement_ttl(&mut f[14..]));
        assert_eq!(f[22], 1);
        verify_all(&f);
        assert!(!decrement_ttl(&mut f[14..]));
        assert_eq!(f[22], 1);
    }

    #[test]
    fn ipip_outer_from_inner() {
        let f = tcp_frame(
            &FrameSpec {
                df: true,
                ttl: 33,
                ..Default::default()
            },
            0x02,
            b"abc",
        );
        let inner = &f[14..];
        let mut outer = [0u8; 20];
        let (s, d) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 10));
        ipip_outer(&mut outer, inner, s, d);
        let mut pkt = outer.to_vec();
        pkt.extend_from_slice(inner);
        let o = Ipv4Packet::new_checked(&pkt[..]).unwrap();
        assert!(o.verify_checksum());
        assert_eq!((o.src(), o.dst(), o.protocol()), (s, d, IpProtocol::IPIP));
        assert_eq!(o.total_len() as usize, inner.len() + 20);
        assert!(o.dont_frag() && !o.is_fragment());
        assert_eq!(o.ttl(), 33);
        assert_eq!(o.payload(), inner);
    }

    proptest! {
        #[test]
        fn incremental_equals_full(
            src in any::<u32>(), dst in any::<u32>(), sport in any::<u16>(), dport in any::<u16>(),
            new_addr in any::<u32>(), new_port in any::<u16>(), ttl in 2u8..=255,
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            udp in any::<bool>(), to_src in any::<bool>(),
        ) {
            let spec = FrameSpec {
                src_ip: Ipv4Addr::from_bits(src), dst_ip: Ipv4Addr::from_bits(dst),
                src_port: sport, dst_port: dport, ttl, ..Default::default()
            };
            let mut f = if udp { udp_frame(&spec, &payload) } else { tcp_frame(&spec, 0x18, &payload) };
            if to_src {
                nat_src(&mut f[14..], 20, Ipv4Addr::from_bits(new_addr), new_port);
            } else {
                nat_dst(&mut f[14..], 20, Ipv4Addr::from_bits(new_addr), new_port);
            }
            prop_assert!(decrement_ttl(&mut f[14..]));
            // Recompute everything from scratch and compare with the incremental result.
            let mut full = f.clone();
            let mut ip = Ipv4Packet::new_unchecked(&mut full[14..]);
            ip.fill_checksum();
            let (s, d) = (ip.src(), ip.dst());
            if udp {
                UdpPacket::new_unchecked(&mut full[34..]).fill_checksum(s, d);
            } else {
                TcpPacket::new_unchecked(&mut full[34..]).fill_checksum(s, d);
            }
            prop_assert_eq!(f, full);
        }
    }
}
