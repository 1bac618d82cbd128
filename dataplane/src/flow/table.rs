//! The shared, fixed-capacity, lock-free flow table.
//!
//! # Layout
//! * `entries`: `capacity` entries of one cache line (64 B) each, preallocated. An entry
//!   holds the flow (client, VIP, backend, service, mode, TCP state, times) in atomic
//!   words, so concurrent access is never a data race.
//! * `slots`: the index, `4 * capacity` rounded up to a power of two, in buckets of 8
//!   slots (one cache line). A slot is `signature:24 | generation:8 | direction:1 | entry:31`,
//!   0 = empty. The generation bits make each incarnation of an entry's slot distinct (no ABA).
//!   A key hashes to two buckets (primary and alternate); its slot is in one of them.
//!   A NAT flow has two slots (client side and backend side), a DR/TUN flow one.
//!
//! Memory per flow: 64 B entry + 4 slots * 8 B = 96 B (up to 128 B where power-of-two
//! rounding doubles the index), see [`BYTES_PER_FLOW`].
//!
//! # Families
//! The table is generic over the address family ([`Family`]): `FlowTable` (IPv4, the
//! default) keeps its one-cache-line entry; `FlowTable<Ipv6Addr>` has entries of two
//! cache lines (three 128-bit addresses). A daemon runs one table per family, so IPv4
//! flows never pay for IPv6's wider addresses.
//!
//! # Protocol
//! * **Entries** are guarded by a seqlock generation in word 0 (`gen:32 | state:8 | ...`).
//!   A writer makes `gen` odd, writes the fields, then makes it even (Release). A reader
//!   loads word 0 (Acquire), reads the fields, fences, re-reads word 0: if `gen` is odd
//!   or changed, the read is discarded. So a reader never uses a torn entry, even when
//!   the entry is freed and reused under it.
//! * **State changes** are a CAS of word 0 that keeps `gen`: a CAS against a stale
//!   handle fails once the entry was freed or reused, so it never touches another flow.
//! * **Lookup** hashes the key, scans both buckets for the signature, validates the entry
//!   and compares the key (IPv4: on the stored words). Wait-free: at most 16 slots and a
//!   bounded number of retries. A burst's prefetch pass scans the buckets first
//!   (`prefetch_entries`); a key it found in no slot is not scanned again
//!   ([`FlowHash::absent`]): if another worker inserts it meanwhile, the insert that
//!   follows the miss finds that flow (below). A found flow is a [`FlowRef`]: the entry's
//!   words, each field decoded where it is used ([`FlowFields`]).
//! * **Insert** takes a free entry (from one of 64 tagged Treiber stacks: the calling
//!   thread's shard first, so cores do not contend on one head), writes it, and CASes an empty
//!   slot (0 -> value) in the emptier of its two buckets. It then rescans both buckets:
//!   if another slot holds the same key (a racing insert of the same flow), it withdraws
//!   its own slot and retries, so the
//!   table ends with one flow and one backend choice. Two racers that both withdraw retry;
//!   after a few rounds the insert reports `Contended` and the caller decides statelessly.
//!   A full table or two full buckets fail fast with `Full`; nothing is ever evicted.
//! * An entry is PENDING from its write until all its slots are published: visible to
//!   lookups (so racing inserts see it) but not removable, so a remover can never miss a
//!   slot that is being published. An insert that finds the flow still PENDING does not
//!   return it as `Existing` (its creator may yet withdraw it, its backend-side key
//!   taken): it looks again, so every `Existing` is the flow that stays.
//! * **Remove** CASes word 0 from (gen, live state) to (gen + 1, Free): exactly one remover
//!   wins. The winner clears the entry's slots (CAS slot -> 0), makes `gen` even and
//!   pushes the entry on its own shard's free stack.
//! * **Few writes:** a packet of an existing flow writes nothing unless its state changes,
//!   except `last_seen`, which is stored at most once per second per flow, and a TCP
//!   side's sequence hint, stored when that side's numbers moved 256 KiB from it.
#![deny(clippy::undocumented_unsafe_blocks)]
use super::state::{FlowState, Timeouts};
use crate::hash::mix;
use crate::hugemem::{HugeSlice, ZeroValid};
use crate::snapshot::Forward;
use crate::wire::IpAddress;
use core::net::{Ipv4Addr, Ipv6Addr};
use std::cell::Cell;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

/// Bytes of table memory per flow of capacity (entry plus its share of the index),
/// before power-of-two rounding of the index.
pub const BYTES_PER_FLOW: usize = 64 + SLOTS_PER_FLOW * 8;
const _: () = assert!(BYTES_PER_FLOW <= 128, "goal: at most 128 bytes per flow");
const SLOTS_PER_FLOW: usize = 4;
const BUCKET: usize = 8;
const MAX_INSERT_ROUNDS: usize = 4;
const MAX_READ_RETRIES: usize = 4;
const DIR_BIT: u64 = 1 << 31;
/// Meta flag: the insert is still publishing its slots; the flow cannot be removed yet.
const PENDING: u64 = 1 << 1;
/// Meta flag: the flow carries a PROXY header (fnat with `proxy_protocol`).
const PROXY: u64 = 1 << 2;
/// Meta flag: the flow's handshake went through the SYN proxy (cookies); `seq_base` is
/// the cookie until the backend answers, then the backend's offset from it.
const SYNPROXY: u64 = 1 << 3;
const SIG_MASK: u64 = 0xffff_ff00_0000_0000;

/// The slot value of entry `idx` (generation `gen`, even) for a key with signature `sig`.
#[inline(always)]
fn slot_value(sig: u32, gen: u32, dir: Direction, idx: u32) -> u64 {
    ((sig as u64) << 32) & SIG_MASK
        | (((gen >> 1) & 0xff) as u64) << 32
        | if dir == Direction::Reverse {
            DIR_BIT
        } else {
            0
        }
        | idx as u64
}
const IDX_MASK: u64 = DIR_BIT - 1;
const NIL: u32 = u32::MAX;

/// A 5-tuple as seen on the wire, of either family (the address type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey<A = Ipv4Addr> {
    pub protocol: u8,
    pub src: A,
    pub src_port: u16,
    pub dst: A,
    pub dst_port: u16,
}

impl<A: Family> FlowKey<A> {
    /// Two words that hold the key (IPv6 addresses folded), hashed with the table's seed.
    #[inline(always)]
    fn words(&self) -> (u64, u64) {
        (
            (self.src.fold() << 32) ^ self.dst.fold(),
            ((self.src_port as u64) << 32) | ((self.dst_port as u64) << 16) | self.protocol as u64,
        )
    }
}

/// How far a side's sequence numbers move before its hint does (256 KiB).
pub const SEQ_HINT_STEP: u32 = 1 << 18;
/// How far from the hint a reset's sequence number may be (1 MiB, on top of a step).
pub const SEQ_RESET_WINDOW: u32 = 1 << 20;

/// Whether a reset with sequence number `seq` may end a flow whose side's hint is
/// `hint`: when the hint is unknown, or when `seq` is within a window around it (a
/// blind reset guesses right about once in 1,600 tries, as with conntrack's window).
#[inline(always)]
pub fn seq_plausible(hint: u32, seq: u32) -> bool {
    hint == 0 || (seq.wrapping_sub(hint) as i32).unsigned_abs() <= SEQ_HINT_STEP + SEQ_RESET_WINDOW
}

/// A key's hash in the table: its signature (never 0) and its two candidate buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowHash {
    pub sig: u32,
    /// The prefetch pass read both buckets through and no slot had the signature: the
    /// key was not in the table then, and its lookup need not read them again (a key
    /// another worker inserts meanwhile is found by the insert's own check).
    absent: bool,
    pub primary: usize,
    pub alternate: usize,
    /// The slot the prefetch pass found the signature in, plus one (0: none yet): the
    /// lookup reads that slot first and scans the buckets only when it is not the key's.
    pub hint: usize,
}

impl FlowHash {
    /// Whether the prefetch pass found the key's signature in no slot: most likely a
    /// new flow.
    #[inline(always)]
    pub fn absent(&self) -> bool {
        self.absent
    }
}

/// Which side of a flow a key matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// client -> VIP
    Forward,
    /// backend -> client (NAT replies)
    Reverse,
}

/// What a new flow is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInit<A = Ipv4Addr> {
    pub protocol: u8,
    pub client: A,
    pub client_port: u16,
    pub vip: A,
    pub vport: u16,
    pub backend: A,
    pub backend_port: u16,
    /// Index of the service in the snapshot that created it.
    pub service: u16,
    /// Identity of the backend, stable across snapshots.
    pub backend_id: u32,
    /// Forwarding mode.
    pub mode: Forward,
    /// True for nat and fnat: the backend-side key is indexed too.
    pub reverse: bool,
    pub state: FlowState,
    /// fnat: the local address and port the backend sees the flow come from (unspecified
    /// and 0 in the other modes).
    pub local: A,
    pub local_port: u16,
    /// fnat with `proxy_protocol`: a PROXY header goes before the client's first data,
    /// and the client's sequence numbers after `seq_base` (its ISN + 1) are shifted by
    /// its length toward the backend (and the backend's acknowledgements back).
    pub proxy: bool,
    pub seq_base: u32,
    /// Made by the SYN proxy (see `synproxy`): `seq_base` holds the cookie, then the
    /// backend's sequence offset.
    pub synproxy: bool,
    /// The ferrovs port the client's packets arrive on, and the one the backend's replies
    /// arrive on (the port routed toward the backend); [`ANY_PORT`] takes any. A packet of
    /// the flow arriving on another port is dropped (`wrong_port`).
    pub client_if: u8,
    pub backend_if: u8,
}

/// A flow's `client_if` or `backend_if` that takes packets from any port.
pub const ANY_PORT: u8 = u8::MAX;

impl<A: Copy> FlowInit<A> {
    pub fn forward_key(&self) -> FlowKey<A> {
        FlowKey {
            protocol: self.protocol,
            src: self.client,
            src_port: self.client_port,
            dst: self.vip,
            dst_port: self.vport,
        }
    }
    /// The backend side: replies from the backend to the client (nat) or to the local
    /// address and port (fnat).
    pub fn reverse_key(&self) -> FlowKey<A> {
        let (dst, dst_port) = if self.mode == Forward::Fnat {
            (self.local, self.local_port)
        } else {
            (self.client, self.client_port)
        };
        FlowKey {
            protocol: self.protocol,
            src: self.backend,
            src_port: self.backend_port,
            dst,
            dst_port,
        }
    }
}

/// A consistent copy of a flow, as read at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo<A = Ipv4Addr> {
    pub init: FlowInit<A>,
    pub state: FlowState,
    pub created: u32,
    pub last_seen: u32,
}

/// A handle to a live flow found by a lookup: its words as read at one instant (decoded
/// on demand: a packet uses a few of the fields, and a decoded copy, written a byte at a
/// time and then moved whole, stalled on store forwarding) plus what is needed to update
/// it (entry index and generation).
#[derive(Debug, Clone, Copy)]
pub struct FlowRef<A: Family = Ipv4Addr> {
    pub idx: u32,
    meta: u64,
    pub dir: Direction,
    words: A::Words,
    /// last_seen:32 | created:32
    times: u64,
}

impl<A: Family> FlowRef<A> {
    #[inline(always)]
    pub fn state(&self) -> FlowState {
        state_of(self.meta)
    }
    /// Every field of the flow, decoded (its state included).
    #[inline(always)]
    pub fn init(&self) -> FlowInit<A> {
        FlowInit {
            protocol: self.protocol(),
            client: self.client(),
            client_port: self.client_port(),
            vip: self.vip(),
            vport: self.vport(),
            backend: self.backend(),
            backend_port: self.backend_port(),
            service: self.service(),
            backend_id: self.backend_id(),
            mode: self.mode(),
            reverse: self.meta & 1 != 0,
            state: self.state(),
            local: self.local(),
            local_port: self.local_port(),
            proxy: self.proxy(),
            synproxy: self.synproxy(),
            seq_base: self.seq_base(),
            client_if: self.client_if(),
            backend_if: self.backend_if(),
        }
    }
    #[inline(always)]
    pub fn last_seen(&self) -> u32 {
        (self.times >> 32) as u32
    }
    pub fn info(&self) -> FlowInfo<A> {
        FlowInfo {
            init: self.init(),
            state: self.state(),
            created: self.times as u32,
            last_seen: self.last_seen(),
        }
    }
    /// A handle on words read from entry `idx`.
    #[inline(always)]
    fn of(idx: u32, meta: u64, dir: Direction, words: A::Words, times: u64) -> Self {
        FlowRef {
            idx,
            meta,
            dir,
            words,
            times,
        }
    }
}

/// The fields of a flow that forwarding reads: a new flow's [`FlowInit`], or a found
/// flow's [`FlowRef`], which decodes each from the entry's words where it is used (a
/// copy with every field decoded kept a dozen values alive along the packet's path,
/// spilled to the stack: 35 instructions per packet).
pub trait FlowFields<A> {
    fn protocol(&self) -> u8;
    fn client(&self) -> A;
    fn client_port(&self) -> u16;
    fn vip(&self) -> A;
    fn vport(&self) -> u16;
    fn backend(&self) -> A;
    fn backend_port(&self) -> u16;
    fn service(&self) -> u16;
    fn backend_id(&self) -> u32;
    fn mode(&self) -> Forward;
    fn state(&self) -> FlowState;
    fn local(&self) -> A;
    fn local_port(&self) -> u16;
    fn proxy(&self) -> bool;
    fn synproxy(&self) -> bool;
    fn seq_base(&self) -> u32;
    fn client_if(&self) -> u8;
    fn backend_if(&self) -> u8;
}

/// `FlowFields` of a struct whose fields have the methods' names.
macro_rules! fields_of_struct {
    ($($f:ident: $t:ty),+) => {
        $( #[inline(always)] fn $f(&self) -> $t { self.$f } )+
    };
}

impl<A: Copy> FlowFields<A> for FlowInit<A> {
    fields_of_struct!(protocol: u8, client: A, client_port: u16, vip: A, vport: u16,
        backend: A, backend_port: u16, service: u16, backend_id: u32, mode: Forward,
        state: FlowState, local: A, local_port: u16, proxy: bool, synproxy: bool,
        seq_base: u32, client_if: u8, backend_if: u8);
}

/// `FlowFields` whose bodies read the receiver, named in each.
macro_rules! fields_by {
    ($($f:ident -> $t:ty { $r:ident => $e:expr })+) => {
        $( #[inline(always)] fn $f(&self) -> $t { let $r = self; $e } )+
    };
}

impl<A: Family> FlowFields<A> for FlowRef<A> {
    fields_by! {
        protocol -> u8 { r => (r.meta >> 8) as u8 }
        client -> A { r => A::client(&r.words) }
        client_port -> u16 { r => (A::ports(&r.words) >> 48) as u16 }
        vip -> A { r => A::vip(&r.words) }
        vport -> u16 { r => (A::ports(&r.words) >> 32) as u16 }
        backend -> A { r => A::backend(&r.words) }
        backend_port -> u16 { r => (A::ports(&r.words) >> 16) as u16 }
        service -> u16 { r => A::ports(&r.words) as u16 }
        backend_id -> u32 { r => A::backend_id(&r.words) }
        mode -> Forward { r => Forward::from_u8((r.meta >> 16) as u8).unwrap_or(Forward::Nat) }
        state -> FlowState { r => state_of(r.meta) }
        local -> A { r => A::local(&r.words) }
        local_port -> u16 { r => A::local_port(&r.words) }
        proxy -> bool { r => r.meta & PROXY != 0 }
        synproxy -> bool { r => r.meta & SYNPROXY != 0 }
        seq_base -> u32 { r => A::seq_base_of(&r.words) }
        client_if -> u8 { r => A::ifs(&r.words).0 }
        backend_if -> u8 { r => A::ifs(&r.words).1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted<A: Family = Ipv4Addr> {
    /// This call created the flow.
    New(FlowRef<A>),
    /// The flow already existed (another worker created it first): use it.
    Existing(FlowRef<A>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("flow table full")]
    Full,
    #[error("the backend-side key belongs to another flow")]
    Conflict,
    #[error("insert lost too many races")]
    Contended,
}

impl<A: Family> PartialEq for FlowRef<A> {
    fn eq(&self, o: &Self) -> bool {
        self.idx == o.idx && self.meta == o.meta && self.dir == o.dir
    }
}
impl<A: Family> Eq for FlowRef<A> {}

/// An IPv4 flow: one cache line.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Entry4 {
    /// See [`layout`]: gen:32 | state:8 | mode:8 | protocol:8 | flags:8
    meta: AtomicU64,
    /// client:32 | vip:32
    addrs: AtomicU64,
    /// client_port:16 | vport:16 | backend_port:16 | service:16
    ports: AtomicU64,
    /// backend:32 | backend_id:32
    backend: AtomicU64,
    /// fnat: local:32 | local_port:16, then client_if:8 | backend_if:8
    local: AtomicU64,
    /// last_seen:32 | created:32
    times: AtomicU64,
    /// fnat with PROXY: the client's ISN + 1
    seq_base: AtomicU32,
    /// TCP: where each side's sequence numbers stand (see [`FlowTable::seq_hint`]).
    seq_hints: [AtomicU32; 2],
    /// next free entry (free stack link)
    next: AtomicU32,
}
const _: () = assert!(core::mem::size_of::<Entry4>() == 64);
// SAFETY: every field is an atomic integer (zero bytes: the free, zeroed entry that
// `Default` makes too).
unsafe impl ZeroValid for Entry4 {}

/// An IPv6 flow: two cache lines.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Entry6 {
    /// As [`Entry4::meta`].
    meta: AtomicU64,
    /// client, vip, backend, local (fnat): each two words (high, low).
    addrs: [AtomicU64; 8],
    /// As [`Entry4::ports`].
    ports: AtomicU64,
    /// client_if:8 | backend_if:8 | local_port:16 | backend_id:32
    backend_id: AtomicU64,
    /// As in [`Entry4`].
    seq_base: AtomicU32,
    seq_hints: [AtomicU32; 2],
    times: AtomicU64,
    next: AtomicU32,
}
const _: () = assert!(core::mem::size_of::<Entry6>() == 128);
// SAFETY: as for Entry4.
unsafe impl ZeroValid for Entry6 {}

/// An address family the table can hold: how its entries are stored. Implemented for
/// `Ipv4Addr` (64-byte entries) and `Ipv6Addr` (128-byte entries).
pub trait Family: IpAddress {
    #[doc(hidden)]
    type Entry: Default + ZeroValid + Send + Sync;
    /// The flow words of an entry, loaded between the seqlock's two reads.
    #[doc(hidden)]
    type Words: Copy + core::fmt::Debug;
    #[doc(hidden)]
    fn meta(e: &Self::Entry) -> &AtomicU64;
    #[doc(hidden)]
    fn times(e: &Self::Entry) -> &AtomicU64;
    #[doc(hidden)]
    fn next(e: &Self::Entry) -> &AtomicU32;
    #[doc(hidden)]
    fn seq_hints(e: &Self::Entry) -> &[AtomicU32; 2];
    #[doc(hidden)]
    fn seq_base(e: &Self::Entry) -> &AtomicU32;
    /// `f`'s words, as [`Family::load`] reads them back.
    #[doc(hidden)]
    fn words(f: &FlowInit<Self>) -> Self::Words;
    #[doc(hidden)]
    fn store_words(e: &Self::Entry, w: &Self::Words);
    /// Words whose `seq_base` is `v`.
    #[doc(hidden)]
    fn set_seq_base(w: &mut Self::Words, v: u32);
    #[doc(hidden)]
    fn load(e: &Self::Entry) -> Self::Words;
    /// Whether the flow of `meta` and `w` has key `k` on side `dir`.
    #[doc(hidden)]
    #[inline(always)]
    fn key_matches(meta: u64, w: &Self::Words, dir: Direction, k: &FlowKey<Self>) -> bool {
        let f = FlowRef::<Self>::of(0, meta, dir, *w, 0).init();
        *k == match dir {
            Direction::Forward => f.forward_key(),
            Direction::Reverse => f.reverse_key(),
        }
    }
    /// The fields of the words (the others are in the meta word: see [`FlowFields`]).
    #[doc(hidden)]
    fn client(w: &Self::Words) -> Self;
    #[doc(hidden)]
    fn vip(w: &Self::Words) -> Self;
    #[doc(hidden)]
    fn backend(w: &Self::Words) -> Self;
    #[doc(hidden)]
    fn local(w: &Self::Words) -> Self;
    /// client_port:16 | vport:16 | backend_port:16 | service:16, in both families.
    #[doc(hidden)]
    fn ports(w: &Self::Words) -> u64;
    #[doc(hidden)]
    fn backend_id(w: &Self::Words) -> u32;
    #[doc(hidden)]
    fn local_port(w: &Self::Words) -> u16;
    /// (client_if, backend_if)
    #[doc(hidden)]
    fn ifs(w: &Self::Words) -> (u8, u8);
    #[doc(hidden)]
    fn seq_base_of(w: &Self::Words) -> u32;
}

/// A family's decoders of its words' fields (see [`Family::client`]).
macro_rules! decoders {
    ($($f:ident -> $t:ty { $w:ident => $e:expr })+) => {
        $( #[inline(always)] fn $f($w: &Self::Words) -> $t { $e } )+
    };
}

impl Family for Ipv4Addr {
    type Entry = Entry4;
    type Words = (u64, u64, u64, u64, u64);
    #[inline(always)]
    fn meta(e: &Entry4) -> &AtomicU64 {
        &e.meta
    }
    #[inline(always)]
    fn times(e: &Entry4) -> &AtomicU64 {
        &e.times
    }
    #[inline(always)]
    fn next(e: &Entry4) -> &AtomicU32 {
        &e.next
    }
    #[inline(always)]
    fn seq_hints(e: &Entry4) -> &[AtomicU32; 2] {
        &e.seq_hints
    }
    #[inline(always)]
    fn seq_base(e: &Entry4) -> &AtomicU32 {
        &e.seq_base
    }
    #[inline(always)]
    fn words(f: &FlowInit) -> Self::Words {
        let w = layout::pack(f, 0);
        (w.addrs, w.ports, w.backend, w.local, f.seq_base as u64)
    }
    #[inline(always)]
    fn store_words(e: &Entry4, &(addrs, ports, backend, local, seq_base): &Self::Words) {
        e.addrs.store(addrs, Relaxed);
        e.ports.store(ports, Relaxed);
        e.backend.store(backend, Relaxed);
        e.local.store(local, Relaxed);
        e.seq_base.store(seq_base as u32, Relaxed);
    }
    #[inline(always)]
    fn set_seq_base(w: &mut Self::Words, v: u32) {
        w.4 = v as u64;
    }
    /// On the words as stored, without decoding the flow: the forward key's addresses
    /// are the `addrs` word and its ports two halves of the `ports` word.
    #[inline(always)]
    fn key_matches(meta: u64, w: &Self::Words, dir: Direction, k: &FlowKey) -> bool {
        let &(addrs, ports, backend, local, _) = w;
        let (ka, kb) = k.words();
        let protocol = (meta >> 8) & 0xff;
        match dir {
            Direction::Forward => {
                addrs == ka && ((ports >> 16) & 0xffff_ffff_0000) | protocol == kb
            }
            Direction::Reverse => {
                // backend:backend_port -> client:client_port (fnat: local:local_port)
                let (dst, dst_port) = if (meta >> 16) & 0xff == Forward::Fnat as u64 {
                    (local >> 32, (local >> 16) & 0xffff)
                } else {
                    (addrs >> 32, ports >> 48)
                };
                (backend & !0xffff_ffff) | dst == ka
                    && ((ports & 0xffff_0000) << 16) | (dst_port << 16) | protocol == kb
            }
        }
    }
    #[inline(always)]
    fn load(e: &Entry4) -> (u64, u64, u64, u64, u64) {
        (
            e.addrs.load(Relaxed),
            e.ports.load(Relaxed),
            e.backend.load(Relaxed),
            e.local.load(Relaxed),
            e.seq_base.load(Relaxed) as u64,
        )
    }
    decoders! {
        client -> Self { w => Ipv4Addr::from_bits((w.0 >> 32) as u32) }
        vip -> Self { w => Ipv4Addr::from_bits(w.0 as u32) }
        backend -> Self { w => Ipv4Addr::from_bits((w.2 >> 32) as u32) }
        local -> Self { w => Ipv4Addr::from_bits((w.3 >> 32) as u32) }
        ports -> u64 { w => w.1 }
        backend_id -> u32 { w => w.2 as u32 }
        local_port -> u16 { w => (w.3 >> 16) as u16 }
        ifs -> (u8, u8) { w => ((w.3 >> 8) as u8, w.3 as u8) }
        seq_base_of -> u32 { w => w.4 as u32 }
    }
}

impl Family for Ipv6Addr {
    type Entry = Entry6;
    type Words = ([u64; 8], u64, u64, u64);
    #[inline(always)]
    fn meta(e: &Entry6) -> &AtomicU64 {
        &e.meta
    }
    #[inline(always)]
    fn times(e: &Entry6) -> &AtomicU64 {
        &e.times
    }
    #[inline(always)]
    fn next(e: &Entry6) -> &AtomicU32 {
        &e.next
    }
    #[inline(always)]
    fn seq_hints(e: &Entry6) -> &[AtomicU32; 2] {
        &e.seq_hints
    }
    #[inline(always)]
    fn seq_base(e: &Entry6) -> &AtomicU32 {
        &e.seq_base
    }
    #[inline(always)]
    fn words(f: &FlowInit<Ipv6Addr>) -> Self::Words {
        let mut a = [0; 8];
        for (i, addr) in [f.client, f.vip, f.backend, f.local]
            .into_iter()
            .enumerate()
        {
            let b = addr.to_bits();
            (a[2 * i], a[2 * i + 1]) = ((b >> 64) as u64, b as u64);
        }
        let id = ((f.client_if as u64) << 56)
            | ((f.backend_if as u64) << 48)
            | ((f.local_port as u64) << 32)
            | f.backend_id as u64;
        (a, layout::ports(f), id, f.seq_base as u64)
    }
    #[inline(always)]
    fn store_words(e: &Entry6, (a, ports, id, seq_base): &Self::Words) {
        for (w, v) in e.addrs.iter().zip(a) {
            w.store(*v, Relaxed);
        }
        e.ports.store(*ports, Relaxed);
        e.backend_id.store(*id, Relaxed);
        e.seq_base.store(*seq_base as u32, Relaxed);
    }
    #[inline(always)]
    fn set_seq_base(w: &mut Self::Words, v: u32) {
        w.3 = v as u64;
    }
    #[inline(always)]
    fn load(e: &Entry6) -> ([u64; 8], u64, u64, u64) {
        (
            core::array::from_fn(|i| e.addrs[i].load(Relaxed)),
            e.ports.load(Relaxed),
            e.backend_id.load(Relaxed),
            e.seq_base.load(Relaxed) as u64,
        )
    }
    decoders! {
        client -> Self { w => addr6(&w.0, 0) }
        vip -> Self { w => addr6(&w.0, 1) }
        backend -> Self { w => addr6(&w.0, 2) }
        local -> Self { w => addr6(&w.0, 3) }
        ports -> u64 { w => w.1 }
        backend_id -> u32 { w => w.2 as u32 }
        local_port -> u16 { w => (w.2 >> 32) as u16 }
        ifs -> (u8, u8) { w => ((w.2 >> 56) as u8, (w.2 >> 48) as u8) }
        seq_base_of -> u32 { w => w.3 as u32 }
    }
}

/// IPv6 address `i` of an entry's address words (high, low).
#[inline(always)]
fn addr6(a: &[u64; 8], i: usize) -> Ipv6Addr {
    Ipv6Addr::from_bits(((a[2 * i] as u128) << 64) | a[2 * i + 1] as u128)
}

/// The one place that knows the bit layout of an entry's words: [`layout::pack`] and
/// the [`FlowFields`] of a [`FlowRef`] are inverses (tested).
mod layout {
    use super::{FlowInit, FlowState, PENDING, PROXY, SYNPROXY};

    /// An entry's flow words, as stored.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Words {
        pub meta: u64,
        pub addrs: u64,
        pub ports: u64,
        pub backend: u64,
        pub local: u64,
    }

    #[inline(always)]
    pub(super) fn gen_of(meta: u64) -> u32 {
        (meta >> 32) as u32
    }
    #[inline(always)]
    pub(super) fn state_of(meta: u64) -> FlowState {
        FlowState::from_u8((meta >> 24) as u8).unwrap_or(FlowState::Free)
    }
    #[inline(always)]
    pub(super) fn with_state(meta: u64, s: FlowState) -> u64 {
        (meta & !(0xff << 24)) | ((s as u64) << 24)
    }

    /// The meta word of flow `f` (either family) in generation `gen` (even), PENDING.
    #[inline(always)]
    pub(super) fn meta<A>(f: &FlowInit<A>, gen: u32) -> u64 {
        ((gen as u64) << 32)
            | ((f.state as u64) << 24)
            | ((f.mode as u64) << 16)
            | ((f.protocol as u64) << 8)
            | PENDING
            | if f.proxy { PROXY } else { 0 }
            | if f.synproxy { SYNPROXY } else { 0 }
            | f.reverse as u64
    }

    /// The ports word of flow `f` (either family).
    #[inline(always)]
    pub(super) fn ports<A>(f: &FlowInit<A>) -> u64 {
        ((f.client_port as u64) << 48)
            | ((f.vport as u64) << 32)
            | ((f.backend_port as u64) << 16)
            | f.service as u64
    }

    /// The words of IPv4 flow `f` in generation `gen` (even), marked PENDING.
    #[inline(always)]
    pub(super) fn pack(f: &FlowInit, gen: u32) -> Words {
        Words {
            meta: meta(f, gen),
            addrs: ((f.client.to_bits() as u64) << 32) | f.vip.to_bits() as u64,
            ports: ports(f),
            backend: ((f.backend.to_bits() as u64) << 32) | f.backend_id as u64,
            local: ((f.local.to_bits() as u64) << 32)
                | ((f.local_port as u64) << 16)
                | ((f.client_if as u64) << 8)
                | f.backend_if as u64,
        }
    }
}

/// A new flow's sequence hints: a TCP client's is its SYN's end (`seq_base`), the
/// backend's is unknown (0) until it answers.
#[inline(always)]
fn store_hints<A>(h: &[AtomicU32; 2], f: &FlowInit<A>) {
    // A SYN proxy flow's client hint is set by its creator (`seq_base` is the cookie).
    let client = if f.protocol == crate::wire::IpProtocol::TCP && !f.synproxy {
        f.seq_base
    } else {
        0
    };
    h[0].store(client, Relaxed);
    h[1].store(0, Relaxed);
}
use layout::{gen_of, state_of, with_state};

/// Free entries are kept in this many stacks, and flows counted in as many counters, each
/// on its own cache lines: a thread pushes and pops on its own shard (stealing from the
/// others only when its own is empty), so inserts and removes on different cores do not
/// contend on one line (one shared stack serialized new flows across cores: measured
/// flat at ~1 M inserts+removes/s from 1 to 16 threads).
const FREE_SHARDS: usize = crate::slots::THREAD_SLOTS;

/// One shard: a tagged Treiber stack of free entries and the flows its threads made
/// minus those they removed (the table's count is the sum).
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    /// tag:32 | index:32 (NIL = empty)
    head: AtomicU64,
    live: core::sync::atomic::AtomicIsize,
}

use crate::slots::thread_slot as my_shard;

/// The shared flow table. `Sync`: every method takes `&self`.
pub struct FlowTable<A: Family = Ipv4Addr> {
    entries: HugeSlice<A::Entry>,
    slots: HugeSlice<AtomicU64>,
    bucket_mask: usize,
    free: Box<[Shard]>,
    sweep_cursor: AtomicUsize,
    /// Half-open flows the sweep saw in its pass so far, and in its last full pass.
    half_open_pass: AtomicUsize,
    half_open: AtomicUsize,
    seed: u64,
}

impl FlowTable {
    /// Preallocates an IPv4 table for `capacity` flows (at least 1, at most 2^31 - 1).
    pub fn new(capacity: usize) -> FlowTable {
        FlowTable::with_capacity(capacity)
    }
}

impl<A: Family> FlowTable<A> {
    /// Preallocates a table of this family for `capacity` flows (at least 1, at most
    /// 2^31 - 1).
    pub fn with_capacity(capacity: usize) -> FlowTable<A> {
        let capacity = capacity.clamp(1, IDX_MASK as usize);
        let nslots = (capacity * SLOTS_PER_FLOW)
            .next_power_of_two()
            .max(BUCKET * 2);
        // Both arrays on huge pages where the kernel gives them (see `hugemem`).
        let entries: HugeSlice<A::Entry> = HugeSlice::zeroed(capacity);
        // Entries i, i + S, i + 2S, ... are shard i's free stack.
        for (i, e) in entries.iter().enumerate() {
            let next = i + FREE_SHARDS;
            A::next(e).store(if next < capacity { next as u32 } else { NIL }, Relaxed);
        }
        let free: Box<[Shard]> = (0..FREE_SHARDS)
            .map(|s| Shard {
                head: AtomicU64::new(if s < capacity { s as u64 } else { NIL as u64 }),
                live: Default::default(),
            })
            .collect();
        let slots: HugeSlice<AtomicU64> = HugeSlice::zeroed(nslots);
        // The zeroed index is mapped, untouched: fault every page in now, at start-up,
        // not on the packet path (a VM fault costs tens of microseconds).
        for s in slots.iter().step_by(4096 / 8) {
            s.store(0, Relaxed);
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        FlowTable {
            entries,
            slots,
            bucket_mask: nslots / BUCKET - 1,
            free,
            sweep_cursor: AtomicUsize::new(0),
            half_open_pass: AtomicUsize::new(0),
            half_open: AtomicUsize::new(0),
            seed,
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }
    /// Flows currently in the table.
    pub fn len(&self) -> usize {
        self.free
            .iter()
            .map(|s| s.live.load(Relaxed))
            .sum::<isize>()
            .max(0) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes allocated by the table.
    pub fn memory_bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<A::Entry>() + self.slots.len() * 8
    }

    /// The hash of a key: the signature (never 0) and the two bucket indexes.
    #[inline(always)]
    pub fn hash(&self, k: &FlowKey<A>) -> FlowHash {
        let (a, b) = k.words();
        let h = mix(a ^ self.seed, b.wrapping_add(self.seed.rotate_left(29)));
        let sig = ((h >> 32) as u32) | 1;
        let b1 = (h as usize) & self.bucket_mask;
        let b2 = (b1 ^ (sig.wrapping_mul(0x5bd1_e995) as usize)) & self.bucket_mask;
        let b2 = if b2 == b1 {
            (b1 + 1) & self.bucket_mask
        } else {
            b2
        };
        FlowHash {
            sig,
            absent: false,
            primary: b1,
            alternate: b2,
            hint: 0,
        }
    }

    /// Prefetches the buckets of a hashed key (batched lookups do this for a whole burst).
    #[inline(always)]
    pub fn prefetch(&self, h: FlowHash) {
        prefetch(&self.slots[h.primary * BUCKET]);
        prefetch(&self.slots[h.alternate * BUCKET]);
    }

    /// Second prefetch stage: with the buckets already in cache (see [`prefetch`]),
    /// prefetches the entry of the first slot whose signature matches, so the lookup that
    /// follows finds both cache lines present (as DPDK's bulk hash lookup does), and
    /// remembers that slot in `h.hint` for it (or, finding none, that the key is absent).
    /// A second match (one key in 16 million shares a signature with another in its
    /// buckets) is left to the lookup's scan.
    ///
    /// [`prefetch`]: FlowTable::prefetch
    #[inline(always)]
    pub fn prefetch_entries(&self, h: &mut FlowHash) {
        let want = ((h.sig as u64) << 32) & SIG_MASK;
        for b in [h.primary, h.alternate] {
            for pos in b * BUCKET..(b + 1) * BUCKET {
                let v = self.slots[pos].load(Relaxed);
                if v != 0 && v & SIG_MASK == want {
                    prefetch(&self.entries[(v & IDX_MASK) as usize]);
                    h.hint = pos + 1;
                    return;
                }
            }
        }
        h.absent = true;
    }

    /// Looks a key up.
    #[inline]
    pub fn lookup(&self, k: &FlowKey<A>) -> Option<FlowRef<A>> {
        let h = self.hash(k);
        self.lookup_hashed(k, h)
    }

    /// Looks up a key whose hash the caller computed (and whose buckets it prefetched).
    #[inline]
    pub fn lookup_hashed(&self, k: &FlowKey<A>, h: FlowHash) -> Option<FlowRef<A>> {
        if h.absent {
            return None;
        }
        for _ in 0..MAX_READ_RETRIES {
            match self.scan(k, h, None) {
                Scan::Found(r) => return Some(r),
                Scan::Missing => return None,
                Scan::Retry => continue,
            }
        }
        None
    }

    /// Looks up a burst of keys: hashes all and prefetches their buckets, prefetches the
    /// matching entries, then probes.
    pub fn lookup_burst(&self, keys: &[FlowKey<A>], out: &mut [Option<FlowRef<A>>]) {
        let mut hashes = [FlowHash::default(); 64];
        for chunk in (0..keys.len()).step_by(64) {
            let end = (chunk + 64).min(keys.len());
            for i in chunk..end {
                let h = self.hash(&keys[i]);
                self.prefetch(h);
                hashes[i - chunk] = h;
            }
            for h in &mut hashes[..end - chunk] {
                self.prefetch_entries(h);
            }
            for i in chunk..end {
                out[i] = self.lookup_hashed(&keys[i], hashes[i - chunk]);
            }
        }
    }

    /// Scans both buckets for `k` (the hinted slot first). `skip` ignores one slot
    /// position (our own, on the post-insert rescan).
    #[inline(always)]
    fn scan(&self, k: &FlowKey<A>, h: FlowHash, skip: Option<usize>) -> Scan<A> {
        let want = ((h.sig as u64) << 32) & SIG_MASK;
        if let Some(pos) = h.hint.checked_sub(1) {
            let v = self.slots[pos].load(Acquire);
            if v != 0 && v & SIG_MASK == want && Some(pos) != skip {
                if let Slot::Found(r) = self.check_slot(k, h.sig, v) {
                    return Scan::Found(r);
                }
            }
        }
        let mut retry = false;
        for b in [h.primary, h.alternate] {
            for pos in b * BUCKET..(b + 1) * BUCKET {
                let v = self.slots[pos].load(Acquire);
                if v == 0 || v & SIG_MASK != want || Some(pos) == skip {
                    continue;
                }
                match self.check_slot(k, h.sig, v) {
                    Slot::Found(r) => return Scan::Found(r),
                    Slot::Busy => retry = true,
                    Slot::Other => {}
                }
            }
        }
        if retry {
            Scan::Retry
        } else {
            Scan::Missing
        }
    }

    /// Whether slot value `v`, whose signature matches `k`'s, is `k`'s flow.
    #[inline(always)]
    fn check_slot(&self, k: &FlowKey<A>, sig: u32, v: u64) -> Slot<A> {
        let dir = if v & DIR_BIT != 0 {
            Direction::Reverse
        } else {
            Direction::Forward
        };
        let idx = (v & IDX_MASK) as u32;
        match self.read_words(idx) {
            // A slot left by an earlier incarnation of this entry: not this flow.
            Some((meta, ..)) if slot_value(sig, gen_of(meta), dir, idx) != v => Slot::Other,
            Some((meta, words, times)) => {
                if A::key_matches(meta, &words, dir, k) {
                    Slot::Found(FlowRef::of(idx, meta, dir, words, times))
                } else {
                    Slot::Other
                }
            }
            // Being written or freed: the slot is about to be published or removed.
            None => Slot::Busy,
        }
    }

    /// Reads entry `idx` consistently (seqlock), or None if it is free or being written.
    #[inline(always)]
    fn read(&self, idx: u32) -> Option<(u64, FlowInfo<A>)> {
        let (meta, words, times) = self.read_words(idx)?;
        Some((
            meta,
            FlowRef::of(idx, meta, Direction::Forward, words, times).info(),
        ))
    }

    /// [`FlowTable::read`], undecoded: the meta word, the flow words and the times word.
    #[inline(always)]
    fn read_words(&self, idx: u32) -> Option<(u64, A::Words, u64)> {
        let e = &self.entries[idx as usize];
        let m1 = A::meta(e).load(Acquire);
        if gen_of(m1) & 1 == 1 || state_of(m1) == FlowState::Free {
            return None;
        }
        let words = A::load(e);
        let times = A::times(e).load(Relaxed);
        fence(Acquire);
        let m2 = A::meta(e).load(Relaxed);
        if gen_of(m1) != gen_of(m2) || state_of(m2) == FlowState::Free {
            return None;
        }
        Some((m2, words, times))
    }

    /// Creates a flow, or finds the one a racing worker created first.
    pub fn insert(&self, init: &FlowInit<A>, now: u32) -> Result<Inserted<A>, InsertError> {
        let fk = init.forward_key();
        self.insert_rounds(init, now, &fk, self.hash(&fk), false)
    }

    /// [`insert`] for a flow whose forward key (hash `fh`) the caller has just looked up
    /// and not found: the first round does not look again. A flow created meanwhile by
    /// another worker is still found: by the check after publishing, and then the next
    /// round returns it as `Existing`.
    ///
    /// [`insert`]: FlowTable::insert
    #[inline]
    pub fn insert_missed(
        &self,
        init: &FlowInit<A>,
        now: u32,
        fh: FlowHash,
    ) -> Result<Inserted<A>, InsertError> {
        let fk = init.forward_key();
        debug_assert_eq!(
            (fh.sig, fh.primary),
            (self.hash(&fk).sig, self.hash(&fk).primary)
        );
        self.insert_rounds(init, now, &fk, fh, true)
    }

    #[inline(always)]
    fn insert_rounds(
        &self,
        init: &FlowInit<A>,
        now: u32,
        fk: &FlowKey<A>,
        fh: FlowHash,
        mut missed: bool,
    ) -> Result<Inserted<A>, InsertError> {
        let fk = *fk;
        // The rounds after a lost race look the key up: it is absent no longer.
        let fh = FlowHash {
            absent: false,
            ..fh
        };
        for _ in 0..MAX_INSERT_ROUNDS {
            if !std::mem::take(&mut missed) {
                if let Some(r) = self.lookup_hashed(&fk, fh) {
                    if r.meta & PENDING == 0 {
                        return Ok(Inserted::Existing(r));
                    }
                    // Another worker is still publishing this flow and may yet withdraw
                    // it (its backend-side key taken): not a flow to join. Look again.
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                    continue;
                }
            }
            let idx = self.pop_free().ok_or(InsertError::Full)?;
            let (meta, words) = self.write_entry(idx, init, now);
            self.free[my_shard()].live.fetch_add(1, Relaxed);
            match self.publish(&fk, fh, idx, gen_of(meta), Direction::Forward) {
                Publish::Done(pos, fv) => {
                    if init.reverse {
                        let rk = init.reverse_key();
                        match self.publish(
                            &rk,
                            self.hash(&rk),
                            idx,
                            gen_of(meta),
                            Direction::Reverse,
                        ) {
                            Publish::Done(..) => {}
                            other => {
                                self.unpublish(pos, fv);
                                self.release(idx, meta);
                                match other {
                                    Publish::Full => return Err(InsertError::Full),
                                    Publish::Raced => return Err(InsertError::Conflict),
                                    _ => continue,
                                }
                            }
                        }
                    }
                    // The entry's words are `init`'s and stay so; its state may already
                    // have moved (another worker saw the flow): the meta word says.
                    let meta = self.commit(idx, meta);
                    let times = ((now as u64) << 32) | now as u64;
                    return Ok(Inserted::New(FlowRef::of(
                        idx,
                        meta,
                        Direction::Forward,
                        words,
                        times,
                    )));
                }
                Publish::Full => {
                    self.release(idx, meta);
                    return Err(InsertError::Full);
                }
                Publish::Raced | Publish::Busy => {
                    self.release(idx, meta);
                }
            }
        }
        Err(InsertError::Contended)
    }

    /// Writes a fresh entry (exclusively ours: just popped) and returns its meta word,
    /// marked PENDING (the caller publishes the flow), and its flow words. Inlined: its
    /// result returned through memory was read back wider than it was written (a
    /// store-forwarding stall, 3% of a new flow's cycles).
    #[inline(always)]
    fn write_entry(&self, idx: u32, f: &FlowInit<A>, now: u32) -> (u64, A::Words) {
        let e = &self.entries[idx as usize];
        let g = gen_of(A::meta(e).load(Relaxed));
        let odd = g.wrapping_add(1) | 1;
        A::meta(e).store((odd as u64) << 32, Relaxed);
        fence(Release);
        // The flow's words Relaxed: the seqlock orders them.
        let words = A::words(f);
        A::store_words(e, &words);
        store_hints(A::seq_hints(e), f);
        let meta = layout::meta(f, odd.wrapping_add(1));
        A::times(e).store(((now as u64) << 32) | now as u64, Relaxed);
        A::meta(e).store(meta, Release);
        (meta, words)
    }

    /// Clears PENDING once every slot of the flow is published. Nobody else can free
    /// the entry while it is pending, so the generation cannot change under us.
    fn commit(&self, idx: u32, meta: u64) -> u64 {
        let e = &self.entries[idx as usize];
        let mut cur = meta;
        loop {
            match A::meta(e).compare_exchange_weak(cur, cur & !PENDING, AcqRel, Acquire) {
                Ok(_) => return cur & !PENDING,
                Err(c) => cur = c,
            }
        }
    }

    /// Publishes a slot for `k` -> `idx`, then checks no other slot holds the same key:
    /// `Raced` if one does (we withdrew ours), `Busy` if the check could not settle
    /// (an entry in the buckets is being written or removed right now).
    fn publish(&self, k: &FlowKey<A>, h: FlowHash, idx: u32, gen: u32, dir: Direction) -> Publish {
        let (sig, b1, b2) = (h.sig, h.primary, h.alternate);
        let v = slot_value(sig, gen, dir, idx);
        // Power of two choices: fill the emptier bucket first. Lookups scan both, so
        // placement is free to choose; first-fit overflowed ~6% of tables filled to
        // capacity, the emptier-first rule keeps buckets balanced.
        let used = |b: usize| {
            self.slots[b * BUCKET..(b + 1) * BUCKET]
                .iter()
                .filter(|s| s.load(Relaxed) != 0)
                .count()
        };
        let order = if used(b2) < used(b1) {
            [b2, b1]
        } else {
            [b1, b2]
        };
        let mut placed = None;
        'outer: for b in order {
            for pos in b * BUCKET..(b + 1) * BUCKET {
                if self.slots[pos].load(Relaxed) == 0
                    && self.slots[pos]
                        .compare_exchange(0, v, SeqCst, Relaxed)
                        .is_ok()
                {
                    placed = Some(pos);
                    break 'outer;
                }
            }
        }
        let Some(pos) = placed else {
            return Publish::Full;
        };
        // Rescan: a racing insert of the same key may have published elsewhere.
        for _ in 0..MAX_READ_RETRIES {
            match self.scan(k, h, Some(pos)) {
                Scan::Missing => return Publish::Done(pos, v),
                Scan::Found(..) => {
                    self.unpublish(pos, v);
                    return Publish::Raced;
                }
                Scan::Retry => std::hint::spin_loop(),
            }
        }
        self.unpublish(pos, v);
        Publish::Busy
    }

    fn unpublish(&self, pos: usize, v: u64) {
        let _ = self.slots[pos].compare_exchange(v, 0, SeqCst, Relaxed);
    }

    /// Takes back an entry whose insert failed. Unless a concurrent remover already took
    /// it (it was briefly visible), mark it free and push it on the free stack: the CAS
    /// makes exactly one of us free it.
    fn release(&self, idx: u32, meta: u64) {
        let e = &self.entries[idx as usize];
        let free = (gen_of(meta).wrapping_add(2) as u64) << 32;
        let mut cur = A::meta(e).load(Acquire);
        // Another worker may have changed the state meanwhile (same generation): still ours.
        while gen_of(cur) == gen_of(meta) && state_of(cur) != FlowState::Free {
            match A::meta(e).compare_exchange(cur, free, SeqCst, Acquire) {
                Ok(_) => {
                    self.free[my_shard()].live.fetch_sub(1, Relaxed);
                    self.push_free(idx);
                    return;
                }
                Err(c) => cur = c,
            }
        }
    }

    /// Applies a TCP state transition computed by the caller. Writes only on change and
    /// only if the flow is still the one `r` refers to. Returns the state now in force.
    #[inline]
    pub fn set_state(&self, r: &mut FlowRef<A>, new: FlowState) -> Option<FlowState> {
        if new == r.state() {
            return Some(new);
        }
        let e = &self.entries[r.idx as usize];
        let want = with_state(r.meta, new);
        match A::meta(e).compare_exchange(r.meta, want, AcqRel, Acquire) {
            Ok(_) => {
                r.meta = want;
                Some(new)
            }
            Err(cur) if gen_of(cur) == gen_of(r.meta) && state_of(cur) != FlowState::Free => {
                // Another worker changed the state first; take theirs.
                r.meta = cur;
                None
            }
            Err(_) => None,
        }
    }

    /// Stores `now` as the flow's last-seen time if it moved by a second or more.
    #[inline(always)]
    pub fn touch(&self, r: &FlowRef<A>, now: u32) {
        if now.wrapping_sub(r.last_seen()) >= 1 {
            let e = &self.entries[r.idx as usize];
            let t = A::times(e).load(Relaxed);
            if ((t >> 32) as u32) < now && gen_of(A::meta(e).load(Relaxed)) == gen_of(r.meta) {
                A::times(e).store(((now as u64) << 32) | (t & 0xffff_ffff), Relaxed);
            }
        }
    }

    /// Where the sequence numbers of one side of a TCP flow stand (`Forward`: the
    /// client's, `Reverse`: the backend's): the end of a segment seen recently, within
    /// [`SEQ_HINT_STEP`] of the newest (0: not known yet). It moves only when a segment
    /// ends more than a step away, so a flow's entry is written about once per 256 KiB,
    /// not per packet. A reset is believed only near it (see [`seq_plausible`]).
    #[inline(always)]
    pub fn seq_hint(&self, r: &FlowRef<A>, side: Direction) -> u32 {
        A::seq_hints(&self.entries[r.idx as usize])[side as usize].load(Relaxed)
    }

    /// Moves a side's hint to `end` (a segment's end) when it is unknown or more than a
    /// step away; returns the hint in force.
    #[inline(always)]
    pub fn advance_seq_hint(&self, r: &FlowRef<A>, side: Direction, end: u32) -> u32 {
        let hint = &A::seq_hints(&self.entries[r.idx as usize])[side as usize];
        let h = hint.load(Relaxed);
        if h == 0 || (end.wrapping_sub(h) as i32).unsigned_abs() > SEQ_HINT_STEP {
            // A stale `r` (the entry reused meanwhile) would move another flow's hint:
            // checked as `touch` does; the race left is harmless (one reset refused).
            if gen_of(A::meta(&self.entries[r.idx as usize]).load(Relaxed)) == gen_of(r.meta) {
                hint.store(end, Relaxed);
            }
            return end;
        }
        h
    }

    /// A SYN proxy flow whose backend answered: its sequence offset replaces the cookie
    /// in `seq_base`, then its state becomes `new` (so a reader that sees the new state
    /// sees the offset). Returns the state now in force, as [`FlowTable::set_state`].
    pub fn set_synproxy_offset(
        &self,
        r: &mut FlowRef<A>,
        offset: u32,
        new: FlowState,
    ) -> Option<FlowState> {
        let e = &self.entries[r.idx as usize];
        if gen_of(A::meta(e).load(Acquire)) != gen_of(r.meta) {
            return None;
        }
        A::seq_base(e).store(offset, Relaxed);
        let s = self.set_state(r, new);
        if s == Some(new) {
            A::set_seq_base(&mut r.words, offset);
        }
        s
    }

    /// Removes the flow `r` refers to. Returns its last state if this call removed it
    /// (exactly one caller wins), None if it was already gone.
    pub fn remove(&self, r: &FlowRef<A>) -> Option<FlowInfo<A>> {
        self.remove_idx(r.idx, gen_of(r.meta))
    }

    /// Removes entry `idx` if it still holds generation `want_gen` (the flow the caller saw).
    fn remove_idx(&self, idx: u32, want_gen: u32) -> Option<FlowInfo<A>> {
        let e = &self.entries[idx as usize];
        loop {
            let m = A::meta(e).load(Acquire);
            let g = gen_of(m);
            if g & 1 == 1 || m & PENDING != 0 || state_of(m) == FlowState::Free || want_gen != g {
                return None;
            }
            let (_, info) = self.read(idx)?;
            let dying = (g.wrapping_add(1) as u64) << 32;
            if A::meta(e)
                .compare_exchange(m, dying, SeqCst, Relaxed)
                .is_err()
            {
                continue; // state changed meanwhile: re-read
            }
            // We own the removal. Clear the index slots, then free the entry.
            self.clear_slot(&info.init.forward_key(), idx, g, Direction::Forward);
            if info.init.reverse {
                self.clear_slot(&info.init.reverse_key(), idx, g, Direction::Reverse);
            }
            A::meta(e).store((g.wrapping_add(2) as u64) << 32, Release);
            self.free[my_shard()].live.fetch_sub(1, Relaxed);
            self.push_free(idx);
            return Some(FlowInfo {
                state: state_of(m),
                ..info
            });
        }
    }

    fn clear_slot(&self, k: &FlowKey<A>, idx: u32, gen: u32, dir: Direction) {
        let h = self.hash(k);
        let want = slot_value(h.sig, gen, dir, idx);
        for b in [h.primary, h.alternate] {
            for pos in b * BUCKET..(b + 1) * BUCKET {
                if self.slots[pos].load(SeqCst) == want {
                    let _ = self.slots[pos].compare_exchange(want, 0, SeqCst, Relaxed);
                    return;
                }
            }
        }
    }

    /// Makes room under pressure (conntrack's early drop): of the flows the two buckets of
    /// hash `h` point to, removes the least recently seen one that never finished its
    /// handshake or is closing (syn_sent, syn_recv, closing, closed); established and UDP
    /// flows are never dropped. Returns the dropped flow (the caller releases its
    /// connection count), None if no such flow is there.
    pub fn early_drop(&self, h: FlowHash) -> Option<FlowInfo<A>> {
        let mut victim: Option<(u32, u32, u32)> = None; // (idx, gen, last_seen)
        for b in [h.primary, h.alternate] {
            for pos in b * BUCKET..(b + 1) * BUCKET {
                let v = self.slots[pos].load(Acquire);
                if v == 0 {
                    continue;
                }
                let idx = (v & IDX_MASK) as u32;
                let Some((meta, info)) = self.read(idx) else {
                    continue;
                };
                let half_open = matches!(
                    info.state,
                    FlowState::SynSent
                        | FlowState::SynRecv
                        | FlowState::Closing
                        | FlowState::Closed
                );
                if half_open && victim.is_none_or(|(_, _, seen)| info.last_seen < seen) {
                    victim = Some((idx, gen_of(meta), info.last_seen));
                }
            }
        }
        let (idx, gen, _) = victim?;
        self.remove_idx(idx, gen)
    }

    /// Takes a free entry: from this thread's shard, else from the shard this thread
    /// last found one in, else from the next one that has one (remembered). A worker's
    /// own shard runs dry once it has made its share of flows, while the expiry sweep
    /// frees into the management thread's: without the memory each new flow would look
    /// through up to 63 empty shards.
    fn pop_free(&self) -> Option<u32> {
        thread_local!(static LAST: Cell<usize> = const { Cell::new(0) });
        let mine = my_shard();
        if let Some(idx) = self.pop_shard(&self.free[mine]) {
            return Some(idx);
        }
        let last = LAST.with(Cell::get);
        (0..FREE_SHARDS).find_map(|i| {
            let at = (last + i) % FREE_SHARDS;
            let idx = self.pop_shard(&self.free[at])?;
            LAST.with(|l| l.set(at));
            Some(idx)
        })
    }

    fn pop_shard(&self, shard: &Shard) -> Option<u32> {
        let mut head = shard.head.load(Acquire);
        loop {
            let idx = head as u32;
            if idx == NIL {
                return None;
            }
            let next = A::next(&self.entries[idx as usize]).load(Relaxed);
            let new = (((head >> 32) + 1) << 32) | next as u64;
            match shard.head.compare_exchange_weak(head, new, AcqRel, Acquire) {
                Ok(_) => {
                    // The next pop reads, and the next insert writes, that entry: a
                    // cache miss taken now, in the background.
                    if let Some(e) = self.entries.get(next as usize) {
                        prefetch(e);
                    }
                    return Some(idx);
                }
                Err(h) => head = h,
            }
        }
    }

    /// Gives an entry back, to this thread's shard.
    fn push_free(&self, idx: u32) {
        let shard = &self.free[my_shard()];
        let mut head = shard.head.load(Acquire);
        loop {
            A::next(&self.entries[idx as usize]).store(head as u32, Relaxed);
            let new = (((head >> 32) + 1) << 32) | idx as u64;
            match shard.head.compare_exchange_weak(head, new, AcqRel, Acquire) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Expires flows idle past their state's timeout, examining at most `budget` entries
    /// from where the last sweep stopped. Calls `on_expire` for each removed flow (the
    /// caller releases the backend's connection count). Returns how many it removed.
    pub fn sweep(
        &self,
        now: u32,
        t: &Timeouts,
        budget: usize,
        mut on_expire: impl FnMut(&FlowInfo<A>),
    ) -> usize {
        let n = self.entries.len();
        let cursor = self.sweep_cursor.fetch_add(budget, Relaxed);
        let start = cursor % n;
        let mut removed = 0;
        let mut half_open = 0;
        for i in 0..budget.min(n) {
            let idx = ((start + i) % n) as u32;
            if idx == 0 && cursor + i > 0 {
                // A full pass ended: its count is the table's.
                let pass = self.half_open_pass.swap(0, Relaxed);
                self.half_open.store(pass + half_open, Relaxed);
                half_open = 0;
            }
            let Some((meta, info)) = self.read(idx) else {
                continue;
            };
            let idle = now.saturating_sub(info.last_seen);
            if idle > t.for_state(info.state) {
                if let Some(gone) = self.remove_idx(idx, gen_of(meta)) {
                    on_expire(&gone);
                    removed += 1;
                }
            } else if matches!(info.state, FlowState::SynSent | FlowState::SynRecv) {
                half_open += 1;
            }
        }
        self.half_open_pass.fetch_add(half_open, Relaxed);
        removed
    }

    /// Half-open flows (SYN seen, handshake not finished) at the sweep's last full pass
    /// over the table ([`FlowTable::sweep`]; a pass takes `capacity / budget` calls).
    pub fn half_open(&self) -> usize {
        self.half_open.load(Relaxed)
    }

    /// Calls `f` for every live flow (management plane; not a consistent snapshot of the
    /// whole table, but each flow is read consistently).
    pub fn for_each(&self, mut f: impl FnMut(&FlowInfo<A>)) {
        for idx in 0..self.entries.len() as u32 {
            if let Some((_, info)) = self.read(idx) {
                f(&info);
            }
        }
    }

    /// Removes every flow for which `pred` holds; calls `on_remove` for each.
    pub fn remove_where(
        &self,
        pred: impl Fn(&FlowInfo<A>) -> bool,
        mut on_remove: impl FnMut(&FlowInfo<A>),
    ) -> usize {
        let mut n = 0;
        for idx in 0..self.entries.len() as u32 {
            if let Some((meta, info)) = self.read(idx) {
                if pred(&info) {
                    if let Some(gone) = self.remove_idx(idx, gen_of(meta)) {
                        on_remove(&gone);
                        n += 1;
                    }
                }
            }
        }
        n
    }
}

enum Scan<A: Family> {
    Found(FlowRef<A>),
    Missing,
    Retry,
}

/// What one slot holds for a lookup.
enum Slot<A: Family> {
    Found(FlowRef<A>),
    /// Its entry is being written or freed: look again.
    Busy,
    /// Another key, or nothing.
    Other,
}

enum Publish {
    Done(usize, u64),
    Full,
    Raced,
    Busy,
}

/// Prefetches every cache line of `*p` (one for a slot or an IPv4 entry, two for an
/// IPv6 entry).
#[inline(always)]
fn prefetch<T>(p: &T) {
    let base = p as *const T as *const i8;
    for off in (0..core::mem::size_of::<T>().max(1)).step_by(64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetch is a hint and never faults, whatever the address; the
        // addresses are inside `*p` anyway (`wrapping_add` computes them without UB).
        unsafe {
            core::arch::x86_64::_mm_prefetch(
                base.wrapping_add(off),
                core::arch::x86_64::_MM_HINT_T0,
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = base.wrapping_add(off);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(client_port: u16) -> FlowInit {
        FlowInit {
            protocol: 6,
            client: Ipv4Addr::new(192, 0, 2, 1),
            client_port,
            vip: Ipv4Addr::new(203, 0, 113, 10),
            vport: 80,
            backend: Ipv4Addr::new(10, 1, 0, 10),
            backend_port: 8080,
            service: 3,
            backend_id: 7,
            mode: Forward::Nat,
            reverse: true,
            state: FlowState::SynSent,
            local: crate::wire::IpAddress::UNSPECIFIED,
            local_port: 0,
            proxy: false,
            synproxy: false,
            seq_base: 0,
            client_if: ANY_PORT,
            backend_if: ANY_PORT,
        }
    }

    fn new_ref(r: Result<Inserted, InsertError>) -> FlowRef {
        match r {
            Ok(Inserted::New(r)) => r,
            other => panic!("expected a new flow, got {other:?}"),
        }
    }

    #[test]
    fn nat_flow_found_from_both_directions() {
        let t = FlowTable::new(16);
        let f = nat(40000);
        let r = new_ref(t.insert(&f, 100));
        assert_eq!(t.len(), 1);
        let fwd = t.lookup(&f.forward_key()).unwrap();
        assert_eq!((fwd.idx, fwd.dir), (r.idx, Direction::Forward));
        assert_eq!(fwd.init(), f);
        assert_eq!((fwd.info().created, fwd.last_seen()), (100, 100));
        let rev = t.lookup(&f.reverse_key()).unwrap();
        assert_eq!((rev.idx, rev.dir), (r.idx, Direction::Reverse));
        // Other tuples miss.
        assert!(t.lookup(&nat(40001).forward_key()).is_none());
        let mut k = f.forward_key();
        k.protocol = 17;
        assert!(t.lookup(&k).is_none());
    }

    #[test]
    fn dr_flow_only_client_side() {
        let t = FlowTable::new(16);
        let f = FlowInit {
            reverse: false,
            mode: Forward::Dr,
            ..nat(1)
        };
        new_ref(t.insert(&f, 0));
        assert!(t.lookup(&f.forward_key()).is_some());
        assert!(t.lookup(&f.reverse_key()).is_none());
    }

    #[test]
    fn second_insert_returns_existing() {
        let t = FlowTable::new(16);
        let f = nat(1);
        let a = new_ref(t.insert(&f, 0));
        let other_backend = FlowInit { backend_id: 9, ..f };
        match t.insert(&other_backend, 1) {
            Ok(Inserted::Existing(r)) => {
                assert_eq!(r.idx, a.idx);
                assert_eq!(r.init().backend_id, 7, "the first backend choice stands");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn full_table_fails_fast_and_never_evicts() {
        let t = FlowTable::new(4);
        for p in 0..4 {
            new_ref(t.insert(&nat(p), 0));
        }
        assert_eq!(t.insert(&nat(99), 0), Err(InsertError::Full));
        for p in 0..4 {
            assert!(t.lookup(&nat(p).forward_key()).is_some());
        }
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn reverse_key_conflict_is_reported() {
        let t = FlowTable::new(8);
        let a = nat(5);
        new_ref(t.insert(&a, 0));
        // Same client ip:port to another VIP, NATed to the same backend ip:port.
        let b = FlowInit {
            vip: Ipv4Addr::new(203, 0, 113, 11),
            ..a
        };
        assert_eq!(t.insert(&b, 0), Err(InsertError::Conflict));
        assert_eq!(t.len(), 1);
        assert!(t.lookup(&b.forward_key()).is_none());
    }

    #[test]
    fn remove_once_and_reuse() {
        let t = FlowTable::new(2);
        let f = nat(1);
        let r = new_ref(t.insert(&f, 0));
        assert!(t.remove(&r).is_some());
        assert!(t.remove(&r).is_none(), "a second remove finds nothing");
        assert!(t.lookup(&f.forward_key()).is_none());
        assert!(t.lookup(&f.reverse_key()).is_none());
        assert_eq!(t.len(), 0);
        // The entry is reused; the stale handle cannot touch the new flow.
        let g = nat(2);
        let mut stale = r;
        let r2 = new_ref(t.insert(&g, 5));
        new_ref(t.insert(&nat(3), 5));
        assert_eq!(t.insert(&nat(4), 5), Err(InsertError::Full));
        assert!(t.set_state(&mut stale, FlowState::Closed).is_none());
        assert!(t.remove(&stale).is_none());
        assert_eq!(
            t.lookup(&g.forward_key()).unwrap().state(),
            FlowState::SynSent
        );
        let _ = r2;
    }

    #[test]
    fn state_changes_only_on_transition() {
        let t = FlowTable::new(4);
        let mut r = new_ref(t.insert(&nat(1), 0));
        assert_eq!(
            t.set_state(&mut r, FlowState::SynSent),
            Some(FlowState::SynSent)
        );
        assert_eq!(
            t.set_state(&mut r, FlowState::Established),
            Some(FlowState::Established)
        );
        assert_eq!(
            t.lookup(&nat(1).reverse_key()).unwrap().state(),
            FlowState::Established
        );
        // A handle with an old view loses the race and learns the current state.
        let mut old = r;
        old.meta = with_state(old.meta, FlowState::SynSent);
        assert_eq!(t.set_state(&mut old, FlowState::Closing), None);
        assert_eq!(old.state(), FlowState::Established);
    }

    #[test]
    fn touch_at_most_once_a_second() {
        let t = FlowTable::new(4);
        let r = new_ref(t.insert(&nat(1), 10));
        t.touch(&r, 10);
        assert_eq!(t.lookup(&nat(1).forward_key()).unwrap().last_seen(), 10);
        t.touch(&r, 12);
        assert_eq!(t.lookup(&nat(1).forward_key()).unwrap().last_seen(), 12);
    }

    #[test]
    fn sweep_expires_by_state_timeout() {
        let t = FlowTable::new(8);
        let to = Timeouts {
            tcp_syn: 5,
            tcp_established: 50,
            tcp_closing: 10,
            udp: 20,
        };
        let syn = new_ref(t.insert(&nat(1), 0));
        let mut est = new_ref(t.insert(&nat(2), 0));
        t.set_state(&mut est, FlowState::Established);
        let udp = FlowInit {
            protocol: 17,
            state: FlowState::Udp,
            ..nat(3)
        };
        new_ref(t.insert(&udp, 0));
        let mut expired = Vec::new();
        assert_eq!(
            t.sweep(5, &to, 8, |f| expired.push(f.init.client_port)),
            0,
            "not past 5 s yet"
        );
        assert_eq!(t.sweep(6, &to, 8, |f| expired.push(f.init.client_port)), 1);
        assert_eq!(expired, vec![1]);
        assert!(t.lookup(&nat(1).forward_key()).is_none());
        let _ = syn;
        assert_eq!(t.sweep(21, &to, 8, |f| expired.push(f.init.client_port)), 1);
        assert_eq!(t.sweep(51, &to, 8, |f| expired.push(f.init.client_port)), 1);
        assert_eq!(expired, vec![1, 3, 2]);
        assert!(t.is_empty());
    }

    #[test]
    fn sweep_budget_is_incremental() {
        let t = FlowTable::new(100);
        for p in 0..100 {
            new_ref(t.insert(&nat(p), 0));
        }
        let to = Timeouts {
            tcp_syn: 1,
            ..Default::default()
        };
        let mut n = 0;
        for _ in 0..10 {
            let got = t.sweep(100, &to, 10, |_| {});
            assert!(got <= 10);
            n += got;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn sweep_counts_half_open_flows_per_pass() {
        let t = FlowTable::new(16);
        for p in 0..5 {
            let state = if p < 3 {
                FlowState::SynSent
            } else {
                FlowState::Established
            };
            new_ref(t.insert(&FlowInit { state, ..nat(p) }, 0));
        }
        let to = Timeouts::default();
        assert_eq!(t.half_open(), 0, "no pass yet");
        t.sweep(1, &to, 8, |_| {});
        t.sweep(1, &to, 8, |_| {});
        assert_eq!(t.half_open(), 0, "the pass ends when the next one starts");
        t.sweep(1, &to, 8, |_| {});
        assert_eq!(t.half_open(), 3);
    }

    #[test]
    fn remove_where_and_for_each() {
        let t = FlowTable::new(32);
        for p in 0..10 {
            new_ref(t.insert(
                &FlowInit {
                    backend_id: (p % 2) as u32,
                    ..nat(p)
                },
                0,
            ));
        }
        let mut seen = 0;
        t.for_each(|_| seen += 1);
        assert_eq!(seen, 10);
        let mut gone = Vec::new();
        assert_eq!(
            t.remove_where(
                |f| f.init.backend_id == 1,
                |f| gone.push(f.init.client_port)
            ),
            5
        );
        gone.sort();
        assert_eq!(gone, vec![1, 3, 5, 7, 9]);
        assert_eq!(t.len(), 5);
        for p in 0..10 {
            assert_eq!(t.lookup(&nat(p).forward_key()).is_some(), p % 2 == 0);
            assert_eq!(t.lookup(&nat(p).reverse_key()).is_some(), p % 2 == 0);
        }
    }

    #[test]
    fn burst_lookup_matches_single() {
        let t = FlowTable::new(1000);
        let keys: Vec<FlowKey> = (0..100).map(|p| nat(p).forward_key()).collect();
        for p in (0..100).step_by(3) {
            new_ref(t.insert(&nat(p), 0));
        }
        let mut out = vec![None; 100];
        t.lookup_burst(&keys, &mut out);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.is_some(), i % 3 == 0);
            assert_eq!(o.map(|r| r.idx), t.lookup(&keys[i]).map(|r| r.idx));
        }
    }

    /// Regression: with first-fit placement ~6% of tables could not hold their own
    /// capacity (both buckets of a key full); every table must accept exactly capacity.
    #[test]
    fn fills_to_capacity() {
        for round in 0..100u32 {
            let t = FlowTable::new(3000);
            for p in 0..3000u32 {
                let f = FlowInit {
                    client: Ipv4Addr::from_bits(0xc000_0200 + round),
                    ..nat(p as u16)
                };
                assert!(
                    matches!(t.insert(&f, 0), Ok(Inserted::New(_))),
                    "round {round}: flow {p} refused"
                );
            }
            assert_eq!(
                t.insert(
                    &FlowInit {
                        client: Ipv4Addr::new(1, 1, 1, 1),
                        ..nat(1)
                    },
                    0
                ),
                Err(InsertError::Full)
            );
        }
    }

    #[test]
    fn layout_pack_unpack_round_trip() {
        for (mode, state, reverse) in [
            (Forward::Nat, FlowState::SynSent, true),
            (Forward::Dr, FlowState::Established, false),
            (Forward::Tun, FlowState::Udp, false),
        ] {
            let f = FlowInit {
                protocol: 17,
                client: Ipv4Addr::new(192, 0, 2, 200),
                client_port: 65535,
                vip: Ipv4Addr::new(203, 0, 113, 10),
                vport: 53,
                backend: Ipv4Addr::new(10, 1, 0, 255),
                backend_port: 5353,
                service: 1023,
                backend_id: 4095,
                mode,
                reverse,
                state,
                local: crate::wire::IpAddress::UNSPECIFIED,
                local_port: 0,
                proxy: false,
                synproxy: false,
                seq_base: 0,
                client_if: ANY_PORT,
                backend_if: ANY_PORT,
            };
            let w = layout::pack(&f, 0xfffe);
            assert_eq!(gen_of(w.meta), 0xfffe);
            assert_ne!(w.meta & PENDING, 0);
            let words = (w.addrs, w.ports, w.backend, w.local, 0);
            assert_eq!(words, Ipv4Addr::words(&f));
            let r = FlowRef::<Ipv4Addr>::of(1, w.meta, Direction::Forward, words, 0);
            assert_eq!(r.init(), f);
        }
    }

    proptest::proptest! {
        /// The IPv4 lookup compares keys on the stored words: it must agree with the
        /// comparison on the decoded flow, for the flow's own keys and for keys that differ
        /// from them in any field.
        #[test]
        fn word_key_match_agrees_with_decoded(
            addrs in proptest::array::uniform4(proptest::prelude::any::<u32>()),
            ports in proptest::array::uniform4(proptest::prelude::any::<u16>()),
            protocol in proptest::prelude::any::<u8>(),
            mode in 0..4u8, ids in proptest::prelude::any::<(u32, u16)>(),
            field in 0..6usize, flip in 1..u32::MAX,
        ) {
            let f = FlowInit {
                protocol,
                client: Ipv4Addr::from_bits(addrs[0]),
                client_port: ports[0],
                vip: Ipv4Addr::from_bits(addrs[1]),
                vport: ports[1],
                backend: Ipv4Addr::from_bits(addrs[2]),
                backend_port: ports[2],
                local: Ipv4Addr::from_bits(addrs[3]),
                local_port: ports[3],
                service: ids.1,
                backend_id: ids.0,
                mode: Forward::from_u8(mode).unwrap(),
                ..nat(1)
            };
            let (meta, w) = (layout::meta(&f, 2), Ipv4Addr::words(&f));
            for dir in [Direction::Forward, Direction::Reverse] {
                let own = match dir {
                    Direction::Forward => f.forward_key(),
                    Direction::Reverse => f.reverse_key(),
                };
                let mut other = own;
                match field {
                    0 => other.protocol ^= flip as u8 | 1,
                    1 => other.src = Ipv4Addr::from_bits(other.src.to_bits() ^ flip),
                    2 => other.dst = Ipv4Addr::from_bits(other.dst.to_bits() ^ flip),
                    3 => other.src_port ^= flip as u16 | 1,
                    4 => other.dst_port ^= flip as u16 | 1,
                    _ => other = FlowKey { src: own.dst, dst: own.src, ..own },
                }
                proptest::prop_assert!(Ipv4Addr::key_matches(meta, &w, dir, &own));
                proptest::prop_assert_eq!(
                    Ipv4Addr::key_matches(meta, &w, dir, &other),
                    other == own,
                    "{:?} {:?}", dir, other
                );
            }
        }
    }

    /// A key the prefetch pass found absent is not looked up again; if another worker
    /// inserts it meanwhile, the insert that follows the miss finds that flow.
    #[test]
    fn absent_key_inserted_meanwhile_is_joined() {
        let t = FlowTable::new(64);
        let (f, mut h) = (nat(1), t.hash(&nat(1).forward_key()));
        t.prefetch_entries(&mut h);
        assert!(h.absent());
        let theirs = new_ref(t.insert(&FlowInit { backend_id: 9, ..f }, 5));
        assert_eq!(t.lookup_hashed(&f.forward_key(), h), None, "not read again");
        match t.insert_missed(&f, 6, h) {
            Ok(Inserted::Existing(r)) => {
                assert_eq!(r, theirs);
                assert_eq!(r.backend_id(), 9, "the first choice stands");
            }
            other => panic!("expected the other worker's flow, got {other:?}"),
        }
        assert_eq!(t.len(), 1);
        let mut h = t.hash(&f.forward_key());
        t.prefetch_entries(&mut h);
        assert!(!h.absent());
        assert_eq!(t.lookup_hashed(&f.forward_key(), h), Some(theirs));
    }

    /// Under pressure a half-open flow makes room; an established one never does.
    #[test]
    fn early_drop_takes_half_open_flows_only() {
        let t = FlowTable::new(4);
        let mk = |p: u16, state| FlowInit { state, ..nat(p) };
        for p in 0..4 {
            t.insert(&mk(p, FlowState::Established), p as u32).unwrap();
        }
        let new = mk(100, FlowState::SynSent);
        assert!(matches!(t.insert(&new, 9), Err(InsertError::Full)));
        assert!(
            t.early_drop(t.hash(&new.forward_key())).is_none(),
            "established flows stay"
        );
        let t = FlowTable::new(4);
        for p in 0..4 {
            t.insert(&mk(p, FlowState::SynSent), p as u32).unwrap();
        }
        // The key's buckets point to at most these four: one of them goes, the oldest.
        let mut freed = None;
        for p in 100..200 {
            let k = mk(p, FlowState::SynSent);
            if let Some(g) = t.early_drop(t.hash(&k.forward_key())) {
                freed = Some((g, k));
                break;
            }
        }
        let (gone, k) = freed.expect("some key's buckets hold a half-open flow");
        assert_eq!(gone.state, FlowState::SynSent);
        assert_eq!(t.len(), 3);
        assert!(matches!(t.insert(&k, 10), Ok(Inserted::New(_))));
    }

    #[test]
    fn memory_per_flow() {
        assert_eq!(std::mem::size_of::<Entry4>(), 64);
        assert_eq!(std::mem::size_of::<Entry6>(), 128);
        assert_eq!(
            std::mem::size_of::<Entry4>(),
            64,
            "fnat's local word fits the line"
        );
        let t = FlowTable::new(1 << 16);
        assert_eq!(t.memory_bytes() / t.capacity(), BYTES_PER_FLOW);
        let t6 = FlowTable::<Ipv6Addr>::with_capacity(1 << 16);
        assert_eq!(t6.memory_bytes() / t6.capacity(), 128 + SLOTS_PER_FLOW * 8);
    }

    fn nat6(client_port: u16) -> FlowInit<Ipv6Addr> {
        FlowInit {
            protocol: 6,
            client: "2001:db8::1".parse().unwrap(),
            client_port,
            vip: "2001:db8:1::10".parse().unwrap(),
            vport: 80,
            backend: "fd00:1::11".parse().unwrap(),
            backend_port: 8080,
            service: 4,
            backend_id: 0xdead_beef,
            mode: Forward::Nat,
            reverse: true,
            state: FlowState::SynSent,
            local: crate::wire::IpAddress::UNSPECIFIED,
            local_port: 0,
            proxy: false,
            synproxy: false,
            seq_base: 0,
            client_if: ANY_PORT,
            backend_if: ANY_PORT,
        }
    }

    /// The IPv6 table: both directions of a nat flow, every field back as written,
    /// addresses that differ only in their low or high bits kept apart, removal, expiry.
    #[test]
    fn ipv6_flows() {
        let t = FlowTable::<Ipv6Addr>::with_capacity(64);
        let f = nat6(40000);
        let Ok(Inserted::New(r)) = t.insert(&f, 5) else {
            panic!("insert")
        };
        assert_eq!(t.lookup(&f.forward_key()).unwrap().init(), f);
        let rev = t.lookup(&f.reverse_key()).unwrap();
        assert_eq!((rev.idx, rev.dir), (r.idx, Direction::Reverse));
        for other in [
            FlowInit {
                client: "2001:db8::2".parse().unwrap(),
                ..f
            },
            FlowInit {
                client: "2001:db9::1".parse().unwrap(),
                ..f
            },
            FlowInit {
                client_port: 40001,
                ..f
            },
        ] {
            assert!(t.lookup(&other.forward_key()).is_none(), "{other:?}");
        }
        let g = nat6(40001);
        t.insert(&g, 5).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(&r).map(|i| i.init), Some(f));
        assert!(t.lookup(&f.forward_key()).is_none() && t.lookup(&f.reverse_key()).is_none());
        let timeouts = Timeouts {
            tcp_syn: 10,
            ..Timeouts::default()
        };
        assert_eq!(t.sweep(100, &timeouts, 64, |_| {}), 1);
        assert!(t.is_empty());
    }
}
