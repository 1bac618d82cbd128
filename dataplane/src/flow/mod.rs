//! Connection tracking: the flow table shared by all workers.
//!
//! See [`table`] for the lock-free protocol and [`state`] for TCP state tracking.
pub mod state;
pub mod table;

pub use state::{FlowState, Timeouts};
pub use table::{
    Direction, FlowHash, FlowInfo, FlowInit, FlowKey, FlowRef, FlowTable, InsertError, Inserted,
    BYTES_PER_FLOW,
};
