//! A server restarted with a far higher term on disk than the cluster's.

use raft::{FileStorage, HardState, Storage};
use tests::{agreed_leader, read_log, Cluster, ClusterSpec, SETTLE_LIMIT};

/// How far above the cluster's term the restarted server's state is put.
const JUMP: u64 = 50;

/// Scenarios 24 and 42 across processes: a follower of three is stopped (SIGTERM), its
/// state file rewritten with the cluster's term + 50, and restarted. Its higher term
/// deposes the leader, the cluster converges on one leader in a term above it, every
/// server's term only grows, no term ever has two leaders, and nobody leads the
/// injected term itself (no server campaigned in it).
#[test]
fn a_server_restarted_with_a_much_higher_term_pulls_the_cluster_up_safely() {
    let mut cluster = Cluster::start(ClusterSpec::new(3));
    let poller = cluster.poll_status_ports();
    let (leader, term) = cluster.wait_for_leader();
    let follower = cluster.live_follower(leader);

    let exit = cluster.terminate(follower);
    assert!(
        exit.success(),
        "server {follower} exited with {exit} on SIGTERM"
    );
    let stopped = read_log(&cluster.log_path(follower))
        .into_iter()
        .any(|event| event.message == "stopped" && event.number("node") == Some(follower));
    assert!(stopped, "server {follower} did not log its clean stop");

    // The server's own file, read and rewritten through the storage the server uses.
    let mut storage = FileStorage::open(cluster.state_file(follower)).expect("state file");
    let saved = storage
        .load()
        .expect("a valid state file")
        .expect("a saved state");
    let saved_term = saved.term;
    assert!(saved_term >= term, "saved term {saved_term} below {term}");

    let high = saved_term + JUMP;
    let inflated = HardState {
        term: high,
        voted_for: None,
    };
    storage.save(&inflated).expect("cannot write the state");
    cluster.restart(follower);

    let banner_file = cluster.dir().join(format!("server-{follower}.out"));
    let banner = std::fs::read_to_string(banner_file).expect("the banner");
    assert!(
        banner.contains(&format!("(term {high}, voted for nobody)")),
        "the restarted server did not load term {high}:\n{banner}"
    );

    let live = cluster.live_ids();
    let (new_leader, new_term) = cluster.wait_until(
        &format!("one leader above term {high}"),
        SETTLE_LIMIT,
        |seen| agreed_leader(&live, seen).filter(|&(_, t)| t > high),
    );
    cluster.hold_leader(new_leader, new_term, std::time::Duration::from_secs(1));

    let leaders = cluster.leaders_in_logs();
    assert!(
        !leaders.contains_key(&high),
        "{:?} led term {high}, which nobody campaigned in",
        leaders[&high]
    );

    poller.finish();
    cluster.finish();
}
