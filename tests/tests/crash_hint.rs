//! Crash hints over real processes: when the leader is killed with SIGKILL its
//! connections close, and the followers campaign soon instead of waiting out an
//! election timeout.

use std::time::Instant;

use tests::{read_log, Cluster, ClusterSpec};

/// SIGKILL to the leader of five: a new leader is elected in a higher term, and the
/// logs show followers reacting to the hint about the dead leader. The time from the
/// kill to the new leader seen by polling is printed, not asserted.
#[test]
fn a_killed_leader_is_replaced_after_the_followers_take_the_crash_hint() {
    let mut cluster = Cluster::start(ClusterSpec::new(5));
    let poller = cluster.poll_status_ports();
    let (leader, term) = cluster.wait_for_leader();

    let killed_at = Instant::now();
    cluster.kill(leader);
    let (next, next_term) = cluster.wait_for_leader();
    println!(
        "new leader {next} (term {next_term}) seen {:?} after the kill of {leader}",
        killed_at.elapsed()
    );

    assert!(next != leader && next_term > term);
    let hinted: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .filter(|&id| {
            read_log(&cluster.log_path(id)).iter().any(|event| {
                event.message == "leader unreachable, campaigning soon"
                    && event.number("leader") == Some(leader)
                    && event.number("term") == Some(term)
            })
        })
        .collect();
    assert!(
        !hinted.is_empty(),
        "no follower took the hint about {leader}"
    );

    poller.finish();
    cluster.finish();
}
