//! Why a leader refuses to hand its leadership over (Raft thesis §3.10).

use thiserror::Error;

use crate::message::NodeId;

/// A refused [`Node::transfer_leadership`](crate::Node::transfer_leadership).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TransferError {
    /// Only the leader can hand leadership over; `leader` is the one this server knows.
    #[error(
        "not the leader (the leader is {})",
        leader.map_or("unknown".into(), |l| l.to_string())
    )]
    NotLeader {
        /// The leader this server knows of, if any.
        leader: Option<NodeId>,
    },
    /// The leader was asked to hand leadership to itself.
    #[error("server {0} already leads")]
    ToSelf(NodeId),
    /// The target is not a voter of the cluster, so it could never win an election.
    #[error("server {0} is not a voter of this cluster")]
    NotAVoter(NodeId),
}
