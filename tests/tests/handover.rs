//! Leadership transfer over real processes: a leader stopped with SIGTERM hands over
//! first, `raft-node transfer` moves leadership on request, and with the switches off
//! the old behaviour (an ordinary election after a timeout) returns.

use std::process::Command;
use std::time::Duration;

use tests::{read_log, run_to_exit, Cluster, ClusterSpec, LogEvent};

/// The events of server `id`'s log with this message.
fn events(cluster: &Cluster, id: u64, message: &str) -> Vec<LogEvent> {
    read_log(&cluster.log_path(id))
        .into_iter()
        .filter(|event| event.message == message)
        .collect()
}

/// Whether server `id` started a real election for `term` because of a transfer.
fn transfer_election(cluster: &Cluster, id: u64, term: u64) -> bool {
    events(cluster, id, "election started").iter().any(|event| {
        event.number("term") == Some(term)
            && event.fields["pre_vote"] == false
            && event.fields["transfer"] == true
    })
}

/// Whether server `id` logged handing its leadership to `to`.
fn transfer_started(cluster: &Cluster, id: u64, to: u64) -> bool {
    events(cluster, id, "leadership transfer started")
        .iter()
        .any(|event| event.number("to") == Some(to))
}

/// SIGTERM to the leader: it hands leadership to a follower, which wins an election
/// flagged as a transfer in the next term; the old leader exits cleanly, and the logs
/// show one leader per term throughout.
#[test]
fn sigterm_to_the_leader_hands_leadership_over_by_transfer() {
    let mut cluster = Cluster::start(ClusterSpec::new(3));
    let poller = cluster.poll_status_ports();
    let (leader, term) = cluster.wait_for_leader();
    // Let the followers answer a few heartbeats, so the leader knows whom it hears.
    cluster.hold_leader(leader, term, Duration::from_millis(300));

    let exit = cluster.terminate(leader);
    assert!(exit.success(), "server {leader} exited with {exit}");
    let (next, next_term) = cluster.wait_for_leader();

    assert_ne!(next, leader);
    assert_eq!(
        next_term,
        term + 1,
        "the hand-over takes exactly one election"
    );
    assert!(
        transfer_started(&cluster, leader, next),
        "no hand-over logged"
    );
    assert!(
        transfer_election(&cluster, next, next_term),
        "no transfer election"
    );
    assert!(!events(&cluster, leader, "hand-over done").is_empty());

    poller.finish();
    cluster.finish();
}

/// `raft-node transfer --to N` moves leadership to server N, through the leader found
/// on the status addresses.
#[test]
fn raft_node_transfer_moves_leadership_to_the_chosen_server() {
    let cluster = Cluster::start(ClusterSpec::new(3));
    let poller = cluster.poll_status_ports();
    let (leader, term) = cluster.wait_for_leader();
    cluster.hold_leader(leader, term, Duration::from_millis(300));
    let target = if leader == 3 { 2 } else { 3 };

    let mut command: Command = cluster.command();
    command
        .arg("transfer")
        .arg("--to")
        .arg(target.to_string())
        .arg("--config")
        .arg(cluster.config_path());
    let finished = run_to_exit(&mut command, Duration::from_secs(10));
    assert!(
        finished.status.success(),
        "transfer failed: {}",
        finished.stderr
    );
    assert!(
        finished.stdout.contains(&format!("to server {target}")),
        "{}",
        finished.stdout
    );

    let (next, next_term) = cluster.wait_for_leader();
    assert_eq!((next, next_term), (target, term + 1));
    assert!(transfer_started(&cluster, leader, target));
    assert!(transfer_election(&cluster, target, next_term));

    poller.finish();
    cluster.finish();
}

/// `raft-node transfer` to a server that is not in the cluster is refused by the
/// leader; the command exits non-zero naming the reason and nothing changes.
#[test]
fn raft_node_transfer_to_an_unknown_server_is_refused() {
    let cluster = Cluster::start(ClusterSpec::new(3));
    let (leader, term) = cluster.wait_for_leader();

    let mut command: Command = cluster.command();
    command
        .args(["transfer", "--to", "9", "--config"])
        .arg(cluster.config_path());
    let finished = run_to_exit(&mut command, Duration::from_secs(10));

    assert!(!finished.status.success());
    assert!(
        finished.stderr.contains("not a voter"),
        "{}",
        finished.stderr
    );
    cluster.hold_leader(leader, term, Duration::from_millis(200));
    cluster.finish();
}

/// With `transfer_on_stop` and `crash_hint` off, SIGTERM to the leader leaves the
/// others to notice by timeout: an ordinary election with a pre-vote, no transfer.
#[test]
fn with_the_switches_off_sigterm_to_the_leader_leads_to_an_ordinary_election() {
    let mut cluster = Cluster::start(ClusterSpec::new(3).failover_switches(false));
    let (leader, term) = cluster.wait_for_leader();
    cluster.hold_leader(leader, term, Duration::from_millis(300));

    let exit = cluster.terminate(leader);
    assert!(exit.success(), "server {leader} exited with {exit}");
    let (next, next_term) = cluster.wait_for_leader();

    assert!(next_term > term);
    assert!(events(&cluster, leader, "leadership transfer started").is_empty());
    assert!(!transfer_election(&cluster, next, next_term));
    let polled = events(&cluster, next, "election started")
        .iter()
        .any(|event| event.number("term") == Some(next_term) && event.fields["pre_vote"] == true);
    assert!(
        polled,
        "server {next} won term {next_term} without a pre-vote"
    );
    for id in cluster.ids() {
        assert!(events(&cluster, id, "leader unreachable, campaigning soon").is_empty());
    }
    cluster.finish();
}
