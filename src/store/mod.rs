//! Storage adapters: one [`Db`] value over either SQLite or PostgreSQL.
//!
//! Both backends share their SQL: SQLite accepts `$1` placeholders, so each
//! query is written once inside [`with_pool!`], which expands it for both
//! concrete pools. Only statements that really differ are written twice.

pub mod batch;
mod connect;
pub mod idempotency;
pub mod loans;
pub mod outbox;
pub mod page;
mod tx;

pub use connect::{connect, migrate};
pub(crate) use tx::begin_postgres;
pub use tx::{OpenTx, Tx};

use sqlx::{PgPool, SqlitePool};
use thiserror::Error;

/// Failure of the storage layer, as seen by its callers.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached within the allowed time.
    #[error("{target} unreachable after {waited_secs}s: {cause}")]
    Unreachable {
        /// Where we tried to connect (host and port, never a password).
        target: String,
        /// How long we kept retrying.
        waited_secs: u64,
        /// The last connection error.
        cause: String,
    },
    /// Applying migrations failed.
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A uniqueness rule was violated (the constraint name says which).
    #[error("unique constraint {constraint} violated")]
    Duplicate {
        /// The violated constraint or index.
        constraint: String,
    },
    /// A stored value violates a rule the code relies on.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The data directory could not be prepared.
    #[error("preparing {path}: {source}")]
    Io {
        /// The path we could not create.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db_error) = &error
            && db_error.is_unique_violation()
        {
            // SQLite names no constraint; its message does ("UNIQUE
            // constraint failed: index 'users_username_key'").
            return Self::Duplicate {
                constraint: db_error
                    .constraint()
                    .unwrap_or(db_error.message())
                    .to_owned(),
            };
        }
        Self::Database(error)
    }
}

impl StoreError {
    /// True when the database answered and refused the statement (a
    /// constraint, a value it cannot store): the same rows fail the same way
    /// again, while other rows may go in. False when it could not be asked
    /// (connection, pool, timeout), which fails every statement alike.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Duplicate { .. } | Self::Database(sqlx::Error::Database(_))
        )
    }
}

/// The SQLite pools: every write goes through the single writer connection
/// (SQLite has one writer anyway; queuing in the pool instead of on the file
/// lock means users never see "database is locked"), reads use the others.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    /// One connection: the only one that writes.
    pub writer: SqlitePool,
    /// Read-only connections (WAL lets them read while the writer writes).
    pub reader: SqlitePool,
    /// Raised by commits that wrote outbox rows (wakes the relay).
    outbox_commits: outbox::CommitSignal,
}

impl SqliteDb {
    /// The two pools of one database file.
    pub fn new(writer: SqlitePool, reader: SqlitePool) -> Self {
        Self {
            writer,
            reader,
            outbox_commits: outbox::CommitSignal::default(),
        }
    }
}

/// The PostgreSQL pool. It dereferences to the [`PgPool`], so code written
/// for the pool (`Db::Postgres(pool)`) reads as before; the signal rides
/// along because it must be shared by every clone of the [`Db`].
#[derive(Debug, Clone)]
pub struct PostgresDb {
    pool: PgPool,
    /// Raised by commits that wrote outbox rows (wakes the relay).
    outbox_commits: outbox::CommitSignal,
}

impl PostgresDb {
    /// Wraps a connected pool.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            outbox_commits: outbox::CommitSignal::default(),
        }
    }

    /// The pool itself (an `Executor` where one is needed).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl std::ops::Deref for PostgresDb {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

/// A connected database of either backend.
#[derive(Debug, Clone)]
pub enum Db {
    /// The embedded default.
    Sqlite(SqliteDb),
    /// Production.
    Postgres(PostgresDb),
}

/// Runs `$body` with `$pool` bound to the backend's write pool; the body is
/// compiled once per backend, so one SQL text serves both.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(sqlite) => {
                let $pool = &sqlite.writer;
                $body
            }
            $crate::store::Db::Postgres(postgres) => {
                let $pool = postgres.pool();
                $body
            }
        }
    };
}

/// Like [`with_pool!`] but for reads: SQLite reads go to the reader pool.
macro_rules! with_read_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(sqlite) => {
                let $pool = &sqlite.reader;
                $body
            }
            $crate::store::Db::Postgres(postgres) => {
                let $pool = postgres.pool();
                $body
            }
        }
    };
}
pub(crate) use crate::store::tx::with_tx;
pub(crate) use {with_pool, with_read_pool};

impl Db {
    /// The signal raised after every commit that wrote outbox rows through
    /// this value or a clone of it (never by another process or `Db`).
    pub fn outbox_commits(&self) -> &outbox::CommitSignal {
        match self {
            Self::Sqlite(sqlite) => &sqlite.outbox_commits,
            Self::Postgres(postgres) => &postgres.outbox_commits,
        }
    }

    /// Name of the backend, for logs and `/ready`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| sqlx::query("select 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Closes every pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(sqlite) => {
                sqlite.reader.close().await;
                sqlite.writer.close().await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
