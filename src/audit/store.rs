//! Audit entries in SQL: append (a batch per transaction) under the chain
//! lock, filtered pages, and the walk that verifies the chain. There is
//! deliberately no update and no delete here (and the database refuses both).

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::entry::{AuditEntry, GENESIS_HASH, NewEntry};
use crate::store::batch::rows_per_statement;
use crate::store::page::{Page, PageRequest, into_page};
use crate::store::{Db, StoreError, Tx};
use crate::store::{with_read_pool, with_tx};

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
/// The number of [`ENTRY_COLUMNS`] (bound values per inserted entry).
const ENTRY_COLUMN_COUNT: usize = 12;

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
/// recorded: a batch of one (see [`append_batch`]).
pub async fn append(db: &Db, entry: NewEntry, now: DateTime<Utc>) -> Result<Appended, StoreError> {
    let mut outcomes = append_batch(db, std::slice::from_ref(&entry), now).await?;
    Ok(outcomes.pop().expect("one outcome per entry"))
}

/// Appends `entries`, in order, at the head of the chain in one
/// transaction, skipping each whose event is already recorded (before, or
/// earlier in the batch). The chain comes out entry by entry as appending
/// them one at a time would make it: consecutive `seq`s, each `prev_hash`
/// the hash before it; the entries share one `recorded_at`. The chain-head
/// row is locked for the transaction, so appends from several consumers
/// queue up instead of forking the chain. Returns each entry's outcome, in
/// order; on an error nothing was written.
pub async fn append_batch(
    db: &Db,
    entries: &[NewEntry],
    now: DateTime<Utc>,
) -> Result<Vec<Appended>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let head_sql = format!(
        "select last_seq, last_hash from audit_chain where id = 1{}",
        tx.row_lock()
    );
    let (mut last_seq, mut last_hash): (i64, String) = with_tx!(&mut tx, |conn| sqlx::query_as(
        sqlx::AssertSqlSafe(head_sql)
    )
    .fetch_one(conn)
    .await)?;
    let event_ids: Vec<Uuid> = entries.iter().map(|entry| entry.event_id).collect();
    let mut seen = recorded_among(&mut tx, &event_ids).await?;
    let recorded_at = now.trunc_subsecs(6);
    let mut outcomes = Vec::with_capacity(entries.len());
    for entry in entries {
        if !seen.insert(entry.event_id) {
            outcomes.push(Appended::AlreadyRecorded);
            continue;
        }
        let recorded = chained(entry, last_seq + 1, last_hash, recorded_at);
        (last_seq, last_hash) = (recorded.seq, recorded.hash.clone());
        outcomes.push(Appended::Recorded(Box::new(recorded)));
    }
    let new_entries: Vec<&AuditEntry> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Appended::Recorded(entry) => Some(entry.as_ref()),
            Appended::AlreadyRecorded => None,
        })
        .collect();
    if new_entries.is_empty() {
        return Ok(outcomes); // Nothing to write: the transaction rolls back.
    }
    insert_entries(&mut tx, &new_entries).await?;
    with_tx!(&mut tx, |conn| sqlx::query(
        "update audit_chain set last_seq = $1, last_hash = $2 where id = 1"
    )
    .bind(last_seq)
    .bind(&last_hash)
    .execute(conn)
    .await
    .map(drop))?;
    tx.commit().await?;
    Ok(outcomes)
}

/// `entry` as the chain's entry `seq`, after the entry hashed `prev_hash`.
fn chained(
    entry: &NewEntry,
    seq: i64,
    prev_hash: String,
    recorded_at: DateTime<Utc>,
) -> AuditEntry {
    let mut recorded = AuditEntry {
        seq,
        id: Uuid::now_v7(),
        event_id: entry.event_id,
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        entity: entry.entity.to_owned(),
        entity_id: entry.entity_id,
        occurred_at: entry.occurred_at.trunc_subsecs(6),
        recorded_at,
        detail: entry.detail.clone(),
        prev_hash,
        hash: String::new(),
    };
    recorded.hash = recorded.expected_hash();
    recorded
}

/// The events among `event_ids` that already have an entry.
async fn recorded_among(tx: &mut Tx, event_ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
    let mut recorded = HashSet::new();
    for chunk in event_ids.chunks(rows_per_statement(1)) {
        let found: Vec<Uuid> = with_tx!(tx, |conn| {
            let mut select =
                sqlx::QueryBuilder::new("select event_id from audit_log where event_id in (");
            let mut listed = select.separated(", ");
            for event_id in chunk {
                listed.push_bind(*event_id);
            }
            select.push(")");
            select.build_query_scalar().fetch_all(conn).await
        })?;
        recorded.extend(found);
    }
    Ok(recorded)
}

/// Inserts `entries` with as few statements as the bind limit allows.
async fn insert_entries(tx: &mut Tx, entries: &[&AuditEntry]) -> Result<(), StoreError> {
    for chunk in entries.chunks(rows_per_statement(ENTRY_COLUMN_COUNT)) {
        with_tx!(tx, |conn| {
            let mut insert =
                sqlx::QueryBuilder::new(format!("insert into audit_log ({ENTRY_COLUMNS}) "));
            insert.push_values(chunk, |mut row, entry| {
                row.push_bind(entry.seq)
                    .push_bind(entry.id)
                    .push_bind(entry.event_id)
                    .push_bind(&entry.actor)
                    .push_bind(&entry.action)
                    .push_bind(&entry.entity)
                    .push_bind(entry.entity_id)
                    .push_bind(entry.occurred_at)
                    .push_bind(entry.recorded_at)
                    .push_bind(Json(&entry.detail))
                    .push_bind(&entry.prev_hash)
                    .push_bind(&entry.hash);
            });
            insert.build().execute(conn).await.map(drop)
        })?;
    }
    Ok(())
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
        "select {ENTRY_COLUMNS} from audit_log where seq < $1 \
         and ($2 is null or actor = $2) and ($3 is null or action = $3) \
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

#[cfg(test)]
mod tests {
    use super::{ENTRY_COLUMN_COUNT, ENTRY_COLUMNS};

    #[test]
    fn the_column_count_matches_the_column_list() {
        assert_eq!(ENTRY_COLUMNS.split(',').count(), ENTRY_COLUMN_COUNT);
    }
}
