//! The simulated cluster: servers running the core, driven by one event queue.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::action::Action;
use super::clock::{Clock, Micros, DEFAULT_TICK};
use super::failure::{Failure, REPORT_TRACE_LINES};
use super::invariants::{Checker, Invariant, Violation};
use super::network::{Network, NetworkConfig};
use super::trace::{MessageSummary, Trace, TraceKind};
use crate::config::{Config, ConfigError};
use crate::message::{LogPosition, Message, NodeId, Term};
use crate::node::Node;
use crate::output::{Event, Output, Role};
use crate::storage::HardState;

/// How many trace lines a simulation keeps unless told otherwise.
pub const DEFAULT_TRACE_CAPACITY: usize = 20_000;

/// Settings for a [`Simulation`]; start from [`SimBuilder::new`].
#[derive(Clone, Debug)]
pub struct SimBuilder {
    size: usize,
    seed: u64,
    template: Config,
    tick: Micros,
    drift: f64,
    network: NetworkConfig,
    trace_capacity: usize,
    replay: Option<String>,
}

impl SimBuilder {
    /// `size` servers with ids `1..=size`, the default [`Config`], 10 ms ticks with
    /// ±5 % drift, a healthy network, all randomness drawn from `seed`.
    pub fn new(size: usize, seed: u64) -> SimBuilder {
        SimBuilder {
            size,
            seed,
            template: Config::new(1, [1]),
            tick: DEFAULT_TICK,
            drift: 0.05,
            network: NetworkConfig::default(),
            trace_capacity: DEFAULT_TRACE_CAPACITY,
            replay: None,
        }
    }

    /// The settings every server starts from; `id` and `voters` are replaced.
    pub fn config(mut self, template: Config) -> SimBuilder {
        self.template = template;
        self
    }

    /// The nominal tick length in microseconds.
    pub fn tick(mut self, tick: Micros) -> SimBuilder {
        self.tick = tick;
        self
    }

    /// The largest relative deviation of a server's tick period from the nominal one.
    pub fn drift(mut self, drift: f64) -> SimBuilder {
        self.drift = drift.clamp(0.0, 0.5);
        self
    }

    /// How the network loses, duplicates and delays messages at the start.
    pub fn network(mut self, network: NetworkConfig) -> SimBuilder {
        self.network = network;
        self
    }

    /// How many trace lines to keep (the oldest are forgotten first).
    pub fn trace_capacity(mut self, lines: usize) -> SimBuilder {
        self.trace_capacity = lines;
        self
    }

    /// The command a failure report prints to replay this simulation.
    pub fn replay_command(mut self, command: impl Into<String>) -> SimBuilder {
        self.replay = Some(command.into());
        self
    }

    /// Boots every server with an empty disk and schedules its first tick. Fails on a
    /// template that does not validate, or a size of 0 ([`ConfigError::NoVoters`]).
    pub fn build(self) -> Result<Simulation, ConfigError> {
        if self.size == 0 {
            return Err(ConfigError::NoVoters);
        }
        let ids: Vec<NodeId> = (1..=self.size as NodeId).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut servers = Vec::with_capacity(self.size);
        for &id in &ids {
            let mut config = self.template.clone();
            config.id = id;
            config.voters = ids.clone();
            config.validate()?;
            servers.push(Server {
                node: None,
                disk: HardState::default(),
                clock: Clock::random(self.tick, self.drift, &mut rng),
                incarnation: 0,
                crash_after_persist: false,
                config,
            });
        }

        let replay = self
            .replay
            .unwrap_or_else(|| format!("(rebuild this simulation with seed {})", self.seed));
        let mut sim = Simulation {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            servers,
            network: Network::new(self.network),
            rng,
            checker: Checker::new(&ids),
            trace: Trace::new(self.trace_capacity),
            seed: self.seed,
            replay,
            ids,
            tick: self.tick,
            steps: 0,
            current: None,
            stats: SimStats::default(),
            failure: None,
        };
        sim.note_setup();
        for id in sim.ids.clone() {
            sim.boot(id)?;
        }
        Ok(sim)
    }
}

#[derive(Debug)]
struct Server {
    /// The running core; `None` while crashed.
    node: Option<Node>,
    /// What survives a crash: the last hard state the server persisted.
    disk: HardState,
    clock: Clock,
    /// Counts boots, so that ticks scheduled before a crash are ignored after it.
    incarnation: u64,
    crash_after_persist: bool,
    config: Config,
}

/// Counters of what a simulation did, to see that a fault schedule really exercised
/// what it meant to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Messages handed to a core.
    pub delivered: u64,
    /// Messages lost by random loss at send time.
    pub dropped: u64,
    /// Extra copies scheduled by duplication.
    pub duplicated: u64,
    /// Messages lost because their link was cut on arrival.
    pub cut: u64,
    /// Messages lost because the receiver was down on arrival.
    pub to_dead_server: u64,
    /// Crashes, of both kinds.
    pub crashes: u64,
    /// Crashes between persisting and sending that fired.
    pub crashes_after_persist: u64,
    /// Restarts.
    pub restarts: u64,
    /// Elections won.
    pub elections_won: u64,
    /// Crash hints (true or false) that a core acted on.
    pub hints_acted_on: u64,
    /// Leadership transfers a leader started.
    pub transfers_started: u64,
}

/// Something scheduled to happen at a virtual time.
#[derive(Clone, Debug)]
enum Pending {
    Tick {
        server: NodeId,
        incarnation: u64,
    },
    Deliver {
        from: NodeId,
        to: NodeId,
        message: Message,
    },
    /// A crash hint that reaches `observer` because `peer`'s process died.
    Hint {
        observer: NodeId,
        peer: NodeId,
    },
}

/// An entry of the event queue, ordered by time and then by the order of scheduling.
#[derive(Debug)]
struct Scheduled {
    at: Micros,
    /// Unique, so the order is total and never depends on the payload.
    seq: u64,
    pending: Pending,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Scheduled) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Scheduled) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Scheduled) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A cluster of cores on virtual time, with a seeded network and an invariant checker
/// that runs after every step. See the [module documentation](super).
#[derive(Debug)]
pub struct Simulation {
    now: Micros,
    /// Breaks ties between events at the same time: first scheduled, first run.
    seq: u64,
    /// Min-heap by (time, sequence number): a binary heap moves far less memory per
    /// event than an ordered map, which matters in debug builds.
    queue: BinaryHeap<Reverse<Scheduled>>,
    servers: Vec<Server>,
    network: Network,
    rng: ChaCha8Rng,
    checker: Checker,
    trace: Trace,
    seed: u64,
    replay: String,
    ids: Vec<NodeId>,
    /// The nominal tick length.
    tick: Micros,
    steps: u64,
    /// The event being run; set only while the core handles it.
    current: Option<Pending>,
    stats: SimStats,
    /// The first failure; once set, the simulation refuses to go on.
    failure: Option<Box<Failure>>,
}

impl Simulation {
    /// `size` servers with settings from `template` (ids and voters replaced) and the
    /// defaults of [`SimBuilder`].
    ///
    /// # Panics
    /// If the template is not a valid configuration.
    pub fn new(size: usize, template: Config, seed: u64) -> Simulation {
        match SimBuilder::new(size, seed).config(template).build() {
            Ok(sim) => sim,
            Err(e) => panic!("invalid simulation config: {e}"),
        }
    }

    // ---- queries ----

    /// The virtual time, in microseconds.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// The seed all randomness comes from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The servers' ids, `1..=size`.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// How many events (ticks and deliveries) have run.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The nominal tick length, in microseconds (each server's clock drifts from it).
    pub fn tick(&self) -> Micros {
        self.tick
    }

    /// Whether a crash after the server's next persist is armed.
    pub fn crash_armed(&self, id: NodeId) -> bool {
        self.server(id).crash_after_persist
    }

    /// Counters of what happened so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Whether the server is running.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.server(id).node.is_some()
    }

    /// The server's core, unless it is crashed.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.server(id).node.as_ref()
    }

    /// The server's role, unless it is crashed.
    pub fn role(&self, id: NodeId) -> Option<Role> {
        self.node(id).map(Node::role)
    }

    /// The server's term, unless it is crashed.
    pub fn term(&self, id: NodeId) -> Option<Term> {
        self.node(id).map(Node::term)
    }

    /// The leader the server believes in, unless it is crashed.
    pub fn known_leader(&self, id: NodeId) -> Option<NodeId> {
        self.node(id).and_then(Node::leader)
    }

    /// What the server last persisted; it survives crashes.
    pub fn persisted(&self, id: NodeId) -> HardState {
        self.server(id).disk
    }

    /// Every running server that believes it leads, with its term, by id.
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.servers
            .iter()
            .filter_map(|s| s.node.as_ref())
            .filter(|n| n.role() == Role::Leader)
            .map(|n| (n.id(), n.term()))
            .collect()
    }

    /// The leader at this moment: the running leader with the highest term, if any.
    /// A deposed leader that has not yet heard of the newer term is ignored.
    pub fn leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|&(_, term)| term)
            .map(|(id, _)| id)
    }

    /// The leader every running server agrees on: it leads, and every running server
    /// is in its term and names it as leader.
    pub fn agreed_leader(&self) -> Option<(NodeId, Term)> {
        self.agreed_leader_among(&self.ids)
    }

    /// The leader the running servers of `group` agree on: one of them leads, and every
    /// running member is in its term and names it as leader. Crashed members are
    /// ignored; a group with no running member has no leader.
    pub fn agreed_leader_among(&self, group: &[NodeId]) -> Option<(NodeId, Term)> {
        let running: Vec<&Node> = group.iter().filter_map(|&id| self.node(id)).collect();
        let leader = running
            .iter()
            .filter(|n| n.role() == Role::Leader)
            .max_by_key(|n| n.term())?;
        let (id, term) = (leader.id(), leader.term());
        let all_follow = running
            .iter()
            .all(|n| n.term() == term && n.leader() == Some(id));
        all_follow.then_some((id, term))
    }

    /// The highest term any running server holds.
    pub fn max_term(&self) -> Term {
        self.servers
            .iter()
            .filter_map(|s| s.node.as_ref())
            .map(Node::term)
            .max()
            .unwrap_or(0)
    }

    /// Every term that had a leader so far, and who led it.
    pub fn leader_history(&self) -> &BTreeMap<Term, NodeId> {
        self.checker.leaders()
    }

    /// The trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The current network settings.
    pub fn network(&self) -> &NetworkConfig {
        &self.network.config
    }

    /// How many directed links are cut.
    pub fn cut_links(&self) -> usize {
        self.network.cut_links()
    }

    /// The failure that stopped the simulation, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_deref()
    }

    // ---- running ----

    /// Runs the next scheduled event. `Ok(false)` if nothing is scheduled (which only
    /// happens when every server is down).
    pub fn try_step(&mut self) -> Result<bool, Box<Failure>> {
        self.check_not_failed()?;
        let Some(Reverse(Scheduled {
            at: time, pending, ..
        })) = self.queue.pop()
        else {
            return Ok(false);
        };

        self.now = time;
        self.steps += 1;
        // Kept until the step is over, so that a panic in the core can name it.
        self.current = Some(pending.clone());
        let result = match pending {
            Pending::Tick {
                server,
                incarnation,
            } => self.run_tick(server, incarnation),
            Pending::Deliver { from, to, message } => self.deliver(from, to, message),
            Pending::Hint { observer, peer } => {
                let action = Action::ConnectionLost { observer, peer };
                self.trace
                    .push(self.now, Some(observer), TraceKind::Action(action));
                self.hint(observer, peer)
            }
        };
        self.current = None;
        self.settle(result)?;
        Ok(true)
    }

    /// The step being run, if a panic interrupted it: "a tick of s3", or the message
    /// and its endpoints.
    pub fn interrupted_step(&self) -> Option<String> {
        Some(match self.current.as_ref()? {
            Pending::Tick { server, .. } => format!("a tick of s{server}"),
            Pending::Deliver { from, to, message } => {
                format!("{} from s{from} to s{to}", MessageSummary(message))
            }
            Pending::Hint { observer, peer } => {
                format!("a crash hint about s{peer} to s{observer}")
            }
        })
    }

    /// Runs events until `predicate` holds (checked before each event and after each)
    /// or virtual time reaches `deadline`. Returns whether the predicate held.
    pub fn try_run_until(
        &mut self,
        deadline: Micros,
        mut predicate: impl FnMut(&Simulation) -> bool,
    ) -> Result<bool, Box<Failure>> {
        self.check_not_failed()?;
        if predicate(self) {
            return Ok(true);
        }

        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > deadline {
                break;
            }
            self.try_step()?;
            if predicate(self) {
                return Ok(true);
            }
        }
        self.now = self.now.max(deadline);
        Ok(false)
    }

    /// Runs for `duration` microseconds of virtual time.
    pub fn try_run_for(&mut self, duration: Micros) -> Result<(), Box<Failure>> {
        self.try_run_until(self.now + duration, |_| false)
            .map(|_| ())
    }

    /// Like [`Simulation::try_run_until`], panicking with the failure report.
    pub fn run_until(
        &mut self,
        deadline: Micros,
        predicate: impl FnMut(&Simulation) -> bool,
    ) -> bool {
        let result = self.try_run_until(deadline, predicate);
        self.or_panic(result)
    }

    /// Like [`Simulation::try_run_for`], panicking with the failure report.
    pub fn run_for(&mut self, duration: Micros) {
        let result = self.try_run_for(duration);
        self.or_panic(result)
    }

    /// Runs until every running server agrees on one leader, for at most `timeout`
    /// microseconds. Returns the leader, or `None` on timeout.
    pub fn run_until_agreed_leader(&mut self, timeout: Micros) -> Option<NodeId> {
        let deadline = self.now + timeout;
        if self.run_until(deadline, |sim| sim.agreed_leader().is_some()) {
            self.agreed_leader().map(|(id, _)| id)
        } else {
            None
        }
    }

    // ---- actions ----

    /// Applies one action, then checks the invariants.
    pub fn try_apply(&mut self, action: Action) -> Result<(), Box<Failure>> {
        self.check_not_failed()?;
        let server = match &action {
            Action::Crash(id)
            | Action::CrashAfterPersist(id)
            | Action::Disarm(id)
            | Action::Restart(id)
            | Action::Isolate(id)
            | Action::Campaign(id)
            | Action::ConnectionLost { observer: id, .. } => Some(*id),
            _ => None,
        };
        if let Some(id) = server {
            self.server(id);
        }
        match &action {
            Action::ConnectionLost { peer: id, .. } | Action::TransferLeadership { to: id } => {
                self.server(*id);
            }
            _ => {}
        }
        self.trace
            .push(self.now, server, TraceKind::Action(action.clone()));

        let result = match action {
            Action::Crash(id) => {
                self.crash(id);
                Ok(())
            }
            Action::CrashAfterPersist(id) => {
                self.server_mut(id).crash_after_persist = true;
                Ok(())
            }
            Action::Disarm(id) => {
                self.server_mut(id).crash_after_persist = false;
                Ok(())
            }
            Action::Restart(id) => self.restart(id),
            Action::Partition(groups) => {
                self.network.partition(&groups, &self.ids);
                Ok(())
            }
            Action::CutOneWay { from, to } => {
                self.network.cut(from, to);
                Ok(())
            }
            Action::CutPair(a, b) => {
                self.network.cut_both(a, b);
                Ok(())
            }
            Action::Isolate(id) => {
                for other in self.ids.clone() {
                    self.network.cut_both(id, other);
                }
                Ok(())
            }
            Action::Heal => {
                self.network.heal();
                Ok(())
            }
            Action::SetDrop(p) => {
                self.network.config.drop = p.clamp(0.0, 1.0);
                Ok(())
            }
            Action::SetDuplicate(p) => {
                self.network.config.duplicate = p.clamp(0.0, 1.0);
                Ok(())
            }
            Action::SetDelay { min, max } => {
                self.network.config.delay_min = min;
                self.network.config.delay_max = max.max(min);
                Ok(())
            }
            Action::Campaign(id) => self.campaign_now(id),
            Action::ConnectionLost { observer, peer } => self.hint(observer, peer),
            Action::TransferLeadership { to } => self.transfer(to),
        };
        self.settle(result)
    }

    /// Applies one action, panicking with the failure report if an invariant breaks.
    pub fn apply(&mut self, action: Action) {
        let result = self.try_apply(action);
        self.or_panic(result)
    }

    /// Crashes the server: it stops, keeping only what it persisted.
    pub fn crash_server(&mut self, id: NodeId) {
        self.apply(Action::Crash(id));
    }

    /// Restarts a crashed server from its persisted state.
    pub fn restart_server(&mut self, id: NodeId) {
        self.apply(Action::Restart(id));
    }

    /// Cuts the network into `groups`; unnamed servers form one more group.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let groups = groups.iter().map(|g| g.to_vec()).collect();
        self.apply(Action::Partition(groups));
    }

    /// Cuts the link from `from` to `to`, leaving `to → from` up.
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.apply(Action::CutOneWay { from, to });
    }

    /// Cuts both directions between `a` and `b` only.
    pub fn cut_pair(&mut self, a: NodeId, b: NodeId) {
        self.apply(Action::CutPair(a, b));
    }

    /// Cuts the server off from every other server.
    pub fn isolate(&mut self, id: NodeId) {
        self.apply(Action::Isolate(id));
    }

    /// Brings every link back up.
    pub fn heal(&mut self) {
        self.apply(Action::Heal);
    }

    /// Sets the probability that a message is lost.
    pub fn set_drop(&mut self, probability: f64) {
        self.apply(Action::SetDrop(probability));
    }

    /// Sets the probability that a delivered message arrives twice.
    pub fn set_duplicate(&mut self, probability: f64) {
        self.apply(Action::SetDuplicate(probability));
    }

    /// Sets the range of message delays, in microseconds (both ends included).
    pub fn set_delay(&mut self, min: Micros, max: Micros) {
        self.apply(Action::SetDelay { min, max });
    }

    /// Makes the server crash right after its next write to disk, before it sends the
    /// messages of that output.
    pub fn crash_after_next_persist(&mut self, id: NodeId) {
        self.apply(Action::CrashAfterPersist(id));
    }

    /// Asks the server's core to campaign now.
    pub fn campaign(&mut self, id: NodeId) {
        self.apply(Action::Campaign(id));
    }

    /// Overrides the server's current election timeout, in ticks.
    pub fn set_election_timeout(&mut self, id: NodeId, ticks: u64) {
        if let Some(node) = self.server_mut(id).node.as_mut() {
            node.set_election_timeout(ticks);
        }
    }

    /// Adds a free-text line to the trace.
    pub fn note(&mut self, text: impl Into<String>) {
        self.trace
            .push(self.now, None, TraceKind::Note(text.into()));
    }

    /// Fails the simulation with a scenario's own finding, panicking with the report.
    pub fn fail(&self, invariant: Invariant, detail: impl Into<String>) -> ! {
        let failure = self.failure_report(Violation::new(invariant, detail));
        panic!("{failure}")
    }

    /// A failure report for `violation` at the current time, with the trace tail.
    pub fn failure_report(&self, violation: Violation) -> Box<Failure> {
        Box::new(Failure {
            seed: self.seed,
            time: self.now,
            violation,
            replay: self.replay.clone(),
            trace_tail: self.trace.tail(REPORT_TRACE_LINES),
        })
    }

    // ---- internals ----

    fn server(&self, id: NodeId) -> &Server {
        let index = (id as usize).wrapping_sub(1);
        match self.servers.get(index) {
            Some(server) => server,
            None => panic!("no server s{id}: ids run from 1 to {}", self.servers.len()),
        }
    }

    fn server_mut(&mut self, id: NodeId) -> &mut Server {
        let size = self.servers.len();
        let index = (id as usize).wrapping_sub(1);
        match self.servers.get_mut(index) {
            Some(server) => server,
            None => panic!("no server s{id}: ids run from 1 to {size}"),
        }
    }

    fn check_not_failed(&self) -> Result<(), Box<Failure>> {
        match &self.failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    fn settle(&mut self, result: Result<(), Violation>) -> Result<(), Box<Failure>> {
        match result {
            Ok(()) => Ok(()),
            Err(violation) => {
                let failure = self.failure_report(violation);
                self.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }

    fn or_panic<T>(&self, result: Result<T, Box<Failure>>) -> T {
        match result {
            Ok(value) => value,
            Err(failure) => panic!("{failure}"),
        }
    }

    fn schedule(&mut self, at: Micros, pending: Pending) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            pending,
        }));
    }

    /// Starts the server's core from its disk and its clock from a fresh phase.
    fn boot(&mut self, id: NodeId) -> Result<(), ConfigError> {
        let node_seed = self.rng.next_u64();
        let (clock, first_boot) = {
            let server = self.server(id);
            (server.clock, server.incarnation == 0)
        };
        let phase = if first_boot {
            clock.phase
        } else {
            Clock::random_phase(clock.period, &mut self.rng)
        };

        let server = self.server_mut(id);
        let node = Node::new(
            server.config.clone(),
            server.disk,
            LogPosition::default(),
            ChaCha8Rng::seed_from_u64(node_seed),
        )?;
        server.node = Some(node);
        // A new process: a crash armed for the previous one does not carry over.
        server.crash_after_persist = false;
        server.incarnation += 1;
        let incarnation = server.incarnation;

        self.schedule(
            self.now + phase,
            Pending::Tick {
                server: id,
                incarnation,
            },
        );
        Ok(())
    }

    /// Records the cluster's settings as the first lines of the trace.
    fn note_setup(&mut self) {
        // Cannot fail because build() refuses an empty cluster.
        let c = &self.servers[0].config;
        let net = &self.network.config;
        let setup = format!(
            "{} servers, seed {}, pre_vote {}, check_quorum {}, election timeout {}-{} \
             ticks, heartbeat {} ticks; network drop {:.2} duplicate {:.2} delay {}-{} us",
            self.servers.len(),
            self.seed,
            c.pre_vote,
            c.check_quorum,
            c.election_timeout_min,
            c.election_timeout_max,
            c.heartbeat_interval,
            net.drop,
            net.duplicate,
            net.delay_min,
            net.delay_max
        );
        self.note(setup);
        for (i, server) in self.servers.iter().enumerate() {
            let clock = format!(
                "s{} ticks every {} us, first tick at {} us",
                i + 1,
                server.clock.period,
                server.clock.phase
            );
            self.trace
                .push(0, Some(i as NodeId + 1), TraceKind::Note(clock));
        }
    }

    /// Stops the server. Every running server then gets a crash hint about it after a
    /// message delay, as a real transport reports the connection closing.
    fn crash(&mut self, id: NodeId) {
        let was_up = self.is_up(id);
        let server = self.server_mut(id);
        server.node = None;
        server.crash_after_persist = false;
        if !was_up {
            return;
        }

        self.stats.crashes += 1;
        let (min, max) = (self.network.config.delay_min, self.network.config.delay_max);
        for observer in self.ids.clone() {
            if observer != id && self.is_up(observer) {
                let delay = self.rng.random_range(min..=max.max(min));
                let hint = Pending::Hint { observer, peer: id };
                self.schedule(self.now + delay, hint);
            }
        }
    }

    /// Hands `observer`'s core a crash hint about `peer`, if `observer` is running.
    fn hint(&mut self, observer: NodeId, peer: NodeId) -> Result<(), Violation> {
        let Some(node) = self.server_mut(observer).node.as_mut() else {
            return Ok(());
        };
        let output = node.leader_unreachable(peer);
        if output.is_empty() {
            return self.observe(observer);
        }
        self.stats.hints_acted_on += 1;
        self.handle_output(observer, output)
    }

    /// Asks the running leader of the highest term to hand its leadership to `to`.
    fn transfer(&mut self, to: NodeId) -> Result<(), Violation> {
        let Some(leader) = self.leader() else {
            self.note(format!("no leader to hand leadership to s{to}"));
            return Ok(());
        };
        let Some(node) = self.server_mut(leader).node.as_mut() else {
            return Ok(());
        };
        match node.transfer_leadership(to) {
            Ok(output) => {
                self.stats.transfers_started += 1;
                self.handle_output(leader, output)
            }
            Err(error) => {
                self.note(format!(
                    "s{leader} refused to hand leadership to s{to}: {error}"
                ));
                Ok(())
            }
        }
    }

    fn restart(&mut self, id: NodeId) -> Result<(), Violation> {
        if self.is_up(id) {
            return Ok(());
        }

        if let Err(e) = self.boot(id) {
            // The config was validated when the simulation was built and never changes.
            return Err(Violation::new(
                Invariant::Scenario,
                format!("s{id} cannot restart: {e}"),
            ));
        }
        self.stats.restarts += 1;
        let disk = self.server(id).disk;
        self.trace
            .push(self.now, Some(id), TraceKind::Restarted(disk));
        self.observe(id)
    }

    fn campaign_now(&mut self, id: NodeId) -> Result<(), Violation> {
        let Some(node) = self.server_mut(id).node.as_mut() else {
            return Ok(());
        };
        let output = node.campaign();
        self.handle_output(id, output)
    }

    fn run_tick(&mut self, id: NodeId, incarnation: u64) -> Result<(), Violation> {
        let server = self.server_mut(id);
        if server.incarnation != incarnation {
            return Ok(());
        }
        let period = server.clock.period;
        let Some(node) = server.node.as_mut() else {
            return Ok(());
        };
        let output = node.tick();

        self.schedule(
            self.now + period,
            Pending::Tick {
                server: id,
                incarnation,
            },
        );
        if output.is_empty() {
            return self.observe(id);
        }
        self.trace.push(self.now, Some(id), TraceKind::Tick);
        self.handle_output(id, output)
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, message: Message) -> Result<(), Violation> {
        if !self.network.connected(from, to) {
            let kind = TraceKind::Lost {
                from,
                message,
                reason: "link cut",
            };
            self.stats.cut += 1;
            self.trace.push(self.now, Some(to), kind);
            return Ok(());
        }
        if !self.is_up(to) {
            let kind = TraceKind::Lost {
                from,
                message,
                reason: "server down",
            };
            self.stats.to_dead_server += 1;
            self.trace.push(self.now, Some(to), kind);
            return Ok(());
        }

        // Traced before the call, so that a panic in the core shows what it received.
        let kind = TraceKind::Deliver {
            from,
            message: message.clone(),
        };
        self.trace.push(self.now, Some(to), kind);
        self.stats.delivered += 1;
        let Some(node) = self.server_mut(to).node.as_mut() else {
            // Cannot happen: is_up() just said the node is there.
            return Ok(());
        };
        let output = node.step(from, message);
        self.handle_output(to, output)
    }

    /// Persists, sends and reports one output, in that order, checking each stage.
    fn handle_output(&mut self, id: NodeId, output: Output) -> Result<(), Violation> {
        let Output {
            hard_state,
            messages,
            events,
        } = output;

        if let Some(new) = hard_state {
            let old = self.server(id).disk;
            self.checker.on_persist(id, old, new)?;
            self.server_mut(id).disk = new;
            self.trace.push(self.now, Some(id), TraceKind::Persist(new));
        }

        let crash_now = hard_state.is_some() && self.server(id).crash_after_persist;
        if crash_now {
            // The write reached the disk; the process died before any send.
            self.crash(id);
            self.stats.crashes_after_persist += 1;
            let lost = messages.len();
            self.trace
                .push(self.now, Some(id), TraceKind::CrashAfterPersist { lost });
        } else {
            let disk = self.server(id).disk;
            self.checker.on_send(id, disk, &messages)?;
            for out in messages {
                let delays = self.network.copies(&mut self.rng);
                match delays.len() {
                    0 => self.stats.dropped += 1,
                    1 => {}
                    _ => self.stats.duplicated += 1,
                }
                let kind = TraceKind::Send {
                    to: out.to,
                    message: out.message.clone(),
                    copies: delays.len(),
                };
                self.trace.push(self.now, Some(id), kind);
                for delay in delays {
                    let pending = Pending::Deliver {
                        from: id,
                        to: out.to,
                        message: out.message.clone(),
                    };
                    self.schedule(self.now + delay, pending);
                }
            }
        }

        // Events describe what the core did in memory, which counts even if the
        // server died before telling anyone: a vote it granted is still its vote.
        for event in events {
            self.checker.on_event(id, &event)?;
            if matches!(event, Event::ElectionWon { .. }) {
                self.stats.elections_won += 1;
            }
            self.trace.push(self.now, Some(id), TraceKind::Event(event));
        }
        self.observe(id)
    }

    /// Checks the server's state against the history, if it is running.
    fn observe(&mut self, id: NodeId) -> Result<(), Violation> {
        let server = self.server(id);
        let Some(node) = server.node.as_ref() else {
            return Ok(());
        };
        let (role, memory, disk) = (node.role(), node.hard_state(), server.disk);
        self.checker.observe(id, role, memory, disk)
    }
}
