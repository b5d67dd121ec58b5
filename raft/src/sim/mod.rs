//! Deterministic simulation of a cluster of election cores on virtual time.
//!
//! # What is simulated
//!
//! [`Simulation`] runs `n` servers, each a [`Node`](crate::Node) with its own "disk"
//! (the last [`HardState`](crate::HardState) it persisted, which survives crashes), on
//! virtual time counted in microseconds. One priority queue, keyed by (time, sequence
//! number), holds every pending tick and message delivery, so two runs with the same
//! seed execute the same steps in the same order. All randomness — clock rates, message
//! fates, the cores' election timeouts, fault schedules — comes from `ChaCha8Rng`
//! streams seeded from one `u64`; only `BTreeMap`s and `Vec`s are iterated.
//!
//! - **Clocks**: server `i` ticks every `10 ms × fᵢ` with `fᵢ` uniform in
//!   `[0.95, 1.05]`, starting at a random phase (a new phase after each restart).
//! - **Network**: each message is lost with probability `drop`, delayed uniformly within
//!   `[delay_min, delay_max]` (independent delays reorder messages) and, with
//!   probability `duplicate`, delivered a second time after its own delay.
//! - **Partitions**: symmetric ([`Action::Partition`], [`Action::Isolate`]), one-way
//!   ([`Action::CutOneWay`]: A→B lost, B→A fine) and partial ([`Action::CutPair`]: A
//!   and C cannot talk while both reach B). A cut is applied when a message *arrives*,
//!   so messages in flight when a link goes down are lost and [`Action::Heal`] lets
//!   later arrivals through.
//! - **Crashes**: [`Action::Crash`] stops a server between two steps;
//!   [`Action::CrashAfterPersist`] makes it die right after its next write to disk, so
//!   that output's messages are never sent. [`Action::Restart`] boots a new core from
//!   the disk. Every crash also hands each running server a crash hint about the dead
//!   one after a message delay, as its closed connection would
//!   ([`Node::leader_unreachable`](crate::Node::leader_unreachable)).
//! - **Fail-over inputs**: [`Action::ConnectionLost`] delivers a crash hint by hand (a
//!   false one when the peer lives) and [`Action::TransferLeadership`] asks the leader
//!   to hand over (thesis §3.10).
//! - **Driver contract**: each output is handled as a real driver must: persist, then
//!   send, then report events.
//!
//! # Invariants, checked after every step
//!
//! After every tick, delivery, crash, restart and action the [`Invariant`]s below are
//! checked against a history the checker keeps itself (crashes do not erase it):
//!
//! 1. **Election safety**: at most one leader per term over the whole run (term →
//!    leader is recorded forever, from roles and `RoleChanged` events).
//! 2. **One vote per term**: (voter, term) → candidate, from every persisted hard state
//!    and every non-pre-vote `VoteGranted` event, across restarts; a persisted vote may
//!    never be replaced or cleared within its term.
//! 3. **Monotonic terms**: a server's term, in memory or on disk, never decreases,
//!    restarts included.
//! 4. **Majority votes**: when a server leads term `t`, the distinct voters recorded as
//!    granting it their term-`t` vote (its own persisted self-vote included) form a
//!    majority; every vote an `ElectionWon` event counts must have been granted.
//! 5. **Persist before send**: an output that sends a real vote request or a granted
//!    real vote has the matching term and vote on disk before its messages leave, and
//!    after every call the core's hard state equals what was persisted.
//!
//! # Liveness bound
//!
//! A seeded run ([`run_seed`]) ends its faults, heals every link, stops loss and
//! duplication, and restarts crashed servers (a random minority may stay down or cut
//! off). It then requires, within [`liveness_bound`] = **12 × `election_timeout_max`
//! ticks of the slowest clock** (3.78 s with the defaults), a leader that every running
//! server of the connected majority follows in its term, observed at least one
//! `election_timeout_max` into the quiet phase; that leader must then keep its role
//! and term for [`STABLE_STRETCH_TIMEOUTS`] further maximum election timeouts.
//!
//! Derivation. (a) Within one maximum election timeout of the quiet phase every timer
//! and lease set during the faults has run out: a follower refuses votes only while
//! it heard from a leader in the last `election_timeout_min` ticks, and messages in
//! flight are at most [`FAULT_DELAY_MAX`] old. (b) The next election timeout fires
//! at most one maximum election timeout later and starts a round: a pre-vote round
//! trip plus a vote round trip, at most 4 × 5 ms = 20 ms, two ticks. The round elects a
//! leader unless another server's timeout falls inside that window before the first
//! candidate's request reaches it; losers simply draw new random timeouts. Timeouts
//! are uniform over 15 whole ticks and the clocks drift apart, so such collisions are
//! uncommon: scenario 31 measures them (about 15 % of first timeouts fall within one
//! message delay of each other with five servers, 22 % within one tick) and asserts
//! they stay below 30 %. (c) So 1 maximum timeout of stale state plus 10 rounds of at
//! most one maximum timeout and 20 ms each (10 × 1.07) is 11.7 maximum timeouts,
//! rounded up to 12. Missing the bound needs 10 failed rounds in a row: probability
//! below 0.3¹⁰ ≈ 6·10⁻⁶ per run even at that pessimistic rate, and far less at the
//! measured one (a collision only costs a round when it also splits the vote). Over
//! two million seeds the slowest agreement came 0.85 s (≈ 2.8 maximum timeouts) after
//! the faults stopped. A livelock — pre-vote and check-quorum keeping each other from
//! electing anyone, or a stuck candidate never freed — exceeds any bound and fails the
//! run; so does a cluster that needs many more rounds than the math allows.
//! [`check_liveness`] runs the same check on a scripted simulation.
//!
//! # Seeded runs
//!
//! [`run_seed`] derives everything from one `u64` ([`Schedule::generate`]): the cluster
//! size (1 to [`MAX_SIZE`]), pre-vote and check-quorum each on or off, the network's
//! delays, and a fault phase of 0.5–5 s with up to 16 random actions (partitions of
//! all three kinds, isolation, heals, loss up to 50 %, duplication up to 30 %, delays
//! up to [`FAULT_DELAY_MAX`], crashes, crashes between persist and send, restarts,
//! forced campaigns, false crash hints, leadership transfers; crash hints on in three
//! seeds in four). The quiet phase follows, with the liveness check above. One seed
//! in five ([`AGGRESSIVE_SHARE`]) instead runs election timeouts of 2–20 ticks with
//! heartbeats from one tick, so that delays rival timeouts and elections churn; those
//! seeds check safety only, since the liveness bound is derived for the defaults. A
//! panic inside the core is caught and reported like a broken invariant
//! ([`Invariant::CorePanicked`]), naming the tick or message it was handling.
//! `tests/simulation.rs` runs 13,000 seeds by default (`RAFT_SIM_SEEDS`,
//! `RAFT_SIM_START`, `RAFT_SIM_SIZE` change that); `examples/simulate.rs` runs
//! millions.
//!
//! # Replaying a seed
//!
//! Every failure panics (or returns a [`Failure`]) with the seed, the invariant, the
//! facts, the last [`REPORT_TRACE_LINES`] lines of the trace, and the command that
//! replays that seed alone, for example
//! `RAFT_SIM_SEED=1234 cargo test -p raft --test simulation -- --nocapture` or
//! `cargo run -p raft --release --example simulate -- --seed 1234 --trace`, which print
//! the whole trace: one line per step with virtual time, server, and what happened.
//!
//! # Scripted scenarios
//!
//! [`Simulation`] is also a scripting API: build a cluster ([`SimBuilder`]), run for a
//! duration or until a predicate holds, query roles, terms and leaders, crash, restart,
//! partition, cut, isolate, heal, change loss, duplication and delay, force campaigns.
//!
//! # Known shortcomings
//!
//! - Logs are empty: every server's last log position is the default, so the
//!   up-to-date check (§5.4.1) never refuses a vote here.
//! - The disk is perfect: a persisted state is never torn, lost or corrupted (the
//!   file storage has its own tests).
//! - Membership is fixed: all servers are voters and the configuration never changes.
//! - Virtual time has no cost for processing: a step takes no time.
//! - Clock rates are fixed per server for a run; they do not wander.
//! - Seeded runs use the default timeouts (15–30 ticks, heartbeat 5); other timeout
//!   settings are only exercised by scripted scenarios that choose them.
//! - Liveness is checked only once every fault has stopped, not under mild ongoing
//!   faults; and histories are short (a few seconds each) so that 13,000 seeds fit a
//!   debug test run: long sweeps add seeds rather than length.

mod action;
mod clock;
mod cluster;
mod failure;
mod invariants;
mod network;
mod schedule;
mod trace;

pub use action::Action;
pub use clock::{Micros, DEFAULT_TICK, MILLI, SECOND};
pub use cluster::{SimBuilder, SimStats, Simulation, DEFAULT_TRACE_CAPACITY};
pub use failure::{Failure, REPORT_TRACE_LINES};
pub use invariants::{Invariant, Violation};
pub use network::NetworkConfig;
pub use schedule::{
    check_liveness, check_liveness_among, liveness_bound, replay_command, run_seed,
    run_seed_keeping_simulation, Elected, RunOptions, RunReport, Schedule, AGGRESSIVE_SHARE, DRIFT,
    FAULT_DELAY_MAX, LIVENESS_TIMEOUTS, MAX_SIZE, QUIET_DELAY_MAX, SAFETY_ONLY_QUIET,
    STABLE_STRETCH_TIMEOUTS,
};
pub use trace::{Trace, TraceEntry, TraceKind};
