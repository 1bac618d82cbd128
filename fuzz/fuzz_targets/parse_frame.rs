//! Any bytes as an Ethernet frame through every view, every accessor, the rewrites,
//! and the whole forwarding pipeline: nothing may panic.
#![no_main]
use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::counters::WorkerCounters;
use dataplane::flow::FlowTable;
use dataplane::pipeline::{process, Env};
use dataplane::sched::{ConnCounters, SchedulerKind};
use dataplane::fixture;
use dataplane::snapshot::{Forward, Snapshot};
use dataplane::wire::*;
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

struct World {
    snap: Snapshot,
    flows: FlowTable,
    flows6: FlowTable<Ipv6Addr>,
    conns: ConnCounters,
    frags: dataplane::flow::frag::FragTable,
    counters: WorkerCounters,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let be = Ipv4Addr::new(10, 1, 0, 20);
        let vip = Ipv4Addr::new(203, 0, 113, 10);
        let svc = |id: u16, port: u16, proto: u8, fwd: Forward| {
            fixture::spec(id, fwd.name(), vip, port, proto, fwd, SchedulerKind::Rr, id as u32, &[(be, port, 1)])
        };
        let services = vec![
            svc(0, 80, 6, Forward::Nat),
            svc(1, 81, 6, Forward::Dr),
            svc(2, 82, 6, Forward::Tun),
            svc(3, 53, 17, Forward::Nat),
        ];
        World {
            snap: fixture::snapshot(fixture::ports(fixture::WAN_MAC, fixture::LAN_MAC), services, &[be], 251),
            flows: FlowTable::new(4096),
            flows6: FlowTable::with_capacity(4096),
            conns: ConnCounters::default(),
            frags: dataplane::flow::frag::FragTable::new(),
            counters: WorkerCounters::default(),
        }
    })
}

fn views(data: &[u8]) {
    let Ok(eth) = EthernetFrame::new_checked(data) else { return };
    let _ = (eth.dst(), eth.src(), eth.vlan_tci(), eth.ethertype(), eth.header_len());
    let p = eth.payload();
    if let Ok(a) = ArpPacket::new_checked(p) {
        let _ = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_mac(), a.target_ip());
    }
    views6(p);
    let Ok(ip) = Ipv4Packet::new_checked(p) else { return };
    let _ = (ip.version(), ip.tos(), ip.ident(), ip.dont_frag(), ip.more_frags(), ip.frag_offset());
    let _ = (ip.ttl(), ip.protocol(), ip.checksum(), ip.src(), ip.dst(), ip.options(), ip.verify_checksum());
    let l4 = ip.payload();
    if let Ok(t) = TcpPacket::new_checked(l4) {
        let _ = (t.src_port(), t.dst_port(), t.seq(), t.ack_number(), t.flags(), t.window(), t.urgent());
        let _ = (t.options(), t.payload(), t.verify_checksum(ip.src(), ip.dst()));
    }
    if let Ok(u) = UdpPacket::new_checked(l4) {
        let _ = (u.src_port(), u.dst_port(), u.len(), u.payload(), u.verify_checksum(ip.src(), ip.dst()));
    }
    if let Ok(i) = IcmpPacket::new_checked(l4) {
        let _ = (i.msg_type(), i.code(), i.ident(), i.seq(), i.next_hop_mtu(), i.data(), i.embedded(), i.verify_checksum());
    }
    // The in-place rewrites on a copy (valid headers only, as the pipeline calls them).
    let mut copy = p[..ip.total_len() as usize].to_vec();
    let mut view = Ipv4Packet::new_unchecked(&mut copy[..]);
    if (ip.protocol() == 6 && TcpPacket::new_checked(l4).is_ok()) || (ip.protocol() == 17 && UdpPacket::new_checked(l4).is_ok()) {
        view.rewrite_endpoint(End::Dst, Ipv4Addr::new(1, 2, 3, 4), 1);
        view.rewrite_endpoint(End::Src, Ipv4Addr::new(5, 6, 7, 8), 2);
    }
    view.decrement_ttl();
    let mut outer = [0u8; 20];
    let inner = Ipv4Packet::new_unchecked(&copy[..]);
    Ipv4Packet::new_unchecked(&mut outer[..]).set_tunnel_header(&inner, Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2));
    // The parse step alone, on every frame.
    let _ = dataplane::pipeline::parse(fixture::WAN_MAC, data);
}

/// The IPv6 views: header, TCP/UDP/ICMPv6 with pseudo-header checksums, NDP options,
/// and the rewrites on a copy.
fn views6(p: &[u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(p) else { return };
    let _ = (ip.version(), ip.traffic_class(), ip.flow_label(), ip.payload_len(), ip.next_header());
    let _ = (ip.hop_limit(), ip.src(), ip.dst(), ip.total_len());
    let l4 = ip.payload();
    let (src, dst) = (ip.src(), ip.dst());
    if let Ok(t) = TcpPacket::new_checked(l4) {
        let _ = (t.src_port(), t.dst_port(), t.flags(), t.payload(), t.verify_checksum(src, dst));
    }
    if let Ok(u) = UdpPacket::new_checked(l4) {
        let _ = (u.src_port(), u.dst_port(), u.payload(), u.verify_checksum(src, dst));
    }
    if let Ok(i) = Icmpv6Packet::new_checked(l4) {
        let _ = (i.msg_type(), i.code(), i.ident(), i.seq(), i.mtu(), i.nd_flags(), i.target(), i.data());
        let _ = (i.link_layer_option(icmpv6::OPT_SOURCE_LL), i.link_layer_option(icmpv6::OPT_TARGET_LL));
        let _ = i.verify_checksum(src, dst);
    }
    let mut copy = p[..ip.total_len()].to_vec();
    let mut view = Ipv6Packet::new_unchecked(&mut copy[..]);
    let nh = ip.next_header();
    if (nh == 6 && TcpPacket::new_checked(l4).is_ok()) || (nh == 17 && UdpPacket::new_checked(l4).is_ok()) {
        view.rewrite_endpoint(End::Dst, Ipv6Addr::LOCALHOST, 1);
        view.rewrite_endpoint(End::Src, Ipv6Addr::UNSPECIFIED, 2);
    }
    view.decrement_hop_limit();
    view.swap_addrs();
    if nh == 58 {
        if let Ok(mut i) = Icmpv6Packet::new_checked(view.payload_mut()) {
            i.make_echo_reply();
        }
    }
    let mut outer = [0u8; 40];
    let inner = Ipv6Packet::new_unchecked(&copy[..]);
    Ipv6Packet::new_unchecked(&mut outer[..]).set_tunnel_header(&inner, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
}

fuzz_target!(|data: &[u8]| {
    views(data);
    let w = world();
    let env = Env { snap: &w.snap, flows: &w.flows, flows6: &w.flows6, conns: &w.conns, frags: &w.frags, syn_cookies: dataplane::synproxy::SynCookies { active: true, secret: 7 }, now: 0 };
    let mut b = VecBuf::new(data);
    let _ = process(&env, &w.counters, &mut |_, _| {}, 0, &mut b);
    let _ = b.data();
});
