//! The handle the layer above uses, whichever network carries the messages.
//!
//! A [`Server`] is a set of channels: one bounded queue of encoded frames per peer,
//! one channel of received envelopes and one of connection events. Behind them runs
//! either the TCP backend or the in-process network; the handle cannot tell which.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec;
use crate::config::{Config, Options, ServerId};
use crate::connection::{DirectPath, Offered};
use crate::envelope::{Envelope, Incoming, PeerEvent};
use crate::error::{SendError, StartError};
use crate::faults::{Fate, FaultTable, Faults};
use crate::stats::{PeerCounters, ServerStats};
use crate::tls::TlsIdentity;
use crate::{connection, listener};

/// Connection events buffered for the layer above before further ones are dropped.
const EVENT_CAPACITY: usize = 1024;

/// State shared by the handle, its [`Sender`] clones and the backend tasks.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) id: ServerId,
    /// Peer ids, sorted; every per-peer vector below is in this order.
    pub(crate) peers: Vec<ServerId>,
    queues: Vec<mpsc::Sender<Bytes>>,
    /// Per peer, the way around the queue while its TCP writer is idle.
    pub(crate) direct: Vec<DirectPath>,
    pub(crate) counters: Vec<PeerCounters>,
    pub(crate) max_frame_size: usize,
    pub(crate) shutdown: CancellationToken,
    /// Mirrors `shutdown` for the send path: the token's own check takes a lock.
    stopped: AtomicBool,
    /// The fault layer, when configured ([`Options::fault_injection`]).
    pub(crate) faults: Option<Arc<FaultTable>>,
}

impl Core {
    /// Stops the server: senders see it at once, tasks through the token.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.shutdown.cancel();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn peer_index(&self, peer: ServerId) -> Option<usize> {
        self.peers.binary_search(&peer).ok()
    }

    /// Writes `frame` straight to the peer's socket if its writer is idle, else queues
    /// it without waiting; gives the frame back if the queue is full or closed.
    fn offer(&self, index: usize, frame: Bytes) -> Result<(), TrySendError<Bytes>> {
        let queue = &self.queues[index];
        let mut direct = self.direct[index].enter();
        let frame = match direct.offer(frame, queue) {
            Offered::Written => {
                self.counters[index].add_sent(1);
                return Ok(());
            }
            Offered::Queued => return Ok(()),
            Offered::NotTaken(frame) => frame,
        };
        direct.queueing();
        queue.try_send(frame)
    }

    /// Offers `frame` and counts it as dropped if the peer's queue is full. Returns
    /// whether the server is still running.
    pub(crate) fn enqueue(&self, index: usize, frame: Bytes) -> bool {
        match self.offer(index, frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters[index].add_dropped(1);
                tracing::trace!(peer = self.peers[index], "queue full, message dropped");
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// Where backend tasks report connection events. Never blocks: when the layer above
/// does not read events, the newest ones are dropped.
#[derive(Debug, Clone)]
pub(crate) struct EventSink(mpsc::Sender<PeerEvent>);

impl EventSink {
    pub(crate) fn emit(&self, event: PeerEvent) {
        if self.0.try_send(event).is_err() {
            tracing::debug!(peer = event.peer(), "event dropped, nobody reads events");
        }
    }
}

/// The backend's ends of a server's channels.
#[derive(Debug)]
pub(crate) struct Wiring<M> {
    pub(crate) core: Arc<Core>,
    /// One receiver per peer, in the order of `core.peers`.
    pub(crate) queues: Vec<mpsc::Receiver<Bytes>>,
    pub(crate) inbound: mpsc::Sender<Vec<Envelope<M>>>,
    pub(crate) events: EventSink,
    pub(crate) tasks: TaskTracker,
}

/// A running server: sends envelopes to its peers and receives theirs.
///
/// Built by [`Server::start`] (TCP) or [`crate::Network::start`] (in-process); both
/// give the same handle. Dropping it stops its tasks without waiting; prefer
/// [`Server::shutdown`], which waits for them.
#[derive(Debug)]
pub struct Server<M> {
    sender: Sender<M>,
    inbound: mpsc::Receiver<Vec<Envelope<M>>>,
    pending: VecDeque<Envelope<M>>,
    events: mpsc::Receiver<PeerEvent>,
    tasks: TaskTracker,
    local_addr: Option<SocketAddr>,
}

/// A cloneable sending half of a [`Server`], for sending from other tasks.
#[derive(Debug)]
pub struct Sender<M> {
    core: Arc<Core>,
    _message: PhantomData<fn(M)>,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Sender {
            core: Arc::clone(&self.core),
            _message: PhantomData,
        }
    }
}

/// Builds the channels of a server; the backend spawns its tasks on `wiring.tasks`.
pub(crate) fn wire<M>(
    id: ServerId,
    peers: Vec<ServerId>,
    options: &Options,
) -> (Server<M>, Wiring<M>) {
    let mut senders = Vec::with_capacity(peers.len());
    let mut receivers = Vec::with_capacity(peers.len());
    for _ in &peers {
        let (tx, rx) = mpsc::channel(options.queue_capacity);
        senders.push(tx);
        receivers.push(rx);
    }

    let tasks = TaskTracker::new();
    let faults = options
        .fault_injection
        .then(|| Arc::new(FaultTable::new(peers.clone(), tasks.clone())));
    let core = Arc::new(Core {
        id,
        counters: peers.iter().map(|_| PeerCounters::default()).collect(),
        direct: peers.iter().map(|_| DirectPath::default()).collect(),
        peers,
        queues: senders,
        max_frame_size: options.max_frame_size,
        shutdown: CancellationToken::new(),
        stopped: AtomicBool::new(false),
        faults,
    });
    let (inbound_tx, inbound_rx) = mpsc::channel(options.inbound_capacity);
    let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);

    let server = Server {
        sender: Sender {
            core: Arc::clone(&core),
            _message: PhantomData,
        },
        inbound: inbound_rx,
        pending: VecDeque::new(),
        events: events_rx,
        tasks: tasks.clone(),
        local_addr: None,
    };
    let wiring = Wiring {
        core,
        queues: receivers,
        inbound: inbound_tx,
        events: EventSink(events_tx),
        tasks,
    };
    (server, wiring)
}

impl<M> Server<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// Starts server `id` over TCP: binds its configured address (with `SO_REUSEADDR`,
    /// so a restarted server gets its port back at once) and dials every peer.
    pub async fn start(config: &Config, id: ServerId) -> Result<Server<M>, StartError> {
        config.validate()?;
        config.require_member(id)?;
        let addr =
            config
                .address_of(id)
                .ok_or_else(|| crate::error::ConfigError::UnknownServer {
                    origin: config.origin().to_owned(),
                    id,
                })?;

        let listener = listener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        Server::start_with_listener(config, id, listener).await
    }

    /// Starts server `id` over TCP on a listener the caller bound, e.g. to port 0 in
    /// tests. Peers still dial the address in the configuration.
    ///
    /// With TLS configured ([`Config::with_tls`]) its files are read first; a file
    /// that cannot be used fails the start with [`StartError::Tls`]. Without, one
    /// warning says that the links are neither encrypted nor authenticated.
    pub async fn start_with_listener(
        config: &Config,
        id: ServerId,
        listener: TcpListener,
    ) -> Result<Server<M>, StartError> {
        config.validate()?;
        config.require_member(id)?;

        let tls = match config.tls() {
            Some(files) => {
                let loaded = TlsIdentity::for_server(files, config.cluster_name(), id);
                let identity = loaded.map_err(|source| StartError::Tls {
                    origin: config.origin().to_owned(),
                    source,
                })?;
                tracing::info!(node = id, ca = %files.ca.display(), "peer links use TLS");
                Some(identity)
            }
            None => {
                tracing::warn!(
                    node = id,
                    "peer links are plain TCP: not encrypted, and any process that reaches \
                     this server can claim a server id (configure [tls] to prevent it)"
                );
                None
            }
        };

        let (mut server, wiring) = wire::<M>(id, config.peers_of(id), config.options());
        server.local_addr = listener.local_addr().ok();
        let config = Arc::new(config.clone());

        listener::spawn(listener, Arc::clone(&config), tls.clone(), &wiring);
        connection::spawn_all(config, tls, wiring);
        Ok(server)
    }
}

impl<M> Server<M> {
    /// This server's id.
    pub fn id(&self) -> ServerId {
        self.sender.core.id
    }

    /// Every other server's id, sorted.
    pub fn peers(&self) -> &[ServerId] {
        &self.sender.core.peers
    }

    /// The address the TCP listener is bound to; `None` in the in-process network.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// A cloneable handle for sending from other tasks.
    pub fn sender(&self) -> Sender<M> {
        self.sender.clone()
    }

    /// A handle on this server's fault layer, or `None` when the configuration does
    /// not switch it on ([`Options::fault_injection`]). See [`Faults`].
    pub fn faults(&self) -> Option<Faults> {
        let table = self.sender.core.faults.as_ref()?;
        Some(Faults::new(Arc::clone(table)))
    }

    /// The next received envelope that the fault layer lets through, if one is
    /// buffered.
    fn next_pending(&mut self) -> Option<Envelope<M>> {
        let Some(faults) = &self.sender.core.faults else {
            return self.pending.pop_front();
        };
        while let Some(envelope) = self.pending.pop_front() {
            if !faults.blocks_incoming(envelope.from) {
                return Some(envelope);
            }
            tracing::trace!(peer = envelope.from, "incoming message blocked");
        }
        None
    }

    /// The next received envelope; `None` once the server is shut down or crashed.
    pub async fn recv(&mut self) -> Option<Envelope<M>> {
        loop {
            if let Some(envelope) = self.next_pending() {
                return Some(envelope);
            }

            // Backends deliver what one socket read yielded as one batch; keep the rest.
            let batch = self.inbound.recv().await?;
            self.pending = VecDeque::from(batch);
        }
    }

    /// A received envelope if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Envelope<M>> {
        loop {
            if let Some(envelope) = self.next_pending() {
                return Some(envelope);
            }
            let batch = self.inbound.try_recv().ok()?;
            self.pending = VecDeque::from(batch);
        }
    }

    /// The next connection event; `None` once the server is shut down or crashed.
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }

    /// A connection event if one is waiting, without waiting.
    pub fn try_next_event(&mut self) -> Option<PeerEvent> {
        self.events.try_recv().ok()
    }

    /// The next envelope or connection event, events first when both are waiting.
    /// `None` once the server is shut down or crashed.
    pub async fn next(&mut self) -> Option<Incoming<M>> {
        if let Ok(event) = self.events.try_recv() {
            return Some(Incoming::Event(event));
        }

        loop {
            if let Some(envelope) = self.next_pending() {
                return Some(Incoming::Message(envelope));
            }
            tokio::select! {
                biased;
                Some(event) = self.events.recv() => return Some(Incoming::Event(event)),
                Some(batch) = self.inbound.recv() => self.pending = VecDeque::from(batch),
                else => return None,
            }
        }
    }

    /// A snapshot of every peer's counters.
    pub fn stats(&self) -> ServerStats {
        let core = &self.sender.core;
        ServerStats {
            peers: core
                .peers
                .iter()
                .zip(&core.counters)
                .map(|(&id, counters)| (id, counters.snapshot()))
                .collect(),
        }
    }

    /// Stops every task of this server and waits for them: sockets are closed and the
    /// listening port is free when this returns. Queued messages are discarded.
    pub async fn shutdown(self) {
        self.sender.core.stop();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl<M: Serialize> Server<M> {
    /// Queues `message` for peer `to`. Never waits: if the peer's queue is full the
    /// message is dropped and counted (see [`crate::PeerStats::dropped`]).
    pub fn send(&self, to: ServerId, message_id: u64, message: &M) -> Result<(), SendError> {
        self.sender.send(to, message_id, message)
    }

    /// Queues `message` for every peer; encoded once. Never waits (see [`Server::send`]).
    pub fn broadcast(&self, message_id: u64, message: &M) -> Result<(), SendError> {
        self.sender.broadcast(message_id, message)
    }

    /// Like [`Server::send`] but waits for room in the peer's queue instead of dropping.
    /// Meant for bulk transfers that want back-pressure; it waits as long as the peer
    /// is slow or unreachable, so protocols like Raft should use [`Server::send`].
    pub async fn send_waiting(
        &self,
        to: ServerId,
        message_id: u64,
        message: &M,
    ) -> Result<(), SendError> {
        self.sender.send_waiting(to, message_id, message).await
    }
}

impl<M> Drop for Server<M> {
    fn drop(&mut self) {
        // Tasks must not outlive an abandoned handle; shutdown() does the same and waits.
        self.sender.core.stop();
    }
}

impl<M: Serialize> Sender<M> {
    /// This server's id.
    pub fn id(&self) -> ServerId {
        self.core.id
    }

    /// Every other server's id, sorted.
    pub fn peers(&self) -> &[ServerId] {
        &self.core.peers
    }

    fn check_destination(&self, to: ServerId) -> Result<usize, SendError> {
        if self.core.is_stopped() {
            return Err(SendError::Shutdown);
        }
        if to == self.core.id {
            return Err(SendError::ToSelf(to));
        }
        self.core.peer_index(to).ok_or(SendError::UnknownPeer(to))
    }

    /// See [`Server::send`].
    pub fn send(&self, to: ServerId, message_id: u64, message: &M) -> Result<(), SendError> {
        let index = self.check_destination(to)?;
        let frame = codec::encode_frame(message_id, message, self.core.max_frame_size)?;
        self.enqueue(index, frame)
    }

    /// See [`Server::broadcast`].
    pub fn broadcast(&self, message_id: u64, message: &M) -> Result<(), SendError> {
        if self.core.is_stopped() {
            return Err(SendError::Shutdown);
        }

        let frame = codec::encode_frame(message_id, message, self.core.max_frame_size)?;
        for index in 0..self.core.peers.len() {
            self.enqueue(index, frame.clone())?;
        }
        Ok(())
    }

    /// See [`Server::send_waiting`].
    pub async fn send_waiting(
        &self,
        to: ServerId,
        message_id: u64,
        message: &M,
    ) -> Result<(), SendError> {
        let index = self.check_destination(to)?;
        let frame = codec::encode_frame(message_id, message, self.core.max_frame_size)?;
        let Some(frame) = self.injure(index, frame) else {
            return Ok(());
        };

        // Try without waiting first: registering for cancellation costs a lock.
        let frame = match self.core.offer(index, frame) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => return Err(SendError::Shutdown),
            Err(TrySendError::Full(frame)) => frame,
        };
        let queue = &self.core.queues[index];
        let permit = tokio::select! {
            permit = queue.reserve() => permit.map_err(|_| SendError::Shutdown)?,
            _ = self.core.shutdown.cancelled() => return Err(SendError::Shutdown),
        };

        // Queue under the direct path's lock, like every other frame, so that no
        // direct write slips in while the frame is on its way into the queue.
        let mut direct = self.core.direct[index].enter();
        direct.queueing();
        permit.send(frame);
        Ok(())
    }

    /// Applies the fault layer to a frame for the peer at `index`: gives it back to be
    /// sent now, or takes it (dropped, or delayed in a task of its own).
    fn injure(&self, index: usize, frame: Bytes) -> Option<Bytes> {
        let Some(faults) = &self.core.faults else {
            return Some(frame);
        };
        match faults.outgoing(index) {
            Fate::Send => Some(frame),
            Fate::Drop => {
                tracing::trace!(peer = self.core.peers[index], "outgoing message dropped");
                None
            }
            Fate::Delay(delay) => {
                faults.delay(&self.core, index, frame, delay);
                None
            }
        }
    }

    fn enqueue(&self, index: usize, frame: Bytes) -> Result<(), SendError> {
        let Some(frame) = self.injure(index, frame) else {
            return Ok(());
        };

        if self.core.enqueue(index, frame) {
            Ok(())
        } else {
            Err(SendError::Shutdown)
        }
    }
}
