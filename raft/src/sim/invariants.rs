//! The safety invariants, checked after every step of the simulation.
//!
//! The checker keeps its own history, independent of the servers' memories, so that a
//! server that forgets something in a crash cannot hide a violation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::message::{Message, NodeId, Term};
use crate::output::{Event, Outbound, Role};
use crate::storage::HardState;

/// The property a failure broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    /// (1) At most one leader in any term, over the whole history.
    ElectionSafety,
    /// (2) No server votes for two candidates in one term, across restarts too.
    SingleVote,
    /// (3) No server's term ever decreases, across restarts too.
    MonotonicTerm,
    /// (4) A leader was granted votes by a majority of the voters in its term.
    MajorityVotes,
    /// (5) The term and vote a message depends on are persisted before it is sent,
    /// and more generally the state the core holds is the state it asked to persist.
    PersistBeforeSend,
    /// Once faults stop and a majority is connected, a leader is elected in time.
    Liveness,
    /// Once elected with nothing failing, the leader keeps its role and term.
    StableLeadership,
    /// The core panicked (an assertion of its own, or a bug).
    CorePanicked,
    /// A scripted scenario's expectation did not hold.
    Scenario,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::ElectionSafety => "(1) election safety: at most one leader per term",
            Invariant::SingleVote => "(2) one vote per server per term",
            Invariant::MonotonicTerm => "(3) a server's term never decreases",
            Invariant::MajorityVotes => "(4) a leader holds the votes of a majority",
            Invariant::PersistBeforeSend => "(5) persist before send",
            Invariant::Liveness => "liveness: a leader within the bound once faults stop",
            Invariant::StableLeadership => "stability: the leader stays while nothing fails",
            Invariant::CorePanicked => "the core panicked",
            Invariant::Scenario => "scenario expectation",
        })
    }
}

/// A broken invariant and what exactly broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property.
    pub invariant: Invariant,
    /// The facts: servers, terms, votes.
    pub detail: String,
}

impl Violation {
    pub(super) fn new(invariant: Invariant, detail: impl Into<String>) -> Violation {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

type Check = Result<(), Violation>;

/// The history the invariants are checked against.
#[derive(Clone, Debug)]
pub(super) struct Checker {
    voters: BTreeSet<NodeId>,
    quorum: usize,
    /// Term → the one server that led it.
    leaders: BTreeMap<Term, NodeId>,
    /// (voter, term) → the candidate it voted for.
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// (candidate, term) → the voters that granted it their vote.
    grants: BTreeMap<(NodeId, Term), BTreeSet<NodeId>>,
    /// Server → the highest term it has ever held, in memory or on disk.
    highest_term: BTreeMap<NodeId, Term>,
}

impl Checker {
    pub(super) fn new(voters: &[NodeId]) -> Checker {
        Checker {
            voters: voters.iter().copied().collect(),
            quorum: voters.len() / 2 + 1,
            leaders: BTreeMap::new(),
            votes: BTreeMap::new(),
            grants: BTreeMap::new(),
            highest_term: BTreeMap::new(),
        }
    }

    /// Every term that had a leader, and who it was.
    pub(super) fn leaders(&self) -> &BTreeMap<Term, NodeId> {
        &self.leaders
    }

    /// The server overwrites its persisted state `old` with `new`.
    pub(super) fn on_persist(&mut self, id: NodeId, old: HardState, new: HardState) -> Check {
        if new.term < old.term {
            return Err(Violation::new(
                Invariant::MonotonicTerm,
                format!(
                    "s{id} persisted term {} over its persisted term {}",
                    new.term, old.term
                ),
            ));
        }
        if new.term == old.term {
            if let Some(before) = old.voted_for {
                if new.voted_for != Some(before) {
                    return Err(Violation::new(
                        Invariant::SingleVote,
                        format!(
                            "s{id} persisted vote {:?} in term {} over its vote s{before}",
                            new.voted_for, new.term
                        ),
                    ));
                }
            }
        }

        self.note_term(id, new.term)?;
        match new.voted_for {
            Some(candidate) => self.record_vote(id, new.term, candidate),
            None => Ok(()),
        }
    }

    /// The server reported `event`.
    pub(super) fn on_event(&mut self, id: NodeId, event: &Event) -> Check {
        match event {
            Event::VoteGranted {
                candidate,
                term,
                pre_vote: false,
            } => self.record_vote(id, *term, *candidate),
            Event::RoleChanged {
                to: Role::Leader,
                term,
                ..
            } => self.on_leader(id, *term),
            Event::ElectionWon { term, votes } => {
                let granted = self.grants.get(&(id, *term));
                let phantom: Vec<NodeId> = votes
                    .iter()
                    .copied()
                    .filter(|v| !granted.is_some_and(|g| g.contains(v)))
                    .collect();
                if phantom.is_empty() {
                    self.on_leader(id, *term)
                } else {
                    Err(Violation::new(
                        Invariant::MajorityVotes,
                        format!(
                            "s{id} won term {term} counting votes from {phantom:?}, \
                             which never granted it a vote in that term"
                        ),
                    ))
                }
            }
            _ => Ok(()),
        }
    }

    /// The messages of one output are about to be sent while `disk` is persisted.
    pub(super) fn on_send(&self, id: NodeId, disk: HardState, messages: &[Outbound]) -> Check {
        for out in messages {
            let (what, expected_vote) = match &out.message {
                Message::VoteRequest(m) if !m.pre_vote => ("asks for votes in", id),
                Message::VoteResponse(m) if !m.pre_vote && m.granted => {
                    ("grants its vote in", out.to)
                }
                _ => continue,
            };
            let term = out.message.term();
            if disk.term != term || disk.voted_for != Some(expected_vote) {
                return Err(Violation::new(
                    Invariant::PersistBeforeSend,
                    format!(
                        "s{id} {what} term {term} (message to s{}) while its disk holds \
                         term {} vote {:?}",
                        out.to, disk.term, disk.voted_for
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The server's state after a step: checked against history and its own disk.
    pub(super) fn observe(
        &mut self,
        id: NodeId,
        role: Role,
        memory: HardState,
        disk: HardState,
    ) -> Check {
        if memory != disk {
            return Err(Violation::new(
                Invariant::PersistBeforeSend,
                format!(
                    "s{id} holds term {} vote {:?} but persisted term {} vote {:?}",
                    memory.term, memory.voted_for, disk.term, disk.voted_for
                ),
            ));
        }

        self.note_term(id, memory.term)?;
        if role == Role::Leader {
            self.on_leader(id, memory.term)?;
        }
        Ok(())
    }

    fn note_term(&mut self, id: NodeId, term: Term) -> Check {
        let highest = self.highest_term.entry(id).or_insert(term);
        if term < *highest {
            return Err(Violation::new(
                Invariant::MonotonicTerm,
                format!("s{id} is at term {term} after having reached term {highest}"),
            ));
        }
        *highest = term;
        Ok(())
    }

    fn record_vote(&mut self, voter: NodeId, term: Term, candidate: NodeId) -> Check {
        let holder = *self.votes.entry((voter, term)).or_insert(candidate);
        if holder != candidate {
            return Err(Violation::new(
                Invariant::SingleVote,
                format!("s{voter} voted for s{holder}, then s{candidate}, in term {term}"),
            ));
        }
        self.grants
            .entry((candidate, term))
            .or_default()
            .insert(voter);
        Ok(())
    }

    fn on_leader(&mut self, id: NodeId, term: Term) -> Check {
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                return Err(Violation::new(
                    Invariant::ElectionSafety,
                    format!("s{id} and s{other} both led term {term}"),
                ));
            }
            // Already checked when it first became leader of this term.
            return Ok(());
        }

        let granted: Vec<NodeId> = self
            .grants
            .get(&(id, term))
            .map(|g| g.intersection(&self.voters).copied().collect())
            .unwrap_or_default();
        if granted.len() < self.quorum {
            return Err(Violation::new(
                Invariant::MajorityVotes,
                format!(
                    "s{id} leads term {term} with votes from {granted:?} only; \
                     a majority of {} voters is {}",
                    self.voters.len(),
                    self.quorum
                ),
            ));
        }
        self.leaders.insert(term, id);
        Ok(())
    }
}
