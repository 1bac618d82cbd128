//! Raw bindings to the system DPDK (>= 22.11), generated at build time by bindgen from
//! the headers pkg-config finds, plus `ferrovs_*` wrappers (see `shim.c`) for DPDK's static
//! inline fast-path functions and thread-local variables.
//!
//! Nothing here is safe to call without reading DPDK's documentation; ferrovs uses these
//! only through `dataplane::dpdk`.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]
#![allow(unsafe_op_in_unsafe_fn, improper_ctypes)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
