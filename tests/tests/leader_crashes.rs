//! Leaders that crash (SIGKILL) are replaced, and come back as followers.

use tests::{Cluster, ClusterSpec};

/// Scenarios 5 and 6, five rounds on three servers: the leader is killed with SIGKILL,
/// the two left elect a new leader in a higher term, and the killed server, restarted,
/// follows that leader without changing leader or term.
#[test]
fn a_leader_killed_again_and_again_is_replaced_each_time_in_a_higher_term() {
    let mut cluster = Cluster::start(ClusterSpec::new(3));
    let poller = cluster.poll_status_ports();
    let (mut leader, mut term) = cluster.wait_for_leader();

    for round in 1..=5 {
        cluster.kill(leader);
        let (next, next_term) = cluster.wait_for_leader();
        assert_ne!(next, leader, "round {round}: the killed server leads");
        assert!(
            next_term > term,
            "round {round}: new leader in term {next_term}, old in {term}"
        );

        cluster.restart(leader);
        let rejoined = cluster.wait_for_leader();
        assert_eq!(
            rejoined,
            (next, next_term),
            "round {round}: server {leader} rejoining changed the leader"
        );

        (leader, term) = (next, next_term);
        poller.assert_ok();
    }

    poller.finish();
    cluster.finish();
}
