//! What the management thread reports about the dataplane: `/metrics` (Prometheus text
//! format, the metric names of `docs/api.md`), `/api/v1/stats`, and the once-a-second
//! worker sampling behind busy ratios and `/healthz`.
#![forbid(unsafe_code)]
use super::handlers::proto_name;
use super::Daemon;
use crate::model::{FlowTableStats, KernelPath, PortStats, Stats, Totals, WorkerStats};
use dataplane::counters::{DropReason, Traffic};
use dataplane::snapshot::Service;

impl Daemon {
    /// Flows per local address: fnat's (by service local address) and snat's (by `to`
    /// address), in one walk of both flow tables.
    pub(super) fn local_ports_in_use(
        &self,
    ) -> (
        std::collections::BTreeMap<std::net::IpAddr, u64>,
        std::collections::BTreeMap<std::net::IpAddr, u64>,
    ) {
        use dataplane::snapshot::{Forward, SNAT_SERVICE};
        use std::net::IpAddr;
        let (mut fnat, mut snat) = (Default::default(), Default::default());
        let mut add = |mode: Forward, service: u16, local: IpAddr| {
            if mode != Forward::Fnat {
                return;
            }
            let m: &mut std::collections::BTreeMap<IpAddr, u64> = if service == SNAT_SERVICE {
                &mut snat
            } else {
                &mut fnat
            };
            *m.entry(local).or_default() += 1;
        };
        self.shared
            .flows
            .for_each(|f| add(f.init.mode, f.init.service, f.init.local.into()));
        self.shared
            .flows6
            .for_each(|f| add(f.init.mode, f.init.service, f.init.local.into()));
        (fnat, snat)
    }

    pub(super) fn stats(&self) -> Stats {
        let v = &self.view;
        let drops = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), v.sum(|c| c.drops[*r as usize].get())))
            .collect();
        let ports = self
            .ports
            .iter()
            .zip(&self.port_notes)
            .zip(&self.exceptions)
            .map(|((p, note), x)| {
                let (s, l) = (p.stats(), p.link());
                PortStats {
                    note: note.clone(),
                    link_up: l.up,
                    speed_mbps: l.speed_mbps,
                    ipackets: s.ipackets,
                    opackets: s.opackets,
                    ibytes: s.ibytes,
                    obytes: s.obytes,
                    imissed: s.imissed,
                    ierrors: s.ierrors,
                    oerrors: s.oerrors,
                    rx_nombuf: s.rx_nombuf,
                    kernel: x.as_ref().map(|x| KernelPath {
                        interface: x.ifname.clone(),
                        to_kernel: x.to_kernel,
                        from_kernel: x.from_kernel,
                        to_kernel_dropped: x.to_kernel_dropped,
                        from_kernel_dropped: x.from_kernel_dropped,
                    }),
                }
            })
            .collect();
        let workers = v
            .counters
            .iter()
            .enumerate()
            .map(|(i, c)| WorkerStats {
                worker: i,
                rx: c.rx.get(),
                tx: c.tx.get(),
                drops: c.drops_total(),
                busy_ratio: self.samples.get(i).map(|b| b.busy_ratio).unwrap_or(0.0),
                loops: c.loops.get(),
            })
            .collect();
        Stats {
            uptime_s: self.start.elapsed().as_secs(),
            snapshot_version: self.shared.cell.version(),
            totals: Totals {
                rx: v.sum(|c| c.rx.get()),
                tx: v.sum(|c| c.tx.get()),
                drops: v.sum(|c| c.drops_total()),
                new_flows: v.sum(|c| c.new_flows.get()),
                table_full: v.sum(|c| c.table_full.get()),
                stateless: v.sum(|c| c.stateless.get()),
                to_mgmt: v.sum(|c| c.to_mgmt.get()),
                icmp_replies: v.sum(|c| c.icmp_replies.get()),
                icmp_relayed: v.sum(|c| c.icmp_relayed.get()),
                early_drops: v.sum(|c| c.early_drops.get()),
                resets_ignored: v.sum(|c| c.resets_ignored.get()),
                syn_cookies_sent: v.sum(|c| c.syn_cookies_sent.get()),
                syn_cookies_valid: v.sum(|c| c.syn_cookies_valid.get()),
                syn_proxied: v.sum(|c| c.syn_proxied.get()),
                syn_cookies_active: self
                    .shared
                    .syn_cookies_on
                    .load(std::sync::atomic::Ordering::Relaxed),
                held: v.sum(|c| c.held.get()),
                held_sent: self.held.sent,
                held_dropped: self.held.dropped,
                requests_suppressed: self.request_budget.suppressed,
            },
            drops,
            ports,
            workers,
            flows: FlowTableStats {
                active: self.shared.flows.len() + self.shared.flows6.len(),
                capacity: self.shared.flows.capacity() + self.shared.flows6.capacity(),
                memory_bytes: self.shared.flows.memory_bytes() + self.shared.flows6.memory_bytes(),
                active_ipv6: self.shared.flows6.len(),
                capacity_ipv6: self.shared.flows6.capacity(),
            },
        }
    }

    /// The metrics (names in docs/api.md) in the OpenMetrics text format, written by
    /// prometheus-client's encoder: label values are escaped by it, never formatted here.
    /// Values are read from the counters at each scrape.
    pub(super) fn metrics(&self) -> String {
        use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
        type Labels = Vec<(&'static str, String)>;
        type Counters = Family<Labels, Counter>;
        type Gauges = Family<Labels, Gauge>;
        let snap = self.shared.cell.load();
        let mut reg = prometheus_client::registry::Registry::default();
        let svc_labels = |s: &Service| -> Labels {
            vec![
                ("service", s.name.clone()),
                ("vip", s.vip.to_string()),
                ("port", s.port.to_string()),
                ("protocol", proto_name(s.protocol).to_string()),
            ]
        };
        let with = |mut l: Labels, k: &'static str, v: String| {
            l.push((k, v));
            l
        };
        let (conns, packets, bytes) = (
            Counters::default(),
            Counters::default(),
            Counters::default(),
        );
        let (active, weight) = (Gauges::default(), Gauges::default());
        for s in &snap.services.list {
            let l = svc_labels(s);
            let t = |g: fn(&Traffic) -> u64| self.view.sum(|c| g(&c.services[s.id as usize]));
            conns.get_or_create(&l).inc_by(t(|x| x.connections.get()));
            for (dir, p, b) in [
                ("in", t(|x| x.packets_in.get()), t(|x| x.bytes_in.get())),
                ("out", t(|x| x.packets_out.get()), t(|x| x.bytes_out.get())),
            ] {
                packets
                    .get_or_create(&with(l.clone(), "direction", dir.into()))
                    .inc_by(p);
                bytes
                    .get_or_create(&with(l.clone(), "direction", dir.into()))
                    .inc_by(b);
            }
            for b in s.backends.iter() {
                let bl = with(l.clone(), "backend", format!("{}:{}", b.addr, b.port));
                active
                    .get_or_create(&bl)
                    .set(self.shared.conns.active(b.id) as i64);
                weight.get_or_create(&bl).set(b.weight as i64);
            }
        }
        reg.register(
            "ferrovs_service_connections",
            "Connections (flows) created per service.",
            conns,
        );
        reg.register(
            "ferrovs_service_packets",
            "Packets per service and direction.",
            packets,
        );
        reg.register(
            "ferrovs_service_bytes",
            "Bytes per service and direction.",
            bytes,
        );
        reg.register(
            "ferrovs_backend_connections_active",
            "Established connections per backend.",
            active,
        );
        reg.register(
            "ferrovs_backend_weight",
            "Configured weight per backend (0: drained).",
            weight,
        );
        // Health: 1 up (or unchecked), 0 down; probes per checked backend and result.
        let (up, checks) = (Gauges::default(), Counters::default());
        let health = self.view.health.load();
        for s in &snap.services.list {
            for b in s.backends.iter() {
                let backend = format!("{}:{}", b.addr, b.port);
                up.get_or_create(&with(svc_labels(s), "backend", backend.clone()))
                    .set(b.up as i64);
                if let Some(h) = health.get(&(s.name.clone(), b.addr, b.port)) {
                    for (result, n) in [("ok", h.probes_ok), ("failed", h.probes_failed)] {
                        let l: Labels = vec![
                            ("service", s.name.clone()),
                            ("backend", backend.clone()),
                            ("result", result.into()),
                        ];
                        checks.get_or_create(&l).inc_by(n);
                    }
                }
            }
        }
        reg.register(
            "ferrovs_backend_up",
            "1 while a backend takes new flows by its health (unchecked: 1), 0 while down.",
            up,
        );
        reg.register(
            "ferrovs_health_checks",
            "Health probes per checked backend, by result.",
            checks,
        );
        if let Some(bgp) = &self.view.bgp {
            let st = bgp.load();
            let peer_up = Gauges::default();
            for p in &st.peers {
                peer_up
                    .get_or_create(&vec![("peer", p.address.to_string())])
                    .set(p.established() as i64);
            }
            reg.register(
                "ferrovs_bgp_peer_up",
                "1 while the BGP session with a peer is Established, else 0.",
                peer_up,
            );
            let announced = Gauges::default();
            let vips: std::collections::BTreeSet<_> =
                snap.services.list.iter().map(|s| s.vip).collect();
            for v in vips {
                announced
                    .get_or_create(&vec![("vip", v.to_string())])
                    .set(st.announces(v) as i64);
            }
            reg.register(
                "ferrovs_vip_announced",
                "1 while a VIP is announced to the BGP peers, else 0 (withdrawn).",
                announced,
            );
        }
        // fnat and snat: local ports in use per local address (one walk of the flow
        // tables, only when some service is fnat or some snat rule exists).
        let fnat_locals: Vec<std::net::IpAddr> = snap
            .services
            .list
            .iter()
            .flat_map(|s| s.local_addresses.iter().copied())
            .collect();
        if !fnat_locals.is_empty() || !self.cfg.snat.is_empty() {
            let (fnat, snat) = self.local_ports_in_use();
            for (name, help, label, addrs, used) in [
                (
                    "ferrovs_fnat_ports_in_use",
                    "fnat: local ports in use (flows) per local address, over all backends.",
                    "local_address",
                    fnat_locals,
                    fnat,
                ),
                (
                    "ferrovs_snat_ports_in_use",
                    "snat: ports in use (flows) per `to` address, over all destinations.",
                    "to",
                    self.cfg
                        .snat
                        .iter()
                        .flat_map(|r| r.to.iter().copied())
                        .collect(),
                    snat,
                ),
            ] {
                if addrs.is_empty() {
                    continue;
                }
                let g = Gauges::default();
                for a in addrs {
                    g.get_or_create(&vec![(label, a.to_string())])
                        .set(used.get(&a).copied().unwrap_or(0) as i64);
                }
                reg.register(name, help, g);
            }
        }
        let ports = Counters::default();
        for ((p, note), x) in self
            .ports
            .iter()
            .zip(&self.port_notes)
            .zip(&self.exceptions)
        {
            let st = p.stats();
            let name = note.name.clone();
            let mut dirs = vec![("in", st.ipackets), ("out", st.opackets)];
            if let Some(x) = x {
                dirs.extend([("to_kernel", x.to_kernel), ("from_kernel", x.from_kernel)]);
            }
            for (dir, v) in dirs {
                let l: Labels = vec![("port", name.clone()), ("direction", dir.into())];
                ports.get_or_create(&l).inc_by(v);
            }
        }
        reg.register(
            "ferrovs_port_packets",
            "Packets per port and direction (device counters).",
            ports,
        );
        let drops = Counters::default();
        for r in DropReason::ALL {
            let v = self.view.sum(|c| c.drops[r as usize].get());
            drops
                .get_or_create(&vec![("reason", r.name().to_string())])
                .inc_by(v);
        }
        reg.register("ferrovs_drops", "Packets dropped, by reason.", drops);
        let flows_active: Gauge = Gauge::default();
        flows_active.set((self.shared.flows.len() + self.shared.flows6.len()) as i64);
        reg.register(
            "ferrovs_flows_active",
            "Flows in the flow table.",
            flows_active,
        );
        let flows_capacity: Gauge = Gauge::default();
        flows_capacity.set((self.shared.flows.capacity() + self.shared.flows6.capacity()) as i64);
        reg.register(
            "ferrovs_flows_capacity",
            "Capacity of the flow table.",
            flows_capacity,
        );
        let busy = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (i, b) in self.samples.iter().enumerate() {
            busy.get_or_create(&vec![("worker", i.to_string())])
                .set(b.busy_ratio);
        }
        reg.register(
            "ferrovs_worker_busy_ratio",
            "Share of the last second a worker spent on bursts with packets.",
            busy,
        );
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            tracing::error!("metrics encoding: {e}");
        }
        out
    }

    /// Samples each worker once a second: busy ratio over the interval, and whether its
    /// loop counter moved (it is polling).
    pub(super) fn sample_workers(&mut self) {
        for (c, s) in self.view.counters.iter().zip(self.samples.iter_mut()) {
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
