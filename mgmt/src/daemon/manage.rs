//! The management loop and configuration changes: reload (SIGHUP, API), apply (a
//! validated config and the runtime state become a snapshot), flow expiry sweeps,
//! neighbor upkeep, API requests, worker sampling.
#![forbid(unsafe_code)]
use super::{Daemon, RELOAD, STOP};
use crate::build;
use crate::config::{self, Config};
use dataplane::snapshot::Snapshot;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The half-open flow timeout (seconds) while a flow table is over 90% full.
const PRESSED_SYN_TIMEOUT: u32 = 5;

impl Daemon {
    /// SYN cookies on or off (`flows.syn_cookies`): `auto` turns them on while the tables
    /// of both families held more than `syn_cookies_above` half-open flows at their
    /// sweeps' last passes, and off below half of that (no flapping). Logged when it
    /// changes.
    fn decide_syn_cookies(&mut self) {
        let f = &self.cfg.flows;
        let on = self.shared.syn_cookies_on.load(Relaxed);
        let half_open = self.shared.flows.half_open() + self.shared.flows6.half_open();
        let above = f.syn_cookies_above() as usize;
        let want = match f.syn_cookies {
            config::SynCookiesMode::Always => true,
            config::SynCookiesMode::Never => false,
            config::SynCookiesMode::Auto if on => half_open * 2 > above,
            config::SynCookiesMode::Auto => half_open > above,
        };
        if want != on {
            self.shared.syn_cookies_on.store(want, Relaxed);
            tracing::warn!(
                half_open,
                threshold = above,
                "SYN cookies {} for nat and fnat services",
                if want { "on" } else { "off" }
            );
        }
    }

    /// Re-reads and applies the config file (SIGHUP, `POST /api/v1/reload`). A file that
    /// fails validation changes nothing; the error lists every problem. `api.token_file`
    /// is read again (a new token takes effect at once); `api.listen` needs a restart,
    /// which the warning says.
    pub(crate) fn reload(&mut self) -> Result<u64, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("read {}: {e}", self.path.display()))?;
        let cfg = config::load_for_reload(&text).map_err(|e| e.to_string())?;
        let token = super::read_token(&cfg).map_err(|e| format!("{e:#}"))?;
        if cfg.api.listen != self.cfg.api.listen {
            tracing::warn!(
                "reload: api.listen changed to {}: needs a restart; still listening on {}",
                cfg.api.listen,
                self.cfg.api.listen
            );
        }
        self.published.token.store(token.map(Arc::new));
        for w in config::warnings(&cfg) {
            tracing::warn!("{w}");
        }
        Ok(self.apply(cfg))
    }

    /// Ends every flow of the backends `ids`, in one walk of the flow table; returns how
    /// many ended.
    pub(super) fn end_flows(&self, ids: &[u32]) -> usize {
        if ids.is_empty() {
            return 0;
        }
        let conns = &self.shared.conns;
        self.shared.flows.remove_where(
            |f| ids.contains(&f.init.backend_id),
            |f| conns.on_end(f.init.backend_id, f.state),
        ) + self.shared.flows6.remove_where(
            |f| ids.contains(&f.init.backend_id),
            |f| conns.on_end(f.init.backend_id, f.state),
        )
    }

    /// Publishes a validated config: services, routes and static neighbors change at
    /// once; flows of unchanged backends stay, drained ones (weight 0) keep theirs,
    /// removed backends' flows end. Runtime state (health) is kept. Returns the
    /// snapshot version.
    pub(crate) fn apply(&mut self, cfg: Config) -> u64 {
        if cfg.ports != self.cfg.ports
            || cfg.dpdk != self.cfg.dpdk
            || cfg.flows != self.cfg.flows
            || cfg.exception_path != self.cfg.exception_path
        {
            tracing::warn!("reload: changes to dpdk, ports, flows or exception_path need a restart; applying services, routes and neighbors only");
        }
        // Peers, AS, router id and grace apply at once (BIRD reconfigures); turning BGP
        // on or off, or another BIRD, needs a restart.
        let bgp = match (&self.cfg.bgp, cfg.bgp.clone()) {
            (Some(old), Some(new)) if old.bird == new.bird => Some(new),
            (old, new) => {
                if *old != new {
                    tracing::warn!("reload: adding or removing `bgp`, or changing bgp.bird, needs a restart; BGP keeps running as it was");
                }
                old.clone()
            }
        };
        let gone = self.reg.retain(&cfg);
        self.runtime.retain(&cfg);
        self.cfg = Config {
            ports: self.cfg.ports.clone(),
            dpdk: self.cfg.dpdk.clone(),
            flows: self.cfg.flows.clone(),
            exception_path: self.cfg.exception_path.clone(),
            bgp,
            api: config::ApiConf {
                listen: self.cfg.api.listen,
                ..cfg.api.clone()
            },
            ..cfg
        };
        let cur = self.shared.cell.load();
        let services = Arc::new(build::services(&self.cfg, &self.runtime, &mut self.reg));
        let (routes, routes6) = build::routes(&self.cfg, &cur.ports);
        self.neighbors.retain(|_, n| !n.is_static);
        self.load_static_neighbors();
        let neighbors = self.neighbor_table();
        let v = self.shared.cell.publish(Snapshot {
            services,
            routes: Arc::new(routes),
            routes6: Arc::new(routes6),
            snat: Arc::new(build::snat(&self.cfg)),
            neighbors,
            ..Snapshot::clone(&cur)
        });
        // Removed backends' flows end; drained ones (weight 0) keep theirs.
        let ended = self.end_flows(&gone);
        for id in gone {
            self.shared.conns.reset(id);
        }
        tracing::info!(version = v, flows_ended = ended, "config applied");
        let want = super::exception::kernel_routes(&self.cfg);
        if want != self.kernel_routes {
            let ns = self.cfg.exception_path.netns.clone();
            self.kernel_routes =
                super::exception::sync_routes(ns.as_deref(), &self.kernel_routes, want);
        }
        let targets = super::health::targets(&self.cfg);
        if targets != self.probe_targets {
            self.prober.set_targets(targets.clone());
            self.probe_targets = targets;
        }
        self.publish_health();
        self.gratuitous_arp();
        self.announce();
        v
    }

    /// A stop signal: true when the loop should end now. With BGP, the first signal
    /// withdraws every VIP and forwarding goes on for `bgp.withdraw_grace_s` (routers
    /// move the flows away meanwhile); then BIRD is stopped while the loop still runs
    /// (its notifications to the peers leave through the exception path), at most
    /// `BIRD_STOP`. A second signal skips the grace, a third stops at once.
    fn stop_now(&mut self) -> bool {
        const BIRD_STOP: Duration = Duration::from_secs(4);
        let now = Instant::now();
        if STOP.swap(false, Relaxed) {
            let grace = self.cfg.bgp.as_ref().map_or(0, |b| b.withdraw_grace_s);
            if self.closing.is_some() || self.bgp.is_none() {
                return true;
            }
            if self.stopping.is_none() && grace > 0 {
                tracing::info!("stopping: every VIP withdrawn; forwarding {grace} s more (a second signal stops sooner)");
                self.stopping = Some(now + Duration::from_secs(grace as u64));
                self.announce();
                return false;
            }
            self.stopping = Some(now);
            self.announce();
        }
        if self.closing.is_none() && self.stopping.is_some_and(|t| now >= t) {
            if let Some(b) = self.bgp.as_mut() {
                b.begin_stop();
            }
            self.closing = Some(now);
        }
        match (self.closing, self.bgp.as_ref()) {
            (Some(t), Some(b)) => {
                // Once BIRD is gone, a moment for its last segments to leave.
                if b.stopped() && self.bgp_stopped_at.is_none() {
                    self.bgp_stopped_at = Some(now);
                }
                now >= t + BIRD_STOP
                    || self
                        .bgp_stopped_at
                        .is_some_and(|s| now >= s + Duration::from_millis(100))
            }
            (None, Some(_)) => false,
            (closing, None) => closing.is_some(),
        }
    }

    /// The management loop; returns when a stop signal arrives (or, with BGP, when the
    /// withdraw grace after it ends).
    pub(super) fn manage(&mut self) {
        let mut last_sweep = Instant::now();
        let mut last_age = Instant::now();
        while !self.stop_now() {
            let secs = self.start.elapsed().as_secs() as u32;
            self.shared.clock.store(secs, Relaxed);
            if RELOAD.swap(false, Relaxed) {
                if let Err(e) = self.reload() {
                    tracing::error!("reload rejected, running config kept:\n{e}");
                }
            }
            let mut changed = false;
            let mut n = 0;
            while let Some((port, m)) = self.shared.to_mgmt.pop() {
                changed |= self.handle_punted(port, m);
                n += 1;
                if n == 256 {
                    break;
                }
            }
            self.poll_kernel();
            self.apply_probes();
            while let Some((ip, port)) = self.shared.resolve.pop() {
                self.resolve(ip, port);
            }
            self.take_held();
            self.retry_pending();
            while let Ok(req) = self.api_rx.try_recv() {
                let reply = self.handle(req.op);
                let _ = req.reply.send(reply);
            }
            if last_age.elapsed() > Duration::from_secs(1) {
                last_age = Instant::now();
                self.sample_workers();
                self.published.health.store(Some(Arc::new(self.health())));
                self.refresh_neighbors();
                changed |= self.expire_neighbors();
                self.expire_held();
            }
            if changed {
                self.publish_neighbors();
            }
            // A thousandth of each table every millisecond (a 1M-flow slice: ~5 us, worst
            // ~50 us here); a hundredth every 10 ms took ~50 us at a time (worst ~100)
            // of a core that, on small machines, a generator or the kernel shares.
            if last_sweep.elapsed() > Duration::from_millis(1) {
                last_sweep = Instant::now();
                let conns = &self.shared.conns;
                let (flows, flows6, t) = (
                    &self.shared.flows,
                    &self.shared.flows6,
                    &self.shared.timeouts,
                );
                let budget = |cap: usize| (cap / 1000).max(128);
                // Under pressure (a table over 90% full: a SYN flood, say) half-open
                // flows live at most PRESSED_SYN_TIMEOUT, as conntrack's and IPVS's
                // defence modes shorten them.
                let pressed = |len: usize, cap: usize| len * 10 > cap * 9;
                let short = dataplane::flow::Timeouts {
                    tcp_syn: t.tcp_syn.min(PRESSED_SYN_TIMEOUT),
                    ..*t
                };
                let t4 = if pressed(flows.len(), flows.capacity()) {
                    &short
                } else {
                    t
                };
                flows.sweep(secs, t4, budget(flows.capacity()), |f| {
                    conns.on_end(f.init.backend_id, f.state)
                });
                let t6 = if pressed(flows6.len(), flows6.capacity()) {
                    &short
                } else {
                    t
                };
                flows6.sweep(secs, t6, budget(flows6.capacity()), |f| {
                    conns.on_end(f.init.backend_id, f.state)
                });
                self.decide_syn_cookies();
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}
