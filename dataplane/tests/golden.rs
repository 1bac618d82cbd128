//! Golden forwarding tests (Katran style): a table of {name, input, expected output,
//! verdict}, run through `pipeline::process`, the function the worker calls. Input and
//! expected frames are built with etherparse (see `frames`), not with ferrovs's code.
use dataplane::buf::{PacketBuf, VecBuf};
use dataplane::counters::{DropReason, WorkerCounters};
use dataplane::fixture::{self, LAN, WAN};
use dataplane::flow::frag::FragTable;
use dataplane::flow::{FlowState, FlowTable};
use dataplane::pipeline::{process, process_burst, take_held_hop, Env, Verdict};
use dataplane::sched::{ConnCounters, SchedulerKind};
use dataplane::snapshot::*;
use dataplane::wire::{checksum, IpProtocol, MacAddr, TcpFlags};
#[path = "common/frames.rs"]
mod frames;
use frames::tcp_frame_with;
use frames::{arp_frame, icmp_echo_frame, tcp_frame, udp_frame, FrameSpec};
use frames::{icmpv6_echo_frame, ip6ip6_frame, neighbor_solicit_frame, tcp6_frame, FrameSpec6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const SYN: u8 = TcpFlags::SYN;
const SYNACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
const ACK: u8 = TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;
const PSH: u8 = TcpFlags::PSH;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}
fn wan_mac() -> MacAddr {
    mac("02:00:00:00:0a:01")
}
fn lan_mac() -> MacAddr {
    mac("02:00:00:00:0b:01")
}
#[test]
fn fixture_macs_are_the_ones_written_here() {
    assert_eq!((fixture::WAN_MAC, fixture::LAN_MAC), (wan_mac(), lan_mac()));
    assert_eq!(fixture::GATEWAY_MAC, gw_mac());
    assert_eq!(fixture::backend_mac(ip("10.1.0.11")), be_mac(11));
}
fn gw_mac() -> MacAddr {
    mac("02:00:00:00:00:01")
}
fn be_mac(last: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0x10, last])
}

fn snapshot() -> Snapshot {
    use Forward::*;
    use SchedulerKind::*;
    let (tcp, udp) = (IpProtocol::TCP, IpProtocol::UDP);
    let (b10, b11, b99) = (ip("10.1.0.10"), ip("10.1.0.11"), ip("10.1.0.99"));
    let services = vec![
        fixture::spec(
            0,
            "web",
            ip("203.0.113.10"),
            80,
            tcp,
            Nat,
            Wrr,
            0,
            &[(b10, 8080, 1), (b11, 8080, 2)],
        ),
        fixture::spec(
            1,
            "dns",
            ip("203.0.113.10"),
            53,
            udp,
            Nat,
            Rr,
            2,
            &[(b10, 5353, 1), (b11, 5353, 1)],
        ),
        fixture::spec(
            2,
            "dr",
            ip("203.0.113.20"),
            80,
            tcp,
            Dr,
            Rr,
            4,
            &[(b10, 80, 1)],
        ),
        fixture::spec(
            3,
            "tun",
            ip("203.0.113.30"),
            80,
            tcp,
            Tun,
            Rr,
            5,
            &[(b11, 80, 1)],
        ),
        fixture::spec(
            4,
            "unresolved",
            ip("203.0.113.40"),
            80,
            tcp,
            Nat,
            Rr,
            6,
            &[(b99, 80, 1)],
        ),
        fixture::spec(
            5,
            "drained",
            ip("203.0.113.50"),
            80,
            tcp,
            Nat,
            Lc,
            7,
            &[(b10, 80, 0)],
        ),
        fixture::spec(
            6,
            "web6",
            ip6("2001:db8:1::10"),
            80,
            tcp,
            Nat,
            Wrr,
            8,
            &[(be6(10), 8080, 1), (be6(11), 8080, 2)],
        ),
        fixture::spec(
            7,
            "dr6",
            ip6("2001:db8:1::20"),
            80,
            tcp,
            Dr,
            Rr,
            10,
            &[(be6(10), 80, 1)],
        ),
        fixture::spec(
            8,
            "tun6",
            ip6("2001:db8:1::30"),
            80,
            tcp,
            Tun,
            Rr,
            11,
            &[(be6(11), 80, 1)],
        ),
        ServiceSpec {
            local_addresses: vec![ip("10.1.0.2").into()],
            local_ports: (1024, 1025),
            ..fixture::spec(
                9,
                "full",
                ip("203.0.113.60"),
                80,
                tcp,
                Fnat,
                Rr,
                12,
                &[(b10, 8080, 1)],
            )
        },
        ServiceSpec {
            local_addresses: vec![ip6("fd00:1::2").into()],
            ..fixture::spec(
                10,
                "full6",
                ip6("2001:db8:1::60"),
                80,
                tcp,
                Fnat,
                Rr,
                13,
                &[(be6(10), 8080, 1)],
            )
        },
    ];
    let resolved: [IpAddr; 4] = [b10.into(), b11.into(), be6(10).into(), be6(11).into()];
    fixture::snapshot(
        fixture::ports(wan_mac(), lan_mac()),
        services,
        &resolved,
        251,
    )
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
/// IPv6 backend `fd00:1::<n>` (hex digits as written).
fn be6(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfd00,
        1,
        0,
        0,
        0,
        0,
        0,
        u16::from_str_radix(&n.to_string(), 16).unwrap(),
    )
}
fn be6_mac(n: u16) -> MacAddr {
    MacAddr([
        2,
        0,
        0,
        0,
        0x16,
        u16::from_str_radix(&n.to_string(), 16).unwrap() as u8,
    ])
}

struct Rig {
    snap: Snapshot,
    flows: FlowTable,
    flows6: FlowTable<Ipv6Addr>,
    conns: ConnCounters,
    frags: FragTable,
    cookies: dataplane::synproxy::SynCookies,
    c: WorkerCounters,
    resolved: Vec<(IpAddr, u16)>,
    /// The next hops of the packets held (`Verdict::Hold`), in order.
    held: Vec<IpAddr>,
}

impl Rig {
    fn new(capacity: usize) -> Rig {
        Rig {
            snap: snapshot(),
            flows: FlowTable::new(capacity),
            flows6: FlowTable::with_capacity(capacity),
            conns: ConnCounters::default(),
            frags: FragTable::new(),
            cookies: Default::default(),
            c: WorkerCounters::default(),
            resolved: vec![],
            held: vec![],
        }
    }
    fn run(&mut self, port: u16, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let env = Env {
            snap: &self.snap,
            flows: &self.flows,
            flows6: &self.flows6,
            conns: &self.conns,
            frags: &self.frags,
            syn_cookies: self.cookies,
            now: 100,
        };
        let mut b = VecBuf::new(frame);
        let resolved = &mut self.resolved;
        let v = process(
            &env,
            &self.c,
            &mut |a, p| resolved.push((a, p)),
            port,
            &mut b,
        );
        if let Verdict::Hold { .. } = v {
            self.held
                .push(take_held_hop(&mut b).expect("a held packet carries its hop"));
        }
        (v, b.data().to_vec())
    }
}

/// A client packet as it arrives from the gateway on wan.
fn client(vip: &str, dport: u16, sport: u16, ttl: u8) -> FrameSpec {
    FrameSpec {
        src_mac: gw_mac(),
        dst_mac: wan_mac(),
        src_ip: ip("192.0.2.1"),
        dst_ip: ip(vip),
        src_port: sport,
        dst_port: dport,
        ttl,
        ..Default::default()
    }
}

/// ICMP from the gateway to wan's own address (203.0.113.1 -> 203.0.113.2).
fn from_gateway_to_wan() -> FrameSpec {
    FrameSpec {
        src_mac: gw_mac(),
        dst_mac: wan_mac(),
        src_ip: ip("203.0.113.1"),
        dst_ip: ip("203.0.113.2"),
        ..Default::default()
    }
}

/// The same packet as it must leave toward a backend (NAT: new destination).
fn to_backend(s: &FrameSpec, be: &str, be_last: u8, port: u16) -> FrameSpec {
    FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(be_last),
        dst_ip: ip(be),
        dst_port: port,
        ttl: s.ttl - 1,
        ..s.clone()
    }
}

struct Case {
    name: &'static str,
    port: u16,
    input: Vec<u8>,
    verdict: Verdict,
    /// Expected output frame (for Tx verdicts).
    output: Option<Vec<u8>>,
}

fn check(rig: &mut Rig, cases: Vec<Case>) {
    for c in cases {
        let (v, out) = rig.run(c.port, &c.input);
        assert_eq!(v, c.verdict, "case `{}`: verdict", c.name);
        if let Some(want) = c.output {
            assert_eq!(out, want, "case `{}`: output bytes", c.name);
        }
    }
}

#[test]
fn nat_both_directions_and_wrr() {
    let mut rig = Rig::new(1024);
    let syn = client("203.0.113.10", 80, 40000, 64);
    // Backend's answer: from 10.1.0.11:8080 to the client, arriving on lan.
    let reply = FrameSpec {
        src_mac: be_mac(11),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.11"),
        dst_ip: ip("192.0.2.1"),
        src_port: 8080,
        dst_port: 40000,
        ttl: 64,
        ..Default::default()
    };
    let reply_out = FrameSpec {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: ip("203.0.113.10"),
        src_port: 80,
        ttl: 63,
        ..reply.clone()
    };
    check(
        &mut rig,
        vec![
            // IPVS wrr with weights 1,2 starts with the heavier backend: B A B ...
            Case {
                name: "nat syn -> be 11 (wrr first)",
                port: WAN,
                input: tcp_frame(&syn, SYN, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp_frame(
                    &to_backend(&syn, "10.1.0.11", 11, 8080),
                    SYN,
                    b"",
                )),
            },
            Case {
                name: "nat syn-ack reply -> client from vip",
                port: LAN,
                input: tcp_frame(&reply, SYNACK, b""),
                verdict: Verdict::Tx(WAN),
                output: Some(tcp_frame(&reply_out, SYNACK, b"")),
            },
            Case {
                name: "nat ack keeps backend",
                port: WAN,
                input: tcp_frame(&syn, ACK, b"GET /"),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp_frame(
                    &to_backend(&syn, "10.1.0.11", 11, 8080),
                    ACK,
                    b"GET /",
                )),
            },
            Case {
                name: "nat data reply",
                port: LAN,
                input: tcp_frame(&reply, ACK, b"200 OK"),
                verdict: Verdict::Tx(WAN),
                output: Some(tcp_frame(&reply_out, ACK, b"200 OK")),
            },
        ],
    );
    let f = rig
        .flows
        .lookup(&dataplane::flow::FlowKey {
            protocol: 6,
            src: ip("192.0.2.1"),
            src_port: 40000,
            dst: ip("203.0.113.10"),
            dst_port: 80,
        })
        .unwrap();
    assert_eq!(f.state(), FlowState::Established);
    assert_eq!((rig.conns.active(1), rig.conns.inactive(1)), (1, 0));
    // wrr continues: A then B for the next two clients.
    let s2 = client("203.0.113.10", 80, 40001, 64);
    let s3 = client("203.0.113.10", 80, 40002, 64);
    check(
        &mut rig,
        vec![
            Case {
                name: "wrr second -> be 10",
                port: WAN,
                input: tcp_frame(&s2, SYN, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp_frame(&to_backend(&s2, "10.1.0.10", 10, 8080), SYN, b"")),
            },
            Case {
                name: "wrr third -> be 11",
                port: WAN,
                input: tcp_frame(&s3, SYN, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp_frame(&to_backend(&s3, "10.1.0.11", 11, 8080), SYN, b"")),
            },
            Case {
                name: "nat mid-connection without flow",
                port: WAN,
                input: tcp_frame(&client("203.0.113.10", 80, 40999, 64), ACK, b""),
                verdict: Verdict::Drop(DropReason::NoFlow),
                output: None,
            },
        ],
    );
    assert_eq!(rig.c.new_flows.get(), 3);
    assert_eq!(rig.c.services[0].connections.get(), 3);
    assert_eq!(rig.c.services[0].packets_in.get(), 4);
    assert_eq!(rig.c.services[0].packets_out.get(), 2);
    assert_eq!(rig.c.backends[1].connections.get(), 2);
    assert_eq!(rig.c.drops[DropReason::NoFlow as usize].get(), 1);
}

#[test]
fn udp_nat_rr() {
    let mut rig = Rig::new(64);
    let q1 = client("203.0.113.10", 53, 5000, 64);
    let q2 = client("203.0.113.10", 53, 5001, 64);
    check(
        &mut rig,
        vec![
            Case {
                name: "udp rr first -> be 11",
                port: WAN,
                input: udp_frame(&q1, b"query"),
                verdict: Verdict::Tx(LAN),
                output: Some(udp_frame(&to_backend(&q1, "10.1.0.11", 11, 5353), b"query")),
            },
            Case {
                name: "udp rr second -> be 10",
                port: WAN,
                input: udp_frame(&q2, b"query"),
                verdict: Verdict::Tx(LAN),
                output: Some(udp_frame(&to_backend(&q2, "10.1.0.10", 10, 5353), b"query")),
            },
            Case {
                name: "udp same flow same backend",
                port: WAN,
                input: udp_frame(&q1, b"again"),
                verdict: Verdict::Tx(LAN),
                output: Some(udp_frame(&to_backend(&q1, "10.1.0.11", 11, 5353), b"again")),
            },
        ],
    );
}

/// A fragmented datagram follows its first fragment's flow (shallow virtual
/// reassembly): each fragment leaves as the whole datagram's rewrite, fragmented the same
/// way, would (nat: the first fragment's port and transport checksum, every fragment's
/// address and header checksum); both ways. A later fragment seen before its first one
/// is dropped and creates nothing.
#[test]
fn fragments_follow_their_first_one() {
    use frames::fragments;
    let mut rig = Rig::new(64);
    let q = FrameSpec {
        ident: 0x1234,
        ..client("203.0.113.10", 53, 5000, 64)
    };
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let cuts = [1480, 2960];
    let ins = fragments(&udp_frame(&q, &data), &cuts);
    let outs = fragments(
        &udp_frame(&to_backend(&q, "10.1.0.11", 11, 5353), &data),
        &cuts,
    );
    assert_eq!(ins.len(), 3);
    assert_eq!(
        rig.run(WAN, &ins[2]).0,
        Verdict::Drop(DropReason::Fragment),
        "before its first fragment"
    );
    assert_eq!(rig.flows.len(), 0);
    for (n, (i, o)) in ins.iter().zip(&outs).enumerate() {
        assert_eq!(
            rig.run(WAN, i),
            (Verdict::Tx(LAN), o.clone()),
            "fragment {n}"
        );
    }
    // The backend's fragmented answer goes back as VIP:53 -> client.
    let r = FrameSpec {
        src_mac: be_mac(11),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.11"),
        src_port: 5353,
        dst_ip: ip("192.0.2.1"),
        dst_port: 5000,
        ttl: 64,
        ident: 0x0777,
        ..Default::default()
    };
    let back = FrameSpec {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: ip("203.0.113.10"),
        src_port: 53,
        ttl: 63,
        ..r.clone()
    };
    let ins = fragments(&udp_frame(&r, &data[..2000]), &[1000]);
    let outs = fragments(&udp_frame(&back, &data[..2000]), &[1000]);
    for (n, (i, o)) in ins.iter().zip(&outs).enumerate() {
        assert_eq!(
            rig.run(LAN, i),
            (Verdict::Tx(WAN), o.clone()),
            "reply fragment {n}"
        );
    }
    // Another datagram of the same flow, whose first fragment was not seen: dropped.
    let lost_first = fragments(
        &udp_frame(
            &FrameSpec {
                ident: 0x1235,
                ..q.clone()
            },
            &data,
        ),
        &cuts,
    );
    assert_eq!(
        rig.run(WAN, &lost_first[1]).0,
        Verdict::Drop(DropReason::Fragment)
    );
    // ICMP fragments are not followed.
    let ping = fragments(&icmp_echo_frame(&q, 8, 1, 1, &data), &cuts);
    assert_eq!(
        rig.run(WAN, &ping[0]).0,
        Verdict::Drop(DropReason::Fragment)
    );

    // dr: the fragments of a TCP segment keep every byte but the MACs and the TTL.
    let s = FrameSpec {
        ident: 0x4321,
        ..client("203.0.113.20", 80, 41001, 64)
    };
    let out = FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(10),
        ttl: 63,
        ..s.clone()
    };
    let ins = fragments(&tcp_frame(&s, SYN, &data[..2000]), &[1000]);
    let outs = fragments(&tcp_frame(&out, SYN, &data[..2000]), &[1000]);
    for (n, (i, o)) in ins.iter().zip(&outs).enumerate() {
        assert_eq!(
            rig.run(WAN, i),
            (Verdict::Tx(LAN), o.clone()),
            "dr fragment {n}"
        );
    }
}

#[test]
fn dr_rewrites_only_mac() {
    let mut rig = Rig::new(64);
    let s = client("203.0.113.20", 80, 41000, 64);
    let out = FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(10),
        ttl: 63,
        ..s.clone()
    };
    let other = client("203.0.113.20", 80, 41001, 64);
    let other_out = FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(10),
        ttl: 63,
        ..other.clone()
    };
    check(
        &mut rig,
        vec![
            Case {
                name: "dr syn",
                port: WAN,
                input: tcp_frame(&s, SYN, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp_frame(&out, SYN, b"")),
            },
            Case {
                name: "dr ack",
                port: WAN,
                input: tcp_frame(&s, ACK, b"x"),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp_frame(&out, ACK, b"x")),
            },
            Case {
                name: "dr ack without flow: maglev, no flow",
                port: WAN,
                input: tcp_frame(&other, ACK, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp_frame(&other_out, ACK, b"")),
            },
        ],
    );
    assert_eq!(rig.c.stateless.get(), 1);
    assert_eq!(rig.flows.len(), 1);
    // Input-only state rules: the client's ACK established the flow.
    assert_eq!(rig.conns.active(4), 1);
}

#[test]
fn tun_encapsulates_and_sends_frag_needed() {
    let mut rig = Rig::new(64);
    let s = client("203.0.113.30", 80, 42000, 64);
    let (v, out) = rig.run(WAN, &tcp_frame(&s, SYN, b"abc"));
    assert_eq!(v, Verdict::Tx(LAN));
    let inner = tcp_frame(
        &FrameSpec {
            ttl: 63,
            ..s.clone()
        },
        SYN,
        b"abc",
    );
    assert_eq!(&out[..6], &be_mac(11).0);
    assert_eq!(&out[6..12], &lan_mac().0);
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let outer = &out[14..34];
    assert_eq!(outer[0], 0x45);
    assert_eq!(outer[9], 4, "IP-in-IP");
    assert_eq!(
        u16::from_be_bytes([outer[2], outer[3]]) as usize,
        inner.len() - 14 + 20
    );
    assert_eq!(
        &outer[12..16],
        &[10, 1, 0, 1],
        "outer source is the egress port's address"
    );
    assert_eq!(&outer[16..20], &[10, 1, 0, 11]);
    assert_eq!(outer[6] & 0x40, 0x40, "DF copied");
    assert_eq!(outer[8], 63, "outer TTL from the inner");
    assert_eq!(checksum::checksum(outer), 0);
    assert_eq!(
        &out[34..],
        &inner[14..],
        "inner packet unchanged but for TTL"
    );

    // 1481-byte inner packet with DF: outer would be 1501 > MTU 1500.
    let big = client("203.0.113.30", 80, 42001, 64);
    let frame = tcp_frame(&big, SYN, &vec![7u8; 1481 - 40]);
    let (v, out) = rig.run(WAN, &frame);
    assert_eq!(v, Verdict::Tx(WAN), "ICMP goes back toward the client");
    assert_eq!(&out[..6], &gw_mac().0);
    let icmp = &out[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4), "frag needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480);
    assert_eq!(
        &icmp[8..8 + 28],
        &frame[14..14 + 28],
        "quotes the IP header + 8 bytes"
    );
    assert_eq!(checksum::checksum(icmp), 0);
    assert_eq!(&out[30..34], &[192, 0, 2, 1]);
    assert_eq!(rig.c.drops[DropReason::FragNeeded as usize].get(), 1);
}

/// nat, both ways: a packet too big for its egress port's MTU (lan and wan: 1500) is
/// answered with ICMP "fragmentation needed" to its sender, quoting it as sent, so
/// path-MTU discovery works through ferrovs; without DF it is dropped.
#[test]
fn nat_too_big_tells_the_sender() {
    let mut rig = Rig::new(64);
    let s = client("203.0.113.10", 80, 44200, 64);
    assert_eq!(rig.run(WAN, &tcp_frame(&s, SYN, b"")).0, Verdict::Tx(LAN));
    let key = dataplane::flow::FlowKey {
        protocol: 6,
        src: ip("192.0.2.1"),
        src_port: 44200,
        dst: ip("203.0.113.10"),
        dst_port: 80,
    };
    let be = rig.flows.lookup(&key).unwrap().init().backend;
    // A 1501-byte packet from the client with DF.
    let frame = tcp_frame(&s, ACK, &vec![1u8; 1501 - 40]);
    let (v, out) = rig.run(WAN, &frame);
    assert_eq!(v, Verdict::Tx(WAN), "ICMP back toward the client");
    let icmp = &out[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4), "frag needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1500);
    assert_eq!(&icmp[8..8 + 28], &frame[14..14 + 28], "the packet as sent");
    assert_eq!(checksum::checksum(icmp), 0);
    assert_eq!(&out[30..34], &[192, 0, 2, 1]);
    // 1500 bytes fit.
    let fits = tcp_frame(&s, ACK, &vec![1u8; 1500 - 40]);
    assert_eq!(rig.run(WAN, &fits).0, Verdict::Tx(LAN));
    // The backend's too-big reply: the error goes to the backend, from lan's address.
    let r = FrameSpec {
        src_mac: be_mac(be.octets()[3]),
        dst_mac: lan_mac(),
        src_ip: be,
        src_port: 8080,
        dst_ip: ip("192.0.2.1"),
        dst_port: 44200,
        ttl: 64,
        ..Default::default()
    };
    let reply = tcp_frame(&r, ACK, &vec![2u8; 1600]);
    let (v, out) = rig.run(LAN, &reply);
    assert_eq!(v, Verdict::Tx(LAN));
    assert_eq!(
        (&out[26..30], &out[30..34]),
        (&[10, 1, 0, 1][..], &be.octets()[..])
    );
    assert_eq!(&out[34 + 8..34 + 8 + 28], &reply[14..14 + 28]);
    // Without DF: dropped (ferrovs does not fragment).
    let no_df = tcp_frame(
        &FrameSpec {
            df: false,
            ..s.clone()
        },
        ACK,
        &vec![1u8; 1600],
    );
    assert_eq!(
        rig.run(WAN, &no_df).0,
        Verdict::Drop(DropReason::FragNeeded)
    );
}

#[test]
fn drops_by_reason() {
    let mut rig = Rig::new(64);
    let ok = client("203.0.113.10", 80, 43000, 64);
    let mut vlan = tcp_frame(&ok, SYN, b"");
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
    // A later fragment (offset 8) whose first fragment was never seen.
    let mut frag = tcp_frame(&ok, SYN, b"");
    frag[20] = 0x20; // MF
    frag[21] = 1;
    let mut lldp = tcp_frame(&ok, SYN, b"");
    lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
    let mut wrong_mac = tcp_frame(&ok, SYN, b"");
    wrong_mac[..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    let mut bad_tcp = tcp_frame(&ok, SYN, b"");
    bad_tcp[14 + 20 + 12] = 0xf0; // data offset 60 > segment
    let cases = vec![
        Case {
            name: "ttl 1",
            port: WAN,
            input: tcp_frame(&client("203.0.113.10", 80, 43001, 1), SYN, b""),
            verdict: Verdict::Drop(DropReason::TtlExceeded),
            output: None,
        },
        Case {
            name: "not our mac",
            port: WAN,
            input: wrong_mac,
            verdict: Verdict::Drop(DropReason::NotForUs),
            output: None,
        },
        Case {
            name: "truncated ip",
            port: WAN,
            input: tcp_frame(&ok, SYN, b"")[..30].to_vec(),
            verdict: Verdict::Drop(DropReason::Malformed),
            output: None,
        },
        Case {
            name: "bad tcp offset",
            port: WAN,
            input: bad_tcp,
            verdict: Verdict::Drop(DropReason::Malformed),
            output: None,
        },
        Case {
            name: "short frame",
            port: WAN,
            input: vec![1, 2, 3],
            verdict: Verdict::Drop(DropReason::Malformed),
            output: None,
        },
        Case {
            name: "fragment",
            port: WAN,
            input: frag,
            verdict: Verdict::Drop(DropReason::Fragment),
            output: None,
        },
        Case {
            name: "vlan",
            port: WAN,
            input: vlan,
            verdict: Verdict::Drop(DropReason::Vlan),
            output: None,
        },
        Case {
            name: "another ethertype (LLDP)",
            port: WAN,
            input: lldp,
            verdict: Verdict::Drop(DropReason::NotIpv4),
            output: None,
        },
        Case {
            name: "vip, unknown port",
            port: WAN,
            input: tcp_frame(&client("203.0.113.10", 81, 1, 64), SYN, b""),
            verdict: Verdict::Drop(DropReason::NoService),
            output: None,
        },
        Case {
            name: "not ours",
            port: WAN,
            input: tcp_frame(&client("198.51.100.1", 80, 1, 64), SYN, b""),
            verdict: Verdict::Drop(DropReason::NotOurs),
            output: None,
        },
        Case {
            name: "drained only backend",
            port: WAN,
            input: tcp_frame(&client("203.0.113.50", 80, 1, 64), SYN, b""),
            verdict: Verdict::Drop(DropReason::NoBackend),
            output: None,
        },
        // Not a drop: rewritten, then held until the backend answers ARP.
        Case {
            name: "unresolved backend",
            port: WAN,
            input: tcp_frame(&client("203.0.113.40", 80, 1, 64), SYN, b""),
            verdict: Verdict::Hold { port: LAN },
            output: Some(tcp_frame(
                &FrameSpec {
                    dst_mac: MacAddr::ZERO,
                    ..to_backend(&client("203.0.113.40", 80, 1, 64), "10.1.0.99", 99, 80)
                },
                SYN,
                b"",
            )),
        },
    ];
    let n = cases.len() as u64 - 1;
    check(&mut rig, cases);
    assert_eq!(
        rig.resolved,
        vec![(ip("10.1.0.99").into(), LAN)],
        "resolution asked for the backend"
    );
    assert_eq!(
        rig.held,
        vec![IpAddr::from(ip("10.1.0.99"))],
        "held for the backend"
    );
    assert_eq!(rig.c.drops_total(), n);
    for r in [
        DropReason::TtlExceeded,
        DropReason::NotForUs,
        DropReason::Fragment,
        DropReason::Vlan,
        DropReason::NotIpv4,
        DropReason::NoService,
        DropReason::NotOurs,
        DropReason::NoBackend,
    ] {
        assert_eq!(rig.c.drops[r as usize].get(), 1, "{}", r.name());
    }
    assert_eq!(rig.c.drops[DropReason::Malformed as usize].get(), 3);
    // TTL is checked before any state: the TTL-1 SYN made no flow. The only flow is the
    // unresolved backend's (kept, so the retransmitted SYN goes to the same backend).
    assert_eq!(rig.c.new_flows.get(), 1, "the TTL-1 SYN created a flow");
}

#[test]
fn arp_to_mgmt_and_icmp_echo() {
    let mut rig = Rig::new(64);
    let arp = arp_frame(
        1,
        gw_mac(),
        ip("203.0.113.1"),
        MacAddr::ZERO,
        ip("203.0.113.10"),
    );
    let echo = from_gateway_to_wan();
    let want = FrameSpec {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: ip("203.0.113.2"),
        dst_ip: ip("203.0.113.1"),
        ..Default::default()
    };
    let vip_echo = FrameSpec {
        dst_ip: ip("203.0.113.10"),
        ..echo.clone()
    };
    let vip_want = FrameSpec {
        src_ip: ip("203.0.113.10"),
        ..want.clone()
    };
    check(
        &mut rig,
        vec![
            Case {
                name: "arp",
                port: WAN,
                input: arp,
                verdict: Verdict::Mgmt,
                output: None,
            },
            Case {
                name: "echo to local address",
                port: WAN,
                input: icmp_echo_frame(&echo, 8, 7, 1, b"ping"),
                verdict: Verdict::Tx(WAN),
                output: Some(icmp_echo_frame(&want, 0, 7, 1, b"ping")),
            },
            Case {
                name: "echo to vip",
                port: WAN,
                input: icmp_echo_frame(&vip_echo, 8, 7, 2, b"ping"),
                verdict: Verdict::Tx(WAN),
                output: Some(icmp_echo_frame(&vip_want, 0, 7, 2, b"ping")),
            },
            Case {
                name: "echo reply to us",
                port: WAN,
                input: icmp_echo_frame(&echo, 0, 7, 1, b""),
                verdict: Verdict::Drop(DropReason::NoService),
                output: None,
            },
        ],
    );
    assert_eq!(rig.c.icmp_replies.get(), 2);
}

#[test]
fn syn_on_closed_flow_is_rescheduled() {
    let mut rig = Rig::new(64);
    let s = client("203.0.113.10", 80, 44000, 64);
    assert_eq!(rig.run(WAN, &tcp_frame(&s, SYN, b"")).0, Verdict::Tx(LAN)); // -> .11
    assert_eq!(rig.run(WAN, &tcp_frame(&s, RST, b"")).0, Verdict::Tx(LAN));
    let key = dataplane::flow::FlowKey {
        protocol: 6,
        src: ip("192.0.2.1"),
        src_port: 44000,
        dst: ip("203.0.113.10"),
        dst_port: 80,
    };
    assert_eq!(rig.flows.lookup(&key).unwrap().state(), FlowState::Closed);
    // Port reuse: the new SYN ends the closed flow and is scheduled afresh (wrr -> .10).
    let (v, out) = rig.run(WAN, &tcp_frame(&s, SYN, b""));
    assert_eq!(v, Verdict::Tx(LAN));
    assert_eq!(
        out,
        tcp_frame(&to_backend(&s, "10.1.0.10", 10, 8080), SYN, b"")
    );
    assert_eq!(rig.flows.lookup(&key).unwrap().state(), FlowState::SynSent);
    assert_eq!(rig.flows.len(), 1);
    assert_eq!((rig.conns.inactive(1), rig.conns.inactive(0)), (0, 1));
}

/// Forged from the wire, a reset must not end a flow: one on the wrong port (the
/// backend's address arriving from the client side) is dropped; one with a sequence
/// number far from the sender's is forwarded (the endpoint judges it) and counted, and
/// the flow lives; a reset where the sender's numbers stand (the hint follows the data)
/// ends it.
/// A neighbor is an address on a port: the backend's address known only on wan (say,
/// claimed there) does not send its packets anywhere; learned on lan, it does.
#[test]
fn neighbors_are_per_port() {
    let mut rig = Rig::new(64);
    let be = ip("10.1.0.99");
    let wrong = MacAddr([2, 0, 0, 0, 0x66, 0x66]);
    let with = |neighbors: Vec<(u16, Ipv4Addr, MacAddr)>, snap: &Snapshot| {
        let mut s = Snapshot {
            neighbors: std::sync::Arc::new(Neighbors::new(neighbors)),
            ..snap.clone()
        };
        s.resolve_backend_hops();
        s
    };
    let base = rig.snap.clone();
    rig.snap = with(
        vec![(WAN, be, wrong), (WAN, fixture::GATEWAY, gw_mac())],
        &base,
    );
    let syn = tcp_frame(&client("203.0.113.40", 80, 7, 64), SYN, b"");
    let (v, out) = rig.run(WAN, &syn);
    assert_eq!(v, Verdict::Hold { port: LAN });
    assert_eq!(rig.held, vec![IpAddr::from(be)], "held for the backend");
    assert_eq!(&out[..6], &[0; 6], "no MAC from the other port's entry");
    assert_eq!(rig.resolved, vec![(be.into(), LAN)], "asked for on lan");
    rig.snap = with(vec![(WAN, be, wrong), (LAN, be, be_mac(99))], &base);
    let (v, out) = rig.run(WAN, &syn);
    assert_eq!(v, Verdict::Tx(LAN));
    assert_eq!(MacAddr(out[..6].try_into().unwrap()), be_mac(99));
}

#[test]
fn forged_resets_leave_the_flow_alone() {
    let mut rig = Rig::new(64);
    let s = client("203.0.113.10", 80, 44100, 64);
    let key = dataplane::flow::FlowKey {
        protocol: 6,
        src: ip("192.0.2.1"),
        src_port: 44100,
        dst: ip("203.0.113.10"),
        dst_port: 80,
    };
    // The handshake: client seq 1000, backend seq 1000 (etherparse's tcp_frame).
    assert_eq!(rig.run(WAN, &tcp_frame(&s, SYN, b"")).0, Verdict::Tx(LAN));
    let be = rig.flows.lookup(&key).unwrap().init().backend;
    let reply = FrameSpec {
        src_mac: be_mac(be.octets()[3]),
        dst_mac: lan_mac(),
        src_ip: be,
        src_port: 8080,
        dst_ip: ip("192.0.2.1"),
        dst_port: 44100,
        ttl: 64,
        ..Default::default()
    };
    assert_eq!(
        rig.run(LAN, &tcp_frame(&reply, SYNACK, b"")).0,
        Verdict::Tx(WAN)
    );
    assert_eq!(rig.run(WAN, &tcp_frame(&s, ACK, b"")).0, Verdict::Tx(LAN));
    let state = |rig: &Rig| rig.flows.lookup(&key).unwrap().state();
    assert_eq!(state(&rig), FlowState::Established);
    let drops = |rig: &Rig, r: DropReason| rig.c.drops[r as usize].get();

    // The backend's reset, forged on the client's side: wrong port.
    let forged = FrameSpec {
        src_mac: gw_mac(),
        dst_mac: wan_mac(),
        ..reply.clone()
    };
    let v = rig.run(WAN, &tcp_frame(&forged, RST, b"")).0;
    assert_eq!(v, Verdict::Drop(DropReason::WrongPort));
    // A client's reset with a blind sequence number.
    // It is forwarded (the client's own TCP judges it) but the flow lives on.
    let v = rig
        .run(WAN, &tcp_frame_with(&s, RST, 0x8000_1000, None, &[], b""))
        .0;
    assert_eq!(v, Verdict::Tx(LAN));
    // The backend's reset from its own side, but blind too.
    let v = rig
        .run(
            LAN,
            &tcp_frame_with(&reply, RST, 0x4000_0000, None, &[], b""),
        )
        .0;
    assert_eq!(v, Verdict::Tx(WAN));
    assert_eq!(state(&rig), FlowState::Established);
    assert_eq!(drops(&rig, DropReason::WrongPort), 1);
    assert_eq!(rig.c.resets_ignored.get(), 2);

    // The client's data moves on by 4 MiB (segments as a long transfer would send them):
    // its hint follows, so a reset at the old numbers is now out of the window...
    let mut seq = 1001u32;
    for _ in 0..16 {
        seq += 256 * 1024;
        let d = tcp_frame_with(&s, ACK, seq, Some(2000), &[], &[0u8; 100]);
        assert_eq!(rig.run(WAN, &d).0, Verdict::Tx(LAN));
    }
    rig.run(WAN, &tcp_frame_with(&s, RST, 1001, None, &[], b""));
    assert_eq!(state(&rig), FlowState::Established);
    assert_eq!(rig.c.resets_ignored.get(), 3);
    // ... and one where they stand now ends the flow.
    let v = rig
        .run(WAN, &tcp_frame_with(&s, RST, seq + 100, None, &[], b""))
        .0;
    assert_eq!(v, Verdict::Tx(LAN));
    assert_eq!(state(&rig), FlowState::Closed);
}

/// A full table makes room for a new SYN by dropping a half-open flow (a SYN flood must
/// not starve new legitimate flows); established flows are never dropped: then a new
/// flow is decided statelessly by Maglev.
#[test]
fn full_table_drops_half_open_first_then_falls_back_to_maglev() {
    let mut rig = Rig::new(1);
    let key = |p: u16| dataplane::flow::FlowKey {
        protocol: 6,
        src: ip("192.0.2.1"),
        src_port: p,
        dst: ip("203.0.113.10"),
        dst_port: 80,
    };
    let a = client("203.0.113.10", 80, 45000, 64);
    let b = client("203.0.113.10", 80, 45001, 64);
    assert_eq!(rig.run(WAN, &tcp_frame(&a, SYN, b"")).0, Verdict::Tx(LAN));
    assert_eq!(rig.run(WAN, &tcp_frame(&b, SYN, b"")).0, Verdict::Tx(LAN));
    assert_eq!(rig.c.early_drops.get(), 1, "a's half-open flow made room");
    assert!(rig.flows.lookup(&key(45000)).is_none() && rig.flows.lookup(&key(45001)).is_some());
    assert_eq!(rig.c.table_full.get(), 0);
    // b completes its handshake: established, it stays.
    let be = rig.flows.lookup(&key(45001)).unwrap().init().backend;
    let synack = FrameSpec {
        src_mac: be_mac(be.octets()[3]),
        dst_mac: lan_mac(),
        src_ip: be,
        src_port: 8080,
        dst_ip: ip("192.0.2.1"),
        dst_port: 45001,
        ttl: 64,
        ..Default::default()
    };
    assert_eq!(
        rig.run(LAN, &tcp_frame(&synack, SYNACK, b"")).0,
        Verdict::Tx(WAN)
    );
    assert_eq!(rig.run(WAN, &tcp_frame(&b, ACK, b"")).0, Verdict::Tx(LAN));
    assert_eq!(
        rig.flows.lookup(&key(45001)).unwrap().state(),
        FlowState::Established
    );
    let c = client("203.0.113.10", 80, 45002, 64);
    let (v1, o1) = rig.run(WAN, &tcp_frame(&c, SYN, b""));
    let (v2, o2) = rig.run(WAN, &tcp_frame(&c, SYN, b""));
    assert_eq!((v1, v2), (Verdict::Tx(LAN), Verdict::Tx(LAN)));
    assert_eq!(o1, o2, "the stateless decision is stable");
    assert_eq!(rig.c.table_full.get(), 2);
    assert_eq!(
        rig.c.early_drops.get(),
        1,
        "the established flow was not dropped"
    );
    assert_eq!(rig.flows.len(), 1);
}

/// The same for IPv6: a full IPv6 table makes room by dropping a half-open flow (and the
/// IPv4 table is not involved).
#[test]
fn full_ipv6_table_drops_half_open_first() {
    let mut rig = Rig::new(1);
    let a = client6("2001:db8:1::10", 45000, 64);
    let b = client6("2001:db8:1::10", 45001, 64);
    assert_eq!(rig.run(WAN, &tcp6_frame(&a, SYN, b"")).0, Verdict::Tx(LAN));
    assert_eq!(rig.run(WAN, &tcp6_frame(&b, SYN, b"")).0, Verdict::Tx(LAN));
    assert_eq!(rig.c.early_drops.get(), 1);
    assert_eq!((rig.flows6.len(), rig.flows.len()), (1, 0));
}

#[test]
fn burst_equals_one_by_one() {
    let frames: Vec<Vec<u8>> = (0..40u16)
        .map(|i| match i % 4 {
            0 => tcp_frame(&client("203.0.113.10", 80, 46000 + i, 64), SYN, b""),
            1 => udp_frame(&client("203.0.113.10", 53, 46000 + i, 64), b"q"),
            2 => tcp_frame(&client("203.0.113.20", 80, 46000 + i, 64), SYN, b""),
            _ => vec![0u8; 10],
        })
        .collect();
    let mut a = Rig::new(256);
    let one: Vec<(Verdict, Vec<u8>)> = frames.iter().map(|f| a.run(WAN, f)).collect();
    let b = Rig::new(256);
    let env = Env {
        snap: &b.snap,
        flows: &b.flows,
        flows6: &b.flows6,
        conns: &b.conns,
        frags: &b.frags,
        syn_cookies: b.cookies,
        now: 100,
    };
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
    let mut out = vec![Verdict::Drop(DropReason::Malformed); bufs.len()];
    for (chunk, o) in bufs.chunks_mut(32).zip(out.chunks_mut(32)) {
        process_burst(&env, &b.c, &mut |_, _| {}, WAN, chunk, o);
    }
    for i in 0..frames.len() {
        assert_eq!((out[i], bufs[i].data().to_vec()), one[i], "packet {i}");
    }
}

/// With an exception path on wan, what arrives for wan's own address and ferrovs does not
/// answer itself goes to the management thread (for the kernel); echo requests are still
/// answered, and VIPs are never the kernel's.
#[test]
fn exception_path_punts_what_is_for_own_addresses() {
    let mut rig = Rig::new(64);
    let mut ports = (*rig.snap.ports).clone();
    ports[WAN as usize].kernel = true;
    rig.snap.ports = std::sync::Arc::new(ports);
    let own = |dport: u16| FrameSpec {
        dst_ip: ip("203.0.113.2"),
        ..client("203.0.113.2", dport, 50022, 64)
    };
    let echo = from_gateway_to_wan();
    let lan_own = FrameSpec {
        src_mac: be_mac(10),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.10"),
        dst_ip: ip("10.1.0.1"),
        dst_port: 22,
        ..Default::default()
    };
    check(
        &mut rig,
        vec![
            Case {
                name: "tcp to own address",
                port: WAN,
                input: tcp_frame(&own(22), SYN, b""),
                verdict: Verdict::Mgmt,
                output: None,
            },
            Case {
                name: "udp to own address",
                port: WAN,
                input: udp_frame(&own(179), b"x"),
                verdict: Verdict::Mgmt,
                output: None,
            },
            Case {
                name: "echo reply for the kernel's ping",
                port: WAN,
                input: icmp_echo_frame(&echo, 0, 9, 1, b"p"),
                verdict: Verdict::Mgmt,
                output: None,
            },
            Case {
                name: "echo request still answered",
                port: WAN,
                input: icmp_echo_frame(&echo, 8, 9, 1, b"p"),
                verdict: Verdict::Tx(WAN),
                output: None,
            },
            Case {
                name: "vip, unknown port: not the kernel's",
                port: WAN,
                input: tcp_frame(&client("203.0.113.10", 81, 1, 64), SYN, b""),
                verdict: Verdict::Drop(DropReason::NoService),
                output: None,
            },
            Case {
                name: "lan has no exception path",
                port: LAN,
                input: tcp_frame(&lan_own, SYN, b""),
                verdict: Verdict::Drop(DropReason::NoService),
                output: None,
            },
        ],
    );
    assert_eq!(rig.c.to_mgmt.get(), 3);
}

/// An IPv6 client packet as it arrives from the gateway on wan.
fn client6(vip: &str, sport: u16, hop_limit: u8) -> FrameSpec6 {
    FrameSpec6 {
        src_mac: gw_mac(),
        dst_mac: wan_mac(),
        src_ip: ip6("2001:db8:99::1"),
        dst_ip: ip6(vip),
        src_port: sport,
        dst_port: 80,
        hop_limit,
    }
}

/// IPv6 fragments follow their first fragment too (after the fragment header): nat,
/// each fragment as the whole datagram's rewrite fragmented the same way; out of order,
/// dropped.
#[test]
fn ipv6_fragments_follow_their_first_one() {
    use frames::fragments6;
    let mut rig = Rig::new(256);
    let s = client6("2001:db8:1::10", 40100, 64);
    let data: Vec<u8> = (0..2000u32).map(|i| (i * 3) as u8).collect();
    let to_be = FrameSpec6 {
        src_mac: lan_mac(),
        dst_mac: be6_mac(11),
        dst_ip: be6(11),
        dst_port: 8080,
        hop_limit: 63,
        ..s.clone()
    };
    let ins = fragments6(&tcp6_frame(&s, SYN, &data), &[1232], 0xabcd);
    let outs = fragments6(&tcp6_frame(&to_be, SYN, &data), &[1232], 0xabcd);
    assert_eq!(ins.len(), 2);
    assert_eq!(rig.run(WAN, &ins[1]).0, Verdict::Drop(DropReason::Fragment));
    for (n, (i, o)) in ins.iter().zip(&outs).enumerate() {
        assert_eq!(
            rig.run(WAN, i),
            (Verdict::Tx(LAN), o.clone()),
            "fragment {n}"
        );
    }
    // Another datagram's later fragment (its first not seen): dropped.
    let other = fragments6(&tcp6_frame(&s, ACK, &data), &[1232], 0xabce);
    assert_eq!(
        rig.run(WAN, &other[1]).0,
        Verdict::Drop(DropReason::Fragment)
    );
}

/// IPv6 in each mode, byte for byte against etherparse: nat both ways (incremental
/// checksums over the pseudo-header), dr (MAC only), tun (ip6ip6 from lan's address),
/// neighbor discovery to the management thread, echo answered, hop limit checked before
/// any state, extension headers and fragments dropped by name, packet too big for tun.
#[test]
fn ipv6_modes() {
    let mut rig = Rig::new(256);
    let syn = client6("2001:db8:1::10", 40000, 64);
    // web6 is wrr 1:2 and the first pick of wrr goes to the heavier backend.
    let want_be = 11;
    let to_be = FrameSpec6 {
        src_mac: lan_mac(),
        dst_mac: be6_mac(want_be),
        dst_ip: be6(want_be),
        dst_port: 8080,
        hop_limit: 63,
        ..syn.clone()
    };
    let reply = FrameSpec6 {
        src_mac: be6_mac(want_be),
        dst_mac: lan_mac(),
        src_ip: be6(want_be),
        dst_ip: syn.src_ip,
        src_port: 8080,
        dst_port: 40000,
        hop_limit: 64,
    };
    let reply_out = FrameSpec6 {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: syn.dst_ip,
        src_port: 80,
        hop_limit: 63,
        ..reply.clone()
    };
    let dr = client6("2001:db8:1::20", 40001, 64);
    let tun = client6("2001:db8:1::30", 40002, 64);
    let tun_inner = tcp6_frame(
        &FrameSpec6 {
            hop_limit: 63,
            ..tun.clone()
        },
        SYN,
        b"",
    );
    let tun_out = ip6ip6_frame(
        &FrameSpec6 {
            src_mac: lan_mac(),
            dst_mac: be6_mac(11),
            src_ip: fixture::LAN_ADDR6,
            dst_ip: be6(11),
            hop_limit: 63,
            ..tun.clone()
        },
        &tun_inner[14..],
    );
    let echo = FrameSpec6 {
        dst_ip: ip6("2001:db8:1::10"),
        ..client6("2001:db8:1::10", 0, 64)
    };
    let echo_back = FrameSpec6 {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: echo.dst_ip,
        dst_ip: echo.src_ip,
        ..echo.clone()
    };
    // Extension headers: the next header field names hop-by-hop options (0) or a
    // fragment header (44, here of neither TCP nor UDP: the "header" is the TCP ports).
    let with_next = |nh: u8| {
        let mut f = tcp6_frame(&client6("2001:db8:1::10", 40003, 64), SYN, b"");
        f[14 + 6] = nh;
        f
    };
    check(
        &mut rig,
        vec![
            Case {
                name: "v6 nat: SYN to the heavier backend",
                port: WAN,
                input: tcp6_frame(&syn, SYN, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp6_frame(&to_be, SYN, b"")),
            },
            Case {
                name: "v6 nat: the reply, back to VIP:80",
                port: LAN,
                input: tcp6_frame(&reply, SYNACK, b"hi"),
                verdict: Verdict::Tx(WAN),
                output: Some(tcp6_frame(&reply_out, SYNACK, b"hi")),
            },
            Case {
                name: "v6 dr: only the MACs change",
                port: WAN,
                input: tcp6_frame(&dr, SYN, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tcp6_frame(
                    &FrameSpec6 {
                        src_mac: lan_mac(),
                        dst_mac: be6_mac(10),
                        hop_limit: 63,
                        ..dr.clone()
                    },
                    SYN,
                    b"",
                )),
            },
            Case {
                name: "v6 tun: ip6ip6 from lan's address",
                port: WAN,
                input: tcp6_frame(&tun, SYN, b""),
                verdict: Verdict::Tx(LAN),
                output: Some(tun_out),
            },
            Case {
                name: "v6 neighbor solicitation for the VIP: management",
                port: WAN,
                input: neighbor_solicit_frame(gw_mac(), fixture::GATEWAY6, ip6("2001:db8:1::10")),
                verdict: Verdict::Mgmt,
                output: None,
            },
            Case {
                name: "v6 echo to the VIP",
                port: WAN,
                input: icmpv6_echo_frame(&echo, 128, 7, 1, b"ping"),
                verdict: Verdict::Tx(WAN),
                output: Some(icmpv6_echo_frame(&echo_back, 129, 7, 1, b"ping")),
            },
            Case {
                name: "v6 hop limit 1",
                port: WAN,
                input: tcp6_frame(&client6("2001:db8:1::10", 40004, 1), SYN, b""),
                verdict: Verdict::Drop(DropReason::TtlExceeded),
                output: None,
            },
            Case {
                name: "v6 hop-by-hop options",
                port: WAN,
                input: with_next(0),
                verdict: Verdict::Drop(DropReason::Ipv6ExtensionHeader),
                output: None,
            },
            Case {
                name: "v6 fragment header",
                port: WAN,
                input: with_next(44),
                verdict: Verdict::Drop(DropReason::Fragment),
                output: None,
            },
            Case {
                name: "v6 not ours",
                port: WAN,
                input: tcp6_frame(&client6("2001:db8:1::99", 40005, 64), SYN, b""),
                verdict: Verdict::Drop(DropReason::NotOurs),
                output: None,
            },
        ],
    );
    assert_eq!(
        rig.flows6.len(),
        3,
        "the nat, dr and tun SYNs made flows; hop limit 1 did not"
    );
    assert_eq!(rig.flows.len(), 0, "no IPv4 flow");
    let nat = rig.flows6.lookup(&dataplane::flow::FlowKey {
        protocol: 6,
        src: syn.src_ip,
        src_port: 40000,
        dst: syn.dst_ip,
        dst_port: 80,
    });
    assert_eq!(nat.map(|r| r.init().backend), Some(be6(want_be)));

    // Too big for lan's MTU (1500) once tunnelled: "packet too big" to the client, from
    // the address of the port facing it (wan), quoting the packet.
    let big = tcp6_frame(&client6("2001:db8:1::30", 40006, 64), SYN, &[0u8; 1440]);
    let (v, out) = rig.run(WAN, &big);
    assert_eq!(v, Verdict::Tx(WAN));
    let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
        panic!("ipv6")
    };
    assert_eq!(ip.header().destination_addr(), ip6("2001:db8:99::1"));
    assert_eq!(ip.header().source_addr(), fixture::WAN_ADDR6);
    let Some(etherparse::TransportSlice::Icmpv6(i)) = p.transport else {
        panic!("icmpv6")
    };
    assert_eq!(
        i.icmp_type(),
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1460 }
    );
    let (src, dst) = (ip.header().source(), ip.header().destination());
    assert_eq!(
        i.icmp_type().calc_checksum(src, dst, i.payload()).unwrap(),
        i.checksum()
    );
    assert_eq!(
        &i.payload()[..40],
        &big[14..54],
        "the original header is quoted"
    );
    assert_eq!(out.len(), 14 + 1280, "as much as fits the minimum MTU");
}

/// fnat both ways, IPv4 and IPv6: toward the backend the source becomes the local address
/// and a local port (the backend needs no route to the client), the backend's reply to that
/// address and port goes back as VIP:80 -> client; checksums byte for byte against
/// etherparse; when every local port toward the backend is taken, the new flow is dropped
/// as `fnat_ports_exhausted`.
#[test]
fn fnat_both_ways() {
    let mut rig = Rig::new(256);
    let syn = client("203.0.113.60", 80, 40000, 64);
    let (v, out) = rig.run(WAN, &tcp_frame(&syn, SYN, b""));
    assert_eq!(v, Verdict::Tx(LAN));
    let key = dataplane::flow::FlowKey {
        protocol: 6,
        src: syn.src_ip,
        src_port: 40000,
        dst: syn.dst_ip,
        dst_port: 80,
    };
    let f = rig.flows.lookup(&key).expect("flow").init();
    assert_eq!(f.local, ip("10.1.0.2"));
    assert!((1024..=1025).contains(&f.local_port));
    let to_be = FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(10),
        src_ip: ip("10.1.0.2"),
        src_port: f.local_port,
        dst_ip: ip("10.1.0.10"),
        dst_port: 8080,
        ttl: 63,
        ..syn.clone()
    };
    assert_eq!(out, tcp_frame(&to_be, SYN, b""));
    let reply = FrameSpec {
        src_mac: be_mac(10),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.10"),
        src_port: 8080,
        dst_ip: ip("10.1.0.2"),
        dst_port: f.local_port,
        ttl: 64,
        ..Default::default()
    };
    let back = FrameSpec {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: syn.dst_ip,
        src_port: 80,
        dst_ip: syn.src_ip,
        dst_port: 40000,
        ttl: 63,
        ..reply.clone()
    };
    let (v, out) = rig.run(LAN, &tcp_frame(&reply, SYNACK, b"hello"));
    assert_eq!(
        (v, out),
        (Verdict::Tx(WAN), tcp_frame(&back, SYNACK, b"hello"))
    );
    // The client's ACK and data follow the flow; the state went both ways (as nat).
    let (v, out) = rig.run(WAN, &tcp_frame(&syn, ACK, b"GET /"));
    assert_eq!(
        (v, out),
        (Verdict::Tx(LAN), tcp_frame(&to_be, ACK, b"GET /"))
    );
    assert_eq!(
        rig.flows.lookup(&key).unwrap().state(),
        FlowState::Established
    );
    // Two local ports (1024-1025): a second client gets the other one, a third none.
    let (v, _) = rig.run(
        WAN,
        &tcp_frame(&client("203.0.113.60", 80, 40001, 64), SYN, b""),
    );
    assert_eq!(v, Verdict::Tx(LAN));
    let (v, _) = rig.run(
        WAN,
        &tcp_frame(&client("203.0.113.60", 80, 40002, 64), SYN, b""),
    );
    assert_eq!(v, Verdict::Drop(DropReason::FnatPortsExhausted));
    // A segment with no flow is dropped (its replies could not be translated).
    let (v, _) = rig.run(
        WAN,
        &tcp_frame(&client("203.0.113.60", 80, 40003, 64), ACK, b""),
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoFlow));

    // IPv6.
    let syn6 = client6("2001:db8:1::60", 41000, 64);
    let (v, out) = rig.run(WAN, &tcp6_frame(&syn6, SYN, b""));
    assert_eq!(v, Verdict::Tx(LAN));
    let key6 = dataplane::flow::FlowKey {
        protocol: 6,
        src: syn6.src_ip,
        src_port: 41000,
        dst: syn6.dst_ip,
        dst_port: 80,
    };
    let f6 = rig.flows6.lookup(&key6).expect("flow6").init();
    assert_eq!(f6.local, ip6("fd00:1::2"));
    let to_be6 = FrameSpec6 {
        src_mac: lan_mac(),
        dst_mac: be6_mac(10),
        src_ip: ip6("fd00:1::2"),
        src_port: f6.local_port,
        dst_ip: be6(10),
        dst_port: 8080,
        hop_limit: 63,
    };
    assert_eq!(out, tcp6_frame(&to_be6, SYN, b""));
    let reply6 = FrameSpec6 {
        src_mac: be6_mac(10),
        dst_mac: lan_mac(),
        src_ip: be6(10),
        src_port: 8080,
        dst_ip: ip6("fd00:1::2"),
        dst_port: f6.local_port,
        hop_limit: 64,
    };
    let back6 = FrameSpec6 {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: syn6.dst_ip,
        src_port: 80,
        dst_ip: syn6.src_ip,
        dst_port: 41000,
        hop_limit: 63,
    };
    let (v, out) = rig.run(LAN, &tcp6_frame(&reply6, SYNACK, b"hi6"));
    assert_eq!(
        (v, out),
        (Verdict::Tx(WAN), tcp6_frame(&back6, SYNACK, b"hi6"))
    );
}

/// fnat with PROXY protocol v2: the client's first data reaches the backend behind a
/// PROXY header (client 192.0.2.1:40000 -> VIP 203.0.113.70:80), again on a
/// retransmission; later client segments move by the header's 28 bytes, the backend's
/// acknowledgements and SACK edges move back, its SYN-ACK's MSS is lowered by 28; a pure
/// ACK before any data is left alone. Every frame byte for byte against etherparse.
#[test]
fn fnat_proxy_protocol_v2() {
    use etherparse::TcpOptionElement::{MaximumSegmentSize, SelectiveAcknowledgement};
    let mut rig = Rig::new(256);
    let mut spec = fixture::spec(
        0,
        "pp",
        ip("203.0.113.70"),
        80,
        IpProtocol::TCP,
        Forward::Fnat,
        SchedulerKind::Rr,
        0,
        &[(ip("10.1.0.10"), 8080, 1)],
    );
    spec.local_addresses = vec![ip("10.1.0.2").into()];
    spec.local_ports = (2000, 2000);
    spec.proxy = true;
    rig.snap.services = std::sync::Arc::new(Services::new(vec![Service::build(
        spec,
        Default::default(),
        251,
    )]));
    let cli = client("203.0.113.70", 80, 40000, 64);
    let to_be = FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(10),
        src_ip: ip("10.1.0.2"),
        src_port: 2000,
        dst_ip: ip("10.1.0.10"),
        dst_port: 8080,
        ttl: 63,
        ..cli.clone()
    };
    let from_be = FrameSpec {
        src_mac: be_mac(10),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.10"),
        src_port: 8080,
        dst_ip: ip("10.1.0.2"),
        dst_port: 2000,
        ttl: 64,
        ..Default::default()
    };
    let to_cli = FrameSpec {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: cli.dst_ip,
        src_port: 80,
        dst_ip: cli.src_ip,
        dst_port: 40000,
        ttl: 63,
        ..Default::default()
    };
    let run = |rig: &mut Rig, port, f: Vec<u8>| rig.run(port, &f);
    // The SYN (ISN 1000): only the addresses change.
    let (v, out) = run(
        &mut rig,
        WAN,
        tcp_frame_with(&cli, SYN, 1000, None, &[], b""),
    );
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(LAN),
            tcp_frame_with(&to_be, SYN, 1000, None, &[], b"")
        )
    );
    // The SYN-ACK (ISN 5000, MSS 1460): the client learns MSS 1432.
    let (v, out) = run(
        &mut rig,
        LAN,
        tcp_frame_with(
            &from_be,
            SYN,
            5000,
            Some(1001),
            &[MaximumSegmentSize(1460)],
            b"",
        ),
    );
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(WAN),
            tcp_frame_with(
                &to_cli,
                SYN,
                5000,
                Some(1001),
                &[MaximumSegmentSize(1432)],
                b""
            )
        )
    );
    // The handshake's ACK, no data: unchanged.
    let (v, out) = run(
        &mut rig,
        WAN,
        tcp_frame_with(&cli, 0, 1001, Some(5001), &[], b""),
    );
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(LAN),
            tcp_frame_with(&to_be, 0, 1001, Some(5001), &[], b"")
        )
    );
    // The first data: the PROXY v2 header first (written out here from the specification).
    let mut pp = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00,
        0x0c,
    ];
    pp.extend([192, 0, 2, 1, 203, 0, 113, 70]);
    pp.extend(40000u16.to_be_bytes());
    pp.extend(80u16.to_be_bytes());
    let mut first = pp.clone();
    first.extend(b"GET /");
    let data = tcp_frame_with(&cli, 0x08, 1001, Some(5001), &[], b"GET /");
    let want = tcp_frame_with(&to_be, 0x08, 1001, Some(5001), &[], &first);
    let (v, out) = run(&mut rig, WAN, data.clone());
    assert_eq!((v, out), (Verdict::Tx(LAN), want.clone()));
    // Retransmitted: the same bytes again.
    let (v, out) = run(&mut rig, WAN, data);
    assert_eq!(
        (v, out),
        (Verdict::Tx(LAN), want),
        "a retransmission carries the header again"
    );
    // Later data moves by 28.
    let (v, out) = run(
        &mut rig,
        WAN,
        tcp_frame_with(&cli, 0x08, 1006, Some(5001), &[], b"xyz"),
    );
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(LAN),
            tcp_frame_with(&to_be, 0x08, 1034, Some(5001), &[], b"xyz")
        )
    );
    // The backend acknowledges 1001 + 28 + 5 and SACKs 1044..1054: the client sees
    // 1006 and 1016..1026.
    let sack = |a, b| SelectiveAcknowledgement((a, b), [None, None, None]);
    let (v, out) = run(
        &mut rig,
        LAN,
        tcp_frame_with(&from_be, 0, 5001, Some(1034), &[sack(1044, 1054)], b""),
    );
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(WAN),
            tcp_frame_with(&to_cli, 0, 5001, Some(1006), &[sack(1016, 1026)], b"")
        )
    );
    // An acknowledgement of part of the header only maps to the first data byte.
    let (_, out) = run(
        &mut rig,
        LAN,
        tcp_frame_with(&from_be, 0, 5001, Some(1010), &[], b""),
    );
    assert_eq!(out, tcp_frame_with(&to_cli, 0, 5001, Some(1001), &[], b""));
}

/// snat: a backend's own connection to the world leaves from wan's address and a port of
/// the rule's range, its replies come back to it; UDP too; a host outside the rule's
/// source prefix is not translated (not ours).
#[test]
fn snat_out_and_back() {
    let mut rig = Rig::new(256);
    let mut snap = (*rig.snap.snat).clone();
    snap.push(SnatRule {
        source: (ip("10.1.0.0").into(), 24),
        port: WAN,
        to: vec![ip("203.0.113.2").into()],
        ports: (40000, 40001),
    });
    rig.snap.snat = std::sync::Arc::new(snap);
    let out_spec = FrameSpec {
        src_mac: be_mac(10),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.10"),
        src_port: 51000,
        dst_ip: ip("198.51.100.7"),
        dst_port: 443,
        ttl: 64,
        ..Default::default()
    };
    let (v, out) = rig.run(LAN, &tcp_frame(&out_spec, SYN, b""));
    assert_eq!(v, Verdict::Tx(WAN));
    let key = dataplane::flow::FlowKey {
        protocol: 6,
        src: out_spec.src_ip,
        src_port: 51000,
        dst: out_spec.dst_ip,
        dst_port: 443,
    };
    let f = rig.flows.lookup(&key).expect("snat flow").init();
    assert_eq!(f.local, ip("203.0.113.2"));
    assert!((40000..=40001).contains(&f.local_port));
    let leaving = FrameSpec {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: ip("203.0.113.2"),
        src_port: f.local_port,
        ttl: 63,
        ..out_spec.clone()
    };
    assert_eq!(out, tcp_frame(&leaving, SYN, b""));
    let reply = FrameSpec {
        src_mac: gw_mac(),
        dst_mac: wan_mac(),
        src_ip: ip("198.51.100.7"),
        src_port: 443,
        dst_ip: ip("203.0.113.2"),
        dst_port: f.local_port,
        ttl: 60,
        ..Default::default()
    };
    let back = FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(10),
        dst_ip: ip("10.1.0.10"),
        dst_port: 51000,
        ttl: 59,
        ..reply.clone()
    };
    let (v, out) = rig.run(WAN, &tcp_frame(&reply, SYNACK, b"tls"));
    assert_eq!(
        (v, out),
        (Verdict::Tx(LAN), tcp_frame(&back, SYNACK, b"tls"))
    );
    // UDP from the other backend.
    let dns = FrameSpec {
        src_mac: be_mac(11),
        src_ip: ip("10.1.0.11"),
        src_port: 53000,
        dst_port: 53,
        ..out_spec.clone()
    };
    let (v, out) = rig.run(LAN, &udp_frame(&dns, b"q"));
    assert_eq!(v, Verdict::Tx(WAN));
    let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip4)) = &p.net else {
        panic!("ipv4")
    };
    assert_eq!(ip4.header().source_addr(), ip("203.0.113.2"));
    // Outside 10.1.0.0/24: not translated.
    let other = FrameSpec {
        src_ip: ip("10.2.0.5"),
        ..out_spec.clone()
    };
    assert_eq!(
        rig.run(LAN, &tcp_frame(&other, SYN, b"")).0,
        Verdict::Drop(DropReason::NotOurs)
    );
    assert_eq!(rig.c.snat.connections.get(), 2);
}

/// snat of ICMP echo: a backend's ping leaves from the rule's `to` address with a
/// translated identifier, the reply comes back with the backend's own identifier (IPv4:
/// ICMP checksum without pseudo-header; IPv6: ICMPv6's, with it); byte for byte against
/// etherparse.
#[test]
fn snat_icmp_echo() {
    let mut rig = Rig::new(256);
    rig.snap.snat = std::sync::Arc::new(vec![
        SnatRule {
            source: (ip("10.1.0.0").into(), 24),
            port: WAN,
            to: vec![ip("203.0.113.2").into()],
            ports: (7000, 7000),
        },
        SnatRule {
            source: (ip6("fd00:1::").into(), 64),
            port: WAN,
            to: vec![ip6("2001:db8:1::2").into()],
            ports: (7000, 7000),
        },
    ]);
    let ping = FrameSpec {
        src_mac: be_mac(10),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.10"),
        dst_ip: ip("198.51.100.7"),
        ttl: 64,
        ..Default::default()
    };
    let (v, out) = rig.run(LAN, &icmp_echo_frame(&ping, 8, 0x1234, 1, b"abcd"));
    let leaving = FrameSpec {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: ip("203.0.113.2"),
        ttl: 63,
        ..ping.clone()
    };
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(WAN),
            icmp_echo_frame(&leaving, 8, 7000, 1, b"abcd")
        )
    );
    let pong = FrameSpec {
        src_mac: gw_mac(),
        dst_mac: wan_mac(),
        src_ip: ip("198.51.100.7"),
        dst_ip: ip("203.0.113.2"),
        ttl: 60,
        ..Default::default()
    };
    let (v, out) = rig.run(WAN, &icmp_echo_frame(&pong, 0, 7000, 1, b"abcd"));
    let back = FrameSpec {
        src_mac: lan_mac(),
        dst_mac: be_mac(10),
        dst_ip: ip("10.1.0.10"),
        ttl: 59,
        ..pong.clone()
    };
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(LAN),
            icmp_echo_frame(&back, 0, 0x1234, 1, b"abcd")
        )
    );
    // A ping of the VIP is still answered by ferrovs.
    let vip = FrameSpec {
        dst_ip: ip("203.0.113.10"),
        ..client("203.0.113.10", 0, 0, 64)
    };
    assert_eq!(
        rig.run(WAN, &icmp_echo_frame(&vip, 8, 9, 9, b"x")).0,
        Verdict::Tx(WAN)
    );

    let ping6 = FrameSpec6 {
        src_mac: be6_mac(10),
        dst_mac: lan_mac(),
        src_ip: be6(10),
        dst_ip: ip6("2001:db8:77::7"),
        hop_limit: 64,
        ..Default::default()
    };
    let (v, out) = rig.run(LAN, &icmpv6_echo_frame(&ping6, 128, 0x4321, 2, b"v6"));
    let leaving6 = FrameSpec6 {
        src_mac: wan_mac(),
        dst_mac: gw_mac(),
        src_ip: ip6("2001:db8:1::2"),
        hop_limit: 63,
        ..ping6.clone()
    };
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(WAN),
            icmpv6_echo_frame(&leaving6, 128, 7000, 2, b"v6")
        )
    );
    let pong6 = FrameSpec6 {
        src_mac: gw_mac(),
        dst_mac: wan_mac(),
        src_ip: ip6("2001:db8:77::7"),
        dst_ip: ip6("2001:db8:1::2"),
        hop_limit: 60,
        ..Default::default()
    };
    let (v, out) = rig.run(WAN, &icmpv6_echo_frame(&pong6, 129, 7000, 2, b"v6"));
    let back6 = FrameSpec6 {
        src_mac: lan_mac(),
        dst_mac: be6_mac(10),
        dst_ip: be6(10),
        hop_limit: 59,
        ..pong6.clone()
    };
    assert_eq!(
        (v, out),
        (
            Verdict::Tx(LAN),
            icmpv6_echo_frame(&back6, 129, 0x4321, 2, b"v6")
        )
    );
}

/// ICMP errors follow the flow they quote (nat): a router's "unreachable" about the
/// client-bound reply (quoting VIP:80 -> client) goes to the backend with the quote put
/// back as the backend sent it; the backend's own "port unreachable" about the
/// translated packet (quoting client -> backend:8080) goes to the client, from the VIP,
/// quoting client -> VIP:80. Outer and quoted headers, checksums included, against
/// etherparse.
#[test]
fn icmp_errors_follow_the_flow() {
    let mut rig = Rig::new(256);
    let syn = client("203.0.113.10", 80, 40000, 64);
    assert_eq!(rig.run(WAN, &tcp_frame(&syn, SYN, b"")).0, Verdict::Tx(LAN));
    let key = dataplane::flow::FlowKey {
        protocol: 6,
        src: syn.src_ip,
        src_port: 40000,
        dst: syn.dst_ip,
        dst_port: 80,
    };
    let be = rig.flows.lookup(&key).unwrap().init().backend;
    let be_last = be.octets()[3];
    // The quoted packets: an IPv4 header and 8 bytes of TCP.
    let quote = |src: &str, sport: u16, dst: &str, dport: u16| {
        let s = FrameSpec {
            src_ip: ip(src),
            src_port: sport,
            dst_ip: ip(dst),
            dst_port: dport,
            ttl: 50,
            ..Default::default()
        };
        tcp_frame(&s, ACK, b"")[14..42].to_vec()
    };
    // 1. From the world, about the reply toward the client.
    let input = frames::icmp_unreachable_frame(
        gw_mac(),
        wan_mac(),
        ip("203.0.113.1"),
        ip("203.0.113.10"),
        64,
        &quote("203.0.113.10", 80, "192.0.2.1", 40000),
    );
    let want = frames::icmp_unreachable_frame(
        lan_mac(),
        be_mac(be_last),
        ip("203.0.113.1"),
        be,
        63,
        &quote(&be.to_string(), 8080, "192.0.2.1", 40000),
    );
    let (v, out) = rig.run(WAN, &input);
    assert_eq!((v, out), (Verdict::Tx(LAN), want));
    // 2. From the backend, about the packet it was sent.
    let input = frames::icmp_unreachable_frame(
        be_mac(be_last),
        lan_mac(),
        be,
        ip("192.0.2.1"),
        64,
        &quote("192.0.2.1", 40000, &be.to_string(), 8080),
    );
    let want = frames::icmp_unreachable_frame(
        wan_mac(),
        gw_mac(),
        ip("203.0.113.10"),
        ip("192.0.2.1"),
        63,
        &quote("192.0.2.1", 40000, "203.0.113.10", 80),
    );
    let (v, out) = rig.run(LAN, &input);
    assert_eq!((v, out), (Verdict::Tx(WAN), want));
    assert_eq!(rig.c.icmp_relayed.get(), 2);
    // 3. To the VIP about no flow: dropped as before (no service for it).
    let input = frames::icmp_unreachable_frame(
        gw_mac(),
        wan_mac(),
        ip("203.0.113.1"),
        ip("203.0.113.10"),
        64,
        &quote("203.0.113.10", 80, "192.0.2.99", 1),
    );
    assert_eq!(rig.run(WAN, &input).0, Verdict::Drop(DropReason::NoService));
}

/// An ICMP error about an snat flow's packet (quoting to:port -> remote) reaches the
/// backend that sent it, quoting what the backend sent.
#[test]
fn icmp_errors_follow_snat_flows() {
    let mut rig = Rig::new(256);
    rig.snap.snat = std::sync::Arc::new(vec![SnatRule {
        source: (ip("10.1.0.0").into(), 24),
        port: WAN,
        to: vec![ip("203.0.113.2").into()],
        ports: (40000, 40000),
    }]);
    let out = FrameSpec {
        src_mac: be_mac(10),
        dst_mac: lan_mac(),
        src_ip: ip("10.1.0.10"),
        src_port: 51000,
        dst_ip: ip("198.51.100.7"),
        dst_port: 443,
        ttl: 64,
        ..Default::default()
    };
    assert_eq!(rig.run(LAN, &tcp_frame(&out, SYN, b"")).0, Verdict::Tx(WAN));
    let quote = |src: &str, sport: u16| {
        let s = FrameSpec {
            src_ip: ip(src),
            src_port: sport,
            dst_ip: ip("198.51.100.7"),
            dst_port: 443,
            ttl: 50,
            ..Default::default()
        };
        tcp_frame(&s, SYN, b"")[14..42].to_vec()
    };
    let input = frames::icmp_unreachable_frame(
        gw_mac(),
        wan_mac(),
        ip("198.51.100.1"),
        ip("203.0.113.2"),
        64,
        &quote("203.0.113.2", 40000),
    );
    let want = frames::icmp_unreachable_frame(
        lan_mac(),
        be_mac(10),
        ip("198.51.100.1"),
        ip("10.1.0.10"),
        63,
        &quote("10.1.0.10", 51000),
    );
    assert_eq!(rig.run(WAN, &input), (Verdict::Tx(LAN), want));
}

/// A TCP segment's fields as etherparse reads them: (src, dst, src port, dst port, seq,
/// ack, SYN, ACK, RST, MSS option, payload length).
type Seg<A> = (
    A,
    A,
    u16,
    u16,
    u32,
    u32,
    bool,
    bool,
    bool,
    Option<u16>,
    usize,
);

/// The fields of a segment whose checksums the caller checked.
fn seg<A>(src: A, dst: A, t: &etherparse::TcpHeader, payload: &[u8]) -> Seg<A> {
    (
        src,
        dst,
        t.source_port,
        t.destination_port,
        t.sequence_number,
        t.acknowledgment_number,
        t.syn,
        t.ack,
        t.rst,
        mss_of(t),
        payload.len(),
    )
}

/// A TCP/IPv4 frame's fields, after checking both checksums.
fn tcp_fields(f: &[u8]) -> Seg<Ipv4Addr> {
    let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[14..])
        .unwrap()
        .to_header();
    assert_eq!(
        ip.calc_header_checksum(),
        ip.header_checksum,
        "IPv4 checksum"
    );
    let l4 = 14 + ip.header_len();
    let ts = etherparse::TcpHeaderSlice::from_slice(&f[l4..]).unwrap();
    let t = ts.to_header();
    let payload = &f[l4 + ts.slice().len()..14 + ip.total_len as usize];
    assert_eq!(
        t.calc_checksum_ipv4(&ip, payload).unwrap(),
        t.checksum,
        "TCP checksum"
    );
    seg(ip.source.into(), ip.destination.into(), &t, payload)
}

/// A TCP header's MSS option, if it has one.
fn mss_of(t: &etherparse::TcpHeader) -> Option<u16> {
    t.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    })
}

/// Under a flood (cookies on), a nat SYN gets a SYN-ACK with a cookie and no state; the
/// client's ACK with cookie + 1 makes the flow and becomes the SYN to the backend (the
/// client's ISN, the MSS the cookie carries); the backend's SYN-ACK is answered with the
/// ACK that completes its handshake; from then on the backend's numbers reach the client
/// as the cookie's, and the client's acknowledgements reach the backend as its own.
#[test]
fn syn_cookies_proxy_the_handshake() {
    use etherparse::TcpOptionElement::MaximumSegmentSize;
    use frames::tcp_frame_with;
    let mut rig = Rig::new(64);
    rig.cookies = dataplane::synproxy::SynCookies {
        active: true,
        secret: 0x5eed,
    };
    let (client_ip, vip) = (ip("192.0.2.1"), ip("203.0.113.10"));
    let s = client("203.0.113.10", 80, 44300, 64);
    let syn = tcp_frame_with(&s, SYN, 7000, None, &[MaximumSegmentSize(1460)], b"");
    let (v, out) = rig.run(WAN, &syn);
    assert_eq!(v, Verdict::Tx(WAN), "the SYN-ACK goes back");
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&gw_mac().0[..], &wan_mac().0[..])
    );
    let (src, dst, sp, dp, cookie, ack, is_syn, is_ack, _, mss, _) = tcp_fields(&out);
    assert_eq!((src, dst, sp, dp, ack), (vip, client_ip, 80, 44300, 7001));
    assert!(is_syn && is_ack);
    assert_eq!(mss, Some(1460), "wan's MTU - 40");
    assert_eq!(rig.flows.len(), 0, "no state for a SYN");
    assert_eq!(rig.c.syn_cookies_sent.get(), 1);

    // A forged ACK (no cookie) makes nothing.
    let bad = tcp_frame_with(&s, ACK, 7001, Some(cookie ^ 0x40), &[], b"");
    assert_eq!(rig.run(WAN, &bad).0, Verdict::Drop(DropReason::NoFlow));
    assert_eq!(rig.flows.len(), 0);

    // The client's ACK: the flow, and the SYN to the backend.
    let third = tcp_frame_with(&s, ACK, 7001, Some(cookie.wrapping_add(1)), &[], b"");
    let (v, out) = rig.run(WAN, &third);
    assert_eq!(v, Verdict::Tx(LAN));
    let (src, dst, sp, dp, seq, _, is_syn, is_ack, _, mss, len) = tcp_fields(&out);
    assert_eq!(
        (src, sp, dp, seq, mss, len),
        (client_ip, 44300, 8080, 7000, Some(1460), 0)
    );
    assert!(is_syn && !is_ack);
    let be = dst;
    let key = dataplane::flow::FlowKey {
        protocol: 6,
        src: client_ip,
        src_port: 44300,
        dst: vip,
        dst_port: 80,
    };
    assert_eq!(rig.flows.lookup(&key).unwrap().state(), FlowState::SynSent);
    assert_eq!(rig.c.syn_cookies_valid.get(), 1);
    // The client's request before the backend answered: the SYN again, nothing else.
    let early = tcp_frame_with(
        &s,
        ACK | PSH,
        7001,
        Some(cookie.wrapping_add(1)),
        &[],
        b"GET",
    );
    let (v, out) = rig.run(WAN, &early);
    assert_eq!(v, Verdict::Tx(LAN));
    assert_eq!(tcp_fields(&out).4, 7000);
    assert!(tcp_fields(&out).6);

    // The backend's SYN-ACK: answered with the ACK of its handshake.
    let r = FrameSpec {
        src_mac: be_mac(be.octets()[3]),
        dst_mac: lan_mac(),
        src_ip: be,
        src_port: 8080,
        dst_ip: client_ip,
        dst_port: 44300,
        ttl: 64,
        ..Default::default()
    };
    let synack = tcp_frame_with(
        &r,
        SYNACK,
        90_000,
        Some(7001),
        &[MaximumSegmentSize(1460)],
        b"",
    );
    let (v, out) = rig.run(LAN, &synack);
    assert_eq!(v, Verdict::Tx(LAN), "the ACK goes back to the backend");
    assert_eq!(&out[..6], &be_mac(be.octets()[3]).0);
    let (src, dst, sp, dp, seq, ack, is_syn, is_ack, _, _, _) = tcp_fields(&out);
    assert_eq!(
        (src, dst, sp, dp, seq, ack),
        (client_ip, be, 44300, 8080, 7001, 90_001)
    );
    assert!(is_ack && !is_syn);
    assert_eq!(
        rig.flows.lookup(&key).unwrap().state(),
        FlowState::Established
    );
    assert_eq!(rig.c.syn_proxied.get(), 1);

    // Data both ways, in each side's own numbers.
    let down = tcp_frame_with(&r, ACK | PSH, 90_001, Some(7004), &[], b"HTTP/1.1 200");
    let (v, out) = rig.run(LAN, &down);
    assert_eq!(v, Verdict::Tx(WAN));
    let (src, dst, sp, _, seq, ack, _, _, _, _, len) = tcp_fields(&out);
    assert_eq!(
        (src, dst, sp, seq, ack, len),
        (vip, client_ip, 80, cookie.wrapping_add(1), 7004, 12)
    );
    let up = tcp_frame_with(
        &s,
        ACK | PSH,
        7001,
        Some(cookie.wrapping_add(13)),
        &[],
        b"GET",
    );
    let (v, out) = rig.run(WAN, &up);
    assert_eq!(v, Verdict::Tx(LAN));
    let (_, dst, _, dp, seq, ack, _, _, _, _, len) = tcp_fields(&out);
    assert_eq!((dst, dp, seq, ack, len), (be, 8080, 7001, 90_013, 3));

    // With cookies off, a SYN makes a flow as always.
    rig.cookies.active = false;
    let other = client("203.0.113.10", 80, 44301, 64);
    assert_eq!(
        rig.run(WAN, &tcp_frame(&other, SYN, b"")).0,
        Verdict::Tx(LAN)
    );
    assert_eq!(rig.flows.len(), 2);
}

/// An IPv6 TCP frame's fields, its checksum checked.
fn tcp6_fields(f: &[u8]) -> Seg<Ipv6Addr> {
    let ip = etherparse::Ipv6HeaderSlice::from_slice(&f[14..])
        .unwrap()
        .to_header();
    assert_eq!(ip.next_header, etherparse::IpNumber::TCP);
    let l4 = 14 + 40;
    let ts = etherparse::TcpHeaderSlice::from_slice(&f[l4..]).unwrap();
    let t = ts.to_header();
    let payload = &f[l4 + ts.slice().len()..l4 + ip.payload_length as usize];
    assert_eq!(
        t.calc_checksum_ipv6(&ip, payload).unwrap(),
        t.checksum,
        "TCP checksum"
    );
    seg(ip.source.into(), ip.destination.into(), &t, payload)
}

/// SYN cookies over IPv6 (nat): the SYN-ACK with a cookie (MSS: wan's MTU - 60), no
/// state; the ACK makes the flow and becomes the SYN to the backend; the backend's
/// SYN-ACK is answered; data both ways in each side's numbers.
#[test]
fn ipv6_syn_cookies_proxy_the_handshake() {
    use etherparse::TcpOptionElement::MaximumSegmentSize;
    use frames::tcp6_frame_with;
    let mut rig = Rig::new(64);
    rig.cookies = dataplane::synproxy::SynCookies {
        active: true,
        secret: 0x6eed,
    };
    let (client_ip, vip) = (ip6("2001:db8:99::1"), ip6("2001:db8:1::10"));
    let s = client6("2001:db8:1::10", 44600, 64);
    let syn = tcp6_frame_with(&s, SYN, 5000, None, &[MaximumSegmentSize(1440)], b"");
    let (v, out) = rig.run(WAN, &syn);
    assert_eq!(v, Verdict::Tx(WAN), "the SYN-ACK goes back");
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&gw_mac().0[..], &wan_mac().0[..])
    );
    let (src, dst, sp, dp, cookie, ack, is_syn, is_ack, _, mss, _) = tcp6_fields(&out);
    assert_eq!((src, dst, sp, dp, ack), (vip, client_ip, 80, 44600, 5001));
    assert!(is_syn && is_ack);
    assert_eq!(mss, Some(1440), "wan's MTU - 60");
    assert_eq!(rig.flows6.len(), 0, "no state for a SYN");

    let bad = tcp6_frame_with(&s, ACK, 5001, Some(cookie ^ 0x80), &[], b"");
    assert_eq!(rig.run(WAN, &bad).0, Verdict::Drop(DropReason::NoFlow));

    let third = tcp6_frame_with(&s, ACK, 5001, Some(cookie.wrapping_add(1)), &[], b"");
    let (v, out) = rig.run(WAN, &third);
    assert_eq!(v, Verdict::Tx(LAN));
    let (src, be, sp, dp, seq, _, is_syn, is_ack, _, mss, len) = tcp6_fields(&out);
    assert_eq!(
        (src, sp, dp, seq, mss, len),
        (client_ip, 44600, 8080, 5000, Some(1440), 0)
    );
    assert!(is_syn && !is_ack);
    assert!(be == be6(10) || be == be6(11), "{be}");
    assert_eq!(rig.flows6.len(), 1);
    assert_eq!(rig.c.syn_cookies_valid.get(), 1);

    let r = FrameSpec6 {
        src_mac: be6_mac(if be == be6(10) { 10 } else { 11 }),
        dst_mac: lan_mac(),
        src_ip: be,
        dst_ip: client_ip,
        src_port: 8080,
        dst_port: 44600,
        hop_limit: 64,
    };
    let synack = tcp6_frame_with(
        &r,
        SYNACK,
        70_000,
        Some(5001),
        &[MaximumSegmentSize(1440)],
        b"",
    );
    let (v, out) = rig.run(LAN, &synack);
    assert_eq!(v, Verdict::Tx(LAN), "the ACK goes back to the backend");
    let (src, dst, _, _, seq, ack, is_syn, is_ack, _, _, _) = tcp6_fields(&out);
    assert_eq!((src, dst, seq, ack), (client_ip, be, 5001, 70_001));
    assert!(is_ack && !is_syn);
    assert_eq!(rig.c.syn_proxied.get(), 1);

    let down = tcp6_frame_with(&r, ACK | PSH, 70_001, Some(5004), &[], b"200 OK");
    let (v, out) = rig.run(LAN, &down);
    assert_eq!(v, Verdict::Tx(WAN));
    let (src, dst, sp, _, seq, ack, _, _, _, _, len) = tcp6_fields(&out);
    assert_eq!(
        (src, dst, sp, seq, ack, len),
        (vip, client_ip, 80, cookie.wrapping_add(1), 5004, 6)
    );
    let up = tcp6_frame_with(
        &s,
        ACK | PSH,
        5001,
        Some(cookie.wrapping_add(7)),
        &[],
        b"GET",
    );
    let (v, out) = rig.run(WAN, &up);
    assert_eq!(v, Verdict::Tx(LAN));
    let (_, dst, _, dp, seq, ack, _, _, _, _, len) = tcp6_fields(&out);
    assert_eq!((dst, dp, seq, ack, len), (be, 8080, 5001, 70_007, 3));
}
