//! Neighbors, ARP (IPv4) and NDP (IPv6, RFC 4861) alike: answer requests and
//! solicitations for own addresses and VIPs, learn senders, resolve next hops the
//! workers ask for (with back-off), refresh learned entries before they expire, announce
//! VIPs (gratuitous ARP, unsolicited neighbor advertisements), and publish the table to
//! the workers.
#![forbid(unsafe_code)]
use super::Daemon;
use dataplane::snapshot::{mask6, same_subnet, Neighbors, Snapshot};
use dataplane::wire::builder::{arp_frame, neighbor_advert_frame, neighbor_solicit_frame};
use dataplane::wire::{arp, icmpv6, ArpPacket, EthernetFrame, MacAddr};
use dataplane::wire::{EtherType, Icmpv6Packet, IpProtocol, Ipv6Packet};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A neighbor is an address on a port (as a kernel's is on an interface): the same
/// address behind two ports is two entries, and each is learned, resolved and refreshed
/// on its own port only.
pub(super) type NeighborKey = (u16, IpAddr);

#[derive(Debug, Clone, Copy)]
pub(super) struct Neighbor {
    pub(super) mac: MacAddr,
    pub(super) is_static: bool,
    pub(super) seen: Instant,
    /// ferrovs asked for it (a next hop its packets needed) at least once: only such
    /// entries are refreshed before they expire. One learned only because it asked for
    /// an address of ours simply expires (a flood of senders makes no re-ARPs later);
    /// if a flow needs it afterwards, it is resolved then (the packet is held meanwhile).
    pub(super) wanted: bool,
}

pub(super) struct Pending {
    tries: u32,
    last: Instant,
}

/// How long a learned neighbor lives without being refreshed.
const NEIGHBOR_TTL: Duration = Duration::from_secs(300);
/// In the last minute of a learned neighbor's life, ferrovs asks for it again (once a
/// second) if it ever asked for it (`Neighbor::wanted`), so entries in use are refreshed
/// before they expire.
const NEIGHBOR_REFRESH: Duration = Duration::from_secs(60);
const ARP_RETRIES: u32 = 5;
/// At most this many resolutions in progress: a flood of packets to unresolvable next hops
/// cannot make the management thread broadcast without end.
const MAX_PENDING: usize = 4096;
/// A resolution nobody asked for again in this long is forgotten.
const PENDING_TTL: Duration = Duration::from_secs(30);
// The table holds at most `neighbor_table.capacity` neighbors (static ones included;
// `Config::neighbor_capacity`): a flood of senders cannot grow it without bound. At the
// bound a new sender is learned only if ferrovs asked for it (a next hop it needs), in
// place of the least recently confirmed learned entry.
/// Most ARP requests and neighbor solicitations ferrovs sends per second, over all
/// destinations (each destination also backs off on its own).
const REQUESTS_PER_S: u32 = 1000;

/// The per-second budget of neighbor requests.
#[derive(Debug)]
pub(super) struct RequestBudget {
    window: Instant,
    sent: u32,
    /// Requests not sent because the budget was spent (retried by the back-off).
    pub(super) suppressed: u64,
}

impl Default for RequestBudget {
    fn default() -> RequestBudget {
        RequestBudget {
            window: Instant::now(),
            sent: 0,
            suppressed: 0,
        }
    }
}

impl RequestBudget {
    fn allow(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            (self.window, self.sent) = (Instant::now(), 0);
        }
        if self.sent < REQUESTS_PER_S {
            self.sent += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Packets held per unresolved neighbor, in all, and for how long at most.
const HOLD_PER_NEIGHBOR: usize = 3;
const HOLD_TOTAL: usize = 256;
const HOLD_TTL: Duration = Duration::from_secs(3);

/// Packets the workers rewrote but could not send: their next hop's MAC was unknown.
/// They go out when the neighbor answers (as Linux's `unres_qlen`), else are dropped.
#[derive(Default)]
pub(super) struct Held {
    by_hop: HashMap<NeighborKey, Vec<(u16, dataplane::dpdk::Mbuf, Instant)>>,
    total: usize,
    /// Sent once their neighbor answered; dropped (over the bounds, or expired).
    pub(super) sent: u64,
    pub(super) dropped: u64,
}

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
        let snap = self.shared.cell.load();
        for n in &self.cfg.neighbors {
            // The config check made sure the port exists.
            let Some(port) = snap.ports.iter().position(|p| p.name == n.port) else {
                continue;
            };
            let mac = n.mac;
            self.neighbors.insert(
                (port as u16, n.address),
                Neighbor {
                    mac,
                    is_static: true,
                    seen: Instant::now(),
                    wanted: true,
                },
            );
        }
    }

    pub(super) fn neighbor_table(&self) -> Arc<Neighbors> {
        let v4 = self.neighbors.iter().filter_map(|((p, a), n)| match a {
            IpAddr::V4(a) => Some((*p, *a, n.mac)),
            IpAddr::V6(_) => None,
        });
        let v6 = self.neighbors.iter().filter_map(|((p, a), n)| match a {
            IpAddr::V6(a) => Some((*p, *a, n.mac)),
            IpAddr::V4(_) => None,
        });
        Arc::new(Neighbors::dual(v4, v6))
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

    /// The port address to speak from toward `ip` (same subnet, else the first of its
    /// family).
    pub(super) fn source_for(&self, port: u16, ip: IpAddr) -> Option<IpAddr> {
        let snap = self.shared.cell.load();
        let p = snap.ports.get(port as usize)?;
        match ip {
            IpAddr::V4(ip) => p
                .addresses
                .iter()
                .find(|&&(a, l)| same_subnet(a, ip, l))
                .or(p.addresses.first())
                .map(|a| IpAddr::V4(a.0)),
            IpAddr::V6(ip) => p
                .addresses6
                .iter()
                .find(|&&(a, l)| on_link6(a, l, ip))
                .or(p.addresses6.first())
                .map(|a| IpAddr::V6(a.0)),
        }
    }

    /// Announces every VIP on the port that routes to it: a gratuitous ARP request
    /// (IPv4), an unsolicited neighbor advertisement to all nodes with the override flag
    /// (IPv6).
    pub(super) fn gratuitous_arp(&mut self) {
        let snap = self.shared.cell.load();
        let frames: Vec<(u16, Vec<u8>)> = snap
            .services
            .list
            .iter()
            .filter_map(|s| match s.vip {
                IpAddr::V4(vip) => {
                    let route = snap
                        .routes
                        .lookup(vip)
                        .or_else(|| snap.routes.lookup(Ipv4Addr::UNSPECIFIED))?;
                    let mac = snap.ports[route.port as usize].mac;
                    Some((
                        route.port,
                        arp_frame(arp::OP_REQUEST, mac, vip, MacAddr::ZERO, vip),
                    ))
                }
                IpAddr::V6(vip) => {
                    let route = snap
                        .routes6
                        .lookup(vip)
                        .or_else(|| snap.routes6.lookup(Ipv6Addr::UNSPECIFIED))?;
                    let mac = snap.ports[route.port as usize].mac;
                    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    Some((
                        route.port,
                        neighbor_advert_frame(
                            mac,
                            vip,
                            icmpv6::multicast_mac(all_nodes),
                            all_nodes,
                            icmpv6::NA_OVERRIDE,
                        ),
                    ))
                }
            })
            .collect();
        for (p, f) in frames {
            self.send(p, &f);
        }
    }

    /// Learns `sender` at `mac` on port `port` (name `port_name` for the log); true if the
    /// table changed. Static entries are never overwritten.
    fn learn(&mut self, sender: IpAddr, mac: MacAddr, port: u16, port_name: &str) -> bool {
        let key = (port, sender);
        let old = self.neighbors.get(&key).copied();
        if old.is_none() && self.neighbors.len() >= self.cfg.neighbor_capacity() {
            // Full: only a neighbor ferrovs asked for gets in, in place of the least
            // recently confirmed learned one.
            if !self.pending.contains_key(&key) {
                return false;
            }
            let oldest = self
                .neighbors
                .iter()
                .filter(|(_, n)| !n.is_static)
                .min_by_key(|(_, n)| n.seen)
                .map(|(a, _)| *a);
            match oldest {
                Some(a) => {
                    self.neighbors.remove(&a);
                }
                None => return false,
            }
        }
        let mut changed = false;
        if old.is_none_or(|n| !n.is_static) {
            if old.is_none_or(|n| n.mac != mac) {
                if self.learn_log.allow() {
                    tracing::info!(ip = %sender, %mac, port = %port_name, "neighbor learned");
                }
                changed = true;
            }
            let wanted = old.is_some_and(|n| n.wanted) || self.pending.contains_key(&key);
            self.neighbors.insert(
                key,
                Neighbor {
                    mac,
                    is_static: false,
                    seen: Instant::now(),
                    wanted,
                },
            );
        }
        self.pending.remove(&key);
        self.release_held(key, mac);
        changed
    }

    /// Takes the packets the workers are holding for unresolved next hops: sent at once
    /// if the neighbor is known by now, else kept (a few per neighbor, a bounded total).
    pub(super) fn take_held(&mut self) {
        for _ in 0..1024 {
            let Some((port, hop, m)) = self.shared.hold.pop() else {
                return;
            };
            if let Some(n) = self.neighbors.get(&(port, hop)).copied() {
                self.send_held(port, m, n.mac);
                continue;
            }
            let h = &mut self.held;
            let q = h.by_hop.entry((port, hop)).or_default();
            if q.len() >= HOLD_PER_NEIGHBOR || h.total >= HOLD_TOTAL {
                h.dropped += 1;
                continue;
            }
            q.push((port, m, Instant::now()));
            h.total += 1;
        }
    }

    /// Sends what was held for `hop` (a port and address), now at `mac`.
    fn release_held(&mut self, hop: NeighborKey, mac: MacAddr) {
        let Some(q) = self.held.by_hop.remove(&hop) else {
            return;
        };
        self.held.total -= q.len();
        for (port, m, _) in q {
            self.send_held(port, m, mac);
        }
    }

    fn send_held(&mut self, port: u16, mut m: dataplane::dpdk::Mbuf, mac: MacAddr) {
        EthernetFrame::new_unchecked(m.data_mut()).set_dst(mac);
        if self.send_mbuf(port, m) {
            self.held.sent += 1;
        } else {
            self.held.dropped += 1;
        }
    }

    /// Drops held packets whose neighbor did not answer in time.
    pub(super) fn expire_held(&mut self) {
        let h = &mut self.held;
        let before = h.total;
        h.by_hop.retain(|_, q| {
            q.retain(|(_, _, t)| t.elapsed() < HOLD_TTL);
            !q.is_empty()
        });
        h.total = h.by_hop.values().map(Vec::len).sum();
        h.dropped += (before - h.total) as u64;
    }

    /// A neighbor solicitation or advertisement (RFC 4861 7.1: hop limit 255, code 0,
    /// a valid checksum, well-formed options). A solicitation for an own address of the
    /// port or a VIP is answered (solicited, override); senders and advertised targets
    /// are learned under the same rules as ARP: on the port whose subnet holds them,
    /// never for own addresses or VIPs, only for a target of ours or a resolution in
    /// progress. Returns true if the table changed.
    pub(super) fn handle_ndp(&mut self, port: u16, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        if eth.ethertype() != EtherType::IPV6 {
            return false;
        }
        let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
            return false;
        };
        if ip.next_header() != IpProtocol::ICMPV6 || ip.hop_limit() != icmpv6::ND_HOP_LIMIT {
            return false;
        }
        let Ok(nd) = Icmpv6Packet::new_checked(ip.payload()) else {
            return false;
        };
        let (src, dst) = (ip.src(), ip.dst());
        let kind = nd.msg_type();
        if !matches!(
            kind,
            icmpv6::TYPE_NEIGHBOR_SOLICIT | icmpv6::TYPE_NEIGHBOR_ADVERT
        ) || nd.code() != 0
            || !nd.verify_checksum(src, dst)
        {
            return false;
        }
        let Some(target) = nd.target() else {
            return false;
        };
        let opt = if kind == icmpv6::TYPE_NEIGHBOR_SOLICIT {
            icmpv6::OPT_SOURCE_LL
        } else {
            icmpv6::OPT_TARGET_LL
        };
        let Ok(ll) = nd.link_layer_option(opt) else {
            return false;
        };
        let snap = self.shared.cell.load();
        let Some(pc) = snap.ports.get(port as usize) else {
            return false;
        };
        let name = pc.name.clone();
        let ours = pc.addresses6.iter().any(|(a, _)| *a == target) || snap.services.is_vip6(target);
        let on_link = |a: Ipv6Addr| {
            pc.addresses6.iter().any(|&(x, l)| on_link6(x, l, a)) || a.is_unicast_link_local()
        };
        let mut changed = false;
        if kind == icmpv6::TYPE_NEIGHBOR_SOLICIT {
            if snap.is_ours6(src) {
                tracing::debug!(ip = %src, port = %name, "solicitation from an own address or VIP ignored");
                return false;
            }
            let learnable = !src.is_unspecified()
                && on_link(src)
                && (ours || self.pending.contains_key(&(port, IpAddr::V6(src))));
            if let (true, Some(mac)) = (learnable, ll.filter(|m| !m.is_multicast())) {
                changed = self.learn(IpAddr::V6(src), mac, port, &name);
            }
            if ours {
                let reply = if src.is_unspecified() {
                    // Duplicate address detection of one of ours: tell everybody.
                    let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    neighbor_advert_frame(
                        pc.mac,
                        target,
                        icmpv6::multicast_mac(all),
                        all,
                        icmpv6::NA_OVERRIDE,
                    )
                } else {
                    let to = ll.unwrap_or(eth.src());
                    neighbor_advert_frame(
                        pc.mac,
                        target,
                        to,
                        src,
                        icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE,
                    )
                };
                self.send(port, &reply);
            }
        } else {
            if snap.is_ours6(target) {
                tracing::debug!(ip = %target, port = %name, "advertisement for an own address or VIP ignored");
                return false;
            }
            let t = (port, IpAddr::V6(target));
            let wanted = self.pending.contains_key(&t) || self.neighbors.contains_key(&t);
            if let (true, true, Some(mac)) =
                (wanted, on_link(target), ll.filter(|m| !m.is_multicast()))
            {
                changed = self.learn(t.1, mac, port, &name);
            }
        }
        changed
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
        let key = (port, IpAddr::V4(sender));
        if on_link
            && (ours || self.pending.contains_key(&key))
            && !sender.is_unspecified()
            && !a.sender_mac().is_multicast()
        {
            let name = pc.name.clone();
            changed = self.learn(key.1, a.sender_mac(), port, &name);
        }
        if a.operation() == arp::OP_REQUEST && ours {
            let reply = arp_frame(arp::OP_REPLY, pc.mac, target, a.sender_mac(), a.sender_ip());
            self.send(port, &reply);
        }
        changed
    }

    pub(super) fn resolve(&mut self, ip: IpAddr, port: u16) {
        let key = (port, ip);
        if self.neighbors.contains_key(&key) {
            return;
        }
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            tracing::debug!(%ip, "ARP: {MAX_PENDING} resolutions in progress, not asking");
            return;
        }
        let now = Instant::now();
        let p = self.pending.entry(key).or_insert(Pending {
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

    /// Asks for `ip`'s MAC: an ARP request (IPv4) or a neighbor solicitation to its
    /// solicited-node group (IPv6).
    pub(super) fn arp_request(&mut self, ip: IpAddr, port: u16) {
        let Some(src) = self.source_for(port, ip) else {
            return;
        };
        if !self.request_budget.allow() {
            tracing::debug!(%ip, "neighbor request over the per-second budget: not sent");
            return;
        }
        let mac = self.shared.cell.load().ports[port as usize].mac;
        tracing::debug!(%ip, "neighbor request");
        let frame = match (src, ip) {
            (IpAddr::V4(src), IpAddr::V4(ip)) => {
                arp_frame(arp::OP_REQUEST, mac, src, MacAddr::ZERO, ip)
            }
            (IpAddr::V6(src), IpAddr::V6(ip)) => neighbor_solicit_frame(mac, src, ip),
            _ => return,
        };
        self.send(port, &frame);
    }

    /// Asks again for learned neighbors close to expiry (their reply refreshes them).
    pub(super) fn refresh_neighbors(&mut self) {
        let due: Vec<(IpAddr, u16)> = self
            .neighbors
            .iter()
            .filter(|(_, n)| {
                n.wanted && !n.is_static && n.seen.elapsed() + NEIGHBOR_REFRESH > NEIGHBOR_TTL
            })
            .map(|(&(port, a), _)| (a, port))
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
        let pending: Vec<(IpAddr, u16)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.tries > 0 && p.tries < ARP_RETRIES)
            .map(|(&(port, ip), _)| (ip, port))
            .collect();
        for (ip, port) in pending {
            self.resolve(ip, port);
        }
    }
}

/// True if `a` is in the `/len` subnet of `x`.
fn on_link6(x: Ipv6Addr, len: u8, a: Ipv6Addr) -> bool {
    x.to_bits() & mask6(len) == a.to_bits() & mask6(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_budget_stops_at_the_limit_and_counts_the_rest() {
        let mut budget = RequestBudget::default();
        let sent = (0..REQUESTS_PER_S + 10).filter(|_| budget.allow()).count();
        assert_eq!(sent, REQUESTS_PER_S as usize);
        assert_eq!(budget.suppressed, 10);
        // A new second gives a new budget.
        budget.window -= Duration::from_secs(1);
        assert!(budget.allow());
    }
}
