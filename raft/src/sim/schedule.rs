//! Random fault schedules derived from a seed, and the run that checks one.
//!
//! A seeded run has two phases. During the *fault phase* a random list of actions
//! (partitions of three kinds, message loss, duplication and delay, crashes including
//! crashes between persisting and sending, restarts, forced campaigns, false crash
//! hints, leadership transfers) is applied at
//! random times. Then comes the *quiet phase*: every link heals, loss and duplication
//! stop, crashed servers restart (a random minority may stay down), and the run checks
//! that a leader every running server follows appears within [`liveness_bound`] and
//! then keeps its role and term for [`STABLE_STRETCH_TIMEOUTS`] election timeouts.

use std::panic::{self, AssertUnwindSafe};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::action::Action;
use super::clock::{Micros, MILLI, SECOND};
use super::cluster::{SimBuilder, SimStats, Simulation};
use super::failure::Failure;
use super::invariants::{Invariant, Violation};
use super::network::NetworkConfig;
use crate::config::Config;
use crate::message::{NodeId, Term};
use crate::output::Role;

/// The largest cluster a seeded run picks.
pub const MAX_SIZE: usize = 7;

/// The relative clock drift of seeded runs: periods within ±5 % of nominal.
pub const DRIFT: f64 = 0.05;

/// The longest message delay in the quiet phase, in microseconds.
pub const QUIET_DELAY_MAX: Micros = 5 * MILLI;

/// The longest message delay ever scheduled, in microseconds. It stays well below the
/// gap between a heartbeat interval and the shortest election timeout, so that a
/// healthy leader's heartbeats always arrive in time.
pub const FAULT_DELAY_MAX: Micros = 40 * MILLI;

/// The share of seeds with aggressive timing: election timeouts of 2–20 ticks and
/// heartbeats from 1 tick, so that message delays rival the timeouts and elections
/// churn. The liveness bound is derived for the default timeouts, so these seeds check
/// the safety invariants only, through the fault phase and [`SAFETY_ONLY_QUIET`] of
/// quiet.
pub const AGGRESSIVE_SHARE: f64 = 0.2;

/// How long seeds with aggressive timing run after their faults stop.
pub const SAFETY_ONLY_QUIET: Micros = SECOND;

/// How many maximum election timeouts after the quiet phase starts a leader must be
/// agreed on: see [`liveness_bound`].
pub const LIVENESS_TIMEOUTS: u64 = 12;

/// How many maximum election timeouts the agreed leader must then keep its role.
pub const STABLE_STRETCH_TIMEOUTS: u64 = 5;

/// The virtual time within which a leader must be agreed on once faults stop, for
/// servers with `config`'s timeouts and nominal tick `tick`:
/// [`LIVENESS_TIMEOUTS`] maximum election timeouts of the slowest possible clock.
/// The module documentation derives it.
pub fn liveness_bound(config: &Config, tick: Micros) -> Micros {
    LIVENESS_TIMEOUTS * config.election_timeout_max * slowest_tick(tick)
}

/// The longest tick period a clock of nominal period `tick` can have.
fn slowest_tick(tick: Micros) -> Micros {
    (tick as f64 * (1.0 + DRIFT)).ceil() as Micros
}

/// How a seeded run is set up beyond its seed.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Forces the cluster size instead of deriving it from the seed.
    pub size: Option<usize>,
    /// How many trace lines to keep; `None` keeps the default ring buffer.
    pub trace_capacity: Option<usize>,
    /// The replay command to print on failure; `None` prints the test's command.
    pub replay: Option<String>,
}

/// What a successful seeded run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The number of servers.
    pub size: usize,
    /// Whether pre-vote was on.
    pub pre_vote: bool,
    /// Whether check-quorum was on.
    pub check_quorum: bool,
    /// How many actions the fault phase applied.
    pub faults: usize,
    /// Whether the run used aggressive timing and so checked safety only.
    pub aggressive_timing: bool,
    /// How long after the quiet phase started a leader was agreed on (not checked,
    /// `None`, with aggressive timing).
    pub elected_after: Option<Micros>,
    /// The agreed leader and its term (`None` with aggressive timing).
    pub leader: Option<(NodeId, Term)>,
    /// How many events (ticks and deliveries) ran.
    pub steps: u64,
    /// The virtual time at the end.
    pub duration: Micros,
    /// What the simulation did.
    pub stats: SimStats,
    /// The highest term any server reached.
    pub max_term: Term,
}

/// One seed's scenario: cluster, settings and the timed actions of its fault phase.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The number of servers.
    pub size: usize,
    /// The configuration template (pre-vote and check-quorum switched per seed).
    pub config: Config,
    /// The network at the start.
    pub network: NetworkConfig,
    /// The actions of the fault phase, by time.
    pub faults: Vec<(Micros, Action)>,
    /// When the fault phase ends and the quiet phase starts.
    pub quiet_at: Micros,
    /// Servers left down in the quiet phase. With [`Schedule::stay_cut_off`], always a
    /// minority.
    pub stay_down: Vec<NodeId>,
    /// Servers left running but cut off from every other server in the quiet phase.
    pub stay_cut_off: Vec<NodeId>,
    /// Whether the timeouts are short (2–20 ticks, heartbeat from 1 tick) instead of
    /// the defaults; such runs check safety only, see [`AGGRESSIVE_SHARE`].
    pub aggressive_timing: bool,
}

impl Schedule {
    /// The servers that are up and connected in the quiet phase: a majority.
    pub fn quiet_majority(&self) -> Vec<NodeId> {
        (1..=self.size as NodeId)
            .filter(|id| !self.stay_down.contains(id) && !self.stay_cut_off.contains(id))
            .collect()
    }
}

impl Schedule {
    /// The schedule of `seed`, with the size forced if `size` is given.
    pub fn generate(seed: u64, size: Option<usize>) -> Schedule {
        // A stream separate from the simulation's own, so that changing the schedule
        // generator does not shift every network draw, and the other way round.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);

        let size = size.unwrap_or_else(|| rng.random_range(1..=MAX_SIZE));
        let ids: Vec<NodeId> = (1..=size as NodeId).collect();
        let mut config = Config {
            pre_vote: rng.random_bool(0.5),
            check_quorum: rng.random_bool(0.5),
            crash_hint: rng.random_bool(0.75),
            ..Config::new(1, ids.iter().copied())
        };
        // Some seeds run timeouts so short that message delays rival them: elections
        // never stop during the faults, which stresses safety. The liveness bound's
        // derivation does not hold for them, so they check safety only.
        let aggressive_timing = rng.random_bool(AGGRESSIVE_SHARE);
        if aggressive_timing {
            config.election_timeout_min = rng.random_range(2..=10);
            config.election_timeout_max = rng
                .random_range(config.election_timeout_min + 1..=config.election_timeout_min + 10);
            config.heartbeat_interval = rng.random_range(1..config.election_timeout_min);
        }
        let network = NetworkConfig {
            drop: 0.0,
            duplicate: 0.0,
            delay_min: rng.random_range(100..=MILLI),
            delay_max: rng.random_range(2 * MILLI..=QUIET_DELAY_MAX),
        };

        let quiet_at = rng.random_range(SECOND / 2..=5 * SECOND);
        let count = rng.random_range(0..=16);
        let mut times: Vec<Micros> = (0..count).map(|_| rng.random_range(0..quiet_at)).collect();
        times.sort_unstable();
        let mut down = Vec::new();
        let faults: Vec<(Micros, Action)> = times
            .into_iter()
            .map(|t| (t, random_action(&mut rng, &ids, &mut down)))
            .collect();

        // Sometimes a minority stays out of the quiet phase, each of its servers
        // either crashed or running but cut off.
        let (mut stay_down, mut stay_cut_off) = (Vec::new(), Vec::new());
        if rng.random_bool(0.3) {
            let mut shuffled = ids.clone();
            shuffled.shuffle(&mut rng);
            let minority = (size - 1) / 2;
            for &id in &shuffled[..rng.random_range(0..=minority)] {
                if rng.random_bool(0.5) {
                    stay_down.push(id);
                } else {
                    stay_cut_off.push(id);
                }
            }
            stay_down.sort_unstable();
            stay_cut_off.sort_unstable();
        }

        Schedule {
            size,
            config,
            network,
            faults,
            quiet_at,
            stay_down,
            stay_cut_off,
            aggressive_timing,
        }
    }
}

/// One random action. `down` tracks the servers the schedule has crashed so far, so
/// that crashes mostly hit running servers and restarts mostly crashed ones (a crash
/// armed to follow a persist may or may not fire, so it is not tracked).
fn random_action(rng: &mut ChaCha8Rng, ids: &[NodeId], down: &mut Vec<NodeId>) -> Action {
    let pick = |rng: &mut ChaCha8Rng, from: &[NodeId]| from[rng.random_range(0..from.len())];
    let up: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|id| !down.contains(id))
        .collect();
    match rng.random_range(0..110) {
        0..=11 => {
            // Symmetric partition into two or three random groups.
            let groups = rng.random_range(2..=3);
            let mut split = vec![Vec::new(); groups];
            for &id in ids {
                split[rng.random_range(0..groups)].push(id);
            }
            Action::Partition(split)
        }
        12..=21 => {
            let from = pick(rng, ids);
            let to = pick(rng, ids);
            Action::CutOneWay { from, to }
        }
        22..=31 => {
            // With a third server reaching both, this is a partial partition.
            let a = pick(rng, ids);
            let b = pick(rng, ids);
            Action::CutPair(a, b)
        }
        32..=36 => Action::Isolate(pick(rng, ids)),
        37..=46 => Action::Heal,
        47..=58 if !up.is_empty() => {
            let id = pick(rng, &up);
            down.push(id);
            Action::Crash(id)
        }
        59..=64 => Action::CrashAfterPersist(pick(rng, ids)),
        47..=78 if !down.is_empty() => {
            let id = down.swap_remove(rng.random_range(0..down.len()));
            Action::Restart(id)
        }
        47..=78 => Action::Restart(pick(rng, ids)),
        79..=84 => Action::SetDrop(rng.random_range(0.0..0.5)),
        85..=89 => Action::SetDuplicate(rng.random_range(0.0..0.3)),
        90..=94 => {
            let min = rng.random_range(0..=5 * MILLI);
            let max = rng.random_range(min..=FAULT_DELAY_MAX);
            Action::SetDelay { min, max }
        }
        95..=99 => Action::Campaign(pick(rng, ids)),
        100..=104 => {
            // A connection breaks while both processes live: when `peer` leads, the
            // hint is false and must not depose it.
            let observer = pick(rng, ids);
            let peer = pick(rng, ids);
            Action::ConnectionLost { observer, peer }
        }
        _ => Action::TransferLeadership { to: pick(rng, ids) },
    }
}

/// The command that replays `seed` alone through the test suite, printing its trace.
pub fn replay_command(seed: u64, size: Option<usize>) -> String {
    let size_env = size
        .map(|n| format!("RAFT_SIM_SIZE={n} "))
        .unwrap_or_default();
    let size_arg = size.map(|n| format!(" --size {n}")).unwrap_or_default();
    format!(
        "RAFT_SIM_SEED={seed} {size_env}cargo test -p raft --test simulation -- --nocapture  \
         (or: cargo run -p raft --release --example simulate -- --seed {seed}{size_arg} \
         --trace)"
    )
}

/// Runs seed `seed`: its fault phase, then the quiet phase with the liveness and
/// stability checks. A panic inside the core is reported as a failure too.
pub fn run_seed(seed: u64, options: &RunOptions) -> Result<RunReport, Box<Failure>> {
    let (report, _) = run_seed_keeping_simulation(seed, options);
    report
}

/// Like [`run_seed`], also handing back the simulation for its trace (after a panic
/// in the core, only the trace is meaningful).
pub fn run_seed_keeping_simulation(
    seed: u64,
    options: &RunOptions,
) -> (Result<RunReport, Box<Failure>>, Option<Simulation>) {
    let schedule = Schedule::generate(seed, options.size);
    let replay = options
        .replay
        .clone()
        .unwrap_or_else(|| replay_command(seed, options.size));
    let mut builder = SimBuilder::new(schedule.size, seed)
        .config(schedule.config.clone())
        .drift(DRIFT)
        .network(schedule.network.clone())
        .replay_command(replay.clone());
    if let Some(lines) = options.trace_capacity {
        builder = builder.trace_capacity(lines);
    }
    let mut sim = match builder.build() {
        Ok(sim) => sim,
        Err(e) => {
            let violation = Violation::new(Invariant::Scenario, format!("bad config: {e}"));
            return (Err(Box::new(bare_failure(seed, violation, replay))), None);
        }
    };

    // The simulation outlives a panic inside the core, so its trace up to the failing
    // step still goes into the report.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| drive(&mut sim, &schedule)));
    match outcome {
        Ok(report) => (report, Some(sim)),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".to_string());
            let step = sim
                .interrupted_step()
                .unwrap_or_else(|| "an action of the schedule".to_string());
            let violation = Violation::new(
                Invariant::CorePanicked,
                format!("{message} (while handling {step})"),
            );
            (Err(sim.failure_report(violation)), Some(sim))
        }
    }
}

fn bare_failure(seed: u64, violation: Violation, replay: String) -> Failure {
    Failure {
        seed,
        time: 0,
        violation,
        replay,
        trace_tail: String::new(),
    }
}

fn drive(sim: &mut Simulation, schedule: &Schedule) -> Result<RunReport, Box<Failure>> {
    for (at, action) in &schedule.faults {
        sim.try_run_until(*at, |_| false)?;
        sim.try_apply(action.clone())?;
    }
    sim.try_run_until(schedule.quiet_at, |_| false)?;

    quiet_down(sim, schedule)?;
    let elected = if schedule.aggressive_timing {
        sim.try_run_for(SAFETY_ONLY_QUIET)?;
        None
    } else {
        let majority = schedule.quiet_majority();
        Some(check_liveness_among(sim, &schedule.config, &majority)?)
    };

    Ok(RunReport {
        seed: sim.seed(),
        size: schedule.size,
        pre_vote: schedule.config.pre_vote,
        check_quorum: schedule.config.check_quorum,
        faults: schedule.faults.len(),
        aggressive_timing: schedule.aggressive_timing,
        elected_after: elected.map(|e| e.agreed_after),
        leader: elected.map(|e| (e.leader, e.term)),
        steps: sim.steps(),
        duration: sim.now(),
        stats: sim.stats().clone(),
        max_term: sim.max_term(),
    })
}

/// The outcome of [`check_liveness`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elected {
    /// The leader every running server follows.
    pub leader: NodeId,
    /// Its term.
    pub term: Term,
    /// How long after the check started all running servers first agreed on a leader
    /// (possibly an earlier one, replaced while stale timers ran out).
    pub agreed_after: Micros,
}

/// Checks liveness from now on, assuming faults have just stopped and a majority of
/// the servers is running and connected: within [`liveness_bound`] all running servers
/// must follow one leader, observed at least one maximum election timeout from now
/// (stale timers and leases of the fault phase have run out by then), and that leader
/// must keep its role and term for [`STABLE_STRETCH_TIMEOUTS`] maximum election
/// timeouts more. `config` gives the servers' timeouts.
pub fn check_liveness(sim: &mut Simulation, config: &Config) -> Result<Elected, Box<Failure>> {
    let all = sim.ids().to_vec();
    check_liveness_among(sim, config, &all)
}

/// [`check_liveness`] for the servers of `group` only, which must be a connected
/// majority: the others may be down or cut off, and whatever they believe is ignored.
pub fn check_liveness_among(
    sim: &mut Simulation,
    config: &Config,
    group: &[NodeId],
) -> Result<Elected, Box<Failure>> {
    let start = sim.now();
    let slowest = slowest_tick(sim.tick());
    let bound = liveness_bound(config, sim.tick());
    let settled = start + config.election_timeout_max * slowest;

    let mut first_agreed = None;
    let elected = sim.try_run_until(start + bound, |s| {
        let agreed = s.agreed_leader_among(group).is_some();
        if agreed && first_agreed.is_none() {
            first_agreed = Some(s.now());
        }
        agreed && s.now() >= settled
    })?;
    if !elected {
        let detail = format!(
            "no leader agreed on by {group:?} within {} ms after faults stopped at {} ms \
             (bound: {LIVENESS_TIMEOUTS} x election_timeout_max); roles: {}",
            bound / MILLI,
            start / MILLI,
            roles(sim)
        );
        return Err(sim.failure_report(Violation::new(Invariant::Liveness, detail)));
    }

    let agreed_after = first_agreed.unwrap_or(sim.now()) - start;
    // Cannot fail because the predicate that just held requires an agreed leader.
    let (leader, term) = sim
        .agreed_leader_among(group)
        .expect("the run stopped because a leader was agreed on");
    sim.note(format!("leader s{leader} agreed on in term {term}"));

    let stretch = STABLE_STRETCH_TIMEOUTS * config.election_timeout_max * slowest;
    let changed = sim.try_run_until(sim.now() + stretch, |s| {
        let newer = group
            .iter()
            .any(|&id| s.term(id).is_some_and(|t| t != term));
        s.role(leader) != Some(Role::Leader) || newer
    })?;
    if changed {
        let detail = format!(
            "s{leader} led term {term} with nothing failing but lost it; roles: {}",
            roles(sim)
        );
        return Err(sim.failure_report(Violation::new(Invariant::StableLeadership, detail)));
    }

    Ok(Elected {
        leader,
        term,
        agreed_after,
    })
}

/// Ends every fault: links heal, nothing is lost or duplicated, delays are short, and
/// crashed servers restart, except the minority the schedule keeps down or cut off.
fn quiet_down(sim: &mut Simulation, schedule: &Schedule) -> Result<(), Box<Failure>> {
    sim.note("faults stop: quiet phase");
    sim.try_apply(Action::Heal)?;
    sim.try_apply(Action::SetDrop(0.0))?;
    sim.try_apply(Action::SetDuplicate(0.0))?;
    sim.try_apply(Action::SetDelay {
        min: schedule.network.delay_min,
        max: schedule.network.delay_max,
    })?;

    for id in sim.ids().to_vec() {
        let up = sim.is_up(id);
        if schedule.stay_down.contains(&id) {
            if up {
                sim.try_apply(Action::Crash(id))?;
            }
            continue;
        }

        if !up {
            sim.try_apply(Action::Restart(id))?;
        } else if sim.crash_armed(id) {
            sim.try_apply(Action::Disarm(id))?;
        }
        if schedule.stay_cut_off.contains(&id) {
            sim.try_apply(Action::Isolate(id))?;
        }
    }
    Ok(())
}

fn roles(sim: &Simulation) -> String {
    let parts: Vec<String> = sim
        .ids()
        .iter()
        .map(|&id| match sim.node(id) {
            Some(n) => format!("s{id}={} t{} leader {:?}", n.role(), n.term(), n.leader()),
            None => format!("s{id}=down"),
        })
        .collect();
    parts.join(", ")
}
