//! The election checklist, one test per row, driving [`Node`] directly.
//!
//! A small in-file [`Cluster`] routes outputs between nodes held in a `Vec`. On every
//! output it checks the persist-before-send contract and that no term has two leaders,
//! so each scenario also exercises those safety properties (Raft paper §5.2).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::{
    AppendRequest, AppendResponse, Config, ConfigError, Event, FileStorage, HardState, LogPosition,
    Message, Node, NodeId, Outbound, Output, RefusalReason, Role, Storage, Term, VoteRequest,
    VoteResponse,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ----- helpers -----

fn config(id: NodeId, size: u64, tweak: impl Fn(&mut Config)) -> Config {
    let mut config = Config::new(id, 1..=size);
    tweak(&mut config);
    config
}

fn no_pre_vote(config: &mut Config) {
    config.pre_vote = false;
}

fn defaults(_: &mut Config) {}

fn node_with(config: Config, state: HardState, last_log: LogPosition) -> Node {
    let seed = config.id;
    Node::new(config, state, last_log, ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn node(id: NodeId, size: u64, tweak: impl Fn(&mut Config)) -> Node {
    node_with(
        config(id, size, tweak),
        HardState::default(),
        LogPosition::default(),
    )
}

fn pos(term: Term, index: u64) -> LogPosition {
    LogPosition { term, index }
}

fn vote_request(term: Term, pre_vote: bool, last_log: LogPosition) -> Message {
    Message::VoteRequest(VoteRequest {
        term,
        pre_vote,
        last_log,
        transfer: false,
    })
}

fn vote_response(term: Term, pre_vote: bool, granted: bool) -> Message {
    Message::VoteResponse(VoteResponse {
        term,
        pre_vote,
        granted,
    })
}

fn heartbeat(term: Term) -> Message {
    Message::AppendRequest(AppendRequest {
        term,
        prev_log: LogPosition::default(),
        commit: 0,
    })
}

fn append_response(term: Term, success: bool) -> Message {
    Message::AppendResponse(AppendResponse {
        term,
        success,
        match_index: 0,
    })
}

/// The vote answers in an output, as (recipient, granted).
fn vote_answers(out: &Output) -> Vec<(NodeId, bool)> {
    out.messages
        .iter()
        .filter_map(|Outbound { to, message }| match message {
            Message::VoteResponse(response) => Some((*to, response.granted)),
            _ => None,
        })
        .collect()
}

fn refusal_reasons(out: &Output) -> Vec<RefusalReason> {
    out.events
        .iter()
        .filter_map(|event| match event {
            Event::VoteRefused { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// Ticks `node` until it leaves the follower role, at most `limit` ticks; returns the
/// output of the tick that made it leave.
fn tick_until_campaign(node: &mut Node, limit: u64) -> Output {
    for _ in 0..limit {
        let out = node.tick();
        if node.role() != Role::Follower {
            return out;
        }
        assert!(
            out.messages.is_empty(),
            "a follower sends nothing while waiting"
        );
    }
    panic!("node {} did not campaign within {limit} ticks", node.id());
}

/// Makes `node` (of a cluster of `size`) leader in term `node.term() + 1` by feeding it
/// the votes it asks for.
fn make_leader(node: &mut Node, size: u64) {
    let id = node.id();
    let _ = node.campaign();
    if node.role() == Role::PreCandidate {
        let term = node.term() + 1;
        for peer in (1..=size).filter(|&peer| peer != id) {
            let _ = node.step(peer, vote_response(term, true, true));
        }
    }
    let term = node.term();
    for peer in (1..=size).filter(|&peer| peer != id) {
        let _ = node.step(peer, vote_response(term, false, true));
    }
    assert_eq!(node.role(), Role::Leader);
}

/// Checks the persist-before-send rule on one output, given what was persisted before
/// the call: any granted vote or real vote request must be backed by the state the
/// same output asks to persist (§5.2, Figure 2).
fn check_persist_before_send(id: NodeId, persisted_before: HardState, out: &Output) {
    let persisted = out.hard_state.unwrap_or(persisted_before);
    for Outbound { to, message } in &out.messages {
        match message {
            Message::VoteResponse(response) if response.granted && !response.pre_vote => {
                assert_eq!(
                    persisted.term, response.term,
                    "{id}: vote term not persisted"
                );
                assert_eq!(persisted.voted_for, Some(*to), "{id}: vote not persisted");
            }
            Message::VoteRequest(request) if !request.pre_vote => {
                assert_eq!(
                    persisted.term, request.term,
                    "{id}: campaign term not persisted"
                );
                assert_eq!(
                    persisted.voted_for,
                    Some(id),
                    "{id}: self-vote not persisted"
                );
            }
            _ => {}
        }
    }
}

/// A few nodes, their persisted state and the messages in flight. Messages are
/// delivered in order within the tick they are sent; isolated nodes lose everything
/// they send or should receive.
struct Cluster {
    nodes: Vec<Node>,
    persisted: Vec<HardState>,
    events: Vec<Vec<Event>>,
    in_flight: VecDeque<(NodeId, Outbound)>,
    isolated: BTreeSet<NodeId>,
    leaders_by_term: BTreeMap<Term, NodeId>,
}

impl Cluster {
    fn new(size: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        Cluster::from_nodes((1..=size).map(|id| node(id, size, &tweak)).collect())
    }

    fn from_nodes(nodes: Vec<Node>) -> Cluster {
        let persisted = nodes.iter().map(Node::hard_state).collect();
        let events = nodes.iter().map(|_| Vec::new()).collect();
        Cluster {
            nodes,
            persisted,
            events,
            in_flight: VecDeque::new(),
            isolated: BTreeSet::new(),
            leaders_by_term: BTreeMap::new(),
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn apply(&mut self, id: NodeId, out: Output) {
        let index = (id - 1) as usize;
        check_persist_before_send(id, self.persisted[index], &out);
        if let Some(state) = out.hard_state {
            self.persisted[index] = state;
        }
        assert_eq!(
            self.persisted[index],
            self.nodes[index].hard_state(),
            "{id}: unsaved"
        );

        for event in &out.events {
            if let Event::ElectionWon { term, .. } = event {
                let previous = self.leaders_by_term.insert(*term, id);
                assert!(
                    previous.is_none(),
                    "two leaders in term {term}: {previous:?}, {id}"
                );
            }
        }
        self.events[index].extend(out.events);
        self.in_flight
            .extend(out.messages.into_iter().map(|message| (id, message)));
    }

    fn deliver_all(&mut self) {
        while let Some((from, Outbound { to, message })) = self.in_flight.pop_front() {
            if self.isolated.contains(&from) || self.isolated.contains(&to) {
                continue;
            }
            let out = self.node(to).step(from, message);
            self.apply(to, out);
        }
    }

    fn tick_all(&mut self) {
        for id in 1..=self.nodes.len() as NodeId {
            let out = self.node(id).tick();
            self.apply(id, out);
        }
        self.deliver_all();
    }

    fn campaign(&mut self, id: NodeId) {
        let out = self.node(id).campaign();
        self.apply(id, out);
        self.deliver_all();
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|node| node.role() == Role::Leader)
            .map(Node::id)
            .collect()
    }

    /// Ticks until exactly one node that is not isolated leads, in the highest term any
    /// connected node has seen (so a deposed leader that has not noticed yet does not
    /// count); returns it.
    fn run_until_leader(&mut self, limit: u64) -> NodeId {
        for _ in 0..limit {
            self.tick_all();
            let connected: Vec<&Node> = self
                .nodes
                .iter()
                .filter(|node| !self.isolated.contains(&node.id()))
                .collect();
            let highest = connected.iter().map(|node| node.term()).max().unwrap_or(0);
            let leaders: Vec<&&Node> = connected
                .iter()
                .filter(|node| node.role() == Role::Leader)
                .collect();
            if let [leader] = leaders[..] {
                if leader.term() == highest {
                    return leader.id();
                }
            }
        }
        panic!("no leader within {limit} ticks: {:#?}", self.nodes);
    }
}

// ----- scenarios -----

/// Scenario 15: with check-quorum, a leader that hears no acknowledgement steps down to
/// follower within two minimum election timeouts and reports `QuorumLost` (thesis §6.2).
#[test]
fn check_quorum_steps_down_a_leader_that_hears_no_acknowledgements() {
    let mut cluster = Cluster::new(3, defaults);
    let leader = cluster.run_until_leader(200);
    let term = cluster.node(leader).term();
    cluster.isolated.insert(leader);

    // The check runs every minimum election timeout over the window since the previous
    // check, so the last acknowledgements may keep the leader through one more window.
    let timeout = cluster.node(leader).config().election_timeout_min;
    for _ in 0..2 * timeout {
        let out = cluster.node(leader).tick();
        cluster.apply(leader, out);
    }

    let node = cluster.node(leader);
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.term(), term, "stepping down does not change the term");
    assert_eq!(node.leader(), None);
    assert!(cluster.events[(leader - 1) as usize].contains(&Event::QuorumLost { term }));
}

/// Scenario 16: with check-quorum, a leader whose followers keep acknowledging stays
/// leader in the same term indefinitely (thesis §6.2).
#[test]
fn check_quorum_keeps_a_leader_whose_followers_answer() {
    let mut cluster = Cluster::new(3, defaults);
    let leader = cluster.run_until_leader(200);
    let term = cluster.node(leader).term();

    for _ in 0..1_000 {
        cluster.tick_all();
    }

    assert_eq!(cluster.leaders(), vec![leader]);
    assert_eq!(cluster.node(leader).term(), term);
    let quorum_lost = cluster.events.iter().flatten();
    assert!(!quorum_lost
        .into_iter()
        .any(|event| matches!(event, Event::QuorumLost { .. })));
}

/// Scenario 17: a single-voter cluster is its own majority and leads after one tick,
/// with its term and self-vote persisted (§5.2).
#[test]
fn single_node_cluster_becomes_leader_at_once() {
    for pre_vote in [true, false] {
        let mut node = node(1, 1, |config| config.pre_vote = pre_vote);

        let out = node.tick();

        assert_eq!(node.role(), Role::Leader);
        assert_eq!(node.leader(), Some(1));
        assert_eq!(
            out.hard_state,
            Some(HardState {
                term: 1,
                voted_for: Some(1)
            })
        );
        assert!(out.messages.is_empty());
        assert!(out.events.contains(&Event::ElectionWon {
            term: 1,
            votes: vec![1]
        }));
    }
}

/// Scenario 19: one round of votes decides by majority: a majority of grants elects,
/// a majority of refusals sends the candidate back to follower, anything else leaves it
/// a candidate (§5.2), for clusters of 1, 3 and 5 voters.
#[test]
fn one_round_of_votes_is_tallied_by_majority() {
    // One character per other voter, from id 2 up: `y` grants, `n` refuses, `.` is silent.
    let rows: [(u64, &str, Role); 15] = [
        (1, "", Role::Leader),
        (3, "yy", Role::Leader),
        (3, "y.", Role::Leader),
        (5, "yyyy", Role::Leader),
        (5, "yyy.", Role::Leader),
        (5, "yy..", Role::Leader),
        (3, "nn", Role::Follower),
        (5, "nnnn", Role::Follower),
        (5, "ynnn", Role::Follower),
        (3, "..", Role::Candidate),
        (3, "n.", Role::Candidate),
        (5, "y...", Role::Candidate),
        (5, "nn..", Role::Candidate),
        (5, "ynn.", Role::Candidate),
        (5, "....", Role::Candidate),
    ];

    for (size, answers, expected) in rows {
        let mut node = node(1, size, no_pre_vote);
        let _ = node.campaign();
        for (voter, answer) in (2..).zip(answers.chars()) {
            if answer != '.' {
                let _ = node.step(voter, vote_response(1, false, answer == 'y'));
            }
        }

        assert_eq!(node.role(), expected, "size {size}, answers {answers:?}");
        assert_eq!(node.term(), 1, "size {size}, answers {answers:?}");
    }
}

/// Scenario 20: a follower whose election timer elapses enters term + 1 as candidate,
/// votes for itself and asks every other voter (§5.2); with pre-vote it becomes a
/// pre-candidate and only polls for term + 1 (thesis §9.6).
#[test]
fn follower_timeout_starts_an_election() {
    let mut node = node(1, 5, no_pre_vote);
    let out = tick_until_campaign(&mut node, 100);

    assert_eq!(node.role(), Role::Candidate);
    assert_eq!(
        node.hard_state(),
        HardState {
            term: 1,
            voted_for: Some(1)
        }
    );
    assert_eq!(out.hard_state, Some(node.hard_state()));
    let request = vote_request(1, false, LogPosition::default());
    let expected: Vec<Outbound> = (2..=5)
        .map(|to| Outbound {
            to,
            message: request.clone(),
        })
        .collect();
    assert_eq!(out.messages, expected);

    let mut node = self::node(1, 5, defaults);
    let out = tick_until_campaign(&mut node, 100);

    assert_eq!(node.role(), Role::PreCandidate);
    assert_eq!(node.hard_state(), HardState::default());
    assert_eq!(out.hard_state, None);
    let request = vote_request(1, true, LogPosition::default());
    let expected: Vec<Outbound> = (2..=5)
        .map(|to| Outbound {
            to,
            message: request.clone(),
        })
        .collect();
    assert_eq!(out.messages, expected);
}

/// Scenario 21: a candidate that neither wins nor loses before its timer elapses starts
/// a new round for term + 1 (§5.2) — with pre-vote, a new pre-vote round for it.
#[test]
fn candidate_timeout_starts_a_new_round_in_the_next_term() {
    let mut node = node(1, 3, no_pre_vote);
    let _ = node.campaign();
    assert_eq!(node.term(), 1);

    let out = tick_until_new_round(&mut node);

    assert_eq!(node.role(), Role::Candidate);
    assert_eq!(
        node.hard_state(),
        HardState {
            term: 2,
            voted_for: Some(1)
        }
    );
    assert!(out
        .messages
        .iter()
        .all(|m| m.message == vote_request(2, false, pos(0, 0))));

    let mut node = self::node(1, 3, defaults);
    make_leader_stuck_candidate(&mut node);
    assert_eq!(node.term(), 1);

    let out = tick_until_new_round(&mut node);

    assert_eq!(node.role(), Role::PreCandidate);
    assert_eq!(node.term(), 1);
    assert!(out
        .messages
        .iter()
        .all(|m| m.message == vote_request(2, true, pos(0, 0))));
}

fn tick_until_new_round(node: &mut Node) -> Output {
    for _ in 0..node.config().election_timeout_max {
        let out = node.tick();
        if out
            .events
            .iter()
            .any(|event| matches!(event, Event::ElectionStarted { .. }))
        {
            assert_eq!(out.messages.len(), 2);
            return out;
        }
    }
    panic!("no new round within the longest election timeout");
}

/// Brings a pre-vote node to candidate in term 1 with no real votes yet.
fn make_leader_stuck_candidate(node: &mut Node) {
    let _ = node.campaign();
    let _ = node.step(2, vote_response(1, true, true));
    assert_eq!(node.role(), Role::Candidate);
}

/// Scenario 22: a server votes at most once per term, first come first served; a
/// repeated request from the candidate it voted for is granted again (§5.2).
#[test]
fn one_vote_per_term_first_come_first_served() {
    let mut voter = node(3, 3, no_pre_vote);

    let first = voter.step(1, vote_request(1, false, pos(0, 0)));
    let second = voter.step(2, vote_request(1, false, pos(0, 0)));
    let repeat = voter.step(1, vote_request(1, false, pos(0, 0)));

    assert_eq!(vote_answers(&first), vec![(1, true)]);
    assert_eq!(vote_answers(&second), vec![(2, false)]);
    assert_eq!(
        refusal_reasons(&second),
        vec![RefusalReason::AlreadyVoted { voted_for: 1 }]
    );
    assert_eq!(vote_answers(&repeat), vec![(1, true)]);
    assert_eq!(
        repeat.hard_state, None,
        "a repeated vote changes nothing to persist"
    );
    assert_eq!(
        voter.hard_state(),
        HardState {
            term: 1,
            voted_for: Some(1)
        }
    );
}

/// Scenario 23: a vote (or pre-vote) goes only to a candidate whose last log entry is at
/// least as up to date as the voter's: later term first, then longer log (§5.4.1).
#[test]
fn vote_is_refused_to_a_candidate_with_an_older_log() {
    let voter_log = pos(2, 5);
    let cases = [
        (pos(1, 9), false), // older last term, even though longer
        (pos(2, 4), false), // same term, shorter
        (pos(0, 0), false),
        (pos(2, 5), true), // identical
        (pos(2, 6), true), // same term, longer
        (pos(3, 1), true), // later term, even though shorter
    ];

    for (candidate_log, expected) in cases {
        for pre_vote in [false, true] {
            let mut voter = node_with(config(2, 3, defaults), HardState::default(), voter_log);

            let out = voter.step(1, vote_request(1, pre_vote, candidate_log));

            assert_eq!(vote_answers(&out), vec![(1, expected)], "{candidate_log:?}");
            if !expected {
                assert_eq!(refusal_reasons(&out), vec![RefusalReason::LogBehind]);
                assert_eq!(voter.hard_state().voted_for, None);
            }
        }
    }
}

/// Scenario 24: any server — leader, candidate, pre-candidate or follower — that sees a
/// message with a higher term adopts that term and becomes (or stays) follower (§5.1).
#[test]
fn a_higher_term_makes_any_server_a_follower() {
    let messages = [
        heartbeat(9),
        append_response(9, false),
        vote_response(9, false, false),
    ];

    for message in messages {
        for role in [
            Role::Leader,
            Role::Candidate,
            Role::PreCandidate,
            Role::Follower,
        ] {
            let mut node = node_in_role(role);

            let out = node.step(2, message.clone());

            assert_eq!(node.role(), Role::Follower, "{role} on {message:?}");
            assert_eq!(node.term(), 9, "{role} on {message:?}");
            assert_eq!(
                out.hard_state,
                Some(HardState {
                    term: 9,
                    voted_for: None
                })
            );
            let expected_leader = matches!(message, Message::AppendRequest(_)).then_some(2);
            assert_eq!(node.leader(), expected_leader, "{role} on {message:?}");
        }
    }
}

/// A node of a 3-voter cluster (id 1, pre-vote on, check-quorum off) in `role`, term 1
/// (term 0 for follower and pre-candidate).
fn node_in_role(role: Role) -> Node {
    let mut node = node(1, 3, |config| config.check_quorum = false);
    match role {
        Role::Follower => {}
        Role::PreCandidate => {
            let _ = node.campaign();
        }
        Role::Candidate => make_leader_stuck_candidate(&mut node),
        Role::Leader => make_leader(&mut node, 3),
    }
    assert_eq!(node.role(), role);
    node
}

/// Scenario 25: messages from an older term change nothing; a stale vote request is
/// refused and a stale heartbeat answered with the current term, so the sender learns
/// it is behind (§5.1).
#[test]
fn stale_messages_are_ignored_or_refused() {
    let mut node = node(1, 3, defaults);
    let _ = node.step(2, heartbeat(5));
    let state = node.hard_state();

    let out = node.step(3, vote_request(4, false, pos(9, 9)));
    assert_eq!(vote_answers(&out), vec![(3, false)]);
    assert_eq!(refusal_reasons(&out), vec![RefusalReason::StaleTerm]);
    assert_eq!(out.messages[0].message, vote_response(5, false, false));

    let out = node.step(3, heartbeat(4));
    assert_eq!(
        out.messages,
        vec![Outbound {
            to: 3,
            message: append_response(5, false)
        }]
    );
    assert_eq!(node.leader(), Some(2));

    for stale in [vote_response(4, false, true), append_response(4, true)] {
        assert!(node.step(3, stale).is_empty());
    }
    assert_eq!(node.hard_state(), state);
    assert_eq!(node.role(), Role::Follower);
}

/// Scenario 26: a candidate (or pre-candidate) that hears a heartbeat from a leader of
/// its term or a later one becomes its follower, in the leader's term (§5.2).
#[test]
fn candidate_that_hears_a_leader_becomes_its_follower() {
    for (role, leader_term) in [
        (Role::Candidate, 1),
        (Role::Candidate, 3),
        (Role::PreCandidate, 0),
        (Role::PreCandidate, 3),
    ] {
        let mut node = node_in_role(role);

        let _ = node.step(3, heartbeat(leader_term));

        assert_eq!(
            node.role(),
            Role::Follower,
            "{role} hearing term {leader_term}"
        );
        assert_eq!(node.term(), leader_term);
        assert_eq!(node.leader(), Some(3));
    }
}

/// Scenario 27: a real vote request with a higher term is granted whatever the voter's
/// role (leader without check-quorum, candidate, pre-candidate, follower); the voter
/// becomes a follower in the new term (§5.1, §5.2).
#[test]
fn a_higher_term_vote_request_is_granted_from_any_role() {
    for role in [
        Role::Leader,
        Role::Candidate,
        Role::PreCandidate,
        Role::Follower,
    ] {
        let mut node = node_in_role(role);

        let out = node.step(3, vote_request(7, false, pos(0, 0)));

        assert_eq!(vote_answers(&out), vec![(3, true)], "{role}");
        assert_eq!(node.role(), Role::Follower, "{role}");
        assert_eq!(
            node.hard_state(),
            HardState {
                term: 7,
                voted_for: Some(3)
            },
            "{role}"
        );
    }
}

/// Scenario 30: every reset of the election timer draws a timeout uniformly from
/// `[election_timeout_min, election_timeout_max)` (§5.2, randomized timeouts).
#[test]
fn randomized_election_timeouts_spread_over_the_range() {
    let mut node = node(1, 3, defaults);
    let (min, max) = (
        node.config().election_timeout_min,
        node.config().election_timeout_max,
    );
    let mut counts = BTreeMap::new();
    let draws = 15_000;

    for _ in 0..draws {
        let _ = node.step(2, heartbeat(1)); // a heartbeat resets the timer
        *counts.entry(node.election_timeout()).or_insert(0u64) += 1;
    }

    assert!(
        counts.keys().all(|timeout| (min..max).contains(timeout)),
        "{counts:?}"
    );
    assert_eq!(
        counts.len() as u64,
        max - min,
        "every value is drawn: {counts:?}"
    );
    let expected = draws / (max - min);
    for (timeout, count) in &counts {
        let deviation = count.abs_diff(expected);
        assert!(
            deviation * 4 < expected,
            "{timeout} drawn {count} times of ~{expected}"
        );
    }
}

/// Scenario 32: a leader sends one empty heartbeat to every other voter per interval,
/// none to itself; followers send no heartbeats (§5.2).
#[test]
fn heartbeats_fan_out_to_every_peer_but_not_to_self() {
    let mut cluster = Cluster::new(5, defaults);
    let leader = cluster.run_until_leader(200);
    let term = cluster.node(leader).term();
    let interval = cluster.node(leader).config().heartbeat_interval;

    let mut heartbeats = Vec::new();
    for _ in 0..interval {
        for id in 1..=5 {
            let out = cluster.node(id).tick();
            for Outbound { to, message } in &out.messages {
                assert_eq!(id, leader, "only the leader sends: {message:?}");
                heartbeats.push((*to, message.clone()));
            }
            cluster.apply(id, out);
        }
        cluster.deliver_all();
    }

    let peers: Vec<NodeId> = (1..=5).filter(|&id| id != leader).collect();
    let expected: Vec<(NodeId, Message)> = peers.iter().map(|&to| (to, heartbeat(term))).collect();
    assert_eq!(heartbeats, expected);
    let Message::AppendRequest(request) = &heartbeats[0].1 else {
        unreachable!()
    };
    assert_eq!(request.commit, 0);
}

/// Scenario 33: a server starts as a follower that knows no leader — in term 0 when
/// fresh, in its stored term when restarted (§5.2: "servers start up as followers").
#[test]
fn a_server_starts_as_follower() {
    let fresh = node(1, 3, defaults);
    assert_eq!(
        (fresh.role(), fresh.term(), fresh.leader()),
        (Role::Follower, 0, None)
    );
    assert_eq!(fresh.hard_state(), HardState::default());

    let stored = HardState {
        term: 5,
        voted_for: Some(1),
    };
    let restarted = node_with(config(1, 3, defaults), stored, pos(0, 0));
    assert_eq!(
        (restarted.role(), restarted.leader()),
        (Role::Follower, None)
    );
    assert_eq!(restarted.hard_state(), stored);
}

/// Scenario 34: asking a leader to campaign changes nothing (§5.2: a leader never
/// starts an election).
#[test]
fn campaign_while_leader_changes_nothing() {
    let mut node = node(1, 3, defaults);
    make_leader(&mut node, 3);
    let term = node.term();

    assert!(node.campaign().is_empty());
    assert_eq!((node.role(), node.term()), (Role::Leader, term));
}

/// Scenario 39: with check-quorum, a follower that heard its leader less than a minimum
/// election timeout ago refuses votes and pre-votes (`LeaderActive`) without adopting
/// the higher term; once that time has passed it grants them (thesis §4.2.3).
#[test]
fn a_leader_lease_refuses_votes_until_it_expires() {
    let mut follower = node(2, 3, defaults);
    follower.set_election_timeout(1_000);
    let _ = follower.step(1, heartbeat(1));
    let min = follower.config().election_timeout_min;

    for _ in 0..min - 1 {
        let _ = follower.tick();
        for pre_vote in [true, false] {
            let out = follower.step(3, vote_request(2, pre_vote, pos(0, 0)));
            assert_eq!(vote_answers(&out), vec![(3, false)]);
            assert_eq!(
                refusal_reasons(&out),
                vec![RefusalReason::LeaderActive { leader: 1 }]
            );
            assert_eq!(out.hard_state, None);
            assert_eq!(follower.term(), 1);
        }
    }

    let _ = follower.tick();
    let out = follower.step(3, vote_request(2, true, pos(0, 0)));
    assert_eq!(vote_answers(&out), vec![(3, true)]);
    let out = follower.step(3, vote_request(2, false, pos(0, 0)));
    assert_eq!(vote_answers(&out), vec![(3, true)]);
    assert_eq!(
        follower.hard_state(),
        HardState {
            term: 2,
            voted_for: Some(3)
        }
    );
}

/// Scenario 41: a server that is not among the voters never campaigns, however long it
/// goes without hearing from a leader (§5.2: only voters stand).
#[test]
fn a_non_voter_never_campaigns() {
    let config = Config::new(4, [1, 2, 3]);
    let mut node = node_with(config, HardState::default(), pos(0, 0));

    for _ in 0..1_000 {
        assert!(node.tick().is_empty());
    }
    assert!(node.campaign().is_empty());

    assert_eq!((node.role(), node.term()), (Role::Follower, 0));
}

/// Scenario 42: term and vote survive a restart through `FileStorage`; the restarted
/// server does not vote again in that term, and a server restored with a high term can
/// still lead, pulling the others up to its term (§5.1, §5.2, Figure 2).
#[test]
fn persisted_term_and_vote_survive_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state");
    let mut voter = node(3, 3, no_pre_vote);
    let out = voter.step(1, vote_request(4, false, pos(0, 0)));
    FileStorage::open(&path)
        .unwrap()
        .save(&out.hard_state.unwrap())
        .unwrap();
    drop(voter);

    let stored = FileStorage::open(&path).unwrap().load().unwrap().unwrap();
    let mut voter = node_with(config(3, 3, no_pre_vote), stored, pos(0, 0));

    assert_eq!(
        voter.hard_state(),
        HardState {
            term: 4,
            voted_for: Some(1)
        }
    );
    let out = voter.step(2, vote_request(4, false, pos(0, 0)));
    assert_eq!(
        refusal_reasons(&out),
        vec![RefusalReason::AlreadyVoted { voted_for: 1 }]
    );
    let out = voter.step(1, vote_request(4, false, pos(0, 0)));
    assert_eq!(vote_answers(&out), vec![(1, true)]);

    let high = node_with(
        config(1, 3, defaults),
        HardState {
            term: 10,
            voted_for: None,
        },
        pos(0, 0),
    );
    let mut cluster = Cluster::from_nodes(vec![high, node(2, 3, defaults), node(3, 3, defaults)]);
    cluster.campaign(1);
    assert_eq!(cluster.leaders(), vec![1]);
    assert!((1..=3).all(|id| cluster.node(id).term() == 11));
}

// ----- properties beyond the checklist -----

/// Liveness with check-quorum (etcd's stuck-candidate case): a candidate that ran up
/// its term while cut off is ignored by the sticky majority, but the leader's next
/// heartbeat draws an answer with that higher term, which deposes the leader, and the
/// cluster elects a leader again in a term at least as high (§5.1, thesis §4.2.3).
#[test]
fn a_stuck_candidate_with_a_higher_term_is_freed_under_check_quorum() {
    let mut cluster = Cluster::new(3, no_pre_vote);
    let leader = cluster.run_until_leader(200);
    let stuck = if leader == 3 { 2 } else { 3 };
    cluster.isolated.insert(stuck);
    for _ in 0..200 {
        cluster.tick_all();
    }
    let stuck_term = cluster.node(stuck).term();
    assert!(
        stuck_term > cluster.node(leader).term() + 1,
        "the cut-off node ran up its term"
    );

    cluster.isolated.clear();
    let leader = cluster.run_until_leader(500);

    assert!(cluster.node(leader).term() >= stuck_term);
    assert!((1..=3).all(|id| cluster.node(id).term() == cluster.node(leader).term()));
}

/// Liveness with pre-vote (etcd's smaller-term case): a server behind in term that
/// polls the others gets refusals carrying their term, catches up, and the cluster can
/// still elect a leader (thesis §9.6, §5.1).
#[test]
fn a_node_with_a_smaller_term_catches_up_and_an_election_completes() {
    let behind = node_with(
        config(1, 3, defaults),
        HardState {
            term: 1,
            voted_for: None,
        },
        pos(0, 0),
    );
    let ahead = |id| {
        node_with(
            config(id, 3, defaults),
            HardState {
                term: 5,
                voted_for: Some(id),
            },
            pos(0, 0),
        )
    };
    let mut cluster = Cluster::from_nodes(vec![behind, ahead(2), ahead(3)]);

    cluster.campaign(1);
    assert_eq!(cluster.node(1).term(), 5, "the refusals carried term 5");
    assert_eq!(cluster.node(1).role(), Role::Follower);

    let leader = cluster.run_until_leader(500);
    assert!(cluster.node(leader).term() >= 6);
}

/// A pre-vote request, of any term, never changes the receiver's term or vote, whatever
/// its state (thesis §9.6).
#[test]
fn a_pre_vote_request_never_changes_the_receivers_term_or_vote() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for _ in 0..500 {
        let stored = HardState {
            term: rng.random_range(0..6),
            voted_for: [None, Some(1), Some(2), Some(3)][rng.random_range(0..4)],
        };
        let mut node = node_with(
            config(2, 3, defaults),
            stored,
            pos(rng.random_range(0..3), 1),
        );
        if rng.random_bool(0.5) {
            let _ = node.step(1, heartbeat(stored.term));
        }
        let before = node.hard_state();

        let request = vote_request(rng.random_range(0..9), true, pos(rng.random_range(0..3), 1));
        let out = node.step(3, request);

        assert_eq!(out.hard_state, None);
        assert_eq!(node.hard_state(), before);
    }
}

/// Persist-before-send and election safety hold through leader failures: across many
/// seeds, with leaders repeatedly cut off and healed, every output persists the term
/// and vote its messages rely on, and no term ever has two leaders (§5.2).
#[test]
fn state_is_persisted_before_sending_and_no_term_has_two_leaders() {
    for seed in 0..20 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pre_vote = seed % 2 == 0;
        let nodes = (1..=5)
            .map(|id| {
                let config = config(id, 5, |config| config.pre_vote = pre_vote);
                Node::new(
                    config,
                    HardState::default(),
                    pos(0, 0),
                    ChaCha8Rng::seed_from_u64(seed * 10 + id),
                )
                .unwrap()
            })
            .collect();
        let mut cluster = Cluster::from_nodes(nodes);

        for _ in 0..6 {
            let leader = cluster.run_until_leader(1_000);
            cluster.isolated.clear();
            cluster.isolated.insert(leader);
            if rng.random_bool(0.5) {
                cluster.isolated.insert(rng.random_range(1..=5));
            }
        }
        assert!(cluster.leaders_by_term.len() >= 6);
    }
}

/// A configuration error names the field at fault, and `Node::new` refuses it.
#[test]
fn config_validation_errors_name_the_field() {
    type Spoil = fn(&mut Config);
    let cases: [(Spoil, &str); 6] = [
        (|c| c.voters.clear(), "voters"),
        (|c| c.voters.push(1), "voters"),
        (|c| c.election_timeout_min = 0, "election_timeout_min"),
        (
            |c| c.election_timeout_max = c.election_timeout_min,
            "election_timeout_max",
        ),
        (|c| c.heartbeat_interval = 0, "heartbeat_interval"),
        (
            |c| c.heartbeat_interval = c.election_timeout_min,
            "heartbeat_interval",
        ),
    ];

    for (spoil, field) in cases {
        let mut config = Config::new(1, [1, 2, 3]);
        spoil(&mut config);

        let error: ConfigError = config.validate().unwrap_err();
        assert!(error.to_string().starts_with(field), "{field}: {error}");
        let refused = Node::new(
            config,
            HardState::default(),
            pos(0, 0),
            ChaCha8Rng::seed_from_u64(1),
        );
        assert_eq!(refused.unwrap_err(), error);
    }
}

/// Two pre-candidates for the same term grant each other's pre-vote, and the one with
/// the higher id yields: it follows again instead of entering the term, so the two do
/// not split the real vote. The lower id carries on.
#[test]
fn of_two_rival_pre_candidates_the_higher_id_yields() {
    let mut low = node(2, 3, defaults);
    let mut high = node(3, 3, defaults);
    let _ = low.campaign();
    let _ = high.campaign();
    assert_eq!(
        (low.role(), high.role()),
        (Role::PreCandidate, Role::PreCandidate)
    );

    let to_high = high.step(2, vote_request(1, true, pos(0, 0)));
    let to_low = low.step(3, vote_request(1, true, pos(0, 0)));

    assert_eq!(vote_answers(&to_high), vec![(2, true)]);
    assert_eq!(high.role(), Role::Follower);
    assert_eq!(high.term(), 0);
    assert_eq!(vote_answers(&to_low), vec![(3, true)]);
    assert_eq!(low.role(), Role::PreCandidate);
}

/// Servers 2 and 3 time out together in a fresh cluster of three: one real election
/// follows, won by 2, and 3 never enters the term as a candidate.
#[test]
fn simultaneous_timeouts_end_in_one_election_round() {
    let mut cluster = Cluster::new(3, defaults);
    let out = cluster.node(2).campaign();
    cluster.apply(2, out);
    let out = cluster.node(3).campaign();
    cluster.apply(3, out);

    cluster.deliver_all();

    assert_eq!(cluster.leaders(), vec![2]);
    assert_eq!(cluster.node(2).term(), 1);
    let three_campaigned = cluster.events[2].iter().any(|event| {
        matches!(
            event,
            Event::RoleChanged {
                to: Role::Candidate,
                ..
            }
        )
    });
    assert!(!three_campaigned, "{:#?}", cluster.events[2]);
}
