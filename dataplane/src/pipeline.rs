//! The per-packet path, one small step each (as Katran's `process_packet`):
//!
//! 1. [`parse`]: one pass over the headers, through the `wire` views, into a [`Frame`]
//!    (for TCP/UDP a [`Parsed`]: offsets, flow key, flags, lengths) or a drop reason;
//! 2. [`existing_flow`]: a packet of a known flow keeps its backend (state tracking);
//! 3. [`new_flow`]: service lookup, scheduler, flow insert (or the stateless decision);
//! 4. the forwarding mode's rewrite: [`to_backend`] (nat, dr, tun) or [`to_client`]
//!    (nat replies), then the next hop.
//!
//! [`process`] runs them for one packet; [`process_burst`] parses a whole burst first,
//! hashing each flow key and prefetching its buckets, then prefetches the entries, then
//! runs the rest. The worker loop, the golden tests and the benches all call these.
//!
//! Nothing here allocates, locks, logs or makes a system call. Neighbor resolution is
//! requested through a caller-supplied non-blocking hook (a bounded queue's try-push).
//! Every packet not forwarded is counted under one [`DropReason`].
//!
//! Address families: [`Parsed`] and [`FlowKey`] take the address type as a parameter;
//! IPv4 is the one instantiated. IPv6 adds a `Frame` variant carrying
//! `Parsed<Ipv6Addr>`, and the flow steps become generic over the family.
#![forbid(unsafe_code)]
pub use crate::buf::PacketBuf;
use crate::counters::{DropReason, WorkerCounters};
use crate::flow::{
    Direction, FlowHash, FlowInit, FlowKey, FlowState, FlowTable, InsertError, Inserted,
};
use crate::hash::{flow_hash, src_hash};
use crate::sched::ConnCounters;
use crate::snapshot::{Backend, Forward, PortConf, Service, Snapshot};
use crate::wire::{
    ethernet, icmp, ipv4, End, EtherType, EthernetFrame, IcmpPacket, IpProtocol, Ipv4Packet,
    MacAddr, TcpFlags, TcpPacket, UdpPacket,
};
use core::net::Ipv4Addr;

/// Most packets [`process_burst`] hashes and prefetches ahead in one window (and the
/// RX/TX burst size of the worker loop).
pub const BURST: usize = 32;

const ETH: usize = ethernet::HEADER_LEN;
/// How many packets behind the bucket prefetch the entry prefetch runs in the parse
/// pass: far enough for the buckets to have arrived.
const AHEAD: usize = 6;

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
    /// Coarse time in seconds (flow timestamps).
    pub now: u32,
}

/// What the parse step learns of a TCP or UDP packet. Offsets are from the start of the
/// frame; `end` is where the IP packet ends (Ethernet padding lies past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<A = Ipv4Addr> {
    pub l3: u16,
    pub l4: u16,
    pub end: u16,
    pub key: FlowKey<A>,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
}

impl<A> Parsed<A> {
    #[inline(always)]
    pub fn is_tcp(&self) -> bool {
        self.key.protocol == IpProtocol::TCP
    }
    /// A TCP SYN without ACK: the only segment that may create a TCP flow.
    #[inline(always)]
    pub fn is_syn_only(&self) -> bool {
        self.is_tcp() && self.tcp_flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN
    }
    /// Bytes counted for the flow: the frame up to the end of the IP packet.
    #[inline(always)]
    fn len(&self) -> u64 {
        self.end as u64
    }
}

/// A frame after the parse step, by what handles it next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// ARP: for the management thread.
    Arp,
    /// IPv4 TCP or UDP: the flow path.
    Flow(Parsed),
    /// Another IPv4 protocol (an ICMP echo request to us is answered).
    Other {
        l3: u16,
        end: u16,
        protocol: u8,
        dst: Ipv4Addr,
    },
}

/// Parses a frame that arrived on a port with MAC `port_mac`: every check that needs
/// only the frame's bytes.
#[inline(always)]
pub fn parse(port_mac: MacAddr, d: &[u8]) -> Result<Frame, DropReason> {
    use DropReason::*;
    let eth = EthernetFrame::new_checked(d).map_err(|_| Malformed)?;
    let dst_mac = eth.dst();
    if dst_mac != port_mac && !dst_mac.is_broadcast() {
        return Err(NotForUs);
    }
    if eth.vlan_tci().is_some() {
        return Err(Vlan);
    }
    match eth.ethertype() {
        EtherType::ARP => return Ok(Frame::Arp),
        EtherType::IPV4 if !dst_mac.is_broadcast() => {}
        EtherType::IPV4 => return Err(NotForUs),
        _ => return Err(NotIpv4),
    }
    let ip = Ipv4Packet::new_checked(&d[ETH..]).map_err(|_| Malformed)?;
    if ip.is_fragment() {
        return Err(Fragment);
    }
    let l3 = ETH as u16;
    let l4 = l3 + ip.header_len() as u16;
    let end = l3 + ip.total_len();
    let protocol = ip.protocol();
    let (src_port, dst_port, tcp_flags) = match protocol {
        IpProtocol::TCP => {
            let t = TcpPacket::new_checked(ip.payload()).map_err(|_| Malformed)?;
            (t.src_port(), t.dst_port(), t.flags().0)
        }
        IpProtocol::UDP => {
            let u = UdpPacket::new_checked(ip.payload()).map_err(|_| Malformed)?;
            (u.src_port(), u.dst_port(), 0)
        }
        _ => {
            return Ok(Frame::Other {
                l3,
                end,
                protocol,
                dst: ip.dst(),
            })
        }
    };
    Ok(Frame::Flow(Parsed {
        l3,
        l4,
        end,
        key: FlowKey {
            protocol,
            src: ip.src(),
            src_port,
            dst: ip.dst(),
            dst_port,
        },
        tcp_flags,
    }))
}

/// The parse step on a buffer received on `in_port`.
#[inline(always)]
fn parse_on<B: PacketBuf>(env: &Env, in_port: u16, pkt: &B) -> Result<Frame, DropReason> {
    if !pkt.is_contiguous() {
        return Err(DropReason::MultiSegment);
    }
    let port = env
        .snap
        .ports
        .get(in_port as usize)
        .ok_or(DropReason::NotForUs)?;
    parse(port.mac, pkt.data())
}

/// Processes a burst: pass 1 parses every packet, hashes its flow key and prefetches its
/// flow buckets; pass 2 prefetches the flow entries those buckets point to; pass 3 runs
/// the rest of the path on each. `out` must be at least as long as `pkts`.
pub fn process_burst<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkts: &mut [B],
    out: &mut [Verdict],
) {
    for (pkts, out) in pkts.chunks_mut(BURST).zip(out.chunks_mut(BURST)) {
        let n = pkts.len().min(out.len());
        let mut frames = [Err(DropReason::Malformed); BURST];
        let mut hashes = [None; BURST];
        for i in 0..n {
            frames[i] = parse_on(env, in_port, &pkts[i]);
            if let Ok(Frame::Flow(p)) = &frames[i] {
                let h = env.flows.hash(&p.key);
                env.flows.prefetch(h);
                hashes[i] = Some(h);
            }
            if let Some(Some(h)) = i.checked_sub(AHEAD).map(|j| hashes[j]) {
                env.flows.prefetch_entries(h);
            }
        }
        for h in hashes[n.saturating_sub(AHEAD)..n].iter().flatten() {
            env.flows.prefetch_entries(*h);
        }
        for i in 0..n {
            out[i] = dispatch(env, c, resolve, in_port, &mut pkts[i], frames[i], hashes[i]);
        }
    }
}

/// Processes one packet received on port `in_port`, rewriting it in place.
#[inline]
pub fn process<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkt: &mut B,
) -> Verdict {
    let frame = parse_on(env, in_port, pkt);
    dispatch(env, c, resolve, in_port, pkt, frame, None)
}

/// Everything after the parse step; counts the drop, if any. `hash` is the flow key's
/// hash when the burst pass computed it.
#[inline(always)]
fn dispatch<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkt: &mut B,
    frame: Result<Frame, DropReason>,
    hash: Option<FlowHash>,
) -> Verdict {
    let v = match frame {
        Err(r) => Verdict::Drop(r),
        Ok(Frame::Arp) => {
            c.to_mgmt.inc();
            Verdict::Mgmt
        }
        Ok(Frame::Other {
            l3,
            end,
            protocol,
            dst,
        }) => match env.snap.is_ours(dst) {
            true if protocol == IpProtocol::ICMP => echo_reply(env, c, in_port, pkt, l3, end),
            true => punt_or(env, c, in_port, dst, DropReason::NoService),
            false => Verdict::Drop(DropReason::NotOurs),
        },
        Ok(Frame::Flow(p)) => flow(env, c, resolve, in_port, pkt, &p, hash),
    };
    if let Verdict::Drop(r) = v {
        c.drop(r);
    }
    v
}

/// What is addressed to a port's own address (not a VIP) and ferrovs does not answer
/// itself goes to the kernel when the port it came in on has an exception path; else it
/// is dropped as `otherwise`.
#[inline(always)]
fn punt_or(
    env: &Env,
    c: &WorkerCounters,
    in_port: u16,
    dst: Ipv4Addr,
    otherwise: DropReason,
) -> Verdict {
    let kernel = env
        .snap
        .ports
        .get(in_port as usize)
        .is_some_and(|p| p.kernel);
    if kernel && env.snap.is_local(dst) {
        c.to_mgmt.inc();
        Verdict::Mgmt
    } else {
        Verdict::Drop(otherwise)
    }
}

/// A TCP or UDP packet: its flow if it has one, else a new one.
#[inline(always)]
fn flow<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkt: &mut B,
    p: &Parsed,
    hash: Option<FlowHash>,
) -> Verdict {
    // Drop Ethernet padding: from here on the frame ends where the IP packet does.
    if (p.end as usize) < pkt.data().len() && !pkt.truncate(p.end as usize) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let h = hash.unwrap_or_else(|| env.flows.hash(&p.key));
    if let Some(v) = existing_flow(env, c, resolve, pkt, p, h) {
        return v;
    }
    new_flow(env, c, resolve, in_port, pkt, p)
}

/// A packet of a flow in the table: track the TCP state, forward it the flow's way.
/// None when there is no flow, or when a client's new SYN ended a closing one (port
/// reuse: it is scheduled afresh).
#[inline(always)]
pub fn existing_flow<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    pkt: &mut B,
    p: &Parsed,
    h: FlowHash,
) -> Option<Verdict> {
    let mut r = env.flows.lookup_hashed(&p.key, h)?;
    let init = r.info.init;
    let from_client = r.dir == Direction::Forward;
    if from_client && p.is_syn_only() && r.state().reusable() {
        if let Some(gone) = env.flows.remove(&r) {
            env.conns.on_end(gone.init.backend_id, gone.state);
        }
        return None;
    }
    if p.is_tcp() {
        let old = r.state();
        let new = if init.mode == Forward::Nat {
            old.bidirectional(from_client, p.tcp_flags)
        } else {
            old.input_only(p.tcp_flags)
        };
        if new != old && env.flows.set_state(&mut r, new) == Some(new) {
            env.conns.on_change(init.backend_id, old, new);
        }
    }
    env.flows.touch(&r, env.now);
    count(c, &init, p.len(), from_client);
    Some(if from_client {
        to_backend(env, c, resolve, pkt, p, &init)
    } else {
        to_client(env, resolve, pkt, p, &init)
    })
}

/// A packet with no flow: find its service, schedule a backend, create the flow (or,
/// when the table cannot take it, decide statelessly with Maglev).
#[inline(always)]
pub fn new_flow<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    in_port: u16,
    pkt: &mut B,
    p: &Parsed,
) -> Verdict {
    use DropReason::*;
    let k = &p.key;
    let Some(svc) = env.snap.services.find(k.dst, k.dst_port, k.protocol) else {
        return if env.snap.is_ours(k.dst) {
            punt_or(env, c, in_port, k.dst, NoService)
        } else {
            Verdict::Drop(NotOurs)
        };
    };
    // Every mode decrements the TTL on the way out: a packet that cannot be forwarded
    // must not create state first.
    if Ipv4Packet::new_unchecked(&pkt.data()[p.l3 as usize..]).ttl() <= 1 {
        return Verdict::Drop(TtlExceeded);
    }
    let fh = flow_hash(k);
    if p.is_tcp() && !p.is_syn_only() {
        // A mid-connection segment with no flow: nat cannot translate its replies;
        // dr/tun send it where Maglev says (the backend that most likely has it).
        if svc.forward == Forward::Nat {
            return Verdict::Drop(NoFlow);
        }
        let Some(b) = svc.stateless(fh) else {
            return Verdict::Drop(NoBackend);
        };
        let init = flow_init(svc, p, b);
        c.stateless.inc();
        count(c, &init, p.len(), true);
        return to_backend(env, c, resolve, pkt, p, &init);
    }
    let Some(b) = svc.schedule(env.conns, src_hash(k.src), fh) else {
        return Verdict::Drop(NoBackend);
    };
    let mut init = flow_init(svc, p, b);
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
            init = flow_init(svc, p, b);
            c.table_full.inc();
        }
        Err(InsertError::Conflict) => return Verdict::Drop(FlowConflict),
    }
    count(c, &init, p.len(), true);
    to_backend(env, c, resolve, pkt, p, &init)
}

/// The flow a packet of `svc` makes with backend `b`. Only nat rewrites the port.
#[inline(always)]
fn flow_init(svc: &Service, p: &Parsed, b: &Backend) -> FlowInit {
    let k = &p.key;
    FlowInit {
        protocol: k.protocol,
        client: k.src,
        client_port: k.src_port,
        vip: k.dst,
        vport: k.dst_port,
        backend: b.addr,
        backend_port: if svc.forward == Forward::Nat {
            b.port
        } else {
            k.dst_port
        },
        service: svc.id,
        backend_id: b.id,
        mode: svc.forward,
        reverse: svc.forward == Forward::Nat,
        state: if p.is_tcp() {
            FlowState::SynSent
        } else {
            FlowState::Udp
        },
    }
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
fn to_backend<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    pkt: &mut B,
    p: &Parsed,
    f: &FlowInit,
) -> Verdict {
    let (port, out, mac) = match next_hop(env, resolve, f.backend, f.mode == Forward::Dr) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    let l3 = p.l3 as usize;
    if f.mode == Forward::Tun && pkt.data().len() - l3 + ipv4::HEADER_LEN > out.mtu as usize {
        // Checked on the packet as received, so an ICMP error quotes it unchanged.
        if Ipv4Packet::new_unchecked(&pkt.data()[l3..]).dont_frag() {
            return frag_needed(env, c, resolve, pkt, p, out.mtu - ipv4::HEADER_LEN as u16);
        }
        return Verdict::Drop(DropReason::FragNeeded);
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut pkt.data_mut()[l3..]);
    if !ip.decrement_ttl() {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    match f.mode {
        Forward::Nat => ip.rewrite_endpoint(End::Dst, f.backend, f.backend_port),
        Forward::Dr => {}
        Forward::Tun => {
            if !pkt.prepend(ipv4::HEADER_LEN) {
                return Verdict::Drop(DropReason::NoHeadroom);
            }
            let d = pkt.data_mut();
            d.copy_within(ipv4::HEADER_LEN..ipv4::HEADER_LEN + ETH, 0);
            let (head, inner) = d.split_at_mut(ETH + ipv4::HEADER_LEN);
            Ipv4Packet::new_unchecked(&mut head[ETH..]).set_tunnel_header(
                &Ipv4Packet::new_unchecked(&*inner),
                out.primary_address(),
                f.backend,
            );
        }
    }
    EthernetFrame::new_unchecked(pkt.data_mut()).set_addrs(out.mac, mac);
    Verdict::Tx(port)
}

/// Rewrites a NAT reply (backend -> client) back to VIP:port and routes it to the client.
#[inline(always)]
fn to_client<B: PacketBuf>(
    env: &Env,
    resolve: &mut impl FnMut(Ipv4Addr, u16),
    pkt: &mut B,
    p: &Parsed,
    f: &FlowInit,
) -> Verdict {
    let (port, out, mac) = match next_hop(env, resolve, f.client, false) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    let d = pkt.data_mut();
    let mut ip = Ipv4Packet::new_unchecked(&mut d[p.l3 as usize..]);
    if !ip.decrement_ttl() {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    ip.rewrite_endpoint(End::Src, f.vip, f.vport);
    EthernetFrame::new_unchecked(d).set_addrs(out.mac, mac);
    Verdict::Tx(port)
}

/// Answers an ICMP echo request to a local address or VIP, in place, out of the port it
/// came in on. Other ICMP to a local address goes to the kernel where the port has an
/// exception path; the rest is dropped as `NoService`.
fn echo_reply<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    in_port: u16,
    pkt: &mut B,
    l3: u16,
    end: u16,
) -> Verdict {
    let (l3, end) = (l3 as usize, end as usize);
    let d = pkt.data();
    let ip = Ipv4Packet::new_unchecked(&d[l3..]);
    let (ihl, dst) = (ip.header_len(), ip.dst());
    let Ok(ic) = IcmpPacket::new_checked(&d[l3 + ihl..end]) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if ic.msg_type() != icmp::TYPE_ECHO_REQUEST {
        // Replies and errors for the kernel's own sockets, where it has an interface.
        return punt_or(env, c, in_port, dst, DropReason::NoService);
    }
    if end < d.len() && !pkt.truncate(end) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let mac = env.snap.ports[in_port as usize].mac;
    let d = pkt.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *d);
    let peer = eth.src();
    eth.set_addrs(mac, peer);
    let mut ip = Ipv4Packet::new_unchecked(&mut d[l3..]);
    ip.swap_addrs();
    ip.set_ttl(64);
    ip.fill_checksum();
    IcmpPacket::new_unchecked(&mut d[l3 + ihl..]).make_echo_reply();
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
    p: &Parsed,
    mtu: u16,
) -> Verdict {
    const ICMP_LEN: usize = icmp::HEADER_LEN;
    let (l3, client) = (p.l3 as usize, p.key.src);
    let d = pkt.data();
    let quote_len = (p.l4 as usize - l3 + 8).min(d.len() - l3);
    let mut quote = [0u8; 68];
    quote[..quote_len].copy_from_slice(&d[l3..l3 + quote_len]);
    let (port, out, mac) = match next_hop(env, resolve, client, false) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    let ip_len = ipv4::HEADER_LEN + ICMP_LEN + quote_len;
    if !pkt.truncate(l3 + ip_len) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let d = pkt.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *d);
    eth.set_addrs(out.mac, mac);
    eth.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut d[l3..]);
    ip.set_version_and_len(ipv4::HEADER_LEN);
    ip.set_tos(0);
    ip.set_total_len(ip_len as u16);
    ip.set_ident(0);
    ip.set_frag(false, false, 0);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::ICMP);
    ip.set_src(out.primary_address());
    ip.set_dst(client);
    ip.fill_checksum();
    let mut ic = IcmpPacket::new_unchecked(&mut d[l3 + ipv4::HEADER_LEN..]);
    ic.set_msg_type(icmp::TYPE_DEST_UNREACHABLE);
    ic.set_code(icmp::CODE_FRAG_NEEDED);
    ic.set_next_hop_mtu(mtu);
    ic.data_mut()[..quote_len].copy_from_slice(&quote[..quote_len]);
    ic.fill_checksum();
    c.drop(DropReason::FragNeeded);
    Verdict::Tx(port)
}
