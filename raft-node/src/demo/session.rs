//! A running demo: its servers, what the demo did to them and to the network, what it
//! sees of them, and the commands that act on them. Both the terminal and script mode
//! drive one `Session`; they differ only in how the view is shown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::time::Instant;

use super::command::{Command, Condition, Target};
use super::network::{self, Network};
use super::observe::{self, Answers, LogTail};
use super::servers::{Process, Servers};
use super::terminal::Terminal;
use super::view::{self, Header, Row};
use crate::status::TransferReply;
use crate::timeline;
use crate::timeline::clock::{self, Micros};
use crate::timeline::records::{self, Action, ActionKind, Record, Stamped};

/// How often the servers are asked for their status.
pub const POLL: Duration = Duration::from_millis(200);

/// How many more polls an expectation waits for a server that did not answer.
const SILENCE_RETRIES: usize = 3;

/// How the view is shown.
#[derive(Debug)]
pub enum Output {
    /// Plain text on standard output: frames after each command and role change,
    /// events as they happen.
    Script,
    /// Redrawn in place in the terminal.
    Terminal(Terminal),
}

/// What to do after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// End the demo.
    Quit,
}

/// A demo in progress.
#[derive(Debug)]
pub struct Session {
    servers: Servers,
    network: Network,
    timing_source: String,
    answers: Answers,
    tails: BTreeMap<u64, LogTail>,
    events: Vec<String>,
    action_log: File,
    /// Servers whose fault layer must be told the network once they answer.
    unsynced: BTreeSet<u64>,
    /// Those of them whose last attempt failed and was shown, so that a failure that
    /// repeats at every poll is shown once.
    sync_failed: BTreeSet<u64>,
    /// Role, term and leader of each answering server at the last frame.
    last_roles: BTreeMap<u64, (String, u64, Option<u64>)>,
    /// Whether the first frame was shown; role-change frames wait for it.
    shown: bool,
    /// The last role change each server logged, so that repeats (a pre-candidate
    /// polling again and again in a minority) show once.
    last_logged: BTreeMap<u64, (raft::Role, u64)>,
    output: Output,
}

impl Session {
    /// Starts every server and waits until each answers its status address.
    pub async fn start(
        servers: Servers,
        timing_source: String,
        output: Output,
    ) -> anyhow::Result<Session> {
        let action_log = File::create(servers.dir().join("demo.log"))
            .context("cannot create the demo's action log")?;
        let tails = servers
            .ids()
            .into_iter()
            .map(|id| (id, LogTail::new(servers.log_path(id))))
            .collect();
        let mut session = Session {
            servers,
            network: Network::default(),
            timing_source,
            answers: Answers::new(),
            tails,
            events: Vec::new(),
            action_log,
            unsynced: BTreeSet::new(),
            sync_failed: BTreeSet::new(),
            last_roles: BTreeMap::new(),
            last_logged: BTreeMap::new(),
            shown: false,
            output,
        };

        let ids = session.servers.ids();
        session.record(ActionKind::Start, &ids, Vec::new(), "start".into())?;
        let mut started = Vec::new();
        for &id in &ids {
            let pid = session.servers.start(id)?;
            started.push(format!("{id} (pid {pid})"));
        }
        session.say(format!("servers started: {}", started.join(", ")));
        session.say(format!("files in {}", session.servers.dir().display()));
        if !session.servers.faults_enabled() {
            session.say(
                "this build has no fault layer: partition, heal and slow are unavailable"
                    .to_string(),
            );
        }

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            session.refresh().await;
            let silent: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| session.answers.get(id).is_none_or(Option::is_none))
                .collect();
            if silent.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "servers {} did not answer within 10 s of starting; their output is in {}",
                    network::ids(&silent),
                    session.servers.dir().display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        session.shown = true;
        session.frame("started");
        Ok(session)
    }

    /// The terminal, in terminal mode.
    pub fn terminal(&mut self) -> Option<&mut Terminal> {
        match &mut self.output {
            Output::Terminal(terminal) => Some(terminal),
            Output::Script => None,
        }
    }

    /// Polls the servers, reads their logs, tells late servers the network, and shows
    /// what changed.
    pub async fn refresh(&mut self) {
        for (id, status) in self.servers.reap_exited() {
            let log = self.servers.log_path(id);
            self.event(format!(
                "server {id} exited by itself ({status}); see {}",
                log.display()
            ));
        }

        let up: Vec<u64> = self
            .servers
            .ids()
            .into_iter()
            .filter(|&id| self.servers.process(id) == Process::Up)
            .collect();
        self.answers = observe::poll(self.servers.config(), &up).await;

        let mut records: Vec<Stamped> = self
            .tails
            .values_mut()
            .flat_map(LogTail::read_new)
            .collect();
        records.sort_by_key(|stamped| stamped.at);
        for stamped in records {
            if let Record::Role {
                node, role, term, ..
            } = &stamped.record
            {
                if self.last_logged.insert(*node, (*role, *term)) == Some((*role, *term)) {
                    continue;
                }
            }
            if let Some(text) = describe(&stamped.record) {
                self.event(format!("{}  {text}", clock::clock_millis(stamped.at)));
            }
        }

        let ready: Vec<u64> = self
            .unsynced
            .iter()
            .copied()
            .filter(|id| self.answers.get(id).is_some_and(Option::is_some))
            .collect();
        for id in ready {
            match self.sync_faults(id).await {
                Ok(()) => {
                    self.unsynced.remove(&id);
                    self.sync_failed.remove(&id);
                }
                Err(error) => {
                    if self.sync_failed.insert(id) {
                        self.event(format!("server {id}: {error:#} (trying again)"));
                    }
                }
            }
        }

        let roles: BTreeMap<u64, (String, u64, Option<u64>)> = self
            .answers
            .iter()
            .filter_map(|(&id, r)| r.as_ref().map(|r| (id, (r.role.clone(), r.term, r.leader))))
            .collect();
        let changed = roles
            .iter()
            .any(|(id, now)| self.last_roles.get(id) != Some(now));
        if changed {
            self.last_roles.extend(roles);
            if matches!(self.output, Output::Script) && self.shown {
                self.frame("roles changed");
            }
        }
        self.draw();
    }

    /// Carries out one command.
    pub async fn execute(&mut self, command: Command) -> anyhow::Result<Flow> {
        match command {
            Command::Kill(target) => {
                let (id, label) = self.resolve(target, "kill")?;
                self.record(ActionKind::Kill, &[id], Vec::new(), label)?;
                self.servers.kill(id)?;
                self.answers.remove(&id);
            }
            Command::Restart(target) => {
                for (id, label) in self.targets(target, Process::Down, "restart")? {
                    if self.servers.process(id) != Process::Down {
                        self.servers.kill(id)?;
                    }
                    self.record(ActionKind::Restart, &[id], Vec::new(), label)?;
                    self.last_logged.remove(&id);
                    self.servers.start(id)?;
                    if self.network != Network::default() {
                        self.unsynced.insert(id);
                    }
                }
            }
            Command::Pause(target) => {
                let (id, label) = self.resolve(target, "pause")?;
                self.servers.pause(id)?;
                self.record(ActionKind::Pause, &[id], Vec::new(), label)?;
                self.answers.remove(&id);
            }
            Command::Resume(target) => {
                for (id, label) in self.targets(target, Process::Paused, "resume")? {
                    // Recorded first: the resumed server may log before we write.
                    self.record(ActionKind::Resume, &[id], Vec::new(), label)?;
                    self.servers.resume(id)?;
                    self.unsynced.insert(id);
                }
            }
            Command::Partition(named) => {
                self.need_faults("partition")?;
                let all = self.servers.ids();
                for &id in named.iter().flatten() {
                    self.known(id)?;
                }
                let groups = self.network.partition(&named, &all);
                let text: Vec<String> = groups.iter().map(|g| network::ids(g)).collect();
                let label = format!("partition {}", text.join(" | "));
                self.record(ActionKind::Partition, &all, groups, label)?;
                self.sync_everyone().await?;
            }
            Command::Heal => {
                self.need_faults("heal")?;
                self.network.heal();
                let all = self.servers.ids();
                self.record(ActionKind::Heal, &all, Vec::new(), "heal".into())?;
                self.sync_everyone().await?;
            }
            Command::Slow { a, b, ms } => {
                self.need_faults("slow")?;
                for id in [a, b] {
                    self.known(id)?;
                }
                self.network.slow(a, b, ms);
                let label = format!("slow {a}-{b} {ms} ms");
                self.record(ActionKind::Slow, &[a, b], Vec::new(), label)?;
                self.sync_everyone().await?;
            }
            Command::Transfer(to) => self.transfer(to).await?,
            Command::Wait(duration) => self.pass(duration).await?,
            Command::WaitUntil { condition, within } => {
                let deadline = Instant::now() + within;
                loop {
                    match self.check(&condition) {
                        Ok(holds) => {
                            self.say(format!("ok: {holds}"));
                            break;
                        }
                        Err(why) if Instant::now() > deadline => {
                            bail!("not within {within:?}: {why}")
                        }
                        Err(_) => self.pass(POLL).await?,
                    }
                }
            }
            Command::Expect { condition, hold } => {
                let deadline = Instant::now() + hold;
                // A server that misses one poll on a loaded machine is asked again, a
                // few times, before its silence fails the expectation.
                let mut holds = self.check(&condition);
                for _ in 0..SILENCE_RETRIES {
                    match &holds {
                        Err(why) if why.contains(observe::SILENT) => {
                            self.pass(POLL).await?;
                            holds = self.check(&condition);
                        }
                        _ => break,
                    }
                }
                let mut holds = holds.map_err(|why| anyhow!(why))?;
                while Instant::now() < deadline {
                    self.pass(POLL).await?;
                    holds = self
                        .check(&condition)
                        .map_err(|why| anyhow!("broken during {hold:?}: {why}"))?;
                }
                self.say(format!("ok: {holds}"));
            }
            Command::Timeline(path) => {
                let summary = self.write_timeline(&path)?;
                self.say(summary);
            }
            Command::Help => {
                for line in HELP.lines() {
                    self.say(line.to_string());
                }
            }
            Command::Quit => return Ok(Flow::Quit),
        }
        self.refresh().await;
        Ok(Flow::Continue)
    }

    /// Records the end, stops every server and writes the timeline to `timeline`
    /// (if any). The directory is removed when the session is dropped, unless kept.
    pub fn finish(&mut self, timeline: Option<&Path>) -> anyhow::Result<()> {
        let all = self.servers.ids();
        self.record(ActionKind::End, &all, Vec::new(), "end".into())?;
        self.servers.stop_all();
        if let Some(path) = timeline {
            let summary = self.write_timeline(path)?;
            self.say(summary);
        }
        Ok(())
    }

    /// Gives the terminal back; from now on the session writes plain text.
    pub fn leave_terminal(&mut self) {
        if let Output::Terminal(_) = self.output {
            self.output = Output::Script;
            // The terminal is back with its cursor where the demo started, which may
            // be mid-line; what follows starts on a line of its own.
            print_out("\n");
        }
    }

    /// Keeps the demo's directory after the session ends; returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        self.servers.keep_dir()
    }

    /// Writes the timeline from every log in the demo's directory so far.
    pub fn write_timeline(&self, path: &Path) -> anyhow::Result<String> {
        let mut logs: Vec<PathBuf> = self
            .servers
            .ids()
            .into_iter()
            .map(|id| self.servers.log_path(id))
            .filter(|path| path.exists())
            .collect();
        logs.push(self.servers.dir().join("demo.log"));
        timeline::write_from_logs(&logs, Some(clock::now()), path)
    }

    /// Redraws the terminal (nothing in script mode).
    pub fn draw(&mut self) {
        let table = self.table();
        if let Output::Terminal(terminal) = &mut self.output {
            terminal.draw(&table, &self.events);
        }
    }

    /// Shows the table: in script mode as a frame, headed by `why` and the time.
    pub fn frame(&mut self, why: &str) {
        match self.output {
            Output::Script => {
                let mut out = format!("== {} {why}\n", clock::clock_millis(clock::now()));
                for line in self.table() {
                    out.push_str(&line);
                    out.push('\n');
                }
                print_out(&out);
            }
            Output::Terminal(_) => self.draw(),
        }
    }

    /// A line for the person watching: printed in script mode, an event otherwise.
    pub fn say(&mut self, text: String) {
        match self.output {
            Output::Script => print_out(&format!("{text}\n")),
            Output::Terminal(_) => self.events.push(text),
        }
    }

    /// A line of the event log, shown in both modes.
    fn event(&mut self, text: String) {
        if let Output::Script = self.output {
            print_out(&format!("  {text}\n"));
        }
        self.events.push(text);
    }

    /// The header and table of the view, as it stands.
    fn table(&self) -> Vec<String> {
        let network = if self.servers.faults_enabled() {
            self.network.describe()
        } else {
            "whole (no fault layer)".into()
        };
        let header = Header {
            servers: self.servers.ids().len(),
            timing: self.servers.config().timing,
            timing_source: self.timing_source.clone(),
            network,
        };
        let rows: Vec<Row> = self
            .servers
            .ids()
            .into_iter()
            .map(|id| {
                let mut place = match self.network.group_letter(id) {
                    Some(letter) => format!("cut off {letter}"),
                    None => "ok".to_string(),
                };
                if self.network.is_slow(id) {
                    place = if self.network.is_partitioned() {
                        format!("{} slow", place.trim_start_matches("cut off "))
                    } else {
                        "slow".into()
                    };
                }
                Row {
                    id,
                    process: self.servers.process(id),
                    network: place,
                    reported: self.answers.get(&id).cloned().flatten(),
                }
            })
            .collect();
        view::table(&header, &rows)
    }

    /// Lets `duration` pass, refreshing the view as it goes.
    /// In the terminal, Ctrl-C cuts a wait short with an error (the key also ends the
    /// demo, once the watch loop reads it).
    async fn pass(&mut self, duration: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            if let Output::Terminal(terminal) = &self.output {
                if terminal.interrupted() {
                    bail!("interrupted by Ctrl-C");
                }
            }
            tokio::time::sleep(left.min(POLL)).await;
            self.refresh().await;
        }
    }

    fn check(&self, condition: &Condition) -> Result<String, String> {
        let running: Vec<u64> = self
            .servers
            .ids()
            .into_iter()
            .filter(|&id| self.servers.process(id) == Process::Up)
            .collect();
        observe::check(condition, &self.answers, &running)
    }

    /// The server a target names, and the action's label.
    fn resolve(&self, target: Target, verb: &str) -> anyhow::Result<(u64, String)> {
        match target {
            Target::Server(id) => {
                self.known(id)?;
                Ok((id, format!("{verb} {id}")))
            }
            Target::Leader => {
                let id = self
                    .leader()
                    .ok_or_else(|| anyhow!("no server leads right now"))?;
                Ok((id, format!("{verb} {id} (the leader)")))
            }
            Target::Every => bail!("{verb} needs a server id or \"leader\""),
        }
    }

    /// Fails unless server `id` is one of the demo's.
    fn known(&self, id: u64) -> anyhow::Result<()> {
        let ids = self.servers.ids();
        if !ids.contains(&id) {
            bail!(
                "there is no server {id} (the servers are {})",
                network::ids(&ids)
            );
        }
        Ok(())
    }

    /// The servers a target names, with `Every` meaning each server in `process`.
    fn targets(
        &self,
        target: Target,
        process: Process,
        verb: &str,
    ) -> anyhow::Result<Vec<(u64, String)>> {
        if target != Target::Every {
            return Ok(vec![self.resolve(target, verb)?]);
        }
        let ids: Vec<(u64, String)> = self
            .servers
            .ids()
            .into_iter()
            .filter(|&id| self.servers.process(id) == process)
            .map(|id| (id, format!("{verb} {id}")))
            .collect();
        if ids.is_empty() {
            bail!("no server is {}", process.as_str());
        }
        Ok(ids)
    }

    /// The leader of the highest term among the answers.
    fn leader(&self) -> Option<u64> {
        self.answers
            .iter()
            .filter_map(|(&id, r)| {
                r.as_ref()
                    .filter(|r| r.role == "leader")
                    .map(|r| (r.term, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// The groups the `s` key splits into: the leader and the next server, against
    /// the rest (a minority holding the old leader).
    ///
    /// The leader alone is cut off instead when taking a second server would leave
    /// the rest without a majority of running servers: the split is meant to show the
    /// majority electing.
    pub fn split_around_leader(&self) -> Vec<u64> {
        let ids = self.servers.ids();
        let leader = self.leader().unwrap_or(ids[0]);
        let up = |id: &u64| self.servers.process(*id) == Process::Up;
        let majority = ids.len() / 2 + 1;

        let partner = ids.iter().copied().find(|id| *id != leader && up(id));
        if let Some(partner) = partner {
            let rest_up = ids
                .iter()
                .filter(|id| **id != leader && **id != partner && up(id))
                .count();
            if rest_up >= majority {
                return vec![leader, partner];
            }
        }
        vec![leader]
    }

    fn need_faults(&self, verb: &str) -> anyhow::Result<()> {
        if self.servers.faults_enabled() {
            Ok(())
        } else {
            bail!(
                "{verb} needs the servers' fault layer ([faults] in raft-node's \
                 configuration), which this build does not have"
            )
        }
    }

    /// Tells every running server the network now; paused ones when they resume.
    async fn sync_everyone(&mut self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for id in self.servers.ids() {
            match self.servers.process(id) {
                Process::Up => {
                    if let Err(error) = self.sync_faults(id).await {
                        failures.push(format!("server {id}: {error:#}"));
                    }
                }
                Process::Paused => {
                    self.unsynced.insert(id);
                }
                Process::Down => {}
            }
        }
        if !failures.is_empty() {
            bail!("{}", failures.join("; "));
        }
        Ok(())
    }

    async fn sync_faults(&mut self, id: u64) -> anyhow::Result<()> {
        let address = self.servers.config().server(id)?.status_address;
        for request in self.network.requests_for(id) {
            let answer = crate::status::request(address, &request).await?;
            let reply: serde_json::Value = serde_json::from_str(answer.trim())
                .with_context(|| format!("unexpected answer to {request:?}: {}", answer.trim()))?;
            if reply.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
                let error = reply
                    .get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("refused");
                bail!("{request:?} refused: {error}");
            }
        }
        Ok(())
    }

    async fn transfer(&mut self, to: Option<u64>) -> anyhow::Result<()> {
        let leader = self
            .leader()
            .ok_or_else(|| anyhow!("no server leads right now"))?;
        if to == Some(leader) {
            self.say(format!("server {leader} already leads"));
            return Ok(());
        }
        let address = self.servers.config().server(leader)?.status_address;
        let request = match to {
            Some(to) => format!("transfer {to}"),
            None => "transfer".to_string(),
        };
        let answer = crate::status::request(address, &request).await?;
        let reply: TransferReply = serde_json::from_str(answer.trim()).with_context(|| {
            format!("unexpected answer from server {leader}: {}", answer.trim())
        })?;
        if !reply.ok {
            bail!(
                "server {leader} refused to hand over: {}",
                reply.error.unwrap_or_default()
            );
        }
        let target = reply.to.map_or("?".to_string(), |to| to.to_string());
        let label = format!("transfer {leader} -> {target}");
        self.record(ActionKind::Transfer, &[leader], Vec::new(), label)?;

        // As `raft-node transfer` does, wait to see the new leader, so that what comes
        // next (a frame, a `wait-leader`) sees the cluster after the hand-over. The
        // old leader abandons a transfer after an election timeout; twice that is
        // enough to tell.
        let limit = 2 * self.servers.config().timing.election_timeout_max_ms;
        let deadline = Instant::now() + Duration::from_millis(limit);
        while Instant::now() < deadline {
            self.pass(POLL).await?;
            if let Some(new) = self.leader().filter(|&new| new != leader) {
                self.say(format!(
                    "ok: leadership handed from server {leader} to {new}"
                ));
                return Ok(());
            }
        }
        self.say(format!(
            "no new leader seen within {limit} ms of the hand-over"
        ));
        Ok(())
    }

    /// Writes an action to the demo's log and shows it.
    fn record(
        &mut self,
        kind: ActionKind,
        servers: &[u64],
        groups: Vec<Vec<u64>>,
        label: String,
    ) -> anyhow::Result<()> {
        let at: Micros = clock::now();
        let action = Action {
            action: kind,
            servers: servers.to_vec(),
            groups,
            label: label.clone(),
        };
        writeln!(self.action_log, "{}", records::action_line(at, &action))
            .context("cannot write the demo's action log")?;
        self.event(format!("{}  > {label}", clock::clock_millis(at)));
        Ok(())
    }
}

/// Writes to standard output and flushes. A reader that went away (`| head`) is no
/// reason to stop, let alone to panic with servers running: errors are ignored.
fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A server's log line in the event log, or `None` for lines not shown.
fn describe(record: &Record) -> Option<String> {
    match record {
        Record::Role {
            node,
            role,
            term,
            votes,
        } => {
            let votes = votes
                .as_deref()
                .map(|v| format!(", votes {}", v.trim_matches(['[', ']'])))
                .unwrap_or_default();
            Some(format!("server {node} became {role} in term {term}{votes}"))
        }
        Record::Stopped { node } => Some(format!("server {node} stopped")),
        Record::Action(_) => None,
    }
}

/// The commands, for `help` and `?`.
pub const HELP: &str = "\
commands: kill N|leader, restart [N|leader], pause N|leader, resume [N|leader],
  partition 1,2 3,4,5 (unnamed servers form one more group), heal, transfer [N],
  slow A B MS, wait 2s, wait-leader [in IDS] [TIMEOUT], wait-no-leader [in IDS],
  expect leader|no-leader [in IDS] [is N] [for 2s], timeline FILE, quit";
