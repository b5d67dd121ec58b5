//! The fault layer: per-peer loss, delay and one-way blocks, injected inside `cluster`
//! for tests and soaks on machines without `tc netem`.
//!
//! It is off unless [`Options::fault_injection`](crate::Options::fault_injection) is
//! set; then [`Server::faults`](crate::Server::faults) returns a [`Faults`] handle that
//! changes a running server's links. Each link (this server and one peer) has its own
//! [`LinkFaults`]:
//!
//! - `block_outgoing`: every message to the peer is dropped before it is queued;
//! - `block_incoming`: every message from the peer is dropped when it is received,
//!   before the layer above sees it;
//! - `delay_min..=delay_max`: each message to the peer waits a uniformly drawn time
//!   before it is queued, independently of the others, so messages may overtake each
//!   other;
//! - `loss`: the share (`0.0..=1.0`) of messages to the peer dropped at random.
//!
//! Faults act on messages only. Connections are dialled, kept and lost as usual, so a
//! blocked link produces no connection event: like a real partition, it is noticed
//! only when timeouts fire. Dropped messages are not counted in
//! [`PeerStats`](crate::PeerStats).
//!
//! When the layer is off, sending and receiving pay one branch on an `Option`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio_util::task::TaskTracker;

use crate::config::ServerId;
use crate::server::Core;

/// The faults of one link, as seen from this server. The default is a healthy link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFaults {
    /// Drop every message sent to the peer.
    pub block_outgoing: bool,
    /// Drop every message received from the peer.
    pub block_incoming: bool,
    /// Shortest extra delay of a message sent to the peer.
    pub delay_min: Duration,
    /// Longest extra delay of a message sent to the peer; at least `delay_min`. Zero
    /// for both means no delay.
    pub delay_max: Duration,
    /// Share of messages sent to the peer that are dropped, within `0.0..=1.0`.
    pub loss: f64,
}

impl LinkFaults {
    /// Whether the link has no fault at all.
    pub fn is_healthy(&self) -> bool {
        *self == LinkFaults::default()
    }

    fn check(&self) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(FaultError::Loss(self.loss));
        }
        if self.delay_min > self.delay_max {
            return Err(FaultError::Delay {
                min: self.delay_min,
                max: self.delay_max,
            });
        }
        Ok(())
    }
}

/// A fault setting was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// The peer is not one of this server's peers.
    #[error("server {0} is not a peer of this server")]
    UnknownPeer(ServerId),
    /// The loss is not a share.
    #[error("loss {0} is not within 0.0..=1.0")]
    Loss(f64),
    /// The delay range is empty.
    #[error("delay minimum {min:?} is above the maximum {max:?}")]
    Delay {
        /// The minimum asked for.
        min: Duration,
        /// The maximum asked for.
        max: Duration,
    },
}

/// What becomes of one message sent to a peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fate {
    /// Sent as usual.
    Send,
    /// Dropped: the link is blocked or the message was lost.
    Drop,
    /// Queued after this long.
    Delay(Duration),
}

/// Every link's faults, shared by the server's senders, its handle and [`Faults`].
#[derive(Debug)]
pub(crate) struct FaultTable {
    /// Peer ids, sorted, as in the server's core.
    peers: Vec<ServerId>,
    links: Vec<Mutex<LinkFaults>>,
    /// Delayed messages wait in tasks tracked with the server's own.
    tasks: TaskTracker,
}

impl FaultTable {
    pub(crate) fn new(peers: Vec<ServerId>, tasks: TaskTracker) -> FaultTable {
        FaultTable {
            links: peers.iter().map(|_| Mutex::default()).collect(),
            peers,
            tasks,
        }
    }

    fn link(&self, index: usize) -> MutexGuard<'_, LinkFaults> {
        // The guarded value is plain data, valid whatever a panicking holder did.
        self.links[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Draws the fate of one message to the peer at `index`.
    pub(crate) fn outgoing(&self, index: usize) -> Fate {
        let link = *self.link(index);
        if link.block_outgoing {
            return Fate::Drop;
        }

        let healthy_delivery = link.loss == 0.0 && link.delay_max.is_zero();
        if healthy_delivery {
            return Fate::Send;
        }

        let mut rng = rand::rng();
        if link.loss > 0.0 && rng.random_bool(link.loss) {
            return Fate::Drop;
        }
        if link.delay_max.is_zero() {
            return Fate::Send;
        }
        Fate::Delay(rng.random_range(link.delay_min..=link.delay_max))
    }

    /// Whether messages from `peer` are to be dropped on receipt.
    pub(crate) fn blocks_incoming(&self, peer: ServerId) -> bool {
        match self.peers.binary_search(&peer) {
            Ok(index) => self.link(index).block_incoming,
            Err(_) => false,
        }
    }

    /// Queues `frame` for the peer at `index` once `delay` has passed, unless the
    /// server stops first.
    pub(crate) fn delay(&self, core: &Arc<Core>, index: usize, frame: Bytes, delay: Duration) {
        // Sending is synchronous and may in principle happen outside a runtime; such a
        // message is sent at once rather than lost.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let _running = core.enqueue(index, &frame);
            return;
        };

        let core = Arc::clone(core);
        let delayed = async move {
            tokio::select! {
                biased;
                _ = core.shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => {
                    // A server stopped meanwhile has nowhere to send it; nothing to do.
                    let _running = core.enqueue(index, &frame);
                }
            }
        };
        runtime.spawn(self.tasks.track_future(delayed));
    }
}

/// A cheap, cloneable handle that changes the fault layer of a running server.
///
/// Obtained from [`Server::faults`](crate::Server::faults) when the fault layer is
/// configured. Changes take effect for the next message sent or received; messages
/// already delayed keep their delay.
#[derive(Debug, Clone)]
pub struct Faults {
    table: Arc<FaultTable>,
}

impl Faults {
    pub(crate) fn new(table: Arc<FaultTable>) -> Faults {
        Faults { table }
    }

    fn index(&self, peer: ServerId) -> Result<usize, FaultError> {
        self.table
            .peers
            .binary_search(&peer)
            .map_err(|_| FaultError::UnknownPeer(peer))
    }

    /// The faults of the link to `peer`.
    pub fn link(&self, peer: ServerId) -> Result<LinkFaults, FaultError> {
        let index = self.index(peer)?;
        Ok(*self.table.link(index))
    }

    /// Changes the faults of the link to `peer` with `change` and returns the result.
    /// Nothing changes if the result is invalid.
    pub fn update(
        &self,
        peer: ServerId,
        change: impl FnOnce(&mut LinkFaults),
    ) -> Result<LinkFaults, FaultError> {
        let index = self.index(peer)?;
        let mut link = self.table.link(index);
        let mut changed = *link;
        change(&mut changed);
        changed.check()?;

        if changed != *link {
            tracing::info!(
                peer,
                block_outgoing = changed.block_outgoing,
                block_incoming = changed.block_incoming,
                delay_min_ms = changed.delay_min.as_millis() as u64,
                delay_max_ms = changed.delay_max.as_millis() as u64,
                loss = changed.loss,
                "link faults changed"
            );
        }
        *link = changed;
        Ok(changed)
    }

    /// Replaces the faults of the link to `peer`.
    pub fn set_link(&self, peer: ServerId, faults: LinkFaults) -> Result<(), FaultError> {
        self.update(peer, |link| *link = faults).map(|_| ())
    }

    /// Drops every message to and from `peer`.
    pub fn block(&self, peer: ServerId) -> Result<(), FaultError> {
        self.update(peer, |link| {
            link.block_outgoing = true;
            link.block_incoming = true;
        })
        .map(|_| ())
    }

    /// Drops every message to `peer`.
    pub fn block_outgoing(&self, peer: ServerId) -> Result<(), FaultError> {
        self.update(peer, |link| link.block_outgoing = true)
            .map(|_| ())
    }

    /// Drops every message from `peer`.
    pub fn block_incoming(&self, peer: ServerId) -> Result<(), FaultError> {
        self.update(peer, |link| link.block_incoming = true)
            .map(|_| ())
    }

    /// Delays each message to `peer` by a uniform random time in `min..=max`; zero for
    /// both clears the delay.
    pub fn set_delay(
        &self,
        peer: ServerId,
        min: Duration,
        max: Duration,
    ) -> Result<(), FaultError> {
        self.update(peer, |link| {
            link.delay_min = min;
            link.delay_max = max;
        })
        .map(|_| ())
    }

    /// Drops the share `loss` (within `0.0..=1.0`) of the messages to `peer`.
    pub fn set_loss(&self, peer: ServerId, loss: f64) -> Result<(), FaultError> {
        self.update(peer, |link| link.loss = loss).map(|_| ())
    }

    /// Clears every fault of every link.
    pub fn heal(&self) {
        for &peer in &self.table.peers {
            // Cannot fail: the peer is one of ours and a healthy link is valid.
            let _ = self.set_link(peer, LinkFaults::default());
        }
    }

    /// Every peer and the faults of its link, by peer id.
    pub fn links(&self) -> Vec<(ServerId, LinkFaults)> {
        let table = &self.table;
        let faults = (0..table.peers.len()).map(|index| *table.link(index));
        table.peers.iter().copied().zip(faults).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> FaultTable {
        FaultTable::new(vec![2, 3], TaskTracker::new())
    }

    #[test]
    fn a_healthy_link_sends_everything() {
        let table = table();
        assert!((0..1000).all(|_| table.outgoing(0) == Fate::Send));
        assert!(!table.blocks_incoming(2));
    }

    #[test]
    fn blocks_act_on_their_direction_and_peer_only() {
        let table = Arc::new(table());
        let faults = Faults::new(Arc::clone(&table));

        faults.block_outgoing(2).unwrap();
        assert_eq!(table.outgoing(0), Fate::Drop);
        assert!(!table.blocks_incoming(2));
        assert_eq!(table.outgoing(1), Fate::Send);

        faults.block_incoming(3).unwrap();
        assert!(table.blocks_incoming(3));
        assert_eq!(table.outgoing(1), Fate::Send);

        faults.block(2).unwrap();
        assert!(table.blocks_incoming(2));
        assert_eq!(table.outgoing(0), Fate::Drop);
    }

    #[test]
    fn delays_are_drawn_within_the_range_and_vary() {
        let table = Arc::new(table());
        let faults = Faults::new(Arc::clone(&table));
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(20));
        faults.set_delay(3, min, max).unwrap();

        let delays: Vec<Duration> = (0..200)
            .map(|_| match table.outgoing(1) {
                Fate::Delay(delay) => delay,
                other => panic!("expected a delay, got {other:?}"),
            })
            .collect();
        assert!(delays.iter().all(|d| (min..=max).contains(d)), "{delays:?}");
        assert!(delays.iter().any(|d| *d != delays[0]), "all delays equal");
        assert_eq!(table.outgoing(0), Fate::Send, "another peer is not delayed");
    }

    #[test]
    fn loss_drops_about_the_share_asked_for() {
        let table = Arc::new(table());
        let faults = Faults::new(Arc::clone(&table));
        faults.set_loss(2, 0.3).unwrap();

        let dropped = (0..10_000)
            .filter(|_| table.outgoing(0) == Fate::Drop)
            .count();
        // 3000 expected; the standard deviation is about 46, so this bound is ~10σ.
        assert!(
            (2500..=3500).contains(&dropped),
            "dropped {dropped} of 10000"
        );

        faults.set_loss(2, 1.0).unwrap();
        assert!((0..100).all(|_| table.outgoing(0) == Fate::Drop));
    }

    #[test]
    fn invalid_settings_are_refused_and_change_nothing() {
        let faults = Faults::new(Arc::new(table()));
        faults.set_loss(2, 0.5).unwrap();

        assert_eq!(faults.set_loss(2, 1.5), Err(FaultError::Loss(1.5)));
        assert_eq!(faults.set_loss(9, 0.1), Err(FaultError::UnknownPeer(9)));
        let (short, long) = (Duration::from_millis(1), Duration::from_millis(2));
        assert!(matches!(
            faults.set_delay(2, long, short),
            Err(FaultError::Delay { .. })
        ));
        assert_eq!(faults.link(2).unwrap().loss, 0.5);
        assert_eq!(faults.link(2).unwrap().delay_max, Duration::ZERO);
    }

    #[test]
    fn heal_clears_every_link() {
        let faults = Faults::new(Arc::new(table()));
        faults.block(2).unwrap();
        faults.set_loss(3, 0.2).unwrap();

        faults.heal();
        assert!(faults.links().iter().all(|(_, link)| link.is_healthy()));
        assert_eq!(
            faults.links().iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [2, 3]
        );
    }
}
