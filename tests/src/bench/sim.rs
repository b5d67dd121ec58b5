//! The simulator back end: the paper's experiment on virtual time.
//!
//! Five servers (by default) run the election core in [`raft::sim`] with a 1 ms tick,
//! so that every range of the paper is expressible in whole ticks. A range `a-b` means
//! timeouts drawn uniformly from the whole milliseconds `a..=b`: the core's range is
//! `[a, b + 1)` ticks, so `150-150` is `[150, 151)`, a fixed timeout with no
//! randomness, and `150-151` draws 150 or 151. Heartbeats come every `a / 2` ticks;
//! pre-vote and check-quorum are on. Messages take 0.1–1 ms, uniformly, and are never
//! lost, like the paper's LAN. Clocks run within ±100 ppm of each other (quartz), each
//! with its own tick phase, since identical clocks would make `150-150` a lockstep
//! that no real cluster has. Crash hints (a follower told that its leader's connection
//! closed campaigns in its survivor slot, `slot × crash_hint_stagger` ticks after the
//! hint, instead of after a timeout) are off by default, as the paper had none;
//! [`SimOptions::crash_hint`] turns them on with the stagger `raft-node` uses: 5 ms,
//! and at least 2 ticks.
//!
//! Each trial builds a fresh cluster from its own seed, asks server 1 to campaign (so
//! that even `150-150` starts with a leader), lets it lead for two maximum timeouts
//! plus a uniform share of one heartbeat interval (the crash lands at a uniformly
//! random moment between heartbeats), crashes it, and measures the virtual time until
//! every survivor follows one leader of a higher term. A trial that has no such leader
//! after the cap counts as capped. Everything is a function of the seed.

use anyhow::{bail, Context as _};
use raft::sim::{Action, Micros, NetworkConfig, SimBuilder, Simulation, MILLI};
use raft::Config;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::stats::{Summary, Trial};

/// The ranges of the paper's Figure 16, top panel then bottom, as `(a, b)` in ms.
pub const PAPER_RANGES: [(u64, u64); 10] = [
    (150, 150),
    (150, 151),
    (150, 155),
    (150, 175),
    (150, 200),
    (150, 300),
    (12, 24),
    (25, 50),
    (50, 100),
    (100, 200),
];

/// How the simulated trials run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Trials per setting.
    pub trials: usize,
    /// Servers in the cluster.
    pub servers: usize,
    /// The seed every trial's seed is derived from.
    pub seed: u64,
    /// Virtual time after the crash at which a trial gives up.
    pub cap: Micros,
    /// The shortest message delay.
    pub delay_min: Micros,
    /// The longest message delay.
    pub delay_max: Micros,
    /// The clocks' largest relative deviation from the nominal tick.
    pub drift: f64,
    /// Whether the survivors get a crash hint (their connection to the leader
    /// closing) one message delay after the crash, and act on it.
    pub crash_hint: bool,
}

impl Default for SimOptions {
    /// The paper's experiment: 1000 trials on five servers, capped at 10 s.
    fn default() -> SimOptions {
        SimOptions {
            trials: 1000,
            servers: 5,
            seed: 2014,
            cap: 10_000 * MILLI,
            delay_min: MILLI / 10,
            delay_max: MILLI,
            drift: 1e-4,
            crash_hint: false,
        }
    }
}

/// The name of a range as the report shows it, such as `150-155`.
pub fn label(range: (u64, u64)) -> String {
    format!("{}-{}", range.0, range.1)
}

/// Parses a range name such as `150-155`.
pub fn parse_range(text: &str) -> anyhow::Result<(u64, u64)> {
    let (a, b) = text
        .split_once('-')
        .with_context(|| format!("{text:?}: expected MIN-MAX in ms, such as 150-300"))?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    if a < 2 || b < a {
        bail!("{text:?}: need 2 ≤ MIN ≤ MAX (heartbeats come every MIN / 2 ms)");
    }
    Ok((a, b))
}

/// The core's settings for a range: `[a, b + 1)` ticks of 1 ms, heartbeat `a / 2`,
/// crash hints on or off.
pub fn config(range: (u64, u64), crash_hint: bool) -> Config {
    let mut config = Config::new(1, [1]);
    config.crash_hint = crash_hint;
    config.crash_hint_stagger = 5;
    config.election_timeout_min = range.0;
    config.election_timeout_max = range.1 + 1;
    config.heartbeat_interval = (range.0 / 2).max(1);
    config
}

/// Runs every trial of one range.
pub fn run_range(range: (u64, u64), options: &SimOptions) -> anyhow::Result<Summary> {
    // One stream per range, so that a range's results do not depend on which other
    // ranges run.
    let mut seeds = ChaCha8Rng::seed_from_u64(options.seed ^ (range.0 << 32) ^ range.1);
    let mut trials = Vec::with_capacity(options.trials);
    for trial in 0..options.trials {
        let seed = seeds.next_u64();
        let outcome = run_trial(range, options, seed)
            .with_context(|| format!("range {}, trial {trial}, seed {seed}", label(range)))?;
        trials.push(outcome);
    }
    Ok(Summary {
        label: label(range),
        min_timeout_ms: range.0 as f64,
        cap_ms: options.cap as f64 / MILLI as f64,
        trials,
    })
}

/// One trial: elect, lead for a while, crash the leader, time the next agreement.
pub fn run_trial(range: (u64, u64), options: &SimOptions, seed: u64) -> anyhow::Result<Trial> {
    let config = config(range, options.crash_hint);
    let network = NetworkConfig {
        drop: 0.0,
        duplicate: 0.0,
        delay_min: options.delay_min,
        delay_max: options.delay_max,
    };
    // The trace is only read on a failure; a short one keeps trials cheap.
    let mut sim = SimBuilder::new(options.servers, seed)
        .config(config.clone())
        .tick(MILLI)
        .drift(options.drift)
        .network(network)
        .trace_capacity(200)
        .build()?;

    sim.try_apply(Action::Campaign(1))?;
    let elect_by = sim.now() + 20 * config.election_timeout_max * MILLI;
    if !sim.try_run_until(elect_by, |s| s.agreed_leader().is_some())? {
        bail!("server 1 was not elected after campaigning");
    }

    let mut jitter = ChaCha8Rng::seed_from_u64(seed);
    let heartbeat = config.heartbeat_interval * MILLI;
    let stable = 2 * config.election_timeout_max * MILLI + jitter.random_range(0..heartbeat);
    sim.try_run_for(stable)?;
    let Some((leader, term)) = sim.agreed_leader() else {
        bail!("the cluster lost its leader while idle");
    };

    sim.try_apply(Action::Crash(leader))?;
    let crashed_at = sim.now();
    let survivors: Vec<u64> = sim
        .ids()
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .collect();
    let cap = crashed_at + options.cap;
    let elected = sim.try_run_until(cap, |s| new_leader(s, &survivors, term))?;
    let downtime_ms = elected.then(|| (sim.now() - crashed_at) as f64 / MILLI as f64);
    let new_term = sim.agreed_leader_among(&survivors).map_or(0, |(_, t)| t);
    Ok(Trial {
        downtime_ms,
        // A split or lost first round makes the winner's term skip one.
        multi_round: !elected || new_term > term + 1,
    })
}

/// Whether every survivor follows one leader of a term above `old_term`.
fn new_leader(sim: &Simulation, survivors: &[u64], old_term: u64) -> bool {
    sim.agreed_leader_among(survivors)
        .is_some_and(|(_, term)| term > old_term)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ranges_map_to_inclusive_whole_ticks() {
        let fixed = config((150, 150), false);
        assert_eq!(
            (fixed.election_timeout_min, fixed.election_timeout_max),
            (150, 151)
        );
        assert_eq!(fixed.heartbeat_interval, 75);
        assert_eq!(config((12, 24), false).heartbeat_interval, 6);
        assert!(parse_range("150-300").is_ok());
        assert!(parse_range("300-150").is_err());
    }
}
