//! Hostile peers, one at a time, against server 1 of a cluster whose other servers keep
//! working: garbage instead of an introduction, introductions for another cluster,
//! another version, an unknown id or the receiver's own id, and, after an accepted
//! introduction, frames of the wrong message type. Each is refused or closed and
//! logged, and after each servers 1, 2 and 3 still exchange messages both ways.
//!
//! The hostile connections claim id 4, which the configuration lists but nobody runs,
//! so an accepted one replaces no real peer's connection.

mod common;

use std::collections::BTreeSet;

use cluster::{encode_frame, Server, PROTOCOL_VERSION};
use common::{capture_logs, hello, note, Note};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads what the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(common::PATIENCE, stream.read_to_end(&mut received));
    // A reset is a close too; what arrived before it counts.
    let _ = read
        .await
        .expect("the server closes the connection in time");
    received
}

/// Servers 2 and 3 each send to server 1 and server 1 to each of them; every message
/// arrives from the right sender.
async fn assert_peers_exchange(servers: &mut [Server<Note>], round: u64) {
    for (index, peer) in [(1usize, 2u64), (2, 3)] {
        let id = round * 10 + peer;
        servers[index].send(1, id, &note(id)).expect("send to 1");
        servers[0].send(peer, id, &note(id)).expect("send from 1");
        let got = common::recv_n(&mut servers[index], 1).await;
        assert_eq!((got[0].from, got[0].message_id), (1, id), "round {round}");
    }
    let mut got: Vec<(u64, u64)> = common::recv_n(&mut servers[0], 2)
        .await
        .into_iter()
        .map(|envelope| (envelope.from, envelope.message_id))
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        [(2, round * 10 + 2), (3, round * 10 + 3)],
        "round {round}"
    );
}

/// How server 1 must treat a hostile connection.
enum Expected {
    /// Refused at the handshake with this status byte and this logged reason.
    Refused(u8, &'static str),
    /// Introduction accepted, then closed on the first frame as malformed.
    ClosedAfterHandshake,
}

/// A payload of another type than `Note { seq: u64, text: String }`, framed validly.
fn wrong_type_frame<M: serde::Serialize>(message: &M) -> Vec<u8> {
    encode_frame(7, message, 1024 * 1024)
        .expect("a small message")
        .to_vec()
}

/// Every kind of hostile peer is refused or closed, with a warning naming it, and the
/// real peers carry on exchanging messages after each one.
#[tokio::test]
async fn hostile_peers_are_refused_and_logged_while_the_others_carry_on() {
    let (logs, _guard) = capture_logs();
    let (config, mut listeners) = common::loopback_cluster(4);
    // Server 4 is configured but never started: the hostile connections claim its id.
    drop(listeners.pop());
    let mut servers = Vec::new();
    for (id, listener) in (1u64..).zip(listeners) {
        let server = Server::<Note>::start_with_listener(&config, id, listener).await;
        servers.push(server.expect("server starts"));
    }
    let running: BTreeSet<u64> = [1, 2, 3].into();
    for server in &mut servers {
        let others = running
            .iter()
            .copied()
            .filter(|&id| id != server.id())
            .collect();
        common::wait_connected_to(server, &others).await;
    }
    let address = config.address_of(1).expect("server 1");
    assert_peers_exchange(&mut servers, 0).await;

    let mut garbage: Vec<u8> = vec![0, 0, 0, 40];
    garbage.extend((0..40u8).map(|i| i.wrapping_mul(97).wrapping_add(13)));
    let accepted = hello(PROTOCOL_VERSION, "cluster", 4);
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, Expected)> = vec![
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: raft\r\n\r\n".to_vec(),
            vec![],
            Expected::Refused(1, "malformed handshake"),
        ),
        (
            "garbage of a plausible length",
            garbage,
            vec![],
            Expected::Refused(1, "malformed handshake"),
        ),
        (
            "another cluster",
            hello(PROTOCOL_VERSION, "other", 4),
            vec![],
            Expected::Refused(3, "wrong cluster name"),
        ),
        (
            "another version",
            hello(PROTOCOL_VERSION + 1, "cluster", 4),
            vec![],
            Expected::Refused(2, "wrong protocol version"),
        ),
        (
            "an id outside the configuration",
            hello(PROTOCOL_VERSION, "cluster", 9),
            vec![],
            Expected::Refused(4, "sender id not in configuration"),
        ),
        (
            "the receiver's own id",
            hello(PROTOCOL_VERSION, "cluster", 1),
            vec![],
            Expected::Refused(5, "sender claims the receiver's own id"),
        ),
        (
            "a frame of a longer type (trailing bytes)",
            accepted.clone(),
            wrong_type_frame(&(1u64, "text".to_owned(), 99u64)),
            Expected::ClosedAfterHandshake,
        ),
        (
            "a frame of a type with bytes where text belongs (invalid UTF-8)",
            accepted.clone(),
            wrong_type_frame(&(1u64, vec![0xFFu8, 0xFE, 0xFD])),
            Expected::ClosedAfterHandshake,
        ),
        (
            "a frame of a shorter type",
            accepted.clone(),
            wrong_type_frame(&true),
            Expected::ClosedAfterHandshake,
        ),
    ];

    for (round, (what, introduction, frame, expected)) in (1u64..).zip(cases) {
        let malformed_before = logs.text().matches("malformed input").count();
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let local = stream.local_addr().expect("local address").to_string();
        stream.write_all(&introduction).await.expect("write");
        if let Expected::ClosedAfterHandshake = expected {
            let mut answer = [0u8; 5];
            stream.read_exact(&mut answer).await.expect("answer");
            assert_eq!(answer, [0, 0, 0, 1, 0], "{what}: accepted");
            stream.write_all(&frame).await.expect("write");
        }
        let rest = read_until_closed(&mut stream).await;

        let text = logs.text();
        match expected {
            Expected::Refused(code, reason) => {
                assert_eq!(rest, [0, 0, 0, 1, code], "{what}");
                let logged = text.lines().any(|line| {
                    line.contains("WARN") && line.contains(reason) && line.contains(&local)
                });
                assert!(
                    logged,
                    "{what}: no warning \"{reason}\" from {local} in:\n{text}"
                );
            }
            Expected::ClosedAfterHandshake => {
                assert!(rest.is_empty(), "{what}: the server answered {rest:?}");
                let malformed = text.matches("malformed input").count();
                assert!(
                    malformed > malformed_before,
                    "{what}: not logged in:\n{text}"
                );
            }
        }

        assert_peers_exchange(&mut servers, round).await;
    }
    common::shutdown_all(servers).await;
}
