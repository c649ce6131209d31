//! A write transaction of either backend, and the macro that runs one SQL
//! text against it.

use sqlx::{Postgres, Sqlite, Transaction};

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
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
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
