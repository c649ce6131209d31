//! The `inbound_dead_letters` table: messages that could not apply, one row
//! per distinct payload (by its SHA-256), newest first, with the last replay.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use uuid::Uuid;

use crate::store::page::{Page, PageRequest, into_page};
use crate::store::{Db, StoreError};
use crate::store::{with_pool, with_read_pool};

/// A dead letter as stored.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id (UUIDv7 for rows recorded since the digest column exists).
    pub id: Uuid,
    /// The sender's reference, when the message had one.
    pub external_ref: Option<String>,
    /// The raw message as received (may not be valid JSON).
    pub payload: Vec<u8>,
    /// Why it could not apply.
    pub reason: String,
    /// When it was first recorded.
    pub received_at: DateTime<Utc>,
    /// When an ADMIN last replayed it.
    pub replayed_at: Option<DateTime<Utc>>,
    /// What the last replay did: `applied`, `already_applied`, `not_applied`.
    pub replay_outcome: Option<String>,
    /// Why the last replay did not apply it.
    pub replay_detail: Option<String>,
}

const COLUMNS: &str =
    "id, external_ref, payload, reason, received_at, replayed_at, replay_outcome, replay_detail";

/// What a replay did to a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The payment was recorded by the replay.
    Applied,
    /// The reference was already recorded on the loan; nothing changed.
    AlreadyApplied,
    /// It still cannot apply (the detail says why).
    NotApplied,
}

impl ReplayOutcome {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Applied => "applied",
            ReplayOutcome::AlreadyApplied => "already_applied",
            ReplayOutcome::NotApplied => "not_applied",
        }
    }
}

/// Hex SHA-256 of a payload: the identity of a dead letter.
pub fn digest(payload: &[u8]) -> String {
    Sha256::digest(payload)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Records the message unless the same payload is recorded already.
pub async fn record(
    db: &Db,
    payload: &[u8],
    external_ref: Option<&str>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "insert into inbound_dead_letters (id, external_ref, payload, reason, \
             received_at, payload_digest) values ($1, $2, $3, $4, $5, $6) \
             on conflict (payload_digest) do nothing",
        )
        .bind(Uuid::now_v7())
        .bind(external_ref)
        .bind(payload)
        .bind(reason)
        .bind(now)
        .bind(digest(payload))
        .execute(pool)
        .await
        .map(drop)
    })?;
    Ok(())
}

/// How many inbound messages have been dead-lettered (all instances).
pub async fn count(db: &Db) -> Result<i64, StoreError> {
    const SQL: &str = "select count(*) from inbound_dead_letters";
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_scalar(SQL).fetch_one(pool).await
    })?)
}

/// One page of dead letters, newest first.
pub async fn list(db: &Db, page: PageRequest) -> Result<Page<DeadLetter>, StoreError> {
    let sql = format!(
        "select {COLUMNS} from inbound_dead_letters where ($1 is null or id < $1) \
         order by id desc limit $2"
    );
    let rows: Vec<DeadLetter> =
        with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(page.after())
            .bind(i64::from(page.limit()) + 1)
            .fetch_all(pool)
            .await)?;
    Ok(into_page(rows, page, |row| row.id))
}

/// One dead letter, `None` if there is no such id.
pub async fn find(db: &Db, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
    let sql = format!("select {COLUMNS} from inbound_dead_letters where id = $1");
    Ok(with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?)
}

/// Records the outcome of a replay on the dead letter and returns it updated.
pub async fn record_replay(
    db: &Db,
    id: Uuid,
    outcome: ReplayOutcome,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DeadLetter>, StoreError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "update inbound_dead_letters set replayed_at = $1, replay_outcome = $2, \
             replay_detail = $3 where id = $4",
        )
        .bind(now)
        .bind(outcome.as_str())
        .bind(detail)
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
    })?;
    find(db, id).await
}
