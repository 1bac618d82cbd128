//! IPv4 headers (RFC 791), options allowed; also the outer header of IP-in-IP (protocol 4).
use super::{
    checksum, get_u16, get_u32, set_u16, set_u32, End, Error, Result, TcpPacket, UdpPacket,
};
use core::net::Ipv4Addr;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}
pub const HEADER_LEN: usize = 20;

/// IP protocol numbers ferrovs handles.
pub struct IpProtocol;
impl IpProtocol {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// IPv6-in-IP(v6): the next header of an ip6ip6 tunnel.
    pub const IPV6: u8 = 41;
    /// The IPv6 fragment extension header.
    pub const IPV6_FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Checks version 4, `20 <= IHL*4 <= total length <= buffer length`.
    /// Trailing bytes past the total length (Ethernet padding) are allowed and ignored.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Unsupported);
        }
        let hl = p.header_len();
        if hl < HEADER_LEN || hl > b.len() {
            return Err(Error::BadHeaderLen);
        }
        let tl = p.total_len() as usize;
        if tl < hl || tl > b.len() {
            return Err(Error::BadTotalLen);
        }
        Ok(p)
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) * 8
    }
    /// True for any fragment (first, middle or last).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x3fff != 0
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(get_u32(self.buffer.as_ref(), 12))
    }
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(get_u32(self.buffer.as_ref(), 16))
    }
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// True if the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
    /// The payload up to the total length (padding excluded).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Sets the flags and fragment offset word: DF, MF, offset in bytes (multiple of 8).
    pub fn set_frag(&mut self, df: bool, mf: bool, offset: u16) {
        let v = ((df as u16) << 14) | ((mf as u16) << 13) | (offset / 8);
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets());
    }
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&a.octets());
    }
    /// Decrements the TTL and updates the checksum incrementally. Returns false (and
    /// changes nothing) when the TTL is 1 or 0: the packet must not be forwarded.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) -> bool {
        let b = self.buffer.as_mut();
        let ttl = b[field::TTL];
        if ttl <= 1 {
            return false;
        }
        b[field::TTL] = ttl - 1;
        // The TTL is the high byte of its header word, which drops by 0x0100: the
        // checksum rises by as much, with the end-around carry (RFC 1624 equation 3
        // worked out for this change, as Linux's ip_decrease_ttl does).
        let c = get_u16(b, field::CHECKSUM) as u32 + 0x0100;
        set_u16(b, field::CHECKSUM, (c + (c >= 0xffff) as u32) as u16);
        true
    }
    /// NAT: the address at `end` becomes `addr` and the TCP/UDP port at that end becomes
    /// `port`; the IP and transport checksums are updated incrementally (RFC 1624). Other
    /// protocols get the address change only. The view must have passed `new_checked`
    /// and, for TCP/UDP, the transport view's `new_checked`.
    #[inline(always)]
    pub fn rewrite_endpoint(&mut self, end: End, addr: Ipv4Addr, port: u16) {
        let (hl, protocol) = (self.header_len(), self.protocol());
        let old = self.rewrite_addr(end, addr);
        let l4 = &mut self.buffer.as_mut()[hl..];
        match protocol {
            IpProtocol::TCP => TcpPacket::new_unchecked(l4).rewrite_port(end, port, old, addr),
            IpProtocol::UDP => UdpPacket::new_unchecked(l4).rewrite_port(end, port, old, addr),
            // ICMP's checksum covers no pseudo-header: only an echo's identifier.
            IpProtocol::ICMP => super::IcmpPacket::new_unchecked(l4).rewrite_ident(end, port),
            _ => {}
        }
    }
    /// The address at `end` becomes `addr`, the header checksum updated incrementally;
    /// the payload is not touched (a fragment after the first: no transport header).
    /// Returns the old address.
    #[inline(always)]
    pub fn rewrite_addr(&mut self, end: End, addr: Ipv4Addr) -> Ipv4Addr {
        let at = match end {
            End::Src => field::SRC,
            End::Dst => field::DST,
        };
        let b = self.buffer.as_mut();
        let old = Ipv4Addr::from_bits(get_u32(b, at));
        set_u32(b, at, addr.to_bits());
        let c = checksum::update32(get_u16(b, field::CHECKSUM), old.to_bits(), addr.to_bits());
        set_u16(b, field::CHECKSUM, c);
        old
    }
    /// Swaps source and destination (the header checksum does not change).
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (s, d) = (self.src(), self.dst());
        self.set_src(d);
        self.set_dst(s);
    }
    /// Writes this (20-byte) header as the outer header of IP-in-IP (protocol 4) around
    /// `inner`: TOS, DF, TTL and identification copied from it, total length = inner
    /// total length + 20, never fragment fields, a full checksum.
    #[inline]
    pub fn set_tunnel_header<I: AsRef<[u8]>>(
        &mut self,
        inner: &Ipv4Packet<I>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) {
        self.set_version_and_len(HEADER_LEN);
        self.set_tos(inner.tos());
        self.set_total_len(inner.total_len().wrapping_add(HEADER_LEN as u16));
        self.set_ident(inner.ident());
        self.set_frag(inner.dont_frag(), false, 0);
        self.set_ttl(inner.ttl());
        self.set_protocol(IpProtocol::IPIP);
        self.set_src(src);
        self.set_dst(dst);
        self.fill_checksum();
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[h..t]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const PACKET: [u8; 28] = [
        0x46, 0x10, 0x00, 0x1c,  // v4, IHL 6, TOS 0x10, length 28
        0x12, 0x34, 0x40, 0x00,  // ident, DF
        0x40, 0x11, 0x00, 0x00,  // TTL 64, UDP, checksum (filled below)
        0xc0, 0x00, 0x02, 0x01,  // 192.0.2.1
        0xcb, 0x00, 0x71, 0x0a,  // 203.0.113.10
        0x01, 0x01, 0x01, 0x00,  // options: NOP NOP NOP EOL
        0xaa, 0xbb, 0xcc, 0xdd,  // payload
    ];

    fn fixture() -> [u8; 28] {
        let mut b = PACKET;
        let c = checksum::checksum(&b[..24]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn read_fields() {
        let b = fixture();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.tos(), 0x10);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.src(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn build_fixture() {
        let mut b = [0u8; 28];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version_and_len(24);
        p.set_tos(0x10);
        p.set_total_len(28);
        p.set_ident(0x1234);
        p.set_frag(true, false, 0);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::UDP);
        p.set_src(Ipv4Addr::new(192, 0, 2, 1));
        p.set_dst(Ipv4Addr::new(203, 0, 113, 10));
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        p.fill_checksum();
        assert_eq!(b, fixture());
    }

    #[test]
    fn fragments() {
        let mut b = fixture();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_frag(false, true, 1480);
        assert!(p.is_fragment() && p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn rejects() {
        let b = fixture();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut v6 = b;
        v6[0] = 0x60;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).unwrap_err(),
            Error::Unsupported
        );
        let mut ihl = b;
        ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl[..]).unwrap_err(),
            Error::BadHeaderLen
        );
        let mut ihl = b;
        ihl[0] = 0x4f; // 60 bytes > buffer
        assert_eq!(
            Ipv4Packet::new_checked(&ihl[..]).unwrap_err(),
            Error::BadHeaderLen
        );
        let mut tl = b;
        tl[3] = 29;
        assert_eq!(
            Ipv4Packet::new_checked(&tl[..]).unwrap_err(),
            Error::BadTotalLen
        );
        tl[3] = 23; // shorter than the header
        assert_eq!(
            Ipv4Packet::new_checked(&tl[..]).unwrap_err(),
            Error::BadTotalLen
        );
    }

    #[test]
    fn padding_ignored() {
        let mut b = [0u8; 40];
        b[..28].copy_from_slice(&fixture());
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }

    /// The incremental TTL update gives, byte for byte, the checksum computed afresh,
    /// for every TTL and for identifications that put the checksum at each carry edge.
    #[test]
    fn ttl_checksum_matches_a_full_recompute() {
        let mut b = fixture();
        let mut edges = 0;
        for ttl in 2..=255u8 {
            for ident in (0..=0xffffu32).step_by(7).chain([0xfeff, 0xff00, 0xffff]) {
                let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
                p.set_ident(ident as u16);
                p.buffer[field::TTL] = ttl;
                p.fill_checksum();
                edges += (p.checksum() >= 0xfeff) as u32;
                assert!(p.decrement_ttl());
                let fast = p.checksum();
                p.fill_checksum();
                assert_eq!(fast, p.checksum(), "ttl {ttl} ident {ident:#x}");
            }
        }
        assert!(edges > 0, "the carry edge was exercised");
    }
}

#[cfg(test)]
mod rewrite_tests {
    //! The in-place rewrites (NAT, TTL, tunnel header) against full recomputation.
    use super::super::builder::{tcp_frame, udp_frame, FrameSpec};
    use super::super::{End, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    fn nat_dst(ip: &mut [u8], addr: Ipv4Addr, port: u16) {
        Ipv4Packet::new_unchecked(ip).rewrite_endpoint(End::Dst, addr, port);
    }
    fn nat_src(ip: &mut [u8], addr: Ipv4Addr, port: u16) {
        Ipv4Packet::new_unchecked(ip).rewrite_endpoint(End::Src, addr, port);
    }
    fn decrement_ttl(ip: &mut [u8]) -> bool {
        Ipv4Packet::new_unchecked(ip).decrement_ttl()
    }

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
        nat_dst(&mut f[14..], be, 8080);
        verify_all(&f);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.dst(), be);
        assert_eq!(
            TcpPacket::new_checked(ip.payload()).unwrap().dst_port(),
            8080
        );
        nat_src(&mut f[14..], spec.dst_ip, spec.dst_port);
        verify_all(&f);
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut f = udp_frame(&FrameSpec::default(), b"x");
        f[14 + 20 + 6..14 + 20 + 8].fill(0);
        nat_dst(&mut f[14..], Ipv4Addr::new(10, 1, 0, 10), 53);
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
        Ipv4Packet::new_unchecked(&mut outer[..]).set_tunnel_header(
            &Ipv4Packet::new_unchecked(inner),
            s,
            d,
        );
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
                nat_src(&mut f[14..], Ipv4Addr::from_bits(new_addr), new_port);
            } else {
                nat_dst(&mut f[14..], Ipv4Addr::from_bits(new_addr), new_port);
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
