//! Generates bindings to the installed DPDK and compiles the C shim.
//!
//! The whole `pkg-config --cflags libdpdk` output goes to clang and cc: the pkg-config
//! crate keeps only -I/-D and drops `-include rte_config.h -march=corei7`, without which
//! C that includes rte_memcpy.h does not compile.
use std::{env, path::PathBuf, process::Command};

const MIN_VERSION: &str = "22.11";

/// Driver libraries that ferrovs calls directly; Debian's libdpdk.pc does not list them.
/// Every other PMD is loaded by EAL from its driver directory at start-up (shared linkage).
const DRIVER_LIBS: &[&str] = &["rte_net_ring", "rte_bus_vdev"];

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "\n\nferrovs needs DPDK >= {MIN_VERSION} found by pkg-config as `libdpdk`.\n\
             On Debian/Ubuntu: `apt-get install libdpdk-dev dpdk` (or run scripts/setup.sh).\n\
             pkg-config said: {e}\n"
        ),
    };
    for l in DRIVER_LIBS {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    println!("cargo:version={}", lib.version);

    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("run pkg-config --cflags libdpdk");
    let cflags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .opt_level(3)
        .warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("ferrovs_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .clang_arg("-I.")
        .allowlist_function("rte_.*")
        .allowlist_function("ferrovs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("RING_F_.*")
        // packed + aligned: rustc rejects them (E0588); ferrovs parses ARP itself.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .clang_macro_fallback()
        .parse_callbacks(Box::new(U64Flags))
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on the DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("write bindings");
}

/// Offload, RSS and mbuf flag macros are 64-bit masks; make bindgen type them as u64.
#[derive(Debug)]
struct U64Flags;
impl bindgen::callbacks::ParseCallbacks for U64Flags {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        const PREFIXES: &[&str] = &[
            "RTE_ETH_RX_OFFLOAD_",
            "RTE_ETH_TX_OFFLOAD_",
            "RTE_ETH_RSS_",
            "RTE_MBUF_F_",
        ];
        PREFIXES
            .iter()
            .any(|p| name.starts_with(p))
            .then_some(bindgen::callbacks::IntKind::U64)
    }
}
