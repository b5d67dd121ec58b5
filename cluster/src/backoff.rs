//! Capped exponential backoff with jitter for re-dialling peers.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Options;

/// Pauses between dial attempts: doubling from the initial pause up to the cap, each
/// shortened by a random fraction of at most `jitter`, so it never exceeds the cap.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    next: Duration,
    rng: ChaCha8Rng,
}

impl Backoff {
    pub(crate) fn new(options: &Options, seed: u64) -> Backoff {
        Backoff {
            initial: options.reconnect_initial,
            max: options.reconnect_max,
            jitter: options.reconnect_jitter,
            next: options.reconnect_initial,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The pause to take now; the following one will be twice as long, up to the cap.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let base = self.next.min(self.max);
        self.next = base.saturating_mul(2).min(self.max);

        let cut = if self.jitter > 0.0 {
            self.rng.random_range(0.0..=self.jitter)
        } else {
            0.0
        };
        base.mul_f64(1.0 - cut)
    }

    /// Starts again from the initial pause, after a successful connection.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_never_exceed_the_cap() {
        let options = Options::default();
        let mut backoff = Backoff::new(&options, 7);
        let pauses: Vec<Duration> = (0..20).map(|_| backoff.next_pause()).collect();

        assert!(pauses.iter().all(|p| *p <= options.reconnect_max));
        assert!(pauses[0] <= options.reconnect_initial);
        assert!(
            pauses[19]
                >= options
                    .reconnect_max
                    .mul_f64(1.0 - options.reconnect_jitter)
        );

        backoff.reset();
        assert!(backoff.next_pause() <= options.reconnect_initial);
    }
}
