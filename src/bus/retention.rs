//! The outbox retention: published rows older than `OUTBOX_RETENTION_DAYS`
//! are deleted in bounded batches, every `OUTBOX_PURGE_INTERVAL_SECS`.
//! Unpublished rows are never touched, however old: they still have to
//! reach the bus.

use std::time::Duration;

use crate::clock::Clock;
use crate::store::outbox;
use crate::store::{Db, StoreError};

/// Rows deleted by one statement (one short transaction).
pub const PURGE_BATCH: u32 = 1_000;
/// Most batches in one round; the rest waits for the next round.
const MAX_BATCHES_PER_ROUND: u32 = 100;
/// Pause between batches, so writers (SQLite has one) get their turns.
const BATCH_PAUSE: Duration = Duration::from_millis(50);

/// Deletes published rows stamped before `now - retention`, batch by batch,
/// until none is left or the round's bound is reached; returns how many.
pub async fn purge_round(
    db: &Db,
    now: chrono::DateTime<chrono::Utc>,
    retention: Duration,
) -> Result<u64, StoreError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(retention)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let mut total = 0;
    for batch in 0..MAX_BATCHES_PER_ROUND {
        if batch > 0 {
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        let purged = outbox::purge_published(db, cutoff, PURGE_BATCH).await?;
        total += purged;
        if purged < u64::from(PURGE_BATCH) {
            break;
        }
    }
    Ok(total)
}

/// Runs a purge round every `interval`, the first one at once; never returns
/// (the app aborts it at shutdown: a round cut short loses nothing).
pub async fn run(db: Db, clock: Clock, retention: Duration, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match purge_round(&db, clock.now(), retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "published outbox rows past retention deleted"),
            Err(error) => {
                tracing::warn!(%error, "purging the outbox failed; next round tries again")
            }
        }
    }
}
