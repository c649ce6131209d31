//! A write transaction of either backend, and the macro that runs one SQL
//! text against it.

use sqlx::{PgPool, Postgres, Sqlite, Transaction};

use super::{Db, StoreError};

/// An open write transaction. Dropping it without [`Tx::commit`] rolls back.
pub enum Tx {
    /// SQLite, begun `IMMEDIATE` on the single writer connection.
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection
/// (`&mut <Backend>Connection`); the body is compiled once per backend.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

impl Db {
    /// Begins a write transaction. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails half-way.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(sqlite) => Tx::Sqlite(sqlite.writer.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(begin_postgres(pool, None).await?),
        })
    }
}

/// Begins a PostgreSQL transaction (with `statement` instead of `BEGIN`
/// when given) on a task of its own, so that it cannot be cancelled.
///
/// sqlx 0.9 is not cancel-safe here (transact-rs/sqlx#4393, fixed upstream
/// after the last release): a caller dropped while `BEGIN` is on the wire —
/// a client that hangs up, a timeout — returns the connection to the pool
/// inside a transaction that nothing ends, and every later borrower's
/// statements run in it until the first error aborts it for good. On its own
/// task `BEGIN` always completes; a transaction whose caller is gone is then
/// dropped on that task, which rolls it back before the connection returns.
pub(crate) async fn begin_postgres(
    pool: &PgPool,
    statement: Option<&'static str>,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let pool = pool.clone();
    let begun = tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    })
    .await;
    match begun {
        Ok(begun) => Ok(begun?),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        // Only a runtime shutting down cancels the task.
        Err(_) => Err(StoreError::Database(sqlx::Error::BeginFailed)),
    }
}

impl Tx {
    /// `" for update"` on PostgreSQL, nothing on SQLite (whose write
    /// transaction already holds the database's only write lock).
    pub fn row_lock(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " for update",
        }
    }

    /// Makes every write of the transaction durable at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
