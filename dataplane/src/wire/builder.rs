//! Builders of whole Ethernet frames with correct checksums: for tests, the traffic
//! generator, and the packets the management plane sends (ARP). Not for the fast path.
use super::arp::{self, ArpPacket};
use super::icmp::IcmpPacket;
use super::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, TcpPacket, UdpPacket};
use core::net::Ipv4Addr;

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
    f[54..].copy_from_slice(payload);
    let mut t = TcpPacket::new_unchecked(&mut f[34..]);
    t.set_src_port(spec.src_port);
    t.set_dst_port(spec.dst_port);
    t.set_seq(1000);
    t.set_ack_number(if flags & 0x10 != 0 { 2000 } else { 0 });
    t.set_header_len_and_flags(20, flags);
    t.set_window(65535);
    t.fill_checksum(spec.src_ip, spec.dst_ip);
    f
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
