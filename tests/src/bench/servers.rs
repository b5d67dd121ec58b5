//! A cluster of `raft-node` processes for the benchmark: any configuration keys,
//! signals sent without a shell in between where possible, JSON logs kept per server.
//!
//! The test helpers' `Cluster` is built for checking behaviour (it polls and asserts);
//! this one stays out of the way of what it measures and returns errors instead of
//! panicking, so that a long run can report what went wrong.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use serde_json::Value;
use tempfile::TempDir;

use crate::free_ports;

/// The shape and settings of a benchmark cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Servers, with ids 1 to `servers`.
    pub servers: u64,
    /// `timing.tick_ms`.
    pub tick_ms: u64,
    /// `timing.election_timeout_min_ms`.
    pub min_ms: u64,
    /// `timing.election_timeout_max_ms`.
    pub max_ms: u64,
    /// `timing.heartbeat_interval_ms`.
    pub heartbeat_ms: u64,
    /// Further keys as `section.key = value` (TOML values, written as given), such as
    /// `("election.crash_hint", "true")`; a key without a dot goes to the top level.
    pub extra: Vec<(String, String)>,
}

/// What one server said on its status port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `leader`, `follower`, ...
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
}

/// The processes, their configuration and their logs, in a temporary directory.
/// Dropping it kills every process it started.
#[derive(Debug)]
pub struct Servers {
    dir: TempDir,
    binary: PathBuf,
    log_filter: String,
    status: BTreeMap<u64, SocketAddr>,
    children: BTreeMap<u64, Child>,
}

impl Servers {
    /// Writes the configuration of `shape` with fresh loopback ports and starts every
    /// server, logging at `log_filter` (a `RUST_LOG` value).
    pub fn start(binary: &Path, shape: &Shape, log_filter: &str) -> anyhow::Result<Servers> {
        let dir = tempfile::Builder::new()
            .prefix("raft-failover-")
            .tempdir()?;
        let ports = free_ports(2 * shape.servers as usize);
        let ids = 1..=shape.servers;
        let addresses: Vec<(u64, u16, u16)> = ids
            .zip(ports.chunks(2))
            .map(|(id, p)| (id, p[0], p[1]))
            .collect();
        std::fs::write(
            dir.path().join("cluster.toml"),
            config_text(shape, &addresses),
        )?;

        let mut servers = Servers {
            dir,
            binary: binary.to_path_buf(),
            log_filter: log_filter.to_string(),
            status: addresses
                .iter()
                .map(|&(id, _, status)| (id, SocketAddr::from(([127, 0, 0, 1], status))))
                .collect(),
            children: BTreeMap::new(),
        };
        for id in servers.ids() {
            servers.start_server(id)?;
        }
        Ok(servers)
    }

    /// Every configured id.
    pub fn ids(&self) -> Vec<u64> {
        self.status.keys().copied().collect()
    }

    /// The JSON log of server `id`.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("server-{id}.log"))
    }

    /// The process id of server `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// Starts server `id` and waits until its status port answers.
    pub fn start_server(&mut self, id: u64) -> anyhow::Result<()> {
        let data = self.dir.path().join(format!("data-{id}"));
        let mut child = Command::new(&self.binary)
            .arg(id.to_string())
            .arg("--config")
            .arg(self.dir.path().join("cluster.toml"))
            .arg("--data-dir")
            .arg(data)
            .args(["--log-format", "json"])
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(append(&self.log_path(id))?)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;

        let deadline = Instant::now() + Duration::from_secs(10);
        while self.query(id).is_none() {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
                bail!("server {id} exited at start ({status}); its log:\n{log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("server {id} did not answer on its status port within 10 s");
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.children.insert(id, child);
        Ok(())
    }

    /// Kills server `id` with SIGKILL, straight from this process, and reaps it.
    /// Returns the wall-clock time taken just before the signal.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<SystemTime> {
        let mut child = self
            .children
            .remove(&id)
            .context("the server is not running")?;
        let at = SystemTime::now();
        child.kill()?;
        child.wait()?;
        Ok(at)
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to server `id` with the `kill` command
    /// (std offers SIGKILL only). Returns the wall-clock time just before starting
    /// `kill`, so a measured downtime includes the command's start-up, about a
    /// millisecond: a slight overestimate.
    pub fn signal(&mut self, id: u64, signal: &str) -> anyhow::Result<SystemTime> {
        let pid = self.pid(id).context("the server is not running")?;
        let at = SystemTime::now();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed: {status}");
        }
        Ok(at)
    }

    /// Waits for server `id` to exit by itself (after SIGTERM), at most `limit`.
    pub fn wait_exit(&mut self, id: u64, limit: Duration) -> anyhow::Result<()> {
        let mut child = self
            .children
            .remove(&id)
            .context("the server is not running")?;
        let deadline = Instant::now() + limit;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("server {id} still ran {limit:?} after SIGTERM");
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// What server `id` says on its status port; `None` if it does not answer within
    /// a few hundred milliseconds (down or paused).
    pub fn query(&self, id: u64) -> Option<Seen> {
        let address = self.status.get(&id)?;
        let mut stream = TcpStream::connect_timeout(address, Duration::from_millis(200)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let value: Value = serde_json::from_str(text.trim()).ok()?;
        Some(Seen {
            role: value.get("role")?.as_str()?.to_string(),
            term: value.get("term")?.as_u64()?,
            leader: value.get("leader").and_then(Value::as_u64),
        })
    }

    /// The leader and term that every server of `group` names, one of them leading.
    pub fn agreed(&self, group: &[u64]) -> Option<(u64, u64)> {
        let seen: Vec<Seen> = group
            .iter()
            .map(|&id| self.query(id))
            .collect::<Option<_>>()?;
        let leaders: Vec<(u64, u64)> = group
            .iter()
            .zip(&seen)
            .filter(|(_, s)| s.role == "leader")
            .map(|(&id, s)| (id, s.term))
            .collect();
        let [(leader, term)] = leaders[..] else {
            return None;
        };
        let all = seen
            .iter()
            .all(|s| s.term == term && s.leader == Some(leader));
        all.then_some((leader, term))
    }

    /// Polls until [`Servers::agreed`] holds for `group` and `accept` likes the leader.
    pub fn wait_agreed(
        &self,
        group: &[u64],
        limit: Duration,
        accept: impl Fn(u64, u64) -> bool,
    ) -> Option<(u64, u64)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((leader, term)) = self.agreed(group) {
                if accept(leader, term) {
                    return Some((leader, term));
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            // A paused server must be able to die too; SIGKILL works on stopped ones.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn append(path: &Path) -> anyhow::Result<File> {
    Ok(OpenOptions::new().create(true).append(true).open(path)?)
}

/// The TOML configuration: timing, election switches, extra keys, the servers.
fn config_text(shape: &Shape, addresses: &[(u64, u16, u16)]) -> String {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let timing = [
        ("tick_ms", shape.tick_ms),
        ("election_timeout_min_ms", shape.min_ms),
        ("election_timeout_max_ms", shape.max_ms),
        ("heartbeat_interval_ms", shape.heartbeat_ms),
    ];
    for (key, value) in timing {
        sections
            .entry("timing".into())
            .or_default()
            .insert(key.into(), value.to_string());
    }
    for key in ["pre_vote", "check_quorum"] {
        sections
            .entry("election".into())
            .or_default()
            .insert(key.into(), "true".into());
    }
    let mut top = BTreeMap::from([("cluster_name".to_string(), "\"failover\"".to_string())]);
    for (key, value) in &shape.extra {
        match key.split_once('.') {
            Some((section, key)) => sections
                .entry(section.into())
                .or_default()
                .insert(key.into(), value.clone()),
            None => top.insert(key.clone(), value.clone()),
        };
    }

    let mut text = String::new();
    for (key, value) in &top {
        let _ = writeln!(text, "{key} = {value}");
    }
    for (section, keys) in &sections {
        let _ = writeln!(text, "\n[{section}]");
        for (key, value) in keys {
            let _ = writeln!(text, "{key} = {value}");
        }
    }
    for &(id, port, status) in addresses {
        let _ = write!(
            text,
            "\n[[servers]]\nid = {id}\naddress = \"127.0.0.1:{port}\"\n\
             status_address = \"127.0.0.1:{status}\"\n"
        );
    }
    text
}
