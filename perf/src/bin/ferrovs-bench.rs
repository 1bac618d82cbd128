//! In-process benchmark: a generator thread (core 0) and a real ferrovs worker (core 1)
//! joined by DPDK ring ports (zero copy), or a MAC-swap forwarder in the worker's place
//! as the ceiling. Reports Mpps through the worker and cycles per packet from the
//! worker's own TSC busy-cycle accounting, once, as text and JSON.
//!
//! `--workers N` (N > 1, for machines with 2N + 1 cores): N workers on cores 1..=N, one
//! flow table and snapshot, each on its own queue pair of the ring ports, fed by N
//! generators on cores N+1..=2N, generator g sending flows g, g + N, g + 2N, ... (as RSS
//! would spread them). Reports the total and the per-worker rate (`perf/scale.sh
//! harness`).
use anyhow::{bail, Result};
use clap::Parser;
use dataplane::counters::{DropReason, WorkerCounters};
use dataplane::dpdk::{self, rdtsc, Burst, Eal, Mempool, Port};
use dataplane::fixture;
use dataplane::flow::{FlowInit, FlowState, Timeouts};
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{Forward, PortConf, SnapshotCell};
use dataplane::wire::builder::{tcp6_frame, tcp_frame, FrameSpec, FrameSpec6};
use dataplane::wire::{MacAddr, TcpFlags};
use dataplane::worker::{self, Shared, WorkerQueues};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "ferrovs in-process benchmark (generator + worker on ring ports)")]
struct Args {
    /// nat | dr | tun | macswap (the ceiling: a forwarder that only swaps MACs)
    #[arg(long, default_value = "dr")]
    mode: String,
    /// Distinct flows the generator cycles through (established traffic).
    #[arg(long, default_value_t = 1_000_000)]
    flows: u32,
    /// established | syn (every packet a new flow: scheduler + insert) | flooded (every
    /// other packet established, the rest a random-source SYN flood: the table fills and
    /// half-open flows are dropped early to make room)
    #[arg(long, default_value = "established")]
    traffic: String,
    /// Measured seconds (after 0.5 s of warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// ipv4 | ipv6: the family of the traffic (and of the VIP and backends).
    #[arg(long, default_value = "ipv4")]
    family: String,
    /// fnat only: PROXY protocol v2 (every established packet's sequence number is
    /// shifted; new flows record their base).
    #[arg(long)]
    proxy: bool,
    /// nat/fnat: SYN cookies on (with `--traffic syn`: each SYN answered with a cookie,
    /// no flow made).
    #[arg(long)]
    syn_cookies: bool,
    /// Workers (each with its own generator); more than one needs 2N + 1 cores.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from_bits(0xac10_0000 | (i >> 16)),
        (i & 0xffff) as u16,
    )
}

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

fn client6(i: u32) -> (Ipv6Addr, u16) {
    (
        Ipv6Addr::from_bits((0x2001_0db8_ac10u128 << 80) | (i >> 16) as u128),
        (i & 0xffff) as u16,
    )
}

fn frame6(lb: MacAddr, i: u32, flags: u8) -> Vec<u8> {
    let (ip, port) = client6(i);
    let spec = FrameSpec6 {
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        dst_mac: lb,
        src_ip: ip,
        dst_ip: VIP6,
        src_port: port,
        dst_port: 80,
        ..Default::default()
    };
    tcp6_frame(&spec, flags, &[0u8; 6])
}

fn frame(lb: MacAddr, i: u32, flags: u8) -> Vec<u8> {
    let (ip, port) = client(i);
    let spec = FrameSpec {
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        dst_mac: lb,
        src_ip: ip,
        dst_ip: VIP,
        src_port: port,
        dst_port: 80,
        ..Default::default()
    };
    let mut f = tcp_frame(&spec, flags, &[0u8; 6]);
    f.resize(64, 0);
    f
}

/// The established flow of client `i` (port `i & 0xffff`) to `backend`.
/// Local addresses of the fnat service (8, so that 1M flows to 4 backends fit 64K ports).
const FNAT_LOCALS: u32 = 8;

#[allow(clippy::too_many_arguments)]
fn established<A: dataplane::wire::IpAddress>(
    client: A,
    vip: A,
    backend: A,
    i: u32,
    id: u32,
    mode: Forward,
    local: A,
    proxy: bool,
) -> FlowInit<A> {
    FlowInit {
        protocol: 6,
        client,
        client_port: (i & 0xffff) as u16,
        vip,
        vport: 80,
        backend,
        backend_port: 80,
        service: 0,
        backend_id: id,
        mode,
        reverse: mode.translates(),
        state: FlowState::Established,
        // fnat: backend i % 4, local address (i / 4) % 8, port 1024 + i / 32: unique.
        local,
        local_port: if mode == Forward::Fnat {
            1024 + (i / (4 * FNAT_LOCALS)) as u16
        } else {
            0
        },
        // The generator's segments carry seq 1000: past the base, so each is shifted.
        proxy,
        synproxy: false,
        seq_base: 1,
        // One port, p0: the flow's packets are checked against it.
        client_if: 0,
        backend_if: 0,
    }
}

/// Flow `i`'s fnat local address: `(i / 4) % FNAT_LOCALS` of the list.
fn local4(locals: &[IpAddr], i: u32) -> Ipv4Addr {
    match locals[((i / 4) % FNAT_LOCALS) as usize] {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}
fn local6(locals: &[IpAddr], i: u32) -> Ipv6Addr {
    match locals[((i / 4) % FNAT_LOCALS) as usize] {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let forward = match a.mode.as_str() {
        "nat" => Some(Forward::Nat),
        "dr" => Some(Forward::Dr),
        "tun" => Some(Forward::Tun),
        "fnat" => Some(Forward::Fnat),
        "macswap" => None,
        m => bail!("--mode {m}: nat, dr, tun, fnat or macswap"),
    };
    let v6 = match a.family.as_str() {
        "ipv4" => false,
        "ipv6" => true,
        f => bail!("--family {f}: ipv4 or ipv6"),
    };
    let (syn, flooded) = match a.traffic.as_str() {
        "established" => (false, false),
        "syn" => (true, false),
        "flooded" => (false, true),
        t => bail!("--traffic {t}: established, syn or flooded"),
    };
    let nw = a.workers.max(1);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // FERROVS_BENCH_OVERSUBSCRIBE=1 runs the layout on fewer cores (threads pinned modulo
    // the cores there are): a check that the multi-worker path works, not a measurement.
    let oversubscribe = std::env::var_os("FERROVS_BENCH_OVERSUBSCRIBE").is_some();
    if nw > 1 && 2 * nw + 1 > cores && !oversubscribe {
        bail!(
            "--workers {nw} needs {} cores (a worker and a generator each, and one more); this machine has {cores}",
            2 * nw + 1
        );
    }
    // (worker core, generator core) of worker w: the one-worker layout is the historic one.
    let core_of = move |w: usize| {
        let (wc, gc) = if nw == 1 { (1, 0) } else { (1 + w, 1 + nw + w) };
        (wc % cores, gc % cores)
    };
    let free_huge: u64 =
        std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
    let huge = free_huge >= 256 * nw as u64;
    let prefix = format!("ferrovs-bench-{}", std::process::id());
    let mut eal_args = vec![
        "-l",
        "0-1",
        "--file-prefix",
        &prefix,
        "--log-level",
        "*:warning",
        "--no-pci",
    ];
    // 512 MB, and room for each further worker's mbufs and rings.
    let mem = (512 + 256 * (nw - 1)).to_string();
    eal_args.extend(if huge {
        ["-m", &mem, "--in-memory"]
    } else {
        ["--no-huge", "-m", &mem]
    });
    let eal = Eal::init(&eal_args)?;
    // Shared by the generator and the ports; dropped last, after every thread and port.
    let pool = Arc::new(Mempool::new(
        &eal,
        "bench",
        (32768 + 16384 * (nw - 1) - 1) as u32,
        512,
        2176,
    )?);
    let q = nw as u16;
    let (mut gen_port, mut lb_port) = Port::ring_pair(&eal, "bench", q, 4096)?;
    let (mut grx, mut gtx, _) = gen_port.configure(q, q, 1024, &pool)?;
    let (mut lrx, mut ltx, _) = lb_port.configure(q, q, 1024, &pool)?;
    gen_port.start()?;
    lb_port.start()?;
    let lb_mac = lb_port.mac();

    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<WorkerCounters>> = (0..nw).map(|_| Default::default()).collect();
    let mut shared_opt = None;
    let fwd_handle =
        if let Some(fwd) = forward {
            let ports = vec![PortConf {
                name: "p0".into(),
                mac: lb_mac,
                addresses: vec![(Ipv4Addr::new(10, 0, 0, 1), 24)],
                addresses6: vec![(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 64)],
                mtu: 1500,
                kernel: false,
            }];
            let bes: Vec<(IpAddr, u16, u32)> = (0..4u8)
                .map(|i| {
                    let a: IpAddr = if v6 {
                        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11 + i as u16).into()
                    } else {
                        Ipv4Addr::new(10, 0, 0, 11 + i).into()
                    };
                    (a, 80, 1)
                })
                .collect();
            let addrs: Vec<IpAddr> = bes.iter().map(|b| b.0).collect();
            let vip: IpAddr = if v6 { VIP6.into() } else { VIP.into() };
            let mut svc = fixture::spec(0, "bench", vip, 80, 6, fwd, SchedulerKind::Rr, 0, &bes);
            // New flows are never ended here: give them room (64 local addresses, 4M ports per
            // backend) so that the benchmark measures creation, not exhaustion.
            let nlocals = if syn { 64 } else { FNAT_LOCALS };
            let locals: Vec<IpAddr> = (0..nlocals)
                .map(|k| -> IpAddr {
                    if v6 {
                        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200 + k as u16).into()
                    } else {
                        Ipv4Addr::new(10, 0, 1, k as u8).into()
                    }
                })
                .collect();
            if fwd == Forward::Fnat {
                svc.local_addresses = locals.clone();
                svc.proxy = a.proxy;
            }
            let backends = svc.backends.clone();
            let snap = fixture::snapshot(
                ports,
                vec![svc],
                &addrs,
                dataplane::sched::maglev::DEFAULT_M,
            );
            let capacity = if syn {
                12_000_000
            } else {
                a.flows as usize + 65536
            };
            let (cap4, cap6) = if v6 {
                (1024, capacity)
            } else {
                (capacity, 1024)
            };
            let shared = Arc::new(Shared::new(
                SnapshotCell::new(snap),
                cap4,
                cap6,
                Timeouts::default(),
                1,
            ));
            shared
                .syn_cookies_on
                .store(a.syn_cookies, std::sync::atomic::Ordering::Relaxed);
            if !syn {
                let t = Instant::now();
                for i in 0..a.flows {
                    let b = &backends[(i % 4) as usize];
                    let r = match b.addr {
                        IpAddr::V4(be) => shared
                            .flows
                            .insert(
                                &established(
                                    client(i).0,
                                    VIP,
                                    be,
                                    i,
                                    b.id,
                                    fwd,
                                    local4(&locals, i),
                                    a.proxy,
                                ),
                                0,
                            )
                            .map(|_| ()),
                        IpAddr::V6(be) => shared
                            .flows6
                            .insert(
                                &established(
                                    client6(i).0,
                                    VIP6,
                                    be,
                                    i,
                                    b.id,
                                    fwd,
                                    local6(&locals, i),
                                    a.proxy,
                                ),
                                0,
                            )
                            .map(|_| ()),
                    };
                    r.map_err(|e| anyhow::anyhow!("prefill: {e}"))?;
                }
                eprintln!(
                    "prefilled {} flows in {:.1}s",
                    shared.flows.len() + shared.flows6.len(),
                    t.elapsed().as_secs_f64()
                );
            }
            shared_opt = Some(shared.clone());
            let mut handles = Vec::new();
            for (w, c) in counters.iter().enumerate() {
                let q = WorkerQueues {
                    rx: vec![(0, lrx.remove(0))],
                    tx: vec![ltx.remove(0)],
                    sends_for_mgmt: false,
                };
                let (c, shared) = (c.clone(), shared.clone());
                handles.push(std::thread::Builder::new().name("worker".into()).spawn(
                    move || {
                        dpdk::register_thread(Some(core_of(w).0)).expect("register worker");
                        worker::run(&shared, q, &c);
                        dpdk::unregister_thread();
                    },
                )?);
            }
            handles
        } else {
            if nw > 1 {
                bail!("--mode macswap runs one forwarder");
            }
            // The ceiling: receive, swap MACs, transmit; accounted like the worker.
            let (mut rx, mut tx, c, stop) = (
                lrx.remove(0),
                ltx.remove(0),
                counters[0].clone(),
                stop.clone(),
            );
            vec![std::thread::Builder::new()
                .name("worker".into())
                .spawn(move || {
                    dpdk::register_thread(Some(1)).expect("register forwarder");
                    let mut loops = 0u64;
                    while !(loops & 1023 == 0 && stop.load(Relaxed)) {
                        loops += 1;
                        let t0 = rdtsc();
                        let mut b = Burst::default();
                        let n = rx.rx(&mut b);
                        if n > 0 {
                            for m in b.as_mut_slice() {
                                let d = m.data_mut();
                                let mut dst = [0u8; 6];
                                dst.copy_from_slice(&d[0..6]);
                                d.copy_within(6..12, 0);
                                d[6..12].copy_from_slice(&dst);
                            }
                            c.rx.add(n as u64);
                            c.tx.add(tx.tx(&mut b).0 as u64);
                            c.busy_cycles.add(rdtsc().wrapping_sub(t0));
                        }
                    }
                    dpdk::unregister_thread();
                })?]
        };

    // Generator on core 0: fill bursts from templates (established) or fresh tuples (syn).
    let mk = if v6 { frame6 } else { frame };
    let templates: Vec<Vec<u8>> = if syn {
        vec![mk(lb_mac, 0, TcpFlags::SYN)]
    } else {
        (0..a.flows).map(|i| mk(lb_mac, i, TcpFlags::ACK)).collect()
    };
    let syn_template = mk(lb_mac, 0, TcpFlags::SYN);
    let (gen_sent, gen_back) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flows = a.flows.max(1);
    let templates = Arc::new(templates);
    let syn_template = Arc::new(syn_template);
    let mut gens = Vec::new();
    for g in 0..nw {
        let (gs, gb, gstop, gpool) = (
            gen_sent.clone(),
            gen_back.clone(),
            stop.clone(),
            pool.clone(),
        );
        let (templates, syn_template) = (templates.clone(), syn_template.clone());
        let (mut gtx, mut grx) = (gtx.remove(0), grx.remove(0));
        let gen = std::thread::Builder::new()
            .name("generator".into())
            .spawn(move || {
                dpdk::register_thread(Some(core_of(g).1)).expect("register generator");
                // Generator g sends flows g, g + N, ...; one generator, every flow.
                let (mut k, mut loops) = (g as u32, 0u64);
                while !(loops & 255 == 0 && gstop.load(Relaxed)) {
                    loops += 1;
                    let mut b = Burst::default();
                    if gpool.alloc_burst(&mut b) > 0 {
                        for m in b.as_mut_slice() {
                            // flooded: odd packets are the flood's SYNs, from clients past the
                            // established ones (2^31 + k).
                            let flood = flooded && k & 1 == 1;
                            let t = if syn {
                                &templates[0]
                            } else if flood {
                                &syn_template
                            } else if flooded {
                                &templates[((k >> 1) % flows) as usize]
                            } else {
                                &templates[(k % flows) as usize]
                            };
                            let d = m.append(t.len()).expect("room");
                            d.copy_from_slice(t);
                            let tuple = if flood { k | 0x8000_0000 } else { k };
                            if (syn || flood) && v6 {
                                // A fresh 5-tuple per packet (checksums are not checked on this path).
                                let (ip, port) = client6(tuple);
                                d[22..38].copy_from_slice(&ip.octets());
                                d[54..56].copy_from_slice(&port.to_be_bytes());
                            } else if syn || flood {
                                let (ip, port) = client(tuple);
                                d[26..30].copy_from_slice(&ip.octets());
                                d[34..36].copy_from_slice(&port.to_be_bytes());
                            }
                            k = k.wrapping_add(nw as u32);
                        }
                        gs.fetch_add(gtx.tx(&mut b).0 as u64, Relaxed);
                    }
                    // Drain what came back (several bursts, so the return ring never fills).
                    for _ in 0..4 {
                        let mut r = Burst::default();
                        let n = grx.rx(&mut r);
                        gb.fetch_add(n as u64, Relaxed);
                        if n == 0 {
                            break;
                        }
                    }
                }
                dpdk::unregister_thread();
            })?;
        gens.push(gen);
    }

    std::thread::sleep(Duration::from_millis(500));
    // Every worker's counters, summed.
    let snap = |cs: &[Arc<WorkerCounters>]| {
        cs.iter().fold((0, 0, 0, 0, 0, 0, 0), |t, c| {
            (
                t.0 + c.rx.get(),
                t.1 + c.tx.get(),
                t.2 + c.busy_cycles.get(),
                t.3 + c.drops_total(),
                t.4 + c.new_flows.get(),
                t.5 + c.table_full.get(),
                t.6 + c.early_drops.get(),
            )
        })
    };
    let reasons = |cs: &[Arc<WorkerCounters>]| {
        DropReason::ALL.map(|r| cs.iter().map(|c| c.drops[r as usize].get()).sum::<u64>())
    };
    let (t0, s0, b0, r0) = (
        Instant::now(),
        snap(&counters),
        gen_back.load(Relaxed),
        reasons(&counters),
    );
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    let (dt, s1, b1, r1) = (
        t0.elapsed().as_secs_f64(),
        snap(&counters),
        gen_back.load(Relaxed),
        reasons(&counters),
    );
    let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
        .iter()
        .zip(r0.iter().zip(&r1))
        .filter(|(_, (a, b))| b > a)
        .map(|(r, (a, b))| (r.name().to_string(), serde_json::json!(b - a)))
        .collect();
    stop.store(true, Relaxed);
    if let Some(s) = &shared_opt {
        s.stop.store(true, Relaxed);
    }
    for g in gens {
        g.join().ok();
    }
    for h in fwd_handle {
        h.join().ok();
    }

    let (rx, tx, busy) = (s1.0 - s0.0, s1.1 - s0.1, s1.2 - s0.2);
    // Per worker core (the whole, with one worker).
    let total_mpps = tx as f64 / dt / 1e6;
    let mpps = total_mpps / nw as f64;
    let cpp = if rx > 0 { busy as f64 / rx as f64 } else { 0.0 };
    let hz = eal.tsc_hz() as f64;
    let label = format!(
        "{}{}{}{}{} {} {}",
        a.mode,
        if a.proxy { "+proxy" } else { "" },
        if a.syn_cookies { "+cookies" } else { "" },
        if v6 { " ipv6" } else { "" },
        if nw > 1 {
            format!(" x{nw} workers ({total_mpps:.2} Mpps in all)")
        } else {
            String::new()
        },
        human(a.flows),
        a.traffic
    );
    println!(
        "{label}: {mpps:.2} Mpps/core, {cpp:.0} cycles/packet ({:.0} ns), worker busy {:.0}%, drops {} {}, back at generator {:.2} Mpps, {} memory",
        cpp / hz * 1e9,
        busy as f64 / (dt * hz * nw as f64) * 100.0,
        s1.3 - s0.3,
        serde_json::Value::Object(drops.clone()),
        (b1 - b0) as f64 / dt / 1e6,
        if huge { "hugepage" } else { "--no-huge" }
    );
    let json = serde_json::json!({
        "mode": a.mode, "family": a.family, "flows": a.flows, "traffic": a.traffic, "seconds": dt, "mpps": mpps,
        "cycles_per_packet": cpp, "tsc_hz": hz, "worker_rx": rx, "worker_tx": tx, "drops": drops,
        "new_flows": s1.4 - s0.4, "table_full": s1.5 - s0.5, "early_drops": s1.6 - s0.6,
        "hugepages": huge, "workers": nw, "mpps_total": total_mpps,
        "generator_sent": gen_sent.load(Relaxed),
    });
    println!("JSON {json}");
    drop((gen_port, lb_port));
    drop(shared_opt);
    drop(pool);
    Ok(())
}

fn human(n: u32) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}K", n / 1000),
        n => n.to_string(),
    }
}
