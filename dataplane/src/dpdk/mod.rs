//! A safe layer over DPDK: EAL, mempools, ports, mbufs and per-thread queue handles.
//!
//! Ownership model: [`Eal`] is initialised once per process and cleaned up on drop.
//! A [`Port`] is configured once with N RX and M TX queues; it hands out one [`RxQueue`]
//! and one [`TxQueue`] per queue index, by value and not `Clone`, so exactly one thread
//! can poll a queue (DPDK queues are not thread-safe). An [`Mbuf`] owns one packet
//! buffer and frees it on drop. All `unsafe` of ferrovs's DPDK use lives in this module.
#![deny(clippy::undocumented_unsafe_blocks)]
mod mbuf;
mod port;

pub use mbuf::{Burst, Mbuf, BURST_SIZE};
pub use port::{LinkStatus, Port, PortInfo, PortStats, RxQueue, TxQueue};

use dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};

/// A DPDK error: what was being done and DPDK's reason.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct Error {
    pub what: String,
    pub reason: String,
}

impl Error {
    pub(crate) fn new(what: impl Into<String>, code: i32) -> Self {
        let code = code.abs();
        // SAFETY: rte_strerror returns a pointer to a static or thread-local string.
        let reason = unsafe { CStr::from_ptr(sys::rte_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        Error {
            what: what.into(),
            reason,
        }
    }
    pub(crate) fn msg(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error {
            what: what.into(),
            reason: reason.into(),
        }
    }
    /// An error from the current `rte_errno`.
    pub(crate) fn errno(what: impl Into<String>) -> Self {
        // SAFETY: reads the calling thread's rte_errno.
        Self::new(what, unsafe { sys::ferrovs_errno() })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

static EAL_UP: AtomicBool = AtomicBool::new(false);

/// The initialised Environment Abstraction Layer. One per process.
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises EAL with `args` (without the program name). Fails if EAL is already
    /// up in this process (DPDK allows one initialisation per process).
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if EAL_UP.swap(true, Ordering::SeqCst) {
            return Err(Error::msg(
                "rte_eal_init",
                "EAL is already initialised in this process",
            ));
        }
        let mut owned: Vec<CString> = vec![CString::new("ferrovs").unwrap()];
        for a in args {
            owned.push(
                CString::new(a.as_ref())
                    .map_err(|_| Error::msg("rte_eal_init", "argument contains a NUL byte"))?,
            );
        }
        let mut argv: Vec<*mut libc::c_char> = owned
            .iter()
            .map(|s| s.as_ptr() as *mut libc::c_char)
            .collect();
        // SAFETY: argv points at NUL-terminated strings that outlive the call; EAL may
        // permute argv's pointers but does not write into the strings. `owned` is leaked
        // below because EAL keeps pointers into argv for its lifetime.
        let rc = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        if rc < 0 {
            EAL_UP.store(false, Ordering::SeqCst);
            return Err(Error::errno(format!("rte_eal_init({})", join(args))));
        }
        std::mem::forget(owned);
        std::mem::forget(argv);
        Ok(Eal { _private: () })
    }

    /// TSC cycles per second.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised.
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// Creates a virtual device after start-up (e.g. `net_pcap0,rx_pcap=a,tx_pcap=b`).
    pub fn add_vdev(&self, spec: &str) -> Result<Port> {
        let (name, args) = spec.split_once(',').unwrap_or((spec, ""));
        let cname = CString::new(name).map_err(|_| Error::msg("vdev", "NUL in name"))?;
        let cargs = CString::new(args).map_err(|_| Error::msg("vdev", "NUL in args"))?;
        // SAFETY: both strings are valid for the call.
        let rc = unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
        if rc != 0 {
            return Err(Error::new(format!("rte_vdev_init({spec})"), rc));
        }
        Port::by_name(name)
    }

    /// Number of ethdev ports that are available.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every port was closed by its owner; no worker thread runs any more
        // (they are joined before the Eal they borrow from is dropped).
        unsafe { sys::rte_eal_cleanup() };
        EAL_UP.store(false, Ordering::SeqCst);
    }
}

fn join<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the TSC.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: reads a CPU counter; no memory is touched.
    unsafe { sys::ferrovs_rdtsc() }
}

/// Registers the calling (non-EAL) thread with DPDK so it gets an lcore id and per-lcore
/// mempool caches, after pinning it to `core` when given. Returns the lcore id.
pub fn register_thread(core: Option<usize>) -> Result<u32> {
    if let Some(c) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            return Err(Error::msg("pin thread", format!("cannot pin to core {c}")));
        }
    }
    // SAFETY: registers the calling thread; EAL is initialised by the caller's Eal.
    let rc = unsafe { sys::rte_thread_register() };
    if rc != 0 {
        return Err(Error::errno("rte_thread_register"));
    }
    // SAFETY: reads this thread's lcore id.
    Ok(unsafe { sys::ferrovs_lcore_id() })
}

/// Undoes [`register_thread`] before the thread exits.
pub fn unregister_thread() {
    // SAFETY: called by a registered thread that holds no mbufs any more.
    unsafe { sys::rte_thread_unregister() };
}

/// A pool of packet buffers.
pub struct Mempool {
    raw: *mut sys::rte_mempool,
}

// SAFETY: rte_mempool is designed for concurrent use from any lcore (per-lcore caches
// plus a lock-free ring).
unsafe impl Send for Mempool {}
// SAFETY: as for Send: every operation on the pool is safe to call concurrently.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a packet-buffer pool of `n` mbufs with `cache` per-lcore cached ones.
    pub fn new(_eal: &Eal, name: &str, n: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| Error::msg("mempool", "NUL in name"))?;
        // SAFETY: name is valid; SOCKET_ID_ANY (-1) lets DPDK pick memory.
        let raw =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, -1) };
        if raw.is_null() {
            return Err(Error::errno(format!(
                "rte_pktmbuf_pool_create({name}, {n})"
            )));
        }
        Ok(Mempool { raw })
    }

    /// Allocates one mbuf (empty, default headroom).
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid while self lives; the mbuf returned is ours.
        let m = unsafe { sys::ferrovs_pktmbuf_alloc(self.raw) };
        Mbuf::from_raw(m)
    }

    /// Allocates an mbuf holding a copy of `data`.
    pub fn alloc_with(&self, data: &[u8]) -> Option<Mbuf> {
        let mut m = self.alloc()?;
        m.append(data.len())?.copy_from_slice(data);
        Some(m)
    }

    /// Fills the free space of `burst` with fresh mbufs (one bulk allocation); returns how
    /// many were added (0 when the pool cannot supply them all).
    pub fn alloc_burst(&self, burst: &mut Burst) -> usize {
        let n = BURST_SIZE - burst.len;
        // SAFETY: the pointer array has `n` free slots; on success DPDK writes `n` valid
        // mbufs there, which the burst then owns.
        let rc = unsafe {
            sys::ferrovs_pktmbuf_alloc_bulk(
                self.raw,
                burst.ptrs.as_mut_ptr().add(burst.len),
                n as u32,
            )
        };
        if rc != 0 {
            return 0;
        }
        burst.len += n;
        n
    }

    /// Free mbufs in the pool (caches of other lcores not counted).
    pub fn available(&self) -> u32 {
        // SAFETY: read-only query on a valid pool.
        unsafe { sys::ferrovs_mempool_avail(self.raw) }
    }

    pub(crate) fn raw(&self) -> *mut sys::rte_mempool {
        self.raw
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: all ports using this pool are closed before the pool is dropped (the
        // daemon and tests hold ports in a struct dropped first).
        unsafe { sys::rte_mempool_free(self.raw) };
    }
}
