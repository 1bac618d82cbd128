//! ns per packet of `pipeline::process_burst` (the function the worker calls) at 1M
//! active flows: established traffic for nat, dr and tun, and new flows (SYN: scheduler +
//! flow insert) for nat (issue: forwarding pipeline). Buffers are refilled from 64-byte
//! templates before each burst; "refill only" measures that part alone.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::buf::VecBuf;
use dataplane::counters::{DropReason, WorkerCounters};
use dataplane::fixture;
use dataplane::flow::{FlowInit, FlowState, FlowTable};
use dataplane::pipeline::{process_burst, Env, Verdict};
use dataplane::sched::{ConnCounters, SchedulerKind};
use dataplane::snapshot::{Forward, Snapshot};
use dataplane::wire::{MacAddr, TcpFlags};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const FLOWS: u32 = 1_000_000;
const WAN_MAC: MacAddr = fixture::WAN_MAC;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn snapshot() -> Snapshot {
    fixture::bench_snapshot(WAN_MAC, SchedulerKind::Wrr, 65537)
}

fn frame(i: u32, vip: &str, flags: u8) -> Vec<u8> {
    fixture::bench_frame(WAN_MAC, i, ip(vip), flags)
}

fn flow_for(i: u32, vip: &str, service: u16, mode: Forward) -> FlowInit {
    fixture::bench_flow(i, ip(vip), service, mode)
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let flows = FlowTable::new(2 * FLOWS as usize + 65536);
    let conns = ConnCounters::default();
    let counters = WorkerCounters::default();
    let modes = [
        ("nat", "203.0.113.10", 0u16, Forward::Nat),
        ("dr", "203.0.113.20", 1, Forward::Dr),
        ("tun", "203.0.113.30", 2, Forward::Tun),
    ];
    // 1M established flows, a third per mode.
    for i in 0..FLOWS {
        let (_, vip, s, m) = modes[(i % 3) as usize];
        flows.insert(&flow_for(i, vip, s, m), 0).unwrap();
    }
    eprintln!("pipeline bench: {} established flows", flows.len());
    let flows6 = dataplane::flow::FlowTable::<std::net::Ipv6Addr>::with_capacity(1);
    let frags = dataplane::flow::frag::FragTable::new();
    let env = Env {
        snap: &snap,
        flows: &flows,
        flows6: &flows6,
        conns: &conns,
        frags: &frags,
        syn_cookies: Default::default(),
        now: 0,
    };
    let mut g = c.benchmark_group("pipeline 1M flows");
    g.throughput(Throughput::Elements(32));
    let mut out = [Verdict::Drop(DropReason::Malformed); 32];
    for (name, vip, _, _) in modes {
        // 4096 bursts' worth of this mode's established flows, scattered over the table.
        let templates: Vec<Vec<u8>> = (0..32 * 4096u32)
            .map(|k| {
                let i = (k.wrapping_mul(2_654_435_761) % (FLOWS / 3)) * 3
                    + modes.iter().position(|m| m.0 == name).unwrap() as u32;
                frame(i, vip, TcpFlags::ACK)
            })
            .collect();
        let mut bufs: Vec<VecBuf> = templates[..32].iter().map(|f| VecBuf::new(f)).collect();
        let mut k = 0usize;
        g.bench_function(format!("{name} established, burst of 32"), |b| {
            b.iter(|| {
                k = (k + 32) % templates.len();
                for (b, t) in bufs.iter_mut().zip(&templates[k..k + 32]) {
                    b.reset(t);
                }
                process_burst(&env, &counters, &mut |_, _| {}, 0, &mut bufs, &mut out);
                debug_assert!(out.iter().all(|v| matches!(v, Verdict::Tx(1))));
                black_box(&out);
            })
        });
    }
    // New flows: SYNs from fresh 5-tuples (scheduler + insert). New flows beyond the
    // 1M are removed between measurements (not timed) so the table never fills.
    let mut fresh = FLOWS;
    let mut bufs: Vec<VecBuf> = (0..32)
        .map(|i| VecBuf::new(&frame(i, "203.0.113.10", TcpFlags::SYN)))
        .collect();
    g.bench_function("nat new flow (SYN), burst of 32", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for b in bufs.iter_mut() {
                    fresh += 1;
                    b.reset(&frame(fresh, "203.0.113.10", TcpFlags::SYN));
                }
                let t = Instant::now();
                process_burst(&env, &counters, &mut |_, _| {}, 0, &mut bufs, &mut out);
                total += t.elapsed();
                if flows.len() > FLOWS as usize * 3 / 2 {
                    flows.remove_where(|f| f.state == FlowState::SynSent, |_| {});
                }
            }
            total
        })
    });
    let templates: Vec<Vec<u8>> = (0..32)
        .map(|i| frame(i, "203.0.113.10", TcpFlags::ACK))
        .collect();
    g.bench_function("refill only (baseline)", |b| {
        b.iter(|| {
            for (b, t) in bufs.iter_mut().zip(&templates) {
                b.reset(t);
            }
            black_box(&bufs);
        })
    });
    g.finish();
    assert_eq!(
        counters.drops_total(),
        0,
        "the bench must measure forwarding, not drops"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    targets = bench
}
criterion_main!(benches);
