//! Opening the database: bounded retries at start, pool options, migrations.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use super::{Db, PostgresDb, SqliteDb, StoreError};
use crate::settings::{DatabaseSettings, Settings};

/// How long a SQLite connection waits for the file lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a pooled connection (the SQLite writer queue included).
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// First pause between connection attempts; doubled up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between connection attempts.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Connects to the configured database, retrying with backoff until
/// `db_connect_timeout` has passed, then runs the migrations.
pub async fn connect(settings: &Settings) -> Result<Db, StoreError> {
    let db = match &settings.database {
        DatabaseSettings::Sqlite { path } => {
            Db::Sqlite(open_sqlite(path, settings.db_max_connections).await?)
        }
        DatabaseSettings::Postgres { url } => Db::Postgres(PostgresDb::new(
            open_postgres(url.expose(), settings).await?,
        )),
    };
    migrate(&db).await?;
    Ok(db)
}

/// Applies every pending migration of the backend.
pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    match db {
        Db::Sqlite(sqlite) => {
            sqlx::migrate!("migrations/sqlite")
                .run(&sqlite.writer)
                .await?
        }
        Db::Postgres(postgres) => {
            sqlx::migrate!("migrations/postgres")
                .run(postgres.pool())
                .await?
        }
    }
    Ok(())
}

async fn open_sqlite(path: &std::path::Path, max_connections: u32) -> Result<SqliteDb, StoreError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            path: parent.display().to_string(),
            source,
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL, not NORMAL: with WAL, NORMAL may lose the last commits on power
        // loss, and a payment answered 201 must survive it. The cost is one
        // fsync of the WAL per commit (the benchmark measures it).
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        .log_statements(tracing::log::LevelFilter::Trace);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect_with(options.read_only(true))
        .await?;
    Ok(SqliteDb::new(writer, reader))
}

async fn open_postgres(url: &str, settings: &Settings) -> Result<sqlx::PgPool, StoreError> {
    let options: PgConnectOptions = url.parse()?;
    let options = options.log_statements(tracing::log::LevelFilter::Trace);
    wait_for_postgres(&options, settings).await?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?)
}

/// Probes with single connections, backing off, until one succeeds or the
/// `db_connect_timeout` budget is spent.
async fn wait_for_postgres(
    options: &PgConnectOptions,
    settings: &Settings,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        let remaining = settings
            .db_connect_timeout
            .saturating_sub(started.elapsed());
        let attempt =
            tokio::time::timeout(remaining.max(FIRST_RETRY_PAUSE), options.connect()).await;
        let error = match attempt {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                return Ok(());
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "connection attempt timed out".to_owned(),
        };
        if started.elapsed() + pause >= settings.db_connect_timeout {
            return Err(StoreError::Unreachable {
                target: settings.database.redacted(),
                waited_secs: started.elapsed().as_secs(),
                cause: error,
            });
        }
        tracing::warn!(target = %settings.database.redacted(), %error, retry_in_ms = pause.as_millis() as u64, "database not reachable yet");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
}
