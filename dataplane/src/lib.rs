//! The ferrovs packet path.
//!
//! Owns everything a worker touches per packet: typed views over packet bytes ([`wire`]),
//! the shared flow table ([`flow`]), the schedulers ([`sched`]), the published snapshot
//! of services, routes and neighbors ([`snapshot`]), the burst-processing pipeline
//! ([`pipeline`]), per-worker counters ([`counters`]), every hash ([`hash`]), the named
//! enums made from one list each ([`enums`]) and, behind the `dpdk` feature, the safe
//! DPDK layer ([`dpdk`]) and the worker loop ([`worker`]). [`fixture`] is the one test
//! world that tests, benches, the fuzz target and the harness share.
//!
//! Unsafe code lives only in [`dpdk`], [`hugemem`] (the flow table's memory) and the
//! flow table (prefetch hints); every other module forbids it.
//!
//! Invariants: nothing reachable from `pipeline::process_burst` allocates, locks, logs or
//! makes a system call; every packet that is not forwarded is counted under one
//! [`counters::DropReason`]. All packet logic is plain Rust over byte buffers, so it is
//! tested without DPDK.
#[macro_use]
pub mod enums;
pub mod buf;
pub mod counters;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod fastmap;
pub mod fixture;
pub mod flow;
pub mod hash;
pub mod hugemem;
pub mod pcap;
pub mod pipeline;
pub mod sched;
pub mod slots;
pub mod snapshot;
pub mod synproxy;
pub mod wire;
#[cfg(feature = "dpdk")]
pub mod worker;
