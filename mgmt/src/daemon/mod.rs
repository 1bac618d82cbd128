//! The running appliance, one file per job:
//! * this file: the life cycle (start, signals, workers, stop) and `--check`;
//! * [`bringup`]: EAL arguments, ports and the queue plan;
//! * `bgp`: BIRD, run and reconfigured to announce the VIPs that have live backends;
//! * `neighbors`: ARP answer/learn/resolve/refresh, gratuitous ARP;
//! * `manage`: the management loop, reload and apply;
//! * `handlers`: answers to REST API requests;
//! * `metrics`: `/metrics`, `/api/v1/stats` and worker sampling;
//! * [`lock`]: one daemon per device and per EAL file prefix.
#![deny(clippy::undocumented_unsafe_blocks)]
mod bgp;
pub mod bringup;
mod exception;
mod handlers;
mod health;
pub mod lock;
mod manage;
mod metrics;
mod neighbors;
mod view;

pub use bringup::{eal_args, is_pci};

use crate::api::{self, Request};
use crate::build::{self, Registry};
use crate::config::{self, Config};
use crate::runtime::Runtime;
use anyhow::{bail, Context, Result};
use dataplane::counters::WorkerCounters;
use dataplane::dpdk::{self, Eal, Mempool, Port, TxQueue};
use dataplane::snapshot::{Neighbors, Snapshot, SnapshotCell};
use dataplane::worker::{self, Shared};
use neighbors::{Neighbor, Pending};
use std::collections::HashMap;
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

/// A worker whose loop counter has not moved for this long is reported unhealthy.
const WORKER_STALL: Duration = Duration::from_secs(2);

pub struct Daemon {
    /// The operator's config: the file plus API edits.
    cfg: Config,
    path: PathBuf,
    reg: Registry,
    /// State that is not configuration (port MACs, backend health): kept across reloads.
    runtime: Runtime,
    /// What the API thread answers on its own: the token writes are checked against (a
    /// reload re-reads `api.token_file` into it) and the last `/healthz` answer.
    published: Arc<api::Published>,
    shared: Arc<Shared>,
    ports: Vec<Port>,
    pool: Arc<Mempool>,
    mgmt_tx: Vec<Option<TxQueue>>,
    /// Per port: its kernel interface, if it has one (`ports[].kernel_interface`).
    exceptions: Vec<Option<exception::Exception>>,
    /// The health-check thread, and what it probes now.
    /// The static routes put into the exception path's kernel.
    kernel_routes: Vec<exception::KernelRoute>,
    prober: health::Prober,
    probe_targets: Vec<health::Target>,
    /// When the API's view of the health table was last refreshed.
    health_published: Instant,
    /// By (port, address).
    neighbors: HashMap<neighbors::NeighborKey, Neighbor>,
    pending: HashMap<neighbors::NeighborKey, Pending>,
    /// Packets waiting for a next hop's MAC (a few per neighbor, bounded in total).
    held: neighbors::Held,
    /// ARP requests and neighbor solicitations sent this second.
    request_budget: neighbors::RequestBudget,
    learn_log: neighbors::LogBudget,
    /// The snapshot and the per-worker counters, as read by the API.
    view: view::View,
    /// Per port: how it was brought up (driver, queues, MAC in software or not).
    port_notes: Vec<crate::model::PortNote>,
    /// Per worker: what the last once-a-second sample saw.
    samples: Vec<WorkerSample>,
    api_rx: mpsc::Receiver<Request>,
    start: Instant,
    /// The BGP supervisor (`bgp`), once the workers forward.
    bgp: Option<bgp::Speaker>,
    /// Set by the first stop signal when BGP is on: VIPs are withdrawn and forwarding
    /// goes on until then (`bgp.withdraw_grace_s`).
    stopping: Option<Instant>,
    /// When BIRD was asked to stop (the grace is over), and when it had.
    closing: Option<Instant>,
    bgp_stopped_at: Option<Instant>,
}

pub fn run(path: PathBuf) -> Result<()> {
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let cfg = config::load_for_host(&text)
        .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", path.display()))?;
    for w in config::warnings(&cfg) {
        tracing::warn!("{w}");
    }
    let _locks = lock::acquire(&cfg, &lock::lock_dir())?;
    install_signals();
    let args = bringup::eal_args(&cfg);
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
    let cores = cfg.dpdk.cores.0.clone();
    let pool =
        Arc::new(Mempool::new(eal, "ferrovs_pool", 16383, 256, 2176).map_err(anyhow::Error::msg)?);
    let up = bringup::ports(&cfg, cores.len() - 1, &pool)?;
    let workers = up.per_worker.len();
    let mut exceptions = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        exceptions.push(match p.kernel_interface {
            Some(_) => Some(exception::open(&cfg, i, up.macs[i], &pool)?),
            None => None,
        });
    }
    let kernel_routes = exception::sync_routes(
        cfg.exception_path.netns.as_deref(),
        &[],
        exception::kernel_routes(&cfg),
    );
    let mut reg = Registry::default();
    let runtime = Runtime::new(up.macs);
    let port_confs = build::ports(&cfg, &runtime);
    let (routes, routes6) = build::routes(&cfg, &port_confs);
    let first = Snapshot {
        version: 1,
        local: Arc::new(Snapshot::local_index(&port_confs)),
        routes: Arc::new(routes),
        routes6: Arc::new(routes6),
        snat: Arc::new(build::snat(&cfg)),
        services: Arc::new(build::services(&cfg, &runtime, &mut reg)),
        ports: Arc::new(port_confs),
        neighbors: Arc::new(Neighbors::default()),
        // Worked out by the cell, as on every publish.
        backend_hops: Default::default(),
    };
    let shared = Arc::new(Shared::new(
        SnapshotCell::new(first),
        cfg.flows.capacity as usize,
        cfg.flows.capacity_ipv6() as usize,
        cfg.flows.timeouts.to_timeouts(),
        up.ports.len(),
    ));
    let published: Arc<api::Published> = Default::default();
    published.token.store(read_token(&cfg)?.map(Arc::new));
    let probe_targets = health::targets(&cfg);
    let prober = health::start(cfg.exception_path.netns.clone(), probe_targets.clone())?;
    let bgp_status = cfg.bgp.as_ref().map(|_| Default::default());
    let view = view::View {
        health: Default::default(),
        bgp: bgp_status.clone(),
        shared: shared.clone(),
        counters: (0..workers)
            .map(|_| Arc::new(WorkerCounters::default()))
            .collect(),
    };
    let (api_tx, api_rx) = mpsc::sync_channel(64);
    let api_addr = api::start(
        cfg.api.listen,
        published.clone(),
        Arc::new(view.clone()),
        api_tx,
    )?;
    tracing::info!(%api_addr, "api listening");
    let mut d = Daemon {
        cfg,
        path,
        reg,
        runtime,
        published,
        shared: shared.clone(),
        ports: up.ports,
        pool,
        mgmt_tx: up.mgmt_tx,
        exceptions,
        kernel_routes,
        prober,
        probe_targets,
        health_published: Instant::now(),
        neighbors: HashMap::new(),
        pending: HashMap::new(),
        held: Default::default(),
        request_budget: Default::default(),
        learn_log: Default::default(),
        view: view.clone(),
        port_notes: up.notes,
        samples: vec![WorkerSample::new(); workers],
        api_rx,
        start: Instant::now(),
        bgp: None,
        stopping: None,
        closing: None,
        bgp_stopped_at: None,
    };
    d.load_static_neighbors();
    d.publish_neighbors();
    let mut handles = Vec::new();
    for (w, q) in up.per_worker.into_iter().enumerate() {
        let (s, c, core) = (shared.clone(), d.view.counters[w].clone(), cores[w + 1]);
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
    d.published.health.store(Some(Arc::new(d.health())));
    d.gratuitous_arp();
    if let (Some(b), Some(status)) = (&d.cfg.bgp, bgp_status) {
        let w = d.bgp_wanted(b);
        d.bgp = Some(bgp::start(
            b,
            d.cfg.exception_path.netns.clone(),
            w,
            status,
        )?);
    }
    d.manage();
    tracing::info!("stopping");
    // BIRD stops first: its sessions close with a notification.
    drop(d.bgp.take());
    shared.stop.store(true, Relaxed);
    for h in handles {
        let _ = h.join();
    }
    while let Some((_, m)) = shared.to_mgmt.pop() {
        drop(m);
    }
    // Held packets go back to the pool before the ports and the pool go.
    while let Some((_, _, m)) = shared.hold.pop() {
        drop(m);
    }
    drop(std::mem::take(&mut d.held));
    drop(d.mgmt_tx);
    drop(d.exceptions);
    drop(d.ports); // stop + close: flushes net_pcap output
    tracing::info!("stopped");
    Ok(())
}

/// The token in `api.token_file` (trimmed), if one is set. Start-up and `--check` have
/// made sure it is readable and not empty; a reload checks again.
fn read_token(cfg: &Config) -> Result<Option<String>> {
    let Some(f) = &cfg.api.token_file else {
        return Ok(None);
    };
    let t =
        std::fs::read_to_string(f).with_context(|| format!("api.token_file {}", f.display()))?;
    let t = t.trim();
    if t.is_empty() {
        bail!(
            "api.token_file: {} is empty: every write would be refused",
            f.display()
        );
    }
    Ok(Some(t.to_owned()))
}

/// `--check`: every check start-up makes (the file, this machine), every error listed by
/// key path; warnings (risky but legal settings) are returned beside a valid config.
pub fn check(path: &std::path::Path) -> Result<(Config, Vec<String>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    match config::load_for_host(&text) {
        Ok(c) => {
            let w = config::warnings(&c);
            Ok((c, w))
        }
        Err(e) => bail!("{}: {} error(s):\n{e}", path.display(), e.0.len()),
    }
}
