//! A chaos soak: a real cluster of `raft-node` processes under a seeded schedule of
//! random faults (SIGKILL and restart, SIGSTOP and SIGCONT, partitions and heals) and
//! leadership hand-overs, checked afterwards from the servers' JSON logs.
//!
//! The run:
//!
//! 1. starts every server ([`Cluster::start`]) and waits for a first leader;
//! 2. carries out the [`Schedule`] drawn from the seed, each step at its offset (a step
//!    that takes long, such as a restart waiting for the status port, delays the
//!    following ones), while a status poller records what the servers claim;
//! 3. brings every server back, waits for a leader all agree on, and stops them;
//! 4. checks the logs as the harness does (one leader per term, majorities, one vote
//!    per server per term across restarts) and measures availability: the share of
//!    the time with a majority up during which an up server led, and the longest
//!    stretch without a leader while a majority had been up for a grace period of
//!    [`GRACE_TIMEOUTS`] maximum election timeouts (time to notice a dead leader,
//!    re-dial and elect). Such a stretch longer than [`leaderless_bound`] is a
//!    liveness breach.
//!
//! "Up" means running, not paused and connected: a partitioned server (isolated, or
//! muted so that nobody hears it) counts as down from the moment it is cut off until
//! it is healed, and a leader stops counting as one when it goes down in any of these
//! ways. So a majority is "up" only when it can talk among itself, and a leader is
//! owed whenever such a majority has been up for the grace period.
//!
//! Partitions use the fault commands of the status ports (see [`Action`]), so the
//! soak needs no root; the servers run with `[faults] enabled = true`. A hand-over
//! asks whichever server leads at that moment; with no leader it is skipped and
//! counted as `transfer skipped`.

mod analysis;
mod schedule;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use analysis::{Analysis, UpIntervals};
pub use schedule::{Action, Schedule, Step};

use crate::cluster::{agreed_leader, Cluster, ClusterSpec, Timing, SETTLE_LIMIT};
use crate::history::MAX_LEADERLESS;
use crate::logs::read_log;

/// How a soak runs.
#[derive(Clone, Copy, Debug)]
pub struct ChaosOptions {
    /// Cluster size.
    pub servers: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// The servers' timing.
    pub timing: Timing,
}

/// Maximum election timeouts a majority must have been up before a leader is owed.
pub const GRACE_TIMEOUTS: u32 = 5;

/// The longest acceptable stretch without a leader once a majority has been up for the
/// grace period: the harness's [`MAX_LEADERLESS`], or ten maximum election timeouts
/// if that is longer.
pub fn leaderless_bound(timing: Timing) -> Duration {
    MAX_LEADERLESS.max(Duration::from_millis(10 * timing.election_timeout_max_ms))
}

/// What a soak did and found.
#[derive(Debug)]
pub struct Summary {
    /// The options it ran with.
    pub options: ChaosOptions,
    /// Wall time from the first start to the last stop.
    pub elapsed: Duration,
    /// Steps carried out, by kind ("SIGKILL", "restart", ...).
    pub actions: BTreeMap<&'static str, usize>,
    /// The log analysis.
    pub analysis: Analysis,
    /// Rule breaks the status poller saw (two leaders in a term, a term going down).
    pub poll_violations: Vec<String>,
    /// Status answers the poller recorded.
    pub observations: u64,
}

impl Summary {
    /// Whether the run broke no rule: no safety violation in the logs or the polls,
    /// no liveness breach.
    pub fn is_clean(&self) -> bool {
        self.analysis.violations.is_empty()
            && self.poll_violations.is_empty()
            && self.analysis.liveness_breaches.is_empty()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let a = &self.analysis;
        let faults: usize = ["SIGKILL", "SIGSTOP", "isolate", "mute"]
            .iter()
            .map(|kind| self.actions.get(kind).copied().unwrap_or(0))
            .sum();
        writeln!(
            f,
            "chaos: {} servers, seed {}, faults for {:?} (run {:.0?}), timeouts {}-{} ms",
            o.servers,
            o.seed,
            o.duration,
            self.elapsed,
            o.timing.election_timeout_min_ms,
            o.timing.election_timeout_max_ms
        )?;
        let kinds: Vec<String> = self
            .actions
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(f, "  faults injected     {faults}")?;
        writeln!(f, "  actions             {}", kinds.join(", "))?;
        writeln!(
            f,
            "  elections           {} (highest term {})",
            a.elections, a.highest_term
        )?;
        writeln!(
            f,
            "  availability        {:.2}% of {:.0?} with a majority up had a leader",
            100.0 * a.availability(),
            a.majority_up
        )?;
        writeln!(
            f,
            "  longest leaderless  {:?} (majority up for {GRACE_TIMEOUTS} election timeouts; \
             bound {:?})",
            a.longest_leaderless,
            leaderless_bound(o.timing)
        )?;
        writeln!(f, "  status answers      {}", self.observations)?;
        let violations = a.violations.len() + self.poll_violations.len();
        writeln!(f, "  violations          {violations}")?;
        for problem in a.violations.iter().chain(&self.poll_violations) {
            writeln!(f, "    {problem}")?;
        }
        writeln!(f, "  liveness breaches   {}", a.liveness_breaches.len())?;
        for (start, length) in &a.liveness_breaches {
            writeln!(
                f,
                "    no leader for {length:?} from {start} ms since the epoch"
            )?;
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    // The clock is after 1970 on any machine that runs this.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Runs one soak and returns its summary. The logs, configuration and schedule are
/// copied to `keep` when given (the cluster's own directory is removed at the end).
///
/// # Panics
///
/// When a server cannot be started or restarted, or no leader is agreed on within
/// [`SETTLE_LIMIT`] after the faults; the cluster directory is then kept and printed.
pub fn run(options: ChaosOptions, keep: Option<&Path>) -> Summary {
    let schedule = Schedule::generate(options.servers, options.duration, options.seed);
    let spec = ClusterSpec::new(options.servers)
        .timing(options.timing)
        .faults(true);
    let started = Instant::now();

    let mut cluster = Cluster::start(spec);
    let from = now_ms();
    let mut up: UpIntervals = cluster
        .ids()
        .into_iter()
        .map(|id| (id, vec![(from, None)]))
        .collect();
    let poller = cluster.poll_status_ports();
    poller.allow_leaderless();
    cluster.wait_for_leader();

    let mut actions: BTreeMap<&'static str, usize> = BTreeMap::new();
    let faults_start = Instant::now();
    for step in &schedule.steps {
        let due = faults_start + step.at;
        // Waiting for the schedule's next step, not for an event.
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let kind = apply(&mut cluster, step.action, &mut up);
        *actions.entry(kind).or_default() += 1;
    }

    let live = cluster.live_ids();
    cluster.wait_until("a leader after the faults", SETTLE_LIMIT, |seen| {
        agreed_leader(&live, seen)
    });
    drop(poller);
    let to = now_ms();
    for id in cluster.ids() {
        if cluster.pid(id).is_some() {
            cluster.kill(id);
        }
    }

    let logs: BTreeMap<u64, Vec<_>> = cluster
        .ids()
        .into_iter()
        .map(|id| (id, read_log(&cluster.log_path(id))))
        .collect();
    let mut analysis = Analysis::default();
    analysis::check_safety(&logs, &mut analysis);
    let grace = Duration::from_millis(options.timing.election_timeout_max_ms) * GRACE_TIMEOUTS;
    let bound = leaderless_bound(options.timing);
    analysis::check_availability(&logs, &up, (from, to), grace, bound, &mut analysis);

    if let Some(keep) = keep {
        keep_files(&cluster, &schedule, keep);
    }
    Summary {
        options,
        elapsed: started.elapsed(),
        actions,
        analysis,
        poll_violations: cluster.history().violations(),
        observations: cluster.history().observations(),
    }
}

/// Carries out one step and records when the server went down or came back; returns
/// the kind of action carried out. A server counts as down from just before the
/// signal or fault command and as up once it answers again (or is healed).
fn apply(cluster: &mut Cluster, action: Action, up: &mut UpIntervals) -> &'static str {
    let Some(id) = action.server() else {
        return hand_over(cluster);
    };
    let intervals = up.entry(id).or_default();
    if action.is_fault() {
        if let Some(open) = intervals.last_mut().filter(|(_, end)| end.is_none()) {
            open.1 = Some(now_ms());
        }
    }

    let others = || {
        let ids = cluster.ids().into_iter().filter(|&other| other != id);
        ids.map(|other| other.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match action {
        Action::Kill(_) => cluster.kill(id),
        Action::Restart(_) => restart(cluster, id),
        Action::Pause(_) => cluster.pause(id),
        Action::Resume(_) => cluster.resume(id),
        Action::Isolate(_) => drop(cluster.fault(id, &format!("block {}", others()))),
        Action::Mute(_) => drop(cluster.fault(id, &format!("block-out {}", others()))),
        Action::Rejoin(_) => drop(cluster.fault(id, "heal")),
        Action::Transfer => unreachable!("a hand-over concerns no one server"),
    }

    if action.is_recovery() {
        intervals.push((now_ms(), None));
    }
    action.kind()
}

/// Asks the server that claims to lead, if one does, to hand its leadership over.
fn hand_over(cluster: &mut Cluster) -> &'static str {
    let seen = cluster.observe();
    let Some(leader) = seen.iter().find(|server| server.is_leader()) else {
        return "transfer skipped";
    };
    match cluster.request(leader.id, "transfer") {
        Some(answer) if answer["ok"] == true => Action::Transfer.kind(),
        _ => "transfer skipped",
    }
}

/// How often a restart whose process could not even be spawned is tried again.
const SPAWN_ATTEMPTS: u32 = 10;

/// Restarts server `id`. A build that touches `raft-node` in the same target directory
/// (even one with nothing to do) links the binary anew, leaving a moment where it is
/// missing; a start that could not spawn the process is tried again a second later.
/// Any other failure (a server that exits at start or never answers) panics at once.
fn restart(cluster: &mut Cluster, id: u64) {
    for attempt in 1..=SPAWN_ATTEMPTS {
        let started = panic::catch_unwind(AssertUnwindSafe(|| cluster.restart(id)));
        let Err(payload) = started else {
            return;
        };
        let message = payload.downcast_ref::<String>().map_or("", String::as_str);
        let spawn_failed = message.starts_with(&format!("cannot start server {id}:"));
        if !spawn_failed || attempt == SPAWN_ATTEMPTS {
            panic::resume_unwind(payload);
        }
        eprintln!("chaos: {message}; trying again");
        // Waiting for the binary to be linked again; nothing to observe it by.
        thread::sleep(Duration::from_secs(1));
    }
}

/// Copies the logs, the configuration and the schedule to `keep`.
///
/// # Panics
///
/// When `keep` cannot be created or written.
fn keep_files(cluster: &Cluster, schedule: &Schedule, keep: &Path) {
    std::fs::create_dir_all(keep)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", keep.display()));
    let copy = |from: &Path| {
        let name = from.file_name().unwrap_or_default();
        std::fs::copy(from, keep.join(name))
            .unwrap_or_else(|error| panic!("cannot copy {}: {error}", from.display()));
    };
    copy(cluster.config_path());
    for id in cluster.ids() {
        copy(&cluster.log_path(id));
    }
    let steps: String = schedule
        .steps
        .iter()
        .map(|step| format!("{:>10.3} s  {}\n", step.at.as_secs_f64(), step.action))
        .collect();
    std::fs::write(keep.join("schedule.txt"), steps)
        .unwrap_or_else(|error| panic!("cannot write the schedule: {error}"));
}
