//! The in-process network: the same `Server` handle as TCP, with partitions, one-way
//! cuts, loss, delay and crashes, run under tokio's paused clock.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::{Config, LinkConditions, Network, Options, PeerEvent, Server};
use common::{note, Note};
use tokio::time::Instant;

const MESSAGES: u64 = 1000;

/// Starts every server of an in-process network and waits until all are connected.
async fn start_all(network: &Network<Note>) -> Vec<Server<Note>> {
    let ids: Vec<u64> = network.config().servers().iter().map(|s| s.id).collect();
    let mut servers: Vec<Server<Note>> = ids
        .iter()
        .map(|&id| network.start(id).expect("start"))
        .collect();
    for server in &mut servers {
        common::wait_connected(server).await;
    }
    servers
}

fn quiet() -> Duration {
    Duration::from_millis(300)
}

/// Scenario 43 (in-process): five servers each broadcast 1000 messages; every server
/// gets exactly 1000 from each peer, none from itself, stamped with the sender's id.
#[tokio::test(start_paused = true)]
async fn every_server_receives_each_peers_broadcasts_exactly_once_in_process() {
    let network = Network::with_servers(5, 43);
    let mut servers = start_all(&network).await;

    for server in &servers {
        for seq in 0..MESSAGES {
            server.broadcast(seq, &note(seq)).expect("broadcast");
        }
    }

    for server in &mut servers {
        let id = server.id();
        let got = common::recv_n(server, 4 * MESSAGES as usize).await;
        let expected: BTreeMap<u64, usize> = server
            .peers()
            .iter()
            .map(|&p| (p, MESSAGES as usize))
            .collect();
        assert_eq!(common::count_by_sender(&got), expected, "server {id}");
        assert!(got
            .iter()
            .all(|e| e.from != id && e.message == note(e.message_id)));
        assert!(common::recv_until_quiet(server, quiet()).await.is_empty());
    }
    common::shutdown_all(servers).await;
}

/// Unicast in process: server 1 sends 100·k messages to server k+1; each gets exactly
/// its share from server 1 and nothing else.
#[tokio::test(start_paused = true)]
async fn unicast_messages_reach_only_their_destination_in_process() {
    let network = Network::with_servers(4, 7);
    let mut servers = start_all(&network).await;

    for to in 2..=4u64 {
        for seq in 0..(to - 1) * 100 {
            servers[0].send(to, seq, &note(seq)).expect("send");
        }
    }

    for server in servers.iter_mut().skip(1) {
        let id = server.id();
        let got = common::recv_n(server, (id as usize - 1) * 100).await;
        assert!(got.iter().all(|e| e.from == 1));
        assert!(common::recv_until_quiet(server, quiet()).await.is_empty());
    }
    assert!(common::recv_until_quiet(&mut servers[0], quiet())
        .await
        .is_empty());
    common::shutdown_all(servers).await;
}

/// Scenario 44: with the partition {1,2,3} | {4,5} traffic flows only inside each
/// group; after heal every server hears from every peer again.
#[tokio::test(start_paused = true)]
async fn a_partition_confines_traffic_to_its_groups_until_healed() {
    let network = Network::with_servers(5, 44);
    let mut servers = start_all(&network).await;
    network.partition(&[&[1, 2, 3]]);

    for server in &servers {
        for seq in 0..100 {
            server.broadcast(seq, &note(seq)).expect("broadcast");
        }
    }
    for server in &mut servers {
        let id = server.id();
        let got = common::recv_until_quiet(server, quiet()).await;
        let group: &[u64] = if id <= 3 { &[1, 2, 3] } else { &[4, 5] };
        let expected: BTreeMap<u64, usize> = group
            .iter()
            .filter(|&&p| p != id)
            .map(|&p| (p, 100))
            .collect();
        assert_eq!(
            common::count_by_sender(&got),
            expected,
            "server {id} partitioned"
        );
    }

    network.heal();
    for server in &servers {
        for seq in 100..200 {
            server.broadcast(seq, &note(seq)).expect("broadcast");
        }
    }
    for server in &mut servers {
        let id = server.id();
        let got = common::recv_n(server, 400).await;
        let expected: BTreeMap<u64, usize> = server.peers().iter().map(|&p| (p, 100)).collect();
        assert_eq!(
            common::count_by_sender(&got),
            expected,
            "server {id} healed"
        );
        assert!(common::recv_until_quiet(server, quiet()).await.is_empty());
    }
    common::shutdown_all(servers).await;
}

/// A one-way cut loses messages from 1 to 2 while 2 to 1 still flows; restoring the
/// link lets 1 to 2 flow again.
#[tokio::test(start_paused = true)]
async fn a_one_way_cut_blocks_only_its_direction() {
    let network = Network::with_servers(2, 5);
    let mut servers = start_all(&network).await;
    network.cut(1, 2);

    servers[0].send(2, 1, &note(1)).expect("send");
    servers[1].send(1, 2, &note(2)).expect("send");
    assert_eq!(common::recv_n(&mut servers[0], 1).await[0].message_id, 2);
    assert!(common::recv_until_quiet(&mut servers[1], quiet())
        .await
        .is_empty());

    network.restore(1, 2);
    servers[0].send(2, 3, &note(3)).expect("send");
    assert_eq!(common::recv_n(&mut servers[1], 1).await[0].message_id, 3);
    common::shutdown_all(servers).await;
}

/// Scenario 45 (loss): with a drop probability of 0.3, some of 1000 messages are lost
/// but the loss stays between 20% and 40%.
#[tokio::test(start_paused = true)]
async fn a_drop_probability_of_0_3_loses_a_bounded_share() {
    let network = Network::with_servers(2, 45);
    let mut servers = start_all(&network).await;
    network.set_all_links(LinkConditions {
        drop_probability: 0.3,
        ..LinkConditions::default()
    });

    for seq in 0..MESSAGES {
        servers[0].send(2, seq, &note(seq)).expect("send");
    }
    let got = common::recv_until_quiet(&mut servers[1], quiet()).await;
    let lost = MESSAGES as usize - got.len();
    assert!((200..=400).contains(&lost), "lost {lost} of {MESSAGES}");
    common::shutdown_all(servers).await;
}

/// Scenario 45 (delay): with delays drawn from 0..=100 ms nothing is lost, some
/// messages overtake others, and none arrives later than the maximum delay allows.
#[tokio::test(start_paused = true)]
async fn a_delay_range_reorders_without_losing() {
    let network = Network::with_servers(2, 46);
    let mut servers = start_all(&network).await;
    network.set_link(
        1,
        2,
        LinkConditions {
            drop_probability: 0.0,
            delay: Duration::ZERO..=Duration::from_millis(100),
        },
    );

    let started = Instant::now();
    for seq in 0..MESSAGES {
        servers[0].send(2, seq, &note(seq)).expect("send");
    }
    let got = common::recv_n(&mut servers[1], MESSAGES as usize).await;
    let elapsed = started.elapsed();

    let ids: Vec<u64> = got.iter().map(|e| e.message_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..MESSAGES).collect::<Vec<_>>(),
        "every message once"
    );
    assert_ne!(ids, sorted, "no reordering observed");
    assert!(elapsed <= Duration::from_millis(150), "took {elapsed:?}");
    assert!(common::recv_until_quiet(&mut servers[1], quiet())
        .await
        .is_empty());
    common::shutdown_all(servers).await;
}

/// Scenario 46 (in-process): a crashed server's peers see `Disconnected` then
/// `DialRefused`; started again with the same id it receives within 500 ms.
#[tokio::test(start_paused = true)]
async fn a_crashed_server_restarted_receives_again_within_500_ms_in_process() {
    let network = Network::with_servers(3, 46);
    let mut servers = start_all(&network).await;

    assert!(network.crash(3));
    common::wait_event(&mut servers[0], PeerEvent::Disconnected(3)).await;
    common::wait_event(&mut servers[0], PeerEvent::DialRefused(3)).await;
    let crashed = servers.pop().expect("three servers");
    assert!(crashed.sender().send(1, 0, &note(0)).is_err());
    crashed.shutdown().await;

    let restarted_at = Instant::now();
    let mut third = network.start(3).expect("restart");
    servers[0].send(3, 9, &note(9)).expect("send");
    let got = common::recv_n(&mut third, 1).await;
    let elapsed = restarted_at.elapsed();
    assert_eq!((got[0].from, got[0].message_id), (1, 9));
    assert!(elapsed <= Duration::from_millis(500), "took {elapsed:?}");
    assert_eq!(servers[0].stats().peers[&3].reconnects, 1);

    third.shutdown().await;
    common::shutdown_all(servers).await;
}

/// A server that never calls recv does not hold up delivery between the others.
#[tokio::test(start_paused = true)]
async fn a_stalled_receiver_does_not_slow_others_in_process() {
    let options = Options {
        queue_capacity: 64,
        inbound_capacity: 4,
        ..Options::default()
    };
    let network = Network::new(Config::loopback(3, 1).with_options(options), 8);
    let mut servers = start_all(&network).await;

    let sent = 50_000u64;
    for seq in 0..sent {
        servers[0].broadcast(seq, &note(seq)).expect("broadcast");
        if seq % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let got = common::recv_until_quiet(&mut servers[1], quiet()).await;
    assert!(!got.is_empty() && got.iter().all(|e| e.from == 1));
    let stats = servers[0].stats();
    assert!(
        stats.peers[&3].dropped > 0,
        "nothing dropped for the stalled peer"
    );
    assert!(stats.peers[&2].received == 0 && stats.peers[&2].sent > 0);
    common::shutdown_all(servers).await;
}

/// The same seed replays the same losses; the network's randomness is its seed's.
#[tokio::test(start_paused = true)]
async fn the_same_seed_loses_the_same_messages() {
    async fn survivors(seed: u64) -> Vec<u64> {
        let network = Network::with_servers(2, seed);
        let mut servers = start_all(&network).await;
        network.set_all_links(LinkConditions {
            drop_probability: 0.5,
            delay: Duration::ZERO..=Duration::from_millis(10),
        });
        for seq in 0..200 {
            servers[0].send(2, seq, &note(seq)).expect("send");
        }
        let got = common::recv_until_quiet(&mut servers[1], quiet()).await;
        common::shutdown_all(servers).await;
        got.iter().map(|e| e.message_id).collect()
    }

    let first = survivors(99).await;
    assert_eq!(first, survivors(99).await);
    assert_ne!(first, survivors(100).await);
}

/// `next` returns both messages and connection events, so a consensus layer can wait
/// on both with one call.
#[tokio::test(start_paused = true)]
async fn next_returns_both_messages_and_connection_events() {
    let network = Network::with_servers(3, 11);
    let mut servers = start_all(&network).await;

    servers[1].send(1, 4, &note(4)).expect("send");
    let first = tokio::time::timeout(common::PATIENCE, servers[0].next()).await;
    assert!(
        matches!(&first, Ok(Some(cluster::Incoming::Message(e))) if e.from == 2),
        "{first:?}"
    );

    servers[1].send(1, 5, &note(5)).expect("send");
    assert!(network.crash(3));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(common::PATIENCE, servers[0].next()).await {
            Ok(Some(incoming)) => seen.push(incoming),
            other => panic!("nothing more: {other:?}"),
        }
    }
    assert!(
        seen.contains(&cluster::Incoming::Event(PeerEvent::Disconnected(3))),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|i| matches!(i, cluster::Incoming::Message(e) if e.message_id == 5)),
        "{seen:?}"
    );
    common::shutdown_all(servers).await;
}
