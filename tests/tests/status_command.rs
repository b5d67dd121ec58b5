//! `raft-node status`: quick answers whatever state the servers are in, and the
//! documented JSON.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::{run_to_exit, Cluster, ClusterSpec, Finished, Timing};

/// A generous bound on one run of `raft-node status`: it gives every server half a
/// second, all at once, so it should take little more than that.
const QUICK: Duration = Duration::from_secs(2);

const KEYS: [&str; 8] = [
    "id",
    "address",
    "reachable",
    "role",
    "term",
    "leader",
    "voted_for",
    "since_leader_ms",
];
const ROLES: [&str; 4] = ["follower", "pre-candidate", "candidate", "leader"];

fn status(cluster: &Cluster, json: bool) -> Finished {
    let mut command: Command = cluster.command();
    command
        .arg("status")
        .arg("--config")
        .arg(cluster.config_path());
    if json {
        command.arg("--json");
    }
    let finished = run_to_exit(&mut command, Duration::from_secs(10));
    assert!(
        finished.status.success(),
        "status failed: {}",
        finished.stderr
    );
    assert!(
        finished.elapsed <= QUICK,
        "status took {:?} (bound {QUICK:?})",
        finished.elapsed
    );
    finished
}

/// Checks one row's keys and types against `raft-node status --help`'s description,
/// and returns it.
fn checked_row(cluster: &Cluster, id: u64, row: &Value, reachable: bool) -> Value {
    let object = row.as_object().expect("each row is an object");
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, KEYS.into_iter().collect(), "keys of {row}");

    assert_eq!(row["id"].as_u64(), Some(id), "{row}");
    let address = cluster.status_address(id).to_string();
    assert_eq!(row["address"].as_str(), Some(address.as_str()), "{row}");
    assert_eq!(row["reachable"].as_bool(), Some(reachable), "{row}");

    if reachable {
        let role = row["role"].as_str().expect("a reachable row has a role");
        assert!(ROLES.contains(&role), "{row}");
        assert!(row["term"].is_u64(), "{row}");
        assert!(row["leader"].is_u64() || row["leader"].is_null(), "{row}");
        let voted = &row["voted_for"];
        assert!(voted.is_u64() || voted.is_null(), "{row}");
        let since = &row["since_leader_ms"];
        assert!(since.is_u64() || since.is_null(), "{row}");
    } else {
        for key in ["role", "term", "leader", "voted_for", "since_leader_ms"] {
            assert!(row[key].is_null(), "{key} of an unreachable row: {row}");
        }
    }
    row.clone()
}

/// `raft-node status --json` answers within 2 s (it waits half a second per server,
/// all at once) when no server runs, and when of five servers one never started and
/// one is paused with SIGSTOP; its rows have exactly the documented keys and types,
/// and the three live servers report the one leader. The table form is as quick.
#[test]
fn status_answers_quickly_with_servers_down_or_paused_and_prints_the_documented_json() {
    let mut cluster = Cluster::new(ClusterSpec::new(5).timing(Timing::DEFAULT));

    let finished = status(&cluster, true);
    let rows: Value = serde_json::from_str(&finished.stdout).expect("JSON output");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 5);
    for (id, row) in (1..=5).zip(rows) {
        checked_row(&cluster, id, row, false);
    }

    for id in 1..=4 {
        cluster.start_server(id);
    }
    let (leader, term) = cluster.wait_for_leader();
    let paused = cluster.live_follower(leader);
    cluster.pause(paused);

    let finished = status(&cluster, true);
    let rows: Value = serde_json::from_str(&finished.stdout).expect("JSON output");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 5);
    for (id, row) in (1..=5).zip(rows) {
        let reachable = id != paused && id != 5;
        let row = checked_row(&cluster, id, row, reachable);
        if !reachable {
            continue;
        }
        // Three of five keep the leader's majority: nothing changes while it is paused.
        let role = if id == leader { "leader" } else { "follower" };
        assert_eq!(row["role"].as_str(), Some(role), "{row}");
        assert_eq!(row["term"].as_u64(), Some(term), "{row}");
        assert_eq!(row["leader"].as_u64(), Some(leader), "{row}");
        assert!(row["since_leader_ms"].is_u64(), "{row}");
        if id == leader {
            // A leader won its term with its own vote among the others.
            assert_eq!(row["voted_for"].as_u64(), Some(leader), "{row}");
        }
    }

    let table = status(&cluster, false).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "a header and five rows:\n{table}");
    assert!(lines[0].contains("REACHABLE"), "{table}");
    assert!(lines[0].contains("VOTED"), "{table}");

    cluster.finish();
}
