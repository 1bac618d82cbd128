//! Runs the real `ferrovs` binary for a test: start it on a config, stop it with SIGTERM.
// Each test binary uses part of this module.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Ferrovs {
    child: Child,
    pub log: PathBuf,
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrovs-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Ferrovs {
    /// Checks the config with `--check`, then starts the daemon on it.
    pub fn start(cfg: &Path) -> Ferrovs {
        let bin = env!("CARGO_BIN_EXE_ferrovs");
        let check = Command::new(bin)
            .args(["--check", "--config"])
            .arg(cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = cfg.with_extension("log");
        let child = Command::new(bin)
            .arg("--config")
            .arg(cfg)
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Ferrovs { child, log }
    }

    /// Waits (bounded) until the log contains `what`.
    pub fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .contains(what)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "ferrovs never logged `{what}`:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        // SAFETY: sends SIGTERM to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!("ferrovs did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "exit {status:?}\n{log}");
        log
    }
}

impl Drop for Ferrovs {
    fn drop(&mut self) {
        // A failed assertion must not leave the daemon running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback for the API.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
