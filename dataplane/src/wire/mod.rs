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
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod proxy;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::{EtherType, EthernetFrame, MacAddr};
pub use icmp::IcmpPacket;
pub use icmpv6::Icmpv6Packet;
pub use ipv4::{IpProtocol, Ipv4Packet};
pub use ipv6::Ipv6Packet;
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;

/// An IP address family, as the checksums and the flow keys see it: IPv4 and IPv6
/// addresses are both, so one rewrite, one key and one table serve either family.
pub trait IpAddress:
    Copy + Eq + Ord + core::hash::Hash + core::fmt::Debug + core::fmt::Display + Send + Sync + 'static
{
    /// The TCP/UDP pseudo-header sum (not complemented) of a segment of `len` bytes.
    fn pseudo_header(src: Self, dst: Self, protocol: u8, len: u32) -> u32;
    /// What a change of this address (in the pseudo-header) adds to a checksum's sum
    /// (`checksum::delta32`), unfolded.
    fn checksum_delta(old: Self, new: Self) -> u32;
    /// A checksum covering this address (in the pseudo-header) when it changes.
    #[inline(always)]
    fn update_checksum(hc: u16, old: Self, new: Self) -> u16 {
        checksum::update(hc, Self::checksum_delta(old, new))
    }
    /// Two words that hold the address (IPv6: folded), for unseeded hashes.
    fn fold(self) -> u64;
    const UNSPECIFIED: Self;
}

impl IpAddress for core::net::Ipv4Addr {
    #[inline(always)]
    fn pseudo_header(src: Self, dst: Self, protocol: u8, len: u32) -> u32 {
        checksum::pseudo_header(src, dst, protocol, len as u16)
    }
    #[inline(always)]
    fn checksum_delta(old: Self, new: Self) -> u32 {
        checksum::delta32(old.to_bits(), new.to_bits())
    }
    #[inline(always)]
    fn fold(self) -> u64 {
        self.to_bits() as u64
    }
    const UNSPECIFIED: Self = core::net::Ipv4Addr::UNSPECIFIED;
}

impl IpAddress for core::net::Ipv6Addr {
    #[inline(always)]
    fn pseudo_header(src: Self, dst: Self, protocol: u8, len: u32) -> u32 {
        checksum::pseudo_header6(src, dst, protocol, len)
    }
    #[inline(always)]
    fn checksum_delta(old: Self, new: Self) -> u32 {
        checksum::delta128(old, new)
    }
    #[inline(always)]
    fn fold(self) -> u64 {
        let b = self.to_bits();
        (b >> 64) as u64 ^ (b as u64).rotate_left(23)
    }
    const UNSPECIFIED: Self = core::net::Ipv6Addr::UNSPECIFIED;
}

/// Which end of a packet a NAT rewrite changes (address and port together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Src,
    Dst,
}

impl End {
    /// Writes `port` at this end of a TCP or UDP header (both start with the source
    /// port, then the destination port); returns the port it replaced.
    #[inline(always)]
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

// One bounds check for the field, not one per byte.
#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().expect("two bytes"))
}
#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("four bytes"))
}
#[inline]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
