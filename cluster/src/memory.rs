//! An in-process network with the same [`Server`] handle as TCP, for testing the
//! layers above: partitions, one-way cuts, loss, delay (which reorders) and crashes,
//! all driven by one seed so that a run can be replayed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::codec;
use crate::config::{Config, ServerId};
use crate::envelope::{Envelope, PeerEvent};
use crate::error::StartError;
use crate::inbox::{Delivered, Inbox};
use crate::server::{self, Core, EventSink, Server};

/// How one directed link treats the messages it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConditions {
    /// Chance in `0.0..=1.0` that a message is lost. Default 0.
    pub drop_probability: f64,
    /// Each message is held for a delay drawn uniformly from this range, so messages
    /// with different delays overtake each other. Default zero (no delay).
    pub delay: RangeInclusive<Duration>,
}

impl Default for LinkConditions {
    fn default() -> Self {
        LinkConditions {
            drop_probability: 0.0,
            delay: Duration::ZERO..=Duration::ZERO,
        }
    }
}

/// A simulated network of the servers of one configuration, living in this process.
///
/// Start servers with [`Network::start`]; they get the same [`Server`] handle as over
/// TCP. A server stopped with [`Server::shutdown`] or [`Network::crash`] can be started
/// again with the same id; its peers see `Disconnected`, `DialRefused` and `Connected`
/// events as they would over TCP. Partitions and cuts lose messages silently, as a
/// broken network would, without connection events.
///
/// Works under tokio's paused clock (`#[tokio::test(start_paused = true)]`).
#[derive(Debug)]
pub struct Network<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Clone for Network<M> {
    fn clone(&self) -> Self {
        Network {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
struct Shared<M> {
    config: Config,
    seed: u64,
    state: Mutex<State<M>>,
    /// Bumped whenever a server starts or stops, so links re-check their peer.
    changes: watch::Sender<u64>,
}

#[derive(Debug)]
struct State<M> {
    running: HashMap<ServerId, Running<M>>,
    starts: HashMap<ServerId, u64>,
    cuts: HashSet<(ServerId, ServerId)>,
    groups: Option<HashMap<ServerId, usize>>,
    default_link: LinkConditions,
    links: HashMap<(ServerId, ServerId), LinkConditions>,
}

/// A started server as the network sees it.
#[derive(Debug)]
struct Running<M> {
    incarnation: u64,
    core: Arc<Core>,
    inbound: Arc<Inbox<M>>,
}

/// The receiving end of a link, valid while the peer's incarnation lasts.
#[derive(Debug)]
struct Target<M> {
    incarnation: u64,
    core: Arc<Core>,
    inbound: Arc<Inbox<M>>,
}

impl<M> Network<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// A network for the servers of `config` (their addresses are not used); `seed`
    /// drives every random choice (loss, delay, backoff jitter).
    pub fn new(config: Config, seed: u64) -> Network<M> {
        let (changes, _) = watch::channel(0);
        Network {
            shared: Arc::new(Shared {
                config,
                seed,
                state: Mutex::new(State {
                    running: HashMap::new(),
                    starts: HashMap::new(),
                    cuts: HashSet::new(),
                    groups: None,
                    default_link: LinkConditions::default(),
                    links: HashMap::new(),
                }),
                changes,
            }),
        }
    }

    /// A network of servers `1..=n` with default options.
    pub fn with_servers(n: u64, seed: u64) -> Network<M> {
        // The addresses are placeholders: nothing binds them in this network.
        Network::new(Config::loopback(n, 1), seed)
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Starts server `id`; fails if it is not configured or already running.
    pub fn start(&self, id: ServerId) -> Result<Server<M>, StartError> {
        let config = &self.shared.config;
        config.validate()?;
        config.require_member(id)?;

        let (server, wiring) = server::wire::<M>(id, config.peers_of(id), config.options());
        let incarnation = {
            let mut state = self.shared.lock();
            if state.running.contains_key(&id) {
                return Err(StartError::AlreadyRunning(id));
            }
            let starts = state.starts.entry(id).or_insert(0);
            *starts += 1;
            let incarnation = *starts;
            state.running.insert(
                id,
                Running {
                    incarnation,
                    core: Arc::clone(&wiring.core),
                    inbound: Arc::clone(&wiring.inbound),
                },
            );
            incarnation
        };
        self.shared.changes.send_modify(|n| *n += 1);
        tracing::debug!(server = id, incarnation, "server started in process");

        // Peers' links deliver to this server's inbox through `running`.
        let server::Wiring {
            core,
            events,
            tasks,
            inbound: _,
        } = wiring;

        for index in 0..core.peers.len() {
            let link = Link {
                shared: Arc::clone(&self.shared),
                core: Arc::clone(&core),
                events: events.clone(),
                index,
                peer: core.peers[index],
                incarnation,
            };
            tasks.spawn(link.run());
        }
        tasks.spawn(deregister_on_stop(
            Arc::clone(&self.shared),
            core,
            incarnation,
        ));
        Ok(server)
    }
}

impl<M> Network<M> {
    /// Stops server `id` abruptly, as if its process died: its handle's `recv` ends,
    /// its sends fail with `Shutdown`, its peers lose their connections to it. Returns
    /// whether it was running.
    pub fn crash(&self, id: ServerId) -> bool {
        let state = self.shared.lock();
        match state.running.get(&id) {
            Some(running) => {
                running.core.stop();
                true
            }
            None => false,
        }
    }

    /// Whether server `id` is running.
    pub fn is_running(&self, id: ServerId) -> bool {
        self.shared.lock().running.contains_key(&id)
    }

    /// Splits the servers into groups; messages cross no group boundary. Servers not
    /// named in any group form one more group together. Replaces any earlier partition.
    pub fn partition(&self, groups: &[&[ServerId]]) {
        let mut map = HashMap::new();
        for (number, group) in groups.iter().enumerate() {
            for &id in *group {
                map.insert(id, number);
            }
        }
        self.shared.lock().groups = Some(map);
        tracing::debug!(?groups, "network partitioned");
    }

    /// Removes the partition and every one-way cut.
    pub fn heal(&self) {
        let mut state = self.shared.lock();
        state.groups = None;
        state.cuts.clear();
        tracing::debug!("network healed");
    }

    /// Loses every message from `from` to `to`; the other direction is unaffected.
    pub fn cut(&self, from: ServerId, to: ServerId) {
        self.shared.lock().cuts.insert((from, to));
    }

    /// Undoes [`Network::cut`] for one direction.
    pub fn restore(&self, from: ServerId, to: ServerId) {
        self.shared.lock().cuts.remove(&(from, to));
    }

    /// Sets loss and delay for the link from `from` to `to`.
    pub fn set_link(&self, from: ServerId, to: ServerId, conditions: LinkConditions) {
        self.shared.lock().links.insert((from, to), conditions);
    }

    /// Sets loss and delay for every link, replacing per-link settings.
    pub fn set_all_links(&self, conditions: LinkConditions) {
        let mut state = self.shared.lock();
        state.links.clear();
        state.default_link = conditions;
    }
}

impl<M> Shared<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A panic while holding this lock leaves only plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn target(&self, id: ServerId) -> Option<Target<M>> {
        let state = self.lock();
        state.running.get(&id).map(|running| Target {
            incarnation: running.incarnation,
            core: Arc::clone(&running.core),
            inbound: Arc::clone(&running.inbound),
        })
    }

    fn incarnation_of(&self, id: ServerId) -> Option<u64> {
        self.lock().running.get(&id).map(|r| r.incarnation)
    }

    /// Whether messages from `from` to `to` are lost, and the link's conditions.
    fn route(&self, from: ServerId, to: ServerId) -> (bool, LinkConditions) {
        let state = self.lock();
        let separated = state.groups.as_ref().is_some_and(|groups| {
            groups.get(&from).unwrap_or(&usize::MAX) != groups.get(&to).unwrap_or(&usize::MAX)
        });
        let blocked = separated || state.cuts.contains(&(from, to));
        let conditions = state
            .links
            .get(&(from, to))
            .unwrap_or(&state.default_link)
            .clone();
        (blocked, conditions)
    }
}

async fn deregister_on_stop<M>(shared: Arc<Shared<M>>, core: Arc<Core>, incarnation: u64) {
    core.shutdown.cancelled().await;
    {
        let mut state = shared.lock();
        if state
            .running
            .get(&core.id)
            .is_some_and(|r| r.incarnation == incarnation)
        {
            state.running.remove(&core.id);
        }
    }
    shared.changes.send_modify(|n| *n += 1);
    tracing::debug!(server = core.id, incarnation, "server stopped in process");
}

/// A message held back by the link's delay.
#[derive(Debug)]
struct Held {
    due: Instant,
    sequence: u64,
    frame: Bytes,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.sequence).cmp(&(other.due, other.sequence))
    }
}

/// The directed link from one server incarnation to one peer.
#[derive(Debug)]
struct Link<M> {
    shared: Arc<Shared<M>>,
    core: Arc<Core>,
    events: EventSink,
    index: usize,
    peer: ServerId,
    incarnation: u64,
}

impl<M> Link<M>
where
    M: DeserializeOwned + Send + 'static,
{
    async fn run(self) {
        let from = self.core.id;
        let peer = self.peer;
        let seed = link_seed(self.shared.seed, from, peer, self.incarnation);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut backoff = Backoff::new(self.shared.config.options(), seed.rotate_left(17));
        let mut changes = self.shared.changes.subscribe();
        let counters = &self.core.counters[self.index];
        let shutdown = self.core.shutdown.clone();
        let mut first = true;
        let mut refusal_reported = false;

        loop {
            changes.mark_unchanged();
            match self.shared.target(peer) {
                Some(target) => {
                    backoff.reset();
                    refusal_reported = false;
                    counters.mark_connected(first);
                    first = false;
                    tracing::info!(peer, "peer connected");
                    self.events.emit(PeerEvent::Connected(peer));

                    let reason = self.carry(&target, &mut changes, &mut rng).await;
                    counters.mark_disconnected();
                    if shutdown.is_cancelled() {
                        return;
                    }
                    tracing::info!(peer, reason, "peer connection lost");
                    self.events.emit(PeerEvent::Disconnected(peer));
                }
                None => {
                    if !refusal_reported {
                        refusal_reported = true;
                        tracing::info!(peer, "peer dial refused");
                        self.events.emit(PeerEvent::DialRefused(peer));
                    }
                }
            }

            // Like TCP, wait before dialling again; a peer starting ends the wait early.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(backoff.next_pause()) => {}
            }
        }
    }

    /// Moves frames from the outbox to the peer until the peer stops or this server
    /// does; returns why it stopped.
    async fn carry(
        &self,
        target: &Target<M>,
        changes: &mut watch::Receiver<u64>,
        rng: &mut ChaCha8Rng,
    ) -> &'static str {
        let from = self.core.id;
        let counters = &self.core.counters[self.index];
        let shutdown = &self.core.shutdown;
        let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
        let mut sequence = 0u64;
        let outbox = &self.core.outboxes[self.index];
        let mut taken = BytesMut::new();

        loop {
            // Taking parks the link when nothing is queued, so that the next frame
            // queued wakes it.
            let frames = outbox.take(&mut taken);
            if frames > 0 {
                counters.add_sent(frames as u64);
                let (blocked, conditions) = self.shared.route(from, self.peer);
                let now = Instant::now();
                let mut rest = std::mem::take(&mut taken).freeze();
                while let Some(frame) = split_frame(&mut rest) {
                    if blocked || lost(rng, conditions.drop_probability) {
                        continue;
                    }
                    let due = now + draw_delay(rng, &conditions.delay);
                    sequence += 1;
                    held.push(Reverse(Held {
                        due,
                        sequence,
                        frame,
                    }));
                }
            }

            // Deliver everything due, in due order, as one batch.
            let now = Instant::now();
            let mut due = Vec::new();
            while held.peek().is_some_and(|Reverse(h)| h.due <= now) {
                if let Some(Reverse(h)) = held.pop() {
                    due.push(h.frame);
                }
            }
            if !due.is_empty() {
                if let Err(reason) = self.deliver(due, target, changes).await {
                    return reason;
                }
            }
            if frames > 0 {
                continue;
            }

            let next_due = held.peek().map(|Reverse(h)| h.due);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return "shut down",
                _ = changes.changed() => {
                    if self.shared.incarnation_of(self.peer) != Some(target.incarnation) {
                        return "peer stopped";
                    }
                }
                _ = sleep_until_some(next_due) => {}
                _ = outbox.queued() => {}
            }
        }
    }

    async fn deliver(
        &self,
        frames: Vec<Bytes>,
        target: &Target<M>,
        changes: &mut watch::Receiver<u64>,
    ) -> Result<(), &'static str> {
        let from = self.core.id;
        let mut batch = Vec::with_capacity(frames.len());
        for frame in frames {
            // Frames were made by our own encoder, so they always hold a header; still,
            // decode them the way a receiving socket would.
            let payload = frame.slice(codec::HEADER_LEN.min(frame.len())..);
            // The receiver's limit, as a socket of the receiving server would apply it.
            match codec::decode_payload::<M>(&payload, target.core.max_frame_size) {
                Ok((message_id, message)) => batch.push(Envelope {
                    from,
                    message_id,
                    message,
                }),
                Err(e) => {
                    let peer = self.peer;
                    tracing::warn!(peer, reason = %e, "malformed input, connection closed");
                    return Err("malformed input");
                }
            }
        }

        let count = batch.len() as u64;
        loop {
            match target.inbound.deliver(&mut batch) {
                Delivered::Taken => break,
                Delivered::Closed => return Err("peer stopped"),
                Delivered::Full => {}
            }
            tokio::select! {
                biased;
                _ = self.core.shutdown.cancelled() => return Err("shut down"),
                _ = target.inbound.room() => {}
                _ = changes.changed() => {
                    if self.shared.incarnation_of(self.peer) != Some(target.incarnation) {
                        return Err("peer stopped");
                    }
                }
            }
        }

        if let Some(index) = target.core.peer_index(from) {
            target.core.counters[index].add_received(count);
        }
        Ok(())
    }
}

/// Splits the first whole frame, length prefix included, off frames queued by this
/// server's own encoder; `None` when none is left.
fn split_frame(frames: &mut Bytes) -> Option<Bytes> {
    let header = frames.get(..codec::HEADER_LEN)?;
    let len = u32::from_be_bytes(header.try_into().ok()?) as usize;
    let end = (codec::HEADER_LEN + len).min(frames.len());
    Some(frames.split_to(end))
}

async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

fn lost(rng: &mut ChaCha8Rng, probability: f64) -> bool {
    probability > 0.0 && rng.random_bool(probability.clamp(0.0, 1.0))
}

fn draw_delay(rng: &mut ChaCha8Rng, range: &RangeInclusive<Duration>) -> Duration {
    if range.start() >= range.end() {
        return *range.start();
    }
    let low = range.start().as_nanos() as u64;
    let high = range.end().as_nanos() as u64;
    Duration::from_nanos(rng.random_range(low..=high))
}

/// A seed of its own for each link and incarnation, so that a link's random choices
/// do not depend on how the tasks of other links were scheduled.
fn link_seed(seed: u64, from: ServerId, to: ServerId, incarnation: u64) -> u64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for part in [from, to, incarnation] {
        x = (x ^ part).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
    }
    x
}
