//! PROXY protocol version 2 (HAProxy's specification, section 2.2): the binary header a
//! full-NAT load balancer puts before the client's first bytes so that the backend learns
//! the client's address and port (nginx `listen ... proxy_protocol`, HAProxy, Envoy).
//! Only the `PROXY` command over TCP is written: 16 bytes of preamble, then the addresses.
use core::net::{Ipv4Addr, Ipv6Addr};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const VER_CMD: u8 = 0x21;
/// The whole header for TCP over IPv4 and over IPv6.
pub const V4_LEN: usize = 16 + 12;
pub const V6_LEN: usize = 16 + 36;

fn preamble(out: &mut [u8], family: u8, len: u16) {
    out[..12].copy_from_slice(&SIGNATURE);
    out[12] = VER_CMD;
    out[13] = family;
    out[14..16].copy_from_slice(&len.to_be_bytes());
}

/// Writes the header for a TCP connection from `src:sport` to `dst:dport` over IPv4 into
/// `out` (at least [`V4_LEN`] bytes).
pub fn write_v4(out: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) {
    preamble(out, 0x11, 12);
    out[16..20].copy_from_slice(&src.octets());
    out[20..24].copy_from_slice(&dst.octets());
    out[24..26].copy_from_slice(&sport.to_be_bytes());
    out[26..28].copy_from_slice(&dport.to_be_bytes());
}

/// The same over IPv6 (at least [`V6_LEN`] bytes).
pub fn write_v6(out: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) {
    preamble(out, 0x21, 36);
    out[16..32].copy_from_slice(&src.octets());
    out[32..48].copy_from_slice(&dst.octets());
    out[48..50].copy_from_slice(&sport.to_be_bytes());
    out[50..52].copy_from_slice(&dport.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's layout, byte for byte.
    #[test]
    fn v4_and_v6_headers() {
        let mut b = [0u8; V4_LEN];
        write_v4(
            &mut b,
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(203, 0, 113, 10),
            40000,
            443,
        );
        #[rustfmt::skip]
        let want = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
            0x21, 0x11, 0x00, 0x0c,
            192, 0, 2, 1, 203, 0, 113, 10, 0x9c, 0x40, 0x01, 0xbb,
        ];
        assert_eq!(b, want);
        let mut b = [0u8; V6_LEN];
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        );
        write_v6(&mut b, s, d, 1, 2);
        assert_eq!(&b[12..16], &[0x21, 0x21, 0x00, 0x24]);
        assert_eq!(&b[16..32], &s.octets());
        assert_eq!(&b[32..48], &d.octets());
        assert_eq!(&b[48..52], &[0, 1, 0, 2]);
    }
}
