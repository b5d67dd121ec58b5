//! The demo's commands: one per line, typed at the prompt or read from a script.
//!
//! ```text
//! kill N|leader        SIGKILL a server           restart [N|leader] start it again
//! pause N|leader       SIGSTOP a server           resume [N|leader]  SIGCONT it
//!                      (restart and resume with no server: every killed or paused one)
//! partition 1,2 3,4,5  split the network (servers not named form one more group)
//! heal                 clear every partition and slow link
//! transfer [N]         ask the leader to hand its leadership to N (or its choice)
//! slow A B MS          delay messages between A and B by MS milliseconds each way
//! wait DURATION        let time pass (500ms, 2s, 1m)
//! wait-leader [in IDS] [TIMEOUT]     until those (default: every running) servers
//!                                    agree on one leader; fails after TIMEOUT
//! wait-no-leader [in IDS] [TIMEOUT]  until none of them leads
//! expect leader [in IDS] [is N] [for DURATION]   assert, now or throughout DURATION
//! expect no-leader [in IDS] [for DURATION]
//! timeline FILE        write the election timeline so far
//! quit
//! ```
//!
//! `#` starts a comment; blank lines are skipped.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How long `wait-leader` waits when the script does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// Which server a command acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Server N.
    Server(u64),
    /// Whichever server leads when the command runs.
    Leader,
    /// Every killed server (`restart`) or every paused one (`resume`).
    Every,
}

/// Something the cluster is expected to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Exactly one server of `among` leads, every other one of them follows it in its
    /// term, and (with `is`) it is that server.
    Leader {
        /// The servers asked; `None` for every running one.
        among: Option<Vec<u64>>,
        /// The leader it must be.
        is: Option<u64>,
    },
    /// No server of `among` leads.
    NoLeader {
        /// The servers asked; `None` for every running one.
        among: Option<Vec<u64>>,
    },
}

/// One command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// SIGKILL.
    Kill(Target),
    /// Start a killed server again (a running one is killed first).
    Restart(Target),
    /// SIGSTOP.
    Pause(Target),
    /// SIGCONT.
    Resume(Target),
    /// Split the network into these groups (the servers not named form one more).
    Partition(Vec<Vec<u64>>),
    /// Clear every partition and slow link.
    Heal,
    /// Hand leadership to a server, or to the leader's choice.
    Transfer(Option<u64>),
    /// Delay messages between two servers, both ways; 0 clears.
    Slow {
        /// One end.
        a: u64,
        /// The other end.
        b: u64,
        /// Delay per message, in milliseconds.
        ms: u64,
    },
    /// Let time pass.
    Wait(Duration),
    /// Wait until the condition holds, failing after `within`.
    WaitUntil {
        /// What to wait for.
        condition: Condition,
        /// How long at most.
        within: Duration,
    },
    /// Check the condition now or, with `hold` above zero, at every look for `hold`.
    Expect {
        /// What must hold.
        condition: Condition,
        /// How long it must hold.
        hold: Duration,
    },
    /// Write the timeline so far to a file.
    Timeline(PathBuf),
    /// Show the commands.
    Help,
    /// End the demo.
    Quit,
}

/// Why a line is not a command; the message says what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// Parses one line; `Ok(None)` for a blank line or a comment.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.split('#').next().unwrap_or("").trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, rest)) = words.split_first() else {
        return Ok(None);
    };

    let command = match verb {
        "kill" => Command::Kill(one_target(verb, rest)?),
        "restart" | "resume" if rest.is_empty() => match verb {
            "restart" => Command::Restart(Target::Every),
            _ => Command::Resume(Target::Every),
        },
        "restart" => Command::Restart(one_target(verb, rest)?),
        "pause" => Command::Pause(one_target(verb, rest)?),
        "resume" => Command::Resume(one_target(verb, rest)?),
        "partition" => partition(rest)?,
        "heal" => no_arguments(verb, rest, Command::Heal)?,
        "transfer" => match rest {
            [] => Command::Transfer(None),
            [id] => Command::Transfer(Some(server_id(id)?)),
            _ => return fail("usage: transfer [ID]"),
        },
        "slow" => match rest {
            [a, b, ms] => Command::Slow {
                a: server_id(a)?,
                b: server_id(b)?,
                ms: milliseconds(ms)?,
            },
            _ => return fail("usage: slow A B MS (0 clears)"),
        },
        "wait" => match rest {
            [duration] => Command::Wait(duration_of(duration)?),
            _ => return fail("usage: wait DURATION (such as 500ms or 2s)"),
        },
        "wait-leader" | "wait-no-leader" => {
            let (among, rest) = among(rest)?;
            let within = match rest {
                [] => DEFAULT_WAIT,
                [timeout] => duration_of(timeout)?,
                _ => return fail(format!("usage: {verb} [in IDS] [TIMEOUT]")),
            };
            let condition = if verb == "wait-leader" {
                Condition::Leader { among, is: None }
            } else {
                Condition::NoLeader { among }
            };
            Command::WaitUntil { condition, within }
        }
        "expect" => expect(rest)?,
        "timeline" => match rest {
            [path] => Command::Timeline(PathBuf::from(path)),
            _ => return fail("usage: timeline FILE"),
        },
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        other => return fail(format!("unknown command {other:?} (try help)")),
    };
    Ok(Some(command))
}

fn no_arguments(verb: &str, rest: &[&str], command: Command) -> Result<Command, ParseError> {
    if rest.is_empty() {
        Ok(command)
    } else {
        fail(format!("{verb} takes no arguments"))
    }
}

fn one_target(verb: &str, rest: &[&str]) -> Result<Target, ParseError> {
    match rest {
        ["leader"] => Ok(Target::Leader),
        [id] => Ok(Target::Server(server_id(id)?)),
        _ => fail(format!("usage: {verb} ID|leader")),
    }
}

fn server_id(text: &str) -> Result<u64, ParseError> {
    text.parse()
        .or_else(|_| fail(format!("{text:?} is not a server id")))
}

/// `1,2,3` (spaces after commas are allowed by the caller's splitting).
fn server_ids(text: &str) -> Result<Vec<u64>, ParseError> {
    let ids: Vec<u64> = text
        .split(',')
        .filter(|part| !part.is_empty())
        .map(server_id)
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return fail(format!("{text:?} names no server"));
    }
    Ok(ids)
}

fn partition(rest: &[&str]) -> Result<Command, ParseError> {
    let groups: Vec<Vec<u64>> = rest
        .iter()
        .filter(|word| **word != "|")
        .map(|word| server_ids(word))
        .collect::<Result<_, _>>()?;
    if groups.is_empty() {
        return fail("usage: partition 1,2 3,4,5 (servers not named form one more group)");
    }
    let mut seen = std::collections::BTreeSet::new();
    for id in groups.iter().flatten() {
        if !seen.insert(*id) {
            return fail(format!("server {id} is in two groups"));
        }
    }
    Ok(Command::Partition(groups))
}

/// An optional `in IDS` at the start of `rest`.
fn among<'a>(rest: &'a [&'a str]) -> Result<(Option<Vec<u64>>, &'a [&'a str]), ParseError> {
    match rest {
        ["in", ids, rest @ ..] => Ok((Some(server_ids(ids)?), rest)),
        ["in"] => fail("\"in\" needs server ids, such as in 3,4,5"),
        _ => Ok((None, rest)),
    }
}

fn expect(rest: &[&str]) -> Result<Command, ParseError> {
    const USAGE: &str = "usage: expect leader [in IDS] [is N] [for DURATION], \
         or expect no-leader [in IDS] [for DURATION]";
    let Some((&what, rest)) = rest.split_first() else {
        return fail(USAGE);
    };
    let (among, mut rest) = among(rest)?;

    let mut is = None;
    if what == "leader" {
        if let ["is", id, tail @ ..] = rest {
            is = Some(server_id(id)?);
            rest = tail;
        }
    }
    let hold = match rest {
        [] => Duration::ZERO,
        ["for", duration] => duration_of(duration)?,
        _ => return fail(USAGE),
    };

    let condition = match what {
        "leader" => Condition::Leader { among, is },
        "no-leader" => Condition::NoLeader { among },
        _ => return fail(USAGE),
    };
    Ok(Command::Expect { condition, hold })
}

/// `250ms`, `2s`, `1.5s`, `1m`.
pub fn duration_of(text: &str) -> Result<Duration, ParseError> {
    let bad = || {
        ParseError(format!(
            "{text:?} is not a duration such as 500ms, 2s or 1m"
        ))
    };
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|at| text.split_at(at))
        .ok_or_else(bad)?;
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// `250` or `250ms`.
fn milliseconds(text: &str) -> Result<u64, ParseError> {
    text.strip_suffix("ms")
        .unwrap_or(text)
        .parse()
        .or_else(|_| fail(format!("{text:?} is not a number of milliseconds")))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Server(id) => write!(f, "{id}"),
            Target::Leader => f.write_str("leader"),
            Target::Every => f.write_str("every"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }

    /// Every process command takes an id or `leader`.
    #[test]
    fn process_commands_take_an_id_or_the_leader() {
        assert_eq!(parsed("kill 3"), Command::Kill(Target::Server(3)));
        assert_eq!(parsed("kill leader"), Command::Kill(Target::Leader));
        assert_eq!(parsed("  restart 2  "), Command::Restart(Target::Server(2)));
        assert_eq!(parsed("pause leader"), Command::Pause(Target::Leader));
        assert_eq!(
            parsed("resume 5 # comment"),
            Command::Resume(Target::Server(5))
        );
        assert_eq!(
            parse("restart").unwrap(),
            Some(Command::Restart(Target::Every))
        );
        assert_eq!(
            parse("resume").unwrap(),
            Some(Command::Resume(Target::Every))
        );
        assert_eq!(parse("kill").unwrap_err().0, "usage: kill ID|leader");
        assert_eq!(parse("kill x").unwrap_err().0, "\"x\" is not a server id");
    }

    /// Partition groups are comma lists, separated by spaces or a bar; a server may
    /// not be in two groups.
    #[test]
    fn partition_groups_parse() {
        let expected = Command::Partition(vec![vec![1, 2], vec![3, 4, 5]]);
        assert_eq!(parsed("partition 1,2 3,4,5"), expected);
        assert_eq!(parsed("partition 1,2 | 3,4,5"), expected);
        assert_eq!(parsed("partition 1"), Command::Partition(vec![vec![1]]));
        assert_eq!(
            parse("partition 1,2 2,3").unwrap_err().0,
            "server 2 is in two groups"
        );
        assert!(parse("partition").is_err());
    }

    /// Waits and expectations take optional server sets, leaders and durations.
    #[test]
    fn waits_and_expectations_parse() {
        assert_eq!(
            parsed("wait 1.5s"),
            Command::Wait(Duration::from_millis(1500))
        );
        assert_eq!(
            parsed("wait-leader"),
            Command::WaitUntil {
                condition: Condition::Leader {
                    among: None,
                    is: None
                },
                within: DEFAULT_WAIT
            }
        );
        assert_eq!(
            parsed("wait-leader in 3,4,5 10s"),
            Command::WaitUntil {
                condition: Condition::Leader {
                    among: Some(vec![3, 4, 5]),
                    is: None
                },
                within: Duration::from_secs(10)
            }
        );
        assert_eq!(
            parsed("expect leader in 3,4,5 is 4 for 500ms"),
            Command::Expect {
                condition: Condition::Leader {
                    among: Some(vec![3, 4, 5]),
                    is: Some(4)
                },
                hold: Duration::from_millis(500)
            }
        );
        assert_eq!(
            parsed("expect no-leader in 1,2 for 2s"),
            Command::Expect {
                condition: Condition::NoLeader {
                    among: Some(vec![1, 2])
                },
                hold: Duration::from_secs(2)
            }
        );
        assert!(parse("expect leader for").is_err());
        assert!(parse("expect nobody").is_err());
    }

    /// The remaining commands, durations, and lines that are not commands.
    #[test]
    fn other_commands_and_non_commands() {
        assert_eq!(parsed("heal"), Command::Heal);
        assert_eq!(parsed("transfer"), Command::Transfer(None));
        assert_eq!(parsed("transfer 4"), Command::Transfer(Some(4)));
        assert_eq!(
            parsed("slow 1 2 300ms"),
            Command::Slow {
                a: 1,
                b: 2,
                ms: 300
            }
        );
        assert_eq!(parsed("timeline t.svg"), Command::Timeline("t.svg".into()));
        assert_eq!(parsed("q"), Command::Quit);
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(parse("# only a comment").unwrap(), None);
        assert_eq!(
            parse("dance").unwrap_err().0,
            "unknown command \"dance\" (try help)"
        );
        assert_eq!(duration_of("1m"), Ok(Duration::from_secs(60)));
        assert!(duration_of("5").is_err());
        assert!(duration_of("5h").is_err());
    }
}
