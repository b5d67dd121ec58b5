//! Handshake refusals and inbound connection replacement, driven from raw sockets that
//! write handcrafted introductions in the documented layout.

mod common;

use std::time::Duration;

use cluster::{encode_frame, Config, Server, PROTOCOL_VERSION};
use common::{capture_logs, hello, note, Note};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` as an introduction and returns the status byte of the answer.
async fn introduce(stream: &mut TcpStream, bytes: &[u8]) -> u8 {
    stream.write_all(bytes).await.expect("write introduction");
    let mut answer = [0u8; 5];
    tokio::time::timeout(common::PATIENCE, stream.read_exact(&mut answer))
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(answer[..4], [0, 0, 0, 1], "answer is a one-byte frame");
    answer[4]
}

/// Waits until the server closes `stream` (end of file or reset).
async fn assert_closed(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(common::PATIENCE, stream.read(&mut byte))
        .await
        .expect("connection closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "connection still open: {read:?}"
    );
}

/// A wrong version, a wrong cluster name, an id not in the configuration, the
/// receiver's own id and a wrong magic are each refused with their reason, logged as
/// a warning with the remote address, and the server keeps serving its peers.
#[tokio::test]
async fn bad_introductions_are_refused_and_the_server_keeps_serving() {
    let (logs, _guard) = capture_logs();
    let (config, mut servers) = common::start_tcp::<Note>(2).await;
    let addr = config.address_of(1).expect("server 1");

    let cases: [(&str, Vec<u8>, u8); 5] = [
        (
            "malformed handshake",
            b"\0\0\0\x0fNOPE\0\x01........\0".to_vec(),
            1,
        ),
        (
            "wrong protocol version",
            hello(PROTOCOL_VERSION + 1, "cluster", 2),
            2,
        ),
        ("wrong cluster name", hello(PROTOCOL_VERSION, "other", 2), 3),
        (
            "sender id not in configuration",
            hello(PROTOCOL_VERSION, "cluster", 9),
            4,
        ),
        (
            "sender claims the receiver's own id",
            hello(PROTOCOL_VERSION, "cluster", 1),
            5,
        ),
    ];
    for (reason, bytes, code) in cases {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let local = stream.local_addr().expect("local addr");
        assert_eq!(introduce(&mut stream, &bytes).await, code, "{reason}");
        assert_closed(&mut stream).await;

        let text = logs.text();
        let line = text
            .lines()
            .find(|l| l.contains(reason) && l.contains(&local.to_string()))
            .unwrap_or_else(|| panic!("no warning for {reason} from {local} in:\n{text}"));
        assert!(
            line.contains("WARN") && line.contains("handshake refused"),
            "{line}"
        );
    }

    servers[1].send(1, 5, &note(5)).expect("send");
    let got = common::recv_n(&mut servers[0], 1).await;
    assert_eq!((got[0].from, got[0].message_id), (2, 5));
    common::shutdown_all(servers).await;
}

/// A second connection introducing itself as server 2 replaces the first: the first
/// is closed, and messages on the second are delivered stamped with id 2.
#[tokio::test]
async fn a_second_connection_for_an_id_replaces_the_first() {
    let (config, mut listeners) = common::loopback_cluster(2);
    let addr = config.address_of(1).expect("server 1");
    let listener = listeners.remove(0);
    drop(listeners); // server 2 is played by raw sockets.
    let mut server = Server::<Note>::start_with_listener(&config, 1, listener)
        .await
        .expect("start");

    let intro = hello(PROTOCOL_VERSION, "cluster", 2);
    let mut first = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(introduce(&mut first, &intro).await, 0);
    let mut second = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(introduce(&mut second, &intro).await, 0);
    assert_closed(&mut first).await;

    let frame = encode_frame(77, &note(77), 1024 * 1024).expect("encode");
    second.write_all(&frame).await.expect("write frame");
    let got = common::recv_n(&mut server, 1).await;
    assert_eq!((got[0].from, got[0].message_id), (2, 77));
    assert_eq!(got[0].message, note(77));
    server.shutdown().await;
}

/// Malformed input after the handshake (a payload that does not decode, a length
/// beyond the maximum) closes only that connection; other connections carry on.
#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let (logs, _guard) = capture_logs();
    let (config, mut listeners) = common::loopback_cluster(3);
    let addr = config.address_of(1).expect("server 1");
    let listener = listeners.remove(0);
    drop(listeners);
    let mut server = Server::<Note>::start_with_listener(&config, 1, listener)
        .await
        .expect("start");

    let mut good = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(
        introduce(&mut good, &hello(PROTOCOL_VERSION, "cluster", 3)).await,
        0
    );

    let bad_frames: [&[u8]; 2] = [&[0, 0, 0, 3, 0xFF, 0xFF, 0xFF], &[0x7F, 0xFF, 0xFF, 0xFF]];
    for bad in bad_frames {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(
            introduce(&mut stream, &hello(PROTOCOL_VERSION, "cluster", 2)).await,
            0
        );
        stream.write_all(bad).await.expect("write");
        assert_closed(&mut stream).await;
    }
    assert!(logs.text().contains("malformed input, connection closed"));

    let frame = encode_frame(1, &note(1), 1024 * 1024).expect("encode");
    good.write_all(&frame).await.expect("write");
    let got = common::recv_n(&mut server, 1).await;
    assert_eq!(got[0].from, 3);
    server.shutdown().await;
}

/// A connection that never introduces itself does not stop others from connecting.
#[tokio::test]
async fn a_silent_connection_does_not_block_others() {
    let (config, listeners) = common::loopback_cluster(2);
    let config = config.with_options(cluster::Options {
        handshake_timeout: Duration::from_millis(200),
        ..cluster::Options::default()
    });
    let addr = config.address_of(1).expect("server 1");
    let mut silent = TcpStream::connect(addr).await.ok();
    let (_config, mut servers) = common::start_on::<Note>(config, listeners).await;

    servers[1].send(1, 1, &note(1)).expect("send");
    assert_eq!(common::recv_n(&mut servers[0], 1).await[0].from, 2);
    if let Some(stream) = silent.as_mut() {
        assert_closed(stream).await;
    }
    common::shutdown_all(servers).await;
}

/// The refusal is also seen from the dialling side: a server of another cluster is
/// never reported as connected.
#[tokio::test]
async fn servers_of_different_clusters_never_connect() {
    let (config, mut listeners) = common::loopback_cluster(2);
    let second = listeners.pop().expect("two");
    let first = listeners.pop().expect("two");
    let other: Config = config.clone().with_cluster_name("other");
    let mut one = Server::<Note>::start_with_listener(&config, 1, first)
        .await
        .expect("start");
    let two = Server::<Note>::start_with_listener(&other, 2, second)
        .await
        .expect("start");

    one.send(2, 1, &note(1)).expect("send");
    let waited = tokio::time::timeout(Duration::from_millis(500), one.next_event()).await;
    assert!(
        !matches!(waited, Ok(Some(cluster::PeerEvent::Connected(_)))),
        "{waited:?}"
    );
    assert!(!one.stats().peers[&2].connected);
    one.shutdown().await;
    two.shutdown().await;
}
