//! The REST API and ferrovsctl against a running daemon (net_pcap port): every endpoint,
//! 401 without the token, 400 naming the key with nothing changed, 404s, drain and
//! removal semantics against a live flow, and ferrovsctl's ipvsadm-style output.
use dataplane::wire::builder::{tcp_frame, FrameSpec};
use dataplane::wire::{MacAddr, TcpFlags};
use mgmt::client::Client;
use serde_json::{json, Value};
use std::process::Command;

mod common;

#[test]
fn api_and_ferrovsctl() {
    let dir = common::scratch("api");
    let (inp, out, cfgp, tok) = (
        dir.join("in.pcap"),
        dir.join("out.pcap"),
        dir.join("ferrovs.yaml"),
        dir.join("token"),
    );
    // One client SYN so that a live flow exists for the drain/removal checks.
    let syn = FrameSpec {
        src_mac: MacAddr([2, 0, 0, 0, 0, 0x50]),
        dst_mac: MacAddr([2, 0, 0, 0, 0x0a, 1]),
        src_ip: "10.0.0.50".parse().unwrap(),
        dst_ip: "10.0.0.10".parse().unwrap(),
        src_port: 40000,
        dst_port: 80,
        ..Default::default()
    };
    dataplane::pcap::write(
        std::fs::File::create(&inp).unwrap(),
        &[tcp_frame(&syn, TcpFlags::SYN, b"")],
    )
    .unwrap();
    std::fs::write(&tok, "s3cret\n").unwrap();
    let port = common::free_port();
    std::fs::write(
        &cfgp,
        format!(
            r#"
dpdk: {{ cores: "0-1", hugepages: false, memory_mb: 256, file_prefix: "ferrovs-api-{pid}" }}
ports:
  - {{ name: p0, device: "net_pcap0,rx_pcap={inp},tx_pcap={out}", mac: "02:00:00:00:0a:01", addresses: ["10.0.0.1/24"] }}
neighbors:
  - {{ address: 10.0.0.20, mac: "02:00:00:00:10:20", port: p0 }}
  - {{ address: 10.0.0.21, mac: "02:00:00:00:10:21", port: p0 }}
api: {{ listen: "127.0.0.1:{port}", token_file: "{tok}" }}
services:
  - {{ name: web, vip: 10.0.0.10, port: 80, backends: [ {{ address: 10.0.0.20, port: 8080 }}, {{ address: 10.0.0.21, port: 8080 }} ] }}
"#,
            pid = std::process::id(),
            inp = inp.display(),
            out = out.display(),
            tok = tok.display()
        ),
    )
    .unwrap();
    let daemon = common::Ferrovs::start(&cfgp);
    daemon.wait_for("api listening");
    let api = format!("http://127.0.0.1:{port}");
    let anon = Client::new(&api, None);
    let admin = Client::new(&api, Some("s3cret".into()));
    let status =
        |c: &Client, m: &str, p: &str, b: Option<Value>| c.request(m, p, b.as_ref()).unwrap().0;
    let get = |p: &str| anon.json("GET", p, None).unwrap();

    assert_eq!(status(&anon, "GET", "/healthz", None), 200);
    let health = get("/healthz");
    assert_eq!(
        (health["status"].as_str(), health["stalled_workers"].clone()),
        (Some("ok"), json!([]))
    );
    assert_eq!(get("/api/v1/services").as_array().unwrap().len(), 1);
    let web = get("/api/v1/services/web");
    assert_eq!(
        (
            web["vip"].as_str(),
            web["scheduler"].as_str(),
            web["forward"].as_str()
        ),
        (Some("10.0.0.10"), Some("wrr"), Some("nat"))
    );
    // No health_check: every backend is unchecked, the service up, /api/v1/health empty.
    assert_eq!(web["state"], "up");
    assert_eq!(
        (
            web["backends"][0]["health"].clone(),
            web["backends"][0]["health_since"].clone(),
            web["backends"][0]["health_last_error"].clone()
        ),
        (json!("unchecked"), Value::Null, Value::Null)
    );
    assert_eq!(get("/api/v1/health"), json!([]));
    assert_eq!(status(&anon, "GET", "/api/v1/services/nope", None), 404);
    assert_eq!(status(&anon, "GET", "/api/v1/nothing", None), 404);

    // The client's SYN made a flow to web.
    let mut flows = get("/api/v1/flows?service=web");
    for _ in 0..50 {
        if !flows.as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        flows = get("/api/v1/flows?service=web");
    }
    let flow = flows[0].clone();
    assert_eq!(flow["client"], "10.0.0.50:40000");
    assert_eq!(flow["state"], "syn_sent");
    let backend = flow["backend"].as_str().unwrap().to_owned();
    // Pages: the one flow is on the first page, not on the second.
    assert_eq!(
        get("/api/v1/flows?offset=0&limit=1")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(get("/api/v1/flows?offset=1&limit=1")
        .as_array()
        .unwrap()
        .is_empty());

    // Writes: 401 without the token, nothing changes.
    let svc = json!({"vip": "10.0.0.30", "port": 443, "scheduler": "rr", "backends": [{"address": "10.0.0.21"}]});
    assert_eq!(
        status(&anon, "PUT", "/api/v1/services/tls", Some(svc.clone())),
        401
    );
    assert_eq!(status(&anon, "POST", "/api/v1/reload", None), 401);
    assert_eq!(status(&anon, "GET", "/api/v1/services/tls", None), 404);
    // 400 naming the key; nothing changes.
    let err = admin
        .json(
            "PUT",
            "/api/v1/services/tls",
            Some(&json!({"vip": "10.0.0.300", "port": 443})),
        )
        .unwrap_err();
    assert!(
        err.contains("services[1].vip") && err.contains("(400)"),
        "{err}"
    );
    let err = admin
        .json(
            "PUT",
            "/api/v1/services/tls",
            Some(&json!({"vip": "10.0.0.30", "port": 443, "colour": 1})),
        )
        .unwrap_err();
    assert!(err.contains("unknown field `colour`"), "{err}");
    let err = admin
        .json(
            "PUT",
            "/api/v1/services/tls",
            Some(&json!({"name": "other", "vip": "10.0.0.30", "port": 443})),
        )
        .unwrap_err();
    assert!(err.contains("name: must match"), "{err}");
    assert_eq!(status(&anon, "GET", "/api/v1/services/tls", None), 404);
    // Create (201), replace (200).
    assert_eq!(
        status(&admin, "PUT", "/api/v1/services/tls", Some(svc.clone())),
        201
    );
    assert_eq!(
        status(&admin, "PUT", "/api/v1/services/tls", Some(svc)),
        200
    );
    assert_eq!(get("/api/v1/services/tls")["backends"][0]["port"], 443);
    // Backends: add, weight, bad weight, unknown service, delete twice.
    assert_eq!(
        status(
            &admin,
            "PUT",
            "/api/v1/services/tls/backends/10.0.0.20:443",
            Some(json!({"weight": 3}))
        ),
        201
    );
    assert_eq!(get("/api/v1/services/tls")["backends"][1]["weight"], 3);
    let err = admin
        .json(
            "PUT",
            "/api/v1/services/tls/backends/10.0.0.20:443",
            Some(&json!({"weight": 70000})),
        )
        .unwrap_err();
    assert!(
        err.contains("backends[1].weight: must be 0..=65535"),
        "{err}"
    );
    assert_eq!(
        get("/api/v1/services/tls")["backends"][1]["weight"],
        3,
        "a rejected write changes nothing"
    );
    assert_eq!(
        status(
            &admin,
            "PUT",
            "/api/v1/services/nope/backends/10.0.0.20:443",
            None
        ),
        404
    );
    assert_eq!(
        status(&admin, "PUT", "/api/v1/services/tls/backends/banana", None),
        400
    );
    assert_eq!(
        status(
            &admin,
            "DELETE",
            "/api/v1/services/tls/backends/10.0.0.20:443",
            None
        ),
        200
    );
    assert_eq!(
        status(
            &admin,
            "DELETE",
            "/api/v1/services/tls/backends/10.0.0.20:443",
            None
        ),
        404
    );
    assert_eq!(status(&admin, "DELETE", "/api/v1/services/tls", None), 200);
    assert_eq!(status(&admin, "DELETE", "/api/v1/services/tls", None), 404);

    // Drain keeps the live flow; removal ends it.
    let path = format!("/api/v1/services/web/backends/{backend}");
    assert_eq!(
        status(&admin, "PUT", &path, Some(json!({"weight": 0}))),
        200
    );
    assert_eq!(
        get("/api/v1/flows").as_array().unwrap().len(),
        1,
        "a drained backend keeps its flows"
    );
    assert_eq!(status(&admin, "DELETE", &path, None), 200);
    assert!(
        get("/api/v1/flows").as_array().unwrap().is_empty(),
        "a removed backend's flows end"
    );
    // Its last backend drained, the service takes no new flows and says so.
    let other = ["10.0.0.20:8080", "10.0.0.21:8080"]
        .into_iter()
        .find(|b| *b != backend)
        .unwrap();
    let other_path = format!("/api/v1/services/web/backends/{other}");
    assert_eq!(
        status(&admin, "PUT", &other_path, Some(json!({"weight": 0}))),
        200
    );
    assert_eq!(get("/api/v1/services/web")["state"], "down");
    assert_eq!(
        status(&admin, "PUT", &other_path, Some(json!({"weight": 1}))),
        200
    );
    assert_eq!(get("/api/v1/services/web")["state"], "up");

    // ferrovsctl, ipvsadm layout.
    let ctl = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_ferrovsctl"))
            .args(args)
            .env("FERROVS_API", &api)
            .env("FERROVS_TOKEN", "s3cret")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ferrovsctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    ctl(&["backend", "add", "web", &backend, "--weight", "5"]);
    let health = ctl(&["health"]);
    assert_eq!(
        health.lines().collect::<Vec<_>>(),
        ["Service          Backend                Health    Since       OK   Failed  Last error"],
        "no checked backend: the header only"
    );
    let list = ctl(&["list"]);
    assert!(list.starts_with("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"), "{list}");
    assert!(list.contains("TCP  10.0.0.10:80 wrr\n"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with(&format!("  -> {backend}")) && l.contains("Masq    5")),
        "{list}"
    );
    let stats = ctl(&["list", "--stats"]);
    assert!(
        stats.contains("Conns   InPkts  OutPkts  InBytes OutBytes"),
        "{stats}"
    );
    assert!(
        stats
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("TCP  10.0.0.10:80"),
        "{stats}"
    );
    ctl(&[
        "service",
        "add",
        "dns",
        "--vip",
        "10.0.0.53",
        "--port",
        "53",
        "--proto",
        "udp",
        "--scheduler",
        "rr",
    ]);
    assert!(ctl(&["list"]).contains("UDP  10.0.0.53:53 rr"));
    assert!(ctl(&["routes"]).contains("10.0.0.0/24"));
    assert!(ctl(&["neighbors"]).contains("02:00:00:00:10:20"));
    // -o json: the API's JSON, for scripts (compared on fields that do not tick).
    let key = |v: &Value, k: &str| -> Vec<Value> {
        v.as_array().unwrap().iter().map(|x| x[k].clone()).collect()
    };
    for (args, path, k) in [
        (&["list", "-o", "json"][..], "/api/v1/services", "name"),
        (&["routes", "-o", "json"][..], "/api/v1/routes", "prefix"),
        (
            &["-o", "json", "neighbors"][..],
            "/api/v1/neighbors",
            "address",
        ),
        (
            &["flows", "--limit", "5", "-o", "json"][..],
            "/api/v1/flows?limit=5",
            "client",
        ),
    ] {
        let v: Value = serde_json::from_str(&ctl(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(key(&v, k), key(&get(path), k), "{args:?}");
        assert!(
            !key(&v, k).is_empty() || path.contains("flows"),
            "{args:?}: empty"
        );
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_ferrovsctl"))
        .args(["list"])
        .env("FERROVS_API", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot reach ferrovs"));

    // Stats, metrics (the documented names), neighbors, routes.
    let st = get("/api/v1/stats");
    assert_eq!(st["totals"]["rx"], 1);
    assert_eq!(st["totals"]["new_flows"], 1);
    assert_eq!(
        st["ports"][0]["software_mac"], true,
        "net_pcap cannot set its MAC"
    );
    assert!(st["flows"]["capacity"].as_u64().unwrap() > 0);
    assert!(st["drops"].get("not_for_us").is_some());
    let (code, metrics) = anon.request("GET", "/metrics", None).unwrap();
    assert_eq!(code, 200);
    for name in [
        "ferrovs_service_connections_total{service=\"web\",vip=\"10.0.0.10\",port=\"80\",protocol=\"tcp\"} 1",
        "ferrovs_service_packets_total{service=\"web\"",
        "ferrovs_service_bytes_total{",
        "ferrovs_backend_connections_active{",
        "ferrovs_backend_weight{",
        "ferrovs_port_packets_total{port=\"p0\",direction=\"in\"} 1",
        "ferrovs_drops_total{reason=\"malformed\"} 0",
        "ferrovs_flows_active 0",
        "ferrovs_flows_capacity ",
        "ferrovs_worker_busy_ratio{worker=\"0\"}",
    ] {
        assert!(metrics.contains(name), "metrics lack `{name}`:\n{metrics}");
    }
    // The served OpenAPI description is the one in docs/.
    let (code, served) = anon.request("GET", "/api/v1/openapi.json", None).unwrap();
    assert_eq!(code, 200);
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .unwrap();
    assert_eq!(
        served, docs,
        "served /api/v1/openapi.json differs from docs/openapi.json"
    );
    // Every metric the Grafana dashboard queries exists.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/ferrovs.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("ferrovs_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    for name in &queried {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "the dashboard queries `{name}`, which /metrics lacks"
        );
    }
    let n = get("/api/v1/neighbors");
    assert!(n
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["address"] == "10.0.0.20" && e["state"] == "static"));
    let r = get("/api/v1/routes");
    assert!(r
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["prefix"] == "10.0.0.0/24" && e["kind"] == "connected"));

    // Reload goes back to the file: the API's changes were runtime-only.
    assert_eq!(status(&admin, "POST", "/api/v1/reload", None), 200);
    assert_eq!(status(&anon, "GET", "/api/v1/services/dns", None), 404);
    assert_eq!(
        get("/api/v1/services/web")["backends"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A reload of a broken file is refused; the running config stays.
    std::fs::write(
        &cfgp,
        std::fs::read_to_string(&cfgp)
            .unwrap()
            .replace("port: 80,", "port: 0,"),
    )
    .unwrap();
    let err = admin.json("POST", "/api/v1/reload", None).unwrap_err();
    assert!(err.contains("services[0].port"), "{err}");
    assert_eq!(status(&anon, "GET", "/api/v1/services/web", None), 200);

    daemon.stop();
    std::fs::remove_dir_all(&dir).ok();
}
