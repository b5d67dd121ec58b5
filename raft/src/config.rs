//! The settings of one server's election: who votes, how long to wait, which safeguards.

use thiserror::Error;

use crate::message::NodeId;

/// The election settings of one server. Times are counted in ticks: the core has no
/// clock, and the driver decides how long a tick lasts (for example 10 ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This server's id.
    pub id: NodeId,
    /// Every server that votes, this one included when it votes. A server whose id is
    /// not listed is a non-voter: it follows a leader but never campaigns.
    pub voters: Vec<NodeId>,
    /// The shortest election timeout, in ticks (inclusive). Default 15.
    pub election_timeout_min: u64,
    /// The longest election timeout, in ticks (exclusive). Each timeout is drawn
    /// uniformly from `[election_timeout_min, election_timeout_max)`. Default 30.
    pub election_timeout_max: u64,
    /// The ticks between two heartbeats of a leader; below `election_timeout_min`.
    /// Default 5.
    pub heartbeat_interval: u64,
    /// Whether a server polls its peers with a pre-vote before it increments its term
    /// (thesis §9.6), so that a server rejoining after a partition does not depose a
    /// healthy leader. Default on.
    pub pre_vote: bool,
    /// Whether a leader steps down when it has not heard from a majority for an election
    /// timeout, and a follower that heard from its leader within the minimum election
    /// timeout refuses to vote for another (leader stickiness). Default on.
    pub check_quorum: bool,
    /// Whether a follower told that its leader is unreachable
    /// ([`Node::leader_unreachable`](crate::Node::leader_unreachable), for example
    /// because the leader's process died and its connection closed) forgets that leader
    /// and campaigns after a short random delay instead of a whole election timeout.
    /// Acted on only with [`Config::pre_vote`] and [`Config::check_quorum`]: a pre-vote
    /// round that the other servers refuse while they hear the leader is what keeps a
    /// false hint from deposing a leader that is still alive. Default on.
    pub crash_hint: bool,
    /// The ticks between the campaigns of two survivors after a crash hint. The
    /// followers of a dead leader do not draw random delays, which collide whenever
    /// there are more survivors than distinct values: each takes a *slot* in one order
    /// of the survivors that every one of them computes alike (a hash of the term and
    /// the ids), and campaigns `slot × crash_hint_stagger` ticks after its hint, the
    /// first one at once. The order changes with the term, so that no server is
    /// always tried first. The gap must let the first survivor's pre-vote reach the
    /// second before the second's timer fires, tick phases included: at least 2 ticks
    /// when a tick is near the network's round trip. A delay at or above
    /// `election_timeout_min` is capped just below it, so a hint never waits longer
    /// than a timeout would. At least 1; default 2.
    pub crash_hint_stagger: u64,
}

impl Config {
    /// The default settings for server `id` among `voters`.
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            id,
            voters: voters.into_iter().collect(),
            election_timeout_min: 15,
            election_timeout_max: 30,
            heartbeat_interval: 5,
            pre_vote: true,
            check_quorum: true,
            crash_hint: true,
            crash_hint_stagger: 2,
        }
    }

    /// Checks the settings, naming the first field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.voters.is_empty() {
            return Err(ConfigError::NoVoters);
        }

        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ConfigError::DuplicateVoter(pair[0]));
        }

        if self.election_timeout_min == 0 {
            return Err(ConfigError::ZeroElectionTimeout);
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(ConfigError::EmptyTimeoutRange {
                min: self.election_timeout_min,
                max: self.election_timeout_max,
            });
        }
        if self.heartbeat_interval == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.heartbeat_interval >= self.election_timeout_min {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat: self.heartbeat_interval,
                min: self.election_timeout_min,
            });
        }
        if self.crash_hint_stagger == 0 {
            return Err(ConfigError::ZeroCrashHintStagger);
        }
        Ok(())
    }

    /// The number of votes that make a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The ticks a survivor in `slot` (0 for the first) waits after a crash hint:
    /// `slot × crash_hint_stagger`, capped below `election_timeout_min`.
    pub fn crash_hint_delay(&self, slot: u64) -> u64 {
        slot.saturating_mul(self.crash_hint_stagger)
            .min(self.election_timeout_min.saturating_sub(1))
    }

    /// Whether this server votes and may campaign.
    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.id)
    }
}

/// A setting that [`Config::validate`] refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `voters` is empty.
    #[error("voters: the list is empty")]
    NoVoters,
    /// `voters` names a server twice.
    #[error("voters: server {0} is listed twice")]
    DuplicateVoter(NodeId),
    /// `election_timeout_min` is zero.
    #[error("election_timeout_min: must be at least 1 tick")]
    ZeroElectionTimeout,
    /// The range `[election_timeout_min, election_timeout_max)` holds no value.
    #[error(
        "election_timeout_max: must be above election_timeout_min \
         (the range [{min}, {max}) is empty)"
    )]
    EmptyTimeoutRange {
        /// The minimum given.
        min: u64,
        /// The maximum given.
        max: u64,
    },
    /// `heartbeat_interval` is zero.
    #[error("heartbeat_interval: must be at least 1 tick")]
    ZeroHeartbeat,
    /// `heartbeat_interval` is not below `election_timeout_min`.
    #[error(
        "heartbeat_interval: {heartbeat} ticks must be below \
         election_timeout_min ({min} ticks)"
    )]
    HeartbeatTooSlow {
        /// The interval given.
        heartbeat: u64,
        /// The minimum election timeout given.
        min: u64,
    },
    /// `crash_hint_stagger` is zero.
    #[error("crash_hint_stagger: must be at least 1 tick")]
    ZeroCrashHintStagger,
}
