//! `ferrovsctl`: the ferrovs CLI over its REST API, for people who know `ipvsadm`.
use clap::{Parser, Subcommand};
use dataplane::snapshot::Forward;
use mgmt::client::Client;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Control a running ferrovs over its REST API (ipvsadm-like)"
)]
struct Cli {
    /// API base URL.
    #[arg(
        long,
        env = "FERROVS_API",
        default_value = "http://127.0.0.1:9180",
        global = true
    )]
    api: String,
    /// File holding the bearer token for writes (or FERROVS_TOKEN with the token itself).
    #[arg(long, global = true)]
    token_file: Option<String>,
    /// Output of list-like commands: the ipvsadm-style table, or the API's JSON (for
    /// scripts: never parse the table).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Services and backends, like `ipvsadm -Ln` (--stats, --rate as ipvsadm's).
    List {
        #[arg(long)]
        stats: bool,
        #[arg(long)]
        rate: bool,
    },
    /// Add, change or delete a service.
    Service {
        #[command(subcommand)]
        op: ServiceOp,
    },
    /// Add, change or delete a backend.
    Backend {
        #[command(subcommand)]
        op: BackendOp,
    },
    /// Active flows.
    Flows {
        #[arg(long)]
        service: Option<String>,
        /// Skip this many flows (the next page: offset + limit).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// At most this many (the API's maximum is 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Every checked backend's health (services with a health_check).
    Health,
    /// The BGP peers (state as BIRD reports it) and the announced VIPs.
    Bgp,
    /// The snat rules and the ports in use of each `to` address.
    Snat,
    /// The ARP table.
    Neighbors,
    /// The routing table.
    Routes,
    /// Counters: totals, drops by reason, ports, workers, flow table.
    Stats,
    /// Re-read the daemon's config file.
    Reload,
    /// Convert a keepalived.conf's virtual servers into a ferrovs config (YAML on stdout;
    /// what cannot be imported is listed on stderr, line by line).
    ImportKeepalived {
        /// The keepalived.conf to read.
        file: String,
        /// The device of ferrovs's port (PCI address or vdev spec).
        #[arg(long)]
        device: Option<String>,
        /// ferrovs's own address on that port, with its prefix (10.1.0.1/24).
        #[arg(long)]
        address: Option<ipnet::Ipv4Net>,
    },
}

#[derive(Subcommand)]
enum ServiceOp {
    /// Create (or replace) a service.
    #[command(alias = "set")]
    Add {
        name: String,
        #[arg(long)]
        vip: String,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "tcp")]
        proto: String,
        #[arg(long, default_value = "wrr")]
        scheduler: String,
        #[arg(long, default_value = "nat")]
        forward: String,
    },
    Del {
        name: String,
    },
}

#[derive(Subcommand)]
enum BackendOp {
    /// Add or update a backend (ADDRESS:PORT).
    #[command(alias = "set")]
    Add {
        service: String,
        backend: String,
        #[arg(long)]
        weight: Option<u32>,
    },
    Del {
        service: String,
        backend: String,
    },
}

fn main() {
    // A reader that goes away early (`ferrovsctl list | head`) ends this process quietly,
    // as it ends other command-line tools, instead of a panic on the failed print.
    // SAFETY: restores the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Cmd::ImportKeepalived {
        file,
        device,
        address,
    } = &cli.cmd
    {
        // Offline: no API involved.
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| exit(format!("{file}: {e}")));
        let nodes = mgmt::keepalived::parse(&text).unwrap_or_else(|e| exit(format!("{file}: {e}")));
        let port = mgmt::keepalived::PortChoice {
            device: device.clone(),
            address: *address,
        };
        let out = mgmt::keepalived::import(&nodes, &port);
        for n in &out.notes {
            eprintln!("{file}: {n}");
        }
        print!("{}", out.yaml);
        return;
    }
    let host = cli.api.clone();
    let token = match &cli.token_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => Some(t.trim().to_owned()),
            Err(e) => exit(format!("token file {f}: {e}")),
        },
        None => std::env::var("FERROVS_TOKEN").ok(),
    };
    let c = Client::new(&host, token);
    if let Err(e) = run(&c, cli.cmd, cli.output) {
        exit(e);
    }
}

fn exit(msg: String) -> ! {
    eprintln!("ferrovsctl: {msg}");
    std::process::exit(1);
}

fn proto(s: &Value) -> String {
    s["protocol"].as_str().unwrap_or("tcp").to_uppercase()
}

/// ipvsadm's word for a forwarding mode (`Masq`, `Route`, `Tunnel`).
fn forward_word(f: &str) -> &'static str {
    f.parse::<Forward>().map(Forward::ipvs_name).unwrap_or("?")
}

/// Prints a JSON value for scripts.
fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn run(c: &Client, cmd: Cmd, output: Output) -> Result<(), String> {
    // -o json: list-like commands print the API's JSON as it is.
    let list_path = match &cmd {
        Cmd::List { .. } => Some("/api/v1/services".to_string()),
        Cmd::Neighbors => Some("/api/v1/neighbors".into()),
        Cmd::Health => Some("/api/v1/health".into()),
        Cmd::Bgp => Some("/api/v1/bgp".into()),
        Cmd::Snat => Some("/api/v1/snat".into()),
        Cmd::Routes => Some("/api/v1/routes".into()),
        Cmd::Stats => Some("/api/v1/stats".into()),
        Cmd::Flows {
            service,
            offset,
            limit,
        } => Some(match service {
            Some(s) => format!("/api/v1/flows?service={s}&offset={offset}&limit={limit}"),
            None => format!("/api/v1/flows?offset={offset}&limit={limit}"),
        }),
        _ => None,
    };
    if let (Output::Json, Some(path)) = (output, &list_path) {
        print_json(&c.json("GET", path, None)?);
        return Ok(());
    }
    match cmd {
        Cmd::List { stats, rate } => {
            let services = c.json("GET", "/api/v1/services", None)?;
            let list = services.as_array().cloned().unwrap_or_default();
            if rate {
                std::thread::sleep(Duration::from_secs(1));
                let later = c.json("GET", "/api/v1/services", None)?;
                print!(
                    "{}",
                    format_rate(&list, later.as_array().map(|v| v.as_slice()).unwrap_or(&[]))
                );
            } else if stats {
                print!("{}", format_stats(&list));
            } else {
                print!("{}", format_list(&list));
            }
        }
        Cmd::Service {
            op:
                ServiceOp::Add {
                    name,
                    vip,
                    port,
                    proto,
                    scheduler,
                    forward,
                },
        } => {
            let path = format!("/api/v1/services/{name}");
            let existing = c.json("GET", &path, None).ok();
            let backends = existing
                .as_ref()
                .map(|s| s["backends"].clone())
                .unwrap_or(json!([]));
            let backends: Vec<Value> = backends
                .as_array()
                .map(|a| a.iter().map(|b| json!({"address": b["address"], "port": b["port"], "weight": b["weight"]})).collect())
                .unwrap_or_default();
            let body = json!({"vip": vip, "port": port, "protocol": proto, "scheduler": scheduler, "forward": forward, "backends": backends});
            c.json("PUT", &path, Some(&body))?;
            println!("service {name}: ok");
        }
        Cmd::Service {
            op: ServiceOp::Del { name },
        } => {
            c.json("DELETE", &format!("/api/v1/services/{name}"), None)?;
            println!("service {name}: deleted");
        }
        Cmd::Backend {
            op:
                BackendOp::Add {
                    service,
                    backend,
                    weight,
                },
        } => {
            let body = weight.map(|w| json!({ "weight": w }));
            c.json(
                "PUT",
                &format!(
                    "/api/v1/services/{service}/backends/{}",
                    backend_segment(&backend)
                ),
                body.as_ref(),
            )?;
            println!("backend {backend} of {service}: ok");
        }
        Cmd::Backend {
            op: BackendOp::Del { service, backend },
        } => {
            c.json(
                "DELETE",
                &format!(
                    "/api/v1/services/{service}/backends/{}",
                    backend_segment(&backend)
                ),
                None,
            )?;
            println!("backend {backend} of {service}: deleted");
        }
        Cmd::Flows {
            service,
            offset,
            limit,
        } => {
            let q = match service {
                Some(s) => format!("?service={s}&offset={offset}&limit={limit}"),
                None => format!("?offset={offset}&limit={limit}"),
            };
            let flows = c.json("GET", &format!("/api/v1/flows{q}"), None)?;
            println!(
                "{:<5} {:<22} {:<22} {:<22} {:<12} {:>6} {:>6}",
                "Pro", "Client", "VIP", "Backend", "State", "Age", "Idle"
            );
            for f in flows.as_array().into_iter().flatten() {
                println!(
                    "{:<5} {:<22} {:<22} {:<22} {:<12} {:>6} {:>6}",
                    f["protocol"].as_str().unwrap_or("").to_uppercase(),
                    f["client"].as_str().unwrap_or(""),
                    f["vip"].as_str().unwrap_or(""),
                    f["backend"].as_str().unwrap_or(""),
                    f["state"].as_str().unwrap_or(""),
                    n(&f["age_s"]),
                    n(&f["idle_s"])
                );
            }
        }
        Cmd::Health => {
            let rows = c.json("GET", "/api/v1/health", None)?;
            println!(
                "{:<16} {:<22} {:<6} {:>8} {:>8} {:>8}  Last error",
                "Service", "Backend", "Health", "Since", "OK", "Failed"
            );
            for r in rows.as_array().into_iter().flatten() {
                println!(
                    "{:<16} {:<22} {:<6} {:>8} {:>8} {:>8}  {}",
                    r["service"].as_str().unwrap_or(""),
                    r["backend"].as_str().unwrap_or(""),
                    r["health"].as_str().unwrap_or(""),
                    format!("{}s", r["since"]),
                    n(&r["probes_ok"]),
                    n(&r["probes_failed"]),
                    r["last_error"].as_str().unwrap_or("-")
                );
            }
        }
        Cmd::Snat => {
            let rules = c.json("GET", "/api/v1/snat", None)?;
            println!(
                "{:<20} {:<8} {:<40} {:>8} {:>8}  Range",
                "Source", "Port", "To", "In use", "Free"
            );
            for r in rules.as_array().into_iter().flatten() {
                for t in r["to"].as_array().into_iter().flatten() {
                    println!(
                        "{:<20} {:<8} {:<40} {:>8} {:>8}  {}",
                        r["source"].as_str().unwrap_or(""),
                        r["port"].as_str().unwrap_or(""),
                        t["address"].as_str().unwrap_or(""),
                        n(&t["ports_in_use"]),
                        n(&t["ports_free"]),
                        r["port_range"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Cmd::Bgp => {
            let b = c.json("GET", "/api/v1/bgp", None)?;
            println!(
                "BGP: local AS {}, router id {}, BIRD {}{}",
                n(&b["local_as"]),
                b["router_id"].as_str().unwrap_or(""),
                if b["bird_running"] == true {
                    "running"
                } else {
                    "not running"
                },
                match b["bird_restarts"].as_u64().unwrap_or(0) {
                    0 => String::new(),
                    r => format!(" (restarted {r} times)"),
                }
            );
            if let Some(e) = b["last_error"].as_str() {
                println!("Last error: {e}");
            }
            if b["stopping"] == true {
                println!("Stopping: every VIP withdrawn, forwarding until the grace ends");
            }
            println!(
                "{:<16} {:>10} {:<12} {:>8}  Info",
                "Peer", "Remote AS", "State", "Since"
            );
            for p in b["peers"].as_array().into_iter().flatten() {
                println!(
                    "{:<16} {:>10} {:<12} {:>8}  {}",
                    p["address"].as_str().unwrap_or(""),
                    n(&p["remote_as"]),
                    p["state"].as_str().unwrap_or(""),
                    p["since"].as_u64().map_or("-".into(), |s| format!("{s}s")),
                    p["info"].as_str().unwrap_or("")
                );
            }
            for (title, key) in [("Announced", "announced"), ("Withdrawn", "withdrawn")] {
                let list: Vec<&str> = b[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{title}: {}",
                    if list.is_empty() {
                        "-".into()
                    } else {
                        list.join(" ")
                    }
                );
            }
        }
        Cmd::Neighbors => {
            let table = c.json("GET", "/api/v1/neighbors", None)?;
            println!(
                "{:<16} {:<18} {:<8} {:>6}  Port",
                "Address", "MAC", "State", "Age"
            );
            for e in table.as_array().into_iter().flatten() {
                println!(
                    "{:<16} {:<18} {:<8} {:>6}  {}",
                    e["address"].as_str().unwrap_or(""),
                    e["mac"].as_str().unwrap_or(""),
                    e["state"].as_str().unwrap_or(""),
                    n(&e["age_s"]),
                    e["port"].as_str().unwrap_or("")
                );
            }
        }
        Cmd::Routes => {
            let r = c.json("GET", "/api/v1/routes", None)?;
            println!(
                "{:<20} {:<16} {:<8} {:<10}",
                "Prefix", "Via", "Port", "Kind"
            );
            for e in r.as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<16} {:<8} {:<10}",
                    e["prefix"].as_str().unwrap_or(""),
                    e["via"].as_str().unwrap_or("-"),
                    e["port"].as_str().unwrap_or(""),
                    e["kind"].as_str().unwrap_or("")
                );
            }
        }
        // The stats have no table: they are JSON either way.
        Cmd::Stats => print_json(&c.json("GET", "/api/v1/stats", None)?),
        Cmd::Reload => {
            let v = c.json("POST", "/api/v1/reload", None)?;
            println!("reloaded: version {}", v["version"]);
        }
        Cmd::ImportKeepalived { .. } => unreachable!("handled in main, without the API"),
    }
    Ok(())
}

/// A JSON value as text, so that width and alignment apply (Value's Display ignores them).
fn n(v: &Value) -> String {
    v.to_string()
}

/// `address:port`, an IPv6 address in brackets (as ipvsadm prints it).
fn endpoint(a: &str, port: &Value) -> String {
    if a.contains(':') {
        format!("[{a}]:{port}")
    } else {
        format!("{a}:{port}")
    }
}
fn local(s: &Value) -> String {
    endpoint(s["vip"].as_str().unwrap_or(""), &s["port"])
}
fn remote(b: &Value) -> String {
    endpoint(b["address"].as_str().unwrap_or(""), &b["port"])
}
/// A backend (`address:port`, `[v6-address]:port`) as a URL path segment.
fn backend_segment(b: &str) -> String {
    b.replace('[', "%5B").replace(']', "%5D")
}

/// `ipvsadm -Ln`'s layout.
pub fn format_list(services: &[Value]) -> String {
    let mut o = String::from("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in services {
        o += &format!(
            "{:<4} {} {}\n",
            proto(s),
            local(s),
            s["scheduler"].as_str().unwrap_or("")
        );
        for b in s["backends"].as_array().into_iter().flatten() {
            o += &format!(
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}\n",
                remote(b),
                forward_word(s["forward"].as_str().unwrap_or("")),
                n(&b["weight"]),
                n(&b["active_connections"]),
                n(&b["inactive_connections"])
            );
        }
    }
    o
}

/// `ipvsadm -Ln --stats`'s layout.
pub fn format_stats(services: &[Value]) -> String {
    let mut o = String::from("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n");
    let row = |v: &Value| {
        format!(
            "{:>8} {:>8} {:>8} {:>8} {:>8}",
            n(&v["connections"]),
            n(&v["packets_in"]),
            n(&v["packets_out"]),
            n(&v["bytes_in"]),
            n(&v["bytes_out"])
        )
    };
    for s in services {
        o += &format!("{:<4} {:<28} {}\n", proto(s), local(s), row(s));
        for b in s["backends"].as_array().into_iter().flatten() {
            o += &format!("  -> {:<28} {}\n", remote(b), row(b));
        }
    }
    o
}

/// `ipvsadm -Ln --rate`'s layout, from two samples one second apart.
pub fn format_rate(before: &[Value], after: &[Value]) -> String {
    let mut o = String::from("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n");
    let d = |a: &Value, b: &Value, k: &str| {
        b[k].as_u64()
            .unwrap_or(0)
            .saturating_sub(a[k].as_u64().unwrap_or(0))
    };
    let row = |a: &Value, b: &Value| {
        format!(
            "{:>8} {:>8} {:>8} {:>8} {:>8}",
            d(a, b, "connections"),
            d(a, b, "packets_in"),
            d(a, b, "packets_out"),
            d(a, b, "bytes_in"),
            d(a, b, "bytes_out")
        )
    };
    for s in after {
        let prev = before
            .iter()
            .find(|p| p["name"] == s["name"])
            .cloned()
            .unwrap_or(json!({}));
        o += &format!("{:<4} {:<28} {}\n", proto(s), local(s), row(&prev, s));
        for b in s["backends"].as_array().into_iter().flatten() {
            let pb = prev["backends"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|x| x["address"] == b["address"] && x["port"] == b["port"])
                        .cloned()
                })
                .unwrap_or(json!({}));
            o += &format!("  -> {:<28} {}\n", remote(b), row(&pb, b));
        }
    }
    o
}
