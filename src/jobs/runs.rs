//! The `job_runs` table (migration 0008): claiming a run for a date, renewing
//! its lease, finishing it, and the `job.started` / `job.finished` events
//! written to the outbox in the same transactions.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{JobName, RunRecord};
use crate::events::job::{JobEvent, JobRun};
use crate::store::outbox::{self, OutboxEvent};
use crate::store::{Db, StoreError, Tx};
use crate::store::{with_read_pool, with_tx};

/// Namespace of the per-run aggregate id, so the relay keeps a run's
/// `job.started` before its `job.finished`.
const RUN_AGGREGATE_NAMESPACE: Uuid = Uuid::from_u128(0x6a6f_622d_7275_6e73_2d61_6767_7265_6761);

const COLUMNS: &str = "job, as_of, owner, started_at, lease_until, finished_at, processed, errors";

#[derive(Debug, FromRow)]
struct RunRow {
    job: String,
    as_of: NaiveDate,
    owner: String,
    started_at: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    processed: i64,
    errors: i64,
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StoreError;

    fn try_from(row: RunRow) -> Result<Self, StoreError> {
        let count = |value: i64| {
            u64::try_from(value)
                .map_err(|_| StoreError::Corrupt(format!("negative count {value} in job_runs")))
        };
        Ok(RunRecord {
            job: row.job.parse().map_err(|_| {
                StoreError::Corrupt(format!("unknown job {:?} in job_runs", row.job))
            })?,
            as_of: row.as_of,
            owner: row.owner,
            started_at: row.started_at,
            finished_at: row.finished_at,
            processed: count(row.processed)?,
            errors: count(row.errors)?,
        })
    }
}

/// What claiming a run found.
#[derive(Debug)]
pub enum Claim {
    /// The run is ours now: do the work, then [`finish`].
    Started(RunRecord),
    /// The run for this date is already done; nothing to do.
    Finished(RunRecord),
    /// Another instance is running it (its lease is still valid).
    Busy(RunRecord),
}

/// Who wants the run and until when its lease holds.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    /// This instance.
    pub owner: &'a str,
    /// The run's start.
    pub now: DateTime<Utc>,
    /// The lease's end.
    pub lease_until: DateTime<Utc>,
    /// Take over an unfinished run even within its lease (the caller holds
    /// the PostgreSQL advisory lock, so its previous owner is gone).
    pub takeover: bool,
}

/// Claims the run of `job` for `as_of`: inserts its row, or takes over an
/// unfinished one whose owner is gone, and writes `job.started` to the outbox
/// in the same transaction.
pub async fn claim(
    db: &Db,
    job: JobName,
    as_of: NaiveDate,
    claimant: Claimant<'_>,
) -> Result<Claim, StoreError> {
    let mut tx = db.begin().await?;
    let inserted = with_tx!(&mut tx, |conn| {
        sqlx::query(
            "insert into job_runs (job, as_of, owner, started_at, lease_until) \
             values ($1, $2, $3, $4, $5) on conflict (job, as_of) do nothing",
        )
        .bind(job.as_str())
        .bind(as_of)
        .bind(claimant.owner)
        .bind(claimant.now)
        .bind(claimant.lease_until)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    if inserted == 0 {
        let existing = fetch_in(&mut tx, job, as_of).await?;
        if existing.finished_at.is_some() {
            return Ok(Claim::Finished(existing.try_into()?));
        }
        let presumed_dead = claimant.takeover || existing.lease_until < claimant.now;
        if !presumed_dead || !take_over(&mut tx, &existing, claimant).await? {
            return Ok(Claim::Busy(existing.try_into()?));
        }
        tracing::warn!(job = %job, %as_of, previous_owner = %existing.owner, "taking over an unfinished job run");
    }
    let record = RunRecord {
        job,
        as_of,
        owner: claimant.owner.to_owned(),
        started_at: claimant.now,
        finished_at: None,
        processed: 0,
        errors: 0,
    };
    outbox::insert(&mut tx, &run_event(JobEvent::Started, &record)).await?;
    tx.commit().await?;
    Ok(Claim::Started(record))
}

/// Moves an unfinished run to `claimant`, unless its row changed since it was read.
async fn take_over(
    tx: &mut Tx,
    existing: &RunRow,
    claimant: Claimant<'_>,
) -> Result<bool, StoreError> {
    let updated = with_tx!(tx, |conn| {
        sqlx::query(
            "update job_runs set owner = $1, started_at = $2, lease_until = $3, \
             processed = 0, errors = 0 where job = $4 and as_of = $5 \
             and finished_at is null and owner = $6 and lease_until = $7",
        )
        .bind(claimant.owner)
        .bind(claimant.now)
        .bind(claimant.lease_until)
        .bind(&existing.job)
        .bind(existing.as_of)
        .bind(&existing.owner)
        .bind(existing.lease_until)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(updated == 1)
}

/// Extends the lease of a run still owned by `owner` and records its progress;
/// false if the run is no longer ours (taken over after a lapse): stop working.
pub async fn renew(
    db: &Db,
    record: &RunRecord,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let updated = crate::store::with_pool!(db, |pool| sqlx::query(
        "update job_runs set lease_until = $1, processed = $2, errors = $3 where job = $4 \
         and as_of = $5 and owner = $6 and finished_at is null"
    )
    .bind(lease_until)
    .bind(i64::try_from(record.processed).unwrap_or(i64::MAX))
    .bind(i64::try_from(record.errors).unwrap_or(i64::MAX))
    .bind(record.job.as_str())
    .bind(record.as_of)
    .bind(&record.owner)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(updated == 1)
}

/// Marks the run finished with its counts and writes `job.finished` to the
/// outbox in the same transaction. False if the run was no longer ours.
pub async fn finish(db: &Db, record: &RunRecord) -> Result<bool, StoreError> {
    let finished_at = record
        .finished_at
        .expect("finish is given a finished record");
    let mut tx = db.begin().await?;
    let updated = with_tx!(&mut tx, |conn| sqlx::query(
        "update job_runs set finished_at = $1, processed = $2, errors = $3 where job = $4 \
         and as_of = $5 and owner = $6 and finished_at is null"
    )
    .bind(finished_at)
    .bind(i64::try_from(record.processed).unwrap_or(i64::MAX))
    .bind(i64::try_from(record.errors).unwrap_or(i64::MAX))
    .bind(record.job.as_str())
    .bind(record.as_of)
    .bind(&record.owner)
    .execute(conn)
    .await
    .map(|done| done.rows_affected()))?;
    if updated == 0 {
        return Ok(false);
    }
    outbox::insert(&mut tx, &run_event(JobEvent::Finished, record)).await?;
    tx.commit().await?;
    Ok(true)
}

/// The run of `job` for `as_of`, if there is one.
pub async fn get(db: &Db, job: JobName, as_of: NaiveDate) -> Result<Option<RunRecord>, StoreError> {
    let sql = format!("select {COLUMNS} from job_runs where job = $1 and as_of = $2");
    let row: Option<RunRow> = with_read_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(job.as_str())
        .bind(as_of)
        .fetch_optional(pool)
        .await)?;
    row.map(RunRecord::try_from).transpose()
}

/// The latest date `job` finished a run for (catch-up starts after it).
pub async fn last_finished(db: &Db, job: JobName) -> Result<Option<NaiveDate>, StoreError> {
    Ok(with_read_pool!(db, |pool| {
        sqlx::query_scalar(
            "select as_of from job_runs where job = $1 and finished_at is not null \
             order by as_of desc limit 1",
        )
        .bind(job.as_str())
        .fetch_optional(pool)
        .await
    })?)
}

async fn fetch_in(tx: &mut Tx, job: JobName, as_of: NaiveDate) -> Result<RunRow, StoreError> {
    let sql = format!(
        "select {COLUMNS} from job_runs where job = $1 and as_of = $2{}",
        tx.row_lock()
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as(sqlx::AssertSqlSafe(
        sql
    ))
    .bind(job.as_str())
    .bind(as_of)
    .fetch_one(conn)
    .await)?)
}

/// The outbox row of a run event (`job.started`, `job.finished`), in the
/// run's own aggregate.
fn run_event(kind: fn(JobRun) -> JobEvent, record: &RunRecord) -> OutboxEvent {
    let run = JobRun {
        job: record.job.as_str().to_owned(),
        as_of: record.as_of,
        owner: record.owner.clone(),
        started_at: record.started_at,
        finished_at: record.finished_at,
        processed: record.processed,
        errors: record.errors,
    };
    let mut row = kind(run).envelope().to_outbox();
    let run_key = format!("{}:{}", record.job.as_str(), record.as_of);
    row.aggregate_id = Uuid::new_v5(&RUN_AGGREGATE_NAMESPACE, run_key.as_bytes());
    row
}
