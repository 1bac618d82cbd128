//! Runtime state: what the snapshot is built from besides the operator's config (the
//! file plus API edits). It is never written into the config, and a reload or an API
//! write keeps it: the MACs the ports came up with, and each backend's health.
#![forbid(unsafe_code)]
use crate::config::Config;
use dataplane::wire::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A backend's identity across configs: service name, address, port.
pub type BackendKey = (String, Ipv4Addr, u16);

/// What health checking last decided about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Gets no new flows (as if its weight were 0) until it is up again.
    Down,
}

#[derive(Debug, Default)]
pub struct Runtime {
    /// Per port (config order): the MAC the device runs with.
    pub macs: Vec<MacAddr>,
    health: HashMap<BackendKey, Health>,
}

impl Runtime {
    pub fn new(macs: Vec<MacAddr>) -> Runtime {
        Runtime {
            macs,
            health: HashMap::new(),
        }
    }
    /// Records a health verdict; returns true if it changed (the snapshot must be rebuilt).
    pub fn set_health(&mut self, key: BackendKey, h: Health) -> bool {
        self.health.insert(key, h) != Some(h)
    }
    pub fn health(&self, key: &BackendKey) -> Option<Health> {
        self.health.get(key).copied()
    }
    /// False only for a backend health checking says is down.
    pub fn is_up(&self, key: &BackendKey) -> bool {
        self.health(key) != Some(Health::Down)
    }
    /// Forgets the health of backends `cfg` no longer has (a backend added again later
    /// starts up, as a new one does).
    pub fn retain(&mut self, cfg: &Config) {
        self.health.retain(|(svc, a, p), _| {
            cfg.services.iter().any(|s| {
                &s.name == svc
                    && s.backends
                        .iter()
                        .any(|b| b.address == *a && b.port_in(s) == *p)
            })
        });
    }
}
