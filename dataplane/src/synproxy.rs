//! SYN cookies and the SYN proxy for nat and fnat services (as DPVS's synproxy).
//!
//! While a SYN flood is on (see [`SynCookies::active`]), a client's SYN to a nat or fnat
//! service creates nothing: ferrovs answers it with a SYN-ACK whose sequence number is a
//! cookie, a keyed hash of the connection, the client's ISN, the time and the MSS class
//! ([`make`]). Only a client that completes the handshake comes back, with an ACK that
//! carries cookie + 1 ([`check`]); then the flow is created and that ACK becomes the SYN
//! to the backend (the client's ISN, the MSS from the cookie). The backend's SYN-ACK is
//! answered by ferrovs with the ACK that completes the backend's handshake, and from then
//! on the backend's sequence numbers differ from the cookie by a constant (`delta`,
//! kept in the flow): each backend -> client segment's sequence number goes down by it,
//! each client -> backend acknowledgement up.
//!
//! What a cookie costs the connection: window scaling, SACK and timestamps are not
//! offered (as with Linux's cookies without timestamps), and client data that arrives
//! before the backend answered is not forwarded (the client sends it again). Both
//! families; packets with IP options or IPv6 extension headers take the normal path.
#![forbid(unsafe_code)]
use crate::buf::PacketBuf;
use crate::flow::FlowKey;
use crate::hash::mix;
use crate::wire::{ethernet, ipv4, ipv6, IpProtocol};
use crate::wire::{EthernetFrame, IpAddress, Ipv4Packet, Ipv6Packet, TcpFlags, TcpPacket};
use core::net::{Ipv4Addr, Ipv6Addr};

/// The MSS classes a cookie can carry (two bits), as Linux's table.
pub const MSS: [u16; 4] = [536, 1220, 1440, 1460];
/// A cookie's time counter ticks every 64 s; one from the tick before still validates.
const TICK_SHIFT: u32 = 6;

/// What a worker needs for cookies: whether they are on now, and the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynCookies {
    /// Answer SYNs to nat/fnat services with cookies (a flood is on).
    pub active: bool,
    /// The keyed hash's secret (random per start; validation works whether or not
    /// cookies are active now).
    pub secret: u64,
}

#[inline(always)]
fn mac<A: IpAddress>(secret: u64, k: &FlowKey<A>, isn: u32, tick: u32, class: u32) -> u32 {
    // IPv4: client:32 | VIP:32; IPv6: the folds of both (keyed, so a fold is enough).
    let a = k.src.fold().rotate_left(32) ^ k.dst.fold();
    let b = ((k.src_port as u64) << 48) | ((k.dst_port as u64) << 32) | isn as u64;
    (mix(
        a ^ secret,
        b ^ secret.rotate_left(17) ^ ((tick as u64) << 8 | class as u64) << 40,
    ) & 0x1ff_ffff) as u32
}

/// The cookie for a client's SYN (key client -> VIP, its ISN and MSS) at time `now`
/// (seconds): tick:5 | MSS class:2 | MAC:25.
#[inline]
pub fn make<A: IpAddress>(secret: u64, k: &FlowKey<A>, isn: u32, client_mss: u16, now: u32) -> u32 {
    let class = MSS.iter().rposition(|&m| m <= client_mss).unwrap_or(0) as u32;
    let tick = (now >> TICK_SHIFT) & 0x1f;
    (tick << 27) | (class << 25) | mac(secret, k, isn, tick, class)
}

/// The MSS a client's ACK (key client -> VIP, sequence number `seq`, acknowledging
/// `ack`) proves with a cookie of this tick or the one before; None if it proves nothing.
#[inline]
pub fn check<A: IpAddress>(
    secret: u64,
    k: &FlowKey<A>,
    seq: u32,
    ack: u32,
    now: u32,
) -> Option<u16> {
    let cookie = ack.wrapping_sub(1);
    let (tick, class) = (cookie >> 27, (cookie >> 25) & 3);
    let age = ((now >> TICK_SHIFT) & 0x1f).wrapping_sub(tick) & 0x1f;
    (age <= 1 && cookie & 0x1ff_ffff == mac(secret, k, seq.wrapping_sub(1), tick, class))
        .then_some(MSS[class as usize])
}

/// A TCP segment's header fields, as [`rebuild`] and [`rebuild6`] write them.
#[derive(Debug, Clone, Copy)]
pub struct Segment<A = Ipv4Addr> {
    pub src: A,
    pub dst: A,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// An MSS option (the header is 24 bytes; else 20).
    pub mss: Option<u16>,
    pub window: u16,
}

/// Makes the packet `l3 + ip_len + tcp_len` bytes long, keeping its first `l3 + ip_len`
/// (moved to the front when it must grow). False if it cannot grow.
fn resize<B: PacketBuf>(pkt: &mut B, l3: usize, ip_len: usize, tcp_len: usize) -> bool {
    let need = l3 + ip_len + tcp_len;
    if pkt.data().len() < need {
        let grow = need - pkt.data().len();
        if !pkt.prepend(grow) {
            return false;
        }
        // Headers move to the front; the tail is rewritten by the caller.
        let d = pkt.data_mut();
        d.copy_within(grow..grow + l3 + ip_len, 0);
    }
    pkt.truncate(need)
}

/// Writes the TCP header of `s` at `at` (`tcp_len` bytes: 24 with the MSS option).
fn write_tcp<A: IpAddress>(d: &mut [u8], at: usize, tcp_len: usize, s: &Segment<A>) {
    let mut t = TcpPacket::new_unchecked(&mut d[at..]);
    t.set_src_port(s.src_port);
    t.set_dst_port(s.dst_port);
    t.set_seq(s.seq);
    t.set_ack_number(s.ack);
    t.set_header_len_and_flags(tcp_len, s.flags);
    t.set_window(s.window);
    t.set_urgent(0);
    if let Some(mss) = s.mss {
        let m = mss.to_be_bytes();
        d[at + 20..at + 24].copy_from_slice(&[2, 4, m[0], m[1]]);
    }
    TcpPacket::new_unchecked(&mut d[at..at + tcp_len]).fill_checksum(s.src, s.dst);
}

/// Rewrites the IPv4 packet at `l3` (a 20-byte header: the caller checked) into the bare
/// segment `s` (no payload), TTL 64, DF, checksums filled; the Ethernet header is kept
/// (and moved when the packet must grow). False if it cannot grow.
pub fn rebuild<B: PacketBuf>(pkt: &mut B, l3: usize, s: &Segment) -> bool {
    let tcp_len = if s.mss.is_some() { 24 } else { 20 };
    if !resize(pkt, l3, ipv4::HEADER_LEN, tcp_len) {
        return false;
    }
    let d = pkt.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[l3..]);
    ip.set_total_len((ipv4::HEADER_LEN + tcp_len) as u16);
    ip.set_ident(0);
    ip.set_frag(true, false, 0);
    ip.set_ttl(64);
    ip.set_src(s.src);
    ip.set_dst(s.dst);
    ip.fill_checksum();
    write_tcp(d, l3 + ipv4::HEADER_LEN, tcp_len, s);
    true
}

/// [`rebuild`] for IPv6 (a 40-byte header with TCP next: the caller checked): hop limit
/// 64, the traffic class and flow label kept.
pub fn rebuild6<B: PacketBuf>(pkt: &mut B, l3: usize, s: &Segment<Ipv6Addr>) -> bool {
    let tcp_len = if s.mss.is_some() { 24 } else { 20 };
    if !resize(pkt, l3, ipv6::HEADER_LEN, tcp_len) {
        return false;
    }
    let d = pkt.data_mut();
    let mut ip = Ipv6Packet::new_unchecked(&mut d[l3..]);
    ip.set_payload_len(tcp_len as u16);
    ip.set_next_header(IpProtocol::TCP);
    ip.set_hop_limit(64);
    ip.set_src(s.src);
    ip.set_dst(s.dst);
    write_tcp(d, l3 + ipv6::HEADER_LEN, tcp_len, s);
    true
}

/// Sends the packet back where it came from: its MACs swapped.
pub fn bounce<B: PacketBuf>(pkt: &mut B) {
    let d = pkt.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut d[..ethernet::HEADER_LEN]);
    let (src, dst) = (eth.src(), eth.dst());
    eth.set_addrs(dst, src);
}

/// True when a segment's flags are exactly these.
#[inline(always)]
pub fn flags_are(flags: u8, want: u8) -> bool {
    flags & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN) == want
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            protocol: 6,
            src: Ipv4Addr::new(192, 0, 2, 1),
            src_port: port,
            dst: Ipv4Addr::new(203, 0, 113, 10),
            dst_port: 80,
        }
    }

    #[test]
    fn a_cookie_proves_its_connection_isn_and_mss_for_two_ticks() {
        let s = 0x1234_5678_9abc_def0;
        let c = make(s, &key(1000), 77, 1460, 1000);
        assert_eq!(
            check(s, &key(1000), 78, c.wrapping_add(1), 1000),
            Some(1460)
        );
        assert_eq!(
            check(s, &key(1000), 78, c.wrapping_add(1), 1000 + 64),
            Some(1460)
        );
        assert_eq!(
            check(s, &key(1000), 78, c.wrapping_add(1), 1000 + 128),
            None,
            "expired"
        );
        assert_eq!(
            check(s, &key(1001), 78, c.wrapping_add(1), 1000),
            None,
            "another port"
        );
        assert_eq!(
            check(s, &key(1000), 79, c.wrapping_add(1), 1000),
            None,
            "another ISN"
        );
        assert_eq!(
            check(s ^ 1, &key(1000), 78, c.wrapping_add(1), 1000),
            None,
            "secret"
        );
        assert_eq!(check(s, &key(1000), 78, c, 1000), None, "not cookie + 1");
        let c = make(s, &key(1000), 77, 1300, 1000);
        assert_eq!(
            check(s, &key(1000), 78, c.wrapping_add(1), 1000),
            Some(1220)
        );
        let c = make(s, &key(1000), 77, 100, 1000);
        assert_eq!(check(s, &key(1000), 78, c.wrapping_add(1), 1000), Some(536));
    }

    #[test]
    fn ipv6_cookies_prove_the_whole_addresses() {
        let s = 7;
        let k = |last: u16| FlowKey {
            protocol: 6,
            src: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, last),
            src_port: 40000,
            dst: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10),
            dst_port: 443,
        };
        let c = make(s, &k(1), 500, 1440, 3000);
        assert_eq!(check(s, &k(1), 501, c.wrapping_add(1), 3000), Some(1440));
        assert_eq!(
            check(s, &k(2), 501, c.wrapping_add(1), 3000),
            None,
            "another client"
        );
        let mut high = k(1);
        high.src = Ipv6Addr::new(0x2001, 0xdb9, 2, 0, 0, 0, 0, 1);
        assert_eq!(
            check(s, &high, 501, c.wrapping_add(1), 3000),
            None,
            "a high word"
        );
    }

    #[test]
    fn random_acks_almost_never_pass() {
        let s = 42;
        let mut x = 0x9e37_79b9_u32;
        let mut passed = 0;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            passed += check(s, &key(i as u16), i, x, 5000).is_some() as u32;
        }
        // 25 bits of MAC and 2 of 32 ticks: about 200000 * 2 / 32 / 2^25 < 1.
        assert!(passed <= 2, "{passed}");
    }
}
