//! The published snapshot: everything workers need besides flows, immutable.
//!
//! The management thread builds a [`Snapshot`] off the fast path and publishes it with
//! one atomic swap ([`SnapshotCell::publish`]). A worker compares a version number once
//! per burst and, when it changed, takes the new `Arc` (the old one is freed when the
//! last worker lets go of it). Parts that change at different rates (services, routes,
//! neighbors) are separate `Arc`s, so learning a neighbor does not rebuild Maglev tables.
//!
//! Backends and services carry stable ids (assigned by the management plane and kept
//! while they exist), so flows, which store ids, keep their backend across snapshots.
#![forbid(unsafe_code)]
use crate::fastmap::FastMap;
use crate::sched::{ConnCounters, Cursor, Maglev, Sched, SchedulerKind};
use crate::wire::MacAddr;
use arc_swap::ArcSwap;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Most services a snapshot may hold; service ids are below it.
pub const MAX_SERVICES: usize = 1024;
/// Most backends over all services; backend ids (which index per-backend counters) are
/// below it.
pub const MAX_BACKENDS: usize = 4096;

crate::named_enum! {
    /// LVS forwarding mode (`services[].forward`).
    pub enum Forward {
        /// D-NAT both ways (LVS "Masq").
        Nat = "nat",
        /// Direct routing: only the destination MAC changes.
        Dr = "dr",
        /// IP-in-IP to the backend.
        Tun = "tun",
        /// Full NAT: the source becomes a local address and port too, so backends need
        /// no route back through ferrovs.
        Fnat = "fnat",
    }
}

impl Forward {
    /// ipvsadm's word for it.
    pub fn ipvs_name(self) -> &'static str {
        match self {
            Forward::Nat => "Masq",
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
            Forward::Fnat => "FullNat",
        }
    }
    /// The modes that rewrite the backend's replies (both directions in the flow table).
    pub fn translates(self) -> bool {
        matches!(self, Forward::Nat | Forward::Fnat)
    }
}

crate::named_enum! {
    /// The transport protocol of a service (`services[].protocol`).
    pub enum Protocol {
        Tcp = "tcp",
        Udp = "udp",
    }
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => crate::wire::IpProtocol::TCP,
            Protocol::Udp => crate::wire::IpProtocol::UDP,
        }
    }
    /// The service protocol of an IP protocol number, if ferrovs serves it.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            crate::wire::IpProtocol::TCP => Some(Protocol::Tcp),
            crate::wire::IpProtocol::UDP => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// A backend as the scheduler sees it: the operator's weight and the runtime's word on
/// whether it may take new flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub id: u32,
    /// Of the service VIP's family (the config check makes sure).
    pub addr: IpAddr,
    pub port: u16,
    /// The configured weight (0: drained).
    pub weight: u32,
    /// Runtime state, not configuration: false while health checks say it is down.
    pub up: bool,
}

impl Backend {
    /// The weight new flows are scheduled with: the configured one while the backend
    /// is up, 0 (no new flows, like a drain) while it is down.
    #[inline]
    pub fn effective_weight(&self) -> u32 {
        if self.up {
            self.weight
        } else {
            0
        }
    }
}

/// One virtual service with its backends and scheduler.
#[derive(Debug)]
pub struct Service {
    pub id: u16,
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: u8,
    pub forward: Forward,
    pub scheduler: SchedulerKind,
    pub backends: Box<[Backend]>,
    /// fnat: the source addresses toward backends, and the source ports used of each.
    pub local_addresses: Box<[IpAddr]>,
    pub local_ports: (u16, u16),
    /// fnat: the backend first reads a PROXY v2 header.
    pub proxy: bool,
    ids: Box<[u32]>,
    weights: Box<[u32]>,
    sched: Sched,
    /// Built for every service: the stateless decision when the flow table is full, and
    /// for dr/tun packets of connections that have no flow.
    pub maglev: Maglev,
    cursor: Arc<Cursor>,
}

/// What a service is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub id: u16,
    pub name: String,
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: u8,
    pub forward: Forward,
    pub scheduler: SchedulerKind,
    pub backends: Vec<Backend>,
    /// fnat only: local source addresses (own addresses of the backend-side port).
    pub local_addresses: Vec<IpAddr>,
    /// fnat only: the source ports used of each local address (inclusive).
    pub local_ports: (u16, u16),
    /// fnat and tcp only: a PROXY protocol v2 header before the client's first data.
    pub proxy: bool,
}

/// The source ports fnat uses of each local address.
pub const FNAT_PORTS: (u16, u16) = (1024, 65535);

/// The service id and backend id of snat flows (no service, no backend: counters of
/// their own).
pub const SNAT_SERVICE: u16 = u16::MAX;
pub const SNAT_BACKEND: u32 = MAX_BACKENDS as u32;

/// An snat rule (`snat[]`): packets from `source` leaving through `port` that are not
/// replies of a service flow get one of `to` and a port of `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnatRule {
    pub source: (IpAddr, u8),
    pub port: u16,
    pub to: Vec<IpAddr>,
    pub ports: (u16, u16),
}

impl SnatRule {
    /// True if `a` is in the rule's source prefix.
    pub fn covers(&self, a: IpAddr) -> bool {
        match (self.source.0, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => same_subnet(n, a, self.source.1),
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                n.to_bits() & mask6(self.source.1) == a.to_bits() & mask6(self.source.1)
            }
            _ => false,
        }
    }
}

/// A backend's identity for Maglev (stable across snapshots and boxes): address and
/// port; an IPv6 address is folded to 64 bits first.
pub fn backend_identity(addr: IpAddr, port: u16) -> u64 {
    match addr {
        IpAddr::V4(a) => ((a.to_bits() as u64) << 16) | port as u64,
        IpAddr::V6(a) => {
            let b = a.to_bits();
            crate::hash::identity_hash((b >> 64) as u64 ^ (b as u64).rotate_left(17), port as u64)
        }
    }
}

impl Service {
    /// Builds a service; `cursor` is the scheduler position to continue from (the
    /// previous snapshot's, for the same service).
    pub fn build(spec: ServiceSpec, cursor: Arc<Cursor>, maglev_size: usize) -> Service {
        let ids: Box<[u32]> = spec.backends.iter().map(|b| b.id).collect();
        let weights: Box<[u32]> = spec
            .backends
            .iter()
            .map(Backend::effective_weight)
            .collect();
        let idents: Vec<(u64, u32)> = spec
            .backends
            .iter()
            .map(|b| (backend_identity(b.addr, b.port), b.effective_weight()))
            .collect();
        cursor.clamp(spec.backends.len());
        Service {
            sched: Sched::new(spec.scheduler, &weights),
            maglev: Maglev::build(&idents, maglev_size),
            id: spec.id,
            name: spec.name,
            vip: spec.vip,
            port: spec.port,
            protocol: spec.protocol,
            forward: spec.forward,
            scheduler: spec.scheduler,
            backends: spec.backends.into_boxed_slice(),
            local_addresses: spec.local_addresses.into_boxed_slice(),
            local_ports: spec.local_ports,
            proxy: spec.proxy,
            ids,
            weights,
            cursor,
        }
    }

    pub fn cursor(&self) -> &Arc<Cursor> {
        &self.cursor
    }

    /// The scheduler's choice for a new flow.
    #[inline]
    pub fn schedule(
        &self,
        conns: &ConnCounters,
        src_hash: u64,
        flow_hash: u64,
    ) -> Option<&Backend> {
        self.backends
            .get(self.pick(conns, src_hash, flow_hash)? as usize)
    }
    /// [`Service::schedule`]'s choice as an index into `backends`.
    #[inline]
    pub fn pick(&self, conns: &ConnCounters, src_hash: u64, flow_hash: u64) -> Option<u16> {
        self.sched.pick(
            &self.ids,
            &self.weights,
            &self.cursor,
            conns,
            &self.maglev,
            src_hash,
            flow_hash,
        )
    }
    /// The scheduler looks at connection counts (lc, wlc): each choice depends on the
    /// flows made before it, so a burst's choices cannot be made ahead of its inserts.
    #[inline]
    pub fn load_aware(&self) -> bool {
        matches!(self.scheduler, SchedulerKind::Lc | SchedulerKind::Wlc)
    }

    /// The stateless (Maglev) choice.
    #[inline]
    pub fn stateless(&self, flow_hash: u64) -> Option<&Backend> {
        self.backends.get(self.maglev.lookup(flow_hash)? as usize)
    }
}

#[inline(always)]
pub fn service_key(vip: Ipv4Addr, port: u16, protocol: u8) -> u64 {
    ((vip.to_bits() as u64) << 24) | ((port as u64) << 8) | protocol as u64
}

/// An IPv6 service's key: VIP, port, protocol.
type ServiceKey6 = (Ipv6Addr, u16, u8);

/// All services, with their per-packet indexes (one per family).
#[derive(Debug, Default)]
pub struct Services {
    pub list: Vec<Service>,
    by_key: FastMap<u16>,
    vips: FastMap<()>,
    /// IPv6 services by (VIP, port, protocol), sorted (binary search: IPv6 services are
    /// looked up once per new flow, never per packet of a known flow).
    by_key6: Box<[(ServiceKey6, u16)]>,
    vips6: Box<[Ipv6Addr]>,
}

impl Services {
    pub fn new(list: Vec<Service>) -> Services {
        let v4 = |s: &Service| match s.vip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        };
        let v6 = |s: &Service| match s.vip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        };
        let by_key = list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((service_key(v4(s)?, s.port, s.protocol), i as u16)))
            .collect();
        let vips = list
            .iter()
            .filter_map(|s| Some((v4(s)?.to_bits() as u64, ())))
            .collect();
        let mut by_key6: Vec<_> = list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some(((v6(s)?, s.port, s.protocol), i as u16)))
            .collect();
        by_key6.sort_unstable();
        let mut vips6: Vec<Ipv6Addr> = list.iter().filter_map(v6).collect();
        vips6.sort_unstable();
        vips6.dedup();
        Services {
            list,
            by_key,
            vips,
            by_key6: by_key6.into(),
            vips6: vips6.into(),
        }
    }
    #[inline]
    pub fn find(&self, vip: Ipv4Addr, port: u16, protocol: u8) -> Option<&Service> {
        self.by_key
            .get(service_key(vip, port, protocol))
            .map(|i| &self.list[i as usize])
    }
    #[inline]
    pub fn is_vip(&self, a: Ipv4Addr) -> bool {
        self.vips.get(a.to_bits() as u64).is_some()
    }
    #[inline]
    pub fn find6(&self, vip: Ipv6Addr, port: u16, protocol: u8) -> Option<&Service> {
        let k = (vip, port, protocol);
        let i = self.by_key6.binary_search_by(|e| e.0.cmp(&k)).ok()?;
        Some(&self.list[self.by_key6[i].1 as usize])
    }
    #[inline]
    pub fn is_vip6(&self, a: Ipv6Addr) -> bool {
        self.vips6.binary_search(&a).is_ok()
    }
}

/// A port as the workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConf {
    pub name: String,
    pub mac: MacAddr,
    /// Local addresses with their prefix lengths.
    pub addresses: Vec<(Ipv4Addr, u8)>,
    /// Local IPv6 addresses with their prefix lengths.
    pub addresses6: Vec<(Ipv6Addr, u8)>,
    pub mtu: u16,
    /// The port has an exception path: what arrives for its own addresses and ferrovs
    /// does not answer itself goes to the management thread, which passes it to the
    /// kernel interface.
    pub kernel: bool,
}

impl PortConf {
    /// The address ferrovs speaks from on this port (tunnel source, ICMP errors).
    #[inline]
    pub fn primary_address(&self) -> Ipv4Addr {
        self.addresses
            .first()
            .map(|a| a.0)
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
    /// The IPv6 address ferrovs speaks from on this port (tunnel source, ICMPv6 errors).
    #[inline]
    pub fn primary_address6(&self) -> Ipv6Addr {
        self.addresses6
            .first()
            .map(|a| a.0)
            .unwrap_or(Ipv6Addr::UNSPECIFIED)
    }
}

/// Where to send a packet for a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<A = Ipv4Addr> {
    pub port: u16,
    /// None: the destination is on the port's subnet (connected route).
    pub via: Option<A>,
}

/// Longest-prefix-match routing table: one hash map per prefix length in use, probed
/// from the longest length down (at most 33 probes, usually a handful).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    by_len: Vec<(u8, FastMap<Route>)>,
    entries: Vec<(Ipv4Addr, u8, Route)>,
}

impl RouteTable {
    /// Later entries for the same prefix replace earlier ones.
    pub fn new(entries: Vec<(Ipv4Addr, u8, Route)>) -> RouteTable {
        let mut lens: Vec<u8> = entries.iter().map(|e| e.1.min(32)).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        let by_len = lens
            .iter()
            .map(|&l| {
                let m = entries
                    .iter()
                    .filter(|e| e.1.min(32) == l)
                    .map(|e| ((e.0.to_bits() & mask(l)) as u64, e.2))
                    .collect();
                (l, m)
            })
            .collect();
        RouteTable { by_len, entries }
    }
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<Route> {
        let d = dst.to_bits();
        self.by_len
            .iter()
            .find_map(|(l, m)| m.get((d & mask(*l)) as u64))
    }
    pub fn entries(&self) -> &[(Ipv4Addr, u8, Route)] {
        &self.entries
    }
}

/// The IPv6 routing table: longest prefix first, scanned in order (IPv6 routes are few;
/// an LPM over /0../128 with per-length maps is the next step if that changes).
#[derive(Debug, Clone, Default)]
pub struct RouteTable6 {
    entries: Vec<(Ipv6Addr, u8, Route<Ipv6Addr>)>,
}

impl RouteTable6 {
    /// Later entries for the same prefix replace earlier ones.
    pub fn new(entries: Vec<(Ipv6Addr, u8, Route<Ipv6Addr>)>) -> RouteTable6 {
        let mut e: Vec<(Ipv6Addr, u8, Route<Ipv6Addr>)> = Vec::new();
        for (a, l, r) in entries {
            let l = l.min(128);
            let net = Ipv6Addr::from_bits(a.to_bits() & mask6(l));
            e.retain(|x| (x.0, x.1) != (net, l));
            e.push((net, l, r));
        }
        e.sort_by_key(|x| std::cmp::Reverse(x.1));
        RouteTable6 { entries: e }
    }
    #[inline]
    pub fn lookup(&self, dst: Ipv6Addr) -> Option<Route<Ipv6Addr>> {
        let d = dst.to_bits();
        self.entries
            .iter()
            .find(|(n, l, _)| d & mask6(*l) == n.to_bits())
            .map(|e| e.2)
    }
    pub fn entries(&self) -> &[(Ipv6Addr, u8, Route<Ipv6Addr>)] {
        &self.entries
    }
}

#[inline(always)]
pub fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128) as u32)
    }
}

#[inline(always)]
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32) as u32)
    }
}

/// True if `a` and `b` are in the same `/len` subnet.
#[inline(always)]
pub fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, len: u8) -> bool {
    a.to_bits() & mask(len) == b.to_bits() & mask(len)
}

/// Resolved neighbors: (port, address) -> MAC, per family. Keyed by port as well, as a
/// kernel's neighbor table is by interface: the same address behind two ports is two
/// neighbors, and what was learned on one port never steers packets out of another.
#[derive(Debug, Clone, Default)]
pub struct Neighbors {
    /// port:16 | IPv4 address:32
    map: FastMap<MacAddr>,
    /// IPv6: sorted by (port, address), binary searched.
    map6: Box<[((u16, Ipv6Addr), MacAddr)]>,
}

impl Neighbors {
    pub fn new(entries: impl IntoIterator<Item = (u16, Ipv4Addr, MacAddr)>) -> Neighbors {
        Neighbors::dual(entries, [])
    }
    /// Both families' neighbors: (port, address, MAC).
    pub fn dual(
        v4: impl IntoIterator<Item = (u16, Ipv4Addr, MacAddr)>,
        v6: impl IntoIterator<Item = (u16, Ipv6Addr, MacAddr)>,
    ) -> Neighbors {
        let mut map6: Vec<((u16, Ipv6Addr), MacAddr)> =
            v6.into_iter().map(|(p, a, m)| ((p, a), m)).collect();
        map6.sort_by_key(|e| e.0);
        map6.dedup_by_key(|e| e.0);
        Neighbors {
            map: v4
                .into_iter()
                .map(|(p, a, m)| (Neighbors::key(p, a), m))
                .collect(),
            map6: map6.into(),
        }
    }
    #[inline(always)]
    fn key(port: u16, a: Ipv4Addr) -> u64 {
        ((port as u64) << 32) | a.to_bits() as u64
    }
    /// The MAC of `a` on port `port`.
    #[inline]
    pub fn get(&self, port: u16, a: Ipv4Addr) -> Option<MacAddr> {
        self.map.get(Neighbors::key(port, a))
    }
    #[inline]
    pub fn get6(&self, port: u16, a: Ipv6Addr) -> Option<MacAddr> {
        let i = self.map6.binary_search_by_key(&(port, a), |e| e.0).ok()?;
        Some(self.map6[i].1)
    }
    pub fn len(&self) -> usize {
        self.map.len() + self.map6.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything the workers need besides flows. Cloning copies `Arc`s only: the
/// management thread derives a new snapshot from the current one, replacing a part.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub version: u64,
    pub services: Arc<Services>,
    pub ports: Arc<Vec<PortConf>>,
    /// Local address -> port index.
    pub local: Arc<FastMap<u16>>,
    pub routes: Arc<RouteTable>,
    pub routes6: Arc<RouteTable6>,
    pub neighbors: Arc<Neighbors>,
    /// Source NAT for the backends' own traffic (`snat`).
    pub snat: Arc<Vec<SnatRule>>,
    /// Each backend's egress port and next-hop MAC, worked out from the routes and
    /// neighbors above when the snapshot is published ([`SnapshotCell::publish`]), so
    /// that a flow's packets to its backend skip both lookups.
    pub backend_hops: Arc<BackendHops>,
}

/// Where a backend's packets leave: worked out once per snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendHop {
    /// The backend's address (a flow's backend must match it to use the hop).
    pub addr: IpAddr,
    pub port: u16,
    pub mac: MacAddr,
    /// The route to the backend goes through a gateway (dr refuses such backends).
    pub via_gateway: bool,
}

/// [`BackendHop`]s by backend id, with the identity of the tables they were read from:
/// a snapshot made by copying another and replacing its routes, neighbors or ports
/// without publishing it does not use hops that no longer hold.
#[derive(Debug, Clone, Default)]
pub struct BackendHops {
    by_id: Vec<Option<BackendHop>>,
    from: [usize; 4],
}

impl BackendHops {
    /// The hops of every backend of `s`'s services whose next hop is resolved.
    pub fn of(s: &Snapshot) -> BackendHops {
        let mut by_id: Vec<Option<BackendHop>> = Vec::new();
        for b in s.services.list.iter().flat_map(|svc| svc.backends.iter()) {
            let found = match b.addr {
                IpAddr::V4(a) => s.routes.lookup(a).and_then(|r| {
                    let hop = r.via.unwrap_or(a);
                    Some((r.port, s.neighbors.get(r.port, hop)?, r.via.is_some()))
                }),
                IpAddr::V6(a) => s.routes6.lookup(a).and_then(|r| {
                    let hop = r.via.unwrap_or(a);
                    Some((r.port, s.neighbors.get6(r.port, hop)?, r.via.is_some()))
                }),
            };
            let Some((port, mac, via_gateway)) = found else {
                continue;
            };
            let i = b.id as usize;
            if by_id.len() <= i {
                by_id.resize(i + 1, None);
            }
            by_id[i] = Some(BackendHop {
                addr: b.addr,
                port,
                mac,
                via_gateway,
            });
        }
        BackendHops {
            by_id,
            from: BackendHops::identity(s),
        }
    }
    fn identity(s: &Snapshot) -> [usize; 4] {
        [
            Arc::as_ptr(&s.routes) as usize,
            Arc::as_ptr(&s.routes6) as usize,
            Arc::as_ptr(&s.neighbors) as usize,
            Arc::as_ptr(&s.ports) as usize,
        ]
    }
    /// Whether these hops were worked out from `s`'s tables. Field by field (checked per
    /// packet: no array of `s`'s pointers built on the stack to compare).
    #[inline(always)]
    fn made_from(&self, s: &Snapshot) -> bool {
        let f = &self.from;
        f[0] == Arc::as_ptr(&s.routes) as usize
            && f[1] == Arc::as_ptr(&s.routes6) as usize
            && f[2] == Arc::as_ptr(&s.neighbors) as usize
            && f[3] == Arc::as_ptr(&s.ports) as usize
    }
}

impl Snapshot {
    /// Backend `id`'s hop, if it is resolved and still holds for this snapshot's tables.
    #[inline(always)]
    pub fn backend_hop(&self, id: u32) -> Option<&BackendHop> {
        let h = &self.backend_hops;
        if !h.made_from(self) {
            return None;
        }
        h.by_id.get(id as usize)?.as_ref()
    }
    /// Works out [`Snapshot::backend_hops`] for the current tables.
    pub fn resolve_backend_hops(&mut self) {
        self.backend_hops = Arc::new(BackendHops::of(self));
    }
    /// True if `a` is a local address of some port (not a VIP).
    #[inline]
    pub fn is_local(&self, a: Ipv4Addr) -> bool {
        self.local.get(a.to_bits() as u64).is_some()
    }
    /// True if `a` is a local address of any port or a VIP.
    #[inline]
    pub fn is_ours(&self, a: Ipv4Addr) -> bool {
        self.local.get(a.to_bits() as u64).is_some() || self.services.is_vip(a)
    }
    /// True if `a` is a local IPv6 address of some port (not a VIP).
    #[inline]
    pub fn is_local6(&self, a: Ipv6Addr) -> bool {
        self.ports
            .iter()
            .any(|p| p.addresses6.iter().any(|x| x.0 == a))
    }
    /// True if `a` is a local IPv6 address of any port or an IPv6 VIP.
    #[inline]
    pub fn is_ours6(&self, a: Ipv6Addr) -> bool {
        self.is_local6(a) || self.services.is_vip6(a)
    }
    /// The local-address index for a set of ports.
    pub fn local_index(ports: &[PortConf]) -> FastMap<u16> {
        ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.addresses
                    .iter()
                    .map(move |(a, _)| (a.to_bits() as u64, i as u16))
            })
            .collect()
    }
}

/// Where the current snapshot is published.
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    version: AtomicU64,
}

impl SnapshotCell {
    pub fn new(mut first: Snapshot) -> SnapshotCell {
        first.resolve_backend_hops();
        let v = first.version;
        SnapshotCell {
            current: ArcSwap::from_pointee(first),
            version: AtomicU64::new(v),
        }
    }
    /// Publishes `s` with the next version number; returns that version.
    pub fn publish(&self, mut s: Snapshot) -> u64 {
        let v = self.version.load(Ordering::Relaxed) + 1;
        s.version = v;
        s.resolve_backend_hops();
        self.current.store(Arc::new(s));
        self.version.store(v, Ordering::Release);
        v
    }
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
    #[inline(always)]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// A worker's view: the snapshot it uses for the current burst.
pub struct SnapshotReader {
    snap: Arc<Snapshot>,
}

impl SnapshotReader {
    pub fn new(cell: &SnapshotCell) -> SnapshotReader {
        SnapshotReader { snap: cell.load() }
    }
    /// Picks up the newest snapshot if there is one (once per burst: one shared load).
    #[inline(always)]
    pub fn refresh(&mut self, cell: &SnapshotCell) -> &Arc<Snapshot> {
        if cell.version() != self.snap.version {
            self.snap = cell.load();
        }
        &self.snap
    }
    pub fn get(&self) -> &Arc<Snapshot> {
        &self.snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn spec(id: u16, n: usize) -> ServiceSpec {
        ServiceSpec {
            id,
            name: format!("s{id}"),
            vip: ip("203.0.113.10").into(),
            port: 80 + id,
            protocol: 6,
            forward: Forward::Nat,
            scheduler: SchedulerKind::Rr,
            local_addresses: vec![],
            local_ports: FNAT_PORTS,
            proxy: false,
            backends: (0..n)
                .map(|i| Backend {
                    id: i as u32,
                    addr: Ipv4Addr::new(10, 1, 0, 10 + i as u8).into(),
                    port: 8080,
                    weight: 1,
                    up: true,
                })
                .collect(),
        }
    }

    #[test]
    fn service_lookup() {
        let s = Services::new(vec![
            Service::build(spec(0, 2), Default::default(), 251),
            Service::build(spec(1, 1), Default::default(), 251),
        ]);
        assert_eq!(s.find(ip("203.0.113.10"), 80, 6).unwrap().name, "s0");
        assert_eq!(s.find(ip("203.0.113.10"), 81, 6).unwrap().name, "s1");
        assert!(s.find(ip("203.0.113.10"), 80, 17).is_none());
        assert!(s.find(ip("203.0.113.11"), 80, 6).is_none());
        assert!(s.is_vip(ip("203.0.113.10")) && !s.is_vip(ip("203.0.113.11")));
    }

    #[test]
    fn lpm() {
        let r = |port| Route { port, via: None };
        let t = RouteTable::new(vec![
            (
                ip("0.0.0.0"),
                0,
                Route {
                    port: 0,
                    via: Some(ip("203.0.113.1")),
                },
            ),
            (ip("10.1.0.0"), 24, r(1)),
            (
                ip("10.8.0.0"),
                16,
                Route {
                    port: 1,
                    via: Some(ip("10.1.0.254")),
                },
            ),
            (ip("10.8.3.0"), 24, r(2)),
        ]);
        assert_eq!(t.lookup(ip("10.1.0.77")), Some(r(1)));
        assert_eq!(
            t.lookup(ip("10.8.9.1")).unwrap().via,
            Some(ip("10.1.0.254"))
        );
        assert_eq!(t.lookup(ip("10.8.3.1")), Some(r(2)));
        assert_eq!(
            t.lookup(ip("8.8.8.8")).unwrap().via,
            Some(ip("203.0.113.1"))
        );
        assert!(RouteTable::new(vec![(ip("10.0.0.0"), 8, r(0))])
            .lookup(ip("11.0.0.1"))
            .is_none());
        assert_eq!(mask(0), 0);
        assert_eq!(mask(32), u32::MAX);
    }

    #[test]
    fn a_down_backend_gets_no_new_flows() {
        let conns = ConnCounters::default();
        let mut sp = spec(0, 2);
        sp.scheduler = SchedulerKind::Mh;
        sp.backends[0].up = false;
        let s = Service::build(sp, Default::default(), 251);
        assert_eq!(s.backends[0].weight, 1, "the configured weight is kept");
        for h in 0..200u64 {
            let h = crate::hash::identity_hash(h, 9);
            assert_eq!(s.schedule(&conns, h, h).unwrap().id, 1);
            assert_eq!(s.stateless(h).unwrap().id, 1);
        }
    }

    #[test]
    fn rr_position_survives_rebuild() {
        let conns = ConnCounters::default();
        let cursor: Arc<Cursor> = Default::default();
        let a = Service::build(spec(0, 3), cursor.clone(), 251);
        assert_eq!(a.schedule(&conns, 0, 0).unwrap().id, 1);
        let b = Service::build(spec(0, 3), a.cursor().clone(), 251);
        assert_eq!(
            b.schedule(&conns, 0, 0).unwrap().id,
            2,
            "rr continues, not restarts"
        );
    }

    /// Readers hammer the snapshot while a writer publishes; every snapshot a reader sees
    /// is whole (its parts agree with its version).
    #[test]
    fn readers_never_see_half_built_snapshots() {
        let mk = |v: u64| {
            let n = (v % 5) as usize + 1;
            let mut s = spec(0, n);
            s.port = v as u16;
            Snapshot {
                version: 0,
                services: Arc::new(Services::new(vec![Service::build(
                    s,
                    Default::default(),
                    251,
                )])),
                ports: Arc::new(vec![PortConf {
                    name: format!("p{v}"),
                    mac: MacAddr::ZERO,
                    addresses: vec![],
                    addresses6: vec![],
                    mtu: 1500,
                    kernel: false,
                }]),
                ..Default::default()
            }
        };
        let cell = Arc::new(SnapshotCell::new(mk(0)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cell, stop) = (cell.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut r = SnapshotReader::new(&cell);
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let s = r.refresh(&cell);
                        let svc = &s.services.list[0];
                        let v = svc.port as u64;
                        assert_eq!(s.ports[0].name, format!("p{v}"));
                        assert_eq!(svc.backends.len(), (v % 5) as usize + 1);
                        assert!(s.services.find(ip("203.0.113.10"), svc.port, 6).is_some());
                        assert!(s.version >= seen);
                        seen = s.version;
                    }
                    seen
                })
            })
            .collect();
        for v in 1..2000u64 {
            let mut s = mk(v);
            s.version = 0;
            cell.publish(s);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(cell.version(), 1999);
    }

    /// A backend's hop is its route's port and its next hop's MAC; an unresolved one has
    /// none; and a snapshot whose neighbors were replaced without publishing does not
    /// use the old hops.
    #[test]
    fn backend_hops_follow_routes_and_neighbors() {
        use crate::fixture;
        let be = ip("10.1.0.10");
        let far = ip("198.51.100.7");
        let svc = fixture::spec(
            0,
            "web",
            ip("203.0.113.10"),
            80,
            6,
            Forward::Nat,
            SchedulerKind::Rr,
            0,
            &[(be, 80, 1), (far, 80, 1), (ip("10.1.0.99"), 80, 1)],
        );
        let snap = fixture::snapshot(
            fixture::ports(fixture::WAN_MAC, fixture::LAN_MAC),
            vec![svc],
            &[be],
            251,
        );
        let hop = *snap.backend_hop(0).expect("resolved on lan");
        assert_eq!(
            (hop.addr, hop.port, hop.via_gateway),
            (be.into(), fixture::LAN, false)
        );
        assert_eq!(hop.mac, fixture::backend_mac(be));
        let gw = snap.backend_hop(1).expect("through the gateway");
        assert_eq!(
            (gw.port, gw.mac, gw.via_gateway),
            (fixture::WAN, fixture::GATEWAY_MAC, true)
        );
        assert!(snap.backend_hop(2).is_none(), "not resolved");
        let copy = Snapshot {
            neighbors: Arc::new(Neighbors::default()),
            ..snap.clone()
        };
        assert!(copy.backend_hop(0).is_none(), "made from other neighbors");
        let cell = SnapshotCell::new(snap.clone());
        cell.publish(copy);
        assert!(
            cell.load().backend_hop(0).is_none(),
            "published: worked out afresh"
        );
    }
}
