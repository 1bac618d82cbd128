//! ns per parse + NAT rewrite + checksum update of a 64-byte TCP frame (issue: wire).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::wire::builder::{tcp_frame, FrameSpec};
use dataplane::wire::{End, EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket};
use std::hint::black_box;
use std::net::Ipv4Addr;

fn bench(c: &mut Criterion) {
    let mut frame = tcp_frame(&FrameSpec::default(), TcpFlags::ACK, &[0u8; 6]);
    frame.resize(64, 0);
    assert_eq!(frame.len(), 64);
    let backend = Ipv4Addr::new(10, 1, 0, 10);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    let mut buf = frame.clone();
    g.bench_function("parse+nat+ttl (incremental checksums), 64B TCP", |b| {
        b.iter(|| {
            buf.copy_from_slice(&frame);
            let d = black_box(&mut buf[..]);
            let eth = EthernetFrame::new_checked(&d[..]).unwrap();
            let off = eth.header_len();
            let ip = Ipv4Packet::new_checked(&d[off..]).unwrap();
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            black_box(tcp.dst_port());
            let mut ip = Ipv4Packet::new_unchecked(&mut d[off..]);
            ip.decrement_ttl();
            ip.rewrite_endpoint(End::Dst, backend, 8080);
        })
    });
    g.bench_function("parse+nat+ttl (full recompute), 64B TCP", |b| {
        b.iter(|| {
            buf.copy_from_slice(&frame);
            let d = black_box(&mut buf[..]);
            let mut ip = Ipv4Packet::new_checked(&mut d[14..]).unwrap();
            let (src, ihl) = (ip.src(), ip.header_len());
            ip.set_ttl(ip.ttl() - 1);
            ip.set_dst(backend);
            ip.fill_checksum();
            let total = ip.total_len() as usize;
            let mut tcp = TcpPacket::new_checked(&mut d[14 + ihl..14 + total]).unwrap();
            tcp.set_dst_port(8080);
            tcp.fill_checksum(src, backend);
        })
    });
    g.bench_function("copy only (baseline of the two above)", |b| {
        b.iter(|| {
            buf.copy_from_slice(&frame);
            black_box(&mut buf);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
