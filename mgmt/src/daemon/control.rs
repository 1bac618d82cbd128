//! The management thread's answers to API requests: reads of the running state and
//! writes that go through the same validation as the config file, then `apply`.
use super::Daemon;
use crate::api::{Op, Reply};
use crate::config::{BackendConf, Config, ServiceConf};
use dataplane::counters::{DropReason, Traffic, WorkerCounters};
use dataplane::snapshot::{Forward, Service};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendBody {
    weight: Option<i64>,
}

fn proto_name(p: u8) -> &'static str {
    if p == 17 {
        "udp"
    } else {
        "tcp"
    }
}

/// Parses `address:port` of a backend URL segment.
fn parse_backend(s: &str) -> Option<(Ipv4Addr, u16)> {
    let (a, p) = s.rsplit_once(':')?;
    Some((a.parse().ok()?, p.parse().ok().filter(|&p| p > 0)?))
}

impl Daemon {
    fn sum(&self, f: impl Fn(&WorkerCounters) -> u64) -> u64 {
        self.counters.iter().map(|c| f(c)).sum()
    }

    fn traffic(&self, pick: impl Fn(&WorkerCounters) -> &Traffic) -> Value {
        let t = |g: fn(&Traffic) -> u64| self.sum(|c| g(pick(c)));
        json!({
            "connections": t(|x| x.connections.get()),
            "packets_in": t(|x| x.packets_in.get()),
            "packets_out": t(|x| x.packets_out.get()),
            "bytes_in": t(|x| x.bytes_in.get()),
            "bytes_out": t(|x| x.bytes_out.get()),
        })
    }

    fn service_json(&self, s: &Service) -> Value {
        let backends: Vec<Value> = s
            .backends
            .iter()
            .map(|b| {
                let mut v = json!({
                    "address": b.addr.to_string(),
                    "port": b.port,
                    "weight": b.weight,
                    "active_connections": self.shared.conns.active(b.id),
                    "inactive_connections": self.shared.conns.inactive(b.id),
                });
                merge(&mut v, self.traffic(|c| &c.backends[b.id as usize]));
                v
            })
            .collect();
        let mut v = json!({
            "name": s.name,
            "vip": s.vip.to_string(),
            "port": s.port,
            "protocol": proto_name(s.protocol),
            "scheduler": s.scheduler.name(),
            "forward": s.forward.name(),
            "backends": backends,
        });
        merge(&mut v, self.traffic(|c| &c.services[s.id as usize]));
        v
    }

    fn find_service(&self, name: &str) -> Option<Value> {
        let snap = self.shared.cell.load();
        snap.services
            .list
            .iter()
            .find(|s| s.name == name)
            .map(|s| self.service_json(s))
    }

    /// Validates `cfg` like the config file and applies it; 400 with every error if not.
    fn try_apply(&mut self, cfg: Config) -> Result<u64, Reply> {
        cfg.validate()
            .map_err(|e| Reply::error(400, e.0.join("; ")))?;
        Ok(self.apply(cfg))
    }

    /// Applies a PUT: 201 with the service when it created something, 200 when it replaced.
    fn apply_write(&mut self, cfg: Config, name: &str, existed: bool) -> Reply {
        match self.try_apply(cfg) {
            Ok(_) => Reply::Json(
                if existed { 200 } else { 201 },
                self.find_service(name).unwrap_or(Value::Null),
            ),
            Err(r) => r,
        }
    }

    pub(super) fn handle(&mut self, op: Op) -> Reply {
        match op {
            Op::Health => {
                let stalled: Vec<usize> = (0..self.samples.len())
                    .filter(|&i| self.samples[i].progressed.elapsed() > super::WORKER_STALL)
                    .collect();
                let body = json!({
                    "status": if stalled.is_empty() { "ok" } else { "workers stalled" },
                    "workers": self.counters.len(),
                    "stalled_workers": stalled,
                    "ports": self.ports.len(),
                });
                Reply::Json(if stalled.is_empty() { 200 } else { 503 }, body)
            }
            Op::Services => {
                let snap = self.shared.cell.load();
                Reply::Json(
                    200,
                    Value::Array(
                        snap.services
                            .list
                            .iter()
                            .map(|s| self.service_json(s))
                            .collect(),
                    ),
                )
            }
            Op::Service(name) => match self.find_service(&name) {
                Some(v) => Reply::Json(200, v),
                None => Reply::error(404, format!("no service `{name}`")),
            },
            Op::PutService(name, body) => self.put_service(&name, &body),
            Op::DeleteService(name) => {
                let mut cfg = self.cfg.clone();
                let Some(i) = cfg.services.iter().position(|s| s.name == name) else {
                    return Reply::error(404, format!("no service `{name}`"));
                };
                cfg.services.remove(i);
                match self.try_apply(cfg) {
                    Ok(v) => Reply::Json(200, json!({ "deleted": name, "version": v })),
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
                    Ok(v) => Reply::Json(200, json!({ "deleted": backend, "version": v })),
                    Err(r) => r,
                }
            }
            Op::Stats => Reply::Json(200, self.stats()),
            Op::Flows(service, limit) => Reply::Json(200, self.flows(service.as_deref(), limit)),
            Op::Neighbors => Reply::Json(
                200,
                Value::Array(
                    self.neighbors
                        .iter()
                        .map(|(a, n)| {
                            json!({
                                "address": a.to_string(),
                                "mac": n.mac.to_string(),
                                "state": if n.is_static { "static" } else { "learned" },
                                "age_s": n.seen.elapsed().as_secs(),
                            })
                        })
                        .collect(),
                ),
            ),
            Op::Routes => {
                let snap = self.shared.cell.load();
                let routes = snap
                    .routes
                    .entries()
                    .iter()
                    .map(|(net, len, r)| {
                        json!({
                            "prefix": format!("{net}/{len}"),
                            "port": snap.ports.get(r.port as usize).map(|p| p.name.clone()),
                            "via": r.via.map(|v| v.to_string()),
                            "kind": if r.via.is_some() { "static" } else { "connected" },
                        })
                    })
                    .collect();
                Reply::Json(200, Value::Array(routes))
            }
            Op::Reload => match self.reload() {
                Ok(v) => Reply::Json(200, json!({ "reloaded": true, "version": v })),
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
        let svc: ServiceConf = match serde_path_to_error::deserialize(v) {
            Ok(s) => s,
            Err(e) => return Reply::error(400, format!("{}: {}", e.path(), e.inner())),
        };
        let mut cfg = self.cfg.clone();
        let existed = match cfg.services.iter().position(|s| s.name == name) {
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
                    address: addr.to_string(),
                    port: Some(port as i64),
                    weight: b.weight.unwrap_or(1),
                });
                false
            }
        };
        self.apply_write(cfg, name, existed)
    }

    fn stats(&self) -> Value {
        let drops: Map<String, Value> = DropReason::ALL
            .iter()
            .map(|r| {
                (
                    r.name().to_string(),
                    json!(self.sum(|c| c.drops[*r as usize].get())),
                )
            })
            .collect();
        let ports: Vec<Value> = self
            .ports
            .iter()
            .zip(&self.port_notes)
            .map(|(p, note)| {
                let s = p.stats();
                let l = p.link();
                let mut v = note.clone();
                merge(
                    &mut v,
                    json!({
                        "link_up": l.up, "speed_mbps": l.speed_mbps,
                        "ipackets": s.ipackets, "opackets": s.opackets, "ibytes": s.ibytes, "obytes": s.obytes,
                        "imissed": s.imissed, "ierrors": s.ierrors, "oerrors": s.oerrors, "rx_nombuf": s.rx_nombuf,
                    }),
                );
                v
            })
            .collect();
        let workers: Vec<Value> = self
            .counters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "worker": i, "rx": c.rx.get(), "tx": c.tx.get(), "drops": c.drops_total(),
                    "busy_ratio": self.samples.get(i).map(|b| b.busy_ratio).unwrap_or(0.0), "loops": c.loops.get(),
                })
            })
            .collect();
        json!({
            "uptime_s": self.start.elapsed().as_secs(),
            "snapshot_version": self.shared.cell.version(),
            "totals": {
                "rx": self.sum(|c| c.rx.get()), "tx": self.sum(|c| c.tx.get()),
                "drops": self.sum(|c| c.drops_total()), "new_flows": self.sum(|c| c.new_flows.get()),
                "table_full": self.sum(|c| c.table_full.get()), "stateless": self.sum(|c| c.stateless.get()),
                "to_mgmt": self.sum(|c| c.to_mgmt.get()), "icmp_replies": self.sum(|c| c.icmp_replies.get()),
            },
            "drops": drops,
            "ports": ports,
            "workers": workers,
            "flows": {
                "active": self.shared.flows.len(),
                "capacity": self.shared.flows.capacity(),
                "memory_bytes": self.shared.flows.memory_bytes(),
            },
        })
    }

    fn flows(&self, service: Option<&str>, limit: usize) -> Value {
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
            return json!([]);
        }
        let now = self.shared.clock.load(std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::new();
        self.shared.flows.for_each(|f| {
            if out.len() >= limit || want.is_some_and(|w| w != Some(f.init.service)) {
                return;
            }
            out.push(json!({
                "service": names.get(&f.init.service).copied().unwrap_or("(removed)"),
                "protocol": proto_name(f.init.protocol),
                "client": format!("{}:{}", f.init.client, f.init.client_port),
                "vip": format!("{}:{}", f.init.vip, f.init.vport),
                "backend": format!("{}:{}", f.init.backend, f.init.backend_port),
                "forward": Forward::from_u8(f.init.mode).name(),
                "state": f.state.name(),
                "age_s": now.saturating_sub(f.created),
                "idle_s": now.saturating_sub(f.last_seen),
            }));
        });
        Value::Array(out)
    }

    /// Prometheus text format, with the contract's metric names.
    fn metrics(&self) -> String {
        let snap = self.shared.cell.load();
        let mut m = String::new();
        let family = |m: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(m, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let svc_labels = |s: &Service| {
            format!(
                "service=\"{}\",vip=\"{}\",port=\"{}\",protocol=\"{}\"",
                s.name,
                s.vip,
                s.port,
                proto_name(s.protocol)
            )
        };
        family(
            &mut m,
            "ferrovs_service_connections_total",
            "counter",
            "Connections (flows) created per service.",
        );
        for s in &snap.services.list {
            let _ = writeln!(
                m,
                "ferrovs_service_connections_total{{{}}} {}",
                svc_labels(s),
                self.sum(|c| c.services[s.id as usize].connections.get())
            );
        }
        type Get = fn(&Traffic) -> u64;
        let per_direction: [(&str, &str, &str, Get); 4] = [
            (
                "ferrovs_service_packets_total",
                "Packets per service and direction.",
                "in",
                |t| t.packets_in.get(),
            ),
            ("ferrovs_service_packets_total", "", "out", |t| {
                t.packets_out.get()
            }),
            (
                "ferrovs_service_bytes_total",
                "Bytes per service and direction.",
                "in",
                |t| t.bytes_in.get(),
            ),
            ("ferrovs_service_bytes_total", "", "out", |t| {
                t.bytes_out.get()
            }),
        ];
        for (name, help, dir, get) in per_direction {
            if !help.is_empty() {
                family(&mut m, name, "counter", help);
            }
            for s in &snap.services.list {
                let v = self.sum(|c| get(&c.services[s.id as usize]));
                let _ = writeln!(m, "{name}{{{},direction=\"{dir}\"}} {v}", svc_labels(s));
            }
        }
        type BackendGet = fn(&Daemon, &dataplane::snapshot::Backend) -> u64;
        let per_backend: [(&str, &str, BackendGet); 2] = [
            (
                "ferrovs_backend_connections_active",
                "Established connections per backend.",
                |d, b| d.shared.conns.active(b.id) as u64,
            ),
            (
                "ferrovs_backend_weight",
                "Configured weight per backend (0: drained).",
                |_, b| b.weight as u64,
            ),
        ];
        for (name, help, get) in per_backend {
            family(&mut m, name, "gauge", help);
            for s in &snap.services.list {
                for b in s.backends.iter() {
                    let v = get(self, b);
                    let _ = writeln!(
                        m,
                        "{name}{{{},backend=\"{}:{}\"}} {v}",
                        svc_labels(s),
                        b.addr,
                        b.port
                    );
                }
            }
        }
        family(
            &mut m,
            "ferrovs_port_packets_total",
            "counter",
            "Packets per port and direction (device counters).",
        );
        for (p, note) in self.ports.iter().zip(&self.port_notes) {
            let st = p.stats();
            let name = note["name"].as_str().unwrap_or("");
            let _ = writeln!(
                m,
                "ferrovs_port_packets_total{{port=\"{name}\",direction=\"in\"}} {}",
                st.ipackets
            );
            let _ = writeln!(
                m,
                "ferrovs_port_packets_total{{port=\"{name}\",direction=\"out\"}} {}",
                st.opackets
            );
        }
        family(
            &mut m,
            "ferrovs_drops_total",
            "counter",
            "Packets dropped, by reason.",
        );
        for r in DropReason::ALL {
            let _ = writeln!(
                m,
                "ferrovs_drops_total{{reason=\"{}\"}} {}",
                r.name(),
                self.sum(|c| c.drops[r as usize].get())
            );
        }
        family(
            &mut m,
            "ferrovs_flows_active",
            "gauge",
            "Flows in the flow table.",
        );
        let _ = writeln!(m, "ferrovs_flows_active {}", self.shared.flows.len());
        family(
            &mut m,
            "ferrovs_flows_capacity",
            "gauge",
            "Capacity of the flow table.",
        );
        let _ = writeln!(m, "ferrovs_flows_capacity {}", self.shared.flows.capacity());
        family(
            &mut m,
            "ferrovs_worker_busy_ratio",
            "gauge",
            "Share of the last second a worker spent on bursts with packets.",
        );
        for (i, b) in self.samples.iter().enumerate() {
            let _ = writeln!(
                m,
                "ferrovs_worker_busy_ratio{{worker=\"{i}\"}} {:.4}",
                b.busy_ratio
            );
        }
        m
    }

    /// Samples each worker once a second: busy ratio over the interval, and whether its
    /// loop counter moved (it is polling).
    pub(super) fn sample_workers(&mut self) {
        for (c, s) in self.counters.iter().zip(self.samples.iter_mut()) {
            let (busy, total, loops) = (c.busy_cycles.get(), c.total_cycles.get(), c.loops.get());
            let dt = total.saturating_sub(s.total_cycles);
            s.busy_ratio = if dt == 0 {
                0.0
            } else {
                busy.saturating_sub(s.busy_cycles) as f64 / dt as f64
            };
            (s.busy_cycles, s.total_cycles) = (busy, total);
            if loops != s.loops {
                s.loops = loops;
                s.progressed = std::time::Instant::now();
            }
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}
