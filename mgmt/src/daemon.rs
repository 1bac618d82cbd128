//! The running appliance: EAL and port bring-up, workers, and the management loop
//! (ARP answer/learn/resolve, gratuitous ARP, flow expiry, reload, signals).
mod control;

use crate::api::{self, Request};
use crate::build::{self, Registry};
use crate::config::{self, Config};
use anyhow::{bail, Context, Result};
use dataplane::counters::WorkerCounters;
use dataplane::dpdk::{self, Eal, Mempool, Port, TxQueue};
use dataplane::flow::Timeouts;
use dataplane::snapshot::{same_subnet, Neighbors, Snapshot, SnapshotCell};
use dataplane::wire::{arp, builder::arp_frame, ArpPacket, EthernetFrame, MacAddr};
use dataplane::worker::{self, Shared, WorkerQueues};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Relaxed);
    } else {
        STOP.store(true, Relaxed);
    }
}

fn install_signals() {
    for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to atomics (async-signal-safe).
        unsafe { libc::signal(s, on_signal as *const () as libc::sighandler_t) };
    }
}

/// True for a PCI address such as 0000:3b:00.0 (else the device is a vdev spec).
pub fn is_pci(dev: &str) -> bool {
    let b = dev.as_bytes();
    dev.len() >= 7
        && dev.contains(':')
        && dev.contains('.')
        && b.iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
}

/// EAL arguments for a config.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let d = &cfg.dpdk;
    let mut a = vec![
        "-l".into(),
        d.cores.clone(),
        "--file-prefix".into(),
        d.file_prefix.clone(),
    ];
    if d.hugepages {
        a.extend(["-m".into(), d.memory_mb.to_string(), "--in-memory".into()]);
    } else {
        a.extend([
            "--no-huge".into(),
            "-m".into(),
            d.memory_mb.to_string(),
            "--no-shconf".into(),
        ]);
    }
    let mut any_pci = false;
    for p in &cfg.ports {
        if is_pci(&p.device) {
            any_pci = true;
            a.extend(["-a".into(), p.device.clone()]);
        } else {
            a.push(format!("--vdev={}", p.device));
        }
    }
    if !any_pci && !d.extra_args.iter().any(|x| x == "--no-pci") {
        a.push("--no-pci".into());
    }
    a.extend(d.extra_args.iter().cloned());
    a
}

#[derive(Debug, Clone, Copy)]
struct Neighbor {
    mac: MacAddr,
    is_static: bool,
    seen: Instant,
}

#[derive(Debug, Clone, Copy)]
struct WorkerSample {
    busy_cycles: u64,
    total_cycles: u64,
    /// Busy share of the last interval.
    busy_ratio: f64,
    loops: u64,
    /// When `loops` last moved (the worker is polling).
    progressed: Instant,
}

impl WorkerSample {
    fn new() -> WorkerSample {
        WorkerSample {
            busy_cycles: 0,
            total_cycles: 0,
            busy_ratio: 0.0,
            loops: 0,
            progressed: Instant::now(),
        }
    }
}

struct Pending {
    port: u16,
    tries: u32,
    last: Instant,
}

/// How long a learned neighbor lives without being refreshed.
const NEIGHBOR_TTL: Duration = Duration::from_secs(300);
/// In the last minute of a learned neighbor's life, ferrovs asks for it again (once a
/// second), so entries in use are refreshed before they expire.
const NEIGHBOR_REFRESH: Duration = Duration::from_secs(60);
/// A worker whose loop counter has not moved for this long is reported unhealthy.
const WORKER_STALL: Duration = Duration::from_secs(2);
const ARP_RETRIES: u32 = 5;

pub struct Daemon {
    cfg: Config,
    path: PathBuf,
    reg: Registry,
    shared: Arc<Shared>,
    ports: Vec<Port>,
    pool: Arc<Mempool>,
    mgmt_tx: Vec<Option<TxQueue>>,
    neighbors: HashMap<Ipv4Addr, Neighbor>,
    pending: HashMap<Ipv4Addr, Pending>,
    counters: Vec<Arc<WorkerCounters>>,
    /// Per port: how it was brought up (driver, queues, MAC in software or not).
    port_notes: Vec<serde_json::Value>,
    /// Per worker: what the last once-a-second sample saw.
    samples: Vec<WorkerSample>,
    api_rx: mpsc::Receiver<Request>,
    start: Instant,
}

pub fn run(path: PathBuf) -> Result<()> {
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let cfg = config::load(&text)
        .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", path.display()))?;
    install_signals();
    let args = eal_args(&cfg);
    tracing::info!(?args, "starting EAL");
    let eal = Eal::init(&args).map_err(|e| {
        let hint = if cfg.dpdk.hugepages {
            " (no hugepages? run scripts/hugepages.sh, or set dpdk.hugepages: false)"
        } else {
            ""
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    let result = run_with(&eal, cfg, path);
    drop(eal);
    result
}

fn run_with(eal: &Eal, cfg: Config, path: PathBuf) -> Result<()> {
    let cores = cfg.cores();
    let want_workers = cores.len() - 1;
    let pool =
        Arc::new(Mempool::new(eal, "ferrovs_pool", 16383, 256, 2176).map_err(anyhow::Error::msg)?);
    let mut ports = Vec::new();
    let mut infos = Vec::new();
    for p in &cfg.ports {
        let name = if is_pci(&p.device) {
            p.device.as_str()
        } else {
            p.device.split(',').next().unwrap_or("")
        };
        let port =
            Port::by_name(name).with_context(|| format!("port `{}` ({})", p.name, p.device))?;
        infos.push(port.info().map_err(anyhow::Error::msg)?);
        ports.push(port);
    }
    // Queue plan: as many workers as every port can give a TX queue and (where it can)
    // an RX queue; one more TX queue for the management thread where there is one.
    let max_tx = infos
        .iter()
        .map(|i| i.max_tx_queues as usize)
        .min()
        .unwrap_or(1);
    let workers = want_workers.min(max_tx).max(1);
    if workers < want_workers {
        tracing::warn!(
            want_workers,
            workers,
            "a port offers fewer TX queues than worker cores: running fewer workers"
        );
    }
    let mut macs = Vec::new();
    let mut per_worker: Vec<WorkerQueues> = (0..workers)
        .map(|_| WorkerQueues {
            rx: vec![],
            tx: vec![],
            sends_for_mgmt: false,
        })
        .collect();
    let mut mgmt_tx = Vec::new();
    let mut port_notes = Vec::new();
    for (i, (port, info)) in ports.iter_mut().zip(&infos).enumerate() {
        let pc = &cfg.ports[i];
        let rxq = workers.min(info.max_rx_queues as usize).max(1);
        let txq = (workers + 1).min(info.max_tx_queues as usize);
        let (rx, tx, rss) = port
            .configure(rxq as u16, txq as u16, 1024, &pool)
            .map_err(anyhow::Error::msg)?;
        let mut software_mac = false;
        if let Some(m) = &pc.mac {
            let mac: MacAddr = m.parse().map_err(|e: &str| anyhow::anyhow!(e))?;
            if port.set_mac(mac).is_err() {
                software_mac = true;
            }
            macs.push(mac);
        } else {
            macs.push(port.mac());
        }
        if let Some(mtu) = pc.mtu {
            if let Err(e) = port.set_mtu(mtu as u16) {
                tracing::warn!(port = %pc.name, "cannot set MTU: {e}");
            }
        }
        port.start().map_err(anyhow::Error::msg)?;
        if software_mac {
            let _ = port.set_promiscuous(true);
        }
        let mut tx = tx.into_iter();
        for (w, q) in rx.into_iter().enumerate() {
            per_worker[w].rx.push((i as u16, q));
        }
        for wq in per_worker.iter_mut() {
            wq.tx.push(tx.next().expect("workers <= tx queues"));
        }
        let own = tx.next();
        tracing::info!(
            port = %pc.name, device = %pc.device, driver = %info.driver, mac = %macs[i], rx_queues = rxq, tx_queues = txq,
            rss, software_mac, mgmt_tx = if own.is_some() { "own queue" } else { "through worker 0" },
            "port up"
        );
        port_notes.push(serde_json::json!({
            "name": pc.name, "device": pc.device, "driver": info.driver, "mac": macs[i].to_string(),
            "software_mac": software_mac, "rx_queues": rxq, "tx_queues": txq, "rss": rss,
            "mgmt_tx": if own.is_some() { "own queue" } else { "through worker 0" },
        }));
        mgmt_tx.push(own);
    }
    if mgmt_tx.iter().any(|q| q.is_none()) {
        per_worker[0].sends_for_mgmt = true;
    }
    let mut reg = Registry::default();
    let port_confs = build::ports(&cfg, &macs);
    let t = &cfg.flows.timeouts;
    let timeouts = Timeouts {
        tcp_syn: t.tcp_syn as u32,
        tcp_established: t.tcp_established as u32,
        tcp_closing: t.tcp_closing as u32,
        udp: t.udp as u32,
    };
    let first = Snapshot {
        version: 1,
        local: Arc::new(Snapshot::local_index(&port_confs)),
        routes: Arc::new(build::routes(&cfg, &port_confs)),
        services: Arc::new(build::services(&cfg, &mut reg)),
        ports: Arc::new(port_confs),
        neighbors: Arc::new(Neighbors::default()),
    };
    let shared = Arc::new(Shared::new(
        SnapshotCell::new(first),
        cfg.flows.capacity as usize,
        timeouts,
        ports.len(),
    ));
    let token = match &cfg.api.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("api.token_file {f}"))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let (api_tx, api_rx) = mpsc::sync_channel(64);
    let api_addr = api::start(&cfg.api.listen, token, api_tx)?;
    tracing::info!(%api_addr, "api listening");
    let mut d = Daemon {
        cfg,
        path,
        reg,
        shared: shared.clone(),
        ports,
        pool,
        mgmt_tx,
        neighbors: HashMap::new(),
        pending: HashMap::new(),
        counters: (0..workers)
            .map(|_| Arc::new(WorkerCounters::default()))
            .collect(),
        port_notes,
        samples: vec![WorkerSample::new(); workers],
        api_rx,
        start: Instant::now(),
    };
    d.load_static_neighbors();
    d.publish_neighbors();
    let mut handles = Vec::new();
    for (w, q) in per_worker.into_iter().enumerate() {
        let (s, c, core) = (shared.clone(), d.counters[w].clone(), cores[w + 1]);
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker{w}"))
                .spawn(move || {
                    if let Err(e) = dpdk::register_thread(Some(core)) {
                        tracing::warn!(worker = w, "register/pin: {e}; running unpinned");
                        let _ = dpdk::register_thread(None);
                    }
                    worker::run(&s, q, &c);
                    dpdk::unregister_thread();
                })?,
        );
    }
    tracing::info!(
        workers,
        flows = d.shared.flows.capacity(),
        "ferrovs running"
    );
    d.gratuitous_arp();
    d.manage();
    tracing::info!("stopping");
    shared.stop.store(true, Relaxed);
    for h in handles {
        let _ = h.join();
    }
    while let Some((_, m)) = shared.to_mgmt.pop() {
        drop(m);
    }
    drop(d.mgmt_tx);
    drop(d.ports); // stop + close: flushes net_pcap output
    tracing::info!("stopped");
    Ok(())
}

impl Daemon {
    fn load_static_neighbors(&mut self) {
        for n in &self.cfg.neighbors {
            let (Ok(a), Ok(mac)) = (n.address.parse(), n.mac.parse()) else {
                continue;
            };
            self.neighbors.insert(
                a,
                Neighbor {
                    mac,
                    is_static: true,
                    seen: Instant::now(),
                },
            );
        }
    }

    fn neighbor_table(&self) -> Arc<Neighbors> {
        Arc::new(Neighbors::new(
            self.neighbors.iter().map(|(a, n)| (*a, n.mac)),
        ))
    }

    fn publish_neighbors(&self) {
        let cur = self.shared.cell.load();
        let neighbors = self.neighbor_table();
        self.shared.cell.publish(Snapshot {
            neighbors,
            ..Snapshot::clone(&cur)
        });
    }

    fn send(&mut self, port: u16, frame: &[u8]) {
        let Some(m) = self.pool.alloc_with(frame) else {
            return;
        };
        match self.mgmt_tx.get_mut(port as usize) {
            Some(Some(q)) => {
                q.send_one(m);
            }
            _ => {
                let _ = self.shared.from_mgmt[port as usize].push(m);
            }
        }
    }

    /// The port address to speak from toward `ip` (same subnet, else the first).
    fn source_for(&self, port: u16, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        let snap = self.shared.cell.load();
        let p = snap.ports.get(port as usize)?;
        p.addresses
            .iter()
            .find(|&&(a, l)| same_subnet(a, ip, l))
            .or(p.addresses.first())
            .map(|a| a.0)
    }

    fn gratuitous_arp(&mut self) {
        let snap = self.shared.cell.load();
        let frames: Vec<(u16, Vec<u8>)> = snap
            .services
            .list
            .iter()
            .filter_map(|s| {
                let route = snap
                    .routes
                    .lookup(s.vip)
                    .or_else(|| snap.routes.lookup(Ipv4Addr::UNSPECIFIED))?;
                let mac = snap.ports[route.port as usize].mac;
                Some((
                    route.port,
                    arp_frame(arp::OP_REQUEST, mac, s.vip, MacAddr::ZERO, s.vip),
                ))
            })
            .collect();
        for (p, f) in frames {
            self.send(p, &f);
        }
    }

    fn handle_arp(&mut self, port: u16, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        let Ok(a) = ArpPacket::new_checked(eth.payload()) else {
            return false;
        };
        let snap = self.shared.cell.load();
        let Some(pc) = snap.ports.get(port as usize) else {
            return false;
        };
        let target = a.target_ip();
        let local_here = pc.addresses.iter().any(|(x, _)| *x == target);
        let ours = local_here || snap.services.is_vip(target);
        let mut changed = false;
        if ours || self.pending.contains_key(&a.sender_ip()) {
            let sender = a.sender_ip();
            if !sender.is_unspecified() && !a.sender_mac().is_multicast() {
                let old = self.neighbors.get(&sender).copied();
                if old.is_none_or(|n| !n.is_static) {
                    if old.is_none_or(|n| n.mac != a.sender_mac()) {
                        tracing::info!(ip = %sender, mac = %a.sender_mac(), port = %pc.name, "neighbor learned");
                        changed = true;
                    }
                    self.neighbors.insert(
                        sender,
                        Neighbor {
                            mac: a.sender_mac(),
                            is_static: false,
                            seen: Instant::now(),
                        },
                    );
                }
                self.pending.remove(&sender);
            }
        }
        if a.operation() == arp::OP_REQUEST && ours {
            let reply = arp_frame(arp::OP_REPLY, pc.mac, target, a.sender_mac(), a.sender_ip());
            self.send(port, &reply);
        }
        changed
    }

    fn resolve(&mut self, ip: Ipv4Addr, port: u16) {
        if self.neighbors.contains_key(&ip) {
            return;
        }
        let now = Instant::now();
        let p = self.pending.entry(ip).or_insert(Pending {
            port,
            tries: 0,
            last: now - Duration::from_secs(10),
        });
        // Back-off: 100 ms, 200 ms, 400 ms, ... then give up for a while.
        let wait = Duration::from_millis(100 << p.tries.min(6));
        if p.tries >= ARP_RETRIES || now.duration_since(p.last) < wait {
            if p.tries >= ARP_RETRIES && now.duration_since(p.last) > Duration::from_secs(10) {
                p.tries = 0; // try again later
            }
            return;
        }
        p.tries += 1;
        p.last = now;
        self.arp_request(ip, port);
    }

    fn arp_request(&mut self, ip: Ipv4Addr, port: u16) {
        let Some(src) = self.source_for(port, ip) else {
            return;
        };
        let mac = self.shared.cell.load().ports[port as usize].mac;
        tracing::debug!(%ip, "ARP request");
        self.send(
            port,
            &arp_frame(arp::OP_REQUEST, mac, src, MacAddr::ZERO, ip),
        );
    }

    /// Asks again for learned neighbors close to expiry (their reply refreshes them).
    fn refresh_neighbors(&mut self) {
        let snap = self.shared.cell.load();
        let due: Vec<(Ipv4Addr, u16)> = self
            .neighbors
            .iter()
            .filter(|(_, n)| !n.is_static && n.seen.elapsed() + NEIGHBOR_REFRESH > NEIGHBOR_TTL)
            .filter_map(|(a, _)| Some((*a, snap.routes.lookup(*a)?.port)))
            .collect();
        for (ip, port) in due {
            self.arp_request(ip, port);
        }
    }

    /// Re-reads and applies the config file (SIGHUP, `POST /api/v1/reload`). A file that
    /// fails validation changes nothing; the error lists every problem.
    pub(crate) fn reload(&mut self) -> Result<u64, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("read {}: {e}", self.path.display()))?;
        let cfg = config::load(&text).map_err(|e| e.to_string())?;
        Ok(self.apply(cfg))
    }

    /// Publishes a validated config: services, routes and static neighbors change at
    /// once; flows of unchanged backends stay, drained ones (weight 0) keep theirs,
    /// removed backends' flows end. Returns the snapshot version.
    pub(crate) fn apply(&mut self, cfg: Config) -> u64 {
        if cfg.ports != self.cfg.ports || cfg.dpdk != self.cfg.dpdk || cfg.flows != self.cfg.flows {
            tracing::warn!("reload: changes to dpdk, ports or flows need a restart; applying services, routes and neighbors only");
        }
        let gone = self.reg.retain(&cfg);
        let cur = self.shared.cell.load();
        let services = Arc::new(build::services(&cfg, &mut self.reg));
        let routes = Arc::new(build::routes(&cfg, &cur.ports));
        self.cfg = Config {
            ports: self.cfg.ports.clone(),
            dpdk: self.cfg.dpdk.clone(),
            flows: self.cfg.flows.clone(),
            ..cfg
        };
        self.neighbors.retain(|_, n| !n.is_static);
        self.load_static_neighbors();
        let neighbors = self.neighbor_table();
        let v = self.shared.cell.publish(Snapshot {
            services,
            routes,
            neighbors,
            ..Snapshot::clone(&cur)
        });
        // Removed backends' flows end; drained ones (weight 0) keep theirs.
        let conns = &self.shared.conns;
        let ended = self.shared.flows.remove_where(
            |f| gone.contains(&f.init.backend_id),
            |f| conns.on_end(f.init.backend_id, f.state),
        );
        for id in gone {
            self.shared.conns.reset(id);
        }
        tracing::info!(version = v, flows_ended = ended, "config applied");
        self.gratuitous_arp();
        v
    }

    /// The management loop; returns when a stop signal arrives.
    fn manage(&mut self) {
        let mut last_sweep = Instant::now();
        let mut last_age = Instant::now();
        while !STOP.load(Relaxed) {
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
                changed |= self.handle_arp(port, m.data());
                n += 1;
                if n == 256 {
                    break;
                }
            }
            while let Some((ip, port)) = self.shared.resolve.pop() {
                self.resolve(ip, port);
            }
            let pending: Vec<(Ipv4Addr, u16)> = self
                .pending
                .iter()
                .filter(|(_, p)| p.tries > 0 && p.tries < ARP_RETRIES)
                .map(|(ip, p)| (*ip, p.port))
                .collect();
            for (ip, port) in pending {
                self.resolve(ip, port);
            }
            while let Ok(req) = self.api_rx.try_recv() {
                let reply = self.handle(req.op);
                let _ = req.reply.send(reply);
            }
            if last_age.elapsed() > Duration::from_secs(1) {
                last_age = Instant::now();
                self.sample_workers();
                self.refresh_neighbors();
                let before = self.neighbors.len();
                self.neighbors
                    .retain(|_, n| n.is_static || n.seen.elapsed() < NEIGHBOR_TTL);
                changed |= before != self.neighbors.len();
            }
            if changed {
                self.publish_neighbors();
            }
            if last_sweep.elapsed() > Duration::from_millis(10) {
                last_sweep = Instant::now();
                let budget = (self.shared.flows.capacity() / 100).max(1024);
                let conns = &self.shared.conns;
                self.shared
                    .flows
                    .sweep(secs, &self.shared.timeouts, budget, |f| {
                        conns.on_end(f.init.backend_id, f.state)
                    });
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// `--check`: parses and validates the file; the error lists every problem by key path.
pub fn check(path: &std::path::Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    match config::load(&text) {
        Ok(c) => Ok(c),
        Err(e) => bail!("{}: {} error(s):\n{e}", path.display(), e.0.len()),
    }
}
