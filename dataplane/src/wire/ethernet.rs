//! Ethernet II frames, with at most one 802.1Q VLAN tag.
use super::{get_u16, set_u16, Error, Field, Result};
use core::fmt;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}
impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for MacAddr {
    type Err = &'static str;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err("expected six hex bytes like 02:00:00:00:00:01");
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| "bad hex byte in MAC address")?;
            n += 1;
        }
        if n != 6 {
            return Err("expected six hex bytes like 02:00:00:00:00:01");
        }
        Ok(MacAddr(out))
    }
}

crate::serde_by_name!(MacAddr);

/// EtherType values ferrovs handles.
pub struct EtherType;
impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const TYPE: usize = 12;
    pub const VLAN_TCI: usize = 14;
    pub const VLAN_TYPE: usize = 16;
}

pub const HEADER_LEN: usize = 14;
pub const VLAN_HEADER_LEN: usize = 18;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    /// Checks the buffer holds the header, including the VLAN tag if there is one.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        let b = f.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if get_u16(b, field::TYPE) == EtherType::VLAN && b.len() < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(f)
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn dst(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::DST].try_into().unwrap())
    }
    pub fn src(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::SRC].try_into().unwrap())
    }
    /// The VLAN tag control information, if the frame carries an 802.1Q tag.
    pub fn vlan_tci(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        (get_u16(b, field::TYPE) == EtherType::VLAN).then(|| get_u16(b, field::VLAN_TCI))
    }
    /// The EtherType of the payload (behind the VLAN tag if any).
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        match get_u16(b, field::TYPE) {
            EtherType::VLAN => get_u16(b, field::VLAN_TYPE),
            t => t,
        }
    }
    pub fn header_len(&self) -> usize {
        if self.vlan_tci().is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&m.0);
    }
    pub fn set_src(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&m.0);
    }
    /// Sets both addresses: the frame leaves from `src` toward `dst`.
    #[inline]
    pub fn set_addrs(&mut self, src: MacAddr, dst: MacAddr) {
        self.set_src(src);
        self.set_dst(dst);
    }
    /// Sets the outer EtherType (no VLAN tag): for frames the caller lays out itself.
    pub fn set_ethertype(&mut self, t: u16) {
        set_u16(self.buffer.as_mut(), field::TYPE, t);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const FRAME: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x0a, 0x01,  // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // src
        0x08, 0x00,                          // IPv4
        0xde, 0xad, 0xbe, 0xef,              // payload
    ];
    #[rustfmt::skip]
    const VLAN_FRAME: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x81, 0x00, 0x20, 0x64,              // 802.1Q, PCP 1, VID 100
        0x08, 0x06,                          // ARP
        0xaa, 0xbb,
    ];

    #[test]
    fn read_fields() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), "02:00:00:00:0a:01".parse().unwrap());
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn read_vlan() {
        let f = EthernetFrame::new_checked(&VLAN_FRAME[..]).unwrap();
        assert!(f.dst().is_broadcast());
        assert_eq!(f.vlan_tci(), Some(0x2064));
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn build_fixture() {
        let mut b = [0u8; 18];
        let mut f = EthernetFrame::new_unchecked(&mut b[..]);
        f.set_dst(MacAddr([2, 0, 0, 0, 0x0a, 1]));
        f.set_src(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(EtherType::IPV4);
        f.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(b, FRAME);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            EthernetFrame::new_checked(&VLAN_FRAME[..17]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn mac_parse_errors() {
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:zz".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:01:02".parse::<MacAddr>().is_err());
    }
}
