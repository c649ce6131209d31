//! The cross-instance lock around one run (job, date).
//!
//! PostgreSQL: a session advisory lock taken with `pg_try_advisory_lock` on a
//! connection held for the whole run. If the instance dies, the server drops
//! the connection and the lock with it, so the next instance may take the
//! unfinished run over at once. SQLite (one file, normally one process): the
//! `job_runs` row's lease is the lock, so this is a no-op.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use super::JobName;
use crate::store::{Db, StoreError};

/// A held run lock; give it back with [`RunLock::release`]. Dropped without
/// that (a cancelled or panicking run), its connection is closed rather than
/// pooled, so the lock never outlives the run.
pub struct RunLock {
    /// The connection holding the advisory lock, and the lock's key; `None` on SQLite.
    advisory: Option<(PoolConnection<Postgres>, i64)>,
}

impl RunLock {
    /// Takes the lock of (job, as_of) without waiting; `None` if another
    /// instance holds it.
    pub async fn try_acquire(
        db: &Db,
        job: JobName,
        as_of: NaiveDate,
    ) -> Result<Option<RunLock>, StoreError> {
        let Db::Postgres(pool) = db else {
            return Ok(Some(RunLock { advisory: None }));
        };
        let key = lock_key(job, as_of);
        // Until the answer is read, the server may already hold the lock for
        // this session: if this future is cancelled (or the query fails)
        // there, the connection must close, not go back to the pool holding it.
        let mut connection = ClosedUnlessKept(Some(pool.acquire().await?));
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut **connection.get())
            .await?;
        let connection = connection.keep();
        Ok(locked.then(|| RunLock {
            advisory: Some((connection, key)),
        }))
    }

    /// True when holding this lock proves no other instance runs the job for
    /// the date, so an unfinished row may be taken over within its lease.
    pub fn excludes_others(&self) -> bool {
        self.advisory.is_some()
    }

    /// Releases the lock. If that fails, the connection is closed instead of
    /// returned to the pool, which releases the lock too.
    pub async fn release(mut self) {
        let Some((mut connection, key)) = self.advisory.take() else {
            return;
        };
        let unlocked: Result<bool, sqlx::Error> =
            sqlx::query_scalar("select pg_advisory_unlock($1)")
                .bind(key)
                .fetch_one(&mut *connection)
                .await;
        if !matches!(unlocked, Ok(true)) {
            tracing::warn!(
                ?unlocked,
                "releasing a job run lock failed; closing its connection"
            );
            connection.close_on_drop();
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some((connection, _)) = &mut self.advisory {
            connection.close_on_drop();
        }
    }
}

/// A pooled connection that is closed when dropped, unless taken back with
/// [`ClosedUnlessKept::keep`] once its session state is known.
struct ClosedUnlessKept(Option<PoolConnection<Postgres>>);

impl ClosedUnlessKept {
    fn get(&mut self) -> &mut PoolConnection<Postgres> {
        self.0.as_mut().expect("held until kept")
    }

    fn keep(mut self) -> PoolConnection<Postgres> {
        self.0.take().expect("held until kept")
    }
}

impl Drop for ClosedUnlessKept {
    fn drop(&mut self) {
        if let Some(connection) = &mut self.0 {
            connection.close_on_drop();
        }
    }
}

/// The advisory lock key of (job, as_of): 64 bits of a hash, namespaced so it
/// cannot collide with another use of advisory locks by accident.
fn lock_key(job: JobName, as_of: NaiveDate) -> i64 {
    let digest = Sha256::digest(format!("loan-tracker/job-run/{}/{as_of}", job.as_str()));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}
