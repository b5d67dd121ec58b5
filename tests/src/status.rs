//! What servers say about themselves: the rows of `raft-node status --json` and the
//! one-line reports of a status port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Deserialize;

/// One element of the array `raft-node status --json` prints.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRow {
    /// The server's id.
    pub id: u64,
    /// Its configured status address.
    pub address: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Its role, `None` when unreachable.
    pub role: Option<String>,
    /// Its term, `None` when unreachable.
    pub term: Option<u64>,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The server it voted for in its current term, if any.
    pub voted_for: Option<u64>,
    /// Milliseconds since it last heard from its leader.
    pub since_leader_ms: Option<u64>,
}

impl StatusRow {
    /// The row as an observation, if the server answered.
    pub fn observation(&self) -> Option<Observation> {
        Some(Observation {
            id: self.id,
            role: self.role.clone()?,
            term: self.term?,
            leader: self.leader,
            voted_for: self.voted_for,
        })
    }
}

/// What one server said about itself at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Observation {
    /// The server's id.
    pub id: u64,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The server it voted for in its current term, if any.
    #[serde(default)]
    pub voted_for: Option<u64>,
}

impl Observation {
    /// Whether the server claims to lead.
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
}

/// Asks the status port at `address` directly with a `status` request (the line
/// protocol of `raft-node/src/status.rs`); `None` when it does not answer within a few
/// hundred milliseconds (not running, stopped, or paused).
pub(crate) fn query_port(address: SocketAddr) -> Option<Observation> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(300)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(400)))
        .ok()?;
    stream.write_all(b"status\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Sends one request line to the status port at `address` and parses its one-line
/// JSON answer; `None` when it does not answer within a second or two.
pub(crate) fn request_port(address: SocketAddr, line: &str) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}
