//! Reads of published state (the snapshot and the per-worker counters, both shared with
//! the workers), answered by whichever thread asks: the API thread serves the services
//! from here without waiting on the management queue.
use super::handlers::proto_name;
use crate::model::{BackendView, ServiceView, Traffic as TrafficView};
use dataplane::counters::{Traffic, WorkerCounters};
use dataplane::snapshot::Service;
use dataplane::worker::Shared;
use std::sync::Arc;

#[derive(Clone)]
pub struct View {
    pub shared: Arc<Shared>,
    pub counters: Arc<[Arc<WorkerCounters>]>,
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
        let backends = s
            .backends
            .iter()
            .map(|b| BackendView {
                address: b.addr.to_string(),
                port: b.port,
                weight: b.weight,
                active_connections: self.shared.conns.active(b.id),
                inactive_connections: self.shared.conns.inactive(b.id),
                traffic: self.traffic(|c| &c.backends[b.id as usize]),
            })
            .collect();
        ServiceView {
            name: s.name.clone(),
            vip: s.vip.to_string(),
            port: s.port,
            protocol: proto_name(s.protocol).to_string(),
            scheduler: s.scheduler.name().to_string(),
            forward: s.forward.name().to_string(),
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
    fn services(&self) -> Vec<ServiceView> {
        View::services(self)
    }
    fn service(&self, name: &str) -> Option<ServiceView> {
        self.find_service(name)
    }
}
