//! The demo's servers: real `raft-node` processes on loopback, started from this same
//! executable, each with its own data directory and JSON log in the demo's directory.
//!
//! Each child runs in a process group of its own, so a Ctrl-C typed at the terminal
//! reaches the demo alone, which then stops every child itself; and each reads a pipe
//! from the demo as its standard input, so that it exits if the demo dies first.
//! Signals are sent with the system's `kill` command: the workspace denies unsafe code,
//! and a signal a second is no cost worth a dependency.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

use crate::config::{Election, NodeConfig, Timing};

/// What the demo last did to a server's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// Running.
    Up,
    /// Frozen by SIGSTOP, its sockets open.
    Paused,
    /// Killed by SIGKILL (or exited by itself).
    Down,
}

impl Process {
    /// The word the view shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Process::Up => "up",
            Process::Paused => "paused",
            Process::Down => "killed",
        }
    }
}

/// Where the demo keeps its files: a temporary directory removed at the end, or one
/// the user named, which is kept.
#[derive(Debug)]
pub enum DemoDir {
    /// Removed when dropped.
    Temporary(tempfile::TempDir),
    /// Kept.
    Kept(PathBuf),
}

impl DemoDir {
    /// The directory's path.
    pub fn path(&self) -> &Path {
        match self {
            DemoDir::Temporary(dir) => dir.path(),
            DemoDir::Kept(path) => path,
        }
    }
}

struct ServerChild {
    process: Process,
    child: Option<Child>,
}

/// The running cluster. Dropping it kills every server.
pub struct Servers {
    executable: PathBuf,
    dir: DemoDir,
    config_path: PathBuf,
    config: NodeConfig,
    faults_enabled: bool,
    children: BTreeMap<u64, ServerChild>,
}

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servers")
            .field("dir", &self.dir.path())
            .field("servers", &self.children.len())
            .finish_non_exhaustive()
    }
}

impl Servers {
    /// Writes a configuration for `ids` on free loopback ports into `dir` and starts
    /// no server yet. The `[faults]` section is enabled when this build knows it.
    pub fn prepare(
        dir: DemoDir,
        cluster_name: &str,
        timing: Timing,
        election: Election,
        ids: &[u64],
    ) -> anyhow::Result<Servers> {
        let ports = free_ports(ids.len() * 2)?;
        let base = config_text(cluster_name, timing, election, ids, &ports, false);
        let with_faults = config_text(cluster_name, timing, election, ids, &ports, true);

        // The fault layer is switched on by a `[faults]` section; a build without it
        // refuses the section as an unknown field, and the demo then runs without
        // partitions and slow links rather than not at all.
        let config_path = dir.path().join("cluster.toml");
        let source = config_path.display().to_string();
        let (text, faults_enabled) = match NodeConfig::parse(&with_faults, source.clone()) {
            Ok(_) => (with_faults, true),
            Err(_) => (base, false),
        };
        let config = NodeConfig::parse(&text, source)
            .context("the demo wrote a configuration raft-node refuses")?;
        std::fs::write(&config_path, text)
            .with_context(|| format!("cannot write {}", config_path.display()))?;

        let executable = std::env::current_exe().context("cannot find this executable")?;
        Ok(Servers {
            executable,
            dir,
            config_path,
            config,
            faults_enabled,
            children: BTreeMap::new(),
        })
    }

    /// The configuration the servers run with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Whether the servers take fault commands (partitions, slow links).
    pub fn faults_enabled(&self) -> bool {
        self.faults_enabled
    }

    /// The demo's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every server id, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.config.servers.iter().map(|s| s.id).collect()
    }

    /// The JSON log of server `id`.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir().join(format!("server-{id}.log"))
    }

    /// What the demo last did to server `id`'s process.
    pub fn process(&self, id: u64) -> Process {
        self.children.get(&id).map_or(Process::Down, |c| c.process)
    }

    /// Starts server `id` (again): its log and standard output are appended to, so a
    /// restarted server's lines follow those of its previous life.
    pub fn start(&mut self, id: u64) -> anyhow::Result<u32> {
        if self.process(id) != Process::Down {
            bail!("server {id} is already running");
        }
        let data_dir = self.dir().join(format!("server-{id}"));
        let log = append(&self.log_path(id))?;
        let out = append(&self.dir().join(format!("server-{id}.out")))?;

        let child = Command::new(&self.executable)
            .arg(id.to_string())
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--log-format", "json", "--exit-with-stdin"])
            // The timeline needs the role changes, logged at info.
            .env("RUST_LOG", "info")
            // The pipe's other end stays with the demo: when the demo ends, however it
            // ends, the server sees its input close and exits (--exit-with-stdin).
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start server {id}"))?;
        let pid = child.id();
        self.children.insert(
            id,
            ServerChild {
                process: Process::Up,
                child: Some(child),
            },
        );
        Ok(pid)
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let entry = self.running(id)?;
        if let Some(mut child) = entry.child.take() {
            // A process that already exited cannot be killed; reaping it is enough.
            let _ = child.kill();
            child
                .wait()
                .with_context(|| format!("cannot reap server {id}"))?;
        }
        entry.process = Process::Down;
        Ok(())
    }

    /// SIGSTOP.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        let pid = self.pid_of_running(id)?;
        if self.process(id) == Process::Paused {
            bail!("server {id} is already paused");
        }
        signal(pid, "STOP")?;
        self.running(id)?.process = Process::Paused;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        let pid = self.pid_of_running(id)?;
        if self.process(id) != Process::Paused {
            bail!("server {id} is not paused");
        }
        signal(pid, "CONT")?;
        self.running(id)?.process = Process::Up;
        Ok(())
    }

    /// Notices servers that exited by themselves (a startup error, a crash) and marks
    /// them down; returns their ids with how they exited.
    pub fn reap_exited(&mut self) -> Vec<(u64, String)> {
        let mut exited = Vec::new();
        for (&id, entry) in &mut self.children {
            let Some(child) = entry.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                entry.child = None;
                entry.process = Process::Down;
                exited.push((id, status.to_string()));
            }
        }
        exited
    }

    /// Kills every server and waits for each. Called on every way out of the demo.
    pub fn stop_all(&mut self) {
        for entry in self.children.values_mut() {
            if let Some(mut child) = entry.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            entry.process = Process::Down;
        }
    }

    /// Takes the directory out, so that dropping the servers keeps it.
    pub fn keep_dir(&mut self) -> PathBuf {
        let path = self.dir().to_path_buf();
        let dir = std::mem::replace(&mut self.dir, DemoDir::Kept(path.clone()));
        if let DemoDir::Temporary(temp) = dir {
            let _ = temp.keep();
        }
        path
    }

    fn running(&mut self, id: u64) -> anyhow::Result<&mut ServerChild> {
        match self.children.get_mut(&id) {
            Some(entry) if entry.child.is_some() => Ok(entry),
            _ if self.config.server(id).is_err() => bail!("there is no server {id}"),
            _ => bail!("server {id} is not running"),
        }
    }

    fn pid_of_running(&mut self, id: u64) -> anyhow::Result<u32> {
        let entry = self.running(id)?;
        // Cannot fail: `running` only returns entries with a process.
        Ok(entry
            .child
            .as_ref()
            .map(Child::id)
            .expect("a running child"))
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -{name} {pid} failed: {status}");
    }
    Ok(())
}

/// The configuration file for the demo's servers, in `raft-node`'s TOML format.
fn config_text(
    cluster_name: &str,
    timing: Timing,
    election: Election,
    ids: &[u64],
    ports: &[u16],
    faults: bool,
) -> String {
    let mut text = format!(
        "# Written by raft-node demo.\ncluster_name = {cluster_name:?}\n\n[timing]\n\
         tick_ms = {}\nelection_timeout_min_ms = {}\nelection_timeout_max_ms = {}\n\
         heartbeat_interval_ms = {}\n\n[election]\npre_vote = {}\ncheck_quorum = {}\n\
         crash_hint = {}\ntransfer_on_stop = {}\n",
        timing.tick_ms,
        timing.election_timeout_min_ms,
        timing.election_timeout_max_ms,
        timing.heartbeat_interval_ms,
        election.pre_vote,
        election.check_quorum,
        election.crash_hint,
        election.transfer_on_stop,
    );
    if faults {
        text.push_str("\n[faults]\nenabled = true\n");
    }
    for (index, id) in ids.iter().enumerate() {
        text.push_str(&format!(
            "\n[[servers]]\nid = {id}\naddress = \"127.0.0.1:{}\"\n\
             status_address = \"127.0.0.1:{}\"\n",
            ports[2 * index],
            ports[2 * index + 1]
        ));
    }
    text
}

/// `count` distinct loopback ports nothing listens on.
///
/// They are drawn below the kernel's ephemeral range when it leaves room: an outgoing
/// connection may take an ephemeral port as its local port while a server is killed,
/// and the server could then not listen on it again when restarted. The quick start's
/// ports (7000-7199) are avoided, so a demo never meets a running quick-start cluster.
///
/// A port is only checked free, not held, until the servers bind it, so demos started
/// together (as the tests start them) that drew at random would now and then pick the
/// same port. Each demo searches from a stretch of its own instead, placed by its
/// process id: two demos start in the same stretch only if their ids differ by a
/// multiple of the number of stretches, a few hundred.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok());
    let (low, high) = match ephemeral_low {
        Some(low) if low > 12_000 => (10_000, low),
        _ => (1024, u16::MAX),
    };

    // The widest demo (26 servers) needs 52 ports.
    const STRETCH: u64 = 64;
    let span = u64::from(high - low);
    let start = u64::from(std::process::id()) * STRETCH % span;
    let mut ports: Vec<u16> = Vec::with_capacity(count);
    for offset in 0..span {
        if ports.len() == count {
            break;
        }
        let port = low + ((start + offset) % span) as u16;
        if (7000..7200).contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    if ports.len() == count {
        return Ok(ports);
    }
    bail!("found no {count} free loopback ports in {low}..{high}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written configuration is one raft-node accepts, with every server on
    /// loopback and distinct ports.
    #[test]
    fn generated_configuration_parses() {
        let timing = NodeConfig::embedded_default().timing;
        let ports = free_ports(6).unwrap();
        let text = config_text(
            "demo",
            timing,
            Election::default(),
            &[1, 2, 3],
            &ports,
            false,
        );

        let config = NodeConfig::parse(&text, "demo".into()).unwrap();
        assert_eq!(config.servers.len(), 3);
        assert!(config.servers.iter().all(|s| s.address.ip().is_loopback()));
        assert_eq!(config.timing, timing);
        let mut all: Vec<u16> = ports.clone();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6);
        assert!(ports.iter().all(|p| !(7000..7200).contains(p)));
    }
}
