//! The management plane refuses what an operator or an attacker gets wrong: a second
//! daemon on the same device, configs `--check` must catch (machine-dependent checks and
//! warnings), and API errors that must all be JSON, hostile names included.
use mgmt::client::Client;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Instant;

mod common;

fn config(dir: &std::path::Path, prefix: &str, api: &str, extra: &str) -> String {
    let (inp, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    if !inp.exists() {
        dataplane::pcap::write(std::fs::File::create(&inp).unwrap(), &[]).unwrap();
    }
    format!(
        r#"
dpdk: {{ cores: "0-1", hugepages: false, memory_mb: 256, file_prefix: "{prefix}" }}
ports:
  - {{ name: p0, device: "net_pcap0,rx_pcap={inp},tx_pcap={out}", mac: "02:00:00:00:0a:01", addresses: ["10.0.0.1/24"] }}
api: {{ listen: "{api}" {extra} }}
services:
  - {{ name: web, vip: 10.0.0.10, port: 80, backends: [ {{ address: 10.0.0.20 }} ] }}
"#,
        inp = inp.display(),
        out = out.display(),
    )
}

fn check(cfg: &std::path::Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ferrovs"))
        .args(["--check", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

#[test]
fn second_daemon_check_and_json_errors() {
    let dir = common::scratch("hardening");
    std::env::set_var("FERROVS_LOCK_DIR", dir.join("locks"));
    let port = common::free_port();
    let prefix = format!("ferrovs-hard-{}", std::process::id());
    let cfgp = dir.join("ferrovs.yaml");
    let tok = dir.join("token");
    std::fs::write(&tok, "one\n").unwrap();
    let tok_key = format!(", token_file: \"{}\"", tok.display());
    std::fs::write(
        &cfgp,
        config(&dir, &prefix, &format!("127.0.0.1:{port}"), &tok_key),
    )
    .unwrap();

    // --check runs the checks start-up makes: the machine's cores, the token file.
    let bad = dir.join("bad.yaml");
    let text = config(
        &dir,
        &prefix,
        "127.0.0.1:1",
        &format!(", token_file: \"{}\"", dir.join("missing").display()),
    )
    .replace("cores: \"0-1\"", "cores: \"0-127\"");
    std::fs::write(&bad, text).unwrap();
    let (ok, out) = check(&bad);
    assert!(!ok, "{out}");
    assert!(
        out.contains("dpdk.cores: core 127 does not exist on this machine"),
        "{out}"
    );
    assert!(
        out.contains("api.token_file:") && out.contains("missing"),
        "{out}"
    );
    let empty = dir.join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    std::fs::write(
        &bad,
        config(
            &dir,
            &prefix,
            "127.0.0.1:1",
            &format!(", token_file: \"{}\"", empty.display()),
        ),
    )
    .unwrap();
    let (ok, out) = check(&bad);
    assert!(
        !ok && out.contains("is empty: every write would be refused"),
        "{out}"
    );
    // A kernel interface whose name is taken already: refused before anything starts.
    let taken = config(&dir, &prefix, "127.0.0.1:1", "").replace(
        "addresses: [\"10.0.0.1/24\"] }",
        "addresses: [\"10.0.0.1/24\"], kernel_interface: \"lo\" }",
    );
    std::fs::write(&bad, taken).unwrap();
    let (ok, out) = check(&bad);
    assert!(
        !ok && out.contains("ports[0].kernel_interface: an interface `lo` exists already"),
        "{out}"
    );
    // A legal but risky setting is a warning, and the config is valid.
    std::fs::write(&bad, config(&dir, &prefix, "0.0.0.0:9", "")).unwrap();
    let (ok, out) = check(&bad);
    assert!(
        ok && out.contains("warning: api.listen: 0.0.0.0:9 is not a loopback address"),
        "{out}"
    );

    let daemon = common::Ferrovs::start(&cfgp);
    daemon.wait_for("ferrovs running");

    // A second daemon on the same device: refused before EAL starts, naming the holder.
    let t = Instant::now();
    let second = Command::new(env!("CARGO_BIN_EXE_ferrovs"))
        .arg("--config")
        .arg(&cfgp)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    eprintln!("second daemon refused in {:?}: {err}", t.elapsed());
    assert!(!second.status.success());
    assert!(err.contains("is in use by another ferrovs (pid "), "{err}");
    assert!(!err.contains("starting EAL"), "refused before EAL: {err}");

    // The same device under another file prefix: refused by the device's lock.
    let other = dir.join("other.yaml");
    std::fs::write(
        &other,
        config(&dir, &format!("{prefix}-b"), "127.0.0.1:0", ""),
    )
    .unwrap();
    let third = Command::new(env!("CARGO_BIN_EXE_ferrovs"))
        .arg("--config")
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(!third.status.success());
    assert!(
        err.contains("ports[0].device `net_pcap0,")
            && err.contains("in use by another ferrovs (pid "),
        "{err}"
    );

    // Every error answer is JSON with an "error".
    let api = format!("http://127.0.0.1:{port}");
    let c = Client::new(&api, Some("one".into()));
    let big = Value::String("x".repeat(3 << 20));
    for (method, path, body, want) in [
        ("DELETE", "/api/v1/stats", None, 405),
        ("GET", "/api/v1/flows?limit=many", None, 400),
        ("GET", "/api/v1/nothing", None, 404),
        ("PUT", "/api/v1/services/big", Some(&big), 413),
        (
            "PUT",
            "/api/v1/services/bad%0Aname",
            Some(&json!({"vip": "10.0.0.11", "port": 80})),
            400,
        ),
        ("PUT", "/api/v1/services/web/backends/nowhere", None, 400),
    ] {
        let (status, text) = c.request(method, path, body).unwrap();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(
            v["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path}: {text}"
        );
    }
    let (_, text) = c
        .request(
            "PUT",
            "/api/v1/services/bad%0Aname",
            Some(&json!({"vip": "10.0.0.11", "port": 80})),
        )
        .unwrap();
    assert!(
        text.contains("services[1].name") && text.contains("must be 1 to 64 of"),
        "{text}"
    );
    // The metrics never carry the refused name.
    let (_, metrics) = c.request("GET", "/metrics", None).unwrap();
    assert!(!metrics.contains("bad\nname") && !metrics.contains("service=\"bad"));

    // A reload re-reads api.token_file: the new token works at once, the old one no more.
    std::fs::write(&tok, "two\n").unwrap();
    c.json("POST", "/api/v1/reload", None).unwrap();
    let weight = json!({"weight": 3});
    let path = "/api/v1/services/web/backends/10.0.0.20:80";
    let (status, text) = c.request("PUT", path, Some(&weight)).unwrap();
    assert_eq!(status, 401, "old token after reload: {text}");
    let two = Client::new(&api, Some("two".into()));
    two.json("PUT", path, Some(&weight)).unwrap();
    // A reload that would leave an empty token file is refused; the token stays.
    std::fs::write(&tok, "").unwrap();
    let err = two.json("POST", "/api/v1/reload", None).unwrap_err();
    assert!(
        err.contains("api.token_file") && err.contains("is empty"),
        "{err}"
    );
    two.json("PUT", path, Some(&weight)).unwrap();
    daemon.stop();
    std::fs::remove_dir_all(&dir).ok();
}
