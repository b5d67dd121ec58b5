//! The fault layer over real loopback TCP (blocks in each direction, delay within the
//! range asked for, loss near the share asked for, heal) and in the in-process
//! network; and dialling from one's own IP, which the partition tests rely on.

mod common;

use std::time::{Duration, Instant};

use cluster::{Config, Options, Server};
use common::{note, Note};
use tokio::net::TcpListener;

/// Quiet period after which no more messages are expected.
const QUIET: Duration = Duration::from_millis(300);

async fn start_pair(fault_injection: bool) -> Vec<Server<Note>> {
    let (config, listeners) = common::loopback_cluster(2);
    let options = Options {
        fault_injection,
        ..Options::default()
    };
    let (_, servers) = common::start_on(config.with_options(options), listeners).await;
    servers
}

/// Without the option there is no fault layer to reach.
#[tokio::test]
async fn the_fault_layer_is_off_unless_configured() {
    let servers = start_pair(false).await;
    assert!(servers[0].faults().is_none());
    common::shutdown_all(servers).await;
}

/// `block` at server 1 drops what it sends to 2 and what it receives from 2, while
/// the connections stay up; `heal` lets both directions through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_drops_both_directions_until_healed() {
    let mut servers = start_pair(true).await;
    let faults = servers[0].faults().expect("fault layer on");
    faults.block(2).expect("2 is a peer");

    servers[0].send(2, 1, &note(1)).unwrap();
    servers[1].send(1, 2, &note(2)).unwrap();
    assert!(common::recv_until_quiet(&mut servers[1], QUIET)
        .await
        .is_empty());
    assert!(common::recv_until_quiet(&mut servers[0], QUIET)
        .await
        .is_empty());

    faults.heal();
    servers[0].send(2, 3, &note(3)).unwrap();
    servers[1].send(1, 4, &note(4)).unwrap();
    let to_two = common::recv_n(&mut servers[1], 1).await;
    let to_one = common::recv_n(&mut servers[0], 1).await;
    assert_eq!((to_two[0].message_id, to_one[0].message_id), (3, 4));
    common::shutdown_all(servers).await;
}

/// One-way blocks: `block_outgoing` at 1 stops 1 → 2 only; `block_incoming` at 1
/// stops 2 → 1 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_blocks_stop_one_direction_only() {
    let mut servers = start_pair(true).await;
    let faults = servers[0].faults().expect("fault layer on");

    faults.block_outgoing(2).unwrap();
    servers[0].send(2, 1, &note(1)).unwrap();
    servers[1].send(1, 2, &note(2)).unwrap();
    assert_eq!(common::recv_n(&mut servers[0], 1).await[0].message_id, 2);
    assert!(common::recv_until_quiet(&mut servers[1], QUIET)
        .await
        .is_empty());

    faults.heal();
    faults.block_incoming(2).unwrap();
    servers[0].send(2, 3, &note(3)).unwrap();
    servers[1].send(1, 4, &note(4)).unwrap();
    assert_eq!(common::recv_n(&mut servers[1], 1).await[0].message_id, 3);
    assert!(common::recv_until_quiet(&mut servers[0], QUIET)
        .await
        .is_empty());
    common::shutdown_all(servers).await;
}

/// Every message is delayed by at least the minimum; with a wide range and many
/// messages some arrive out of order, and all of them arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_arrive_late_and_may_reorder() {
    let mut servers = start_pair(true).await;
    let faults = servers[0].faults().expect("fault layer on");
    let (min, max) = (Duration::from_millis(100), Duration::from_millis(300));
    faults.set_delay(2, min, max).unwrap();

    let sent_at = Instant::now();
    for seq in 0..50 {
        servers[0].send(2, seq, &note(seq)).unwrap();
    }
    let first = common::recv_n(&mut servers[1], 1).await;
    // Only a lower bound on time: a loaded machine may deliver later, never earlier.
    assert!(
        sent_at.elapsed() >= min,
        "arrived after {:?}",
        sent_at.elapsed()
    );

    let mut got = first;
    got.extend(common::recv_n(&mut servers[1], 49).await);
    let order: Vec<u64> = got.iter().map(|e| e.message_id).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..50).collect::<Vec<_>>(),
        "every message arrives once"
    );
    // 50 independent draws from a 200 ms range land in send order with odds of 1/50!.
    assert_ne!(order, sorted, "no message overtook another");

    faults.set_delay(2, Duration::ZERO, Duration::ZERO).unwrap();
    let sent_at = Instant::now();
    servers[0].send(2, 99, &note(99)).unwrap();
    common::recv_n(&mut servers[1], 1).await;
    assert!(sent_at.elapsed() < Duration::from_secs(5));
    common::shutdown_all(servers).await;
}

/// A loss of 30 % drops roughly that share of 2000 messages, and only on the link it
/// is set on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_drops_about_the_share_asked_for() {
    let mut servers = start_pair(true).await;
    servers[0].faults().unwrap().set_loss(2, 0.3).unwrap();

    for seq in 0..2000 {
        servers[0].send(2, seq, &note(seq)).unwrap();
        servers[1].send(1, seq, &note(seq)).unwrap();
    }
    let arrived = common::recv_until_quiet(&mut servers[1], QUIET).await.len();
    // 1400 expected, standard deviation about 20: the bounds are 10 deviations wide.
    assert!(
        (1200..=1600).contains(&arrived),
        "{arrived} of 2000 arrived"
    );
    assert_eq!(common::recv_n(&mut servers[0], 2000).await.len(), 2000);
    common::shutdown_all(servers).await;
}

/// With `dial_from_own_ip` a server's connections to its peers come from the IP it
/// listens on (here 127.0.0.7), not from whatever the system would pick (127.0.0.1).
#[tokio::test]
async fn dialling_from_own_ip_uses_the_listen_address_as_source() {
    let own = TcpListener::bind("127.0.0.7:0")
        .await
        .expect("127.0.0.7 is loopback");
    let peer = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let options = Options {
        dial_from_own_ip: true,
        ..Options::default()
    };
    let config = Config::new([
        (1, own.local_addr().unwrap()),
        (2, peer.local_addr().unwrap()),
    ])
    .with_options(options);
    let server = Server::<Note>::start_with_listener(&config, 1, own)
        .await
        .unwrap();

    let (_, from) = tokio::time::timeout(common::PATIENCE, peer.accept())
        .await
        .expect("server 1 dials its peer")
        .expect("accept");
    assert_eq!(from.ip().to_string(), "127.0.0.7");
    server.shutdown().await;
}

/// The fault layer works the same in the in-process network, under tokio's paused
/// clock: a delay holds a message back for at least its minimum, and `block` drops
/// both ways.
#[tokio::test(start_paused = true)]
async fn the_in_process_network_honours_the_fault_layer() {
    let options = Options {
        fault_injection: true,
        ..Options::default()
    };
    let config = Config::loopback(2, 9000).with_options(options);
    let network = cluster::Network::<Note>::new(config, 7);
    let one = network.start(1).unwrap();
    let mut two = network.start(2).unwrap();
    let faults = one.faults().expect("fault layer on");

    let delay = Duration::from_millis(500);
    faults.set_delay(2, delay, delay).unwrap();
    let sent_at = tokio::time::Instant::now();
    one.send(2, 1, &note(1)).unwrap();
    assert_eq!(two.recv().await.unwrap().message_id, 1);
    assert!(
        sent_at.elapsed() >= delay,
        "arrived after {:?}",
        sent_at.elapsed()
    );

    faults.heal();
    faults.block(2).unwrap();
    one.send(2, 2, &note(2)).unwrap();
    assert!(common::recv_until_quiet(&mut two, QUIET).await.is_empty());
}
