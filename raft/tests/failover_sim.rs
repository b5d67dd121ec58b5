//! Faster fail-over through the deterministic simulator, with every invariant checked
//! after each step: crash hints (true ones, delivered by crashes, and false ones about
//! a live leader) and leadership transfer (Raft thesis §3.10).
//!
//! One tick lasts 10 ms of virtual time, so the default election timeout of 15–30 ticks
//! is 150–300 ms. A failing test prints the command that replays it:
//! `cargo test -p raft --test failover_sim NAME -- --nocapture`.

use raft::sim::{run_seed, Action, Invariant, Micros, RunOptions, SimBuilder, Simulation};
use raft::sim::{DEFAULT_TICK, MILLI, SECOND};
use raft::{Config, NodeId, Term};

fn cluster(test: &str, size: usize, seed: u64, crash_hint: bool) -> Simulation {
    let replay = format!("cargo test -p raft --test failover_sim {test} -- --nocapture");
    let config = Config {
        crash_hint,
        ..Config::new(1, [1])
    };
    match SimBuilder::new(size, seed)
        .config(config)
        .replay_command(replay)
        .build()
    {
        Ok(sim) => sim,
        Err(e) => panic!("bad config: {e}"),
    }
}

/// Runs until every running server follows one leader, or fails with the trace.
fn expect_leader(sim: &mut Simulation, timeout: Micros) -> (NodeId, Term) {
    let deadline = sim.now() + timeout;
    if sim.run_until(deadline, |s| s.agreed_leader().is_some()) {
        return sim.agreed_leader().unwrap_or_default();
    }
    sim.fail(
        Invariant::Scenario,
        format!("no agreed leader within {} ms", timeout / MILLI),
    )
}

/// Crashes the leader once one is agreed on and returns the virtual time until the
/// survivors agree on a new one.
fn failover_time(test: &str, seed: u64, crash_hint: bool) -> Micros {
    let mut sim = cluster(test, 5, seed, crash_hint);
    let (old, _) = expect_leader(&mut sim, 5 * SECOND);
    // Let the followers' leases settle into steady heartbeats first.
    sim.run_for(SECOND);

    let crashed_at = sim.now();
    sim.crash_server(old);
    let (new, _) = expect_leader(&mut sim, 5 * SECOND);
    assert_ne!(new, old);
    sim.now() - crashed_at
}

/// A false crash hint (one follower's connection to the leader breaks while the leader
/// lives) does not depose a healthy leader of five: the follower's pre-vote is refused
/// by the others, which still hear the leader, and the leader keeps its term.
#[test]
fn a_false_crash_hint_does_not_depose_a_healthy_leader_of_five() {
    for seed in 0..20 {
        let mut sim = cluster("a_false_crash_hint_does_not_depose", 5, seed, true);
        let (leader, term) = expect_leader(&mut sim, 5 * SECOND);
        sim.run_for(SECOND);
        let acted_before = sim.stats().hints_acted_on;

        let observer = if leader == 1 { 2 } else { 1 };
        sim.apply(Action::ConnectionLost {
            observer,
            peer: leader,
        });
        assert_eq!(sim.stats().hints_acted_on, acted_before + 1, "seed {seed}");
        sim.run_for(2 * SECOND);

        assert_eq!(sim.leader(), Some(leader), "seed {seed}");
        assert_eq!(sim.term(leader), Some(term), "seed {seed}");
        assert_eq!(sim.agreed_leader(), Some((leader, term)), "seed {seed}");
    }
}

/// With crash hints, a crashed leader of five is replaced in far less virtual time than
/// without: on the same seed, the survivors campaign after a few ticks instead of a
/// whole election timeout. Virtual time is deterministic, so the comparison is strict.
#[test]
fn a_crashed_leader_is_replaced_far_sooner_with_crash_hints() {
    let test = "a_crashed_leader_is_replaced_far_sooner";
    let minimum_timeout = 15 * DEFAULT_TICK;
    for seed in 0..10 {
        let with = failover_time(test, seed, true);
        let without = failover_time(test, seed, false);

        assert!(
            with < minimum_timeout,
            "seed {seed}: {} ms with hints",
            with / MILLI
        );
        assert!(
            2 * with < without,
            "seed {seed}: {} ms with hints, {} ms without",
            with / MILLI,
            without / MILLI
        );
    }
}

/// A transfer asked of the leader makes the chosen server leader in the next term, in
/// less than a minimum election timeout, with no timer having to elapse.
#[test]
fn a_transfer_makes_the_chosen_server_leader_in_the_next_term() {
    for seed in 0..10 {
        let mut sim = cluster("a_transfer_makes_the_chosen_server_leader", 5, seed, true);
        let (old, term) = expect_leader(&mut sim, 5 * SECOND);
        sim.run_for(SECOND);
        let target = if old == 5 { 4 } else { 5 };

        let asked_at = sim.now();
        sim.apply(Action::TransferLeadership { to: target });
        let moved = sim.run_until(asked_at + 5 * SECOND, |s| {
            s.agreed_leader().is_some_and(|(leader, _)| leader != old)
        });

        assert!(moved, "seed {seed}: leadership never moved");
        assert_eq!(sim.agreed_leader(), Some((target, term + 1)), "seed {seed}");
        assert!(sim.now() - asked_at < 15 * DEFAULT_TICK, "seed {seed}");
    }
}

/// Seeded schedules really exercise the new inputs, and every invariant holds while
/// they do: crash hints acted on (true and false) and transfers started.
#[test]
fn seeded_schedules_exercise_crash_hints_and_transfers_with_invariants_holding() {
    let (mut hints, mut transfers) = (0, 0);
    for seed in 0..400 {
        match run_seed(seed, &RunOptions::default()) {
            Ok(report) => {
                hints += report.stats.hints_acted_on;
                transfers += report.stats.transfers_started;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    assert!(hints > 5, "{hints} hints acted on");
    assert!(transfers > 10, "{transfers} transfers started");
}
