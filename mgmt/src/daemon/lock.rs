//! One daemon per device: an exclusive lock for each port's device and one for the EAL
//! file prefix, taken before EAL touches any port. A second ferrovs on the same NIC,
//! af_packet interface or memif socket fails at once and names the holder's PID, instead
//! of both running and resetting each other's connections. The kernel drops the locks
//! when the process ends, however it ends.
use crate::config::{device_key, Config};
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Held locks; dropping them releases them.
pub struct Locks {
    _files: Vec<File>,
}

/// Where lock files live: `/run/ferrovs` (or `FERROVS_LOCK_DIR`).
pub fn lock_dir() -> PathBuf {
    std::env::var_os("FERROVS_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/ferrovs"))
}

/// Takes every lock `cfg` needs, or fails naming the daemon that holds one.
pub fn acquire(cfg: &Config, dir: &Path) -> Result<Locks> {
    std::fs::create_dir_all(dir).with_context(|| format!("lock directory {}", dir.display()))?;
    let mut files = Vec::new();
    let prefix = format!("prefix-{}", cfg.dpdk.file_prefix);
    files.push(take(
        dir,
        &prefix,
        "dpdk.file_prefix",
        &cfg.dpdk.file_prefix,
    )?);
    for (i, p) in cfg.ports.iter().enumerate() {
        let name = format!("device-{}", device_key(&p.device));
        files.push(take(dir, &name, &format!("ports[{i}].device"), &p.device)?);
    }
    Ok(Locks { _files: files })
}

fn take(dir: &Path, name: &str, key: &str, what: &str) -> Result<File> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}.lock"));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("lock file {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        bail!(
            "{key} `{what}` is in use by another ferrovs (pid {}; lock {})",
            if holder.is_empty() { "unknown" } else { holder },
            path.display()
        );
    }
    f.set_len(0)?;
    f.rewind()?;
    write!(f, "{}", std::process::id())?;
    f.flush()?;
    Ok(f)
}
