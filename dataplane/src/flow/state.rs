//! TCP state tracking in the IPVS spirit, with per-state timeouts.
//!
//! Two rule sets, as IPVS has: `bidirectional` for NAT (the LB sees both directions)
//! and `input_only` for DR/TUN (only client -> server is seen). Only transitions write
//! to the shared flow entry; a packet that does not change the state writes nothing.
#![forbid(unsafe_code)]

crate::named_enum! {
    /// The state of a flow. `Free` (0) marks an unused table entry.
    pub enum FlowState {
        Free = "free",
        /// SYN seen from the client, handshake not finished.
        SynSent = "syn_sent",
        /// The server answered the SYN (NAT only: the LB sees the SYN-ACK).
        SynRecv = "syn_recv",
        Established = "established",
        /// A FIN was seen: the connection is closing.
        Closing = "closing",
        /// A RST was seen.
        Closed = "closed",
        /// UDP has one state.
        Udp = "udp",
    }
}

impl FlowState {
    /// ipvsadm counts ESTABLISHED as active, everything else as inactive.
    pub fn is_active(self) -> bool {
        self == FlowState::Established
    }
    /// A new SYN on a flow in this state is port reuse: end it and schedule afresh.
    pub fn reusable(self) -> bool {
        matches!(self, FlowState::Closing | FlowState::Closed)
    }

    /// Next state for NAT (both directions seen). `from_client` is the direction;
    /// flags are TCP flag bits (see `wire::TcpFlags`).
    pub fn bidirectional(self, from_client: bool, flags: u8) -> FlowState {
        let (syn, ack, fin, rst) = decode(flags);
        match self {
            FlowState::Udp | FlowState::Free => self,
            _ if rst => FlowState::Closed,
            _ if fin => FlowState::Closing,
            FlowState::SynSent if !from_client && syn && ack => FlowState::SynRecv,
            FlowState::SynRecv if from_client && ack && !syn => FlowState::Established,
            s => s,
        }
    }

    /// Next state for DR/TUN (only the client's direction seen), as IPVS's input-only
    /// table: the client's first ACK after its SYN establishes the flow.
    pub fn input_only(self, flags: u8) -> FlowState {
        let (syn, ack, fin, rst) = decode(flags);
        match self {
            FlowState::Udp | FlowState::Free => self,
            _ if rst => FlowState::Closed,
            _ if fin => FlowState::Closing,
            FlowState::SynSent | FlowState::SynRecv if ack && !syn => FlowState::Established,
            s => s,
        }
    }
}

/// (SYN, ACK, FIN, RST) of TCP flag bits.
#[inline(always)]
fn decode(flags: u8) -> (bool, bool, bool, bool) {
    use crate::wire::TcpFlags as F;
    (
        flags & F::SYN != 0,
        flags & F::ACK != 0,
        flags & F::FIN != 0,
        flags & F::RST != 0,
    )
}

/// Per-state timeouts in seconds (config `flows.timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn: u32,
    pub tcp_established: u32,
    pub tcp_closing: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn: 30,
            tcp_established: 900,
            tcp_closing: 120,
            udp: 300,
        }
    }
}

impl Timeouts {
    /// Seconds a flow in `s` lives without a packet. A RST-closed flow lingers at most
    /// 10 s (IPVS's CLOSE timeout), so port reuse after a reset finds no stale flow.
    pub fn for_state(&self, s: FlowState) -> u32 {
        match s {
            FlowState::Free => 0,
            FlowState::SynSent | FlowState::SynRecv => self.tcp_syn,
            FlowState::Established => self.tcp_established,
            FlowState::Closing => self.tcp_closing,
            FlowState::Closed => self.tcp_closing.min(10),
            FlowState::Udp => self.udp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FlowState::*;
    use super::*;
    use crate::wire::TcpFlags as F;
    const SYN: u8 = F::SYN;
    const SYNACK: u8 = F::SYN | F::ACK;
    const ACK: u8 = F::ACK;
    const FIN: u8 = F::FIN | F::ACK;
    const RST: u8 = F::RST;

    #[test]
    fn nat_handshake_and_close() {
        assert_eq!(SynSent.bidirectional(true, SYN), SynSent); // retransmitted SYN
        assert_eq!(SynSent.bidirectional(true, ACK), SynSent); // no SYN-ACK seen yet
        assert_eq!(SynSent.bidirectional(false, SYNACK), SynRecv);
        assert_eq!(SynRecv.bidirectional(false, SYNACK), SynRecv);
        assert_eq!(SynRecv.bidirectional(true, ACK), Established);
        assert_eq!(Established.bidirectional(true, ACK), Established);
        assert_eq!(Established.bidirectional(false, ACK | F::PSH), Established);
        assert_eq!(Established.bidirectional(false, FIN), Closing);
        assert_eq!(Established.bidirectional(true, FIN), Closing);
        assert_eq!(Closing.bidirectional(true, ACK), Closing);
        assert_eq!(Closing.bidirectional(true, RST), Closed);
        assert_eq!(Established.bidirectional(false, RST), Closed);
        assert_eq!(SynSent.bidirectional(false, RST), Closed);
        assert_eq!(Udp.bidirectional(true, RST), Udp);
    }

    #[test]
    fn input_only_rules() {
        assert_eq!(SynSent.input_only(SYN), SynSent);
        assert_eq!(SynSent.input_only(ACK), Established);
        assert_eq!(Established.input_only(ACK), Established);
        assert_eq!(Established.input_only(FIN), Closing);
        assert_eq!(SynSent.input_only(RST), Closed);
        assert_eq!(Closing.input_only(ACK), Closing);
        assert_eq!(Closing.input_only(RST), Closed);
    }

    #[test]
    fn reuse_and_activity() {
        assert!(Closing.reusable() && Closed.reusable());
        assert!(!Established.reusable() && !SynSent.reusable());
        assert!(Established.is_active() && !SynSent.is_active() && !Closing.is_active());
    }

    #[test]
    fn timeouts_per_state() {
        let t = Timeouts {
            tcp_syn: 1,
            tcp_established: 2,
            tcp_closing: 3,
            udp: 4,
        };
        assert_eq!(t.for_state(SynSent), 1);
        assert_eq!(t.for_state(SynRecv), 1);
        assert_eq!(t.for_state(Established), 2);
        assert_eq!(t.for_state(Closing), 3);
        assert_eq!(t.for_state(Closed), 3);
        assert_eq!(t.for_state(Udp), 4);
        assert_eq!(Timeouts::default().for_state(Closed), 10);
        for v in 0..=7 {
            assert_eq!(
                FlowState::from_u8(v).map(|s| s as u8),
                (v <= 6).then_some(v)
            );
        }
    }
}
