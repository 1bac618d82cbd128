//! Runtime state: what the snapshot is built from besides the operator's config (the
//! file plus API edits). It is never written into the config, and a reload or an API
//! write keeps it: the MACs the ports came up with, and each backend's health.
#![forbid(unsafe_code)]
use crate::config::Config;
use dataplane::wire::MacAddr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A backend's identity across configs: service name, address, port.
pub type BackendKey = (String, IpAddr, u16);

/// What health checking last decided about a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Gets no new flows (as if its weight were 0) until it is up again.
    Down,
}

/// A checked backend's state: its verdict and the probes behind it.
#[derive(Debug, Clone)]
pub struct HealthState {
    pub health: Health,
    /// When the verdict last changed (or checking began).
    pub since: Instant,
    pub last_error: Option<String>,
    ok_streak: u32,
    fail_streak: u32,
    pub probes_ok: u64,
    pub probes_failed: u64,
}

impl HealthState {
    /// A backend starts up.
    fn new() -> HealthState {
        HealthState {
            health: Health::Up,
            since: Instant::now(),
            last_error: None,
            ok_streak: 0,
            fail_streak: 0,
            probes_ok: 0,
            probes_failed: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Runtime {
    /// Per port (config order): the MAC the device runs with.
    pub macs: Vec<MacAddr>,
    health: HashMap<BackendKey, HealthState>,
}

impl Runtime {
    pub fn new(macs: Vec<MacAddr>) -> Runtime {
        Runtime {
            macs,
            health: HashMap::new(),
        }
    }
    /// Records one probe of a checked backend (a backend starts up): `fall` failures in a
    /// row take an up backend down, `rise` successes bring a down one up. Returns the new
    /// verdict when it changed.
    pub fn record_probe(
        &mut self,
        key: BackendKey,
        result: Result<(), String>,
        rise: u32,
        fall: u32,
    ) -> Option<Health> {
        let s = self.health.entry(key).or_insert_with(HealthState::new);
        match result {
            Ok(()) => {
                s.probes_ok += 1;
                s.ok_streak += 1;
                s.fail_streak = 0;
            }
            Err(e) => {
                s.probes_failed += 1;
                s.fail_streak += 1;
                s.ok_streak = 0;
                s.last_error = Some(e);
            }
        }
        let next = match s.health {
            Health::Up if s.fail_streak >= fall => Health::Down,
            Health::Down if s.ok_streak >= rise => Health::Up,
            h => h,
        };
        (next != s.health).then(|| {
            s.health = next;
            s.since = Instant::now();
            next
        })
    }
    pub fn health(&self, key: &BackendKey) -> Option<Health> {
        self.health.get(key).map(|s| s.health)
    }
    pub fn state(&self, key: &BackendKey) -> Option<&HealthState> {
        self.health.get(key)
    }
    /// False only for a backend health checking says is down.
    pub fn is_up(&self, key: &BackendKey) -> bool {
        self.health(key) != Some(Health::Down)
    }
    /// Forgets the health of backends `cfg` no longer has or no longer checks (a backend
    /// added again later starts up, as a new one does).
    pub fn retain(&mut self, cfg: &Config) {
        self.health.retain(|(svc, a, p), _| {
            cfg.services.iter().any(|s| {
                &s.name == svc
                    && s.health_check.is_some()
                    && s.backends
                        .iter()
                        .any(|b| b.address == *a && b.port_in(s) == *p)
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall() {
        let mut rt = Runtime::default();
        let k: BackendKey = ("web".into(), [10, 1, 0, 11].into(), 80);
        let fail = || Err("connect refused".to_string());
        assert_eq!(rt.record_probe(k.clone(), Ok(()), 2, 3), None, "starts up");
        assert_eq!(rt.record_probe(k.clone(), fail(), 2, 3), None);
        assert_eq!(rt.record_probe(k.clone(), fail(), 2, 3), None);
        assert_eq!(
            rt.record_probe(k.clone(), fail(), 2, 3),
            Some(Health::Down),
            "third failure"
        );
        assert_eq!(rt.record_probe(k.clone(), fail(), 2, 3), None);
        assert_eq!(rt.record_probe(k.clone(), Ok(()), 2, 3), None);
        assert_eq!(
            rt.record_probe(k.clone(), fail(), 2, 3),
            None,
            "a failure resets the rise"
        );
        assert_eq!(rt.record_probe(k.clone(), Ok(()), 2, 3), None);
        assert_eq!(
            rt.record_probe(k.clone(), Ok(()), 2, 3),
            Some(Health::Up),
            "second success"
        );
        let s = rt.state(&k).unwrap();
        assert_eq!((s.probes_ok, s.probes_failed), (4, 5));
        assert_eq!(s.last_error.as_deref(), Some("connect refused"));
    }
}
