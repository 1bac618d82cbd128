//! Connection tracking: the flow table shared by all workers.
//!
//! See [`table`] for the lock-free protocol and [`state`] for TCP state tracking.
pub mod frag;
pub mod state;
pub mod table;

pub use state::{FlowState, Timeouts};
pub use table::{
    seq_plausible, Direction, FlowFields, FlowHash, FlowInfo, FlowInit, FlowKey, FlowRef,
    FlowTable, InsertError, Inserted, ANY_PORT, BYTES_PER_FLOW,
};
