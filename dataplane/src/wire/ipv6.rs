//! IPv6 headers (RFC 8200): the fixed 40-byte header; also the outer header of
//! IPv6-in-IPv6 (next header 41). Extension headers are not walked: the pipeline
//! forwards only packets whose next header is TCP, UDP or ICMPv6 and counts the others.
use super::{get_u16, get_u32, set_u16, set_u32, IpProtocol};
use super::{End, Error, IpAddress, Result, TcpPacket, UdpPacket};
use core::net::Ipv6Addr;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}
pub const HEADER_LEN: usize = 40;
/// The fragment extension header (next header 44).
pub const FRAG_HEADER_LEN: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    /// Checks version 6 and `40 + payload length <= buffer length` (trailing bytes, such
    /// as Ethernet padding, are allowed and ignored).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(Error::Unsupported);
        }
        if HEADER_LEN + p.payload_len() as usize > b.len() {
            return Err(Error::BadTotalLen);
        }
        Ok(p)
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }
    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    pub fn src(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::SRC)
    }
    pub fn dst(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::DST)
    }
    /// The payload up to the payload length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

fn addr(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label.
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        let v = (6u32 << 28) | ((tc as u32) << 20) | (flow & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, v);
    }
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }
    /// Decrements the hop limit (IPv6 has no header checksum). Returns false (and
    /// changes nothing) when it is 1 or 0: the packet must not be forwarded.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> bool {
        let b = self.buffer.as_mut();
        let h = b[field::HOP_LIMIT];
        if h <= 1 {
            return false;
        }
        b[field::HOP_LIMIT] = h - 1;
        true
    }
    /// NAT: the address at `end` becomes `addr` and the TCP/UDP port at that end becomes
    /// `port`; the transport checksum follows incrementally (its pseudo-header holds the
    /// addresses). The view must have passed `new_checked`, the transport view its own,
    /// and the transport header must follow this header directly, or a fragment header
    /// of a first fragment (a later fragment gets the address only).
    #[inline]
    pub fn rewrite_endpoint(&mut self, end: End, addr: Ipv6Addr, port: u16) {
        let at = match end {
            End::Src => field::SRC,
            End::Dst => field::DST,
        };
        let mut nh = self.next_header();
        let b = self.buffer.as_mut();
        let old = self::addr(b, at);
        b[at..at + 16].copy_from_slice(&addr.octets());
        let mut l4_at = HEADER_LEN;
        if nh == IpProtocol::IPV6_FRAGMENT && b.len() >= HEADER_LEN + FRAG_HEADER_LEN {
            let first = u16::from_be_bytes([b[HEADER_LEN + 2], b[HEADER_LEN + 3]]) & 0xfff8 == 0;
            nh = if first { b[HEADER_LEN] } else { 0 };
            l4_at += FRAG_HEADER_LEN;
        }
        let l4 = &mut b[l4_at..];
        match nh {
            IpProtocol::TCP => TcpPacket::new_unchecked(l4).rewrite_port(end, port, old, addr),
            IpProtocol::UDP => UdpPacket::new_unchecked(l4).rewrite_port(end, port, old, addr),
            IpProtocol::ICMPV6 => {
                super::Icmpv6Packet::new_unchecked(l4).rewrite_endpoint(end, port, old, addr)
            }
            _ => {}
        }
    }
    /// Swaps source and destination (checksums over the pseudo-header do not change).
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (s, d) = (self.src(), self.dst());
        self.set_src(d);
        self.set_dst(s);
    }
    /// Writes this (40-byte) header as the outer header of IPv6-in-IPv6 (next header 41,
    /// RFC 2473) around `inner`: traffic class, flow label and hop limit copied from it,
    /// payload length = the inner packet's total length.
    #[inline]
    pub fn set_tunnel_header<I: AsRef<[u8]>>(
        &mut self,
        inner: &Ipv6Packet<I>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) {
        self.set_version_tc_flow(inner.traffic_class(), inner.flow_label());
        self.set_payload_len(inner.total_len() as u16);
        self.set_next_header(IpProtocol::IPV6);
        self.set_hop_limit(inner.hop_limit());
        self.set_src(src);
        self.set_dst(dst);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..t]
    }
}

/// The TCP/UDP/ICMPv6 checksum of `l4` (its checksum field zeroed or not: the caller
/// decides) over the IPv6 pseudo-header.
pub fn upper_checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, l4: &[u8]) -> u16 {
    super::checksum::finish(
        Ipv6Addr::pseudo_header(src, dst, next_header, l4.len() as u32) + super::checksum::sum(l4),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);

    /// A UDP datagram over IPv6, built by etherparse (an independent implementation).
    fn udp6(payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv6(SRC.octets(), DST.octets(), 64).udp(5353, 53);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[rustfmt::skip]
    const HEADER: [u8; 40] = [
        0x6a, 0xb1, 0x23, 0x45,  // v6, TC 0xab, flow label 0x12345
        0x00, 0x04, 0x11, 0x40,  // payload 4, UDP, hop limit 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    #[test]
    fn read_and_build() {
        let mut b = HEADER.to_vec();
        b.extend([1, 2, 3, 4, 0xee]); // payload, then a padding byte
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xab, 0x12345)
        );
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (4, 17, 64)
        );
        assert_eq!((p.src(), p.dst()), (SRC, DST));
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        let mut c = [0u8; 44];
        let mut q = Ipv6Packet::new_unchecked(&mut c[..]);
        q.set_version_tc_flow(0xab, 0x12345);
        q.set_payload_len(4);
        q.set_next_header(17);
        q.set_hop_limit(64);
        q.set_src(SRC);
        q.set_dst(DST);
        q.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(c[..], b[..44]);
    }

    #[test]
    fn rejects() {
        let b = udp6(b"abcd");
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..b.len() - 1]).unwrap_err(),
            Error::BadTotalLen
        );
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            Error::Unsupported
        );
    }

    /// The incremental NAT rewrite gives the checksum a full computation gives, and
    /// etherparse's parser agrees.
    #[test]
    fn nat_rewrite_keeps_checksums() {
        let mut b = udp6(b"hello, backend");
        let backend: Ipv6Addr = "fd00:1::11".parse().unwrap();
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.rewrite_endpoint(End::Dst, backend, 8053);
        p.decrement_hop_limit();
        assert_eq!((p.dst(), p.hop_limit()), (backend, 63));
        let u = UdpPacket::new_checked(p.payload()).unwrap();
        assert_eq!(u.dst_port(), 8053);
        assert!(u.verify_checksum(SRC, backend));
        let parsed = etherparse::SlicedPacket::from_ip(&b).unwrap();
        let Some(etherparse::TransportSlice::Udp(udp)) = parsed.transport else {
            panic!("udp")
        };
        let want = udp
            .to_header()
            .calc_checksum_ipv6_raw(SRC.octets(), backend.octets(), udp.payload())
            .unwrap();
        assert_eq!(udp.checksum(), want);
    }

    #[test]
    fn hop_limit_one_is_not_forwarded() {
        let mut b = udp6(b"x");
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_hop_limit(1);
        assert!(!p.decrement_hop_limit());
        assert_eq!(p.hop_limit(), 1);
    }

    #[test]
    fn tunnel_header() {
        let inner = udp6(b"tunnelled");
        let mut out = vec![0u8; HEADER_LEN + inner.len()];
        out[HEADER_LEN..].copy_from_slice(&inner);
        let (a, b) = (
            "2001:db8::2".parse().unwrap(),
            "fd00:1::11".parse().unwrap(),
        );
        let (head, rest) = out.split_at_mut(HEADER_LEN);
        let i = Ipv6Packet::new_checked(&rest[..]).unwrap();
        Ipv6Packet::new_unchecked(head).set_tunnel_header(&i, a, b);
        let o = Ipv6Packet::new_checked(&out[..]).unwrap();
        assert_eq!((o.next_header(), o.src(), o.dst()), (41, a, b));
        assert_eq!(o.payload(), &inner[..]);
        assert_eq!(o.hop_limit(), 64);
    }

    #[test]
    fn pseudo_header_checksum_matches_a_full_sum() {
        let b = udp6(b"0123456789");
        let l4 = &b[HEADER_LEN..];
        assert_eq!(
            upper_checksum(SRC, DST, 17, l4),
            0,
            "a valid datagram sums to zero"
        );
        let c = checksum::update128(0x1234, SRC, DST);
        let full = checksum::finish(
            !0x1234u16 as u32
                + checksum::sum(&DST.octets())
                + (!checksum::sum(&SRC.octets()) & 0xffff),
        );
        assert_eq!(c, full);
    }
}
