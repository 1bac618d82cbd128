//! Reads of published state (the snapshot and the per-worker counters, both shared with
//! the workers), answered by whichever thread asks: the API thread serves the services
//! from here without waiting on the management queue.
use super::handlers::proto_name;
use crate::model::{BackendView, HealthRow, ServiceView, Traffic as TrafficView};
use crate::runtime::BackendKey;
use arc_swap::ArcSwap;
use dataplane::counters::{Traffic, WorkerCounters};
use dataplane::snapshot::Service;
use dataplane::worker::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// A checked backend's health as last published by the management thread.
#[derive(Debug, Clone)]
pub struct HealthInfo {
    pub up: bool,
    pub since: Option<Instant>,
    pub last_error: Option<String>,
    pub probes_ok: u64,
    pub probes_failed: u64,
}

#[derive(Clone)]
pub struct View {
    pub shared: Arc<Shared>,
    pub counters: Arc<[Arc<WorkerCounters>]>,
    /// Every checked backend's health (absent: unchecked).
    pub health: Arc<ArcSwap<HashMap<BackendKey, HealthInfo>>>,
    /// What the BGP supervisor last published (None: no `bgp` section).
    pub bgp: Option<Arc<ArcSwap<super::bgp::Status>>>,
}

impl View {
    pub fn sum(&self, f: impl Fn(&WorkerCounters) -> u64) -> u64 {
        self.counters.iter().map(|c| f(c)).sum()
    }

    /// A service's or backend's traffic, summed over the workers.
    pub fn traffic(&self, pick: impl Fn(&WorkerCounters) -> &Traffic) -> TrafficView {
        let t = |g: fn(&Traffic) -> u64| self.sum(|c| g(pick(c)));
        TrafficView {
            connections: t(|x| x.connections.get()),
            packets_in: t(|x| x.packets_in.get()),
            packets_out: t(|x| x.packets_out.get()),
            bytes_in: t(|x| x.bytes_in.get()),
            bytes_out: t(|x| x.bytes_out.get()),
        }
    }

    pub fn service_view(&self, s: &Service) -> ServiceView {
        let health = self.health.load();
        let backends = s
            .backends
            .iter()
            .map(|b| {
                let h = health.get(&(s.name.clone(), b.addr, b.port));
                BackendView {
                    address: b.addr.to_string(),
                    port: b.port,
                    weight: b.weight,
                    active_connections: self.shared.conns.active(b.id),
                    inactive_connections: self.shared.conns.inactive(b.id),
                    health: match h {
                        None => "unchecked",
                        Some(h) if h.up => "up",
                        Some(_) => "down",
                    }
                    .into(),
                    health_since: h.and_then(|h| h.since).map(|t| t.elapsed().as_secs()),
                    health_last_error: h.and_then(|h| h.last_error.clone()),
                    traffic: self.traffic(|c| &c.backends[b.id as usize]),
                }
            })
            .collect();
        ServiceView {
            name: s.name.clone(),
            vip: s.vip.to_string(),
            port: s.port,
            protocol: proto_name(s.protocol).to_string(),
            scheduler: s.scheduler.name().to_string(),
            forward: s.forward.name().to_string(),
            local_addresses: s.local_addresses.iter().map(|a| a.to_string()).collect(),
            state: if s.backends.iter().any(|b| b.effective_weight() > 0) {
                "up"
            } else {
                "down"
            }
            .into(),
            backends,
            traffic: self.traffic(|c| &c.services[s.id as usize]),
        }
    }

    pub fn find_service(&self, name: &str) -> Option<ServiceView> {
        let snap = self.shared.cell.load();
        snap.services
            .list
            .iter()
            .find(|s| s.name == name)
            .map(|s| self.service_view(s))
    }

    /// Every checked backend, as `GET /api/v1/health` shows them.
    pub fn health_rows(&self) -> Vec<HealthRow> {
        let mut rows: Vec<HealthRow> = self
            .health
            .load()
            .iter()
            .map(|((s, a, p), h)| HealthRow {
                service: s.clone(),
                backend: format!("{a}:{p}"),
                health: if h.up { "up" } else { "down" }.into(),
                since: h.since.map_or(0, |t| t.elapsed().as_secs()),
                last_error: h.last_error.clone(),
                probes_ok: h.probes_ok,
                probes_failed: h.probes_failed,
            })
            .collect();
        rows.sort_by(|a, b| (&a.service, &a.backend).cmp(&(&b.service, &b.backend)));
        rows
    }

    /// `GET /api/v1/bgp`, if BGP is configured.
    pub fn bgp(&self) -> Option<crate::model::BgpView> {
        use crate::model::{BgpPeerView, BgpView};
        let st = self.bgp.as_ref()?.load();
        let snap = self.shared.cell.load();
        let vips: std::collections::BTreeSet<_> =
            snap.services.list.iter().map(|s| s.vip).collect();
        Some(BgpView {
            peers: st
                .peers
                .iter()
                .map(|p| BgpPeerView {
                    address: p.address.to_string(),
                    remote_as: p.remote_as,
                    state: p.state.clone(),
                    info: p.info.clone(),
                    since: p.since.map(super::bgp::seconds_since),
                })
                .collect(),
            announced: st.announced.iter().map(|v| format!("{v}/32")).collect(),
            withdrawn: vips
                .iter()
                .filter(|v| !st.announces(**v))
                .map(|v| match v {
                    std::net::IpAddr::V4(a) => format!("{a}/32"),
                    std::net::IpAddr::V6(a) => format!("{a}/128"),
                })
                .collect(),
            local_as: st.local_as,
            router_id: st.router_id.map(|r| r.to_string()).unwrap_or_default(),
            bird_running: st.running,
            bird_restarts: st.restarts,
            last_error: st.last_error.clone(),
            stopping: st.stopping,
        })
    }

    /// Every service, as `GET /api/v1/services` shows them.
    pub fn services(&self) -> Vec<ServiceView> {
        let snap = self.shared.cell.load();
        snap.services
            .list
            .iter()
            .map(|s| self.service_view(s))
            .collect()
    }
}

impl crate::api::Reads for View {
    fn bgp(&self) -> Option<crate::model::BgpView> {
        View::bgp(self)
    }
    fn health(&self) -> Vec<HealthRow> {
        self.health_rows()
    }
    fn services(&self) -> Vec<ServiceView> {
        View::services(self)
    }
    fn service(&self, name: &str) -> Option<ServiceView> {
        self.find_service(name)
    }
}
