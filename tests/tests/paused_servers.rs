//! Servers paused with SIGSTOP for longer than an election timeout, then resumed with
//! SIGCONT: the cluster carries on without them, and thanks to pre-vote (and the
//! leader lease of check-quorum) they come back as followers without deposing anyone.

use std::time::Duration;

use tests::{Cluster, ClusterSpec};

/// How long the leader and term must stay put after a server resumes.
const STABLE: Duration = Duration::from_secs(2);

/// Scenarios 5, 6 and 37: the leader of three is paused; the other two elect a new
/// leader in a higher term; resumed, the old leader follows it and the new leader
/// keeps its term.
#[test]
fn a_paused_leader_is_replaced_and_returns_as_a_follower_without_deposing_anyone() {
    let mut cluster = Cluster::start(ClusterSpec::new(3));
    let poller = cluster.poll_status_ports();
    let (old_leader, old_term) = cluster.wait_for_leader();

    cluster.pause(old_leader);
    let (leader, term) = cluster.wait_for_leader();
    assert_ne!(leader, old_leader, "a paused server cannot be elected");
    assert!(
        term > old_term,
        "new leader in term {term}, old in {old_term}"
    );

    cluster.resume(old_leader);
    let rejoined = cluster.wait_for_leader();
    assert_eq!(
        rejoined,
        (leader, term),
        "the old leader came back disruptive"
    );
    cluster.hold_leader(leader, term, STABLE);

    poller.finish();
    cluster.finish();
}

/// Scenarios 4 and 37: a follower of three is paused for five maximum election
/// timeouts; the leader keeps its majority and term meanwhile, and once resumed the
/// follower rejoins with neither changing.
#[test]
fn a_paused_follower_returns_as_a_follower_without_deposing_anyone() {
    let mut cluster = Cluster::start(ClusterSpec::new(3));
    let poller = cluster.poll_status_ports();
    let (leader, term) = cluster.wait_for_leader();
    let follower = cluster.live_follower(leader);

    // The pause itself is the fault: long enough for the follower's election timer to
    // run out several times over, had it been running.
    cluster.pause(follower);
    let timeout = cluster.spec().timing.election_timeout_max_ms;
    cluster.hold_leader(leader, term, Duration::from_millis(5 * timeout));

    cluster.resume(follower);
    let rejoined = cluster.wait_for_leader();
    assert_eq!(
        rejoined,
        (leader, term),
        "the follower came back disruptive"
    );
    cluster.hold_leader(leader, term, STABLE);

    poller.finish();
    cluster.finish();
}
