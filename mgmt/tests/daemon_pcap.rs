//! The real `ferrovs` binary on a net_pcap port: an input capture with ARP requests
//! (VIP, local, foreign, spoofed senders), client traffic for each mode (nat, dr, tun) and
//! malformed frames; after SIGTERM the output capture holds exactly the expected packets;
//! the same for IPv6 (neighbor discovery, nat, echo, an extension header); and an ARP
//! flood.
use dataplane::wire::{arp, MacAddr, TcpFlags};
#[path = "../../dataplane/tests/common/frames.rs"]
mod frames;
use frames::{arp_frame, ipip_frame, tcp_frame, FrameSpec};
use frames::{
    icmpv6_echo_frame, neighbor_advert_frame, neighbor_solicit_frame, tcp6_frame, FrameSpec6,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

mod common;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Runs the real daemon for 3 s on one net_pcap port `p0` (MAC 02:00:00:00:0a:01, address
/// `address`) replaying `input`, with `rest` (YAML) after the port; returns the frames it
/// sent and its log.
fn run_capture(name: &str, address: &str, input: &[Vec<u8>], rest: &str) -> (Vec<Vec<u8>>, String) {
    let dir = common::scratch(name);
    let (inp, out, cfgp) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("ferrovs.yaml"),
    );
    dataplane::pcap::write(std::fs::File::create(&inp).unwrap(), input).unwrap();
    std::fs::write(
        &cfgp,
        format!(
            r#"
dpdk: {{ cores: "0-1", hugepages: false, memory_mb: 256, file_prefix: "ferrovs-{name}-{pid}" }}
ports:
  - {{ name: p0, device: "net_pcap0,rx_pcap={inp},tx_pcap={out}", mac: "02:00:00:00:0a:01", addresses: ["{address}"] }}
api: {{ listen: "127.0.0.1:0" }}
{rest}"#,
            pid = std::process::id(),
            inp = inp.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let daemon = common::Ferrovs::start(&cfgp);
    std::thread::sleep(Duration::from_secs(3));
    let log = daemon.stop();
    let got = dataplane::pcap::read(std::fs::File::open(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (got, log)
}

#[test]
fn daemon_forwards_and_answers_arp_from_a_capture() {
    let lb = MacAddr([2, 0, 0, 0, 0x0a, 1]);
    let cli = MacAddr([2, 0, 0, 0, 0, 0x50]);
    let be = |n: u8| MacAddr([2, 0, 0, 0, 0x10, n]);
    let spoof = MacAddr([2, 0, 0, 0, 0, 0x66]);
    let other = MacAddr([2, 0, 0, 0, 0, 0x60]);
    let syn = |vip: &str, sport: u16| FrameSpec {
        src_mac: cli,
        dst_mac: lb,
        src_ip: ip("10.0.0.50"),
        dst_ip: ip(vip),
        src_port: sport,
        dst_port: 80,
        ..Default::default()
    };
    let input = vec![
        arp_frame(
            arp::OP_REQUEST,
            cli,
            ip("10.0.0.50"),
            MacAddr::ZERO,
            ip("10.0.0.10"),
        ), // VIP
        arp_frame(
            arp::OP_REQUEST,
            cli,
            ip("10.0.0.50"),
            MacAddr::ZERO,
            ip("10.0.0.1"),
        ), // local
        arp_frame(
            arp::OP_REQUEST,
            cli,
            ip("10.0.0.50"),
            MacAddr::ZERO,
            ip("10.0.0.77"),
        ), // foreign
        arp_frame(
            arp::OP_REQUEST,
            spoof,
            ip("10.0.0.10"),
            MacAddr::ZERO,
            ip("10.0.0.10"),
        ), // a GARP claiming the VIP
        arp_frame(
            arp::OP_REQUEST,
            spoof,
            ip("10.0.0.1"),
            MacAddr::ZERO,
            ip("10.0.0.50"),
        ), // one claiming the port's address
        arp_frame(
            arp::OP_REQUEST,
            spoof,
            ip("192.0.2.9"),
            MacAddr::ZERO,
            ip("10.0.0.1"),
        ), // off-subnet sender
        arp_frame(
            arp::OP_REQUEST,
            other,
            ip("10.0.0.60"),
            MacAddr::ZERO,
            ip("10.0.0.1"),
        ), // on-link: learned
        tcp_frame(&syn("10.0.0.10", 40000), TcpFlags::SYN, b""), // nat
        tcp_frame(&syn("10.0.0.11", 40001), TcpFlags::SYN, b""), // dr
        tcp_frame(&syn("10.0.0.12", 40004), TcpFlags::SYN, b""), // tun
        {
            let mut f = tcp_frame(&syn("10.0.0.10", 40002), TcpFlags::SYN, b"");
            f.truncate(30); // malformed
            f
        },
        tcp_frame(&syn("10.0.0.10", 40003), TcpFlags::ACK, b""), // nat, no flow
    ];
    let (got, log) = run_capture(
        "daemon",
        "10.0.0.1/24",
        &input,
        r#"neighbors:
  - { address: 10.0.0.20, mac: "02:00:00:00:10:20", port: p0 }
  - { address: 10.0.0.21, mac: "02:00:00:00:10:21", port: p0 }
  - { address: 10.0.0.22, mac: "02:00:00:00:10:22", port: p0 }
  - { address: 10.0.0.50, mac: "02:00:00:00:00:50", port: p0 }
services:
  - { name: web, vip: 10.0.0.10, port: 80, scheduler: rr, forward: nat, backends: [ { address: 10.0.0.20, port: 8080 } ] }
  - { name: direct, vip: 10.0.0.11, port: 80, scheduler: rr, forward: dr, backends: [ { address: 10.0.0.21 } ] }
  - { name: tunnel, vip: 10.0.0.12, port: 80, scheduler: rr, forward: tun, backends: [ { address: 10.0.0.22 } ] }
"#,
    );
    let nat_out = FrameSpec {
        src_mac: lb,
        dst_mac: be(0x20),
        dst_ip: ip("10.0.0.20"),
        dst_port: 8080,
        ttl: 63,
        ..syn("10.0.0.10", 40000)
    };
    let dr_out = FrameSpec {
        src_mac: lb,
        dst_mac: be(0x21),
        ttl: 63,
        ..syn("10.0.0.11", 40001)
    };
    let want = vec![
        // gratuitous ARP for each VIP at start
        arp_frame(
            arp::OP_REQUEST,
            lb,
            ip("10.0.0.10"),
            MacAddr::ZERO,
            ip("10.0.0.10"),
        ),
        arp_frame(
            arp::OP_REQUEST,
            lb,
            ip("10.0.0.11"),
            MacAddr::ZERO,
            ip("10.0.0.11"),
        ),
        arp_frame(
            arp::OP_REQUEST,
            lb,
            ip("10.0.0.12"),
            MacAddr::ZERO,
            ip("10.0.0.12"),
        ),
        // replies for the VIP and the local address, none for the foreign one
        arp_frame(arp::OP_REPLY, lb, ip("10.0.0.10"), cli, ip("10.0.0.50")),
        arp_frame(arp::OP_REPLY, lb, ip("10.0.0.1"), cli, ip("10.0.0.50")),
        // the off-subnet and the on-link askers get an answer; the spoofs none
        arp_frame(arp::OP_REPLY, lb, ip("10.0.0.1"), spoof, ip("192.0.2.9")),
        arp_frame(arp::OP_REPLY, lb, ip("10.0.0.1"), other, ip("10.0.0.60")),
        tcp_frame(&nat_out, TcpFlags::SYN, b""),
        tcp_frame(&dr_out, TcpFlags::SYN, b""),
        tun_out(lb, be(0x22)),
    ];
    same_frames(got, want, &log);
    // Learned: only the on-link sender; never a sender claiming our addresses or VIPs, nor
    // one outside the port's subnets.
    let learned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("neighbor learned"))
        .collect();
    assert!(learned.iter().any(|l| l.contains("ip=10.0.0.60 ")), "{log}");
    for spoofed in ["ip=10.0.0.10 ", "ip=10.0.0.1 ", "ip=192.0.2.9 "] {
        assert!(
            !learned.iter().any(|l| l.contains(spoofed)),
            "{spoofed} learned:\n{log}"
        );
    }
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// IPv6 on the real daemon: solicitations for the VIP and the port's address answered
/// (solicited, override, from the target), none for a foreign target nor for one that
/// arrives with a hop limit below 255; the VIP announced at start; a nat SYN forwarded to
/// its backend with a rewritten destination; an echo request to the VIP answered; an
/// extension header dropped; the soliciting client learned.
#[test]
fn daemon_speaks_ipv6_from_a_capture() {
    let lb = MacAddr([2, 0, 0, 0, 0x0a, 1]);
    let cli = MacAddr([2, 0, 0, 0, 0, 0x50]);
    let be = MacAddr([2, 0, 0, 0, 0x10, 0x20]);
    let (me, vip, client) = (ip6("2001:db8::1"), ip6("2001:db8::10"), ip6("2001:db8::50"));
    let syn = FrameSpec6 {
        src_mac: cli,
        dst_mac: lb,
        src_ip: client,
        dst_ip: vip,
        src_port: 40000,
        dst_port: 80,
        hop_limit: 64,
    };
    let mut low_hop = neighbor_solicit_frame(cli, client, vip);
    low_hop[14 + 7] = 64;
    let mut ext = tcp6_frame(
        &FrameSpec6 {
            src_port: 40001,
            ..syn.clone()
        },
        TcpFlags::SYN,
        b"",
    );
    ext[14 + 6] = 0; // hop-by-hop options
    let echo = FrameSpec6 {
        src_port: 0,
        dst_port: 0,
        ..syn.clone()
    };
    let input = vec![
        neighbor_solicit_frame(cli, client, vip),
        neighbor_solicit_frame(cli, client, me),
        neighbor_solicit_frame(cli, client, ip6("2001:db8::77")),
        low_hop,
        tcp6_frame(&syn, TcpFlags::SYN, b""),
        icmpv6_echo_frame(&echo, 128, 9, 1, b"ping6"),
        ext,
    ];
    let (got, log) = run_capture(
        "daemon6",
        "2001:db8::1/64",
        &input,
        r#"neighbors:
  - { address: "2001:db8::20", mac: "02:00:00:00:10:20", port: p0 }
services:
  - { name: web6, vip: "2001:db8::10", port: 80, scheduler: rr, forward: nat, backends: [ { address: "2001:db8::20", port: 8080 } ] }
"#,
    );
    let all_nodes = ip6("ff02::1");
    let want = vec![
        neighbor_advert_frame(lb, vip, MacAddr([0x33, 0x33, 0, 0, 0, 1]), all_nodes, false),
        neighbor_advert_frame(lb, vip, cli, client, true),
        neighbor_advert_frame(lb, me, cli, client, true),
        tcp6_frame(
            &FrameSpec6 {
                src_mac: lb,
                dst_mac: be,
                dst_ip: ip6("2001:db8::20"),
                dst_port: 8080,
                hop_limit: 63,
                ..syn.clone()
            },
            TcpFlags::SYN,
            b"",
        ),
        icmpv6_echo_frame(
            &FrameSpec6 {
                src_mac: lb,
                dst_mac: cli,
                src_ip: vip,
                dst_ip: client,
                ..echo.clone()
            },
            129,
            9,
            1,
            b"ping6",
        ),
    ];
    same_frames(got, want, &log);
    assert!(
        log.lines()
            .any(|l| l.contains("neighbor learned") && l.contains("ip=2001:db8::50 ")),
        "{log}"
    );
}

/// The output capture holds exactly `want`, in any order.
fn same_frames(mut got: Vec<Vec<u8>>, mut want: Vec<Vec<u8>>, log: &str) {
    got.sort();
    want.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "output capture:\n{got:02x?}\nlog:\n{log}"
    );
    assert_eq!(got, want);
}

/// The tun SYN as it must leave: Ethernet to the backend, an outer IPv4 header from the
/// port address to the backend (TTL, ident and DF of the inner one), then the inner
/// packet with its TTL decremented.
fn tun_out(lb: MacAddr, be: MacAddr) -> Vec<u8> {
    let inner = FrameSpec {
        src_mac: lb,
        dst_mac: be,
        src_ip: ip("10.0.0.50"),
        dst_ip: ip("10.0.0.12"),
        src_port: 40004,
        dst_port: 80,
        ttl: 63,
        ..Default::default()
    };
    let inner = tcp_frame(&inner, TcpFlags::SYN, b"");
    let outer = FrameSpec {
        src_mac: lb,
        dst_mac: be,
        src_ip: ip("10.0.0.1"),
        dst_ip: ip("10.0.0.22"),
        ttl: 63,
        ..Default::default()
    };
    ipip_frame(&outer, &inner[14..])
}

/// An ARP flood (3000 requests from distinct on-link senders, replayed at once; what
/// overflows the bounded queue to the management thread is counted there): each request
/// that reaches it is answered and its sender learned, but the log holds at most ten
/// "neighbor learned" lines a second and sums up the rest.
#[test]
fn arp_flood_is_answered_and_logged_in_bounds() {
    const N: u32 = 3000;
    let sender = |i: u32| {
        (
            MacAddr([2, 1, 0, 0, (i >> 8) as u8, i as u8]),
            Ipv4Addr::from(u32::from(ip("10.0.16.0")) + i),
        )
    };
    let input: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let (mac, a) = sender(i);
            arp_frame(arp::OP_REQUEST, mac, a, MacAddr::ZERO, ip("10.0.0.1"))
        })
        .collect();
    let (got, log) = run_capture("arpflood", "10.0.0.1/16", &input, "");
    let lb = MacAddr([2, 0, 0, 0, 0x0a, 1]);
    let replies = (0..N)
        .filter(|&i| {
            let (mac, a) = sender(i);
            got.contains(&arp_frame(arp::OP_REPLY, lb, ip("10.0.0.1"), mac, a))
        })
        .count();
    assert!(replies >= 500, "only {replies} of {N} requests answered");
    let lines = log
        .lines()
        .filter(|l| l.contains("neighbor learned"))
        .count() as u32;
    let summed: u32 = log
        .lines()
        .filter_map(|l| {
            l.split(" more neighbors learned")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .sum();
    assert!(
        lines <= 40,
        "{lines} lines of \"neighbor learned\" for {N} senders"
    );
    // Every sender whose request reached ferrovs was learned (a reply may still have been
    // lost on the way out), logged one by one or counted in a summary line.
    let learned = (lines + summed) as usize;
    assert!(
        (replies..=N as usize).contains(&learned),
        "{learned} learned, {replies} answered:\n{log}"
    );
}
