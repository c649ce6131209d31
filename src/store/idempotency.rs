//! Idempotency-Key records: claim a key before acting and store the response
//! after, or — for a loan command — look at the key before acting and keep the
//! response in the command's own transaction ([`look`], [`keep_all`]).

use chrono::{DateTime, Duration, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use actors::store::ReplyRecord;

use super::batch::rows_per_statement;
use super::{Db, StoreError, Tx};
use crate::store::{with_pool, with_read_pool, with_tx};

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
            "insert into idempotency_keys (user_id, idempotency_key, route, body_hash, \
             created_at, locked_until, expires_at) values ($1, $2, $3, $4, $5, $6, $7){}",
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

/// What the key's row (if any) says about a request with this key at `now`.
enum Verdict {
    /// Go ahead; `write` says what claiming takes.
    Fresh {
        first_claimed_at: DateTime<Utc>,
        write: Takeover,
    },
    /// Answered, blocked or used otherwise: the claim it is.
    Settled(Claim),
}

/// How a fresh claim takes the key.
enum Takeover {
    /// No row: insert one.
    Insert,
    /// The row is past its retention: replace it.
    ReplaceExpired,
    /// A first attempt failed or crashed unanswered: lock its row again,
    /// keeping its first claim time.
    Relock,
}

fn judge(row: Option<KeyRow>, request: KeyedRequest<'_>, now: DateTime<Utc>) -> Verdict {
    let fresh = |write| Verdict::Fresh {
        first_claimed_at: now,
        write,
    };
    match row {
        None => fresh(Takeover::Insert),
        Some(row) if row.expires_at <= now => fresh(Takeover::ReplaceExpired),
        Some(row) if row.route != request.route || row.body_hash != request.body_hash => {
            Verdict::Settled(Claim::Mismatch)
        }
        Some(KeyRow {
            response_status: Some(status),
            response_body,
            ..
        }) => Verdict::Settled(Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: response_body.unwrap_or_default(),
        }),
        Some(row) if row.locked_until > now => Verdict::Settled(Claim::InProgress),
        Some(row) => Verdict::Fresh {
            first_claimed_at: row.created_at,
            write: Takeover::Relock,
        },
    }
}

/// Selects the key's row; `$lock` is appended (a row lock inside a transaction).
macro_rules! select_key {
    ($executor:expr, $request:expr, $lock:expr) => {
        sqlx::query_as::<_, KeyRow>(sqlx::AssertSqlSafe(format!(
            "select route, body_hash, response_status, response_body, created_at, \
             locked_until, expires_at from idempotency_keys where user_id = $1 \
             and idempotency_key = $2{}",
            $lock
        )))
        .bind($request.user_id)
        .bind($request.key)
        .fetch_optional($executor)
        .await
    };
}

async fn try_claim(
    db: &Db,
    request: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let mut tx = db.begin().await?;
    let lock = tx.row_lock();
    let row = with_tx!(&mut tx, |conn| select_key!(conn, request, lock))?;
    let claim = match judge(row, request, now) {
        Verdict::Settled(claim) => claim,
        Verdict::Fresh {
            first_claimed_at,
            write,
        } => {
            match write {
                Takeover::Insert => insert(&mut tx, request, now).await?,
                Takeover::ReplaceExpired => {
                    delete_in(&mut tx, request.user_id, request.key).await?;
                    insert(&mut tx, request, now).await?;
                }
                Takeover::Relock => relock(&mut tx, request, now).await?,
            }
            Claim::Fresh { first_claimed_at }
        }
    };
    tx.commit().await?;
    Ok(claim)
}

/// What `request.key` holds, without claiming it: for a command whose answer
/// is kept with its own commit ([`keep_all`]), where the commit takes the
/// key. One read, no transaction; a fresh key is claimed by nothing here.
pub async fn look(
    db: &Db,
    request: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    // SQLite: the reader pool, so a look never waits behind the one writer.
    let row = with_read_pool!(db, |pool| select_key!(pool, request, ""))?;
    Ok(match judge(row, request, now) {
        Verdict::Settled(claim) => claim,
        Verdict::Fresh {
            first_claimed_at, ..
        } => Claim::Fresh { first_claimed_at },
    })
}

/// Writes kept answers inside `tx` (the command's own transaction), taking
/// each key: a key with no row, a row past its retention, or an unanswered
/// row of the same request whose lock ran out. Returns how many were written;
/// fewer than `replies.len()` means a key was taken by another request
/// meanwhile (the caller rolls back).
pub async fn keep_all(tx: &mut Tx, replies: &[ReplyRecord]) -> Result<u64, StoreError> {
    const COLUMNS: usize = 9;
    let now = Utc::now();
    let mut written = 0;
    for chunk in replies.chunks(rows_per_statement(COLUMNS)) {
        written += with_tx!(tx, |conn| {
            let mut insert = sqlx::QueryBuilder::new(
                "insert into idempotency_keys (user_id, idempotency_key, route, body_hash, \
                 response_status, response_body, created_at, locked_until, expires_at) ",
            );
            insert.push_values(chunk, |mut values, reply| {
                values
                    .push_bind(reply.user_id)
                    .push_bind(reply.key.as_str())
                    .push_bind(reply.route.as_str())
                    .push_bind(reply.body_hash.as_str())
                    .push_bind(i32::from(reply.status))
                    .push_bind(reply.body.as_slice())
                    .push_bind(reply.claimed_at)
                    .push_bind(reply.claimed_at)
                    .push_bind(reply.claimed_at + RETENTION);
            });
            insert
                .push(
                    " on conflict (user_id, idempotency_key) do update \
                     set route = excluded.route, body_hash = excluded.body_hash, \
                     response_status = excluded.response_status, \
                     response_body = excluded.response_body, \
                     created_at = excluded.created_at, locked_until = excluded.locked_until, \
                     expires_at = excluded.expires_at where idempotency_keys.expires_at <= ",
                )
                .push_bind(now)
                .push(
                    " or (idempotency_keys.response_status is null \
                     and idempotency_keys.route = excluded.route \
                     and idempotency_keys.body_hash = excluded.body_hash \
                     and idempotency_keys.locked_until <= ",
                )
                .push_bind(now)
                .push(")");
            insert
                .build()
                .persistent(false)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
    }
    Ok(written)
}

/// Keeps one answer that did not go with a commit (a refusal, or a command
/// that changed nothing), as [`keep_all`] does; false when the key was taken
/// meanwhile.
pub async fn keep(db: &Db, reply: &ReplyRecord) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let written = keep_all(&mut tx, std::slice::from_ref(reply)).await?;
    tx.commit().await?;
    Ok(written == 1)
}

async fn insert(
    tx: &mut Tx,
    request: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_tx!(tx, |conn| insert_key!(conn, request, now, ""))?;
    Ok(())
}

async fn relock(
    tx: &mut Tx,
    request: KeyedRequest<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_tx!(tx, |conn| {
        sqlx::query(
            "update idempotency_keys set locked_until = $1 where user_id = $2 \
             and idempotency_key = $3",
        )
        .bind(now + LOCK)
        .bind(request.user_id)
        .bind(request.key)
        .execute(conn)
        .await
        .map(drop)
    })?;
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
            "update idempotency_keys set response_status = $1, response_body = $2 \
             where user_id = $3 and idempotency_key = $4",
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
            "update idempotency_keys set locked_until = $1 where user_id = $2 \
             and idempotency_key = $3 and response_status is null",
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
