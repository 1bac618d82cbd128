//! `ferrovsctl import-keepalived` on keepalived.conf files written the way keepalived's
//! documentation and examples write them (DR, NAT, TUN, HTTP_GET with several urls,
//! TCP_CHECK, MISC_CHECK, DNS_CHECK, SSL_GET, groups, fwmark, VRRP): the output passes
//! `ferrovs --check`, maps what ferrovs has, and reports the rest line by line.
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{Forward, Protocol};
use mgmt::config::{CheckKind, Config};
use std::process::Command;

mod common;

/// Imports `file` (from tests/keepalived/) and checks the result; returns it and the notes.
fn import(file: &str, extra: &[&str]) -> (Config, String) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keepalived/").to_string() + file;
    let o = Command::new(env!("CARGO_BIN_EXE_ferrovsctl"))
        .args(["import-keepalived", &path])
        .args(extra)
        .output()
        .unwrap();
    let (yaml, notes) = (
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    );
    assert!(o.status.success(), "{file}: {notes}");
    let dir = common::scratch(&format!("keepalived-{file}"));
    let out = dir.join("ferrovs.yaml");
    std::fs::write(&out, &yaml).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_ferrovs"))
        .args(["--check", "--config"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{file}: the import fails --check:\n{}\n{yaml}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
    (mgmt::config::load(&yaml).unwrap(), notes)
}

fn has(notes: &str, want: &str) {
    assert!(
        notes.lines().any(|l| l.contains(want)),
        "want `{want}` in:\n{notes}"
    );
}

#[test]
fn keepalived_configs_import() {
    let (c, notes) = import(
        "dr.conf",
        &["--device", "0000:3b:00.0", "--address", "192.168.200.1/24"],
    );
    let s = &c.services[0];
    assert_eq!(
        (s.name.as_str(), s.port, s.forward, s.scheduler),
        ("vs-192.168.200.100-80", 80, Forward::Dr, SchedulerKind::Wlc)
    );
    assert_eq!(
        s.backends.iter().map(|b| b.weight).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(c.ports[0].device, "0000:3b:00.0");
    has(&notes, "line 2: global_defs: not imported");
    // HTTP_GET: the first real server's check, its first url, is the service's.
    let h = s.health_check.as_ref().expect("HTTP_GET imported");
    assert_eq!(
        (h.kind, h.path.as_deref(), h.expect_status, h.port),
        (CheckKind::Http, Some("/"), None, None)
    );
    assert_eq!(
        (h.interval_ms, h.timeout_ms, h.rise, h.fall),
        (6000, 3000, 1, 4)
    );
    assert_eq!(c.ports[0].kernel_interface.as_deref(), Some("fv-lan"));
    has(&notes, "line 21: digest: not imported");
    has(&notes, "line 23: url: only the first url is checked");
    has(&notes, "line 29: delay_before_retry: not imported");
    has(
        &notes,
        "line 34: the check of real_server 192.168.200.3: differs from the one on line 18",
    );
    assert!(
        !notes.contains("placeholder"),
        "device and address were given: {notes}"
    );

    let (c, notes) = import("nat.conf", &[]);
    let s = &c.services[0];
    assert_eq!(
        (s.forward, s.scheduler, s.protocol),
        (Forward::Nat, SchedulerKind::Rr, Protocol::Tcp)
    );
    assert_eq!(s.backends[0].port, None, "same port as the service");
    assert_eq!((s.backends[1].port, s.backends[1].weight), (Some(8080), 3));
    has(&notes, "line 2: vrrp_instance: not imported (VRRP failover");
    has(
        &notes,
        "line 17: persistence_timeout: not imported (ferrovs has no persistence",
    );
    let h = s.health_check.as_ref().expect("TCP_CHECK imported");
    assert_eq!(
        (h.kind, h.port, h.interval_ms, h.timeout_ms, h.rise, h.fall),
        (CheckKind::Tcp, None, 6000, 3000, 1, 2),
        "connect_port 1358 is the real server's port"
    );
    has(&notes, "line 29: inhibit_on_failure: not imported");
    has(&notes, "ports[0].device: a placeholder");
    has(&notes, "ports[0].addresses: 192.168.200.254/24 is a guess");

    let (c, notes) = import("tun.conf", &[]);
    let s = &c.services[0];
    assert_eq!(
        (s.forward, s.scheduler, s.backends.len()),
        (Forward::Tun, SchedulerKind::Sh, 2)
    );
    assert_eq!(s.health_check, None);
    assert_eq!(c.ports[0].kernel_interface, None);
    has(&notes, "line 10: MISC_CHECK for real_server 172.16.2.11: not imported (ferrovs checks tcp and http)");
    has(&notes, "line 17: MISC_CHECK for real_server 172.16.2.12");

    let (c, notes) = import("groups.conf", &[]);
    assert_eq!(c.services.len(), 1, "only the plain virtual_server");
    assert_eq!(
        (c.services[0].scheduler, c.services[0].backends[0].port),
        (SchedulerKind::Lc, Some(80))
    );
    has(&notes, "line 2: virtual_server_group: not imported");
    has(&notes, "line 7: virtual_server group: not imported");
    has(&notes, "line 15: virtual_server fwmark: not imported");

    let (c, notes) = import("dns.conf", &[]);
    let s = &c.services[0];
    assert_eq!(
        (s.protocol, s.scheduler, s.port),
        (Protocol::Udp, SchedulerKind::Sh, 53)
    );
    has(&notes, "line 7: sorry_server: not imported");
    has(&notes, "line 11: DNS_CHECK for real_server 10.20.1.1");

    let (c, notes) = import("ssl.conf", &[]);
    assert_eq!(c.services[0].scheduler, SchedulerKind::Wlc);
    has(&notes, "line 4: lb_algo sed: imported as wlc");
    has(&notes, "line 11: SSL_GET for real_server 10.30.1.1");
}
