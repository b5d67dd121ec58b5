//! The lines of a JSON log (`--log-format json`) that a timeline is drawn from: role
//! changes and stops of the servers, and the actions of a demo.
//!
//! The servers log `became follower`, `became pre-candidate`, `became candidate` and
//! `became leader` with `node` and `term` fields (`votes` on a leader), and `stopped`
//! with `node` when they stop on a signal. The demo writes one `demo action` line per
//! action with `action`, `servers`, `groups` (a partition) and `label` fields, in the
//! same JSON shape, so one parser reads both.

use raft::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::{self, Micros};

/// The message of a demo's action line.
pub const DEMO_ACTION: &str = "demo action";

/// One line that matters to a timeline, with its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// When it happened.
    pub at: Micros,
    /// What happened.
    pub record: Record,
}

/// What a line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A server took a role in a term.
    Role {
        /// The server.
        node: u64,
        /// Its new role.
        role: Role,
        /// Its term.
        term: u64,
        /// The votes that elected a leader, as the log writes them (`[1, 3, 5]`).
        votes: Option<String>,
    },
    /// A server stopped on a signal (SIGTERM or Ctrl-C).
    Stopped {
        /// The server.
        node: u64,
    },
    /// Something the demo did to the cluster.
    Action(Action),
}

/// What the demo does to the cluster, as written in its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// The servers were started.
    Start,
    /// SIGKILL.
    Kill,
    /// Started again after a kill.
    Restart,
    /// SIGSTOP.
    Pause,
    /// SIGCONT.
    Resume,
    /// The network split into groups.
    Partition,
    /// Every fault cleared.
    Heal,
    /// Leadership handed to a server.
    Transfer,
    /// A link delayed.
    Slow,
    /// The demo ended and stopped every server.
    End,
}

/// One action of a demo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Which kind.
    pub action: ActionKind,
    /// The servers it acted on.
    #[serde(default)]
    pub servers: Vec<u64>,
    /// For a partition, its groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<u64>>,
    /// How to show it: `kill 3`, `partition 1,2 | 3,4,5`.
    pub label: String,
}

/// The demo's log line for `action` at `at`, in the servers' JSON shape.
pub fn action_line(at: Micros, action: &Action) -> String {
    let mut object = serde_json::json!({
        "timestamp": clock::format(at),
        "level": "INFO",
        "message": DEMO_ACTION,
    });
    // Cannot fail: an action is plain data and its JSON is an object.
    let fields = serde_json::to_value(action).expect("actions serialise");
    if let (Some(line), Value::Object(fields)) = (object.as_object_mut(), fields) {
        line.extend(fields);
    }
    object.to_string()
}

/// The record on one log line, or `None` for lines a timeline does not use (other
/// messages, text logs, broken lines).
pub fn parse_line(line: &str) -> Option<Stamped> {
    let object: Value = serde_json::from_str(line.trim()).ok()?;
    let at = clock::parse(object.get("timestamp")?.as_str()?)?;
    let message = object.get("message")?.as_str()?;
    let number = |name: &str| object.get(name).and_then(Value::as_u64);

    let record = match message {
        "became follower" | "became pre-candidate" | "became candidate" | "became leader" => {
            let role = match message {
                "became follower" => Role::Follower,
                "became pre-candidate" => Role::PreCandidate,
                "became candidate" => Role::Candidate,
                _ => Role::Leader,
            };
            let votes = object
                .get("votes")
                .and_then(Value::as_str)
                .map(String::from);
            Record::Role {
                node: number("node")?,
                role,
                term: number("term")?,
                votes,
            }
        }
        "stopped" => Record::Stopped {
            node: number("node")?,
        },
        DEMO_ACTION => Record::Action(serde_json::from_value(object).ok()?),
        _ => return None,
    };
    Some(Stamped { at, record })
}

/// Every record of a whole log's text, in the order of its lines.
pub fn parse_log(text: &str) -> Vec<Stamped> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's role change is read with its node, term and votes.
    #[test]
    fn role_changes_are_read_from_server_lines() {
        let line = concat!(
            r#"{"timestamp":"2026-12-03T18:20:57.500178Z","level":"INFO","#,
            r#""message":"became leader","node":3,"term":2,"votes":"[1, 3]","#,
            r#""target":"raft::node"}"#
        );
        let stamped = parse_line(line).unwrap();

        assert_eq!(
            stamped.at,
            clock::parse("2026-12-03T18:20:57.500178Z").unwrap()
        );
        assert_eq!(
            stamped.record,
            Record::Role {
                node: 3,
                role: Role::Leader,
                term: 2,
                votes: Some("[1, 3]".into())
            }
        );
    }

    /// A demo action written by `action_line` is read back as it was.
    #[test]
    fn demo_actions_round_trip() {
        let action = Action {
            action: ActionKind::Partition,
            servers: vec![1, 2, 3],
            groups: vec![vec![1], vec![2, 3]],
            label: "partition 1 | 2,3".into(),
        };
        let line = action_line(1_000_000, &action);

        let stamped = parse_line(&line).unwrap();
        assert_eq!(stamped.at, 1_000_000);
        assert_eq!(stamped.record, Record::Action(action));
    }

    /// Lines a timeline does not use are skipped, not errors.
    #[test]
    fn other_lines_are_skipped() {
        let text = "raft-node 1 of cluster \"raft-local\"\n\
            {\"timestamp\":\"2026-12-03T18:20:57.349156Z\",\
             \"message\":\"peer connected\",\"peer\":3}\n\
            {\"timestamp\":\"2026-12-03T18:20:57.5Z\",\"message\":\"became follower\"}\n\
            {not json\n";
        assert_eq!(parse_log(text), vec![]);
    }
}
