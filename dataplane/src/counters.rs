//! Per-worker counters: written only by their worker (plain load + store, no atomic
//! read-modify-write, no shared cache line), read and summed by the management thread.
#![forbid(unsafe_code)]
use crate::snapshot::{MAX_BACKENDS, MAX_SERVICES};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

crate::named_enum! {
    /// Why a packet was not forwarded. Every drop is counted under exactly one reason;
    /// the names are the `reason` label of `ferrovs_drops_total`.
    pub enum DropReason {
        /// Destination MAC is neither the port's nor broadcast (or broadcast non-ARP).
        NotForUs = "not_for_us",
        /// Anything the wire layer rejects (truncated, bad lengths).
        Malformed = "malformed",
        /// Chained mbufs: ferrovs parses single-segment packets only.
        MultiSegment = "multi_segment",
        /// 802.1Q-tagged frames (VLANs are not configured on ports).
        Vlan = "vlan",
        /// EtherType other than IPv4, IPv6 and ARP (the name predates IPv6).
        NotIpv4 = "not_ipv4",
        /// IPv4 fragments and IPv6 packets with a fragment header (not reassembled).
        Fragment = "fragment",
        /// IPv6 with an extension header before the transport header (hop-by-hop,
        /// routing, destination options, ...): not walked, never forwarded.
        Ipv6ExtensionHeader = "ipv6_extension_header",
        /// TTL (IPv6: hop limit) would reach 0.
        TtlExceeded = "ttl_exceeded",
        /// Addressed to us (a local address or VIP) on a port/protocol with no service, or
        /// an IP protocol ferrovs does not serve.
        NoService = "no_service",
        /// Not addressed to any local address or VIP.
        NotOurs = "not_ours",
        /// NAT: a TCP segment other than SYN with no flow (IPVS's default).
        NoFlow = "no_flow",
        /// Every backend of the service is drained or there is none.
        NoBackend = "no_backend",
        /// NAT: the backend-side 5-tuple belongs to another flow.
        FlowConflict = "flow_conflict",
        /// No route to the next hop (or a dr backend not on a connected subnet).
        NoRoute = "no_route",
        /// Next hop's MAC unknown: resolution asked for, packet dropped.
        NoNeighbor = "no_neighbor",
        /// The queue to the management thread was full.
        MgmtQueueFull = "mgmt_queue_full",
        /// The device did not accept the packet.
        TxFull = "tx_full",
        /// No headroom for the tunnel header.
        NoHeadroom = "no_headroom",
        /// tun: too big for the egress MTU with DF set (IPv6: always); ICMP frag-needed
        /// (ICMPv6 packet too big) sent instead.
        FragNeeded = "frag_needed",
        /// fnat: no free local port toward the backend (every one tried was in use).
        FnatPortsExhausted = "fnat_ports_exhausted",
        /// snat: no free port of the rule's `to` addresses toward that destination.
        SnatPortsExhausted = "snat_ports_exhausted",
        /// A packet of a flow on a port the flow does not use (the client's packets come in
        /// where its first one did, the backend's where the route toward it points).
        WrongPort = "wrong_port",
    }
}

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        // Single writer: load + store is enough and avoids a locked instruction.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Traffic counters of a service or a backend.
#[derive(Debug, Default)]
pub struct Traffic {
    pub connections: Counter,
    pub packets_in: Counter,
    pub packets_out: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl Traffic {
    /// Counts one packet of `len` bytes; `inbound` is client -> backend.
    #[inline(always)]
    pub fn record(&self, len: u64, inbound: bool) {
        let (p, b) = if inbound {
            (&self.packets_in, &self.bytes_in)
        } else {
            (&self.packets_out, &self.bytes_out)
        };
        p.inc();
        b.add(len);
    }
}

/// Everything one worker counts.
#[derive(Debug)]
pub struct WorkerCounters {
    pub rx: Counter,
    pub tx: Counter,
    pub drops: [Counter; DropReason::COUNT],
    pub new_flows: Counter,
    /// New flows decided statelessly because the table was full (or contended).
    pub table_full: Counter,
    /// dr/tun packets without a flow forwarded by the Maglev table.
    pub stateless: Counter,
    pub to_mgmt: Counter,
    pub icmp_replies: Counter,
    /// ICMP(v6) errors about a flow's packets relayed to the other side of the flow.
    pub icmp_relayed: Counter,
    /// Half-open flows removed to make room for a new one (the table was full).
    pub early_drops: Counter,
    /// TCP resets forwarded without ending their flow: their sequence number was far
    /// from where the sender's stand (a blind forgery, or a reset answering a stale ACK).
    pub resets_ignored: Counter,
    /// SYN cookies: SYN-ACKs sent with a cookie (no state), client ACKs whose cookie
    /// made a flow, and backend handshakes completed by the SYN proxy.
    pub syn_cookies_sent: Counter,
    pub syn_cookies_valid: Counter,
    pub syn_proxied: Counter,
    /// Packets handed to the management thread to wait for their next hop's MAC.
    pub held: Counter,
    /// TSC cycles spent processing bursts with packets, and in total.
    pub busy_cycles: Counter,
    pub total_cycles: Counter,
    pub loops: Counter,
    /// By service and backend id (fixed sizes: an id is reduced by a mask, not divided).
    pub services: Box<[Traffic; MAX_SERVICES]>,
    pub backends: Box<[Traffic; MAX_BACKENDS]>,
    /// snat: the backends' own traffic (out: backend -> world, in: the replies).
    pub snat: Traffic,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            rx: Counter::default(),
            tx: Counter::default(),
            drops: Default::default(),
            new_flows: Counter::default(),
            icmp_relayed: Counter::default(),
            early_drops: Counter::default(),
            resets_ignored: Counter::default(),
            syn_cookies_sent: Counter::default(),
            syn_cookies_valid: Counter::default(),
            syn_proxied: Counter::default(),
            held: Counter::default(),
            snat: Traffic::default(),
            table_full: Counter::default(),
            stateless: Counter::default(),
            to_mgmt: Counter::default(),
            icmp_replies: Counter::default(),
            busy_cycles: Counter::default(),
            total_cycles: Counter::default(),
            loops: Counter::default(),
            services: traffic_array(),
            backends: traffic_array(),
        }
    }
}

/// `N` zeroed traffic counters, on the heap.
fn traffic_array<const N: usize>() -> Box<[Traffic; N]> {
    let v: Box<[Traffic]> = (0..N).map(|_| Traffic::default()).collect();
    v.try_into().expect("N counters")
}

impl WorkerCounters {
    #[inline(always)]
    pub fn drop(&self, r: DropReason) {
        self.drops[r as usize].inc();
    }
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
}
