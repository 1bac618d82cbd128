//! Frames built with etherparse, independently of ferrovs's own views and builders: the
//! expected output of a golden case never comes from the code under test.
//! Shared by the golden tests and the daemon's pcap test (`#[path]`-included).
#![allow(dead_code)]
use etherparse::{IpHeaders, Ipv4Header, PacketBuilder, PacketBuilderStep};
use std::net::Ipv4Addr;

/// Addresses and IP fields of a frame: plain data, shared with ferrovs's own builder
/// (only the bytes are built here, independently).
pub use dataplane::wire::builder::FrameSpec;

fn ip(s: &FrameSpec) -> PacketBuilderStep<IpHeaders> {
    let mut h = Ipv4Header::new(
        0,
        s.ttl,
        etherparse::IpNumber(0),
        s.src_ip.octets(),
        s.dst_ip.octets(),
    )
    .unwrap();
    h.identification = s.ident;
    h.dont_fragment = s.df;
    PacketBuilder::ethernet2(s.src_mac.0, s.dst_mac.0).ip(IpHeaders::Ipv4(h, Default::default()))
}

fn write<B>(size: usize, f: impl FnOnce(&mut Vec<u8>) -> Result<(), B>) -> Vec<u8>
where
    B: std::fmt::Debug,
{
    let mut out = Vec::with_capacity(size);
    f(&mut out).unwrap();
    out
}

/// TCP with a 20-byte header: seq 1000, ack 2000 when ACK is set, window 65535.
pub fn tcp_frame(s: &FrameSpec, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = ip(s).tcp(s.src_port, s.dst_port, 1000, 65535);
    if flags & 0x01 != 0 {
        t = t.fin();
    }
    if flags & 0x02 != 0 {
        t = t.syn();
    }
    if flags & 0x04 != 0 {
        t = t.rst();
    }
    if flags & 0x08 != 0 {
        t = t.psh();
    }
    if flags & 0x10 != 0 {
        t = t.ack(2000);
    }
    write(t.size(payload.len()), |o| t.write(o, payload))
}

pub fn udp_frame(s: &FrameSpec, payload: &[u8]) -> Vec<u8> {
    let u = ip(s).udp(s.src_port, s.dst_port);
    write(u.size(payload.len()), |o| u.write(o, payload))
}

/// An ICMP echo request (type 8) or reply (type 0).
pub fn icmp_echo_frame(s: &FrameSpec, msg_type: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let i = if msg_type == 8 {
        ip(s).icmpv4_echo_request(id, seq)
    } else {
        ip(s).icmpv4_echo_reply(id, seq)
    };
    write(i.size(data.len()), |o| i.write(o, data))
}

/// An ARP frame: a request goes to broadcast with a zero target MAC, a reply to
/// `target_mac`.
pub fn arp_frame(
    oper: u16,
    sender_mac: dataplane::wire::MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: dataplane::wire::MacAddr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    use etherparse::{ArpEthIpv4Packet, ArpOperation};
    let (dst, tha) = if oper == 1 {
        ([0xff; 6], [0; 6])
    } else {
        (target_mac.0, target_mac.0)
    };
    let a = ArpEthIpv4Packet {
        operation: ArpOperation(oper),
        sender_mac: sender_mac.0,
        sender_ipv4: sender_ip.octets(),
        target_mac: tha,
        target_ipv4: target_ip.octets(),
    };
    let b = PacketBuilder::ethernet2(sender_mac.0, dst).arp(a.into());
    write(b.size(), |o| b.write(o))
}

/// IP-in-IP: an outer IPv4 header (addresses, TTL, ident and DF from `outer`, protocol
/// 4) around `inner_ip` (an IPv4 packet, without Ethernet).
pub fn ipip_frame(outer: &FrameSpec, inner_ip: &[u8]) -> Vec<u8> {
    let b = ip(outer);
    write(b.size(inner_ip.len()), |o| {
        b.write(o, etherparse::IpNumber(4), inner_ip)
    })
}
