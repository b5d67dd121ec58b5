//! The status address's line protocol (raft-node/src/status.rs): one request line, one
//! JSON answer line. Legacy clients that send nothing still get the status; garbage
//! gets an error line and the server carries on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use tests::{agreed_leader, Cluster, ClusterSpec, SETTLE_LIMIT};

/// Sends `request` (raw bytes, possibly nothing) and returns the answer as JSON.
fn ask(address: SocketAddr, request: &[u8]) -> Value {
    let mut stream = TcpStream::connect(address).expect("the status port accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");
    stream.write_all(request).expect("the request is sent");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("one answer line");
    let shown = String::from_utf8_lossy(&request[..request.len().min(20)]);
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{shown:?} answered {text:?}"
    );
    serde_json::from_str(text.trim()).expect("the answer is JSON")
}

/// `status`, an empty legacy request, garbage, an overlong line, bad UTF-8 and a
/// transfer asked of a follower each get the documented one-line answer, and the
/// server still answers afterwards.
#[test]
fn each_request_gets_one_json_line_and_garbage_gets_an_error() {
    let cluster = Cluster::start(ClusterSpec::new(3));
    let (leader, _) = cluster.wait_for_leader();
    let follower = if leader == 1 { 2 } else { 1 };
    let address = cluster.status_address(follower);

    let status = ask(address, b"status\n");
    assert_eq!(status["id"].as_u64(), Some(follower));
    assert_eq!(status["role"], "follower");

    let legacy = ask(address, b"");
    assert_eq!(legacy["id"].as_u64(), Some(follower));

    let garbage = ask(address, b"hello there\n");
    assert!(garbage["error"]
        .as_str()
        .unwrap()
        .contains("unknown request"));
    let long = ask(address, &[b'x'; 1000]);
    assert_eq!(long["error"], "request too long");
    let binary = ask(address, b"\xff\xfe\n");
    assert_eq!(binary["error"], "the request is not UTF-8");

    let refused = ask(address, b"transfer 3\n");
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["leader"].as_u64(), Some(leader));

    let again = ask(address, b"status\n");
    assert_eq!(again["id"].as_u64(), Some(follower));
    cluster.finish();
}

/// Without `[faults] enabled = true` every fault command is refused with the same
/// error, and the server carries on.
#[test]
fn fault_commands_are_refused_when_the_configuration_leaves_faults_off() {
    let cluster = Cluster::start(ClusterSpec::new(3));
    let address = cluster.status_address(1);

    for request in ["block 2\n", "heal\n", "faults\n", "loss 2 10\n"] {
        let answer = ask(address, request.as_bytes());
        assert_eq!(answer["ok"], false, "{request:?}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("faults are disabled in the configuration"),
            "{request:?}: {answer}"
        );
    }
    assert_eq!(ask(address, b"status\n")["id"].as_u64(), Some(1));
    cluster.finish();
}

/// With faults on, each fault command changes this server's links as documented and
/// answers with all of them; malformed commands change nothing. Blocking the leader
/// from both its peers makes them elect another leader, and `heal` lets it follow.
#[test]
fn fault_commands_change_the_links_and_a_blocked_leader_is_replaced() {
    let cluster = Cluster::start(ClusterSpec::new(3).faults(true));
    let (leader, term) = cluster.wait_for_leader();
    let peers: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    let (a, b) = (peers[0], peers[1]);
    let address = cluster.status_address(leader);
    let link = |answer: &Value, peer: u64| -> Value {
        let links = answer["faults"].as_array().expect("a list of links");
        let found = links
            .iter()
            .find(|link| link["peer"].as_u64() == Some(peer));
        found
            .cloned()
            .unwrap_or_else(|| panic!("no link to {peer}: {answer}"))
    };

    let healthy = ask(address, b"faults\n");
    assert_eq!(healthy["ok"], true, "{healthy}");
    assert_eq!(
        healthy["faults"].as_array().map(Vec::len),
        Some(2),
        "{healthy}"
    );
    assert_eq!(link(&healthy, a)["block_out"], false);

    for bad in [
        "block 99\n",
        "block\n",
        "delay 2 20 10\n",
        "loss 2 150\n",
        "heal now\n",
    ] {
        let answer = ask(address, bad.as_bytes());
        assert_eq!(answer["ok"], false, "{bad:?}: {answer}");
        assert!(answer["error"].is_string(), "{bad:?}: {answer}");
    }
    assert_eq!(
        ask(address, b"faults\n"),
        healthy,
        "a refused command changed a link"
    );

    let delayed = ask(address, format!("delay {a} 5 10\n").as_bytes());
    assert_eq!(link(&delayed, a)["delay_min_ms"], 5);
    assert_eq!(link(&delayed, a)["delay_max_ms"], 10);
    let lossy = ask(address, format!("loss {b} 12.5\n").as_bytes());
    assert_eq!(link(&lossy, b)["loss_percent"], 12.5);
    let one_way = ask(address, format!("block-in {a}\n").as_bytes());
    assert_eq!(link(&one_way, a)["block_in"], true);
    assert_eq!(link(&one_way, a)["block_out"], false);
    let healed = ask(address, b"heal\n");
    assert_eq!(healed, healthy);

    let blocked = ask(address, format!("block {a} {b}\n").as_bytes());
    for peer in [a, b] {
        assert_eq!(link(&blocked, peer)["block_out"], true, "{blocked}");
        assert_eq!(link(&blocked, peer)["block_in"], true, "{blocked}");
    }
    let (other, later) = cluster.wait_until("a leader among the others", SETTLE_LIMIT, |seen| {
        let others: Vec<_> = seen.iter().filter(|s| s.id != leader).cloned().collect();
        agreed_leader(&peers, &others)
    });
    assert!(other != leader && later > term);

    ask(address, b"heal\n");
    let live = cluster.ids();
    let (again, _) = cluster.wait_until("all three agree", SETTLE_LIMIT, |seen| {
        agreed_leader(&live, seen)
    });
    assert_eq!(again, other, "the healed leader deposed its successor");
    cluster.finish();
}
