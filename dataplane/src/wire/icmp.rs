//! ICMP for IPv4 (RFC 792, RFC 1191): echo, destination unreachable (with the
//! fragmentation-needed next-hop MTU), time exceeded, and the original header an
//! error message embeds.
use super::{checksum, get_u16, set_u16, Error, Result};
use core::net::Ipv4Addr;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
}
pub const HEADER_LEN: usize = 8;

pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 8;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const CODE_FRAG_NEEDED: u8 = 4;

/// The addresses and ports of the packet an ICMP error message quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Source and destination ports (the first 4 bytes after the quoted IP header).
    pub src_port: u16,
    pub dst_port: u16,
}

/// A view of an ICMP message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
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
    /// Echo identifier.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    /// Echo sequence number.
    pub fn seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SEQ)
    }
    /// The next-hop MTU of a fragmentation-needed message.
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    pub fn is_error(&self) -> bool {
        matches!(self.msg_type(), TYPE_DEST_UNREACHABLE | TYPE_TIME_EXCEEDED)
    }
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
    /// The quoted original header of an error message: an IPv4 header (IHL checked)
    /// followed by at least 4 bytes of its transport header.
    pub fn embedded(&self) -> Result<Embedded> {
        let d = self.data();
        if d.len() < 20 {
            return Err(Error::Truncated);
        }
        if d[0] >> 4 != 4 {
            return Err(Error::Unsupported);
        }
        let hl = ((d[0] & 0x0f) as usize) * 4;
        if hl < 20 {
            return Err(Error::BadHeaderLen);
        }
        if d.len() < hl + 4 {
            return Err(Error::Truncated);
        }
        Ok(Embedded {
            protocol: d[9],
            src: Ipv4Addr::new(d[12], d[13], d[14], d[15]),
            dst: Ipv4Addr::new(d[16], d[17], d[18], d[19]),
            src_port: get_u16(d, hl),
            dst_port: get_u16(d, hl + 2),
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
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
    /// NAT of an echo's identifier, which plays the port's part: the source end of a
    /// request, the destination end of a reply (other messages: nothing). The checksum
    /// follows incrementally.
    #[inline]
    pub fn rewrite_ident(&mut self, end: super::End, id: u16) {
        let t = self.msg_type();
        if (end == super::End::Src && t == TYPE_ECHO_REQUEST)
            || (end == super::End::Dst && t == TYPE_ECHO_REPLY)
        {
            let b = self.buffer.as_mut();
            let old = get_u16(b, field::IDENT);
            set_u16(b, field::IDENT, id);
            let c = checksum::update16(get_u16(b, field::CHECKSUM), old, id);
            set_u16(b, field::CHECKSUM, c);
        }
    }
    pub fn set_seq(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SEQ, v);
    }
    /// Sets the unused word to 0 and the next-hop MTU (fragmentation needed).
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, 0);
        set_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, v);
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
    /// Turns an echo request into its reply in place: type 0, checksum updated
    /// incrementally (identifier, sequence and data stay).
    #[inline]
    pub fn make_echo_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = get_u16(b, field::TYPE);
        b[field::TYPE] = TYPE_ECHO_REPLY;
        let c = checksum::update16(get_u16(b, field::CHECKSUM), old, get_u16(b, field::TYPE));
        set_u16(b, field::CHECKSUM, c);
    }
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00,  // echo request, checksum (filled below)
        0x12, 0x34, 0x00, 0x01,  // ident, seq
        b'p', b'i', b'n', b'g',
    ];
    #[rustfmt::skip]
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x00, 0x00,  0x00, 0x00, 0x05, 0xc8,  // MTU 1480
        0x45, 0x00, 0x05, 0xdc,  0x00, 0x01, 0x40, 0x00,
        0x3f, 0x06, 0x00, 0x00,  192, 0, 2, 1,  203, 0, 113, 10,
        0xc3, 0x50, 0x00, 0x50,  0x00, 0x00, 0x00, 0x01,
    ];

    fn fill(mut b: Vec<u8>) -> Vec<u8> {
        let c = checksum::checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn read_echo() {
        let b = fill(ECHO.to_vec());
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (TYPE_ECHO_REQUEST, 0));
        assert_eq!((p.ident(), p.seq()), (0x1234, 1));
        assert_eq!(p.data(), b"ping");
        assert!(p.verify_checksum() && !p.is_error());
    }

    #[test]
    fn build_echo() {
        let mut b = vec![0u8; 12];
        let mut p = IcmpPacket::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_ECHO_REQUEST);
        p.set_code(0);
        p.set_ident(0x1234);
        p.set_seq(1);
        p.data_mut().copy_from_slice(b"ping");
        p.fill_checksum();
        assert_eq!(b, fill(ECHO.to_vec()));
    }

    #[test]
    fn read_frag_needed() {
        let b = fill(FRAG_NEEDED.to_vec());
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert!(p.is_error());
        assert_eq!(
            (p.msg_type(), p.code(), p.next_hop_mtu()),
            (3, CODE_FRAG_NEEDED, 1480)
        );
        let e = p.embedded().unwrap();
        assert_eq!(e.protocol, 6);
        assert_eq!(e.src, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(e.dst, Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!((e.src_port, e.dst_port), (50000, 80));
    }

    #[test]
    fn build_frag_needed() {
        let mut b = FRAG_NEEDED.to_vec();
        b[..8].fill(0xee);
        let mut p = IcmpPacket::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_DEST_UNREACHABLE);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_next_hop_mtu(1480);
        p.fill_checksum();
        assert_eq!(b, fill(FRAG_NEEDED.to_vec()));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            IcmpPacket::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
        let p = IcmpPacket::new_checked(&FRAG_NEEDED[..30]).unwrap();
        assert_eq!(p.embedded().unwrap_err(), Error::Truncated);
        let mut b = FRAG_NEEDED;
        b[8] = 0x43;
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.embedded().unwrap_err(), Error::BadHeaderLen);
    }
}
