//! The things a driver can do to a running simulation: faults, repairs, nudges.

use std::fmt;

use super::clock::{Micros, MILLI};
use crate::message::NodeId;

/// One change the driver applies to the cluster or its network.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The server stops at once; what it persisted survives, everything else is lost.
    Crash(NodeId),
    /// The next time the server persists a hard state it crashes right after the write,
    /// before sending the messages of that output.
    CrashAfterPersist(NodeId),
    /// Cancels an armed [`Action::CrashAfterPersist`] that has not fired yet.
    Disarm(NodeId),
    /// A crashed server boots again from its persisted hard state.
    Restart(NodeId),
    /// Cuts every link between different groups, both ways. Servers named in no group
    /// form one more group together.
    Partition(Vec<Vec<NodeId>>),
    /// Cuts the link from `from` to `to` only: `to` still reaches `from`.
    CutOneWay {
        /// The sender whose messages are lost.
        from: NodeId,
        /// The receiver that no longer hears `from`.
        to: NodeId,
    },
    /// Cuts both directions between two servers and nothing else, which makes a
    /// partial partition when both still reach a third server.
    CutPair(NodeId, NodeId),
    /// Cuts the server from every other server, both ways.
    Isolate(NodeId),
    /// Brings every link back up.
    Heal,
    /// Sets the probability that a message is lost.
    SetDrop(f64),
    /// Sets the probability that a message arrives twice.
    SetDuplicate(f64),
    /// Sets the range of message delays, in microseconds.
    SetDelay {
        /// The shortest delay.
        min: Micros,
        /// The longest delay (inclusive).
        max: Micros,
    },
    /// Asks the server's core to start an election now.
    Campaign(NodeId),
    /// `observer`'s connection to `peer` closed, as a transport reports it: the core
    /// of `observer` gets a crash hint about `peer`
    /// ([`Node::leader_unreachable`](crate::Node::leader_unreachable)). Crashes
    /// deliver these by themselves; applied by hand, with `peer` alive, it is a false
    /// hint (one connection broke while the process lives). Links are not touched.
    ConnectionLost {
        /// The server whose connection closed.
        observer: NodeId,
        /// The peer at the other end.
        peer: NodeId,
    },
    /// Asks the leader of the highest term among running servers, if any, to hand its
    /// leadership to `to` ([`Node::transfer_leadership`](crate::Node::transfer_leadership),
    /// thesis §3.10). A refused transfer is noted in the trace and changes nothing.
    TransferLeadership {
        /// The server to hand leadership to.
        to: NodeId,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Crash(id) => write!(f, "crash s{id}"),
            Action::CrashAfterPersist(id) => write!(f, "arm crash of s{id} after persist"),
            Action::Disarm(id) => write!(f, "disarm the pending crash of s{id}"),
            Action::Restart(id) => write!(f, "restart s{id}"),
            Action::Partition(groups) => {
                f.write_str("partition")?;
                for g in groups {
                    let names: Vec<String> = g.iter().map(|id| format!("s{id}")).collect();
                    write!(f, " {{{}}}", names.join(","))?;
                }
                Ok(())
            }
            Action::CutOneWay { from, to } => write!(f, "cut s{from} -> s{to} (one way)"),
            Action::CutPair(a, b) => write!(f, "cut s{a} <-> s{b}"),
            Action::Isolate(id) => write!(f, "isolate s{id}"),
            Action::Heal => f.write_str("heal all links"),
            Action::SetDrop(p) => write!(f, "drop {:.0}% of messages", p * 100.0),
            Action::SetDuplicate(p) => write!(f, "duplicate {:.0}% of messages", p * 100.0),
            Action::SetDelay { min, max } => write!(
                f,
                "delay messages {:.1}-{:.1} ms",
                *min as f64 / MILLI as f64,
                *max as f64 / MILLI as f64
            ),
            Action::Campaign(id) => write!(f, "s{id} campaigns"),
            Action::ConnectionLost { observer, peer } => {
                write!(
                    f,
                    "s{observer} loses its connection to s{peer} (crash hint)"
                )
            }
            Action::TransferLeadership { to } => {
                write!(f, "the leader is asked to hand leadership to s{to}")
            }
        }
    }
}
