//! Writing events to the transactional outbox, and the signal that tells
//! the relay a commit wrote some.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use tokio::sync::{Notify, futures::Notified};
use uuid::Uuid;

use super::{Db, StoreError, Tx};
pub use crate::events::outbox::OutboxEvent;
use crate::store::{with_pool, with_read_pool, with_tx};

/// Raised after each commit of a transaction that wrote outbox rows, by
/// every [`Tx`] of one [`Db`] (and its clones): the relay waits on it
/// instead of polling, so an event leaves as soon as it is durable. Rows
/// written by another process or another `Db` on the same database do not
/// raise it; the relay's slow poll finds those.
#[derive(Debug, Clone, Default)]
pub struct CommitSignal(Arc<Notify>);

impl CommitSignal {
    /// Completes at the first raise after this call, whether or not it has
    /// been polled yet (`notify_waiters` reaches every future created
    /// before it). Create it, [`Notified::enable`] it, *then* read the
    /// outbox: a commit between the read and the wait still wakes it.
    pub fn raised(&self) -> Notified<'_> {
        self.0.notified()
    }

    /// Wakes every relay waiting on this database. With none waiting it
    /// stores nothing, and need not: a relay that has not yet created its
    /// future reads the outbox after this commit, so it sees the rows.
    pub(crate) fn raise(&self) {
        self.0.notify_waiters();
    }
}

/// Adds `event` to the outbox inside `tx`; its commit wakes the relay.
pub async fn insert(tx: &mut Tx, event: &OutboxEvent) -> Result<(), StoreError> {
    insert_all(tx, std::slice::from_ref(event)).await
}

/// Adds `events` to the outbox inside `tx`, in order, with as few
/// multi-row statements as the bind limit allows; their commit wakes the relay.
pub async fn insert_all(tx: &mut Tx, events: &[OutboxEvent]) -> Result<(), StoreError> {
    const COLUMNS: usize = 5;
    if !events.is_empty() {
        tx.wrote_outbox();
    }
    for chunk in events.chunks(super::batch::rows_per_statement(COLUMNS)) {
        with_tx!(tx, |conn| {
            let mut insert = sqlx::QueryBuilder::new(
                "insert into outbox (event_id, subject, aggregate_id, payload, created_at) ",
            );
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(event.event_id)
                    .push_bind(&event.subject)
                    .push_bind(event.aggregate_id)
                    .push_bind(Json(&event.payload))
                    .push_bind(event.created_at);
            });
            // One text per row count: not worth a prepared statement each.
            insert
                .build()
                .persistent(false)
                .execute(conn)
                .await
                .map(drop)
        })?;
    }
    Ok(())
}

/// An outbox row not yet acknowledged by the bus.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// Position in the outbox; commit order within one aggregate.
    pub seq: i64,
    /// The `Nats-Msg-Id`.
    pub event_id: Uuid,
    /// Full subject.
    pub subject: String,
    /// The loan or user the event is about.
    pub aggregate_id: Uuid,
    /// The JSON message.
    pub payload: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    seq: i64,
    event_id: Uuid,
    subject: String,
    aggregate_id: Uuid,
    payload: Json<serde_json::Value>,
}

impl From<PendingRow> for PendingEvent {
    fn from(row: PendingRow) -> Self {
        Self {
            seq: row.seq,
            event_id: row.event_id,
            subject: row.subject,
            aggregate_id: row.aggregate_id,
            payload: row.payload.0,
        }
    }
}

/// Up to `limit` unpublished rows, oldest first, without claiming them
/// (SQLite: the process's only relay is the only one reading them).
pub async fn unpublished(db: &Db, limit: u32) -> Result<Vec<PendingEvent>, StoreError> {
    let rows: Vec<PendingRow> = with_pool!(db, |pool| sqlx::query_as(
        "select seq, event_id, subject, aggregate_id, payload from outbox \
         where published_at is null order by seq limit $1"
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(PendingEvent::from).collect())
}

/// Stamps the rows `seqs` published (one statement); rows stamped before keep their time.
pub async fn mark_published(db: &Db, seqs: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
    if seqs.is_empty() {
        return Ok(());
    }
    with_pool!(db, |pool| {
        let mut update = sqlx::QueryBuilder::new("update outbox set published_at = ");
        update
            .push_bind(now)
            .push(" where published_at is null and seq in (");
        let mut listed = update.separated(", ");
        for seq in seqs {
            listed.push_bind(*seq);
        }
        update.push(")");
        update.build().execute(pool).await.map(drop)
    })?;
    Ok(())
}

/// PostgreSQL: locks up to `limit` unpublished rows no other relay holds
/// (`for update skip locked`) and returns those it may publish now, in
/// `seq` order: for each aggregate, only the unbroken run of its oldest
/// unpublished rows. A row of the same aggregate held by another relay (or
/// not yet visible) ends the run, so per-aggregate order survives several
/// relays. The locks last until `tx` ends.
pub async fn claim(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    limit: u32,
) -> Result<Vec<PendingEvent>, StoreError> {
    let claimed: Vec<PendingRow> = sqlx::query_as(
        "select seq, event_id, subject, aggregate_id, payload from outbox \
         where published_at is null order by seq limit $1 for update skip locked",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let aggregates: Vec<Uuid> = claimed.iter().map(|row| row.aggregate_id).collect();
    // A plain read: it does not wait for rows other relays have locked.
    let unpublished: Vec<(i64, Uuid)> = sqlx::query_as(
        "select seq, aggregate_id from outbox where published_at is null \
         and aggregate_id = any($1) order by seq",
    )
    .bind(&aggregates)
    .fetch_all(&mut **tx)
    .await?;
    let publishable = publishable_runs(
        &claimed.iter().map(|row| row.seq).collect::<Vec<_>>(),
        &unpublished,
    );
    Ok(claimed
        .into_iter()
        .filter(|row| publishable.contains(&row.seq))
        .map(PendingEvent::from)
        .collect())
}

/// The claimed seqs that start each aggregate's unpublished rows without a gap.
fn publishable_runs(claimed: &[i64], unpublished: &[(i64, Uuid)]) -> Vec<i64> {
    let claimed: std::collections::HashSet<i64> = claimed.iter().copied().collect();
    let mut broken: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    let mut publishable = Vec::new();
    for (seq, aggregate) in unpublished {
        if broken.contains(aggregate) {
            continue;
        }
        if claimed.contains(seq) {
            publishable.push(*seq);
        } else {
            broken.insert(*aggregate);
        }
    }
    publishable
}

/// PostgreSQL: stamps the claimed rows `seqs` published, in the claiming
/// transaction (one statement).
pub async fn mark_claimed_published(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    seqs: &[i64],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("update outbox set published_at = $1 where seq = any($2)")
        .bind(now)
        .bind(seqs)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rows the relay has not published yet (for `/ready` details and tests).
pub async fn unpublished_count(db: &Db) -> Result<i64, StoreError> {
    let count: i64 = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select count(*) from outbox where published_at is null"
    )
    .fetch_one(pool)
    .await)?;
    Ok(count)
}

/// When the oldest unpublished row (lowest `seq`) was written; `None` when
/// every row is published.
pub async fn oldest_unpublished_at(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    const SQL: &str =
        "select created_at from outbox where published_at is null order by seq limit 1";
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_scalar(SQL).fetch_optional(pool).await
    })?)
}

/// Rows the bus acknowledged that are still kept (the purge count holds the rest).
pub async fn published_count(db: &Db) -> Result<i64, StoreError> {
    const SQL: &str = "select count(*) from outbox where published_at is not null";
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_scalar(SQL).fetch_one(pool).await
    })?)
}

/// Deletes up to `batch` published rows stamped before `cutoff`, oldest
/// first, and adds them to the purge count in the same transaction. Never
/// an unpublished row. Returns how many went.
pub async fn purge_published(
    db: &Db,
    cutoff: DateTime<Utc>,
    batch: u32,
) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let purged = with_tx!(&mut tx, |conn| sqlx::query(
        "delete from outbox where seq in (select seq from outbox \
         where published_at is not null and published_at < $1 order by published_at limit $2)"
    )
    .bind(cutoff)
    .bind(i64::from(batch))
    .execute(conn)
    .await
    .map(|done| done.rows_affected()))?;
    if purged > 0 {
        let counted = i64::try_from(purged).expect("a batch is bounded");
        with_tx!(&mut tx, |conn| sqlx::query(
            "update outbox_purged set purged_rows = purged_rows + $1 where id = 1"
        )
        .bind(counted)
        .execute(conn)
        .await
        .map(drop))?;
    }
    tx.commit().await?;
    Ok(purged)
}

/// Rows the retention purge has deleted since the table was created (all instances).
pub async fn purged_rows(db: &Db) -> Result<i64, StoreError> {
    let rows: i64 = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select purged_rows from outbox_purged where id = 1"
    )
    .fetch_one(pool)
    .await)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::publishable_runs;
    use uuid::Uuid;

    #[test]
    fn a_row_held_elsewhere_stops_its_aggregate_but_not_the_others() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // a: 1 (ours), 2 (another relay's), 4 (ours); b: 3, 5 (ours).
        let unpublished = [(1, a), (2, a), (3, b), (4, a), (5, b)];
        assert_eq!(publishable_runs(&[1, 3, 4, 5], &unpublished), vec![1, 3, 5]);
        // Another relay holds a's oldest row: nothing of a may go first.
        assert_eq!(
            publishable_runs(&[2, 4], &[(1, a), (2, a), (4, a)]),
            Vec::<i64>::new()
        );
    }
}
