//! Per-peer counters, updated lock-free by the connection tasks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::config::ServerId;

/// Counters for one peer at the moment of the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Messages written to the connection (TCP) or handed to the network (in-process).
    pub sent: u64,
    /// Messages received from the peer.
    pub received: u64,
    /// Messages dropped because the peer's queue was full.
    pub dropped: u64,
    /// Connections opened to the peer after the first one.
    pub reconnects: u64,
    /// Whether the outbound connection is open.
    pub connected: bool,
}

/// A snapshot of every peer's counters, see [`crate::Server::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Counters by peer id.
    pub peers: BTreeMap<ServerId, PeerStats>,
}

impl ServerStats {
    /// Sums of every peer's counters (`connected` is true if all peers are connected).
    pub fn total(&self) -> PeerStats {
        let mut total = PeerStats {
            connected: true,
            ..PeerStats::default()
        };
        for peer in self.peers.values() {
            total.sent += peer.sent;
            total.received += peer.received;
            total.dropped += peer.dropped;
            total.reconnects += peer.reconnects;
            total.connected &= peer.connected;
        }
        total
    }
}

/// Live counters of one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connected: AtomicBool,
}

impl PeerCounters {
    // Relaxed ordering: the counters are statistics, read independently of each other.
    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks the connection open; counts a reconnect unless it is the first.
    pub(crate) fn mark_connected(&self, first: bool) {
        if !first {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.connected.store(true, Ordering::Relaxed);
    }

    pub(crate) fn mark_disconnected(&self) {
        self.connected.store(false, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> PeerStats {
        PeerStats {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}
