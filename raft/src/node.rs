//! One Raft server's election logic as a pure state machine.
//!
//! [`Node`] holds no clock, socket or thread. The driver calls [`Node::tick`] once per
//! tick of logical time, [`Node::step`] for every message that arrives and
//! [`Node::campaign`] to start an election on request; each call returns an [`Output`]
//! with the state to persist, the messages to send and what happened.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rand::{Rng, RngCore};
use tracing::{debug, info, trace, warn};

use crate::config::{Config, ConfigError};
use crate::message::{
    AppendRequest, AppendResponse, LogPosition, Message, NodeId, Term, VoteRequest, VoteResponse,
};
use crate::output::{Event, Outbound, Output, RefusalReason, Role};
use crate::storage::HardState;
use crate::transfer::TransferError;

/// One Raft server's leader-election state machine (Raft paper §5.1, §5.2, §5.4.1;
/// pre-vote and check-quorum from Ongaro's thesis §9.6 and §4.2.3).
///
/// A node always starts as a follower that knows no leader, whatever term it restores.
///
/// Known gaps: the log is not replicated yet (the last log position is fixed at creation
/// and only feeds the up-to-date check); membership changes are not supported yet.
pub struct Node {
    config: Config,
    term: Term,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    last_log: LogPosition,

    /// Ticks since the election timer was last reset. For a leader it counts towards
    /// the next check-quorum instead.
    election_elapsed: u64,
    /// The randomized election timeout drawn at the last reset.
    election_timeout: u64,
    /// Ticks since the leader last sent heartbeats.
    heartbeat_elapsed: u64,
    /// The answers of this election round, by voter: `true` for a grant. The
    /// (pre-)candidate's own vote is in it.
    votes: BTreeMap<NodeId, bool>,
    /// The peers a leader heard from since its last check-quorum.
    recently_active: BTreeSet<NodeId>,
    /// A leader's transfer in progress: the target and the ticks since it was asked.
    transfer: Option<(NodeId, u64)>,
    /// The leader a crash hint reported gone, until a leader is known again or a
    /// majority refuses this server: meanwhile every election timer is this server's
    /// slot among the survivors, so that a split vote among them costs a few ticks,
    /// not a whole timeout.
    hinted: Option<NodeId>,

    rng: Box<dyn RngCore + Send>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.config.id)
            .field("role", &self.role)
            .field("term", &self.term)
            .field("voted_for", &self.voted_for)
            .field("leader", &self.leader)
            .field("last_log", &self.last_log)
            .field("election_elapsed", &self.election_elapsed)
            .field("election_timeout", &self.election_timeout)
            .field("heartbeat_elapsed", &self.heartbeat_elapsed)
            .field("votes", &self.votes)
            .field("recently_active", &self.recently_active)
            .field("transfer", &self.transfer)
            .field("hinted", &self.hinted)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Restores a server from its persisted state. `rng` draws the randomized election
    /// timeouts, so a seeded generator makes the node fully deterministic.
    ///
    /// The node starts as a follower that knows no leader, in `state.term`, keeping
    /// `state.voted_for` so that it cannot vote twice in that term (§5.2).
    ///
    /// # Errors
    ///
    /// Returns the first setting [`Config::validate`] refuses.
    pub fn new(
        config: Config,
        state: HardState,
        last_log: LogPosition,
        rng: impl RngCore + Send + 'static,
    ) -> Result<Node, ConfigError> {
        config.validate()?;

        let mut node = Node {
            config,
            term: state.term,
            voted_for: state.voted_for,
            role: Role::Follower,
            leader: None,
            last_log,
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            recently_active: BTreeSet::new(),
            transfer: None,
            hinted: None,
            rng: Box::new(rng),
        };
        node.reset_election_timer();
        Ok(node)
    }

    /// Advances logical time by one tick.
    ///
    /// A leader sends heartbeats every `heartbeat_interval` ticks and, with check-quorum,
    /// checks every `election_timeout_min` ticks that a majority (itself included) was
    /// heard from since the previous check, stepping down otherwise; a leader cut off
    /// from everyone therefore steps down within two minimum election timeouts. Any
    /// other voter starts an election when its randomized timeout elapses; a single-voter
    /// cluster elects itself on the first tick.
    pub fn tick(&mut self) -> Output {
        let before = self.hard_state();
        let mut out = Output::default();

        if self.role == Role::Leader {
            self.tick_leader(&mut out);
        } else {
            self.tick_election(&mut out);
        }

        self.finish(before, out)
    }

    /// Handles one message `message` from peer `from`.
    pub fn step(&mut self, from: NodeId, message: Message) -> Output {
        let before = self.hard_state();
        let mut out = Output::default();

        if from == self.config.id {
            warn!(node = self.config.id, "ignored a message from itself");
            return out;
        }
        self.step_message(from, message, &mut out);

        self.finish(before, out)
    }

    /// Starts an election now, as if the election timer had elapsed: with pre-vote a
    /// pre-vote round, otherwise a real election in the next term.
    ///
    /// Does nothing on a leader, and nothing on a non-voter (which never campaigns).
    pub fn campaign(&mut self) -> Output {
        let before = self.hard_state();
        let mut out = Output::default();

        if self.role == Role::Leader {
            debug!(
                node = self.config.id,
                term = self.term,
                "already leader; not campaigning"
            );
            return out;
        }
        if !self.config.is_voter() {
            warn!(
                node = self.config.id,
                "cannot campaign: this server is not a voter"
            );
            return out;
        }
        self.start_election(&mut out);

        self.finish(before, out)
    }

    /// Tells a follower that `peer`'s process looks dead: its connection closed or a
    /// re-dial was refused (a *crash hint*).
    ///
    /// When `peer` is the leader this follower follows, and [`Config::crash_hint`],
    /// [`Config::pre_vote`] and [`Config::check_quorum`] are all on, the follower
    /// forgets that leader, which drops its lease on it (it will grant pre-votes to
    /// others), and campaigns after [`Config::crash_hint_delay`] of its slot among the
    /// survivors: the first survivor at once (the pre-vote is in the returned
    /// [`Output`]), the next `crash_hint_stagger` ticks later, and so on. The second
    /// survivor therefore hears the first one's pre-vote before its own timer fires,
    /// grants it and stands back, instead of splitting the vote. Otherwise the hint is
    /// ignored: it may be about a peer that does not lead, or arrive on a server that
    /// is not a follower.
    ///
    /// A hint can be false: one connection broke while the leader lives. That is
    /// harmless because the follower then only polls with a pre-vote (thesis §9.6),
    /// which the leader and the other followers refuse while they still hear from each
    /// other (their leases, §4.2.3, kept only with check-quorum); the next heartbeat
    /// makes it follow the leader again. Without pre-vote the follower would enter a
    /// new term at once, and without check-quorum nobody would refuse its pre-vote:
    /// either way its higher term would depose the live leader, so hints are ignored
    /// then. (Election safety never depends on hints: a vote is still one per term.)
    pub fn leader_unreachable(&mut self, peer: NodeId) -> Output {
        let before = self.hard_state();
        let mut out = Output::default();

        let follows_peer = self.role == Role::Follower && self.leader == Some(peer);
        let enabled = self.config.crash_hint && self.config.pre_vote && self.config.check_quorum;
        if !follows_peer || !enabled || !self.config.is_voter() {
            debug!(
                node = self.config.id,
                peer, follows_peer, enabled, "crash hint ignored"
            );
            return out;
        }

        self.set_leader(None, &mut out);
        self.hinted = Some(peer);
        let campaign_in = self.config.crash_hint_delay(self.survivor_slot(peer));
        self.reset_election_timer();

        info!(
            node = self.config.id,
            term = self.term,
            leader = peer,
            campaign_in,
            "leader unreachable, campaigning soon"
        );
        out.events.push(Event::LeaderUnreachable {
            leader: peer,
            term: self.term,
            campaign_in,
        });

        // The first survivor in the order loses nothing by waiting for a tick.
        if campaign_in == 0 {
            self.start_election(&mut out);
        }

        self.finish(before, out)
    }

    /// Asks this leader to hand its leadership to `to` (Raft thesis §3.10): it sends
    /// `to` a [`Message::TimeoutNow`], on which `to` starts an election at once whose
    /// vote requests voters grant despite leader stickiness. The leader keeps leading
    /// (and heartbeating) until it sees the higher term; a transfer that has not
    /// completed within `election_timeout_max` ticks is abandoned.
    ///
    /// Every log is empty until replication exists, so the target is always up to date;
    /// with replication the leader would first bring its log up to date (§3.10).
    ///
    /// # Errors
    ///
    /// [`TransferError`] when this server is not the leader, or `to` is itself or not a
    /// voter; nothing is sent then.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<Output, TransferError> {
        let before = self.hard_state();
        let mut out = Output::default();

        if self.role != Role::Leader {
            return Err(TransferError::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.config.id {
            return Err(TransferError::ToSelf(to));
        }
        if !self.config.voters.contains(&to) {
            return Err(TransferError::NotAVoter(to));
        }

        self.transfer = Some((to, 0));
        info!(
            node = self.config.id,
            term = self.term,
            to,
            "leadership transfer started"
        );
        out.events.push(Event::TransferStarted {
            to,
            term: self.term,
        });
        self.send(to, Message::TimeoutNow { term: self.term }, &mut out);

        Ok(self.finish(before, out))
    }

    /// The server a leader is handing its leadership to, while the transfer is pending.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|(to, _)| to)
    }

    /// This server's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The role this server plays now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The latest term this server has seen.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader of the current term, if this server knows it (itself when leader).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The term and vote that must be persisted.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
        }
    }

    /// The settings this server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The position of this server's last log entry, as given at creation.
    pub fn last_log(&self) -> LogPosition {
        self.last_log
    }

    /// Ticks since the last election-timer reset: for a follower, the time since it last
    /// heard from its leader or granted a vote. For a leader, the ticks since its last
    /// check-quorum.
    pub fn election_elapsed(&self) -> u64 {
        self.election_elapsed
    }

    /// The currently drawn randomized election timeout, in ticks.
    pub fn election_timeout(&self) -> u64 {
        self.election_timeout
    }

    /// Forces the current randomized election timeout, for tests and simulations. The
    /// next timer reset draws a random value again. A value at or below
    /// [`Node::election_elapsed`] makes a follower's next tick start an election; a
    /// leader ignores it.
    pub fn set_election_timeout(&mut self, ticks: u64) {
        self.election_timeout = ticks;
    }

    /// Sets `Output::hard_state` when the term or vote changed during the call, so the
    /// driver persists them before sending the messages that depend on them (§5.2,
    /// Figure 2: "updated on stable storage before responding to RPCs").
    fn finish(&self, before: HardState, mut out: Output) -> Output {
        let after = self.hard_state();
        if after != before {
            out.hard_state = Some(after);
        }
        out
    }

    // ----- timers -----

    fn tick_election(&mut self, out: &mut Output) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);

        if !self.config.is_voter() {
            return;
        }

        // A lone voter is its own majority: waiting for a timeout would only delay it.
        let alone = self.config.voters.len() == 1;
        if alone || self.election_elapsed >= self.election_timeout {
            self.start_election(out);
        }
    }

    fn tick_leader(&mut self, out: &mut Output) {
        // Without check-quorum nothing resets this counter; it must not overflow.
        self.election_elapsed = self.election_elapsed.saturating_add(1);

        // A transfer whose target never won (it crashed, or lost the TimeoutNow) must
        // not hang: after an election timeout this leader simply goes on leading.
        if let Some((to, elapsed)) = self.transfer.as_mut() {
            *elapsed += 1;
            if *elapsed >= self.config.election_timeout_max {
                let to = *to;
                self.transfer = None;
                info!(
                    node = self.config.id,
                    term = self.term,
                    to,
                    "leadership transfer abandoned"
                );
                out.events.push(Event::TransferAbandoned {
                    to,
                    term: self.term,
                });
            }
        }

        if self.config.check_quorum && self.election_elapsed >= self.config.election_timeout_min {
            self.election_elapsed = 0;
            if !self.quorum_active() {
                info!(
                    node = self.config.id,
                    term = self.term,
                    "quorum lost, stepping down"
                );
                out.events.push(Event::QuorumLost { term: self.term });
                self.become_follower(self.term, None, out);
                return;
            }
            self.recently_active.clear();
        }

        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.config.heartbeat_interval {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(out);
        }
    }

    /// Whether a majority of voters, this leader included, was heard from since the
    /// last check (thesis §6.2 / check-quorum).
    fn quorum_active(&self) -> bool {
        let heard = self
            .config
            .voters
            .iter()
            .filter(|&&voter| voter == self.config.id || self.recently_active.contains(&voter))
            .count();
        heard >= self.config.quorum()
    }

    /// Restarts the election timer: with a fresh random timeout from
    /// `[election_timeout_min, election_timeout_max)` normally (§5.2); while a crash
    /// hint says the leader is gone, with this server's survivor slot (at least one
    /// tick), except in a real election. The slots only speed up elections among
    /// servers that all lost their leader; timers never decide safety, votes do.
    ///
    /// A candidate keeps the whole timeout even when hinted: its round waits for two
    /// disk syncs (its own vote, then each voter's) that can take longer than a few
    /// ticks on a busy machine, and a candidate that gave up after its slot would
    /// start the next term before the grants of this one arrived, again and again.
    /// A pre-vote round writes nothing, so a short retry costs nothing there.
    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let hinted = self.hinted.filter(|_| self.role != Role::Candidate);
        self.election_timeout = if let Some(gone) = hinted {
            self.config
                .crash_hint_delay(self.survivor_slot(gone))
                .max(1)
        } else {
            self.rng
                .random_range(self.config.election_timeout_min..self.config.election_timeout_max)
        };
    }

    /// This server's place, from 0, in the order in which the voters other than `gone`
    /// campaign after a crash hint about `gone`.
    ///
    /// Every survivor of the same leader is in the same term and knows the same voters,
    /// so each computes the same order and takes a slot no other takes: the survivors'
    /// campaigns never start together, as random delays drawn from a few ticks would.
    /// Sorting by a hash of the term rather than by id moves the first slot from one
    /// failover to the next, so a slow server is not always the one tried first.
    fn survivor_slot(&self, gone: NodeId) -> u64 {
        let key = |id: NodeId| (mix(self.term ^ mix(id)), id);
        let mine = key(self.config.id);
        let ahead = self
            .config
            .voters
            .iter()
            .filter(|&&voter| voter != gone && key(voter) < mine)
            .count();
        ahead as u64
    }

    /// The leader this server heard from less than a minimum election timeout ago, if
    /// check-quorum is on: the server keeps following it and refuses votes (leader
    /// stickiness, thesis §4.2.3). A leader with check-quorum always holds its own lease:
    /// it steps down by itself once a majority goes silent.
    fn lease_holder(&self) -> Option<NodeId> {
        let fresh = self.election_elapsed < self.config.election_timeout_min;
        if self.config.check_quorum && fresh {
            self.leader
        } else {
            None
        }
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.config.id;
        self.config
            .voters
            .iter()
            .copied()
            .filter(move |&voter| voter != me)
    }

    fn send(&self, to: NodeId, message: Message, out: &mut Output) {
        trace!(node = self.config.id, to, payload = ?message, "sending");
        out.messages.push(Outbound { to, message });
    }

    fn broadcast_heartbeat(&self, out: &mut Output) {
        let heartbeat = AppendRequest {
            term: self.term,
            prev_log: self.last_log,
            commit: 0,
        };
        for peer in self.peers() {
            self.send(peer, Message::AppendRequest(heartbeat), out);
        }
    }

    // ----- role transitions -----

    /// Becomes a follower in `term` (at least the current term), following `leader`.
    /// A higher term clears the vote (§5.1: one vote per term, the term is new).
    ///
    /// # Panics
    ///
    /// On "follower → follower" in the same term, and on a `term` below the current
    /// one: both are bugs in the caller, not protocol events.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>, out: &mut Output) {
        assert!(
            term >= self.term,
            "illegal transition {} → follower: term {term} is below the current term {}",
            self.role,
            self.term
        );
        assert!(
            !(self.role == Role::Follower && term == self.term),
            "illegal transition follower → follower within term {term}"
        );

        let from = self.role;
        if leader.is_some() {
            self.hinted = None;
        }
        if term > self.term {
            // A vote belongs to one term (Figure 2: votedFor "in current term"): the new
            // term starts with the vote free. `finish` persists both before any reply.
            self.term = term;
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.reset_round();
        self.reset_election_timer();

        info!(node = self.config.id, term, leader, "became follower");
        out.events.push(Event::RoleChanged {
            from,
            to: Role::Follower,
            term,
        });
        self.set_leader(leader, out);
    }

    /// Becomes a pre-candidate and polls every voter with a pre-vote for the next term
    /// (thesis §9.6). Neither the term nor the vote changes.
    ///
    /// # Panics
    ///
    /// On "leader → pre-candidate": a leader never campaigns.
    fn become_pre_candidate(&mut self, out: &mut Output) {
        assert!(
            self.role != Role::Leader,
            "illegal transition leader → pre-candidate"
        );

        let from = self.role;
        self.role = Role::PreCandidate;
        self.reset_round();
        self.reset_election_timer();

        let term = self.term;
        info!(node = self.config.id, term, "became pre-candidate");
        out.events.push(Event::RoleChanged {
            from,
            to: Role::PreCandidate,
            term,
        });
        self.set_leader(None, out);

        self.request_votes(self.term + 1, true, false, out);
    }

    /// Becomes a candidate in the next term, votes for itself and asks every voter for
    /// its vote (§5.2). The new term and the self-vote are persisted in the same
    /// [`Output`] as the requests.
    ///
    /// # Panics
    ///
    /// On "leader → candidate": a leader never campaigns.
    fn become_candidate(&mut self, transfer: bool, out: &mut Output) {
        assert!(
            self.role != Role::Leader,
            "illegal transition leader → candidate"
        );

        let from = self.role;
        self.role = Role::Candidate;
        self.term += 1;
        self.voted_for = Some(self.config.id);
        self.reset_round();
        self.reset_election_timer();

        let term = self.term;
        info!(node = self.config.id, term, "became candidate");
        out.events.push(Event::RoleChanged {
            from,
            to: Role::Candidate,
            term,
        });
        self.set_leader(None, out);

        self.request_votes(self.term, false, transfer, out);
    }

    /// Becomes the leader of the current term and asserts it at once with a heartbeat to
    /// every peer (§5.2).
    ///
    /// # Panics
    ///
    /// On any transition but "candidate → leader": only an election makes a leader.
    fn become_leader(&mut self, out: &mut Output) {
        assert!(
            self.role == Role::Candidate,
            "illegal transition {} → leader: only a candidate can become leader",
            self.role
        );

        let votes: Vec<NodeId> = self.granted_votes();
        self.role = Role::Leader;
        self.reset_round();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;

        let term = self.term;
        info!(node = self.config.id, term, votes = ?votes, "became leader");
        out.events.push(Event::RoleChanged {
            from: Role::Candidate,
            to: Role::Leader,
            term,
        });
        self.set_leader(Some(self.config.id), out);

        self.broadcast_heartbeat(out);
    }

    /// Forgets the per-round state: the tally of an election, and the activity and
    /// pending transfer a leader recorded.
    fn reset_round(&mut self) {
        self.votes.clear();
        self.recently_active.clear();
        self.transfer = None;
    }

    fn set_leader(&mut self, leader: Option<NodeId>, out: &mut Output) {
        if leader.is_some() {
            // A leader is known again: the hint has served its purpose.
            self.hinted = None;
        }
        if self.leader != leader {
            self.leader = leader;

            // A leader logs its own election; a follower says whom it now follows, so an
            // operator reading one server's log sees every change of leadership.
            if let Some(leader) = leader.filter(|&l| l != self.config.id) {
                info!(
                    node = self.config.id,
                    term = self.term,
                    leader,
                    "following leader"
                );
            }
            out.events.push(Event::LeaderChanged {
                leader,
                term: self.term,
            });
        }
    }

    // ----- elections -----

    fn start_election(&mut self, out: &mut Output) {
        if self.config.pre_vote {
            self.become_pre_candidate(out);
        } else {
            self.become_candidate(false, out);
        }
    }

    /// Sends a (pre-)vote request for `term` to every peer, records the node's own vote
    /// and counts at once, which elects a single-voter cluster immediately.
    fn request_votes(&mut self, term: Term, pre_vote: bool, transfer: bool, out: &mut Output) {
        info!(
            node = self.config.id,
            term, pre_vote, transfer, "election started"
        );
        out.events.push(Event::ElectionStarted {
            term,
            pre_vote,
            transfer,
        });

        let request = VoteRequest {
            term,
            pre_vote,
            last_log: self.last_log,
            transfer,
        };
        for peer in self.peers() {
            self.send(peer, Message::VoteRequest(request), out);
        }

        self.votes.insert(self.config.id, true);
        self.count_votes(out);
    }

    fn granted_votes(&self) -> Vec<NodeId> {
        self.votes
            .iter()
            .filter(|(_, &granted)| granted)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Records one voter's answer (only its first answer in a round counts) and decides
    /// the round if a majority agrees.
    fn record_vote(&mut self, from: NodeId, granted: bool, out: &mut Output) {
        if !self.config.voters.contains(&from) {
            debug!(
                node = self.config.id,
                from, "ignored a vote from a non-voter"
            );
            return;
        }
        self.votes.entry(from).or_insert(granted);
        self.count_votes(out);
    }

    /// Decides the round once a majority of voters agrees (§5.2): a majority of grants
    /// moves a pre-candidate to candidate and a candidate to leader; a majority of
    /// refusals sends either back to follower in its term.
    fn count_votes(&mut self, out: &mut Output) {
        let pre_vote = match self.role {
            Role::PreCandidate => true,
            Role::Candidate => false,
            Role::Follower | Role::Leader => return,
        };
        let granted = self.votes.values().filter(|&&granted| granted).count();
        let refused = self.votes.len() - granted;
        let quorum = self.config.quorum();

        if granted >= quorum && pre_vote {
            self.become_candidate(false, out);
        } else if granted >= quorum {
            let votes = self.granted_votes();
            out.events.push(Event::ElectionWon {
                term: self.term,
                votes,
            });
            self.become_leader(out);
        } else if refused >= quorum {
            let term = if pre_vote { self.term + 1 } else { self.term };
            // A majority refused a pre-vote: a leader may well be alive (a false hint),
            // or no quorum is reachable; either way, back to ordinary timeouts. A real
            // vote refused by a majority is a split vote among survivors: keep the
            // short timer so that it costs a few ticks.
            if pre_vote {
                self.hinted = None;
            }
            info!(node = self.config.id, term, pre_vote, "election lost");
            out.events.push(Event::ElectionLost { term, pre_vote });
            self.become_follower(self.term, None, out);
        }
    }

    // ----- messages -----

    fn step_message(&mut self, from: NodeId, message: Message, out: &mut Output) {
        let term = message.term();

        if term > self.term && !self.step_higher_term(from, &message, out) {
            return;
        }
        if term < self.term {
            self.step_lower_term(from, &message, out);
            return;
        }

        if self.role == Role::Leader && term == self.term {
            // Any message of the leader's own term proves the peer is reachable.
            self.recently_active.insert(from);
        }

        match message {
            Message::VoteRequest(request) => self.handle_vote_request(from, request, out),
            Message::VoteResponse(response) => self.handle_vote_response(from, response, out),
            Message::AppendRequest(request) => self.handle_append_request(from, request, out),
            Message::AppendResponse(_) => {
                trace!(node = self.config.id, from, "append response");
            }
            Message::TimeoutNow { term } => self.handle_timeout_now(from, term, out),
        }
    }

    /// Applies the rule "a higher term makes the receiver a follower in it" (§5.1), with
    /// the exceptions of pre-vote and leader stickiness. Returns whether the message
    /// should still be handled.
    fn step_higher_term(&mut self, from: NodeId, message: &Message, out: &mut Output) -> bool {
        match message {
            Message::VoteRequest(request) => {
                // Leader stickiness (thesis §4.2.3): while a live leader is heard from,
                // a vote request must not disturb the cluster, so the receiver neither
                // adopts its term nor grants it. A leadership transfer bypasses this
                // check (thesis §3.10): the leader itself asked for the election, so
                // it disturbs nobody. Safety never rested on the lease: the vote is
                // still one per term and needs an up-to-date log (§5.2, §5.4.1).
                let lease = self.lease_holder().filter(|_| !request.transfer);
                if let Some(leader) = lease {
                    let reason = RefusalReason::LeaderActive { leader };
                    self.refuse_vote(from, *request, reason, out);
                    return false;
                }

                // A pre-vote request carries a term its sender has not entered: the
                // receiver's term must not move (thesis §9.6).
                if !request.pre_vote {
                    self.become_follower(request.term, None, out);
                }
                true
            }
            Message::VoteResponse(response) if response.pre_vote && response.granted => {
                // A granted pre-vote echoes the term the pre-candidate would campaign
                // in; it says nothing about a newer term existing.
                true
            }
            Message::AppendRequest(request) => {
                self.become_follower(request.term, Some(from), out);
                true
            }
            Message::TimeoutNow { term } => {
                // Only the leader of a term sends TimeoutNow in it, like a heartbeat:
                // the receiver follows it in that term, then honours the hand-over.
                self.become_follower(*term, Some(from), out);
                true
            }
            Message::VoteResponse(_) | Message::AppendResponse(_) => {
                // Includes a refused pre-vote with a higher term (the pre-candidate is
                // behind and catches up) and an append response from a server that
                // moved on, which deposes a stale leader (etcd's stuck-candidate fix).
                self.become_follower(message.term(), None, out);
                true
            }
        }
    }

    /// Handles a message from an older term: it is ignored, except that the sender
    /// learns the current term when that helps the cluster elect a leader.
    fn step_lower_term(&mut self, from: NodeId, message: &Message, out: &mut Output) {
        match message {
            Message::AppendRequest(_) => {
                // A deposed leader (or one cut off by a partition) learns the new term and
                // steps down; without the answer it would keep sending heartbeats, and
                // a candidate it sticks to could never win (check-quorum liveness).
                debug!(
                    node = self.config.id,
                    from, "stale append request; answering"
                );
                let response = AppendResponse {
                    term: self.term,
                    success: false,
                    match_index: 0,
                };
                self.send(from, Message::AppendResponse(response), out);
            }
            Message::VoteRequest(request) => {
                // "Reply false if term < currentTerm" (§5.1, Figure 2). The answer carries
                // the higher term so a lagging (pre-)candidate can catch up.
                self.refuse_vote(from, *request, RefusalReason::StaleTerm, out);
            }
            Message::VoteResponse(_) | Message::AppendResponse(_) | Message::TimeoutNow { .. } => {
                debug!(
                    node = self.config.id,
                    from,
                    term = message.term(),
                    "ignored stale message"
                );
            }
        }
    }

    /// Decides a vote or pre-vote at the request's term, or at a lower own term for a
    /// pre-vote (§5.2, §5.4.1, thesis §9.6).
    fn handle_vote_request(&mut self, from: NodeId, request: VoteRequest, out: &mut Output) {
        match self.vote_refusal(from, &request) {
            Some(reason) => self.refuse_vote(from, request, reason, out),
            None => self.grant_vote(from, request, out),
        }
    }

    /// Why this server may not give its vote (or pre-vote) to `candidate`, if it may not.
    fn vote_refusal(&self, candidate: NodeId, request: &VoteRequest) -> Option<RefusalReason> {
        // One vote per term, first come first served (§5.2): a voter may repeat its vote
        // for the same candidate, or vote when it has neither voted nor seen a leader in
        // this term. A pre-vote for a later term binds nothing, so it only needs the
        // term to be ahead.
        let repeat = self.voted_for == Some(candidate);
        let pre_vote_ahead = request.pre_vote && request.term > self.term;
        if !repeat && !pre_vote_ahead {
            if self.role == Role::Leader {
                return Some(RefusalReason::IsLeader);
            }
            if let Some(voted_for) = self.voted_for {
                return Some(RefusalReason::AlreadyVoted { voted_for });
            }
            if let Some(leader) = self.leader {
                return Some(RefusalReason::LeaderActive { leader });
            }
        }

        // Election restriction (§5.4.1): only a candidate whose log is at least as up to
        // date as the voter's may win, so every leader holds all committed entries.
        if request.last_log < self.last_log {
            return Some(RefusalReason::LogBehind);
        }
        None
    }

    fn grant_vote(&mut self, from: NodeId, request: VoteRequest, out: &mut Output) {
        let pre_vote = request.pre_vote;

        // A hinted follower that endorses another survivor stands back: it returns to
        // ordinary timeouts, so that the followers of a dead leader do not keep racing
        // each other every few ticks. Only servers already campaigning keep the short
        // retries. (A pre-vote grant otherwise changes nothing, thesis §9.6.)
        let stand_back = self.hinted.is_some() && self.role == Role::Follower;
        if stand_back {
            self.hinted = None;
        }
        if !pre_vote {
            // The vote is recorded here and persisted by `finish` in the same Output as
            // the response: the driver writes it to disk before answering (§5.2).
            self.voted_for = Some(from);
        }
        if !pre_vote || stand_back {
            self.reset_election_timer();
        }

        info!(
            node = self.config.id,
            term = request.term,
            candidate = from,
            pre_vote,
            "vote granted"
        );
        out.events.push(Event::VoteGranted {
            candidate: from,
            term: request.term,
            pre_vote,
        });

        let response = VoteResponse {
            term: request.term,
            pre_vote,
            granted: true,
        };
        self.send(from, Message::VoteResponse(response), out);

        // Two servers whose timers fired within a message delay of each other are both
        // pre-candidates for the same term and grant each other's pre-vote; left alone
        // both would enter that term, each voting for itself, and split the vote until
        // another timeout. The one with the higher id yields: it goes back to following
        // (with a fresh timer), while the lower id, which it has just endorsed, goes on.
        // Both sides decide alike from the ids, so exactly one yields.
        let rival = pre_vote
            && self.role == Role::PreCandidate
            && request.term == self.term + 1
            && from < self.config.id;
        if rival {
            info!(
                node = self.config.id,
                term = self.term,
                candidate = from,
                "yielded to a rival pre-candidate"
            );
            self.become_follower(self.term, None, out);
        }
    }

    fn refuse_vote(
        &mut self,
        from: NodeId,
        request: VoteRequest,
        reason: RefusalReason,
        out: &mut Output,
    ) {
        let pre_vote = request.pre_vote;
        info!(
            node = self.config.id,
            term = request.term,
            candidate = from,
            pre_vote,
            reason = %reason,
            "vote refused"
        );
        out.events.push(Event::VoteRefused {
            candidate: from,
            term: request.term,
            pre_vote,
            reason,
        });

        // The refusal carries the voter's own term: a candidate behind it catches up,
        // one ahead of it ignores the answer as stale.
        let response = VoteResponse {
            term: self.term,
            pre_vote,
            granted: false,
        };
        self.send(from, Message::VoteResponse(response), out);
    }

    fn handle_vote_response(&mut self, from: NodeId, response: VoteResponse, out: &mut Output) {
        let counts = match self.role {
            // A pre-candidate at term T asked for T + 1: grants echo T + 1, refusals carry
            // the voter's term, which is T here (a higher one already made it follow).
            Role::PreCandidate if response.pre_vote => {
                if response.granted {
                    response.term == self.term + 1
                } else {
                    response.term == self.term
                }
            }
            Role::Candidate if !response.pre_vote => response.term == self.term,
            _ => false,
        };

        if counts {
            self.record_vote(from, response.granted, out);
        } else {
            trace!(
                node = self.config.id,
                from,
                ?response,
                "ignored vote response"
            );
        }
    }

    /// Starts a real election at once, skipping pre-vote, when the leader this follower
    /// follows in `term` hands its leadership over (thesis §3.10). Anything else is a
    /// stale or misdirected hand-over and is ignored.
    fn handle_timeout_now(&mut self, from: NodeId, term: Term, out: &mut Output) {
        let from_leader = self.role == Role::Follower && self.leader == Some(from);
        if !from_leader || !self.config.is_voter() {
            debug!(
                node = self.config.id,
                from,
                term,
                role = %self.role,
                "ignored timeout-now"
            );
            return;
        }
        self.become_candidate(true, out);
    }

    fn handle_append_request(&mut self, from: NodeId, request: AppendRequest, out: &mut Output) {
        match self.role {
            Role::Leader => {
                // Two leaders in one term would mean election safety is broken (§5.2).
                warn!(
                    node = self.config.id,
                    term = self.term,
                    other = from,
                    "append request from another leader of this term; ignored"
                );
                return;
            }
            Role::Candidate | Role::PreCandidate => {
                // A leader of this term exists: the election is over (§5.2).
                self.become_follower(request.term, Some(from), out);
            }
            Role::Follower => {
                self.set_leader(Some(from), out);
                self.reset_election_timer();
            }
        }

        // Entries are not replicated yet, so there is nothing to check the previous
        // position against: every heartbeat of the current leader is accepted and the
        // follower claims only the empty prefix (index 0) in common.
        let response = AppendResponse {
            term: self.term,
            success: true,
            match_index: 0,
        };
        self.send(from, Message::AppendResponse(response), out);
    }
}

/// SplitMix64's finalizer: a fixed, well-spread hash of a 64-bit value, the same on
/// every server, so that survivors agree on their order without exchanging anything.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn config(id: NodeId, voters: &[NodeId], pre_vote: bool, check_quorum: bool) -> Config {
        Config {
            pre_vote,
            check_quorum,
            ..Config::new(id, voters.iter().copied())
        }
    }

    fn node(config: Config) -> Node {
        let rng = ChaCha8Rng::seed_from_u64(config.id);
        Node::new(config, HardState::default(), LogPosition::default(), rng).unwrap()
    }

    /// Ticks until the call whose output is returned starts an election.
    fn tick_until_timeout(node: &mut Node) -> Output {
        node.set_election_timeout(3);
        for _ in 0..2 {
            assert!(node.tick().is_empty());
        }
        node.tick()
    }

    fn vote_request(term: Term, pre_vote: bool) -> Message {
        Message::VoteRequest(VoteRequest {
            term,
            pre_vote,
            last_log: LogPosition::default(),
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

    fn to(to: NodeId, message: Message) -> Outbound {
        Outbound { to, message }
    }

    /// A follower whose election timer elapses with pre-vote off enters the next term,
    /// votes for itself, persists both and asks every peer for its vote (§5.2).
    #[test]
    fn follower_timeout_without_pre_vote_starts_an_election_in_the_next_term() {
        let mut node = node(config(1, &[1, 2, 3], false, true));

        let out = tick_until_timeout(&mut node);

        assert_eq!(
            out,
            Output {
                hard_state: Some(HardState {
                    term: 1,
                    voted_for: Some(1)
                }),
                messages: vec![to(2, vote_request(1, false)), to(3, vote_request(1, false))],
                events: vec![
                    Event::RoleChanged {
                        from: Role::Follower,
                        to: Role::Candidate,
                        term: 1
                    },
                    Event::ElectionStarted {
                        term: 1,
                        pre_vote: false,
                        transfer: false
                    },
                ],
            }
        );
    }

    /// With pre-vote, a timeout only polls the peers for the next term: the term and the
    /// vote stay, so nothing is persisted (thesis §9.6).
    #[test]
    fn follower_timeout_with_pre_vote_polls_for_the_next_term_without_changing_its_own() {
        let mut node = node(config(1, &[1, 2, 3], true, true));

        let out = tick_until_timeout(&mut node);

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![to(2, vote_request(1, true)), to(3, vote_request(1, true))],
                events: vec![
                    Event::RoleChanged {
                        from: Role::Follower,
                        to: Role::PreCandidate,
                        term: 0
                    },
                    Event::ElectionStarted {
                        term: 1,
                        pre_vote: true,
                        transfer: false
                    },
                ],
            }
        );
        assert_eq!(node.term(), 0);
    }

    /// A pre-candidate with a majority of pre-votes starts the real election (§9.6).
    #[test]
    fn pre_candidate_with_a_majority_of_pre_votes_becomes_candidate() {
        let mut node = node(config(1, &[1, 2, 3], true, true));
        let _ = tick_until_timeout(&mut node);

        let out = node.step(2, vote_response(1, true, true));

        assert_eq!(
            out,
            Output {
                hard_state: Some(HardState {
                    term: 1,
                    voted_for: Some(1)
                }),
                messages: vec![to(2, vote_request(1, false)), to(3, vote_request(1, false))],
                events: vec![
                    Event::RoleChanged {
                        from: Role::PreCandidate,
                        to: Role::Candidate,
                        term: 1
                    },
                    Event::ElectionStarted {
                        term: 1,
                        pre_vote: false,
                        transfer: false
                    },
                ],
            }
        );
    }

    /// A candidate with a majority becomes leader and sends a heartbeat at once (§5.2).
    #[test]
    fn candidate_with_a_majority_becomes_leader_and_sends_heartbeats() {
        let mut node = node(config(1, &[1, 2, 3], false, true));
        let _ = tick_until_timeout(&mut node);

        let out = node.step(3, vote_response(1, false, true));

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![to(2, heartbeat(1)), to(3, heartbeat(1))],
                events: vec![
                    Event::ElectionWon {
                        term: 1,
                        votes: vec![1, 3]
                    },
                    Event::RoleChanged {
                        from: Role::Candidate,
                        to: Role::Leader,
                        term: 1
                    },
                    Event::LeaderChanged {
                        leader: Some(1),
                        term: 1
                    },
                ],
            }
        );
    }

    /// Granting a vote in a new term persists the term and vote in the same output as
    /// the answer (§5.1, §5.2, Figure 2).
    #[test]
    fn follower_grants_a_higher_term_vote_and_persists_it_with_the_answer() {
        let mut node = node(config(1, &[1, 2, 3], false, true));

        let out = node.step(2, vote_request(5, false));

        assert_eq!(
            out,
            Output {
                hard_state: Some(HardState {
                    term: 5,
                    voted_for: Some(2)
                }),
                messages: vec![to(2, vote_response(5, false, true))],
                events: vec![
                    Event::RoleChanged {
                        from: Role::Follower,
                        to: Role::Follower,
                        term: 5
                    },
                    Event::VoteGranted {
                        candidate: 2,
                        term: 5,
                        pre_vote: false
                    },
                ],
            }
        );
    }

    /// A pre-vote is granted without touching the voter's term, vote or timer (§9.6).
    #[test]
    fn pre_vote_is_granted_without_changing_any_state() {
        let mut node = node(config(1, &[1, 2, 3], true, true));
        let _ = node.tick();
        let elapsed = node.election_elapsed();

        let out = node.step(2, vote_request(1, true));

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![to(2, vote_response(1, true, true))],
                events: vec![Event::VoteGranted {
                    candidate: 2,
                    term: 1,
                    pre_vote: true
                }],
            }
        );
        assert_eq!(node.hard_state(), HardState::default());
        assert_eq!(node.election_elapsed(), elapsed);
    }

    /// A pre-vote request from a term behind gets a refusal with the voter's term, so the
    /// lagging server catches up (etcd's smaller-term liveness fix, §5.1).
    #[test]
    fn pre_vote_from_a_lower_term_is_refused_with_the_higher_term() {
        let mut node = node(config(1, &[1, 2, 3], true, true));
        let _ = node.step(3, vote_request(7, false));

        let out = node.step(2, vote_request(4, true));

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![to(2, vote_response(7, true, false))],
                events: vec![Event::VoteRefused {
                    candidate: 2,
                    term: 4,
                    pre_vote: true,
                    reason: RefusalReason::StaleTerm,
                }],
            }
        );
    }

    /// A heartbeat from an older term is answered with the current term, so a deposed
    /// leader learns it and steps down (§5.1).
    #[test]
    fn stale_heartbeat_is_answered_with_the_current_term() {
        let mut node = node(config(1, &[1, 2, 3], true, true));
        let _ = node.step(3, heartbeat(4));

        let out = node.step(2, heartbeat(2));

        let response = AppendResponse {
            term: 4,
            success: false,
            match_index: 0,
        };
        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![to(2, Message::AppendResponse(response))],
                events: vec![],
            }
        );
    }

    /// A follower acknowledges its leader's heartbeat and learns who leads (§5.2).
    #[test]
    fn follower_acknowledges_a_heartbeat_and_learns_the_leader() {
        let mut node = node(config(1, &[1, 2, 3], true, true));

        let out = node.step(2, heartbeat(3));

        let response = AppendResponse {
            term: 3,
            success: true,
            match_index: 0,
        };
        assert_eq!(
            out,
            Output {
                hard_state: Some(HardState {
                    term: 3,
                    voted_for: None
                }),
                messages: vec![to(2, Message::AppendResponse(response))],
                events: vec![
                    Event::RoleChanged {
                        from: Role::Follower,
                        to: Role::Follower,
                        term: 3
                    },
                    Event::LeaderChanged {
                        leader: Some(2),
                        term: 3
                    },
                ],
            }
        );
        assert_eq!(node.leader(), Some(2));
    }

    /// A lone voter is its own majority: its first tick makes it leader of term 1,
    /// persisting term and self-vote, with no message to send (§5.2).
    #[test]
    fn single_voter_becomes_leader_on_its_first_tick() {
        let mut node = node(config(1, &[1], true, true));

        let out = node.tick();

        assert_eq!(
            out.hard_state,
            Some(HardState {
                term: 1,
                voted_for: Some(1)
            })
        );
        assert!(out.messages.is_empty());
        assert_eq!(
            out.events,
            vec![
                Event::RoleChanged {
                    from: Role::Follower,
                    to: Role::PreCandidate,
                    term: 0
                },
                Event::ElectionStarted {
                    term: 1,
                    pre_vote: true,
                    transfer: false
                },
                Event::RoleChanged {
                    from: Role::PreCandidate,
                    to: Role::Candidate,
                    term: 1
                },
                Event::ElectionStarted {
                    term: 1,
                    pre_vote: false,
                    transfer: false
                },
                Event::ElectionWon {
                    term: 1,
                    votes: vec![1]
                },
                Event::RoleChanged {
                    from: Role::Candidate,
                    to: Role::Leader,
                    term: 1
                },
                Event::LeaderChanged {
                    leader: Some(1),
                    term: 1
                },
            ]
        );
    }

    /// A leader sends one heartbeat per peer every heartbeat interval (§5.2).
    #[test]
    fn leader_sends_heartbeats_every_interval() {
        let mut node = node(config(1, &[1, 2, 3], false, false));
        let _ = tick_until_timeout(&mut node);
        let _ = node.step(2, vote_response(1, false, true));

        for _ in 1..node.config().heartbeat_interval {
            assert!(node.tick().is_empty());
        }
        let out = node.tick();

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![to(2, heartbeat(1)), to(3, heartbeat(1))],
                events: vec![],
            }
        );
    }

    /// A pre-candidate refused by a majority gives up the round and follows again in
    /// its unchanged term, reporting the lost pre-vote (thesis §9.6).
    #[test]
    fn pre_candidate_refused_by_a_majority_goes_back_to_follower() {
        let mut node = node(config(1, &[1, 2, 3], true, true));
        let _ = tick_until_timeout(&mut node);
        let _ = node.step(2, vote_response(0, true, false));

        let out = node.step(3, vote_response(0, true, false));

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![],
                events: vec![
                    Event::ElectionLost {
                        term: 1,
                        pre_vote: true
                    },
                    Event::RoleChanged {
                        from: Role::PreCandidate,
                        to: Role::Follower,
                        term: 0
                    },
                ],
            }
        );
    }

    /// A leader with check-quorum keeps its lease: a higher-term vote request is refused
    /// without adopting the term (leader stickiness, thesis §4.2.3).
    #[test]
    fn leader_with_check_quorum_refuses_a_higher_term_vote_request() {
        let mut node = node(config(1, &[1, 2, 3], false, true));
        let _ = tick_until_timeout(&mut node);
        let _ = node.step(2, vote_response(1, false, true));

        let out = node.step(3, vote_request(5, false));

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![to(3, vote_response(1, false, false))],
                events: vec![Event::VoteRefused {
                    candidate: 3,
                    term: 5,
                    pre_vote: false,
                    reason: RefusalReason::LeaderActive { leader: 1 },
                }],
            }
        );
        assert_eq!((node.role(), node.term()), (Role::Leader, 1));
    }

    /// A leader that hears an append response from a later term steps down into it: this
    /// frees a candidate that the sticky majority keeps ignoring (§5.1; etcd's
    /// stuck-candidate fix).
    #[test]
    fn leader_steps_down_on_a_higher_term_append_response() {
        let mut node = node(config(1, &[1, 2, 3], false, true));
        let _ = tick_until_timeout(&mut node);
        let _ = node.step(2, vote_response(1, false, true));

        let response = AppendResponse {
            term: 4,
            success: false,
            match_index: 0,
        };
        let out = node.step(3, Message::AppendResponse(response));

        assert_eq!(
            out,
            Output {
                hard_state: Some(HardState {
                    term: 4,
                    voted_for: None
                }),
                messages: vec![],
                events: vec![
                    Event::RoleChanged {
                        from: Role::Leader,
                        to: Role::Follower,
                        term: 4
                    },
                    Event::LeaderChanged {
                        leader: None,
                        term: 4
                    },
                ],
            }
        );
    }

    /// With check-quorum, a leader that heard from no peer during a whole check period
    /// steps down at the check, reporting the lost quorum (thesis §6.2).
    #[test]
    fn leader_without_acknowledgements_steps_down_at_the_check() {
        let mut node = node(config(1, &[1, 2, 3], false, true));
        let _ = tick_until_timeout(&mut node);
        let _ = node.step(2, vote_response(1, false, true));
        for _ in 1..node.config().election_timeout_min {
            assert_eq!(node.tick().events, vec![]);
        }

        let out = node.tick();

        assert_eq!(
            out,
            Output {
                hard_state: None,
                messages: vec![],
                events: vec![
                    Event::QuorumLost { term: 1 },
                    Event::RoleChanged {
                        from: Role::Leader,
                        to: Role::Follower,
                        term: 1
                    },
                    Event::LeaderChanged {
                        leader: None,
                        term: 1
                    },
                ],
            }
        );
    }

    /// A non-voter never campaigns, even when asked (§5.2: only voters stand).
    #[test]
    fn campaign_on_a_non_voter_does_nothing() {
        let mut node = node(config(9, &[1, 2, 3], true, true));

        assert!(node.campaign().is_empty());
        assert_eq!(node.role(), Role::Follower);
    }

    /// Only an election makes a leader: a direct follower → leader transition is a bug
    /// and panics with a message naming it.
    #[test]
    #[should_panic(expected = "illegal transition follower → leader")]
    fn follower_to_leader_directly_panics() {
        let mut node = node(config(1, &[1, 2, 3], true, true));
        node.become_leader(&mut Output::default());
    }

    /// A leader never campaigns again: leader → candidate panics.
    #[test]
    #[should_panic(expected = "illegal transition leader → candidate")]
    fn leader_to_candidate_panics() {
        let mut node = node(config(1, &[1], false, true));
        let _ = node.tick();
        node.become_candidate(false, &mut Output::default());
    }

    /// The node can move between threads and be printed (drivers and simulators).
    #[test]
    fn node_is_send_and_debug() {
        fn assert_send<T: Send + fmt::Debug>() {}
        assert_send::<Node>();
        let text = format!("{:?}", node(config(1, &[1, 2, 3], true, true)));
        assert!(text.contains("role: Follower"), "{text}");
    }
}
