//! A cluster of `raft-node` processes in a temporary directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binary::raft_node_binary;
use crate::history::{query_ports, History, PollVia, Poller};
use crate::logs::{ids_in, leaders_in_log, read_log};
use crate::ports::free_ports;
use crate::process::{run_to_exit, wait_at_most};
use crate::status::{query_port, request_port, Observation, StatusRow};

/// The `[timing]` section of a test's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `tick_ms`.
    pub tick_ms: u64,
    /// `election_timeout_min_ms`.
    pub election_timeout_min_ms: u64,
    /// `election_timeout_max_ms`.
    pub election_timeout_max_ms: u64,
    /// `heartbeat_interval_ms`.
    pub heartbeat_interval_ms: u64,
}

impl Timing {
    /// The embedded default: the paper's 150-300 ms election timeout, 50 ms heartbeats.
    pub const DEFAULT: Timing = Timing {
        tick_ms: 10,
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        heartbeat_interval_ms: 50,
    };

    /// Faster elections for shorter tests, still far above a loopback round trip:
    /// 100-200 ms election timeout, 30 ms heartbeats.
    pub const FAST: Timing = Timing {
        tick_ms: 10,
        election_timeout_min_ms: 100,
        election_timeout_max_ms: 200,
        heartbeat_interval_ms: 30,
    };
}

/// The shape of a test cluster.
#[derive(Clone, Copy, Debug)]
pub struct ClusterSpec {
    /// How many servers, with ids 1 to `servers`.
    pub servers: u64,
    /// The timing.
    pub timing: Timing,
    /// `election.pre_vote`.
    pub pre_vote: bool,
    /// `election.check_quorum`.
    pub check_quorum: bool,
    /// `election.crash_hint`.
    pub crash_hint: bool,
    /// `election.transfer_on_stop`.
    pub transfer_on_stop: bool,
    /// `faults.enabled`: the status ports take fault commands ([`Cluster::request`]).
    pub faults: bool,
    /// Server `N` listens on 127.0.0.`10+N` (election and status address) instead of
    /// 127.0.0.1, so that firewall rules between addresses can cut single links.
    /// Servers then dial from their own address.
    pub address_per_server: bool,
    /// Mutual TLS on the links and status ports, with certificates made by
    /// `raft-node certs` in the cluster's directory. The status ports are then read
    /// with `raft-node status` instead of directly; [`Cluster::request`],
    /// [`Cluster::fault`] and [`Cluster::poll_status_ports`] speak plain TCP and get
    /// no answer.
    pub tls: bool,
}

impl ClusterSpec {
    /// `servers` servers with [`Timing::FAST`], pre-vote, check-quorum, crash hints
    /// and transfer on stop on.
    pub fn new(servers: u64) -> ClusterSpec {
        ClusterSpec {
            servers,
            timing: Timing::FAST,
            pre_vote: true,
            check_quorum: true,
            crash_hint: true,
            transfer_on_stop: true,
            faults: false,
            address_per_server: false,
            tls: false,
        }
    }

    /// The same with TLS on or off.
    pub fn tls(self, tls: bool) -> ClusterSpec {
        ClusterSpec { tls, ..self }
    }

    /// The same with the fault commands of the status ports on or off.
    pub fn faults(self, faults: bool) -> ClusterSpec {
        ClusterSpec { faults, ..self }
    }

    /// The same with each server on an address of its own (127.0.0.`10+N`) or all on
    /// 127.0.0.1.
    pub fn address_per_server(self, address_per_server: bool) -> ClusterSpec {
        ClusterSpec {
            address_per_server,
            ..self
        }
    }

    /// The same with crash hints and transfer on stop both on or both off.
    pub fn failover_switches(self, on: bool) -> ClusterSpec {
        ClusterSpec {
            crash_hint: on,
            transfer_on_stop: on,
            ..self
        }
    }

    /// The same with another timing.
    pub fn timing(self, timing: Timing) -> ClusterSpec {
        ClusterSpec { timing, ..self }
    }

    /// The same with check-quorum on or off.
    pub fn check_quorum(self, check_quorum: bool) -> ClusterSpec {
        ClusterSpec {
            check_quorum,
            ..self
        }
    }
}

/// How long a wait for the cluster to settle may take before the test fails.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(10);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A cluster of `raft-node` processes with their configuration, data directories and
/// logs in one temporary directory. Dropping it kills every process it started.
#[derive(Debug)]
pub struct Cluster {
    /// `None` only while dropping.
    dir: Option<TempDir>,
    config_path: PathBuf,
    spec: ClusterSpec,
    servers: BTreeMap<u64, Server>,
    /// The ids of the servers running and not paused, shared with pollers.
    live: Arc<Mutex<BTreeSet<u64>>>,
    history: Arc<History>,
}

#[derive(Debug)]
struct Server {
    address: SocketAddr,
    status_address: SocketAddr,
    process: Option<Child>,
    paused: bool,
}

impl Cluster {
    /// Writes the configuration of `spec` with fresh ports; starts no server.
    pub fn new(spec: ClusterSpec) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("raft-e2e-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let ports = free_ports(2 * spec.servers as usize);

        let mut servers = BTreeMap::new();
        for (id, pair) in (1..=spec.servers).zip(ports.chunks(2)) {
            let ip = server_ip(&spec, id);
            let server = Server {
                address: SocketAddr::from((ip, pair[0])),
                status_address: SocketAddr::from((ip, pair[1])),
                process: None,
                paused: false,
            };
            servers.insert(id, server);
        }

        let config_path = dir.path().join("cluster.toml");
        std::fs::write(&config_path, config_text(&spec, &servers))
            .expect("cannot write the configuration");
        if spec.tls {
            add_certificates(&config_path, &dir.path().join("certs"));
        }

        Cluster {
            dir: Some(dir),
            config_path,
            spec,
            servers,
            live: Arc::new(Mutex::new(BTreeSet::new())),
            history: Arc::new(History::default()),
        }
    }

    /// Writes the configuration of `spec` and starts every server.
    pub fn start(spec: ClusterSpec) -> Cluster {
        let mut cluster = Cluster::new(spec);
        for id in cluster.ids() {
            cluster.start_server(id);
        }
        cluster
    }

    // ----- where things are -----

    /// The temporary directory of the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the cluster is alive").path()
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The shape the cluster was made with.
    pub fn spec(&self) -> ClusterSpec {
        self.spec
    }

    /// Every configured id.
    pub fn ids(&self) -> Vec<u64> {
        self.servers.keys().copied().collect()
    }

    /// The ids of the servers running and not paused.
    pub fn live_ids(&self) -> Vec<u64> {
        self.live().iter().copied().collect()
    }

    /// The live server of lowest id other than `leader`: a follower to act on.
    pub fn live_follower(&self, leader: u64) -> u64 {
        self.live_ids()
            .into_iter()
            .find(|&id| id != leader)
            .expect("a live server other than the leader")
    }

    fn live(&self) -> MutexGuard<'_, BTreeSet<u64>> {
        self.live.lock().expect("live set lock")
    }

    fn server(&self, id: u64) -> &Server {
        self.servers
            .get(&id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    fn server_mut(&mut self, id: u64) -> &mut Server {
        self.servers
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no server {id}"))
    }

    /// The election address of server `id`.
    pub fn address(&self, id: u64) -> SocketAddr {
        self.server(id).address
    }

    /// The status address of server `id`.
    pub fn status_address(&self, id: u64) -> SocketAddr {
        self.server(id).status_address
    }

    /// The data directory of server `id` (created by the server itself).
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir().join(format!("data-{id}"))
    }

    /// The state file of server `id`.
    pub fn state_file(&self, id: u64) -> PathBuf {
        self.data_dir(id).join("state")
    }

    /// The JSON log of server `id`: its stderr over all its runs.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir().join(format!("server-{id}.log"))
    }

    /// The process id of server `id`, if it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.server(id).process.as_ref().map(Child::id)
    }

    /// The history every status query of this cluster is recorded in.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// A `raft-node` command with nothing set.
    pub fn command(&self) -> Command {
        Command::new(raft_node_binary())
    }

    // ----- running servers -----

    /// Starts server `id` and waits until its status port answers, which it opens only
    /// once its state is loaded and its election address bound.
    ///
    /// # Panics
    ///
    /// When it already runs, exits instead, or does not answer within 10 s.
    pub fn start_server(&mut self, id: u64) {
        assert!(self.pid(id).is_none(), "server {id} is already running");

        let log = append(&self.log_path(id));
        let banner = append(&self.dir().join(format!("server-{id}.out")));
        let mut command = self.command();
        command
            .arg(id.to_string())
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(banner)
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start server {id}: {error}"));

        let status_address = self.status_address(id);
        let server = self.server_mut(id);
        server.process = Some(child);
        server.paused = false;

        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            let answers = if self.spec.tls {
                self.status()
                    .iter()
                    .any(|row| row.id == id && row.reachable)
            } else {
                query_port(status_address).is_some_and(|seen| seen.id == id)
            };
            if answers {
                break;
            }
            let child = self.server_mut(id).process.as_mut().expect("just started");
            if let Some(status) = child.try_wait().expect("cannot wait for a server") {
                self.server_mut(id).process = None;
                panic!(
                    "server {id} exited at start ({status}); log:\n{}",
                    tail(&self.log_path(id))
                );
            }
            assert!(
                Instant::now() < deadline,
                "server {id} did not answer on {status_address} within {SETTLE_LIMIT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        self.live().insert(id);
    }

    /// Starts server `id` again after a kill or a termination.
    pub fn restart(&mut self, id: u64) {
        self.start_server(id);
    }

    /// Kills server `id` with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self, id: u64) {
        self.live().remove(&id);
        let server = self.server_mut(id);
        let mut child = server
            .process
            .take()
            .unwrap_or_else(|| panic!("server {id} is not running"));
        server.paused = false;
        child.kill().expect("cannot kill a server");
        child.wait().expect("cannot reap a server");
    }

    /// Stops server `id` with SIGTERM and returns how it exited.
    ///
    /// # Panics
    ///
    /// When it has not exited 10 s later (it is then killed).
    pub fn terminate(&mut self, id: u64) -> ExitStatus {
        self.live().remove(&id);
        signal(self.pid(id).expect("the server runs"), "TERM");
        let mut child = self.server_mut(id).process.take().expect("the server runs");
        wait_at_most(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("server {id} did not stop within 10 s of SIGTERM"))
    }

    /// Pauses server `id` with SIGSTOP and waits until the kernel shows it stopped.
    pub fn pause(&mut self, id: u64) {
        let pid = self.pid(id).expect("the server runs");
        self.live().remove(&id);
        signal(pid, "STOP");
        wait_for_process_state(pid, true);
        self.server_mut(id).paused = true;
    }

    /// Resumes server `id` with SIGCONT and waits until the kernel shows it running.
    pub fn resume(&mut self, id: u64) {
        let pid = self.pid(id).expect("the server runs");
        assert!(self.server(id).paused, "server {id} is not paused");
        signal(pid, "CONT");
        wait_for_process_state(pid, false);
        self.server_mut(id).paused = false;
        self.live().insert(id);
    }

    // ----- asking the servers -----

    /// Sends one request line (such as `transfer` or `block 2`) to the status port of
    /// server `id` and returns its JSON answer; `None` when it does not answer.
    pub fn request(&self, id: u64, line: &str) -> Option<serde_json::Value> {
        request_port(self.status_address(id), line)
    }

    /// Sends a fault command to server `id` and returns its answer.
    ///
    /// # Panics
    ///
    /// When the server does not answer or refuses the command.
    pub fn fault(&self, id: u64, line: &str) -> serde_json::Value {
        let answer = self
            .request(id, line)
            .unwrap_or_else(|| panic!("server {id} did not answer {line:?}"));
        assert_eq!(answer["ok"], true, "server {id} refused {line:?}: {answer}");
        answer
    }

    /// Runs `raft-node status --json` and returns its rows, recorded in the history.
    ///
    /// # Panics
    ///
    /// When the command fails, takes more than 10 s, or prints something else.
    pub fn status(&self) -> Vec<StatusRow> {
        let mut command = self.command();
        command
            .args(["status", "--json", "--config"])
            .arg(&self.config_path);
        let finished = run_to_exit(&mut command, Duration::from_secs(10));
        assert!(
            finished.status.success(),
            "raft-node status failed: {}",
            finished.stderr
        );
        let rows: Vec<StatusRow> = serde_json::from_str(&finished.stdout)
            .unwrap_or_else(|error| panic!("status rows ({error}): {}", finished.stdout));
        let observations: Vec<Observation> =
            rows.iter().filter_map(StatusRow::observation).collect();
        self.history.record("main", &observations);
        rows
    }

    /// Asks every live server at once on its status port; the answers (some may be
    /// missing) are recorded in the history.
    pub fn observe(&self) -> Vec<Observation> {
        let ids = self.live_ids();
        if self.spec.tls {
            // Only `raft-node status` holds a client certificate; it records its rows.
            let rows = self.status();
            let live = rows.iter().filter(|row| ids.contains(&row.id));
            return live.filter_map(StatusRow::observation).collect();
        }
        let addresses: Vec<SocketAddr> = ids
            .iter()
            .map(|&id| self.server(id).status_address)
            .collect();
        let observations: Vec<Observation> =
            query_ports(&addresses).into_iter().flatten().collect();
        self.history.record("main", &observations);
        observations
    }

    /// Observes every 50 ms until `check` returns something, for at most `limit`.
    ///
    /// # Panics
    ///
    /// When `limit` passes first, naming `what` and the last observations.
    pub fn wait_until<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&[Observation]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let observations = self.observe();
            if let Some(found) = check(&observations) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "not seen within {limit:?}: {what}; last seen: {observations:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Observes every 50 ms for `duration`, failing at the first observation that
    /// `check` refuses.
    ///
    /// # Panics
    ///
    /// With `what` and `check`'s reason.
    pub fn hold(
        &self,
        what: &str,
        duration: Duration,
        mut check: impl FnMut(&[Observation]) -> Result<(), String>,
    ) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            let observations = self.observe();
            if let Err(reason) = check(&observations) {
                panic!("{what}: {reason}; seen: {observations:?}");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until exactly one live server leads and every live server answers in its
    /// term naming it; returns (leader, term).
    pub fn wait_for_leader(&self) -> (u64, u64) {
        let live = self.live_ids();
        self.wait_until(
            &format!("one leader agreed on by servers {live:?}"),
            SETTLE_LIMIT,
            |seen| agreed_leader(&live, seen),
        )
    }

    /// Observes for `duration` that `leader` keeps leading `term`: every answer is in
    /// `term`, `leader` says it leads and nobody else does.
    ///
    /// # Panics
    ///
    /// At the first answer that breaks this.
    pub fn hold_leader(&self, leader: u64, term: u64, duration: Duration) {
        let what = format!("server {leader} keeps leading term {term}");
        self.hold(&what, duration, |seen| {
            for server in seen {
                if server.term != term {
                    return Err(format!("server {} is in term {}", server.id, server.term));
                }
                if server.is_leader() != (server.id == leader) {
                    return Err(format!("server {} is {}", server.id, server.role));
                }
            }
            Ok(())
        });
    }

    /// Starts a poller that runs `raft-node status --json` every 50 ms.
    pub fn poll_with_status_command(&self) -> Poller {
        let via = PollVia::StatusCommand {
            binary: raft_node_binary().to_path_buf(),
            config: self.config_path.clone(),
        };
        Poller::start(via, Arc::clone(&self.history))
    }

    /// Starts a poller that reads the live servers' status ports every 50 ms.
    pub fn poll_status_ports(&self) -> Poller {
        let via = PollVia::StatusPorts {
            addresses: self
                .servers
                .iter()
                .map(|(&id, server)| (id, server.status_address))
                .collect(),
            live: Arc::clone(&self.live),
        };
        Poller::start(via, Arc::clone(&self.history))
    }

    // ----- the end -----

    /// Every "became leader" of every log, as term -> nodes.
    pub fn leaders_in_logs(&self) -> BTreeMap<u64, BTreeSet<u64>> {
        let mut leaders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for id in self.ids() {
            let path = self.log_path(id);
            if !path.exists() {
                continue;
            }
            for (term, node) in leaders_in_log(&path) {
                assert_eq!(
                    node,
                    id,
                    "{}: a leader line of another node",
                    path.display()
                );
                leaders.entry(term).or_default().insert(node);
            }
        }
        leaders
    }

    /// Kills every server and checks the whole run: the history broke no rule, no term
    /// had two leaders in the logs, every leader a poll saw is in the logs in that term,
    /// every leader was elected by a majority including itself, no server gave its vote
    /// to two candidates in one term (over all its runs: the vote is persisted), and no
    /// server warned of another leader in its own term.
    pub fn finish(mut self) {
        self.kill_all();
        self.history.assert_ok();

        let logged = self.leaders_in_logs();
        for (term, nodes) in &logged {
            assert_eq!(
                nodes.len(),
                1,
                "term {term} has leaders {nodes:?} in the logs"
            );
        }
        for (term, leader) in self.history.leaders() {
            let in_logs = logged.get(&term);
            assert!(
                in_logs.is_some_and(|nodes| nodes.contains(&leader)),
                "polls saw {leader} lead term {term}, the logs say {in_logs:?}"
            );
        }

        let majority = self.servers.len() / 2 + 1;
        for id in self.ids() {
            let path = self.log_path(id);
            if !path.exists() {
                continue;
            }
            let mut votes: BTreeMap<u64, u64> = BTreeMap::new();
            for event in read_log(&path) {
                let at = || format!("{}: {}", path.display(), event.fields);
                match event.message.as_str() {
                    "became leader" => {
                        let voters = ids_in(&event.fields["votes"]);
                        assert!(voters.len() >= majority && voters.contains(&id), "{}", at());
                    }
                    "vote granted" if event.fields["pre_vote"] == false => {
                        let term = event.number("term").unwrap_or_else(|| panic!("{}", at()));
                        let candidate = event.number("candidate");
                        let candidate = candidate.unwrap_or_else(|| panic!("{}", at()));
                        let first = *votes.entry(term).or_insert(candidate);
                        assert_eq!(first, candidate, "second vote in term {term}: {}", at());
                    }
                    message if message.contains("from another leader of this term") => {
                        panic!("{}", at());
                    }
                    _ => {}
                }
            }
        }
    }

    fn kill_all(&mut self) {
        self.live().clear();
        for server in self.servers.values_mut() {
            if let Some(mut child) = server.process.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        if thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                let mut report = format!("cluster directory kept: {}\n", kept.display());
                for id in self.servers.keys() {
                    let log = kept.join(format!("server-{id}.log"));
                    let _ = writeln!(report, "--- server {id}, log ends:\n{}", tail(&log));
                }
                eprintln!("{report}");
            }
        }
    }
}

/// `(leader, term)` if exactly one of `seen` leads, every id of `live` answered, and
/// all answered in that term naming it.
pub fn agreed_leader(live: &[u64], seen: &[Observation]) -> Option<(u64, u64)> {
    let answered: BTreeSet<u64> = seen.iter().map(|s| s.id).collect();
    if live.iter().any(|id| !answered.contains(id)) {
        return None;
    }
    let mut leaders = seen.iter().filter(|s| s.is_leader());
    let leader = leaders.next()?;
    if leaders.next().is_some() {
        return None;
    }
    let agreed = seen
        .iter()
        .all(|s| s.term == leader.term && (s.is_leader() || s.leader == Some(leader.id)));
    agreed.then_some((leader.id, leader.term))
}

/// The IP server `id` listens on.
fn server_ip(spec: &ClusterSpec, id: u64) -> [u8; 4] {
    if spec.address_per_server {
        let last = u8::try_from(10 + id).expect("at most 245 servers on their own address");
        [127, 0, 0, last]
    } else {
        [127, 0, 0, 1]
    }
}

fn config_text(spec: &ClusterSpec, servers: &BTreeMap<u64, Server>) -> String {
    let t = &spec.timing;
    let mut text = format!(
        "cluster_name = \"e2e\"\n\n\
         [timing]\n\
         tick_ms = {}\n\
         election_timeout_min_ms = {}\n\
         election_timeout_max_ms = {}\n\
         heartbeat_interval_ms = {}\n\n\
         [election]\n\
         pre_vote = {}\n\
         check_quorum = {}\n\
         crash_hint = {}\n\
         transfer_on_stop = {}\n\n\
         [faults]\n\
         enabled = {}\n",
        t.tick_ms,
        t.election_timeout_min_ms,
        t.election_timeout_max_ms,
        t.heartbeat_interval_ms,
        spec.pre_vote,
        spec.check_quorum,
        spec.crash_hint,
        spec.transfer_on_stop,
        spec.faults,
    );
    for (id, server) in servers {
        let _ = write!(
            text,
            "\n[[servers]]\nid = {id}\naddress = \"{}\"\nstatus_address = \"{}\"\n",
            server.address, server.status_address
        );
    }
    text
}

/// Makes a development authority and certificates with `raft-node certs` in `out`
/// and appends the `[tls]` section it prints to the configuration.
fn add_certificates(config_path: &Path, out: &Path) {
    let mut command = Command::new(raft_node_binary());
    command
        .args(["certs", "--days", "1", "--out"])
        .arg(out)
        .arg("--config")
        .arg(config_path);
    let finished = run_to_exit(&mut command, Duration::from_secs(10));
    assert!(
        finished.status.success(),
        "raft-node certs failed: {}",
        finished.stderr
    );
    let mut config = OpenOptions::new()
        .append(true)
        .open(config_path)
        .expect("cannot open the configuration");
    std::io::Write::write_all(&mut config, format!("\n{}", finished.stdout).as_bytes())
        .expect("cannot append the [tls] section");
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
}

/// Sends `signal` (a name such as `STOP`) to `pid` with the `kill` command.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Waits until process `pid` is stopped (state `T` in /proc) or, with `stopped`
/// false, until it is not.
fn wait_for_process_state(pid: u32, stopped: bool) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_else(|error| panic!("cannot read /proc/{pid}/stat: {error}"));
        // The state follows the command name, which is in parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected /proc/{pid}/stat: {stat}"));
        if (state == "T") == stopped {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} stays in state {state}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The last lines of a log, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
