//! Builders of whole Ethernet frames with correct checksums: for tests, the traffic
//! generator, and the packets the management plane sends (ARP, NDP). Not for the fast
//! path.
use super::arp::{self, ArpPacket};
use super::icmp::IcmpPacket;
use super::icmpv6::{self, Icmpv6Packet};
use super::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr};
use super::{TcpPacket, UdpPacket};
use core::net::{Ipv4Addr, Ipv6Addr};

/// Addresses and IP fields of a frame to build.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    pub df: bool,
    pub ident: u16,
}

impl Default for FrameSpec {
    fn default() -> Self {
        FrameSpec {
            src_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
            dst_mac: MacAddr([0x02, 0, 0, 0, 0x0a, 0x01]),
            src_ip: Ipv4Addr::new(192, 0, 2, 1),
            dst_ip: Ipv4Addr::new(203, 0, 113, 10),
            src_port: 50000,
            dst_port: 80,
            ttl: 64,
            df: true,
            ident: 1,
        }
    }
}

fn ipv4_frame(spec: &FrameSpec, protocol: u8, l4_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4_len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst(spec.dst_mac);
    eth.set_src(spec.src_mac);
    eth.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_version_and_len(20);
    ip.set_total_len((20 + l4_len) as u16);
    ip.set_ident(spec.ident);
    ip.set_frag(spec.df, false, 0);
    ip.set_ttl(spec.ttl);
    ip.set_protocol(protocol);
    ip.set_src(spec.src_ip);
    ip.set_dst(spec.dst_ip);
    ip.fill_checksum();
    f
}

/// An Ethernet + IPv4 + TCP frame (20-byte TCP header) with the given flags and payload.
pub fn tcp_frame(spec: &FrameSpec, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ipv4_frame(spec, IpProtocol::TCP, 20 + payload.len());
    tcp_segment(&mut f[34..], spec.src_port, spec.dst_port, flags, payload)
        .fill_checksum(spec.src_ip, spec.dst_ip);
    f
}

/// Writes a TCP segment (20-byte header: seq 1000, ack 2000 when ACK is set, window
/// 65535) and its payload into `b`; the checksum is left to the caller (its addresses).
fn tcp_segment<'a>(
    b: &'a mut [u8],
    src_port: u16,
    dst_port: u16,
    flags: u8,
    payload: &[u8],
) -> TcpPacket<&'a mut [u8]> {
    b[20..].copy_from_slice(payload);
    let mut t = TcpPacket::new_unchecked(b);
    t.set_src_port(src_port);
    t.set_dst_port(dst_port);
    t.set_seq(1000);
    t.set_ack_number(if flags & 0x10 != 0 { 2000 } else { 0 });
    t.set_header_len_and_flags(20, flags);
    t.set_window(65535);
    t
}

/// An Ethernet + IPv4 + UDP frame.
pub fn udp_frame(spec: &FrameSpec, payload: &[u8]) -> Vec<u8> {
    let mut f = ipv4_frame(spec, IpProtocol::UDP, 8 + payload.len());
    f[42..].copy_from_slice(payload);
    let mut u = UdpPacket::new_unchecked(&mut f[34..]);
    u.set_src_port(spec.src_port);
    u.set_dst_port(spec.dst_port);
    u.set_len((8 + payload.len()) as u16);
    u.fill_checksum(spec.src_ip, spec.dst_ip);
    f
}

/// An Ethernet + IPv4 + ICMP echo request or reply frame.
pub fn icmp_echo_frame(
    spec: &FrameSpec,
    msg_type: u8,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut f = ipv4_frame(spec, IpProtocol::ICMP, 8 + data.len());
    let mut i = IcmpPacket::new_unchecked(&mut f[34..]);
    i.set_msg_type(msg_type);
    i.set_code(0);
    i.set_ident(ident);
    i.set_seq(seq);
    i.data_mut().copy_from_slice(data);
    i.fill_checksum();
    f
}

/// An ARP request (`target_mac` ignored, broadcast) or reply frame.
pub fn arp_frame(
    oper: u16,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + arp::PACKET_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    let (dst, tha) = if oper == arp::OP_REQUEST {
        (MacAddr::BROADCAST, MacAddr::ZERO)
    } else {
        (target_mac, target_mac)
    };
    eth.set_dst(dst);
    eth.set_src(sender_mac);
    eth.set_ethertype(EtherType::ARP);
    let mut a = ArpPacket::new_unchecked(&mut f[14..]);
    a.init(oper);
    a.set_sender(sender_mac, sender_ip);
    a.set_target(tha, target_ip);
    f
}

/// Addresses and IP fields of an IPv6 frame to build.
#[derive(Debug, Clone)]
pub struct FrameSpec6 {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub hop_limit: u8,
}

impl Default for FrameSpec6 {
    fn default() -> Self {
        FrameSpec6 {
            src_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
            dst_mac: MacAddr([0x02, 0, 0, 0, 0x0a, 0x01]),
            src_ip: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            dst_ip: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10),
            src_port: 50000,
            dst_port: 80,
            hop_limit: 64,
        }
    }
}

fn ipv6_frame(spec: &FrameSpec6, next_header: u8, l4_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + l4_len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst(spec.dst_mac);
    eth.set_src(spec.src_mac);
    eth.set_ethertype(EtherType::IPV6);
    let mut ip = Ipv6Packet::new_unchecked(&mut f[14..]);
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len(l4_len as u16);
    ip.set_next_header(next_header);
    ip.set_hop_limit(spec.hop_limit);
    ip.set_src(spec.src_ip);
    ip.set_dst(spec.dst_ip);
    f
}

/// An Ethernet + IPv6 + TCP frame (20-byte TCP header) with the given flags and payload.
pub fn tcp6_frame(spec: &FrameSpec6, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ipv6_frame(spec, IpProtocol::TCP, 20 + payload.len());
    tcp_segment(&mut f[54..], spec.src_port, spec.dst_port, flags, payload)
        .fill_checksum(spec.src_ip, spec.dst_ip);
    f
}

/// An Ethernet + IPv6 + UDP frame.
pub fn udp6_frame(spec: &FrameSpec6, payload: &[u8]) -> Vec<u8> {
    let mut f = ipv6_frame(spec, IpProtocol::UDP, 8 + payload.len());
    f[62..].copy_from_slice(payload);
    let mut u = UdpPacket::new_unchecked(&mut f[54..]);
    u.set_src_port(spec.src_port);
    u.set_dst_port(spec.dst_port);
    u.set_len((8 + payload.len()) as u16);
    u.fill_checksum(spec.src_ip, spec.dst_ip);
    f
}

/// An Ethernet + IPv6 + ICMPv6 echo request or reply frame.
pub fn icmpv6_echo_frame(
    spec: &FrameSpec6,
    msg_type: u8,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut f = ipv6_frame(spec, IpProtocol::ICMPV6, 8 + data.len());
    let mut i = Icmpv6Packet::new_unchecked(&mut f[54..]);
    i.set_msg_type(msg_type);
    i.set_ident(ident);
    i.set_seq(seq);
    i.data_mut().copy_from_slice(data);
    i.fill_checksum(spec.src_ip, spec.dst_ip);
    f
}

/// A neighbor solicitation for `target` from `src_ip` (`::` for duplicate address
/// detection, which carries no source link-layer option), to the target's
/// solicited-node multicast address, hop limit 255.
pub fn neighbor_solicit_frame(src_mac: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst_ip = icmpv6::solicited_node(target);
    let opt = if src_ip.is_unspecified() { 0 } else { 8 };
    let spec = FrameSpec6 {
        src_mac,
        dst_mac: icmpv6::multicast_mac(dst_ip),
        src_ip,
        dst_ip,
        hop_limit: icmpv6::ND_HOP_LIMIT,
        ..Default::default()
    };
    let mut f = ipv6_frame(&spec, IpProtocol::ICMPV6, icmpv6::ND_LEN + opt);
    let mut i = Icmpv6Packet::new_unchecked(&mut f[54..]);
    i.set_msg_type(icmpv6::TYPE_NEIGHBOR_SOLICIT);
    i.set_target(target);
    if opt != 0 {
        i.set_link_layer_option(icmpv6::OPT_SOURCE_LL, src_mac);
    }
    i.fill_checksum(src_ip, dst_ip);
    f
}

/// A neighbor advertisement: `target` is at `src_mac`, sent from `target` to `dst_ip`
/// (`dst_mac`) with `flags` (`NA_SOLICITED`, `NA_OVERRIDE`, ...), hop limit 255, with
/// the target link-layer option.
pub fn neighbor_advert_frame(
    src_mac: MacAddr,
    target: Ipv6Addr,
    dst_mac: MacAddr,
    dst_ip: Ipv6Addr,
    flags: u32,
) -> Vec<u8> {
    let spec = FrameSpec6 {
        src_mac,
        dst_mac,
        src_ip: target,
        dst_ip,
        hop_limit: icmpv6::ND_HOP_LIMIT,
        ..Default::default()
    };
    let mut f = ipv6_frame(&spec, IpProtocol::ICMPV6, icmpv6::ND_LEN + 8);
    let mut i = Icmpv6Packet::new_unchecked(&mut f[54..]);
    i.set_msg_type(icmpv6::TYPE_NEIGHBOR_ADVERT);
    i.set_nd_flags(flags);
    i.set_target(target);
    i.set_link_layer_option(icmpv6::OPT_TARGET_LL, src_mac);
    i.fill_checksum(target, dst_ip);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every IPv6 frame built here parses with etherparse, checksums included.
    #[test]
    fn ipv6_frames_parse_elsewhere() {
        let spec = FrameSpec6::default();
        for f in [
            tcp6_frame(&spec, 0x02, b""),
            udp6_frame(&spec, b"dns"),
            icmpv6_echo_frame(&spec, icmpv6::TYPE_ECHO_REQUEST, 1, 2, b"ping"),
            neighbor_solicit_frame(spec.src_mac, spec.src_ip, spec.dst_ip),
            neighbor_advert_frame(
                spec.src_mac,
                spec.src_ip,
                spec.dst_mac,
                spec.dst_ip,
                icmpv6::NA_SOLICITED,
            ),
        ] {
            let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
                panic!("ipv6")
            };
            let (src, dst) = (ip.header().source(), ip.header().destination());
            let ok = match p.transport.unwrap() {
                etherparse::TransportSlice::Tcp(t) => {
                    t.to_header()
                        .calc_checksum_ipv6_raw(src, dst, t.payload())
                        .unwrap()
                        == t.checksum()
                }
                etherparse::TransportSlice::Udp(u) => {
                    u.to_header()
                        .calc_checksum_ipv6_raw(src, dst, u.payload())
                        .unwrap()
                        == u.checksum()
                }
                etherparse::TransportSlice::Icmpv6(i) => {
                    i.icmp_type().calc_checksum(src, dst, i.payload()).unwrap() == i.checksum()
                }
                other => panic!("{other:?}"),
            };
            assert!(ok, "checksum of {f:02x?}");
        }
    }
}
