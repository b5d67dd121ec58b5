//! The driver over real loopback TCP: three nodes elect, lose their leader to a clean
//! stop, elect again, and take the old leader back as a follower.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use raft::{Driver, DriverError, LogPosition, MemoryStorage, Node, NodeId, Role, Status, Storage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const TICK: Duration = Duration::from_millis(10);

/// Generous: an election takes a few hundred milliseconds; a loaded CI machine is slow.
const ELECTION_BOUND: Duration = Duration::from_secs(10);

struct Running {
    status: watch::Receiver<Status>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), DriverError>>,
}

async fn start(config: &cluster::Config, id: NodeId, storage: &MemoryStorage) -> Running {
    let mut storage = storage.clone();
    let state = storage.load().unwrap().unwrap_or_default();
    let voters = config.servers().iter().map(|server| server.id);
    let node = Node::new(
        raft::Config::new(id, voters),
        state,
        LogPosition::default(),
        ChaCha8Rng::seed_from_u64(id),
    )
    .unwrap();
    let server = cluster::Server::start(config, id).await.unwrap();

    let driver = Driver::new(node, storage, server, TICK);
    let status = driver.status();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(driver.run(async {
        let _ = stopped.await;
    }));
    Running { status, stop, task }
}

/// Waits until every running node follows one leader other than `old`.
async fn agreed_leader(running: &BTreeMap<NodeId, Running>, old: Option<NodeId>) -> Status {
    let deadline = tokio::time::Instant::now() + ELECTION_BOUND;
    loop {
        let statuses: Vec<Status> = running.values().map(|r| *r.status.borrow()).collect();
        let leader = statuses
            .iter()
            .find(|s| s.role == Role::Leader && Some(s.id) != old);
        if let Some(leader) = leader {
            let all_follow = statuses
                .iter()
                .all(|s| s.leader == Some(leader.id) && s.term == leader.term);
            if all_follow {
                return *leader;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreed leader: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three nodes over loopback TCP elect a leader; when it stops, the other two elect a
/// new one in a higher term; restarted on the same port, the old leader follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_cluster_elects_replaces_a_stopped_leader_and_takes_it_back() {
    // Reserve three free ports, then let the servers bind them (with SO_REUSEADDR).
    let mut addresses = Vec::new();
    for _ in 0..3 {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push(probe.local_addr().unwrap());
    }
    let config = cluster::Config::new(
        addresses
            .iter()
            .enumerate()
            .map(|(i, &a): (usize, &SocketAddr)| (i as u64 + 1, a)),
    )
    .with_cluster_name("driver-tcp-test");
    let storages: BTreeMap<NodeId, MemoryStorage> =
        (1..=3).map(|id| (id, MemoryStorage::new())).collect();

    let mut running = BTreeMap::new();
    for id in 1..=3 {
        running.insert(id, start(&config, id, &storages[&id]).await);
    }
    let first = agreed_leader(&running, None).await;

    let old = running.remove(&first.id).unwrap();
    old.stop.send(()).unwrap();
    old.task.await.unwrap().unwrap();
    let second = agreed_leader(&running, Some(first.id)).await;
    assert!(second.term > first.term);

    running.insert(
        first.id,
        start(&config, first.id, &storages[&first.id]).await,
    );
    let third = agreed_leader(&running, None).await;
    assert_eq!(
        third.id, second.id,
        "the old leader comes back as a follower"
    );

    for (_, node) in running {
        let _ = node.stop.send(());
        node.task.await.unwrap().unwrap();
    }
}
