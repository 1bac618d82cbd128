//! Runs `pipeline::process_burst` on plain buffers for a fixed number of bursts, for
//! counting instructions (and simulated cache misses) per packet under valgrind, where
//! the VM's timing noise does not reach (`perf/instructions.sh`):
//!
//! `burst_cost MODE FLOWS TRAFFIC BURSTS`: MODE nat|dr|tun, FLOWS established flows in
//! the table (cycled through, scattered), TRAFFIC established|syn (every packet a new
//! client), BURSTS bursts of 32. Only `process_burst` is meant to be counted
//! (`--toggle-collect`); refilling the buffers happens outside it.
use dataplane::buf::VecBuf;
use dataplane::counters::{DropReason, WorkerCounters};
use dataplane::fixture;
use dataplane::flow::frag::FragTable;
use dataplane::flow::FlowTable;
use dataplane::pipeline::{process_burst, Env, Verdict};
use dataplane::sched::{ConnCounters, SchedulerKind};
use dataplane::snapshot::Forward;
use dataplane::wire::TcpFlags;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: burst_cost nat|dr|tun FLOWS established|syn BURSTS";
    let [_, mode, flows, traffic, bursts] = &args[..] else {
        panic!("{usage}")
    };
    let (service, mode) = match mode.as_str() {
        "nat" => (0u16, Forward::Nat),
        "dr" => (1, Forward::Dr),
        "tun" => (2, Forward::Tun),
        _ => panic!("{usage}"),
    };
    let n: u32 = flows.parse().expect(usage);
    let bursts: u32 = bursts.parse().expect(usage);
    let syn = match traffic.as_str() {
        "established" => false,
        "syn" => true,
        _ => panic!("{usage}"),
    };
    let vip = Ipv4Addr::new(203, 0, 113, 10 * (service as u8 + 1));
    let snap = fixture::bench_snapshot(fixture::WAN_MAC, SchedulerKind::Wrr, 65537);
    let flows = FlowTable::new(2 * (n + 32 * bursts) as usize + 65536);
    for i in 0..n {
        flows
            .insert(&fixture::bench_flow(i, vip, service, mode), 0)
            .expect("the table takes the flows");
    }
    let (flows6, conns, frags) = (
        FlowTable::<Ipv6Addr>::with_capacity(1),
        ConnCounters::default(),
        FragTable::new(),
    );
    let env = Env {
        snap: &snap,
        flows: &flows,
        flows6: &flows6,
        conns: &conns,
        frags: &frags,
        syn_cookies: Default::default(),
        now: 0,
    };
    let c = WorkerCounters::default();
    let mut out = [Verdict::Drop(DropReason::Malformed); 32];
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::new(&[0u8; 64])).collect();
    let mut fresh = n;
    for k in 0..bursts {
        for (j, b) in bufs.iter_mut().enumerate() {
            let i = if syn {
                fresh += 1;
                fresh
            } else {
                (k * 32 + j as u32).wrapping_mul(2_654_435_761) % n
            };
            let flags = if syn { TcpFlags::SYN } else { TcpFlags::ACK };
            b.reset(&fixture::bench_frame(fixture::WAN_MAC, i, vip, flags));
        }
        process_burst(&env, &c, &mut |_, _| {}, fixture::WAN, &mut bufs, &mut out);
        assert!(
            out.iter().all(|v| matches!(v, Verdict::Tx(_))),
            "every packet must be forwarded: {out:?}"
        );
        black_box(&out);
    }
    assert_eq!(c.drops_total(), 0);
}
