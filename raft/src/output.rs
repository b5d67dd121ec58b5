//! What one call into the core returns: state to persist, messages to send, events.

use std::fmt;

use crate::message::{Message, NodeId, Term};
use crate::storage::HardState;

/// The role a server plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Follows a leader, or waits for one to appear.
    Follower,
    /// Polls its peers with pre-votes before starting a real election (thesis §9.6).
    PreCandidate,
    /// Has started an election in its current term and asks for votes.
    Candidate,
    /// Won an election: sends heartbeats to every peer.
    Leader,
}

impl Role {
    /// The role's name as operators read it: `follower`, `pre-candidate`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message the driver must send, addressed to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// The peer to send it to; never the sender itself.
    pub to: NodeId,
    /// The message.
    pub message: Message,
}

/// Why a server refused a vote or a pre-vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The request's term is below the voter's term.
    StaleTerm,
    /// The voter already voted for another candidate in this term.
    AlreadyVoted {
        /// The candidate that holds the vote.
        voted_for: NodeId,
    },
    /// The candidate's log is less up to date than the voter's (§5.4.1).
    LogBehind,
    /// The voter heard from a live leader less than a minimum election timeout ago,
    /// so it keeps following it (leader stickiness, thesis §4.2.3).
    LeaderActive {
        /// The leader the voter follows.
        leader: NodeId,
    },
    /// The voter is the leader of the term and does not vote for anyone else in it.
    IsLeader,
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::StaleTerm => f.write_str("stale term"),
            RefusalReason::AlreadyVoted { voted_for } => {
                write!(f, "already voted for {voted_for}")
            }
            RefusalReason::LogBehind => f.write_str("candidate log behind"),
            RefusalReason::LeaderActive { leader } => write!(f, "leader {leader} active"),
            RefusalReason::IsLeader => f.write_str("is leader"),
        }
    }
}

/// Something that happened inside the core, reported for logs, metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The server changed role. `term` is the term it holds after the change.
    ///
    /// A follower that moves to a higher term also reports it, with `from` and `to`
    /// both [`Role::Follower`]: it is a new term, with a fresh vote, to follow in.
    RoleChanged {
        /// The role before the change.
        from: Role,
        /// The role after the change.
        to: Role,
        /// The server's term after the change.
        term: Term,
    },
    /// The leader the server knows of changed (`None`: it knows of no leader).
    LeaderChanged {
        /// The new leader, if any.
        leader: Option<NodeId>,
        /// The term of that leadership.
        term: Term,
    },
    /// The server started an election (or a pre-vote poll) for `term`.
    ElectionStarted {
        /// The term campaigned for.
        term: Term,
        /// Whether this is the pre-vote phase.
        pre_vote: bool,
        /// Whether its leader handed leadership over to it ([`Message::TimeoutNow`]),
        /// so that it skipped pre-vote and voters bypass leader stickiness.
        transfer: bool,
    },
    /// The server won an election.
    ElectionWon {
        /// The term won.
        term: Term,
        /// The servers that granted their votes, the winner included, in ascending order.
        votes: Vec<NodeId>,
    },
    /// A majority refused the server's votes or pre-votes in this round.
    ElectionLost {
        /// The term campaigned for.
        term: Term,
        /// Whether this was the pre-vote phase.
        pre_vote: bool,
    },
    /// The server granted its vote (or pre-vote) to a candidate.
    VoteGranted {
        /// The candidate.
        candidate: NodeId,
        /// The term of the request.
        term: Term,
        /// Whether it was a pre-vote.
        pre_vote: bool,
    },
    /// The server refused its vote (or pre-vote) to a candidate.
    VoteRefused {
        /// The candidate.
        candidate: NodeId,
        /// The term of the request.
        term: Term,
        /// Whether it was a pre-vote.
        pre_vote: bool,
        /// Why.
        reason: RefusalReason,
    },
    /// A leader stepped down because it has not heard from a majority within an
    /// election timeout (check-quorum).
    QuorumLost {
        /// The term it led.
        term: Term,
    },
    /// A follower was told that its leader's process is unreachable (its connection
    /// closed, a re-dial was refused), forgot that leader and will campaign after
    /// `campaign_in` ticks instead of a whole election timeout.
    LeaderUnreachable {
        /// The leader it followed.
        leader: NodeId,
        /// The term of that leadership.
        term: Term,
        /// The ticks until its election timer fires.
        campaign_in: u64,
    },
    /// A leader asked `to` to start an election at once (thesis §3.10).
    TransferStarted {
        /// The server leadership is handed to.
        to: NodeId,
        /// The leader's term.
        term: Term,
    },
    /// A leader gave up a transfer that did not complete within an election timeout;
    /// it keeps leading.
    TransferAbandoned {
        /// The server leadership was handed to.
        to: NodeId,
        /// The leader's term.
        term: Term,
    },
}

/// The outputs of one call into the core, to be handled in this order:
///
/// 1. persist `hard_state` if it is `Some`, durably, before anything else;
/// 2. send `messages` (they may depend on the state just persisted, for example a vote);
/// 3. report `events` (logs, metrics, status).
///
/// Sending a message before the state it depends on is on disk could let a server that
/// crashes and restarts vote twice in one term, which breaks election safety (§5.2).
///
/// Events come in the order things happened. A role change reports
/// [`Event::RoleChanged`] then, if the known leader changed, [`Event::LeaderChanged`];
/// what caused it ([`Event::ElectionWon`], [`Event::ElectionLost`],
/// [`Event::QuorumLost`]) comes just before, and [`Event::ElectionStarted`] just after the
/// change into pre-candidate or candidate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "the hard state must be persisted and the messages sent"]
pub struct Output {
    /// The term and vote to persist, when either changed during the call.
    pub hard_state: Option<HardState>,
    /// The messages to send, in order.
    pub messages: Vec<Outbound>,
    /// What happened, in order.
    pub events: Vec<Event>,
}

impl Output {
    /// Whether the call produced nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.messages.is_empty() && self.events.is_empty()
    }
}
