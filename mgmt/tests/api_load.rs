//! The API under load (a running daemon on a net_pcap port, a 256K-flow table): 2000
//! concurrent mixed requests, then 600 connections that send half a request and hold.
//! `/healthz` must answer throughout (its latency is printed); the half-open connections
//! must be closed by the API, not held forever.
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

/// One request on its own connection; the status, or None if it failed or timed out.
async fn get(addr: &str, req: String) -> Option<u16> {
    let go = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(120), go)
        .await
        .ok()
        .flatten()
}

fn request(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: ferrovs\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
}

/// Probes `/healthz` every 100 ms until `stop`; returns each probe's (status, latency).
async fn probe(
    addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(Option<u16>, Duration)> {
    let mut seen = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        let s = get(&addr, request("GET", "/healthz")).await;
        seen.push((s, t.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

fn report(what: &str, seen: &[(Option<u16>, Duration)]) {
    let mut lat: Vec<Duration> = seen.iter().map(|s| s.1).collect();
    lat.sort();
    let ok = seen.iter().filter(|s| s.0 == Some(200)).count();
    eprintln!(
        "{what}: /healthz {ok} of {} probes answered 200; latency p50 {:?}, max {:?}",
        seen.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    assert!(!seen.is_empty());
    assert_eq!(
        ok,
        seen.len(),
        "{what}: /healthz did not always answer: {seen:?}"
    );
}

#[test]
fn healthz_answers_through_a_storm_and_half_open_connections() {
    let dir = common::scratch("api-load");
    std::env::set_var("FERROVS_LOCK_DIR", dir.join("locks"));
    let (inp, out, cfgp) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("ferrovs.yaml"),
    );
    dataplane::pcap::write(std::fs::File::create(&inp).unwrap(), &[]).unwrap();
    let port = common::free_port();
    std::fs::write(
        &cfgp,
        format!(
            r#"
dpdk: {{ cores: "0-1", hugepages: false, memory_mb: 256, file_prefix: "ferrovs-load-{pid}" }}
ports:
  - {{ name: p0, device: "net_pcap0,rx_pcap={inp},tx_pcap={out}", mac: "02:00:00:00:0a:01", addresses: ["10.0.0.1/24"] }}
api: {{ listen: "127.0.0.1:{port}" }}
flows: {{ capacity: 262144 }}
services:
  - {{ name: web, vip: 10.0.0.10, port: 80, backends: [ {{ address: 10.0.0.20 }}, {{ address: 10.0.0.21 }} ] }}
"#,
            pid = std::process::id(),
            inp = inp.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let daemon = common::Ferrovs::start(&cfgp);
    daemon.wait_for("ferrovs running");
    let addr = format!("127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    rt.block_on(async {
        // 2000 concurrent requests, mixed: reads, heavy reads, writes without a token
        // (allowed: no token_file), bad URLs.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let prober = tokio::spawn(probe(addr.clone(), stop.clone()));
        let t = Instant::now();
        let storm: Vec<_> = (0..2000)
            .map(|i| {
                let req = match i % 5 {
                    0 => request("GET", "/api/v1/services"),
                    1 => request("GET", "/api/v1/flows?limit=100000"),
                    2 => request("GET", "/metrics"),
                    3 => request("GET", "/api/v1/stats"),
                    _ => request("PUT", "/api/v1/services/web/backends/10.0.0.21:80"),
                };
                let addr = addr.clone();
                tokio::spawn(async move { get(&addr, req).await })
            })
            .collect();
        let mut statuses = std::collections::BTreeMap::new();
        for h in storm {
            *statuses.entry(h.await.unwrap()).or_insert(0) += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = prober.await.unwrap();
        eprintln!("storm: 2000 requests in {:?}: {statuses:?}", t.elapsed());
        report("storm", &seen);
        // Nothing failed for want of the management thread: every request got an answer.
        assert!(
            !statuses.contains_key(&None),
            "requests without an answer: {statuses:?}"
        );

        // 600 connections each send half a request and hold it.
        let mut held = Vec::new();
        for _ in 0..600 {
            if let Ok(Ok(mut s)) =
                tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr)).await
            {
                let _ = s
                    .write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: x\r\n")
                    .await;
                held.push(s);
            }
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let prober = tokio::spawn(probe(addr.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(8)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = prober.await.unwrap();
        report(&format!("{} half-open connections", held.len()), &seen);
        // The API closed the ones it accepted (header timeout): they read EOF.
        let mut closed = 0;
        for s in held.iter_mut() {
            let mut b = [0u8; 256];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(20), s.read(&mut b)).await
            {
                closed += 1;
            }
        }
        eprintln!(
            "half-open: {closed} of {} closed by the API after 8 s",
            held.len()
        );
        assert!(
            closed >= 200,
            "slow clients were held open: {closed} closed"
        );
    });
    daemon.stop();
    std::fs::remove_dir_all(&dir).ok();
}
