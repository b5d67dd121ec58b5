//! Everything the tests saw servers claim, checked as it is recorded, and a background
//! poller that feeds it every 50 ms.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::run_to_exit;
use crate::status::{query_port, Observation, StatusRow};

/// The leaders every poll saw, by term, and the rule breaks found while recording:
/// two servers leading one term, or a server's term going down.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<HistoryInner>,
}

#[derive(Debug, Default)]
struct HistoryInner {
    leaders: BTreeMap<u64, u64>,
    /// The last term seen per (source, server). Terms are compared within one source
    /// only: queries of different sources overlap, so their order is unknown.
    last_terms: BTreeMap<(&'static str, u64), u64>,
    violations: Vec<String>,
    observations: u64,
}

impl History {
    fn lock(&self) -> MutexGuard<'_, HistoryInner> {
        self.inner.lock().expect("history lock")
    }

    /// Records what one round of queries by `source` saw. `source` must query each
    /// server at most once at a time, so that its answers are in order.
    pub fn record(&self, source: &'static str, observations: &[Observation]) {
        let mut inner = self.lock();
        for seen in observations {
            inner.observations += 1;

            if seen.is_leader() {
                match inner.leaders.get(&seen.term) {
                    Some(&other) if other != seen.id => {
                        let problem = format!(
                            "term {} has two leaders: {other} and {} ({source} poll)",
                            seen.term, seen.id
                        );
                        inner.violations.push(problem);
                    }
                    _ => {
                        inner.leaders.insert(seen.term, seen.id);
                    }
                }
            }

            let last = inner.last_terms.insert((source, seen.id), seen.term);
            if let Some(last) = last.filter(|&last| last > seen.term) {
                let problem = format!(
                    "server {} went back from term {last} to {} ({source} poll)",
                    seen.id, seen.term
                );
                inner.violations.push(problem);
            }
        }
    }

    /// Every leader seen, by term.
    pub fn leaders(&self) -> BTreeMap<u64, u64> {
        self.lock().leaders.clone()
    }

    /// How many server answers were recorded.
    pub fn observations(&self) -> u64 {
        self.lock().observations
    }

    /// The rule breaks found so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Panics, listing them, if any rule was broken.
    pub fn assert_ok(&self) {
        let violations = self.violations();
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }
}

/// How long the cluster may go without a leader where one is expected.
pub const MAX_LEADERLESS: Duration = Duration::from_millis(2500);

/// A background thread that asks the live servers for their status every 50 ms,
/// records the answers in the cluster's [`History`] and, while a leader is expected,
/// notes any stretch of more than [`MAX_LEADERLESS`] without one.
#[derive(Debug)]
pub struct Poller {
    shared: Arc<PollerShared>,
    thread: Option<thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct PollerShared {
    stop: AtomicBool,
    /// Whether a leader is expected, and since when none was seen.
    expectation: Mutex<Expectation>,
    violations: Mutex<Vec<String>>,
    rounds: Mutex<u64>,
}

#[derive(Debug)]
struct Expectation {
    leader_required: bool,
    /// Since when no leader was seen (or, if later, since one was expected again).
    leaderless_since: Option<Instant>,
    /// Whether the current leaderless stretch was already reported.
    reported: bool,
}

/// How a [`Poller`] asks.
#[derive(Clone, Debug)]
pub(crate) enum PollVia {
    /// By running `raft-node status --json --config FILE`.
    StatusCommand { binary: PathBuf, config: PathBuf },
    /// By reading the status ports of the servers running and not paused.
    StatusPorts {
        addresses: BTreeMap<u64, SocketAddr>,
        live: Arc<Mutex<BTreeSet<u64>>>,
    },
}

const POLL_INTERVAL: Duration = Duration::from_millis(50);

impl Poller {
    pub(crate) fn start(via: PollVia, history: Arc<History>) -> Poller {
        let shared = Arc::new(PollerShared {
            stop: AtomicBool::new(false),
            expectation: Mutex::new(Expectation {
                leader_required: true,
                leaderless_since: Some(Instant::now()),
                reported: false,
            }),
            violations: Mutex::new(Vec::new()),
            rounds: Mutex::new(0),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("status-poller".into())
                .spawn(move || poll_loop(&via, &history, &shared))
                .expect("cannot start the poller thread")
        };
        Poller {
            shared,
            thread: Some(thread),
        }
    }

    fn expectation(&self) -> MutexGuard<'_, Expectation> {
        self.shared
            .expectation
            .lock()
            .expect("poller expectation lock")
    }

    /// From now on a leader must be seen at least every [`MAX_LEADERLESS`].
    pub fn expect_leader(&self) {
        let mut expectation = self.expectation();
        expectation.leader_required = true;
        if expectation.leaderless_since.is_some() {
            expectation.leaderless_since = Some(Instant::now());
        }
        expectation.reported = false;
    }

    /// From now on the cluster may be without a leader.
    pub fn allow_leaderless(&self) {
        self.expectation().leader_required = false;
    }

    /// How many rounds of queries ran.
    pub fn rounds(&self) -> u64 {
        *self.shared.rounds.lock().expect("poller rounds lock")
    }

    /// Panics, listing them, if the poller saw a leaderless stretch or could not poll.
    pub fn assert_ok(&self) {
        let violations = self.shared.violations.lock().expect("poller lock").clone();
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }

    /// Stops the thread and checks as [`Poller::assert_ok`] does.
    pub fn finish(mut self) {
        self.stop();
        self.assert_ok();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll_loop(via: &PollVia, history: &History, shared: &PollerShared) {
    while !shared.stop.load(Ordering::SeqCst) {
        let round_started = Instant::now();

        match poll_once(via) {
            Ok(observations) => {
                history.record("poller", &observations);
                note_leader(shared, &observations);
            }
            Err(problem) => shared.violations.lock().expect("poller lock").push(problem),
        }
        *shared.rounds.lock().expect("poller rounds lock") += 1;

        if let Some(rest) = POLL_INTERVAL.checked_sub(round_started.elapsed()) {
            thread::sleep(rest);
        }
    }
}

fn note_leader(shared: &PollerShared, observations: &[Observation]) {
    let mut expectation = shared.expectation.lock().expect("poller expectation lock");
    if observations.iter().any(Observation::is_leader) {
        expectation.leaderless_since = None;
        expectation.reported = false;
        return;
    }

    let since = *expectation
        .leaderless_since
        .get_or_insert_with(Instant::now);
    let leaderless = since.elapsed();
    if expectation.leader_required && !expectation.reported && leaderless > MAX_LEADERLESS {
        expectation.reported = true;
        let problem = format!("no leader for {leaderless:?} where one was expected");
        shared.violations.lock().expect("poller lock").push(problem);
    }
}

fn poll_once(via: &PollVia) -> Result<Vec<Observation>, String> {
    match via {
        PollVia::StatusCommand { binary, config } => {
            let mut command = Command::new(binary);
            command
                .arg("status")
                .arg("--json")
                .arg("--config")
                .arg(config);
            let finished = run_to_exit(&mut command, Duration::from_secs(10));
            if !finished.status.success() {
                return Err(format!("{command:?} failed: {}", finished.stderr));
            }
            let rows: Vec<StatusRow> = serde_json::from_str(&finished.stdout)
                .map_err(|error| format!("status output is not rows ({error})"))?;
            Ok(rows.iter().filter_map(StatusRow::observation).collect())
        }
        PollVia::StatusPorts { addresses, live } => {
            let live: Vec<SocketAddr> = live
                .lock()
                .expect("live set lock")
                .iter()
                .map(|id| addresses[id])
                .collect();
            Ok(query_ports(&live).into_iter().flatten().collect())
        }
    }
}

/// Queries every address at once; one answer (or `None`) per address, in order.
pub(crate) fn query_ports(addresses: &[SocketAddr]) -> Vec<Option<Observation>> {
    thread::scope(|scope| {
        let queries: Vec<_> = addresses
            .iter()
            .map(|&address| scope.spawn(move || query_port(address)))
            .collect();
        queries
            .into_iter()
            .map(|query| query.join().expect("status query thread"))
            .collect()
    })
}
