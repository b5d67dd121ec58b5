//! The runtime around the pure core: it joins a [`Node`] to a `cluster` server, to a
//! tokio timer and to a [`Storage`], and publishes the node's status.
//!
//! One task runs one node. On every tick of the timer and every message that arrives it
//! calls the core, then handles the [`Output`] in the order the core requires: persist
//! the hard state, then send the messages. A storage failure stops the node, because a
//! server that cannot persist its vote must not answer anyone.

use std::future::Future;
use std::time::Duration;

use cluster::{Envelope, Incoming, PeerEvent, Server};
use thiserror::Error;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::message::{Message, NodeId, Term};
use crate::node::Node;
use crate::output::{Output, Role};
use crate::storage::{Storage, StorageError};

/// What a running node publishes about itself after every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The node's id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// When it last heard from its leader; for a leader, when it was last elected or
    /// heard from a peer. `None` until it knows of a leader.
    pub leader_heard_at: Option<Instant>,
}

impl Status {
    /// The time since the leader was last heard, measured now.
    pub fn since_leader_heard(&self) -> Option<Duration> {
        self.leader_heard_at.map(|at| at.elapsed())
    }

    fn of(node: &Node, leader_heard_at: Option<Instant>) -> Status {
        Status {
            id: node.id(),
            role: node.role(),
            term: node.term(),
            leader: node.leader(),
            leader_heard_at,
        }
    }
}

/// Why a driver stopped before it was asked to.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The term and vote could not be persisted; the node stopped rather than answer
    /// without them.
    #[error("cannot persist the term and vote: {0}")]
    Storage(#[from] StorageError),
    /// The cluster server stopped delivering (it was shut down underneath the driver).
    #[error("the cluster server stopped")]
    ServerStopped,
}

/// Runs one node over a cluster server until `shutdown` completes.
#[derive(Debug)]
pub struct Driver<S> {
    node: Node,
    storage: S,
    server: Server<Message>,
    tick: Duration,
    status: watch::Sender<Status>,
    leader_heard_at: Option<Instant>,
    next_message_id: u64,
}

impl<S: Storage> Driver<S> {
    /// A driver for `node`, which must have been restored from `storage`. `tick` is the
    /// length of one tick of the core's logical clock.
    pub fn new(node: Node, storage: S, server: Server<Message>, tick: Duration) -> Driver<S> {
        let (status, _) = watch::channel(Status::of(&node, None));
        Driver {
            node,
            storage,
            server,
            tick,
            status,
            leader_heard_at: None,
            next_message_id: 0,
        }
    }

    /// A receiver of the node's status, updated after every step that changes it.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Ticks, delivers messages and handles outputs until `shutdown` completes, then
    /// shuts the cluster server down. Returns early only on an error.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DriverError> {
        let mut ticker = tokio::time::interval_at(Instant::now() + self.tick, self.tick);
        // A paused process (SIGSTOP) must not fire a burst of ticks when it resumes: it
        // would time out at once instead of first listening for the current leader.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);

        let result = loop {
            let output = tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                _ = ticker.tick() => self.node.tick(),
                incoming = self.server.next() => match incoming {
                    Some(Incoming::Message(envelope)) => self.deliver(envelope),
                    Some(Incoming::Event(event)) => {
                        self.peer_event(event);
                        continue;
                    }
                    None => break Err(DriverError::ServerStopped),
                },
            };

            if let Err(error) = self.handle(output) {
                break Err(error);
            }
        };

        self.server.shutdown().await;
        result
    }

    fn deliver(&mut self, envelope: Envelope<Message>) -> Output {
        let from = envelope.from;
        let is_heartbeat = matches!(envelope.message, Message::AppendRequest(_));
        let output = self.node.step(from, envelope.message);

        // A follower hears its leader through heartbeats; a leader through the answers.
        let from_leader = is_heartbeat && self.node.leader() == Some(from);
        let to_leader = self.node.role() == Role::Leader;
        if from_leader || to_leader {
            self.leader_heard_at = Some(Instant::now());
        }
        output
    }

    fn peer_event(&mut self, event: PeerEvent) {
        // Connection events are logged by `cluster`. Using them to notice a dead leader
        // before the election timeout is not supported yet: the core waits it out.
        tracing::debug!(node = self.node.id(), ?event, "peer event");
    }

    /// Persists, then sends, then publishes: the order the core's contract requires.
    fn handle(&mut self, output: Output) -> Result<(), DriverError> {
        if let Some(state) = output.hard_state {
            // NB: a blocking fsync on the runtime thread. One node runs one task and must
            // not do anything else until the state is durable, so nothing is lost by it.
            self.storage.save(&state)?;
        }

        for outbound in output.messages {
            self.next_message_id += 1;
            let sent = self
                .server
                .send(outbound.to, self.next_message_id, &outbound.message);
            if let Err(error) = sent {
                // Only a caller's mistake fails a send (an unknown peer, an oversized
                // frame); election messages are small and go to configured peers.
                tracing::warn!(node = self.node.id(), peer = outbound.to, %error, "send failed");
            }
        }

        if self.node.leader().is_none() {
            self.leader_heard_at = None;
        } else if self.leader_heard_at.is_none() {
            self.leader_heard_at = Some(Instant::now());
        }

        let status = Status::of(&self.node, self.leader_heard_at);
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
        Ok(())
    }
}
