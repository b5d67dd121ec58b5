//! Faster fail-over in the core, one call at a time with exact outputs: crash hints
//! ([`Node::leader_unreachable`]) and leadership transfer ([`Node::transfer_leadership`],
//! [`Message::TimeoutNow`], Raft thesis §3.10).

use raft::{
    AppendRequest, Config, Event, HardState, LogPosition, Message, Node, NodeId, Outbound, Output,
    RefusalReason, Role, Term, TransferError, VoteRequest, VoteResponse,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// ----- helpers -----

fn node(id: NodeId, tweak: impl Fn(&mut Config)) -> Node {
    let mut config = Config::new(id, [1, 2, 3]);
    tweak(&mut config);
    let rng = ChaCha8Rng::seed_from_u64(id);
    Node::new(config, HardState::default(), LogPosition::default(), rng).unwrap()
}

fn defaults(_: &mut Config) {}

fn heartbeat(term: Term) -> Message {
    Message::AppendRequest(AppendRequest {
        term,
        prev_log: LogPosition::default(),
        commit: 0,
    })
}

fn vote_request(term: Term, pre_vote: bool, transfer: bool) -> Message {
    Message::VoteRequest(VoteRequest {
        term,
        pre_vote,
        last_log: LogPosition::default(),
        transfer,
    })
}

fn vote_response(term: Term, pre_vote: bool, granted: bool) -> Message {
    Message::VoteResponse(VoteResponse {
        term,
        pre_vote,
        granted,
    })
}

fn to(to: NodeId, message: Message) -> Outbound {
    Outbound { to, message }
}

/// Server `id` following leader 2 in term 1.
fn follower_of_2(id: NodeId, tweak: impl Fn(&mut Config)) -> Node {
    let mut node = node(id, tweak);
    let _ = node.step(2, heartbeat(1));
    assert_eq!((node.role(), node.leader()), (Role::Follower, Some(2)));
    node
}

/// Server 1 leading term 1 (elected without pre-vote by server 2's vote).
fn leader_1() -> Node {
    let mut node = node(1, |c| c.pre_vote = false);
    let _ = node.campaign();
    let _ = node.step(2, vote_response(1, false, true));
    assert_eq!(node.role(), Role::Leader);
    node
}

// ----- crash hints -----

/// A hint about a peer that is not this follower's leader changes nothing: only the
/// leader's death is worth an early election.
#[test]
fn a_crash_hint_about_a_peer_that_does_not_lead_is_ignored() {
    let mut node = follower_of_2(1, defaults);
    let timeout = node.election_timeout();

    assert_eq!(node.leader_unreachable(3), Output::default());
    assert_eq!(node.leader(), Some(2));
    assert_eq!(node.election_timeout(), timeout);
}

/// With `crash_hint` off, or with pre-vote or check-quorum off (where a false hint
/// could depose a live leader), a hint about the leader is ignored too.
#[test]
fn a_crash_hint_is_ignored_with_the_switch_pre_vote_or_check_quorum_off() {
    for tweak in [
        (|c: &mut Config| c.crash_hint = false) as fn(&mut Config),
        |c: &mut Config| c.pre_vote = false,
        |c: &mut Config| c.check_quorum = false,
    ] {
        let mut node = follower_of_2(1, tweak);
        let timeout = node.election_timeout();

        assert_eq!(node.leader_unreachable(2), Output::default());
        assert_eq!(node.leader(), Some(2));
        assert_eq!(node.election_timeout(), timeout);
    }
}

/// The delay a survivor announced in its `LeaderUnreachable` event.
fn campaign_in(out: &Output) -> u64 {
    out.events
        .iter()
        .find_map(|event| match event {
            Event::LeaderUnreachable { campaign_in, .. } => Some(*campaign_in),
            _ => None,
        })
        .expect("a LeaderUnreachable event")
}

/// A hint about the leader makes the follower forget it (so its lease is gone and it
/// grants pre-votes). Of the two survivors of leader 2, the one in the first slot
/// polls with a pre-vote at once; the other arms its timer for `crash_hint_stagger`
/// ticks, and when the first one's pre-vote reaches it, grants it and stands back.
#[test]
fn a_crash_hint_makes_the_first_survivor_poll_at_once_and_the_second_wait() {
    let mut node = follower_of_2(1, defaults);
    let before = node.step(3, vote_request(2, true, false));
    assert!(before.events.iter().any(|event| matches!(
        event,
        Event::VoteRefused {
            reason: RefusalReason::LeaderActive { leader: 2 },
            ..
        }
    )));

    let mut survivors = [node, follower_of_2(3, defaults)];
    let outs = survivors.each_mut().map(|node| node.leader_unreachable(2));
    let delays = outs.each_ref().map(campaign_in);
    let (first, second) = if delays[0] == 0 { (0, 1) } else { (1, 0) };
    assert_eq!(delays[first], 0, "{delays:?}");
    assert_eq!(delays[second], 2, "{delays:?}");

    let [id_first, id_second] = [first, second].map(|i| if i == 0 { 1 } else { 3 });
    assert_eq!(survivors[first].role(), Role::PreCandidate);
    assert_eq!(
        outs[first].messages,
        vec![
            to(2, vote_request(2, true, false)),
            to(id_second, vote_request(2, true, false))
        ]
    );
    assert_eq!(
        outs[second],
        Output {
            hard_state: None,
            messages: vec![],
            events: vec![
                Event::LeaderChanged {
                    leader: None,
                    term: 1
                },
                Event::LeaderUnreachable {
                    leader: 2,
                    term: 1,
                    campaign_in: 2
                },
            ],
        }
    );
    assert_eq!(survivors[second].leader(), None);
    assert_eq!(survivors[second].election_timeout(), 2);
    assert_eq!(survivors[second].election_elapsed(), 0);

    // Its lease is gone: it grants the first survivor's pre-vote, and stands back to
    // an ordinary timeout so as not to race it.
    let granted = survivors[second].step(id_first, vote_request(2, true, false));
    assert_eq!(
        granted.messages,
        vec![to(id_first, vote_response(2, true, true))]
    );
    let timeout = survivors[second].election_timeout();
    assert!(timeout >= 15, "{timeout}");
}

/// Unheard, the second survivor polls when its slot comes: not a tick before.
#[test]
fn the_second_survivor_polls_when_its_slot_comes() {
    let mut survivors = [follower_of_2(1, defaults), follower_of_2(3, defaults)];
    let outs = survivors.each_mut().map(|node| node.leader_unreachable(2));
    let second = if campaign_in(&outs[0]) == 0 { 1 } else { 0 };
    let node = &mut survivors[second];

    assert!(node.tick().is_empty());
    let polled = node.tick();

    assert_eq!(node.role(), Role::PreCandidate);
    assert_eq!(polled.messages.len(), 2);
    assert!(polled
        .messages
        .iter()
        .all(|outbound| outbound.message == vote_request(2, true, false)));
}

/// For any term and cluster size, the survivors of one leader take distinct slots
/// (0, 1, 2, …, so their delays are `slot × crash_hint_stagger`, capped below the
/// minimum timeout), and which survivor goes first changes with the term.
#[test]
fn survivors_take_distinct_slots_that_change_with_the_term() {
    for size in 3..=9u64 {
        let mut firsts = std::collections::BTreeSet::new();
        for term in 1..=30 {
            let leader = term % size + 1;
            let mut delays = Vec::new();
            for id in (1..=size).filter(|&id| id != leader) {
                let mut config = Config::new(id, 1..=size);
                config.election_timeout_min = 100;
                config.election_timeout_max = 200;
                config.heartbeat_interval = 10;
                config.crash_hint_stagger = 3;
                let rng = ChaCha8Rng::seed_from_u64(id);
                let state = HardState::default();
                let mut node = Node::new(config, state, LogPosition::default(), rng).unwrap();
                let _ = node.step(leader, heartbeat(term));

                let delay = campaign_in(&node.leader_unreachable(leader));
                if delay == 0 {
                    firsts.insert(id);
                }
                delays.push(delay);
            }

            delays.sort_unstable();
            let expected: Vec<u64> = (0..size - 1).map(|slot| slot * 3).collect();
            assert_eq!(delays, expected, "size {size}, term {term}");
        }
        assert!(firsts.len() >= 2, "size {size}: always {firsts:?} first");
    }
}

/// A slot past the minimum timeout waits just below it: a hint never delays an
/// election beyond what a timeout would.
#[test]
fn late_slots_are_capped_below_the_minimum_timeout() {
    let config = Config {
        crash_hint_stagger: 4,
        ..Config::new(1, 1..=7)
    };

    assert_eq!(config.crash_hint_delay(0), 0);
    assert_eq!(config.crash_hint_delay(3), 12);
    assert_eq!(config.crash_hint_delay(4), 14);
    assert_eq!(config.crash_hint_delay(u64::MAX), 14);
}

/// A second hint about the same dead leader (the re-dial refused after the connection
/// closed) does not draw a new delay: the follower no longer follows anyone.
#[test]
fn a_second_crash_hint_about_the_same_leader_is_ignored() {
    let mut node = follower_of_2(1, defaults);
    let _ = node.leader_unreachable(2);
    let timeout = node.election_timeout();

    assert_eq!(node.leader_unreachable(2), Output::default());
    assert_eq!(node.election_timeout(), timeout);
}

/// A false hint is undone by the next heartbeat of the live leader.
#[test]
fn a_heartbeat_after_a_false_crash_hint_restores_the_leader() {
    let mut node = follower_of_2(1, defaults);
    let _ = node.leader_unreachable(2);

    let out = node.step(2, heartbeat(1));

    assert_eq!(node.leader(), Some(2));
    assert!(node.election_timeout() >= 15);
    assert!(out.events.contains(&Event::LeaderChanged {
        leader: Some(2),
        term: 1
    }));
}

// ----- leadership transfer -----

/// A leader asked to transfer sends the target a TimeoutNow in its term and reports it.
#[test]
fn a_transfer_from_the_leader_sends_timeout_now_to_the_target() {
    let mut leader = leader_1();

    let out = leader.transfer_leadership(3).unwrap();

    assert_eq!(
        out,
        Output {
            hard_state: None,
            messages: vec![to(3, Message::TimeoutNow { term: 1 })],
            events: vec![Event::TransferStarted { to: 3, term: 1 }],
        }
    );
    assert_eq!(leader.transfer_target(), Some(3));
    assert_eq!(leader.role(), Role::Leader);
}

/// A transfer is refused, with nothing sent, by a non-leader, to the leader itself, and
/// to a server that does not vote.
#[test]
fn a_transfer_is_refused_by_a_follower_to_self_and_to_a_non_voter() {
    let mut follower = follower_of_2(1, defaults);
    assert_eq!(
        follower.transfer_leadership(3),
        Err(TransferError::NotLeader { leader: Some(2) })
    );

    let mut leader = leader_1();
    assert_eq!(leader.transfer_leadership(1), Err(TransferError::ToSelf(1)));
    assert_eq!(
        leader.transfer_leadership(9),
        Err(TransferError::NotAVoter(9))
    );
    assert_eq!(leader.transfer_target(), None);
}

/// TimeoutNow from the leader makes a follower start a real election at once, even
/// with pre-vote on, with its vote requests flagged as a transfer (thesis §3.10).
#[test]
fn timeout_now_makes_the_target_campaign_at_once_with_the_transfer_flag() {
    let mut node = follower_of_2(3, defaults);

    let out = node.step(2, Message::TimeoutNow { term: 1 });

    assert_eq!(
        out,
        Output {
            hard_state: Some(HardState {
                term: 2,
                voted_for: Some(3)
            }),
            messages: vec![
                to(1, vote_request(2, false, true)),
                to(2, vote_request(2, false, true))
            ],
            events: vec![
                Event::RoleChanged {
                    from: Role::Follower,
                    to: Role::Candidate,
                    term: 2
                },
                Event::LeaderChanged {
                    leader: None,
                    term: 2
                },
                Event::ElectionStarted {
                    term: 2,
                    pre_vote: false,
                    transfer: true
                },
            ],
        }
    );
}

/// A voter that still hears its leader refuses an ordinary vote request (stickiness)
/// but grants one flagged as a transfer.
#[test]
fn a_voter_in_its_lease_grants_a_transfer_flagged_vote() {
    let mut voter = follower_of_2(1, defaults);
    let refused = voter.step(3, vote_request(2, false, false));
    assert_eq!(
        refused.messages,
        vec![to(3, vote_response(1, false, false))]
    );

    let out = voter.step(3, vote_request(2, false, true));

    assert_eq!(
        out,
        Output {
            hard_state: Some(HardState {
                term: 2,
                voted_for: Some(3)
            }),
            messages: vec![to(3, vote_response(2, false, true))],
            events: vec![
                Event::RoleChanged {
                    from: Role::Follower,
                    to: Role::Follower,
                    term: 2
                },
                Event::LeaderChanged {
                    leader: None,
                    term: 2
                },
                Event::VoteGranted {
                    candidate: 3,
                    term: 2,
                    pre_vote: false
                },
            ],
        }
    );
}

/// The old leader itself, which refuses ordinary vote requests while it leads, steps
/// down and votes for the target of its own transfer.
#[test]
fn the_old_leader_grants_its_transfer_target_a_vote() {
    let mut leader = leader_1();
    let _ = leader.transfer_leadership(3).unwrap();

    let out = leader.step(3, vote_request(2, false, true));

    assert_eq!(leader.role(), Role::Follower);
    assert_eq!(leader.transfer_target(), None);
    assert_eq!(out.messages, vec![to(3, vote_response(2, false, true))]);
}

/// TimeoutNow from a server that is not this follower's leader, or from an older term,
/// is ignored.
#[test]
fn timeout_now_from_a_non_leader_or_a_stale_term_is_ignored() {
    let mut node = follower_of_2(1, defaults);
    assert_eq!(
        node.step(3, Message::TimeoutNow { term: 1 }),
        Output::default()
    );

    let _ = node.step(3, heartbeat(2));
    assert_eq!((node.term(), node.leader()), (2, Some(3)));
    assert_eq!(
        node.step(2, Message::TimeoutNow { term: 1 }),
        Output::default()
    );
    assert_eq!(node.role(), Role::Follower);
}

/// A transfer that does not complete within an election timeout is abandoned; the
/// leader keeps leading.
#[test]
fn a_transfer_that_does_not_complete_in_an_election_timeout_is_abandoned() {
    let mut leader = leader_1();
    let _ = leader.transfer_leadership(3).unwrap();
    let max = leader.config().election_timeout_max;

    let mut abandoned = Vec::new();
    for _ in 0..max {
        // Keep the quorum active so that check-quorum does not end the leadership.
        let _ = leader.step(2, Message::AppendResponse(ack()));
        let out = leader.tick();
        abandoned.extend(
            out.events
                .into_iter()
                .filter(|event| matches!(event, Event::TransferAbandoned { .. })),
        );
    }

    assert_eq!(abandoned, vec![Event::TransferAbandoned { to: 3, term: 1 }]);
    assert_eq!(leader.role(), Role::Leader);
    assert_eq!(leader.transfer_target(), None);
}

fn ack() -> raft::AppendResponse {
    raft::AppendResponse {
        term: 1,
        success: true,
        match_index: 0,
    }
}

/// Ticks a hinted follower until its slot comes and it polls with a pre-vote (the
/// first survivor already does).
fn tick_into_pre_vote(node: &mut Node) {
    if node.role() != Role::PreCandidate {
        for _ in 0..node.election_timeout() {
            let _ = node.tick();
        }
    }
    assert_eq!(node.role(), Role::PreCandidate);
}

/// After a crash hint, a real vote refused by a majority (the survivors split their
/// votes) is retried after a short delay, while a refused pre-vote (someone still
/// hears a leader) returns the follower to ordinary timeouts. The real election itself
/// runs on an ordinary timeout.
#[test]
fn a_split_vote_after_a_crash_hint_is_retried_soon_but_a_refused_pre_vote_is_not() {
    let mut split = follower_of_2(1, defaults);
    let _ = split.leader_unreachable(2);
    tick_into_pre_vote(&mut split);
    let _ = split.step(3, vote_response(2, true, true));
    assert_eq!(split.role(), Role::Candidate);
    // The real election is given a whole timeout: its round waits for disk syncs.
    let timeout = split.election_timeout();
    assert!((15..30).contains(&timeout), "{timeout}");
    let _ = split.step(2, vote_response(2, false, false));
    let _ = split.step(3, vote_response(2, false, false));
    assert_eq!(split.role(), Role::Follower);
    assert!(
        split.election_timeout() <= 2,
        "{}",
        split.election_timeout()
    );

    let mut refused = follower_of_2(1, defaults);
    let _ = refused.leader_unreachable(2);
    tick_into_pre_vote(&mut refused);
    let _ = refused.step(2, vote_response(1, true, false));
    let _ = refused.step(3, vote_response(1, true, false));
    assert_eq!(refused.role(), Role::Follower);
    assert!(
        refused.election_timeout() >= 15,
        "{}",
        refused.election_timeout()
    );
}

/// A zero stagger (every survivor in one slot) is refused by validation, naming the
/// field.
#[test]
fn a_zero_crash_hint_stagger_is_refused() {
    let config = Config {
        crash_hint_stagger: 0,
        ..Config::new(1, [1, 2, 3])
    };

    let error = config.validate().unwrap_err();

    assert!(
        error.to_string().starts_with("crash_hint_stagger"),
        "{error}"
    );
}
