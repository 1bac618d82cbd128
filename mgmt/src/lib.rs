//! The ferrovs management plane: the typed configuration ([`config`]), runtime state
//! kept beside it ([`runtime`]), snapshot building from both ([`build`]), the daemon
//! ([`daemon`]), the REST API ([`api`]) and the CLI's client ([`client`]). The dataplane never depends on this crate;
//! this crate reaches the dataplane only through building and publishing snapshots,
//! reading counters, and reading/expiring flows.
pub mod api;
pub mod build;
pub mod client;
pub mod config;
pub mod daemon;
pub mod keepalived;
pub mod model;
pub mod runtime;
