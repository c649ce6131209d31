//! Audit entries in SQL: append under the chain lock, filtered pages, and
//! the walk that verifies the chain. There is deliberately no update and no
//! delete here (and the database refuses both).

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::entry::{AuditEntry, GENESIS_HASH, NewEntry};
use crate::store::page::{Page, PageRequest, into_page};
use crate::store::{Db, StoreError};
use crate::{with_read_pool, with_tx};

/// Entries read per query while verifying.
const VERIFY_PAGE: i64 = 500;

/// Outcome of an append.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// A new entry at the head of the chain.
    Recorded(Box<AuditEntry>),
    /// This event already has an entry; nothing was written.
    AlreadyRecorded,
}

const ENTRY_COLUMNS: &str = "seq, id, event_id, actor, action, entity, entity_id, occurred_at, recorded_at, detail, prev_hash, hash";

#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    id: Uuid,
    event_id: Uuid,
    actor: String,
    action: String,
    entity: String,
    entity_id: Option<Uuid>,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    detail: Json<serde_json::Value>,
    prev_hash: String,
    hash: String,
}

impl From<EntryRow> for AuditEntry {
    fn from(row: EntryRow) -> Self {
        Self {
            seq: row.seq,
            id: row.id,
            event_id: row.event_id,
            actor: row.actor,
            action: row.action,
            entity: row.entity,
            entity_id: row.entity_id,
            occurred_at: row.occurred_at,
            recorded_at: row.recorded_at,
            detail: row.detail.0,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// Appends `entry` at the head of the chain, unless its event is already
/// recorded. The chain-head row is locked for the transaction, so appends
/// from several consumers queue up instead of forking the chain.
pub async fn append(db: &Db, entry: NewEntry, now: DateTime<Utc>) -> Result<Appended, StoreError> {
    let mut tx = db.begin().await?;
    let head_sql = format!(
        "select last_seq, last_hash from audit_chain where id = 1{}",
        tx.row_lock()
    );
    let (last_seq, last_hash): (i64, String) = with_tx!(&mut tx, |conn| sqlx::query_as(
        sqlx::AssertSqlSafe(head_sql)
    )
    .fetch_one(conn)
    .await)?;
    let seen: Option<i64> = with_tx!(&mut tx, |conn| sqlx::query_scalar(
        "select seq from audit_log where event_id = $1"
    )
    .bind(entry.event_id)
    .fetch_optional(conn)
    .await)?;
    if seen.is_some() {
        return Ok(Appended::AlreadyRecorded);
    }
    let mut recorded = AuditEntry {
        seq: last_seq + 1,
        id: Uuid::now_v7(),
        event_id: entry.event_id,
        actor: entry.actor,
        action: entry.action,
        entity: entry.entity.to_owned(),
        entity_id: entry.entity_id,
        occurred_at: entry.occurred_at.trunc_subsecs(6),
        recorded_at: now.trunc_subsecs(6),
        detail: entry.detail,
        prev_hash: last_hash,
        hash: String::new(),
    };
    recorded.hash = recorded.expected_hash();
    let insert = with_tx!(&mut tx, |conn| {
        sqlx::query(
        "insert into audit_log (seq, id, event_id, actor, action, entity, entity_id, occurred_at, recorded_at, detail, prev_hash, hash) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )
    .bind(recorded.seq)
    .bind(recorded.id)
    .bind(recorded.event_id)
    .bind(&recorded.actor)
    .bind(&recorded.action)
    .bind(&recorded.entity)
    .bind(recorded.entity_id)
    .bind(recorded.occurred_at)
    .bind(recorded.recorded_at)
    .bind(Json(&recorded.detail))
    .bind(&recorded.prev_hash)
    .bind(&recorded.hash)
    .execute(conn)
    .await
    .map(drop)
    });
    match insert.map_err(StoreError::from) {
        Ok(()) => {}
        Err(StoreError::Duplicate { .. }) => return Ok(Appended::AlreadyRecorded),
        Err(error) => return Err(error),
    }
    with_tx!(&mut tx, |conn| sqlx::query(
        "update audit_chain set last_seq = $1, last_hash = $2 where id = 1"
    )
    .bind(recorded.seq)
    .bind(&recorded.hash)
    .execute(conn)
    .await
    .map(drop))?;
    tx.commit().await?;
    Ok(Appended::Recorded(Box::new(recorded)))
}

/// Filters of `GET /audit-logs`; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exact actor (`system` or a user id).
    pub actor: Option<String>,
    /// Exact action (event type).
    pub action: Option<String>,
    /// The loan or user the entry is about.
    pub entity_id: Option<Uuid>,
    /// Events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events before this time.
    pub to: Option<DateTime<Utc>>,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The cursor names no entry.
    #[error("unknown cursor")]
    UnknownCursor,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of entries matching `filter`, newest first (like every list),
/// after the entry the cursor names.
pub async fn list(
    db: &Db,
    filter: &Filter,
    page: PageRequest,
) -> Result<Page<AuditEntry>, ListError> {
    let before_seq = match page.after() {
        None => i64::MAX,
        Some(id) => {
            let seq: Option<i64> = with_read_pool!(db, |pool| sqlx::query_scalar(
                "select seq from audit_log where id = $1"
            )
            .bind(id)
            .fetch_optional(pool)
            .await)
            .map_err(StoreError::from)?;
            seq.ok_or(ListError::UnknownCursor)?
        }
    };
    let sql = format!(
        "select {ENTRY_COLUMNS} from audit_log \
         where seq < $1 and ($2 is null or actor = $2) and ($3 is null or action = $3) \
         and ($4 is null or entity_id = $4) and ($5 is null or occurred_at >= $5) \
         and ($6 is null or occurred_at < $6) order by seq desc limit $7"
    );
    let rows: Vec<EntryRow> =
        with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(before_seq)
            .bind(filter.actor.as_deref())
            .bind(filter.action.as_deref())
            .bind(filter.entity_id)
            .bind(filter.from)
            .bind(filter.to)
            .bind(i64::from(page.limit()) + 1)
            .fetch_all(pool)
            .await)
        .map_err(StoreError::from)?;
    let entries = rows.into_iter().map(AuditEntry::from).collect();
    Ok(into_page(entries, page, |entry: &AuditEntry| entry.id))
}

/// The first entry where the chain breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Position of the entry (or the missing one).
    pub seq: i64,
    /// The entry's id, when it exists.
    pub id: Option<Uuid>,
    /// The event it records, when it exists.
    pub event_id: Option<Uuid>,
    /// What is wrong.
    pub reason: String,
}

/// Result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked before the walk ended.
    pub checked: u64,
    /// `None` when every entry links and hashes as it should.
    pub first_break: Option<Break>,
}

/// Walks the chain from the first entry to the head recorded in
/// `audit_chain`: each entry must follow the previous one without a gap,
/// carry the previous entry's hash, and hash to its own `hash`.
pub async fn verify(db: &Db) -> Result<Verification, StoreError> {
    // The head first: entries appended during the walk are left for next time.
    let (head_seq, head_hash): (i64, String) = with_read_pool!(db, |pool| sqlx::query_as(
        "select last_seq, last_hash from audit_chain where id = 1"
    )
    .fetch_one(pool)
    .await)?;
    let mut expected_seq = 1_i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checked = 0_u64;
    let sql = format!(
        "select {ENTRY_COLUMNS} from audit_log where seq >= $1 and seq <= $2 order by seq limit $3"
    );
    loop {
        let rows: Vec<EntryRow> =
            with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(expected_seq)
                .bind(head_seq)
                .bind(VERIFY_PAGE)
                .fetch_all(pool)
                .await)?;
        let page_len = rows.len();
        for entry in rows.into_iter().map(AuditEntry::from) {
            if let Some(reason) = check(&entry, expected_seq, &prev_hash) {
                let first_break = Break {
                    seq: entry.seq,
                    id: Some(entry.id),
                    event_id: Some(entry.event_id),
                    reason,
                };
                return Ok(Verification {
                    checked,
                    first_break: Some(first_break),
                });
            }
            checked += 1;
            expected_seq += 1;
            prev_hash = entry.hash;
        }
        if page_len < VERIFY_PAGE as usize {
            break;
        }
    }
    let first_break = (expected_seq - 1 != head_seq || prev_hash != head_hash).then(|| Break {
        seq: expected_seq,
        id: None,
        event_id: None,
        reason: format!(
            "the chain head is entry {head_seq}, but the entries end at {}",
            expected_seq - 1
        ),
    });
    Ok(Verification {
        checked,
        first_break,
    })
}

fn check(entry: &AuditEntry, expected_seq: i64, prev_hash: &str) -> Option<String> {
    if entry.seq != expected_seq {
        return Some(format!(
            "entries {expected_seq} to {} are missing",
            entry.seq - 1
        ));
    }
    if entry.prev_hash != prev_hash {
        return Some("prev_hash does not match the previous entry's hash".into());
    }
    if entry.hash != entry.expected_hash() {
        return Some("hash does not match the entry's content".into());
    }
    None
}
