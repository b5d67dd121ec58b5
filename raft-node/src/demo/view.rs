//! The demo's view as lines of text no wider than the terminal (80 columns is enough):
//! a header with the timing, one row per server, then the log of elections and
//! actions. The terminal draws these lines; script mode prints them as they are, so
//! tests read exactly what a person sees.

use super::observe::Reported;
use super::servers::Process;
use crate::config::Timing;

/// The width the view is laid out for; wider terminals show the same.
pub const WIDTH: usize = 80;

/// What the header says.
#[derive(Clone, Debug)]
pub struct Header {
    /// How many servers.
    pub servers: usize,
    /// Their timing.
    pub timing: Timing,
    /// Where the timing comes from: `slowed down to follow`, `of the Raft paper`...
    pub timing_source: String,
    /// The network in a few words, or why faults are unavailable.
    pub network: String,
}

/// One server's row.
#[derive(Clone, Debug)]
pub struct Row {
    /// The server.
    pub id: u64,
    /// What the demo did to its process.
    pub process: Process,
    /// Its place in the network: `ok`, `cut off A`, `slow`.
    pub network: String,
    /// Its last answer, if it answered the last poll.
    pub reported: Option<Reported>,
}

/// The header and the table of servers.
pub fn table(header: &Header, rows: &[Row]) -> Vec<String> {
    let t = &header.timing;
    let mut lines = vec![
        format!(
            "raft-node demo: {} servers on 127.0.0.1, timing {}",
            header.servers, header.timing_source
        ),
        format!(
            "election timeout {}-{} ms, heartbeat {} ms; network: {}",
            t.election_timeout_min_ms,
            t.election_timeout_max_ms,
            t.heartbeat_interval_ms,
            header.network
        ),
        String::new(),
        format!(
            "{:>3}  {:<7}  {:<10}  {:<13}  {:>5}  {:>6}  {:>5}  {:>8}",
            "ID", "PROCESS", "NETWORK", "ROLE", "TERM", "LEADER", "VOTED", "HEARD"
        ),
    ];

    for row in rows {
        let dash = || "-".to_string();
        let number = |n: Option<u64>| n.map_or_else(dash, |n| n.to_string());
        let reported = row.reported.as_ref();
        let role = match (row.process, reported) {
            (_, Some(reported)) => reported.role.clone(),
            (Process::Up, None) => "no answer".to_string(),
            (Process::Paused, None) => "(frozen)".to_string(),
            (Process::Down, None) => dash(),
        };
        let heard = reported
            .and_then(|r| r.since_leader_ms)
            .map_or_else(dash, milliseconds);
        lines.push(format!(
            "{:>3}  {:<7}  {:<10}  {:<13}  {:>5}  {:>6}  {:>5}  {:>8}",
            row.id,
            row.process.as_str(),
            row.network,
            role,
            number(reported.map(|r| r.term)),
            number(reported.and_then(|r| r.leader)),
            number(reported.and_then(|r| r.voted_for)),
            heard,
        ));
    }
    lines.into_iter().map(|line| fit(&line, WIDTH)).collect()
}

/// The whole screen: the table, then as many of the latest events as fit above the
/// footer in `height` lines.
pub fn screen(
    table: &[String],
    events: &[String],
    footer: &[String],
    height: usize,
) -> Vec<String> {
    let mut lines: Vec<String> = table.to_vec();
    lines.push(String::new());
    lines.push(fit("events (UTC)", WIDTH));

    let room = height.saturating_sub(lines.len() + footer.len());
    let shown = &events[events.len().saturating_sub(room)..];
    lines.extend(shown.iter().map(|event| fit(event, WIDTH)));

    while lines.len() + footer.len() < height {
        lines.push(String::new());
    }
    lines.extend(footer.iter().map(|line| fit(line, WIDTH)));
    lines
}

/// How the terminal shows a line of the screen: plain text stays readable without
/// colour, so colour only repeats what the words say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// As it is.
    Plain,
    /// The first header line.
    Title,
    /// A leader's row, or a leader's election in the events.
    Leader,
    /// A pre-candidate's or candidate's row.
    Campaigning,
    /// A killed server's row.
    Down,
    /// A paused server's row.
    Paused,
    /// An action of the demo in the events.
    Action,
}

/// The tone of `line`, a line of [`screen`], read from the columns [`table`] writes.
pub fn tone(line: &str) -> Tone {
    if line.starts_with("raft-node demo:") {
        return Tone::Title;
    }
    let column = |from: usize, width: usize| -> String {
        line.chars()
            .skip(from)
            .take(width)
            .collect::<String>()
            .trim()
            .to_string()
    };
    let is_row = column(0, 3).parse::<u64>().is_ok();
    if is_row {
        // PROCESS starts at column 5, ROLE at 26 (see the format in `table`).
        return match (column(5, 7).as_str(), column(26, 13).as_str()) {
            ("killed", _) => Tone::Down,
            ("paused", _) => Tone::Paused,
            (_, "leader") => Tone::Leader,
            (_, "pre-candidate" | "candidate") => Tone::Campaigning,
            _ => Tone::Plain,
        };
    }
    if line.contains("  > ") {
        Tone::Action
    } else if line.contains(" became leader ") {
        Tone::Leader
    } else {
        Tone::Plain
    }
}

/// `120 ms` below a second, `1.2 s` below a minute, `3 min` beyond.
fn milliseconds(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min", ms / 60_000),
    }
}

/// `line` cut to `width` characters, without trailing spaces.
pub fn fit(line: &str, width: usize) -> String {
    line.chars()
        .take(width)
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            servers: 5,
            timing: Timing {
                tick_ms: 10,
                election_timeout_min_ms: 1000,
                election_timeout_max_ms: 2000,
                heartbeat_interval_ms: 250,
            },
            timing_source: "slowed for watching (--fast for the paper's)".into(),
            network: "split A=1,2 | B=3,4,5, slow 1-2 300 ms, slow 3-4 300 ms".into(),
        }
    }

    fn rows() -> Vec<Row> {
        let reported = |role: &str, leader, heard| Reported {
            role: role.into(),
            term: 12_345,
            leader,
            voted_for: Some(2),
            since_leader_ms: heard,
        };
        vec![
            Row {
                id: 1,
                process: Process::Up,
                network: "cut off A".into(),
                reported: Some(reported("pre-candidate", None, Some(61_000))),
            },
            Row {
                id: 2,
                process: Process::Up,
                network: "ok".into(),
                reported: Some(reported("leader", Some(2), Some(4))),
            },
            Row {
                id: 3,
                process: Process::Paused,
                network: "ok".into(),
                reported: None,
            },
            Row {
                id: 4,
                process: Process::Down,
                network: "ok".into(),
                reported: None,
            },
            Row {
                id: 5,
                process: Process::Up,
                network: "slow".into(),
                reported: Some(reported("follower", Some(2), Some(1_250))),
            },
        ]
    }

    /// The table fits 80 columns even with long values, and shows each server's state.
    #[test]
    fn table_fits_eighty_columns() {
        let lines = table(&header(), &rows());

        for line in &lines {
            assert!(line.chars().count() <= WIDTH, "{} wide: {line}", line.len());
        }
        assert_eq!(
            lines[3],
            " ID  PROCESS  NETWORK     ROLE            TERM  LEADER  VOTED     HEARD"
        );
        assert_eq!(
            lines[4],
            "  1  up       cut off A   pre-candidate  12345       -      2     1 min"
        );
        assert_eq!(
            lines[5],
            "  2  up       ok          leader         12345       2      2      4 ms"
        );
        assert!(lines[6].contains("paused") && lines[6].contains("(frozen)"));
        assert!(lines[7].contains("killed"));
        assert!(lines[8].ends_with("1.2 s"));

        let tones: Vec<Tone> = lines.iter().map(|line| tone(line)).collect();
        assert_eq!(
            tones,
            vec![
                Tone::Title,
                Tone::Plain,
                Tone::Plain,
                Tone::Plain,
                Tone::Campaigning,
                Tone::Leader,
                Tone::Paused,
                Tone::Down,
                Tone::Plain,
            ]
        );
        assert_eq!(tone("18:33:18.963  > kill 4 (the leader)"), Tone::Action);
        assert_eq!(
            tone("18:33:16.089  server 4 became leader in term 1"),
            Tone::Leader
        );
    }

    /// The screen keeps the latest events that fit and puts the footer last.
    #[test]
    fn screen_keeps_latest_events_above_footer() {
        let table = table(&header(), &rows());
        let events: Vec<String> = (0..100).map(|n| format!("event {n}")).collect();
        let footer = vec!["keys".to_string(), "> ".to_string()];

        let lines = screen(&table, &events, &footer, 24);

        assert_eq!(lines.len(), 24);
        assert_eq!(lines[22], "keys");
        assert_eq!(lines[21], "event 99");
        // 9 table lines, a blank and the events title leave 11 lines for events.
        assert_eq!(lines[11], "event 89");
        assert!(!lines.contains(&"event 88".to_string()));
        assert!(lines.iter().all(|line| line.chars().count() <= WIDTH));
    }
}
