//! Nesting depth: a recursive message type decodes normally at sane depths, and a frame
//! nesting deeper than the decoder's bound (128 levels) is refused as malformed
//! without overflowing the stack, even on a thread with little of it, and over TCP
//! closes only the connection that sent it.

mod common;

use std::collections::BTreeSet;

use cluster::{decode_payload, encode_frame, FrameError, Server, PROTOCOL_VERSION};
use common::hello;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A recursive message type: each `B` is one level of nesting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum K {
    A,
    B(Box<K>),
}

/// The default maximum frame size, 1 MiB.
const MAX_FRAME: usize = 1024 * 1024;

/// A chain of `links` `B`s ending in `A`, built without recursion.
fn chain(links: usize) -> K {
    (0..links).fold(K::A, |inner, _| K::B(Box::new(inner)))
}

/// The frame `encode_frame` would make for message id 7 and a chain of `links` `B`s,
/// written by hand because encoding (and dropping) a very deep chain recurses too: the
/// id and each variant index are one-byte varints, `B` is 1 followed by its contents,
/// and `A` is 0.
fn deep_frame(links: usize) -> Vec<u8> {
    let mut payload = vec![7u8];
    payload.extend(std::iter::repeat_n(1u8, links));
    payload.push(0);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    frame
}

/// Decodes a frame made by `deep_frame` or `encode_frame`, prefix stripped.
fn decode(frame: &[u8]) -> Result<(u64, K), FrameError> {
    decode_payload::<K>(&frame[4..], MAX_FRAME)
}

/// Walks a chain without recursion, so that dropping a decoded one is not the test's
/// own stack overflow; returns how many links it had.
fn unlink(mut value: K) -> usize {
    let mut links = 0;
    while let K::B(inner) = value {
        value = *inner;
        links += 1;
    }
    links
}

/// A recursive value nested 100 levels round-trips through `encode_frame` and
/// `decode_payload`, and the hand-built frame matches what `encode_frame` makes.
#[test]
fn a_value_nested_100_levels_round_trips() {
    let value = chain(100);
    let frame = encode_frame(7, &value, MAX_FRAME).expect("encodes");
    assert_eq!(
        frame[..],
        deep_frame(100)[..],
        "the hand-built layout is the real one"
    );

    let (id, back) = decode(&frame).expect("decodes");
    assert_eq!((id, &back), (7, &value));
}

/// The bound is exact: the message sits at level 1 inside the envelope, so a chain of
/// 127 links puts its innermost value at level 128 and passes, and one more link is
/// refused as malformed with a message naming the bound.
#[test]
fn the_deepest_value_allowed_is_at_level_128() {
    let (_, back) = decode(&deep_frame(127)).expect("127 links decode");
    assert_eq!(unlink(back), 127);

    match decode(&deep_frame(128)) {
        Err(FrameError::Malformed(reason)) => {
            assert!(
                reason.contains("nesting deeper than 128 levels"),
                "{reason}"
            );
        }
        other => panic!("128 links: expected Malformed, got {other:?}"),
    }
}

/// A 10,000-level frame, far within the 1 MiB maximum, is refused as malformed on a
/// thread with a 256 KiB stack: the decoder stops at the bound instead of recursing
/// 10,000 times, which would overflow that stack and abort the process.
#[test]
fn a_frame_nested_10_000_levels_is_refused_without_overflowing_a_small_stack() {
    let frame = deep_frame(10_000);
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || decode(&frame).map(|(id, value)| (id, unlink(value))))
        .expect("thread starts")
        .join()
        .expect("the decoding thread does not panic");

    match result {
        Err(FrameError::Malformed(reason)) => {
            assert!(
                reason.contains("nesting deeper than 128 levels"),
                "{reason}"
            );
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// Servers 1 and 2 send each other a chain nested 100 levels, and each receives it.
async fn assert_peers_exchange(servers: &mut [Server<K>], round: u64) {
    let value = chain(100);
    servers[0].send(2, round, &value).expect("send to 2");
    servers[1].send(1, round, &value).expect("send to 1");
    for (index, from) in [(0usize, 2u64), (1, 1)] {
        let got = common::recv_n(&mut servers[index], 1).await;
        assert_eq!((got[0].from, got[0].message_id), (from, round));
        assert_eq!(got[0].message, value, "round {round}");
    }
}

/// A peer that sends a 10,000-level frame after a valid introduction has that one
/// connection closed, and the server goes on exchanging messages with a real peer.
#[tokio::test]
async fn a_deeply_nested_frame_over_tcp_closes_only_its_connection() {
    let (config, mut listeners) = common::loopback_cluster(3);
    // Server 3 is configured but never started: the hostile connection claims its id.
    drop(listeners.pop());
    let mut servers = Vec::new();
    for (id, listener) in (1u64..).zip(listeners) {
        let server = Server::<K>::start_with_listener(&config, id, listener).await;
        servers.push(server.expect("server starts"));
    }
    for (server, peer) in servers.iter_mut().zip([2u64, 1]) {
        common::wait_connected_to(server, &BTreeSet::from([peer])).await;
    }
    assert_peers_exchange(&mut servers, 1).await;

    let address = config.address_of(1).expect("server 1");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(&hello(PROTOCOL_VERSION, "cluster", 3))
        .await
        .expect("write");
    let mut answer = [0u8; 5];
    stream.read_exact(&mut answer).await.expect("answer");
    assert_eq!(answer, [0, 0, 0, 1, 0], "introduction accepted");

    stream.write_all(&deep_frame(10_000)).await.expect("write");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(common::PATIENCE, stream.read_to_end(&mut rest));
    // A reset is a close too; only that the server closed, in time, matters.
    let _ = read
        .await
        .expect("the server closes the connection in time");
    assert!(rest.is_empty(), "the server answered {rest:?}");

    assert_peers_exchange(&mut servers, 2).await;
    common::shutdown_all(servers).await;
}
