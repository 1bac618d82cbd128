//! ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861): echo, packet too big,
//! neighbor solicitation and advertisement with their link-layer address options. The
//! checksum covers the IPv6 pseudo-header, so checks and fills take the addresses.
use super::{checksum, get_u16, get_u32, set_u16, set_u32, Error, MacAddr, Result};
use core::net::Ipv6Addr;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const MTU: usize = 4;
    pub const ND_FLAGS: usize = 4;
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}
pub const HEADER_LEN: usize = 8;
/// Neighbor solicitations and advertisements: header, reserved/flags, target.
pub const ND_LEN: usize = 24;

pub const TYPE_DEST_UNREACHABLE: u8 = 1;
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
pub const TYPE_TIME_EXCEEDED: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 128;
pub const TYPE_ECHO_REPLY: u8 = 129;
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;

/// NDP option types.
pub const OPT_SOURCE_LL: u8 = 1;
pub const OPT_TARGET_LL: u8 = 2;

/// Neighbor advertisement flags.
pub const NA_ROUTER: u32 = 1 << 31;
pub const NA_SOLICITED: u32 = 1 << 30;
pub const NA_OVERRIDE: u32 = 1 << 29;

/// The hop limit every NDP message is sent with, and must arrive with (RFC 4861 7.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX, RFC 4291 2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast MAC of an IPv6 multicast address (33:33 + its last 32 bits).
pub fn multicast_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }
    /// Checks the buffer holds the 8-byte header, and the 24 bytes of a neighbor
    /// solicitation or advertisement for those types.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if matches!(p.msg_type(), TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT) && b.len() < ND_LEN
        {
            return Err(Error::Truncated);
        }
        Ok(p)
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    pub fn seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SEQ)
    }
    /// Packet too big: the MTU of the next link.
    pub fn mtu(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::MTU)
    }
    /// Neighbor advertisement flags (R, S, O in the top bits).
    pub fn nd_flags(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ND_FLAGS)
    }
    /// The target of a neighbor solicitation or advertisement (None for other types).
    pub fn target(&self) -> Option<Ipv6Addr> {
        let b = self.buffer.as_ref();
        if !matches!(
            self.msg_type(),
            TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT
        ) || b.len() < ND_LEN
        {
            return None;
        }
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[field::ND_TARGET..field::ND_TARGET + 16]);
        Some(Ipv6Addr::from(o))
    }
    /// The link-layer address in option `kind` (source or target) of a neighbor
    /// solicitation or advertisement. `Err` when the options are malformed (an option of
    /// length 0 or running past the end: RFC 4861 says drop the message).
    pub fn link_layer_option(&self, kind: u8) -> core::result::Result<Option<MacAddr>, Error> {
        let b = self.buffer.as_ref();
        if b.len() < ND_LEN {
            return Ok(None);
        }
        let mut at = field::ND_OPTIONS;
        let mut found = None;
        while at < b.len() {
            if at + 2 > b.len() {
                return Err(Error::BadHeaderLen);
            }
            let len = b[at + 1] as usize * 8;
            if len == 0 || at + len > b.len() {
                return Err(Error::BadHeaderLen);
            }
            if b[at] == kind && len >= 8 && found.is_none() {
                let mut m = [0u8; 6];
                m.copy_from_slice(&b[at + 2..at + 8]);
                found = Some(MacAddr(m));
            }
            at += len;
        }
        Ok(found)
    }
    /// Everything after the 8-byte header (echo data, the quoted packet of an error).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True if the checksum verifies for a message from `src` to `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        super::ipv6::upper_checksum(src, dst, super::IpProtocol::ICMPV6, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// NAT: the pseudo-header's address at one end changed from `old` to `new`, and an
    /// echo's identifier (the port's part: a request's source end, a reply's destination
    /// end) becomes `id`; the checksum follows incrementally.
    #[inline]
    pub fn rewrite_endpoint(&mut self, end: super::End, id: u16, old: Ipv6Addr, new: Ipv6Addr) {
        let t = self.msg_type();
        let b = self.buffer.as_mut();
        let mut c = checksum::update128(get_u16(b, field::CHECKSUM), old, new);
        if (end == super::End::Src && t == TYPE_ECHO_REQUEST)
            || (end == super::End::Dst && t == TYPE_ECHO_REPLY)
        {
            let was = get_u16(b, field::IDENT);
            set_u16(b, field::IDENT, id);
            c = checksum::update16(c, was, id);
        }
        set_u16(b, field::CHECKSUM, c);
    }
    pub fn set_seq(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SEQ, v);
    }
    pub fn set_mtu(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::MTU, v);
    }
    pub fn set_nd_flags(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ND_FLAGS, v);
    }
    /// Sets the target of a neighbor message (the buffer holds `ND_LEN` bytes).
    pub fn set_target(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::ND_TARGET..field::ND_TARGET + 16].copy_from_slice(&a.octets());
    }
    /// Writes a link-layer address option (8 bytes) at the start of the options.
    pub fn set_link_layer_option(&mut self, kind: u8, mac: MacAddr) {
        let b = &mut self.buffer.as_mut()[field::ND_OPTIONS..field::ND_OPTIONS + 8];
        b[0] = kind;
        b[1] = 1;
        b[2..8].copy_from_slice(&mac.0);
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
    /// Turns an echo request into its reply: the type changes, the checksum follows
    /// incrementally (the caller swaps the IPv6 addresses, which the pseudo-header sum
    /// does not notice).
    #[inline]
    pub fn make_echo_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = get_u16(b, field::TYPE);
        b[field::TYPE] = TYPE_ECHO_REPLY;
        let new = get_u16(b, field::TYPE);
        let c = checksum::update16(get_u16(b, field::CHECKSUM), old, new);
        set_u16(b, field::CHECKSUM, c);
    }
    /// Computes the checksum over the pseudo-header and the whole message.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c =
            super::ipv6::upper_checksum(src, dst, super::IpProtocol::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x0a, 0x01]);

    #[test]
    fn solicited_node_addresses() {
        let a: Ipv6Addr = "2001:db8::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(a),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(a)).0,
            [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
        );
    }

    /// A neighbor solicitation built here parses with etherparse (an independent
    /// implementation) with a valid checksum, and reads back.
    #[test]
    fn neighbor_solicitation() {
        let mut b = [0u8; ND_LEN + 8];
        let mut p = Icmpv6Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_NEIGHBOR_SOLICIT);
        p.set_target(B);
        p.set_link_layer_option(OPT_SOURCE_LL, MAC);
        p.fill_checksum(A, solicited_node(B));
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(A, solicited_node(B)));
        assert!(!p.verify_checksum(B, solicited_node(B)));
        assert_eq!(p.target(), Some(B));
        assert_eq!(p.link_layer_option(OPT_SOURCE_LL), Ok(Some(MAC)));
        assert_eq!(p.link_layer_option(OPT_TARGET_LL), Ok(None));
        let (h, _) = etherparse::Icmpv6Header::from_slice(&b).unwrap();
        assert_eq!(h.icmp_type, etherparse::Icmpv6Type::NeighborSolicitation);
        assert_eq!(
            h.icmp_type
                .calc_checksum(A.octets(), solicited_node(B).octets(), &b[8..])
                .unwrap(),
            h.checksum
        );
    }

    #[test]
    fn malformed_options_are_errors() {
        let mut b = [0u8; ND_LEN + 8];
        b[0] = TYPE_NEIGHBOR_ADVERT;
        b[ND_LEN] = OPT_TARGET_LL; // length 0
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.link_layer_option(OPT_TARGET_LL).is_err());
        b[ND_LEN + 1] = 2; // 16 bytes, past the end
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(p.link_layer_option(OPT_TARGET_LL).is_err());
        assert_eq!(
            Icmpv6Packet::new_checked(&b[..ND_LEN - 1]).unwrap_err(),
            Error::Truncated
        );
        assert!(Icmpv6Packet::new_checked(&b[..7]).is_err());
    }

    #[test]
    fn echo_reply_keeps_a_valid_checksum() {
        let mut b = [0u8; 8 + 5];
        let mut p = Icmpv6Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_ECHO_REQUEST);
        p.set_ident(0x1234);
        p.set_seq(7);
        p.data_mut()[..5].copy_from_slice(b"hello");
        p.fill_checksum(A, B);
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        p.make_echo_reply();
        assert_eq!(p.msg_type(), TYPE_ECHO_REPLY);
        assert!(p.verify_checksum(B, A), "addresses swapped by the caller");
        assert_eq!((p.ident(), p.seq()), (0x1234, 7));
    }
}
