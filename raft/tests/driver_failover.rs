//! Faster fail-over through the driver, over `cluster`'s in-process network on tokio's
//! paused clock: crash hints from closed connections, and leadership transfer through a
//! [`DriverHandle`].

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::Network;
use raft::{
    CommandError, Config, Driver, DriverError, DriverHandle, LogPosition, MemoryStorage, Message,
    Node, NodeId, Role, Status, Storage, TransferError,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One tick of the core: 10 ms, so the default timeouts are 150–300 ms.
const TICK: Duration = Duration::from_millis(10);

/// The shortest election timeout with the default 15 ticks.
const MIN_TIMEOUT: Duration = Duration::from_millis(150);

struct Running {
    status: watch::Receiver<Status>,
    handle: DriverHandle,
    task: JoinHandle<Result<(), DriverError>>,
}

struct TestCluster {
    network: Network<Message>,
    running: BTreeMap<NodeId, Running>,
    /// Every (term, leader) pair observed, to check election safety.
    leaders_seen: BTreeMap<u64, NodeId>,
}

impl TestCluster {
    fn start(n: u64, seed: u64, tweak: impl Fn(&mut Config)) -> TestCluster {
        let network = Network::with_servers(n, seed);
        let mut running = BTreeMap::new();
        for id in 1..=n {
            let mut config = Config::new(id, 1..=n);
            tweak(&mut config);
            let mut storage = MemoryStorage::new();
            let state = storage.load().unwrap().unwrap_or_default();
            let rng = ChaCha8Rng::seed_from_u64(id * 7919 + seed);
            let node = Node::new(config, state, LogPosition::default(), rng).unwrap();
            let server = network.start(id).unwrap();

            let driver = Driver::new(node, storage, server, TICK);
            let status = driver.status();
            let handle = driver.handle();
            let task = tokio::spawn(driver.run(std::future::pending()));
            running.insert(
                id,
                Running {
                    status,
                    handle,
                    task,
                },
            );
        }
        TestCluster {
            network,
            running,
            leaders_seen: BTreeMap::new(),
        }
    }

    async fn crash(&mut self, id: NodeId) {
        let running = self.running.remove(&id).expect("the node runs");
        running.task.abort();
        let _ = running.task.await;
        self.network.crash(id);
    }

    /// The leader all running nodes follow in one term, checking one leader per term.
    fn agreed_leader(&mut self) -> Option<(NodeId, u64)> {
        let statuses: Vec<Status> = self.running.values().map(|r| *r.status.borrow()).collect();
        for status in statuses.iter().filter(|s| s.role == Role::Leader) {
            let previous = self.leaders_seen.insert(status.term, status.id);
            assert!(previous.is_none() || previous == Some(status.id));
        }
        let first = statuses.first()?;
        let (leader, term) = (first.leader?, first.term);
        let agreed = statuses
            .iter()
            .all(|s| s.leader == Some(leader) && s.term == term);
        let leads = statuses
            .iter()
            .any(|s| s.id == leader && s.role == Role::Leader);
        (agreed && leads).then_some((leader, term))
    }

    /// Waits, one millisecond of virtual time at a time, for an agreed leader other
    /// than `old`.
    async fn wait_for_leader_other_than(&mut self, old: Option<NodeId>) -> (NodeId, u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.agreed_leader() {
                Some(found) if Some(found.0) != old => return found,
                _ => {}
            }
            assert!(Instant::now() < deadline, "no new leader within 5 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// With crash hints, the survivors of a crashed leader elect a new one in less virtual
/// time than the minimum election timeout: the closed connections tell them at once.
#[tokio::test(start_paused = true)]
async fn a_crashed_leader_is_replaced_within_the_minimum_election_timeout() {
    for seed in 0..20 {
        let mut cluster = TestCluster::start(5, seed, |_| {});
        let (old, old_term) = cluster.wait_for_leader_other_than(None).await;
        tokio::time::sleep(Duration::from_millis(500)).await;

        let crashed_at = Instant::now();
        cluster.crash(old).await;
        let (new, new_term) = cluster.wait_for_leader_other_than(Some(old)).await;

        let took = crashed_at.elapsed();
        assert!(new_term > old_term && new != old);
        assert!(took < MIN_TIMEOUT, "seed {seed}: {took:?}");
    }
}

/// A transfer asked through the leader's driver handle moves leadership to the chosen
/// server in the next term, well within an election timeout.
#[tokio::test(start_paused = true)]
async fn a_transfer_through_the_driver_handle_moves_leadership_to_the_chosen_server() {
    let mut cluster = TestCluster::start(5, 3, |_| {});
    let (old, term) = cluster.wait_for_leader_other_than(None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let target = if old == 5 { 4 } else { 5 };

    let asked_at = Instant::now();
    let handle = cluster.running[&old].handle.clone();
    assert_eq!(handle.transfer_leadership(Some(target)).await, Ok(target));
    let (new, new_term) = cluster.wait_for_leader_other_than(Some(old)).await;

    assert_eq!((new, new_term), (target, term + 1));
    assert!(asked_at.elapsed() < MIN_TIMEOUT, "{:?}", asked_at.elapsed());
}

/// Without a named target the leader picks a connected peer; a follower refuses to
/// transfer and names the leader.
#[tokio::test(start_paused = true)]
async fn a_transfer_without_a_target_picks_a_peer_and_a_follower_refuses() {
    let mut cluster = TestCluster::start(3, 4, |_| {});
    let (old, _) = cluster.wait_for_leader_other_than(None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let follower = if old == 1 { 2 } else { 1 };
    let refused = cluster.running[&follower]
        .handle
        .transfer_leadership(None)
        .await;
    assert_eq!(
        refused,
        Err(CommandError::Refused(TransferError::NotLeader {
            leader: Some(old)
        }))
    );

    let handle = cluster.running[&old].handle.clone();
    let target = handle.transfer_leadership(None).await.unwrap();
    let (new, _) = cluster.wait_for_leader_other_than(Some(old)).await;
    assert_eq!(new, target);
}
