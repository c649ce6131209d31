//! The session change log (`session_changes`): every change that must end
//! access tokens (role change, deactivation, logout, refresh-family
//! revocation) adds a row in its own transaction; every instance reads the
//! recent rows to drop those users from its access cache
//! ([`super::standing`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{Db, StoreError, Tx};
use crate::store::{with_pool, with_read_pool, with_tx};

/// Most rows one read returns; a burst beyond it drops the whole cache
/// instead (see [`Recent::Overflow`]).
pub const MAX_ROWS_PER_READ: i64 = 10_000;

/// Records that `user_id`'s access changed at `now`, inside the change's transaction.
pub async fn record(tx: &mut Tx, user_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
    with_tx!(tx, |conn| sqlx::query(
        "insert into session_changes (id, user_id, changed_at_ms) values ($1, $2, $3)"
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(now.timestamp_millis())
    .execute(conn)
    .await
    .map(drop))?;
    Ok(())
}

/// The users whose access changed after a point in time.
#[derive(Debug, PartialEq, Eq)]
pub enum Recent {
    /// These users (each at most once).
    Users(Vec<Uuid>),
    /// More than [`MAX_ROWS_PER_READ`] changes: treat every user as changed.
    Overflow,
}

/// The users with a change recorded after `after_ms` (epoch milliseconds).
pub async fn since(db: &Db, after_ms: i64) -> Result<Recent, StoreError> {
    let users: Vec<Uuid> = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select distinct user_id from session_changes where changed_at_ms > $1 limit $2"
    )
    .bind(after_ms)
    .bind(MAX_ROWS_PER_READ + 1)
    .fetch_all(pool)
    .await)?;
    if users.len() as i64 > MAX_ROWS_PER_READ {
        return Ok(Recent::Overflow);
    }
    Ok(Recent::Users(users))
}

/// Deletes rows recorded before `before_ms`; returns how many.
pub async fn purge(db: &Db, before_ms: i64) -> Result<u64, StoreError> {
    let purged = with_pool!(db, |pool| sqlx::query(
        "delete from session_changes where changed_at_ms < $1"
    )
    .bind(before_ms)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(purged)
}
