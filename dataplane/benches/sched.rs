//! Service lookup, one scheduling decision per scheduler, and Maglev table build time
//! for 10/100/1000 backends at M = 65537 (issue: services and schedulers).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dataplane::sched::{ConnCounters, Maglev, SchedulerKind};
use dataplane::snapshot::{Backend, Forward, Service, ServiceSpec, Services};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

fn spec(id: u16, kind: SchedulerKind, n: usize) -> ServiceSpec {
    ServiceSpec {
        id,
        name: format!("s{id}"),
        vip: Ipv4Addr::new(203, 0, (id >> 8) as u8, id as u8).into(),
        port: 80,
        protocol: 6,
        forward: Forward::Nat,
        scheduler: kind,
        backends: (0..n)
            .map(|i| Backend {
                id: i as u32,
                addr: Ipv4Addr::from_bits(0x0a01_0000 + i as u32).into(),
                port: 8080,
                weight: 1 + (i % 3) as u32,
                up: true,
            })
            .collect(),
        local_addresses: vec![],
        local_ports: dataplane::snapshot::FNAT_PORTS,
        proxy: false,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched");
    let services = Services::new(
        (0..100)
            .map(|i| Service::build(spec(i, SchedulerKind::Rr, 2), Default::default(), 251))
            .collect(),
    );
    let mut k = 0u16;
    g.bench_function("service lookup (100 services)", |b| {
        b.iter(|| {
            k = (k + 1) % 100;
            black_box(services.find(Ipv4Addr::new(203, 0, 0, k as u8), 80, 6));
        })
    });
    let conns = ConnCounters::default();
    for kind in [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sh,
        SchedulerKind::Mh,
    ] {
        let svc = Service::build(
            spec(0, kind, 10),
            Default::default(),
            dataplane::sched::maglev::DEFAULT_M,
        );
        let mut h = 0u64;
        g.bench_with_input(
            BenchmarkId::new("schedule, 10 backends", kind.name()),
            &kind,
            |b, _| {
                b.iter(|| {
                    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    black_box(svc.schedule(&conns, h, h >> 7));
                })
            },
        );
    }
    g.finish();
    let mut g = c.benchmark_group("maglev build M=65537");
    g.sample_size(10);
    for n in [10u64, 100, 1000] {
        let bs: Vec<(u64, u32)> = (0..n)
            .map(|i| ((0x0a01_0000 + i) << 16 | 8080, 1))
            .collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(Maglev::build(&bs, 65537)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
