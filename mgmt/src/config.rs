//! The YAML configuration (the keys and rules are in `docs/config.md`), parsed strictly
//! (unknown keys are errors) into typed fields: addresses, prefixes, MACs, enums and
//! numbers are parsed once, by serde, so nothing downstream parses a string again.
//!
//! Every error names its key path. Each port, route, neighbor and service is parsed on
//! its own, so one mistake does not hide the others: `--check` lists them all.
#![forbid(unsafe_code)]
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{Forward, Protocol, MAX_BACKENDS, MAX_SERVICES};
use dataplane::wire::MacAddr;
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Config {
    pub dpdk: DpdkConf,
    pub ports: Vec<PortConf>,
    pub exception_path: ExceptionPathConf,
    pub routes: Vec<RouteConf>,
    pub neighbors: Vec<NeighborConf>,
    pub flows: FlowsConf,
    pub api: ApiConf,
    pub services: Vec<ServiceConf>,
    /// Announce VIPs to routers over BGP through BIRD; none: no BGP.
    pub bgp: Option<BgpConf>,
    /// Source NAT for the backends' own outgoing traffic.
    pub snat: Vec<SnatConf>,
    /// The bound on the neighbor (ARP/NDP) table.
    pub neighbor_table: NeighborTableConf,
}

/// `neighbor_table`: how many neighbors (static and learned) the table keeps.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NeighborTableConf {
    /// Default: sized for the ports' connected subnets (see [`Config::neighbor_capacity`]).
    pub capacity: Option<u32>,
}

/// The most neighbors `neighbor_table.capacity` may ask for.
pub const MAX_NEIGHBOR_CAPACITY: u32 = 1 << 20;

/// `snat[]`: packets from `source` leaving through `port` that are not replies of a
/// service flow get one of `to` and a port of `port_range`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnatConf {
    pub source: IpNet,
    pub port: String,
    pub to: Vec<IpAddr>,
    #[serde(default = "default_port_range")]
    pub port_range: String,
}
fn default_port_range() -> String {
    "1024-65535".into()
}

impl SnatConf {
    /// `port_range` as numbers, if it is `low-high` with 1 <= low <= high <= 65535.
    pub fn ports(&self) -> Option<(u16, u16)> {
        let (a, b) = self.port_range.split_once('-')?;
        let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        (a >= 1 && a <= b).then_some((a, b))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DpdkConf {
    pub cores: CoreList,
    pub memory_mb: u32,
    pub hugepages: bool,
    pub file_prefix: String,
    pub extra_args: Vec<String>,
}
impl Default for DpdkConf {
    fn default() -> Self {
        DpdkConf {
            cores: CoreList(vec![0, 1, 2]),
            memory_mb: 1024,
            hugepages: true,
            file_prefix: "ferrovs".into(),
            extra_args: vec![],
        }
    }
}

/// An EAL core list ("0-2", "0,2,4", "1-3,6"): distinct core ids, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreList(pub Vec<usize>);

impl std::str::FromStr for CoreList {
    type Err = String;
    fn from_str(s: &str) -> Result<CoreList, String> {
        parse_cores(s)
            .map(CoreList)
            .ok_or_else(|| format!("`{s}` is not a core list like \"0-2\" or \"0,2,4\""))
    }
}

impl std::fmt::Display for CoreList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for CoreList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for CoreList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConf {
    pub name: String,
    pub device: String,
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Local addresses, IPv4 and IPv6, with their prefix lengths (host bits kept:
    /// `10.1.0.1/24`, `2001:db8:1::2/64`).
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    #[serde(default)]
    pub mtu: Option<u16>,
    /// At most this many RX and this many TX queues (default: what the device offers).
    #[serde(default)]
    pub queues: Option<u16>,
    /// The exception path: a kernel interface of this name (DPDK's net_tap) carries what
    /// arrives for the port's own addresses that ferrovs does not answer itself, and
    /// whatever the kernel sends leaves through the port.
    #[serde(default)]
    pub kernel_interface: Option<String>,
}

/// Where the kernel interfaces of the exception path live.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExceptionPathConf {
    /// A network namespace (created if missing); none: the daemon's own.
    pub netns: Option<String>,
}

/// `bgp`: ferrovs runs BIRD 2 in `exception_path.netns` and announces each VIP that has
/// a live backend as a host route to `peers`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BgpConf {
    pub local_as: u32,
    /// Default: the first IPv4 address of the first port that has one.
    #[serde(default)]
    pub router_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub peers: Vec<BgpPeerConf>,
    /// On SIGTERM: every VIP is withdrawn, forwarding goes on this long, then the daemon
    /// stops.
    #[serde(default = "default_withdraw_grace_s")]
    pub withdraw_grace_s: u32,
    #[serde(default)]
    pub bird: BirdConf,
}
fn default_withdraw_grace_s() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BgpPeerConf {
    pub address: Ipv4Addr,
    pub remote_as: u32,
    /// The BGP hold time offered to the peer (default: BIRD's, 240 s); the session uses
    /// the smaller of both sides'.
    #[serde(default)]
    pub hold_time_s: Option<u16>,
}

/// How ferrovs runs BIRD.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BirdConf {
    pub binary: PathBuf,
    /// BIRD's control socket; the configuration ferrovs writes for it lies beside it
    /// (`<control_socket>.conf`).
    pub control_socket: PathBuf,
}
impl Default for BirdConf {
    fn default() -> Self {
        BirdConf {
            binary: "/usr/sbin/bird".into(),
            control_socket: "/run/ferrovs/bird.ctl".into(),
        }
    }
}

impl BgpConf {
    /// The file ferrovs writes BIRD's configuration to.
    pub fn bird_config_path(&self) -> PathBuf {
        let mut p = self.bird.control_socket.clone().into_os_string();
        p.push(".conf");
        p.into()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConf {
    pub prefix: IpNet,
    pub via: IpAddr,
    #[serde(default)]
    pub port: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NeighborConf {
    pub address: IpAddr,
    pub mac: MacAddr,
    pub port: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConf {
    pub capacity: u32,
    /// IPv6 flows, in a table of their own (160 bytes per flow); default: a quarter of
    /// `capacity`, at least 1024.
    pub capacity_ipv6: Option<u32>,
    pub timeouts: TimeoutsConf,
    /// SYN cookies for nat and fnat services: `auto` (on while more than
    /// `syn_cookies_above` half-open flows are in the tables), `always` or `never`.
    pub syn_cookies: SynCookiesMode,
    /// Half-open flows above which `auto` turns cookies on (off again below half of it);
    /// default: 1/16 of `capacity`, at least 256.
    pub syn_cookies_above: Option<u32>,
}
impl Default for FlowsConf {
    fn default() -> Self {
        FlowsConf {
            capacity: 1_048_576,
            capacity_ipv6: None,
            timeouts: TimeoutsConf::default(),
            syn_cookies: SynCookiesMode::Auto,
            syn_cookies_above: None,
        }
    }
}
impl FlowsConf {
    pub fn capacity_ipv6(&self) -> u32 {
        self.capacity_ipv6.unwrap_or((self.capacity / 4).max(1024))
    }
    pub fn syn_cookies_above(&self) -> u32 {
        self.syn_cookies_above
            .unwrap_or((self.capacity / 16).max(256))
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SynCookiesMode {
    #[default]
    Auto,
    Always,
    Never,
}

/// Seconds a flow in each state lives without packets.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConf {
    pub tcp_syn: u32,
    pub tcp_established: u32,
    pub tcp_closing: u32,
    pub udp: u32,
}
impl Default for TimeoutsConf {
    fn default() -> Self {
        TimeoutsConf {
            tcp_syn: 30,
            tcp_established: 900,
            tcp_closing: 120,
            udp: 300,
        }
    }
}
impl TimeoutsConf {
    pub fn to_timeouts(&self) -> dataplane::flow::Timeouts {
        dataplane::flow::Timeouts {
            tcp_syn: self.tcp_syn,
            tcp_established: self.tcp_established,
            tcp_closing: self.tcp_closing,
            udp: self.udp,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConf {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
}
impl Default for ApiConf {
    fn default() -> Self {
        ApiConf {
            listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            token_file: None,
        }
    }
}

/// A service: the config file's `services[]` entry, and the body of
/// `PUT /api/v1/services/{name}` (where `name` may be left out; if given it must equal
/// the URL's).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceConf {
    /// 1 to 64 of A-Z a-z 0-9 _ . -
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub name: String,
    /// A unicast IPv4 or IPv6 address.
    #[schema(value_type = String)]
    pub vip: IpAddr,
    #[schema(minimum = 1)]
    pub port: u16,
    #[serde(default = "default_protocol")]
    #[schema(schema_with = names_schema::<Protocol>)]
    pub protocol: Protocol,
    #[serde(default = "default_scheduler")]
    #[schema(schema_with = names_schema::<SchedulerKind>)]
    pub scheduler: SchedulerKind,
    #[serde(default = "default_forward")]
    #[schema(schema_with = names_schema::<Forward>)]
    pub forward: Forward,
    #[serde(default)]
    pub backends: Vec<BackendConf>,
    /// Active checks of each backend; none: backends are never marked down.
    #[serde(default)]
    pub health_check: Option<HealthCheckConf>,
    /// What happens to a backend's flows when it goes down.
    #[serde(default)]
    pub flows_on_backend_down: OnBackendDown,
    /// fnat only: the source addresses toward the backends (own addresses of the port
    /// facing them); ports 1024-65535 of each are used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub local_addresses: Vec<IpAddr>,
    /// fnat and tcp only: the backend first reads a PROXY protocol header with the
    /// client's address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// `services[].proxy_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// The binary version 2.
    V2,
}

/// `services[].health_check`: probes of each backend, keepalived's semantics.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConf {
    /// tcp: a connect that completes; http: GET `path`, expect `expect_status`.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Default: the backend's port.
    #[serde(default)]
    pub port: Option<u16>,
    /// http only (default "/").
    #[serde(default)]
    pub path: Option<String>,
    /// http only (default 200).
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// http only: the Host header (default: the backend's address).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Consecutive good probes before a down backend is up again.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failed probes before an up backend is down.
    #[serde(default = "default_fall")]
    pub fall: u32,
}
fn default_interval_ms() -> u32 {
    2000
}
fn default_timeout_ms() -> u32 {
    1000
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBackendDown {
    /// Its flows end; their next packets are scheduled to a live backend.
    #[default]
    Remove,
    /// Its flows stay until they time out.
    Keep,
}
impl ServiceConf {
    /// The position of the backend at `addr:port`.
    pub fn backend_index(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.backends
            .iter()
            .position(|b| b.address == addr && b.port_in(self) == port)
    }
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}
fn default_scheduler() -> SchedulerKind {
    SchedulerKind::Wrr
}
fn default_forward() -> Forward {
    Forward::Nat
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendConf {
    /// Of the VIP's family.
    #[schema(value_type = String)]
    pub address: IpAddr,
    /// Default: the service's port.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub port: Option<u16>,
    /// 0..=65535 (0: drained), default 1.
    #[serde(default = "default_weight")]
    #[schema(default = 1, maximum = 65535)]
    pub weight: u32,
}
fn default_weight() -> u32 {
    1
}
impl BackendConf {
    /// The backend's port: its own, else the service's.
    pub fn port_in(&self, s: &ServiceConf) -> u16 {
        self.port.unwrap_or(s.port)
    }
}

/// The OpenAPI schema of a named enum: a string, one of its names (from the one list
/// that defines it).
pub fn names_schema<T: NamedEnum>() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(T::names()))
        .build()
}

/// The names of a `named_enum!` type, for [`names_schema`].
pub trait NamedEnum {
    fn names() -> Vec<&'static str>;
}
macro_rules! named {
    ($($t:ty),*) => {$(
        impl NamedEnum for $t {
            fn names() -> Vec<&'static str> {
                <$t>::ALL.iter().map(|v| v.name()).collect()
            }
        }
    )*};
}
named!(Protocol, SchedulerKind, Forward);

/// Errors, each `key.path: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<String>);

impl std::fmt::Display for Errors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}
impl std::error::Error for Errors {}

/// Deserializes one value at key path `path`, recording the error (with its full key
/// path) instead of stopping.
pub fn typed<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    v: D,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<T> {
    match serde_path_to_error::deserialize(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let msg = e.into_inner().to_string();
            errors.push(match (path.is_empty(), inner == ".") {
                (true, true) => msg,
                (true, false) => format!("{inner}: {msg}"),
                (false, true) => format!("{path}: {msg}"),
                (false, false) => format!("{path}.{inner}: {msg}"),
            });
            None
        }
    }
}

const SECTIONS: [&str; 11] = [
    "dpdk",
    "ports",
    "exception_path",
    "routes",
    "neighbors",
    "flows",
    "api",
    "services",
    "bgp",
    "snat",
    "neighbor_table",
];

/// Parses YAML text into a typed config; every syntax or type error names its key path.
pub fn parse(text: &str) -> Result<Config, Errors> {
    match read(text) {
        (Some(c), e) if e.is_empty() => Ok(c),
        (_, e) => Err(Errors(e)),
    }
}

/// Parses and validates: the same checks for the file, `--check`, reload and API writes.
/// Errors of both kinds are listed together: when every port, route, neighbor and
/// service could be read (a whole section may have failed: its defaults stand in), the
/// checks across them run too.
pub fn load(text: &str) -> Result<Config, Errors> {
    load_with(text, None)
}

/// What start-up and `--check` run: [`load`], then the checks that depend on this
/// machine ([`host_checks`]), every error listed.
pub fn load_for_host(text: &str) -> Result<Config, Errors> {
    load_with(text, Some(Stage::Start))
}

/// [`load_for_host`] for a reload of a running daemon: the checks of what a reload does
/// not apply (ports: the kernel interfaces exist, they are the daemon's own) are left out.
pub fn load_for_reload(text: &str) -> Result<Config, Errors> {
    load_with(text, Some(Stage::Reload))
}

/// Which of this machine's checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Start-up and `--check`: everything.
    Start,
    /// A running daemon re-reads its file: not the ports' (they need a restart).
    Reload,
}

fn load_with(text: &str, host: Option<Stage>) -> Result<Config, Errors> {
    let (c, mut e) = read(text);
    if let Some(c) = &c {
        if let Err(Errors(more)) = c.validate() {
            e.extend(more);
        }
        if let Some(stage) = host {
            e.extend(host_checks(c, stage));
        }
    }
    match c {
        Some(c) if e.is_empty() => Ok(c),
        _ => Err(Errors(e)),
    }
}

/// Reads what it can: the errors, and a config when every list element was read (a
/// section that failed is replaced by its default, so its own errors are already listed
/// and the checks across elements can still run with the right key paths).
fn read(text: &str) -> (Option<Config>, Vec<String>) {
    use yaml_serde::Value;
    if let Err(e) = bounded(text) {
        return (None, vec![e]);
    }
    let doc: Value = match yaml_serde::from_str(text) {
        Ok(d) => d,
        Err(e) => return (None, vec![e.to_string()]),
    };
    let mut map = match doc {
        Value::Mapping(m) => m,
        Value::Null => Default::default(),
        _ => {
            return (
                None,
                vec!["the config must be a mapping of sections".into()],
            )
        }
    };
    let mut e = Vec::new();
    for k in map.keys() {
        match k.as_str() {
            Some(k) if SECTIONS.contains(&k) => {}
            _ => e.push(format!(
                "unknown field `{}`, expected one of {}",
                yaml_serde::to_string(k).unwrap_or_default().trim(),
                SECTIONS.map(|s| format!("`{s}`")).join(", ")
            )),
        }
    }
    let mut take = |key: &str| map.remove(key).filter(|v| !v.is_null());
    fn section<T: DeserializeOwned + Default>(
        v: Option<Value>,
        key: &str,
        e: &mut Vec<String>,
    ) -> T {
        match v {
            None => T::default(),
            Some(v) => typed(v, key, e).unwrap_or_default(),
        }
    }
    /// The elements read, and whether all were.
    fn list<T: DeserializeOwned>(
        v: Option<Value>,
        key: &str,
        e: &mut Vec<String>,
    ) -> (Vec<T>, bool) {
        match v {
            None => (vec![], true),
            Some(Value::Sequence(items)) => {
                let n = items.len();
                let read: Vec<T> = items
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, v)| typed(v, &format!("{key}[{i}]"), e))
                    .collect();
                let all = read.len() == n;
                (read, all)
            }
            Some(_) => {
                e.push(format!("{key}: must be a list"));
                (vec![], false)
            }
        }
    }
    let (dpdk, ports, routes) = (take("dpdk"), take("ports"), take("routes"));
    let exception_path = take("exception_path");
    let (neighbors, flows, api, services) = (
        take("neighbors"),
        take("flows"),
        take("api"),
        take("services"),
    );
    let bgp = take("bgp");
    let snat = take("snat");
    let neighbor_table = take("neighbor_table");
    if ports.is_none() {
        e.push("ports: missing field `ports` (at least one port is required)".into());
    }
    let dpdk = section(dpdk, "dpdk", &mut e);
    let exception_path = section(exception_path, "exception_path", &mut e);
    let (ports, p_all) = list(ports, "ports", &mut e);
    let (routes, r_all) = list(routes, "routes", &mut e);
    let (neighbors, n_all) = list(neighbors, "neighbors", &mut e);
    let flows = section(flows, "flows", &mut e);
    let api = section(api, "api", &mut e);
    let (services, s_all) = list(services, "services", &mut e);
    let (bgp, b_all) = match bgp {
        None => (None, true),
        Some(v) => match typed(v, "bgp", &mut e) {
            Some(b) => (Some(b), true),
            None => (None, false),
        },
    };
    let (snat, sn_all) = list(snat, "snat", &mut e);
    let neighbor_table = section(neighbor_table, "neighbor_table", &mut e);
    let c = (p_all && r_all && n_all && s_all && b_all && sn_all).then_some(Config {
        dpdk,
        ports,
        exception_path,
        routes,
        neighbors,
        flows,
        api,
        services,
        bgp,
        snat,
        neighbor_table,
    });
    (c, e)
}

/// Most bytes a config may have.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Deepest nesting of flow collections (`[`, `{`) a config may have.
pub const MAX_CONFIG_DEPTH: usize = 64;

/// Refuses input no config needs before the YAML parser sees it: too large, or nested so
/// deeply (`[[[[...`) that parsing would take seconds.
fn bounded(text: &str) -> Result<(), String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "config: {} bytes; a config may have at most {MAX_CONFIG_BYTES}",
            text.len()
        ));
    }
    // A scan that knows just enough YAML: quoted scalars (which start where a value
    // starts) and comments hide brackets; everything else counts.
    let (mut depth, mut quote, mut comment, mut escaped) = (0usize, None, false, false);
    // `prev`: the last character that is not a blank; `blank`: the one just before was.
    let (mut prev, mut blank) = ('\n', true);
    for c in text.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if q == '"' && c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else if comment {
            comment = c != '\n';
        } else {
            match c {
                '#' if blank => comment = true,
                '"' | '\''
                    if matches!(prev, ':' | '-' | '[' | '{' | ',') || prev.is_whitespace() =>
                {
                    quote = Some(c)
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_CONFIG_DEPTH {
                        return Err(format!(
                            "config: nested more than {MAX_CONFIG_DEPTH} levels deep"
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        blank = c.is_whitespace();
        if !blank || c == '\n' {
            prev = c;
        }
    }
    Ok(())
}

/// The rule for names that become metric labels and URL path segments (services,
/// ports): 1 to 64 of `A-Z a-z 0-9 _ . -`. Returns the error for key `k`, if any.
pub fn check_name(k: &str, name: &str) -> Option<String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    (!ok).then(|| {
        format!(
            "{k}: `{}` must be 1 to 64 of A-Z a-z 0-9 _ . -",
            name.escape_debug()
        )
    })
}

/// A Linux interface name: 1 to 15 bytes (IFNAMSIZ - 1) of `A-Z a-z 0-9 _ . -`.
pub fn check_ifname(k: &str, name: &str) -> Option<String> {
    let ok = (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    (!ok).then(|| {
        format!(
            "{k}: `{}` is not an interface name (1 to 15 of A-Z a-z 0-9 _ . -)",
            name.escape_debug()
        )
    })
}

/// False for addresses no host on a wire can have: unspecified, limited broadcast,
/// multicast, loopback (IPv6: unspecified, multicast, loopback, IPv4-mapped).
pub fn usable_host(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_multicast()
                || a.is_loopback()
                || a.to_ipv4_mapped().is_some())
        }
    }
}

/// True if two subnets of the same family share addresses.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    let len = a.prefix_len().min(b.prefix_len());
    match (IpNet::new(a.addr(), len), IpNet::new(b.addr(), len)) {
        (Ok(x), Ok(y)) => x.trunc() == y.trunc(),
        _ => false,
    }
}

/// "IPv4" or "IPv6".
pub fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// What a port's device really is, for "one device once" and the per-device lock: a PCI
/// address, or a vdev's arguments (`iface=veth0`, `socket=/run/m.sock`, ...), which name
/// the resource it opens; a vdev without arguments is its name.
pub fn device_key(device: &str) -> String {
    match device.split_once(',') {
        Some((_, args)) => {
            let mut kv: Vec<&str> = args
                .split(',')
                .map(str::trim)
                .filter(|a| {
                    [
                        "iface=",
                        "socket=",
                        "path=",
                        "rx_pcap=",
                        "tx_pcap=",
                        "rx_iface=",
                        "tx_iface=",
                    ]
                    .iter()
                    .any(|k| a.starts_with(k))
                })
                .collect();
            kv.sort_unstable();
            if kv.is_empty() {
                device.to_owned()
            } else {
                kv.join(",")
            }
        }
        None => device.to_owned(),
    }
}

/// The checks that depend on this machine, which start-up makes and `--check` repeats:
/// the token file is there and not empty, the cores exist.
pub fn host_checks(c: &Config, stage: Stage) -> Vec<String> {
    let mut e = Vec::new();
    if let Some(f) = &c.api.token_file {
        match std::fs::read_to_string(f) {
            Err(err) => e.push(format!("api.token_file: {}: {err}", f.display())),
            Ok(t) if t.trim().is_empty() => e.push(format!(
                "api.token_file: {} is empty: every write would be refused",
                f.display()
            )),
            Ok(_) => {}
        }
    }
    let wants_tap = stage == Stage::Start && c.ports.iter().any(|p| p.kernel_interface.is_some());
    if wants_tap && !std::path::Path::new("/dev/net/tun").exists() {
        e.push("ports: a kernel_interface needs /dev/net/tun, which this machine lacks".into());
    }
    for (i, p) in c.ports.iter().enumerate().filter(|_| stage == Stage::Start) {
        if let Some(ifname) = &p.kernel_interface {
            if interface_exists(c.exception_path.netns.as_deref(), ifname) {
                e.push(format!(
                    "ports[{i}].kernel_interface: an interface `{ifname}` exists already{}",
                    c.exception_path
                        .netns
                        .as_ref()
                        .map(|n| format!(" in namespace `{n}`"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    if let Some(b) = c.bgp.as_ref().filter(|_| stage == Stage::Start) {
        e.extend(bird_checks(&b.bird));
    }
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cores(s.trim()));
    if let Some(online) = online {
        for core in &c.dpdk.cores.0 {
            if !online.contains(core) {
                let list = CoreList(online.clone());
                e.push(format!(
                    "dpdk.cores: core {core} does not exist on this machine (online: {list})"
                ));
            }
        }
    }
    e
}

/// BIRD can be run: its binary is an executable file, and no BIRD answers on the
/// control socket already (a stale socket file is fine: BIRD replaces it).
fn bird_checks(b: &BirdConf) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut e = Vec::new();
    match std::fs::metadata(&b.binary) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => e.push(format!(
            "bgp.bird.binary: {} is not an executable file",
            b.binary.display()
        )),
        Err(err) => e.push(format!(
            "bgp.bird.binary: {}: {err} (BIRD 2 is the Debian package bird2)",
            b.binary.display()
        )),
    }
    if std::os::unix::net::UnixStream::connect(&b.control_socket).is_ok() {
        e.push(format!(
            "bgp.bird.control_socket: {} is in use by a running BIRD",
            b.control_socket.display()
        ));
    }
    e
}

/// True if interface `name` exists in namespace `netns` (None: this one).
fn interface_exists(netns: Option<&str>, name: &str) -> bool {
    match netns {
        None => std::path::Path::new("/sys/class/net").join(name).exists(),
        Some(ns) => {
            std::path::Path::new("/run/netns").join(ns).exists()
                && std::process::Command::new("ip")
                    .args(["-n", ns, "link", "show", name])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        }
    }
}

/// Settings that are legal but risky: printed by `--check` and logged at start.
pub fn warnings(c: &Config) -> Vec<String> {
    let mut w = Vec::new();
    if !c.api.listen.ip().is_loopback() && c.api.token_file.is_none() {
        w.push(format!(
            "api.listen: {} is not a loopback address and api.token_file is not set: anyone who reaches it can change the services",
            c.api.listen
        ));
    }
    if c.bgp.is_some() {
        for (i, s) in c.services.iter().enumerate() {
            if matches!(s.forward, Forward::Dr | Forward::Tun) && s.scheduler != SchedulerKind::Mh {
                w.push(format!(
                    "services[{i}].scheduler: {} with bgp: a flow that ECMP moves to another box keeps its backend only with mh",
                    s.scheduler
                ));
            }
        }
    }
    w
}

/// Parses an EAL core list ("0-2", "0,2,4", "1-3,6"); None if malformed or repeating.
pub fn parse_cores(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            if a > b {
                return None;
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().ok()?);
        }
    }
    let mut dedup = out.clone();
    dedup.sort_unstable();
    dedup.dedup();
    (dedup.len() == out.len() && !out.is_empty()).then_some(out)
}

impl Config {
    /// How many neighbors the table keeps: `neighbor_table.capacity`, else sized for the
    /// connected subnets (every IPv4 host address of each port's subnets, 4,096 per IPv6
    /// subnet, plus the static entries), at least 1,024 and at most 65,536.
    pub fn neighbor_capacity(&self) -> usize {
        if let Some(c) = self.neighbor_table.capacity {
            return c as usize;
        }
        let hosts: u64 = self
            .ports
            .iter()
            .flat_map(|p| p.addresses.iter())
            .map(|n| match n {
                IpNet::V4(n) => 1u64 << (32 - n.prefix_len() as u32),
                IpNet::V6(_) => 4096,
            })
            .sum();
        (hosts + self.neighbors.len() as u64).clamp(1024, 65536) as usize
    }

    /// The port a packet to `a` leaves through (its name, and whether it has a kernel
    /// interface): the one whose subnet holds `a`, else the longest-prefix static route's.
    pub fn facing(&self, a: IpAddr) -> Option<(String, bool)> {
        let port = self
            .ports
            .iter()
            .find(|p| p.addresses.iter().any(|n| n.contains(&a)))
            .or_else(|| {
                let r = self
                    .routes
                    .iter()
                    .filter(|r| r.prefix.contains(&a))
                    .max_by_key(|r| r.prefix.prefix_len())?;
                self.route_port(r)
            })?;
        Some((port.name.clone(), port.kernel_interface.is_some()))
    }

    /// The port static route `r` leaves through: its `port`, else the one whose subnet
    /// holds `via`.
    pub fn route_port(&self, r: &RouteConf) -> Option<&PortConf> {
        match &r.port {
            Some(n) => self.ports.iter().find(|p| &p.name == n),
            None => self
                .ports
                .iter()
                .find(|p| p.addresses.iter().any(|n| n.contains(&r.via))),
        }
    }

    /// Every validation error, each naming its key path.
    pub fn validate(&self) -> Result<(), Errors> {
        let mut e = Vec::new();
        let cores = &self.dpdk.cores.0;
        if cores.len() < 2 {
            e.push(format!(
                "dpdk.cores: `{}` has {} core(s); ferrovs needs at least 2 (one management core, then one per worker)",
                self.dpdk.cores,
                cores.len()
            ));
        }
        if cores.iter().any(|&x| x >= 128) {
            e.push("dpdk.cores: core ids must be below 128 (RTE_MAX_LCORE)".into());
        }
        if self.dpdk.memory_mb < 64 {
            e.push("dpdk.memory_mb: must be at least 64".into());
        }
        if self.dpdk.file_prefix.is_empty() || self.dpdk.file_prefix.contains('/') {
            e.push("dpdk.file_prefix: must be a non-empty name without '/'".into());
        }
        if self.ports.is_empty() {
            e.push("ports: at least one port is required".into());
        }
        let mut names = HashSet::new();
        let mut subnets: Vec<(&str, IpNet)> = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            let k = format!("ports[{i}]");
            if let Some(err) = check_name(&format!("{k}.name"), &p.name) {
                e.push(err);
            } else if !names.insert(p.name.as_str()) {
                e.push(format!("{k}.name: `{}` is used by another port", p.name));
            }
            if p.device.is_empty() {
                e.push(format!("{k}.device: must be a PCI address or a vdev spec"));
            } else if let Some(j) = self.ports[..i]
                .iter()
                .position(|q| device_key(&q.device) == device_key(&p.device))
            {
                e.push(format!(
                    "{k}.device: `{}` is the same device as ports[{j}] (`{}`)",
                    p.device, self.ports[j].device
                ));
            }
            if p.mtu.is_some_and(|m| !(68..=9216).contains(&m)) {
                e.push(format!("{k}.mtu: must be 68..=9216"));
            }
            if p.queues.is_some_and(|q| !(1..=1024).contains(&q)) {
                e.push(format!("{k}.queues: must be 1..=1024"));
            }
            if let Some(ifname) = &p.kernel_interface {
                e.extend(check_ifname(&format!("{k}.kernel_interface"), ifname));
                if let Some(j) = self.ports[..i]
                    .iter()
                    .position(|q| q.kernel_interface.as_ref() == Some(ifname))
                {
                    e.push(format!(
                        "{k}.kernel_interface: `{ifname}` is also ports[{j}]'s"
                    ));
                }
            }
            for (j, a) in p.addresses.iter().enumerate() {
                // Several addresses of one subnet on one port are fine (fnat's local
                // addresses); a subnet on two ports is not.
                for (other, n) in subnets.iter().filter(|(o, _)| *o != p.name) {
                    if overlaps(a, n) {
                        e.push(format!(
                            "{k}.addresses[{j}]: `{a}` overlaps {n} of port `{other}`"
                        ));
                    }
                }
                subnets.push((&p.name, *a));
            }
        }
        let connected = |a: IpAddr| subnets.iter().any(|(_, n)| n.contains(&a));
        let own = |a: IpAddr| subnets.iter().any(|(_, n)| n.addr() == a);
        for (i, r) in self.routes.iter().enumerate() {
            let k = format!("routes[{i}]");
            if r.via.is_ipv4() != r.prefix.addr().is_ipv4() {
                e.push(format!(
                    "{k}.via: {} is {} but the prefix {} is {}",
                    r.via,
                    family(r.via),
                    r.prefix,
                    family(r.prefix.addr())
                ));
            }
            if own(r.via) {
                e.push(format!("{k}.via: {} is ferrovs's own address", r.via));
            }
            if r.port.is_none() && !connected(r.via) {
                e.push(format!(
                    "{k}.via: {} is not on a connected subnet of any port (name `port:`)",
                    r.via
                ));
            }
            if let Some(p) = &r.port {
                if !names.contains(p.as_str()) {
                    e.push(format!("{k}.port: no port named `{p}`"));
                }
            }
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            if !names.contains(n.port.as_str()) {
                e.push(format!("neighbors[{i}].port: no port named `{}`", n.port));
            }
            if n.mac.is_multicast() || n.mac == MacAddr::ZERO {
                e.push(format!(
                    "neighbors[{i}].mac: {} is not a unicast MAC",
                    n.mac
                ));
            }
            if own(n.address) || !usable_host(n.address) {
                e.push(format!(
                    "neighbors[{i}].address: {} cannot be a neighbor (own, broadcast, multicast or unspecified)",
                    n.address
                ));
            }
        }
        if let Some(ns) = &self.exception_path.netns {
            e.extend(check_name("exception_path.netns", ns));
        }
        if !(1..=(i32::MAX as u32)).contains(&self.flows.capacity) {
            e.push("flows.capacity: must be 1..=2147483647".into());
        }
        if self
            .flows
            .capacity_ipv6
            .is_some_and(|c| !(1..=(i32::MAX as u32)).contains(&c))
        {
            e.push("flows.capacity_ipv6: must be 1..=2147483647".into());
        }
        if self.flows.syn_cookies_above == Some(0) {
            e.push("flows.syn_cookies_above: must be at least 1".into());
        }
        match self.neighbor_table.capacity {
            Some(c) if !(16..=MAX_NEIGHBOR_CAPACITY).contains(&c) => e.push(format!(
                "neighbor_table.capacity: must be 16..={MAX_NEIGHBOR_CAPACITY}"
            )),
            Some(c) if (c as usize) < self.neighbors.len() => e.push(format!(
                "neighbor_table.capacity: {c} is less than the {} static neighbors",
                self.neighbors.len()
            )),
            _ => {}
        }
        let t = &self.flows.timeouts;
        for (n, v) in [
            ("tcp_syn", t.tcp_syn),
            ("tcp_established", t.tcp_established),
            ("tcp_closing", t.tcp_closing),
            ("udp", t.udp),
        ] {
            if !(1..=86400 * 7).contains(&v) {
                e.push(format!("flows.timeouts.{n}: must be 1..=604800 seconds"));
            }
        }
        let mut snames = HashSet::new();
        let mut keys = HashMap::new();
        let mut nbackends = 0;
        for (i, s) in self.services.iter().enumerate() {
            let k = format!("services[{i}]");
            let own_on = |port: &str, a: IpAddr| {
                self.ports
                    .iter()
                    .any(|p| p.name == port && p.addresses.iter().any(|n| n.addr() == a))
            };
            e.extend(validate_service(s, &k, &connected, &own, &own_on, &|a| {
                self.facing(a)
            }));
            if !snames.insert(s.name.as_str()) {
                e.push(format!("{k}.name: `{}` is used by another service", s.name));
            }
            if let Some(prev) = keys.insert((s.vip, s.port, s.protocol), &s.name) {
                e.push(format!(
                    "{k}: {}:{}/{} is already service `{prev}`",
                    s.vip, s.port, s.protocol
                ));
            }
            nbackends += s.backends.len();
        }
        if self.services.len() > MAX_SERVICES {
            e.push(format!("services: at most {MAX_SERVICES} services"));
        }
        if nbackends > MAX_BACKENDS {
            e.push(format!("services: at most {MAX_BACKENDS} backends in all"));
        }
        if let Some(b) = &self.bgp {
            e.extend(self.validate_bgp(b, &own));
        }
        for (i, r) in self.snat.iter().enumerate() {
            let k = format!("snat[{i}]");
            let port = self.ports.iter().find(|p| p.name == r.port);
            if port.is_none() {
                e.push(format!("{k}.port: no port named `{}`", r.port));
            }
            if r.ports().is_none() {
                e.push(format!(
                    "{k}.port_range: `{}` is not `low-high` within 1-65535",
                    r.port_range
                ));
            }
            if r.to.is_empty() {
                e.push(format!("{k}.to: at least one address"));
            }
            for (j, a) in r.to.iter().enumerate() {
                if a.is_ipv4() != r.source.addr().is_ipv4() {
                    e.push(format!(
                        "{k}.to[{j}]: {a} is {} but the source {} is {}",
                        family(*a),
                        r.source,
                        family(r.source.addr())
                    ));
                } else if port.is_some_and(|p| !p.addresses.iter().any(|n| n.addr() == *a)) {
                    e.push(format!(
                        "{k}.to[{j}]: {a} is not an address of port `{}`",
                        r.port
                    ));
                }
            }
            for (j, other) in self.snat[..i].iter().enumerate() {
                if other.port == r.port
                    && other.source.addr().is_ipv4() == r.source.addr().is_ipv4()
                    && overlaps(&other.source, &r.source)
                {
                    e.push(format!(
                        "{k}.source: {} overlaps snat[{j}].source {} on port `{}`",
                        r.source, other.source, r.port
                    ));
                }
            }
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(Errors(e))
        }
    }
}

impl Config {
    /// The BGP router id: `bgp.router_id`, else the first IPv4 address of the first port
    /// that has one.
    pub fn router_id(&self) -> Option<Ipv4Addr> {
        self.bgp.as_ref()?.router_id.or_else(|| {
            self.ports
                .iter()
                .flat_map(|p| &p.addresses)
                .find_map(|n| match n.addr() {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
        })
    }

    fn validate_bgp(&self, b: &BgpConf, own: &dyn Fn(IpAddr) -> bool) -> Vec<String> {
        const AS_RANGE: std::ops::RangeInclusive<u32> = 1..=4_294_967_294;
        let mut e = Vec::new();
        if !AS_RANGE.contains(&b.local_as) {
            e.push(format!(
                "bgp.local_as: {} is reserved; must be 1..=4294967294",
                b.local_as
            ));
        }
        match (b.router_id, self.router_id()) {
            (Some(id), _) if id.is_unspecified() => {
                e.push("bgp.router_id: must not be 0.0.0.0".into())
            }
            (_, None) => {
                e.push("bgp.router_id: no port has an IPv4 address to take it from; set it".into())
            }
            _ => {}
        }
        if b.peers.is_empty() {
            e.push("bgp.peers: at least one peer is required".into());
        }
        let mut seen = HashSet::new();
        for (i, p) in b.peers.iter().enumerate() {
            let k = format!("bgp.peers[{i}]");
            let a = p.address;
            if !AS_RANGE.contains(&p.remote_as) {
                e.push(format!(
                    "{k}.remote_as: {} is reserved; must be 1..=4294967294",
                    p.remote_as
                ));
            }
            if p.hold_time_s.is_some_and(|h| h < 3) {
                e.push(format!("{k}.hold_time_s: must be 3..=65535 seconds"));
            }
            if !seen.insert(a) {
                e.push(format!("{k}.address: {a} is listed twice"));
            }
            let ip = IpAddr::V4(a);
            if !usable_host(ip) || own(ip) {
                e.push(format!(
                    "{k}.address: {a} cannot be a peer (own, broadcast, multicast or unspecified)"
                ));
                continue;
            }
            match self.facing(ip) {
                Some((_, true)) => {}
                Some((name, false)) => e.push(format!(
                    "{k}.address: {a} is reached through port `{name}`, which has no kernel_interface (BIRD talks to its peers through the exception path)"
                )),
                None => e.push(format!(
                    "{k}.address: {a} is not reachable through any kernel interface (on no port's subnet, behind no static route)"
                )),
            }
        }
        if b.withdraw_grace_s > 3600 {
            e.push("bgp.withdraw_grace_s: must be 0..=3600 seconds".into());
        }
        let bird = &b.bird;
        if !bird.binary.is_absolute() {
            e.push(format!(
                "bgp.bird.binary: `{}` must be an absolute path",
                bird.binary.display()
            ));
        }
        let sock = &bird.control_socket;
        // sun_path holds 108 bytes, NUL included.
        if !sock.is_absolute() || sock.as_os_str().len() > 100 || sock.file_name().is_none() {
            e.push(format!(
                "bgp.bird.control_socket: `{}` must be an absolute file path of at most 100 bytes",
                sock.display()
            ));
        }
        e
    }
}

/// Checks one service, prefixing errors with `k` (its key path).
pub fn validate_service(
    s: &ServiceConf,
    k: &str,
    connected: &dyn Fn(IpAddr) -> bool,
    own: &dyn Fn(IpAddr) -> bool,
    own_on: &dyn Fn(&str, IpAddr) -> bool,
    facing: &dyn Fn(IpAddr) -> Option<(String, bool)>,
) -> Vec<String> {
    let mut e = Vec::new();
    if !usable_host(s.vip) {
        e.push(format!(
            "{k}.vip: {} can never be a VIP (unspecified, broadcast, multicast or loopback)",
            s.vip
        ));
    }
    e.extend(check_name(&format!("{k}.name"), &s.name));
    if s.port == 0 {
        e.push(format!("{k}.port: must be 1..=65535"));
    }
    let mut seen = HashSet::new();
    for (j, b) in s.backends.iter().enumerate() {
        let bk = format!("{k}.backends[{j}]");
        let (a, port) = (b.address, b.port_in(s));
        if port == 0 {
            e.push(format!("{bk}.port: must be 1..=65535"));
        }
        if b.weight > 65535 {
            e.push(format!("{bk}.weight: must be 0..=65535"));
        }
        if matches!(s.forward, Forward::Dr | Forward::Tun) && port != s.port {
            e.push(format!(
                "{bk}.port: must equal the service port {} in {} mode (the port is not rewritten)",
                s.port, s.forward
            ));
        }
        if a.is_ipv4() != s.vip.is_ipv4() {
            e.push(format!(
                "{bk}.address: {a} is {} but the VIP {} is {} (a backend has its VIP's family)",
                family(a),
                s.vip,
                family(s.vip)
            ));
        } else if !usable_host(a) {
            e.push(format!(
                "{bk}.address: {a} can never be a backend (unspecified, broadcast, multicast or loopback)"
            ));
        } else if a == s.vip || own(a) {
            e.push(format!(
                "{bk}.address: {a} is {}",
                if a == s.vip {
                    "the service's VIP"
                } else {
                    "ferrovs's own address"
                }
            ));
        }
        if s.forward == Forward::Dr && !connected(a) {
            e.push(format!(
                "{bk}.address: {a} must be on a connected subnet of some port in dr mode"
            ));
        }
        if !seen.insert((a, port)) {
            e.push(format!("{bk}: {a}:{port} is listed twice"));
        }
        if s.health_check.is_some() {
            match facing(a) {
                Some((name, false)) => e.push(format!(
                    "{k}.health_check: backend {a} is reached through port `{name}`, which has no kernel_interface (probes leave through the exception path)"
                )),
                None => e.push(format!("{k}.health_check: no port reaches backend {a}")),
                Some((_, true)) => {}
            }
        }
    }
    if s.forward == Forward::Fnat && s.local_addresses.is_empty() {
        e.push(format!(
            "{k}.local_addresses: fnat needs at least one (an own address of the port facing the backends)"
        ));
    }
    if s.forward != Forward::Fnat && !s.local_addresses.is_empty() {
        e.push(format!("{k}.local_addresses: only for forward: fnat"));
    }
    if s.proxy_protocol.is_some() {
        if s.forward != Forward::Fnat {
            e.push(format!(
                "{k}.proxy_protocol: only for forward: fnat (the other modes leave the client's address in place)"
            ));
        }
        if s.protocol != Protocol::Tcp {
            e.push(format!("{k}.proxy_protocol: only for protocol: tcp"));
        }
    }
    let facing_ports: HashSet<String> = s
        .backends
        .iter()
        .filter_map(|b| facing(b.address).map(|f| f.0))
        .collect();
    for (j, a) in s.local_addresses.iter().enumerate() {
        let lk = format!("{k}.local_addresses[{j}]");
        if a.is_ipv4() != s.vip.is_ipv4() {
            e.push(format!(
                "{lk}: {a} is {} but the VIP {} is {}",
                family(*a),
                s.vip,
                family(s.vip)
            ));
        } else if !own(*a) {
            e.push(format!("{lk}: {a} is not an address of any port"));
        } else if let Some(p) = facing_ports.iter().find(|p| !own_on(p, *a)) {
            e.push(format!(
                "{lk}: {a} is not an address of port `{p}`, which faces backends of the service"
            ));
        }
        if s.local_addresses[..j].contains(a) {
            e.push(format!("{lk}: {a} is listed twice"));
        }
    }
    if let Some(h) = &s.health_check {
        let hk = format!("{k}.health_check");
        if h.rise == 0 {
            e.push(format!("{hk}.rise: must be at least 1"));
        }
        if h.fall == 0 {
            e.push(format!("{hk}.fall: must be at least 1"));
        }
        if h.interval_ms < 100 {
            e.push(format!("{hk}.interval_ms: must be at least 100"));
        }
        if h.timeout_ms == 0 || h.timeout_ms >= h.interval_ms {
            e.push(format!(
                "{hk}.timeout_ms: must be 1..{} (below interval_ms)",
                h.interval_ms
            ));
        }
        if h.port == Some(0) {
            e.push(format!("{hk}.port: must be 1..=65535"));
        }
        if h.kind == CheckKind::Tcp {
            for (key, set) in [
                ("path", h.path.is_some()),
                ("expect_status", h.expect_status.is_some()),
                ("host", h.host.is_some()),
            ] {
                if set {
                    e.push(format!("{hk}.{key}: only for type http"));
                }
            }
        }
        if h.path.as_ref().is_some_and(|p| {
            !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            e.push(format!("{hk}.path: must start with / and hold no spaces"));
        }
        if h.host
            .as_ref()
            .is_some_and(|x| x.is_empty() || x.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            e.push(format!("{hk}.host: must be a host name without spaces"));
        }
        if h.expect_status.is_some_and(|c| !(100..=599).contains(&c)) {
            e.push(format!("{hk}.expect_status: must be 100..=599"));
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports:
  - { name: wan, device: "net_pcap0,rx_pcap=a,tx_pcap=b", addresses: ["203.0.113.2/24"] }
  - { name: lan, device: "0000:3b:00.1", addresses: ["10.1.0.1/24"], mac: "02:00:00:00:0b:01" }
routes: [ { prefix: "0.0.0.0/0", via: "203.0.113.1" } ]
neighbors: [ { address: "203.0.113.1", mac: "02:00:00:00:00:01", port: wan } ]
services:
  - name: web
    vip: 203.0.113.10
    port: 80
    backends: [ { address: 10.1.0.10, port: 8080 }, { address: 10.1.0.11, port: 8080, weight: 0 } ]
  - { name: dr, vip: 203.0.113.20, port: 80, forward: dr, scheduler: mh, backends: [ { address: 10.1.0.10 } ] }
"#;

    #[test]
    fn defaults_and_good_config() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.flows.capacity, 1_048_576);
        assert_eq!(c.flows.timeouts.tcp_established, 900);
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:9180");
        assert_eq!(c.services[0].scheduler, SchedulerKind::Wrr);
        assert_eq!(c.services[0].protocol, Protocol::Tcp);
        assert_eq!(c.services[1].forward, Forward::Dr);
        assert_eq!(c.services[0].backends[0].weight, 1);
        assert_eq!(
            c.services[0].backends[0].address,
            Ipv4Addr::new(10, 1, 0, 10)
        );
        assert_eq!(c.ports[1].mac, Some("02:00:00:00:0b:01".parse().unwrap()));
        assert_eq!(c.routes[0].prefix.prefix_len(), 0);
        assert_eq!(c.dpdk.cores.0, vec![0, 1]);
        let min = load("ports: [ { name: p, device: net_null0 } ]").unwrap();
        assert_eq!(min.dpdk.cores.0, vec![0, 1, 2]);
        assert!(min.services.is_empty());
    }

    /// `health_check`: defaults, and each mistake named by its key.
    /// Each case of `base` with `from` replaced by `to` is refused, with an error that
    /// contains `want` (the key path and what is wrong).
    fn refused(base: &str, cases: &[(&str, &str, &str)]) {
        for &(from, to, want) in cases {
            assert!(base.contains(from), "{from}");
            let errs = load(&base.replacen(from, to, 1)).expect_err(want);
            assert!(
                errs.0.iter().any(|e| e.contains(want)),
                "want `{want}` in {errs:?}"
            );
        }
    }

    /// SYN cookies: the mode and threshold are read, with their defaults; a bad mode or a
    /// zero threshold is refused by key.
    #[test]
    fn syn_cookie_keys() {
        let base = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports: [ { name: wan, device: net_null0, addresses: ["203.0.113.2/24"] } ]
flows: { capacity: 4096, syn_cookies: always, syn_cookies_above: 100 }
services: [ { name: web, vip: "203.0.113.10", port: 80, backends: [ { address: "203.0.113.11" } ] } ]
"#;
        let c = load(base).unwrap();
        assert_eq!(c.flows.syn_cookies, SynCookiesMode::Always);
        assert_eq!(c.flows.syn_cookies_above(), 100);
        let d = load(&base.replace(", syn_cookies: always, syn_cookies_above: 100", "")).unwrap();
        assert_eq!(d.flows.syn_cookies, SynCookiesMode::Auto);
        assert_eq!(d.flows.syn_cookies_above(), 256);
        refused(
            base,
            &[
                (
                    "syn_cookies: always",
                    "syn_cookies: sometimes",
                    "flows.syn_cookies",
                ),
                (
                    "syn_cookies_above: 100",
                    "syn_cookies_above: 0",
                    "flows.syn_cookies_above",
                ),
            ],
        );
    }

    /// `neighbor_table.capacity`: taken as given, or sized for the subnets (a /16 fills
    /// the 65,536 ceiling, two /24s stay at the 1,024 floor); out-of-range values and a
    /// capacity below the static entries are refused by key.
    #[test]
    fn neighbor_table_keys() {
        let base = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports: [ { name: wan, device: net_null0, addresses: ["203.0.113.2/24", "10.9.0.1/16"] } ]
neighbors: [ { address: "203.0.113.1", mac: "02:00:00:00:00:01", port: wan } ]
neighbor_table: { capacity: 5000 }
"#;
        assert_eq!(load(base).unwrap().neighbor_capacity(), 5000);
        let sized = load(&base.replace("neighbor_table: { capacity: 5000 }\n", "")).unwrap();
        assert_eq!(sized.neighbor_capacity(), 65536);
        let small = load(&base.replace(", \"10.9.0.1/16\"", "").replace("5000", "~")).unwrap();
        assert_eq!(small.neighbor_capacity(), 1024);
        refused(
            base,
            &[
                ("capacity: 5000", "capacity: 8", "neighbor_table.capacity"),
                ("capacity: 5000", "capacity: 1", "neighbor_table.capacity"),
                ("capacity: 5000", "size: 5000", "neighbor_table"),
            ],
        );
    }

    /// Dual-stack ports, IPv6 routes, neighbors and services; a backend of the other
    /// family, a route with a next hop of the other family, overlapping IPv6 subnets and
    /// a multicast IPv6 VIP are refused by key.
    #[test]
    fn ipv6_keys() {
        let v6 = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports:
  - { name: wan, device: net_null0, addresses: ["203.0.113.2/24", "2001:db8:1::2/64"] }
  - { name: lan, device: net_null1, addresses: ["10.1.0.1/24", "fd00:1::1/64"] }
routes: [ { prefix: "::/0", via: "2001:db8:1::1" }, { prefix: "0.0.0.0/0", via: "203.0.113.1" } ]
neighbors: [ { address: "2001:db8:1::1", mac: "02:00:00:00:00:01", port: wan } ]
flows: { capacity: 4096, capacity_ipv6: 2048 }
services:
  - { name: web6, vip: "2001:db8:1::10", port: 80, backends: [ { address: "fd00:1::11" }, { address: "fd00:1::12" } ] }
  - { name: web, vip: "203.0.113.10", port: 80, backends: [ { address: "10.1.0.11" } ] }
  - { name: dr6, vip: "2001:db8:1::20", port: 80, forward: dr, scheduler: mh, backends: [ { address: "fd00:1::11" } ] }
"#;
        let c = load(v6).unwrap();
        assert_eq!(
            c.services[0].vip,
            "2001:db8:1::10".parse::<IpAddr>().unwrap()
        );
        assert_eq!(c.flows.capacity_ipv6(), 2048);
        assert_eq!(load(GOOD).unwrap().flows.capacity_ipv6(), 1_048_576 / 4);
        let cases = [
            ("{ address: \"fd00:1::11\" }, { address: \"fd00:1::12\" }", "{ address: \"10.1.0.11\" }, { address: \"fd00:1::12\" }",
             "services[0].backends[0].address: 10.1.0.11 is IPv4 but the VIP 2001:db8:1::10 is IPv6"),
            ("via: \"2001:db8:1::1\"", "via: \"203.0.113.1\"", "routes[0].via: 203.0.113.1 is IPv4 but the prefix ::/0 is IPv6"),
            ("\"fd00:1::1/64\"", "\"2001:db8:1::9/48\"", "ports[1].addresses[1]: `2001:db8:1::9/48` overlaps 2001:db8:1::2/64"),
            ("vip: \"2001:db8:1::10\"", "vip: \"ff02::1\"", "services[0].vip: ff02::1 can never be a VIP"),
            ("vip: \"2001:db8:1::20\"", "vip: \"2001:db8:1::20x\"", "services[2].vip: invalid IP address syntax"),
            ("address: \"fd00:1::11\" } ] }", "address: \"fd00:9::11\" } ] }", "services[2].backends[0].address: fd00:9::11 must be on a connected subnet"),
        ];
        refused(v6, &cases);
    }

    /// fnat: local addresses are own addresses of the port facing the backends (several
    /// of one subnet on one port are fine); missing, foreign, of the other family, or
    /// set on another mode: refused by key.
    #[test]
    fn fnat_keys() {
        let f = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports:
  - { name: wan, device: net_null0, addresses: ["203.0.113.2/24"] }
  - { name: lan, device: net_null1, addresses: ["10.1.0.1/24", "10.1.0.2/24", "fd00:1::1/64"] }
services:
  - { name: app, vip: "203.0.113.20", port: 443, forward: fnat, local_addresses: ["10.1.0.2"], backends: [ { address: "10.1.0.21", port: 8443 } ] }
"#;
        let c = load(f).unwrap();
        assert_eq!(c.services[0].forward, Forward::Fnat);
        assert_eq!(
            c.services[0].local_addresses,
            vec!["10.1.0.2".parse::<IpAddr>().unwrap()]
        );
        let cases = [
            ("local_addresses: [\"10.1.0.2\"], ", "", "services[0].local_addresses: fnat needs at least one"),
            ("[\"10.1.0.2\"]", "[\"10.1.0.9\"]", "services[0].local_addresses[0]: 10.1.0.9 is not an address of any port"),
            ("[\"10.1.0.2\"]", "[\"203.0.113.2\"]", "services[0].local_addresses[0]: 203.0.113.2 is not an address of port `lan`"),
            ("[\"10.1.0.2\"]", "[\"fd00:1::1\"]", "services[0].local_addresses[0]: fd00:1::1 is IPv6 but the VIP 203.0.113.20 is IPv4"),
            ("forward: fnat", "forward: nat", "services[0].local_addresses: only for forward: fnat"),
            ("[\"10.1.0.2\"]", "[\"10.1.0.2\", \"10.1.0.2\"]", "services[0].local_addresses[1]: 10.1.0.2 is listed twice"),
            ("forward: fnat,", "forward: fnat, protocol: udp, proxy_protocol: v2,", "services[0].proxy_protocol: only for protocol: tcp"),
            ("forward: fnat, local_addresses: [\"10.1.0.2\"],", "forward: nat, proxy_protocol: v2,", "services[0].proxy_protocol: only for forward: fnat"),
            ("forward: fnat,", "forward: fnat, proxy_protocol: v1,", "services[0].proxy_protocol: unknown variant `v1`"),
            ("\"10.1.0.2/24\"", "\"10.1.0.2/24\", \"203.0.113.9/25\"", "ports[1].addresses[2]: `203.0.113.9/25` overlaps 203.0.113.2/24 of port `wan`"),
        ];
        refused(f, &cases);
    }

    #[test]
    fn snat_keys() {
        let f = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports:
  - { name: wan, device: net_null0, addresses: ["203.0.113.2/24", "203.0.113.3/24"] }
  - { name: lan, device: net_null1, addresses: ["10.1.0.1/24"] }
snat:
  - { source: "10.1.0.0/24", port: wan, to: ["203.0.113.2", "203.0.113.3"], port_range: "1024-65535" }
"#;
        let c = load(f).unwrap();
        assert_eq!(c.snat[0].ports(), Some((1024, 65535)));
        let cases = [
            ("port: wan,", "port: wlan,", "snat[0].port: no port named `wlan`"),
            ("\"203.0.113.3\"]", "\"203.0.113.9\"]", "snat[0].to[1]: 203.0.113.9 is not an address of port `wan`"),
            ("\"1024-65535\"", "\"2000-1000\"", "snat[0].port_range: `2000-1000` is not `low-high`"),
            ("to: [\"203.0.113.2\", \"203.0.113.3\"]", "to: []", "snat[0].to: at least one address"),
            ("\"203.0.113.3\"]", "\"fd00::1\"]", "snat[0].to[1]: fd00::1 is IPv6 but the source 10.1.0.0/24 is IPv4"),
            (
                "port_range: \"1024-65535\" }",
                "port_range: \"1024-65535\" }\n  - { source: \"10.1.0.128/25\", port: wan, to: [\"203.0.113.2\"] }",
                "snat[1].source: 10.1.0.128/25 overlaps snat[0].source 10.1.0.0/24 on port `wan`",
            ),
            ("source: \"10.1.0.0/24\"", "source: \"10.1.0.0/33\"", "snat[0].source: invalid"),
        ];
        refused(f, &cases);
    }

    #[test]
    fn health_check_keys() {
        let good = GOOD.replace(
            "mac: \"02:00:00:00:0b:01\" }",
            "mac: \"02:00:00:00:0b:01\", kernel_interface: fv-lan }",
        );
        let with = |check: &str| {
            good.replacen(
                "    port: 80\n    backends",
                &format!("    port: 80\n    health_check: {check}\n    backends"),
                1,
            )
        };
        let c = load(&with("{ type: http, path: /healthz }")).unwrap();
        let h = c.services[0].health_check.as_ref().unwrap();
        assert_eq!(
            (h.kind, h.interval_ms, h.timeout_ms, h.rise, h.fall),
            (CheckKind::Http, 2000, 1000, 2, 3)
        );
        assert_eq!(c.services[0].flows_on_backend_down, OnBackendDown::Remove);
        let cases = [
            (
                "{ type: icmp }",
                "services[0].health_check.type: unknown variant `icmp`",
            ),
            (
                "{ type: tcp, rise: 0 }",
                "services[0].health_check.rise: must be at least 1",
            ),
            (
                "{ type: tcp, fall: 0 }",
                "services[0].health_check.fall: must be at least 1",
            ),
            (
                "{ type: tcp, interval_ms: 1000, timeout_ms: 1000 }",
                "services[0].health_check.timeout_ms: must be 1..1000",
            ),
            (
                "{ type: tcp, path: /healthz }",
                "services[0].health_check.path: only for type http",
            ),
            (
                "{ type: tcp, expect_status: 200 }",
                "services[0].health_check.expect_status: only for type http",
            ),
            (
                "{ type: http, path: healthz }",
                "services[0].health_check.path: must start with /",
            ),
            (
                "{ type: http, expect_status: 999 }",
                "services[0].health_check.expect_status: must be 100..=599",
            ),
            (
                "{ type: tcp, intervall_ms: 5 }",
                "services[0].health_check.intervall_ms: unknown field",
            ),
        ];
        for (check, want) in cases {
            let errs = load(&with(check)).expect_err(check);
            assert!(
                errs.0.iter().any(|e| e.contains(want)),
                "{check}: want `{want}` in {errs:?}"
            );
        }
        // lan has no kernel interface in GOOD: the probes would have no way out.
        let errs = load(&GOOD.replacen(
            "    port: 80\n    backends",
            "    port: 80\n    health_check: { type: tcp }\n    backends",
            1,
        ))
        .unwrap_err();
        assert!(
            errs.0.iter().any(|e| e.contains(
                "services[0].health_check: backend 10.1.0.10 is reached through port `lan`, which has no kernel_interface"
            )),
            "{errs:?}"
        );
    }

    #[test]
    fn bgp_keys() {
        // wan (203.0.113.2/24) has a kernel interface; lan (10.1.0.1/24) has none; no
        // default route (a peer behind a static route is reached multihop).
        let good = GOOD
            .replace(
                "addresses: [\"203.0.113.2/24\"] }",
                "addresses: [\"203.0.113.2/24\"], kernel_interface: fv-wan }",
            )
            .replace("prefix: \"0.0.0.0/0\"", "prefix: \"192.0.2.0/24\"");
        let with = |bgp: &str| format!("{good}bgp: {bgp}\n");
        let c = load(&with(
            "{ local_as: 65001, peers: [ { address: 203.0.113.1, remote_as: 65000 } ] }",
        ))
        .unwrap();
        let b = c.bgp.as_ref().unwrap();
        assert_eq!(b.withdraw_grace_s, 2);
        assert_eq!(b.bird, BirdConf::default());
        assert_eq!(
            b.bird_config_path(),
            PathBuf::from("/run/ferrovs/bird.ctl.conf")
        );
        assert_eq!(
            c.router_id(),
            Some(Ipv4Addr::new(203, 0, 113, 2)),
            "first port's first address"
        );
        assert!(
            warnings(&c).is_empty(),
            "the dr service uses mh; nat moves break anyway"
        );
        let rr = load(
            &with("{ local_as: 65001, peers: [ { address: 203.0.113.1, remote_as: 65000 } ] }")
                .replace("scheduler: mh", "scheduler: rr"),
        )
        .unwrap();
        assert_eq!(
            warnings(&rr),
            vec!["services[1].scheduler: rr with bgp: a flow that ECMP moves to another box keeps its backend only with mh".to_string()]
        );
        let peer = |a: &str| {
            format!("{{ local_as: 65001, peers: [ {{ address: {a}, remote_as: 65000 }} ] }}")
        };
        let cases = [
            (
                "{ local_as: 0, peers: [ { address: 203.0.113.1, remote_as: 65000 } ] }".to_string(),
                "bgp.local_as: 0 is reserved",
            ),
            (
                "{ local_as: 65001, peers: [ { address: 203.0.113.1, remote_as: 0 } ] }".into(),
                "bgp.peers[0].remote_as: 0 is reserved",
            ),
            (peer("198.51.100.1"), "bgp.peers[0].address: 198.51.100.1 is not reachable through any kernel interface"),
            (
                peer("10.1.0.254"),
                "bgp.peers[0].address: 10.1.0.254 is reached through port `lan`, which has no kernel_interface",
            ),
            (peer("203.0.113.2"), "bgp.peers[0].address: 203.0.113.2 cannot be a peer"),
            ("{ local_as: 65001 }".into(), "bgp.peers: at least one peer"),
            (
                "{ local_as: 65001, peers: [ { address: 203.0.113.1, remote_as: 1, hold_time_s: 1 } ] }".into(),
                "bgp.peers[0].hold_time_s: must be 3..=65535",
            ),
            (
                "{ local_as: 65001, router_id: 0.0.0.0, peers: [ { address: 203.0.113.1, remote_as: 1 } ] }".into(),
                "bgp.router_id: must not be 0.0.0.0",
            ),
            (
                "{ local_as: 65001, peers: [ { address: 203.0.113.1, remote_as: 1 } ], bird: { control_socket: bird.ctl } }".into(),
                "bgp.bird.control_socket: `bird.ctl` must be an absolute file path",
            ),
            ("{ local_as: 65001, peer: [] }".into(), "bgp.peer: unknown field `peer`"),
            ("{ local_as: -1 }".into(), "bgp.local_as: invalid value"),
        ];
        for (bgp, want) in cases {
            let errs = load(&with(&bgp)).expect_err(&bgp);
            assert!(
                errs.0.iter().any(|e| e.contains(want)),
                "{bgp}: want `{want}` in {errs:?}"
            );
        }
        // A missing binary is this machine's problem: --check and start-up say so.
        let errs = load_for_host(&with(
            "{ local_as: 65001, peers: [ { address: 203.0.113.1, remote_as: 1 } ], bird: { binary: /nonexistent/bird } }",
        ))
        .unwrap_err();
        assert!(
            errs.0
                .iter()
                .any(|e| e.starts_with("bgp.bird.binary: /nonexistent/bird: No such file")),
            "{errs:?}"
        );
    }

    /// Each invalid config fails naming the key.
    #[test]
    fn invalid_configs_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "weight",
                "weight: 0 }",
                "services[0].backends[1].weight: must be 0..=65535",
            ),
            (
                "unknown key",
                "dpdk: { cores: \"0-1\", hugepages: false, memory_mb: 256 }",
                "dpdk.hugepage: unknown field `hugepage`",
            ),
            (
                "scheduler",
                "forward: dr, scheduler: mh",
                "services[1].scheduler: `xx` must be rr, wrr, lc, wlc, sh or mh",
            ),
            (
                "forward",
                "forward: dr, scheduler: mh",
                "services[1].forward: `fullnat` must be nat, dr, tun or fnat",
            ),
            (
                "dr port",
                "address: 10.1.0.10 } ] }",
                "services[1].backends[0].port: must equal the service port 80",
            ),
            (
                "dr connected",
                "address: 10.1.0.10 } ] }",
                "services[1].backends[0].address: 10.9.0.10 must be on a connected subnet",
            ),
            ("cores", "cores: \"0-1\"", "dpdk.cores: `0` has 1 core(s)"),
            ("mac", "mac: \"02:00:00:00:0b:01\"", "ports[1].mac: "),
            (
                "overlap",
                "addresses: [\"10.1.0.1/24\"]",
                "ports[1].addresses[0]: `203.0.113.9/24` overlaps",
            ),
            (
                "route port",
                "via: \"203.0.113.1\" }",
                "routes[0].port: no port named `nope`",
            ),
            (
                "neighbor",
                "port: wan }",
                "neighbors[0].port: no port named `x`",
            ),
            (
                "vip",
                "vip: 203.0.113.10",
                "services[0].vip: invalid IP address",
            ),
            (
                "type",
                "port: 80\n    backends",
                "services[0].port: invalid type",
            ),
        ];
        let edits: &[(&str, &str)] = &[
            ("weight: 0 }", "weight: 70000 }"),
            (
                "dpdk: { cores: \"0-1\", hugepages: false, memory_mb: 256 }",
                "dpdk: { cores: \"0-1\", hugepage: false }",
            ),
            ("forward: dr, scheduler: mh", "forward: dr, scheduler: xx"),
            (
                "forward: dr, scheduler: mh",
                "forward: fullnat, scheduler: mh",
            ),
            (
                "address: 10.1.0.10 } ] }",
                "address: 10.1.0.10, port: 81 } ] }",
            ),
            ("address: 10.1.0.10 } ] }", "address: 10.9.0.10 } ] }"),
            ("cores: \"0-1\"", "cores: \"0\""),
            ("mac: \"02:00:00:00:0b:01\"", "mac: \"02:00:00:00:0b\""),
            (
                "addresses: [\"10.1.0.1/24\"]",
                "addresses: [\"203.0.113.9/24\"]",
            ),
            (
                "via: \"203.0.113.1\" }",
                "via: \"203.0.113.1\", port: nope }",
            ),
            ("port: wan }", "port: x }"),
            ("vip: 203.0.113.10", "vip: 203.0.113.300"),
            ("port: 80\n    backends", "port: eighty\n    backends"),
        ];
        for ((name, _, want), (from, to)) in cases.iter().zip(edits) {
            assert!(GOOD.contains(from), "{name}: fixture");
            let bad = GOOD.replacen(from, to, 1);
            let errs = load(&bad).expect_err(name);
            assert!(
                errs.0.iter().any(|e| e.contains(want)),
                "{name}: want `{want}` in {errs:?}"
            );
        }
    }

    #[test]
    fn all_errors_are_listed() {
        let bad = GOOD
            .replace("weight: 0 }", "weight: -1 }")
            .replace("scheduler: mh", "scheduler: zz");
        let errs = load(&bad).unwrap_err();
        assert_eq!(errs.0.len(), 2, "{errs:?}");
    }

    /// Configs that parse but can never work, as an operator writes them by mistake: each
    /// is refused naming its key (the checks `--check` and start-up share).
    #[test]
    fn configs_that_can_never_work_are_refused() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "vip: 203.0.113.10",
                "vip: 0.0.0.0",
                "services[0].vip: 0.0.0.0 can never be a VIP",
            ),
            (
                "vip: 203.0.113.10",
                "vip: 255.255.255.255",
                "services[0].vip: 255.255.255.255 can never",
            ),
            (
                "{ address: 10.1.0.10, port: 8080 }",
                "{ address: 203.0.113.10, port: 8080 }",
                "services[0].backends[0].address: 203.0.113.10 is the service's VIP",
            ),
            (
                "{ address: 10.1.0.10, port: 8080 }",
                "{ address: 10.1.0.1, port: 8080 }",
                "services[0].backends[0].address: 10.1.0.1 is ferrovs's own address",
            ),
            (
                "{ address: 10.1.0.10, port: 8080 }",
                "{ address: 224.0.0.5, port: 8080 }",
                "services[0].backends[0].address: 224.0.0.5 can never be a backend",
            ),
            (
                "mac: \"02:00:00:00:00:01\"",
                "mac: \"ff:ff:ff:ff:ff:ff\"",
                "neighbors[0].mac: ff:ff:ff:ff:ff:ff is not a unicast MAC",
            ),
            (
                "via: \"203.0.113.1\"",
                "via: \"203.0.113.2\"",
                "routes[0].via: 203.0.113.2 is ferrovs's own address",
            ),
            (
                "device: \"0000:3b:00.1\"",
                "device: \"net_pcap1,tx_pcap=b,rx_pcap=a\"",
                "ports[1].device: `net_pcap1,tx_pcap=b,rx_pcap=a` is the same device as ports[0]",
            ),
            (
                "name: web",
                "name: \"we\\nb\"",
                "services[0].name: `we\\nb` must be 1 to 64 of",
            ),
            (
                "name: wan",
                "name: \"w{an}\"",
                "ports[0].name: `w{an}` must be 1 to 64 of",
            ),
            (
                "name: wan,",
                "name: wan, kernel_interface: \"averylonginterface\",",
                "ports[0].kernel_interface: `averylonginterface` is not an interface name",
            ),
        ];
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "fixture: {from}");
            let errs = load(&GOOD.replacen(from, to, 1)).expect_err(want);
            assert!(
                errs.0.iter().any(|e| e.starts_with(want)),
                "want `{want}` in {errs:?}"
            );
        }
    }

    /// Input no config needs is refused before the parser sees it.
    #[test]
    fn oversized_and_deeply_nested_input_is_refused_at_once() {
        let deep = format!("ports: {}", "[".repeat(100_000));
        let t = std::time::Instant::now();
        let errs = load(&deep).unwrap_err();
        assert!(errs.0[0].contains("nested more than 64 levels"), "{errs:?}");
        eprintln!("100k nested brackets refused in {:?}", t.elapsed());
        let big = format!("{GOOD}# {}\n", "x".repeat(MAX_CONFIG_BYTES));
        assert!(load(&big).unwrap_err().0[0].contains("bytes; a config may have at most"));
        // Brackets inside quotes and comments do not count.
        let quoted = GOOD.replace("name: web", &format!("name: web # {}", "[".repeat(100)));
        assert!(load(&quoted).is_ok(), "{:?}", load(&quoted));
        assert!(bounded(&format!("a: \"{}\"", "[".repeat(100))).is_ok());
        assert!(
            bounded(&format!("a: b'c\nd: {}", "[".repeat(100))).is_err(),
            "an apostrophe inside a word is not a quote"
        );
    }

    #[test]
    fn risky_settings_are_warnings() {
        let open =
            load(&GOOD.replace("dpdk:", "api: { listen: \"0.0.0.0:9180\" }\ndpdk:")).unwrap();
        assert!(
            warnings(&open)[0].starts_with("api.listen: 0.0.0.0:9180 is not a loopback address")
        );
        assert!(warnings(&load(GOOD).unwrap()).is_empty());
    }

    /// One mistake per section and per service: each is reported, not only the first.
    #[test]
    fn every_section_reports_its_own_errors() {
        let bad = GOOD
            .replace("mac: \"02:00:00:00:0b:01\"", "mac: \"zz\"")
            .replace("via: \"203.0.113.1\" }", "via: \"nowhere\" }")
            .replace("vip: 203.0.113.10", "vip: 203.0.113.300")
            .replace("scheduler: mh", "scheduler: zz")
            .replace("hugepages: false", "hugepages: 7");
        let errs = load(&bad).unwrap_err();
        for want in [
            "ports[1].mac",
            "routes[0].via",
            "services[0].vip",
            "services[1].scheduler",
            "dpdk.hugepages",
        ] {
            assert!(
                errs.0.iter().any(|e| e.starts_with(want)),
                "want {want} in {errs:?}"
            );
        }
        assert_eq!(errs.0.len(), 5, "{errs:?}");
        // A section that fails to read does not hide the checks across elements.
        let dup = GOOD
            .replace("hugepages: false", "hugepages: 7")
            .replace("name: dr,", "name: web,");
        let errs = load(&dup).unwrap_err();
        assert!(
            errs.0.iter().any(|e| e.starts_with("dpdk.hugepages")),
            "{errs:?}"
        );
        assert!(
            errs.0
                .iter()
                .any(|e| e.starts_with("services[1].name: `web` is used")),
            "{errs:?}"
        );
        let top = load("ports: []\nservice: []\n").unwrap_err();
        assert!(
            top.0
                .iter()
                .any(|e| e.starts_with("unknown field `service`")),
            "{top:?}"
        );
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_cores("0-2"), Some(vec![0, 1, 2]));
        assert_eq!(parse_cores("1,3-4"), Some(vec![1, 3, 4]));
        assert_eq!(parse_cores("2-1"), None);
        assert_eq!(parse_cores("1,1"), None);
        assert_eq!(parse_cores("x"), None);
    }
}

#[cfg(test)]
mod examples {
    /// The shipped examples are valid configs.
    #[test]
    fn examples_pass_check() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                let text = std::fs::read_to_string(&p).unwrap();
                if let Err(errs) = super::load(&text) {
                    panic!("{}: {errs}", p.display());
                }
                n += 1;
            }
        }
        assert!(n >= 3);
    }
}
