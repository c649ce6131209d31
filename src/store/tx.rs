//! A write transaction of either backend, and the macro that runs one SQL
//! text against it.

use sqlx::{Database, PgPool, Postgres, Sqlite, Transaction};

use super::outbox::CommitSignal;
use super::{Db, StoreError};

/// An open write transaction. Dropping it without [`Tx::commit`] rolls back.
pub enum Tx {
    /// SQLite, begun `IMMEDIATE` on the single writer connection.
    Sqlite(OpenTx<Sqlite>),
    /// PostgreSQL.
    Postgres(OpenTx<Postgres>),
}

/// One backend's open transaction and what its commit must announce. It
/// dereferences to the backend's connection, so `&mut **tx` on a variant's
/// value is the connection to run statements on (as with a plain sqlx
/// `Transaction`).
pub struct OpenTx<DB: Database> {
    transaction: Transaction<'static, DB>,
    /// Raised after the commit when an outbox row was written, so the
    /// relay of this database publishes at once.
    outbox_commits: CommitSignal,
    /// An outbox row was written in this transaction.
    wrote_outbox: bool,
}

impl<DB: Database> OpenTx<DB> {
    fn new(transaction: Transaction<'static, DB>, db: &Db) -> Self {
        Self {
            transaction,
            outbox_commits: db.outbox_commits().clone(),
            wrote_outbox: false,
        }
    }

    /// Commits, then raises the signal (not before: the relay must be able
    /// to see the rows when it looks).
    async fn commit(self) -> Result<(), StoreError> {
        self.transaction.commit().await?;
        if self.wrote_outbox {
            self.outbox_commits.raise();
        }
        Ok(())
    }
}

impl<DB: Database> std::ops::Deref for OpenTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.transaction
    }
}

impl<DB: Database> std::ops::DerefMut for OpenTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.transaction
    }
}

/// Runs `$body` with `$conn` bound to the transaction's connection
/// (`&mut <Backend>Connection`); the body is compiled once per backend.
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
pub(crate) use with_tx;

impl Db {
    /// Begins a write transaction. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails half-way.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(sqlite) => Tx::Sqlite(OpenTx::new(
                sqlite.writer.begin_with("BEGIN IMMEDIATE").await?,
                self,
            )),
            Db::Postgres(postgres) => {
                Tx::Postgres(OpenTx::new(begin_postgres(postgres, None).await?, self))
            }
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

    /// Notes that this transaction wrote outbox rows, so its commit wakes
    /// the relay. [`super::outbox::insert_all`] calls it; anything else that
    /// writes the outbox must too, or its rows wait for the relay's poll.
    pub(crate) fn wrote_outbox(&mut self) {
        match self {
            Tx::Sqlite(open) => open.wrote_outbox = true,
            Tx::Postgres(open) => open.wrote_outbox = true,
        }
    }

    /// Makes every write of the transaction durable at once, then wakes the
    /// relay if an outbox row was among them.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(open) => open.commit().await,
            Tx::Postgres(open) => open.commit().await,
        }
    }
}
