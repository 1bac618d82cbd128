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

pub use dataplane::wire::builder::FrameSpec6;

fn ip6(s: &FrameSpec6) -> PacketBuilderStep<IpHeaders> {
    PacketBuilder::ethernet2(s.src_mac.0, s.dst_mac.0).ipv6(
        s.src_ip.octets(),
        s.dst_ip.octets(),
        s.hop_limit,
    )
}

/// IPv6 TCP with a 20-byte header: seq 1000, ack 2000 when ACK is set, window 65535.
pub fn tcp6_frame(s: &FrameSpec6, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = ip6(s).tcp(s.src_port, s.dst_port, 1000, 65535);
    if flags & 0x02 != 0 {
        t = t.syn();
    }
    if flags & 0x04 != 0 {
        t = t.rst();
    }
    if flags & 0x10 != 0 {
        t = t.ack(2000);
    }
    write(t.size(payload.len()), |o| t.write(o, payload))
}

pub fn udp6_frame(s: &FrameSpec6, payload: &[u8]) -> Vec<u8> {
    let u = ip6(s).udp(s.src_port, s.dst_port);
    write(u.size(payload.len()), |o| u.write(o, payload))
}

/// An ICMPv6 echo request (type 128) or reply (129).
pub fn icmpv6_echo_frame(s: &FrameSpec6, msg_type: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let i = if msg_type == 128 {
        ip6(s).icmpv6_echo_request(id, seq)
    } else {
        ip6(s).icmpv6_echo_reply(id, seq)
    };
    write(i.size(data.len()), |o| i.write(o, data))
}

/// A neighbor solicitation for `target` (hop limit 255, to its solicited-node group)
/// with a source link-layer option.
pub fn neighbor_solicit_frame(
    src_mac: dataplane::wire::MacAddr,
    src: std::net::Ipv6Addr,
    target: std::net::Ipv6Addr,
) -> Vec<u8> {
    let t = target.octets();
    let group = std::net::Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | t[13] as u16,
        u16::from_be_bytes([t[14], t[15]]),
    );
    let dst_mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac)
        .ipv6(src.octets(), group.octets(), 255)
        .icmpv6(etherparse::Icmpv6Type::NeighborSolicitation);
    let mut body = t.to_vec();
    body.extend([1, 1]);
    body.extend(src_mac.0);
    write(b.size(body.len()), |o| b.write(o, &body))
}

/// IPv6-in-IPv6: an outer header (addresses and hop limit from `outer`, next header 41)
/// around `inner_ip` (an IPv6 packet, without Ethernet).
pub fn ip6ip6_frame(outer: &FrameSpec6, inner_ip: &[u8]) -> Vec<u8> {
    let b = ip6(outer);
    write(b.size(inner_ip.len()), |o| {
        b.write(o, etherparse::IpNumber(41), inner_ip)
    })
}

/// A neighbor advertisement: `target` is at `src_mac` (target link-layer option), from
/// `target` to `dst` (`dst_mac`), hop limit 255.
pub fn neighbor_advert_frame(
    src_mac: dataplane::wire::MacAddr,
    target: std::net::Ipv6Addr,
    dst_mac: dataplane::wire::MacAddr,
    dst: std::net::Ipv6Addr,
    solicited: bool,
) -> Vec<u8> {
    let h = etherparse::icmpv6::NeighborAdvertisementHeader {
        router: false,
        solicited,
        r#override: true,
    };
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv6(target.octets(), dst.octets(), 255)
        .icmpv6(etherparse::Icmpv6Type::NeighborAdvertisement(h));
    let mut body = target.octets().to_vec();
    body.extend([2, 1]);
    body.extend(src_mac.0);
    write(b.size(body.len()), |o| b.write(o, &body))
}

/// TCP with chosen numbers and options (a 20-byte header plus the options).
pub fn tcp_frame_with(
    s: &FrameSpec,
    flags: u8,
    seq: u32,
    ack: Option<u32>,
    options: &[etherparse::TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let t = ip(s).tcp(s.src_port, s.dst_port, seq, 65535);
    let t = tcp_with(t, flags, ack, options);
    write(t.size(payload.len()), |o| t.write(o, payload))
}

/// IPv6 TCP with chosen numbers and options.
pub fn tcp6_frame_with(
    s: &FrameSpec6,
    flags: u8,
    seq: u32,
    ack: Option<u32>,
    options: &[etherparse::TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let t = ip6(s).tcp(s.src_port, s.dst_port, seq, 65535);
    let t = tcp_with(t, flags, ack, options);
    write(t.size(payload.len()), |o| t.write(o, payload))
}

/// The flags (FIN, SYN, RST, PSH), acknowledgement and options of a TCP header.
fn tcp_with(
    mut t: PacketBuilderStep<etherparse::TcpHeader>,
    flags: u8,
    ack: Option<u32>,
    options: &[etherparse::TcpOptionElement],
) -> PacketBuilderStep<etherparse::TcpHeader> {
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
    if let Some(a) = ack {
        t = t.ack(a);
    }
    t.options(options).unwrap()
}

/// An ICMP "port unreachable" from `src` to `dst` (TTL `ttl`) quoting `quote` (an IPv4
/// header and the first bytes of its transport header).
pub fn icmp_unreachable_frame(
    src_mac: dataplane::wire::MacAddr,
    dst_mac: dataplane::wire::MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    quote: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(src.octets(), dst.octets(), ttl)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    write(b.size(quote.len()), |o| b.write(o, quote))
}

/// Splits an Ethernet + IPv4 frame into fragments of its IP payload at the byte offsets
/// `at` (multiples of 8, ascending), as a sender's IP layer would: each fragment gets a
/// copy of the header with its offset, the more-fragments flag and a new checksum
/// (etherparse writes the header).
pub fn fragments(frame: &[u8], at: &[usize]) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    let (h, payload) = Ipv4Header::from_slice(ip).unwrap();
    let payload = &payload[..h.total_len as usize - h.header_len()];
    let mut cuts = vec![0];
    cuts.extend_from_slice(at);
    cuts.push(payload.len());
    cuts.windows(2)
        .map(|w| {
            let mut f = h.clone();
            f.dont_fragment = false;
            f.more_fragments = w[1] < payload.len();
            f.fragment_offset = etherparse::IpFragOffset::try_new((w[0] / 8) as u16).unwrap();
            f.set_payload_len(w[1] - w[0]).unwrap();
            let mut out = eth.to_vec();
            f.write(&mut out).unwrap();
            out.extend_from_slice(&payload[w[0]..w[1]]);
            out
        })
        .collect()
}

/// Splits an Ethernet + IPv6 frame (no extension header) into fragments of its payload
/// at the byte offsets `at` (multiples of 8), as a sender's IPv6 layer would: each gets
/// the header with payload length and next header 44, then a fragment header (the
/// original next header, offset, M flag, `ident`).
pub fn fragments6(frame: &[u8], at: &[usize], ident: u32) -> Vec<Vec<u8>> {
    let (head, payload) = frame.split_at(14 + 40);
    let nh = head[14 + 6];
    let mut cuts = vec![0];
    cuts.extend_from_slice(at);
    cuts.push(payload.len());
    cuts.windows(2)
        .map(|w| {
            let mut out = head.to_vec();
            out[14 + 4..14 + 6].copy_from_slice(&((8 + w[1] - w[0]) as u16).to_be_bytes());
            out[14 + 6] = 44;
            let more = (w[1] < payload.len()) as u16;
            out.extend([nh, 0]);
            out.extend((w[0] as u16 | more).to_be_bytes());
            out.extend(ident.to_be_bytes());
            out.extend_from_slice(&payload[w[0]..w[1]]);
            out
        })
        .collect()
}
