//! `ferrovsctl import-keepalived`: a keepalived.conf's LVS part as a ferrovs config.
//!
//! `virtual_server IP PORT` blocks become services (`lb_algo` -> `scheduler`, `lb_kind` ->
//! `forward`, `protocol`), `real_server IP PORT` blocks their backends (`weight`). What
//! `TCP_CHECK` and `HTTP_GET` become the service's `health_check` (`delay_loop` ->
//! `interval_ms`, `connect_timeout` -> `timeout_ms`, `connect_port` -> `port`, `retry` ->
//! `fall` = retry + 1, `rise: 1` as keepalived brings a server back after one good check;
//! `url { path status_code }` and `virtualhost` for http), with the port's
//! `kernel_interface` for the probes to leave through. What has no ferrovs equivalent is
//! reported line by line, never dropped silently: `persistence_timeout` (use `sh` or
//! `mh`), the other checkers (`SSL_GET`, `MISC_CHECK`, ...), `digest`, a real server whose
//! check differs from the service's first one (ferrovs checks every backend of a service
//! alike), and whole blocks such as `virtual_server_group`, `virtual_server fwmark`,
//! `vrrp_instance` (use BGP).
//! keepalived has no notion of ferrovs's ports: the output has one port whose device and
//! address the caller gives (else placeholders, reported as such).
#![forbid(unsafe_code)]
use crate::config::{BackendConf, CheckKind, HealthCheckConf, ServiceConf};
use dataplane::sched::SchedulerKind;
use dataplane::snapshot::{Forward, Protocol};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// One statement of keepalived.conf: its keyword, arguments, line and block, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub key: String,
    pub args: Vec<String>,
    pub line: usize,
    pub children: Vec<Node>,
}

/// Parses keepalived.conf's syntax: statements of words, `{ ... }` blocks, `#` and `!`
/// comments, quoted strings. An unbalanced brace is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<Node>, String> {
    let mut stack: Vec<Node> = vec![Node {
        key: String::new(),
        args: vec![],
        line: 0,
        children: vec![],
    }];
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let mut words: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let flush = |cur: &mut String, words: &mut Vec<String>| {
            if !cur.is_empty() {
                words.push(std::mem::take(cur));
            }
        };
        for c in raw.chars() {
            match c {
                '"' => quoted = !quoted,
                c if quoted => cur.push(c),
                '#' | '!' => break,
                '{' | '}' => {
                    flush(&mut cur, &mut words);
                    words.push(c.to_string());
                }
                c if c.is_whitespace() => flush(&mut cur, &mut words),
                c => cur.push(c),
            }
        }
        flush(&mut cur, &mut words);
        let mut stmt: Vec<String> = Vec::new();
        let end_stmt = |stmt: &mut Vec<String>, stack: &mut Vec<Node>, open: bool| {
            if stmt.is_empty() {
                return;
            }
            let node = Node {
                key: stmt[0].clone(),
                args: stmt[1..].to_vec(),
                line,
                children: vec![],
            };
            stmt.clear();
            if open {
                stack.push(node);
            } else if let Some(top) = stack.last_mut() {
                top.children.push(node);
            }
        };
        for w in words {
            match w.as_str() {
                "{" => {
                    if stmt.is_empty() {
                        return Err(format!("line {line}: `{{` without a keyword"));
                    }
                    end_stmt(&mut stmt, &mut stack, true);
                }
                "}" => {
                    end_stmt(&mut stmt, &mut stack, false);
                    if stack.len() < 2 {
                        return Err(format!("line {line}: `}}` closes nothing"));
                    }
                    let done = stack.pop().expect("checked");
                    stack.last_mut().expect("checked").children.push(done);
                }
                _ => stmt.push(w),
            }
        }
        end_stmt(&mut stmt, &mut stack, false);
    }
    if stack.len() != 1 {
        let open = stack.last().expect("not empty");
        return Err(format!(
            "line {}: `{}` is never closed",
            open.line, open.key
        ));
    }
    Ok(stack.pop().expect("root").children)
}

/// The result: the config as YAML and what could not be imported, each `line N: ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub yaml: String,
    pub notes: Vec<String>,
}

/// Where the one port of the output is: a device (PCI address or vdev) and an address.
#[derive(Debug, Clone, Default)]
pub struct PortChoice {
    pub device: Option<String>,
    pub address: Option<Ipv4Net>,
}

fn scheduler(algo: &str) -> Result<SchedulerKind, String> {
    match algo {
        "rr" | "wrr" | "lc" | "wlc" | "sh" | "mh" => Ok(algo.parse().expect("listed")),
        "sed" | "nq" => Err(format!("lb_algo {algo}: imported as wlc (its nearest)")),
        "dh" | "lblc" | "lblcr" => Err(format!(
            "lb_algo {algo}: imported as mh (consistent hashing)"
        )),
        other => Err(format!("lb_algo {other}: unknown, imported as wrr")),
    }
}

const CHECKERS: [&str; 7] = [
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
];

/// Converts parsed keepalived.conf statements.
pub fn import(nodes: &[Node], port: &PortChoice) -> Import {
    let mut notes = Vec::new();
    let mut services: Vec<ServiceConf> = Vec::new();
    for n in nodes {
        let l = n.line;
        match (n.key.as_str(), n.args.as_slice()) {
            ("virtual_server", [kind, ..]) if kind == "group" || kind == "fwmark" => notes.push(format!(
                "line {l}: virtual_server {kind}: not imported (ferrovs services are an address, port and protocol)"
            )),
            ("virtual_server", [ip, p]) => match (ip.parse::<Ipv4Addr>(), p.parse::<u16>()) {
                (Ok(vip), Ok(vport)) => {
                    if let Some(s) = service(n, vip, vport, &mut notes) {
                        services.push(s);
                    }
                }
                _ => notes.push(format!(
                    "line {l}: virtual_server {ip} {p}: not an IPv4 address and port: not imported"
                )),
            },
            ("virtual_server_group", _) => notes.push(format!(
                "line {l}: virtual_server_group: not imported (list each address as its own service)"
            )),
            ("vrrp_instance" | "vrrp_sync_group" | "vrrp_script", _) => notes.push(format!(
                "line {l}: {}: not imported (VRRP failover: ferrovs announces VIPs over BGP instead)",
                n.key
            )),
            ("global_defs" | "static_ipaddress" | "static_routes" | "static_rules", _) => {
                notes.push(format!("line {l}: {}: not imported", n.key))
            }
            _ => notes.push(format!("line {l}: {}: not imported (unknown here)", n.key)),
        }
    }
    let (device, address) = choose_port(port, &services, &mut notes);
    Import {
        yaml: render(&services, &device, address),
        notes,
    }
}

fn service(n: &Node, vip: Ipv4Addr, vport: u16, notes: &mut Vec<String>) -> Option<ServiceConf> {
    let mut s = ServiceConf {
        name: format!("vs-{vip}-{vport}"),
        vip: vip.into(),
        port: vport,
        protocol: Protocol::Tcp,
        scheduler: SchedulerKind::Wrr,
        forward: Forward::Nat,
        backends: vec![],
        health_check: None,
        flows_on_backend_down: Default::default(),
        local_addresses: vec![],
        proxy_protocol: None,
    };
    // keepalived's default delay_loop is 60 s.
    let mut interval_ms = 60_000;
    let mut first_check: Option<(HealthCheckConf, usize)> = None;
    for c in &n.children {
        let (l, arg) = (c.line, c.args.first().map(String::as_str).unwrap_or(""));
        match c.key.as_str() {
            "delay_loop" => match arg.parse::<u32>() {
                Ok(secs) if secs >= 1 => interval_ms = secs.saturating_mul(1000),
                _ => notes.push(format!("line {l}: delay_loop {arg}: not a number of seconds: 60 kept")),
            },
            "lb_algo" | "lvs_sched" => {
                s.scheduler = scheduler(arg).unwrap_or_else(|note| {
                    notes.push(format!("line {l}: {note}"));
                    match arg {
                        "sed" | "nq" => SchedulerKind::Wlc,
                        "dh" | "lblc" | "lblcr" => SchedulerKind::Mh,
                        _ => SchedulerKind::Wrr,
                    }
                })
            }
            "lb_kind" | "lvs_method" => match arg.to_ascii_uppercase().as_str() {
                "NAT" => s.forward = Forward::Nat,
                "DR" => s.forward = Forward::Dr,
                "TUN" => s.forward = Forward::Tun,
                other => notes.push(format!("line {l}: lb_kind {other}: unknown, imported as NAT")),
            },
            "protocol" => match arg.to_ascii_uppercase().as_str() {
                "TCP" => s.protocol = Protocol::Tcp,
                "UDP" => s.protocol = Protocol::Udp,
                other => {
                    notes.push(format!(
                        "line {}: virtual_server {vip} {vport}: protocol {other}: not imported (ferrovs serves TCP and UDP)",
                        n.line
                    ));
                    return None;
                }
            },
            "persistence_timeout" | "persistence_granularity" => notes.push(format!(
                "line {l}: {}: not imported (ferrovs has no persistence: scheduler sh or mh keeps a client on one backend while the backends do not change)",
                c.key
            )),
            "retry" | "delay_before_retry" | "inhibit_on_failure" | "alpha" | "omega" | "quorum"
            | "hysteresis" | "quorum_up" | "quorum_down" => notes.push(format!(
                "line {l}: {}: not imported (ferrovs's checks have rise and fall per service)",
                c.key
            )),
            "real_server" => {
                if let Some((b, check)) = backend(c, &s, notes) {
                    match (check, &first_check) {
                        (Some((h, hl)), None) => first_check = Some((h, hl)),
                        (Some((h, hl)), Some((first, fl))) if h != *first => notes.push(format!(
                            "line {hl}: the check of real_server {}: differs from the one on line {fl}, which checks every backend of the service (ferrovs checks a service's backends alike)",
                            b.address
                        )),
                        _ => {}
                    }
                    s.backends.push(b);
                }
            }
            other => notes.push(format!("line {l}: {other}: not imported")),
        }
    }
    if let Some((mut h, l)) = first_check {
        h.interval_ms = interval_ms;
        if h.timeout_ms >= interval_ms {
            h.timeout_ms = interval_ms / 2;
            notes.push(format!(
                "line {l}: connect_timeout: not below delay_loop: timeout_ms {} (half the interval)",
                h.timeout_ms
            ));
        }
        s.health_check = Some(h);
    }
    Some(s)
}

/// A `TCP_CHECK` or `HTTP_GET` block of the real server at `rs_port` as a ferrovs check
/// (its interval is the service's, set by the caller).
fn checker(d: &Node, rs_port: u16, notes: &mut Vec<String>) -> HealthCheckConf {
    let mut h = HealthCheckConf {
        kind: if d.key == "TCP_CHECK" {
            CheckKind::Tcp
        } else {
            CheckKind::Http
        },
        port: None,
        path: None,
        expect_status: None,
        host: None,
        interval_ms: 60_000,
        // keepalived's defaults: connect_timeout 5 s, retry 1.
        timeout_ms: 5000,
        rise: 1,
        fall: 2,
    };
    for o in &d.children {
        let (l, arg) = (o.line, o.args.first().map(String::as_str).unwrap_or(""));
        match (o.key.as_str(), arg.parse::<u32>()) {
            ("connect_timeout", Ok(secs)) if secs >= 1 => h.timeout_ms = secs.saturating_mul(1000),
            ("connect_port", Ok(p)) if (1..=65535).contains(&p) => {
                h.port = Some(p as u16).filter(|&p| p != rs_port)
            }
            ("retry" | "nb_get_retry", Ok(n)) if n < 100 => h.fall = n + 1,
            ("virtualhost", _) if !arg.is_empty() => h.host = Some(arg.to_string()),
            ("url", _) if h.kind == CheckKind::Http => {
                let get = |k: &str| {
                    o.children
                        .iter()
                        .find(|c| c.key == k)
                        .and_then(|c| c.args.first())
                };
                if h.path.is_some() {
                    notes.push(format!("line {l}: url: only the first url is checked"));
                    continue;
                }
                h.path = get("path").cloned();
                h.expect_status = get("status_code")
                    .and_then(|c| c.parse().ok())
                    .filter(|&c| c != 200);
                if let Some(dg) = o.children.iter().find(|c| c.key == "digest") {
                    notes.push(format!(
                        "line {}: digest: not imported (the status code is checked)",
                        dg.line
                    ));
                }
            }
            ("delay_before_retry" | "warmup" | "fwmark" | "bindto" | "bind_port", _) => {
                notes.push(format!("line {l}: {}: not imported", o.key))
            }
            (k, _) => notes.push(format!("line {l}: {k} {arg}: not imported")),
        }
    }
    h
}

/// A real server, and its TCP_CHECK or HTTP_GET (with its line), if any.
fn backend(
    c: &Node,
    s: &ServiceConf,
    notes: &mut Vec<String>,
) -> Option<(BackendConf, Option<(HealthCheckConf, usize)>)> {
    let l = c.line;
    let (Some(Ok(address)), port) = (
        c.args.first().map(|a| a.parse::<Ipv4Addr>()),
        c.args.get(1).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        notes.push(format!(
            "line {l}: real_server {}: not an IPv4 address and port: not imported",
            c.args.join(" ")
        ));
        return None;
    };
    let mut b = BackendConf {
        address: address.into(),
        port: port.filter(|&p| p != s.port),
        weight: 1,
    };
    if s.forward != Forward::Nat && b.port.is_some() {
        notes.push(format!(
            "line {l}: real_server {address} {}: {} does not rewrite the port: imported with the service port {}",
            port.unwrap_or(0),
            s.forward,
            s.port
        ));
        b.port = None;
    }
    let mut check = None;
    for d in &c.children {
        let dl = d.line;
        match d.key.as_str() {
            "TCP_CHECK" | "HTTP_GET" if check.is_none() => {
                check = Some((checker(d, port.unwrap_or(s.port), notes), dl))
            }
            "weight" => match d.args.first().and_then(|w| w.parse::<u32>().ok()) {
                Some(w) if w <= 65535 => b.weight = w,
                _ => notes.push(format!("line {dl}: weight {}: not a weight 0..=65535: 1 kept", d.args.join(" "))),
            },
            k if CHECKERS.contains(&k) => notes.push(format!(
                "line {dl}: {k} for real_server {address}: not imported (ferrovs checks tcp and http)"
            )),
            "inhibit_on_failure" | "notify_up" | "notify_down" | "uthreshold" | "lthreshold" => {
                notes.push(format!("line {dl}: {}: not imported", d.key))
            }
            other => notes.push(format!("line {dl}: {other}: not imported")),
        }
    }
    Some((b, check))
}

/// The one port: the caller's, else a placeholder device and an address guessed from the
/// first real server's /24 (dr backends must be on a connected subnet), each reported.
fn choose_port(
    p: &PortChoice,
    services: &[ServiceConf],
    notes: &mut Vec<String>,
) -> (String, Ipv4Net) {
    let device = p.device.clone().unwrap_or_else(|| {
        notes.push("ports[0].device: a placeholder (0000:00:00.0): set your NIC's PCI address or a vdev (ferrovsctl import-keepalived --device)".into());
        "0000:00:00.0".into()
    });
    let address = p.address.unwrap_or_else(|| {
        let v4 = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        };
        let used: Vec<Ipv4Addr> = services
            .iter()
            .flat_map(|s| std::iter::once(s.vip).chain(s.backends.iter().map(|b| b.address)))
            .filter_map(v4)
            .collect();
        let first = services
            .iter()
            .flat_map(|s| s.backends.iter().map(|b| b.address))
            .find_map(v4)
            .unwrap_or(Ipv4Addr::new(10, 0, 0, 0));
        let net = u32::from(first) & 0xffff_ff00;
        let host = (1..255u32)
            .rev()
            .map(|h| Ipv4Addr::from(net | h))
            .find(|a| !used.contains(a))
            .unwrap_or(Ipv4Addr::from(net | 254));
        notes.push(format!(
            "ports[0].addresses: {host}/24 is a guess from the real servers' subnet: set ferrovs's own address (ferrovsctl import-keepalived --address)"
        ));
        Ipv4Net::new(host, 24).expect("24 is a valid prefix")
    });
    (device, address)
}

fn render(services: &[ServiceConf], device: &str, address: Ipv4Net) -> String {
    let mut y = String::new();
    y += "# Imported from keepalived.conf by `ferrovsctl import-keepalived`: read the notes it\n";
    y += "# printed, then `ferrovs --config FILE --check`. Keys: docs/config.md.\n";
    y += "dpdk:\n  cores: \"0-1\"          # core 0: management, core 1: a worker; add cores for more workers\n";
    y += "  memory_mb: 1024\n  hugepages: true\n";
    y += &format!(
        "ports:\n  - name: lan\n    device: \"{device}\"\n    addresses: [\"{address}\"]\n"
    );
    if services.iter().any(|s| s.health_check.is_some()) {
        y += "    kernel_interface: \"fv-lan\"   # health probes leave through it (docs/config.md)\n";
    }
    if services.is_empty() {
        y += "services: []\n";
        return y;
    }
    y += "services:\n";
    for s in services {
        y += &format!(
            "  - name: {}\n    vip: \"{}\"\n    port: {}\n    protocol: {}\n    scheduler: {}\n    forward: {}\n",
            s.name, s.vip, s.port, s.protocol, s.scheduler, s.forward
        );
        if let Some(h) = &s.health_check {
            let mut k = format!(
                "type: {}",
                if h.kind == CheckKind::Tcp {
                    "tcp"
                } else {
                    "http"
                }
            );
            if let Some(p) = h.port {
                k += &format!(", port: {p}");
            }
            if let Some(p) = &h.path {
                k += &format!(", path: \"{}\"", p.replace('"', ""));
            }
            if let Some(c) = h.expect_status {
                k += &format!(", expect_status: {c}");
            }
            if let Some(x) = &h.host {
                k += &format!(", host: \"{}\"", x.replace('"', ""));
            }
            y += &format!(
                "    health_check: {{ {k}, interval_ms: {}, timeout_ms: {}, rise: {}, fall: {} }}\n",
                h.interval_ms, h.timeout_ms, h.rise, h.fall
            );
        }
        if s.backends.is_empty() {
            y += "    backends: []\n";
            continue;
        }
        y += "    backends:\n";
        for b in &s.backends {
            let port = b.port.map(|p| format!(", port: {p}")).unwrap_or_default();
            y += &format!(
                "      - {{ address: \"{}\"{port}, weight: {} }}\n",
                b.address, b.weight
            );
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        let t = "! comment\nvirtual_server 10.0.0.1 80 { # trailing\n  lb_algo rr\n  real_server 10.0.0.2 80 {\n weight 2 }\n}\n";
        let n = parse(t).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].key.as_str(), n[0].args.clone(), n[0].line),
            ("virtual_server", vec!["10.0.0.1".into(), "80".into()], 2)
        );
        assert_eq!(n[0].children[1].children[0].args, vec!["2".to_string()]);
        assert!(parse("a {\n")
            .unwrap_err()
            .contains("line 1: `a` is never closed"));
        assert!(parse("}\n")
            .unwrap_err()
            .contains("line 1: `}` closes nothing"));
    }
}
