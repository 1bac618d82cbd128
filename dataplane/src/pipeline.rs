//! The per-packet path, one small step each (as Katran's `process_packet`):
//!
//! 1. [`parse`]: one pass over the headers, through the `wire` views, into a [`Frame`]
//!    (for TCP/UDP a [`Parsed`]: offsets, flow key, flags, lengths) or a drop reason;
//! 2. [`existing_flow`]: a packet of a known flow keeps its backend (state tracking);
//! 3. [`new_flow`]: service lookup, scheduler, flow insert (or the stateless decision);
//! 4. the forwarding mode's rewrite: `to_backend` (nat, dr, tun) or `to_client`
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
//! Address families: the flow steps are generic over [`Ip`] (IPv4 and IPv6), each
//! family with its own flow table, so IPv4 takes the path it always took. IPv6 packets
//! with an extension header other than a fragment header are dropped
//! (`ipv6_extension_header`); fragments of both families follow their first fragment
//! (`flow::frag`); neighbor discovery
//! goes to the management thread as ARP does.
#![forbid(unsafe_code)]
pub use crate::buf::PacketBuf;
use crate::counters::{DropReason, WorkerCounters};
use crate::flow::frag::{DatagramId, FragTable};
use crate::flow::table::Family;
use crate::flow::{
    seq_plausible, Direction, FlowFields, FlowHash, FlowInit, FlowKey, FlowRef, FlowState,
    FlowTable, InsertError, Inserted, ANY_PORT,
};
use crate::hash::{flow_hash, src_hash};
use crate::sched::ConnCounters;
use crate::snapshot::{Backend, Forward, PortConf, Route, Service, Services, Snapshot};
use crate::snapshot::{MAX_BACKENDS, MAX_SERVICES, SNAT_BACKEND, SNAT_SERVICE};
use crate::synproxy::{self, Segment, SynCookies};
use crate::wire::{
    ethernet, icmp, icmpv6, ipv4, ipv6, proxy, udp, End, EtherType, EthernetFrame, IcmpPacket,
    Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr, TcpFlags, TcpPacket, UdpPacket,
};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most packets [`process_burst`] hashes and prefetches ahead in one window (and the
/// RX/TX burst size of the worker loop).
pub const BURST: usize = 32;

const ETH: usize = ethernet::HEADER_LEN;
/// How many packets behind the bucket prefetch the entry prefetch runs in the parse
/// pass: far enough for the buckets to have arrived.
const AHEAD: usize = 6;
/// How many packets ahead of the parse their first bytes are prefetched.
const DATA_AHEAD: usize = 4;

/// What to do with a packet after [`process`]. Four bytes, so it travels in a register:
/// a larger one (it carried the held packet's next hop) was built in memory a field at a
/// time and copied whole, a store-forwarding stall worth 5% of a packet's cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it out of this port (index into `Snapshot::ports`).
    Tx(u16),
    /// Hand it to the management thread (ARP).
    Mgmt,
    /// Rewritten for port `port`, but its next hop is not resolved yet: the management
    /// thread holds it (bounded) and sends it when the neighbor answers, so a first
    /// connection does not wait for a SYN retransmission. The next hop travels in front
    /// of the frame: [`take_held_hop`] removes it.
    Hold {
        port: u16,
    },
    Drop(DropReason),
}

/// The bytes a held packet carries in front of its frame: its next hop as an IPv6
/// address (an IPv4 one mapped, `::ffff:a.b.c.d`).
pub const HELD_HOP_LEN: usize = 16;

/// The next hop of a packet whose verdict is [`Verdict::Hold`], removed from the front of
/// its buffer (which then holds the frame alone). None if the buffer is too short.
pub fn take_held_hop<B: PacketBuf>(pkt: &mut B) -> Option<IpAddr> {
    let b: [u8; HELD_HOP_LEN] = pkt.data().get(..HELD_HOP_LEN)?.try_into().ok()?;
    pkt.adj(HELD_HOP_LEN)
        .then(|| Ipv6Addr::from(b).to_canonical())
}

/// What a worker shares with the others, read-only per packet.
pub struct Env<'a> {
    pub snap: &'a Snapshot,
    pub flows: &'a FlowTable,
    /// IPv6 flows: a table of their own (wider entries), so IPv4 flows pay nothing.
    pub flows6: &'a FlowTable<Ipv6Addr>,
    pub conns: &'a ConnCounters,
    /// The ports of IPv4 datagrams whose first fragment was seen, for their other
    /// fragments.
    pub frags: &'a FragTable,
    /// SYN cookies for nat and fnat services: on while a flood is on.
    pub syn_cookies: SynCookies,
    /// Coarse time in seconds (flow timestamps).
    pub now: u32,
}

/// What the flow steps need of an address family: its flow table, its header's hop
/// limit, NAT rewrite and tunnel header, and its lookups in the snapshot.
pub trait Ip: Family + Into<IpAddr> {
    /// The outer header a `tun` backend's packets get.
    const TUNNEL_HEADER: usize;
    fn from_ip(a: IpAddr) -> Option<Self>;
    fn table<'a>(env: &Env<'a>) -> &'a FlowTable<Self>;
    fn hop_limit(l3: &[u8]) -> u8;
    /// False (nothing changed) when the hop limit would reach 0.
    fn decrement_hop_limit(l3: &mut [u8]) -> bool;
    fn rewrite_endpoint(l3: &mut [u8], end: End, a: Self, port: u16);
    /// The address at `end` only (a later fragment: no transport header to rewrite).
    fn rewrite_addr(l3: &mut [u8], end: End, a: Self);
    /// The header without options or extension headers (SYN cookies answer only such
    /// packets), and what it and TCP's take from the MTU for an MSS.
    const HEADER_LEN: usize;
    const MSS_OVERHEAD: u16;
    /// Rewrites the packet into the bare segment `s` (see `synproxy::rebuild`).
    fn rebuild<B: PacketBuf>(pkt: &mut B, l3: usize, s: &Segment<Self>) -> bool;
    /// The identity of a datagram (IPv4's identification is 16 bits).
    fn datagram(src: Self, dst: Self, protocol: u8, ident: u32) -> DatagramId;
    /// The sender forbids fragmentation (IPv6: routers never fragment).
    fn dont_frag(l3: &[u8]) -> bool;
    /// Writes the tunnel header into `outer` for `inner` (the packet as it is).
    fn set_tunnel_header(outer: &mut [u8], inner: &[u8], src: Self, dst: Self);
    fn find(s: &Services, vip: Self, port: u16, protocol: u8) -> Option<&Service>;
    fn route(snap: &Snapshot, dst: Self) -> Option<Route<Self>>;
    fn neighbor(snap: &Snapshot, port: u16, a: Self) -> Option<MacAddr>;
    fn is_local(snap: &Snapshot, a: Self) -> bool;
    fn is_ours(snap: &Snapshot, a: Self) -> bool;
    /// The address ferrovs speaks from on a port.
    fn primary(p: &PortConf) -> Self;
    /// The PROXY v2 header's length for this family, and the header itself (client ->
    /// VIP) written into `out`.
    const PROXY_LEN: usize;
    fn write_proxy(out: &mut [u8], client: Self, cport: u16, vip: Self, vport: u16);
    /// After `n` bytes were inserted into the payload: the IP length fields (and the
    /// IPv4 header checksum) follow, and the TCP checksum is computed afresh.
    fn grew(l3: &mut [u8], n: usize);
    /// The ICMP(v6) types that quote a packet (unreachable, time exceeded; IPv6 also
    /// packet too big), and the offset of the message within the IP packet.
    fn icmp_error_types() -> &'static [u8];
    fn l4_offset(l3: &[u8]) -> usize;
    /// The quoted packet's 5-tuple (from an error message's data), with the offset of
    /// its transport header within the data.
    fn quoted(data: &[u8]) -> Option<(FlowKey<Self>, usize)>;
    /// Rewrites the quoted packet's source and destination (addresses and ports; the
    /// quoted IPv4 header checksum follows).
    fn set_quoted(data: &mut [u8], l4: usize, src: (Self, u16), dst: (Self, u16));
    /// Sets the outer source and destination and recomputes the outer checksums (IPv4
    /// header, ICMP(v6) message).
    fn set_outer(l3: &mut [u8], src: Self, dst: Self);
    fn outer_src(l3: &[u8]) -> Self;
    /// An echo request to a local address or VIP answered in place (a reply goes to the
    /// kernel where the port has an exception path).
    fn echo<B: PacketBuf>(
        env: &Env,
        c: &WorkerCounters,
        in_port: u16,
        pkt: &mut B,
        p: &Parsed<Self>,
    ) -> Verdict;
    /// Replaces a too-big tun packet by the family's "too big" error to its sender.
    fn too_big<B: PacketBuf>(
        env: &Env,
        c: &WorkerCounters,
        resolve: &mut impl FnMut(IpAddr, u16),
        pkt: &mut B,
        p: &Parsed<Self>,
        mtu: u16,
    ) -> Verdict;
}

impl Ip for Ipv4Addr {
    const TUNNEL_HEADER: usize = ipv4::HEADER_LEN;
    const PROXY_LEN: usize = proxy::V4_LEN;
    fn write_proxy(out: &mut [u8], client: Self, cport: u16, vip: Self, vport: u16) {
        proxy::write_v4(out, client, vip, cport, vport)
    }
    fn grew(l3: &mut [u8], n: usize) {
        let mut ip = Ipv4Packet::new_unchecked(&mut *l3);
        let total = ip.total_len() as usize + n;
        ip.set_total_len(total as u16);
        ip.fill_checksum();
        let (hl, src, dst) = (ip.header_len(), ip.src(), ip.dst());
        TcpPacket::new_unchecked(&mut l3[hl..total]).fill_checksum(src, dst);
    }
    #[inline(always)]
    fn from_ip(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    #[inline(always)]
    fn table<'a>(env: &Env<'a>) -> &'a FlowTable<Self> {
        env.flows
    }
    #[inline(always)]
    fn hop_limit(l3: &[u8]) -> u8 {
        Ipv4Packet::new_unchecked(l3).ttl()
    }
    #[inline(always)]
    fn decrement_hop_limit(l3: &mut [u8]) -> bool {
        Ipv4Packet::new_unchecked(l3).decrement_ttl()
    }
    #[inline(always)]
    fn rewrite_endpoint(l3: &mut [u8], end: End, a: Self, port: u16) {
        Ipv4Packet::new_unchecked(l3).rewrite_endpoint(end, a, port)
    }
    #[inline(always)]
    fn rewrite_addr(l3: &mut [u8], end: End, a: Self) {
        Ipv4Packet::new_unchecked(l3).rewrite_addr(end, a);
    }
    const HEADER_LEN: usize = ipv4::HEADER_LEN;
    const MSS_OVERHEAD: u16 = 40;
    fn rebuild<B: PacketBuf>(pkt: &mut B, l3: usize, s: &Segment) -> bool {
        synproxy::rebuild(pkt, l3, s)
    }
    #[inline(always)]
    fn datagram(src: Self, dst: Self, protocol: u8, ident: u32) -> DatagramId {
        DatagramId::v4(src, dst, protocol, ident as u16)
    }
    #[inline(always)]
    fn dont_frag(l3: &[u8]) -> bool {
        Ipv4Packet::new_unchecked(l3).dont_frag()
    }
    #[inline(always)]
    fn set_tunnel_header(outer: &mut [u8], inner: &[u8], src: Self, dst: Self) {
        Ipv4Packet::new_unchecked(outer).set_tunnel_header(
            &Ipv4Packet::new_unchecked(inner),
            src,
            dst,
        )
    }
    #[inline(always)]
    fn find(s: &Services, vip: Self, port: u16, protocol: u8) -> Option<&Service> {
        s.find(vip, port, protocol)
    }
    #[inline(always)]
    fn route(snap: &Snapshot, dst: Self) -> Option<Route<Self>> {
        snap.routes.lookup(dst)
    }
    #[inline(always)]
    fn neighbor(snap: &Snapshot, port: u16, a: Self) -> Option<MacAddr> {
        snap.neighbors.get(port, a)
    }
    #[inline(always)]
    fn is_local(snap: &Snapshot, a: Self) -> bool {
        snap.is_local(a)
    }
    #[inline(always)]
    fn is_ours(snap: &Snapshot, a: Self) -> bool {
        snap.is_ours(a)
    }
    #[inline(always)]
    fn primary(p: &PortConf) -> Self {
        p.primary_address()
    }
    fn too_big<B: PacketBuf>(
        env: &Env,
        c: &WorkerCounters,
        resolve: &mut impl FnMut(IpAddr, u16),
        pkt: &mut B,
        p: &Parsed<Self>,
        mtu: u16,
    ) -> Verdict {
        frag_needed(env, c, resolve, pkt, p, mtu)
    }
    fn echo<B: PacketBuf>(
        env: &Env,
        c: &WorkerCounters,
        in_port: u16,
        pkt: &mut B,
        p: &Parsed<Self>,
    ) -> Verdict {
        echo_reply(env, c, in_port, pkt, p.l3, p.end)
    }
    fn icmp_error_types() -> &'static [u8] {
        &[icmp::TYPE_DEST_UNREACHABLE, icmp::TYPE_TIME_EXCEEDED]
    }
    fn l4_offset(l3: &[u8]) -> usize {
        Ipv4Packet::new_unchecked(l3).header_len()
    }
    fn quoted(d: &[u8]) -> Option<(FlowKey<Self>, usize)> {
        let ip = Ipv4Packet::new_unchecked(d.get(..20)?);
        let hl = ip.header_len();
        if ip.version() != 4 || hl < 20 || d.len() < hl + 4 {
            return None;
        }
        let port = |at: usize| u16::from_be_bytes([d[at], d[at + 1]]);
        let key = FlowKey {
            protocol: ip.protocol(),
            src: ip.src(),
            src_port: port(hl),
            dst: ip.dst(),
            dst_port: port(hl + 2),
        };
        Some((key, hl))
    }
    fn set_quoted(d: &mut [u8], l4: usize, src: (Self, u16), dst: (Self, u16)) {
        let mut ip = Ipv4Packet::new_unchecked(&mut d[..l4]);
        ip.set_src(src.0);
        ip.set_dst(dst.0);
        ip.fill_checksum();
        d[l4..l4 + 2].copy_from_slice(&src.1.to_be_bytes());
        d[l4 + 2..l4 + 4].copy_from_slice(&dst.1.to_be_bytes());
    }
    fn set_outer(l3: &mut [u8], src: Self, dst: Self) {
        let mut ip = Ipv4Packet::new_unchecked(&mut *l3);
        ip.set_src(src);
        ip.set_dst(dst);
        ip.fill_checksum();
        let (hl, end) = (ip.header_len(), ip.total_len() as usize);
        IcmpPacket::new_unchecked(&mut l3[hl..end]).fill_checksum();
    }
    fn outer_src(l3: &[u8]) -> Self {
        Ipv4Packet::new_unchecked(l3).src()
    }
}

impl Ip for Ipv6Addr {
    const TUNNEL_HEADER: usize = ipv6::HEADER_LEN;
    const PROXY_LEN: usize = proxy::V6_LEN;
    fn write_proxy(out: &mut [u8], client: Self, cport: u16, vip: Self, vport: u16) {
        proxy::write_v6(out, client, vip, cport, vport)
    }
    fn grew(l3: &mut [u8], n: usize) {
        let mut ip = Ipv6Packet::new_unchecked(&mut *l3);
        let plen = ip.payload_len() as usize + n;
        ip.set_payload_len(plen as u16);
        let (src, dst) = (ip.src(), ip.dst());
        let total = ipv6::HEADER_LEN + plen;
        TcpPacket::new_unchecked(&mut l3[ipv6::HEADER_LEN..total]).fill_checksum(src, dst);
    }
    #[inline(always)]
    fn from_ip(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    #[inline(always)]
    fn table<'a>(env: &Env<'a>) -> &'a FlowTable<Self> {
        env.flows6
    }
    #[inline(always)]
    fn hop_limit(l3: &[u8]) -> u8 {
        Ipv6Packet::new_unchecked(l3).hop_limit()
    }
    #[inline(always)]
    fn decrement_hop_limit(l3: &mut [u8]) -> bool {
        Ipv6Packet::new_unchecked(l3).decrement_hop_limit()
    }
    #[inline(always)]
    fn rewrite_endpoint(l3: &mut [u8], end: End, a: Self, port: u16) {
        Ipv6Packet::new_unchecked(l3).rewrite_endpoint(end, a, port)
    }
    const HEADER_LEN: usize = ipv6::HEADER_LEN;
    const MSS_OVERHEAD: u16 = 60;
    fn rebuild<B: PacketBuf>(pkt: &mut B, l3: usize, s: &Segment<Ipv6Addr>) -> bool {
        synproxy::rebuild6(pkt, l3, s)
    }
    #[inline(always)]
    fn datagram(src: Self, dst: Self, protocol: u8, ident: u32) -> DatagramId {
        DatagramId::v6(src, dst, protocol, ident)
    }
    #[inline(always)]
    fn rewrite_addr(l3: &mut [u8], end: End, a: Self) {
        let mut ip = Ipv6Packet::new_unchecked(l3);
        match end {
            End::Src => ip.set_src(a),
            End::Dst => ip.set_dst(a),
        }
    }
    #[inline(always)]
    fn dont_frag(_: &[u8]) -> bool {
        true
    }
    #[inline(always)]
    fn set_tunnel_header(outer: &mut [u8], inner: &[u8], src: Self, dst: Self) {
        Ipv6Packet::new_unchecked(outer).set_tunnel_header(
            &Ipv6Packet::new_unchecked(inner),
            src,
            dst,
        )
    }
    #[inline(always)]
    fn find(s: &Services, vip: Self, port: u16, protocol: u8) -> Option<&Service> {
        s.find6(vip, port, protocol)
    }
    #[inline(always)]
    fn route(snap: &Snapshot, dst: Self) -> Option<Route<Self>> {
        snap.routes6.lookup(dst)
    }
    #[inline(always)]
    fn neighbor(snap: &Snapshot, port: u16, a: Self) -> Option<MacAddr> {
        snap.neighbors.get6(port, a)
    }
    #[inline(always)]
    fn is_local(snap: &Snapshot, a: Self) -> bool {
        snap.is_local6(a)
    }
    #[inline(always)]
    fn is_ours(snap: &Snapshot, a: Self) -> bool {
        snap.is_ours6(a)
    }
    #[inline(always)]
    fn primary(p: &PortConf) -> Self {
        p.primary_address6()
    }
    fn too_big<B: PacketBuf>(
        env: &Env,
        c: &WorkerCounters,
        resolve: &mut impl FnMut(IpAddr, u16),
        pkt: &mut B,
        p: &Parsed<Self>,
        mtu: u16,
    ) -> Verdict {
        packet_too_big(env, c, resolve, pkt, p, mtu)
    }
    fn echo<B: PacketBuf>(
        env: &Env,
        c: &WorkerCounters,
        in_port: u16,
        pkt: &mut B,
        p: &Parsed<Self>,
    ) -> Verdict {
        icmp6(env, c, in_port, pkt, p.l3, p.end, p.key.dst)
    }
    fn icmp_error_types() -> &'static [u8] {
        &[
            icmpv6::TYPE_DEST_UNREACHABLE,
            icmpv6::TYPE_PACKET_TOO_BIG,
            icmpv6::TYPE_TIME_EXCEEDED,
        ]
    }
    fn l4_offset(_: &[u8]) -> usize {
        ipv6::HEADER_LEN
    }
    fn quoted(d: &[u8]) -> Option<(FlowKey<Self>, usize)> {
        if d.len() < ipv6::HEADER_LEN + 4 || d[0] >> 4 != 6 {
            return None;
        }
        let ip = Ipv6Packet::new_unchecked(d);
        let at = ipv6::HEADER_LEN;
        let port = |at: usize| u16::from_be_bytes([d[at], d[at + 1]]);
        let key = FlowKey {
            protocol: ip.next_header(),
            src: ip.src(),
            src_port: port(at),
            dst: ip.dst(),
            dst_port: port(at + 2),
        };
        Some((key, at))
    }
    fn set_quoted(d: &mut [u8], l4: usize, src: (Self, u16), dst: (Self, u16)) {
        let mut ip = Ipv6Packet::new_unchecked(&mut d[..l4]);
        ip.set_src(src.0);
        ip.set_dst(dst.0);
        d[l4..l4 + 2].copy_from_slice(&src.1.to_be_bytes());
        d[l4 + 2..l4 + 4].copy_from_slice(&dst.1.to_be_bytes());
    }
    fn set_outer(l3: &mut [u8], src: Self, dst: Self) {
        let mut ip = Ipv6Packet::new_unchecked(&mut *l3);
        ip.set_src(src);
        ip.set_dst(dst);
        let end = ip.total_len();
        Icmpv6Packet::new_unchecked(&mut l3[ipv6::HEADER_LEN..end]).fill_checksum(src, dst);
    }
    fn outer_src(l3: &[u8]) -> Self {
        Ipv6Packet::new_unchecked(l3).src()
    }
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
    /// Whether the packet is a whole datagram or a fragment of one.
    pub frag: FragPart,
}

/// Which part of its datagram a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragPart {
    Whole,
    /// The first fragment (it has the transport header), with the datagram's
    /// identification.
    First(u32),
    /// A later fragment: no transport header; its ports are the first fragment's (the
    /// key's), `l4` is where its payload starts, `tcp_flags` is 0.
    Later,
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
    /// IPv6 TCP or UDP: the flow path.
    Flow6(Parsed<Ipv6Addr>),
    /// ICMPv6 (neighbor discovery for the management thread, echo answered).
    Icmp6 { l3: u16, end: u16, dst: Ipv6Addr },
    /// A later fragment of an IPv4 TCP or UDP datagram: it follows its first fragment.
    Fragment {
        l3: u16,
        l4: u16,
        end: u16,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        id: DatagramId,
    },
    /// The same for IPv6 (after a fragment header).
    Fragment6 {
        l3: u16,
        l4: u16,
        end: u16,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        protocol: u8,
        id: DatagramId,
    },
}

/// Parses a frame that arrived on a port with MAC `port_mac`: every check that needs
/// only the frame's bytes.
pub fn parse(port_mac: MacAddr, d: &[u8]) -> Result<Frame, DropReason> {
    let mut f = Err(DropReason::Malformed);
    parse_into(port_mac, d, &mut f);
    f
}

/// [`parse`] writing its result into `out`, field by field: a frame built elsewhere and
/// copied whole is read back in 16-byte pieces its narrower stores cannot forward to
/// (a store-forwarding stall, 7% of an established packet's cycles).
#[inline(always)]
fn parse_into(port_mac: MacAddr, d: &[u8], out: &mut Result<Frame, DropReason>) {
    use DropReason::*;
    macro_rules! done {
        ($v:expr) => {{
            *out = $v;
            return;
        }};
    }
    let Ok(eth) = EthernetFrame::new_checked(d) else {
        done!(Err(Malformed))
    };
    let dst_mac = eth.dst();
    // IPv6 multicast MACs (33:33:...) carry neighbor solicitations.
    let ip6_multicast = dst_mac.0[0] == 0x33 && dst_mac.0[1] == 0x33;
    if dst_mac != port_mac && !dst_mac.is_broadcast() && !ip6_multicast {
        done!(Err(NotForUs));
    }
    if eth.vlan_tci().is_some() {
        done!(Err(Vlan));
    }
    match eth.ethertype() {
        EtherType::ARP if !ip6_multicast => done!(Ok(Frame::Arp)),
        EtherType::IPV4 if dst_mac == port_mac => {}
        EtherType::IPV6 if !dst_mac.is_broadcast() => return parse6(d, ip6_multicast, out),
        EtherType::ARP | EtherType::IPV4 | EtherType::IPV6 => done!(Err(NotForUs)),
        _ => done!(Err(NotIpv4)),
    }
    let Ok(ip) = Ipv4Packet::new_checked(&d[ETH..]) else {
        done!(Err(Malformed))
    };
    let l3 = ETH as u16;
    let l4 = l3 + ip.header_len() as u16;
    let end = l3 + ip.total_len();
    let protocol = ip.protocol();
    let frag = if !ip.is_fragment() {
        FragPart::Whole
    } else if !matches!(protocol, IpProtocol::TCP | IpProtocol::UDP) {
        done!(Err(Fragment));
    } else if ip.frag_offset() != 0 {
        let (src, dst) = (ip.src(), ip.dst());
        let id = DatagramId::v4(src, dst, protocol, ip.ident());
        done!(Ok(Frame::Fragment {
            l3,
            l4,
            end,
            src,
            dst,
            protocol,
            id,
        }));
    } else {
        FragPart::First(ip.ident() as u32)
    };
    let (src_port, dst_port, tcp_flags) = match protocol {
        IpProtocol::TCP => {
            let Ok(t) = TcpPacket::new_checked(ip.payload()) else {
                done!(Err(Malformed))
            };
            (t.src_port(), t.dst_port(), t.flags().0)
        }
        // A first fragment holds the UDP header, but its length is the whole datagram's.
        IpProtocol::UDP if frag != FragPart::Whole => {
            if ip.payload().len() < udp::HEADER_LEN {
                done!(Err(Malformed));
            }
            let u = UdpPacket::new_unchecked(ip.payload());
            (u.src_port(), u.dst_port(), 0)
        }
        IpProtocol::UDP => {
            let Ok(u) = UdpPacket::new_checked(ip.payload()) else {
                done!(Err(Malformed))
            };
            (u.src_port(), u.dst_port(), 0)
        }
        // Echo requests and replies take the flow path (snat translates their identifier,
        // which plays the port's part; an echo to us is answered there).
        IpProtocol::ICMP
            if is_echo(ip.payload(), icmp::TYPE_ECHO_REQUEST, icmp::TYPE_ECHO_REPLY) =>
        {
            let (t, id) = (
                ip.payload()[0],
                u16::from_be_bytes([ip.payload()[4], ip.payload()[5]]),
            );
            echo_ports(t == icmp::TYPE_ECHO_REQUEST, id)
        }
        _ => done!(Ok(Frame::Other {
            l3,
            end,
            protocol,
            dst: ip.dst(),
        })),
    };
    *out = Ok(Frame::Flow(Parsed {
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
        frag,
    }));
}

/// True for an ICMP(v6) echo request or reply with its 8-byte header.
#[inline(always)]
fn is_echo(l4: &[u8], request: u8, reply: u8) -> bool {
    l4.len() >= 8 && (l4[0] == request || l4[0] == reply) && l4[1] == 0
}

/// The "ports" of an echo: the identifier at the client's end (a request's source, a
/// reply's destination), 0 at the other; so a reply matches its request's reverse key.
#[inline(always)]
fn echo_ports(request: bool, id: u16) -> (u16, u16, u8) {
    if request {
        (id, 0, 0)
    } else {
        (0, id, 0)
    }
}

/// The IPv6 part of [`parse`]: TCP and UDP to the flow path, ICMPv6 to its handler;
/// fragments and other extension headers are dropped. From a multicast MAC only
/// ICMPv6 (neighbor discovery) is taken.
#[inline(always)]
fn parse6(d: &[u8], multicast: bool, out: &mut Result<Frame, DropReason>) {
    use DropReason::*;
    macro_rules! done {
        ($v:expr) => {{
            *out = $v;
            return;
        }};
    }
    let Ok(ip) = Ipv6Packet::new_checked(&d[ETH..]) else {
        done!(Err(Malformed))
    };
    let l3 = ETH as u16;
    let mut l4 = l3 + ipv6::HEADER_LEN as u16;
    let end = l3 + ip.total_len() as u16;
    let mut protocol = ip.next_header();
    let mut frag = FragPart::Whole;
    if protocol == IpProtocol::IPV6_FRAGMENT && !multicast {
        // A fragment header: TCP and UDP fragments follow their first one.
        let h = ip.payload();
        if h.len() < ipv6::FRAG_HEADER_LEN {
            done!(Err(Malformed));
        }
        protocol = h[0];
        if !matches!(protocol, IpProtocol::TCP | IpProtocol::UDP) {
            done!(Err(Fragment));
        }
        let ident = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        l4 += ipv6::FRAG_HEADER_LEN as u16;
        if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 != 0 {
            let (src, dst) = (ip.src(), ip.dst());
            let id = DatagramId::v6(src, dst, protocol, ident);
            done!(Ok(Frame::Fragment6 {
                l3,
                l4,
                end,
                src,
                dst,
                protocol,
                id,
            }));
        }
        frag = FragPart::First(ident);
    }
    let l4_bytes = &d[l4 as usize..end as usize];
    let (src_port, dst_port, tcp_flags) = match protocol {
        IpProtocol::ICMPV6
            if !multicast
                && is_echo(
                    ip.payload(),
                    icmpv6::TYPE_ECHO_REQUEST,
                    icmpv6::TYPE_ECHO_REPLY,
                ) =>
        {
            let p = ip.payload();
            echo_ports(
                p[0] == icmpv6::TYPE_ECHO_REQUEST,
                u16::from_be_bytes([p[4], p[5]]),
            )
        }
        IpProtocol::ICMPV6 => done!(Ok(Frame::Icmp6 {
            l3,
            end,
            dst: ip.dst(),
        })),
        _ if multicast => done!(Err(NotForUs)),
        IpProtocol::TCP => {
            let Ok(t) = TcpPacket::new_checked(l4_bytes) else {
                done!(Err(Malformed))
            };
            (t.src_port(), t.dst_port(), t.flags().0)
        }
        // A first fragment's UDP length is the whole datagram's.
        IpProtocol::UDP if frag != FragPart::Whole => {
            if l4_bytes.len() < udp::HEADER_LEN {
                done!(Err(Malformed));
            }
            let u = UdpPacket::new_unchecked(l4_bytes);
            (u.src_port(), u.dst_port(), 0)
        }
        IpProtocol::UDP => {
            let Ok(u) = UdpPacket::new_checked(l4_bytes) else {
                done!(Err(Malformed))
            };
            (u.src_port(), u.dst_port(), 0)
        }
        IpProtocol::IPV6_FRAGMENT => done!(Err(Fragment)),
        // Hop-by-hop, routing, destination options, ... and protocols ferrovs does not
        // serve.
        0 | 43 | 51 | 60 | 135 | 139 | 140 => done!(Err(Ipv6ExtensionHeader)),
        _ => done!(Err(NoService)),
    };
    *out = Ok(Frame::Flow6(Parsed {
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
        frag,
    }));
}

/// The parse step on a buffer received on `in_port`, into `out`.
#[inline(always)]
fn parse_on<B: PacketBuf>(env: &Env, in_port: u16, pkt: &B, out: &mut Result<Frame, DropReason>) {
    match env.snap.ports.get(in_port as usize) {
        _ if !pkt.is_contiguous() => *out = Err(DropReason::MultiSegment),
        None => *out = Err(DropReason::NotForUs),
        Some(port) => parse_into(port.mac, pkt.data(), out),
    }
}

/// Processes a burst: pass 1 parses every packet (its first bytes prefetched ahead; the
/// caller prefetches the buffers' fields on receipt, `PacketBuf::prefetch_header`),
/// hashes its flow key and prefetches its flow buckets; pass 2 prefetches the flow
/// entries those buckets point to; pass 3 looks ahead for the SYNs that will make flows
/// (`look_ahead`); pass 4 runs the rest of the path on each. `out` must be at least as
/// long as `pkts`.
pub fn process_burst<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkts: &mut [B],
    out: &mut [Verdict],
) {
    for (pkts, out) in pkts.chunks_mut(BURST).zip(out.chunks_mut(BURST)) {
        let n = pkts.len().min(out.len());
        let mut frames = [Err(DropReason::Malformed); BURST];
        let mut hashes = [None; BURST];
        // Entries are prefetched from the table of the frame's family.
        let entries = |f: &Result<Frame, DropReason>, h: &mut FlowHash| match f {
            Ok(Frame::Flow6(_)) => env.flows6.prefetch_entries(h),
            _ => env.flows.prefetch_entries(h),
        };
        // The packets' first bytes a few packets ahead of the parse (from a NIC they are
        // in the last-level cache at best; from another core's ring, in its cache). The
        // buffers' own fields were asked for by the worker as the burst arrived.
        for p in pkts[..n.min(DATA_AHEAD)].iter() {
            p.prefetch_data();
        }
        for i in 0..n {
            if let Some(p) = pkts.get(i + DATA_AHEAD) {
                p.prefetch_data();
            }
            parse_on(env, in_port, &pkts[i], &mut frames[i]);
            match &frames[i] {
                Ok(Frame::Flow(p)) => {
                    let h = env.flows.hash(&p.key);
                    env.flows.prefetch(h);
                    hashes[i] = Some(h);
                }
                Ok(Frame::Flow6(p)) => {
                    let h = env.flows6.hash(&p.key);
                    env.flows6.prefetch(h);
                    hashes[i] = Some(h);
                }
                _ => {}
            }
            if let Some(j) = i.checked_sub(AHEAD) {
                if let Some(h) = &mut hashes[j] {
                    entries(&frames[j], h);
                }
            }
        }
        for j in n.saturating_sub(AHEAD)..n {
            if let Some(h) = &mut hashes[j] {
                entries(&frames[j], h);
            }
        }
        // New nat/fnat flows: their backends are chosen now, for the whole burst, so the
        // buckets of their backend-side keys are fetched while the packets before them
        // are forwarded (known only once the backend is, they missed every cache).
        let mut ahead = [None; BURST];
        if hashes[..n].iter().flatten().any(FlowHash::absent) {
            for i in 0..n {
                if !hashes[i].is_some_and(|h| h.absent()) {
                    continue;
                }
                ahead[i] = match &frames[i] {
                    Ok(Frame::Flow(p)) => look_ahead(env, &pkts[i], p),
                    Ok(Frame::Flow6(p)) => look_ahead(env, &pkts[i], p),
                    _ => None,
                };
            }
        }
        for i in 0..n {
            out[i] = dispatch(
                env,
                c,
                resolve,
                in_port,
                &mut pkts[i],
                &frames[i],
                hashes[i],
                ahead[i],
            );
        }
    }
}

/// Processes one packet received on port `in_port`, rewriting it in place.
#[inline]
pub fn process<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
) -> Verdict {
    let mut frame = Err(DropReason::Malformed);
    parse_on(env, in_port, pkt, &mut frame);
    dispatch(env, c, resolve, in_port, pkt, &frame, None, None)
}

/// Everything after the parse step; counts the drop, if any. `hash` is the flow key's
/// hash when the burst pass computed it, `ahead` what it found out for a new flow.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dispatch<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    frame: &Result<Frame, DropReason>,
    hash: Option<FlowHash>,
    ahead: Option<Ahead>,
) -> Verdict {
    // By reference: a frame is up to 64 bytes, and copies of it cost more than its use.
    let v = match *frame {
        Err(r) => Verdict::Drop(r),
        Ok(Frame::Arp) => {
            c.to_mgmt.inc();
            Verdict::Mgmt
        }
        Ok(Frame::Other {
            l3, end, protocol, ..
        }) if protocol == IpProtocol::ICMP && icmp_error::<Ipv4Addr>(pkt, l3, end) => {
            error_of_flow::<Ipv4Addr, B>(env, c, resolve, in_port, pkt, l3, end)
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
        Ok(Frame::Flow(ref p)) => flow(env, c, resolve, in_port, pkt, p, hash, ahead),
        Ok(Frame::Fragment {
            l3,
            l4,
            end,
            src,
            dst,
            protocol,
            id,
        }) => {
            let p = later_parsed(l3, l4, end, src, dst, protocol);
            later_fragment(env, c, resolve, in_port, pkt, p, id)
        }
        Ok(Frame::Fragment6 {
            l3,
            l4,
            end,
            src,
            dst,
            protocol,
            id,
        }) => {
            let p = later_parsed(l3, l4, end, src, dst, protocol);
            later_fragment(env, c, resolve, in_port, pkt, p, id)
        }
        Ok(Frame::Flow6(ref p)) => flow(env, c, resolve, in_port, pkt, p, hash, ahead),
        Ok(Frame::Icmp6 { l3, end, .. }) if icmp_error::<Ipv6Addr>(pkt, l3, end) => {
            error_of_flow::<Ipv6Addr, B>(env, c, resolve, in_port, pkt, l3, end)
        }
        Ok(Frame::Icmp6 { l3, end, dst }) => icmp6(env, c, in_port, pkt, l3, end, dst),
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
fn punt_or<A: Ip>(
    env: &Env,
    c: &WorkerCounters,
    in_port: u16,
    dst: A,
    otherwise: DropReason,
) -> Verdict {
    let kernel = env
        .snap
        .ports
        .get(in_port as usize)
        .is_some_and(|p| p.kernel);
    if kernel && A::is_local(env.snap, dst) {
        c.to_mgmt.inc();
        Verdict::Mgmt
    } else {
        Verdict::Drop(otherwise)
    }
}

/// A TCP or UDP packet: its flow if it has one, else a new one (with what the burst
/// pass found out ahead, if it did).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn flow<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    p: &Parsed<A>,
    hash: Option<FlowHash>,
    ahead: Option<Ahead>,
) -> Verdict {
    if let FragPart::First(ident) = p.frag {
        // Its datagram's later fragments will need its ports.
        let k = &p.key;
        let id = A::datagram(k.src, k.dst, k.protocol, ident);
        env.frags.remember(&id, k.src_port, k.dst_port, env.now);
    }
    // Drop Ethernet padding: from here on the frame ends where the IP packet does.
    if (p.end as usize) < pkt.data().len() && !pkt.truncate(p.end as usize) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let h = hash.unwrap_or_else(|| A::table(env).hash(&p.key));
    if let Some(v) = existing_flow(env, c, resolve, in_port, pkt, p, h) {
        return v;
    }
    new_flow(env, c, resolve, in_port, pkt, p, h, ahead)
}

/// What the burst pass found out ahead for a SYN that will most likely make a flow (its
/// key's signature is in neither bucket): its service and, for nat and fnat, the
/// backend `new_flow` would choose (index in the service's), chosen ahead with the
/// backend-side key's buckets prefetched.
#[derive(Debug, Clone, Copy)]
pub struct Ahead<'s> {
    service: &'s Service,
    backend: Option<u16>,
}

/// See [`Ahead`]. The backend is chosen ahead only where that changes nothing: not for
/// lc/wlc (their choices follow the flows made before), not while SYN cookies answer,
/// not for a packet `new_flow` drops before choosing.
#[inline(always)]
fn look_ahead<'s, A: Ip, B: PacketBuf>(env: &Env<'s>, pkt: &B, p: &Parsed<A>) -> Option<Ahead<'s>> {
    let k = &p.key;
    if !p.is_syn_only() || env.syn_cookies.active {
        return None;
    }
    let svc = A::find(&env.snap.services, k.dst, k.dst_port, k.protocol)?;
    let mut ahead = Ahead {
        service: svc,
        backend: None,
    };
    if !svc.forward.translates()
        || svc.load_aware()
        || A::hop_limit(&pkt.data()[p.l3 as usize..]) <= 1
    {
        return Some(ahead);
    }
    ahead.backend = svc.pick(env.conns, src_hash(k.src), flow_hash(k));
    let b = svc.backends.get(ahead.backend? as usize)?;
    if let Some(init) = flow_init(svc, p, b, 0) {
        let flows = A::table(env);
        flows.prefetch(flows.hash(&init.reverse_key()));
    }
    Some(ahead)
}

/// A later fragment of a datagram: it goes where its first fragment's flow goes (its
/// addresses rewritten as the flow's, its payload untouched); dropped as `fragment` when
/// the first fragment was not seen in the last seconds or made no flow.
#[inline(never)]
fn later_fragment<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    mut p: Parsed<A>,
    id: DatagramId,
) -> Verdict {
    let Some((src_port, dst_port)) = env.frags.ports(&id, env.now) else {
        return Verdict::Drop(DropReason::Fragment);
    };
    (p.key.src_port, p.key.dst_port) = (src_port, dst_port);
    if (p.end as usize) < pkt.data().len() && !pkt.truncate(p.end as usize) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let h = A::table(env).hash(&p.key);
    existing_flow(env, c, resolve, in_port, pkt, &p, h)
        .unwrap_or(Verdict::Drop(DropReason::Fragment))
}

/// A later fragment as the flow steps see it: its ports to be filled from its first
/// fragment's, no TCP flags.
#[inline(always)]
fn later_parsed<A>(l3: u16, l4: u16, end: u16, src: A, dst: A, protocol: u8) -> Parsed<A> {
    Parsed {
        l3,
        l4,
        end,
        key: FlowKey {
            protocol,
            src,
            src_port: 0,
            dst,
            dst_port: 0,
        },
        tcp_flags: 0,
        frag: FragPart::Later,
    }
}

/// A packet of a flow in the table: track the TCP state, forward it the flow's way.
/// None when there is no flow, or when a client's new SYN ended a closing one (port
/// reuse: it is scheduled afresh). A packet on a port its flow does not use is dropped;
/// a reset far from where its sender's sequence numbers stand does not end the flow:
/// forged from the wire, neither may end or steer a flow.
#[inline(always)]
pub fn existing_flow<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    p: &Parsed<A>,
    h: FlowHash,
) -> Option<Verdict> {
    let flows = A::table(env);
    let mut r = flows.lookup_hashed(&p.key, h)?;
    // Each of the flow's fields is decoded from its words where it is read (FlowFields):
    // never a decoded copy of the whole flow, which stalled on store forwarding and then
    // kept a dozen values alive, spilled to the stack.
    let from_client = r.dir == Direction::Forward;
    let expected = if from_client {
        r.client_if()
    } else {
        r.backend_if()
    };
    if expected != ANY_PORT && expected as u16 != in_port {
        return Some(Verdict::Drop(DropReason::WrongPort));
    }
    let (backend_id, translates) = (r.backend_id(), r.mode().translates());
    if r.synproxy() && r.state() == FlowState::SynSent && p.is_tcp() {
        if let Some(v) = synproxy_pending(env, c, resolve, in_port, pkt, p, &mut r, from_client) {
            return Some(v);
        }
    }
    if from_client && p.is_syn_only() && r.state().reusable() {
        if let Some(gone) = flows.remove(&r) {
            env.conns.on_end(gone.init.backend_id, gone.state);
        }
        return None;
    }
    // A reset far from where its sender's numbers stand is forwarded (the endpoint's
    // own check, RFC 5961, decides; a client answering a stale ACK must reach it) but
    // does not end the flow here.
    let mut blind_reset = false;
    if p.is_tcp() && p.frag != FragPart::Later {
        let t = TcpPacket::new_unchecked(&pkt.data()[p.l4 as usize..]);
        let seq = t.seq();
        if p.tcp_flags & TcpFlags::RST != 0 {
            blind_reset = !seq_plausible(flows.seq_hint(&r, r.dir), seq);
            if blind_reset {
                c.resets_ignored.inc();
            }
        } else {
            // The segment's end: its sequence number plus its data, SYN and FIN.
            let data = (p.end - p.l4) as usize - t.header_len().min((p.end - p.l4) as usize);
            let flags = (p.tcp_flags & TcpFlags::SYN != 0) as u32
                + (p.tcp_flags & TcpFlags::FIN != 0) as u32;
            // A bare ACK does not move the sender's numbers.
            if data as u32 + flags != 0 {
                flows.advance_seq_hint(&r, r.dir, seq.wrapping_add(data as u32 + flags));
            }
        }
        let old = r.state();
        let new = if translates {
            old.bidirectional(from_client, p.tcp_flags)
        } else {
            old.input_only(p.tcp_flags)
        };
        if new != old && !blind_reset && flows.set_state(&mut r, new) == Some(new) {
            env.conns.on_change(backend_id, old, new);
        }
    }
    flows.touch(&r, env.now);
    count(c, &r, p.len(), from_client);
    Some(if from_client {
        to_backend(env, c, resolve, pkt, p, &r)
    } else {
        to_client(env, c, resolve, pkt, p, &r)
    })
}

/// A packet with no flow (its key's hash `h`, just looked up and missed): find its
/// service, schedule a backend, create the flow (or, when the table cannot take it,
/// decide statelessly with Maglev).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn new_flow<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    p: &Parsed<A>,
    h: FlowHash,
    ahead: Option<Ahead>,
) -> Verdict {
    use DropReason::*;
    let k = &p.key;
    let svc = match ahead {
        Some(a) => Some(a.service),
        None => A::find(&env.snap.services, k.dst, k.dst_port, k.protocol),
    };
    let Some(svc) = svc else {
        return if A::is_ours(env.snap, k.dst) {
            if matches!(k.protocol, IpProtocol::ICMP | IpProtocol::ICMPV6) {
                // An echo to a local address or VIP: answered (a reply: the kernel's).
                return A::echo(env, c, in_port, pkt, p);
            }
            punt_or(env, c, in_port, k.dst, NoService)
        } else if !env.snap.snat.is_empty() {
            snat(env, c, resolve, in_port, pkt, p)
        } else {
            Verdict::Drop(NotOurs)
        };
    };
    // Every mode decrements the TTL on the way out: a packet that cannot be forwarded
    // must not create state first.
    if A::hop_limit(&pkt.data()[p.l3 as usize..]) <= 1 {
        return Verdict::Drop(TtlExceeded);
    }
    let fh = flow_hash(k);
    // The SYN's sequence number: where the client's side starts (and PROXY's base).
    let mut seq = syn_seq(pkt, p);
    // Under a flood, a nat/fnat SYN gets a cookie and no state; an ACK that returns a
    // valid cookie makes the flow (its ISN, the MSS the cookie carries).
    let cookie_svc = svc.forward.translates() && !svc.proxy && p.is_tcp();
    let mut cookie = None;
    if cookie_svc && env.syn_cookies.active && p.is_syn_only() {
        if let Some(v) = syn_cookie(env, c, in_port, pkt, p) {
            return v;
        }
    }
    if p.is_tcp() && !p.is_syn_only() && svc.forward.translates() {
        // A mid-connection segment with no flow: nat cannot translate its replies
        // (unless it returns a cookie).
        cookie = cookie_svc.then(|| cookie_ack(env, pkt, p)).flatten();
        let Some((isn, _)) = cookie else {
            return Verdict::Drop(NoFlow);
        };
        seq = isn;
    }
    if p.is_tcp() && !p.is_syn_only() && cookie.is_none() {
        // dr/tun send it where Maglev says (the backend that most likely has it).
        let Some(init) = svc.stateless(fh).and_then(|b| flow_init(svc, p, b, seq)) else {
            return Verdict::Drop(NoBackend);
        };
        c.stateless.inc();
        count(c, &init, p.len(), true);
        return to_backend(env, c, resolve, pkt, p, &init);
    }
    let chosen = match ahead.and_then(|a| a.backend) {
        Some(i) => svc.backends.get(i as usize),
        None => svc.schedule(env.conns, src_hash(k.src), fh),
    };
    let Some(mut init) = chosen.and_then(|b| flow_init(svc, p, b, seq)) else {
        return Verdict::Drop(NoBackend);
    };
    let flows = A::table(env);
    if init.reverse && ahead.is_none_or(|a| a.backend.is_none()) {
        // The backend-side key's buckets are not in any cache: ask for them now, to
        // arrive while the entry is taken and written.
        flows.prefetch(flows.hash(&init.reverse_key()));
    }
    // The flow's packets come from the client on this port and from the backend on the
    // port routed toward it.
    init.client_if = port_index(in_port);
    init.backend_if = match backend_hop(env, &init, false) {
        Some((port, ..)) => port_index(port),
        None => A::route(env.snap, init.backend).map_or(ANY_PORT, |r| port_index(r.port)),
    };
    if let Some((_, ck)) = cookie {
        (init.synproxy, init.seq_base) = (true, ck);
    }
    let mut tries = 0;
    let mut dropped_early = false;
    // The flow's key is the packet's, just looked up: the insert need not look again.
    let mut missed = Some(h).filter(|_| init.forward_key() == *k);
    loop {
        let inserted = match missed.take() {
            Some(h) => flows.insert_missed(&init, env.now, h),
            None => flows.insert(&init, env.now),
        };
        match inserted {
            Ok(Inserted::New(r)) => {
                env.conns.on_create(init.backend_id, init.state);
                c.new_flows.inc();
                c.services[svc.id as usize].connections.inc();
                c.backends[init.backend_id as usize].connections.inc();
                if init.synproxy {
                    c.syn_cookies_valid.inc();
                    flows.advance_seq_hint(&r, Direction::Forward, seq.wrapping_add(1));
                }
            }
            Ok(Inserted::Existing(r)) => init = r.init(),
            // Under pressure a half-open flow makes room (a SYN flood must not starve
            // new legitimate flows); once per packet.
            Err(InsertError::Full) if !dropped_early && (p.is_syn_only() || cookie.is_some()) => {
                dropped_early = true;
                if let Some(gone) = flows.early_drop(flows.hash(&init.forward_key())) {
                    env.conns.on_end(gone.init.backend_id, gone.state);
                    c.early_drops.inc();
                    continue;
                }
                continue;
            }
            Err(InsertError::Full | InsertError::Contended)
                if svc.forward == Forward::Fnat || cookie.is_some() =>
            {
                // fnat needs its flow to translate the replies: no stateless fallback.
                c.table_full.inc();
                return Verdict::Drop(NoFlow);
            }
            Err(InsertError::Full | InsertError::Contended) => {
                let Some(i) = svc.stateless(fh).and_then(|b| flow_init(svc, p, b, seq)) else {
                    return Verdict::Drop(NoBackend);
                };
                init = i;
                c.table_full.inc();
            }
            // fnat: that local port toward this backend is taken; try the next candidate.
            Err(InsertError::Conflict) if svc.forward == Forward::Fnat => {
                tries += 1;
                if tries >= FNAT_PORT_TRIES {
                    return Verdict::Drop(FnatPortsExhausted);
                }
                init.local_port = next_local_port(svc, init.local_port);
                continue;
            }
            Err(InsertError::Conflict) => return Verdict::Drop(FlowConflict),
        }
        break;
    }
    count(c, &init, p.len(), true);
    if init.synproxy && init.state == FlowState::SynSent {
        // The client's ACK becomes the SYN to the backend.
        if let Some(v) = syn_to_backend(pkt, p, &init, seq) {
            return v;
        }
    }
    to_backend(env, c, resolve, pkt, p, &init)
}

/// A SYN proxy flow whose backend has not answered yet. The client's packets (it thinks
/// the connection is up) send the SYN to the backend again, nothing else; the backend's
/// SYN-ACK fixes the flow's sequence offset, establishes it and is answered here with
/// the ACK that completes the backend's handshake; the backend's refusal (RST) goes to
/// the client in its cookie's numbers (None: the normal path takes it).
#[cold]
#[allow(clippy::too_many_arguments)]
fn synproxy_pending<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    p: &Parsed<A>,
    r: &mut FlowRef<A>,
    from_client: bool,
) -> Option<Verdict> {
    let flows = A::table(env);
    let f = r.init();
    let t = TcpPacket::new_unchecked(&pkt.data()[p.l4 as usize..]);
    let (seq, ack) = (t.seq(), t.ack_number());
    let rst = p.tcp_flags & TcpFlags::RST != 0;
    if from_client {
        if rst || p.frag == FragPart::Later {
            return None;
        }
        let isn = flows.seq_hint(r, Direction::Forward).wrapping_sub(1);
        if let Some(v) = syn_to_backend(pkt, p, &f, isn) {
            return Some(v);
        }
        count(c, &f, p.len(), true);
        return Some(to_backend(env, c, resolve, pkt, p, &f));
    }
    if synproxy::flags_are(p.tcp_flags, TcpFlags::SYN | TcpFlags::ACK) {
        let k = p.key;
        let offset = seq.wrapping_sub(f.seq_base);
        if flows.set_synproxy_offset(r, offset, FlowState::Established)
            == Some(FlowState::Established)
        {
            env.conns
                .on_change(f.backend_id, FlowState::SynSent, FlowState::Established);
        }
        flows.advance_seq_hint(r, Direction::Reverse, seq.wrapping_add(1));
        let seg = Segment {
            src: k.dst,
            dst: k.src,
            src_port: k.dst_port,
            dst_port: k.src_port,
            seq: ack,
            ack: seq.wrapping_add(1),
            flags: TcpFlags::ACK,
            mss: None,
            window: 65535,
        };
        if !A::rebuild(pkt, p.l3 as usize, &seg) {
            return Some(Verdict::Drop(DropReason::NoHeadroom));
        }
        synproxy::bounce(pkt);
        c.syn_proxied.inc();
        return Some(Verdict::Tx(in_port));
    }
    if rst {
        TcpPacket::new_unchecked(&mut pkt.data_mut()[p.l4 as usize..])
            .set_seq_csum(f.seq_base.wrapping_add(1));
        return None;
    }
    Some(Verdict::Drop(DropReason::NoFlow))
}

/// Answers a nat/fnat SYN with a SYN-ACK carrying a cookie, in place, out of the port
/// it came in on; no state. None (the SYN takes the normal path) with IPv4 options or
/// IPv6 extension headers.
#[cold]
fn syn_cookie<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    in_port: u16,
    pkt: &mut B,
    p: &Parsed<A>,
) -> Option<Verdict> {
    let k = p.key;
    let (l3, l4) = (p.l3 as usize, p.l4 as usize);
    if l4 - l3 != A::HEADER_LEN {
        return None;
    }
    let t = TcpPacket::new_unchecked(&pkt.data()[l4..]);
    let (isn, mss) = (t.seq(), mss_of(&t).unwrap_or(536));
    let cookie = synproxy::make(env.syn_cookies.secret, &k, isn, mss, env.now);
    let ours = env
        .snap
        .ports
        .get(in_port as usize)?
        .mtu
        .saturating_sub(A::MSS_OVERHEAD);
    let seg = Segment {
        src: k.dst,
        dst: k.src,
        src_port: k.dst_port,
        dst_port: k.src_port,
        seq: cookie,
        ack: isn.wrapping_add(1),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        mss: Some(ours),
        window: 65535,
    };
    if !A::rebuild(pkt, l3, &seg) {
        return Some(Verdict::Drop(DropReason::NoHeadroom));
    }
    synproxy::bounce(pkt);
    c.syn_cookies_sent.inc();
    Some(Verdict::Tx(in_port))
}

/// A client's ACK with no flow that returns a valid cookie: (its ISN, the cookie).
#[cold]
fn cookie_ack<A: Ip, B: PacketBuf>(env: &Env, pkt: &B, p: &Parsed<A>) -> Option<(u32, u32)> {
    let k = p.key;
    if !synproxy::flags_are(p.tcp_flags, TcpFlags::ACK) || (p.l4 - p.l3) as usize != A::HEADER_LEN {
        return None;
    }
    let t = TcpPacket::new_unchecked(&pkt.data()[p.l4 as usize..]);
    let (seq, ack) = (t.seq(), t.ack_number());
    synproxy::check(env.syn_cookies.secret, &k, seq, ack, env.now)?;
    Some((seq.wrapping_sub(1), ack.wrapping_sub(1)))
}

/// A SYN proxy flow waiting for its backend: the client's packet becomes (again) the SYN
/// to the backend: the client's ISN `isn`, the MSS its cookie carries (`seq_base` holds
/// the cookie until the backend answers). Some only when it cannot be rewritten.
fn syn_to_backend<A: Ip, B: PacketBuf>(
    pkt: &mut B,
    p: &Parsed<A>,
    f: &FlowInit<A>,
    isn: u32,
) -> Option<Verdict> {
    let k = p.key;
    let t = TcpPacket::new_unchecked(&pkt.data()[p.l4 as usize..]);
    let seg = Segment {
        src: k.src,
        dst: k.dst,
        src_port: k.src_port,
        dst_port: k.dst_port,
        seq: isn,
        ack: 0,
        flags: TcpFlags::SYN,
        mss: Some(synproxy::MSS[((f.seq_base >> 25) & 3) as usize]),
        window: t.window(),
    };
    if !A::rebuild(pkt, p.l3 as usize, &seg) {
        return Some(Verdict::Drop(DropReason::NoHeadroom));
    }
    None
}

/// A TCP segment's sequence number (0 for UDP and echo).
#[inline(always)]
fn syn_seq<A, B: PacketBuf>(pkt: &B, p: &Parsed<A>) -> u32 {
    if p.is_tcp() {
        TcpPacket::new_unchecked(&pkt.data()[p.l4 as usize..]).seq()
    } else {
        0
    }
}

/// A port's index as a flow stores it ([`ANY_PORT`] for an index it cannot hold).
#[inline(always)]
fn port_index(port: u16) -> u8 {
    u8::try_from(port).unwrap_or(ANY_PORT)
}

/// How many local ports a new fnat flow tries (each a flow-table insert whose backend-side
/// key must be free) before it is dropped as `fnat_ports_exhausted`.
const FNAT_PORT_TRIES: u32 = 8;

/// The next candidate local port after `p`, wrapping inside the service's range.
#[inline(always)]
fn next_local_port(svc: &Service, p: u16) -> u16 {
    let (lo, hi) = svc.local_ports;
    if p >= hi {
        lo
    } else {
        p + 1
    }
}

/// fnat: the local address and first candidate port of a new flow, from the flow hash:
/// flows spread over the local addresses and the port range with no shared allocator
/// (the flow table's backend-side key is the reservation). None if the service has no
/// local address of the packet's family.
#[inline(always)]
fn local_endpoint<A: Ip>(svc: &Service, fh: u64) -> Option<(A, u16)> {
    let n = svc.local_addresses.len();
    if n == 0 {
        return None;
    }
    let a = A::from_ip(svc.local_addresses[(fh % n as u64) as usize])?;
    let (lo, hi) = svc.local_ports;
    let span = (hi as u64).saturating_sub(lo as u64) + 1;
    Some((a, lo + ((fh >> 20) % span) as u16))
}

/// The flow a packet of `svc` makes with backend `b`. nat and fnat rewrite the port; fnat
/// also the source. None if the backend (or a local address) is not of the packet's
/// family (the config check refuses that).
#[inline(always)]
fn flow_init<A: Ip>(svc: &Service, p: &Parsed<A>, b: &Backend, seq: u32) -> Option<FlowInit<A>> {
    let k = &p.key;
    let (local, local_port) = if svc.forward == Forward::Fnat {
        local_endpoint(svc, flow_hash(k))?
    } else {
        (A::UNSPECIFIED, 0)
    };
    Some(FlowInit {
        protocol: k.protocol,
        client: k.src,
        client_port: k.src_port,
        vip: k.dst,
        vport: k.dst_port,
        backend: A::from_ip(b.addr)?,
        backend_port: if svc.forward.translates() {
            b.port
        } else {
            k.dst_port
        },
        service: svc.id,
        backend_id: b.id,
        mode: svc.forward,
        reverse: svc.forward.translates(),
        state: if p.is_tcp() {
            FlowState::SynSent
        } else {
            FlowState::Udp
        },
        local,
        local_port,
        proxy: svc.proxy && p.is_tcp(),
        synproxy: false,
        // The client's first data byte (its ISN + 1), where the PROXY header goes.
        seq_base: seq.wrapping_add(1),
        client_if: ANY_PORT,
        backend_if: ANY_PORT,
    })
}

/// Counts a packet of flow `f` for its service and backend (`inbound`: client -> backend).
#[inline(always)]
fn count<A>(c: &WorkerCounters, f: &impl FlowFields<A>, len: u64, inbound: bool) {
    if f.service() == SNAT_SERVICE {
        c.snat.record(len, inbound);
        return;
    }
    c.services[f.service() as usize % MAX_SERVICES].record(len, inbound);
    c.backends[f.backend_id() as usize % MAX_BACKENDS].record(len, inbound);
}

/// The egress port and next-hop MAC toward `dst`: the longest-prefix route, whose next
/// hop is `dst` itself on a connected route. An unknown MAC asks for resolution.
/// `connected_only` (dr) refuses routes through a gateway.
#[inline(always)]
fn next_hop<'s, A: Ip>(
    env: &Env<'s>,
    resolve: &mut impl FnMut(IpAddr, u16),
    dst: A,
    connected_only: bool,
) -> Result<(u16, &'s PortConf, MacAddr), DropReason> {
    match route_to(env, resolve, dst, connected_only)? {
        (port, out, Ok(mac)) => Ok((port, out, mac)),
        (_, _, Err(_)) => Err(DropReason::NoNeighbor),
    }
}

/// [`next_hop`], with an unresolved next hop as `Err(hop)` in place of the MAC (its
/// resolution asked for): the packet may still be rewritten and held.
#[inline(always)]
fn route_to<'s, A: Ip>(
    env: &Env<'s>,
    resolve: &mut impl FnMut(IpAddr, u16),
    dst: A,
    connected_only: bool,
) -> Result<(u16, &'s PortConf, Result<MacAddr, A>), DropReason> {
    let route = A::route(env.snap, dst).ok_or(DropReason::NoRoute)?;
    if connected_only && route.via.is_some() {
        return Err(DropReason::NoRoute);
    }
    let out = env
        .snap
        .ports
        .get(route.port as usize)
        .ok_or(DropReason::NoRoute)?;
    let hop = route.via.unwrap_or(dst);
    match A::neighbor(env.snap, route.port, hop) {
        Some(mac) => Ok((route.port, out, Ok(mac))),
        None => {
            resolve(hop.into(), route.port);
            Ok((route.port, out, Err(hop)))
        }
    }
}

/// The verdict for a rewritten packet: out of `port` to `mac`, or held until `hop` is
/// resolved.
#[inline(always)]
fn send_or_hold<A: Ip, B: PacketBuf>(
    pkt: &mut B,
    port: u16,
    src: MacAddr,
    mac: Result<MacAddr, A>,
) -> Verdict {
    match mac {
        Ok(mac) => {
            EthernetFrame::new_unchecked(pkt.data_mut()).set_addrs(src, mac);
            Verdict::Tx(port)
        }
        Err(hop) => {
            EthernetFrame::new_unchecked(pkt.data_mut()).set_addrs(src, MacAddr::ZERO);
            let hop = match hop.into() {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            if !pkt.prepend(HELD_HOP_LEN) {
                return Verdict::Drop(DropReason::NoHeadroom);
            }
            pkt.data_mut()[..HELD_HOP_LEN].copy_from_slice(&hop.octets());
            Verdict::Hold { port }
        }
    }
}

/// The flow's backend's port and MAC as the snapshot worked them out (None: look them
/// up; the lookup also asks for an unresolved one and refuses a gatewayed one for dr).
#[inline(always)]
fn backend_hop<'s, A: Ip>(
    env: &Env<'s>,
    f: &impl FlowFields<A>,
    dr: bool,
) -> Option<(u16, &'s PortConf, Result<MacAddr, A>)> {
    let h = env.snap.backend_hop(f.backend_id())?;
    if A::from_ip(h.addr) != Some(f.backend()) || (dr && h.via_gateway) {
        return None;
    }
    Some((h.port, env.snap.ports.get(h.port as usize)?, Ok(h.mac)))
}

/// Rewrites a client packet for its backend (nat/dr/tun) and picks the output.
#[inline(always)]
fn to_backend<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    pkt: &mut B,
    p: &Parsed<A>,
    f: &impl FlowFields<A>,
) -> Verdict {
    let dr = f.mode() == Forward::Dr;
    let (port, out, mac) = match backend_hop(env, f, dr) {
        Some(x) => x,
        None => match route_to(env, resolve, f.backend(), dr) {
            Ok(x) => x,
            Err(r) => return Verdict::Drop(r),
        },
    };
    let l3 = p.l3 as usize;
    let th = A::TUNNEL_HEADER;
    let grows = if f.mode() == Forward::Tun { th } else { 0 };
    if pkt.data().len() - l3 + grows > out.mtu as usize {
        return too_big(env, c, resolve, pkt, p, out.mtu - grows as u16);
    }
    if !A::decrement_hop_limit(&mut pkt.data_mut()[l3..]) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    match f.mode() {
        Forward::Nat => rewrite(
            &mut pkt.data_mut()[l3..],
            p,
            End::Dst,
            f.backend(),
            f.backend_port(),
        ),
        Forward::Fnat => {
            if f.proxy() && p.frag != FragPart::Whole {
                // PROXY inserts bytes and shifts sequence numbers: a fragmented segment
                // (the header in the first fragment only) cannot be.
                return Verdict::Drop(DropReason::Fragment);
            }
            let ip = &mut pkt.data_mut()[l3..];
            rewrite(ip, p, End::Dst, f.backend(), f.backend_port());
            rewrite(ip, p, End::Src, f.local(), f.local_port());
            if f.proxy() && !proxy_to_backend(pkt, p, f) {
                return Verdict::Drop(DropReason::NoHeadroom);
            }
        }
        Forward::Dr | Forward::Tun => {}
    }
    if f.synproxy() && f.state() != FlowState::SynSent && p.frag != FragPart::Later {
        // The client acknowledges the cookie's numbers; the backend, its own.
        if p.tcp_flags & TcpFlags::ACK != 0 {
            let mut t = TcpPacket::new_unchecked(&mut pkt.data_mut()[p.l4 as usize..]);
            let a = t.ack_number();
            t.set_ack_csum(a.wrapping_add(f.seq_base()));
        }
    }
    if f.mode() == Forward::Tun && !encapsulate(pkt, A::primary(out), f.backend()) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    send_or_hold(pkt, port, out.mac, mac)
}

/// tun: puts the packet's IP header inside an outer one from `src` to `backend`, the
/// Ethernet header moved in front; false without the headroom.
#[inline(always)]
fn encapsulate<A: Ip, B: PacketBuf>(pkt: &mut B, src: A, backend: A) -> bool {
    let th = A::TUNNEL_HEADER;
    if !pkt.prepend(th) {
        return false;
    }
    let d = pkt.data_mut();
    // A fixed-size move, not `copy_within` (which, left out of line, is a memmove call).
    let eth: [u8; ETH] = d[th..th + ETH].try_into().expect("ETH bytes");
    d[..ETH].copy_from_slice(&eth);
    let (head, inner) = d.split_at_mut(ETH + th);
    A::set_tunnel_header(&mut head[ETH..], inner, src, backend);
    true
}

/// A packet larger than its egress port's MTU (less what the rewrite adds): the sender
/// is told the size that fits, as a router does (ICMP "fragmentation needed", ICMPv6
/// "packet too big"), so path-MTU discovery works through ferrovs; without DF (ferrovs
/// does not fragment) it is dropped. Checked on the packet as received, so the error
/// quotes what its sender sent.
#[cold]
fn too_big<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    pkt: &mut B,
    p: &Parsed<A>,
    mtu: u16,
) -> Verdict {
    if A::dont_frag(&pkt.data()[p.l3 as usize..]) {
        A::too_big(env, c, resolve, pkt, p, mtu)
    } else {
        Verdict::Drop(DropReason::FragNeeded)
    }
}

/// NAT of one end of packet `p`: address and port, or only the address in a later
/// fragment (its payload has no transport header).
#[inline(always)]
fn rewrite<A: Ip>(l3: &mut [u8], p: &Parsed<A>, end: End, a: A, port: u16) {
    if p.frag == FragPart::Later {
        A::rewrite_addr(l3, end, a);
    } else {
        A::rewrite_endpoint(l3, end, a, port);
    }
}

/// Rewrites a NAT reply (backend -> client) back to VIP:port and routes it to the client.
#[inline(always)]
fn to_client<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    pkt: &mut B,
    p: &Parsed<A>,
    f: &impl FlowFields<A>,
) -> Verdict {
    let (port, out, mac) = match route_to(env, resolve, f.client(), false) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    if pkt.data().len() - p.l3 as usize > out.mtu as usize {
        return too_big(env, c, resolve, pkt, p, out.mtu);
    }
    let d = pkt.data_mut();
    let l3 = &mut d[p.l3 as usize..];
    if !A::decrement_hop_limit(l3) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    if f.proxy() && p.frag != FragPart::Whole {
        return Verdict::Drop(DropReason::Fragment);
    }
    if f.synproxy() && f.state() != FlowState::SynSent && p.frag != FragPart::Later {
        // The backend's numbers, as the client knows them (from its cookie).
        let mut t = TcpPacket::new_unchecked(&mut l3[(p.l4 - p.l3) as usize..]);
        let s = t.seq();
        t.set_seq_csum(s.wrapping_sub(f.seq_base()));
    }
    rewrite(l3, p, End::Src, f.vip(), f.vport());
    if f.mode() == Forward::Fnat {
        rewrite(l3, p, End::Dst, f.client(), f.client_port());
        if f.proxy() {
            proxy_to_client::<A>(&mut l3[(p.l4 - p.l3) as usize..], f.seq_base());
        }
    }
    send_or_hold(pkt, port, out.mac, mac)
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
    resolve: &mut impl FnMut(IpAddr, u16),
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

/// ICMPv6 to us: neighbor solicitations and advertisements go to the management thread
/// (answered and learned there, as ARP); echo requests to a local address or VIP are
/// answered in place; other ICMPv6 to a local address goes to the kernel where the port
/// has an exception path.
fn icmp6<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    in_port: u16,
    pkt: &mut B,
    l3: u16,
    end: u16,
    dst: Ipv6Addr,
) -> Verdict {
    let (l3, end) = (l3 as usize, end as usize);
    let d = pkt.data();
    let l4 = l3 + ipv6::HEADER_LEN;
    let Ok(ic) = Icmpv6Packet::new_checked(&d[l4..end]) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    match ic.msg_type() {
        icmpv6::TYPE_NEIGHBOR_SOLICIT | icmpv6::TYPE_NEIGHBOR_ADVERT => {
            c.to_mgmt.inc();
            return Verdict::Mgmt;
        }
        icmpv6::TYPE_ECHO_REQUEST if env.snap.is_ours6(dst) => {}
        _ if dst.is_multicast() => return Verdict::Drop(DropReason::NotForUs),
        _ if env.snap.is_ours6(dst) => return punt_or(env, c, in_port, dst, DropReason::NoService),
        _ => return Verdict::Drop(DropReason::NotOurs),
    }
    if end < d.len() && !pkt.truncate(end) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let mac = env.snap.ports[in_port as usize].mac;
    let d = pkt.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *d);
    let peer = eth.src();
    eth.set_addrs(mac, peer);
    let mut ip = Ipv6Packet::new_unchecked(&mut d[l3..]);
    ip.swap_addrs();
    ip.set_hop_limit(64);
    Icmpv6Packet::new_unchecked(&mut d[l4..end]).make_echo_reply();
    c.icmp_replies.inc();
    Verdict::Tx(in_port)
}

/// Replaces a too-big IPv6 tun packet by ICMPv6 "packet too big" (RFC 4443 3.2) to its
/// sender, quoting as much of the original as fits in the minimum MTU (1280), and routes
/// it back to the client.
fn packet_too_big<B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    pkt: &mut B,
    p: &Parsed<Ipv6Addr>,
    mtu: u16,
) -> Verdict {
    const IP: usize = ipv6::HEADER_LEN;
    const ICMP: usize = icmpv6::HEADER_LEN;
    let (l3, client) = (p.l3 as usize, p.key.src);
    let (port, out, mac) = match next_hop(env, resolve, client, false) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    // The error holds the new headers and then as much of the packet as fits in 1280
    // bytes; the packet was too big for the link, so it is longer than that.
    let quote_len = (pkt.data().len() - l3).min(1280 - IP - ICMP);
    let total = l3 + IP + ICMP + quote_len;
    if pkt.data().len() < total {
        return Verdict::Drop(DropReason::Malformed);
    }
    let d = pkt.data_mut();
    d.copy_within(l3..l3 + quote_len, l3 + IP + ICMP);
    if !pkt.truncate(total) {
        return Verdict::Drop(DropReason::Malformed);
    }
    let d = pkt.data_mut();
    let mut eth = EthernetFrame::new_unchecked(&mut *d);
    eth.set_addrs(out.mac, mac);
    eth.set_ethertype(EtherType::IPV6);
    let src = out.primary_address6();
    let mut ip = Ipv6Packet::new_unchecked(&mut d[l3..]);
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len((ICMP + quote_len) as u16);
    ip.set_next_header(IpProtocol::ICMPV6);
    ip.set_hop_limit(64);
    ip.set_src(src);
    ip.set_dst(client);
    let mut ic = Icmpv6Packet::new_unchecked(&mut d[l3 + IP..total]);
    ic.set_msg_type(icmpv6::TYPE_PACKET_TOO_BIG);
    ic.set_code(0);
    ic.set_mtu(mtu as u32);
    ic.fill_checksum(src, client);
    c.drop(DropReason::FragNeeded);
    Verdict::Tx(port)
}

/// A client number past `base` as the backend sees it: shifted by the PROXY header's
/// length `n` (the header occupies `base..base + n` of the backend's stream).
#[inline(always)]
fn shifted(x: u32, base: u32, n: u32) -> u32 {
    if (x.wrapping_sub(base) as i32) > 0 {
        x.wrapping_add(n)
    } else {
        x
    }
}

/// A backend's acknowledgement (or SACK edge) of client bytes, back in the client's
/// numbers: past the header, `n` less; inside it, the first data byte.
#[inline(always)]
fn unshifted(x: u32, base: u32, n: u32) -> u32 {
    let d = x.wrapping_sub(base);
    if (d as i32) <= 0 {
        x
    } else if d >= n {
        x.wrapping_sub(n)
    } else {
        base
    }
}

/// fnat with PROXY, client -> backend (after the address rewrite): the segment that
/// carries the client's first data byte (`seq_base`; again on a retransmission) gets the
/// PROXY v2 header before its payload; every later sequence number moves by the header's
/// length. False if there is no headroom for the header.
fn proxy_to_backend<A: Ip, B: PacketBuf>(
    pkt: &mut B,
    p: &Parsed<A>,
    f: &impl FlowFields<A>,
) -> bool {
    let n = A::PROXY_LEN;
    let (l3, l4) = (p.l3 as usize, p.l4 as usize);
    let d = pkt.data_mut();
    let t = TcpPacket::new_unchecked(&d[l4..]);
    let (seq, hl, syn) = (t.seq(), t.header_len(), t.flags().syn());
    let payload = d.len() - l4 - hl;
    if seq != f.seq_base() || payload == 0 || syn {
        TcpPacket::new_unchecked(&mut d[l4..]).set_seq_csum(shifted(seq, f.seq_base(), n as u32));
        return true;
    }
    // The first data: headers move `n` bytes to the front, the header goes between.
    if !pkt.prepend(n) {
        return false;
    }
    let d = pkt.data_mut();
    let head = l4 + hl;
    d.copy_within(n..n + head, 0);
    A::write_proxy(
        &mut d[head..head + n],
        f.client(),
        f.client_port(),
        f.vip(),
        f.vport(),
    );
    A::grew(&mut d[l3..], n);
    true
}

/// fnat with PROXY, backend -> client (after the address rewrite): acknowledgements and
/// SACK edges back into the client's numbers; a SYN-ACK's MSS lowered by the header's
/// length, so that the client's first data and the header fit one segment.
fn proxy_to_client<A: Ip>(tcp: &mut [u8], base: u32) {
    let n = A::PROXY_LEN as u32;
    let mut t = TcpPacket::new_unchecked(tcp);
    let flags = t.flags();
    if flags.ack() {
        let ack = t.ack_number();
        t.set_ack_csum(unshifted(ack, base, n));
        t.map_sack(|x| unshifted(x, base, n));
    }
    if flags.syn() {
        let mss = mss_of(&t).unwrap_or(0);
        if mss > n as u16 {
            t.clamp_mss(mss - n as u16);
        }
    }
}

/// A segment's MSS option, if it has one.
fn mss_of<T: AsRef<[u8]>>(t: &TcpPacket<T>) -> Option<u16> {
    let o = t.options();
    let mut at = 0;
    while at + 1 < o.len() {
        match o[at] {
            0 => return None,
            1 => at += 1,
            k => {
                let len = o[at + 1] as usize;
                if len < 2 || at + len > o.len() {
                    return None;
                }
                if k == crate::wire::tcp::OPT_MSS && len == 4 {
                    return Some(u16::from_be_bytes([o[at + 2], o[at + 3]]));
                }
                at += len;
            }
        }
    }
    None
}

/// A packet from a host behind ferrovs to somewhere that is neither ours nor a service:
/// source NAT when a rule covers its source and the route to its destination leaves
/// through the rule's port. The flow is an fnat flow whose "VIP" and "backend" are both
/// the destination: toward it the source becomes one of the rule's `to` addresses and a
/// free port (chosen from the flow hash, the flow table's reverse key as the
/// reservation); the replies match that key and go back to the host. TCP flows start on
/// a SYN only.
#[inline(never)]
fn snat<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    p: &Parsed<A>,
) -> Verdict {
    use DropReason::*;
    let k = &p.key;
    let Some(route) = A::route(env.snap, k.dst) else {
        return Verdict::Drop(NotOurs);
    };
    let src: IpAddr = k.src.into();
    let Some(rule) = env
        .snap
        .snat
        .iter()
        .find(|r| r.port == route.port && r.covers(src))
    else {
        return Verdict::Drop(NotOurs);
    };
    if p.is_tcp() && !p.is_syn_only() {
        return Verdict::Drop(NoFlow);
    }
    if A::hop_limit(&pkt.data()[p.l3 as usize..]) <= 1 {
        return Verdict::Drop(TtlExceeded);
    }
    let fh = flow_hash(k);
    let n = rule.to.len() as u64;
    let Some(local) = rule
        .to
        .get((fh % n.max(1)) as usize)
        .and_then(|a| A::from_ip(*a))
    else {
        return Verdict::Drop(NotOurs);
    };
    let (lo, hi) = rule.ports;
    let span = (hi as u64).saturating_sub(lo as u64) + 1;
    let mut init = FlowInit {
        protocol: k.protocol,
        client: k.src,
        client_port: k.src_port,
        vip: k.dst,
        vport: k.dst_port,
        backend: k.dst,
        backend_port: k.dst_port,
        service: SNAT_SERVICE,
        backend_id: SNAT_BACKEND,
        mode: Forward::Fnat,
        reverse: true,
        state: if p.is_tcp() {
            FlowState::SynSent
        } else {
            FlowState::Udp
        },
        local,
        local_port: lo + ((fh >> 20) % span) as u16,
        proxy: false,
        synproxy: false,
        seq_base: syn_seq(pkt, p).wrapping_add(1),
        client_if: port_index(in_port),
        backend_if: port_index(route.port),
    };
    let flows = A::table(env);
    let mut tries = 0;
    loop {
        match flows.insert(&init, env.now) {
            Ok(Inserted::New(_)) => {
                env.conns.on_create(init.backend_id, init.state);
                c.new_flows.inc();
                c.snat.connections.inc();
            }
            Ok(Inserted::Existing(r)) => init = r.init(),
            Err(InsertError::Full | InsertError::Contended) => {
                c.table_full.inc();
                return Verdict::Drop(NoFlow);
            }
            Err(InsertError::Conflict) => {
                tries += 1;
                if tries >= FNAT_PORT_TRIES {
                    return Verdict::Drop(SnatPortsExhausted);
                }
                init.local_port = if init.local_port >= hi {
                    lo
                } else {
                    init.local_port + 1
                };
                continue;
            }
        }
        break;
    }
    count(c, &init, p.len(), true);
    to_backend(env, c, resolve, pkt, p, &init)
}

/// True if the IP packet at `l3..end` is an ICMP(v6) error message of family `A` (the
/// message header is there; the quote is checked later).
fn icmp_error<A: Ip>(pkt: &impl PacketBuf, l3: u16, end: u16) -> bool {
    let d = &pkt.data()[l3 as usize..end as usize];
    let at = A::l4_offset(d);
    d.len() >= at + 8 && A::icmp_error_types().contains(&d[at])
}

/// An ICMP(v6) error about a packet of a flow follows the flow (as IPVS relays them):
/// the quoted packet, swapped, is a key of the flow. Quoted from ferrovs's side toward
/// the client (matched the client side): for nat and fnat the quote is put back as the
/// backend sent it and the error goes to the backend; for dr and tun it goes to the
/// backend as it is. Quoted from the side toward the backend or the world (matched the
/// backend side of a nat, fnat or snat flow): the quote is put back as the client sent
/// it and the error goes to the client (an error the backend itself sent comes from the
/// VIP). Other errors are handled as before (ours: to the kernel; else not ours).
fn error_of_flow<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    in_port: u16,
    pkt: &mut B,
    l3: u16,
    end: u16,
) -> Verdict {
    let (l3u, endu) = (l3 as usize, end as usize);
    let d = &pkt.data()[l3u..endu];
    let msg = A::l4_offset(d);
    let quoted = A::quoted(&d[msg + 8..]);
    let found = quoted.and_then(|(k, at)| {
        let swapped = FlowKey {
            protocol: k.protocol,
            src: k.dst,
            src_port: k.dst_port,
            dst: k.src,
            dst_port: k.src_port,
        };
        Some((A::table(env).lookup(&swapped)?, at))
    });
    let Some((r, at)) = found else {
        // Not about a flow: an error for the kernel's own sockets, or not ours.
        let dst = quoted.map(|q| q.0.src);
        return match dst {
            Some(a) if A::is_ours(env.snap, a) => {
                punt_or(env, c, in_port, a, DropReason::NoService)
            }
            _ => Verdict::Drop(DropReason::NotOurs),
        };
    };
    let f = r.init();
    let fnat = f.mode == Forward::Fnat;
    if (endu - l3u) < msg + 8 + at + 4 {
        return Verdict::Drop(DropReason::Malformed);
    }
    let (dst, quoted_src, quoted_dst) = if r.dir == Direction::Forward {
        // Toward the client went VIP -> client; the backend sent backend -> client (nat)
        // or backend -> local (fnat).
        if !f.mode.translates() {
            // dr/tun: the backend answered the client itself; hand it the error as is.
            return forward_error(env, c, resolve, pkt, l3u, &f, f.backend);
        }
        let to = if fnat {
            (f.local, f.local_port)
        } else {
            (f.client, f.client_port)
        };
        (f.backend, (f.backend, f.backend_port), to)
    } else {
        // Toward the backend (or the world, snat) went client -> backend (nat) or
        // local -> backend (fnat, snat); the client sent client -> VIP.
        (f.client, (f.client, f.client_port), (f.vip, f.vport))
    };
    let src = {
        let s = A::outer_src(&pkt.data()[l3u..]);
        if r.dir == Direction::Reverse && f.service != SNAT_SERVICE && s == f.backend {
            f.vip
        } else {
            s
        }
    };
    let data = msg + 8;
    let d = pkt.data_mut();
    A::set_quoted(&mut d[l3u + data..endu], at, quoted_src, quoted_dst);
    A::set_outer(&mut d[l3u..endu], src, dst);
    let (port, out, mac) = match next_hop(env, resolve, dst, false) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    if !A::decrement_hop_limit(&mut pkt.data_mut()[l3u..]) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    // The hop limit changed after the outer checksum: IPv4's header checksum followed
    // incrementally; ICMP's does not cover it.
    c.icmp_relayed.inc();
    EthernetFrame::new_unchecked(pkt.data_mut()).set_addrs(out.mac, mac);
    Verdict::Tx(port)
}

/// dr/tun: an error about the backend's answer to the client goes to the backend (as a
/// packet of the flow would: dr by MAC, tun in a tunnel).
fn forward_error<A: Ip, B: PacketBuf>(
    env: &Env,
    c: &WorkerCounters,
    resolve: &mut impl FnMut(IpAddr, u16),
    pkt: &mut B,
    l3: usize,
    f: &FlowInit<A>,
    backend: A,
) -> Verdict {
    let (port, out, mac) = match next_hop(env, resolve, backend, f.mode == Forward::Dr) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    if !A::decrement_hop_limit(&mut pkt.data_mut()[l3..]) {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    if f.mode == Forward::Tun && !encapsulate(pkt, A::primary(out), backend) {
        return Verdict::Drop(DropReason::NoHeadroom);
    }
    c.icmp_relayed.inc();
    EthernetFrame::new_unchecked(pkt.data_mut()).set_addrs(out.mac, mac);
    Verdict::Tx(port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;

    #[test]
    fn a_held_packet_carries_its_next_hop_of_either_family() {
        let frame: Vec<u8> = (0..60).collect();
        for hop in [
            IpAddr::from([10, 1, 0, 99]),
            "fd00:1::11".parse::<IpAddr>().unwrap(),
        ] {
            let mut b = VecBuf::new(&frame);
            let src = MacAddr([2, 0, 0, 0, 0, 1]);
            let v = match hop {
                IpAddr::V4(a) => send_or_hold(&mut b, 1, src, Err(a)),
                IpAddr::V6(a) => send_or_hold(&mut b, 1, src, Err(a)),
            };
            assert_eq!(v, Verdict::Hold { port: 1 });
            assert_eq!(b.data().len(), frame.len() + HELD_HOP_LEN);
            assert_eq!(take_held_hop(&mut b), Some(hop));
            assert_eq!(&b.data()[..6], &[0; 6], "no destination MAC yet");
            assert_eq!(&b.data()[6..12], &[2, 0, 0, 0, 0, 1]);
            assert_eq!(
                &b.data()[12..],
                &frame[12..],
                "the rest of the frame unchanged"
            );
        }
    }
}
