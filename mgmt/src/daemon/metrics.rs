//! What the management thread reports about the dataplane: `/metrics` (Prometheus text
//! format, the metric names of `docs/api.md`), `/api/v1/stats`, and the once-a-second
//! worker sampling behind busy ratios and `/healthz`.
#![forbid(unsafe_code)]
use super::handlers::{merge, proto_name};
use super::Daemon;
use dataplane::counters::{DropReason, Traffic, WorkerCounters};
use dataplane::snapshot::Service;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

impl Daemon {
    pub(super) fn sum(&self, f: impl Fn(&WorkerCounters) -> u64) -> u64 {
        self.counters.iter().map(|c| f(c)).sum()
    }

    pub(super) fn traffic(&self, pick: impl Fn(&WorkerCounters) -> &Traffic) -> Value {
        let t = |g: fn(&Traffic) -> u64| self.sum(|c| g(pick(c)));
        json!({
            "connections": t(|x| x.connections.get()),
            "packets_in": t(|x| x.packets_in.get()),
            "packets_out": t(|x| x.packets_out.get()),
            "bytes_in": t(|x| x.bytes_in.get()),
            "bytes_out": t(|x| x.bytes_out.get()),
        })
    }

    pub(super) fn stats(&self) -> Value {
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

    /// Prometheus text format, with the metric names of docs/api.md.
    pub(super) fn metrics(&self) -> String {
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
