//! The messages Raft servers exchange during an election.
//!
//! They are shaped for the whole protocol, not just the election: a vote request carries
//! the candidate's last log position and a heartbeat is an append request with no
//! entries, so log replication can arrive without changing the wire for elections.

use serde::{Deserialize, Serialize};

/// Identifies one server of the cluster.
pub type NodeId = u64;

/// A Raft term: a logical clock that numbers elections (Raft paper §5.1).
pub type Term = u64;

/// The index of an entry in the replicated log; 0 means "before the first entry".
pub type LogIndex = u64;

/// The position of a log entry: its index and the term it was written in.
///
/// Until log replication exists every server's log is empty and its last position is
/// `LogPosition::default()` (index 0, term 0).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// The term of the entry. Compared first: a later term is more up to date (§5.4.1).
    pub term: Term,
    /// The index of the entry.
    pub index: LogIndex,
}

/// One message between two servers. The sender is not inside: the transport stamps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A candidate (or pre-candidate) asks for a vote.
    VoteRequest(VoteRequest),
    /// The answer to a [`VoteRequest`].
    VoteResponse(VoteResponse),
    /// A leader's append request; with no entries it is a heartbeat.
    AppendRequest(AppendRequest),
    /// The answer to an [`AppendRequest`]; it tells the leader its follower is alive.
    AppendResponse(AppendResponse),
    /// A leader hands over its leadership: the receiver, if it follows the sender in
    /// `term`, starts a real election at once (Raft thesis §3.10).
    TimeoutNow {
        /// The sending leader's term.
        term: Term,
    },
}

impl Message {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::VoteRequest(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::AppendRequest(m) => m.term,
            Message::AppendResponse(m) => m.term,
            Message::TimeoutNow { term } => *term,
        }
    }
}

/// A request for a vote (Raft paper §5.2), or for a pre-vote (thesis §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// For a real vote, the candidate's current term. For a pre-vote, the term the
    /// candidate would campaign in (its current term + 1); its own term is unchanged.
    pub term: Term,
    /// Whether this is a pre-vote: a poll that changes no state on the receiver.
    pub pre_vote: bool,
    /// The position of the candidate's last log entry, for the up-to-date check (§5.4.1).
    pub last_log: LogPosition,
    /// Whether the candidate campaigns because its leader handed leadership over to it
    /// ([`Message::TimeoutNow`]): voters then grant it even while they still hear that
    /// leader, the one exception to leader stickiness (thesis §3.10, §4.2.3).
    pub transfer: bool,
}

/// The answer to a [`VoteRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// For a granted pre-vote, the term of the request; otherwise the voter's term.
    pub term: Term,
    /// Whether it answers a pre-vote.
    pub pre_vote: bool,
    /// Whether the vote (or pre-vote) was granted.
    pub granted: bool,
}

/// A leader's append request (Raft paper §5.3). Entries are not carried yet: today
/// every append request is a heartbeat that asserts leadership and resets timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// The leader's term.
    pub term: Term,
    /// The position just before the entries the request would carry.
    pub prev_log: LogPosition,
    /// The leader's commit index.
    pub commit: LogIndex,
}

/// The answer to an [`AppendRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The follower's term.
    pub term: Term,
    /// Whether the follower accepted the request.
    pub success: bool,
    /// The last log index the follower holds in common with the leader.
    pub match_index: LogIndex,
}
