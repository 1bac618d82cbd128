//! Flow table: lookup hit / miss, batched (burst) lookup, insert+remove, at 1K, 1M and
//! 10M flows (capacity = flows), single thread and 2 threads (issue: flow table).
//! Set FERROVS_BENCH_SIZES=1000,1000000 to skip the 10M table (1.2 GB).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::flow::{FlowInit, FlowKey, FlowState, FlowTable, ANY_PORT};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn flow(i: u64) -> FlowInit {
    FlowInit {
        protocol: 6,
        client: Ipv4Addr::from_bits(0x0a00_0000 | (i >> 16) as u32),
        client_port: i as u16,
        vip: Ipv4Addr::new(203, 0, 113, 10),
        vport: 80,
        backend: Ipv4Addr::new(10, 1, (i % 7) as u8, 10),
        backend_port: 8080,
        service: 0,
        backend_id: (i % 7) as u32,
        mode: dataplane::snapshot::Forward::Nat,
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

/// Pseudo-random indexes in 0..n (so lookups do not walk memory in order).
fn scatter(n: u64, count: usize) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        })
        .collect()
}

fn sizes() -> Vec<u64> {
    std::env::var("FERROVS_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 1_000_000, 10_000_000])
}

fn bench(c: &mut Criterion) {
    for n in sizes() {
        let t0 = Instant::now();
        let table = Arc::new(FlowTable::new(n as usize + 4096));
        for i in 0..n {
            table.insert(&flow(i), 0).unwrap();
        }
        eprintln!(
            "flow table {n} flows: filled in {:.2}s, {} MB allocated ({} B per flow of capacity)",
            t0.elapsed().as_secs_f64(),
            table.memory_bytes() >> 20,
            table.memory_bytes() / table.capacity()
        );
        let hits: Vec<FlowKey> = scatter(n, 1 << 16)
            .into_iter()
            .map(|i| flow(i).forward_key())
            .collect();
        let misses: Vec<FlowKey> = scatter(n, 1 << 16)
            .into_iter()
            .map(|i| flow(i + n + 1).forward_key())
            .collect();
        let mut g = c.benchmark_group(format!("flow/{n}"));
        g.throughput(Throughput::Elements(1));
        let mut k = 0usize;
        g.bench_function("lookup hit", |b| {
            b.iter(|| {
                k = (k + 1) & 0xffff;
                black_box(table.lookup(&hits[k]));
            })
        });
        g.bench_function("lookup miss", |b| {
            b.iter(|| {
                k = (k + 1) & 0xffff;
                black_box(table.lookup(&misses[k]));
            })
        });
        g.throughput(Throughput::Elements(32));
        let mut out = [None; 32];
        g.bench_function("lookup hit, burst of 32 (hash + prefetch first)", |b| {
            b.iter(|| {
                k = (k + 32) & 0xffe0;
                table.lookup_burst(&hits[k..k + 32], &mut out);
                black_box(&out);
            })
        });
        g.bench_function("lookup hit, 32 one by one", |b| {
            b.iter(|| {
                k = (k + 32) & 0xffe0;
                for (o, key) in out.iter_mut().zip(&hits[k..k + 32]) {
                    *o = table.lookup(key);
                }
                black_box(&out);
            })
        });
        g.throughput(Throughput::Elements(1));
        let mut next = n + 10;
        g.bench_function("insert + remove (nat: 2 index slots)", |b| {
            b.iter(|| {
                next += 1;
                let r = match table.insert(&flow(next), 0).unwrap() {
                    dataplane::flow::Inserted::New(r) => r,
                    dataplane::flow::Inserted::Existing(r) => r,
                };
                black_box(table.remove(&r));
            })
        });
        // Two threads looking up concurrently: criterion reports time per lookup of the
        // pair, i.e. aggregate throughput.
        g.bench_with_input(BenchmarkId::new("lookup hit, 2 threads", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let per = iters / 2 + 1;
                let start = Instant::now();
                let hs: Vec<_> = (0..2)
                    .map(|t| {
                        let (table, hits) = (table.clone(), hits.clone());
                        std::thread::spawn(move || {
                            let mut k = t * 7919;
                            for _ in 0..per {
                                k = (k + 1) & 0xffff;
                                black_box(table.lookup(&hits[k]));
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                start.elapsed()
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
