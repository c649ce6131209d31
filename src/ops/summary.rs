//! The metrics summary published on `ops.metrics` (NATS only, by the app),
//! for operators who watch the bus rather than scrape `/metrics`; its type
//! is [`OpsSummary`], part of the published contract.

use actors::tree::LoanTree;

use super::scrape::{event_flow, outbox_backlog};
use crate::clock::Clock;
pub use crate::events::ops::OPS_METRICS_SUBJECT;
use crate::events::ops::{LoanActorCounts, OpsSummary};
use crate::store::Db;

/// The summary as of now: the loan actors' counters, the outbox backlog and
/// the event flow (a part that cannot be read is `None`).
pub async fn summary(tree: &LoanTree, db: &Db, clock: &Clock) -> OpsSummary {
    let counts = tree.counts();
    let live = tree
        .snapshot()
        .await
        .ok()
        .map(|snapshot| snapshot.live_count as u64);
    let backlog = outbox_backlog(db).await.ok();
    let flow = event_flow(db).await.ok();
    OpsSummary {
        at: clock.now(),
        loan_actors: LoanActorCounts {
            live,
            spawned: counts.spawned,
            passivated: counts.passivated,
            restarted: counts.restarted,
            failed: counts.failed,
            budget_exhausted: counts.budget_exhausted,
            commands_committed: counts.commands_committed,
            version_conflicts: counts.version_conflicts,
        },
        outbox_pending: backlog.map(|backlog| backlog.pending),
        events_published: flow.as_ref().map(|flow| flow.published + flow.purged),
        inbound_dead_letters: flow.as_ref().map(|flow| flow.dead_letters),
        emails: flow.map(|flow| flow.emails.into_iter().collect()),
    }
}
