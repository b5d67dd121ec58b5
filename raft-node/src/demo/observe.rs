//! What the demo sees of its servers: their answers to `status` on the status address,
//! polled a few times a second, and the role changes in their JSON logs, read as they
//! are written. The conditions of `wait-leader` and `expect` are judged from the
//! answers.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::command::Condition;
use crate::config::NodeConfig;
use crate::status;
use crate::timeline::records::{self, Stamped};

/// How long a server may take to answer a poll; a paused server never does.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(300);

/// How [`check`] says a server it needed did not answer.
pub const SILENT: &str = "does not answer";

/// A server's answer to `status`. Fields the demo does not know are ignored, and
/// `voted_for` is optional, so servers of older builds still answer usefully.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Reported {
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The candidate it voted for in its term.
    #[serde(default)]
    pub voted_for: Option<u64>,
    /// Milliseconds since it last heard from its leader.
    #[serde(default)]
    pub since_leader_ms: Option<u64>,
}

/// Every answer of one poll: `None` for a server asked that did not answer.
pub type Answers = BTreeMap<u64, Option<Reported>>;

/// Asks the servers `ids` of `config` at once.
pub async fn poll(config: &NodeConfig, ids: &[u64]) -> Answers {
    let asks = ids.iter().filter_map(|&id| {
        let address = config.server(id).ok()?.status_address;
        Some(tokio::spawn(async move {
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, status::request(address, "status"));
            let reported = match answer.await {
                Ok(Ok(line)) => serde_json::from_str::<Reported>(line.trim()).ok(),
                _ => None,
            };
            (id, reported)
        }))
    });

    let mut answers = Answers::new();
    for ask in asks.collect::<Vec<_>>() {
        // Cannot fail: the task neither panics nor is aborted.
        let (id, reported) = ask.await.expect("status poll task");
        answers.insert(id, reported);
    }
    answers
}

/// Whether `condition` holds for the answers; `running` are the servers counted when
/// the condition names none. `Ok` says what holds, `Err` why not.
pub fn check(condition: &Condition, answers: &Answers, running: &[u64]) -> Result<String, String> {
    let among = |named: &Option<Vec<u64>>| named.clone().unwrap_or_else(|| running.to_vec());
    let report = |id: &u64| answers.get(id).cloned().flatten();

    match condition {
        Condition::NoLeader { among: named } => {
            let servers = among(named);
            let leaders: Vec<u64> = servers
                .iter()
                .copied()
                .filter(|id| report(id).is_some_and(|r| r.role == "leader"))
                .collect();
            match leaders.as_slice() {
                [] => Ok(format!("no leader among {}", super::network::ids(&servers))),
                [one] => Err(format!("server {one} leads")),
                many => Err(format!("servers {} lead", super::network::ids(many))),
            }
        }
        Condition::Leader { among: named, is } => {
            let servers = among(named);
            if servers.is_empty() {
                return Err("no server is running".into());
            }
            let leaders: Vec<(u64, u64)> = servers
                .iter()
                .filter_map(|id| {
                    report(id)
                        .filter(|r| r.role == "leader")
                        .map(|r| (*id, r.term))
                })
                .collect();
            let (leader, term) = match leaders.as_slice() {
                [] => return Err(format!("no leader among {}", super::network::ids(&servers))),
                [one] => *one,
                many => {
                    let ids: Vec<u64> = many.iter().map(|&(id, _)| id).collect();
                    return Err(format!("servers {} all lead", super::network::ids(&ids)));
                }
            };
            for id in &servers {
                match report(id) {
                    None => return Err(format!("server {id} {SILENT}")),
                    Some(r) if r.term != term || r.leader != Some(leader) => {
                        let follows = r.leader.map_or("nobody".into(), |l| l.to_string());
                        return Err(format!(
                            "server {id} follows {follows} in term {}, not {leader} in term {term}",
                            r.term
                        ));
                    }
                    Some(_) => {}
                }
            }
            if let Some(expected) = is.filter(|&expected| expected != leader) {
                return Err(format!("server {leader} leads, not {expected}"));
            }
            Ok(format!("server {leader} leads term {term}"))
        }
    }
}

/// Reads a JSON log as it grows, returning the timeline records of new whole lines.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    /// A tail at the start of `path` (which may not exist yet).
    pub fn new(path: PathBuf) -> LogTail {
        LogTail {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    /// The records of the lines completed since the last call.
    pub fn read_new(&mut self) -> Vec<Stamped> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err()
            || file.read_to_string(&mut text).is_err()
        {
            return Vec::new();
        }
        self.offset += text.len() as u64;

        self.partial.push_str(&text);
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let whole: String = self.partial.drain(..=end).collect();
        records::parse_log(&whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(role: &str, term: u64, leader: Option<u64>) -> Option<Reported> {
        Some(Reported {
            role: role.into(),
            term,
            leader,
            voted_for: None,
            since_leader_ms: None,
        })
    }

    /// One leader followed by everyone in its term holds; a follower of an older term,
    /// two leaders, or a silent server do not.
    #[test]
    fn leader_condition_needs_agreement() {
        let leader = Condition::Leader {
            among: None,
            is: None,
        };
        let mut answers = Answers::new();
        answers.insert(1, answer("leader", 3, Some(1)));
        answers.insert(2, answer("follower", 3, Some(1)));
        answers.insert(3, answer("follower", 2, Some(3)));

        assert_eq!(
            check(&leader, &answers, &[1, 2]),
            Ok("server 1 leads term 3".into())
        );
        assert_eq!(
            check(&leader, &answers, &[1, 2, 3]),
            Err("server 3 follows 3 in term 2, not 1 in term 3".into())
        );

        answers.insert(3, answer("leader", 4, Some(3)));
        assert_eq!(
            check(&leader, &answers, &[1, 2, 3]),
            Err("servers 1,3 all lead".into())
        );

        answers.insert(3, None);
        assert_eq!(
            check(&leader, &answers, &[1, 2, 3]),
            Err("server 3 does not answer".into())
        );

        let is_two = Condition::Leader {
            among: Some(vec![1, 2]),
            is: Some(2),
        };
        assert_eq!(
            check(&is_two, &answers, &[]),
            Err("server 1 leads, not 2".into())
        );
    }

    /// No-leader holds while no named server claims to lead.
    #[test]
    fn no_leader_condition_counts_claims() {
        let condition = Condition::NoLeader {
            among: Some(vec![1, 2]),
        };
        let mut answers = Answers::new();
        answers.insert(1, answer("candidate", 5, None));
        answers.insert(2, None);
        answers.insert(3, answer("leader", 2, Some(3)));

        assert_eq!(
            check(&condition, &answers, &[]),
            Ok("no leader among 1,2".into())
        );
        answers.insert(2, answer("leader", 5, Some(2)));
        assert_eq!(
            check(&condition, &answers, &[]),
            Err("server 2 leads".into())
        );
    }

    /// A tail returns each whole line once, and a line cut mid-write when complete.
    #[test]
    fn tail_reads_whole_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server-1.log");
        let line = concat!(
            r#"{"timestamp":"2026-12-03T18:20:57.5Z","#,
            r#""message":"became candidate","node":1,"term":2}"#
        );
        let mut tail = LogTail::new(path.clone());
        assert!(tail.read_new().is_empty());

        std::fs::write(&path, format!("{line}\n{}", &line[..20])).unwrap();
        assert_eq!(tail.read_new().len(), 1);
        assert!(tail.read_new().is_empty());

        std::fs::write(&path, format!("{line}\n{line}\n")).unwrap();
        assert_eq!(tail.read_new().len(), 1);
    }
}
