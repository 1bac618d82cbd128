//! Ethernet ports: configuration, queue handles, MAC, link, statistics.
use super::{Burst, Eal, Error, Mbuf, Mempool, Result, BURST_SIZE};
use crate::wire::MacAddr;
use dpdk_sys as sys;
use std::ffi::{CStr, CString};

/// What a device offers.
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub min_mtu: u16,
    pub max_mtu: u16,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// An ethdev port. Closed on drop.
pub struct Port {
    id: u16,
    name: String,
    started: bool,
    configured: Option<(u16, u16)>,
}

impl Port {
    /// Finds a probed port by its device name (a PCI address or a vdev name such as
    /// `net_af_packet0`).
    pub fn by_name(name: &str) -> Result<Port> {
        let c = CString::new(name).map_err(|_| Error::msg("port", "NUL in name"))?;
        let mut id = 0u16;
        // SAFETY: c is valid, id is a valid out-pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(Error::msg(
                format!("port {name}"),
                "no such device (not probed: check the PCI address is bound to DPDK, or the vdev spec)",
            ));
        }
        Ok(Port {
            id,
            name: name.to_owned(),
            started: false,
            configured: None,
        })
    }

    /// Makes two ports joined back to back by rings, in this process (zero copy): what
    /// one transmits the other receives, on `queues` queue pairs. For in-process tests
    /// and benchmarks.
    pub fn ring_pair(_eal: &Eal, name: &str, queues: u16, ring_size: u32) -> Result<(Port, Port)> {
        let mk = |n: String| -> Result<*mut sys::rte_ring> {
            let c = CString::new(n.clone()).unwrap();
            // SAFETY: valid name; single-producer/single-consumer rings (one thread per
            // queue on each side); SOCKET_ID_ANY.
            let r = unsafe {
                sys::rte_ring_create(
                    c.as_ptr(),
                    ring_size,
                    -1,
                    sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
                )
            };
            if r.is_null() {
                Err(Error::errno(format!("rte_ring_create({n})")))
            } else {
                Ok(r)
            }
        };
        let mut a2b = Vec::new();
        let mut b2a = Vec::new();
        for q in 0..queues {
            a2b.push(mk(format!("{name}_ab{q}"))?);
            b2a.push(mk(format!("{name}_ba{q}"))?);
        }
        let mk_port =
            |pname: String, rx: &mut [*mut sys::rte_ring], tx: &mut [*mut sys::rte_ring]| {
                let c = CString::new(pname.clone()).unwrap();
                // SAFETY: ring arrays are valid for the call; the rings live until EAL cleanup.
                let id = unsafe {
                    sys::rte_eth_from_rings(
                        c.as_ptr(),
                        rx.as_mut_ptr(),
                        queues as u32,
                        tx.as_mut_ptr(),
                        queues as u32,
                        0,
                    )
                };
                if id < 0 {
                    return Err(Error::errno(format!("rte_eth_from_rings({pname})")));
                }
                Ok(Port {
                    id: id as u16,
                    name: pname,
                    started: false,
                    configured: None,
                })
            };
        let (mut a2b_rx, mut b2a_rx) = (a2b.clone(), b2a.clone());
        let a = mk_port(format!("{name}_a"), &mut b2a_rx, &mut a2b)?;
        let b = mk_port(format!("{name}_b"), &mut a2b_rx, &mut b2a)?;
        Ok((a, b))
    }

    pub fn id(&self) -> u16 {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> Result<PortInfo> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-pointer for this port.
        let rc = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        if rc != 0 {
            return Err(Error::new(format!("dev_info {}", self.name), rc));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated static string owned by the driver.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
        })
    }

    /// Configures `rx` RX queues and `tx` TX queues with `desc` descriptors each, RSS over
    /// IP/TCP/UDP when there is more than one RX queue and the device supports it, and
    /// hands out the queue handles. Returns whether RSS is on.
    pub fn configure(
        &mut self,
        rx: u16,
        tx: u16,
        desc: u16,
        pool: &Mempool,
    ) -> Result<(Vec<RxQueue>, Vec<TxQueue>, bool)> {
        let info = self.info()?;
        if rx == 0 || tx == 0 || rx > info.max_rx_queues || tx > info.max_tx_queues {
            return Err(Error::msg(
                format!("configure {}", self.name),
                format!(
                    "asked for {rx} rx / {tx} tx queues, device offers {} / {}",
                    info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let mut conf = sys::rte_eth_conf::default();
        let rss_hf =
            info.rss_offloads & (sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP);
        let rss = rx > 1 && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: conf is a valid configuration for this stopped port.
        let rc = unsafe { sys::rte_eth_dev_configure(self.id, rx, tx, &conf) };
        if rc != 0 {
            return Err(Error::new(
                format!("rte_eth_dev_configure({})", self.name),
                rc,
            ));
        }
        // SAFETY: queries the port's NUMA socket.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..rx {
            // SAFETY: default rx conf (NULL), a valid pool that outlives the port.
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(self.id, q, desc, socket, std::ptr::null(), pool.raw())
            };
            if rc != 0 {
                return Err(Error::new(format!("rx queue {q} of {}", self.name), rc));
            }
        }
        for q in 0..tx {
            // SAFETY: default tx conf.
            let rc =
                unsafe { sys::rte_eth_tx_queue_setup(self.id, q, desc, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(Error::new(format!("tx queue {q} of {}", self.name), rc));
            }
        }
        self.configured = Some((rx, tx));
        let rxq = (0..rx)
            .map(|q| RxQueue {
                port: self.id,
                queue: q,
            })
            .collect();
        let txq = (0..tx)
            .map(|q| TxQueue {
                port: self.id,
                queue: q,
            })
            .collect();
        Ok((rxq, txq, rss))
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: the port is configured.
        let rc = unsafe { sys::rte_eth_dev_start(self.id) };
        if rc != 0 {
            return Err(Error::new(format!("rte_eth_dev_start({})", self.name), rc));
        }
        self.started = true;
        Ok(())
    }

    /// Stops the port. Queue handles must no longer be polled.
    pub fn stop(&mut self) {
        if self.started {
            // SAFETY: the port was started; no thread polls it any more (caller's duty).
            unsafe { sys::rte_eth_dev_stop(self.id) };
            self.started = false;
        }
    }

    pub fn mac(&self) -> MacAddr {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        unsafe { sys::rte_eth_macaddr_get(self.id, &mut a) };
        MacAddr(a.addr_bytes)
    }

    /// Sets the device MAC; fails where the device cannot (net_pcap).
    pub fn set_mac(&mut self, mac: MacAddr) -> Result<()> {
        let mut a = sys::rte_ether_addr { addr_bytes: mac.0 };
        // SAFETY: valid pointer to an address.
        let rc = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.id, &mut a) };
        if rc != 0 {
            return Err(Error::new(format!("set MAC of {}", self.name), rc));
        }
        Ok(())
    }

    pub fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        // SAFETY: plain control calls on a valid port.
        let rc = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.id)
            }
        };
        if rc != 0 {
            return Err(Error::new(format!("promiscuous {}", self.name), rc));
        }
        Ok(())
    }

    pub fn set_mtu(&mut self, mtu: u16) -> Result<()> {
        // SAFETY: control call on a valid port.
        let rc = unsafe { sys::rte_eth_dev_set_mtu(self.id, mtu) };
        if rc != 0 {
            return Err(Error::new(format!("set MTU {mtu} on {}", self.name), rc));
        }
        Ok(())
    }

    pub fn link(&self) -> LinkStatus {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: valid out-pointer; does not wait.
        unsafe { sys::rte_eth_link_get_nowait(self.id, &mut l) };
        LinkStatus {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer.
        unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// Extended statistics, as (name, value).
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: the first call with NULL asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let mut names = vec![sys::rte_eth_xstat_name::default(); n as usize];
        let mut vals = vec![sys::rte_eth_xstat::default(); n as usize];
        // SAFETY: arrays of n elements.
        let got_n = unsafe { sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        // SAFETY: `vals` has n elements.
        let got_v = unsafe { sys::rte_eth_xstats_get(self.id, vals.as_mut_ptr(), n as u32) };
        let k = got_n.min(got_v).max(0) as usize;
        vals[..k]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: names are NUL-terminated fixed arrays.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) }
                    .to_string_lossy()
                    .into_owned();
                Some((s, v.value))
            })
            .collect()
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: stopped; closing flushes writers such as net_pcap's tx file.
        unsafe { sys::rte_eth_dev_close(self.id) };
    }
}

/// The receive side of one queue of one port. Owned by exactly one thread.
pub struct RxQueue {
    port: u16,
    queue: u16,
}

/// The transmit side of one queue of one port. Owned by exactly one thread.
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
    /// Receives into the free space of `burst`; returns how many arrived.
    #[inline]
    pub fn rx(&mut self, burst: &mut Burst) -> usize {
        let room = BURST_SIZE - burst.len;
        // SAFETY: the pointer array has `room` free slots; this queue is polled by this
        // thread only (RxQueue is not Clone and is taken by &mut).
        let n = unsafe {
            sys::ferrovs_rx_burst(
                self.port,
                self.queue,
                burst.ptrs.as_mut_ptr().add(burst.len),
                room as u16,
            )
        } as usize;
        burst.len += n;
        n
    }
}

impl TxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
    /// Transmits the whole burst; what the device did not take is freed. Returns
    /// (sent, dropped).
    #[inline]
    pub fn tx(&mut self, burst: &mut Burst) -> (usize, usize) {
        let n = burst.len;
        if n == 0 {
            return (0, 0);
        }
        // SAFETY: the first n pointers are owned mbufs; the device takes ownership of
        // the first `sent`; this queue is used by this thread only.
        let mut sent = unsafe {
            sys::ferrovs_tx_burst(self.port, self.queue, burst.ptrs.as_mut_ptr(), n as u16)
        } as usize;
        if sent < n {
            // A ring momentarily full (memif, af_packet): one more try before dropping.
            // SAFETY: as above, for the unsent tail (still ours).
            sent += unsafe {
                sys::ferrovs_tx_burst(
                    self.port,
                    self.queue,
                    burst.ptrs.as_mut_ptr().add(sent),
                    (n - sent) as u16,
                )
            } as usize;
        }
        if sent < n {
            // SAFETY: the unsent tail is still ours; free it once.
            unsafe {
                sys::rte_pktmbuf_free_bulk(burst.ptrs.as_mut_ptr().add(sent), (n - sent) as u32)
            };
        }
        burst.len = 0;
        (sent, n - sent)
    }
    /// Sends one mbuf (management packets). Returns false if the device refused it.
    pub fn send_one(&mut self, m: Mbuf) -> bool {
        let mut b = Burst::default();
        let _ = b.push(m);
        self.tx(&mut b).0 == 1
    }
}
