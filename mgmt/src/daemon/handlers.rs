//! The management thread's answers to API requests: reads of the running state and
//! writes that go through the same validation as the config file, then `apply`.
#![forbid(unsafe_code)]
use super::Daemon;
use crate::api::{Op, Reply};
use crate::config::{self, BackendConf, Config, ServiceConf};
use crate::model::{BackendBody, Deleted, FlowView, HealthView, NeighborView, Reloaded, RouteView};
use dataplane::snapshot::Protocol;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

/// The service protocol's name of an IP protocol number.
pub(super) fn proto_name(p: u8) -> &'static str {
    Protocol::from_number(p).map_or("other", Protocol::name)
}

/// Parses `address:port` (IPv6: `[address]:port`) of a backend URL segment.
fn parse_backend(s: &str) -> Option<(IpAddr, u16)> {
    let a: SocketAddr = s.parse().ok()?;
    Some((a.ip(), Some(a.port()).filter(|&p| p > 0)?))
}

/// `address:port`, IPv6 in brackets (as ipvsadm and URLs write it).
pub(super) fn endpoint(a: IpAddr, port: u16) -> String {
    SocketAddr::new(a, port).to_string()
}

impl Daemon {
    /// Validates `cfg` like the config file and applies it; 400 with every error if not.
    fn try_apply(&mut self, cfg: Config) -> Result<u64, Reply> {
        cfg.validate()
            .map_err(|e| Reply::error(400, e.0.join("; ")))?;
        Ok(self.apply(cfg))
    }

    /// Applies a PUT: 201 with the service when it created something, 200 when it replaced.
    fn apply_write(&mut self, cfg: Config, name: &str, existed: bool) -> Reply {
        match self.try_apply(cfg) {
            Ok(_) => match self.view.find_service(name) {
                Some(v) => Reply::json(if existed { 200 } else { 201 }, &v),
                None => Reply::Json(if existed { 200 } else { 201 }, Value::Null),
            },
            Err(r) => r,
        }
    }

    /// The `/healthz` answer: 200 while every worker's loop moves, 503 when one stalled.
    /// Published once a second for the API thread, which answers it without the queue.
    pub(super) fn health(&self) -> (u16, HealthView) {
        let stalled: Vec<usize> = (0..self.samples.len())
            .filter(|&i| self.samples[i].progressed.elapsed() > super::WORKER_STALL)
            .collect();
        let ok = stalled.is_empty();
        let body = HealthView {
            status: if ok { "ok" } else { "workers stalled" }.into(),
            workers: self.view.counters.len(),
            stalled_workers: stalled,
            ports: self.ports.len(),
        };
        (if ok { 200 } else { 503 }, body)
    }

    pub(super) fn handle(&mut self, op: Op) -> Reply {
        match op {
            Op::PutService(name, body) => self.put_service(&name, &body),
            Op::DeleteService(name) => {
                let mut cfg = self.cfg.clone();
                let Some(i) = cfg.services.iter().position(|s| s.name == name) else {
                    return Reply::error(404, format!("no service `{name}`"));
                };
                cfg.services.remove(i);
                match self.try_apply(cfg) {
                    Ok(version) => Reply::json(
                        200,
                        &Deleted {
                            deleted: name,
                            version,
                        },
                    ),
                    Err(r) => r,
                }
            }
            Op::PutBackend(name, backend, body) => self.put_backend(&name, &backend, &body),
            Op::DeleteBackend(name, backend) => {
                let Some((addr, port)) = parse_backend(&backend) else {
                    return Reply::error(400, format!("backend: `{backend}` is not address:port"));
                };
                let mut cfg = self.cfg.clone();
                let Some(svc) = cfg.services.iter_mut().find(|s| s.name == name) else {
                    return Reply::error(404, format!("no service `{name}`"));
                };
                let Some(i) = svc.backend_index(addr, port) else {
                    return Reply::error(404, format!("service `{name}` has no backend {backend}"));
                };
                svc.backends.remove(i);
                match self.try_apply(cfg) {
                    Ok(version) => Reply::json(
                        200,
                        &Deleted {
                            deleted: backend,
                            version,
                        },
                    ),
                    Err(r) => r,
                }
            }
            Op::Stats => Reply::json(200, &self.stats()),
            Op::Flows {
                service,
                offset,
                limit,
            } => Reply::json(200, &self.flows(service.as_deref(), offset, limit)),
            Op::Neighbors => {
                let snap = self.shared.cell.load();
                let table: Vec<NeighborView> = self
                    .neighbors
                    .iter()
                    .map(|((p, a), n)| NeighborView {
                        address: a.to_string(),
                        mac: n.mac.to_string(),
                        state: if n.is_static { "static" } else { "learned" }.into(),
                        age_s: n.seen.elapsed().as_secs(),
                        port: snap
                            .ports
                            .get(*p as usize)
                            .map_or_else(|| p.to_string(), |c| c.name.clone()),
                    })
                    .collect();
                Reply::json(200, &table)
            }
            Op::Snat => {
                let (_, in_use) = self.local_ports_in_use();
                let rules: Vec<crate::model::SnatView> = self
                    .cfg
                    .snat
                    .iter()
                    .map(|r| {
                        let span = r.ports().map_or(0, |(a, b)| (b - a) as u64 + 1);
                        crate::model::SnatView {
                            source: r.source.to_string(),
                            port: r.port.clone(),
                            port_range: r.port_range.clone(),
                            to: r
                                .to
                                .iter()
                                .map(|a| {
                                    let used = in_use.get(a).copied().unwrap_or(0);
                                    crate::model::SnatToView {
                                        address: a.to_string(),
                                        ports_in_use: used,
                                        ports_free: span.saturating_sub(used),
                                    }
                                })
                                .collect(),
                        }
                    })
                    .collect();
                Reply::json(200, &rules)
            }
            Op::Routes => {
                let snap = self.shared.cell.load();
                let view = |net: IpAddr, len: u8, port: u16, via: Option<IpAddr>| RouteView {
                    prefix: format!("{net}/{len}"),
                    port: snap.ports.get(port as usize).map(|p| p.name.clone()),
                    via: via.map(|v| v.to_string()),
                    kind: if via.is_some() { "static" } else { "connected" }.into(),
                };
                let v4 = snap
                    .routes
                    .entries()
                    .iter()
                    .map(|(n, l, r)| view((*n).into(), *l, r.port, r.via.map(IpAddr::V4)));
                let v6 = snap
                    .routes6
                    .entries()
                    .iter()
                    .map(|(n, l, r)| view((*n).into(), *l, r.port, r.via.map(IpAddr::V6)));
                let routes: Vec<RouteView> = v4.chain(v6).collect();
                Reply::json(200, &routes)
            }
            Op::Reload => match self.reload() {
                Ok(version) => Reply::json(
                    200,
                    &Reloaded {
                        reloaded: true,
                        version,
                    },
                ),
                Err(e) => Reply::error(400, e),
            },
            Op::Metrics => Reply::Text(self.metrics()),
        }
    }

    fn put_service(&mut self, name: &str, body: &[u8]) -> Reply {
        let mut v: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return Reply::error(400, format!("body: not JSON: {e}")),
        };
        let Some(obj) = v.as_object_mut() else {
            return Reply::error(400, "body: must be a service object");
        };
        match obj.get("name") {
            None => {
                obj.insert("name".into(), Value::String(name.into()));
            }
            Some(Value::String(n)) if n == name => {}
            Some(_) => return Reply::error(400, format!("name: must match the URL (`{name}`)")),
        }
        // Errors name the key path the service has (or will have) in the config.
        let mut cfg = self.cfg.clone();
        let at = cfg.services.iter().position(|s| s.name == name);
        let mut errors = Vec::new();
        let key = format!("services[{}]", at.unwrap_or(cfg.services.len()));
        let Some(svc) = config::typed::<ServiceConf, _>(v, &key, &mut errors) else {
            return Reply::error(400, errors.join("; "));
        };
        let existed = match at {
            Some(i) => {
                cfg.services[i] = svc;
                true
            }
            None => {
                cfg.services.push(svc);
                false
            }
        };
        self.apply_write(cfg, name, existed)
    }

    fn put_backend(&mut self, name: &str, backend: &str, body: &[u8]) -> Reply {
        let Some((addr, port)) = parse_backend(backend) else {
            return Reply::error(400, format!("backend: `{backend}` is not address:port"));
        };
        let b: BackendBody = if body.iter().all(u8::is_ascii_whitespace) {
            BackendBody { weight: None }
        } else {
            match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
            {
                Ok(b) => b,
                Err(e) => return Reply::error(400, format!("{}: {}", e.path(), e.inner())),
            }
        };
        let mut cfg = self.cfg.clone();
        let Some(svc) = cfg.services.iter_mut().find(|s| s.name == name) else {
            return Reply::error(404, format!("no service `{name}`"));
        };
        let existed = match svc.backend_index(addr, port) {
            Some(i) => {
                let x = &mut svc.backends[i];
                if let Some(w) = b.weight {
                    x.weight = w;
                }
                true
            }
            None => {
                svc.backends.push(BackendConf {
                    address: addr,
                    port: Some(port),
                    weight: b.weight.unwrap_or(1),
                });
                false
            }
        };
        self.apply_write(cfg, name, existed)
    }

    /// Flows in table order: the `offset` first matches skipped, at most `limit` after
    /// them (pages are best effort: flows come and go between requests, as in conntrack).
    fn flows(&self, service: Option<&str>, offset: usize, limit: usize) -> Vec<FlowView> {
        let snap = self.shared.cell.load();
        let names: std::collections::HashMap<u16, &str> = snap
            .services
            .list
            .iter()
            .map(|s| (s.id, s.name.as_str()))
            .collect();
        let want = service.map(|n| {
            snap.services
                .list
                .iter()
                .find(|s| s.name == n)
                .map(|s| s.id)
        });
        if let Some(None) = want {
            return vec![];
        }
        let now = self.shared.clock.load(std::sync::atomic::Ordering::Relaxed);
        let (mut out, mut skipped) = (Vec::new(), 0);
        let mut add = |f: FlowView, service: u16| {
            if out.len() >= limit || want.is_some_and(|w| w != Some(service)) {
                return;
            }
            if skipped < offset {
                skipped += 1;
                return;
            }
            out.push(f);
        };
        let view = |i: &dataplane::flow::FlowInit<IpAddr>, state: &str, created: u32, seen: u32| {
            FlowView {
                service: names.get(&i.service).copied().unwrap_or("(removed)").into(),
                protocol: proto_name(i.protocol).into(),
                client: endpoint(i.client, i.client_port),
                vip: endpoint(i.vip, i.vport),
                backend: endpoint(i.backend, i.backend_port),
                forward: i.mode.name().into(),
                state: state.into(),
                local: (i.mode == dataplane::snapshot::Forward::Fnat)
                    .then(|| endpoint(i.local, i.local_port)),
                age_s: now.saturating_sub(created),
                idle_s: now.saturating_sub(seen),
            }
        };
        self.shared.flows.for_each(|f| {
            let i = widen(&f.init, IpAddr::V4);
            add(view(&i, f.state.name(), f.created, f.last_seen), i.service);
        });
        self.shared.flows6.for_each(|f| {
            let i = widen(&f.init, IpAddr::V6);
            add(view(&i, f.state.name(), f.created, f.last_seen), i.service);
        });
        out
    }
}

/// A flow of either family with its addresses as `IpAddr`.
fn widen<A: Copy>(
    f: &dataplane::flow::FlowInit<A>,
    ip: fn(A) -> IpAddr,
) -> dataplane::flow::FlowInit<IpAddr> {
    dataplane::flow::FlowInit {
        protocol: f.protocol,
        client: ip(f.client),
        client_port: f.client_port,
        vip: ip(f.vip),
        vport: f.vport,
        backend: ip(f.backend),
        backend_port: f.backend_port,
        service: f.service,
        backend_id: f.backend_id,
        mode: f.mode,
        reverse: f.reverse,
        state: f.state,
        local: ip(f.local),
        local_port: f.local_port,
        proxy: f.proxy,
        synproxy: f.synproxy,
        seq_base: f.seq_base,
        client_if: f.client_if,
        backend_if: f.backend_if,
    }
}
