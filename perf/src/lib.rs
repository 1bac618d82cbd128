//! ferrovs benchmark tools (binaries in src/bin):
//! * `ferrovs-bench`: the in-process harness, a generator lcore and a real ferrovs worker
//!   lcore joined by DPDK ring ports (or a MAC-swap forwarder as the ceiling);
//!   `bench.sh` runs it over modes, flow counts and traffic kinds.
//! * `ferrovs-gen`: a traffic generator as a separate DPDK process on any one port,
//!   with latency percentiles; `memif_bench.sh` runs it against the daemon and testpmd.
//!
//! See README.md for the method and the figures.
