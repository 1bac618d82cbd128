//! A real worker thread on net_ring ports forwards mixed traffic; the counters match
//! what came out.
#![cfg(feature = "dpdk")]

use dataplane::counters::{DropReason, WorkerCounters};
use dataplane::dpdk::{register_thread, unregister_thread, Burst, Port};

mod common;
use dataplane::fixture;
use dataplane::flow::Timeouts;
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{Forward, SnapshotCell};
use dataplane::wire::builder::{arp_frame, tcp_frame, FrameSpec};
use dataplane::wire::{MacAddr, TcpFlags};
use dataplane::worker::{self, Shared, WorkerQueues};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn worker_forwards_mixed_traffic_over_ring_ports() {
    let (eal, pool) = common::eal();
    // Test side (a) <-> load balancer side (b), for wan and lan.
    let (mut wan_t, mut wan_lb) = Port::ring_pair(eal, "wan", 1, 1024).unwrap();
    let (mut lan_t, mut lan_lb) = Port::ring_pair(eal, "lan", 1, 1024).unwrap();
    let (_, mut wan_t_tx, _) = wan_t.configure(1, 1, 256, pool).unwrap();
    let (mut lan_t_rx, _, _) = lan_t.configure(1, 1, 256, pool).unwrap();
    let (mut wan_rx, wan_tx, _) = wan_lb.configure(1, 1, 256, pool).unwrap();
    let (mut lan_rx, lan_tx, _) = lan_lb.configure(1, 1, 256, pool).unwrap();
    for p in [&mut wan_t, &mut wan_lb, &mut lan_t, &mut lan_lb] {
        p.start().unwrap();
    }
    let (wan_mac, lan_mac) = (wan_lb.mac(), lan_lb.mac());
    let be_mac = fixture::backend_mac(ip("10.1.0.10"));
    let gw_mac = fixture::GATEWAY_MAC;
    let b10 = ip("10.1.0.10");
    let web = fixture::spec(
        0,
        "web",
        ip("203.0.113.10"),
        80,
        6,
        Forward::Nat,
        SchedulerKind::Rr,
        0,
        &[(b10, 8080, 1)],
    );
    let snap = fixture::snapshot(fixture::ports(wan_mac, lan_mac), vec![web], &[b10], 251);
    let shared = Arc::new(Shared::new(
        SnapshotCell::new(snap),
        1024,
        1024,
        Timeouts::default(),
        2,
    ));
    let counters = Arc::new(WorkerCounters::default());
    let q = WorkerQueues {
        rx: vec![(0, wan_rx.remove(0)), (1, lan_rx.remove(0))],
        tx: vec![
            wan_tx.into_iter().next().unwrap(),
            lan_tx.into_iter().next().unwrap(),
        ],
        sends_for_mgmt: true,
    };
    let (s2, c2) = (shared.clone(), counters.clone());
    let h = std::thread::spawn(move || {
        register_thread(None).unwrap();
        worker::run(&s2, q, &c2);
        unregister_thread();
    });

    // 10 NAT SYNs, 5 malformed frames, 3 ARP requests.
    let mut frames = Vec::new();
    for i in 0..10u16 {
        let s = FrameSpec {
            src_mac: gw_mac,
            dst_mac: wan_mac,
            src_ip: ip("192.0.2.1"),
            dst_ip: ip("203.0.113.10"),
            src_port: 50000 + i,
            dst_port: 80,
            ..Default::default()
        };
        frames.push(tcp_frame(&s, TcpFlags::SYN, b""));
    }
    for i in 0..5 {
        let mut f = vec![0u8; 20 + i];
        f[..6].copy_from_slice(&wan_mac.0);
        f[12] = 0x08;
        frames.push(f);
    }
    for _ in 0..3 {
        frames.push(arp_frame(
            1,
            gw_mac,
            ip("203.0.113.1"),
            MacAddr::ZERO,
            ip("203.0.113.10"),
        ));
    }
    let mut b = Burst::default();
    for f in &frames {
        b.push(pool.alloc_with(f).unwrap()).ok().unwrap();
    }
    assert_eq!(wan_t_tx[0].tx(&mut b).0, 18);

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 10 && Instant::now() < deadline {
        let mut r = Burst::default();
        lan_t_rx[0].rx(&mut r);
        got.extend(r.drain().map(|m| m.data().to_vec()));
    }
    // The management thread's frame goes out through the worker too.
    shared.from_mgmt[0]
        .push(pool.alloc_with(&[0xaa; 60]).unwrap())
        .ok()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while counters.tx.get() < 11 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::Relaxed);
    h.join().unwrap();

    assert_eq!(got.len(), 10);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(&f[..6], &be_mac.0);
        assert_eq!(
            &f[30..34],
            &[10, 1, 0, 10],
            "packet {i}: NATed to the backend"
        );
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 8080);
    }
    assert_eq!(counters.rx.get(), 18);
    assert_eq!(counters.tx.get(), 11);
    assert_eq!(counters.new_flows.get(), 10);
    assert_eq!(counters.drops[DropReason::Malformed as usize].get(), 5);
    assert_eq!(counters.drops_total(), 5);
    assert_eq!(counters.to_mgmt.get(), 3);
    assert_eq!(shared.to_mgmt.len(), 3);
    assert_eq!(shared.flows.len(), 10);
    assert!(
        counters.busy_cycles.get() > 0 && counters.total_cycles.get() >= counters.busy_cycles.get()
    );
    while let Some(m) = shared.to_mgmt.pop() {
        drop(m);
    }
    drop((wan_t, wan_lb, lan_t, lan_lb));
}
