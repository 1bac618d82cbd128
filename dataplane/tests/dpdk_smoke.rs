//! DPDK smoke tests: real EAL (`--no-huge --no-pci`), real ring and pcap PMDs.
#![cfg(feature = "dpdk")]

use dataplane::dpdk::{Burst, Mempool, Port};
use dataplane::wire::builder::{udp_frame, FrameSpec};
use std::time::{Duration, Instant};

mod common;
use common::eal;

fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let spec = FrameSpec {
                src_port: 10000 + i as u16,
                ident: i as u16,
                ..Default::default()
            };
            udp_frame(&spec, &vec![i as u8; i % 50])
        })
        .collect()
}

#[test]
fn ring_pair_burst_comes_back_identical() {
    let (eal, _) = eal();
    // A pool of its own (no per-lcore cache): the shared one is in use by the other
    // tests at the same time, so its count of free mbufs would not add up.
    let pool = &Mempool::new(eal, "ring_smoke_pool", 2047, 0, 2176).expect("mempool");
    let (mut a, mut b) = Port::ring_pair(eal, "smoke", 1, 1024).unwrap();
    let (_arx, mut atx, _) = a.configure(1, 1, 512, pool).unwrap();
    let (mut brx, _btx, _) = b.configure(1, 1, 512, pool).unwrap();
    a.start().unwrap();
    b.start().unwrap();

    let sent = frames(32);
    let mut burst = Burst::default();
    for f in &sent {
        burst.push(pool.alloc_with(f).unwrap()).ok().unwrap();
    }
    assert_eq!(atx[0].tx(&mut burst), (32, 0));
    let mut got = Burst::default();
    assert_eq!(brx[0].rx(&mut got), 32);
    let received: Vec<Vec<u8>> = got.drain().map(|m| m.data().to_vec()).collect();
    assert_eq!(
        received, sent,
        "ring port must deliver the burst byte-identical and in order"
    );

    // The rate the ring smoke path sees (reported, not asserted: machines are noisy).
    let avail_before = pool.available();
    let t = Instant::now();
    let mut moved = 0u64;
    while t.elapsed() < Duration::from_millis(300) {
        let mut bb = Burst::default();
        for _ in 0..32 {
            let _ = bb.push(pool.alloc().unwrap());
        }
        atx[0].tx(&mut bb);
        let mut rb = Burst::default();
        moved += brx[0].rx(&mut rb) as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "ring smoke: {moved} packets in {secs:.2}s = {:.1} Mpps (alloc+tx+rx+free, --no-huge)",
        moved as f64 / secs / 1e6
    );
    assert!(moved > 0);
    assert_eq!(
        pool.available(),
        avail_before,
        "every mbuf went back to the pool"
    );
}

#[test]
fn pcap_port_reads_and_writes_captures() {
    let (eal, pool) = eal();
    let dir = std::env::temp_dir().join(format!("ferrovs-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let sent = frames(5);
    dataplane::pcap::write(std::fs::File::create(&inp).unwrap(), &sent).unwrap();

    let spec = format!(
        "net_pcap_smoke,rx_pcap={},tx_pcap={}",
        inp.display(),
        out.display()
    );
    {
        let mut port = eal.add_vdev(&spec).unwrap();
        let info = port.info().unwrap();
        assert_eq!(
            (info.max_rx_queues, info.max_tx_queues),
            (1, 1),
            "net_pcap: one queue pair"
        );
        let (mut rx, mut tx, rss) = port.configure(1, 1, 256, pool).unwrap();
        assert!(!rss);
        port.start().unwrap();
        let mut got = Burst::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < sent.len() && Instant::now() < deadline {
            rx[0].rx(&mut got);
        }
        assert_eq!(
            got.len(),
            sent.len(),
            "all frames of the capture are received"
        );
        // Echo them back with the first byte changed, to prove the output is what we sent.
        let mut back = Burst::default();
        for mut m in got.drain() {
            m.data_mut()[0] ^= 0xff;
            back.push(m).ok().unwrap();
        }
        assert_eq!(tx[0].tx(&mut back), (5, 0));
    } // port dropped: stopped and closed, so the pcap writer flushes.
    let written = dataplane::pcap::read(std::fs::File::open(&out).unwrap()).unwrap();
    let expect: Vec<Vec<u8>> = sent
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[0] ^= 0xff;
            f
        })
        .collect();
    assert_eq!(written, expect);
    std::fs::remove_dir_all(&dir).ok();
}

/// The single-segment prepend/adj/trim done in Rust behave as DPDK's (lengths, bounds).
#[test]
fn mbuf_prepend_adj_trim() {
    let (_, pool) = eal();
    let mut m = pool.alloc_with(&[1, 2, 3, 4, 5, 6]).unwrap();
    let head = m.headroom();
    m.prepend(2).unwrap().copy_from_slice(&[9, 9]);
    assert_eq!(
        (m.data(), m.len(), m.headroom()),
        (&[9, 9, 1, 2, 3, 4, 5, 6][..], 8, head - 2)
    );
    assert!(m.prepend(head).is_none(), "no more headroom than there is");
    assert!(m.adj(3));
    assert_eq!(m.data(), &[2, 3, 4, 5, 6]);
    assert!(m.trim(2));
    assert_eq!((m.data(), m.len()), (&[2, 3, 4][..], 3));
    assert!(!m.trim(4) && !m.adj(4));
    assert_eq!(m.data(), &[2, 3, 4]);
}
