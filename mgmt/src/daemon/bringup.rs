//! Bring-up: EAL arguments from the config, ports opened and configured with a queue
//! plan that fits what each device offers.
#![forbid(unsafe_code)]
use crate::config::Config;
use anyhow::{Context, Result};
use dataplane::dpdk::{Mempool, Port, TxQueue};
use dataplane::wire::MacAddr;
use dataplane::worker::WorkerQueues;

/// True for a PCI address such as 0000:3b:00.0 (else the device is a vdev spec).
pub fn is_pci(dev: &str) -> bool {
    let b = dev.as_bytes();
    dev.len() >= 7
        && dev.contains(':')
        && dev.contains('.')
        && b.iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
}

/// EAL arguments for a config.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let d = &cfg.dpdk;
    let mut a = vec![
        "-l".into(),
        d.cores.to_string(),
        "--file-prefix".into(),
        d.file_prefix.clone(),
    ];
    if d.hugepages {
        a.extend(["-m".into(), d.memory_mb.to_string(), "--in-memory".into()]);
    } else {
        a.extend([
            "--no-huge".into(),
            "-m".into(),
            d.memory_mb.to_string(),
            "--no-shconf".into(),
        ]);
    }
    let mut any_pci = false;
    for (i, p) in cfg.ports.iter().enumerate() {
        if is_pci(&p.device) {
            any_pci = true;
            a.extend(["-a".into(), p.device.clone()]);
        } else {
            a.push(format!("--vdev={}", p.device));
        }
        if let Some(ifname) = &p.kernel_interface {
            a.push(format!(
                "--vdev={},iface={ifname}",
                super::exception::vdev_name(i)
            ));
        }
    }
    if !any_pci && !d.extra_args.iter().any(|x| x == "--no-pci") {
        a.push("--no-pci".into());
    }
    a.extend(d.extra_args.iter().cloned());
    a
}

/// The ports, up, and how their queues are shared out.
pub struct PortsUp {
    pub ports: Vec<Port>,
    /// What each worker polls and sends on.
    pub per_worker: Vec<WorkerQueues>,
    /// Per port: the management thread's own TX queue, if the device had one to spare.
    pub mgmt_tx: Vec<Option<TxQueue>>,
    /// Per port: the MAC it runs with.
    pub macs: Vec<MacAddr>,
    /// Per port: how it was brought up (driver, queues, MAC in software or not).
    pub notes: Vec<crate::model::PortNote>,
}

/// True for a memif device in the client role (memif's default role): its peer, the
/// server, decides how many rings there are, and refuses a client that opens more.
pub fn is_memif_client(driver: &str, device: &str) -> bool {
    driver == "net_memif" && !device.split(',').any(|kv| kv.trim() == "role=server")
}

/// How many queues of each kind a port uses, given what its device offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePlan {
    pub rx: usize,
    pub tx: usize,
    /// The management thread has a TX queue of its own (else it sends through worker 0).
    pub mgmt_tx: bool,
}

/// The queue plan of one port for `workers` workers. `max_rx`/`max_tx` are what the
/// device offers, capped by `ports[].queues`. Every worker needs a TX queue; RX queues
/// are shared out (a port with fewer RX queues than workers is polled by fewer). The
/// management thread gets one more TX queue where the device has one, except on a memif
/// client: there the server decides the ring count, so the client asks for no more TX
/// rings than it has workers (a one-queue peer such as pktgen's then links).
pub fn queue_plan(workers: usize, max_rx: usize, max_tx: usize, memif_client: bool) -> QueuePlan {
    let rx = workers.min(max_rx).max(1);
    let tx = if memif_client {
        workers.min(max_tx).max(1)
    } else {
        (workers + 1).min(max_tx).max(1)
    };
    QueuePlan {
        rx,
        tx,
        mgmt_tx: tx > workers,
    }
}

/// Opens and starts every port with its [`queue_plan`]: as many workers as every port
/// can give a TX queue.
pub fn ports(cfg: &Config, want_workers: usize, pool: &Mempool) -> Result<PortsUp> {
    let mut ports = Vec::new();
    let mut infos = Vec::new();
    for p in &cfg.ports {
        let name = if is_pci(&p.device) {
            p.device.as_str()
        } else {
            p.device.split(',').next().unwrap_or("")
        };
        let port =
            Port::by_name(name).with_context(|| format!("port `{}` ({})", p.name, p.device))?;
        infos.push(port.info().map_err(anyhow::Error::msg)?);
        ports.push(port);
    }
    let cap = |i: usize, offered: u16| {
        (offered as usize).min(cfg.ports[i].queues.map_or(usize::MAX, usize::from))
    };
    let max_tx = infos
        .iter()
        .enumerate()
        .map(|(i, info)| cap(i, info.max_tx_queues))
        .min()
        .unwrap_or(1);
    let workers = want_workers.min(max_tx).max(1);
    if workers < want_workers {
        tracing::warn!(
            want_workers,
            workers,
            "a port offers fewer TX queues than worker cores: running fewer workers"
        );
    }
    let mut up = PortsUp {
        ports: Vec::new(),
        per_worker: (0..workers)
            .map(|_| WorkerQueues {
                rx: vec![],
                tx: vec![],
                sends_for_mgmt: false,
            })
            .collect(),
        mgmt_tx: Vec::new(),
        macs: Vec::new(),
        notes: Vec::new(),
    };
    for (i, (mut port, info)) in ports.into_iter().zip(&infos).enumerate() {
        let pc = &cfg.ports[i];
        let memif_client = is_memif_client(&info.driver, &pc.device);
        let plan = queue_plan(
            workers,
            cap(i, info.max_rx_queues),
            cap(i, info.max_tx_queues),
            memif_client,
        );
        let (rxq, txq) = (plan.rx, plan.tx);
        if memif_client {
            tracing::info!(
                port = %pc.name,
                "memif client: {rxq} server-to-client and {txq} client-to-server rings; the server must offer at least that many queues (limit with ports[].queues)"
            );
        }
        let (rx, tx, rss) = port
            .configure(rxq as u16, txq as u16, 1024, pool)
            .map_err(anyhow::Error::msg)?;
        let mut software_mac = false;
        let mac = match pc.mac {
            Some(mac) => {
                software_mac = port.set_mac(mac).is_err();
                mac
            }
            None => port.mac(),
        };
        if let Some(mtu) = pc.mtu {
            if let Err(e) = port.set_mtu(mtu) {
                tracing::warn!(port = %pc.name, "cannot set MTU: {e}");
            }
        }
        port.start().map_err(anyhow::Error::msg)?;
        if software_mac {
            let _ = port.set_promiscuous(true);
        }
        let mut tx = tx.into_iter();
        for (w, q) in rx.into_iter().enumerate() {
            up.per_worker[w].rx.push((i as u16, q));
        }
        for wq in up.per_worker.iter_mut() {
            wq.tx.push(tx.next().expect("workers <= tx queues"));
        }
        let own = tx.next().filter(|_| plan.mgmt_tx);
        let mgmt_tx = if own.is_some() {
            "own queue"
        } else {
            "through worker 0"
        };
        tracing::info!(
            port = %pc.name, device = %pc.device, driver = %info.driver, %mac, rx_queues = rxq, tx_queues = txq,
            rss, software_mac, mgmt_tx, "port up"
        );
        up.notes.push(crate::model::PortNote {
            name: pc.name.clone(),
            device: pc.device.clone(),
            driver: info.driver.clone(),
            mac: mac.to_string(),
            software_mac,
            rx_queues: rxq,
            tx_queues: txq,
            rss,
            mgmt_tx: mgmt_tx.into(),
        });
        up.mgmt_tx.push(own);
        up.macs.push(mac);
        up.ports.push(port);
    }
    if up.mgmt_tx.iter().any(|q| q.is_none()) {
        up.per_worker[0].sends_for_mgmt = true;
    }
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_plans() {
        // A multi-queue NIC: one pair per worker, one more TX queue for management.
        let nic = queue_plan(4, 64, 64, false);
        assert_eq!(
            nic,
            QueuePlan {
                rx: 4,
                tx: 5,
                mgmt_tx: true
            }
        );
        // A single-queue device (net_pcap, af_packet): management sends through worker 0.
        assert_eq!(
            queue_plan(1, 1, 1, false),
            QueuePlan {
                rx: 1,
                tx: 1,
                mgmt_tx: false
            }
        );
        // A memif client never asks for a ring its workers do not use.
        assert_eq!(
            queue_plan(1, 8, 8, true),
            QueuePlan {
                rx: 1,
                tx: 1,
                mgmt_tx: false
            }
        );
        assert_eq!(
            queue_plan(2, 1, 8, true),
            QueuePlan {
                rx: 1,
                tx: 2,
                mgmt_tx: false
            }
        );
        // memif server: it may have more rings than the client uses.
        assert_eq!(
            queue_plan(1, 8, 8, false),
            QueuePlan {
                rx: 1,
                tx: 2,
                mgmt_tx: true
            }
        );
        assert!(is_memif_client(
            "net_memif",
            "net_memif0,socket=/run/a.sock"
        ));
        assert!(is_memif_client(
            "net_memif",
            "net_memif0,role=client,socket=/run/a.sock"
        ));
        assert!(!is_memif_client(
            "net_memif",
            "net_memif0,role=server,socket=/run/a.sock"
        ));
        assert!(!is_memif_client("net_ring", "net_ring0"));
    }
}
