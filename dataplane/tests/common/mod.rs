//! What the DPDK tests share: one EAL per test process (DPDK allows a single
//! initialisation), `--no-huge --no-pci`, and a packet pool.
use dataplane::dpdk::{Eal, Mempool};
use std::sync::OnceLock;

pub fn eal() -> &'static (Eal, Mempool) {
    static EAL: OnceLock<(Eal, Mempool)> = OnceLock::new();
    EAL.get_or_init(|| {
        let prefix = format!("ferrovs-test-{}", std::process::id());
        let eal = Eal::init(&[
            "--no-huge",
            "--no-pci",
            "--no-shconf",
            "-m",
            "256",
            "-l",
            "0",
            "--file-prefix",
            &prefix,
            "--log-level",
            "*:warning",
        ])
        .expect("EAL init");
        let pool = Mempool::new(&eal, "test_pool", 8191, 256, 2176).expect("mempool");
        (eal, pool)
    })
}
