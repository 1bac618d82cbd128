//! ferrovs-gen: a DPDK traffic generator (in the spirit of pktgen) for benchmarking a load
//! balancer between processes. One port (any PMD: memif, af_xdp, pcap, PCI, given as EAL
//! arguments); N flows of TCP to a VIP: `syn` (every packet a new flow), `established`
//! (one SYN per flow first, then ACKs) or `udp`; 64..1500-byte frames; a target rate or
//! the maximum. It receives what comes back, matches its own packets by a magic word in the
//! payload (at either offset: as sent, or behind a 20-byte IP-in-IP header) and records
//! latency from the TSC stamp next to it (hdrhistogram). Reports once per second and at
//! the end, as text and as one JSON line.
use anyhow::{bail, Context, Result};
use clap::Parser;
use dataplane::dpdk::{self, rdtsc, Burst, Eal, Mempool, Port};
use dataplane::wire::builder::{tcp_frame, udp_frame, FrameSpec};
use dataplane::wire::{MacAddr, TcpFlags};
use hdrhistogram::Histogram;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const MAGIC: u32 = 0xfe55_0b5e;
/// Quantiles of the latency curve in the JSON report (for CDF plots).
const CDF_QUANTILES: [f64; 16] = [
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999,
];
/// Payload offset of the stamp in a 20-byte-IP, 20-byte-TCP / 8-byte-UDP frame.
const STAMP_TCP: usize = 14 + 20 + 20;
const STAMP_UDP: usize = 14 + 20 + 8;

#[derive(Parser, Debug)]
#[command(about = "ferrovs traffic generator (one DPDK port, N flows to a VIP, latency)")]
struct Args {
    /// EAL arguments, e.g. "-l 0 --no-pci --vdev=net_memif0,role=client,socket=/tmp/lb.sock".
    #[arg(long, allow_hyphen_values = true)]
    eal: String,
    /// Destination MAC (the load balancer's port).
    #[arg(long)]
    dst_mac: String,
    #[arg(long, default_value = "10.0.0.100")]
    vip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    port: u16,
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// syn | established | udp
    #[arg(long, default_value = "established")]
    traffic: String,
    /// Frame size in bytes (64..=1500).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Target rate in Mpps (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

fn main() -> Result<()> {
    let a = Args::parse();
    if !(64..=1500).contains(&a.size) {
        bail!("--size must be 64..=1500");
    }
    let (proto_udp, syn) = match a.traffic.as_str() {
        "syn" => (false, true),
        "established" => (false, false),
        "udp" => (true, false),
        t => bail!("--traffic {t}: syn, established or udp"),
    };
    let dst_mac: MacAddr = a.dst_mac.parse().map_err(|e: &str| anyhow::anyhow!(e))?;
    let eal_args: Vec<&str> = a.eal.split_whitespace().collect();
    let eal = Eal::init(&eal_args)?;
    if eal.port_count() != 1 {
        bail!(
            "the EAL arguments must create exactly one port (got {})",
            eal.port_count()
        );
    }
    let pool = Mempool::new(&eal, "gen", 16383, 256, 2176)?;
    let mut port = Port::by_name(&first_port_name(&a.eal).context("no --vdev/-a in --eal")?)?;
    let (mut rx, mut tx, _) = port.configure(1, 1, 1024, &pool)?;
    port.start()?;
    let src_mac = port.mac();
    let hz = eal.tsc_hz() as f64;
    dpdk::register_thread(None).ok();

    let stamp_at = if proto_udp { STAMP_UDP } else { STAMP_TCP };
    let frame = |i: u32, flags: u8| {
        let spec = FrameSpec {
            src_mac,
            dst_mac,
            src_ip: Ipv4Addr::from_bits(0xac10_0000 | (i >> 16)),
            dst_ip: a.vip,
            src_port: 1024 + (i & 0x7fff) as u16,
            dst_port: a.port,
            ..Default::default()
        };
        let payload = vec![0u8; a.size.saturating_sub(stamp_at).max(12)];
        if proto_udp {
            udp_frame(&spec, &payload)
        } else {
            tcp_frame(&spec, flags, &payload)
        }
    };
    let flows = a.flows.max(1);
    let templates: Vec<Vec<u8>> = (0..flows)
        .map(|i| frame(i, if syn { TcpFlags::SYN } else { TcpFlags::ACK }))
        .collect();

    // Established: open every flow with one SYN first (not measured).
    if !syn && !proto_udp {
        let mut i = 0;
        while i < flows {
            let mut b = Burst::default();
            while !b.is_full() && i < flows {
                let Some(m) = pool.alloc_with(&frame(i, TcpFlags::SYN)) else {
                    break;
                };
                let _ = b.push(m);
                i += 1;
            }
            tx[0].tx(&mut b);
            drain(&mut rx[0]);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(500) {
            drain(&mut rx[0]);
        }
    }

    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)?;
    let mut second = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)?;
    let (mut sent, mut recv, mut k) = (0u64, 0u64, 0u32);
    let (mut sent_s, mut recv_s) = (0u64, 0u64);
    let interval = if a.rate > 0.0 {
        (32.0 / (a.rate * 1e6) * hz) as u64
    } else {
        0
    };
    let start = rdtsc();
    let end = start + (a.seconds * hz) as u64;
    let mut next_burst = start;
    let mut next_report = start + hz as u64;
    loop {
        let now = rdtsc();
        if now >= end {
            break;
        }
        if now >= next_burst {
            let mut b = Burst::default();
            if pool.alloc_burst(&mut b) > 0 {
                let stamp = rdtsc();
                for m in b.as_mut_slice() {
                    let t = &templates[(k % flows) as usize];
                    let d = m.append(t.len()).expect("mbuf room");
                    d.copy_from_slice(t);
                    if syn {
                        // A fresh 5-tuple per packet (checksums are not verified on this path).
                        d[26..30].copy_from_slice(&(0xac10_0000u32 | (k >> 15)).to_be_bytes());
                        d[34..36].copy_from_slice(&(1024 + (k & 0x7fff) as u16).to_be_bytes());
                    }
                    d[stamp_at..stamp_at + 4].copy_from_slice(&MAGIC.to_be_bytes());
                    d[stamp_at + 4..stamp_at + 12].copy_from_slice(&stamp.to_le_bytes());
                    k = k.wrapping_add(1);
                }
                let (n, _) = tx[0].tx(&mut b);
                sent += n as u64;
                sent_s += n as u64;
            }
            next_burst = if interval > 0 {
                next_burst + interval
            } else {
                now
            };
        }
        let mut r = Burst::default();
        if rx[0].rx(&mut r) > 0 {
            let now = rdtsc();
            for m in r.drain() {
                let d = m.data();
                for off in [stamp_at, stamp_at + 20] {
                    if d.len() >= off + 12 && d[off..off + 4] == MAGIC.to_be_bytes() {
                        let t0 = u64::from_le_bytes(d[off + 4..off + 12].try_into().unwrap());
                        let ns = (now.wrapping_sub(t0) as f64 / hz * 1e9) as u64;
                        let _ = hist.record(ns.max(1));
                        let _ = second.record(ns.max(1));
                        recv += 1;
                        recv_s += 1;
                        break;
                    }
                }
            }
        }
        if now >= next_report {
            println!(
                "tx {:.2} Mpps  rx {:.2} Mpps  latency p50 {:.1} us  p99 {:.1} us",
                sent_s as f64 / 1e6,
                recv_s as f64 / 1e6,
                second.value_at_quantile(0.5) as f64 / 1e3,
                second.value_at_quantile(0.99) as f64 / 1e3
            );
            (sent_s, recv_s) = (0, 0);
            second.reset();
            next_report += hz as u64;
        }
    }
    // Let the tail come back, then count it.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(200) {
        let mut r = Burst::default();
        recv += rx[0].rx(&mut r) as u64;
    }
    let secs = a.seconds;
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1e3;
    let loss = if sent > 0 {
        1.0 - recv as f64 / sent as f64
    } else {
        0.0
    };
    println!(
        "total: tx {:.2} Mpps, rx {:.2} Mpps, loss {:.3}%, latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        sent as f64 / secs / 1e6,
        recv as f64 / secs / 1e6,
        loss * 100.0,
        q(0.5),
        q(0.99),
        q(0.999)
    );
    println!(
        "JSON {}",
        serde_json::json!({
            "traffic": a.traffic, "flows": flows, "size": a.size, "rate_target_mpps": a.rate, "seconds": secs,
            "tx_mpps": sent as f64 / secs / 1e6, "rx_mpps": recv as f64 / secs / 1e6, "loss": loss,
            "latency_us": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": hist.max() as f64 / 1e3},
            "cdf_us": CDF_QUANTILES.iter().map(|&p| [p, q(p)]).collect::<Vec<_>>(),
        })
    );
    drop(port);
    Ok(())
}

fn drain(rx: &mut dpdk::RxQueue) {
    let mut r = Burst::default();
    rx.rx(&mut r);
}

/// The device name of the first --vdev / -a in the EAL arguments.
fn first_port_name(eal: &str) -> Option<String> {
    let mut it = eal.split_whitespace();
    while let Some(w) = it.next() {
        let spec = if let Some(v) = w.strip_prefix("--vdev=") {
            v.to_owned()
        } else if w == "--vdev" || w == "-a" {
            it.next()?.to_owned()
        } else {
            continue;
        };
        return Some(spec.split(',').next()?.to_owned());
    }
    None
}
