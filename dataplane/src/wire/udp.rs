//! UDP headers (RFC 768).
use super::{checksum, get_u16, set_u16, End, Error, IpAddress, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Checks `8 <= length field <= buffer length`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = p.len() as usize;
        if l < HEADER_LEN || l > len {
            return Err(Error::BadTotalLen);
        }
        Ok(p)
    }
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    /// The checksum field; 0 means the sender computed none.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    pub fn verify_checksum<A: IpAddress>(&self, src: A, dst: A) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = &self.buffer.as_ref()[..self.len() as usize];
        let s = A::pseudo_header(src, dst, 17, b.len() as u32) + checksum::sum(b);
        checksum::finish(s) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    pub fn set_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// NAT: the port at `end` becomes `port`; the checksum follows that change and the
    /// pseudo-header's address change, incrementally. A datagram sent without a checksum
    /// (0) keeps none; a computed 0 is sent as 0xffff (RFC 768).
    #[inline(always)]
    pub fn rewrite_port<A: IpAddress>(&mut self, end: End, port: u16, old_addr: A, new_addr: A) {
        let b = self.buffer.as_mut();
        let old_port = end.replace_port(b, port);
        let hc = get_u16(b, field::CHECKSUM);
        if hc == 0 {
            return;
        }
        // Both changes folded once.
        let delta = A::checksum_delta(old_addr, new_addr) + checksum::delta16(old_port, port);
        let c = checksum::update(hc, delta);
        set_u16(b, field::CHECKSUM, if c == 0 { 0xffff } else { c });
    }
    /// Recomputes the checksum; a computed 0 is sent as 0xffff (RFC 768).
    pub fn fill_checksum<A: IpAddress>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let l = self.len() as usize;
        let b = &self.buffer.as_ref()[..l];
        let s = A::pseudo_header(src, dst, 17, l as u32) + checksum::sum(b);
        let c = checksum::finish(s);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    #[rustfmt::skip]
    const DGRAM: [u8; 12] = [
        0x9c, 0x40, 0x00, 0x35,  // 40000 -> 53
        0x00, 0x0c, 0x00, 0x00,  // length 12, checksum (filled below)
        0x01, 0x02, 0x03, 0x04,
    ];
    fn fixture() -> [u8; 12] {
        let mut b = DGRAM;
        let s = checksum::pseudo_header(SRC, DST, 17, 12) + checksum::sum(&b);
        b[6..8].copy_from_slice(&checksum::finish(s).to_be_bytes());
        b
    }

    #[test]
    fn read_fields() {
        let b = fixture();
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 53, 12));
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, DST));
    }

    #[test]
    fn build_fixture() {
        let mut b = [0u8; 12];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.set_src_port(40000);
        p.set_dst_port(53);
        p.set_len(12);
        b[8..].copy_from_slice(&[1, 2, 3, 4]);
        UdpPacket::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
        assert_eq!(b, fixture());
    }

    #[test]
    fn rejects() {
        let b = fixture();
        assert_eq!(
            UdpPacket::new_checked(&b[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            UdpPacket::new_checked(&b[..11]).unwrap_err(),
            Error::BadTotalLen
        );
        let mut d = b;
        d[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&d[..]).unwrap_err(),
            Error::BadTotalLen
        );
    }
}
