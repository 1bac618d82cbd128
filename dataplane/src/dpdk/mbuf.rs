//! Owned packet buffers and bursts of them.
use crate::buf::PacketBuf;
use dpdk_sys as sys;
use std::ptr::NonNull;

/// Packets per rx/tx burst.
pub const BURST_SIZE: usize = crate::pipeline::BURST;

/// One owned, single-segment DPDK packet buffer; freed on drop.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is uniquely owned; mbufs may be freed from any registered lcore or
// from a non-EAL thread (the mempool handles both).
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(crate) fn from_raw(m: *mut sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(m).map(Mbuf)
    }
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
    #[inline(always)]
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_ref() }
    }
    /// Packet length (all segments).
    #[inline]
    pub fn len(&self) -> usize {
        self.m().pkt_len as usize
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when the packet is in one segment (the only kind ferrovs parses).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.m().nb_segs == 1
    }
    /// The first segment's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's data room
        // (an mbuf invariant maintained by DPDK and by the helpers below).
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m();
        // SAFETY: as in data(); &mut self guarantees exclusive access.
        unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }
    /// The mbuf's header, for the single-segment fast paths below.
    #[inline(always)]
    fn m_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively (&mut self).
        unsafe { self.0.as_mut() }
    }

    /// Grows the packet at the front by `n` bytes (tunnel headers); None without headroom.
    /// Single-segment mbufs (all the pipeline handles) are adjusted in Rust, as DPDK's
    /// inline function does; chained ones go through DPDK.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let m = self.m_mut();
        if m.nb_segs == 1 {
            if n > m.data_off as usize {
                return None;
            }
            m.data_off -= n as u16;
            m.data_len += n as u16;
            m.pkt_len += n as u32;
        } else {
            // SAFETY: DPDK checks the headroom and returns NULL if too small.
            let p = unsafe { sys::ferrovs_pktmbuf_prepend(self.0.as_ptr(), n as u16) };
            if p.is_null() {
                return None;
            }
        }
        Some(&mut self.data_mut()[..n])
    }
    /// Removes `n` bytes from the front.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if m.nb_segs == 1 {
            if n > m.data_len as usize {
                return false;
            }
            m.data_off += n as u16;
            m.data_len -= n as u16;
            m.pkt_len -= n as u32;
            return true;
        }
        // SAFETY: DPDK checks the length.
        !unsafe { sys::ferrovs_pktmbuf_adj(self.0.as_ptr(), n as u16) }.is_null()
    }
    /// Grows the packet at the end by `n` bytes; returns them.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        // SAFETY: DPDK checks the tailroom.
        let p = unsafe { sys::ferrovs_pktmbuf_append(self.0.as_ptr(), n as u16) };
        if p.is_null() {
            return None;
        }
        let l = self.data().len();
        Some(&mut self.data_mut()[l - n..])
    }
    /// Removes `n` bytes from the end (Ethernet padding, on every minimum-size frame).
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if m.nb_segs == 1 {
            if n > m.data_len as usize {
                return false;
            }
            m.data_len -= n as u16;
            m.pkt_len -= n as u32;
            return true;
        }
        // SAFETY: DPDK checks the length.
        unsafe { sys::ferrovs_pktmbuf_trim(self.0.as_ptr(), n as u16) == 0 }
    }
    /// The port the packet was received on.
    pub fn port(&self) -> u16 {
        self.m().port
    }
    pub fn headroom(&self) -> usize {
        self.m().data_off as usize
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back exactly once.
        unsafe { sys::ferrovs_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> bool {
        Mbuf::prepend(self, n).is_some()
    }
    #[inline(always)]
    fn adj(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n)
    }
    #[inline(always)]
    fn truncate(&mut self, len: usize) -> bool {
        let l = self.len();
        len <= l && self.trim(l - len)
    }
    #[inline(always)]
    fn is_contiguous(&self) -> bool {
        Mbuf::is_contiguous(self)
    }
    #[inline(always)]
    fn prefetch_header(&self) {
        prefetch(self.0.as_ptr() as *const u8);
    }
    #[inline(always)]
    fn prefetch_data(&self) {
        let m = self.m();
        prefetch((m.buf_addr as *const u8).wrapping_add(m.data_off as usize));
    }
}

/// Asks for the cache line at `p` (a hint: it never faults, whatever the address).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Up to [`BURST_SIZE`] owned mbufs, as rx/tx burst functions want them (raw pointers in
/// a fixed array, no allocation). Every pointer in `[0, len)` is owned by the burst and
/// freed on drop.
pub struct Burst {
    pub(crate) ptrs: [*mut sys::rte_mbuf; BURST_SIZE],
    pub(crate) len: usize,
}

// SAFETY: the burst uniquely owns its mbufs, as Mbuf does.
unsafe impl Send for Burst {}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            ptrs: [std::ptr::null_mut(); BURST_SIZE],
            len: 0,
        }
    }
}

impl Burst {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }
    /// Adds an mbuf; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST_SIZE {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }
    /// Takes every mbuf out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = std::mem::take(&mut self.len);
        self.ptrs[..n]
            .iter()
            .map(|&p| Mbuf(NonNull::new(p).expect("burst holds non-null")))
    }

    /// The burst's mbufs as a slice, for processing in place.
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the layout
        // of *mut rte_mbuf; every pointer in [0, len) is a non-null mbuf the burst owns.
        // The slice borrows the burst, so no mbuf can be dropped twice through it.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr() as *mut Mbuf, self.len) }
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: frees the mbufs we own, once.
            unsafe { sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32) };
        }
    }
}
