//! Idempotency-Key records: claim a key before acting, store the response after.

use chrono::{DateTime, Duration, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{Db, StoreError, Tx};
use crate::{with_pool, with_tx};

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::hours(24);
/// How long a claim blocks repeats before a crashed first attempt may be retried.
pub const LOCK: Duration = Duration::seconds(60);

/// What claiming a key found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use (or a stale claim taken over): go ahead, then [`complete`].
    Fresh {
        /// When the key was first claimed; a takeover keeps it, so ids
        /// derived from the key and this time are the same on every retry.
        first_claimed_at: DateTime<Utc>,
    },
    /// Done before: answer with this response again.
    Replay {
        /// The first response's status.
        status: u16,
        /// The first response's body.
        body: Vec<u8>,
    },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used with another route or body.
    Mismatch,
}

/// The request a key is claimed for.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRequest<'a> {
    /// The caller.
    pub user_id: Uuid,
    /// The header value.
    pub key: &'a str,
    /// Method and path.
    pub route: &'a str,
    /// SHA-256 of the body, hex.
    pub body_hash: &'a str,
}

/// Inserts a fresh claim of `$request` at `$now` through `$executor`,
/// `$suffix` appended to the statement; evaluates to the rows inserted.
macro_rules! insert_key {
    ($executor:expr, $request:expr, $now:expr, $suffix:expr) => {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "insert into idempotency_keys (user_id, idempotency_key, route, body_hash, created_at, \
             locked_until, expires_at) values ($1, $2, $3, $4, $5, $6, $7){}",
            $suffix
        )))
        .bind($request.user_id)
        .bind($request.key)
        .bind($request.route)
        .bind($request.body_hash)
        .bind($now)
        .bind($now + LOCK)
        .bind($now + RETENTION)
        .execute($executor)
        .await
        .map(|done| done.rows_affected())
    };
}

#[derive(FromRow)]
struct KeyRow {
    route: String,
    body_hash: String,
    response_status: Option<i32>,
    response_body: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
    locked_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Claims `request.key` for this request, or says why not.
///
/// A key never seen before — the hot path — costs one statement and no
/// transaction of its own: the insert either takes the key or finds it
/// taken. Only a key seen before is looked at under a row lock.
pub async fn claim(
    db: &Db,
    request: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let taken = with_pool!(db, |pool| insert_key!(
        pool,
        request,
        now,
        " on conflict (user_id, idempotency_key) do nothing"
    ))?;
    if taken == 1 {
        return Ok(Claim::Fresh {
            first_claimed_at: now,
        });
    }
    // Two first requests racing: the loser's insert violates the primary key;
    // its second look sees the winner's claim.
    match try_claim(db, request, now).await {
        Err(StoreError::Duplicate { .. }) => try_claim(db, request, now).await,
        other => other,
    }
}

async fn try_claim(
    db: &Db,
    request: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "select route, body_hash, response_status, response_body, created_at, locked_until, expires_at \
         from idempotency_keys where user_id = $1 and idempotency_key = $2{}",
        tx.row_lock()
    );
    let row: Option<KeyRow> = with_tx!(&mut tx, |conn| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(request.user_id)
        .bind(request.key)
        .fetch_optional(conn)
        .await)?;
    let claim = match row {
        None => {
            insert(&mut tx, request, now).await?;
            Claim::Fresh {
                first_claimed_at: now,
            }
        }
        Some(row) if row.expires_at <= now => {
            delete_in(&mut tx, request.user_id, request.key).await?;
            insert(&mut tx, request, now).await?;
            Claim::Fresh {
                first_claimed_at: now,
            }
        }
        Some(row) if row.route != request.route || row.body_hash != request.body_hash => {
            Claim::Mismatch
        }
        Some(KeyRow {
            response_status: Some(status),
            response_body,
            ..
        }) => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: response_body.unwrap_or_default(),
        },
        Some(row) if row.locked_until > now => Claim::InProgress,
        Some(row) => {
            with_tx!(&mut tx, |conn| {
                sqlx::query(
                "update idempotency_keys set locked_until = $1 where user_id = $2 and idempotency_key = $3"
            )
            .bind(now + LOCK)
            .bind(request.user_id)
            .bind(request.key)
            .execute(conn)
            .await
            .map(drop)
            })?;
            Claim::Fresh {
                first_claimed_at: row.created_at,
            }
        }
    };
    tx.commit().await?;
    Ok(claim)
}

async fn insert(
    tx: &mut Tx,
    request: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_tx!(tx, |conn| insert_key!(conn, request, now, ""))?;
    Ok(())
}

async fn delete_in(tx: &mut Tx, user_id: Uuid, key: &str) -> Result<(), StoreError> {
    with_tx!(tx, |conn| sqlx::query(
        "delete from idempotency_keys where user_id = $1 and idempotency_key = $2"
    )
    .bind(user_id)
    .bind(key)
    .execute(conn)
    .await
    .map(drop))?;
    Ok(())
}

/// Stores the response of a claimed key.
pub async fn complete(
    db: &Db,
    user_id: Uuid,
    key: &str,
    status: u16,
    body: &[u8],
) -> Result<(), StoreError> {
    with_pool!(db, |pool| {
        sqlx::query(
        "update idempotency_keys set response_status = $1, response_body = $2 where user_id = $3 and idempotency_key = $4"
    )
    .bind(i32::from(status))
    .bind(body)
    .bind(user_id)
    .bind(key)
    .execute(pool)
    .await
    .map(drop)
    })?;
    Ok(())
}

/// Lets a claim whose request failed on our side be retried at once, keeping
/// its identity: the row stays (with its `created_at`), only the lock ends.
///
/// The failed attempt may still commit (an actor call timed out while its
/// commit waited on a lock, and the commit lands later), so the retry must
/// act under the same derived ids — then the core sees a repeat of what
/// landed and answers it, instead of recording it a second time. Deleting
/// the claim here gave the retry a fresh `first_claimed_at`, hence new ids
/// and a second payment.
pub async fn unlock(
    db: &Db,
    user_id: Uuid,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "update idempotency_keys set locked_until = $1 \
             where user_id = $2 and idempotency_key = $3 and response_status is null",
        )
        .bind(now)
        .bind(user_id)
        .bind(key)
        .execute(pool)
        .await
        .map(drop)
    })?;
    Ok(())
}

/// Deletes records past their retention; returns how many.
pub async fn purge_expired(db: &Db, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(with_pool!(db, |pool| sqlx::query(
        "delete from idempotency_keys where expires_at <= $1"
    )
    .bind(now)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?)
}
