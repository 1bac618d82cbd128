//! Concurrency tests of the shared flow table: threads insert, look up, change state
//! and remove random flows for a bounded time; then the invariants are checked.
use dataplane::flow::{FlowInit, FlowState, FlowTable, InsertError, Inserted, ANY_PORT};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn flow(client_port: u16, client_low: u8, backend_id: u32) -> FlowInit {
    FlowInit {
        protocol: 6,
        client: Ipv4Addr::new(192, 0, 2, client_low),
        client_port,
        vip: Ipv4Addr::new(203, 0, 113, 10),
        vport: 80,
        backend: Ipv4Addr::new(10, 1, 0, 10),
        backend_port: 8080,
        service: 0,
        backend_id,
        mode: dataplane::snapshot::Forward::Nat,
        reverse: true,
        state: FlowState::SynSent,
        local: Ipv4Addr::UNSPECIFIED,
        local_port: 0,
        proxy: false,
        synproxy: false,
        seq_base: 0,
        client_if: ANY_PORT,
        backend_if: ANY_PORT,
    }
}

/// xorshift, so the test needs no RNG crate and is reproducible per thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn concurrent_insert_lookup_remove_keeps_invariants() {
    const THREADS: usize = 3;
    const KEYS: u64 = 4000; // small key space: many races on the same flows
    let table = Arc::new(FlowTable::new(3000));
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (table, stop, barrier) = (table.clone(), stop.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + t as u64 * 7919);
                let (mut created, mut removed, mut full, mut ops) = (0u64, 0u64, 0u64, 0u64);
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let r = rng.next();
                    let k = r % KEYS;
                    let f = flow(k as u16, 1 + (k % 3) as u8, t as u32);
                    match (r >> 32) % 4 {
                        0 | 1 => match table.insert(&f, 0) {
                            Ok(Inserted::New(_)) => created += 1,
                            Ok(Inserted::Existing(e)) => {
                                assert_eq!(e.init().forward_key(), f.forward_key())
                            }
                            Err(InsertError::Full) => full += 1,
                            Err(e) => {
                                if e != InsertError::Contended {
                                    let r = table.lookup(&f.reverse_key());
                                    let fw = table.lookup(&f.forward_key());
                                    panic!("{e:?}: rev={r:?} fwd={fw:?}");
                                }
                            }
                        },
                        2 => {
                            if let Some(mut e) = table.lookup(&f.reverse_key()) {
                                assert_eq!(
                                    e.init().forward_key(),
                                    f.forward_key(),
                                    "reverse lookup found the wrong flow"
                                );
                                table.set_state(&mut e, FlowState::Established);
                            }
                        }
                        _ => {
                            if let Some(e) = table.lookup(&f.forward_key()) {
                                assert_eq!(e.init().reverse_key(), f.reverse_key());
                                if table.remove(&e).is_some() {
                                    removed += 1;
                                }
                            }
                        }
                    }
                    ops += 1;
                }
                (created, removed, full, ops)
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let (mut created, mut removed, mut full, mut ops) = (0, 0, 0, 0);
    for h in handles {
        let (c, r, f, o) = h.join().expect("worker thread panicked");
        created += c;
        removed += r;
        full += f;
        ops += o;
    }
    eprintln!("stress: {ops} ops, {created} created, {removed} removed, {full} full");
    assert!(
        created > 1000 && removed > 1000,
        "the test must really exercise the table"
    );

    // No lost or duplicated flows: counts match, every live key is unique and is found
    // from both directions at the same entry.
    assert_eq!(table.len() as u64, created - removed);
    let mut keys = HashSet::new();
    let mut live = 0;
    table.for_each(|f| {
        live += 1;
        assert!(
            keys.insert(f.init.forward_key()),
            "duplicate flow {:?}",
            f.init.forward_key()
        );
        let a = table
            .lookup(&f.init.forward_key())
            .expect("forward index lost");
        let b = table
            .lookup(&f.init.reverse_key())
            .expect("reverse index lost");
        assert_eq!(a.idx, b.idx);
    });
    assert_eq!(live, table.len());

    // No lost entries: after removing everything, the full capacity can be inserted again.
    let n = table.remove_where(|_| true, |_| {});
    assert_eq!(n, live);
    assert!(table.is_empty());
    for p in 0..table.capacity() {
        let f = flow(p as u16, 200 + (p >> 16) as u8, 0);
        assert!(
            matches!(table.insert(&f, 0), Ok(Inserted::New(_))),
            "entry {p} lost"
        );
    }
    assert_eq!(table.insert(&flow(1, 250, 0), 0), Err(InsertError::Full));
}

#[test]
fn racing_creators_end_with_one_flow_and_one_backend() {
    race(|t, f| t.insert(f, 0));
}

/// The same race as the pipeline runs it: the burst's prefetch pass finds the key absent
/// (so its lookup reads nothing), then `insert_missed` publishes without looking first;
/// the check after publishing must catch the others.
#[test]
fn racing_creators_after_a_miss_end_with_one_flow_and_one_backend() {
    race(|t, f| {
        let mut h = t.hash(&f.forward_key());
        t.prefetch_entries(&mut h);
        match t.lookup_hashed(&f.forward_key(), h) {
            Some(r) => Ok(Inserted::Existing(r)),
            None => t.insert_missed(f, 0, h),
        }
    });
}

type InsertFn = fn(&FlowTable, &FlowInit) -> Result<Inserted, InsertError>;

fn race(insert: InsertFn) {
    const THREADS: usize = 4;
    let table = Arc::new(FlowTable::new(1 << 12));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut rounds = 0u16;
    while Instant::now() < deadline && rounds < 2000 {
        let barrier = Arc::new(Barrier::new(THREADS));
        let results: Vec<_> = (0..THREADS)
            .map(|t| {
                let (table, barrier) = (table.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    insert(&table, &flow(rounds, 9, t as u32))
                })
            })
            // Collect first: spawning lazily inside the join chain would deadlock the barrier.
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let new: Vec<_> = results
            .iter()
            .filter(|r| matches!(r, Ok(Inserted::New(_))))
            .collect();
        assert!(new.len() <= 1, "round {rounds}: {} creators", new.len());
        let live = table.lookup(&flow(rounds, 9, 0).forward_key());
        if let Some(l) = live {
            for r in &results {
                if let Ok(Inserted::Existing(e) | Inserted::New(e)) = r {
                    assert_eq!(
                        e.init().backend_id,
                        l.init().backend_id,
                        "one backend choice"
                    );
                }
            }
        } else {
            assert!(results
                .iter()
                .all(|r| matches!(r, Err(InsertError::Contended))));
        }
        rounds += 1;
    }
    let mut n = 0;
    table.for_each(|_| n += 1);
    assert_eq!(n, table.len());
}
