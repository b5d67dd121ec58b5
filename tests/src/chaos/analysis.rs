//! What the servers' JSON logs and the executed schedule say about a run: the safety
//! rules of the harness, elections, and availability.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::logs::{ids_in, parse_timestamp, LogEvent};

/// When each server was up (running and not paused), as half-open intervals of
/// milliseconds since the Unix epoch; an interval still open at the end has `None`.
pub type UpIntervals = BTreeMap<u64, Vec<(u64, Option<u64>)>>;

/// What the logs showed.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// "became leader" lines, over all servers.
    pub elections: usize,
    /// The highest term any server reached.
    pub highest_term: u64,
    /// Rule breaks; must be empty.
    pub violations: Vec<String>,
    /// Time during which a majority was up.
    pub majority_up: Duration,
    /// Of that, time with a leader that was up.
    pub majority_up_with_leader: Duration,
    /// The longest stretch without a leader while a majority had been up for at least
    /// the grace period.
    pub longest_leaderless: Duration,
    /// Leaderless stretches, while a majority had been up for the grace period, that
    /// lasted longer than the bound (start in ms since the epoch, length).
    pub liveness_breaches: Vec<(u64, Duration)>,
}

impl Analysis {
    /// Share of the time with a majority up during which there was a leader.
    pub fn availability(&self) -> f64 {
        if self.majority_up.is_zero() {
            return 1.0;
        }
        self.majority_up_with_leader.as_secs_f64() / self.majority_up.as_secs_f64()
    }
}

/// The timestamp of a log line (`2026-12-03T16:41:30.307899Z`), in milliseconds since
/// the Unix epoch; `None` when the line has none in that form.
pub(crate) fn timestamp_ms(event: &LogEvent) -> Option<u64> {
    let text = event.fields.get("timestamp")?.as_str()?;
    parse_utc_ms(text)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` into milliseconds since the Unix epoch.
fn parse_utc_ms(text: &str) -> Option<u64> {
    u64::try_from(parse_timestamp(text)?.div_euclid(1000)).ok()
}

/// The safety rules of the harness (`Cluster::finish`), counted instead of asserted:
/// one leader per term, every leader elected by a majority including itself, one vote
/// per server per term over all its runs, and no server seeing another leader of its
/// own term.
pub(crate) fn check_safety(logs: &BTreeMap<u64, Vec<LogEvent>>, analysis: &mut Analysis) {
    let majority = logs.len() / 2 + 1;
    let mut leaders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();

    for (&id, events) in logs {
        let mut votes: BTreeMap<u64, u64> = BTreeMap::new();
        for event in events {
            if let Some(term) = event.number("term") {
                analysis.highest_term = analysis.highest_term.max(term);
            }
            let term = event.number("term").unwrap_or_default();
            match event.message.as_str() {
                "became leader" => {
                    analysis.elections += 1;
                    leaders.entry(term).or_default().insert(id);
                    let voters = ids_in(&event.fields["votes"]);
                    if voters.len() < majority || !voters.contains(&id) {
                        let problem = format!("server {id} led term {term}: votes {voters:?}");
                        analysis.violations.push(problem);
                    }
                }
                "vote granted" if event.fields["pre_vote"] == false => {
                    let candidate = event.number("candidate").unwrap_or_default();
                    let first = *votes.entry(term).or_insert(candidate);
                    if first != candidate {
                        let problem = format!("server {id} voted for {first} and {candidate}");
                        analysis
                            .violations
                            .push(format!("{problem} in term {term}"));
                    }
                }
                message if message.contains("from another leader of this term") => {
                    let problem = format!("server {id}: {}", event.fields);
                    analysis.violations.push(problem);
                }
                _ => {}
            }
        }
    }

    for (term, nodes) in leaders {
        if nodes.len() > 1 {
            analysis
                .violations
                .push(format!("term {term} has leaders {nodes:?}"));
        }
    }
}

/// When each server led, from its log: from "became leader" to its next change of
/// role (follower, pre-candidate, candidate). A server that goes down stops leading;
/// [`check_availability`] cuts these intervals by the up intervals.
fn leader_intervals(events: &[LogEvent]) -> Vec<(u64, Option<u64>)> {
    let mut intervals = Vec::new();
    let mut since = None;
    for event in events {
        let Some(at) = timestamp_ms(event) else {
            continue;
        };
        match event.message.as_str() {
            "became leader" => {
                since.get_or_insert(at);
            }
            message if message.starts_with("became ") => {
                if let Some(start) = since.take() {
                    intervals.push((start, Some(at)));
                }
            }
            _ => {}
        }
    }
    if let Some(start) = since {
        intervals.push((start, None));
    }
    intervals
}

/// Ends every leader interval at the first time the server went down after it began:
/// a killed leader logs nothing more, and a paused one is of no use to anyone.
fn cut_at_downs(intervals: Vec<(u64, Option<u64>)>, downs: &[u64]) -> Vec<(u64, Option<u64>)> {
    intervals
        .into_iter()
        .map(|(start, end)| {
            let down = downs.iter().copied().filter(|&down| down >= start).min();
            let end = match (end, down) {
                (Some(end), Some(down)) => Some(end.min(down)),
                (end, down) => end.or(down),
            };
            (start, end)
        })
        .collect()
}

fn contains(intervals: &[(u64, Option<u64>)], at: u64) -> bool {
    intervals
        .iter()
        .any(|&(start, end)| start <= at && end.is_none_or(|end| at < end))
}

/// How long `at` has been inside one of `intervals`, if it is.
fn up_for(intervals: &[(u64, Option<u64>)], at: u64) -> Option<u64> {
    intervals
        .iter()
        .find(|&&(start, end)| start <= at && end.is_none_or(|end| at < end))
        .map(|&(start, _)| at - start)
}

/// Step of the availability sweep.
const RESOLUTION_MS: u64 = 10;

/// Sweeps `[from, to)`: while a majority is up there should be a leader that is up;
/// once a majority has been up for `grace`, a stretch without one longer than `bound`
/// is a liveness breach.
pub(crate) fn check_availability(
    logs: &BTreeMap<u64, Vec<LogEvent>>,
    up: &UpIntervals,
    (from, to): (u64, u64),
    grace: Duration,
    bound: Duration,
    analysis: &mut Analysis,
) {
    let majority = up.len() / 2 + 1;
    let grace_ms = grace.as_millis() as u64;
    let leading: BTreeMap<u64, Vec<(u64, Option<u64>)>> = logs
        .iter()
        .map(|(&id, events)| {
            let downs: Vec<u64> = up
                .get(&id)
                .into_iter()
                .flatten()
                .filter_map(|&(_, end)| end)
                .collect();
            (id, cut_at_downs(leader_intervals(events), &downs))
        })
        .collect();

    let step = Duration::from_millis(RESOLUTION_MS);
    let mut leaderless_since: Option<u64> = None;
    let mut at = from;
    while at < to {
        let up_ids: Vec<u64> = up
            .iter()
            .filter(|(_, intervals)| contains(intervals, at))
            .map(|(&id, _)| id)
            .collect();
        let settled = up
            .values()
            .filter(|intervals| up_for(intervals, at).is_some_and(|ms| ms >= grace_ms))
            .count();
        let has_leader = up_ids.iter().any(|id| {
            leading
                .get(id)
                .is_some_and(|intervals| contains(intervals, at))
        });

        if up_ids.len() >= majority {
            analysis.majority_up += step;
            if has_leader {
                analysis.majority_up_with_leader += step;
            }
        }

        if settled >= majority && !has_leader {
            leaderless_since.get_or_insert(at);
        } else if let Some(start) = leaderless_since.take() {
            note_stretch(start, at, bound, analysis);
        }
        at += RESOLUTION_MS;
    }
    if let Some(start) = leaderless_since {
        note_stretch(start, to, bound, analysis);
    }
}

fn note_stretch(start: u64, end: u64, bound: Duration, analysis: &mut Analysis) {
    let length = Duration::from_millis(end - start);
    analysis.longest_leaderless = analysis.longest_leaderless.max(length);
    if length > bound {
        analysis.liveness_breaches.push((start, length));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log timestamps convert to the same milliseconds as the system clock uses.
    #[test]
    fn utc_timestamps_parse_to_milliseconds_since_the_epoch() {
        assert_eq!(parse_utc_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc_ms("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        // 2026-12-03T16:41:30.307899Z, checked with `date -d ... +%s`.
        assert_eq!(
            parse_utc_ms("2026-12-03T16:41:30.307899Z"),
            Some(1_796_316_090_307)
        );
        assert_eq!(parse_utc_ms("yesterday"), None);
    }
}
