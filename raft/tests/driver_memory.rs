//! The driver over `cluster`'s in-process network, on tokio's paused clock: whole
//! clusters of drivers elect, lose their leader, split and heal, deterministically and
//! in milliseconds of real time.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::{LinkConditions, Network};
use raft::{
    Config, Driver, DriverError, HardState, LogPosition, MemoryStorage, Message, Node, NodeId,
    Role, Status, Storage, StorageError,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// One tick of the core: 10 ms, so the default timeouts are 150–300 ms.
const TICK: Duration = Duration::from_millis(10);

/// A driver running on the in-process network.
struct Running {
    status: watch::Receiver<Status>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), DriverError>>,
}

/// Drivers over one in-process network, each with a storage that outlives it.
struct TestCluster {
    network: Network<Message>,
    storages: BTreeMap<NodeId, MemoryStorage>,
    running: BTreeMap<NodeId, Running>,
    /// Every (term, leader) pair ever observed, to check election safety.
    leaders_seen: BTreeMap<u64, NodeId>,
}

impl TestCluster {
    fn start(n: u64, seed: u64) -> TestCluster {
        let mut cluster = TestCluster {
            network: Network::with_servers(n, seed),
            storages: (1..=n).map(|id| (id, MemoryStorage::new())).collect(),
            running: BTreeMap::new(),
            leaders_seen: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.start_node(id);
        }
        cluster
    }

    fn voters(&self) -> Vec<NodeId> {
        self.storages.keys().copied().collect()
    }

    /// Starts (or restarts) `id` from what its storage holds.
    fn start_node(&mut self, id: NodeId) {
        let mut storage = self.storages[&id].clone();
        let state = storage.load().unwrap().unwrap_or_default();
        let rng = ChaCha8Rng::seed_from_u64(id * 7919 + state.term);
        let node = Node::new(
            Config::new(id, self.voters()),
            state,
            LogPosition::default(),
            rng,
        )
        .unwrap();
        let server = self.network.start(id).unwrap();

        let driver = Driver::new(node, storage, server, TICK);
        let status = driver.status();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(driver.run(async {
            let _ = stopped.await;
        }));
        self.running.insert(id, Running { status, stop, task });
    }

    /// Crashes `id`: its task is aborted and its links go dead at once.
    async fn crash(&mut self, id: NodeId) {
        let running = self.running.remove(&id).expect("the node runs");
        running.task.abort();
        let _ = running.task.await;
        self.network.crash(id);
    }

    /// Stops `id` cleanly and returns how its driver ended.
    async fn stop(&mut self, id: NodeId) -> Result<(), DriverError> {
        let running = self.running.remove(&id).expect("the node runs");
        let _ = running.stop.send(());
        running.task.await.expect("the driver task does not panic")
    }

    fn statuses(&mut self) -> BTreeMap<NodeId, Status> {
        let statuses: BTreeMap<NodeId, Status> = self
            .running
            .iter()
            .map(|(&id, running)| (id, *running.status.borrow()))
            .collect();

        for status in statuses.values().filter(|s| s.role == Role::Leader) {
            let previous = self.leaders_seen.insert(status.term, status.id);
            assert!(
                previous.is_none() || previous == Some(status.id),
                "two leaders in term {}: {previous:?} and {}",
                status.term,
                status.id
            );
        }
        statuses
    }

    /// The leader that every node in `among` follows, once they agree on one.
    fn agreed_leader(&mut self, among: &[NodeId]) -> Option<(NodeId, u64)> {
        let statuses = self.statuses();
        let first = statuses.get(among.first()?)?;
        let (leader, term) = (first.leader?, first.term);
        let agreed = among.iter().all(|id| {
            statuses
                .get(id)
                .is_some_and(|s| s.leader == Some(leader) && s.term == term)
        });
        let leader_leads = statuses
            .get(&leader)
            .is_some_and(|s| s.role == Role::Leader);
        (agreed && leader_leads).then_some((leader, term))
    }

    /// Waits, on virtual time, until the nodes in `among` agree on a leader.
    async fn wait_for_leader(&mut self, among: &[NodeId], within: Duration) -> (NodeId, u64) {
        self.wait_for_leader_other_than(among, None, within).await
    }

    /// Waits until the nodes in `among` agree on a leader that is not `old`.
    async fn wait_for_leader_other_than(
        &mut self,
        among: &[NodeId],
        old: Option<NodeId>,
        within: Duration,
    ) -> (NodeId, u64) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.agreed_leader(among) {
                Some(found) if Some(found.0) != old => return found,
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader agreed among {among:?} within {within:?}: {:?}",
                self.statuses()
            );
            tokio::time::sleep(TICK).await;
        }
    }

    /// Runs for `duration` of virtual time, checking election safety as it goes.
    async fn run_for(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < deadline {
            self.statuses();
            tokio::time::sleep(TICK).await;
        }
    }
}

/// Five drivers elect exactly one leader that all of them follow, in one term ≥ 1.
#[tokio::test(start_paused = true)]
async fn five_drivers_elect_one_leader() {
    let mut cluster = TestCluster::start(5, 1);

    let (leader, term) = cluster
        .wait_for_leader(&[1, 2, 3, 4, 5], Duration::from_secs(5))
        .await;

    assert!(term >= 1);
    let leaders = cluster
        .statuses()
        .values()
        .filter(|s| s.role == Role::Leader)
        .count();
    assert_eq!(leaders, 1, "leader {leader}");
}

/// A crashed leader is replaced by one with a higher term; restarted from its storage,
/// it rejoins as a follower of the new leader.
#[tokio::test(start_paused = true)]
async fn crashed_leader_is_replaced_and_rejoins_as_follower() {
    let mut cluster = TestCluster::start(5, 2);
    let (old, old_term) = cluster
        .wait_for_leader(&[1, 2, 3, 4, 5], Duration::from_secs(5))
        .await;

    cluster.crash(old).await;
    let rest: Vec<NodeId> = (1..=5).filter(|&id| id != old).collect();
    let within = Duration::from_secs(5);
    let (new, new_term) = cluster
        .wait_for_leader_other_than(&rest, Some(old), within)
        .await;
    assert!(new_term > old_term);

    cluster.start_node(old);
    let (leader, _) = cluster
        .wait_for_leader(&[1, 2, 3, 4, 5], Duration::from_secs(5))
        .await;
    assert_eq!(
        leader, new,
        "the restarted node must not depose the new leader"
    );
    let restarted = cluster.statuses()[&old];
    assert_eq!(restarted.role, Role::Follower);
}

/// A leader cut off with one follower steps down (check-quorum), the majority elects a
/// new leader, and after the heal all five follow one leader of the highest term.
#[tokio::test(start_paused = true)]
async fn minority_leader_steps_down_and_heal_restores_one_leader() {
    let mut cluster = TestCluster::start(5, 3);
    let (old, _) = cluster
        .wait_for_leader(&[1, 2, 3, 4, 5], Duration::from_secs(5))
        .await;

    let buddy = if old == 1 { 2 } else { 1 };
    let majority: Vec<NodeId> = (1..=5).filter(|&id| id != old && id != buddy).collect();
    cluster.network.partition(&[&[old, buddy]]);

    let within = Duration::from_secs(5);
    let (new, new_term) = cluster
        .wait_for_leader_other_than(&majority, Some(old), within)
        .await;
    cluster.run_for(Duration::from_secs(1)).await;
    let stranded = cluster.statuses()[&old];
    assert_ne!(
        stranded.role,
        Role::Leader,
        "the minority leader steps down"
    );

    cluster.network.heal();
    let (leader, term) = cluster
        .wait_for_leader(&[1, 2, 3, 4, 5], Duration::from_secs(5))
        .await;
    assert_eq!(
        (leader, term),
        (new, new_term),
        "the minority must not disrupt the heal"
    );
}

/// With a fifth of the messages lost and delays that reorder them, drivers still elect.
#[tokio::test(start_paused = true)]
async fn lossy_reordering_network_still_elects() {
    let mut cluster = TestCluster::start(5, 4);
    cluster.network.set_all_links(LinkConditions {
        drop_probability: 0.2,
        delay: Duration::from_millis(1)..=Duration::from_millis(20),
    });

    cluster
        .wait_for_leader(&[1, 2, 3, 4, 5], Duration::from_secs(10))
        .await;
    cluster.run_for(Duration::from_secs(2)).await;
}

/// A node stopped cleanly and started again resumes its term and vote from storage.
#[tokio::test(start_paused = true)]
async fn restarted_node_resumes_its_term_and_vote() {
    let mut cluster = TestCluster::start(3, 5);
    let (_, term) = cluster
        .wait_for_leader(&[1, 2, 3], Duration::from_secs(5))
        .await;

    cluster.stop(3).await.unwrap();
    let stored = cluster.storages[&3]
        .get()
        .expect("node 3 persisted its term");
    assert_eq!(stored.term, term);

    cluster.start_node(3);
    assert_eq!(cluster.statuses()[&3].term, term, "restored, not reset");
}

/// A storage that fails every write.
#[derive(Debug)]
struct BrokenDisk;

impl Storage for BrokenDisk {
    fn load(&mut self) -> Result<Option<HardState>, StorageError> {
        Ok(None)
    }

    fn save(&mut self, _: &HardState) -> Result<(), StorageError> {
        Err(StorageError::Io {
            path: "broken-disk".into(),
            action: "write",
            source: std::io::Error::other("no space left"),
        })
    }
}

/// A node that cannot persist its term and vote stops with the storage error instead
/// of campaigning or voting without it.
#[tokio::test(start_paused = true)]
async fn driver_stops_when_its_state_cannot_be_persisted() {
    let network = Network::<Message>::with_servers(1, 6);
    let node = Node::new(
        Config::new(1, [1]),
        HardState::default(),
        LogPosition::default(),
        ChaCha8Rng::seed_from_u64(6),
    )
    .unwrap();
    let driver = Driver::new(node, BrokenDisk, network.start(1).unwrap(), TICK);

    // A single-voter cluster campaigns at its first tick, which must persist a term.
    let outcome = driver.run(std::future::pending()).await;

    assert!(
        matches!(outcome, Err(DriverError::Storage(_))),
        "{outcome:?}"
    );
}
