//! Turns a validated [`Config`] and the [`Runtime`] state into the parts of a dataplane
//! [`Snapshot`], keeping service and backend ids (and scheduler positions) stable across
//! rebuilds, so flows keep their backend over reloads and API changes. The config is
//! typed and validated, so nothing here parses or fails.
#![forbid(unsafe_code)]
use crate::config::Config;
use crate::runtime::Runtime;
use dataplane::sched::Cursor;
use dataplane::snapshot::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Stable identities across snapshots.
#[derive(Default)]
pub struct Registry {
    services: HashMap<String, (u16, Arc<Cursor>)>,
    backends: HashMap<(String, IpAddr, u16), u32>,
}

/// The lowest id below `max` that `used` does not hold. `Config::validate` caps the
/// counts and [`Registry::retain`] runs before each build, so one is always free.
fn free_id<T: Copy + Ord + TryFrom<usize>>(used: impl Iterator<Item = T>, max: usize) -> T {
    let mut used: Vec<T> = used.collect();
    used.sort_unstable();
    (0..max)
        .filter_map(|i| T::try_from(i).ok())
        .find(|i| used.binary_search(i).is_err())
        .expect("id space larger than the validated count")
}

impl Registry {
    /// The id of a backend that is configured.
    pub fn backend_id(&self, svc: &str, a: IpAddr, p: u16) -> Option<u32> {
        self.backends.get(&(svc.to_owned(), a, p)).copied()
    }
    fn service(&mut self, name: &str) -> (u16, Arc<Cursor>) {
        if let Some(s) = self.services.get(name) {
            return s.clone();
        }
        let id = free_id(self.services.values().map(|s| s.0), MAX_SERVICES);
        let e = (id, Arc::new(Cursor::default()));
        self.services.insert(name.to_owned(), e.clone());
        e
    }
    fn backend(&mut self, svc: &str, a: IpAddr, p: u16) -> u32 {
        let k = (svc.to_owned(), a, p);
        if let Some(&id) = self.backends.get(&k) {
            return id;
        }
        let id = free_id(self.backends.values().copied(), MAX_BACKENDS);
        self.backends.insert(k, id);
        id
    }
    /// Forgets services and backends that are no longer configured; returns the ids of
    /// the backends that went away (their flows must be ended).
    pub fn retain(&mut self, cfg: &Config) -> Vec<u32> {
        self.services
            .retain(|n, _| cfg.services.iter().any(|s| &s.name == n));
        let mut gone = Vec::new();
        self.backends.retain(|(svc, a, p), id| {
            let keep = cfg.services.iter().any(|s| {
                &s.name == svc
                    && s.backends
                        .iter()
                        .any(|b| b.address == *a && b.port_in(s) == *p)
            });
            if !keep {
                gone.push(*id);
            }
            keep
        });
        gone
    }
}

/// Ports as the workers see them, with the MACs the devices came up with.
pub fn ports(cfg: &Config, rt: &Runtime) -> Vec<PortConf> {
    cfg.ports
        .iter()
        .zip(&rt.macs)
        .map(|(p, &mac)| PortConf {
            name: p.name.clone(),
            mac,
            addresses: p
                .addresses
                .iter()
                .filter_map(|a| match a.addr() {
                    IpAddr::V4(x) => Some((x, a.prefix_len())),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            addresses6: p
                .addresses
                .iter()
                .filter_map(|a| match a.addr() {
                    IpAddr::V6(x) => Some((x, a.prefix_len())),
                    IpAddr::V4(_) => None,
                })
                .collect(),
            mtu: p.mtu.unwrap_or(1500),
            kernel: p.kernel_interface.is_some(),
        })
        .collect()
}

/// Connected routes of every port address, then the static routes (a route without
/// `port` leaves through the port whose subnet holds its next hop): the IPv4 table and
/// the IPv6 one.
pub fn routes(cfg: &Config, ports: &[PortConf]) -> (RouteTable, RouteTable6) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let port = i as u16;
        for &(a, l) in &p.addresses {
            let net = Ipv4Addr::from_bits(a.to_bits() & mask(l));
            v4.push((net, l, Route { port, via: None }));
        }
        for &(a, l) in &p.addresses6 {
            v6.push((a, l, Route { port, via: None }));
        }
    }
    for r in &cfg.routes {
        let port = cfg
            .route_port(r)
            .and_then(|pc| ports.iter().position(|p| p.name == pc.name));
        let Some(port) = port.map(|p| p as u16) else {
            continue;
        };
        match (r.prefix.network(), r.via) {
            (IpAddr::V4(net), IpAddr::V4(via)) => v4.push((
                net,
                r.prefix.prefix_len(),
                Route {
                    port,
                    via: Some(via),
                },
            )),
            (IpAddr::V6(net), IpAddr::V6(via)) => v6.push((
                net,
                r.prefix.prefix_len(),
                Route::<Ipv6Addr> {
                    port,
                    via: Some(via),
                },
            )),
            // The config check refuses mixed families.
            _ => {}
        }
    }
    (RouteTable::new(v4), RouteTable6::new(v6))
}

/// The snat rules, ports by index (validated: every name resolves, every range parses).
pub fn snat(cfg: &Config) -> Vec<SnatRule> {
    cfg.snat
        .iter()
        .filter_map(|r| {
            Some(SnatRule {
                source: (r.source.network(), r.source.prefix_len()),
                port: cfg.ports.iter().position(|p| p.name == r.port)? as u16,
                to: r.to.clone(),
                ports: r.ports()?,
            })
        })
        .collect()
}

/// The services, with each backend's health from the runtime state (a down backend
/// keeps its configured weight but takes no new flows).
pub fn services(cfg: &Config, rt: &Runtime, reg: &mut Registry) -> Services {
    let list = cfg
        .services
        .iter()
        .map(|s| {
            let (id, cursor) = reg.service(&s.name);
            let backends = s
                .backends
                .iter()
                .map(|b| {
                    let (addr, port) = (b.address, b.port_in(s));
                    Backend {
                        id: reg.backend(&s.name, addr, port),
                        addr,
                        port,
                        weight: b.weight,
                        up: rt.is_up(&(s.name.clone(), addr, port)),
                    }
                })
                .collect();
            let spec = ServiceSpec {
                id,
                name: s.name.clone(),
                vip: s.vip,
                port: s.port,
                protocol: s.protocol.number(),
                forward: s.forward,
                scheduler: s.scheduler,
                backends,
                local_addresses: s.local_addresses.clone(),
                local_ports: FNAT_PORTS,
                proxy: s.proxy_protocol == Some(crate::config::ProxyProtocol::V2),
            };
            Service::build(spec, cursor, dataplane::sched::maglev::DEFAULT_M)
        })
        .collect();
    Services::new(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Health;

    const CFG: &str = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports: [ { name: lan, device: net_null0, addresses: ["10.1.0.1/24"], kernel_interface: fv-lan } ]
services:
  - { name: web, vip: 10.1.0.100, port: 80, scheduler: mh, health_check: { type: tcp },
      backends: [ { address: 10.1.0.10 }, { address: 10.1.0.11 } ] }
"#;

    /// Health lives in the runtime state: a down backend gets no new flows, keeps its
    /// configured weight, and stays down across a rebuild from a new config.
    #[test]
    fn health_overlay_survives_rebuilds_and_never_enters_the_config() {
        let cfg = crate::config::load(CFG).unwrap();
        let mut rt = Runtime::new(vec![dataplane::wire::MacAddr::ZERO]);
        let mut reg = Registry::default();
        let key = ("web".to_string(), IpAddr::from([10, 1, 0, 10]), 80u16);
        let fail = || Err("connect refused".to_string());
        assert_eq!(
            rt.record_probe(key.clone(), fail(), 1, 1),
            Some(Health::Down)
        );
        assert_eq!(
            rt.record_probe(key.clone(), fail(), 1, 1),
            None,
            "no change"
        );
        let check = |cfg: &Config, rt: &Runtime, reg: &mut Registry| {
            let s = services(cfg, rt, reg);
            let web = &s.list[0];
            assert!(!web.backends[0].up && web.backends[0].weight == 1);
            let conns = dataplane::sched::ConnCounters::default();
            for h in 0..100u64 {
                let h = dataplane::hash::identity_hash(h, 7);
                assert_eq!(
                    web.schedule(&conns, h, h).unwrap().addr,
                    Ipv4Addr::new(10, 1, 0, 11)
                );
            }
        };
        check(&cfg, &rt, &mut reg);
        // A reload with a changed weight elsewhere keeps the health.
        let mut cfg2 = cfg.clone();
        cfg2.services[0].backends[1].weight = 5;
        rt.retain(&cfg2);
        check(&cfg2, &rt, &mut reg);
        assert_eq!(
            cfg2.services[0].backends[0].weight, 1,
            "health is not written into the config"
        );
        // Removed, then added again: it starts up.
        let mut cfg3 = cfg2.clone();
        cfg3.services[0].backends.remove(0);
        rt.retain(&cfg3);
        assert_eq!(rt.health(&key), None);
        assert!(services(&cfg2, &rt, &mut reg).list[0].backends[0].up);
    }
}
