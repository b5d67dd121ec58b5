//! The simulated network: per-message loss, duplication and delay, and cut links.

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::clock::{Micros, MILLI};
use crate::message::NodeId;

/// How the network treats each message while its link is up.
///
/// Every message independently is lost with probability `drop`; otherwise it arrives
/// after a delay drawn uniformly from `[delay_min, delay_max]`, and with probability
/// `duplicate` a second copy arrives after its own independent delay. Independent
/// delays reorder messages on the same link.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// The probability that a message is lost.
    pub drop: f64,
    /// The probability that a delivered message arrives twice.
    pub duplicate: f64,
    /// The shortest delay, in microseconds.
    pub delay_min: Micros,
    /// The longest delay, in microseconds (inclusive).
    pub delay_max: Micros,
}

impl Default for NetworkConfig {
    /// A healthy LAN: nothing lost or duplicated, 0.5–5 ms per message.
    fn default() -> NetworkConfig {
        NetworkConfig {
            drop: 0.0,
            duplicate: 0.0,
            delay_min: MILLI / 2,
            delay_max: 5 * MILLI,
        }
    }
}

/// The network's state: its settings and the directed links that are cut.
#[derive(Clone, Debug, Default)]
pub(super) struct Network {
    /// Loss, duplication and delay.
    pub(super) config: NetworkConfig,
    /// `(from, to)` pairs whose messages do not arrive. A symmetric cut is two pairs.
    cut: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    /// A network with the given settings and every link up.
    pub(super) fn new(config: NetworkConfig) -> Network {
        Network {
            config,
            cut: BTreeSet::new(),
        }
    }

    /// Whether a message from `from` reaches `to` now.
    pub(super) fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.contains(&(from, to))
    }

    /// Cuts the link from `from` to `to` only; the other direction is unchanged.
    pub(super) fn cut(&mut self, from: NodeId, to: NodeId) {
        if from != to {
            self.cut.insert((from, to));
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub(super) fn cut_both(&mut self, a: NodeId, b: NodeId) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Splits `all` into `groups`; servers named in no group form one more group.
    /// Links inside a group are left as they are; links across groups are cut both ways.
    pub(super) fn partition(&mut self, groups: &[Vec<NodeId>], all: &[NodeId]) {
        let group_of = |id: NodeId| groups.iter().position(|g| g.contains(&id));
        for &a in all {
            for &b in all {
                if group_of(a) != group_of(b) {
                    self.cut(a, b);
                }
            }
        }
    }

    /// Brings every link back up.
    pub(super) fn heal(&mut self) {
        self.cut.clear();
    }

    /// The number of directed links cut.
    pub(super) fn cut_links(&self) -> usize {
        self.cut.len()
    }

    /// The delays after which copies of one message arrive: none if it is lost, two
    /// if it is duplicated.
    pub(super) fn copies(&self, rng: &mut ChaCha8Rng) -> Vec<Micros> {
        let c = &self.config;
        if c.drop > 0.0 && rng.random_bool(c.drop.min(1.0)) {
            return Vec::new();
        }

        let mut delays = vec![self.delay(rng)];
        if c.duplicate > 0.0 && rng.random_bool(c.duplicate.min(1.0)) {
            delays.push(self.delay(rng));
        }
        delays
    }

    fn delay(&self, rng: &mut ChaCha8Rng) -> Micros {
        let c = &self.config;
        if c.delay_max <= c.delay_min {
            c.delay_min
        } else {
            rng.random_range(c.delay_min..=c.delay_max)
        }
    }
}
