//! ferrovs benchmark tools. `ferrovs-bench` (src/bin) is the in-process harness: a
//! generator lcore and a real ferrovs worker lcore joined by DPDK ring ports; `bench.sh`
//! runs it over modes, flow counts and traffic kinds. See README.md.
