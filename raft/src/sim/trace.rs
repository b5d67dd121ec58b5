//! A readable record of what happened, one line per step, kept for failure reports.

use std::collections::VecDeque;
use std::fmt;

use super::action::Action;
use super::clock::{format_time, Micros};
use crate::message::{Message, NodeId};
use crate::output::Event;
use crate::storage::HardState;

/// What one line of the trace records.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceKind {
    /// The server's clock ticked and the tick produced output (silent ticks are not
    /// recorded: they would drown everything else).
    Tick,
    /// The server sent a message.
    Send {
        /// The receiver.
        to: NodeId,
        /// The message.
        message: Message,
        /// How many copies the network will deliver: 0 lost, 2 duplicated.
        copies: usize,
    },
    /// A message arrived at the server and was handed to its core.
    Deliver {
        /// The sender.
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// A message for the server was lost on arrival.
    Lost {
        /// The sender.
        from: NodeId,
        /// The message.
        message: Message,
        /// Why: the link is cut or the server is down.
        reason: &'static str,
    },
    /// The server persisted its hard state.
    Persist(HardState),
    /// The core reported an event.
    Event(Event),
    /// The driver applied an action: a fault, a repair or a forced campaign.
    Action(Action),
    /// The server crashed right after persisting, losing the messages of that output.
    CrashAfterPersist {
        /// The messages that were never sent.
        lost: usize,
    },
    /// The server came back with this persisted state.
    Restarted(HardState),
    /// Free text from a scenario or the random runner.
    Note(String),
}

/// One line of the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEntry {
    /// When it happened, in virtual microseconds.
    pub time: Micros,
    /// The server concerned, if any.
    pub server: Option<NodeId>,
    /// What happened.
    pub kind: TraceKind,
}

/// The trace: the latest `capacity` entries, oldest first.
#[derive(Clone, Debug)]
pub struct Trace {
    entries: VecDeque<TraceEntry>,
    capacity: usize,
    forgotten: u64,
}

impl Trace {
    /// An empty trace that keeps at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Trace {
        Trace {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            forgotten: 0,
        }
    }

    /// Appends an entry, forgetting the oldest one when full.
    pub(super) fn push(&mut self, time: Micros, server: Option<NodeId>, kind: TraceKind) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.forgotten += 1;
        }
        self.entries.push_back(TraceEntry { time, server, kind });
    }

    /// The entries kept, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &TraceEntry> {
        self.entries.iter()
    }

    /// How many old entries were forgotten to respect the capacity.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// The last `lines` entries, one per line.
    pub fn tail(&self, lines: usize) -> String {
        let skip = self.entries.len().saturating_sub(lines);
        let mut text = String::new();
        let earlier = self.forgotten + skip as u64;
        if earlier > 0 {
            text.push_str(&format!("... {earlier} earlier lines not shown\n"));
        }
        for entry in self.entries.iter().skip(skip) {
            text.push_str(&entry.to_string());
            text.push('\n');
        }
        text
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tail(self.entries.len()))
    }
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.server {
            Some(id) => format!("s{id}"),
            None => "net".to_string(),
        };
        write!(f, "{} {who:>3}  ", format_time(self.time))?;

        match &self.kind {
            TraceKind::Tick => f.write_str("tick"),
            TraceKind::Send {
                to,
                message,
                copies,
            } => {
                let fate = match copies {
                    0 => " (dropped)",
                    1 => "",
                    _ => " (duplicated)",
                };
                write!(f, "send {} to s{to}{fate}", MessageSummary(message))
            }
            TraceKind::Deliver { from, message } => {
                write!(f, "recv {} from s{from}", MessageSummary(message))
            }
            TraceKind::Lost {
                from,
                message,
                reason,
            } => write!(f, "lost {} from s{from}: {reason}", MessageSummary(message)),
            TraceKind::Persist(hs) => write!(f, "persist {}", HardStateSummary(hs)),
            TraceKind::Event(event) => write!(f, "event {}", EventSummary(event)),
            TraceKind::Action(action) => write!(f, "== {action}"),
            TraceKind::CrashAfterPersist { lost } => {
                write!(f, "== crash after persisting, {lost} message(s) never sent")
            }
            TraceKind::Restarted(hs) => {
                write!(f, "== restarted from {}", HardStateSummary(hs))
            }
            TraceKind::Note(text) => write!(f, "-- {text}"),
        }
    }
}

/// A message on one short line: kind, term, and the fields that matter for elections.
pub(super) struct MessageSummary<'a>(pub(super) &'a Message);

impl fmt::Display for MessageSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Message::VoteRequest(m) => {
                let kind = if m.pre_vote { "PreVote" } else { "Vote" };
                let transfer = if m.transfer { " transfer" } else { "" };
                write!(f, "{kind}Request t{}{transfer}", m.term)
            }
            Message::VoteResponse(m) => {
                let kind = if m.pre_vote { "PreVote" } else { "Vote" };
                let answer = if m.granted { "granted" } else { "refused" };
                write!(f, "{kind}Response t{} {answer}", m.term)
            }
            Message::AppendRequest(m) => write!(f, "Heartbeat t{}", m.term),
            Message::AppendResponse(m) => {
                let answer = if m.success { "ok" } else { "rejected" };
                write!(f, "HeartbeatResponse t{} {answer}", m.term)
            }
            Message::TimeoutNow { term } => write!(f, "TimeoutNow t{term}"),
        }
    }
}

struct HardStateSummary<'a>(&'a HardState);

impl fmt::Display for HardStateSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.voted_for {
            Some(c) => write!(f, "term {} voted s{c}", self.0.term),
            None => write!(f, "term {} no vote", self.0.term),
        }
    }
}

struct EventSummary<'a>(&'a Event);

impl fmt::Display for EventSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pre = |p: &bool| if *p { "pre-" } else { "" };
        match self.0 {
            Event::RoleChanged { from, to, term } => write!(f, "{from} -> {to} in t{term}"),
            Event::LeaderChanged { leader, term } => match leader {
                Some(l) => write!(f, "leader is s{l} in t{term}"),
                None => write!(f, "no known leader in t{term}"),
            },
            Event::ElectionStarted {
                term,
                pre_vote,
                transfer,
            } => {
                let by = if *transfer { " by transfer" } else { "" };
                write!(f, "{}election started for t{term}{by}", pre(pre_vote))
            }
            Event::ElectionWon { term, votes } => {
                write!(f, "election won in t{term} with votes {votes:?}")
            }
            Event::ElectionLost { term, pre_vote } => {
                write!(f, "{}election lost for t{term}", pre(pre_vote))
            }
            Event::VoteGranted {
                candidate,
                term,
                pre_vote,
            } => write!(
                f,
                "{}vote granted to s{candidate} for t{term}",
                pre(pre_vote)
            ),
            Event::VoteRefused {
                candidate,
                term,
                pre_vote,
                reason,
            } => write!(
                f,
                "{}vote refused to s{candidate} for t{term}: {reason}",
                pre(pre_vote)
            ),
            Event::QuorumLost { term } => write!(f, "quorum lost in t{term}, stepping down"),
            Event::LeaderUnreachable {
                leader,
                term,
                campaign_in,
            } => write!(
                f,
                "leader s{leader} of t{term} unreachable, campaigning in {campaign_in} ticks"
            ),
            Event::TransferStarted { to, term } => {
                write!(f, "leadership transfer to s{to} started in t{term}")
            }
            Event::TransferAbandoned { to, term } => {
                write!(f, "leadership transfer to s{to} abandoned in t{term}")
            }
        }
    }
}
