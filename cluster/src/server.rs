//! The handle the layer above uses, whichever network carries the messages.
//!
//! A [`Server`] is a set of queues: one bounded outbox of encoded frames per peer
//! ([`Outbox`]), one inbox of received envelopes ([`Inbox`]) and a channel of
//! connection events. Behind them runs
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
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec;
use crate::config::{Config, Options, ServerId};
use crate::envelope::{Envelope, Incoming, PeerEvent};
use crate::error::{SendError, StartError};
use crate::faults::{Fate, FaultTable, Faults};
use crate::inbox::Inbox;
use crate::outbox::{Outbox, Pushed};
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
    /// Per peer, the frames waiting for its writer.
    pub(crate) outboxes: Vec<Outbox>,
    pub(crate) counters: Vec<PeerCounters>,
    pub(crate) max_frame_size: usize,
    pub(crate) shutdown: CancellationToken,
    /// Mirrors `shutdown` for the send path: the token's own check takes a lock.
    stopped: AtomicBool,
    /// Wakes the handle waiting for envelopes: the inbox signals arrivals on it, and
    /// stopping signals it so that a waiting `recv` ends.
    wake_handle: Arc<Notify>,
    /// The fault layer, when configured ([`Options::fault_injection`]).
    pub(crate) faults: Option<Arc<FaultTable>>,
}

impl Core {
    /// Stops the server: senders see it at once, tasks through the token.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.shutdown.cancel();
        self.wake_handle.notify_one();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn peer_index(&self, peer: ServerId) -> Option<usize> {
        self.peers.binary_search(&peer).ok()
    }

    /// Queues `frame` for the peer at `index`, or writes it to the socket at once (see
    /// [`Outbox::push`]), without waiting.
    fn push(&self, index: usize, frame: &[u8]) -> Pushed {
        let pushed = self.outboxes[index].push(frame);
        if pushed == Pushed::Written {
            self.counters[index].add_sent(1);
        }
        pushed
    }

    /// Pushes `frame` and counts it as dropped if the peer's outbox is full. Returns
    /// whether the server is still running.
    pub(crate) fn enqueue(&self, index: usize, frame: &[u8]) -> bool {
        if self.is_stopped() {
            return false;
        }
        if self.push(index, frame) == Pushed::Full {
            self.counters[index].add_dropped(1);
            tracing::trace!(peer = self.peers[index], "queue full, message dropped");
        }
        true
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
    pub(crate) inbound: Arc<Inbox<M>>,
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
    inbound: Arc<Inbox<M>>,
    /// Envelopes taken from the inbox and not yet returned, oldest first.
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
    let tasks = TaskTracker::new();
    let wake_handle = Arc::new(Notify::new());
    let faults = options
        .fault_injection
        .then(|| Arc::new(FaultTable::new(peers.clone(), tasks.clone())));
    let core = Arc::new(Core {
        id,
        counters: peers.iter().map(|_| PeerCounters::default()).collect(),
        outboxes: peers
            .iter()
            .map(|_| Outbox::new(options.queue_capacity))
            .collect(),
        peers,
        max_frame_size: options.max_frame_size,
        shutdown: CancellationToken::new(),
        stopped: AtomicBool::new(false),
        wake_handle: Arc::clone(&wake_handle),
        faults,
    });
    let inbound = Arc::new(Inbox::new(
        options.inbound_capacity,
        Arc::clone(&wake_handle),
    ));
    let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);

    let server = Server {
        sender: Sender {
            core: Arc::clone(&core),
            _message: PhantomData,
        },
        inbound: Arc::clone(&inbound),
        pending: VecDeque::new(),
        events: events_rx,
        tasks: tasks.clone(),
        local_addr: None,
    };
    let wiring = Wiring {
        core,
        inbound,
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

    /// Moves what the inbox holds to `pending`, if `pending` is empty; returns whether
    /// anything came. Finding the inbox empty marks this handle as waiting for it.
    fn refill(&mut self) -> bool {
        self.pending.is_empty() && self.inbound.take(&mut self.pending)
    }

    /// Whether nothing more will arrive: the server was shut down or crashed.
    fn is_stopped(&self) -> bool {
        self.sender.core.is_stopped()
    }

    /// The next received envelope; `None` once the server is shut down or crashed.
    pub async fn recv(&mut self) -> Option<Envelope<M>> {
        loop {
            if let Some(envelope) = self.next_pending() {
                return Some(envelope);
            }
            if self.refill() {
                continue;
            }
            if self.is_stopped() {
                return None;
            }

            self.inbound.arrived().await;
        }
    }

    /// A received envelope if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Envelope<M>> {
        loop {
            if let Some(envelope) = self.next_pending() {
                return Some(envelope);
            }
            if !self.refill() {
                return None;
            }
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
            if self.refill() {
                continue;
            }
            if self.is_stopped() {
                return self.events.try_recv().ok().map(Incoming::Event);
            }

            tokio::select! {
                biased;
                Some(event) = self.events.recv() => return Some(Incoming::Event(event)),
                _ = self.inbound.arrived() => {}
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
        self.inbound.close();
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
        self.inbound.close();
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
        let max = self.core.max_frame_size;
        codec::with_frame(message_id, message, max, |frame| self.enqueue(index, frame))?
    }

    /// See [`Server::broadcast`].
    pub fn broadcast(&self, message_id: u64, message: &M) -> Result<(), SendError> {
        if self.core.is_stopped() {
            return Err(SendError::Shutdown);
        }

        let max = self.core.max_frame_size;
        codec::with_frame(message_id, message, max, |frame| {
            (0..self.core.peers.len()).try_for_each(|index| self.enqueue(index, frame))
        })?
    }

    /// See [`Server::send_waiting`].
    pub async fn send_waiting(
        &self,
        to: ServerId,
        message_id: u64,
        message: &M,
    ) -> Result<(), SendError> {
        let index = self.check_destination(to)?;
        let max = self.core.max_frame_size;

        // Try without waiting first, the usual case; keep the frame only if it must
        // wait for room, since the thread's encoding buffer cannot be held across an
        // await.
        let waiting = codec::with_frame(message_id, message, max, |frame| {
            let frame = self.injure(index, frame)?;
            match self.core.push(index, frame) {
                Pushed::Full => Some(Bytes::copy_from_slice(frame)),
                Pushed::Written | Pushed::Queued => None,
            }
        })?;
        let Some(frame) = waiting else {
            return Ok(());
        };

        let outbox = &self.core.outboxes[index];
        loop {
            tokio::select! {
                _ = outbox.room() => {}
                _ = self.core.shutdown.cancelled() => return Err(SendError::Shutdown),
            }
            if self.core.is_stopped() {
                return Err(SendError::Shutdown);
            }
            if self.core.push(index, &frame) != Pushed::Full {
                return Ok(());
            }
        }
    }

    /// Applies the fault layer to a frame for the peer at `index`: gives it back to be
    /// sent now, or takes it (dropped, or delayed in a task of its own).
    fn injure<'f>(&self, index: usize, frame: &'f [u8]) -> Option<&'f [u8]> {
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
                let frame = Bytes::copy_from_slice(frame);
                faults.delay(&self.core, index, frame, delay);
                None
            }
        }
    }

    fn enqueue(&self, index: usize, frame: &[u8]) -> Result<(), SendError> {
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
