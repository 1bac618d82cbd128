//! The per-packet path: one function, [`process`], used by the worker loop, the golden
//! tests and the benches alike; [`process_burst`] hashes and prefetches a whole burst's
//! flow buckets first.
//!
//! Nothing here allocates, locks, logs or makes a system call. Neighbor resolution is
//! requested through a caller-supplied non-blocking hook (a bounded queue's try-push).
pub use crate::buf::PacketBuf;
use crate::counters::{DropReason, WorkerCounters};
use crate::flow::{
    Direction, FlowInit, FlowKey, FlowState, FlowTable, InsertError, Inserted, Timeouts,
};
use crate::sched::ConnCounters;
use crate::snapshot::{Forward, PortConf, Snapshot};
use crate::wire::{
    checksum, icmp, rewrite, EtherType, EthernetFrame, IcmpPacket, IpProtocol, Ipv4Packet, MacAddr,
    TcpFlags, TcpPacket, UdpPacket,
};
use core::net::Ipv4Addr;

/// What to do with a packet after [`process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it out of this port (index into `Snapshot::ports`).
    Tx(u16),
    /// Hand it to the management thread (ARP).
    Mgmt,
    Drop(DropReason),
}

/// What a worker shares with the others, read-only per packet.
pub struct Env<'a> {
    pub snap: &'a Snapshot,
    pub flows: &'a FlowTable,
    pub conns: &'a ConnCounters,
    pub timeouts: &'a Timeouts,
    /// Coarse time in seconds (flow timestamps).
    pub now: u32,
}

const ETH: usize = 14;

/// Peeks the 5-tuple of an untagged IPv4 TCP/UDP frame without validating more than it
/// reads (the full parse happens in `process`); used to prefetch flow buckets.
#[inline(always)]
fn peek_key(d: &[u8]) -> Option<FlowKey> {
    if d.len() < ETH + 20 || d[12] != 0x08 || d[13] != 0x00 {
        return None;
    }
    let ihl = ((d[ETH] & 0x0f) as usize) * 4;
    let proto = d[ETH + 9];
    if (proto != IpProtocol::TCP && proto != IpProtocol::UDP) || d.len() < ETH + ihl + 4 {
        return None;
    }
    let l4 = ETH + ihl;
    Some(FlowKey {
        protocol: proto,
        src: Ipv4Addr::new(d[26], d[27], d[28], d[29]),
        dst: Ipv4Addr::new(d[30], d[31], d[32], d[33]),
        src_port: u16::from_be_bytes([d[l4], d[l4 + 1]]),
        dst_port: u16::from_be_bytes([d[l4 + 2], d[l4 + 3]]),
    })
}

/// Hash of a flow's 5-tuple for the stateless (Maglev) decision and `mh`: symmetric
/// neither needs; stable across processes (no seed), so every worker agrees.
#[inline(always)]
pub fn flow_hash(k: &FlowKey) -> u64 {
    let a = ((k.src.to_bits() as u64) << 32) | k.dst.to_bits() as u64;
    let b = ((k.src_port as u64) << 24) | ((k.dst_port as u64) << 8) | k.protocol as u64;
    crate::sched::maglev::identity_hash(a ^ b.rotate_left(17), 3)
}

#[inline(always)]
fn src_hash(a: Ipv4Addr) -> u64 {
    crate::sched::maglev::identity_hash(a.to_bits() as u64, 4)
}

/// Processes a burst: pass 1 peeks every packet's 5-tuple, hashes it and prefetches its
/// flow buckets; pass 2 prefetches the flow entries those buckets point to; pass 3 runs
/// [`process`] on each.
pub fn process_burst<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkts: &mut [B],
    out: &mut [Verdict],
) {
    let mut pre = [None; 64];
    let n = pkts.len().min(64);
    for i in 0..n {
        if let Some(k) = peek_key(pkts[i].data()) {
            let h = env.flows.hash(&k);
            env.flows.prefetch(h.1, h.2);
            pre[i] = Some((k, h));
        }
    }
    for (_, h) in pre[..n].iter().flatten() {
        env.flows.prefetch_entries(*h);
    }
    for i in 0..n {
        out[i] = process(env, c, resolve, in_port, &mut pkts[i], pre[i]);
    }
}

/// Processes one packet received on port `in_port`, rewriting it in place.
/// `pre` is the key and hash from a prefetch pass, if any.
#[inline]
pub fn process<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkt: &mut B,
    pre: Option<(FlowKey, (u32, usize, usize))>,
) -> Verdict {
    let v = classify(env, c, resolve, in_port, pkt, pre);
    if let Verdict::Drop(r) = v {
        c.drop(r);
    }
    v
}

#[inline(always)]
fn classify<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkt: &mut B,
    pre: Option<(FlowKey, (u32, usize, usize))>,
) -> Verdict {
    use DropReason::*;
    if !pkt.is_contiguous() {
        return Verdict::Drop(MultiSegment);
    }
    let Some(port) = env.snap.ports.get(in_port as usize) else {
        return Verdict::Drop(NotForUs);
    };
    let d = pkt.data();
    let Ok(eth) = EthernetFrame::new_checked(d) else {
        return Verdict::Drop(Malformed);
    };
    let dst_mac = eth.dst();
    if dst_mac != port.mac && !dst_mac.is_broadcast() {
        return Verdict::Drop(NotForUs);
    }
    if eth.vlan_tci().is_some() {
        return Verdict::Drop(Vlan);
    }
    match eth.ethertype() {
        EtherType::ARP => {
            c.to_mgmt.inc();
            return Verdict::Mgmt;
        }
        EtherType::IPV4 if !dst_mac.is_broadcast() => {}
        EtherType::IPV4 => return Verdict::Drop(NotForUs),
        _ => return Verdict::Drop(NotIpv4),
    }
    let Ok(ip) = Ipv4Packet::new_checked(&d[ETH..]) else {
        return Verdict::Drop(Malformed);
    };
    let (ihl, total) = (ip.header_len(), ip.total_len() as usize);
    if ip.is_fragment() {
        return Verdict::Drop(Fragment);
    }
    let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
    let (sport, dport, flags) = match proto {
        IpProtocol::TCP => match TcpPacket::new_checked(ip.payload()) {
            Ok(t) => (t.src_port(), t.dst_port(), t.flags().0),
            Err(_) => return Verdict::Drop(Malformed),
        },
        IpProtocol::UDP => match UdpPacket::new_checked(ip.payload()) {
            Ok(u) => (u.src_port(), u.dst_port(), 0),
            Err(_) => return Verdict::Drop(Malformed),
        },
        IpProtocol::ICMP if env.snap.is_ours(dst) => {
            return echo_reply(env, c, in_port, pkt, ihl, total);
        }
        _ if env.snap.is_ours(dst) => return Verdict::Drop(NoService),
        _ => return Verdict::Drop(NotOurs),
    };
    // Drop Ethernet padding: lengths below are the IP packet's.
    if ETH + total < d.len() && !pkt.truncate(ETH + total) {
        return Verdict::Drop(Malformed);
    }
    let len = (ETH + total) as u64;
    let key = FlowKey {
        protocol: proto,
        src,
        src_port: sport,
        dst,
        dst_port: dport,
    };
    let h = match pre {
        Some((k, h)) if k == key => h,
        _ => env.flows.hash(&key),
    };
    let is_tcp = proto == IpProtocol::TCP;
    let syn_only = is_tcp && flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN;

    if let Some(mut r) = env.flows.lookup_hashed(&key, h) {
        let mode = Forward::from_u8(r.info.init.mode);
        let from_client = r.dir == Direction::Forward;
        if !(from_client && syn_only && r.state().reusable()) {
            if is_tcp {
                let old = r.state();
                let new = if mode == Forward::Nat {
                    old.bidirectional(from_client, flags)
                } else {
                    old.input_only(flags)
                };
                if new != old && env.flows.set_state(&mut r, new) == Some(new) {
                    env.conns.on_change(r.info.init.backend_id, old, new);
                }
            }
            env.flows.touch(&r, env.now);
            let init = r.info.init;
            return if from_client {
                count(c, &init, len, true);
                forward_to_backend(env, c, resolve, pkt, &init, ihl)
            } else {
                count(c, &init, len, false);
                reply_to_client(env, resolve, pkt, &init, ihl)
            };
        }
        // Client port reuse: a new SYN on a closing/closed flow ends it.
        if let Some(gone) = env.flows.remove(&r) {
            env.conns.on_end(gone.init.backend_id, gone.state);
        }
    }

    let Some(svc) = env.snap.services.find(dst, dport, proto) else {
        return Verdict::Drop(if env.snap.is_ours(dst) {
            NoService
        } else {
            NotOurs
        });
    };
    let fh = flow_hash(&key);
    let mut init = FlowInit {
        protocol: proto,
        client: src,
        client_port: sport,
        vip: dst,
        vport: dport,
        backend: Ipv4Addr::UNSPECIFIED,
        backend_port: 0,
        service: svc.id,
        backend_id: 0,
        mode: svc.forward as u8,
        reverse: svc.forward == Forward::Nat,
        state: if is_tcp {
            FlowState::SynSent
        } else {
            FlowState::Udp
        },
    };
    let set_backend = |init: &mut FlowInit, b: &crate::snapshot::Backend| {
        init.backend = b.addr;
        init.backend_port = if svc.forward == Forward::Nat {
            b.port
        } else {
            dport
        };
        init.backend_id = b.id;
    };
    if is_tcp && !syn_only {
        // A mid-connection segment with no flow.
        if svc.forward == Forward::Nat {
            return Verdict::Drop(NoFlow);
        }
        let Some(b) = svc.stateless(fh) else {
            return Verdict::Drop(NoBackend);
        };
        set_backend(&mut init, b);
        c.stateless.inc();
        count(c, &init, len, true);
        return forward_to_backend(env, c, resolve, pkt, &init, ihl);
    }
    let Some(b) = svc.schedule(env.conns, src_hash(src), fh) else {
        return Verdict::Drop(NoBackend);
    };
    set_backend(&mut init, b);
    match env.flows.insert(&init, env.now) {
        Ok(Inserted::New(_)) => {
            env.conns.on_create(init.backend_id, init.state);
            c.new_flows.inc();
            c.services[svc.id as usize].connections.inc();
            c.backends[init.backend_id as usize].connections.inc();
        }
        Ok(Inserted::Existing(r)) => init = r.info.init,
        Err(InsertError::Full | InsertError::Contended) => {
            let Some(b) = svc.stateless(fh) else {
                return Verdict::Drop(NoBackend);
            };
            set_backend(&mut init, b);
            c.table_full.inc();
        }
        Err(InsertError::Conflict) => return Verdict::Drop(FlowConflict),
    }
    count(c, &init, len, true);
    forward_to_backend(env, c, resolve, pkt, &init, ihl)
}

/// Counts a packet of flow `f` for its service and backend (`inbound`: client -> backend).
#[inline(always)]
fn count(c: &WorkerCounters, f: &FlowInit, len: u64, inbound: bool) {
    c.services[f.service as usize % c.services.len()].record(len, inbound);
    c.backends[f.backend_id as usize % c.backends.len()].record(len, inbound);
}

/// The egress port and next-hop MAC toward `dst`: the longest-prefix route, whose next
/// hop is `dst` itself on a connected route. An unknown MAC asks for resolution.
/// `connected_only` (dr) refuses routes through a gateway.
#[inline(always)]
fn next_hop<'s>(
    env: &Env<'s>,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    dst: Ipv4Addr,
    connected_only: bool,
) -> Result<(u16, &'s PortConf, MacAddr), DropReason> {
    let route = env.snap.routes.lookup(dst).ok_or(DropReason::NoRoute)?;
    if connected_only && route.via.is_some() {
        return Err(DropReason::NoRoute);
    }
    let out = env
        .snap
        .ports
        .get(route.port as usize)
        .ok_or(DropReason::NoRoute)?;
    let hop = route.via.unwrap_or(dst);
    match env.snap.neighbors.get(hop) {
        Some(mac) => Ok((route.port, out, mac)),
        None => {
            resolve(hop, route.port);
            Err(DropReason::NoNeighbor)
        }
    }
}

/// Rewrites a client packet for its backend (nat/dr/tun) and picks the output.
#[inline(always)]
fn forward_to_backend<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    pkt: &mut B,
    f: &FlowInit,
    ihl: usize,
) -> Verdict {
    let mode = Forward::from_u8(f.mode);
    let (port, out, mac) = match next_hop(env, resolve, f.backend, mode == Forward::Dr) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    if mode == Forward::Tun {
        // Checked on the packet as received, so an ICMP error quotes it unchanged.
        let d = pkt.data();
        if d.len() - ETH + 20 > out.mtu as usize {
            if d[ETH + 6] & 0x40 != 0 {
                return frag_needed(env, c, resolve, pkt, ihl, out.mtu - 20);
            }
            return Verdict::Drop(DropReason::FragNeeded);
        }
    }
    let d = pkt.data_mut();
    if !rewrite::decrement_ttl(&mut d[ETH..]) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    match mode {
        Forward::Nat => rewrite::nat_dst(&mut d[ETH..], ihl, f.backend, f.backend_port),
        Forward::Dr => {}
        Forward::Tun => {
            let src = out.primary_address();
            if !pkt.prepend(20) {
                return Verdict::Drop(DropReason::NoHeadroom);
            }
            let d = pkt.data_mut();
            d.copy_within(20..20 + ETH, 0);
            let (head, inner) = d.split_at_mut(ETH + 20);
            rewrite::ipip_outer(&mut head[ETH..], inner, src, f.backend);
        }
    }
    rewrite::set_macs(pkt.data_mut(), out.mac, mac);
    Verdict::Tx(port)
}

/// Rewrites a NAT reply (backend -> client) back to VIP:port and routes it to the client.
#[inline(always)]
fn reply_to_client<B: PacketBuf>(
    env: &Env,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    pkt: &mut B,
    f: &FlowInit,
    ihl: usize,
) -> Verdict {
    let (port, out, mac) = match next_hop(env, resolve, f.client, false) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    let d = pkt.data_mut();
    if !rewrite::decrement_ttl(&mut d[ETH..]) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    rewrite::nat_src(&mut d[ETH..], ihl, f.vip, f.vport);
    rewrite::set_macs(d, out.mac, mac);
    Verdict::Tx(port)
}

/// Answers an ICMP echo request to a local address or VIP, in place, out of the port it
/// came in on. Other ICMP to us is dropped as `NoService`.
fn echo_reply<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    in_port: u16,
    pkt: &mut B,
    ihl: usize,
    total: usize,
) -> Verdict {
    let d = pkt.data();
    let Ok(ic) = IcmpPacket::new_checked(&d[ETH + ihl..ETH + total]) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if ic.msg_type() != icmp::TYPE_ECHO_REQUEST {
        return Verdict::Drop(DropReason::NoService);
    }
    if ETH + total < d.len() && !pkt.truncate(ETH + total) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let mac = env.snap.ports[in_port as usize].mac;
    let d = pkt.data_mut();
    let peer = MacAddr(d[6..12].try_into().unwrap());
    rewrite::set_macs(d, mac, peer);
    // Swap addresses (the checksum does not change), TTL 64, type 8 -> 0.
    let (s, t) = d.split_at_mut(ETH + 16);
    s[ETH + 12..ETH + 16].swap_with_slice(&mut t[..4]);
    let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH..]);
    ip.set_ttl(64);
    ip.fill_checksum();
    let i = ETH + ihl;
    let old = u16::from_be_bytes([d[i], d[i + 1]]);
    d[i] = icmp::TYPE_ECHO_REPLY;
    let cs = checksum::update16(
        u16::from_be_bytes([d[i + 2], d[i + 3]]),
        old,
        u16::from_be_bytes([d[i], d[i + 1]]),
    );
    d[i + 2..i + 4].copy_from_slice(&cs.to_be_bytes());
    c.icmp_replies.inc();
    Verdict::Tx(in_port)
}

/// Replaces a too-big tun packet by ICMP "fragmentation needed" to its sender (RFC 1191),
/// quoting the original IP header and 8 bytes, and routes it back to the client.
fn frag_needed<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    pkt: &mut B,
    ihl: usize,
    mtu: u16,
) -> Verdict {
    let d = pkt.data();
    let client = Ipv4Addr::new(d[26], d[27], d[28], d[29]);
    let quote_len = (ihl + 8).min(d.len() - ETH);
    let mut quote = [0u8; 68];
    quote[..quote_len].copy_from_slice(&d[ETH..ETH + quote_len]);
    let (port, out, mac) = match next_hop(env, resolve, client, false) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    let src = out.primary_address();
    let new_len = ETH + 20 + 8 + quote_len;
    if !pkt.truncate(new_len) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let d = pkt.data_mut();
    rewrite::set_macs(d, out.mac, mac);
    d[12..14].copy_from_slice(&EtherType::IPV4.to_be_bytes());
    let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH..]);
    ip.set_version_and_len(20);
    ip.set_tos(0);
    ip.set_total_len((20 + 8 + quote_len) as u16);
    ip.set_ident(0);
    ip.set_frag(false, false, 0);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::ICMP);
    ip.set_src(src);
    ip.set_dst(client);
    ip.fill_checksum();
    let mut ic = IcmpPacket::new_unchecked(&mut d[ETH + 20..]);
    ic.set_msg_type(icmp::TYPE_DEST_UNREACHABLE);
    ic.set_code(icmp::CODE_FRAG_NEEDED);
    ic.set_next_hop_mtu(mtu);
    ic.data_mut()[..quote_len].copy_from_slice(&quote[..quote_len]);
    ic.fill_checksum();
    c.drop(DropReason::FragNeeded);
    Verdict::Tx(port)
}
