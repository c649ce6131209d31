//! The periodic metrics summary on `ops.metrics` (NATS only), for operators
//! who watch the bus rather than scrape `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::scrape::{event_flow, outbox_backlog};
use crate::bus::BusConnection;
use crate::http::state::AppState;

/// Subject of the summary (a namespace, if set, goes in front).
pub const OPS_METRICS_SUBJECT: &str = "ops.metrics";

/// Publishes a summary every `interval` while the app runs (nothing on the in-process bus).
pub async fn publish_summaries(state: Arc<AppState>, interval: Duration) {
    let BusConnection::Nats(nats) = &state.bus else {
        return;
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let summary = summary(&state).await;
        if let Err(error) = nats
            .publish_core(OPS_METRICS_SUBJECT, summary.to_string().into_bytes())
            .await
        {
            tracing::debug!(%error, "ops.metrics summary not published");
        }
    }
}

async fn summary(state: &AppState) -> serde_json::Value {
    let counts = state.tree.counts();
    let live = state
        .tree
        .snapshot()
        .await
        .ok()
        .map(|snapshot| snapshot.live_count);
    let backlog = outbox_backlog(&state.db).await.ok();
    let flow = event_flow(&state.db).await.ok();
    json!({
        "at": state.clock.now(),
        "loan_actors": {
            "live": live,
            "spawned": counts.spawned,
            "passivated": counts.passivated,
            "restarted": counts.restarted,
            "failed": counts.failed,
            "budget_exhausted": counts.budget_exhausted,
            "commands_committed": counts.commands_committed,
            "version_conflicts": counts.version_conflicts,
        },
        "outbox_pending": backlog.map(|backlog| backlog.pending),
        "events_published": flow.as_ref().map(|flow| flow.published + flow.purged),
        "inbound_dead_letters": flow.as_ref().map(|flow| flow.dead_letters),
        "emails": flow.map(|flow| flow.emails.into_iter().collect::<std::collections::BTreeMap<_, _>>()),
    })
}
