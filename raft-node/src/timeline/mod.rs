//! The election timeline: one lane per server, coloured by role over time, with terms
//! marked and the demo's actions (kills, pauses, partitions, heals) drawn where they
//! happened. `raft-node timeline LOG...` draws it from the servers' JSON logs; the demo
//! draws it from the same logs plus its own log of actions.
//!
//! From server logs alone a lane shows what the server logged: a server killed with
//! SIGKILL logs nothing more, so its lane keeps its last role until its next line. The
//! demo's action log says when it killed, paused or cut off a server, and the lane then
//! shows it down, paused or cut off.

pub mod clock;
pub mod records;
mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use raft::Role;

use self::clock::Micros;
use self::records::{ActionKind, Record, Stamped};

pub use self::svg::render_svg;

/// Everything a timeline shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The first instant shown.
    pub start: Micros,
    /// The last instant shown.
    pub end: Micros,
    /// One lane per server, by id.
    pub lanes: Vec<Lane>,
    /// The demo's actions.
    pub markers: Vec<Marker>,
}

/// One server's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    /// The server.
    pub server: u64,
    /// What it was doing, in time order, without gaps between two spans it logged.
    pub spans: Vec<Span>,
    /// When it was cut off from some of its peers by a partition.
    pub cut: Vec<(Micros, Micros)>,
}

/// A stretch of time in one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// From (inclusive).
    pub from: Micros,
    /// To (exclusive).
    pub to: Micros,
    /// What the server was doing.
    pub state: SpanState,
    /// Its term (the last one known while down or paused).
    pub term: u64,
}

/// What a server was doing during a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanState {
    /// Running in this role.
    Running(Role),
    /// Frozen by SIGSTOP.
    Paused,
    /// Not running: killed or stopped.
    Down,
}

/// An action of the demo, drawn as a vertical line with a label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// When.
    pub at: Micros,
    /// Which kind.
    pub kind: ActionKind,
    /// The label, such as `kill 3`.
    pub label: String,
}

/// The state of one server while the records are swept in time order.
#[derive(Clone, Copy)]
struct Sweep {
    since: Micros,
    process: Process,
    role: Role,
    term: u64,
    cut_since: Option<Micros>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Process {
    Running,
    Paused,
    Down,
}

impl Sweep {
    fn state(&self) -> SpanState {
        match self.process {
            Process::Running => SpanState::Running(self.role),
            Process::Paused => SpanState::Paused,
            Process::Down => SpanState::Down,
        }
    }
}

impl Timeline {
    /// Builds the timeline from records of any number of logs, in any order.
    #[cfg(test)]
    pub fn build(records: Vec<Stamped>) -> Timeline {
        Timeline::build_until(records, None)
    }

    /// As [`Timeline::build`], drawn at least until `until` (a demo still running).
    pub fn build_until(mut records: Vec<Stamped>, until: Option<Micros>) -> Timeline {
        // A stable sort keeps each log's own order for lines with equal timestamps.
        records.sort_by_key(|stamped| stamped.at);
        let start = records.first().map_or(0, |s| s.at);
        let last = records.last().map_or(0, |s| s.at);
        // Logs alone say nothing after their last line; a margin keeps the last change
        // visible (a leader elected on the last line would otherwise have no width).
        let margin = ((last - start) / 20).max(100_000);
        let mut end = until.map_or(last + margin, |until| until.max(last));

        let mut lanes: BTreeMap<u64, Lane> = BTreeMap::new();
        let mut sweeps: BTreeMap<u64, Sweep> = BTreeMap::new();
        let mut markers = Vec::new();

        for Stamped { at, record } in records {
            match record {
                // A server that logs is running, whatever the demo last did to it.
                Record::Role {
                    node, role, term, ..
                } => {
                    change(&mut lanes, &mut sweeps, node, at, |sweep| {
                        *sweep = Sweep {
                            process: Process::Running,
                            role,
                            term,
                            ..*sweep
                        }
                    });
                }
                Record::Stopped { node } => {
                    change(&mut lanes, &mut sweeps, node, at, |sweep| {
                        sweep.process = Process::Down;
                    });
                }
                Record::Action(action) => {
                    if action.action != ActionKind::End {
                        markers.push(Marker {
                            at,
                            kind: action.action,
                            label: action.label.clone(),
                        });
                    }
                    apply_action(&mut lanes, &mut sweeps, at, &action);
                    if action.action == ActionKind::End {
                        end = at;
                    }
                }
            }
        }

        // Close what is still open at the end.
        for (&server, sweep) in &sweeps {
            let lane = lane(&mut lanes, server);
            push_span(lane, sweep, end);
            if let Some(since) = sweep.cut_since {
                lane.cut.push((since, end));
            }
        }

        Timeline {
            start,
            end: end.max(start + 1),
            lanes: lanes.into_values().collect(),
            markers,
        }
    }

    /// Reads and builds from log files, drawn at least until `until`.
    pub fn from_logs(paths: &[PathBuf], until: Option<Micros>) -> anyhow::Result<Timeline> {
        let mut records = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read log {}", path.display()))?;
            records.extend(records::parse_log(&text));
        }
        Ok(Timeline::build_until(records, until))
    }

    /// The elections the timeline shows: (term, leader) of every leader span, in order.
    pub fn leaders(&self) -> Vec<(u64, u64)> {
        let mut leaders: Vec<(Micros, u64, u64)> = self
            .lanes
            .iter()
            .flat_map(|lane| {
                lane.spans
                    .iter()
                    .filter(|span| span.state == SpanState::Running(Role::Leader))
                    .map(|span| (span.from, span.term, lane.server))
            })
            .collect();
        leaders.sort();
        // One election can show as several spans: a leader paused and resumed leads
        // again in the same term until it hears of a newer one.
        let mut seen = std::collections::BTreeSet::new();
        leaders.retain(|&(_, term, server)| seen.insert((term, server)));
        leaders
            .into_iter()
            .map(|(_, term, server)| (term, server))
            .collect()
    }
}

/// Writes the SVG of the timeline drawn from `logs` to `out`; returns a summary line.
pub fn write_from_logs(
    logs: &[PathBuf],
    until: Option<Micros>,
    out: &Path,
) -> anyhow::Result<String> {
    let timeline = Timeline::from_logs(logs, until)?;
    anyhow::ensure!(
        !timeline.lanes.is_empty(),
        "no role change in the logs: were the servers run with --log-format json?"
    );
    std::fs::write(out, render_svg(&timeline))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(format!(
        "timeline of {} servers, {} leader elections, {:.1} s: {}",
        timeline.lanes.len(),
        timeline.leaders().len(),
        (timeline.end - timeline.start) as f64 / 1e6,
        out.display()
    ))
}

fn lane(lanes: &mut BTreeMap<u64, Lane>, server: u64) -> &mut Lane {
    lanes.entry(server).or_insert_with(|| Lane {
        server,
        spans: Vec::new(),
        cut: Vec::new(),
    })
}

fn push_span(lane: &mut Lane, sweep: &Sweep, to: Micros) {
    if to > sweep.since {
        lane.spans.push(Span {
            from: sweep.since,
            to,
            state: sweep.state(),
            term: sweep.term,
        });
    }
}

/// Applies `update` to server `node`'s state at `at`, closing its current span if
/// what it shows changes. A server seen for the first time starts as a follower of
/// term 0, as a fresh server does.
fn change(
    lanes: &mut BTreeMap<u64, Lane>,
    sweeps: &mut BTreeMap<u64, Sweep>,
    node: u64,
    at: Micros,
    update: impl FnOnce(&mut Sweep),
) {
    let Some(sweep) = sweeps.get_mut(&node) else {
        lane(lanes, node);
        let mut sweep = Sweep {
            since: at,
            process: Process::Running,
            role: Role::Follower,
            term: 0,
            cut_since: None,
        };
        update(&mut sweep);
        sweeps.insert(node, sweep);
        return;
    };

    let before = *sweep;
    update(sweep);
    if (sweep.state(), sweep.term) == (before.state(), before.term) {
        return;
    }
    push_span(lane(lanes, node), &before, at);
    sweep.since = at;
}

fn apply_action(
    lanes: &mut BTreeMap<u64, Lane>,
    sweeps: &mut BTreeMap<u64, Sweep>,
    at: Micros,
    action: &records::Action,
) {
    for &server in &action.servers {
        let process = match action.action {
            ActionKind::Start | ActionKind::Restart | ActionKind::Resume => Process::Running,
            ActionKind::Kill | ActionKind::End => Process::Down,
            ActionKind::Pause => Process::Paused,
            ActionKind::Partition | ActionKind::Heal | ActionKind::Transfer | ActionKind::Slow => {
                continue
            }
        };
        // A (re)started server begins as a follower of the term on its disk; a resumed
        // one goes on in the role it was frozen in.
        let fresh = matches!(action.action, ActionKind::Start | ActionKind::Restart);
        change(lanes, sweeps, server, at, |sweep| {
            sweep.process = process;
            if fresh {
                sweep.role = Role::Follower;
            }
        });
    }

    match action.action {
        ActionKind::Partition if action.groups.len() > 1 => {
            for server in action.groups.iter().flatten() {
                if let Some(sweep) = sweeps.get_mut(server) {
                    sweep.cut_since.get_or_insert(at);
                }
            }
        }
        ActionKind::Heal | ActionKind::End => {
            for (&server, sweep) in sweeps.iter_mut() {
                if let Some(since) = sweep.cut_since.take() {
                    lane(lanes, server).cut.push((since, at));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::records::Action;
    use super::*;

    fn role(at: Micros, node: u64, role: Role, term: u64) -> Stamped {
        Stamped {
            at,
            record: Record::Role {
                node,
                role,
                term,
                votes: None,
            },
        }
    }

    fn action(at: Micros, kind: ActionKind, servers: &[u64], groups: &[&[u64]]) -> Stamped {
        Stamped {
            at,
            record: Record::Action(Action {
                action: kind,
                servers: servers.to_vec(),
                groups: groups.iter().map(|g| g.to_vec()).collect(),
                label: format!("{kind:?}"),
            }),
        }
    }

    /// Role changes become spans that meet end to end; a kill makes the lane go down
    /// and a restart brings it back as a follower of its last term.
    #[test]
    fn roles_and_kills_become_spans() {
        let records = vec![
            action(0, ActionKind::Start, &[1, 2], &[]),
            role(10, 1, Role::Candidate, 1),
            role(20, 1, Role::Leader, 1),
            role(21, 2, Role::Follower, 1),
            action(50, ActionKind::Kill, &[1], &[]),
            role(70, 2, Role::Leader, 2),
            action(80, ActionKind::Restart, &[1], &[]),
            action(100, ActionKind::End, &[1, 2], &[]),
        ];
        let timeline = Timeline::build(records);

        assert_eq!((timeline.start, timeline.end), (0, 100));
        let states: Vec<_> = timeline.lanes[0]
            .spans
            .iter()
            .map(|s| (s.from, s.to, s.state, s.term))
            .collect();
        let running = SpanState::Running;
        assert_eq!(
            states,
            vec![
                (0, 10, running(Role::Follower), 0),
                (10, 20, running(Role::Candidate), 1),
                (20, 50, running(Role::Leader), 1),
                (50, 80, SpanState::Down, 1),
                (80, 100, running(Role::Follower), 1),
            ]
        );
        assert_eq!(timeline.leaders(), vec![(1, 1), (2, 2)]);

        // A leader paused and resumed in its term is still one election.
        let paused = Timeline::build(vec![
            role(0, 1, Role::Leader, 1),
            action(10, ActionKind::Pause, &[1], &[]),
            action(20, ActionKind::Resume, &[1], &[]),
            role(30, 1, Role::Follower, 2),
        ]);
        let states: Vec<_> = paused.lanes[0].spans.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            vec![
                SpanState::Running(Role::Leader),
                SpanState::Paused,
                SpanState::Running(Role::Leader),
                SpanState::Running(Role::Follower),
            ]
        );
        assert_eq!(paused.leaders(), vec![(1, 1)]);
        let labels: Vec<_> = timeline.markers.iter().map(|m| m.kind).collect();
        assert_eq!(
            labels,
            vec![ActionKind::Start, ActionKind::Kill, ActionKind::Restart]
        );
    }

    /// A partition cuts off every server of a split network until the heal.
    #[test]
    fn partitions_cut_lanes_until_heal() {
        let records = vec![
            action(0, ActionKind::Start, &[1, 2, 3], &[]),
            action(10, ActionKind::Partition, &[1, 2, 3], &[&[1], &[2, 3]]),
            action(30, ActionKind::Heal, &[1, 2, 3], &[]),
            action(40, ActionKind::End, &[1, 2, 3], &[]),
        ];
        let timeline = Timeline::build(records);

        for lane in &timeline.lanes {
            assert_eq!(lane.cut, vec![(10, 30)], "server {}", lane.server);
        }
    }

    /// From server logs alone (no demo actions), lanes start at each server's first line
    /// and run to the last line of any log; a SIGTERM stop shows as down.
    #[test]
    fn server_logs_alone_draw_what_they_show() {
        let stopped = Stamped {
            at: 40,
            record: Record::Stopped { node: 2 },
        };
        let records = vec![
            role(5, 2, Role::Follower, 1),
            stopped,
            role(10, 1, Role::Leader, 1),
            role(60, 1, Role::Follower, 2),
        ];
        let timeline = Timeline::build(records);

        assert_eq!((timeline.start, timeline.end), (5, 60 + 100_000));
        let lane2: Vec<_> = timeline.lanes[1].spans.iter().map(|s| s.state).collect();
        assert_eq!(
            lane2,
            vec![SpanState::Running(Role::Follower), SpanState::Down]
        );
        let last = timeline.lanes[0].spans.last().unwrap();
        assert_eq!((last.from, last.to), (60, 60 + 100_000));
    }
}
