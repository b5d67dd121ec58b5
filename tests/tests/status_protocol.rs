//! The status address's line protocol (raft-node/src/status.rs): one request line, one
//! JSON answer line. Legacy clients that send nothing still get the status; garbage
//! gets an error line and the server carries on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use tests::{Cluster, ClusterSpec};

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
