//! Zero-copy typed views over packet bytes, one module per protocol (smoltcp style).
//!
//! Each view wraps any `T: AsRef<[u8]>`; getters need only `AsRef`, setters need
//! `AsMut<[u8]>`, so a read-only view cannot write. Field positions are named ranges in
//! each module's `field`.
//!
//! **Contract:** `new_checked` validates every length the accessors rely on (buffer long
//! enough for the fixed header, IHL >= 5 and within the buffer, IPv4 total length <= buffer,
//! TCP data offset >= 5 and within the segment, UDP length consistent, ...). After it
//! succeeds, no accessor of that view can panic. `new_unchecked` skips the checks and is
//! for buffers the caller built itself. Malformed input yields [`Error`], never a panic.
#![forbid(unsafe_code)]
pub mod arp;
pub mod builder;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::{EtherType, EthernetFrame, MacAddr};
pub use icmp::IcmpPacket;
pub use ipv4::{IpProtocol, Ipv4Packet};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;

/// Which end of a packet a NAT rewrite changes (address and port together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

impl End {
    /// Writes `port` at this end of a TCP or UDP header (both start with the source
    /// port, then the destination port); returns the port it replaced.
    #[inline]
    pub(crate) fn replace_port(self, l4: &mut [u8], port: u16) -> u16 {
        let at = match self {
            End::Src => 0,
            End::Dst => 2,
        };
        let old = get_u16(l4, at);
        set_u16(l4, at, port);
        old
    }
}

/// A byte range inside a header.
pub type Field = core::ops::Range<usize>;

/// Why a buffer is not a valid header of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the header")]
    Truncated,
    #[error("header length field out of range")]
    BadHeaderLen,
    #[error("total length field inconsistent with the buffer")]
    BadTotalLen,
    #[error("unsupported version or hardware/protocol type")]
    Unsupported,
}

pub type Result<T> = core::result::Result<T, Error>;

#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
