//! TCP headers (RFC 9293): ports, sequence numbers, flags, options length.
use super::{checksum, get_u16, get_u32, set_u16, set_u32, End, Error, IpAddress, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}
pub const HEADER_LEN: usize = 20;
/// TCP option kinds ferrovs reads.
pub const OPT_MSS: u8 = 2;
pub const OPT_SACK: u8 = 5;

/// TCP flag bits (low byte of the offset/flags word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);
impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Checks `20 <= data offset * 4 <= buffer length`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = p.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(Error::BadHeaderLen);
        }
        Ok(p)
    }
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    pub fn seq(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::OFF_FLAGS] >> 4) as usize) * 4
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::OFF_FLAGS + 1] & 0x3f)
    }
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn urgent(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// True if the checksum over the pseudo-header and the whole segment verifies.
    pub fn verify_checksum<A: IpAddress>(&self, src: A, dst: A) -> bool {
        let b = self.buffer.as_ref();
        let s = A::pseudo_header(src, dst, 6, b.len() as u32) + checksum::sum(b);
        checksum::finish(s) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    pub fn set_seq(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ, v);
    }
    pub fn set_ack_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ACK, v);
    }
    /// Sets the data offset (header length in bytes, multiple of 4) and the flags.
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: u8) {
        let b = self.buffer.as_mut();
        b[field::OFF_FLAGS] = ((header_len / 4) as u8) << 4;
        b[field::OFF_FLAGS + 1] = flags & 0x3f;
    }
    pub fn set_window(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::WINDOW, v);
    }
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    pub fn set_urgent(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, v);
    }
    /// NAT: the port at `end` becomes `port`, and the checksum follows both that change
    /// and the pseudo-header's address change `old_addr -> new_addr` (RFC 1624,
    /// incremental: the cost does not depend on the segment's size).
    #[inline(always)]
    pub fn rewrite_port<A: IpAddress>(&mut self, end: End, port: u16, old_addr: A, new_addr: A) {
        let b = self.buffer.as_mut();
        let old_port = end.replace_port(b, port);
        let hc = get_u16(b, field::CHECKSUM);
        // Both changes folded once.
        let delta = A::checksum_delta(old_addr, new_addr) + checksum::delta16(old_port, port);
        let c = checksum::update(hc, delta);
        set_u16(b, field::CHECKSUM, c);
    }
    /// Sets the sequence number, the checksum following incrementally.
    #[inline]
    pub fn set_seq_csum(&mut self, v: u32) {
        let b = self.buffer.as_mut();
        let old = get_u32(b, field::SEQ);
        set_u32(b, field::SEQ, v);
        let c = checksum::update32(get_u16(b, field::CHECKSUM), old, v);
        set_u16(b, field::CHECKSUM, c);
    }
    /// Sets the acknowledgement number, the checksum following incrementally.
    #[inline]
    pub fn set_ack_csum(&mut self, v: u32) {
        let b = self.buffer.as_mut();
        let old = get_u32(b, field::ACK);
        set_u32(b, field::ACK, v);
        let c = checksum::update32(get_u16(b, field::CHECKSUM), old, v);
        set_u16(b, field::CHECKSUM, c);
    }
    /// Maps both edges of every SACK block (RFC 2018) through `f`, the checksum following
    /// incrementally. Malformed options end the walk (nothing after them is touched).
    pub fn map_sack(&mut self, f: impl Fn(u32) -> u32) {
        let hl = self.header_len().min(self.buffer.as_ref().len());
        let mut at = HEADER_LEN;
        while at < hl {
            let b = self.buffer.as_mut();
            match b[at] {
                0 => return,
                1 => {
                    at += 1;
                    continue;
                }
                _ => {}
            }
            if at + 2 > hl {
                return;
            }
            let len = b[at + 1] as usize;
            if len < 2 || at + len > hl {
                return;
            }
            if b[at] == OPT_SACK {
                let mut e = at + 2;
                while e + 4 <= at + len {
                    let old = get_u32(b, e);
                    let new = f(old);
                    set_u32(b, e, new);
                    let c = checksum::update32(get_u16(b, field::CHECKSUM), old, new);
                    set_u16(b, field::CHECKSUM, c);
                    e += 4;
                }
            }
            at += len;
        }
    }
    /// Lowers the MSS option to at most `max` (a SYN's), the checksum following; false if
    /// the segment has no MSS option.
    pub fn clamp_mss(&mut self, max: u16) -> bool {
        let hl = self.header_len().min(self.buffer.as_ref().len());
        let mut at = HEADER_LEN;
        while at < hl {
            let b = self.buffer.as_mut();
            match b[at] {
                0 => return false,
                1 => {
                    at += 1;
                    continue;
                }
                _ => {}
            }
            if at + 2 > hl {
                return false;
            }
            let len = b[at + 1] as usize;
            if len < 2 || at + len > hl {
                return false;
            }
            if b[at] == OPT_MSS && len == 4 {
                let old = get_u16(b, at + 2);
                if old > max {
                    set_u16(b, at + 2, max);
                    let c = checksum::update16(get_u16(b, field::CHECKSUM), old, max);
                    set_u16(b, field::CHECKSUM, c);
                }
                return true;
            }
            at += len;
        }
        false
    }
    /// Recomputes the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum<A: IpAddress>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let s = A::pseudo_header(src, dst, 6, b.len() as u32) + checksum::sum(b);
        self.set_checksum(checksum::finish(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    #[rustfmt::skip]
    const SEGMENT: [u8; 26] = [
        0xc3, 0x50, 0x00, 0x50,  // 50000 -> 80
        0x00, 0x00, 0x10, 0x00,  // seq 4096
        0x00, 0x00, 0x00, 0x00,  // ack 0
        0x60, 0x02, 0xfa, 0xf0,  // data offset 6, SYN, window 64240
        0x00, 0x00, 0x00, 0x00,  // checksum (filled below), urgent
        0x02, 0x04, 0x05, 0xb4,  // MSS 1460
        0x61, 0x62,              // payload "ab"
    ];

    fn fixture() -> [u8; 26] {
        let mut b = SEGMENT;
        let s = checksum::pseudo_header(SRC, DST, 6, 26) + checksum::sum(&b);
        b[16..18].copy_from_slice(&checksum::finish(s).to_be_bytes());
        b
    }

    #[test]
    fn read_fields() {
        let b = fixture();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 50000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 4096);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 24);
        assert!(p.flags().syn() && !p.flags().ack() && !p.flags().fin() && !p.flags().rst());
        assert_eq!(p.window(), 64240);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert_eq!(p.payload(), b"ab");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(203, 0, 113, 11)));
    }

    #[test]
    fn build_fixture() {
        let mut b = [0u8; 26];
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.set_src_port(50000);
        p.set_dst_port(80);
        p.set_seq(4096);
        p.set_ack_number(0);
        p.set_header_len_and_flags(24, TcpFlags::SYN);
        p.set_window(64240);
        p.set_urgent(0);
        b[20..26].copy_from_slice(&[2, 4, 5, 0xb4, b'a', b'b']);
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
        assert_eq!(b, fixture());
    }

    /// Regression (fuzzer input): a segment of 0xff words summed past u32 with the
    /// pseudo-header. Its checksum must fill and verify like any other.
    #[test]
    fn all_ones_segment_checksums() {
        let mut b = [0xffu8; 40];
        b[12] = 0x50;
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.fill_checksum(SRC, DST);
        assert!(TcpPacket::new_checked(&b[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn rejects() {
        let b = fixture();
        assert_eq!(
            TcpPacket::new_checked(&b[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut d = b;
        d[12] = 0x40; // offset 4
        assert_eq!(
            TcpPacket::new_checked(&d[..]).unwrap_err(),
            Error::BadHeaderLen
        );
        d[12] = 0xf0; // offset 60 > 26
        assert_eq!(
            TcpPacket::new_checked(&d[..]).unwrap_err(),
            Error::BadHeaderLen
        );
    }
}
