//! `raft-node status`: every server answers on its status address with one JSON line
//! describing itself, and the command gathers those lines into a table.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::NodeConfig;

/// What a running server says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The server's id.
    pub id: u64,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// The server's current term.
    pub term: u64,
    /// The leader it knows of, if any.
    pub leader: Option<u64>,
    /// Milliseconds since it last heard from its leader (or, for a leader, since it was
    /// elected or last confirmed by a majority); `None` if it never heard from one.
    pub since_leader_ms: Option<u64>,
}

/// One row of `raft-node status`: a configured server and, if it answered, its report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    /// The server's id.
    pub id: u64,
    /// Its status address, as configured.
    pub address: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Its role, or `None` when unreachable.
    pub role: Option<String>,
    /// Its term, or `None` when unreachable.
    pub term: Option<u64>,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Milliseconds since it last heard from its leader.
    pub since_leader_ms: Option<u64>,
}

impl StatusReport {
    /// The report of a node's status, measured now.
    pub fn of(status: &raft::Status) -> StatusReport {
        StatusReport {
            id: status.id,
            role: status.role.as_str().to_string(),
            term: status.term,
            leader: status.leader,
            since_leader_ms: status.since_leader_heard().map(|d| d.as_millis() as u64),
        }
    }
}

/// Answers every connection on `listener` with the node's status, until the task is
/// aborted. A client that does not read is cut off after a second.
pub async fn serve(listener: TcpListener, status: watch::Receiver<raft::Status>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };

        let report = StatusReport::of(&status.borrow());
        tokio::spawn(async move {
            // Cannot fail: the report is plain data.
            let mut line = serde_json::to_vec(&report).expect("status serialises");
            line.push(b'\n');
            let write = async {
                stream.write_all(&line).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
        });
    }
}

/// How long one server may take to answer before it counts as unreachable.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// Asks every server of `config` at once and returns one row per server, by id.
pub async fn query_all(config: &NodeConfig) -> Vec<StatusRow> {
    let queries = config.servers.iter().map(|server| {
        let (id, address) = (server.id, server.status_address);
        tokio::spawn(async move {
            let report = tokio::time::timeout(QUERY_TIMEOUT, query(address)).await;
            let report = report
                .ok()
                .and_then(Result::ok)
                .filter(|report| report.id == id);
            row(id, address, report)
        })
    });

    let mut rows = Vec::new();
    for query in queries.collect::<Vec<_>>() {
        // Cannot fail: the query task neither panics nor is aborted.
        rows.push(query.await.expect("status query task"));
    }
    rows
}

async fn query(address: SocketAddr) -> anyhow::Result<StatusReport> {
    let mut stream = TcpStream::connect(address).await?;
    let mut text = Vec::new();
    stream.read_to_end(&mut text).await?;
    Ok(serde_json::from_slice(&text)?)
}

fn row(id: u64, address: SocketAddr, report: Option<StatusReport>) -> StatusRow {
    StatusRow {
        id,
        address: address.to_string(),
        reachable: report.is_some(),
        role: report.as_ref().map(|r| r.role.clone()),
        term: report.as_ref().map(|r| r.term),
        leader: report.as_ref().and_then(|r| r.leader),
        since_leader_ms: report.as_ref().and_then(|r| r.since_leader_ms),
    }
}

/// The rows as a table for a terminal.
pub fn table(rows: &[StatusRow]) -> String {
    let mut out = format!(
        "{:>3}  {:<21}  {:<9}  {:<13}  {:>5}  {:>6}  {:>10}\n",
        "ID", "ADDRESS", "REACHABLE", "ROLE", "TERM", "LEADER", "LAST HEARD"
    );
    let dash = || "-".to_string();
    for row in rows {
        let term = row.term.map_or_else(dash, |t| t.to_string());
        let leader = row.leader.map_or_else(dash, |l| l.to_string());
        let heard = row
            .since_leader_ms
            .map_or_else(dash, |ms| format!("{ms} ms"));
        out.push_str(&format!(
            "{:>3}  {:<21}  {:<9}  {:<13}  {:>5}  {:>6}  {:>10}\n",
            row.id,
            row.address,
            if row.reachable { "yes" } else { "no" },
            row.role.as_deref().unwrap_or("-"),
            term,
            leader,
            heard,
        ));
    }
    out
}
