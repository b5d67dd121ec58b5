//! The fault schedule: a list of timed actions drawn from a seed before the run starts,
//! so that the same seed always injects the same faults in the same order.

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One action on one server.
///
/// Partitions (netns or iptables) and leadership hand-overs are not here yet. Each
/// would be one more pair of variants (apply and undo, such as `Cut { from, to }` and
/// `Heal`), drawn in [`Schedule::generate`] next to the others and carried out by
/// `apply` in `chaos/mod.rs`; the log analysis needs no change as long as a
/// partitioned server is recorded as down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL, as a crash would.
    Kill(u64),
    /// Start a killed server again from its data directory.
    Restart(u64),
    /// SIGSTOP: the process is frozen with its sockets open.
    Pause(u64),
    /// SIGCONT after a pause.
    Resume(u64),
}

impl Action {
    /// The server the action concerns.
    pub fn server(self) -> u64 {
        match self {
            Action::Kill(id) | Action::Restart(id) => id,
            Action::Pause(id) | Action::Resume(id) => id,
        }
    }

    /// Whether the action takes a server down (a fault) rather than back up.
    pub fn is_fault(self) -> bool {
        matches!(self, Action::Kill(_) | Action::Pause(_))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Kill(id) => write!(f, "SIGKILL {id}"),
            Action::Restart(id) => write!(f, "restart {id}"),
            Action::Pause(id) => write!(f, "SIGSTOP {id}"),
            Action::Resume(id) => write!(f, "SIGCONT {id}"),
        }
    }
}

/// An action and when to carry it out, counted from the start of the faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Offset from the start of the faults.
    pub at: Duration,
    /// What to do.
    pub action: Action,
}

/// Every step of one run, in order, ending with every server up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The steps, by increasing offset.
    pub steps: Vec<Step>,
}

/// Shortest and longest pause between two steps, in milliseconds.
const GAP_MS: (u64, u64) = (300, 2500);

/// Chance that a fault may take one server more than a minority down, so that the
/// cluster also spends time without a majority and must recover from it.
const MAJORITY_LOSS_CHANCE: f64 = 0.15;

/// Chance that a step brings a server back when some are down.
const RECOVER_CHANCE: f64 = 0.5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Down {
    Up,
    Killed,
    Paused,
}

impl Schedule {
    /// Draws the steps for `servers` servers over `duration` from `seed`. The last
    /// steps, at `duration`, bring every server that is down back up.
    pub fn generate(servers: u64, duration: Duration, seed: u64) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut state = vec![Down::Up; servers as usize];
        let minority = (servers as usize - 1) / 2;
        let mut steps = Vec::new();
        let mut at = Duration::ZERO;

        loop {
            at += Duration::from_millis(rng.random_range(GAP_MS.0..=GAP_MS.1));
            if at >= duration {
                break;
            }

            let (up, down): (Vec<usize>, Vec<usize>) =
                (0..state.len()).partition(|&i| state[i] == Down::Up);
            let limit = if rng.random_bool(MAJORITY_LOSS_CHANCE) {
                minority + 1
            } else {
                minority
            };
            let recover =
                !down.is_empty() && (down.len() >= limit || rng.random_bool(RECOVER_CHANCE));

            let action = if recover {
                let index = down[rng.random_range(0..down.len())];
                let id = index as u64 + 1;
                let action = match state[index] {
                    Down::Killed => Action::Restart(id),
                    _ => Action::Resume(id),
                };
                state[index] = Down::Up;
                action
            } else {
                let index = up[rng.random_range(0..up.len())];
                let id = index as u64 + 1;
                if rng.random_bool(0.5) {
                    state[index] = Down::Killed;
                    Action::Kill(id)
                } else {
                    state[index] = Down::Paused;
                    Action::Pause(id)
                }
            };
            steps.push(Step { at, action });
        }

        for (index, down) in state.iter().enumerate() {
            let id = index as u64 + 1;
            let action = match down {
                Down::Up => continue,
                Down::Killed => Action::Restart(id),
                Down::Paused => Action::Resume(id),
            };
            steps.push(Step {
                at: duration,
                action,
            });
        }
        Schedule { steps }
    }

    /// How many faults (kills and pauses) the schedule injects.
    pub fn faults(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| step.action.is_fault())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One seed gives one schedule, so a run can be repeated.
    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = Schedule::generate(5, Duration::from_secs(60), 7);
        let b = Schedule::generate(5, Duration::from_secs(60), 7);
        let c = Schedule::generate(5, Duration::from_secs(60), 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.faults() > 10, "{a:?}");
    }

    /// At most a majority is ever down, every action fits the server's state, and
    /// every server is up at the end.
    #[test]
    fn the_schedule_is_consistent_and_ends_with_everyone_up() {
        for seed in 0..200 {
            let schedule = Schedule::generate(5, Duration::from_secs(120), seed);
            let mut down = std::collections::BTreeSet::new();
            for step in &schedule.steps {
                let id = step.action.server();
                if step.action.is_fault() {
                    assert!(down.insert(id), "seed {seed}: {} while down", step.action);
                } else {
                    assert!(down.remove(&id), "seed {seed}: {} while up", step.action);
                }
                assert!(down.len() <= 3, "seed {seed}: {down:?} down at once");
            }
            assert!(down.is_empty(), "seed {seed}: {down:?} left down");
        }
    }
}
