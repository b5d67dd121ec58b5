//! The real-process back end: `raft-node` servers on 127.0.0.1, the leader taken away
//! by a signal, the downtime read from the servers' own JSON logs.
//!
//! A trial waits until every server follows one leader (status ports, polled every
//! 10 ms), waits one maximum election timeout more plus a uniform share of a
//! heartbeat interval (so the failure lands at a uniformly random point between
//! heartbeats), notes each log's length, then takes the wall-clock time and signals
//! the leader at once. It polls the survivors until they agree on a leader of a
//! higher term, and then reads their logs: the downtime ends at the latest of the
//! survivors' first lines that show them knowing that leader ("became leader" by the
//! winner, "following leader" or "became follower" with `leader` = the winner in its
//! term by the others),
//! so the polling interval never enters the figure. Logs and the kill instant come
//! from the same machine clock. A trial needed more than one round when the new term
//! is above the old one plus one, or when the survivors started more than one real
//! (not pre-vote) election in the window. Afterwards the server is restarted (or
//! resumed) and the cluster must settle again before the next trial.

use std::fmt;
use std::path::Path;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::events::{log_len, read_from, Event};
use super::servers::{Servers, Shape};
use super::stats::{Summary, Trial};

/// How the leader is taken away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// SIGKILL: the process dies and the kernel closes its connections.
    Kill,
    /// SIGSTOP: the leader goes silent with its connections open, so only election
    /// timeouts can notice (resumed with SIGCONT after the trial).
    Stop,
    /// SIGTERM: a planned stop; the server shuts down by itself.
    Term,
}

impl Mode {
    /// Parses `kill`, `stop` or `term`.
    pub fn parse(text: &str) -> anyhow::Result<Mode> {
        Ok(match text {
            "kill" => Mode::Kill,
            "stop" => Mode::Stop,
            "term" => Mode::Term,
            other => bail!("{other:?}: modes are kill, stop and term"),
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Kill => "SIGKILL",
            Mode::Stop => "SIGSTOP",
            Mode::Term => "SIGTERM",
        })
    }
}

/// One process setting: a cluster shape and how its leader fails.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The cluster.
    pub shape: Shape,
    /// The failure.
    pub mode: Mode,
}

impl Setting {
    /// `servers` servers at `min-max` ms, heartbeat `min / 2`, a 1 ms tick below a
    /// 50 ms minimum (so that 12-24 is expressible) and 10 ms above it.
    pub fn new(servers: u64, range: (u64, u64), mode: Mode) -> Setting {
        let tick_ms = if range.0 < 50 { 1 } else { 10 };
        Setting {
            shape: Shape {
                servers,
                tick_ms,
                min_ms: range.0,
                max_ms: range.1,
                heartbeat_ms: range.0 / 2,
                extra: Vec::new(),
            },
            mode,
        }
    }

    /// The setting's name in the report, such as `5 × 150-300 SIGKILL crash_hint=true`.
    pub fn label(&self) -> String {
        let s = &self.shape;
        let mut label = format!("{} × {}-{} {}", s.servers, s.min_ms, s.max_ms, self.mode);
        for (key, value) in &s.extra {
            let key = key.rsplit('.').next().unwrap_or(key);
            label.push_str(&format!(" {key}={value}"));
        }
        label
    }
}

/// How long a trial may wait for a new leader before it counts as capped.
const CAP: Duration = Duration::from_secs(10);

/// How long the cluster may take to settle between trials before the run fails.
const SETTLE: Duration = Duration::from_secs(30);

/// Runs `trials` trials of `setting` on one cluster; `progress` hears of each.
pub fn run_setting(
    binary: &Path,
    setting: &Setting,
    trials: usize,
    seed: u64,
    mut progress: impl FnMut(usize, &Trial),
) -> anyhow::Result<Summary> {
    let shape = &setting.shape;
    let mut servers = Servers::start(binary, shape, "info")?;
    let all = servers.ids();
    servers
        .wait_agreed(&all, SETTLE, |_, _| true)
        .context("the cluster elected no leader at start")?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut results = Vec::with_capacity(trials);
    for number in 0..trials {
        let trial = run_trial(&mut servers, setting, &mut rng)
            .with_context(|| format!("{}: trial {number}", setting.label()))?;
        progress(number, &trial);
        results.push(trial);
    }
    Ok(Summary {
        label: setting.label(),
        min_timeout_ms: shape.min_ms as f64,
        cap_ms: CAP.as_secs_f64() * 1000.0,
        trials: results,
    })
}

fn run_trial(
    servers: &mut Servers,
    setting: &Setting,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Trial> {
    let shape = &setting.shape;
    let all = servers.ids();
    servers
        .wait_agreed(&all, SETTLE, |_, _| true)
        .context("the cluster did not settle")?;

    // A stable stretch, then a uniformly random point between two heartbeats.
    let pause_us = shape.max_ms * 1000 + rng.random_range(0..shape.heartbeat_ms * 1000);
    thread::sleep(Duration::from_micros(pause_us));
    let (leader, term) = servers
        .wait_agreed(&all, SETTLE, |_, _| true)
        .context("the cluster lost its leader while idle")?;

    let survivors: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();
    let offsets: Vec<u64> = survivors
        .iter()
        .map(|&id| log_len(&servers.log_path(id)))
        .collect();
    let failed_at = match setting.mode {
        Mode::Kill => servers.kill(leader)?,
        Mode::Stop => servers.signal(leader, "STOP")?,
        Mode::Term => servers.signal(leader, "TERM")?,
    };
    let failed_us = micros(failed_at)?;

    let elected = servers.wait_agreed(&survivors, CAP, |_, t| t > term);
    let outcome = match elected {
        None => Trial {
            downtime_ms: None,
            multi_round: true,
        },
        Some((winner, new_term)) => {
            // The status port answers after the log line is written; a short wait
            // still lets a slow writer finish its line.
            thread::sleep(Duration::from_millis(20));
            let mut logs = Vec::with_capacity(survivors.len());
            for (&id, &offset) in survivors.iter().zip(&offsets) {
                logs.push((id, read_from(&servers.log_path(id), offset)?));
            }
            measure(&logs, failed_us, term, winner, new_term)?
        }
    };

    match setting.mode {
        Mode::Kill => servers.start_server(leader)?,
        Mode::Term => {
            servers.wait_exit(leader, Duration::from_secs(10))?;
            servers.start_server(leader)?;
        }
        Mode::Stop => {
            servers.signal(leader, "CONT")?;
        }
    }
    Ok(outcome)
}

/// The downtime and round count of one trial from the survivors' log lines written
/// since the failure.
fn measure(
    logs: &[(u64, Vec<Event>)],
    failed_us: i64,
    old_term: u64,
    winner: u64,
    new_term: u64,
) -> anyhow::Result<Trial> {
    let mut end_us = failed_us;
    let mut elections = 0;
    for (id, events) in logs {
        let knows = events.iter().find(|e| {
            e.at_us >= failed_us
                && e.number("term") == Some(new_term)
                && match e.message.as_str() {
                    "became leader" => *id == winner,
                    // A follower that already named the winner (from an earlier term,
                    // or a heartbeat that moved it to the new term directly) logs no
                    // "following leader"; its "became follower" carries the leader.
                    "following leader" | "became follower" => e.number("leader") == Some(winner),
                    _ => false,
                }
        });
        let Some(knows) = knows else {
            bail!("server {id} agrees on leader {winner} of term {new_term} but never logged it");
        };
        end_us = end_us.max(knows.at_us);
        elections += events
            .iter()
            .filter(|e| e.at_us <= knows.at_us && e.message == "election started")
            .filter(|e| e.fields.get("pre_vote").and_then(|v| v.as_bool()) == Some(false))
            .count();
    }
    Ok(Trial {
        downtime_ms: Some((end_us - failed_us) as f64 / 1000.0),
        multi_round: new_term > old_term + 1 || elections > 1,
    })
}

fn micros(at: SystemTime) -> anyhow::Result<i64> {
    Ok(at.duration_since(UNIX_EPOCH)?.as_micros() as i64)
}
