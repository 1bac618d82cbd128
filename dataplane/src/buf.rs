//! The packet buffer the pipeline works on: a DPDK mbuf in the daemon, [`VecBuf`] in
//! tests and benches (the one stand-in allowed for an mbuf).
#![forbid(unsafe_code)]

/// A single packet's bytes with room to grow at the front (for tunnel headers).
pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front; false if there is no headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false if shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Cuts the packet to `len` bytes (drops Ethernet padding or a tail).
    fn truncate(&mut self, len: usize) -> bool;
    /// False for chained (multi-segment) packets, which ferrovs does not parse.
    fn is_contiguous(&self) -> bool {
        true
    }
    /// A hint: the buffer's own fields (an mbuf's first cache line) are read soon.
    #[inline(always)]
    fn prefetch_header(&self) {}
    /// A hint: the packet's first bytes are read soon (reads the buffer's fields).
    #[inline(always)]
    fn prefetch_data(&self) {}
}

/// Headroom of a [`VecBuf`], as DPDK's default `RTE_PKTMBUF_HEADROOM`.
pub const HEADROOM: usize = 128;

/// A packet in a `Vec` with headroom, behaving like a single-segment mbuf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
}

impl VecBuf {
    pub fn new(frame: &[u8]) -> Self {
        let mut buf = vec![0u8; HEADROOM + frame.len()];
        buf[HEADROOM..].copy_from_slice(frame);
        VecBuf {
            buf,
            start: HEADROOM,
        }
    }
    /// Replaces the contents, keeping the allocation when it is large enough.
    pub fn reset(&mut self, frame: &[u8]) {
        self.buf.resize(HEADROOM + frame.len(), 0);
        self.buf[HEADROOM..].copy_from_slice(frame);
        self.start = HEADROOM;
    }
    pub fn to_vec(&self) -> Vec<u8> {
        self.buf[self.start..].to_vec()
    }
}

impl PacketBuf for VecBuf {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    #[inline(always)]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    #[inline(always)]
    fn adj(&mut self, n: usize) -> bool {
        if self.start + n > self.buf.len() {
            return false;
        }
        self.start += n;
        true
    }
    #[inline(always)]
    fn truncate(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.buf.truncate(self.start + len);
        true
    }
}
