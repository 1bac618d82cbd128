//! Neighbors (ARP): answer requests for own addresses and VIPs, learn senders, resolve
//! next hops the workers ask for (with back-off), refresh learned entries before they
//! expire, send gratuitous ARP for VIPs, and publish the table to the workers.
#![forbid(unsafe_code)]
use super::Daemon;
use dataplane::snapshot::{same_subnet, Neighbors, Snapshot};
use dataplane::wire::{arp, builder::arp_frame, ArpPacket, EthernetFrame, MacAddr};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(super) struct Neighbor {
    pub(super) mac: MacAddr,
    pub(super) is_static: bool,
    pub(super) seen: Instant,
}

pub(super) struct Pending {
    port: u16,
    tries: u32,
    last: Instant,
}

/// How long a learned neighbor lives without being refreshed.
const NEIGHBOR_TTL: Duration = Duration::from_secs(300);
/// In the last minute of a learned neighbor's life, ferrovs asks for it again (once a
/// second), so entries in use are refreshed before they expire.
const NEIGHBOR_REFRESH: Duration = Duration::from_secs(60);
const ARP_RETRIES: u32 = 5;
/// At most this many resolutions in progress: a flood of packets to unresolvable next hops
/// cannot make the management thread broadcast without end.
const MAX_PENDING: usize = 4096;
/// A resolution nobody asked for again in this long is forgotten.
const PENDING_TTL: Duration = Duration::from_secs(30);
/// Per second, at most this many "neighbor learned" lines; the rest are summed up.
const LEARNED_LOGS_PER_S: u32 = 10;

/// Rate-limits the "neighbor learned" log line (an ARP flood must not flood the log).
#[derive(Debug)]
pub(super) struct LogBudget {
    window: Instant,
    used: u32,
    suppressed: u32,
}

impl Default for LogBudget {
    fn default() -> LogBudget {
        LogBudget {
            window: Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }
}

impl LogBudget {
    /// True if one more line may be logged in this second.
    fn allow(&mut self) -> bool {
        self.roll();
        if self.used < LEARNED_LOGS_PER_S {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
    /// Starts a new second, saying how many lines the last one held back.
    fn roll(&mut self) {
        if self.window.elapsed() < Duration::from_secs(1) {
            return;
        }
        if self.suppressed > 0 {
            tracing::info!(
                "{} more neighbors learned in the last second (not logged one by one)",
                self.suppressed
            );
        }
        *self = LogBudget::default();
    }
}

impl Daemon {
    pub(super) fn load_static_neighbors(&mut self) {
        for n in &self.cfg.neighbors {
            let mac = n.mac;
            self.neighbors.insert(
                n.address,
                Neighbor {
                    mac,
                    is_static: true,
                    seen: Instant::now(),
                },
            );
        }
    }

    pub(super) fn neighbor_table(&self) -> Arc<Neighbors> {
        Arc::new(Neighbors::new(
            self.neighbors.iter().map(|(a, n)| (*a, n.mac)),
        ))
    }

    pub(super) fn publish_neighbors(&self) {
        let cur = self.shared.cell.load();
        let neighbors = self.neighbor_table();
        self.shared.cell.publish(Snapshot {
            neighbors,
            ..Snapshot::clone(&cur)
        });
    }

    pub(super) fn send(&mut self, port: u16, frame: &[u8]) {
        if let Some(m) = self.pool.alloc_with(frame) {
            self.send_mbuf(port, m);
        }
    }

    /// Sends a frame out of `port`: on the management thread's own TX queue, or through
    /// the worker that owns the port's queue. False if it was refused.
    pub(super) fn send_mbuf(&mut self, port: u16, m: dataplane::dpdk::Mbuf) -> bool {
        match self.mgmt_tx.get_mut(port as usize) {
            Some(Some(q)) => q.send_one(m),
            _ => self.shared.from_mgmt[port as usize].push(m).is_ok(),
        }
    }

    /// The port address to speak from toward `ip` (same subnet, else the first).
    pub(super) fn source_for(&self, port: u16, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        let snap = self.shared.cell.load();
        let p = snap.ports.get(port as usize)?;
        p.addresses
            .iter()
            .find(|&&(a, l)| same_subnet(a, ip, l))
            .or(p.addresses.first())
            .map(|a| a.0)
    }

    pub(super) fn gratuitous_arp(&mut self) {
        let snap = self.shared.cell.load();
        let frames: Vec<(u16, Vec<u8>)> = snap
            .services
            .list
            .iter()
            .filter_map(|s| {
                let route = snap
                    .routes
                    .lookup(s.vip)
                    .or_else(|| snap.routes.lookup(Ipv4Addr::UNSPECIFIED))?;
                let mac = snap.ports[route.port as usize].mac;
                Some((
                    route.port,
                    arp_frame(arp::OP_REQUEST, mac, s.vip, MacAddr::ZERO, s.vip),
                ))
            })
            .collect();
        for (p, f) in frames {
            self.send(p, &f);
        }
    }

    pub(super) fn handle_arp(&mut self, port: u16, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        let Ok(a) = ArpPacket::new_checked(eth.payload()) else {
            return false;
        };
        let snap = self.shared.cell.load();
        let Some(pc) = snap.ports.get(port as usize) else {
            return false;
        };
        let target = a.target_ip();
        let local_here = pc.addresses.iter().any(|(x, _)| *x == target);
        let ours = local_here || snap.services.is_vip(target);
        let sender = a.sender_ip();
        // A frame claiming one of our own addresses or VIPs as its sender is someone
        // else's (a spoof or a conflict): neither learned nor answered. Senders are learned
        // only on the port whose connected subnet holds them.
        if snap.is_ours(sender) {
            tracing::debug!(ip = %sender, mac = %a.sender_mac(), port = %pc.name, "ARP claiming an own address or VIP ignored");
            return false;
        }
        let on_link = pc.addresses.iter().any(|&(x, l)| same_subnet(x, sender, l));
        let mut changed = false;
        if on_link
            && (ours || self.pending.contains_key(&sender))
            && !sender.is_unspecified()
            && !a.sender_mac().is_multicast()
        {
            let old = self.neighbors.get(&sender).copied();
            if old.is_none_or(|n| !n.is_static) {
                if old.is_none_or(|n| n.mac != a.sender_mac()) {
                    if self.learn_log.allow() {
                        tracing::info!(ip = %sender, mac = %a.sender_mac(), port = %pc.name, "neighbor learned");
                    }
                    changed = true;
                }
                self.neighbors.insert(
                    sender,
                    Neighbor {
                        mac: a.sender_mac(),
                        is_static: false,
                        seen: Instant::now(),
                    },
                );
            }
            self.pending.remove(&sender);
        }
        if a.operation() == arp::OP_REQUEST && ours {
            let reply = arp_frame(arp::OP_REPLY, pc.mac, target, a.sender_mac(), a.sender_ip());
            self.send(port, &reply);
        }
        changed
    }

    pub(super) fn resolve(&mut self, ip: Ipv4Addr, port: u16) {
        if self.neighbors.contains_key(&ip) {
            return;
        }
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&ip) {
            tracing::debug!(%ip, "ARP: {MAX_PENDING} resolutions in progress, not asking");
            return;
        }
        let now = Instant::now();
        let p = self.pending.entry(ip).or_insert(Pending {
            port,
            tries: 0,
            last: now - Duration::from_secs(10),
        });
        // Back-off: 100 ms, 200 ms, 400 ms, ... then give up for a while.
        let wait = Duration::from_millis(100 << p.tries.min(6));
        if p.tries >= ARP_RETRIES || now.duration_since(p.last) < wait {
            if p.tries >= ARP_RETRIES && now.duration_since(p.last) > Duration::from_secs(10) {
                p.tries = 0; // try again later
            }
            return;
        }
        p.tries += 1;
        p.last = now;
        self.arp_request(ip, port);
    }

    pub(super) fn arp_request(&mut self, ip: Ipv4Addr, port: u16) {
        let Some(src) = self.source_for(port, ip) else {
            return;
        };
        let mac = self.shared.cell.load().ports[port as usize].mac;
        tracing::debug!(%ip, "ARP request");
        self.send(
            port,
            &arp_frame(arp::OP_REQUEST, mac, src, MacAddr::ZERO, ip),
        );
    }

    /// Asks again for learned neighbors close to expiry (their reply refreshes them).
    pub(super) fn refresh_neighbors(&mut self) {
        let snap = self.shared.cell.load();
        let due: Vec<(Ipv4Addr, u16)> = self
            .neighbors
            .iter()
            .filter(|(_, n)| !n.is_static && n.seen.elapsed() + NEIGHBOR_REFRESH > NEIGHBOR_TTL)
            .filter_map(|(a, _)| Some((*a, snap.routes.lookup(*a)?.port)))
            .collect();
        for (ip, port) in due {
            self.arp_request(ip, port);
        }
    }

    /// Drops learned neighbors that were not refreshed in time (true if any went) and
    /// resolutions nobody asked for again.
    pub(super) fn expire_neighbors(&mut self) -> bool {
        self.learn_log.roll();
        self.pending.retain(|_, p| p.last.elapsed() < PENDING_TTL);
        let before = self.neighbors.len();
        self.neighbors
            .retain(|_, n| n.is_static || n.seen.elapsed() < NEIGHBOR_TTL);
        before != self.neighbors.len()
    }

    /// Asks again for pending resolutions whose back-off has passed.
    pub(super) fn retry_pending(&mut self) {
        let pending: Vec<(Ipv4Addr, u16)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.tries > 0 && p.tries < ARP_RETRIES)
            .map(|(ip, p)| (*ip, p.port))
            .collect();
        for (ip, port) in pending {
            self.resolve(ip, port);
        }
    }
}
