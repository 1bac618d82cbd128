//! The ferrovs management plane: configuration ([`config`]), snapshot building
//! ([`build`]) and the daemon ([`daemon`]). The dataplane never depends on this crate;
//! this crate reaches the dataplane only through building and publishing snapshots,
//! reading counters, and reading/expiring flows.
pub mod api;
pub mod build;
pub mod client;
pub mod config;
pub mod daemon;
pub mod runtime;
