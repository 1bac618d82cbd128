//! The exception path: a kernel interface per port (`ports[].kernel_interface`, DPDK's
//! net_tap), optionally in `exception_path.netns`, with the port's MAC, MTU and
//! addresses, up. Workers punt what arrives for the port's own addresses and that
//! ferrovs does not answer itself (TCP/UDP to a local address, ICMP other than echo
//! requests) through the bounded management queue; the management thread writes it to
//! the interface, copies ARP to it, and sends whatever the kernel writes out of the port.
//! The workers never touch the interface: their path stays free of system calls.
use super::Daemon;
use crate::config::Config;
use anyhow::{bail, Context, Result};
use dataplane::dpdk::{Burst, Mbuf, Mempool, Port, RxQueue, TxQueue};
use dataplane::wire::{EtherType, EthernetFrame, MacAddr};
use std::process::Command;

/// The DPDK vdev name of port `i`'s kernel interface.
pub fn vdev_name(i: usize) -> String {
    format!("net_tap_fv{i}")
}

/// One port's kernel interface, polled by the management thread.
pub struct Exception {
    pub ifname: String,
    /// Owns the device: dropping it stops and closes the interface.
    _port: Port,
    rx: RxQueue,
    tx: TxQueue,
    /// Packets written to the kernel, read from it, and lost on the way (the interface
    /// or the port refused them).
    pub to_kernel: u64,
    pub from_kernel: u64,
    pub to_kernel_dropped: u64,
    pub from_kernel_dropped: u64,
}

/// Runs `ip ARGS` (in namespace `ns` when given), failing with `what` and its output.
fn ip(ns: Option<&str>, args: &[&str], what: &str) -> Result<()> {
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    let out = c
        .args(args)
        .output()
        .with_context(|| format!("{what}: run ip"))?;
    if !out.status.success() {
        bail!(
            "{what}: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Opens port `i`'s kernel interface (created by EAL from its vdev), gives it the port's
/// MAC and MTU, moves it into the namespace, and puts the port's addresses on it, up.
pub fn open(cfg: &Config, i: usize, mac: MacAddr, pool: &Mempool) -> Result<Exception> {
    let pc = &cfg.ports[i];
    let ifname = pc
        .kernel_interface
        .clone()
        .expect("called for ports with one");
    let key = format!("ports[{i}].kernel_interface `{ifname}`");
    let mut port = Port::by_name(&vdev_name(i)).with_context(|| key.clone())?;
    let (mut rx, mut tx, _) = port
        .configure(1, 1, 512, pool)
        .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    port.set_mac(mac)
        .map_err(|e| anyhow::anyhow!("{key}: set MAC {mac}: {e}"))?;
    if let Some(mtu) = pc.mtu {
        port.set_mtu(mtu)
            .map_err(|e| anyhow::anyhow!("{key}: set MTU {mtu}: {e}"))?;
    }
    port.start().map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    let ns = cfg.exception_path.netns.as_deref();
    if let Some(ns) = ns {
        if !std::path::Path::new("/run/netns").join(ns).exists() {
            let key = format!("exception_path.netns `{ns}`");
            ip(None, &["netns", "add", ns], &key)?;
            ip(Some(ns), &["link", "set", "lo", "up"], &key)?;
        }
        ip(None, &["link", "set", &ifname, "netns", ns], &key)?;
    }
    for a in &pc.addresses {
        let a = a.to_string();
        // IPv6: no duplicate address detection (the port's address is ferrovs's own;
        // a tentative address would keep the kernel from using it for a second).
        let mut args = vec!["addr", "add", &a, "dev", &ifname];
        if a.contains(':') {
            args.push("nodad");
        }
        ip(ns, &args, &key)?;
    }
    ip(ns, &["link", "set", &ifname, "up"], &key)?;
    tracing::info!(
        port = %pc.name, interface = %ifname, netns = ns.unwrap_or("(this one)"), %mac,
        "exception path up"
    );
    Ok(Exception {
        ifname,
        _port: port,
        rx: rx.remove(0),
        tx: tx.remove(0),
        to_kernel: 0,
        from_kernel: 0,
        to_kernel_dropped: 0,
        from_kernel_dropped: 0,
    })
}

/// A static route as the kernel of the exception path has it: prefix, via, interface.
pub type KernelRoute = (ipnet::IpNet, std::net::IpAddr, String);

/// The static routes of `cfg` that leave through a port with a kernel interface, as the
/// kernel should have them (so that what runs in the namespace, health probes included,
/// reaches what ferrovs reaches).
pub fn kernel_routes(cfg: &Config) -> Vec<KernelRoute> {
    cfg.routes
        .iter()
        .filter_map(|r| {
            let ifname = cfg.route_port(r)?.kernel_interface.clone()?;
            Some((r.prefix.trunc(), r.via, ifname))
        })
        .collect()
}

/// Makes the kernel's static routes in the exception namespace `want`, given that
/// `installed` were put there before; returns what is installed now. A route the kernel
/// refuses is logged and left out: the dataplane does not depend on it.
pub fn sync_routes(
    ns: Option<&str>,
    installed: &[KernelRoute],
    want: Vec<KernelRoute>,
) -> Vec<KernelRoute> {
    for (prefix, via, dev) in installed.iter().filter(|r| !want.contains(r)) {
        let (p, v) = (prefix.to_string(), via.to_string());
        if let Err(e) = ip(
            ns,
            &["route", "del", &p, "via", &v, "dev", dev],
            "exception path route",
        ) {
            tracing::warn!("{e:#}");
        }
    }
    want.into_iter()
        .filter(|(prefix, via, dev)| {
            let (p, v) = (prefix.to_string(), via.to_string());
            ip(
                ns,
                &["route", "replace", &p, "via", &v, "dev", dev],
                "exception path route",
            )
            .map_err(|e| tracing::warn!("{e:#}"))
            .is_ok()
        })
        .collect()
}

/// Bursts read from each kernel interface per management-loop turn.
const KERNEL_BURSTS: usize = 8;

impl Exception {
    /// Writes a frame to the kernel interface.
    fn write(&mut self, m: Mbuf) {
        if self.tx.send_one(m) {
            self.to_kernel += 1;
        } else {
            self.to_kernel_dropped += 1;
        }
    }
}

impl Daemon {
    /// A frame a worker handed over: ARP and NDP are answered and learned here, then
    /// copied to the kernel (so its own neighbor table works); anything else is the
    /// kernel's.
    pub(super) fn handle_punted(&mut self, port: u16, m: Mbuf) -> bool {
        let ethertype = EthernetFrame::new_checked(m.data()).map(|e| e.ethertype());
        let changed = match ethertype {
            Ok(EtherType::ARP) => self.handle_arp(port, m.data()),
            // Workers hand over only neighbor discovery among ICMPv6 that is not for the
            // kernel; handle_ndp checks it is.
            Ok(EtherType::IPV6) => self.handle_ndp(port, m.data()),
            _ => false,
        };
        if let Some(Some(x)) = self.exceptions.get_mut(port as usize) {
            x.write(m);
        }
        changed
    }

    /// Sends what the kernel wrote on each interface out of its port (bounded per call).
    pub(super) fn poll_kernel(&mut self) {
        for port in 0..self.exceptions.len() {
            // Up to KERNEL_BURSTS bursts a turn: the loop sleeps 0.5 ms between turns.
            for _ in 0..KERNEL_BURSTS {
                let mut burst = Burst::default();
                let n = match self.exceptions[port].as_mut() {
                    Some(x) => x.rx.rx(&mut burst),
                    None => break,
                };
                if n == 0 {
                    break;
                }
                let mut sent = 0;
                for m in burst.drain() {
                    sent += self.send_mbuf(port as u16, m) as u64;
                }
                if let Some(x) = self.exceptions[port].as_mut() {
                    x.from_kernel += sent;
                    x.from_kernel_dropped += n as u64 - sent;
                }
            }
        }
    }
}

/// Enters network namespace `ns` for the calling thread only.
pub(super) fn enter_netns(ns: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let path = std::path::Path::new("/run/netns").join(ns);
    let f = std::fs::File::open(&path).with_context(|| format!("exception_path.netns `{ns}`"))?;
    // SAFETY: setns on a descriptor this function owns; it changes this thread's network
    // namespace only, which is what the thread is for (the health and BGP threads).
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        anyhow::bail!(
            "exception_path.netns `{ns}`: setns: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
