//! Randomized simulation of the election core: thousands of seeds, each a random fault
//! schedule followed by a quiet period in which a leader must be elected and kept.
//!
//! Environment variables:
//! - `RAFT_SIM_SEEDS=N`: how many seeds to run (default 13,000, so that over 10,000
//!   check liveness; the others use aggressive timing), split over the shards;
//! - `RAFT_SIM_START=N`: the first seed (default 0);
//! - `RAFT_SIM_SIZE=N`: force the cluster size instead of deriving it from the seed;
//! - `RAFT_SIM_SEED=N`: replay that seed alone and print its whole trace
//!   (`RAFT_SIM_SEED=N cargo test -p raft --test simulation -- --nocapture`).

use raft::sim::{run_seed, run_seed_keeping_simulation, RunOptions, MILLI};

/// The seeds split into this many tests, which the harness runs in parallel.
const SHARDS: u64 = 4;

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.replace('_', "").parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={text}: not a number"),
    }
}

fn options() -> RunOptions {
    RunOptions {
        size: env_number("RAFT_SIM_SIZE").map(|n| n as usize),
        ..RunOptions::default()
    }
}

/// Replays `RAFT_SIM_SEED` with its full trace, if set. Returns whether it was set.
fn replay_requested_seed() -> bool {
    let Some(seed) = env_number("RAFT_SIM_SEED") else {
        return false;
    };

    let options = RunOptions {
        trace_capacity: Some(usize::MAX / 2),
        ..options()
    };
    let (result, sim) = run_seed_keeping_simulation(seed, &options);
    if let Some(sim) = sim {
        println!("{}", sim.trace());
    }
    match result {
        Ok(report) => println!("seed {seed}: ok: {report:?}"),
        Err(failure) => panic!("{failure}"),
    }
    true
}

/// Runs this shard's part of the seed range; the first failure panics with its report.
fn run_shard(shard: u64) {
    if std::env::var_os("RAFT_SIM_SEED").is_some() {
        // One seed is being replayed: shard 0 does it, the others stand aside.
        if shard == 0 {
            replay_requested_seed();
        }
        return;
    }

    let seeds = env_number("RAFT_SIM_SEEDS").unwrap_or(13_000);
    let start = env_number("RAFT_SIM_START").unwrap_or(0);
    let options = options();
    let mut slowest = 0;
    let (mut ran, mut live) = (0, 0);

    for seed in (start..start + seeds).filter(|s| s % SHARDS == shard) {
        let report = match run_seed(seed, &options) {
            Ok(report) => report,
            Err(failure) => panic!("{failure}"),
        };
        ran += 1;
        if let Some(after) = report.elected_after {
            live += 1;
            slowest = slowest.max(after);
        }
    }
    println!(
        "shard {shard}: {ran} seeds ok, {live} of them with the liveness check; slowest \
         election {} ms after faults stopped",
        slowest / MILLI
    );
}

/// Seeds ≡ 0 (mod 4) keep every invariant and elect a stable leader once faults stop.
#[test]
fn random_fault_schedules_of_shard_0_keep_every_invariant() {
    run_shard(0);
}

/// Seeds ≡ 1 (mod 4) keep every invariant and elect a stable leader once faults stop.
#[test]
fn random_fault_schedules_of_shard_1_keep_every_invariant() {
    run_shard(1);
}

/// Seeds ≡ 2 (mod 4) keep every invariant and elect a stable leader once faults stop.
#[test]
fn random_fault_schedules_of_shard_2_keep_every_invariant() {
    run_shard(2);
}

/// Seeds ≡ 3 (mod 4) keep every invariant and elect a stable leader once faults stop.
#[test]
fn random_fault_schedules_of_shard_3_keep_every_invariant() {
    run_shard(3);
}

/// The same seed gives the same history, step for step: runs are replayable.
#[test]
fn the_same_seed_replays_the_same_history() {
    for seed in [7, 4242, 99_999] {
        let (first, first_sim) = run_seed_keeping_simulation(seed, &RunOptions::default());
        let (second, second_sim) = run_seed_keeping_simulation(seed, &RunOptions::default());

        assert_eq!(first.ok(), second.ok(), "seed {seed} diverged");
        let traces = [first_sim, second_sim].map(|sim| match sim {
            Some(sim) => sim.trace().to_string(),
            None => String::new(),
        });
        assert!(
            traces[0].lines().count() > 10,
            "seed {seed}: trace too short"
        );
        assert!(traces[0] == traces[1], "seed {seed}: traces differ");
    }
}

/// Every cluster size from 1 to 7 comes up among the default seeds.
#[test]
fn seeds_cover_every_cluster_size_from_one_to_seven() {
    let mut sizes = std::collections::BTreeSet::new();
    for seed in 0..200 {
        sizes.insert(raft::sim::Schedule::generate(seed, None).size);
    }
    assert_eq!(
        sizes.into_iter().collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
}

/// The random schedules are not vacuous: over a few hundred seeds, messages are lost,
/// duplicated and cut, servers crash (also between persisting and sending) and restart,
/// leadership changes hands, and every combination of pre-vote and check-quorum runs.
#[test]
fn random_schedules_exercise_every_kind_of_fault() {
    let mut total = raft::sim::SimStats::default();
    let mut switches = std::collections::BTreeSet::new();
    let seeds = 400;

    for seed in 0..seeds {
        let report = match run_seed(seed, &RunOptions::default()) {
            Ok(report) => report,
            Err(failure) => panic!("{failure}"),
        };
        let s = report.stats;
        total.delivered += s.delivered;
        total.dropped += s.dropped;
        total.duplicated += s.duplicated;
        total.cut += s.cut;
        total.to_dead_server += s.to_dead_server;
        total.crashes += s.crashes;
        total.crashes_after_persist += s.crashes_after_persist;
        total.restarts += s.restarts;
        total.elections_won += s.elections_won;
        switches.insert((report.pre_vote, report.check_quorum));
    }

    println!("{seeds} seeds: {total:?}");
    assert!(
        total.dropped > 0 && total.duplicated > 0 && total.cut > 0,
        "{total:?}"
    );
    assert!(total.to_dead_server > 0 && total.crashes > 0, "{total:?}");
    assert!(
        total.crashes_after_persist > 0 && total.restarts > 0,
        "{total:?}"
    );
    assert!(total.elections_won > seeds + seeds / 2, "{total:?}");
    assert_eq!(switches.len(), 4, "{switches:?}");
}

/// The liveness check is not vacuous: a cluster whose links stay cut fails it, with
/// the liveness invariant named and the replay command printed.
#[test]
fn the_liveness_check_fails_a_cluster_that_cannot_elect() {
    let config = raft::Config::new(1, [1]);
    let mut sim = raft::sim::SimBuilder::new(3, 5)
        .config(config.clone())
        .replay_command("REPLAY-ME")
        .build()
        .expect("the default config is valid");
    sim.partition(&[&[1], &[2], &[3]]);

    let failure = match raft::sim::check_liveness(&mut sim, &config) {
        Ok(elected) => panic!("a partitioned cluster elected {elected:?}"),
        Err(failure) => failure,
    };

    assert_eq!(failure.violation.invariant, raft::sim::Invariant::Liveness);
    let report = failure.to_string();
    assert!(
        report.contains("seed 5") && report.contains("REPLAY-ME"),
        "{report}"
    );
    assert!(
        report.contains("VoteRequest"),
        "the trace is missing: {report}"
    );
}
