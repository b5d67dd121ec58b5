//! Delivery over real loopback TCP: broadcast and unicast counts, restart on the same
//! port, a stalled receiver, the errors a sender can get, `send_waiting`'s wait for
//! room, and the order kept for senders on several threads at once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::{Config, Options, PeerEvent, SendError, Server};
use common::{note, Note};

const MESSAGES: u64 = 1000;

/// Scenario 43 (TCP): five servers each broadcast 1000 messages; every server gets
/// exactly 1000 from each peer, none from itself, each stamped with its sender's id,
/// in the order each sender sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_receives_each_peers_broadcasts_exactly_once_over_tcp() {
    let (_config, mut servers) = common::start_tcp::<Note>(5).await;

    for server in &servers {
        for seq in 0..MESSAGES {
            server.broadcast(seq, &note(seq)).expect("broadcast");
        }
    }

    for server in &mut servers {
        let id = server.id();
        let got = common::recv_n(server, 4 * MESSAGES as usize).await;
        let counts = common::count_by_sender(&got);
        let expected: BTreeMap<u64, usize> = server
            .peers()
            .iter()
            .map(|&p| (p, MESSAGES as usize))
            .collect();
        assert_eq!(counts, expected, "server {id} counts by sender");

        for peer in server.peers() {
            let seqs: Vec<u64> = got
                .iter()
                .filter(|e| e.from == *peer)
                .map(|e| e.message_id)
                .collect();
            assert_eq!(seqs, (0..MESSAGES).collect::<Vec<_>>(), "order from {peer}");
        }
        assert!(got.iter().all(|e| e.message == note(e.message_id)));
        assert!(
            server.try_recv().is_none(),
            "server {id} got an extra message"
        );
    }

    let stats = servers[0].stats();
    assert_eq!(stats.total().sent, 4 * MESSAGES);
    assert_eq!(stats.total().received, 4 * MESSAGES);
    assert_eq!(stats.total().dropped, 0);
    assert!(stats.total().connected);
    common::shutdown_all(servers).await;
}

/// Unicast: server 1 sends i messages to server i+1; each gets exactly its share, all
/// from server 1, and server 1 gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicast_messages_reach_only_their_destination_over_tcp() {
    let (_config, mut servers) = common::start_tcp::<Note>(4).await;

    for to in 2..=4u64 {
        for seq in 0..(to - 1) * 100 {
            servers[0].send(to, seq, &note(seq)).expect("send");
        }
    }

    for server in servers.iter_mut().skip(1) {
        let id = server.id();
        let got = common::recv_n(server, (id as usize - 1) * 100).await;
        assert!(got.iter().all(|e| e.from == 1));
        let after = common::recv_until_quiet(server, Duration::from_millis(100)).await;
        assert!(after.is_empty(), "server {id} got {} extra", after.len());
    }
    let to_first = common::recv_until_quiet(&mut servers[0], Duration::from_millis(100)).await;
    assert!(to_first.is_empty());
    common::shutdown_all(servers).await;
}

/// Scenario 46 (TCP): a server closed and started again on the same id and port is
/// reached again within 500 ms of its restart, and its peers saw it go and come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_receives_again_within_500_ms_over_tcp() {
    let (config, mut servers) = common::start_tcp::<Note>(3).await;
    let third = servers.pop().expect("three servers");
    third.shutdown().await;
    common::wait_event(&mut servers[0], PeerEvent::Disconnected(3)).await;
    common::wait_event(&mut servers[0], PeerEvent::DialRefused(3)).await;

    let restarted_at = Instant::now();
    let mut third = Server::<Note>::start(&config, 3)
        .await
        .expect("restart on same port");

    // Keep offering messages until one arrives; measure from the restart.
    let mut seq = 0;
    let first = tokio::time::timeout(common::PATIENCE, async {
        loop {
            servers[0].send(3, seq, &note(seq)).expect("send");
            seq += 1;
            if let Ok(Some(envelope)) =
                tokio::time::timeout(Duration::from_millis(5), third.recv()).await
            {
                return envelope;
            }
        }
    })
    .await
    .expect("restarted server receives");
    let elapsed = restarted_at.elapsed();

    assert_eq!(first.from, 1);
    assert!(elapsed <= Duration::from_millis(500), "took {elapsed:?}");
    assert!(servers[0].stats().peers[&3].reconnects >= 1);
    third.shutdown().await;
    common::shutdown_all(servers).await;
}

/// A server that never calls recv does not slow delivery between the others: its
/// senders drop what does not fit its queue instead of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_receiver_does_not_slow_delivery_to_others() {
    let options = Options {
        queue_capacity: 64,
        inbound_capacity: 4,
        ..Options::default()
    };
    let (config, listeners) = common::loopback_cluster(3);
    let config = config.with_options(options);
    let (_config, mut servers) = common::start_on::<Vec<u8>>(config, listeners).await;
    let payload = vec![7u8; 16 * 1024];

    // Server 3 stalls: fill its socket buffers and queues with big messages.
    let sent = 5_000u64;
    for seq in 0..sent {
        servers[0].broadcast(seq, &payload).expect("broadcast");
        if seq % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }

    let got = common::recv_n(&mut servers[1], 1).await;
    assert_eq!(got[0].from, 1);
    let rest = common::recv_n(&mut servers[1], 100).await;
    assert!(rest.iter().all(|e| e.from == 1));

    let stats = servers[0].stats();
    assert!(
        stats.peers[&3].dropped > 0,
        "nothing was dropped for the stalled peer"
    );
    common::shutdown_all(servers).await;
}

/// Send errors are only for the caller's mistakes: unknown peer, self, a frame above
/// the maximum size, and a server that was shut down; a dead peer is not an error.
#[tokio::test]
async fn sending_fails_only_for_the_callers_mistakes() {
    let options = Options {
        max_frame_size: 1024,
        ..Options::default()
    };
    let (config, mut listeners) = common::loopback_cluster(2);
    let config = config.with_options(options);
    let listener = listeners.remove(0);
    drop(listeners); // server 2 never runs: a dead peer.
    let server = Server::<Vec<u8>>::start_with_listener(&config, 1, listener)
        .await
        .expect("start");

    assert!(matches!(
        server.send(9, 0, &vec![]),
        Err(SendError::UnknownPeer(9))
    ));
    assert!(matches!(
        server.send(1, 0, &vec![]),
        Err(SendError::ToSelf(1))
    ));
    assert!(matches!(
        server.send(2, 0, &vec![0u8; 2000]),
        Err(SendError::FrameTooLarge { max: 1024, .. })
    ));
    for seq in 0..20_000 {
        server
            .send(2, seq, &vec![1, 2, 3])
            .expect("dead peer is not an error");
    }
    assert!(server.stats().peers[&2].dropped > 0);

    let sender = server.sender();
    server.shutdown().await;
    assert!(matches!(
        sender.send(2, 0, &vec![]),
        Err(SendError::Shutdown)
    ));
    assert!(matches!(
        sender.broadcast(0, &vec![]),
        Err(SendError::Shutdown)
    ));
}

/// Starting refuses an id that is not in the configuration, naming the origin.
#[tokio::test]
async fn starting_with_an_unknown_id_is_refused() {
    let config = Config::loopback(3, 17_000);
    let error = Server::<u64>::start(&config, 4)
        .await
        .expect_err("unknown id");
    let text = error.to_string();
    assert!(text.contains("<code>") && text.contains('4'), "{text}");
}

/// With a 4 KiB frame limit, the largest byte payload the sender accepts crosses a real
/// connection intact, and the next larger one is refused at the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_accepted_byte_payload_crosses_a_connection() {
    let options = Options {
        max_frame_size: 4096,
        ..Options::default()
    };
    let (config, listeners) = common::loopback_cluster(2);
    let config = config.with_options(options);
    let (_config, mut servers) = common::start_on::<Vec<u8>>(config, listeners).await;

    let largest: Vec<u8> = (0..cluster::decode_limit(4096) - 16)
        .map(|i| i as u8)
        .collect();
    servers[0].send(2, 1, &largest).expect("fits");
    let too_large = vec![0u8; largest.len() + 1];
    assert!(matches!(
        servers[0].send(2, 2, &too_large),
        Err(SendError::DecodedTooLarge { max: 4096, .. })
    ));
    servers[0].send(2, 3, &vec![1, 2, 3]).expect("fits");

    let got = common::recv_n(&mut servers[1], 2).await;
    assert_eq!(got[0].message_id, 1);
    assert_eq!(got[0].message, largest);
    assert_eq!(
        (got[1].message_id, &got[1].message[..]),
        (3, &[1u8, 2, 3][..])
    );
    common::shutdown_all(servers).await;
}

/// Lone messages, which a sender writes straight to an idle connection, and bursts,
/// which go through the writer's queue, arrive interleaved in the order sent, each
/// exactly once, whether sent by the handle or by a cloned sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_messages_and_bursts_arrive_in_the_order_sent() {
    let (_config, mut servers) = common::start_tcp::<Note>(2).await;
    let sender = servers[0].sender();
    let mut next = 0u64;
    let mut expected = Vec::new();

    for round in 0..50 {
        // A lone message, received before anything else is sent.
        servers[0].send(2, next, &note(next)).expect("send");
        expected.push(next);
        next += 1;
        let lone = common::recv_n(&mut servers[1], 1).await;
        assert_eq!(lone[0].message_id, next - 1, "round {round}");

        // Then a burst, half through the handle and half through a clone.
        for i in 0..200 {
            if i % 2 == 0 {
                servers[0].send(2, next, &note(next)).expect("send");
            } else {
                sender.send(2, next, &note(next)).expect("send");
            }
            expected.push(next);
            next += 1;
        }
        let burst = common::recv_n(&mut servers[1], 200).await;
        let ids: Vec<u64> = burst.iter().map(|e| e.message_id).collect();
        assert_eq!(ids, (next - 200..next).collect::<Vec<_>>(), "round {round}");
        assert!(burst.iter().all(|e| e.message == note(e.message_id)));
    }

    assert!(servers[1].try_recv().is_none(), "a message arrived twice");
    assert_eq!(next, expected.len() as u64);
    assert_eq!(servers[0].stats().peers[&2].dropped, 0);
    common::shutdown_all(servers).await;
}

/// `send_waiting` waits for room in a full queue instead of dropping: while the peer is
/// not yet running, the first sends fill its queue and the next one waits; once the
/// peer runs, every message arrives, in order, and none was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waiting_waits_for_room_instead_of_dropping() {
    const CAPACITY: usize = 4;
    const COUNT: u64 = 40;
    let options = Options {
        queue_capacity: CAPACITY,
        ..Options::default()
    };
    let (config, mut listeners) = common::loopback_cluster(2);
    let config = config.with_options(options);
    let second = listeners.pop().expect("listener of server 2");
    let first = listeners.pop().expect("listener of server 1");
    let one = Server::<Note>::start_with_listener(&config, 1, first)
        .await
        .expect("start");

    let sender = one.sender();
    let (progress, mut sent) = tokio::sync::mpsc::unbounded_channel();
    let sending = tokio::spawn(async move {
        for seq in 0..COUNT {
            let outcome = sender.send_waiting(2, seq, &note(seq)).await;
            outcome.expect("send_waiting");
            let _ = progress.send(seq);
        }
    });

    // Server 2 does not run yet, so nothing leaves the queue: once it holds CAPACITY
    // messages, the next send can only wait.
    for expected in 0..CAPACITY as u64 {
        assert_eq!(sent.recv().await, Some(expected));
    }

    let mut two = Server::<Note>::start_with_listener(&config, 2, second)
        .await
        .expect("start");
    let got = common::recv_n(&mut two, COUNT as usize).await;
    sending.await.expect("sending task");

    let seqs: Vec<u64> = got.iter().map(|e| e.message_id).collect();
    assert_eq!(seqs, (0..COUNT).collect::<Vec<_>>());
    assert!(got.iter().all(|e| e.message == note(e.message_id)));
    assert_eq!(one.stats().peers[&2].dropped, 0);
    common::shutdown_all(vec![one, two]).await;
}

/// Several tasks sending to one peer at once, in bursts with pauses between them (so
/// that some frames are written directly and some queued), lose nothing and keep each
/// task's order: the outbox's lock orders direct writes and queued frames alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_keep_each_senders_order() {
    const TASKS: u64 = 4;
    const PER_TASK: u64 = 5_000;
    const BURST: u64 = 50;
    let (_config, mut servers) = common::start_tcp::<Note>(2).await;

    let mut sending = Vec::new();
    for task in 0..TASKS {
        let sender = servers[0].sender();
        sending.push(tokio::spawn(async move {
            for seq in 0..PER_TASK {
                let id = task * PER_TASK + seq;
                sender.send_waiting(2, id, &note(id)).await.expect("send");
                if seq % BURST == BURST - 1 {
                    // A pause long enough for the writer to park, so the next frame
                    // may go straight to the socket.
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }));
    }

    let got = common::recv_n(&mut servers[1], (TASKS * PER_TASK) as usize).await;
    for task in sending {
        task.await.expect("sending task");
    }

    let mut next = vec![0u64; TASKS as usize];
    for envelope in &got {
        let (task, seq) = (
            envelope.message_id / PER_TASK,
            envelope.message_id % PER_TASK,
        );
        assert_eq!(seq, next[task as usize], "task {task} out of order");
        next[task as usize] += 1;
        assert_eq!(envelope.message, note(envelope.message_id));
    }
    assert_eq!(next, vec![PER_TASK; TASKS as usize]);
    assert_eq!(servers[0].stats().peers[&2].dropped, 0);
    common::shutdown_all(servers).await;
}
