//! The runtime around the pure core: it joins a [`Node`] to a `cluster` server, to a
//! tokio timer and to a [`Storage`], and publishes the node's status.
//!
//! One task runs one node. On every tick of the timer and every message that arrives it
//! calls the core, then handles the [`Output`] in the order the core requires: persist
//! the hard state, then send the messages. A storage failure stops the node, because a
//! server that cannot persist its vote must not answer anyone.
//!
//! Connection events from `cluster` feed the core's crash hints: when the connection to
//! a peer closes ([`PeerEvent::Disconnected`]) or a re-dial is refused
//! ([`PeerEvent::DialRefused`]), the driver calls [`Node::leader_unreachable`], which a
//! follower of that peer acts on (see [`Config::crash_hint`](crate::Config::crash_hint)).
//!
//! While it runs, a driver takes commands through a [`DriverHandle`] (from
//! [`Driver::handle`]), for example to hand its leadership over:
//!
//! ```no_run
//! # async fn example(handle: raft::DriverHandle) {
//! match handle.transfer_leadership(None).await {
//!     Ok(target) => println!("handing leadership to {target}"),
//!     Err(error) => println!("no hand-over: {error}"),
//! }
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use cluster::{Envelope, Incoming, PeerEvent, Server};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::message::{Message, NodeId, Term};
use crate::node::Node;
use crate::output::{Output, Role};
use crate::storage::{Storage, StorageError};
use crate::transfer::TransferError;

/// How many commands may wait for the driver; senders wait when it is full.
const COMMAND_QUEUE: usize = 16;

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
    /// The server it voted for in its current term, if any.
    pub voted_for: Option<NodeId>,
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
            voted_for: node.hard_state().voted_for,
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

/// Why a command sent through a [`DriverHandle`] failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The core refused the transfer.
    #[error(transparent)]
    Refused(#[from] TransferError),
    /// No target was named and no connected peer has been heard from.
    #[error("no connected peer to hand leadership to")]
    NoTarget,
    /// The driver is not running any more.
    #[error("the driver has stopped")]
    Stopped,
}

/// A command for a running driver.
#[derive(Debug)]
enum Command {
    TransferLeadership {
        to: Option<NodeId>,
        reply: oneshot::Sender<Result<NodeId, CommandError>>,
    },
}

/// A cloneable way to send commands to a running [`Driver`].
#[derive(Clone, Debug)]
pub struct DriverHandle {
    commands: mpsc::Sender<Command>,
}

impl DriverHandle {
    /// Asks the node, which must lead, to hand its leadership to `to` (Raft thesis
    /// §3.10), or with `None` to the peer it heard from most recently among those still
    /// connected: the one most likely up to date and reachable. Returns the target once
    /// the core has sent it the `TimeoutNow`; the caller watches [`Driver::status`] to
    /// see the new leader.
    ///
    /// # Errors
    ///
    /// [`CommandError::Refused`] when the node does not lead or the target is itself
    /// or not a voter, [`CommandError::NoTarget`] when no peer qualifies, and
    /// [`CommandError::Stopped`] when the driver has stopped.
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<NodeId, CommandError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::TransferLeadership { to, reply };
        self.commands
            .send(command)
            .await
            .map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
    }
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
    /// When each connected peer was last heard from; a lost connection removes it.
    peer_heard_at: BTreeMap<NodeId, Instant>,
    commands: mpsc::Receiver<Command>,
    /// Kept so that the command channel stays open while handles come and go.
    command_sender: mpsc::Sender<Command>,
}

impl<S: Storage> Driver<S> {
    /// A driver for `node`, which must have been restored from `storage`. `tick` is the
    /// length of one tick of the core's logical clock.
    pub fn new(node: Node, storage: S, server: Server<Message>, tick: Duration) -> Driver<S> {
        let (status, _) = watch::channel(Status::of(&node, None));
        let (command_sender, commands) = mpsc::channel(COMMAND_QUEUE);
        Driver {
            node,
            storage,
            server,
            tick,
            status,
            leader_heard_at: None,
            next_message_id: 0,
            peer_heard_at: BTreeMap::new(),
            commands,
            command_sender,
        }
    }

    /// A handle that sends commands to this driver once it runs.
    pub fn handle(&self) -> DriverHandle {
        DriverHandle {
            commands: self.command_sender.clone(),
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
                    Some(Incoming::Event(event)) => self.peer_event(event),
                    None => break Err(DriverError::ServerStopped),
                },
                Some(command) = self.commands.recv() => self.command(command),
            };

            if let Err(error) = self.carry_out(output) {
                break Err(error);
            }
        };

        self.server.shutdown().await;
        result
    }

    fn deliver(&mut self, envelope: Envelope<Message>) -> Output {
        let from = envelope.from;
        self.peer_heard_at.insert(from, Instant::now());
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

    /// Turns a lost connection into a crash hint for the core. `cluster` logs the
    /// event itself; the core decides whether it matters (only about its leader).
    fn peer_event(&mut self, event: PeerEvent) -> Output {
        tracing::debug!(node = self.node.id(), ?event, "peer event");
        match event {
            PeerEvent::Disconnected(peer) | PeerEvent::DialRefused(peer) => {
                self.peer_heard_at.remove(&peer);
                self.node.leader_unreachable(peer)
            }
            PeerEvent::Connected(_) => Output::default(),
        }
    }

    fn command(&mut self, command: Command) -> Output {
        match command {
            Command::TransferLeadership { to, reply } => {
                let (result, output) = match to.or_else(|| self.freshest_peer()) {
                    None => (Err(CommandError::NoTarget), Output::default()),
                    Some(to) => match self.node.transfer_leadership(to) {
                        Ok(output) => (Ok(to), output),
                        Err(error) => (Err(CommandError::Refused(error)), Output::default()),
                    },
                };
                // The caller may have given up waiting; the transfer goes on regardless.
                let _ = reply.send(result);
                output
            }
        }
    }

    /// The connected voter heard from most recently, other than this node.
    fn freshest_peer(&self) -> Option<NodeId> {
        let me = self.node.id();
        let voters = &self.node.config().voters;
        self.peer_heard_at
            .iter()
            .filter(|(peer, _)| **peer != me && voters.contains(peer))
            .max_by_key(|(_, at)| **at)
            .map(|(&peer, _)| peer)
    }

    /// Persists, then sends, then publishes: the order the core's contract requires.
    fn carry_out(&mut self, output: Output) -> Result<(), DriverError> {
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
