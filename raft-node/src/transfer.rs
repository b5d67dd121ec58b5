//! `raft-node transfer`: finds the leader through the status addresses and asks it to
//! hand its leadership over, then waits to see the new leader.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::time::Instant;

use crate::config::NodeConfig;
use crate::status::{self, StatusClient, StatusRow, TransferReply};

/// How long to wait for the new leader to show in the statuses.
const SETTLE: Duration = Duration::from_secs(3);

/// How often the statuses are read while waiting.
const POLL: Duration = Duration::from_millis(20);

/// Asks the leader of `config`'s cluster to hand leadership to `to` (or to a peer of
/// its choice) and returns a one-line account of what happened.
pub async fn transfer(config: &NodeConfig, to: Option<u64>) -> anyhow::Result<String> {
    let client = StatusClient::new(config)?;
    let rows = status::query_with(config, &client).await;
    let (leader, term) = leader_of(&rows).ok_or_else(|| anyhow!("no server leads right now"))?;
    if to == Some(leader) {
        return Ok(format!("server {leader} already leads term {term}"));
    }

    let address = config.server(leader)?.status_address;
    let request = match to {
        Some(to) => format!("transfer {to}"),
        None => "transfer".to_string(),
    };
    let answer = client.request(leader, address, &request).await?;
    let reply: TransferReply = serde_json::from_str(answer.trim())
        .with_context(|| format!("unexpected answer from server {leader}: {}", answer.trim()))?;
    if !reply.ok {
        let error = reply.error.unwrap_or_default();
        bail!("server {leader} refused to hand over: {error}");
    }
    // Cannot be None: an accepted transfer always names its target.
    let target = reply.to.context("the leader did not name the target")?;

    let deadline = Instant::now() + SETTLE;
    loop {
        let rows = status::query_with(config, &client).await;
        if let Some((new, new_term)) = leader_of(&rows).filter(|&(_, t)| t > term) {
            return Ok(format!(
                "leadership handed from server {leader} (term {term}) to server {new} \
                 (term {new_term})"
            ));
        }
        if Instant::now() > deadline {
            bail!("server {leader} handed over to {target}, but no new leader within {SETTLE:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The leader of the highest term among the rows, with its term.
fn leader_of(rows: &[StatusRow]) -> Option<(u64, u64)> {
    rows.iter()
        .filter(|row| row.role.as_deref() == Some("leader"))
        .filter_map(|row| Some((row.id, row.term?)))
        .max_by_key(|&(_, term)| term)
}
