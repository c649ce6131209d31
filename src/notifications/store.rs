//! The notifications table.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::store::batch::rows_per_statement;
use crate::store::page::{Page, PageRequest, into_page};
use crate::store::{Db, StoreError};
use crate::store::{with_pool, with_read_pool, with_tx};

/// A notification as stored and shown.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Notification {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// The recipient.
    pub user_id: Uuid,
    /// What caused it.
    pub event_id: Uuid,
    /// Kind, e.g. `payment.received`.
    pub kind: String,
    /// Short title.
    pub title: String,
    /// Full text.
    pub body: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the user read it.
    pub read_at: Option<DateTime<Utc>>,
    /// E-mail delivery state: `pending`, `sent`, `failed`, `skipped`.
    pub email_status: String,
    /// Delivery attempts so far.
    pub email_attempts: i32,
}

const COLUMNS: &str =
    "id, user_id, event_id, kind, title, body, created_at, read_at, email_status, email_attempts";
/// Rows per insert statement: each binds 7 values.
const INSERT_CHUNK: usize = rows_per_statement(7);

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The recipient.
    pub user_id: Uuid,
    /// The event or reminder key; (event_id, kind) is unique.
    pub event_id: Uuid,
    /// Kind.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
}

/// Inserts the notification unless one exists for (event_id, kind).
/// Returns the new row, or `None` if it was already there.
pub async fn insert_once(
    db: &Db,
    new: &NewNotification,
    now: DateTime<Utc>,
) -> Result<Option<Notification>, StoreError> {
    Ok(insert_new(db, std::slice::from_ref(new), now).await?.pop())
}

/// Inserts each of `news` unless a notification exists for its (event_id,
/// kind) (stored before, or earlier in `news`), in one transaction and one
/// multi-row statement per [`INSERT_CHUNK`] rows. Returns the rows it
/// inserted, in the order of `news`; on an error nothing was inserted.
pub async fn insert_new(
    db: &Db,
    news: &[NewNotification],
    now: DateTime<Utc>,
) -> Result<Vec<Notification>, StoreError> {
    let mut keys = HashSet::new();
    let candidates: Vec<Notification> = news
        .iter()
        .filter(|new| keys.insert((new.event_id, new.kind.as_str())))
        .map(|new| Notification {
            id: Uuid::now_v7(),
            user_id: new.user_id,
            event_id: new.event_id,
            kind: new.kind.clone(),
            title: new.title.clone(),
            body: new.body.clone(),
            created_at: now,
            read_at: None,
            email_status: "pending".into(),
            email_attempts: 0,
        })
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let mut inserted = HashSet::with_capacity(candidates.len());
    for chunk in candidates.chunks(INSERT_CHUNK) {
        let ids: Vec<Uuid> = with_tx!(&mut tx, |conn| {
            let mut insert = sqlx::QueryBuilder::new(
                "insert into notifications (id, user_id, event_id, kind, title, body, \
                 created_at, email_status) ",
            );
            insert.push_values(chunk, |mut row, notification| {
                row.push_bind(notification.id)
                    .push_bind(notification.user_id)
                    .push_bind(notification.event_id)
                    .push_bind(&notification.kind)
                    .push_bind(&notification.title)
                    .push_bind(&notification.body)
                    .push_bind(notification.created_at)
                    .push("'pending'");
            });
            insert.push(" on conflict (event_id, kind) do nothing returning id");
            insert.build_query_scalar().fetch_all(conn).await
        })?;
        inserted.extend(ids);
    }
    tx.commit().await?;
    Ok(candidates
        .into_iter()
        .filter(|notification| inserted.contains(&notification.id))
        .collect())
}

/// Claims the pending e-mail of notification `id` for this sender until
/// `until`, if nobody holds it (no claim, or one that lapsed before `now`).
/// `false`: another sender has it, or it is no longer pending.
pub async fn claim_email(
    db: &Db,
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let claimed = with_pool!(db, |pool| {
        sqlx::query(
            "update notifications set email_claimed_until = $1 where id = $2 \
             and email_status = 'pending' \
             and (email_claimed_until is null or email_claimed_until < $3)",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(claimed == 1)
}

/// Extends this sender's claim from `held` to `until`. The claim's current
/// time is the fencing token: `false` when someone else claimed the e-mail
/// after ours lapsed, or its outcome is already recorded.
pub async fn renew_email_claim(
    db: &Db,
    id: Uuid,
    held: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let renewed = with_pool!(db, |pool| sqlx::query(
        "update notifications set email_claimed_until = $1 where id = $2 \
         and email_status = 'pending' and email_claimed_until = $3"
    )
    .bind(until)
    .bind(id)
    .bind(held)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(renewed == 1)
}

/// Records the outcome of an e-mail and ends its claim. A mail recorded as
/// `sent` stays sent: a slower sender's later outcome does not overwrite it.
pub async fn record_email(
    db: &Db,
    id: Uuid,
    status: &str,
    attempts: i32,
    error: Option<&str>,
) -> Result<(), StoreError> {
    with_pool!(db, |pool| {
        sqlx::query(
            "update notifications set email_status = $1, email_attempts = $2, \
             email_error = $3, email_claimed_until = null where id = $4 \
             and email_status <> 'sent'",
        )
        .bind(status)
        .bind(attempts)
        .bind(error)
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
    })?;
    Ok(())
}

/// Notifications whose e-mail is pending and unclaimed (or its claim lapsed
/// before `now`), e.g. left by a crash; oldest first.
pub async fn pending_email(
    db: &Db,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let sql = format!(
        "select {COLUMNS} from notifications where email_status = 'pending' \
         and (email_claimed_until is null or email_claimed_until < $1) \
         order by created_at limit $2"
    );
    Ok(with_read_pool!(db, |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await)?)
}

/// Notification e-mails by delivery status (`pending`, `sent`, …), as
/// (status, count) for each status present.
pub async fn email_counts(db: &Db) -> Result<Vec<(String, i64)>, StoreError> {
    const SQL: &str = "select email_status, count(*) from notifications group by email_status";
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_as(SQL).fetch_all(pool).await
    })?)
}

/// One page of a user's notifications, newest first; only unread ones when asked.
pub async fn list(
    db: &Db,
    user_id: Uuid,
    unread_only: bool,
    page: PageRequest,
) -> Result<Page<Notification>, StoreError> {
    let sql = format!(
        "select {COLUMNS} from notifications where user_id = $1 \
         and ($2 = false or read_at is null) and ($3 is null or id < $3) \
         order by id desc limit $4"
    );
    let rows: Vec<Notification> =
        with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(unread_only)
            .bind(page.after())
            .bind(i64::from(page.limit()) + 1)
            .fetch_all(pool)
            .await)?;
    Ok(into_page(rows, page, |row| row.id))
}

/// Marks one of the user's notifications read; `None` if it is not theirs.
pub async fn mark_read(
    db: &Db,
    user_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Notification>, StoreError> {
    with_pool!(db, |pool| sqlx::query(
        "update notifications set read_at = $1 where id = $2 and user_id = $3 and read_at is null"
    )
    .bind(now)
    .bind(id)
    .bind(user_id)
    .execute(pool)
    .await
    .map(drop))?;
    let sql = format!("select {COLUMNS} from notifications where id = $1 and user_id = $2");
    Ok(with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await)?)
}

/// Marks every unread notification of the user read; returns how many.
pub async fn mark_all_read(db: &Db, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(with_pool!(db, |pool| sqlx::query(
        "update notifications set read_at = $1 where user_id = $2 and read_at is null"
    )
    .bind(now)
    .bind(user_id)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?)
}
