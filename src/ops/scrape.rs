//! Values read at scrape time: the actor tree's counters and snapshot, the
//! outbox backlog, the database pools. Each source that cannot be read is
//! skipped (its series keep their last value) and flagged in
//! `metrics_scrape_error{source=…}`, so a scrape never fails as a whole.

use ::metrics::{counter, gauge};
use actors::tree::{LoanTree, ServiceState, SupervisionSnapshot, TreeCounts, TreeSnapshot};
use chrono::{DateTime, Utc};

use crate::inbound::dead_letters;
use crate::metrics::{Metrics, names};
use crate::notifications;
use crate::store::{Db, StoreError, outbox};

/// The outbox backlog: how many rows wait for the relay, and since when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Rows with `published_at is null`.
    pub pending: i64,
    /// `created_at` of the oldest of them (by commit order).
    pub oldest: Option<DateTime<Utc>>,
}

/// Brings every scrape-time series up to date; `now` dates the outbox age.
pub async fn refresh(metrics: &Metrics, tree: &LoanTree, db: &Db, now: DateTime<Utc>) {
    let counts = tree.counts();
    let snapshot = tree.snapshot().await;
    let supervision = tree.supervision().await;
    let backlog = outbox_backlog(db).await;
    let flow = event_flow(db).await;
    if let Err(error) = &flow {
        tracing::warn!(%error, "metrics: event flow counts unreadable");
    }
    if let Err(error) = &snapshot {
        tracing::warn!(%error, "metrics: no actor tree snapshot");
    }
    if let Err(error) = &backlog {
        tracing::warn!(%error, "metrics: outbox backlog unreadable");
    }
    metrics.record(|| {
        record_counts(counts);
        flag("actor_tree", snapshot.is_err());
        if let Ok(snapshot) = &snapshot {
            record_snapshot(snapshot);
        }
        record_supervision(&supervision, snapshot.as_ref().ok());
        flag("outbox", backlog.is_err());
        if let Ok(backlog) = backlog {
            record_backlog(backlog, now);
        }
        flag("event_flow", flow.is_err());
        if let Ok(flow) = &flow {
            record_flow(flow);
        }
        record_pools(db);
    });
}

fn flag(source: &'static str, failed: bool) {
    gauge!(names::SCRAPE_ERRORS, "source" => source).set(if failed { 1.0 } else { 0.0 });
}

/// The partition leases of a cluster member: owned partitions, live
/// instances, and lease changes by kind.
pub fn record_cluster(metrics: &Metrics, ownership: &crate::cluster::Ownership) {
    let counts = ownership.counts();
    let live = ownership.live_instances().len();
    metrics.record(|| {
        gauge!(names::CLUSTER_PARTITIONS_OWNED).set(counts.owned as f64);
        gauge!(names::CLUSTER_INSTANCES_LIVE).set(live as f64);
        for (change, count) in [
            ("acquired", counts.acquired),
            ("released", counts.released),
            ("lost", counts.lost),
        ] {
            counter!(names::CLUSTER_LEASE_CHANGES, "change" => change).absolute(count);
        }
    });
}

/// Copies the tree's monotonic counters (destructured, so a new counter is a
/// compile error here until it is exported too).
fn record_counts(counts: TreeCounts) {
    let TreeCounts {
        spawned,
        passivated,
        restarted,
        failed,
        budget_exhausted,
        commits,
        commands_committed,
        max_batch,
        version_conflicts,
        store_errors,
        timeouts,
        abandoned,
        history_loads,
    } = counts;
    counter!(names::LOAN_ACTORS_SPAWNED).absolute(spawned);
    counter!(names::LOAN_ACTORS_PASSIVATED).absolute(passivated);
    counter!(names::LOAN_ACTORS_RESTARTED).absolute(restarted);
    counter!(names::LOAN_ACTORS_FAILED).absolute(failed);
    counter!(names::LOAN_ACTOR_BUDGET_EXHAUSTED).absolute(budget_exhausted);
    counter!(names::LOAN_ACTOR_COMMITS).absolute(commits);
    counter!(names::LOAN_COMMANDS_COMMITTED).absolute(commands_committed);
    gauge!(names::LOAN_ACTOR_MAX_BATCH).set(max_batch as f64);
    counter!(names::LOAN_ACTOR_VERSION_CONFLICTS).absolute(version_conflicts);
    counter!(names::LOAN_ACTOR_STORE_ERRORS).absolute(store_errors);
    counter!(names::LOAN_ACTOR_CALL_TIMEOUTS).absolute(timeouts);
    counter!(names::LOAN_COMMANDS_ABANDONED).absolute(abandoned);
    counter!(names::LOAN_HISTORY_LOADS).absolute(history_loads);
}

/// Live, stopping and blocked actors and mailbox depths. The snapshot lists
/// at most `MAX_SNAPSHOT_ACTORS` actors, so the depth sum covers those.
fn record_snapshot(snapshot: &TreeSnapshot) {
    gauge!(names::LOAN_ACTORS_LIVE).set(snapshot.live_count as f64);
    gauge!(names::LOAN_ACTORS_STOPPING).set(snapshot.stopping as f64);
    gauge!(names::LOANS_BLOCKED).set(snapshot.blocked.len() as f64);
    let queued = snapshot.live.iter().map(|actor| actor.queued);
    gauge!(names::LOAN_ACTOR_MAILBOX_DEPTH).set(queued.clone().sum::<usize>() as f64);
    gauge!(names::LOAN_ACTOR_MAILBOX_DEPTH_MAX).set(queued.max().unwrap_or(0) as f64);
}

/// Every child of the root: restarts, up / failed, backlog.
fn record_supervision(supervision: &SupervisionSnapshot, loans: Option<&TreeSnapshot>) {
    let loans_actor = "loans";
    counter!(names::SUPERVISED_RESTARTS, "actor" => loans_actor)
        .absolute(u64::from(supervision.loan_supervisor_restarts));
    gauge!(names::SUPERVISED_UP, "actor" => loans_actor).set(f64::from(u8::from(loans.is_some())));
    gauge!(names::SUPERVISED_FAILED, "actor" => loans_actor).set(0.0);
    if let Some(loans) = loans {
        let queued: usize = loans.live.iter().map(|actor| actor.queued).sum();
        gauge!(names::SUPERVISED_BACKLOG, "actor" => loans_actor).set(queued as f64);
    }
    for service in &supervision.services {
        let actor = service.name.clone();
        counter!(names::SUPERVISED_RESTARTS, "actor" => actor.clone()).absolute(service.restarts);
        let up = service.state == ServiceState::Running;
        gauge!(names::SUPERVISED_UP, "actor" => actor.clone()).set(f64::from(u8::from(up)));
        let failed = service.state == ServiceState::Failed;
        gauge!(names::SUPERVISED_FAILED, "actor" => actor.clone()).set(f64::from(u8::from(failed)));
        if let Some(backlog) = service.backlog {
            gauge!(names::SUPERVISED_BACKLOG, "actor" => actor).set(backlog as f64);
        }
    }
}

fn record_backlog(backlog: OutboxBacklog, now: DateTime<Utc>) {
    gauge!(names::OUTBOX_PENDING).set(backlog.pending as f64);
    let age = backlog
        .oldest
        .map(|oldest| (now - oldest).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    gauge!(names::OUTBOX_OLDEST_PENDING_AGE).set(age);
}

fn record_pools(db: &Db) {
    let pools: Vec<(&'static str, u32, usize)> = match db {
        Db::Sqlite(sqlite) => vec![
            (
                "sqlite_writer",
                sqlite.writer.size(),
                sqlite.writer.num_idle(),
            ),
            (
                "sqlite_reader",
                sqlite.reader.size(),
                sqlite.reader.num_idle(),
            ),
        ],
        Db::Postgres(pool) => vec![("postgres", pool.size(), pool.num_idle())],
    };
    for (pool, size, idle) in pools {
        let in_use = (size as usize).saturating_sub(idle);
        gauge!(names::DB_POOL_CONNECTIONS, "pool" => pool, "state" => "in_use").set(in_use as f64);
        gauge!(names::DB_POOL_CONNECTIONS, "pool" => pool, "state" => "idle").set(idle as f64);
    }
}

/// Counts unpublished outbox rows and dates the oldest (lowest `seq`).
pub async fn outbox_backlog(db: &Db) -> Result<OutboxBacklog, StoreError> {
    let pending = outbox::unpublished_count(db).await?;
    let oldest = outbox::oldest_unpublished_at(db).await?;
    Ok(OutboxBacklog { pending, oldest })
}

/// Durable counts of the event flow, read from the tables that record it (so
/// they survive restarts and agree across instances).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFlowCounts {
    /// Outbox rows acknowledged by the bus and still kept.
    pub published: i64,
    /// Published rows deleted by the retention purge.
    pub purged: i64,
    /// Inbound messages dead-lettered.
    pub dead_letters: i64,
    /// Notification e-mails by delivery status.
    pub emails: Vec<(String, i64)>,
}

/// Reads [`EventFlowCounts`].
pub async fn event_flow(db: &Db) -> Result<EventFlowCounts, StoreError> {
    let published = outbox::published_count(db).await?;
    let purged = outbox::purged_rows(db).await?;
    let dead_letters = dead_letters::count(db).await?;
    let emails = notifications::store::email_counts(db).await?;
    Ok(EventFlowCounts {
        published,
        purged,
        dead_letters,
        emails,
    })
}

fn record_flow(flow: &EventFlowCounts) {
    counter!(names::EVENTS_PUBLISHED).absolute((flow.published + flow.purged).max(0) as u64);
    counter!(names::OUTBOX_PURGED).absolute(flow.purged.max(0) as u64);
    counter!(names::INBOUND_DEAD_LETTERS).absolute(flow.dead_letters.max(0) as u64);
    for status in ["pending", "sent", "failed", "skipped"] {
        let count = flow
            .emails
            .iter()
            .find(|(name, _)| name == status)
            .map_or(0, |(_, count)| *count);
        gauge!(names::NOTIFICATION_EMAILS, "status" => status).set(count as f64);
    }
}
