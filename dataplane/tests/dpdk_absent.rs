//! Says loudly that the DPDK tests did not run when the crate is built without DPDK.
#![cfg(not(feature = "dpdk"))]

#[test]
fn dpdk_tests_skipped() {
    eprintln!("\n*** SKIPPED: dataplane built without the `dpdk` feature (libdpdk absent?): DPDK smoke tests did not run ***\n");
}
