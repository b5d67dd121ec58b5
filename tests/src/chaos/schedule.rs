//! The fault schedule: a list of timed actions drawn from a seed before the run starts,
//! so that the same seed always injects the same faults in the same order.

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One action on one server, or a hand-over by whichever server leads.
///
/// Partitions are made with the fault commands of the status ports (`cluster`'s fault
/// layer), not with iptables, so that the soak needs no root: a partitioned server
/// keeps its connections but drops what it would send and, when isolated, what it
/// receives. The analysis counts a partitioned server as down, as it counts a killed
/// or paused one.
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
    /// Cut the server off from every peer, both ways (`block` of every peer).
    Isolate(u64),
    /// Cut the server's messages to every peer, while it still hears them
    /// (`block-out` of every peer): a one-way partition.
    Mute(u64),
    /// Heal an isolated or muted server (`heal`).
    Rejoin(u64),
    /// Ask the leader, if there is one, to hand its leadership to a peer (`transfer`).
    Transfer,
}

impl Action {
    /// The server the action concerns; `None` for a hand-over, which goes to whichever
    /// server leads at the time.
    pub fn server(self) -> Option<u64> {
        match self {
            Action::Kill(id) | Action::Restart(id) => Some(id),
            Action::Pause(id) | Action::Resume(id) => Some(id),
            Action::Isolate(id) | Action::Mute(id) | Action::Rejoin(id) => Some(id),
            Action::Transfer => None,
        }
    }

    /// Whether the action takes a server down or cuts it off (a fault) rather than
    /// bringing it back.
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            Action::Kill(_) | Action::Pause(_) | Action::Isolate(_) | Action::Mute(_)
        )
    }

    /// Whether the action brings a server back.
    pub fn is_recovery(self) -> bool {
        matches!(
            self,
            Action::Restart(_) | Action::Resume(_) | Action::Rejoin(_)
        )
    }

    /// A short name of the kind of action, for counts.
    pub fn kind(self) -> &'static str {
        match self {
            Action::Kill(_) => "SIGKILL",
            Action::Restart(_) => "restart",
            Action::Pause(_) => "SIGSTOP",
            Action::Resume(_) => "SIGCONT",
            Action::Isolate(_) => "isolate",
            Action::Mute(_) => "mute",
            Action::Rejoin(_) => "heal",
            Action::Transfer => "transfer",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Kill(id) => write!(f, "SIGKILL {id}"),
            Action::Restart(id) => write!(f, "restart {id}"),
            Action::Pause(id) => write!(f, "SIGSTOP {id}"),
            Action::Resume(id) => write!(f, "SIGCONT {id}"),
            Action::Isolate(id) => write!(f, "isolate {id}"),
            Action::Mute(id) => write!(f, "mute {id}"),
            Action::Rejoin(id) => write!(f, "heal {id}"),
            Action::Transfer => write!(f, "transfer"),
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

/// Chance that a step is a leadership hand-over rather than a fault or a recovery.
const TRANSFER_CHANCE: f64 = 0.15;

/// How a fault is drawn: SIGKILL, SIGSTOP, isolation, then one-way cut, with these
/// cumulative chances.
const FAULT_KINDS: [(f64, Down); 4] = [
    (0.3, Down::Killed),
    (0.6, Down::Paused),
    (0.85, Down::Isolated),
    (1.0, Down::Muted),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Down {
    Up,
    Killed,
    Paused,
    Isolated,
    Muted,
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
            if rng.random_bool(TRANSFER_CHANCE) {
                steps.push(Step {
                    at,
                    action: Action::Transfer,
                });
                continue;
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
                let action = recovery(state[index], id);
                state[index] = Down::Up;
                action
            } else {
                let index = up[rng.random_range(0..up.len())];
                let id = index as u64 + 1;
                let draw: f64 = rng.random();
                let kind = FAULT_KINDS
                    .iter()
                    .find(|(chance, _)| draw < *chance)
                    .map_or(Down::Muted, |&(_, kind)| kind);
                state[index] = kind;
                match kind {
                    Down::Killed => Action::Kill(id),
                    Down::Paused => Action::Pause(id),
                    Down::Isolated => Action::Isolate(id),
                    Down::Up | Down::Muted => Action::Mute(id),
                }
            };
            steps.push(Step { at, action });
        }

        for (index, &down) in state.iter().enumerate() {
            if down == Down::Up {
                continue;
            }
            steps.push(Step {
                at: duration,
                action: recovery(down, index as u64 + 1),
            });
        }
        Schedule { steps }
    }

    /// How many faults (kills, pauses and partitions) the schedule injects.
    pub fn faults(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| step.action.is_fault())
            .count()
    }
}

/// The action that brings server `id` back from `down`.
fn recovery(down: Down, id: u64) -> Action {
    match down {
        Down::Killed => Action::Restart(id),
        Down::Paused => Action::Resume(id),
        Down::Up | Down::Isolated | Down::Muted => Action::Rejoin(id),
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
            let mut down = std::collections::BTreeMap::new();
            for step in &schedule.steps {
                let Some(id) = step.action.server() else {
                    continue;
                };
                if step.action.is_fault() {
                    let earlier = down.insert(id, step.action);
                    assert!(earlier.is_none(), "seed {seed}: {} while down", step.action);
                } else {
                    let fault = down.remove(&id);
                    let undone = fault.and_then(|fault| recovery_of(fault, id));
                    assert_eq!(undone, Some(step.action), "seed {seed}: {}", step.action);
                }
                assert!(down.len() <= 3, "seed {seed}: {down:?} down at once");
            }
            assert!(down.is_empty(), "seed {seed}: {down:?} left down");
        }
    }

    fn recovery_of(fault: Action, id: u64) -> Option<Action> {
        match fault {
            Action::Kill(_) => Some(Action::Restart(id)),
            Action::Pause(_) => Some(Action::Resume(id)),
            Action::Isolate(_) | Action::Mute(_) => Some(Action::Rejoin(id)),
            _ => None,
        }
    }

    /// A long schedule draws every kind of action.
    #[test]
    fn a_long_schedule_has_every_kind_of_action() {
        let schedule = Schedule::generate(5, Duration::from_secs(600), 3);
        let kinds: std::collections::BTreeSet<&str> = schedule
            .steps
            .iter()
            .map(|step| step.action.kind())
            .collect();
        let all = [
            "SIGKILL", "restart", "SIGSTOP", "SIGCONT", "isolate", "mute", "heal", "transfer",
        ];
        assert_eq!(kinds, all.into_iter().collect(), "{schedule:?}");
    }
}
