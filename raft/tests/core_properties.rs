//! Safety properties of the election core under any interleaving: messages delayed,
//! reordered, duplicated or lost, and servers restarted from what they persisted.
//!
//! Every operation is chosen by proptest, so a failure shrinks to a short history.

use std::collections::BTreeMap;

use proptest::prelude::*;
use raft::{
    Config, Event, HardState, LogPosition, Message, Node, NodeId, Outbound, Output, Role, Term,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One step of a history. The numbers select a server or an in-flight message, modulo
/// how many there are.
#[derive(Clone, Debug)]
enum Operation {
    Tick(usize),
    Campaign(usize),
    Deliver(usize),
    Duplicate(usize),
    Lose(usize),
    Restart(usize),
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => any::<usize>().prop_map(Operation::Tick),
        1 => any::<usize>().prop_map(Operation::Campaign),
        8 => any::<usize>().prop_map(Operation::Deliver),
        1 => any::<usize>().prop_map(Operation::Duplicate),
        1 => any::<usize>().prop_map(Operation::Lose),
        1 => any::<usize>().prop_map(Operation::Restart),
    ]
}

/// What the history has established so far, checked on every output.
#[derive(Default)]
struct Record {
    leaders_by_term: BTreeMap<Term, NodeId>,
    votes: BTreeMap<(NodeId, Term), NodeId>,
}

struct World {
    configs: Vec<Config>,
    nodes: Vec<Node>,
    persisted: Vec<HardState>,
    restarts: u64,
    in_flight: Vec<(NodeId, Outbound)>,
    record: Record,
}

impl World {
    fn new(size: u64, pre_vote: bool, check_quorum: bool) -> World {
        let configs: Vec<Config> = (1..=size)
            .map(|id| Config {
                election_timeout_min: 3,
                election_timeout_max: 7,
                heartbeat_interval: 1,
                pre_vote,
                check_quorum,
                ..Config::new(id, 1..=size)
            })
            .collect();
        let persisted = vec![HardState::default(); configs.len()];
        let mut world = World {
            nodes: Vec::new(),
            configs,
            persisted,
            restarts: 0,
            in_flight: Vec::new(),
            record: Record::default(),
        };
        world.nodes = (0..world.configs.len())
            .map(|index| world.boot(index))
            .collect();
        world
    }

    /// Creates server `index` from its persisted state only, as after a crash.
    fn boot(&mut self, index: usize) -> Node {
        self.restarts += 1;
        let rng = ChaCha8Rng::seed_from_u64(self.restarts * 31 + index as u64);
        let config = self.configs[index].clone();
        Node::new(config, self.persisted[index], LogPosition::default(), rng).unwrap()
    }

    fn apply(&mut self, index: usize, out: Output) -> Result<(), TestCaseError> {
        let id = index as NodeId + 1;
        let before = self.persisted[index];

        if let Some(state) = out.hard_state {
            // Terms never go back, and a vote, once cast in a term, never changes (§5.2).
            prop_assert!(state.term >= before.term, "{id}: term went back: {state:?}");
            if state.term == before.term && before.voted_for.is_some() {
                prop_assert_eq!(state.voted_for, before.voted_for, "{}: vote changed", id);
            }
            self.persisted[index] = state;
        }
        let persisted = self.persisted[index];
        prop_assert_eq!(
            persisted,
            self.nodes[index].hard_state(),
            "{}: not persisted",
            id
        );

        for Outbound { to, message } in &out.messages {
            prop_assert_ne!(*to, id, "a message to oneself");
            match message {
                Message::VoteResponse(response) if response.granted && !response.pre_vote => {
                    prop_assert_eq!(persisted.term, response.term);
                    prop_assert_eq!(persisted.voted_for, Some(*to));
                    let earlier = self.record.votes.insert((id, response.term), *to);
                    prop_assert!(
                        earlier.is_none() || earlier == Some(*to),
                        "{id} voted for {earlier:?} and {to} in term {}",
                        response.term
                    );
                }
                Message::VoteRequest(request) if !request.pre_vote => {
                    prop_assert_eq!(persisted.term, request.term);
                    prop_assert_eq!(persisted.voted_for, Some(id));
                }
                _ => {}
            }
        }

        for event in &out.events {
            if let Event::ElectionWon { term, votes } = event {
                prop_assert!(votes.len() >= self.configs[index].quorum());
                let earlier = self.record.leaders_by_term.insert(*term, id);
                prop_assert!(
                    earlier.is_none(),
                    "two leaders in term {term}: {earlier:?}, {id}"
                );
            }
        }

        self.in_flight
            .extend(out.messages.into_iter().map(|message| (id, message)));
        Ok(())
    }

    fn run(&mut self, operation: Operation) -> Result<(), TestCaseError> {
        let size = self.nodes.len();
        match operation {
            Operation::Tick(n) => {
                let out = self.nodes[n % size].tick();
                self.apply(n % size, out)
            }
            Operation::Campaign(n) => {
                let out = self.nodes[n % size].campaign();
                self.apply(n % size, out)
            }
            Operation::Restart(n) => {
                self.nodes[n % size] = self.boot(n % size);
                Ok(())
            }
            Operation::Deliver(_) | Operation::Duplicate(_) | Operation::Lose(_)
                if self.in_flight.is_empty() =>
            {
                Ok(())
            }
            Operation::Deliver(m) => {
                let (from, Outbound { to, message }) =
                    self.in_flight.remove(m % self.in_flight.len());
                let index = (to - 1) as usize;
                let out = self.nodes[index].step(from, message);
                self.apply(index, out)
            }
            Operation::Duplicate(m) => {
                let copy = self.in_flight[m % self.in_flight.len()].clone();
                self.in_flight.push(copy);
                Ok(())
            }
            Operation::Lose(m) => {
                self.in_flight.remove(m % self.in_flight.len());
                Ok(())
            }
        }
    }
}

impl World {
    /// Heals everything: from now on every server ticks and every message arrives at
    /// once. Returns the ticks it took until one server leads in the highest term.
    fn heal_until_leader(&mut self, limit: u64) -> Result<u64, TestCaseError> {
        for ticks in 0..limit {
            for index in 0..self.nodes.len() {
                let out = self.nodes[index].tick();
                self.apply(index, out)?;
            }
            while !self.in_flight.is_empty() {
                self.run(Operation::Deliver(0))?;
            }

            let highest = self.nodes.iter().map(Node::term).max().unwrap_or(0);
            let leaders = self.nodes.iter().filter(|node| node.role() == Role::Leader);
            if leaders.filter(|leader| leader.term() == highest).count() == 1 {
                return Ok(ticks);
            }
        }
        Err(TestCaseError::fail(format!(
            "no leader {limit} ticks after healing"
        )))
    }
}

proptest! {
    // 256 cases by default; set PROPTEST_CASES for a longer search.

    /// Election safety (at most one leader per term), one vote per term per server, and
    /// persist-before-send hold under any delivery order, loss, duplication and crash
    /// with restart from persisted state (§5.2, Figure 2).
    #[test]
    fn elections_stay_safe_under_any_interleaving_and_restarts(
        size in 1u64..=5,
        pre_vote in any::<bool>(),
        check_quorum in any::<bool>(),
        operations in prop::collection::vec(operation(), 0..400),
    ) {
        let mut world = World::new(size, pre_vote, check_quorum);
        for operation in operations {
            world.run(operation)?;
        }
    }

    /// Liveness: whatever state a history of faults left behind (terms ahead, stale
    /// leaders, leases, pending duplicates), once the network heals the cluster elects a
    /// leader in its highest term within a bounded number of ticks (§5.2, thesis §9.6,
    /// §6.2: pre-vote and check-quorum must not leave a cluster leaderless).
    #[test]
    fn a_healed_cluster_always_elects_a_leader(
        size in 1u64..=5,
        pre_vote in any::<bool>(),
        check_quorum in any::<bool>(),
        operations in prop::collection::vec(operation(), 0..300),
    ) {
        let mut world = World::new(size, pre_vote, check_quorum);
        for operation in operations {
            world.run(operation)?;
        }

        world.heal_until_leader(300)?;
    }
}
