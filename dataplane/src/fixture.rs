//! The one test world, shared by the golden tests, the worker test, the fuzz target,
//! the criterion benches and the in-process harness (`ferrovs-bench`): two dual-stack
//! ports (wan `203.0.113.2/24` and `2001:db8:1::2/64`, lan `10.1.0.1/24` and
//! `fd00:1::1/64`), a gateway on wan for each family, backends on lan whose MACs derive
//! from their addresses, and services built from short specs. Nothing here is on the
//! packet path.
#![forbid(unsafe_code)]
use crate::sched::SchedulerKind;
use crate::snapshot::{
    Backend, Forward, Neighbors, PortConf, Route, RouteTable, RouteTable6, Service, ServiceSpec,
    Services, Snapshot,
};
use crate::wire::MacAddr;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const WAN: u16 = 0;
pub const LAN: u16 = 1;
pub const WAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x0a, 1]);
pub const LAN_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0x0b, 1]);
pub const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// The default route's next hop, on wan.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const GATEWAY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const WAN_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
pub const LAN_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
/// The IPv6 default route's next hop, on wan (same MAC as the IPv4 gateway).
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

/// The MAC of the backend (or other neighbor) at `a`: `02:00:00:00:10:<last byte>`
/// (IPv6: `02:00:00:00:16:<last byte>`).
pub fn backend_mac(a: impl Into<IpAddr>) -> MacAddr {
    match a.into() {
        IpAddr::V4(a) => MacAddr([2, 0, 0, 0, 0x10, a.octets()[3]]),
        IpAddr::V6(a) => MacAddr([2, 0, 0, 0, 0x16, a.octets()[15]]),
    }
}

/// wan and lan with the given MACs (ring ports choose their own).
pub fn ports(wan_mac: MacAddr, lan_mac: MacAddr) -> Vec<PortConf> {
    vec![
        PortConf {
            name: "wan".into(),
            mac: wan_mac,
            addresses: vec![(WAN_ADDR, 24)],
            addresses6: vec![(WAN_ADDR6, 64)],
            mtu: 1500,
            kernel: false,
        },
        PortConf {
            name: "lan".into(),
            mac: lan_mac,
            addresses: vec![(LAN_ADDR, 24)],
            addresses6: vec![(LAN_ADDR6, 64)],
            mtu: 1500,
            kernel: false,
        },
    ]
}

/// A service's spec: backends `(address, port, weight)` get ids from `first_id` on.
#[allow(clippy::too_many_arguments)]
pub fn spec<A: Into<IpAddr> + Copy>(
    id: u16,
    name: &str,
    vip: A,
    port: u16,
    protocol: u8,
    forward: Forward,
    scheduler: SchedulerKind,
    first_id: u32,
    backends: &[(A, u16, u32)],
) -> ServiceSpec {
    ServiceSpec {
        id,
        name: name.into(),
        vip: vip.into(),
        port,
        protocol,
        forward,
        scheduler,
        backends: backends
            .iter()
            .zip(first_id..)
            .map(|(&(addr, port, weight), id)| Backend {
                id,
                addr: addr.into(),
                port,
                weight,
                up: true,
            })
            .collect(),
        local_addresses: vec![],
        local_ports: crate::snapshot::FNAT_PORTS,
        proxy: false,
    }
}

/// The snapshot over `ports`: connected routes, a default route via [`GATEWAY`] and
/// [`GATEWAY6`] (on the port whose subnet holds it), and neighbors for the gateways and
/// each of `resolved`. Services are built with Maglev tables of size `maglev_m`.
pub fn snapshot<A: Into<IpAddr> + Copy>(
    ports: Vec<PortConf>,
    services: Vec<ServiceSpec>,
    resolved: &[A],
    maglev_m: usize,
) -> Snapshot {
    let mut routes: Vec<(Ipv4Addr, u8, Route)> = Vec::new();
    let mut routes6: Vec<(Ipv6Addr, u8, Route<Ipv6Addr>)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let port = i as u16;
        for &(a, len) in &p.addresses {
            let net = Ipv4Addr::from_bits(a.to_bits() & crate::snapshot::mask(len));
            routes.push((net, len, Route { port, via: None }));
            if crate::snapshot::same_subnet(a, GATEWAY, len) {
                let via = Some(GATEWAY);
                routes.push((Ipv4Addr::UNSPECIFIED, 0, Route { port, via }));
            }
        }
        for &(a, len) in &p.addresses6 {
            let m = crate::snapshot::mask6(len);
            routes6.push((a, len, Route { port, via: None }));
            if a.to_bits() & m == GATEWAY6.to_bits() & m {
                let via = Some(GATEWAY6);
                routes6.push((Ipv6Addr::UNSPECIFIED, 0, Route { port, via }));
            }
        }
    }
    // Each neighbor on the port its route leaves by (the port whose subnet holds it).
    let (routes, routes6) = (RouteTable::new(routes), RouteTable6::new(routes6));
    let resolved: Vec<IpAddr> = resolved.iter().map(|&a| a.into()).collect();
    let v4 = resolved.iter().filter_map(|a| match a {
        IpAddr::V4(a) => Some((routes.lookup(*a)?.port, *a, backend_mac(*a))),
        IpAddr::V6(_) => None,
    });
    let v6 = resolved.iter().filter_map(|a| match a {
        IpAddr::V6(a) => Some((routes6.lookup(*a)?.port, *a, backend_mac(*a))),
        IpAddr::V4(_) => None,
    });
    let gw = routes
        .lookup(GATEWAY)
        .map(|r| (r.port, GATEWAY, GATEWAY_MAC));
    let gw6 = routes6
        .lookup(GATEWAY6)
        .map(|r| (r.port, GATEWAY6, GATEWAY_MAC));
    let neighbors = Neighbors::dual(v4.chain(gw), v6.chain(gw6));
    let services = services
        .into_iter()
        .map(|s| Service::build(s, Default::default(), maglev_m))
        .collect();
    let mut s = Snapshot {
        version: 1,
        local: Arc::new(Snapshot::local_index(&ports)),
        ports: Arc::new(ports),
        services: Arc::new(Services::new(services)),
        routes: Arc::new(routes),
        routes6: Arc::new(routes6),
        neighbors: Arc::new(neighbors),
        snat: Default::default(),
        backend_hops: Default::default(),
    };
    s.resolve_backend_hops();
    s
}

/// The bench world: nat, dr and tun services on port 80 of VIPs `.10`, `.20`, `.30` of
/// wan's subnet, four backends each (`10.1.0.10..=13`, weights 1..=4), all resolved.
pub fn bench_snapshot(wan_mac: MacAddr, scheduler: SchedulerKind, maglev_m: usize) -> Snapshot {
    let bes: Vec<(Ipv4Addr, u16, u32)> = (0..4u8)
        .map(|i| (Ipv4Addr::new(10, 1, 0, 10 + i), 80, 1 + i as u32))
        .collect();
    let addrs: Vec<Ipv4Addr> = bes.iter().map(|b| b.0).collect();
    let modes = [Forward::Nat, Forward::Dr, Forward::Tun];
    let services = modes
        .iter()
        .enumerate()
        .map(|(i, &fwd)| {
            let vip = Ipv4Addr::new(203, 0, 113, 10 * (i as u8 + 1));
            spec(
                i as u16,
                fwd.name(),
                vip,
                80,
                6,
                fwd,
                scheduler,
                4 * i as u32,
                &bes,
            )
        })
        .collect();
    snapshot(ports(wan_mac, LAN_MAC), services, &addrs, maglev_m)
}

/// Bench client `i`'s 64-byte TCP frame to `vip`:80 (source `11.0.x.0`-ish, port `i`),
/// addressed to `lb_mac`.
pub fn bench_frame(lb_mac: MacAddr, i: u32, vip: Ipv4Addr, flags: u8) -> Vec<u8> {
    let spec = crate::wire::builder::FrameSpec {
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        dst_mac: lb_mac,
        src_ip: Ipv4Addr::from_bits(0x0b00_0000 | (i >> 16)),
        dst_ip: vip,
        src_port: i as u16,
        dst_port: 80,
        ..Default::default()
    };
    let mut f = crate::wire::builder::tcp_frame(&spec, flags, &[0u8; 6]);
    f.resize(64, 0);
    f
}

/// The established flow of bench client `i` on a service of [`bench_snapshot`]
/// (`service` 0 nat, 1 dr, 2 tun), any port.
pub fn bench_flow(i: u32, vip: Ipv4Addr, service: u16, mode: Forward) -> crate::flow::FlowInit {
    crate::flow::FlowInit {
        protocol: 6,
        client: Ipv4Addr::from_bits(0x0b00_0000 | (i >> 16)),
        client_port: i as u16,
        vip,
        vport: 80,
        backend: Ipv4Addr::new(10, 1, 0, 10 + (i % 4) as u8),
        backend_port: 80,
        service,
        backend_id: service as u32 * 4 + i % 4,
        mode,
        reverse: mode.translates(),
        state: crate::flow::FlowState::Established,
        local: Ipv4Addr::UNSPECIFIED,
        local_port: 0,
        proxy: false,
        synproxy: false,
        seq_base: 0,
        client_if: crate::flow::ANY_PORT,
        backend_if: crate::flow::ANY_PORT,
    }
}
