//! Hand-over on a planned stop: a leader told to stop first passes its leadership to a
//! connected follower (Raft thesis §3.10), so the cluster is leaderless for about a
//! round trip instead of an election timeout.

use std::time::Duration;

use raft::{DriverHandle, Role, Status};
use tokio::sync::watch;

/// If this server leads, hands its leadership to the connected peer it heard from most
/// recently and waits, at most `limit`, until it sees another server lead. Never fails:
/// a refused or slow hand-over is logged and the server stops anyway.
pub async fn hand_over(
    handle: &DriverHandle,
    mut status: watch::Receiver<Status>,
    limit: Duration,
) {
    let me = *status.borrow_and_update();
    if me.role != Role::Leader {
        return;
    }

    let to = match handle.transfer_leadership(None).await {
        Ok(to) => to,
        Err(error) => {
            tracing::warn!(node = me.id, term = me.term, %error, "hand-over refused");
            return;
        }
    };

    let new_leader = |s: &Status| s.leader.is_some_and(|leader| leader != me.id);
    match tokio::time::timeout(limit, status.wait_for(new_leader)).await {
        Ok(Ok(seen)) => tracing::info!(
            node = me.id,
            term = seen.term,
            leader = seen.leader,
            "hand-over done"
        ),
        Ok(Err(_)) | Err(_) => tracing::warn!(
            node = me.id,
            term = me.term,
            to,
            limit_ms = limit.as_millis() as u64,
            "hand-over not seen in time; stopping anyway"
        ),
    }
}
