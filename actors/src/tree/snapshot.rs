//! Builds the operator's view of the loan supervisor's books.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::config::MAX_SNAPSHOT_ACTORS;
use super::supervisor::SupervisorState;
use super::types::{BlockedLoan, LiveActor, TreeSnapshot};

/// The supervisor's state at `now`, longest-idle actors first, capped at
/// [`MAX_SNAPSHOT_ACTORS`] listed.
pub(crate) fn snapshot_of(state: &mut SupervisorState, now: Instant) -> TreeSnapshot {
    let window = state.config.restart_window;
    let mut live: Vec<LiveActor> = state
        .live
        .iter()
        .map(|(loan_id, entry)| LiveActor {
            loan_id: *loan_id,
            queued: entry.depth.load(Ordering::Relaxed),
            idle_for: now.duration_since(entry.last_routed),
            restarts_in_window: 0,
        })
        .collect();
    live.sort_by(|a, b| b.idle_for.cmp(&a.idle_for).then(a.loan_id.cmp(&b.loan_id)));
    live.truncate(MAX_SNAPSHOT_ACTORS);
    for actor in &mut live {
        if let Some(history) = state.restarts.get_mut(&actor.loan_id) {
            actor.restarts_in_window = history.in_window(now, window);
        }
    }
    let mut blocked: Vec<BlockedLoan> = state
        .restarts
        .iter_mut()
        .filter_map(|(loan_id, history)| {
            history.blocked_for(now).map(|retry_after| BlockedLoan {
                loan_id: *loan_id,
                retry_after,
            })
        })
        .collect();
    blocked.sort_by_key(|loan| loan.loan_id);
    blocked.truncate(MAX_SNAPSHOT_ACTORS);
    TreeSnapshot {
        live_count: state.live.len(),
        live,
        stopping: state.children.len().saturating_sub(state.live.len()),
        blocked,
        counts: state.counters.read(),
    }
}
