//! The seed project's six phases on five real `raft-node` processes, observed through
//! `raft-node status --json` every 50 ms: never two leaders in one term, and never
//! more than about 2.5 s without a leader where one is expected.

use std::time::Duration;

use tests::{read_log, Cluster, ClusterSpec, Observation, Timing, SETTLE_LIMIT};

/// How long the phases without a leader are watched.
const LEADERLESS_WATCH: Duration = Duration::from_secs(2);

/// Scenarios 1, 4, 5, 7, 8 and 14 on the embedded default timing (150-300 ms): the six
/// phases with check-quorum on, where the leader left alone by the last kill steps down.
#[test]
fn six_phases_with_check_quorum_end_with_the_stranded_leader_stepping_down() {
    let spec = ClusterSpec::new(5).timing(Timing::DEFAULT);
    run_six_phases(spec);
}

/// Scenarios 1, 4, 5, 7, 8 and 14 with check-quorum off: the same phases, but the leader
/// left alone by the last kill keeps believing it leads (plain Raft has no step-down).
#[test]
fn six_phases_without_check_quorum_end_with_the_stranded_leader_still_leading() {
    let spec = ClusterSpec::new(5).check_quorum(false);
    run_six_phases(spec);
}

fn run_six_phases(spec: ClusterSpec) {
    let mut cluster = Cluster::start(spec);
    let poller = cluster.poll_with_status_command();

    // Phase 1: all five up elect exactly one leader.
    let (first_leader, first_term) = cluster.wait_for_leader();
    assert!(first_term >= 1);
    let rows = cluster.status();
    assert!(rows.iter().all(|row| row.reachable), "{rows:?}");
    let leaders = rows
        .iter()
        .filter(|row| row.role.as_deref() == Some("leader"));
    assert!(leaders.count() <= 1, "{rows:?}");

    // Phase 2: a follower dies; four are up and a leader stays present.
    let first_dead = cluster.live_follower(first_leader);
    cluster.kill(first_dead);
    let (leader, term) = cluster.wait_for_leader();
    poller.assert_ok();

    // Phase 3: the leader dies; three are up and elect a new leader in a higher term.
    cluster.kill(leader);
    let (new_leader, new_term) = cluster.wait_for_leader();
    assert_ne!(new_leader, leader, "a killed server cannot lead");
    assert!(
        new_term > term,
        "new leader in term {new_term}, old in {term}"
    );
    poller.assert_ok();

    // Phase 4: the new leader dies too; the two left are no majority of five, so
    // neither may claim leadership, with or without check-quorum.
    poller.allow_leaderless();
    cluster.kill(new_leader);
    cluster.hold("two of five up elect nobody", LEADERLESS_WATCH, no_leader);

    // Phase 5: one dead server comes back; three of five elect a leader again.
    poller.expect_leader();
    cluster.restart(first_dead);
    let (last_leader, last_term) = cluster.wait_for_leader();
    assert!(
        last_term > new_term,
        "leader of term {last_term} after {new_term}"
    );
    poller.assert_ok();

    // Phase 6: a follower dies, leaving the leader with one follower of five.
    let follower = cluster.live_follower(last_leader);
    poller.allow_leaderless();
    cluster.kill(follower);
    if spec.check_quorum {
        // It hears from no majority, so it steps down within two minimum election
        // timeouts, and nobody can replace it.
        cluster.wait_until("the stranded leader steps down", SETTLE_LIMIT, |seen| {
            (seen.len() == 2 && no_leader(seen).is_ok()).then_some(())
        });
        cluster.hold(
            "nobody leads after the step-down",
            LEADERLESS_WATCH,
            no_leader,
        );
        let stepped_down = read_log(&cluster.log_path(last_leader))
            .into_iter()
            .any(|event| {
                event.message == "quorum lost, stepping down"
                    && event.number("term") == Some(last_term)
            });
        assert!(
            stepped_down,
            "server {last_leader} logged no quorum loss in {last_term}"
        );
    } else {
        // Without check-quorum nothing tells it that it lost its majority.
        let what = "the stranded leader keeps leading";
        cluster.hold(what, LEADERLESS_WATCH, |seen| {
            let leading = seen
                .iter()
                .any(|s| s.id == last_leader && s.is_leader() && s.term == last_term);
            if leading {
                Ok(())
            } else {
                Err(format!(
                    "server {last_leader} no longer leads term {last_term}"
                ))
            }
        });
    }

    // At 50 ms a round, the run is long enough for dozens of rounds; fewer would
    // mean the poller checked next to nothing.
    assert!(poller.rounds() >= 20, "only {} polls", poller.rounds());
    poller.finish();
    cluster.finish();
}

fn no_leader(seen: &[Observation]) -> Result<(), String> {
    match seen.iter().find(|s| s.is_leader()) {
        Some(leader) => Err(format!("server {} leads term {}", leader.id, leader.term)),
        None => Ok(()),
    }
}
