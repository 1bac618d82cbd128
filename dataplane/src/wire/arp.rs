//! ARP for IPv4 over Ethernet (RFC 826).
use super::{get_u16, set_u16, Error, MacAddr, Result};
use core::net::Ipv4Addr;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}
pub const PACKET_LEN: usize = 28;

pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A view of an ARP packet (Ethernet hardware, IPv4 protocol).
#[derive(Debug, Clone)]
pub struct ArpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Checks the length and that this is Ethernet/IPv4 ARP (other kinds are `Unsupported`).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if get_u16(b, field::HTYPE) != 1
            || get_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(p)
    }
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }
    fn mac(&self, at: usize) -> MacAddr {
        MacAddr(self.buffer.as_ref()[at..at + 6].try_into().unwrap())
    }
    fn ip(&self, at: usize) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }
    pub fn sender_mac(&self) -> MacAddr {
        self.mac(field::SHA)
    }
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.ip(field::SPA)
    }
    pub fn target_mac(&self) -> MacAddr {
        self.mac(field::THA)
    }
    pub fn target_ip(&self) -> Ipv4Addr {
        self.ip(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed Ethernet/IPv4 fields and the operation.
    pub fn init(&mut self, oper: u16) {
        let b = self.buffer.as_mut();
        set_u16(b, field::HTYPE, 1);
        set_u16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        set_u16(b, field::OPER, oper);
    }
    pub fn set_sender(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::SHA..field::SHA + 6].copy_from_slice(&mac.0);
        b[field::SPA..field::SPA + 4].copy_from_slice(&ip.octets());
    }
    pub fn set_target(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buffer.as_mut();
        b[field::THA..field::THA + 6].copy_from_slice(&mac.0);
        b[field::TPA..field::TPA + 4].copy_from_slice(&ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  203, 0, 113, 1,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  203, 0, 113, 10,
    ];

    #[test]
    fn read_fields() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.sender_ip(), Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(p.target_mac(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), Ipv4Addr::new(203, 0, 113, 10));
    }

    #[test]
    fn build_fixture() {
        let mut b = [0xeeu8; 28];
        let mut p = ArpPacket::new_unchecked(&mut b[..]);
        p.init(OP_REQUEST);
        p.set_sender(MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(203, 0, 113, 1));
        p.set_target(MacAddr::ZERO, Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!(b, REQUEST);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
        let mut b = REQUEST;
        b[1] = 6; // token ring
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Unsupported
        );
    }
}
