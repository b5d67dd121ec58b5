//! Virtual time and the drifting clocks that drive each server's ticks.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A point in virtual time, in microseconds since the simulation started.
pub type Micros = u64;

/// Microseconds in one millisecond, to write durations readably.
pub const MILLI: Micros = 1_000;

/// Microseconds in one second.
pub const SECOND: Micros = 1_000_000;

/// The nominal length of one tick: 10 ms, so the default election timeout of 15–30
/// ticks lasts 150–300 ms.
pub const DEFAULT_TICK: Micros = 10 * MILLI;

/// One server's clock: it ticks every `period` microseconds, starting `phase` after
/// it boots. Servers get slightly different periods so that their timers drift apart
/// as real quartz clocks do, instead of firing in lock step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Clock {
    /// The time between two ticks.
    pub(super) period: Micros,
    /// The delay from boot to the first tick.
    pub(super) phase: Micros,
}

impl Clock {
    /// A clock whose period is `base × f` with `f` uniform in `[1 − drift, 1 + drift]`
    /// and whose phase is uniform in `[0, period)`.
    pub(super) fn random(base: Micros, drift: f64, rng: &mut ChaCha8Rng) -> Clock {
        let factor = if drift > 0.0 {
            rng.random_range(1.0 - drift..=1.0 + drift)
        } else {
            1.0
        };
        // Rounding keeps a period of at least one microsecond, so time always advances.
        let period = ((base as f64 * factor).round() as Micros).max(1);
        Clock {
            period,
            phase: Clock::random_phase(period, rng),
        }
    }

    /// A fresh phase for a server that restarts: a reboot does not line up with the
    /// old tick grid.
    pub(super) fn random_phase(period: Micros, rng: &mut ChaCha8Rng) -> Micros {
        rng.random_range(0..period)
    }
}

/// Formats a virtual time as seconds with millisecond and microsecond digits.
pub(super) fn format_time(t: Micros) -> String {
    format!("{:>4}.{:06}s", t / SECOND, t % SECOND)
}
