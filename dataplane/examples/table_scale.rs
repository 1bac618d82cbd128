//! How the shared flow table scales with threads: N pinned threads, for a fixed time each
//! round, either look up established flows in bursts of 32 (as workers do: hash, prefetch
//! buckets, prefetch entries, probe) or insert and remove their own flows (new-flow
//! churn), on one table of `--flows` flows. Prints one line per thread count: total Mops/s,
//! per thread, and the efficiency against N times the single-thread rate; then one JSON
//! line. Plain Rust (no DPDK): build with
//! `cargo build --release -p dataplane --no-default-features --example table_scale`
//! and carry the binary to a machine with more cores (`perf/scale.sh`).
//!
//!   table_scale [--threads 1,2,4,8] [--flows 1000000] [--seconds 2] [--ops lookup|churn]
use dataplane::flow::{FlowInit, FlowKey, FlowRef, FlowState, FlowTable, ANY_PORT};
use dataplane::snapshot::Forward;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn flow(i: u64) -> FlowInit {
    FlowInit {
        protocol: 6,
        client: Ipv4Addr::from_bits(0x0a00_0000 | (i >> 16) as u32),
        client_port: i as u16,
        vip: Ipv4Addr::new(203, 0, 113, 10),
        vport: 80,
        backend: Ipv4Addr::new(10, 1, 0, 10 + (i % 4) as u8),
        backend_port: 8080,
        service: 0,
        backend_id: (i % 4) as u32,
        mode: Forward::Nat,
        reverse: true,
        state: FlowState::Established,
        local: Ipv4Addr::UNSPECIFIED,
        local_port: 0,
        proxy: false,
        synproxy: false,
        seq_base: 0,
        client_if: ANY_PORT,
        backend_if: ANY_PORT,
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let default_threads: String = [1usize, 2, 4, 8, 14]
        .iter()
        .filter(|&&n| n <= cores.len().max(1))
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let threads: Vec<usize> = arg("--threads", &default_threads)
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let flows: u64 = arg("--flows", "1000000").parse().expect("--flows");
    let secs: f64 = arg("--seconds", "2").parse().expect("--seconds");
    let ops = arg("--ops", "lookup");
    let churn = match ops.as_str() {
        "lookup" => false,
        "churn" => true,
        o => panic!("--ops {o}: lookup or churn"),
    };
    // Established flows 0..flows; churn keys live above them, one range per thread.
    let table = Arc::new(FlowTable::new(flows as usize * 2 + 1_000_000));
    let t0 = Instant::now();
    for i in 0..flows {
        table.insert(&flow(i), 0).expect("prefill");
    }
    eprintln!(
        "table_scale: {} flows prefilled in {:.1} s, {} cores, ops {ops}",
        table.len(),
        t0.elapsed().as_secs_f64(),
        cores.len()
    );
    let mut rows = Vec::new();
    let mut single = 0.0;
    for &n in &threads {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let start = Arc::new(Barrier::new(n + 1));
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let (table, stop, done, start) =
                    (table.clone(), stop.clone(), done.clone(), start.clone());
                let core = cores.get(t % cores.len().max(1)).copied();
                std::thread::spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1);
                    let mut next = || {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x
                    };
                    let mut keys: [FlowKey; 32] = [flow(0).forward_key(); 32];
                    let mut out: [Option<FlowRef>; 32] = [None; 32];
                    let base = flows + 1_000_000 * t as u64;
                    let mut k = 0u64;
                    let mut n_ops = 0u64;
                    start.wait();
                    while !stop.load(Relaxed) {
                        if churn {
                            // Insert a new flow and remove one made 1000 inserts ago.
                            let f = flow(base + (k % 500_000));
                            let _ = table.insert(&f, 0);
                            if k >= 1000 {
                                let old = flow(base + ((k - 1000) % 500_000)).forward_key();
                                if let Some(r) = table.lookup(&old) {
                                    table.remove(&r);
                                }
                            }
                            k += 1;
                            n_ops += 1;
                        } else {
                            for key in keys.iter_mut() {
                                *key = flow(next() % flows).forward_key();
                            }
                            table.lookup_burst(&keys, &mut out);
                            n_ops += out.iter().filter(|r| r.is_some()).count() as u64;
                        }
                    }
                    done.fetch_add(n_ops, Relaxed);
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Relaxed);
        for h in handles {
            h.join().expect("thread");
        }
        let mops = done.load(Relaxed) as f64 / t.elapsed().as_secs_f64() / 1e6;
        if n == 1 {
            single = mops;
        }
        let eff = if single > 0.0 {
            mops / (single * n as f64)
        } else {
            0.0
        };
        println!(
            "{ops} {n:>2} threads: {mops:8.2} Mops/s, {:6.2} per thread, {:.2} of linear",
            mops / n as f64,
            eff
        );
        rows.push(format!(
            "{{\"threads\": {n}, \"mops\": {mops:.3}, \"efficiency\": {eff:.3}}}"
        ));
    }
    println!(
        "JSON {{\"ops\": \"{ops}\", \"flows\": {flows}, \"cores\": {}, \"rows\": [{}]}}",
        cores.len(),
        rows.join(", ")
    );
}
