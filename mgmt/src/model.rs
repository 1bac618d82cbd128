//! The REST API's JSON, as types: the daemon builds its answers from these, and the
//! OpenAPI description (`GET /api/v1/openapi.json`, `docs/openapi.json`) is generated
//! from the same types, so the two cannot drift.
#![forbid(unsafe_code)]
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Traffic counters of a service or a backend, monotonic from start-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Traffic {
    /// Flows created.
    pub connections: u64,
    /// Client -> backend.
    pub packets_in: u64,
    /// Backend -> client (nat only).
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackendView {
    pub address: String,
    pub port: u16,
    /// The configured weight (0: drained).
    pub weight: u32,
    /// Established flows (ipvsadm's ActiveConn).
    pub active_connections: u32,
    /// Other flows (ipvsadm's InActConn).
    pub inactive_connections: u32,
    /// up | down | unchecked (the service has no health_check)
    pub health: String,
    /// Seconds since the health last changed (or checking began); null when unchecked.
    pub health_since: Option<u64>,
    /// The last failed probe's reason, if any.
    pub health_last_error: Option<String>,
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// A checked backend (`GET /api/v1/health`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthRow {
    pub service: String,
    /// address:port
    pub backend: String,
    /// up | down
    pub health: String,
    /// Seconds since the health last changed (or checking began).
    pub since: u64,
    pub last_error: Option<String>,
    pub probes_ok: u64,
    pub probes_failed: u64,
}

/// An snat rule (`GET /api/v1/snat`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnatView {
    /// The source prefix.
    pub source: String,
    pub port: String,
    pub port_range: String,
    pub to: Vec<SnatToView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnatToView {
    pub address: String,
    /// Flows translated to this address now (each holds one of its ports toward one
    /// destination).
    pub ports_in_use: u64,
    /// Ports of the range not in use toward any destination: a lower bound (a port in
    /// use toward one destination is free toward the others).
    pub ports_free: u64,
}

/// `GET /api/v1/bgp`: the BGP peers and what is announced to them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BgpView {
    pub peers: Vec<BgpPeerView>,
    /// The announced host routes (`203.0.113.10/32`).
    pub announced: Vec<String>,
    /// Configured VIPs that are not announced (no live backend, or the daemon is
    /// stopping, or BIRD is not running).
    pub withdrawn: Vec<String>,
    pub local_as: u32,
    pub router_id: String,
    /// BIRD runs and answers on its control socket.
    pub bird_running: bool,
    /// Times BIRD was started again after it died.
    pub bird_restarts: u64,
    /// The last problem with BIRD, while it lasts.
    pub last_error: Option<String>,
    /// The daemon is stopping: every VIP is withdrawn, forwarding goes on for
    /// `withdraw_grace_s`.
    pub stopping: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BgpPeerView {
    pub address: String,
    pub remote_as: u32,
    /// The session's state as BIRD reports it: Established, Active, Connect, Idle, ...
    /// (`unknown` while BIRD does not answer).
    pub state: String,
    /// The rest of BIRD's info (a last error, say).
    pub info: String,
    /// Seconds since the state last changed, if BIRD says.
    pub since: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceView {
    pub name: String,
    pub vip: String,
    pub port: u16,
    /// tcp | udp
    pub protocol: String,
    /// rr | wrr | lc | wlc | sh | mh
    pub scheduler: String,
    /// nat | dr | tun | fnat
    pub forward: String,
    /// fnat: the local addresses toward the backends (empty in the other modes).
    pub local_addresses: Vec<String>,
    /// up: some backend takes new flows; down: none does (every backend is down or has
    /// weight 0), new flows are dropped and counted as `no_backend`.
    pub state: String,
    pub backends: Vec<BackendView>,
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// The body of `PUT /api/v1/services/{name}/backends/{address}:{port}` (may be empty).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendBody {
    /// 0..=65535; 0 drains. Absent: 1 for a new backend, unchanged for an existing one.
    #[schema(maximum = 65535)]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowView {
    pub service: String,
    pub protocol: String,
    /// address:port
    pub client: String,
    pub vip: String,
    pub backend: String,
    pub forward: String,
    /// syn_sent | syn_recv | established | closing | closed | udp
    pub state: String,
    /// fnat: the local address:port the backend sees the flow come from.
    pub local: Option<String>,
    pub age_s: u32,
    pub idle_s: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NeighborView {
    pub address: String,
    pub mac: String,
    /// static | learned
    pub state: String,
    pub age_s: u64,
    /// The port it is reached on (a neighbor is an address on a port).
    pub port: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteView {
    /// network/length
    pub prefix: String,
    pub port: Option<String>,
    /// The next hop; null on a connected route.
    pub via: Option<String>,
    /// connected | static
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// ok | workers stalled | starting
    pub status: String,
    pub workers: usize,
    pub stalled_workers: Vec<usize>,
    pub ports: usize,
}

/// How a port was brought up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortNote {
    pub name: String,
    pub device: String,
    pub driver: String,
    pub mac: String,
    /// The device cannot change its MAC: ferrovs uses it in software (promiscuous port).
    pub software_mac: bool,
    pub rx_queues: usize,
    pub tx_queues: usize,
    pub rss: bool,
    /// own queue | through worker 0
    pub mgmt_tx: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortStats {
    #[serde(flatten)]
    pub note: PortNote,
    pub link_up: bool,
    pub speed_mbps: u32,
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    /// The port's exception path, if it has one.
    pub kernel: Option<KernelPath>,
}

/// A port's kernel interface and what passed through it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KernelPath {
    pub interface: String,
    /// Packets handed to the kernel (for the port's own addresses, and ARP copies).
    pub to_kernel: u64,
    /// Packets the kernel sent out of the port.
    pub from_kernel: u64,
    /// Lost on the way: the interface refused them, or the port did.
    pub to_kernel_dropped: u64,
    pub from_kernel_dropped: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    pub rx: u64,
    pub tx: u64,
    pub drops: u64,
    pub new_flows: u64,
    /// New flows decided statelessly: the flow table was full or contended.
    pub table_full: u64,
    /// dr/tun packets without a flow forwarded by the Maglev table.
    pub stateless: u64,
    pub to_mgmt: u64,
    pub icmp_replies: u64,
    /// ICMP(v6) errors about a flow's packets relayed to the other side of the flow.
    pub icmp_relayed: u64,
    /// Half-open flows dropped to make room for new ones (the table was full).
    pub early_drops: u64,
    /// TCP resets forwarded without ending their flow: their sequence number was far
    /// from where the sender's stand (a blind forgery cannot end a flow).
    pub resets_ignored: u64,
    /// SYN cookies (nat/fnat under a flood): SYN-ACKs sent with a cookie, client ACKs
    /// whose cookie made a flow, backend handshakes completed by the SYN proxy.
    pub syn_cookies_sent: u64,
    pub syn_cookies_valid: u64,
    pub syn_proxied: u64,
    /// Whether SYN cookies are on now (`flows.syn_cookies`).
    pub syn_cookies_active: bool,
    /// Packets held for an unresolved next hop; of those, sent when it answered, and
    /// dropped (over the bounds: 3 per neighbor, 256 in all; or not answered in 3 s).
    pub held: u64,
    pub held_sent: u64,
    pub held_dropped: u64,
    /// ARP requests and neighbor solicitations not sent: over the 1000/s budget.
    pub requests_suppressed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerStats {
    pub worker: usize,
    pub rx: u64,
    pub tx: u64,
    pub drops: u64,
    pub busy_ratio: f64,
    pub loops: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowTableStats {
    /// Flows of both families (the IPv6 table's share below).
    pub active: usize,
    pub capacity: usize,
    pub memory_bytes: usize,
    pub active_ipv6: usize,
    pub capacity_ipv6: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    pub uptime_s: u64,
    pub snapshot_version: u64,
    pub totals: Totals,
    /// Packets dropped, by reason (docs/api.md lists the reasons).
    pub drops: BTreeMap<String, u64>,
    pub ports: Vec<PortStats>,
    pub workers: Vec<WorkerStats>,
    pub flows: FlowTableStats,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// The service name or address:port deleted.
    pub deleted: String,
    /// The snapshot version that no longer has it.
    pub version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reloaded {
    pub reloaded: bool,
    pub version: u64,
}

/// Every 4xx and 5xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, with the key path where there is one.
    pub error: String,
}
