//! Turns a validated [`Config`] into a dataplane [`Snapshot`], keeping service and
//! backend ids (and scheduler positions) stable across rebuilds, so flows keep their
//! backend over reloads and API changes.
use crate::config::{parse_cidr, Config};
use dataplane::sched::{Cursor, SchedulerKind};
use dataplane::snapshot::*;
use dataplane::wire::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Stable identities across snapshots.
#[derive(Default)]
pub struct Registry {
    services: HashMap<String, (u16, Arc<Cursor>)>,
    backends: HashMap<(String, Ipv4Addr, u16), u32>,
}

impl Registry {
    fn service(&mut self, name: &str) -> (u16, Arc<Cursor>) {
        if let Some(s) = self.services.get(name) {
            return s.clone();
        }
        let used: Vec<u16> = self.services.values().map(|s| s.0).collect();
        let id = (0..MAX_SERVICES as u16)
            .find(|i| !used.contains(i))
            .expect("validated: service count");
        let e = (id, Arc::new(Cursor::default()));
        self.services.insert(name.to_owned(), e.clone());
        e
    }
    fn backend(&mut self, svc: &str, a: Ipv4Addr, p: u16) -> u32 {
        let k = (svc.to_owned(), a, p);
        if let Some(&id) = self.backends.get(&k) {
            return id;
        }
        let mut used: Vec<u32> = self.backends.values().copied().collect();
        used.sort_unstable();
        let id = (0..MAX_BACKEND_IDS as u32)
            .find(|i| used.binary_search(i).is_err())
            .expect("validated: backend count");
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
                    && s.backends.iter().any(|b| {
                        b.address.parse::<Ipv4Addr>().ok() == Some(*a)
                            && b.port.unwrap_or(s.port) as u16 == *p
                    })
            });
            if !keep {
                gone.push(*id);
            }
            keep
        });
        gone
    }
}

/// Ports as the workers see them, given the MACs the devices ended up with.
pub fn ports(cfg: &Config, macs: &[MacAddr]) -> Vec<PortConf> {
    cfg.ports
        .iter()
        .zip(macs)
        .map(|(p, &mac)| PortConf {
            name: p.name.clone(),
            mac,
            addresses: p.addresses.iter().filter_map(|a| parse_cidr(a)).collect(),
            mtu: p.mtu.unwrap_or(1500) as u16,
        })
        .collect()
}

pub fn routes(cfg: &Config, ports: &[PortConf]) -> RouteTable {
    let mut entries = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        for &(a, l) in &p.addresses {
            entries.push((
                Ipv4Addr::from_bits(a.to_bits() & mask(l)),
                l,
                Route {
                    port: i as u16,
                    via: None,
                },
            ));
        }
    }
    for r in &cfg.routes {
        let (Some((net, len)), Ok(via)) = (parse_cidr(&r.prefix), r.via.parse::<Ipv4Addr>()) else {
            continue;
        };
        let port = match &r.port {
            Some(n) => ports.iter().position(|p| &p.name == n),
            None => ports
                .iter()
                .position(|p| p.addresses.iter().any(|&(a, l)| same_subnet(a, via, l))),
        };
        if let Some(port) = port {
            entries.push((
                net,
                len,
                Route {
                    port: port as u16,
                    via: Some(via),
                },
            ));
        }
    }
    RouteTable::new(entries)
}

pub fn services(cfg: &Config, reg: &mut Registry) -> Services {
    let list = cfg
        .services
        .iter()
        .map(|s| {
            let (id, cursor) = reg.service(&s.name);
            let backends = s
                .backends
                .iter()
                .map(|b| {
                    let addr: Ipv4Addr = b.address.parse().expect("validated");
                    let port = b.port.unwrap_or(s.port) as u16;
                    Backend {
                        id: reg.backend(&s.name, addr, port),
                        addr,
                        port,
                        weight: b.weight as u32,
                    }
                })
                .collect();
            let spec = ServiceSpec {
                id,
                name: s.name.clone(),
                vip: s.vip.parse().expect("validated"),
                port: s.port as u16,
                protocol: if s.protocol == "udp" { 17 } else { 6 },
                forward: Forward::parse(&s.forward).expect("validated"),
                scheduler: SchedulerKind::parse(&s.scheduler).expect("validated"),
                backends,
            };
            Service::build(spec, cursor, dataplane::sched::maglev::DEFAULT_M)
        })
        .collect();
    Services::new(list)
}
