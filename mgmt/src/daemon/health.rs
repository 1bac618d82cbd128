//! Health checks: active probes of every backend of a service with a `health_check`,
//! keepalived's semantics (`tcp`: a connect that completes; `http`: GET `path` with
//! `Host`, expect `expect_status`). Probes run in their own thread, never on a worker nor
//! on the management loop, inside `exception_path.netns`: they leave from ferrovs's own
//! address through the kernel interface of the port facing the backend. Each backend is
//! probed every `interval_ms`, its first probe at an offset spread over the interval (no
//! thundering herd). Results go to the management thread, which applies `rise`/`fall`.
use crate::config::{CheckKind, Config, HealthCheckConf};
use crate::runtime::BackendKey;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One backend to probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub key: BackendKey,
    /// Where the probe connects (the check's port, else the backend's).
    pub addr: SocketAddr,
    pub check: HealthCheckConf,
}

/// One probe's outcome.
#[derive(Debug)]
pub struct Probe {
    pub key: BackendKey,
    pub result: Result<(), String>,
}

/// Every backend `cfg` checks.
pub fn targets(cfg: &Config) -> Vec<Target> {
    cfg.services
        .iter()
        .filter_map(|s| Some((s, s.health_check.as_ref()?)))
        .flat_map(|(s, h)| {
            s.backends.iter().map(move |b| Target {
                key: (s.name.clone(), b.address, b.port_in(s)),
                addr: SocketAddr::new(b.address, h.port.unwrap_or(b.port_in(s))),
                check: h.clone(),
            })
        })
        .collect()
}

/// The probing thread's handle: new targets in, results out.
pub struct Prober {
    targets: tokio::sync::watch::Sender<Arc<Vec<Target>>>,
    pub results: mpsc::Receiver<Probe>,
}

impl Prober {
    /// Replaces what is probed (after a config change); probing restarts from it.
    pub fn set_targets(&self, t: Vec<Target>) {
        let _ = self.targets.send(Arc::new(t));
    }
}

/// Starts the probing thread (in `netns` when given).
pub fn start(netns: Option<String>, first: Vec<Target>) -> Result<Prober> {
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(first));
    let (res_tx, res_rx) = mpsc::sync_channel(8192);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            if let Some(ns) = &netns {
                if let Err(e) = super::exception::enter_netns(ns) {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            rt.block_on(run(rx, res_tx));
        })?;
    ready_rx.recv().context("health thread")??;
    Ok(Prober {
        targets: tx,
        results: res_rx,
    })
}

/// Probes the current targets; on a change, stops the probes of targets that went or
/// changed and starts the new ones, leaving the others' rhythm alone. The probes started
/// together are spread evenly over their interval, the first at once (so a backend added
/// to a running daemon is probed at once, and 1000 new backends are not probed in the
/// same millisecond). Ends when the daemon drops the [`Prober`].
async fn run(
    mut targets: tokio::sync::watch::Receiver<Arc<Vec<Target>>>,
    out: mpsc::SyncSender<Probe>,
) {
    use std::collections::HashMap;
    let mut tasks = tokio::task::JoinSet::new();
    let mut running: HashMap<BackendKey, (Target, tokio::task::AbortHandle)> = HashMap::new();
    loop {
        let current = targets.borrow_and_update().clone();
        let wanted: HashMap<&BackendKey, &Target> = current.iter().map(|t| (&t.key, t)).collect();
        running.retain(|k, (t, h)| {
            let stays = wanted.get(k).is_some_and(|w| *w == t);
            if !stays {
                h.abort();
            }
            stays
        });
        let new: Vec<&Target> = current
            .iter()
            .filter(|t| !running.contains_key(&t.key))
            .collect();
        let n = new.len() as u32;
        for (i, t) in new.into_iter().enumerate() {
            let interval = Duration::from_millis(t.check.interval_ms as u64);
            let delay = interval * i as u32 / n;
            let (t2, out) = (t.clone(), out.clone());
            let h = tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let result = probe(&t2).await;
                    // A full channel means the management thread is far behind: drop.
                    let _ = out.try_send(Probe {
                        key: t2.key.clone(),
                        result,
                    });
                }
            });
            running.insert(t.key.clone(), (t.clone(), h));
        }
        // Reap the aborted tasks so the set does not grow with every change.
        while tasks.try_join_next().is_some() {}
        if targets.changed().await.is_err() {
            return;
        }
    }
}

/// One probe: a connect (tcp), or a GET whose status line is checked (http).
async fn probe(t: &Target) -> Result<(), String> {
    let timeout = Duration::from_millis(t.check.timeout_ms as u64);
    let go = async {
        let mut s = tokio::net::TcpStream::connect(t.addr)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect refused".to_string(),
                _ => format!("connect: {e}"),
            })?;
        if t.check.kind == CheckKind::Tcp {
            return Ok(());
        }
        let host = t
            .check
            .host
            .clone()
            .unwrap_or_else(|| t.addr.ip().to_string());
        let path = t.check.path.as_deref().unwrap_or("/");
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ferrovs-health\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 256];
        let mut n = 0;
        while n < buf.len() && !buf[..n].contains(&b'\n') {
            let got = s
                .read(&mut buf[n..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "no HTTP status line".to_string())?;
        let want = t.check.expect_status.unwrap_or(200);
        if status == want {
            Ok(())
        } else {
            Err(format!("HTTP {status}, want {want}"))
        }
    };
    match tokio::time::timeout(timeout, go).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer in {} ms", t.check.timeout_ms)),
    }
}

impl super::Daemon {
    /// Applies what the probes found: `rise`/`fall` per backend; a transition is logged
    /// once, rebuilds the services (a down backend takes no new flows) and, with
    /// `flows_on_backend_down: remove`, ends the backend's flows.
    pub(super) fn apply_probes(&mut self) {
        use crate::config::OnBackendDown;
        use crate::runtime::Health;
        let mut changed = Vec::new();
        let mut any = false;
        for _ in 0..4096 {
            let Ok(p) = self.prober.results.try_recv() else {
                break;
            };
            any = true;
            let Some(svc) = self.cfg.services.iter().find(|s| s.name == p.key.0) else {
                continue;
            };
            let Some(h) = &svc.health_check else {
                continue;
            };
            // A probe that was under way when its backend was removed.
            if !svc
                .backends
                .iter()
                .any(|b| b.address == p.key.1 && b.port_in(svc) == p.key.2)
            {
                continue;
            }
            let (rise, fall) = (h.rise, h.fall);
            let err = p.result.as_ref().err().cloned();
            if let Some(now) = self
                .runtime
                .record_probe(p.key.clone(), p.result, rise, fall)
            {
                let (s, a, port) = &p.key;
                match now {
                    Health::Down => tracing::warn!(
                        "backend down: {s} {a}:{port}: {} after {fall} failures",
                        err.as_deref().unwrap_or("failed")
                    ),
                    Health::Up => tracing::info!("backend up: {s} {a}:{port}: {rise} good probes"),
                }
                changed.push((p.key, now, svc.flows_on_backend_down));
            }
        }
        if !changed.is_empty() {
            let cur = self.shared.cell.load();
            let services = Arc::new(crate::build::services(
                &self.cfg,
                &self.runtime,
                &mut self.reg,
            ));
            self.shared.cell.publish(dataplane::snapshot::Snapshot {
                services,
                ..dataplane::snapshot::Snapshot::clone(&cur)
            });
            // With `remove`, the flows of the backends that went down end (one walk).
            let (ids, names): (Vec<u32>, Vec<String>) = changed
                .iter()
                .filter(|(_, now, on_down)| {
                    *now == Health::Down && *on_down == OnBackendDown::Remove
                })
                .filter_map(|((s, a, p), _, _)| {
                    Some((self.reg.backend_id(s, *a, *p)?, format!("{s} {a}:{p}")))
                })
                .unzip();
            if !ids.is_empty() {
                let ended = self.end_flows(&ids);
                tracing::info!("backend down: {}: {ended} flows ended", names.join(", "));
            }
            self.announce();
        }
        if (any || !self.probe_targets.is_empty())
            && self.health_published.elapsed() > Duration::from_millis(200)
        {
            self.publish_health();
        }
    }

    /// Gives the API thread the current health table.
    pub(super) fn publish_health(&mut self) {
        self.health_published = std::time::Instant::now();
        let table = self
            .probe_targets
            .iter()
            .map(|t| {
                let st = self.runtime.state(&t.key);
                let info = crate::daemon::view::HealthInfo {
                    up: st.is_none_or(|s| s.health == crate::runtime::Health::Up),
                    since: st.map(|s| s.since),
                    last_error: st.and_then(|s| s.last_error.clone()),
                    probes_ok: st.map_or(0, |s| s.probes_ok),
                    probes_failed: st.map_or(0, |s| s.probes_failed),
                };
                (t.key.clone(), info)
            })
            .collect();
        self.view.health.store(Arc::new(table));
    }
}
