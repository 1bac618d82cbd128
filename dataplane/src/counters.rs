//! Per-worker counters: written only by their worker (plain load + store, no atomic
//! read-modify-write, no shared cache line), read and summed by the management thread.
use crate::snapshot::{MAX_BACKEND_IDS, MAX_SERVICES};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a packet was not forwarded. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Destination MAC is neither the port's nor broadcast (or broadcast non-ARP).
    NotForUs,
    /// Anything the wire layer rejects (truncated, bad lengths).
    Malformed,
    /// Chained mbufs: ferrovs parses single-segment packets only.
    MultiSegment,
    /// 802.1Q-tagged frames (VLANs are not configured on ports).
    Vlan,
    /// EtherType other than IPv4 and ARP.
    NotIpv4,
    /// IPv4 fragments (not reassembled).
    Fragment,
    /// TTL would reach 0.
    TtlExceeded,
    /// Addressed to us (a local address or VIP) on a port/protocol with no service, or
    /// an IP protocol ferrovs does not serve.
    NoService,
    /// Not addressed to any local address or VIP.
    NotOurs,
    /// NAT: a TCP segment other than SYN with no flow (IPVS's default).
    NoFlow,
    /// Every backend of the service is drained or there is none.
    NoBackend,
    /// NAT: the backend-side 5-tuple belongs to another flow.
    FlowConflict,
    /// No route to the next hop (or a dr backend not on a connected subnet).
    NoRoute,
    /// Next hop's MAC unknown: resolution asked for, packet dropped.
    NoNeighbor,
    /// The queue to the management thread was full.
    MgmtQueueFull,
    /// The device did not accept the packet.
    TxFull,
    /// No headroom for the tunnel header.
    NoHeadroom,
    /// tun: too big for the egress MTU with DF set; ICMP frag-needed sent instead.
    FragNeeded,
}

impl DropReason {
    pub const COUNT: usize = 18;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NotForUs,
        DropReason::Malformed,
        DropReason::MultiSegment,
        DropReason::Vlan,
        DropReason::NotIpv4,
        DropReason::Fragment,
        DropReason::TtlExceeded,
        DropReason::NoService,
        DropReason::NotOurs,
        DropReason::NoFlow,
        DropReason::NoBackend,
        DropReason::FlowConflict,
        DropReason::NoRoute,
        DropReason::NoNeighbor,
        DropReason::MgmtQueueFull,
        DropReason::TxFull,
        DropReason::NoHeadroom,
        DropReason::FragNeeded,
    ];
    pub fn name(self) -> &'static str {
        match self {
            DropReason::NotForUs => "not_for_us",
            DropReason::Malformed => "malformed",
            DropReason::MultiSegment => "multi_segment",
            DropReason::Vlan => "vlan",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::Fragment => "fragment",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoService => "no_service",
            DropReason::NotOurs => "not_ours",
            DropReason::NoFlow => "no_flow",
            DropReason::NoBackend => "no_backend",
            DropReason::FlowConflict => "flow_conflict",
            DropReason::NoRoute => "no_route",
            DropReason::NoNeighbor => "no_neighbor",
            DropReason::MgmtQueueFull => "mgmt_queue_full",
            DropReason::TxFull => "tx_full",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::FragNeeded => "frag_needed",
        }
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
    /// TSC cycles spent processing bursts with packets, and in total.
    pub busy_cycles: Counter,
    pub total_cycles: Counter,
    pub loops: Counter,
    pub services: Box<[Traffic]>,
    pub backends: Box<[Traffic]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            rx: Counter::default(),
            tx: Counter::default(),
            drops: Default::default(),
            new_flows: Counter::default(),
            table_full: Counter::default(),
            stateless: Counter::default(),
            to_mgmt: Counter::default(),
            icmp_replies: Counter::default(),
            busy_cycles: Counter::default(),
            total_cycles: Counter::default(),
            loops: Counter::default(),
            services: (0..MAX_SERVICES).map(|_| Traffic::default()).collect(),
            backends: (0..MAX_BACKEND_IDS).map(|_| Traffic::default()).collect(),
        }
    }
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
