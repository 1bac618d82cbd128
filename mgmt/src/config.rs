//! The YAML configuration (contract: `shared/design/CONFIG.md`), parsed strictly
//! (unknown keys are errors) and validated with every error naming its key path.
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{same_subnet, Forward};
use dataplane::wire::MacAddr;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dpdk: DpdkConf,
    pub ports: Vec<PortConf>,
    #[serde(default)]
    pub routes: Vec<RouteConf>,
    #[serde(default)]
    pub neighbors: Vec<NeighborConf>,
    #[serde(default)]
    pub flows: FlowsConf,
    #[serde(default)]
    pub api: ApiConf,
    #[serde(default)]
    pub services: Vec<ServiceConf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DpdkConf {
    pub cores: String,
    pub memory_mb: u32,
    pub hugepages: bool,
    pub file_prefix: String,
    pub extra_args: Vec<String>,
}
impl Default for DpdkConf {
    fn default() -> Self {
        DpdkConf {
            cores: "0-2".into(),
            memory_mb: 1024,
            hugepages: true,
            file_prefix: "ferrovs".into(),
            extra_args: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConf {
    pub name: String,
    pub device: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub mtu: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConf {
    pub prefix: String,
    pub via: String,
    #[serde(default)]
    pub port: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NeighborConf {
    pub address: String,
    pub mac: String,
    pub port: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConf {
    pub capacity: i64,
    pub timeouts: TimeoutsConf,
}
impl Default for FlowsConf {
    fn default() -> Self {
        FlowsConf {
            capacity: 1_048_576,
            timeouts: TimeoutsConf::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConf {
    pub tcp_syn: i64,
    pub tcp_established: i64,
    pub tcp_closing: i64,
    pub udp: i64,
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConf {
    pub listen: String,
    pub token_file: Option<String>,
}
impl Default for ApiConf {
    fn default() -> Self {
        ApiConf {
            listen: "127.0.0.1:9180".into(),
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConf {
    pub name: String,
    pub vip: String,
    pub port: i64,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    #[serde(default = "default_forward")]
    pub forward: String,
    #[serde(default)]
    pub backends: Vec<BackendConf>,
}
impl ServiceConf {
    /// The position of the backend at `addr:port` (a backend's port defaults to the
    /// service's).
    pub fn backend_index(&self, addr: Ipv4Addr, port: u16) -> Option<usize> {
        self.backends.iter().position(|b| {
            b.address.parse() == Ok(addr) && b.port.unwrap_or(self.port) == port as i64
        })
    }
}

fn default_protocol() -> String {
    "tcp".into()
}
fn default_scheduler() -> String {
    "wrr".into()
}
fn default_forward() -> String {
    "nat".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendConf {
    pub address: String,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default = "default_weight")]
    pub weight: i64,
}
fn default_weight() -> i64 {
    1
}

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

/// Parses YAML text; a syntax or type error names its key path.
pub fn parse(text: &str) -> Result<Config, Errors> {
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        Errors(vec![if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }])
    })
}

/// Parses and validates: the same checks for the file, `--check`, reload and API writes.
pub fn load(text: &str) -> Result<Config, Errors> {
    let c = parse(text)?;
    c.validate()?;
    Ok(c)
}

pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let l: u8 = l.parse().ok()?;
    (l <= 32).then_some(())?;
    Some((a.parse().ok()?, l))
}

/// Parses an EAL core list ("0-2", "0,2,4", "1-3,6").
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
    /// Every validation error, each naming its key path.
    pub fn validate(&self) -> Result<(), Errors> {
        let mut e = Vec::new();
        let cores = parse_cores(&self.dpdk.cores);
        match &cores {
            None => e.push(format!("dpdk.cores: `{}` is not a core list like \"0-2\" or \"0,2,4\"", self.dpdk.cores)),
            Some(c) if c.len() < 2 => e.push(format!(
                "dpdk.cores: `{}` has {} core(s); ferrovs needs at least 2 (one management core, then one per worker)",
                self.dpdk.cores,
                c.len()
            )),
            Some(c) if c.iter().any(|&x| x >= 128) => e.push("dpdk.cores: core ids must be below 128 (RTE_MAX_LCORE)".into()),
            _ => {}
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
        let mut subnets: Vec<(String, Ipv4Addr, u8)> = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            let k = format!("ports[{i}]");
            if p.name.is_empty() {
                e.push(format!("{k}.name: must not be empty"));
            } else if !names.insert(p.name.as_str()) {
                e.push(format!("{k}.name: `{}` is used by another port", p.name));
            }
            if p.device.is_empty() {
                e.push(format!("{k}.device: must be a PCI address or a vdev spec"));
            }
            if let Some(m) = &p.mac {
                if let Err(why) = m.parse::<MacAddr>() {
                    e.push(format!("{k}.mac: `{m}`: {why}"));
                }
            }
            if let Some(mtu) = p.mtu {
                if !(68..=9216).contains(&mtu) {
                    e.push(format!("{k}.mtu: must be 68..=9216"));
                }
            }
            for (j, a) in p.addresses.iter().enumerate() {
                match parse_cidr(a) {
                    None => e.push(format!("{k}.addresses[{j}]: `{a}` is not an IPv4 address with prefix like 10.1.0.1/24")),
                    Some((addr, len)) => {
                        for (other, n, l) in &subnets {
                            if same_subnet(addr, *n, (*l).min(len)) {
                                e.push(format!("{k}.addresses[{j}]: `{a}` overlaps {n}/{l} of port `{other}`"));
                            }
                        }
                        subnets.push((p.name.clone(), addr, len));
                    }
                }
            }
        }
        let connected = |a: Ipv4Addr| subnets.iter().any(|(_, n, l)| same_subnet(a, *n, *l));
        for (i, r) in self.routes.iter().enumerate() {
            let k = format!("routes[{i}]");
            if parse_cidr(&r.prefix).is_none() {
                e.push(format!(
                    "{k}.prefix: `{}` is not a prefix like 10.8.0.0/16",
                    r.prefix
                ));
            }
            match r.via.parse::<Ipv4Addr>() {
                Err(_) => e.push(format!("{k}.via: `{}` is not an IPv4 address", r.via)),
                Ok(v) if r.port.is_none() && !connected(v) => e.push(format!(
                    "{k}.via: {v} is not on a connected subnet of any port (name `port:`)"
                )),
                _ => {}
            }
            if let Some(p) = &r.port {
                if !names.contains(p.as_str()) {
                    e.push(format!("{k}.port: no port named `{p}`"));
                }
            }
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            let k = format!("neighbors[{i}]");
            if n.address.parse::<Ipv4Addr>().is_err() {
                e.push(format!(
                    "{k}.address: `{}` is not an IPv4 address",
                    n.address
                ));
            }
            if let Err(why) = n.mac.parse::<MacAddr>() {
                e.push(format!("{k}.mac: `{}`: {why}", n.mac));
            }
            if !names.contains(n.port.as_str()) {
                e.push(format!("{k}.port: no port named `{}`", n.port));
            }
        }
        if !(1..=(i32::MAX as i64)).contains(&self.flows.capacity) {
            e.push("flows.capacity: must be 1..=2147483647".into());
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
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            e.push(format!(
                "api.listen: `{}` is not an address:port",
                self.api.listen
            ));
        }
        let mut snames = HashSet::new();
        let mut keys = HashMap::new();
        let mut nbackends = 0;
        for (i, s) in self.services.iter().enumerate() {
            let k = format!("services[{i}]");
            e.extend(validate_service(s, &k, &connected));
            if !snames.insert(s.name.as_str()) {
                e.push(format!("{k}.name: `{}` is used by another service", s.name));
            }
            if let Ok(vip) = s.vip.parse::<Ipv4Addr>() {
                if let Some(prev) = keys.insert((vip, s.port, s.protocol.clone()), s.name.clone()) {
                    e.push(format!(
                        "{k}: {}:{}/{} is already service `{prev}`",
                        s.vip, s.port, s.protocol
                    ));
                }
            }
            nbackends += s.backends.len();
        }
        if self.services.len() > dataplane::snapshot::MAX_SERVICES {
            e.push(format!(
                "services: at most {} services",
                dataplane::snapshot::MAX_SERVICES
            ));
        }
        if nbackends > dataplane::snapshot::MAX_BACKEND_IDS {
            e.push(format!(
                "services: at most {} backends in all",
                dataplane::snapshot::MAX_BACKEND_IDS
            ));
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(Errors(e))
        }
    }

    pub fn cores(&self) -> Vec<usize> {
        parse_cores(&self.dpdk.cores).unwrap_or_default()
    }
}

/// Checks one service (also used for API writes), prefixing errors with `k`.
pub fn validate_service(
    s: &ServiceConf,
    k: &str,
    connected: &dyn Fn(Ipv4Addr) -> bool,
) -> Vec<String> {
    let mut e = Vec::new();
    if s.name.is_empty() || s.name.contains(['/', ' ']) {
        e.push(format!(
            "{k}.name: must be a non-empty name without '/' or spaces"
        ));
    }
    if s.vip.parse::<Ipv4Addr>().is_err() {
        e.push(format!("{k}.vip: `{}` is not an IPv4 address", s.vip));
    }
    if !(1..=65535).contains(&s.port) {
        e.push(format!("{k}.port: must be 1..=65535"));
    }
    if !matches!(s.protocol.as_str(), "tcp" | "udp") {
        e.push(format!("{k}.protocol: `{}` must be tcp or udp", s.protocol));
    }
    if SchedulerKind::parse(&s.scheduler).is_none() {
        e.push(format!(
            "{k}.scheduler: `{}` must be one of rr, wrr, lc, wlc, sh, mh",
            s.scheduler
        ));
    }
    let fwd = Forward::parse(&s.forward);
    if fwd.is_none() {
        e.push(format!(
            "{k}.forward: `{}` must be nat, dr or tun",
            s.forward
        ));
    }
    let mut seen = HashSet::new();
    for (j, b) in s.backends.iter().enumerate() {
        let bk = format!("{k}.backends[{j}]");
        let addr = b.address.parse::<Ipv4Addr>();
        if addr.is_err() {
            e.push(format!(
                "{bk}.address: `{}` is not an IPv4 address",
                b.address
            ));
        }
        let port = b.port.unwrap_or(s.port);
        if !(1..=65535).contains(&port) {
            e.push(format!("{bk}.port: must be 1..=65535"));
        }
        if !(0..=65535).contains(&b.weight) {
            e.push(format!("{bk}.weight: must be 0..=65535"));
        }
        if matches!(fwd, Some(Forward::Dr | Forward::Tun)) && port != s.port {
            e.push(format!(
                "{bk}.port: must equal the service port {} in {} mode (the port is not rewritten)",
                s.port, s.forward
            ));
        }
        if let Ok(a) = addr {
            if fwd == Some(Forward::Dr) && !connected(a) {
                e.push(format!(
                    "{bk}.address: {a} must be on a connected subnet of some port in dr mode"
                ));
            }
            if !seen.insert((a, port)) {
                e.push(format!("{bk}: {a}:{port} is listed twice"));
            }
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
        assert_eq!(c.api.listen, "127.0.0.1:9180");
        assert_eq!(c.services[0].scheduler, "wrr");
        assert_eq!(c.services[0].protocol, "tcp");
        assert_eq!(c.services[0].backends[0].weight, 1);
        assert_eq!(c.cores(), vec![0, 1]);
        let min = load("ports: [ { name: p, device: net_null0 } ]").unwrap();
        assert_eq!(min.dpdk.cores, "0-2");
        assert!(min.services.is_empty());
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
                "dpdk: unknown field `hugepage`",
            ),
            (
                "scheduler",
                "forward: dr, scheduler: mh",
                "services[1].scheduler: `xx` must be one of",
            ),
            (
                "forward",
                "forward: dr, scheduler: mh",
                "services[1].forward: `fnat`",
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
            (
                "mac",
                "mac: \"02:00:00:00:0b:01\"",
                "ports[1].mac: `02:00:00:00:0b`",
            ),
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
                "services[0].vip: `203.0.113.300`",
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
            ("forward: dr, scheduler: mh", "forward: fnat, scheduler: mh"),
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
