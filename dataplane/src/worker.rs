//! The worker loop: one pinned thread per worker core, run to completion.
//!
//! A worker owns, by value, RX queue `i` and TX queue `i` of every port it polls. Per
//! loop: for each RX queue, receive a burst, process it (`pipeline::process_burst`),
//! buffer the output per port; hand ARP to the management thread (bounded queue,
//! try-push); transmit what the management thread queued for a port that has no TX
//! queue of its own for it. TX buffers are flushed right after the next burst is
//! received (its mbufs' fields are being fetched meanwhile), or at once when nothing
//! was. The snapshot is picked up once per loop and the stop flag checked every 1024
//! loops.
#![forbid(unsafe_code)]
use crate::buf::PacketBuf;
use crate::counters::{DropReason, WorkerCounters};
use crate::dpdk::{rdtsc, Burst, Mbuf, RxQueue, TxQueue, BURST_SIZE};
use crate::flow::frag::FragTable;
use crate::flow::{FlowTable, Timeouts};
use crate::pipeline::{process_burst, take_held_hop, Env, Verdict};
use crate::sched::ConnCounters;
use crate::snapshot::{SnapshotCell, SnapshotReader};
use crate::synproxy::SynCookies;
use crossbeam_queue::ArrayQueue;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

/// Packets from workers to the management thread: (port index, frame).
pub type ToMgmt = ArrayQueue<(u16, Mbuf)>;

/// What all workers and the management thread share.
pub struct Shared {
    pub cell: SnapshotCell,
    pub flows: FlowTable,
    /// IPv6 flows (entries of two cache lines).
    pub flows6: FlowTable<Ipv6Addr>,
    pub conns: ConnCounters,
    /// IPv4 fragments' datagrams, for the fragments after the first.
    pub frags: FragTable,
    /// SYN cookies on (the management thread decides: `flows.syn_cookies`), and their
    /// secret (random per start).
    pub syn_cookies_on: AtomicBool,
    pub cookie_secret: u64,
    pub timeouts: Timeouts,
    /// Seconds since start, advanced by the management thread.
    pub clock: AtomicU32,
    pub stop: AtomicBool,
    /// ARP and other frames for the management thread.
    pub to_mgmt: ToMgmt,
    /// Next hops the workers want resolved (deduplicated by the management thread).
    pub resolve: ArrayQueue<(IpAddr, u16)>,
    /// Rewritten packets waiting for their next hop's MAC: (port, next hop, frame). The
    /// management thread keeps a few per neighbor and sends them when it answers.
    pub hold: ArrayQueue<(u16, IpAddr, Mbuf)>,
    /// Frames the management thread wants sent, per port, by the worker that owns the
    /// port's TX queue 0 (used when the device has no spare TX queue for it).
    pub from_mgmt: Vec<ArrayQueue<Mbuf>>,
}

impl Shared {
    /// `capacity` IPv4 and `capacity6` IPv6 flows.
    pub fn new(
        cell: SnapshotCell,
        capacity: usize,
        capacity6: usize,
        timeouts: Timeouts,
        ports: usize,
    ) -> Shared {
        Shared {
            cell,
            flows: FlowTable::new(capacity),
            flows6: FlowTable::with_capacity(capacity6),
            conns: ConnCounters::default(),
            frags: FragTable::new(),
            syn_cookies_on: AtomicBool::new(false),
            cookie_secret: crate::hash::random_seed(),
            timeouts,
            clock: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            to_mgmt: ArrayQueue::new(1024),
            resolve: ArrayQueue::new(1024),
            hold: ArrayQueue::new(1024),
            from_mgmt: (0..ports).map(|_| ArrayQueue::new(512)).collect(),
        }
    }
}

/// The queues one worker owns.
pub struct WorkerQueues {
    /// (port index, RX queue) pairs this worker polls.
    pub rx: Vec<(u16, RxQueue)>,
    /// One TX queue per port, indexed by port index.
    pub tx: Vec<TxQueue>,
    /// True for the worker that transmits the management thread's frames.
    pub sends_for_mgmt: bool,
}

/// Runs a worker until `shared.stop` is set.
pub fn run(shared: &Shared, mut q: WorkerQueues, c: &WorkerCounters) {
    let mut reader = SnapshotReader::new(&shared.cell);
    let mut out: Vec<Burst> = q.tx.iter().map(|_| Burst::default()).collect();
    let mut verdicts = [Verdict::Drop(DropReason::Malformed); BURST_SIZE];
    let mut iter: u64 = 0;
    loop {
        iter += 1;
        if iter & 1023 == 0 {
            if shared.stop.load(Relaxed) {
                break;
            }
            c.loops.add(1024);
        }
        let t0 = rdtsc();
        let snap = reader.refresh(&shared.cell);
        let env = Env {
            snap,
            flows: &shared.flows,
            flows6: &shared.flows6,
            conns: &shared.conns,
            frags: &shared.frags,
            syn_cookies: SynCookies {
                active: shared.syn_cookies_on.load(Relaxed),
                secret: shared.cookie_secret,
            },
            now: shared.clock.load(Relaxed),
        };
        let mut busy = false;
        for (pidx, rxq) in q.rx.iter_mut() {
            let mut burst = Burst::default();
            let n = rxq.rx(&mut burst);
            if n == 0 {
                continue;
            }
            busy = true;
            c.rx.add(n as u64);
            // The new packets' mbuf fields are asked for first; what the last burst left
            // to send goes out while they arrive (one poll later than at once).
            for m in burst.as_mut_slice().iter() {
                m.prefetch_header();
            }
            flush(&mut out, &mut q.tx, c);
            let mut resolve = |a: IpAddr, p: u16| {
                let _ = shared.resolve.push((a, p));
            };
            process_burst(
                &env,
                c,
                &mut resolve,
                *pidx,
                burst.as_mut_slice(),
                &mut verdicts[..n],
            );
            for (m, v) in burst.drain().zip(verdicts.iter()) {
                match *v {
                    Verdict::Tx(p) => {
                        let Some(b) = out.get_mut(p as usize) else {
                            c.drop(DropReason::NoRoute);
                            continue;
                        };
                        if b.is_full() {
                            send(b, &mut q.tx[p as usize], c);
                        }
                        let _ = b.push(m);
                    }
                    Verdict::Mgmt => {
                        if shared.to_mgmt.push((*pidx, m)).is_err() {
                            c.drop(DropReason::MgmtQueueFull);
                        }
                    }
                    Verdict::Hold { port } => {
                        let mut m = m;
                        let Some(hop) = take_held_hop(&mut m) else {
                            c.drop(DropReason::NoHeadroom);
                            continue;
                        };
                        if shared.hold.push((port, hop, m)).is_ok() {
                            c.held.inc();
                        } else {
                            c.drop(DropReason::NoNeighbor);
                        }
                    }
                    Verdict::Drop(_) => drop(m),
                }
            }
        }
        if q.sends_for_mgmt {
            for (p, queue) in shared.from_mgmt.iter().enumerate() {
                while !out[p].is_full() {
                    let Some(m) = queue.pop() else { break };
                    let _ = out[p].push(m);
                }
            }
        }
        if !busy {
            // Nothing came in: nothing to overlap with, send now.
            flush(&mut out, &mut q.tx, c);
        }
        let dt = rdtsc().wrapping_sub(t0);
        c.total_cycles.add(dt);
        if busy {
            c.busy_cycles.add(dt);
        }
    }
}

/// Sends every non-empty TX buffer.
#[inline(always)]
fn flush(out: &mut [Burst], tx: &mut [TxQueue], c: &WorkerCounters) {
    for (b, q) in out.iter_mut().zip(tx.iter_mut()) {
        if !b.is_empty() {
            send(b, q, c);
        }
    }
}

/// Sends a TX buffer, counting what went and what the device did not take.
#[inline(always)]
fn send(b: &mut Burst, q: &mut TxQueue, c: &WorkerCounters) {
    let (sent, lost) = q.tx(b);
    c.tx.add(sent as u64);
    c.drops[DropReason::TxFull as usize].add(lost as u64);
}
