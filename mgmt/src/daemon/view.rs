//! Reads of published state (the snapshot and the per-worker counters, both shared with
//! the workers), answered by whichever thread asks: the API thread serves the services
//! from here without waiting on the management queue.
use super::handlers::{merge, proto_name};
use dataplane::counters::{Traffic, WorkerCounters};
use dataplane::snapshot::Service;
use dataplane::worker::Shared;
use serde_json::{json, Value};
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

    pub fn traffic(&self, pick: impl Fn(&WorkerCounters) -> &Traffic) -> Value {
        let t = |g: fn(&Traffic) -> u64| self.sum(|c| g(pick(c)));
        json!({
            "connections": t(|x| x.connections.get()),
            "packets_in": t(|x| x.packets_in.get()),
            "packets_out": t(|x| x.packets_out.get()),
            "bytes_in": t(|x| x.bytes_in.get()),
            "bytes_out": t(|x| x.bytes_out.get()),
        })
    }

    pub fn service_json(&self, s: &Service) -> Value {
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

    pub fn find_service(&self, name: &str) -> Option<Value> {
        let snap = self.shared.cell.load();
        snap.services
            .list
            .iter()
            .find(|s| s.name == name)
            .map(|s| self.service_json(s))
    }

    /// Every service, as `GET /api/v1/services` shows them.
    pub fn services(&self) -> Value {
        let snap = self.shared.cell.load();
        Value::Array(
            snap.services
                .list
                .iter()
                .map(|s| self.service_json(s))
                .collect(),
        )
    }
}

impl crate::api::Reads for View {
    fn services(&self) -> Value {
        View::services(self)
    }
    fn service(&self, name: &str) -> Option<Value> {
        self.find_service(name)
    }
}
