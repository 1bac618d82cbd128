//! BGP: ferrovs announces its VIPs to routers through BIRD 2, an existing BGP daemon.
//!
//! A supervisor thread runs BIRD inside `exception_path.netns` (so its sessions use the
//! ports' kernel interfaces) with a configuration written here: the peers, the local AS,
//! the router id, and one static host route per announced VIP, exported to the peers and
//! nothing imported. The management thread says which VIPs to announce (those with a
//! live backend, none while stopping); the supervisor rewrites the file and has BIRD
//! reconfigure through its control socket, so sessions stay up while routes change.
//! BIRD dying is logged and it is started again (with a back-off); BIRD runs with
//! `PR_SET_PDEATHSIG`, so a ferrovs that dies takes its BIRD, and its announcements,
//! with it. Once a second the supervisor reads the peers' states (`show protocols`) for
//! the API and metrics.
use crate::config::{BgpConf, Config};
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The name of the static protocol that holds the announced routes.
const VIPS_PROTOCOL: &str = "ferrovs_vips";
/// How long BIRD gets to answer on its control socket.
const CTL_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the peers' states are read.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// Waits between restarts of a BIRD that keeps dying: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What BIRD should run with: its whole configuration and the VIPs in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub text: String,
    /// The IPv4 VIPs in it (IPv6 VIPs are not announced yet).
    pub vips: BTreeSet<Ipv4Addr>,
    /// Configured peers, in config order: (address, remote AS).
    pub peers: Vec<(Ipv4Addr, u32)>,
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// The daemon is stopping (so nothing is announced).
    pub stopping: bool,
}

/// One peer as BIRD reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub address: Ipv4Addr,
    pub remote_as: u32,
    /// BIRD's BGP state (`Established`, `Active`, `Connect`, `Idle`, ...), or the
    /// protocol's state when BIRD gives none (`down`); `unknown` while BIRD is not
    /// answering.
    pub state: String,
    /// The rest of BIRD's info column (a last error, say), if any.
    pub info: String,
    /// When the state last changed (Unix seconds), as BIRD says.
    pub since: Option<u64>,
}

impl PeerState {
    pub fn established(&self) -> bool {
        self.state == "Established"
    }
}

/// What the supervisor publishes for the API and metrics.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// BIRD runs and answered on its control socket.
    pub running: bool,
    /// Times BIRD was started again after it died.
    pub restarts: u64,
    pub peers: Vec<PeerState>,
    /// The VIPs in the configuration BIRD runs with (none while it does not run).
    pub announced: BTreeSet<Ipv4Addr>,
    /// The last thing that went wrong with BIRD, if it has not recovered.
    pub last_error: Option<String>,
    pub local_as: u32,
    pub router_id: Option<Ipv4Addr>,
    pub stopping: bool,
}

impl Status {
    /// True if VIP `v` is announced.
    pub fn announces(&self, v: IpAddr) -> bool {
        match v {
            IpAddr::V4(a) => self.announced.contains(&a),
            IpAddr::V6(_) => false,
        }
    }
}

/// The management thread's handle on the supervisor.
pub struct Speaker {
    tx: mpsc::Sender<Wanted>,
    last: Wanted,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Speaker {
    /// Has BIRD run with `w` (if it differs from what was asked last).
    pub fn want(&mut self, w: Wanted) {
        if w != self.last {
            self.last = w.clone();
            let _ = self.tx.send(w);
        }
    }
}

impl Speaker {
    /// Asks the supervisor to stop BIRD (it closes its sessions with a notification) and
    /// end; the management loop keeps running meanwhile, so what BIRD sends last goes
    /// out through the exception path.
    pub fn begin_stop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
    }
    /// The supervisor has ended (BIRD is stopped).
    pub fn stopped(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Speaker {
    /// Stops the supervisor, which stops BIRD (its sessions close; peers withdraw).
    fn drop(&mut self) {
        self.begin_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The VIPs to announce: those of services with a backend that is up with weight > 0.
pub fn live_vips(cfg: &Config, rt: &crate::runtime::Runtime) -> BTreeSet<IpAddr> {
    cfg.services
        .iter()
        .filter(|s| {
            s.backends
                .iter()
                .any(|b| b.weight > 0 && rt.is_up(&(s.name.clone(), b.address, b.port_in(s))))
        })
        .map(|s| s.vip)
        .collect()
}

/// The protocol name BIRD knows peer `a` by.
fn peer_protocol(a: Ipv4Addr) -> String {
    format!("peer_{}", a.to_string().replace('.', "_"))
}

/// BIRD's configuration: the router id, a device protocol (BGP needs the interfaces),
/// one static blackhole route per VIP (never installed anywhere: there is no kernel
/// protocol), and one BGP session per peer that exports exactly those routes and imports
/// nothing. A peer beyond the port subnets (reached through a static route) is multihop.
pub fn bird_config(cfg: &Config, b: &BgpConf, vips: &BTreeSet<IpAddr>, stopping: bool) -> Wanted {
    // The sessions are IPv4 and carry IPv4 routes: IPv6 VIPs are not announced (yet).
    let vips: BTreeSet<Ipv4Addr> = vips
        .iter()
        .filter_map(|v| match v {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    use std::fmt::Write as _;
    let router_id = cfg.router_id().unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by ferrovs for the BIRD it runs; rewritten on every change: edit the\n\
         # `bgp` section of ferrovs's config instead.\n\
         router id {router_id};\n\
         timeformat protocol \"%s\";\n\
         log stderr {{ info, remote, warning, error, auth, fatal, bug }};\n\
         protocol device {{ scan time 10; }}\n\
         protocol static {VIPS_PROTOCOL} {{\n  ipv4;"
    );
    for v in &vips {
        let _ = writeln!(t, "  route {v}/32 blackhole;");
    }
    t.push_str("}\n");
    for p in &b.peers {
        let direct = cfg.ports.iter().any(|port| {
            port.addresses
                .iter()
                .any(|n| n.contains(&IpAddr::V4(p.address)))
        });
        let _ = writeln!(
            t,
            "protocol bgp {} {{\n  description \"{}\";\n  local as {};\n  neighbor {} as {};{}{}\n  \
             connect delay time 1;\n  connect retry time 5;\n  error wait time 5, 30;\n  \
             graceful restart off;\n  \
             ipv4 {{ import none; export where proto = \"{VIPS_PROTOCOL}\"; next hop self; }};\n}}",
            peer_protocol(p.address),
            p.address,
            b.local_as,
            p.address,
            p.remote_as,
            if direct { "" } else { "\n  multihop;" },
            p.hold_time_s
                .map(|h| format!("\n  hold time {h};"))
                .unwrap_or_default(),
        );
    }
    Wanted {
        text: t,
        vips,
        peers: b.peers.iter().map(|p| (p.address, p.remote_as)).collect(),
        local_as: b.local_as,
        router_id,
        stopping,
    }
}

impl super::Daemon {
    /// What BIRD should run with now.
    pub(super) fn bgp_wanted(&self, b: &BgpConf) -> Wanted {
        let vips = if self.stopping.is_some() {
            BTreeSet::new()
        } else {
            live_vips(&self.cfg, &self.runtime)
        };
        bird_config(&self.cfg, b, &vips, self.stopping.is_some())
    }

    /// Tells the supervisor what to announce after anything that can change it (a config
    /// change, a backend's health, a stop signal).
    pub(super) fn announce(&mut self) {
        let Some(b) = &self.cfg.bgp else { return };
        let w = self.bgp_wanted(b);
        if let Some(s) = self.bgp.as_mut() {
            s.want(w);
        }
    }
}

/// Starts the supervisor (in `netns` when given) with BIRD's first configuration.
pub fn start(
    b: &BgpConf,
    netns: Option<String>,
    first: Wanted,
    status: Arc<ArcSwap<Status>>,
) -> Result<Speaker> {
    let sock = b.bird.control_socket.clone();
    if let Some(dir) = sock.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("bgp.bird.control_socket: create {}", dir.display()))?;
    }
    let bird = Bird {
        binary: b.bird.binary.clone(),
        conf: b.bird_config_path(),
        sock,
    };
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (st, w) = (status.clone(), first.clone());
    let thread = std::thread::Builder::new()
        .name("bgp".into())
        .spawn(move || {
            if let Some(ns) = &netns {
                if let Err(e) = super::exception::enter_netns(ns) {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            }
            let _ = ready_tx.send(Ok(()));
            supervise(bird, w, rx, &st);
        })?;
    ready_rx.recv().context("bgp thread")??;
    Ok(Speaker {
        tx,
        last: first,
        thread: Some(thread),
    })
}

/// Where BIRD's pieces are.
struct Bird {
    binary: PathBuf,
    conf: PathBuf,
    sock: PathBuf,
}

impl Bird {
    /// Writes the configuration (whole, then renamed into place).
    fn write_conf(&self, text: &str) -> std::io::Result<()> {
        let tmp = self.conf.with_extension("conf.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.conf)
    }

    /// Starts BIRD in the foreground, its log lines going to ours. It gets SIGKILL when
    /// this thread ends, however the daemon ends.
    fn spawn(&self) -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(&self.binary);
        c.arg("-f")
            .arg("-c")
            .arg(&self.conf)
            .arg("-s")
            .arg(&self.sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent; it runs
        // in the child between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = c.spawn()?;
        if let Some(err) = child.stderr.take() {
            let _ = std::thread::Builder::new()
                .name("bird-log".into())
                .spawn(move || forward_log(err));
        }
        Ok(child)
    }

    /// Sends one command on the control socket; the reply's lines (codes stripped), or
    /// BIRD's error.
    fn ask(&self, cmd: &str) -> Result<Vec<String>, String> {
        let s = UnixStream::connect(&self.sock).map_err(|e| format!("control socket: {e}"))?;
        s.set_read_timeout(Some(CTL_TIMEOUT)).ok();
        s.set_write_timeout(Some(CTL_TIMEOUT)).ok();
        let mut r = BufReader::new(&s);
        let mut greeting = String::new();
        r.read_line(&mut greeting)
            .map_err(|e| format!("control socket: {e}"))?;
        (&s).write_all(format!("{cmd}\n").as_bytes())
            .map_err(|e| format!("control socket: {e}"))?;
        read_reply(&mut r)
    }
}

/// Reads one reply of BIRD's control protocol: lines `CODE-text` (more follow), ` text`
/// (more of the same code) and `CODE text` (the last). Codes 8000 and up are errors.
fn read_reply(r: &mut impl BufRead) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for _ in 0..100_000 {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) => return Err("control socket closed mid-reply".into()),
            Err(e) => return Err(format!("control socket: {e}")),
            Ok(_) => {}
        }
        let l = l.trim_end_matches('\n');
        let code = l.get(..4).and_then(|c| c.parse::<u32>().ok());
        match (code, l.as_bytes().get(4)) {
            (Some(c), Some(b' ') | None) => {
                let text = l.get(5..).unwrap_or("").to_string();
                if c >= 8000 {
                    return Err(text);
                }
                lines.push(text);
                return Ok(lines);
            }
            (Some(_), Some(b'-')) => lines.push(l[5..].to_string()),
            _ => lines.push(l.strip_prefix(' ').unwrap_or(l).to_string()),
        }
    }
    Err("control socket: reply too long".into())
}

/// Peer states from `show protocols` lines (`name proto table state since info...`).
fn parse_protocols(lines: &[String], peers: &[(Ipv4Addr, u32)]) -> Vec<PeerState> {
    peers
        .iter()
        .map(|&(address, remote_as)| {
            let name = peer_protocol(address);
            let row = lines.iter().find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name.as_str())).then(|| f.skip(1).collect::<Vec<&str>>())
            });
            // After name and proto: table, state, since, info...
            let (state, info, since) = match row.as_deref() {
                Some([_table, state, since, info @ ..]) => {
                    let (first, rest) = info.split_first().map_or(("", &[][..]), |(f, r)| (*f, r));
                    let state = if first.is_empty() { *state } else { first };
                    (state.to_string(), rest.join(" "), since.parse().ok())
                }
                _ => ("unknown".to_string(), String::new(), None),
            };
            PeerState {
                address,
                remote_as,
                state,
                info,
                since,
            }
        })
        .collect()
}

/// BIRD's log lines (`date time <LEVEL> text`) into ours, at a matching level.
fn forward_log(err: std::process::ChildStderr) {
    for line in BufReader::new(err).lines() {
        let Ok(line) = line else { return };
        let text = line.splitn(3, ' ').nth(2).unwrap_or(&line);
        if text.starts_with("<ERR>") || text.starts_with("<FATAL>") || text.starts_with("<BUG>") {
            tracing::error!("bird: {text}");
        } else if text.starts_with("<WARN>") || text.starts_with("<AUTH>") {
            tracing::warn!("bird: {text}");
        } else {
            tracing::info!("bird: {text}");
        }
    }
}

/// The supervisor: keeps BIRD running with the latest [`Wanted`], publishes [`Status`];
/// returns (stopping BIRD) when the [`Speaker`] is dropped.
fn supervise(bird: Bird, mut want: Wanted, rx: mpsc::Receiver<Wanted>, status: &ArcSwap<Status>) {
    let mut child: Option<Child> = None;
    // The configuration BIRD runs with, once it answered.
    let mut applied: Option<Wanted> = None;
    let mut st = Status::default();
    let mut backoff = BACKOFF_FIRST;
    let mut next_start = Instant::now();
    let mut last_status = Instant::now() - STATUS_EVERY;
    let mut started_at = Instant::now();
    let mut started_with = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(w) => {
                want = w;
                while let Ok(w) = rx.try_recv() {
                    want = w;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // BIRD died?
        if let Some(c) = child.as_mut() {
            if let Ok(Some(exit)) = c.try_wait() {
                child = None;
                applied = None;
                if want.stopping {
                    // Stopped from outside while the daemon stops (a service manager
                    // signalling the whole group): nothing to announce any more.
                    tracing::info!("bird exited ({exit}) while stopping");
                    next_start = Instant::now() + Duration::from_secs(3600);
                    continue;
                }
                st.restarts += 1;
                // One that ran for a while starts again quickly; one that keeps dying waits
                // longer each time.
                if started_at.elapsed() > BACKOFF_MAX {
                    backoff = BACKOFF_FIRST;
                }
                tracing::error!(
                    "bird exited ({exit}); every VIP is withdrawn until it runs again: restarting it in {:.1} s",
                    backoff.as_secs_f64()
                );
                st.last_error = Some(format!("bird exited ({exit})"));
                next_start = Instant::now() + backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        if child.is_none() && Instant::now() >= next_start {
            let r = bird
                .write_conf(&want.text)
                .map_err(|e| format!("write {}: {e}", bird.conf.display()))
                .and_then(|()| {
                    bird.spawn()
                        .map_err(|e| format!("start {}: {e}", bird.binary.display()))
                });
            match r {
                Ok(c) => {
                    tracing::info!(
                        pid = c.id(),
                        config = %bird.conf.display(),
                        "bird started; announcing {} VIP(s)",
                        want.vips.len()
                    );
                    child = Some(c);
                    started_with = want.text.clone();
                    started_at = Instant::now();
                    last_status = Instant::now() - STATUS_EVERY;
                }
                Err(e) => {
                    tracing::error!("bgp: {e}; trying again in {:.1} s", backoff.as_secs_f64());
                    st.last_error = Some(e);
                    next_start = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if child.is_none() {
            publish(status, &mut st, None, None, &want);
            continue;
        }
        // Reconfigure when what is wanted changed (and once BIRD first answers).
        if applied.as_ref().map(|a| &a.text) != Some(&want.text) {
            let first = applied.is_none();
            let r = if first && started_with == want.text {
                // BIRD started with this configuration: wait until it answers.
                bird.ask("show status").map(|_| ())
            } else {
                bird.write_conf(&want.text)
                    .map_err(|e| format!("write {}: {e}", bird.conf.display()))
                    .and_then(|()| bird.ask("configure").map(|_| ()))
            };
            match r {
                Ok(()) => {
                    if !first || started_with != want.text {
                        tracing::info!(
                            "bgp: announcing {} VIP(s): {}",
                            want.vips.len(),
                            list(&want.vips)
                        );
                    }
                    applied = Some(want.clone());
                    st.last_error = None;
                    // Published at once (peers as last read): the API shows the change.
                    st.announced = want.vips.clone();
                    st.stopping = want.stopping;
                    status.store(Arc::new(st.clone()));
                }
                Err(e) if first && started_at.elapsed() < Duration::from_secs(10) => {
                    // Not answering yet: it is starting.
                    let _ = e;
                }
                Err(e) => {
                    if st.last_error.as_deref() != Some(e.as_str()) {
                        tracing::error!("bgp: bird did not take the configuration: {e}");
                    }
                    st.last_error = Some(e);
                }
            }
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            let peers = bird
                .ask("show protocols")
                .ok()
                .map(|lines| parse_protocols(&lines, &want.peers));
            publish(status, &mut st, peers, applied.as_ref(), &want);
        }
    }
    if let Some(mut c) = child {
        stop(&mut c);
    }
    let _ = std::fs::remove_file(&bird.sock);
    status.store(Arc::new(Status::default()));
}

/// Publishes the status: the peers BIRD reported (None: it did not answer, so it does
/// not run as far as anyone can tell, and their states are unknown) and the VIPs of the
/// configuration it runs with (none while it does not answer).
fn publish(
    status: &ArcSwap<Status>,
    st: &mut Status,
    peers: Option<Vec<PeerState>>,
    applied: Option<&Wanted>,
    want: &Wanted,
) {
    st.running = peers.is_some();
    st.announced = match (&peers, applied) {
        (Some(_), Some(a)) => a.vips.clone(),
        _ => BTreeSet::new(),
    };
    st.peers = peers.unwrap_or_else(|| parse_protocols(&[], &want.peers));
    (st.local_as, st.router_id, st.stopping) = (want.local_as, Some(want.router_id), want.stopping);
    status.store(Arc::new(st.clone()));
}

/// Stops BIRD: SIGTERM (it closes its sessions with a notification), SIGKILL after 3 s.
fn stop(c: &mut Child) {
    // SAFETY: kill(2) on the pid of a child this thread started and has not reaped.
    unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    for _ in 0..30 {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn list(vips: &BTreeSet<Ipv4Addr>) -> String {
    if vips.is_empty() {
        return "none".into();
    }
    vips.iter()
        .map(|v| format!("{v}/32"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds since BIRD's `since` (Unix seconds).
pub fn seconds_since(t: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_sub(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
dpdk: { cores: "0-1", hugepages: false, memory_mb: 256 }
ports:
  - { name: lan, device: net_null0, addresses: ["10.3.0.1/24"], kernel_interface: fv-lan }
routes: [ { prefix: "192.0.2.0/24", via: "10.3.0.254" } ]
bgp:
  local_as: 65001
  peers:
    - { address: 10.3.0.254, remote_as: 65000, hold_time_s: 3 }
    - { address: 192.0.2.9, remote_as: 65009 }
services:
  - { name: a, vip: 10.4.0.1, port: 80, forward: dr, scheduler: mh, backends: [ { address: 10.3.0.11 } ] }
  - { name: b, vip: 10.4.0.2, port: 80, forward: dr, backends: [ { address: 10.3.0.12, weight: 0 } ] }
  - { name: c, vip: 10.4.0.3, port: 80, forward: dr, backends: [] }
"#;

    #[test]
    fn announces_vips_with_a_live_backend() {
        let cfg = crate::config::load(CFG).unwrap();
        let mut rt = crate::runtime::Runtime::default();
        let a: IpAddr = "10.4.0.1".parse().unwrap();
        assert_eq!(
            live_vips(&cfg, &rt),
            BTreeSet::from([a]),
            "weight 0 and no backends: withdrawn"
        );
        let key = ("a".to_string(), "10.3.0.11".parse().unwrap(), 80);
        for _ in 0..3 {
            rt.record_probe(key.clone(), Err("refused".into()), 2, 3);
        }
        assert!(live_vips(&cfg, &rt).is_empty(), "its only backend is down");
    }

    #[test]
    fn writes_a_bird_config() {
        let cfg = crate::config::load(CFG).unwrap();
        let b = cfg.bgp.as_ref().unwrap();
        let vips = BTreeSet::from([
            "10.4.0.1".parse().unwrap(),
            "10.4.0.2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ]);
        let w = bird_config(&cfg, b, &vips, false);
        let t = &w.text;
        assert!(t.contains("router id 10.3.0.1;"), "{t}");
        assert!(
            t.contains("route 10.4.0.1/32 blackhole;\n  route 10.4.0.2/32 blackhole;"),
            "{t}"
        );
        assert!(t.contains("protocol bgp peer_10_3_0_254 {"), "{t}");
        assert!(
            t.contains("neighbor 10.3.0.254 as 65000;\n  hold time 3;"),
            "{t}"
        );
        assert!(
            t.contains("neighbor 192.0.2.9 as 65009;\n  multihop;"),
            "routed peer: {t}"
        );
        assert_eq!(t.matches("multihop").count(), 1, "{t}");
        assert_eq!(
            t.matches("import none; export where proto = \"ferrovs_vips\"")
                .count(),
            2
        );
        assert_eq!(w.peers.len(), 2);
    }

    #[test]
    fn reads_bird_replies() {
        let reply = "2002-Name       Proto      Table      State  Since         Info\n\
                     1002-device1    Device     ---        up     1795768828    \n \
                     ferrovs_vips Static     master4    up     1795768828    \n \
                     peer_10_3_0_254 BGP        ---        up     1795768900    Established   \n \
                     peer_192_0_2_9 BGP        ---        start  1795768828    Active        Socket: Connection refused\n\
                     0000 \n";
        let lines = read_reply(&mut reply.as_bytes()).unwrap();
        let peers = [
            ("10.3.0.254".parse().unwrap(), 65000),
            ("192.0.2.9".parse().unwrap(), 65009),
            ("192.0.2.10".parse().unwrap(), 65010),
        ];
        let p = parse_protocols(&lines, &peers);
        assert_eq!(
            (p[0].state.as_str(), p[0].since),
            ("Established", Some(1795768900))
        );
        assert!(p[0].established());
        assert_eq!(
            (p[1].state.as_str(), p[1].info.as_str()),
            ("Active", "Socket: Connection refused")
        );
        assert_eq!(p[2].state, "unknown", "not in BIRD's list");
        assert_eq!(
            read_reply(
                &mut "0002-Reading configuration from x\n8002 x:3:1 syntax error\n".as_bytes()
            ),
            Err("x:3:1 syntax error".to_string())
        );
        assert!(
            read_reply(&mut "0001-partial\n".as_bytes()).is_err(),
            "closed mid-reply"
        );
    }
}
