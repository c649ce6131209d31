//! The tests' own way into the tables, to check what the service wrote:
//! the service's `with_pool!` family is private to its crate, so the tests
//! match the same two backends here. Only tests use these.

/// Runs `$body` with `$pool` bound to the backend's write pool.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            loan_tracker::store::Db::Sqlite(sqlite) => {
                let $pool = &sqlite.writer;
                $body
            }
            loan_tracker::store::Db::Postgres(postgres) => {
                let $pool = postgres.pool();
                $body
            }
        }
    };
}

/// Like [`with_pool!`], on SQLite's reader pool.
macro_rules! with_read_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            loan_tracker::store::Db::Sqlite(sqlite) => {
                let $pool = &sqlite.reader;
                $body
            }
            loan_tracker::store::Db::Postgres(postgres) => {
                let $pool = postgres.pool();
                $body
            }
        }
    };
}

/// Runs `$body` with `$conn` bound to the transaction's connection.
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            loan_tracker::store::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            loan_tracker::store::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
